import KubeClient
import Synchronization

/// One value shared between the watch that keeps it and the loops that read it.
final class CachedValue<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    func get() -> Value? { value.withLock { $0 } }
    func set(_ v: Value?) { value.withLock { $0 = v } }
}

/// What this process last wrote into each managed Secret's key, so the watch can tell its
/// own writes from someone else's.
final class OwnWrites: Sendable {
    private let content = Mutex<[String: SecretBytes]>([:])
    /// Called before writing `value` to the managed key of Secret `name`.
    func expect(_ name: String, _ value: SecretBytes) { content.withLock { $0[name] = value } }
    func isOwn(_ name: String, _ value: SecretBytes?) -> Bool { content.withLock { $0[name] } == value && value != nil }
}

/// The credential loops now running, for a reload (SIGHUP) to poke.
final class RunningLoops: Sendable {
    private let loops = Mutex<[CredentialLoop]>([])
    func set(_ value: [CredentialLoop]) { loops.withLock { $0 = value } }
    var current: [CredentialLoop] { loops.withLock { $0 } }
}
