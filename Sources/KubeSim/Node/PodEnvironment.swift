import Foundation
import KubeClient

/// A container that cannot be configured: the waiting reason `CreateContainerConfigError` with
/// the kubelet's message (kuberuntime_container.go `startContainer` → `generateContainerConfig`).
struct ContainerConfigError: Error, Sendable, Equatable {
    var message: String
}

/// The objects a container's configuration reads, fetched once per start (the kubelet's secret
/// and configMap managers). nil: the object does not exist.
struct PodObjects: Sendable {
    var secrets: [String: JSONValue?] = [:]
    var configMaps: [String: JSONValue?] = [:]
    /// The Pod's service account (`spec.serviceAccountName`, default `default`) and its uid,
    /// nil when it does not exist.
    var serviceAccountName = "default"
    var serviceAccountUID: String?

    /// `data` of a Secret, decoded (base64), or nil when the object is missing.
    func secretData(_ name: String) -> [String: [UInt8]]? {
        guard let secret = secrets[name] ?? nil else { return nil }
        var out: [String: [UInt8]] = [:]
        for (k, v) in secret["data"]?.objectValue ?? [:] {
            out[k] = v.stringValue.flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
        }
        return out
    }

    /// `data` and `binaryData` of a ConfigMap, or nil when the object is missing.
    func configMapData(_ name: String) -> [String: [UInt8]]? {
        guard let cm = configMaps[name] ?? nil else { return nil }
        var out: [String: [UInt8]] = [:]
        for (k, v) in cm["data"]?.objectValue ?? [:] { out[k] = Array((v.stringValue ?? "").utf8) }
        for (k, v) in cm["binaryData"]?.objectValue ?? [:] {
            out[k] = v.stringValue.flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
        }
        return out
    }
}

/// How the kubelet builds a container's environment and command line.
enum PodEnvironment {
    /// containerd's default `PATH` (pkg/oci `defaultUnixEnv`), used when the image sets none.
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// pkg/kubelet/envvars/envvars.go `FromServices` for the master service `kubernetes` in
    /// `default` (pkg/kubelet/kubelet_pods.go `getServiceEnvVarMap` always includes it, whatever
    /// `enableServiceLinks` says): its one port is named `https`, protocol TCP, 443 inside a
    /// real cluster; here the API server's own address and port, since no cluster IP routes.
    static func serviceEnvironment(host: String, port: Int) -> [(String, String)] {
        let url = "tcp://\(host):\(port)"
        return [
            ("KUBERNETES_SERVICE_HOST", host),
            ("KUBERNETES_SERVICE_PORT", String(port)),
            ("KUBERNETES_SERVICE_PORT_HTTPS", String(port)),
            ("KUBERNETES_PORT", url),
            ("KUBERNETES_PORT_\(port)_TCP", url),
            ("KUBERNETES_PORT_\(port)_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_\(port)_TCP_PORT", String(port)),
            ("KUBERNETES_PORT_\(port)_TCP_ADDR", host),
        ]
    }

    /// The value of a downward-API field (pkg/kubelet/kubelet_pods.go `podFieldSelectorRuntimeValue`
    /// and pkg/fieldpath `ExtractFieldPathAsString`); nil for an unsupported path.
    static func fieldValue(_ path: String, pod: JSONValue, podIP: String, hostIP: String) -> String? {
        let meta = pod["metadata"]
        switch path {
        case "metadata.name": return meta?["name"]?.stringValue ?? ""
        case "metadata.namespace": return meta?["namespace"]?.stringValue ?? ""
        case "metadata.uid": return meta?["uid"]?.stringValue ?? ""
        case "spec.nodeName": return pod["spec"]?["nodeName"]?.stringValue ?? ""
        case "spec.serviceAccountName": return pod["spec"]?["serviceAccountName"]?.stringValue ?? ""
        case "status.podIP", "status.podIPs": return podIP
        case "status.hostIP", "status.hostIPs": return hostIP
        case "metadata.labels", "metadata.annotations":
            // `FormatMap`: sorted `key="value"` lines.
            let map = (path == "metadata.labels" ? meta?["labels"] : meta?["annotations"])?.objectValue ?? [:]
            return map.keys.sorted().map { "\($0)=\(quoteGo(map[$0]?.stringValue ?? ""))" }.joined(separator: "\n")
        default:
            for prefix in ["metadata.labels", "metadata.annotations"] where path.hasPrefix(prefix + "['") && path.hasSuffix("']") {
                let key = String(path.dropFirst(prefix.count + 2).dropLast(2))
                let map = prefix == "metadata.labels" ? meta?["labels"] : meta?["annotations"]
                return map?[key]?.stringValue ?? ""
            }
            return nil
        }
    }

