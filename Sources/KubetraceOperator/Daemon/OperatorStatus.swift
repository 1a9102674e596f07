import Foundation
import Synchronization

/// What `STATUS=` and the logs summarise: the credentials' health and next refresh.
public final class OperatorStatus: Sendable {
    struct Credential { var ok: Bool; var next: Date? }
    private let credentials = Mutex<[String: Credential]>([:])

    public init() {}

    func report(_ name: String, ok: Bool, next: Date?) {
        credentials.withLock { $0[name] = Credential(ok: ok, next: next) }
    }

    /// "watching 5 kinds, 2 credentials ok, next refresh in 41m"
    func summary(watching kinds: Int, leading: Bool?, now: Date = Date()) -> String {
        let creds = credentials.withLock { $0 }
        var parts = ["watching \(kinds) kinds"]
        if let leading { parts.append(leading ? "leader" : "standby") }
        if !creds.isEmpty {
            let ok = creds.values.filter(\.ok).count
            let noun = creds.count == 1 ? "credential" : "credentials"
            parts.append(ok == creds.count ? "\(ok) \(noun) ok" : "\(ok) of \(creds.count) \(noun) ok")
            if let next = creds.values.compactMap(\.next).min() {
                parts.append("next refresh in \(CredentialLoop.human(next.timeIntervalSince(now)))")
            }
        }
        return parts.joined(separator: ", ")
    }
}
