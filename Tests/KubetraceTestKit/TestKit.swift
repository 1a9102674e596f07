public import Foundation
public import KubeClient
public import KubeSim
public import Logging
public import Synchronization

/// A private temporary directory, removed when the value is released.
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init() {
        path = NSTemporaryDirectory() + "kt-test-" + UUID().uuidString
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            preconditionFailure("cannot create a temporary directory: \(error)")
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes a file (owner-only unless `mode` says otherwise) and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String, mode: Int = 0o600) -> String {
        let p = "\(path)/\(name)"
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        return p
    }
}

/// How much slower than normal the code under test runs (`KUBETRACE_TEST_TIME_SCALE`, default 1;
/// `make test-tsan` sets 4): tests whose point is a real-time schedule stretch their windows by it.
public let testTimeScale: Double = Double(ProcessInfo.processInfo.environment["KUBETRACE_TEST_TIME_SCALE"] ?? "").flatMap { $0 >= 1 ? $0 : nil } ?? 1

/// The sanitizer settings of this process (`make test-asan`/`test-tsan`), for the binaries the
/// tests start with a bare environment: their reports must follow the same rules.
public var sanitizerEnvironment: [String: String] {
    ProcessInfo.processInfo.environment.filter { ["ASAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "KUBETRACE_TEST_TIME_SCALE"].contains($0.key) }
}

/// What a finished subprocess printed.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs blocking work (pipe reads, waits) on a thread of its own: never on the
/// cooperative pool, and not on libdispatch's global queues either, which on Linux
/// grow slowly when many of their threads block and then delay unrelated work.
public func onOwnThread(_ body: @escaping @Sendable () -> Void) {
    let thread = Thread { body() }
    thread.stackSize = 1 << 20
    thread.start()
}

/// Runs a program to completion, reading both pipes concurrently (never on the cooperative pool).
/// A program still running after `timeout` is killed (SIGKILL; its status then says so), so a
/// command that should have failed at once cannot hang a test.
public func runProcess(_ executable: URL, _ args: [String], environment: [String: String], stdin: String? = nil, timeout: Duration = .seconds(120)) async throws -> ProcessResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    p.environment = environment
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    return try await withCheckedThrowingContinuation { cont in
        onOwnThread {
            do { try p.run() } catch { cont.resume(throwing: error); return }
            let pid = p.processIdentifier
            let finished = Mutex(false)
            let (secs, atto) = timeout.components
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(secs) * 1000 + Int(atto / 1_000_000_000_000_000))) {
                if !finished.withLock({ $0 }) { kill(pid, SIGKILL) }
            }
            defer { finished.withLock { $0 = true } }
            if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
            try? inp.fileHandleForWriting.close()
            let e = DataBox()
            let g = DispatchGroup()
            g.enter()
            onOwnThread { e.data = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
            let o = out.fileHandleForReading.readDataToEndOfFile()
            g.wait()
            p.waitUntilExit()
            cont.resume(returning: ProcessResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e.data, as: UTF8.self)))
        }
    }
}

/// Runs a tool from PATH (kubectl, python3, checkov …) with this environment plus `environment`.
public func run(_ tool: String, _ args: [String], environment: [String: String] = [:], stdin: String? = nil) async throws -> ProcessResult {
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { _, n in n }
    return try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), [tool] + args, environment: env, stdin: stdin)
}

/// Written once by a reader thread, read after it finished.
public final class DataBox: @unchecked Sendable {
    public var data = Data()
    public init() {}
}

/// A client of the devcluster as its admin, or with another bearer token.
public func adminClient(_ cluster: DevCluster, token: String? = nil) async throws -> KubeClient {
    let yaml = cluster.kubeconfigYAML(server: await cluster.url(), token: token)
    return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "devcluster", directory: "/")))
}

/// Captures log lines (message and metadata) to check wording and that no secret leaks.
public final class LogSink: Sendable {
    public let lines = Mutex<[String]>([])
    private let waiters = Mutex<[(text: String, count: Int, id: UUID, c: CheckedContinuation<Void, Never>)]>([])
    public init() {}
    public var all: [String] { lines.withLock { $0 } }

    public func append(_ line: String) {
        lines.withLock { $0.append(line) }
        let ready = waiters.withLock { w -> [CheckedContinuation<Void, Never>] in
            let hit = w.filter { line.contains($0.text) && self.count($0.text) >= $0.count }
            w.removeAll { line.contains($0.text) && self.count($0.text) >= $0.count }
            return hit.map(\.c)
        }
        ready.forEach { $0.resume() }
    }

    private func count(_ text: String) -> Int { lines.withLock { $0.filter { $0.contains(text) }.count } }

    /// Waits until `count` lines contain `text` (already logged or to come), at most `timeout`.
    public func waitFor(_ text: String, count: Int = 1, timeout: Duration = .seconds(10)) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let id = UUID()
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        // Checked and registered under the waiters' lock, so a line appended meanwhile is not missed.
                        let now = self.waiters.withLock { w -> Bool in
                            if Task.isCancelled || self.count(text) >= count { return true }
                            w.append((text, count, id, c))
                            return false
                        }
                        if now { c.resume() }
                    }
                } onCancel: {
                    let mine = self.waiters.withLock { w -> [CheckedContinuation<Void, Never>] in
                        defer { w.removeAll { $0.id == id } }
                        return w.filter { $0.id == id }.map(\.c)
                    }
                    mine.forEach { $0.resume() }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw AwaitTimeout(description: "timed out after \(timeout) waiting for a log line containing \"\(text)\"")
            }
            try await group.next()
            group.cancelAll()
        }
    }

    public func logger() -> Logger {
        var l = Logger(label: "test") { _ in SinkHandler(sink: self) }
        l.logLevel = .debug
        return l
    }
}

public struct SinkHandler: LogHandler {
    let sink: LogSink
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(sink: LogSink) { self.sink = sink }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        let (level, message) = (event.level, event.message)
        sink.append("\(level) \(message) \(merged)")
    }
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picked, listening when asked; the caller
/// closes it. Tests use it as a server that never answers, or close it at once to learn a free port.
public func loopbackSocket(listening: Bool) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok, !listening || listen(fd, 16) == 0 else {
        close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

/// Runs `body`, which should fail, and returns its `KubeClientError` (nil when it succeeded or threw something else).
public func expectError(_ body: () async throws -> Void) async -> KubeClientError? {
    do { try await body(); return nil } catch let e as KubeClientError { return e } catch { return nil }
}
