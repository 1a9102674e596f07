import BenchSupport
import Foundation
import Synchronization

struct ToolResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion on a thread of its own (never blocking the cooperative pool,
/// which the in-process devcluster needs to answer it), both pipes read concurrently.
func runTool(_ path: String, _ args: [String], environment: [String: String]) async throws -> ToolResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.environment = environment
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    return try await withCheckedThrowingContinuation { cont in
        Thread {
            do { try p.run() } catch { cont.resume(throwing: error); return }
            let errData = Mutex(Data())
            let done = DispatchSemaphore(value: 0)
            Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() }; done.signal() }.start()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            done.wait()
            p.waitUntilExit()
            cont.resume(returning: ToolResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                                              stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self)))
        }.start()
    }
}

/// kubectl as the outside actor, with the admin kubeconfig.
struct Kubectl: Sendable {
    let kubeconfig: String

    func run(_ args: [String]) async throws -> ToolResult {
        try await runTool("/usr/bin/env", ["kubectl", "--request-timeout=10s"] + args,
                          environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "KUBECONFIG": kubeconfig, "HOME": NSTemporaryDirectory()])
    }

    @discardableResult
    func must(_ args: [String]) async throws -> ToolResult {
        let r = try await run(args)
        guard r.status == 0 else { throw ChaosFailure("kubectl \(args.prefix(3).joined(separator: " ")) failed: \(r.stderr)") }
        return r
    }
}

/// The operator under test, for the signal handler.
let operatorPID = Atomic<Int32>(0)

/// The operator process: stderr to a file (read back for the report), READY from sd_notify.
final class OperatorUnderTest: Sendable {
    let process: Process
    let logPath: String
    let notify: DatagramListener
    private let exit = Mutex<Int32?>(nil)
    /// Signalled once, when the process has exited.
    private let ended = DispatchSemaphore(value: 0)

    init(binary: String, dir: String, arguments: [String], environment: [String: String]) throws {
        logPath = "\(dir)/operator.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600])
        notify = try DatagramListener(path: "\(dir)/notify.sock")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        var env = ["PATH": "/usr/bin:/bin", "HOME": dir, "NOTIFY_SOCKET": notify.path]
        // Under make test-asan/test-tsan the operator's reports follow the runner's settings.
        for key in ["ASAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"] { env[key] = ProcessInfo.processInfo.environment[key] }
        env.merge(environment) { _, n in n }
        p.environment = env
        p.standardOutput = FileHandle(forWritingAtPath: logPath)
        p.standardError = FileHandle(forWritingAtPath: logPath)
        p.standardInput = FileHandle.nullDevice
        process = p
        let ended = self.ended
        p.terminationHandler = { [weak self] proc in
            self?.exit.withLock { $0 = proc.terminationStatus }
            ended.signal()
        }
        try p.run()
        // A runner stopped by a signal (a timeout, ^C) takes its operator with it: no orphans.
        operatorPID.store(p.processIdentifier, ordering: .relaxed)
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig) { s in
                let pid = operatorPID.load(ordering: .relaxed)
                if pid > 0 { Glibc.kill(pid, SIGKILL) }
                _exit(128 + s)
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var exitStatus: Int32? { exit.withLock { $0 } }

    /// READY=1 within `seconds`; the socket is then read on for the rest of the run, as systemd
    /// does (an unread notify socket fills after 11 datagrams and blocks the sender).
    func waitReady(seconds: Int) async -> Bool {
        let notify = self.notify
        let ready = await withCheckedContinuation { c in
            Thread { c.resume(returning: notify.waitFor("READY=1", seconds: seconds)) }.start()
        }
        Thread { notify.drain() }.start()
        return ready
    }

    /// SIGTERM, then the exit status (SIGKILL and -1 when it does not exit in time).
    func stop(within: Duration) async -> Int32 {
        Glibc.kill(pid, SIGTERM)
        let ended = self.ended
        let (secs, atto) = within.components
        let exited = await withCheckedContinuation { c in
            Thread { c.resume(returning: ended.wait(timeout: .now() + .milliseconds(Int(secs) * 1000 + Int(atto / 1_000_000_000_000_000))) == .success) }.start()
        }
        guard exited, let status = exitStatus else {
            Glibc.kill(pid, SIGKILL)
            return -1
        }
        return status
    }

    func forceKill() { if exitStatus == nil { Glibc.kill(pid, SIGKILL) } }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    func logLines(containing text: String) -> [String] { log.split(separator: "\n").filter { $0.contains(text) }.map(String.init) }
    func tail(_ n: Int = 15) -> String { log.split(separator: "\n").suffix(n).joined(separator: "\n") }
}
