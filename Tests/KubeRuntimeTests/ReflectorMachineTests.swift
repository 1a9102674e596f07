@testable import KubeRuntime
import Testing

/// The reflector's decisions (client-go's tools/cache/reflector.go) as exact action sequences,
/// without I/O: the time is handed in and the jitter comes from a fixed `RandomSource`.
@Suite struct ReflectorMachineTests {
    /// Monotonic time as `RuntimeClock.elapsed` reads it.
    let t0: Duration = .seconds(1000)

    /// Default options (800 ms … 30 s, reset after 2 min); a fixed 0.5 draws half the cap.
    func machine(streaming: Bool = true, random: RandomSource = .fixed(0.5)) -> ReflectorMachine {
        var options = ReflectorOptions()
        options.useStreamingList = streaming
        return ReflectorMachine(options: options, random: random)
    }

    @Test func theFirstActionIsAStreamingListOrAPagedListWithoutOne() {
        var streaming = machine()
        #expect(streaming.start() == .watch(initial: true))
        var paged = machine(streaming: false)
        #expect(paged.start() == .list)
        #expect(paged.after(.listed, now: t0) == .watch(initial: false))
        #expect(paged.reconnects == 0 && paged.relists == 0)
    }

    @Test func noStreamingListFallsBackToPagedListThenWatchForGood() {
        var m = machine()
        #expect(m.start() == .watch(initial: true))
        // At once: a missing feature is not a failure.
        #expect(m.after(.unsupported, now: t0) == .list)
        #expect(m.after(.listed, now: t0) == .watch(initial: false))
        #expect(m.reconnects == 0 && m.failures == 0)
        // A later 410 relists by paged LIST: the server said it has no streaming list.
        #expect(m.after(.expired, now: t0 + .seconds(1)) == .wait(.milliseconds(400), then: .list))
    }

    @Test func aStreamThatDeliveredResumesAtOnceFromItsResourceVersion() {
        var m = machine()
        _ = m.start()
        // The streaming list delivered its state, then the server closed the stream.
        #expect(m.after(.watchEnded(lasted: .milliseconds(3), lines: 12), now: t0) == .watch(initial: false))
        #expect(m.after(.watchEnded(lasted: .milliseconds(3), lines: 1), now: t0) == .watch(initial: false))
        // A long quiet watch timed out by the server: also resumed at once.
        #expect(m.after(.watchEnded(lasted: .seconds(400), lines: 0), now: t0 + .seconds(400)) == .watch(initial: false))
        #expect(m.relists == 0 && m.failures == 0)
        #expect(m.reconnects == 3)
    }

    @Test func aVeryShortEmptyWatchBacksOffByTheExactJitteredDelay() {
        var m = machine()
        _ = m.start()
        _ = m.after(.watchEnded(lasted: .seconds(5), lines: 3), now: t0)
        // Full jitter over [0, 800 ms] with 0.5 drawn: 400 ms, then resume (no relist).
        #expect(m.after(.watchEnded(lasted: .milliseconds(999), lines: 0), now: t0 + .seconds(5)) == .wait(.milliseconds(400), then: .watch(initial: false)))
        #expect(m.relists == 0)
        var low = machine(random: .fixed(0))
        _ = low.start()
        _ = low.after(.watchEnded(lasted: .seconds(5), lines: 3), now: t0)
        #expect(low.after(.watchEnded(lasted: .milliseconds(10), lines: 0), now: t0) == .wait(.zero, then: .watch(initial: false)))
    }

    @Test func expiredRelistsAfterABackoff() {
        var m = machine()
        _ = m.start()
        _ = m.after(.watchEnded(lasted: .seconds(30), lines: 4), now: t0)
        #expect(m.after(.expired, now: t0 + .seconds(30)) == .wait(.milliseconds(400), then: .watch(initial: true)))
        #expect(m.relists == 1 && m.needList)
        // The relist's stream delivered the state: back to resuming.
        #expect(m.after(.watchEnded(lasted: .seconds(2), lines: 9), now: t0 + .seconds(32)) == .watch(initial: false))
        #expect(!m.needList)
        // An unsupported answer to a plain watch is read as expired (relist), not as "no streaming list".
        #expect(m.after(.unsupported, now: t0 + .seconds(33)) == .wait(.milliseconds(800), then: .watch(initial: true)))
        #expect(m.streamingList && m.relists == 2)
    }

