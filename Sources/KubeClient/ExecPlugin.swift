public import Foundation
import KubeTLS
import Synchronization

/// Runs a kubeconfig `exec` credential plugin and reads its `ExecCredential`.
enum ExecPlugin {
    private struct ExecCredential: Decodable {
        struct Status: Decodable {
            var token: String?
            var expirationTimestamp: String?
            var clientCertificateData: String?
            var clientKeyData: String?
        }
        var apiVersion: String?
        var kind: String?
        var status: Status?
    }

    /// What of a plugin's output is kept: an ExecCredential is a few KiB (a client certificate
    /// and key at most); stderr only explains a failure.
    static let maxStdoutBytes = 1 << 20
    static let maxStderrBytes = 64 << 10

    /// Runs the plugin. At `timeout` (or when the task is cancelled) its process group gets
    /// SIGTERM, and SIGKILL `killGrace` later: a plugin that ignores SIGTERM cannot hold the request.
    static func run(_ config: KubeConfig.ExecConfig, cluster: ClusterConnection.ExecClusterInfo, timeout: TimeInterval = 60,
                    killGrace: TimeInterval = 2) async throws -> CredentialProvider.Current {
        let name = (config.command as NSString).lastPathComponent
        // A bare name is looked up in PATH by env(1), which exits 127 when it finds nothing.
        let argv = config.command.contains("/") ? [config.command] + config.args : ["/usr/bin/env", config.command] + config.args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in config.env { env[k] = v.value }
        env["KUBERNETES_EXEC_INFO"] = execInfo(config, cluster: cluster)
        let child: PluginProcess
        do { child = try PluginProcess(argv: argv, environment: env) } catch {
            let hint = config.installHint.map { ": \($0)" } ?? ""
            throw KubeClientError(.configuration, "exec plugin \(name): cannot be started (\(String(cString: strerror(error.code.rawValue))))\(hint)")
        }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<PluginProcess.Outcome, Never>) in
                // poll(2) blocks: on a thread of its own, never on the cooperative pool.
                let thread = Thread {
                    cont.resume(returning: child.collect(timeout: timeout, killGrace: killGrace,
                                                         maxStdout: maxStdoutBytes, maxStderr: maxStderrBytes))
                }
                thread.stackSize = 1 << 20
                thread.start()
            }
        } onCancel: {
            child.cancel()
        }
        switch outcome.stopped {
        case .stdoutTooLarge?:
            throw KubeClientError(.configuration, "exec plugin \(name): printed more than \(maxStdoutBytes >> 10) KiB on stdout; an ExecCredential is far smaller")
        case .timeout?:
            throw KubeClientError(.configuration, "exec plugin \(name): did not finish within \(Int(timeout)) s (stopped)")
        case .cancelled?:
            throw KubeClientError(.cancelled, "exec plugin \(name): cancelled (stopped)")
        case nil:
            break
        }
        let result = (status: outcome.status, out: outcome.stdout, err: outcome.stderr)
        if result.status == 127 && !config.command.contains("/") {
            let hint = config.installHint.map { ": \($0)" } ?? ""
            throw KubeClientError(.configuration, "exec plugin \(name): command not found\(hint)")
        }
        guard result.status == 0 else {
            // stderr is the plugin's own explanation; keep its first line only.
            let first = String(decoding: result.err, as: UTF8.self).split(separator: "\n").first ?? ""
            let line = String(String.UnicodeScalarView(first.unicodeScalars.filter { $0.properties.generalCategory != .control }))
            throw KubeClientError(.configuration, "exec plugin \(name): exited with status \(result.status)\(line.isEmpty ? "" : ": \(line.prefix(200))")")
        }
        // Never echo stdout: it may hold a credential.
        guard let cred = try? JSONDecoder().decode(ExecCredential.self, from: result.out), cred.kind == "ExecCredential", let status = cred.status else {
            throw KubeClientError(.configuration, "exec plugin \(name): did not print an ExecCredential JSON object on stdout")
        }
        var current = CredentialProvider.Current()
        if let t = status.expirationTimestamp {
            guard let d = RFC3339.parse(t) else {
                throw KubeClientError(.configuration, "exec plugin \(name): status.expirationTimestamp \"\(t)\" is not an RFC 3339 time")
            }
            current.expiresAt = d
        }
        if let token = status.token, !token.isEmpty {
            current.bearer = SecretString(token)
        } else if let cert = status.clientCertificateData, let key = status.clientKeyData {
            current.clientCertificatePEM = cert
            current.clientKey = PrivateKeyPEM(key)
        } else {
            throw KubeClientError(.configuration, "exec plugin \(name): ExecCredential has neither status.token nor status.clientCertificateData/clientKeyData")
        }
        return current
    }

    private static func execInfo(_ config: KubeConfig.ExecConfig, cluster: ClusterConnection.ExecClusterInfo) -> String {
        var spec: [String: JSONValue] = ["interactive": .bool(false)]
        if config.provideClusterInfo {
            var c: [String: JSONValue] = ["server": .string(cluster.server), "insecure-skip-tls-verify": .bool(cluster.insecureSkipTLSVerify)]
            if let ca = cluster.certificateAuthorityData { c["certificate-authority-data"] = .string(ca) }
            if let sn = cluster.tlsServerName { c["tls-server-name"] = .string(sn) }
            spec["cluster"] = .object(c)
        }
        let info: JSONValue = .object(["apiVersion": .string(config.apiVersion), "kind": .string("ExecCredential"), "spec": .object(spec)])
        return String(decoding: info.jsonBytes(), as: UTF8.self)
    }
}


