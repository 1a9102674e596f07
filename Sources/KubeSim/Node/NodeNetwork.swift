import Foundation
import Synchronization

/// The node's side of the pod network: one interface holding the node address, a /32 route per
/// pod to its veth (the shape of CNI's ptp plugin, or Calico's routed veths, rather than a
/// bridge). Pods reach the devcluster at `nodeAddress`; the host reaches pods at their IPs.
public final class NodeNetwork: Sendable {
    /// "10.213.7.1": the devcluster listens here; pods reach it through their default route.
    public let nodeAddress: String
    /// "10.213.7.0/24": pods get .2 … .254.
    public let podCIDR: String
    /// "kt-" + 4 hex.
    let interface: String
    private let prefix: String  // "10.213.7."
    private let ipPath: String
    private let state = Mutex(State())

    private struct State {
        var used: Set<Int> = []
        var next = 2
        var tornDown = false
    }

    private init(interface: String, prefix: String, ipPath: String) {
        self.interface = interface
        self.prefix = prefix
        self.nodeAddress = prefix + "1"
        self.podCIDR = prefix + "0/24"
        self.ipPath = ipPath
    }

    /// Creates a dummy interface ("kt-" + 4 hex) holding X.Y.Z.1/32 in a /24 of 10.0.0.0/8 that
    /// no local address or route uses (chosen at random, checked against `ip -j addr` and
    /// `ip -j route`, and checked again after the address is added, so two devclusters starting
    /// together do not share a /24). On a kernel without the dummy driver (CONFIG_DUMMY unset)
    /// the interface is a bridge with no ports, which holds an address the same way.
    public static func setUp() throws(NodeRuntimeError) -> NodeNetwork {
        try setUp(ipPath: nil)
    }

