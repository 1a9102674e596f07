import Foundation
import KubeClient

/// The credentials a Pod's `imagePullSecrets` offer, matched to an image as the kubelet does
/// (pkg/credentialprovider/keyring.go `BasicDockerKeyring`, secrets.go `MakeDockerKeyring`,
/// config.go for the two Secret formats).
///
/// Every entry of every Secret is added under its registry key (scheme stripped; the Docker
/// Hub v1 URL is `docker.io`); keys are tried longest-first (the index sorted in reverse), and
/// a key matches an image when its host matches (`*` globs a DNS label, same number of labels,
/// same port) and its path is a string prefix of the image's path. `Lookup` returns every
/// matching credential in that order, several Secrets with the same key in Secret order.
struct DockerKeyring: Sendable {
    struct Credential: Sendable, Equatable {
        var key: String
        var username: String
        var password: String
    }

    private var entries: [String: [Credential]] = [:]
    private var index: [String] = []

    init(pullSecrets: [JSONValue]) {
        for secret in pullSecrets {
            let data = secret["data"]?.objectValue ?? [:]
            func decoded(_ key: String) -> JSONValue? {
                guard let b64 = data[key]?.stringValue, let raw = Data(base64Encoded: b64) else { return nil }
                return try? JSONValue.parse(Array(raw))
            }
            // kubernetes.io/dockerconfigjson has {"auths":{…}}; the legacy kubernetes.io/dockercfg is the map itself.
            let auths = decoded(".dockerconfigjson")?["auths"]?.objectValue ?? decoded(".dockercfg")?.objectValue ?? [:]
            for (location, entry) in auths.sorted(by: { $0.key < $1.key }) {
                var username = entry["username"]?.stringValue ?? ""
                var password = entry["password"]?.stringValue ?? ""
                // An `auth` field wins over username/password (config.go `DockerConfigEntry.UnmarshalJSON`).
                if let auth = entry["auth"]?.stringValue, !auth.isEmpty {
                    guard let raw = Data(base64Encoded: auth), let text = String(data: raw, encoding: .utf8), let colon = text.firstIndex(of: ":") else { continue }
                    username = String(text[..<colon])
                    password = String(text[text.index(after: colon)...])
                }
                add(location: location, username: username, password: password)
            }
        }
    }

    private mutating func add(location: String, username: String, password: String) {
        var key = location
        for scheme in ["https://", "http://"] where key.hasPrefix(scheme) { key.removeFirst(scheme.count) }
        // The Docker Hub v1 index URL stands for docker.io (keyring.go `defaultRegistryKey`).
        if key == "index.docker.io/v1/" || key == "index.docker.io/v1" || key == "index.docker.io" { key = "docker.io" }
        if key.hasSuffix("/") { key.removeLast() }
        if entries[key] == nil { index.append(key) }
        entries[key, default: []].append(Credential(key: key, username: username, password: password))
        index.sort(by: >)
    }

    /// The credentials for `repository` (`host/path`, without tag or digest), most specific key first.
    func lookup(_ repository: String) -> [Credential] {
        index.filter { Self.matches(key: $0, repository: repository) }.flatMap { entries[$0] ?? [] }
    }

    /// keyring.go `URLsMatch`: host labels glob-matched one by one, port equal, path a prefix.
    static func matches(key: String, repository: String) -> Bool {
        func split(_ s: String) -> (host: String, port: String, path: String) {
            let slash = s.firstIndex(of: "/") ?? s.endIndex
            let hostPort = s[..<slash]
            let path = String(s[slash...])
            if let colon = hostPort.lastIndex(of: ":") { return (String(hostPort[..<colon]), String(hostPort[hostPort.index(after: colon)...]), path) }
            return (String(hostPort), "", path)
        }
        let k = split(key), t = split(repository)
        guard k.port == t.port else { return false }
        let kl = k.host.split(separator: ".", omittingEmptySubsequences: false), tl = t.host.split(separator: ".", omittingEmptySubsequences: false)
        guard kl.count == tl.count else { return false }
        for (g, v) in zip(kl, tl) where !glob(String(g), String(v)) { return false }
        return t.path.hasPrefix(k.path)
    }

    /// `filepath.Match` for one DNS label: `*` any run, `?` one character.
    private static func glob(_ pattern: String, _ value: String) -> Bool {
        let p = Array(pattern), v = Array(value)
        func go(_ i: Int, _ j: Int) -> Bool {
            if i == p.count { return j == v.count }
            if p[i] == "*" { return (j...v.count).contains { go(i + 1, $0) } }
            guard j < v.count, p[i] == "?" || p[i] == v[j] else { return false }
            return go(i + 1, j + 1)
        }
        return go(0, 0)
    }
}
