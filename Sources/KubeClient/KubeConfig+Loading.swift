import Foundation
import Yams

extension KubeConfig {
    /// Loads the kubeconfig as kubectl would: `explicitPath` (`--kubeconfig`)
    /// alone, else every file in `$KUBECONFIG` (`:`-separated, missing files
    /// skipped) merged, else `$HOME/.kube/config`.
    public static func load(explicitPath: String?, environment: [String: String]) throws(KubeClientError) -> KubeConfig {
        if let explicitPath, !explicitPath.isEmpty {
            return try parse(file: explicitPath)
        }
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            let paths = list.split(separator: ":").map(String.init).filter { !$0.isEmpty }
            var configs: [KubeConfig] = []
            for p in paths where FileManager.default.fileExists(atPath: p) {
                configs.append(try parse(file: p))
            }
            if configs.isEmpty {
                throw KubeClientError(.configuration, "KUBECONFIG: none of the files it lists exists (\(paths.joined(separator: ", ")))")
            }
            return merged(configs)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = "\(home)/.kube/config"
        guard FileManager.default.fileExists(atPath: path) else {
            throw KubeClientError(.configuration, "no kubeconfig: \(path) does not exist and KUBECONFIG is not set (pass --kubeconfig FILE)")
        }
        return try parse(file: path)
    }

    /// Whether a default kubeconfig would be found (for `make run`'s choice of cluster).
    public static func defaultExists(environment: [String: String]) -> Bool {
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            return list.split(separator: ":").contains { FileManager.default.fileExists(atPath: String($0)) }
        }
        return FileManager.default.fileExists(atPath: "\(environment["HOME"] ?? NSHomeDirectory())/.kube/config")
    }

    /// Parses one kubeconfig file.
    public static func parse(file: String) throws(KubeClientError) -> KubeConfig {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw KubeClientError(.configuration, "kubeconfig \(file): cannot be read (\(Self.reason(error)))")
        }
        let dir = (file as NSString).deletingLastPathComponent
        return try parse(yaml: text, file: file, directory: dir.isEmpty ? "." : dir)
    }

    /// Parses kubeconfig text; `file` names it in errors, `directory` anchors relative paths.
    public static func parse(yaml: String, file: String, directory: String) throws(KubeClientError) -> KubeConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw KubeClientError(.configuration, "kubeconfig \(file): not valid YAML (\(yamlProblem(error)))")
        }
        var config = KubeConfig()
        config.files = [file]
        guard let root else { return config }  // an empty file is an empty config, as in client-go
        let p = FieldReader(file: file, directory: directory)
        guard let top = root.mapping else { throw p.error("", "must be a mapping, found \(kindName(root))") }

        if let v = top["kind"], let kind = v.string, kind != "Config" {
            throw p.error("kind", "must be Config, found \(kind)")
        }
        config.currentContext = try p.string(top["current-context"], "current-context")

        for (i, entry) in try p.sequence(top["clusters"], "clusters").enumerated() {
            let path = "clusters[\(i)]"
            let (name, body) = try p.namedEntry(entry, path: path, bodyKey: "cluster")
            let b = "\(path).cluster"
            var c = Cluster(origin: Origin(file: file, path: b))
            c.server = try p.string(body["server"], "\(b).server")
            c.certificateAuthority = try p.path(body["certificate-authority"], "\(b).certificate-authority")
            c.certificateAuthorityData = try p.base64(body["certificate-authority-data"], "\(b).certificate-authority-data")
            c.insecureSkipTLSVerify = try p.bool(body["insecure-skip-tls-verify"], "\(b).insecure-skip-tls-verify") ?? false
            c.tlsServerName = try p.string(body["tls-server-name"], "\(b).tls-server-name")
            c.proxyURL = try p.string(body["proxy-url"], "\(b).proxy-url")
            if config.clusters[name] == nil { config.clusters[name] = c }
        }
        for (i, entry) in try p.sequence(top["users"], "users").enumerated() {
            let path = "users[\(i)]"
            let (name, body) = try p.namedEntry(entry, path: path, bodyKey: "user")
            let b = "\(path).user"
            var u = AuthInfo(origin: Origin(file: file, path: b))
            u.token = try p.string(body["token"], "\(b).token").map(SecretString.init)
            u.tokenFile = try p.path(body["tokenFile"], "\(b).tokenFile")
            u.clientCertificate = try p.path(body["client-certificate"], "\(b).client-certificate")
            u.clientCertificateData = try p.base64(body["client-certificate-data"], "\(b).client-certificate-data")
            u.clientKey = try p.path(body["client-key"], "\(b).client-key")
            u.clientKeyData = try p.base64(body["client-key-data"], "\(b).client-key-data").map(SecretBytes.init)
            u.username = try p.string(body["username"], "\(b).username")
            u.password = try p.string(body["password"], "\(b).password").map(SecretString.init)
            if let exec = body["exec"] {
                u.exec = try p.exec(exec, path: "\(b).exec")
            }
            if config.users[name] == nil { config.users[name] = u }
        }
        for (i, entry) in try p.sequence(top["contexts"], "contexts").enumerated() {
            let path = "contexts[\(i)]"
            let (name, body) = try p.namedEntry(entry, path: path, bodyKey: "context")
            let b = "\(path).context"
            guard let cluster = try p.string(body["cluster"], "\(b).cluster"), !cluster.isEmpty else {
                throw p.error("\(b).cluster", "is required")
            }
            let user = try p.string(body["user"], "\(b).user") ?? ""
            let ns = try p.string(body["namespace"], "\(b).namespace")
            if config.contexts[name] == nil {
                config.contexts[name] = Context(cluster: cluster, user: user, namespace: ns, origin: Origin(file: file, path: b))
            }
        }
        return config
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? CocoaError, let u = e.userInfo[NSUnderlyingErrorKey] as? POSIXError {
            return String(cString: strerror(u.code.rawValue))
        }
        if let e = error as? CocoaError {
            switch e.code {
            case .fileReadNoSuchFile: return "no such file"
            case .fileReadNoPermission: return "permission denied"
            case .fileReadInapplicableStringEncoding: return "not UTF-8 text"
            default: break
            }
        }
        return "\(error)"
    }
}

