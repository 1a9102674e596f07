import CContainer
import Foundation
import Synchronization

// The one file that imports the CContainer shim: forks, namespaces, mounts and helper programs
// for the node's runtime (ContainerRuntime.swift, PodSandbox.swift, NodeNetwork.swift,
// VolumeMounts.swift).

enum RuntimeSystem {
    /// errno as "ENOENT (No such file or directory)".
    static func errnoText(_ error: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        CContainer_errno_text(error, &buffer, buffer.count)
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// "execve /bin/x: ENOENT (No such file or directory)".
    static func describe(_ failure: ccontainer_failure) -> String {
        var failure = failure
        let detail = withUnsafeBytes(of: &failure.detail) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let step = String(cString: CContainer_step_name(failure.step))
        return detail.isEmpty ? "\(step): \(errnoText(failure.error))" : "\(step) \(detail): \(errnoText(failure.error))"
    }

    // MARK: Containers

    /// Everything a container child needs, as Swift values; `startContainer` lays it out in C.
    struct ContainerPlan: Sendable {
        var netnsFD: Int32
        var utsnsFD: Int32
        var scratchDirectory: String
        var mounts: [(source: String, target: String, readOnly: Bool)]
        var hosts: [UInt8]
        var hostname: [UInt8]
        var readOnlyRoot: Bool
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
        var capabilities: UInt64
        var noNewPrivileges: Bool
        var workingDirectory: String
        var path: String
        var argv: [String]
        var envp: [String]
        var stdoutFD: Int32
        var stderrFD: Int32
    }

    /// Forks the container child and returns once it has exec'd (or throws what it reported).
    /// The fork happens on the spawner thread, for the child's parent-death signal.
    static func startContainer(_ plan: ContainerPlan) throws(NodeRuntimeError) -> (pid: Int32, pidfd: Int32, usedChroot: Bool) {
        let result: Result<(pid: Int32, pidfd: Int32, usedChroot: Bool), NodeRuntimeError> = SpawnerThread.shared.run {
            forkContainer(plan)
        }
        return try result.get()
    }

    private static func forkContainer(_ plan: ContainerPlan) -> Result<(pid: Int32, pidfd: Int32, usedChroot: Bool), NodeRuntimeError> {
        let arena = CStringArena()
        defer { arena.free() }
        let upper = plan.scratchDirectory + "/upper"
        let work = plan.scratchDirectory + "/work"
        let root = plan.scratchDirectory + "/root"
        // lowerdir=/ : the host's root filesystem is the image (overlayfs(5); commas and colons
        // in the paths would need escaping, and ours have none).
        let options = "lowerdir=/,upperdir=\(upper),workdir=\(work)"
        var mounts = plan.mounts.map { m in
            ccontainer_mount(source: arena.string(m.source), target: arena.string(m.target), read_only: m.readOnly ? 1 : 0)
        }
        let argv = arena.array(plan.argv)
        let envp = arena.array(plan.envp)
        let hosts = arena.bytes(plan.hosts)
        let hostname = arena.bytes(plan.hostname)
        var groups = plan.groups
        var pidfd: Int32 = -1
        var usedChroot: Int32 = 0
        var failure = ccontainer_failure()
        let pid = mounts.withUnsafeMutableBufferPointer { mountBuffer in
            groups.withUnsafeMutableBufferPointer { groupBuffer in
                var spec = ccontainer_spec(
                    netns_fd: plan.netnsFD, utsns_fd: plan.utsnsFD,
                    scratch_dir: arena.string(plan.scratchDirectory), upper_dir: arena.string(upper),
                    work_dir: arena.string(work), root_dir: arena.string(root), overlay_options: arena.string(options),
                    mounts: mountBuffer.baseAddress, mount_count: mountBuffer.count,
                    hosts: hosts, hosts_length: plan.hosts.count, hostname: hostname, hostname_length: plan.hostname.count,
                    read_only_root: plan.readOnlyRoot ? 1 : 0, uid: plan.uid, gid: plan.gid,
                    groups: groupBuffer.baseAddress, group_count: groupBuffer.count,
                    capabilities: plan.capabilities, last_capability: Int32(lastCapability),
                    no_new_privileges: plan.noNewPrivileges ? 1 : 0,
                    working_directory: arena.string(plan.workingDirectory), path: arena.string(plan.path),
                    argv: argv, envp: envp, stdin_fd: -1, stdout_fd: plan.stdoutFD, stderr_fd: plan.stderrFD)
                return CContainer_start(&spec, &pidfd, &usedChroot, &failure)
            }
        }
        guard pid > 0 else { return .failure(NodeRuntimeError(describe(failure))) }
        return .success((pid, pidfd, usedChroot != 0))
    }

    /// /proc/sys/kernel/cap_last_cap: the highest capability this kernel knows.
    static let lastCapability: Int = {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/cap_last_cap", encoding: .utf8),
              let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return 40 }
        return value
    }()

