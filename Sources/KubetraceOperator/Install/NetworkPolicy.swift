import Foundation
public import KubeClient

/// An address block: `10.0.0.0/8`, `192.0.2.7/32`, `2001:db8::/32`.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let prefix: Int
    public var description: String

    /// Parses a CIDR; a bare address becomes a host block (/32 or /128).
    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let address = CIDR.addressBytes(parts[0]) else { return nil }
        let bits = address.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...bits).contains(p) else { return nil }
            prefix = p
        } else {
            prefix = bits
        }
        bytes = address
        description = "\(parts[0])/\(prefix)"
    }

    static func addressBytes(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    public var isIPv6: Bool { bytes.count == 16 }

    /// True when `address` (an IP literal) lies inside this block.
    public func contains(_ address: String) -> Bool {
        guard let a = CIDR.addressBytes(address), a.count == bytes.count else { return false }
        var left = prefix
        for i in 0..<a.count where left > 0 {
            let take = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if a[i] & mask != bytes[i] & mask { return false }
            left -= take
        }
        return true
    }

    /// `a,b,c` from a flag; every entry must parse.
    public static func list(_ raw: String, flag: String) throws -> [CIDR] {
        var out: [CIDR] = []
        for part in raw.split(separator: ",") {
            let text = part.trimmingCharacters(in: .whitespaces)
            guard let c = CIDR(text) else { throw CLIError.configuration("\(flag): \"\(text)\" is not a CIDR (e.g. 203.0.113.0/24 or 2001:db8::/32)") }
            out.append(c)
        }
        guard !out.isEmpty else { throw CLIError.configuration("\(flag): needs at least one CIDR") }
        return out
    }
}

/// What the generated NetworkPolicy allows (SPEC has no policy; the operations kit adds it).
public struct NetworkPolicyInputs: Sendable {
    /// Namespaces allowed to reach the health and metrics ports (equality selector `k=v,k2=v2`).
    public var ingressNamespaceLabels: [(String, String)] = [("kubernetes.io/metadata.name", "monitoring")]
    /// Where the API server's endpoints are; empty: anywhere (ports only).
    public var apiServerCIDRs: [CIDR] = []
    /// Ports the API server answers on (443 and 6443 cover managed clusters and kubeadm).
    public var apiServerPorts: [Int] = [443, 6443]
    /// Destinations on 443 (Kubetrace API, registry, Vultr API): NetworkPolicy cannot name hosts.
    public var egressCIDRs: [CIDR] = [CIDR("0.0.0.0/0")!, CIDR("::/0")!]
    /// Their ports: 443, plus any other port the configured URLs and registry name.
    public var egressPorts: [Int] = [443]

    public init() {}

    /// `k=v,k2=v2` (equality only: a namespaceSelector's matchLabels).
    public static func labels(_ raw: String, flag: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for part in raw.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty, !kv[1].contains("="), !kv[0].contains("!") else {
                throw CLIError.configuration("\(flag): \"\(part)\" is not key=value (e.g. kubernetes.io/metadata.name=monitoring)")
            }
            out.append((kv[0], kv[1]))
        }
        guard !out.isEmpty else { throw CLIError.configuration("\(flag): needs at least one key=value") }
        return out
    }
}

/// The subset of `networking.k8s.io/v1` NetworkPolicy the doctor evaluates.
struct NetworkPolicyView: Sendable {
    struct Port: Sendable { var port: String?; var endPort: Int?; var proto: String }
    struct Peer: Sendable {
        /// nil: not an ipBlock (a namespace/pod selector: in-cluster Pods only).
        var cidr: CIDR?
        var except: [CIDR] = []
        var selectsPods: Bool { cidr == nil }
    }
    struct Rule: Sendable { var ports: [Port]; var peers: [Peer] }

    var name: String
    var podSelector: JSONValue?
    var ingress: [Rule]?
    var egress: [Rule]?