    /// `setUp()` with `ip` at `ipPath` (tests put a slow wrapper there).
    static func setUp(ipPath override: String?) throws(NodeRuntimeError) -> NodeNetwork {
        guard getuid() == 0 else {
            throw NodeRuntimeError("the devcluster's node needs root (it creates network interfaces, namespaces and mounts): run it as root, or without --node")
        }
        let candidates: [String] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        guard let ipPath = override ?? candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw NodeRuntimeError("the devcluster's node needs iproute2's `ip` (/usr/sbin/ip): apt-get install iproute2")
        }
        removeStaleInterfaces(ipPath)
        var kind = "dummy"
        var lastError = ""
        for _ in 0..<32 {
            let taken = try usedPrefixes(ipPath)
            let candidate = (UInt32(10) << 24) | (UInt32.random(in: 0...0xffff) << 8)
            guard !taken.contains(where: { overlaps($0, (candidate, 24)) }) else { continue }
            let prefix = "10.\((candidate >> 16) & 0xff).\((candidate >> 8) & 0xff)."
            let name = "kt-" + String(format: "%04x", UInt16.random(in: 0 ... .max))
            let created = try RuntimeSystem.run(ipPath, ["link", "add", name, "type", kind])
            if created.status != .exited(0), kind == "dummy", created.stderrText.contains("Unknown device type") {
                kind = "bridge"
                continue
            }
            guard created.status == .exited(0) else {
                lastError = "ip link add \(name) type \(kind): \(created.stderrText)"
                continue  // most likely a name another devcluster took
            }
            // Ours from here: released (the interface deleted) on every path but success.
            let network = NodeNetwork(interface: name, prefix: prefix, ipPath: ipPath)
            do throws(NodeRuntimeError) {
                try network.ip(["link", "set", name, "alias", ownerAlias], "label \(name)")
                try network.ip(["addr", "add", network.nodeAddress + "/32", "dev", name], "add \(network.nodeAddress) to \(name)")
                try network.ip(["link", "set", name, "up"], "bring \(name) up")
                // Another devcluster may have picked the same /24 since we looked.
                let others = try addresses(ipPath).filter { $0.interface != name }
                if others.contains(where: { overlaps(($0.address, $0.prefixLength), (candidate, 24)) }) {
                    network.tearDown()
                    continue
                }
            } catch {
                network.tearDown()
                throw error
            }
            return network
        }
        throw NodeRuntimeError("no free /24 in 10.0.0.0/8 for the node's pods after 32 tries\(lastError.isEmpty ? "" : " (last: \(lastError))")")
    }

    deinit { tearDown() }

    /// Deletes the interface (and with it the node address); idempotent.
    public func tearDown() {
        let first = state.withLock { s in
            defer { s.tornDown = true }
            return !s.tornDown
        }
        guard first else { return }
        _ = try? ip(["link", "del", interface], "delete \(interface)")
    }

    // MARK: Addresses

    /// The next free host number in the /24, round-robin (a restarted pod gets a fresh IP, as
    /// host-local IPAM hands them out), and its address.
    func allocateAddress() throws(NodeRuntimeError) -> (String, Int) {
        let number = state.withLock { s -> Int? in
            for offset in 0..<253 {
                let n = 2 + (s.next - 2 + offset) % 253
                if !s.used.contains(n) {
                    s.used.insert(n)
                    s.next = n + 1 > 254 ? 2 : n + 1
                    return n
                }
            }
            return nil
        }
        guard let number else { throw NodeRuntimeError("no free pod address in \(podCIDR): 253 pods are running") }
        return (prefix + String(number), number)
    }

    func releaseAddress(_ number: Int) {
        state.withLock { _ = $0.used.remove(number) }
    }

    /// Runs `ip ARGS` (in `netnsFD`'s namespace if given); a failure names `what` and ip's message.
    func ip(_ arguments: [String], _ what: String, netnsFD: Int32 = -1, input: [UInt8]? = nil) throws(NodeRuntimeError) {
        let result = try RuntimeSystem.run(ipPath, arguments, netnsFD: netnsFD, input: input)
        guard result.status == .exited(0) else {
            throw NodeRuntimeError("\(what): ip \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderrText)")
        }
    }

    // MARK: Interfaces left by a crashed devcluster

    /// "kubetrace-devcluster pid=123 start=456": the interface's alias names its owner, the pid
    /// and its start time (proc(5) stat field 22), so a reused pid is not taken for the owner.
    static let ownerAlias = "kubetrace-devcluster pid=\(getpid()) start=\(startTime(getpid()) ?? "?")"

    private static func startTime(_ pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command: state is field 3, starttime field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// Deletes "kt-" interfaces whose owning devcluster is gone (their pods' veths went with the
    /// pods' namespaces; the node interface is not tied to a process).
    private static func removeStaleInterfaces(_ ipPath: String) {
        guard let links = try? ipJSON(ipPath, ["-j", "link", "show"]) as? [[String: Any]] else { return }
        for link in links {
            guard let name = link["ifname"] as? String, name.hasPrefix("kt-"),
                  let alias = link["ifalias"] as? String, alias.hasPrefix("kubetrace-devcluster pid=") else { continue }
            var fields: [String: String] = [:]
            for part in alias.split(separator: " ").dropFirst() {
                let kv = part.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
            guard let pid = fields["pid"].flatMap({ Int32($0) }) else { continue }
            if let start = startTime(pid), start == fields["start"] { continue }  // its owner is alive
            _ = try? RuntimeSystem.run(ipPath, ["link", "del", name])
        }
    }

    // MARK: Reading the host's configuration

    private struct Address {
        var interface: String
        var address: UInt32
        var prefixLength: Int
    }

    private static func addresses(_ ipPath: String) throws(NodeRuntimeError) -> [Address] {
        let json = try ipJSON(ipPath, ["-j", "-4", "addr", "show"])
        var out: [Address] = []
        for link in json as? [[String: Any]] ?? [] {
            let name = link["ifname"] as? String ?? ""
            for info in link["addr_info"] as? [[String: Any]] ?? [] {
                guard let local = info["local"] as? String, let address = parseIPv4(local) else { continue }
                out.append(Address(interface: name, address: address, prefixLength: info["prefixlen"] as? Int ?? 32))
            }
        }
        return out
    }

    /// Every IPv4 prefix in use: addresses (with their prefix) and routes in all tables except
    /// default routes.
    private static func usedPrefixes(_ ipPath: String) throws(NodeRuntimeError) -> [(UInt32, Int)] {
        var used = try addresses(ipPath).map { ($0.address, $0.prefixLength) }
        let routes = try ipJSON(ipPath, ["-j", "-4", "route", "show", "table", "all"])
        for route in routes as? [[String: Any]] ?? [] {
            guard let dst = route["dst"] as? String, dst != "default" else { continue }
            let parts = dst.split(separator: "/")
            guard let address = parseIPv4(String(parts[0])) else { continue }
            used.append((address, parts.count == 2 ? Int(parts[1]) ?? 32 : 32))
        }
        return used
    }

    private static func ipJSON(_ ipPath: String, _ arguments: [String]) throws(NodeRuntimeError) -> Any {
        let result = try RuntimeSystem.run(ipPath, arguments)
        guard result.status == .exited(0) else {
            throw NodeRuntimeError("ip \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderrText)")
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(result.stdout)) else {
            throw NodeRuntimeError("ip \(arguments.joined(separator: " ")): the output is not JSON")
        }
        return json
    }

    static func parseIPv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for p in parts {
            guard let octet = UInt8(p) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    static func overlaps(_ a: (UInt32, Int), _ b: (UInt32, Int)) -> Bool {
        let length = min(a.1, b.1)
        let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
        return a.0 & mask == b.0 & mask
    }
}
