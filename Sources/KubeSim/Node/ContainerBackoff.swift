/// The kubelet's back-off bookkeeping: client-go `util/flowcontrol/backoff.go` `Backoff`, as
/// pkg/kubelet/kubelet.go builds it for crash loops (`backOffPeriod` 10 s doubling to
/// `MaxContainerBackOff` 5 min) and pkg/kubelet/images/image_manager.go for pulls.
/// A pure value: every call takes the time as an input.
struct ContainerBackoff: Sendable {
    struct Entry: Sendable, Equatable {
        var backoff: Duration
        var lastUpdate: ContinuousClock.Instant
    }

    let initial: Duration
    let max: Duration
    private(set) var entries: [String: Entry] = [:]

    init(initial: Duration, max: Duration) {
        self.initial = initial
        self.max = max
    }

    /// `hasExpired`: an entry untouched for twice the maximum starts over. This is the
    /// "reset after the container ran 10 minutes" of the docs (2 × 5 min).
    private func expired(_ entry: Entry, at eventTime: ContinuousClock.Instant) -> Bool {
        eventTime - entry.lastUpdate > max * 2
    }

    /// `Next`: the first failure (or the first after expiry) waits `initial`, each further one
    /// twice the last, capped at `max`.
    mutating func next(_ key: String, at eventTime: ContinuousClock.Instant) {
        if let e = entries[key], !expired(e, at: eventTime) {
            entries[key] = Entry(backoff: Swift.min(e.backoff * 2, max), lastUpdate: eventTime)
        } else {
            entries[key] = Entry(backoff: initial, lastUpdate: eventTime)
        }
    }

    /// `Get`: the current back-off of `key` (0 when none).
    func get(_ key: String) -> Duration { entries[key]?.backoff ?? .zero }

    /// `IsInBackOffSince`: whether `now` is still within the back-off counted from `eventTime`
    /// (kuberuntime_manager.go `doBackOff` passes the container's finishedAt).
    func isInBackOff(_ key: String, since eventTime: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Bool {
        guard let e = entries[key], !expired(e, at: eventTime) else { return false }
        return now - eventTime < e.backoff
    }

    /// `IsInBackOffSinceUpdate`: within the back-off counted from the last failure (the image
    /// manager's check before pulling again).
    func isInBackOffSinceUpdate(_ key: String, now: ContinuousClock.Instant) -> Bool {
        guard let e = entries[key], !expired(e, at: now) else { return false }
        return now - e.lastUpdate < e.backoff
    }

    /// When the back-off of `key` counted from `eventTime` ends.
    func end(_ key: String, since eventTime: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        entries[key].map { eventTime + $0.backoff }
    }

    mutating func reset(_ key: String) { entries[key] = nil }
}

/// Go's `time.Duration.String` (`10s`, `1m20s`, `5m0s`, `200ms`, `1.5s`), which the kubelet's
/// messages print.
enum GoDuration {
    static func format(_ d: Duration) -> String {
        let (secs, atto) = d.components
        let nanos = secs * 1_000_000_000 + atto / 1_000_000_000
        if nanos == 0 { return "0s" }
        if nanos < 1_000_000_000 {
            if nanos < 1_000 { return "\(nanos)ns" }
            if nanos < 1_000_000 { return fraction(nanos, 1_000) + "µs" }
            return fraction(nanos, 1_000_000) + "ms"
        }
        var out = ""
        let hours = nanos / 3_600_000_000_000
        let minutes = (nanos / 60_000_000_000) % 60
        let rest = nanos % 60_000_000_000
        if hours > 0 { out += "\(hours)h" }
        if hours > 0 || minutes > 0 { out += "\(minutes)m" }
        return out + fraction(rest, 1_000_000_000) + "s"
    }

    /// `value / unit` with the fraction's trailing zeros dropped.
    private static func fraction(_ value: Int64, _ unit: Int64) -> String {
        let whole = value / unit, frac = value % unit
        guard frac > 0 else { return "\(whole)" }
        var digits = String(frac)
        digits = String(repeating: "0", count: String(unit).count - 1 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}
