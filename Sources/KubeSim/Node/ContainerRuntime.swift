import Foundation

/// A node-runtime failure: names the step (path, syscall) and the errno text, e.g.
/// "container /bin/nope: execve /bin/nope: ENOENT (No such file or directory)".
public struct NodeRuntimeError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A bind mount into a container (CRI `Mount`: host_path, container_path, readonly).
public struct ContainerMount: Sendable, Equatable {
    public var hostPath: String
    public var containerPath: String
    public var readOnly: Bool
    public init(hostPath: String, containerPath: String, readOnly: Bool) {
        self.hostPath = hostPath
        self.containerPath = containerPath
        self.readOnly = readOnly
    }
}

/// What to run in a container: the parts of a CRI `ContainerConfig` + `LinuxContainerSecurityContext`
/// that the node honours.
public struct ContainerLaunch: Sendable {
    /// Absolute path, resolved inside the container root (the host's / through an overlay).
    public var executable: String
    /// argv[1...]; argv[0] is `executable`.
    public var arguments: [String]
    /// "NAME=value" in order; nothing is inherited from the devcluster.
    public var environment: [String]
    /// Inside the container; "/" by default. Created (in the container layer) when missing, as
    /// runc does.
    public var workingDirectory: String
    public var uid: UInt32
    public var gid: UInt32
    public var supplementalGroups: [UInt32]
    /// `allowPrivilegeEscalation: false` → PR_SET_NO_NEW_PRIVS.
    public var noNewPrivileges: Bool
    public var readOnlyRootFilesystem: Bool
    /// The capabilities the process keeps (names without "CAP_"): bounding, permitted, effective
    /// and inheritable are set to these; as with runc, a non-root uid ends with no effective caps.
    public var capabilities: [String]
    /// Bind mounts, created in the container's writable upper layer (never on the host), in order.
    public var mounts: [ContainerMount]

    public init(executable: String, arguments: [String] = [], environment: [String] = [], workingDirectory: String = "/",
                uid: UInt32 = 0, gid: UInt32 = 0, supplementalGroups: [UInt32] = [], noNewPrivileges: Bool = false,
                readOnlyRootFilesystem: Bool = false, capabilities: [String] = ContainerLaunch.defaultCapabilities,
                mounts: [ContainerMount] = []) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.uid = uid
        self.gid = gid
        self.supplementalGroups = supplementalGroups
        self.noNewPrivileges = noNewPrivileges
        self.readOnlyRootFilesystem = readOnlyRootFilesystem
        self.capabilities = capabilities
        self.mounts = mounts
    }

    /// The default capability set of containerd (oci/spec.go `defaultUnixCaps` via
    /// `populateDefaultUnixSpec`) and moby (oci/caps/defaults.go `DefaultCapabilities`).
    public static let defaultCapabilities: [String] = [
        // containerd oci/spec.go `defaultUnixCaps()`, the same list as moby oci/caps/defaults.go.
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    ]
}

/// How a container's process ended.
public enum ContainerExit: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)

    /// The exit code CRI reports: the status, or 128 + signal when killed by one.
    public var exitCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// Which pipe a line of container output came from.
public enum ContainerOutputStream: String, Sendable {
    case stdout, stderr
}

/// One container's process, started in a pod sandbox's namespaces, the way runc's `create` +
/// `start` would run it for containerd's shim (without a PID namespace: the container's processes
/// are in the devcluster's, so `kill -TERM` reaches the program itself, not a pid 1 that ignores
/// signals it has no handler for, and /proc shows the node's processes, as with
/// `hostPID: true`).
public final class ContainerProcess: Sendable {
    /// The process id in the devcluster's PID namespace.
    public let pid: Int32
    /// stdout/stderr lines without the "\n" (a final partial line is delivered at EOF; a line
    /// longer than 16 KiB arrives in 16 KiB pieces, as containerd's CRI logger splits at
    /// `max_container_log_line_size`), each stream in order; finishes when both pipes close.
    /// Backpressured like a real pipe: once 1 MiB is waiting unread the reader stops and the
    /// container blocks in write(2), so read it (or end the iteration: the rest is discarded).
    public let output: AsyncStream<(ContainerOutputStream, [UInt8])>
    private let state: ContainerProcessState

    private init(pid: Int32, state: ContainerProcessState, output: AsyncStream<(ContainerOutputStream, [UInt8])>) {
        self.pid = pid
        self.state = state
        self.output = output
    }