    init(_ object: JSONValue) {
        name = object["metadata"]?["name"]?.stringValue ?? "?"
        let spec = object["spec"]
        podSelector = spec?["podSelector"]
        let types = spec?["policyTypes"]?.arrayValue?.compactMap(\.stringValue)
        func rules(_ key: String, _ peerKey: String) -> [Rule] {
            (spec?[key]?.arrayValue ?? []).map { r in
                Rule(ports: (r["ports"]?.arrayValue ?? []).map { p in
                    Port(port: p["port"].flatMap(Self.scalar), endPort: p["endPort"].flatMap(Self.scalar).flatMap { Int($0) }, proto: p["protocol"]?.stringValue ?? "TCP")
                }, peers: (r[peerKey]?.arrayValue ?? []).map { peer in
                    if let block = peer["ipBlock"] {
                        return Peer(cidr: CIDR(block["cidr"]?.stringValue ?? "") ?? CIDR("255.255.255.255/32"),
                                    except: (block["except"]?.arrayValue ?? []).compactMap { CIDR($0.stringValue ?? "") })
                    }
                    return Peer(cidr: nil)
                })
            }
        }
        // policyTypes absent: Ingress always, Egress when egress rules are present.
        let hasIngress = types?.contains("Ingress") ?? true
        let hasEgress = types?.contains("Egress") ?? (spec?["egress"] != nil)
        ingress = hasIngress ? rules("ingress", "from") : nil
        egress = hasEgress ? rules("egress", "to") : nil
    }

    /// A port given as a number or a name.
    static func scalar(_ v: JSONValue) -> String? {
        switch v {
        case .int(let i): String(i)
        case .double(let d): String(Int(d))
        case .string(let s): s
        default: nil
        }
    }

    /// matchLabels / matchExpressions (In, NotIn, Exists, DoesNotExist) against the Pod's labels.
    func selects(_ labels: [String: String]) -> Bool {
        guard let sel = podSelector else { return true }
        for (k, v) in sel["matchLabels"]?.objectValue ?? [:] where labels[k] != v.stringValue { return false }
        for e in sel["matchExpressions"]?.arrayValue ?? [] {
            let key = e["key"]?.stringValue ?? ""
            let values = e["values"]?.arrayValue?.compactMap(\.stringValue) ?? []
            switch e["operator"]?.stringValue {
            case "In": if !values.contains(labels[key] ?? "\u{0}") { return false }
            case "NotIn": if let v = labels[key], values.contains(v) { return false }
            case "Exists": if labels[key] == nil { return false }
            case "DoesNotExist": if labels[key] != nil { return false }
            default: return false
            }
        }
        return true
    }
}

/// Does a set of policies let the operator's Pods do what they need? Pure, so it is
/// tested case by case; `doctor` feeds it the live policies.
enum NetworkPolicyCheck {
    struct Need: Sendable, Equatable {
        var what: String
        var port: Int
        var proto = "TCP"
        /// The destination's address when known; nil: any in-cluster destination will do (DNS).
        var address: String?
        var portName: String?
    }

    /// nil when no policy restricts that direction; otherwise the needs not allowed.
    static func missing(_ policies: [NetworkPolicyView], podLabels: [String: String], egress needs: [Need]) -> [Need]? {
        let applying = policies.filter { $0.selects(podLabels) }.compactMap(\.egress)
        if applying.isEmpty { return nil }
        return needs.filter { need in !applying.flatMap { $0 }.contains { allows($0, need) } }
    }

    static func missing(_ policies: [NetworkPolicyView], podLabels: [String: String], ingress needs: [Need]) -> [Need]? {
        let applying = policies.filter { $0.selects(podLabels) }.compactMap(\.ingress)
        if applying.isEmpty { return nil }
        return needs.filter { need in !applying.flatMap { $0 }.contains { allows($0, need) } }
    }

    static func allows(_ rule: NetworkPolicyView.Rule, _ need: Need) -> Bool {
        let portOK = rule.ports.isEmpty || rule.ports.contains { p in
            guard p.proto == need.proto else { return false }
            guard let port = p.port else { return true }
            if let n = Int(port) { return need.port >= n && need.port <= (p.endPort ?? n) }
            return port == need.portName
        }
        guard portOK else { return false }
        if rule.peers.isEmpty { return true }
        return rule.peers.contains { peer in
            guard let cidr = peer.cidr else {
                // A selector peer reaches in-cluster Pods only: fine for DNS, not for an outside address.
                return need.address == nil
            }
            guard let address = need.address else { return true }
            return cidr.contains(address) && !peer.except.contains { $0.contains(address) }
        }
    }
}

