import Foundation

/// SPEC §6's per-object repair limit, as a pure value: a repair is immediate when
/// the object had fewer than `burst` repairs in the preceding `window`; otherwise it
/// waits `base`, 2×, 4× … (capped) after the previous one, and the doubling is reset
/// by the next immediate repair. A fight with another writer is thereby bounded,
/// while ordinary churn is repaired at once.
struct RepairRateLimiter<Key: Hashable> {
    var window: TimeInterval = 10
    var burst = 5
    var base: TimeInterval = 1
    var cap: TimeInterval = 300

    struct Decision: Equatable {
        /// When the repair may run (`now` when immediate).
        var at: Date
        var throttled: Bool
        /// The first throttled decision after immediate ones: one `RepairFailed` Event per episode.
        var startsEpisode: Bool
    }

    private struct History {
        var recent: [Date] = []
        var doublings = 0
        var throttled = false
    }
    private var history: [Key: History] = [:]

    func decide(_ key: Key, now: Date) -> Decision {
        guard let h = history[key] else { return Decision(at: now, throttled: false, startsEpisode: false) }
        let inWindow = h.recent.filter { $0 > now.addingTimeInterval(-window) }.count
        guard inWindow >= burst, let last = h.recent.last else { return Decision(at: now, throttled: false, startsEpisode: false) }
        let delay = min(cap, base * pow(2, Double(h.doublings)))
        return Decision(at: max(now, last.addingTimeInterval(delay)), throttled: true, startsEpisode: !h.throttled)
    }

    /// Records a repair made under `decision`.
    mutating func record(_ key: Key, at time: Date, decision: Decision) {
        var h = history[key] ?? History()
        h.recent.append(time)
        if h.recent.count > burst { h.recent.removeFirst(h.recent.count - burst) }
        if decision.throttled {
            h.doublings += 1
            h.throttled = true
        } else {
            h.doublings = 0
            h.throttled = false
        }
        history[key] = h
    }

    /// Forgets objects with no repair in the window (bounded memory over many objects).
    mutating func prune(now: Date) {
        history = history.filter { _, h in
            h.throttled || (h.recent.last.map { $0 > now.addingTimeInterval(-window) } ?? false)
        }
    }
}

/// Retries of a failed repair (a 403, an unreachable API server): 1 s, 2 s, 4 s …
/// capped at 5 minutes, reset by the next success.
struct FailureBackoff<Key: Hashable> {
    var base: TimeInterval = 1
    var cap: TimeInterval = 300
    private var failures: [Key: Int] = [:]

    mutating func failed(_ key: Key) -> TimeInterval {
        let n = failures[key, default: 0]
        failures[key] = n + 1
        return min(cap, base * pow(2, Double(min(n, 30))))
    }

    mutating func succeeded(_ key: Key) { failures[key] = nil }
    func failureCount(_ key: Key) -> Int { failures[key, default: 0] }
}
