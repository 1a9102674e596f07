import Foundation
import Synchronization

/// A pod's "pause" holder: containerd's sandbox (`RunPodSandbox`) and the pause container,
/// with the CNI work of the ptp plugin (plugins/main/ptp/ptp.go: a veth pair, the pod end
/// holding podIP/32 and routes via the node, the host end a /32 route to the pod).
///
/// The holder is a fork of the devcluster (PR_SET_PDEATHSIG SIGKILL, so it never outlives the
/// devcluster) in new network and UTS namespaces, hostname = the pod's, with lo up; the
/// containers join those namespaces with setns(2).
public final class PodSandbox: Sendable {
    /// The pod's address, allocated from the node's podCIDR.
    public let podIP: String
    /// The pod's hostname (kubelet truncates it to 63 characters).
    let hostname: String
    let podUID: String
    private let network: NodeNetwork
    private let hostNumber: Int
    private let hostInterface: String
    private let state: Mutex<State>

    private struct State {
        var holder: Int32      // 0 once stopped
        var netns: Int32
        var utsns: Int32
    }

    private init(podIP: String, hostname: String, podUID: String, network: NodeNetwork, hostNumber: Int,
                 hostInterface: String, holder: Int32, netns: Int32, utsns: Int32) {
        self.podIP = podIP
        self.hostname = hostname
        self.podUID = podUID
        self.network = network
        self.hostNumber = hostNumber
        self.hostInterface = hostInterface
        self.state = Mutex(State(holder: holder, netns: netns, utsns: utsns))
    }

    /// Creates the holder, its namespaces and the veth pair: host end "ktv" + 8 hex with a /32
    /// route to the pod (src nodeAddress), pod end renamed eth0 with podIP/32, a route to
    /// nodeAddress on eth0 and the default route via nodeAddress. The forks and `ip` runs happen
    /// on the node's spawner thread; the caller is suspended meanwhile.
    public static func create(podUID: String, hostname: String, network: NodeNetwork) async throws(NodeRuntimeError) -> PodSandbox {
        try await SpawnerThread.shared.perform { () throws(NodeRuntimeError) -> PodSandbox in
            try createBlocking(podUID: podUID, hostname: hostname, network: network)
        }
    }

    private static func createBlocking(podUID: String, hostname: String, network: NodeNetwork) throws(NodeRuntimeError) -> PodSandbox {
        let hostname = truncatedHostname(hostname)
        guard !hostname.isEmpty else { throw NodeRuntimeError("pod sandbox \(podUID): the hostname is empty") }
        let (podIP, number) = try network.allocateAddress()
        var holder: Int32 = 0
        var netns: Int32 = -1
        var utsns: Int32 = -1
        var hostInterface: String?
        do throws(NodeRuntimeError) {
            holder = try RuntimeSystem.startHolder(hostname: hostname)
            netns = try openNamespace(holder, "net")
            utsns = try openNamespace(holder, "uts")
            let suffix = String(format: "%08x", UInt32.random(in: 0 ... .max))
            let host = "ktv" + suffix
            let peer = "ktp" + suffix
            // The peer is created directly in the pod's namespace: no name clash on the host.
            try network.ip(["link", "add", host, "type", "veth", "peer", "name", peer, "netns", String(holder)], "create the veth pair for pod \(podUID)")
            hostInterface = host
            try network.ip(["link", "set", host, "up"], "bring \(host) up")
            try network.ip(["route", "add", podIP + "/32", "dev", host, "src", network.nodeAddress], "route \(podIP) to \(host)")
            let batch = """
                link set lo up
                link set \(peer) name eth0
                addr add \(podIP)/32 dev eth0
                link set eth0 up
                route add \(network.nodeAddress)/32 dev eth0 scope link
                route add default via \(network.nodeAddress) dev eth0

                """
            try network.ip(["-batch", "-"], "configure eth0 in pod \(podUID)'s network namespace", netnsFD: netns, input: Array(batch.utf8))
        } catch {
            if let hostInterface { _ = try? network.ip(["link", "del", hostInterface], "delete \(hostInterface)") }
            if netns >= 0 { close(netns) }
            if utsns >= 0 { close(utsns) }
            if holder > 0 { killHolder(holder) }
            network.releaseAddress(number)
            throw error
        }
        return PodSandbox(podIP: podIP, hostname: hostname, podUID: podUID, network: network, hostNumber: number,
                          hostInterface: hostInterface!, holder: holder, netns: netns, utsns: utsns)
    }

    /// Kills the holder, deletes the veth pair (containers still in the namespace would keep it
    /// alive otherwise) and releases the IP, on the spawner thread; idempotent.
    public func stop() async {
        guard let release = takeForRelease() else { return }
        await SpawnerThread.shared.perform(release)
    }

    // Not stopped: released on the spawner thread, not waited for (a deinit cannot suspend).
    deinit {
        if let release = takeForRelease() { SpawnerThread.shared.submit(release) }
    }

    /// The holder, namespaces and interface, taken from the state (once), as the blocking work
    /// that releases them.
    private func takeForRelease() -> (@Sendable () -> Void)? {
        let taken = state.withLock { s -> State? in
            guard s.holder > 0 else { return nil }
            let old = s
            s = State(holder: 0, netns: -1, utsns: -1)
            return old
        }
        guard let taken else { return nil }
        let (network, hostInterface, hostNumber) = (network, hostInterface, hostNumber)
        return {
            close(taken.netns)
            close(taken.utsns)
            PodSandbox.killHolder(taken.holder)
            _ = try? network.ip(["link", "del", hostInterface], "delete \(hostInterface)")
            network.releaseAddress(hostNumber)
        }
    }

    /// Duplicates of the namespace fds for a container start (a concurrent `stop` closes ours).
    func duplicateNamespaces() throws(NodeRuntimeError) -> (net: Int32, uts: Int32) {
        let result = state.withLock { s -> (Int32, Int32)? in
            guard s.holder > 0 else { return nil }
            let net = fcntl(s.netns, F_DUPFD_CLOEXEC, 3)
            let uts = fcntl(s.utsns, F_DUPFD_CLOEXEC, 3)
            guard net >= 0, uts >= 0 else {
                if net >= 0 { close(net) }
                if uts >= 0 { close(uts) }
                return (-1, -1)
            }
            return (net, uts)
        }
        guard let (net, uts) = result else { throw NodeRuntimeError("pod sandbox \(podUID) is stopped") }
        guard net >= 0 else { throw NodeRuntimeError("pod sandbox \(podUID): dup namespace fd: \(RuntimeSystem.errnoText(errno))") }
        return (net, uts)
    }

    private static func openNamespace(_ pid: Int32, _ kind: String) throws(NodeRuntimeError) -> Int32 {
        let path = "/proc/\(pid)/ns/\(kind)"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NodeRuntimeError("open \(path): \(RuntimeSystem.errnoText(errno))") }
        return fd
    }

    private static func killHolder(_ pid: Int32) {
        kill(pid, SIGKILL)
        _ = RuntimeSystem.waitForExit(pid)  // SIGKILL: prompt
    }

    /// kubelet pkg/kubelet/kubelet_pods.go `truncatePodHostnameIfNeeded`: at most 63
    /// characters, without a trailing "-" or ".".
    static func truncatedHostname(_ name: String) -> String {
        guard name.utf8.count > 63 else { return name }
        var cut = String(decoding: name.utf8.prefix(63), as: UTF8.self)
        while cut.hasSuffix("-") || cut.hasSuffix(".") { cut.removeLast() }
        return cut
    }
}
