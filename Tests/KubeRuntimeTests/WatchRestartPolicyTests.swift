import KubetraceTestKit
@testable import KubeRuntime
import Testing

/// client-go's decisions after a watch ends (tools/cache/reflector.go), without I/O.
@Suite struct WatchRestartPolicyTests {
    /// Monotonic time as `RuntimeClock.elapsed` reads it.
    let t0: Duration = .seconds(1000)
    func policy() -> WatchRestartPolicy {
        WatchRestartPolicy(initialBackoff: .milliseconds(800), maxBackoff: .seconds(30), resetAfter: .seconds(120))
    }

    @Test func aStreamThatDeliveredResumesAtOnceHoweverShort() {
        var p = policy()
        #expect(p.after(.closed(lasted: .milliseconds(3), lines: 1), now: t0) == .init(relist: false, backoffCap: nil))
        #expect(p.after(.closed(lasted: .seconds(400), lines: 0), now: t0) == .init(relist: false, backoffCap: nil))
        #expect(p.failures == 0)
    }

    @Test func emptyShortWatchesErrorsAndExpiryBackOffDoubling() {
        var p = policy()
        #expect(p.after(.closed(lasted: .milliseconds(999), lines: 0), now: t0) == .init(relist: false, backoffCap: .milliseconds(800)))
        #expect(p.after(.failed(retryAfter: .seconds(2)), now: t0 + .seconds(1)) == .init(relist: false, backoffCap: .milliseconds(1600), floor: .seconds(2)))
        #expect(p.after(.expired, now: t0 + .seconds(2)) == .init(relist: true, backoffCap: .milliseconds(3200)))
        // A delivering stream in between neither grows nor resets the episode (client-go resets on time only).
        _ = p.after(.closed(lasted: .milliseconds(1), lines: 5), now: t0 + .seconds(3))
        #expect(p.after(.failed(retryAfter: nil), now: t0 + .seconds(4)).backoffCap == .milliseconds(6400))
        for i in 0..<10 { _ = p.after(.failed(retryAfter: nil), now: t0 + .seconds(5 + i)) }
        #expect(p.after(.failed(retryAfter: nil), now: t0 + .seconds(20)).backoffCap == .seconds(30))
    }

    @Test func aServerEndingEveryWatchAtOnceIsBackedOffAfterFiftyInARow() {
        var p = policy()
        for i in 0..<WatchRestartPolicy.shortWatchLimit {
            #expect(p.after(.closed(lasted: .milliseconds(2), lines: 1), now: t0 + .milliseconds(i)).backoffCap == nil)
        }
        #expect(p.after(.closed(lasted: .milliseconds(2), lines: 1), now: t0 + .seconds(1)).backoffCap == .milliseconds(800))
        // A watch that lasted ends the run.
        #expect(p.after(.closed(lasted: .seconds(2), lines: 1), now: t0 + .seconds(3)).backoffCap == nil)
        #expect(p.after(.closed(lasted: .milliseconds(2), lines: 1), now: t0 + .seconds(4)).backoffCap == nil)
    }

    @Test func twoMinutesWithoutABackoffStartsAgain() {
        var p = policy()
        for i in 0..<5 { _ = p.after(.failed(retryAfter: nil), now: t0 + .seconds(i)) }
        #expect(p.after(.failed(retryAfter: nil), now: t0 + .seconds(10)).backoffCap == .milliseconds(800 * 32))
        #expect(p.after(.failed(retryAfter: nil), now: t0 + .seconds(130)).backoffCap == .milliseconds(800))
    }
}
