import Clocks
import Foundation
import KubeClient
import KubeRuntime
import KubetraceTestKit
import Synchronization
import Testing

/// A `TestClock` that reports each sleep as it begins: how a test knows the reflector is
/// waiting, and for exactly how long.
struct ReportingClock: Clock {
    typealias Instant = TestClock<Duration>.Instant
    let base: TestClock<Duration>
    let report: @Sendable (Duration) -> Void
    var now: Instant { base.now }
    var minimumResolution: Duration { base.minimumResolution }
    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        report(base.now.duration(to: deadline))
        try await base.sleep(until: deadline, tolerance: tolerance)
    }
}

/// The next element of `stream`, or `TimedOut` after `limit`.
func next<T: Sendable>(_ stream: AsyncStream<T>, within limit: Duration, _ what: String) async throws -> T {
    try await within(limit, what) {
        var it = stream.makeAsyncIterator()
        guard let value = await it.next() else { throw TimedOut(what: what) }
        return value
    }
}

/// The real `Reflector` in virtual time: its backoff sleeps on a `TestClock`, so the retry
/// comes exactly when the test moves time past the backoff, and not a moment before.
@Suite(.timeLimit(.minutes(1))) struct ReflectorVirtualTimeTests {
    @Test func aFailedRequestIsRetriedExactlyAfterTheBackoffInVirtualTime() async throws {
        let (requests, arrived) = AsyncStream.makeStream(of: Int.self)
        let count = Atomic<Int>(0)
        // 1st request: 500; 2nd: 429 with Retry-After: 5; later ones: 500.
        let server = try LoopbackHTTPServer { write in
            let n = count.wrappingAdd(1, ordering: .relaxed).newValue
            let status = n == 2 ? "429 Too Many Requests\r\nRetry-After: 5" : "500 Internal Server Error"
            let body = #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected","code":\#(n == 2 ? 429 : 500)}"#
            _ = write("HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
            arrived.yield(n)
        }
        defer { server.close() }
        let client = try server.client()

        let (sleeps, slept) = AsyncStream.makeStream(of: Duration.self)
        let testClock = TestClock<Duration>()
        let clock = RuntimeClock(ReportingClock(base: testClock) { slept.yield($0) }, epoch: Date(timeIntervalSince1970: 1_800_000_000))
        // Defaults: backoff 800 ms doubling; 0.5 drawn from the full-jitter range.
        let reflector = Reflector<TestSecret>(client: client, options: ReflectorOptions(namespace: "default"), logger: quiet,
                                              clock: clock, random: .fixed(0.5))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await reflector.run(into: .init()) }

            let firstRequest = try await next(requests, within: .seconds(10), "the first request")
            #expect(firstRequest == 1)
            // Full jitter over [0, 800 ms] with 0.5 drawn.
            let firstBackoff = try await next(sleeps, within: .seconds(10), "the first backoff")
            #expect(firstBackoff == .milliseconds(400))
            await testClock.advance(by: .milliseconds(399))
            // Still asleep (a shorter backoff would have been resumed by the advance), no retry.
            await #expect(throws: (any Error).self) { try await testClock.checkSuspension() }
            #expect(count.load(ordering: .relaxed) == 1)
            await testClock.advance(by: .milliseconds(1))
            let retry = try await next(requests, within: .seconds(10), "the retry")
            #expect(retry == 2)

            // 429 with Retry-After: 5 — the jittered 800 ms (over 1.6 s) is raised to the floor.
            let secondBackoff = try await next(sleeps, within: .seconds(10), "the second backoff")
            #expect(secondBackoff == .seconds(5))
            await testClock.advance(by: .milliseconds(4999))
            await #expect(throws: (any Error).self) { try await testClock.checkSuspension() }
            #expect(count.load(ordering: .relaxed) == 2)
            await testClock.advance(by: .milliseconds(1))
            let secondRetry = try await next(requests, within: .seconds(10), "the retry after Retry-After")
            #expect(secondRetry == 3)
            #expect(reflector.stats.reconnects >= 2)
            #expect(reflector.stats.relists == 0)
            group.cancelAll()
        }
    }
}
