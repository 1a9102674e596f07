import Foundation
import KubeClient

/// A volume the kubelet could not set up: the `FailedMount` event's text
/// (`MountVolume.SetUp failed for volume "v" : <message>`, pkg/volume/util/operationexecutor).
struct VolumeSetUpError: Error, Sendable, Equatable {
    var volume: String
    var message: String
    var eventMessage: String { "MountVolume.SetUp failed for volume \"\(volume)\" : \(message)" }
}

/// One projected service-account token the kubelet holds (pkg/kubelet/token/token_manager.go).
struct ProjectedToken: Sendable {
    var token: String
    var issuedAt: Date
    var expiry: Date
    var expirationSeconds: Int

    /// `requiresRefresh` without its jitter (up to 10 s): refresh once 80 % of the lifetime has
    /// passed, or 24 h after issue (`maxTTL`), whichever comes first.
    func refreshAt() -> Date {
        let eighty = expiry.addingTimeInterval(-TimeInterval(expirationSeconds * 20 / 100))
        return min(eighty, issuedAt.addingTimeInterval(24 * 3600))
    }
}

/// The volumes of one Pod on this node: their directories under the kubelet root, their
/// contents and mounts (pkg/kubelet/volumemanager, the plugins of pkg/volume).
struct PodVolumes: Sendable {
    /// `<root>/pods/<uid>` (pkg/kubelet/kubelet_getters.go `getPodDir`).
    let podDirectory: String
    /// Mints a token for the Pod's service account: (account uid, audiences, lifetime, now) → token, expiry.
    let mint: @Sendable (_ serviceAccountUID: String, _ audiences: [String], _ lifetime: Int, _ now: Date) throws -> (String, Date)
    /// Tokens already issued, by volume/path, reused until `refreshAt`.
    private(set) var tokens: [String: ProjectedToken] = [:]
    private var mounted: Set<String> = []
    private var prepared: Set<String> = []

    init(podDirectory: String, mint: @escaping @Sendable (_ serviceAccountUID: String, _ audiences: [String], _ lifetime: Int, _ now: Date) throws -> (String, Date)) {
        self.podDirectory = podDirectory
        self.mint = mint
    }

    /// The API server's audience when a projection names none (`--api-audiences` defaults to the issuer).
    static let defaultAudience = ServiceAccountTokens.issuer

    /// Plugin directory names (`kubernetes.io~secret` …), pkg/volume plugin names escaped by
    /// `utilstrings.EscapeQualifiedName`.
    static func plugin(of volume: JSONValue) -> String? {
        for (key, plugin) in [("secret", "kubernetes.io~secret"), ("configMap", "kubernetes.io~configmap"), ("projected", "kubernetes.io~projected"),
                              ("downwardAPI", "kubernetes.io~downward-api"), ("emptyDir", "kubernetes.io~empty-dir")] where volume[key] != nil {
            return plugin
        }
        return nil
    }

    /// Where a volume lives on the host (`getPodVolumeDir`), or the host path of a hostPath volume.
    func hostPath(of volume: JSONValue) -> String? {
        let name = volume["name"]?.stringValue ?? ""
        if let path = volume["hostPath"]?["path"]?.stringValue { return path }
        guard let plugin = Self.plugin(of: volume) else { return nil }
        return "\(podDirectory)/volumes/\(plugin)/\(name)"
    }

    /// When a held token next needs refreshing.
    var nextRefresh: Date? { tokens.values.map { $0.refreshAt() }.min() }

    /// Sets up (first call) or refreshes (later calls) every volume of `pod`: the tmpfs and
    /// directories, then the files through `AtomicWriter` with the Pod's `fsGroup`. Returns
    /// whether any volume's content changed.
    @discardableResult
    mutating func sync(pod: JSONValue, objects: PodObjects, podIP: String, hostIP: String, now: Date) throws(VolumeSetUpError) -> Bool {
        let fsGroup = PodSecurity.fsGroup(pod: pod)
        var changed = false
        for volume in pod["spec"]?["volumes"]?.arrayValue ?? [] {
            let name = volume["name"]?.stringValue ?? ""
            guard let dir = hostPath(of: volume) else { continue }
            do {
                try prepare(volume, at: dir)
            } catch {
                throw VolumeSetUpError(volume: name, message: "\(error)")
            }
            guard let payload = try payload(volume, pod: pod, objects: objects, podIP: podIP, hostIP: hostIP, now: now) else { continue }
            do {
                if try AtomicWriter.write(payload, to: dir, fsGroup: fsGroup) { changed = true }
            } catch {
                throw VolumeSetUpError(volume: name, message: "\(error)")
            }
        }
        return changed
    }