    /// Starts `launch` in `sandbox`. fork (on the node's spawner thread, with PR_SET_PDEATHSIG
    /// SIGKILL, set again after setuid as runc does: unlike kubelet's, these containers die with
    /// the devcluster, having no kubelet restart to survive); in the child: setns(net, uts),
    /// unshare(CLONE_NEWNS), rprivate /, a tmpfs + overlay(lowerdir=/) as the root with
    /// kubelet's /etc/hosts and /etc/hostname, proc, /dev (rbind), /sys (bind, read-only), the
    /// mounts; pivot_root (chroot when it fails); mkdir -p the working directory; the read-only
    /// root; bounding set, setgroups/setgid/setuid, chdir, capabilities, no_new_privs, stdio,
    /// execve. That is runc libcontainer standard_init_linux.go `linuxStandardInit.Init`,
    /// rootfs_linux.go `prepareRootfs`/`pivotRoot`/`finalizeRootfs`, init_linux.go
    /// `finalizeNamespace`. A failure before execve (a mount, the exec itself) is reported
    /// through an O_CLOEXEC pipe, as runc's init pipe, and thrown here naming the step, the path
    /// and errno. Returns once the child has exec'd (milliseconds); the work happens on the node's
    /// spawner thread while the caller is suspended.
    public static func start(_ launch: ContainerLaunch, in sandbox: PodSandbox) async throws(NodeRuntimeError) -> ContainerProcess {
        try await SpawnerThread.shared.perform { () throws(NodeRuntimeError) -> ContainerProcess in
            try startBlocking(launch, in: sandbox)
        }
    }

