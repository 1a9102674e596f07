import Foundation
import Synchronization

/// Faults a test can switch on: failed requests, added latency. (Dropping
/// watches, compacting history, restarting and the HTTP/2 connection faults —
/// `goAway()`, `resetStream(watchPathPrefix:)` — live on `DevCluster`.)
public final class FaultInjector: Sendable {
    public struct FailureRule: Sendable {
        public var remaining: Int
        public var status: Int
        public var retryAfterSeconds: Int?
        /// Answer as the API server's max-in-flight filter does: plain text, not a Status.
        public var plainText: Bool
        public var method: String?
        public var pathPrefix: String?
        /// The Status message (default: what the API server says for an injected fault).
        public var message: String?
        public init(count: Int, status: Int, retryAfterSeconds: Int? = nil, plainText: Bool = false, method: String? = nil, pathPrefix: String? = nil, message: String? = nil) {
            self.remaining = count
            self.status = status
            self.retryAfterSeconds = retryAfterSeconds
            self.plainText = plainText
            self.method = method
            self.pathPrefix = pathPrefix
            self.message = message
        }
    }

    private struct State {
        var rules: [FailureRule] = []
        var latency: Duration = .zero
        var exemptUserAgentPrefixes: [String] = []
    }
    private let state = Mutex(State())

    /// Fails the next `rule.remaining` requests that match.
    public func failNext(_ rule: FailureRule) { state.withLock { $0.rules.append(rule) } }
    public func setLatency(_ d: Duration) { state.withLock { $0.latency = d } }
    /// Faults clear; exemptions stay.
    public func clear() { state.withLock { $0 = State(exemptUserAgentPrefixes: $0.exemptUserAgentPrefixes) } }
    /// Requests whose `User-Agent` starts with one of these are never failed or delayed: the
    /// chaos runner's own writers and observers must not use up the faults meant for the operator.
    public func exempt(userAgentPrefix: String) { state.withLock { $0.exemptUserAgentPrefixes.append(userAgentPrefix) } }

    func isExempt(userAgent: String?) -> Bool {
        guard let userAgent else { return false }
        return state.withLock { $0.exemptUserAgentPrefixes.contains { userAgent.hasPrefix($0) } }
    }

    func latency() -> Duration { state.withLock { $0.latency } }

    /// The failure to answer this request with, consuming one from its rule.
    func takeFailure(method: String, path: String) -> FailureRule? {
        state.withLock { s in
            guard let i = s.rules.firstIndex(where: { r in
                r.remaining > 0 && (r.method.map { $0 == method } ?? true) && (r.pathPrefix.map { path.hasPrefix($0) } ?? true)
            }) else { return nil }
            s.rules[i].remaining -= 1
            let r = s.rules[i]
            if s.rules[i].remaining == 0 { s.rules.remove(at: i) }
            return r
        }
    }
}
