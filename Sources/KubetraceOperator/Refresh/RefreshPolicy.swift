public import Foundation
import KubeClient

/// When to refresh a credential (SPEC §5), as pure functions of the facts.
public struct RefreshPolicy: Sendable {
    /// `--safety-margin`: how long before expiry a credential of unknown issue time is refreshed.
    public var safetyMargin: TimeInterval = 300
    /// `--refresh-interval`: for credentials with no known expiry.
    public var refreshInterval: TimeInterval = 3600
    /// Jitter is at most this fraction of the lifetime.
    public var maxJitterFraction = 0.05
    public var minBackoff: TimeInterval = 1
    public var maxBackoff: TimeInterval = 300
    /// Warn when a credential has less than this fraction of its lifetime left.
    public var warnFraction = 0.1

    public init() {}

    /// The refresh time: `issued + 0.8 × lifetime` minus a jitter of at most 5 % of
    /// the lifetime (earlier, never later); with no issue time, `expiry − margin`
    /// where the margin is capped at 20 % of the remaining lifetime; with no
    /// expiry, `now + refreshInterval`. `random` is in [0, 1).
    public func nextRefresh(issuedAt: Date?, expiresAt: Date?, now: Date, random: Double) -> Date {
        guard let expiresAt else { return now.addingTimeInterval(refreshInterval) }
        if let issuedAt, issuedAt < expiresAt {
            let lifetime = expiresAt.timeIntervalSince(issuedAt)
            let at = issuedAt.addingTimeInterval(0.8 * lifetime - random * maxJitterFraction * lifetime)
            return max(at, now)
        }
        let remaining = expiresAt.timeIntervalSince(now)
        guard remaining > 0 else { return now }
        let margin = min(safetyMargin, 0.2 * remaining)
        return expiresAt.addingTimeInterval(-margin)
    }

    /// The retry after the `failures`-th consecutive failure: exponential from
    /// 1 s with full jitter, capped at 5 min, and always before the expiry
    /// (at most half of the time left), so a failing refresh keeps trying in time.
    public func retryDelay(failures: Int, expiresAt: Date?, now: Date, random: Double, retryAfter: TimeInterval? = nil) -> TimeInterval {
        let cap = min(maxBackoff, minBackoff * pow(2, Double(max(failures - 1, 0))))
        var delay = max(minBackoff, random * cap)
        if let retryAfter { delay = max(delay, retryAfter) }
        if let expiresAt {
            let left = expiresAt.timeIntervalSince(now)
            if left > 2 * minBackoff { delay = min(delay, left / 2) } else { delay = minBackoff }
        }
        return delay
    }

    /// Whether to warn (log, Event, metric) that expiry is near.
    public func expiringSoon(issuedAt: Date?, expiresAt: Date?, now: Date) -> Bool {
        guard let expiresAt else { return false }
        let left = expiresAt.timeIntervalSince(now)
        if let issuedAt, issuedAt < expiresAt { return left < warnFraction * expiresAt.timeIntervalSince(issuedAt) }
        return left < safetyMargin / 2
    }
}

/// Where a credential's expiry comes from, in the order the sources know best.
public enum ExpiryDiscovery {
    /// The earliest of the known facts: API `expiresAt`, JWT `exp`, annotation, certificate `notAfter`.
    public static func expiry(apiExpiresAt: Date? = nil, jwt: String? = nil, annotation: String? = nil, certificateNotAfter: Date? = nil) -> Date? {
        let candidates: [Date?] = [apiExpiresAt, jwt.flatMap { JWT.expiry(of: $0) }, annotation.flatMap(RFC3339.parse), certificateNotAfter]
        return candidates.compactMap { $0 }.min()
    }
}