/// An exec plugin's process: spawned in a process group of its own (so a shell script's children
/// are stopped with it), its output read with bounds, stopped with SIGTERM then SIGKILL, reaped.
final class PluginProcess: Sendable {
    enum Stop: Sendable { case timeout, cancelled, stdoutTooLarge }

    struct Outcome: Sendable {
        /// The exit status, or 128 + the signal that ended it.
        var status: Int32
        var stdout: Data
        var stderr: Data
        /// Why the plugin was stopped, if it was.
        var stopped: Stop?
    }

    let pid: pid_t
    private let stdoutFD: Int32
    private let stderrFD: Int32
    /// Written once on cancellation, to wake `poll`.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let cancelled = Atomic<Bool>(false)

    init(argv: [String], environment: [String: String]) throws(POSIXError) {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1], wake: [Int32] = [-1, -1]
        // pipe2(O_CLOEXEC) is not visible from Swift; the flag follows at once.
        func cloexecPipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return true
        }
        guard cloexecPipe(&out) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        guard cloexecPipe(&err) else { Self.closeAll(out); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        guard cloexecPipe(&wake) else { Self.closeAll(out + err); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        _ = fcntl(wake[1], F_SETFL, O_NONBLOCK)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Own process group; default signal dispositions and an empty mask (the operator ignores
        // SIGTERM and SIGINT for its own signal handling, and ignored dispositions survive exec).
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgs, cEnv)
        close(out[1])
        close(err[1])
        guard rc == 0 else {
            Self.closeAll([out[0], err[0]] + wake)
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
        }
        self.pid = pid
        stdoutFD = out[0]
        stderrFD = err[0]
        wakeRead = wake[0]
        wakeWrite = wake[1]
    }

    deinit { Self.closeAll([wakeRead, wakeWrite]) }

    private static func closeAll(_ fds: [Int32]) { for fd in fds where fd >= 0 { close(fd) } }

    /// Stops the plugin soon (from `collect`'s thread): safe from any thread, any number of times.
    func cancel() {
        guard !cancelled.exchange(true, ordering: .relaxed) else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Reads both pipes until they close and reaps the plugin; blocks. Past `timeout` (or on
    /// cancellation, or when stdout outgrows its bound) the group gets SIGTERM, `killGrace`
    /// later SIGKILL. The process is never signalled after it was reaped (its pid could be reused).
    func collect(timeout: TimeInterval, killGrace: TimeInterval, maxStdout: Int, maxStderr: Int) -> Outcome {
        var stdout = Data(), stderr = Data()
        var outOpen = true, errOpen = true
        var stopped: Stop?
        var termAt: ContinuousClock.Instant?, killAt: ContinuousClock.Instant?
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(timeout * 1000))
        let grace = Duration.milliseconds(Int(killGrace * 1000))
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var status: Int32 = 0
        func stop(_ why: Stop) {
            if stopped == nil { stopped = why }
        }
        while true {
            let now = clock.now
            if now >= deadline { stop(.timeout) }
            if stopped != nil, termAt == nil { kill(-pid, SIGTERM); termAt = now }
            if let termAt, killAt == nil, now >= termAt + grace { kill(-pid, SIGKILL); killAt = now }
            // Killed and still not closed: a descendant that left the group holds the pipes. Stop waiting for it.
            if let killAt, now >= killAt + .seconds(1), outOpen || errOpen {
                if outOpen { close(stdoutFD); outOpen = false }
                if errOpen { close(stderrFD); errOpen = false }
            }
            if !outOpen && !errOpen {
                var raw: Int32 = 0
                let r = waitpid(pid, &raw, WNOHANG)
                if r == pid {
                    let exited = raw & 0x7f == 0
                    status = exited ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                    break
                }
                if r < 0 && errno != EINTR {
                    // No status to be had (ECHILD): never a success.
                    status = -1
                    break
                }
            }
            // Sleep until output arrives or the next step is due.
            var next: ContinuousClock.Instant = stopped == nil ? deadline : (killAt.map { $0 + .seconds(1) } ?? (termAt ?? now) + grace)
            if !outOpen && !errOpen { next = min(next, now + .milliseconds(20)) }
            let wait = max(Duration.zero, next - now)
            let ms = Int32(clamping: wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000 + 1)
            var fds: [pollfd] = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            if outOpen { fds.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), ms) > 0 else { continue }
            if fds[0].revents != 0 {
                var byte: UInt8 = 0
                _ = read(wakeRead, &byte, 1)
                stop(.cancelled)
            }
            for f in fds.dropFirst() where f.revents != 0 {
                let n = read(f.fd, &buffer, buffer.count)
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if f.fd == stdoutFD {
                    if n <= 0 { close(stdoutFD); outOpen = false; continue }
                    guard stdout.count + n <= maxStdout else {
                        // Not read further: the plugin is stopped instead of buffered.
                        stop(.stdoutTooLarge)
                        close(stdoutFD)
                        outOpen = false
                        continue
                    }
                    stdout.append(contentsOf: buffer[..<n])
                } else {
                    if n <= 0 { close(stderrFD); errOpen = false; continue }
                    // The start explains a failure; the rest is drained so the plugin never blocks on it.
                    stderr.append(contentsOf: buffer[..<min(n, max(0, maxStderr - stderr.count))])
                }
            }
        }
        return Outcome(status: status, stdout: stdout, stderr: stderr, stopped: stopped)
    }
}

