import Foundation
import KubeClient
import Synchronization

/// Which prober (pkg/kubelet/prober/prober_manager.go keeps one worker per container and kind).
enum ProbeKind: String, Sendable {
    case liveness = "Liveness", readiness = "Readiness", startup = "Startup"
}

/// A probe's settings with the API defaults (pkg/apis/core/v1/defaults.go `SetDefaults_Probe`).
struct ProbeSpec: Sendable {
    var handler: JSONValue
    var initialDelay: Int
    var period: Int
    var timeout: Int
    var successThreshold: Int
    var failureThreshold: Int

    init(_ probe: JSONValue) {
        handler = probe
        initialDelay = probe["initialDelaySeconds"]?.intValue ?? 0
        period = max(1, probe["periodSeconds"]?.intValue ?? 10)
        timeout = max(1, probe["timeoutSeconds"]?.intValue ?? 1)
        successThreshold = max(1, probe["successThreshold"]?.intValue ?? 1)
        failureThreshold = max(1, probe["failureThreshold"]?.intValue ?? 3)
    }
}

/// prober/worker.go `doProbe`'s bookkeeping: a result is reported only once it repeated
/// `successThreshold` / `failureThreshold` times, and only when it differs from the last one.
struct ProbeCounter: Sendable {
    let spec: ProbeSpec
    private(set) var reported: Bool?
    private var last: Bool?
    private var run = 0

    init(spec: ProbeSpec, initial: Bool?) {
        self.spec = spec
        reported = initial
    }

    /// The new result to report, if any.
    mutating func record(_ success: Bool) -> Bool? {
        if last == success { run += 1 } else { last = success; run = 1 }
        if success && run < spec.successThreshold { return nil }
        if !success && run < spec.failureThreshold { return nil }
        guard reported != success else { return nil }
        reported = success
        return success
    }
}

/// What one container instance shares with its probers and log pump.
final class ContainerInstance: Sendable {
    let id: String
    let number: Int
    let process: ContainerProcess
    let startedAt: Date
    let log: ContainerLogFile
    private let flags = Mutex<(alive: Bool, started: Bool)>((true, false))
    /// The task copying the output into `log`.
    private let pump = Mutex<Task<Void, Never>?>(nil)

    init(id: String, number: Int, process: ContainerProcess, startedAt: Date, log: ContainerLogFile) {
        self.id = id
        self.number = number
        self.process = process
        self.startedAt = startedAt
        self.log = log
    }

    /// Copies the output into the log until both pipes close. Unstructured on purpose: it must
    /// outlive the worker's cancellation (the kubelet stopping) to record what the container
    /// writes while it is being stopped; `finishLog` bounds the wait for it and cancels it.
    func startPump(files: ContainerLogFiles) {
        let (process, log) = (process, log)
        pump.withLock {
            $0 = Task {
                for await (stream, line) in process.output { log.append(stream, line, at: Date()) }
                log.close()
                files.remove(log.path)
            }
        }
    }

    /// Waits (at most `limit`) for the output to end, then stops copying it.
    func finishLog(atMost limit: Duration) async {
        await log.waitClosed(atMost: limit)
        pump.withLock { $0 }?.cancel()
    }

    var alive: Bool { flags.withLock { $0.alive } }
    func exited() { flags.withLock { $0.alive = false } }
    /// The startup probe succeeded (or there is none): liveness and readiness probing begins.
    var started: Bool { flags.withLock { $0.started } }
    func markStarted() { flags.withLock { $0.started = true } }
}

/// Runs one probe once (pkg/kubelet/prober/prober.go `runProbe`).
enum Prober {
    struct Outcome: Sendable {
        var success: Bool
        var message: String
    }