    /// The directory (and tmpfs) of a volume, once: secret and projected volumes are tmpfs (the
    /// plugins wrap an emptyDir with medium Memory), so is an emptyDir with medium Memory;
    /// configMap and downwardAPI are plain directories; emptyDir is 0777 (pkg/volume/emptydir).
    private mutating func prepare(_ volume: JSONValue, at dir: String) throws {
        guard !prepared.contains(dir) else { return }
        let fm = FileManager.default
        if let hostPath = volume["hostPath"] {
            let type = hostPath["type"]?.stringValue ?? ""
            if type == "DirectoryOrCreate" { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755]) }
            prepared.insert(dir)
            return
        }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        // Traversable by the container's user; AtomicWriter adds the fsGroup bits.
        chmod(dir, 0o755)
        let memory = volume["secret"] != nil || volume["projected"] != nil || volume["emptyDir"]?["medium"]?.stringValue == "Memory"
        if memory {
            try VolumeMounts.mountTmpfs(at: dir)
            mounted.insert(dir)
        }
        if volume["emptyDir"] != nil { chmod(dir, 0o777) }
        prepared.insert(dir)
    }

    /// What a volume holds (nil: emptyDir and hostPath, which the kubelet never writes).
    /// pkg/volume/secret/secret.go `MakePayload`, configmap.go `MakePayload`,
    /// downwardapi.go `CollectData`, projected.go `collectData`.
    private mutating func payload(_ volume: JSONValue, pod: JSONValue, objects: PodObjects, podIP: String, hostIP: String, now: Date) throws(VolumeSetUpError) -> [String: AtomicWriter.File]? {
        let name = volume["name"]?.stringValue ?? ""
        func fail(_ message: String) -> VolumeSetUpError { VolumeSetUpError(volume: name, message: message) }
        if let secret = volume["secret"] {
            let mode = secret["defaultMode"]?.intValue ?? 0o644
            let secretName = secret["secretName"]?.stringValue ?? ""
            guard let data = objects.secretData(secretName) else {
                if secret["optional"] == .bool(true) { return [:] }
                throw fail("secret \"\(secretName)\" not found")
            }
            return try Self.keyed(data, items: secret["items"], defaultMode: mode, optional: secret["optional"] == .bool(true)) { fail("references non-existent secret key: \($0)") }
        }
        if let cm = volume["configMap"] {
            let mode = cm["defaultMode"]?.intValue ?? 0o644
            let cmName = cm["name"]?.stringValue ?? ""
            guard let data = objects.configMapData(cmName) else {
                if cm["optional"] == .bool(true) { return [:] }
                throw fail("configmap \"\(cmName)\" not found")
            }
            return try Self.keyed(data, items: cm["items"], defaultMode: mode, optional: cm["optional"] == .bool(true)) { fail("configmap references non-existent config key: \($0)") }
        }
        if let downward = volume["downwardAPI"] {
            let mode = downward["defaultMode"]?.intValue ?? 0o644
            return try Self.downward(downward["items"], defaultMode: mode, pod: pod, podIP: podIP, hostIP: hostIP, fail: fail)
        }
        if let projected = volume["projected"] {
            let mode = projected["defaultMode"]?.intValue ?? 0o644
            var out: [String: AtomicWriter.File] = [:]
            for source in projected["sources"]?.arrayValue ?? [] {
                if let s = source["secret"] {
                    let secretName = s["name"]?.stringValue ?? ""
                    guard let data = objects.secretData(secretName) else {
                        if s["optional"] == .bool(true) { continue }
                        throw fail("secret \"\(secretName)\" not found")
                    }
                    out.merge(try Self.keyed(data, items: s["items"], defaultMode: mode, optional: s["optional"] == .bool(true)) { fail("references non-existent secret key: \($0)") }) { _, b in b }
                } else if let c = source["configMap"] {
                    let cmName = c["name"]?.stringValue ?? ""
                    guard let data = objects.configMapData(cmName) else {
                        if c["optional"] == .bool(true) { continue }
                        throw fail("configmap \"\(cmName)\" not found")
                    }
                    out.merge(try Self.keyed(data, items: c["items"], defaultMode: mode, optional: c["optional"] == .bool(true)) { fail("configmap references non-existent config key: \($0)") }) { _, b in b }
                } else if let d = source["downwardAPI"] {
                    out.merge(try Self.downward(d["items"], defaultMode: mode, pod: pod, podIP: podIP, hostIP: hostIP, fail: fail)) { _, b in b }
                } else if let t = source["serviceAccountToken"] {
                    let path = t["path"]?.stringValue ?? "token"
                    let seconds = t["expirationSeconds"]?.intValue ?? 3600
                    let audience = t["audience"]?.stringValue ?? ""
                    let key = "\(name)/\(path)"
                    var held = tokens[key]
                    if held == nil || now >= held!.refreshAt() {
                        guard let saUID = objects.serviceAccountUID else {
                            // The kubelet's TokenRequest for an account that does not exist.
                            throw fail("failed to fetch token: serviceaccounts \"\(objects.serviceAccountName)\" not found")
                        }
                        do {
                            let (token, expiry) = try mint(saUID, audience.isEmpty ? [Self.defaultAudience] : [audience], seconds, now)
                            held = ProjectedToken(token: token, issuedAt: now, expiry: expiry, expirationSeconds: seconds)
                            tokens[key] = held
                        } catch {
                            throw fail("failed to fetch token: \(error)")
                        }
                    }
                    out[path] = AtomicWriter.File(bytes: Array(held!.token.utf8), mode: UInt16(mode))
                }
            }
            return out
        }
        return nil
    }

    /// Keys to files: every key at its own name, or only `items` (key → path, per-item mode); a
    /// missing item key fails unless the source is optional.
    private static func keyed(_ data: [String: [UInt8]], items: JSONValue?, defaultMode: Int, optional: Bool,
                              missing: (String) -> VolumeSetUpError) throws(VolumeSetUpError) -> [String: AtomicWriter.File] {
        var out: [String: AtomicWriter.File] = [:]
        guard let items = items?.arrayValue, !items.isEmpty else {
            for (k, v) in data { out[k] = AtomicWriter.File(bytes: v, mode: UInt16(defaultMode)) }
            return out
        }
        for item in items {
            let key = item["key"]?.stringValue ?? ""
            guard let bytes = data[key] else {
                if optional { continue }
                throw missing(key)
            }
            out[item["path"]?.stringValue ?? key] = AtomicWriter.File(bytes: bytes, mode: UInt16(item["mode"]?.intValue ?? defaultMode))
        }
        return out
    }

    private static func downward(_ items: JSONValue?, defaultMode: Int, pod: JSONValue, podIP: String, hostIP: String,
                                 fail: (String) -> VolumeSetUpError) throws(VolumeSetUpError) -> [String: AtomicWriter.File] {
        var out: [String: AtomicWriter.File] = [:]
        for item in items?.arrayValue ?? [] {
            let path = item["path"]?.stringValue ?? ""
            var value = ""
            if let field = item["fieldRef"]?["fieldPath"]?.stringValue {
                guard let v = PodEnvironment.fieldValue(field, pod: pod, podIP: podIP, hostIP: hostIP) else {
                    throw fail("error while collecting data: unsupported fieldPath: \(field)")
                }
                value = v
            } else if item["resourceFieldRef"] != nil {
                value = "0"
            }
            out[path] = AtomicWriter.File(bytes: Array(value.utf8), mode: UInt16(item["mode"]?.intValue ?? defaultMode))
        }
        return out
    }

    /// Unmounts every tmpfs and removes the Pod's volume directories (pkg/kubelet/kubelet_volumes.go
    /// `cleanupOrphanedPodDirs` after the volume manager's TearDown).
    mutating func tearDown() {
        VolumeMounts.unmountAll(under: podDirectory)
        for dir in mounted { VolumeMounts.unmount(dir) }
        mounted = []
        prepared = []
        try? FileManager.default.removeItem(atPath: podDirectory)
    }
}
