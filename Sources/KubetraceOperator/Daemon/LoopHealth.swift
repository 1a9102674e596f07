import Foundation
import Synchronization

/// Whether the operator's event loop still turns: a heartbeat that goes through the
/// handler actors and the work queue every half second. A stuck actor or a starved
/// executor stops the beats; `/healthz` and the systemd watchdog pings then stop too.
public final class LoopHealth: Sendable {
    private let lastBeat = Mutex<ContinuousClock.Instant>(.now)
    let period: Duration

    public init(period: Duration = .milliseconds(500)) { self.period = period }

    /// Beats until cancelled; `probe` is the round trip through the loop.
    public func run(probe: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            await probe()
            lastBeat.withLock { $0 = .now }
            try? await Task.sleep(for: period)
        }
    }

    /// Healthy when the last beat is more recent than `staleAfter`.
    public func isHealthy(staleAfter: Duration = .seconds(3)) -> Bool {
        ContinuousClock.now - lastBeat.withLock { $0 } < staleAfter
    }
}

/// Test-only faults, from `KUBETRACE_FAILPOINT` (documented in the README):
/// `stall-loop-after=3s` blocks a handler actor's thread for good 3 s after the
/// operator became ready, the way a runaway computation would, so the watchdog
/// behaviour can be tested.
enum Failpoints {
    private static let ready = Mutex<ContinuousClock.Instant?>(nil)
    static func markReady() { ready.withLock { $0 = $0 ?? .now } }
    static var readyAt: ContinuousClock.Instant? { ready.withLock { $0 } }

    /// Read once: the heartbeat asks twice a second.
    static let stall = stallAfter()

    static func stallAfter(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let raw = environment["KUBETRACE_FAILPOINT"], raw.hasPrefix("stall-loop-after=") else { return nil }
        return DurationParser.parse(String(raw.dropFirst("stall-loop-after=".count)))
    }
}
