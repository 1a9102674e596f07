import Foundation

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