    private static func startBlocking(_ launch: ContainerLaunch, in sandbox: PodSandbox) throws(NodeRuntimeError) -> ContainerProcess {
        let what = "container \(launch.executable)"
        let plan = try plan(launch, what: what)
        let namespaces = try sandbox.duplicateNamespaces()
        defer {
            close(namespaces.net)
            close(namespaces.uts)
        }
        // The tmpfs for the writable layer is mounted on this directory in the child's mount
        // namespace only; on the host it stays an empty directory, removed once the child runs.
        var template = Array((NSTemporaryDirectory() + "kt-container-XXXXXX").utf8CString)
        guard let scratch = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw NodeRuntimeError("\(what): mkdtemp \(NSTemporaryDirectory()): \(RuntimeSystem.errnoText(errno))")
        }
        defer { rmdir(scratch) }
        let stdout = try RuntimeSystem.makePipe()
        let stderr: (read: Int32, write: Int32)
        do throws(NodeRuntimeError) {
            stderr = try RuntimeSystem.makePipe()
        } catch {
            close(stdout.read)
            close(stdout.write)
            throw error
        }
        let started: (pid: Int32, pidfd: Int32, usedChroot: Bool)
        do throws(NodeRuntimeError) {
            var full = plan
            full.netnsFD = namespaces.net
            full.utsnsFD = namespaces.uts
            full.scratchDirectory = scratch
            full.hosts = Array(managedHostsFile(podIP: sandbox.podIP, hostname: sandbox.hostname).utf8)
            full.hostname = Array((sandbox.hostname + "\n").utf8)
            full.stdoutFD = stdout.write
            full.stderrFD = stderr.write
            defer {
                close(stdout.write)
                close(stderr.write)
            }
            started = try RuntimeSystem.startContainer(full)
        } catch {
            close(stdout.read)
            close(stderr.read)
            throw NodeRuntimeError("\(what): \(error.description)")
        }
        let state = ContainerProcessState(pid: started.pid, pidfd: started.pidfd, enteredWithChroot: started.usedChroot)
        let output = state.startReading(stdout: stdout.read, stderr: stderr.read)
        state.startReaping()
        return ContainerProcess(pid: started.pid, state: state, output: output)
    }

    /// Waits until the process has ended; any number of callers. It is reaped exactly once,
    /// by a thread of its own blocked in waitpid(pid) (never waitpid(-1)).
    public func wait() async -> ContainerExit {
        await state.wait()
    }

    /// Sends `signal` through a pidfd (pidfd_send_signal(2): never a recycled pid); a no-op
    /// once the process has exited.
    public func signal(_ signal: Int32) {
        state.signal(signal)
    }

    /// True when pivot_root failed and the root was entered with chroot (runc `--no-pivot`).
    var enteredWithChroot: Bool { state.enteredWithChroot }

    /// Validates `launch` and turns it into the C child's plan (without the sandbox's parts).
    static func plan(_ launch: ContainerLaunch, what: String) throws(NodeRuntimeError) -> RuntimeSystem.ContainerPlan {
        func check(_ value: String, _ name: String) throws(NodeRuntimeError) {
            if value.utf8.contains(0) { throw NodeRuntimeError("\(what): \(name) contains a NUL byte") }
        }
        guard launch.executable.hasPrefix("/") else { throw NodeRuntimeError("\(what): the executable must be an absolute path") }
        guard launch.workingDirectory.hasPrefix("/") else {
            throw NodeRuntimeError("\(what): workingDirectory \(launch.workingDirectory) must be an absolute path")
        }
        try check(launch.executable, "the executable")
        try check(launch.workingDirectory, "workingDirectory")
        for a in launch.arguments { try check(a, "an argument") }
        for (index, e) in launch.environment.enumerated() {
            try check(e, "an environment entry")
            // Never quoted: values may be secrets.
            guard let eq = e.firstIndex(of: "="), eq != e.startIndex else {
                throw NodeRuntimeError("\(what): environment entry \(index) is not NAME=value")
            }
        }
        var mask: UInt64 = 0
        for name in launch.capabilities {
            let bare = name.uppercased().hasPrefix("CAP_") ? String(name.uppercased().dropFirst(4)) : name.uppercased()
            guard let number = capabilityNumbers[bare] else { throw NodeRuntimeError("\(what): unknown capability \(name)") }
            guard number <= RuntimeSystem.lastCapability else {
                throw NodeRuntimeError("\(what): capability \(name) is not known to this kernel (cap_last_cap \(RuntimeSystem.lastCapability))")
            }
            mask |= 1 << UInt64(number)
        }
        var mounts: [(source: String, target: String, readOnly: Bool)] = []
        for m in launch.mounts {
            try check(m.hostPath, "a mount's hostPath")
            try check(m.containerPath, "a mount's containerPath")
            guard m.hostPath.hasPrefix("/") else { throw NodeRuntimeError("\(what): mount source \(m.hostPath) must be absolute") }
            guard m.containerPath.hasPrefix("/") else { throw NodeRuntimeError("\(what): mount point \(m.containerPath) must be absolute") }
            let parts = m.containerPath.split(separator: "/").filter { $0 != "." }
            guard !parts.contains("..") else { throw NodeRuntimeError("\(what): mount point \(m.containerPath) must not contain \"..\"") }
            guard !parts.isEmpty else { throw NodeRuntimeError("\(what): cannot mount over the container's root (\(m.hostPath))") }
            mounts.append((m.hostPath, parts.joined(separator: "/"), m.readOnly))
        }
        return RuntimeSystem.ContainerPlan(
            netnsFD: -1, utsnsFD: -1, scratchDirectory: "", mounts: mounts, hosts: [], hostname: [],
            readOnlyRoot: launch.readOnlyRootFilesystem, uid: launch.uid, gid: launch.gid, groups: launch.supplementalGroups,
            capabilities: mask, noNewPrivileges: launch.noNewPrivileges, workingDirectory: launch.workingDirectory,
            path: launch.executable, argv: [launch.executable] + launch.arguments, envp: launch.environment,
            stdoutFD: -1, stderrFD: -1)
    }

    /// kubelet pkg/kubelet/kubelet_pods.go `managedHostsFileContent` / `managedHostsHeader`
    /// (no host aliases, no subdomain).
    static func managedHostsFile(podIP: String, hostname: String) -> String {
        """
        # Kubernetes-managed hosts file.
        127.0.0.1\tlocalhost
        ::1\tlocalhost ip6-localhost ip6-loopback
        fe00::0\tip6-localnet
        fe00::0\tip6-mcastprefix
        fe00::1\tip6-allnodes
        fe00::2\tip6-allrouters
        \(podIP)\t\(hostname)

        """
    }

    /// include/uapi/linux/capability.h.
    static let capabilityNumbers: [String: Int] = [
        "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
        "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11, "NET_ADMIN": 12,
        "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15, "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18,
        "SYS_PTRACE": 19, "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24,
        "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
        "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35, "BLOCK_SUSPEND": 36,
        "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
    ]
}