    /// httpGet (pkg/probe/http: 2xx and 3xx succeed; `User-Agent: kube-probe/<version>`),
    /// tcpSocket (pkg/probe/tcp: a connection succeeds) and exec (a process in the container's
    /// sandbox; exit 0 succeeds). HTTPS and gRPC probes are not implemented and fail, saying so.
    static func run(_ spec: ProbeSpec, container: JSONValue, podIP: String, exec: (@Sendable ([String], Duration) async -> Outcome)?) async -> Outcome {
        let h = spec.handler
        if let http = h["httpGet"] {
            guard let port = port(http["port"], container: container) else {
                return Outcome(success: false, message: "unable to resolve port \(http["port"].map { "\($0)" } ?? "")")
            }
            let host = http["host"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? podIP
            if (http["scheme"]?.stringValue ?? "HTTP").uppercased() == "HTTPS" {
                return Outcome(success: false, message: "HTTPS probes are not supported by the devcluster node")
            }
            var path = http["path"]?.stringValue ?? "/"
            if !path.hasPrefix("/") { path = "/" + path }
            let headers = (http["httpHeaders"]?.arrayValue ?? []).compactMap { h -> (String, String)? in
                guard let n = h["name"]?.stringValue else { return nil }
                return (n, h["value"]?.stringValue ?? "")
            }
            let url = "http://\(host):\(port)\(path)"
            let timeout = spec.timeout
            let target = path
            return await onThread {
                switch ProbeSocket.httpGet(host: host, port: port, path: target, headers: headers, timeout: timeout) {
                case .success(let code):
                    if (200..<400).contains(code) { return Outcome(success: true, message: "") }
                    return Outcome(success: false, message: "HTTP probe failed with statuscode: \(code)")
                case .failure(let why):
                    return Outcome(success: false, message: "Get \"\(url)\": \(why.text(host: host, port: port))")
                }
            }
        }
        if let tcp = h["tcpSocket"] {
            guard let port = port(tcp["port"], container: container) else {
                return Outcome(success: false, message: "unable to resolve port")
            }
            let host = tcp["host"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? podIP
            let timeout = spec.timeout
            return await onThread {
                switch ProbeSocket.connect(host: host, port: port, timeout: timeout) {
                case .success(let fd): close(fd); return Outcome(success: true, message: "")
                case .failure(let why): return Outcome(success: false, message: why.text(host: host, port: port))
                }
            }
        }
        if let command = h["exec"]?["command"]?.arrayValue?.compactMap(\.stringValue), !command.isEmpty {
            guard let exec else { return Outcome(success: false, message: "exec probes need a running container") }
            return await exec(command, .seconds(spec.timeout))
        }
        return Outcome(success: false, message: "probe handler not supported by the devcluster node")
    }

    /// A port number, or a named `containerPort` (prober.go `findPortByName`).
    static func port(_ value: JSONValue?, container: JSONValue) -> Int? {
        switch value {
        case .int(let p)?: return p
        case .string(let s)?:
            if let p = Int(s) { return p }
            return container["ports"]?.arrayValue?.first { $0["name"]?.stringValue == s }?["containerPort"]?.intValue
        default: return nil
        }
    }

    /// Blocking socket work on a thread of its own, never on the cooperative pool.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { cont in
            let t = Thread { cont.resume(returning: body()) }
            t.stackSize = 256 * 1024
            t.start()
        }
    }
}

/// Plain IPv4 sockets for probes (Go's net/http and net.Dial as the kubelet uses them).
enum ProbeSocket {
    enum Failure: Error {
        case refused, timeout, other(String)
        func text(host: String, port: Int) -> String {
            switch self {
            case .refused: "dial tcp \(host):\(port): connect: connection refused"
            case .timeout: "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            case .other(let s): s
            }
        }
    }

    static func connect(host: String, port: Int, timeout: Int) -> Result<Int32, Failure> {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return .failure(.other("dial tcp: lookup \(host): no such host")) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(.other("socket: \(String(cString: strerror(errno)))")) }
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            if errno != EINPROGRESS { let e = errno; close(fd); return .failure(e == ECONNREFUSED ? .refused : .other(String(cString: strerror(e)))) }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = poll(&pfd, 1, Int32(timeout * 1000))
            if n == 0 { close(fd); return .failure(.timeout) }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { close(fd); return .failure(err == ECONNREFUSED ? .refused : .other("dial tcp \(host):\(port): connect: \(String(cString: strerror(err)))")) }
        }
        // Back to blocking, with the probe's timeout on reads and writes.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return .success(fd)
    }

    /// One HTTP/1.1 GET; the status code of the answer.
    static func httpGet(host: String, port: Int, path: String, headers: [(String, String)], timeout: Int) -> Result<Int, Failure> {
        let fd: Int32
        switch connect(host: host, port: port, timeout: timeout) {
        case .success(let f): fd = f
        case .failure(let e): return .failure(e)
        }
        defer { close(fd) }
        var request = "GET \(path) HTTP/1.1\r\n"
        var names = Set<String>()
        for (n, v) in headers { request += "\(n): \(v)\r\n"; names.insert(n.lowercased()) }
        if !names.contains("host") { request += "Host: \(host):\(port)\r\n" }
        if !names.contains("user-agent") { request += "User-Agent: kube-probe/1.35\r\n" }
        if !names.contains("accept") { request += "Accept: */*\r\n" }
        request += "Connection: close\r\n\r\n"
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            return .failure(.other(String(cString: strerror(errno))))
        }
        var buffer = [UInt8](repeating: 0, count: 1024)
        var received: [UInt8] = []
        while !received.contains(0x0A) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { return .failure(errno == EAGAIN || errno == EWOULDBLOCK ? .timeout : .other(String(cString: strerror(errno)))) }
            if n == 0 { return .failure(.other("EOF")) }
            received += buffer[..<n]
        }
        let statusLine = String(decoding: received.prefix { $0 != 0x0A }, as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else { return .failure(.other("malformed HTTP response \(statusLine.debugDescription)")) }
        return .success(code)
    }
}