    static func signal(pidfd: Int32, _ signal: Int32) -> Int32 {
        CContainer_pidfd_signal(pidfd, signal) == 0 ? 0 : errno
    }

    /// Blocks until `pid` (our child) ends and reaps it.
    static func waitForExit(_ pid: Int32) -> ContainerExit {
        var status: Int32 = 0
        guard CContainer_wait(pid, &status) == 0 else {
            // ECHILD: someone else reaped it — the exit status is lost; say so as an exit code.
            return .exited(255)
        }
        var value: Int32 = 0
        switch CContainer_decode_status(status, &value) {
        case 1: return .exited(value)
        case 2: return .signaled(value)
        default: return .exited(255)
        }
    }

    // MARK: Sandbox holders

    /// Forks a sandbox holder on the spawner thread (see `SpawnerThread`).
    static func startHolder(hostname: String) throws(NodeRuntimeError) -> Int32 {
        let bytes = Array(hostname.utf8)
        let result: Result<Int32, NodeRuntimeError> = SpawnerThread.shared.run {
            var failure = ccontainer_failure()
            let pid = bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { CContainer_start_holder($0.baseAddress, $0.count, &failure) }
            }
            return pid > 0 ? .success(pid) : .failure(NodeRuntimeError("pod sandbox holder: \(describe(failure))"))
        }
        return try result.get()
    }

    // MARK: Helper programs

    struct ProgramResult {
        var status: ContainerExit
        var stdout: [UInt8]
        var stderr: [UInt8]
        var stderrText: String { String(decoding: stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// Runs a helper program to completion (CNI plugins are programs too), optionally inside a
    /// network namespace; nothing of the devcluster's environment is passed on. Blocks the calling
    /// thread (fork, poll, waitpid): pods call it on the spawner thread, `NodeNetwork` at start-up.
    static func run(_ path: String, _ arguments: [String], netnsFD: Int32 = -1, input: [UInt8]? = nil) throws(NodeRuntimeError) -> ProgramResult {
        let arena = CStringArena()
        defer { arena.free() }
        let out = try makePipe()
        let err = try makePipe()
        var inputFD: Int32 = -1
        if let input {
            // Small inputs (an `ip -batch`) fit in the pipe buffer: write all, then close.
            let pipe = try makePipe()
            _ = input.withUnsafeBytes { Glibc.write(pipe.write, $0.baseAddress, $0.count) }
            close(pipe.write)
            inputFD = pipe.read
        }
        var failure = ccontainer_failure()
        let pid = CContainer_spawn(arena.string(path), arena.array([path] + arguments),
                                   arena.array(["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]),
                                   netnsFD, inputFD, out.write, err.write, &failure)
        close(out.write)
        close(err.write)
        if inputFD >= 0 { close(inputFD) }
        defer {
            close(out.read)
            close(err.read)
        }
        guard pid > 0 else { throw NodeRuntimeError("\(path): \(describe(failure))") }
        let (stdout, stderr) = drain(out.read, err.read)
        return ProgramResult(status: waitForExit(pid), stdout: stdout, stderr: stderr)
    }

    /// Reads two pipes to EOF together (one could fill while the other is read).
    private static func drain(_ a: Int32, _ b: Int32) -> ([UInt8], [UInt8]) {
        var results: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    results[i] += buffer[..<count]
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    fds[i].fd = -1
                }
            }
        }
        return (results[0], results[1])
    }

    static func makePipe() throws(NodeRuntimeError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard CContainer_pipe(&fds) == 0 else { throw NodeRuntimeError("pipe2: \(errnoText(errno))") }
        return (fds[0], fds[1])
    }

    // MARK: Mounts

    static func mountTmpfs(_ path: String, options: String) -> Int32 {
        CContainer_mount_tmpfs(path, options) == 0 ? 0 : errno
    }

    static func unmountDetach(_ path: String) -> Int32 {
        CContainer_unmount_detach(path) == 0 ? 0 : errno
    }
}

/// C strings and arrays kept alive for one call into the shim, all allocated before fork().
final class CStringArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func bytes(_ b: [UInt8]) -> UnsafeMutablePointer<CChar> {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(b.count, 1))
        b.withUnsafeBytes { raw in
            if let base = raw.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: b.count) }
        }
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// A NULL-terminated `char *[]`.
    func array(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
        for (i, s) in strings.enumerated() { p[i] = string(s) }
        p[strings.count] = nil
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func free() {
        for p in allocations { Glibc.free(p) }
        allocations = []
    }
}