private func kindName(_ node: Node) -> String {
    switch node {
    case .scalar: return "a scalar"
    case .mapping: return "a mapping"
    case .sequence: return "a sequence"
    case .alias: return "an alias"
    }
}

/// Reads typed fields, turning every mismatch into an error naming file and field.
private struct FieldReader {
    let file: String
    let directory: String

    func error(_ field: String, _ problem: String) -> KubeClientError {
        KubeClientError(.configuration, "kubeconfig \(file): \(field.isEmpty ? "document" : field): \(problem)")
    }

    func string(_ node: Node?, _ field: String) throws(KubeClientError) -> String? {
        guard let node else { return nil }
        guard let s = node.scalar else { throw error(field, "must be a string, found \(kindName(node))") }
        if s.tag.description == Tag.Name.null.rawValue || (s.string == "" && s.style == .plain) { return nil }
        return s.string
    }

    func bool(_ node: Node?, _ field: String) throws(KubeClientError) -> Bool? {
        guard let node, let s = try string(node, field) else { return nil }
        switch s.lowercased() {
        case "true": return true
        case "false": return false
        default: throw error(field, "must be true or false, found \"\(s)\"")
        }
    }

    func path(_ node: Node?, _ field: String) throws(KubeClientError) -> String? {
        guard let s = try string(node, field), !s.isEmpty else { return nil }
        if s.hasPrefix("/") { return s }
        if s.hasPrefix("~/") { return NSHomeDirectory() + s.dropFirst() }
        return (directory as NSString).appendingPathComponent(s)
    }

