import Foundation
import KubeClient
import Logging

/// The result of reconciling one key.
enum RepairOutcome: Sendable {
    /// Nothing to do.
    case healthy
    /// A write restored the object.
    case repaired(RepairReport)
    /// A repair is due but the object's rate limit defers it; `episode` is set
    /// on the first deferral of a fight with another writer.
    case throttled(until: Date, episode: RepairReport?)
    /// The repair could not be made; retried with backoff. `RepairFailed` names why.
    case failed(RepairReport)
    /// Other keys must be reconciled first (a stuck Pod's namespace plumbing): the queue
    /// takes them, and the watch that sees them change brings this key back.
    case waiting(on: [RepairKey])
}

/// A failed write, turned into a message that says what to do.
enum RepairError {
    static func describe(_ error: any Error, verb: String, object: String) -> String {
        guard let e = error as? KubeClientError else { return "\(verb) \(object): \(error)" }
        if e.isForbidden {
            // The API server's message names user, verb, resource and namespace; keep it whole.
            return "\(verb) \(object) is forbidden: \(e.status?.message ?? e.message) — grant the operator's Role this permission (kubetrace-operator manifest renders it)"
        }
        return "\(verb) \(object): \(e.message)"
    }

    static func isRetryableConflict(_ error: any Error) -> Bool {
        guard let e = error as? KubeClientError else { return false }
        // 409 for a stale resourceVersion; 422 for a JSON Patch whose `test` failed.
        return e.isConflict || e.isAlreadyExists || (e.isInvalid && (e.status?.message ?? e.message).contains("testing value"))
    }
}

/// Runs `write` until it succeeds, at most five times while it fails with a conflict
/// (409, or a JSON Patch `test` that no longer holds); each attempt starts from a
/// fresh read. Returns what the successful attempt returned (false or nil: nothing was needed).
func retryingConflicts<T>(isolation: isolated (any Actor)? = #isolation, _ write: (_ attempt: Int) async throws -> T) async throws -> T {
    var attempt = 1
    while true {
        do {
            return try await write(attempt)
        } catch where RepairError.isRetryableConflict(error) && attempt < 5 {
            attempt += 1
        }
    }
}

extension RepairRateLimiter {
    /// SPEC §6's gate before a repair: the decision to record with it, and the
    /// deferral to return instead when it must wait (with `episode` once per fight).
    func gate(_ key: Key, now: Date, episode: @autoclosure () -> RepairReport) -> (decision: Decision, deferred: RepairOutcome?) {
        let d = decide(key, now: now)
        guard d.at > now else { return (d, nil) }
        return (d, .throttled(until: d.at, episode: d.startsEpisode ? episode() : nil))
    }
}

/// Shared by the handlers: the client, the names, and a logger.
struct RepairContext: Sendable {
    let client: KubeClient
    let config: RepairConfiguration
    let logger: Logger

    var names: ObjectNames { config.names }
    var operatorNamespace: String { config.names.namespace }

    func objectMeta(_ name: String, namespace: String) -> ObjectMeta {
        ObjectMeta(name: name, namespace: namespace, labels: config.managedLabels)
    }

    func isManaged(_ labels: [String: String]?) -> Bool {
        labels?[RepairConfiguration.managedByKey] == RepairConfiguration.managedByValue
    }
}
