import Foundation

extension RepairRateLimiter {
    /// SPEC §6's gate before a repair: the decision to record with it, and the
    /// deferral to return instead when it must wait (with `episode` once per fight).
    func gate(_ key: Key, now: Date, episode: @autoclosure () -> RepairReport) -> (decision: Decision, deferred: RepairOutcome?) {
        let d = decide(key, now: now)
        guard d.at > now else { return (d, nil) }
        return (d, .throttled(until: d.at, episode: d.startsEpisode ? episode() : nil))
    }
}