extension ManifestRenderer {
    /// Default deny for the operator's Pods; in: health and metrics from the chosen
    /// namespaces; out: DNS, the API server, and 443 (and the external services' other ports) to `egressCIDRs`.
    static func networkPolicy(_ m: ManifestInputs, _ p: NetworkPolicyInputs) -> YAML {
        let n = m.names
        func ports(_ list: [(YAML, String)]) -> YAML { .list(list.map { .map([("port", $0.0), ("protocol", .string($0.1))]) }) }
        func blocks(_ cidrs: [CIDR]) -> YAML { .list(cidrs.map { .map([("ipBlock", .map([("cidr", .string($0.description))]))]) }) }
        var apiRule: [(String, YAML)] = []
        if !p.apiServerCIDRs.isEmpty { apiRule.append(("to", blocks(p.apiServerCIDRs))) }
        apiRule.append(("ports", ports(p.apiServerPorts.map { (.int($0), "TCP") })))
        return .map([
            ("apiVersion", "networking.k8s.io/v1"), ("kind", "NetworkPolicy"),
            ("metadata", metadata(n.deployment, n)),
            ("spec", .map([
                ("podSelector", .map([("matchLabels", .map([("app.kubernetes.io/name", "kubetrace-operator")]))])),
                ("policyTypes", .list(["Ingress", "Egress"])),
                ("ingress", .list([.map([
                    ("from", .list([.map([("namespaceSelector", .map([("matchLabels", .map(p.ingressNamespaceLabels.map { ($0.0, .string($0.1)) }))]))])])),
                    ("ports", ports([("health", "TCP"), ("metrics", "TCP")])),
                ])])),
                ("egress", .list([
                    .map([("ports", ports([(53, "UDP"), (53, "TCP")]))]),
                    .map(apiRule),
                    .map([("to", blocks(p.egressCIDRs)), ("ports", ports(p.egressPorts.map { (.int($0), "TCP") }))]),
                ])),
            ])),
        ])
    }
}

/// The numeric addresses a host name resolves to (getaddrinfo), de-duplicated, in order.
func resolveAddresses(_ host: String) -> [String] {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    guard !host.isEmpty, getaddrinfo(host, nil, &hints, &result) == 0 else { return [] }
    defer { freeaddrinfo(result) }
    var out: [String] = []
    var p = result
    while let ai = p {
        var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0 {
            let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !out.contains(s) { out.append(s) }
        }
        p = ai.pointee.ai_next
    }
    return out
}

/// The API server as Pods reach it: the addresses and ports behind the `default/kubernetes`
/// Service. CNIs apply policies after the Service address is translated, so these (not
/// the kubeconfig's load balancer) are what an egress rule must allow.
struct APIServerEndpoints: Sendable, Equatable {
    var addresses: [String]
    var ports: [Int]

    /// Nil when they cannot be read (not served, forbidden, unreachable) within 5 s.
    static func read(_ client: KubeClient, within: Duration = .seconds(5)) async -> APIServerEndpoints? {
        let found = try? await withThrowingTaskGroup(of: APIServerEndpoints?.self) { group in
            group.addTask {
                let body = try await client.request("GET", path: "/api/v1/namespaces/default/endpoints/kubernetes").body
                return parse(try JSONValue.parse(body))
            }
            group.addTask {
                try await Task.sleep(for: within)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        return found ?? nil
    }

    static func parse(_ endpoints: JSONValue) -> APIServerEndpoints? {
        var out = APIServerEndpoints(addresses: [], ports: [])
        for subset in endpoints["subsets"]?.arrayValue ?? [] {
            for a in subset["addresses"]?.arrayValue ?? [] {
                if let ip = a["ip"]?.stringValue, CIDR(ip) != nil, !out.addresses.contains(ip) { out.addresses.append(ip) }
            }
            for p in subset["ports"]?.arrayValue ?? [] {
                if let port = p["port"].flatMap(NetworkPolicyView.scalar).flatMap({ Int($0) }), !out.ports.contains(port) { out.ports.append(port) }
            }
        }
        return out.addresses.isEmpty ? nil : out
    }
}