/// One thread that lives as long as the process and forks the sandbox holders and containers:
/// PR_SET_PDEATHSIG fires when the *thread* that forked a child exits (prctl(2)), and the
/// cooperative pool's and Dispatch's worker threads come and go. It also runs the node's other
/// blocking work (the `ip` runs of a sandbox, waiting for a holder, a container start): the
/// cooperative pool has as many threads as cores, and a pod worker blocking one in poll(2) or
/// waitpid(2) would stall the API server, the probes and the controllers with it.
final class SpawnerThread: Sendable {
    static let shared = SpawnerThread()

    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var started = false
    }
    private let queue = Mutex(Queue())
    // A counting semaphore wakes the thread per job; the Mutex holds the jobs.
    private let wakeup = DispatchSemaphore(value: 0)
    /// The spawner thread's pthread_t once it runs (0 before).
    private let thread = Atomic<UInt>(0)

    /// True on the spawner thread: work for it runs inline there (waiting for itself would deadlock).
    var isCurrent: Bool {
        let current = thread.load(ordering: .acquiring)
        return current != 0 && pthread_equal(pthread_t(current), pthread_self()) != 0
    }

    /// Runs `body` on the spawner thread and resumes the caller with its result; the caller is
    /// suspended meanwhile, no thread waits for it. Not cancellable: the jobs are short (a fork,
    /// an `ip` run).
    func perform<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        if isCurrent { return try body() }
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: Result(catching: body)) }
        }
        return try result.get()
    }

    /// Runs `body` on the spawner thread and blocks the calling thread until it returns: for
    /// synchronous callers (start-up, and code already on the spawner thread, where it runs inline).
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        if isCurrent { return body() }
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<T?>(nil)
        submit {
            let value = body()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    /// Queues `job` without waiting for it (a `deinit` releasing what was not stopped).
    func submit(_ job: @escaping @Sendable () -> Void) {
        let start = queue.withLock { q -> Bool in
            q.jobs.append(job)
            defer { q.started = true }
            return !q.started
        }
        if start {
            let thread = Thread { [self] in self.loop() }
            thread.name = "kubesim-node-spawner"
            thread.start()
        }
        wakeup.signal()
    }

    private func loop() {
        thread.store(UInt(pthread_self()), ordering: .releasing)
        while true {
            wakeup.wait()
            let job = queue.withLock { q in q.jobs.isEmpty ? nil : q.jobs.removeFirst() }
            job?()
        }
    }
}