/// RFC 3339 times as Kubernetes writes them (with or without fractional seconds, any offset).
public enum RFC3339 {
    public static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }

    public static func format(_ d: Date, fractional: Bool = false) -> String {
        if !fractional { return seconds(d) }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }

    /// `2006-01-02T15:04:05Z` from the calendar fields (no formatter object: the devcluster
    /// stamps every write with it).
    private static func seconds(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// A `metav1.MicroTime` (Lease acquire and renew times, Event times): exactly six fractional
    /// digits in UTC. kube-apiserver parses these with the layout
    /// `2006-01-02T15:04:05.000000Z07:00` (apimachinery `pkg/apis/meta/v1/micro_time.go`
    /// `UnmarshalJSON`), which refuses any other number of digits: a millisecond time is a 400.
    public static func formatMicro(_ d: Date) -> String {
        let seconds = d.timeIntervalSince1970.rounded(.down)
        let micros = min(999_999, Int(((d.timeIntervalSince1970 - seconds) * 1_000_000).rounded(.down)))
        let whole = format(Date(timeIntervalSince1970: seconds))
        return String(whole.dropLast()) + "." + String(format: "%06d", micros) + "Z"
    }

    /// Whether `s` is a valid `metav1.MicroTime` as kube-apiserver reads one.
    public static func isMicroTime(_ s: String) -> Bool {
        s.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression) != nil
    }
}