    @Test func failuresDoubleFrom800msTo30sAndStartAgainAfterTwoQuietMinutes() {
        // 0.999… draws the whole cap, so each delay is the cap itself.
        var m = machine(random: .fixed(1))
        _ = m.start()
        _ = m.after(.watchEnded(lasted: .seconds(1), lines: 1), now: t0)
        var delays: [Duration] = []
        var now = t0
        var last = t0
        for _ in 0..<8 {
            last = now
            guard case .wait(let d, let then) = m.after(.failed(retryAfter: nil), now: now) else { Issue.record("no backoff"); return }
            #expect(then == .watch(initial: false))
            delays.append(d)
            now += d
        }
        #expect(delays == [800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000].map { .milliseconds($0) })
        // Just under two minutes after the last backoff: the episode goes on.
        #expect(m.after(.failed(retryAfter: nil), now: last + .seconds(119)) == .wait(.seconds(30), then: .watch(initial: false)))
        // Two minutes after that one: it starts again from 800 ms.
        #expect(m.after(.failed(retryAfter: nil), now: last + .seconds(119 + 120)) == .wait(.milliseconds(800), then: .watch(initial: false)))
        #expect(m.failures == 1)
    }

    @Test func retryAfterIsTheFloorOfTheDelay() {
        var m = machine()
        #expect(m.start() == .watch(initial: true))
        // The first request failed: the streaming list is tried again, not a resume.
        #expect(m.after(.failed(retryAfter: .seconds(5)), now: t0) == .wait(.seconds(5), then: .watch(initial: true)))
        // A Retry-After below the jittered delay (800 ms over a 1.6 s cap) does not shorten it.
        #expect(m.after(.failed(retryAfter: .milliseconds(100)), now: t0 + .seconds(5)) == .wait(.milliseconds(800), then: .watch(initial: true)))
        var paged = machine(streaming: false)
        #expect(paged.start() == .list)
        #expect(paged.after(.failed(retryAfter: .seconds(2)), now: t0) == .wait(.seconds(2), then: .list))
        #expect(paged.after(.listed, now: t0 + .seconds(2)) == .watch(initial: false))
    }

    @Test func fiftyShortWatchesInARowAreBackedOffEvenWhenTheyDelivered() {
        var m = machine()
        _ = m.start()
        for i in 0..<WatchRestartPolicy.shortWatchLimit {
            #expect(m.after(.watchEnded(lasted: .milliseconds(2), lines: 1), now: t0 + .milliseconds(i)) == .watch(initial: false))
        }
        #expect(m.after(.watchEnded(lasted: .milliseconds(2), lines: 1), now: t0 + .seconds(1)) == .wait(.milliseconds(400), then: .watch(initial: false)))
        // A watch that lasted ends the run.
        #expect(m.after(.watchEnded(lasted: .seconds(2), lines: 1), now: t0 + .seconds(3)) == .watch(initial: false))
        #expect(m.after(.watchEnded(lasted: .milliseconds(2), lines: 1), now: t0 + .seconds(4)) == .watch(initial: false))
    }

    @Test func syncedIsDeliveredOnceAndTheWatchTimeoutIsDrawnFromItsRange() {
        var m = machine()
        let first = m.markSynced(), second = m.markSynced()
        #expect(first && !second)
        #expect(machine(random: .fixed(0)).watchTimeoutSeconds() == 300)
        #expect(machine(random: .fixed(0.5)).watchTimeoutSeconds() == 450)
        #expect(machine(random: .fixed(1)).watchTimeoutSeconds() == 600)
    }
}
