import Foundation
import KubeClient
import KubeTLS

/// The backup's plaintext: a `v1 List` of the Secrets, so `age -d -i key FILE | kubectl apply -f -` also restores it.
struct SecretBackup: Codable {
    var apiVersion = "v1"
    var kind = "List"
    var items: [Secret]

    static let droppedAnnotations: Set<String> = ["kubectl.kubernetes.io/last-applied-configuration"]

    /// Only what recreating the Secret needs: no uid, resourceVersion, timestamps or managed fields.
    static func portable(_ s: Secret) -> Secret {
        var meta = ObjectMeta(name: s.metadata.name, namespace: s.metadata.namespace, labels: s.metadata.labels,
                              annotations: s.metadata.annotations?.filter { !droppedAnnotations.contains($0.key) })
        if meta.annotations?.isEmpty == true { meta.annotations = nil }
        var out = Secret(metadata: meta, type: s.type, data: s.data)
        out.immutable = s.immutable
        return out
    }
}

/// `kubetrace-operator backup`: the operator's credentials, encrypted to age recipients.
public struct BackupRequest: Sendable, ClusterCommand {
    public init() {}
    public var cluster = ClusterSelection()
    public var recipient: [String] = []
    public var output: String = ""

    public func run() async throws {
        guard !recipient.isEmpty else { throw CLIError.configuration("--recipient: at least one age recipient (age1…) is required") }
        var recipients: [AgeRecipient] = []
        for r in recipient {
            // Only a public age1… value is echoed: whatever else was passed may be a secret.
            let shown = r.lowercased().hasPrefix("age1") ? " \"\(r.prefix(70))\"" : ""
            do { recipients.append(try AgeRecipient(parsing: r)) } catch { throw CLIError.configuration("--recipient\(shown): \(error)") }
        }
        var connection = try cluster.loadConnection()
        var names = ObjectNames()
        if let ns = cluster.namespace ?? ProcessInfo.processInfo.environment["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        connection.namespace = names.namespace
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")

        var items: [Secret] = []
        var missing: [String] = []
        for name in [names.operatorSecret, names.registrySecret, names.kubeconfigSecret] {
            do {
                items.append(SecretBackup.portable(try await client.get(Secret.self, namespace: names.namespace, name: name)))
            } catch let e as KubeClientError where e.status?.code == 404 {
                missing.append(name)
            } catch let e as KubeClientError where e.code == .api {
                throw CLIError.runtime("reading Secret \(names.namespace)/\(name): \(Doctor.describe(e))")
            }
        }
        guard !items.isEmpty else { throw CLIError.runtime("nothing to back up: none of the Secrets \(missing.joined(separator: ", ")) exists in \(names.namespace)") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var plaintext = [UInt8](try encoder.encode(SecretBackup(items: items)))
        defer { Crypto.cleanse(&plaintext) }
        let sealed = try Age.encrypt(plaintext, to: recipients)
        if output == "-" {
            FileHandle.standardOutput.write(Data(sealed))
        } else {
            try writePrivately(Data(sealed), to: output)
        }
        var note = "kubetrace-operator: backed up \(items.map { "\(names.namespace)/\($0.metadata.name ?? "")" }.joined(separator: ", ")) to \(output == "-" ? "stdout" : output)"
        note += " for \(recipients.count) recipient\(recipients.count == 1 ? "" : "s")"
        if !missing.isEmpty { note += "; not found (skipped): \(missing.joined(separator: ", "))" }
        FileHandle.standardError.write(Data((note + "\n").utf8))
    }
}

/// `kubetrace-operator restore`: decrypts a backup and puts the Secrets back without overwriting newer ones.
public struct RestoreRequest: Sendable, ClusterCommand {
    public init() {}
    public var cluster = ClusterSelection()
    public var identity: String = ""
    public var overwrite = false
    public var file: String = ""

    enum Action: String { case created, unchanged, kept, replaced, conflict }

    /// Three Secrets of at most 1 MiB each, base64 in JSON, perhaps armored: far below this.
    static let maxBackupBytes = 16 << 20
    /// An identity file holds a few keys and comments.
    static let maxIdentityBytes = 64 << 10

    public func run() async throws {
        var keyData: [UInt8]
        switch readBounded(identity, limit: Self.maxIdentityBytes) {
        case .unreadable: throw CLIError.configuration("--identity: cannot read \(identity)")
        case .tooLarge: throw CLIError.configuration("--identity \(identity): larger than \(Self.maxIdentityBytes >> 10) KiB; an age identity file is a few lines")
        case .bytes(let b): keyData = b
        }
        defer { Crypto.cleanse(&keyData) }
        let identities: [AgeIdentity]
        do { identities = try AgeIdentity.parseFile(String(decoding: keyData, as: UTF8.self)) } catch {
            throw CLIError.configuration("--identity \(identity): \(error)")
        }
        let sealed: [UInt8]
        switch readBounded(file, limit: Self.maxBackupBytes) {
        case .unreadable: throw CLIError.configuration("\(file): cannot read")
        case .tooLarge: throw CLIError.configuration("\(file): larger than \(Self.maxBackupBytes >> 20) MiB; a kubetrace-operator backup is far smaller (not a backup?)")
        case .bytes(let b): sealed = b
        }
        var plaintext: [UInt8]
        do { plaintext = try Age.decrypt(sealed, identities: identities) } catch let e as Age.Failure {
            throw CLIError.configuration("\(file): \(e)\(e == .noMatchingIdentity ? " (tried \(identities.count) identit\(identities.count == 1 ? "y" : "ies") from \(identity))" : "")")
        }
        defer { Crypto.cleanse(&plaintext) }
        let backup: SecretBackup
        do { backup = try JSONDecoder().decode(SecretBackup.self, from: Data(plaintext)) } catch {
            throw CLIError.configuration("\(file): decrypted, but not a kubetrace-operator backup (a v1 List of Secrets)")
        }
        var names = ObjectNames()
        let env = ProcessInfo.processInfo.environment
        let targetNamespace = cluster.namespace ?? env["POD_NAMESPACE"]
        if let ns = targetNamespace, !ns.isEmpty { names.namespace = ns }
        let allowed: Set<String> = [names.operatorSecret, names.registrySecret, names.kubeconfigSecret]
        for (i, item) in backup.items.enumerated() {
            guard item.kind == nil || item.kind == "Secret", let name = item.metadata.name, allowed.contains(name) else {
                throw CLIError.configuration("\(file): items[\(i)] is not one of the operator's Secrets (\(allowed.sorted().joined(separator: ", ")))")
            }
        }
        var connection = try cluster.loadConnection()
        connection.namespace = names.namespace
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")

        var results: [(String, Action, String)] = []
        for item in backup.items {
            var desired = SecretBackup.portable(item)
            let ns = (targetNamespace?.isEmpty == false ? targetNamespace : nil) ?? item.metadata.namespace ?? names.namespace
            desired.metadata.namespace = ns
            let name = desired.metadata.name ?? ""
            let (action, detail) = try await apply(desired, client: client)
            results.append(("\(ns)/\(name)", action, detail))
        }
        var text = ""
        for (object, action, detail) in results { text += "\(action.rawValue) \(object)\(detail.isEmpty ? "" : " (\(detail))")\n" }
        FileHandle.standardOutput.write(Data(text.utf8))
        if results.contains(where: { $0.1 == .conflict }) { throw CommandExit(ExitStatus.runtimeFailure) }
    }

    /// One Secret: created when missing, left alone when equal, replaced only with
    /// `--overwrite` and only if nobody changed it since it was read.
    private func apply(_ desired: Secret, client: KubeClient) async throws -> (Action, String) {
        let ns = desired.metadata.namespace ?? "", name = desired.metadata.name ?? ""
        let existing: Secret
        do {
            existing = try await client.get(Secret.self, namespace: ns, name: name)
        } catch let e as KubeClientError where e.status?.code == 404 {
            return try await write("creating", ns, name, done: .created, conflict: "created by someone else meanwhile; run restore again to compare") {
                _ = try await client.create(desired)
            }
        } catch let e as KubeClientError where e.code == .api {
            throw CLIError.runtime("reading Secret \(ns)/\(name): \(Doctor.describe(e))")
        }
        if existing.type == desired.type, (existing.data ?? [:]) == (desired.data ?? [:]) { return (.unchanged, "") }
        guard overwrite else { return (.kept, "differs from the backup; --overwrite replaces it") }
        guard existing.type == desired.type else {
            return (.kept, "its type is \(existing.type ?? "Opaque"), the backup's \(desired.type ?? "Opaque"); a type cannot change: delete it first")
        }
        var replacement = existing
        replacement.data = desired.data
        replacement.metadata.labels = desired.metadata.labels ?? existing.metadata.labels
        return try await write("replacing", ns, name, done: .replaced, conflict: "changed by someone else meanwhile; not overwritten") {
            _ = try await client.update(replacement)
        }
    }

    /// A create or a resourceVersion-guarded update: a 409 is reported, never retried over.
    private func write(_ verb: String, _ ns: String, _ name: String, done: Action, conflict: String, _ body: () async throws -> Void) async throws -> (Action, String) {
        do {
            try await body()
            return (done, "")
        } catch let e as KubeClientError where e.status?.code == 409 {
            return (.conflict, conflict)
        } catch let e as KubeClientError where e.code == .api {
            throw CLIError.runtime("\(verb) Secret \(ns)/\(name): \(Doctor.describe(e))")
        }
    }
}

enum BoundedRead { case unreadable, tooLarge, bytes([UInt8]) }

/// Reads a file (or a pipe, `/dev/stdin`) up to `limit` bytes: one byte more and it stops, so
/// a huge or endless input costs no more than the limit.
func readBounded(_ path: String, limit: Int) -> BoundedRead {
    guard let handle = FileHandle(forReadingAtPath: path) else { return .unreadable }
    defer { try? handle.close() }
    var out: [UInt8] = []
    // Capacity up front: growing would leave copies of a key file in freed memory.
    out.reserveCapacity(min(limit + 1, 1 << 20))
    while out.count <= limit {
        var chunk: Data?
        do { chunk = try handle.read(upToCount: min(1 << 20, limit + 1 - out.count)) } catch { return .unreadable }
        guard let read = chunk, !read.isEmpty else { return .bytes(out) }
        out += read
        Crypto.cleanse(&chunk)
    }
    return .tooLarge
}