    /// Go's `%q` for the label values of `FormatMap` (`strconv.Quote`, ASCII subset).
    static func quoteGo(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    /// pkg/kubelet/kubelet_pods.go `makeEnvironmentVariables`: `envFrom` (with prefix; keys that
    /// are not valid variable names are skipped), then `env` in order, each `$(VAR)` expanded
    /// against the variables defined before it and the service variables; `valueFrom` reads
    /// field paths, Secrets and ConfigMaps. A missing non-optional source is the error the
    /// kubelet returns: `secret "x" not found` (the watch-based secret manager's NotFound, for
    /// resource `secret`), `couldn't find key k in Secret ns/x`.
    /// The result: the service variables first, then the container's, later names replacing
    /// earlier ones in place.
    static func variables(pod: JSONValue, container: JSONValue, objects: PodObjects, serviceEnv: [(String, String)],
                          podIP: String, hostIP: String) throws(ContainerConfigError) -> [(String, String)] {
        let namespace = pod["metadata"]?["namespace"]?.stringValue ?? ""
        var result = OrderedEnv()
        for (k, v) in serviceEnv { result.set(k, v) }
        var defined: [String: String] = [:]  // `tmpEnv`
        for source in container["envFrom"]?.arrayValue ?? [] {
            let prefix = source["prefix"]?.stringValue ?? ""
            let data: [String: [UInt8]]
            if let ref = source["configMapRef"] {
                let name = ref["name"]?.stringValue ?? ""
                guard let d = objects.configMapData(name) else {
                    if ref["optional"] == .bool(true) { continue }
                    throw ContainerConfigError(message: "configmap \"\(name)\" not found")
                }
                data = d
            } else if let ref = source["secretRef"] {
                let name = ref["name"]?.stringValue ?? ""
                guard let d = objects.secretData(name) else {
                    if ref["optional"] == .bool(true) { continue }
                    throw ContainerConfigError(message: "secret \"\(name)\" not found")
                }
                data = d
            } else { continue }
            for key in data.keys.sorted() {
                let name = prefix + key
                // `IsEnvVarName` failures are skipped with an InvalidEnvironmentVariableNames event.
                guard isEnvVarName(name) else { continue }
                defined[name] = String(decoding: data[key]!, as: UTF8.self)
                result.set(name, defined[name]!)
            }
        }
        for env in container["env"]?.arrayValue ?? [] {
            let name = env["name"]?.stringValue ?? ""
            var value = env["value"]?.stringValue ?? ""
            if env["value"] != nil {
                let scope = defined.merging(serviceEnv.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
                value = expand(value) { scope[$0] }
            } else if let from = env["valueFrom"] {
                if let field = from["fieldRef"]?["fieldPath"]?.stringValue {
                    guard let v = fieldValue(field, pod: pod, podIP: podIP, hostIP: hostIP) else {
                        throw ContainerConfigError(message: "unsupported fieldPath: \(field)")
                    }
                    value = v
                } else if let ref = from["secretKeyRef"] {
                    let secret = ref["name"]?.stringValue ?? "", key = ref["key"]?.stringValue ?? ""
                    let optional = ref["optional"] == .bool(true)
                    guard let data = objects.secretData(secret) else {
                        if optional { continue }
                        throw ContainerConfigError(message: "secret \"\(secret)\" not found")
                    }
                    guard let bytes = data[key] else {
                        if optional { continue }
                        throw ContainerConfigError(message: "couldn't find key \(key) in Secret \(namespace)/\(secret)")
                    }
                    value = String(decoding: bytes, as: UTF8.self)
                } else if let ref = from["configMapKeyRef"] {
                    let cm = ref["name"]?.stringValue ?? "", key = ref["key"]?.stringValue ?? ""
                    let optional = ref["optional"] == .bool(true)
                    guard let data = objects.configMapData(cm) else {
                        if optional { continue }
                        throw ContainerConfigError(message: "configmap \"\(cm)\" not found")
                    }
                    guard let bytes = data[key] else {
                        if optional { continue }
                        throw ContainerConfigError(message: "couldn't find key \(key) in ConfigMap \(namespace)/\(cm)")
                    }
                    value = String(decoding: bytes, as: UTF8.self)
                } else if let ref = from["resourceFieldRef"] {
                    // Limits are not enforced on this node: report the declared limit, else 0
                    // (the kubelet reports node allocatable when no limit is set).
                    let resource = ref["resource"]?.stringValue ?? ""
                    let parts = resource.split(separator: ".", maxSplits: 1).map(String.init)
                    value = parts.count == 2 ? container["resources"]?[parts[0]]?[parts[1]]?.stringValue ?? "0" : "0"
                }
            }
            defined[name] = value
            result.set(name, value)
        }
        return result.pairs
    }

    /// The process's environment: containerd's `PATH` default and `HOSTNAME` (pkg/cri
    /// `containerSpec`: `WithEnv(HOSTNAME=…)`), then the kubelet's variables, which win.
    static func processEnvironment(_ variables: [(String, String)], hostname: String) -> [String] {
        var env = OrderedEnv()
        env.set("PATH", defaultPath)
        env.set("HOSTNAME", hostname)
        for (k, v) in variables { env.set(k, v) }
        return env.pairs.map { "\($0.0)=\($0.1)" }
    }

    /// The command line (kuberuntime_container.go `generateContainerConfig` with
    /// pkg/kubelet/container/helpers.go `ExpandContainerCommandAndArgs`): `command` replaces
    /// the image's ENTRYPOINT, `args` its CMD (our images have none), both expanded with the
    /// container's environment.
    static func commandLine(container: JSONValue, image: NodeImage, environment: [(String, String)]) -> [String] {
        let scope = Dictionary(environment, uniquingKeysWith: { _, b in b })
        let command = (container["command"]?.arrayValue ?? []).compactMap(\.stringValue).map { expand($0) { scope[$0] } }
        let args = (container["args"]?.arrayValue ?? []).compactMap(\.stringValue).map { expand($0) { scope[$0] } }
        return (command.isEmpty ? [image.executable] : command) + args
    }

    /// third_party/forked/golang/expansion `Expand`: `$(VAR)` becomes the value when defined
    /// (else stays as written), `$$` an escaped `$`; anything else is literal.
    static func expand(_ input: String, _ lookup: (String) -> String?) -> String {
        let chars = Array(input)
        var out = ""
        var i = 0
        while i < chars.count {
            guard chars[i] == "$", i + 1 < chars.count else { out.append(chars[i]); i += 1; continue }
            let next = chars[i + 1]
            if next == "$" { out.append("$"); i += 2; continue }
            if next == "(", let close = chars[(i + 2)...].firstIndex(of: ")") {
                let name = String(chars[(i + 2)..<close])
                out += lookup(name) ?? "$(\(name))"
                i = close + 1
                continue
            }
            out.append("$"); out.append(next); i += 2
        }
        return out
    }

    /// `validation.IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
    static func isEnvVarName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !s.isEmpty else { return false }
        func ok(_ c: Unicode.Scalar, digits: Bool) -> Bool {
            c == "-" || c == "." || c == "_" || ("a"..."z").contains(c) || ("A"..."Z").contains(c) || (digits && ("0"..."9").contains(c))
        }
        return ok(first, digits: false) && s.unicodeScalars.dropFirst().allSatisfy { ok($0, digits: true) }
    }
}

/// Name → value in first-definition order; a later value replaces the earlier one in place.
struct OrderedEnv {
    private(set) var pairs: [(String, String)] = []
    private var index: [String: Int] = [:]

    mutating func set(_ name: String, _ value: String) {
        if let i = index[name] { pairs[i].1 = value } else { index[name] = pairs.count; pairs.append((name, value)) }
    }
}