    func base64(_ node: Node?, _ field: String) throws(KubeClientError) -> [UInt8]? {
        guard let s = try string(node, field), !s.isEmpty else { return nil }
        let compact = s.filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: compact) else { throw error(field, "not valid base64") }
        return Array(data)
    }

    func sequence(_ node: Node?, _ field: String) throws(KubeClientError) -> [Node] {
        guard let node else { return [] }
        if let s = node.scalar, s.tag.description == Tag.Name.null.rawValue || s.string.isEmpty { return [] }
        guard let seq = node.sequence else { throw error(field, "must be a list, found \(kindName(node))") }
        return Array(seq)
    }

    func namedEntry(_ node: Node, path: String, bodyKey: String) throws(KubeClientError) -> (String, Node.Mapping) {
        guard let m = node.mapping else { throw error(path, "must be a mapping, found \(kindName(node))") }
        guard let name = try string(m["name"], "\(path).name"), !name.isEmpty else { throw error("\(path).name", "is required") }
        guard let bodyNode = m[bodyKey] else { throw error("\(path).\(bodyKey)", "is required") }
        guard let body = bodyNode.mapping else {
            if let s = bodyNode.scalar, s.string.isEmpty || s.tag.description == Tag.Name.null.rawValue { return (name, Node.Mapping([])) }
            throw error("\(path).\(bodyKey)", "must be a mapping, found \(kindName(bodyNode))")
        }
        return (name, body)
    }

    func exec(_ node: Node, path: String) throws(KubeClientError) -> KubeConfig.ExecConfig {
        guard let m = node.mapping else { throw error(path, "must be a mapping, found \(kindName(node))") }
        guard let command = try string(m["command"], "\(path).command"), !command.isEmpty else {
            throw error("\(path).command", "is required")
        }
        guard let apiVersion = try string(m["apiVersion"], "\(path).apiVersion") else {
            throw error("\(path).apiVersion", "is required (client.authentication.k8s.io/v1 or v1beta1)")
        }
        guard apiVersion == "client.authentication.k8s.io/v1" || apiVersion == "client.authentication.k8s.io/v1beta1" else {
            throw error("\(path).apiVersion", "unsupported \(apiVersion) (use client.authentication.k8s.io/v1)")
        }
        var args: [String] = []
        for (i, a) in try sequence(m["args"], "\(path).args").enumerated() {
            guard let s = try string(a, "\(path).args[\(i)]") else { continue }
            args.append(s)
        }
        var env: [(name: String, value: SecretString)] = []
        for (i, e) in try sequence(m["env"], "\(path).env").enumerated() {
            guard let em = e.mapping else { throw error("\(path).env[\(i)]", "must be a mapping with name and value") }
            guard let n = try string(em["name"], "\(path).env[\(i)].name"), !n.isEmpty else {
                throw error("\(path).env[\(i)].name", "is required")
            }
            env.append((n, SecretString(try string(em["value"], "\(path).env[\(i)].value") ?? "")))
        }
        let mode = try string(m["interactiveMode"], "\(path).interactiveMode")
        if let mode, !["Never", "IfAvailable", "Always"].contains(mode) {
            throw error("\(path).interactiveMode", "must be Never, IfAvailable or Always, found \(mode)")
        }
        if apiVersion.hasSuffix("/v1"), mode == nil {
            throw error("\(path).interactiveMode", "is required for client.authentication.k8s.io/v1")
        }
        let cmd = command.contains("/") && !command.hasPrefix("/") ? (directory as NSString).appendingPathComponent(command) : command
        return KubeConfig.ExecConfig(
            apiVersion: apiVersion, command: cmd, args: args, env: env,
            provideClusterInfo: try bool(m["provideClusterInfo"], "\(path).provideClusterInfo") ?? false,
            interactiveMode: mode, installHint: try string(m["installHint"], "\(path).installHint"))
    }
}

/// Where and what a YAML syntax error is — never the offending text: a kubeconfig line may hold a token.
func yamlProblem(_ error: any Error) -> String {
    guard let e = error as? YamlError else { return "unreadable" }
    func at(_ m: Mark) -> String { "line \(m.line), column \(m.column)" }
    switch e {
    case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
        return "\(at(mark)): \(problem)"
    case .reader(let problem, let offset, _, _):
        return offset.map { "byte \($0): \(problem)" } ?? problem
    case .duplicatedKeysInMapping(let duplicates, let context):
        return "\(at(context.mark)): duplicate keys \(duplicates.joined(separator: ", "))"
    case .dataCouldNotBeDecoded:
        return "not UTF-8 text"
    default:
        return "unreadable"
    }
}
