public import Foundation

/// Time as an input. Everything in KubeRuntime that waits or reads the time (the
/// reflector's backoff, the work queue's delays, the leader elector's lease timing,
/// a refresh loop's deadlines) takes one of these, so a test can run it in virtual
/// time: wrap a clock the test advances (for example swift-clocks' `TestClock`) and
/// every sleep, deadline and Date follows it.
///
/// Two readings of the same clock: `elapsed` is monotonic (durations, timeouts);
/// `date` is wall time (expiry times written by servers). The system clock reads
/// `Date()` for the latter; a wrapped clock maps its instants onto a fixed epoch.
public struct RuntimeClock: Sendable {
    private let elapsedNow: @Sendable () -> Duration
    private let sleepFor: @Sendable (Duration) async throws -> Void
    private let wallNow: @Sendable () -> Date

    /// The process's clocks: `ContinuousClock` for durations and sleeps, `Date()` for wall time.
    public static let system: RuntimeClock = {
        let clock = ContinuousClock()
        let start = clock.now
        return RuntimeClock(elapsed: { start.duration(to: clock.now) },
                            sleep: { try await clock.sleep(for: $0) },
                            date: { Date() })
    }()

    /// Any `Clock` measured in `Duration`, with wall time counted from `epoch` at its current instant.
    public init<C: Clock>(_ clock: C, epoch: Date) where C.Duration == Duration {
        let start = clock.now
        self.init(elapsed: { start.duration(to: clock.now) },
                  sleep: { d in try await clock.sleep(until: clock.now.advanced(by: d), tolerance: nil) },
                  date: { epoch.addingTimeInterval(start.duration(to: clock.now).timeInterval) })
    }

    private init(elapsed: @escaping @Sendable () -> Duration, sleep: @escaping @Sendable (Duration) async throws -> Void,
                 date: @escaping @Sendable () -> Date) {
        self.elapsedNow = elapsed
        self.sleepFor = sleep
        self.wallNow = date
    }

    /// Monotonic time since this clock was made.
    public var elapsed: Duration { elapsedNow() }
    /// Wall time.
    public var date: Date { wallNow() }

    /// Sleeps for `duration` (returns at once for zero or less); throws CancellationError when cancelled.
    public func sleep(for duration: Duration) async throws {
        guard duration > .zero else { try Task.checkCancellation(); return }
        try await sleepFor(duration)
    }

    /// Sleeps until the wall time `deadline`.
    public func sleep(until deadline: Date) async throws {
        try await sleep(for: .seconds(deadline.timeIntervalSince(date)))
    }
}

/// Where jitter comes from: uniform numbers in [0, 1). Tests pass a fixed or
/// seeded source so that jittered times are exact.
public struct RandomSource: Sendable {
    private let next: @Sendable () -> Double

    public init(_ next: @escaping @Sendable () -> Double) { self.next = next }

    /// The system's generator.
    public static let system = RandomSource { Double.random(in: 0..<1) }

    /// Always `value` (clamped into [0, 1)).
    public static func fixed(_ value: Double) -> RandomSource {
        let v = min(max(value, 0), 0.999_999_999)
        return RandomSource { v }
    }

    /// A number in [0, 1).
    public func unit() -> Double { next() }

    /// Full jitter: uniform in [0, cap], in whole milliseconds (at least one).
    public func fullJitter(_ cap: Duration) -> Duration {
        let ms = max(cap.wholeMilliseconds, 1)
        return .milliseconds(min(Int64(unit() * Double(ms + 1)), ms))
    }
}

extension Duration {
    /// Seconds as a Double.
    public var timeInterval: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// Whole milliseconds (truncated).
    public var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
