import Foundation
import Hummingbird
import KubeClient
import NIOCore
import Synchronization

/// The CRI container log format (pkg/kubelet/kuberuntime/logs/logs.go; containerd writes it):
/// one record a line, `<RFC3339Nano time> <stdout|stderr> <F|P> <content>`.
enum CRILog {
    /// Go's `time.RFC3339Nano` (trailing zeros of the fraction dropped), as containerd stamps records.
    static func timestamp(_ date: Date) -> String {
        let (whole, nanos) = split(date)
        guard nanos > 0 else { return whole + "Z" }
        var frac = String(format: "%09d", nanos)
        while frac.hasSuffix("0") { frac.removeLast() }
        return whole + "." + frac + "Z"
    }

    /// logs.go `timeFormatOut` (`RFC3339NanoFixed`: always nine digits), what `timestamps=true` prints.
    static func fixedTimestamp(_ date: Date) -> String {
        let (whole, nanos) = split(date)
        return whole + "." + String(format: "%09d", nanos) + "Z"
    }

    private static func split(_ date: Date) -> (String, Int) {
        let t = date.timeIntervalSince1970
        let seconds = t.rounded(.down)
        let nanos = min(999_999_999, Int(((t - seconds) * 1_000_000_000).rounded()))
        return (String(RFC3339.format(Date(timeIntervalSince1970: seconds)).dropLast()), nanos)
    }

    /// Parses a record's time (RFC3339 with up to nine fraction digits, `Z`).
    static func parseTime(_ s: Substring) -> Date? {
        guard s.hasSuffix("Z") else { return nil }
        let body = s.dropLast()
        let parts = body.split(separator: ".", maxSplits: 1)
        guard let whole = RFC3339.parse(String(parts[0]) + "Z") else { return nil }
        guard parts.count == 2 else { return whole }
        let digits = String(parts[1].prefix(9))
        let nanos = Int(digits + String(repeating: "0", count: 9 - digits.count)) ?? 0
        return whole.addingTimeInterval(Double(nanos) / 1e9)
    }

    struct Record {
        var time: Date
        var stream: String
        var partial: Bool
        var content: ArraySlice<UInt8>
    }

    /// `parseCRILog`.
    static func parse(_ line: ArraySlice<UInt8>) -> Record? {
        let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count >= 3, let time = parseTime(Substring(decoding: fields[0], as: UTF8.self)) else { return nil }
        let stream = String(decoding: fields[1], as: UTF8.self)
        let tag = String(decoding: fields[2], as: UTF8.self)
        return Record(time: time, stream: stream, partial: tag.hasPrefix("P"), content: fields.count == 4 ? fields[3] : [])
    }

    /// A record for `content` (one line, without its newline).
    static func record(_ stream: ContainerOutputStream, _ content: [UInt8], at date: Date) -> [UInt8] {
        Array("\(timestamp(date)) \(stream.rawValue) F ".utf8) + content + [0x0A]
    }
}

/// One container instance's log file (`<pods>/<ns>_<pod>_<uid>/<container>/<restartCount>.log`),
/// written while the container runs; followers are woken after each append and at close.
final class ContainerLogFile: Sendable {
    let path: String
    private struct State {
        var fd: Int32
        var closed = false
        var followers: [Int: AsyncStream<Void>.Continuation] = [:]
        var next = 0
    }
    private let state: Mutex<State>

    init(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw NodeRuntimeError("open \(path): \(String(cString: strerror(errno)))") }
        self.path = path
        state = Mutex(State(fd: fd))
    }

    /// Appends one record; lines longer than 16 KiB are split into partial records (`P`), as
    /// containerd's `cio` does at its buffer size.
    func append(_ stream: ContainerOutputStream, _ line: [UInt8], at date: Date) {
        var content = line
        if content.last == 0x0A { content.removeLast() }
        var bytes: [UInt8] = []
        let chunk = 16 * 1024
        var start = 0
        while content.count - start > chunk {
            bytes += Array("\(CRILog.timestamp(date)) \(stream.rawValue) P ".utf8) + content[start..<(start + chunk)] + [0x0A]
            start += chunk
        }
        bytes += CRILog.record(stream, Array(content[start...]), at: date)
        let wake: [AsyncStream<Void>.Continuation] = state.withLock { s in
            guard !s.closed else { return [] }
            bytes.withUnsafeBytes { p in
                var off = 0
                while off < p.count {
                    let n = write(s.fd, p.baseAddress! + off, p.count - off)
                    if n <= 0 { break }
                    off += n
                }
            }
            return Array(s.followers.values)
        }
        for w in wake { w.yield() }
    }

    func close() {
        let wake: [AsyncStream<Void>.Continuation] = state.withLock { s in
            guard !s.closed else { return [] }
            s.closed = true
            Foundation.close(s.fd)
            defer { s.followers = [:] }
            return Array(s.followers.values)
        }
        for w in wake { w.yield(); w.finish() }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Wake-ups after each append; finished at close (a control signal: one pending at most).
    func changes() -> AsyncStream<Void> {
        let (stream, cont) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let added: Bool = state.withLock { s in
            guard !s.closed else { return false }
            let id = s.next
            s.next += 1
            s.followers[id] = cont
            cont.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.followers.removeValue(forKey: id) } }
            return true
        }
        if !added { cont.finish() }
        return stream
    }
}

/// The node's container log files: each container id's path, and the files open for writing
/// by path (the `follow` readers find them here).
final class ContainerLogFiles: Sendable {
    private let files = Mutex<(open: [String: ContainerLogFile], byID: [String: String])>(([:], [:]))
    func register(id: String, path: String) { files.withLock { $0.byID[id] = path } }
    func path(forID id: String) -> String? { files.withLock { $0.byID[id] } }
    func add(_ file: ContainerLogFile) { files.withLock { $0.open[file.path] = file } }
    func remove(_ path: String) { _ = files.withLock { $0.open.removeValue(forKey: path) } }
    func open(_ path: String) -> ContainerLogFile? { files.withLock { $0.open[path] } }
}

/// kubectl logs' options (pkg/kubelet/server/server.go `getContainerLogs` → `v1.PodLogOptions`).
struct PodLogQuery: Sendable {
    var container: String?
    var previous = false
    var follow = false
    var timestamps = false
    var tailLines: Int?
    var limitBytes: Int?
    var since: Date?

    /// Parses the query as kube-apiserver's `PodLogOptions` conversion and validation do
    /// (pkg/apis/core/validation `ValidatePodLogOptions`).
    init(_ query: [String: String], now: Date) throws(APIError) {
        container = query["container"].flatMap { $0.isEmpty ? nil : $0 }
        func bool(_ k: String) -> Bool { ["true", "1"].contains(query[k]?.lowercased() ?? "") }
        previous = bool("previous")
        follow = bool("follow")
        timestamps = bool("timestamps")
        if let t = query["tailLines"] {
            guard let v = Int(t) else { throw APIError.badRequest("tailLines: Invalid value: \"\(t)\": must be an integer") }
            if v < 0 { throw APIError.invalid(.pod, "", field: "tailLines", "Invalid value: \(v): must be greater than or equal to 0") }
            tailLines = v
        }
        if let b = query["limitBytes"] {
            guard let v = Int(b) else { throw APIError.badRequest("limitBytes: Invalid value: \"\(b)\": must be an integer") }
            if v < 1 { throw APIError.invalid(.pod, "", field: "limitBytes", "Invalid value: \(v): must be greater than 0") }
            limitBytes = v
        }
        if let s = query["sinceSeconds"] {
            guard let v = Int(s) else { throw APIError.badRequest("sinceSeconds: Invalid value: \"\(s)\": must be an integer") }
            if v < 1 { throw APIError.invalid(.pod, "", field: "sinceSeconds", "Invalid value: \(v): must be greater than 0") }
            since = now.addingTimeInterval(-TimeInterval(v))
        }
        if let t = query["sinceTime"] {
            if since != nil { throw APIError.invalid(.pod, "", field: "", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified") }
            since = RFC3339.parse(t)
        }
    }
}

/// logs.go `ReadLogs`: turns records into what `kubectl logs` prints.
struct LogRenderer {
    let query: PodLogQuery
    private(set) var written = 0
    var exhausted: Bool { query.limitBytes.map { written >= $0 } ?? false }

    init(query: PodLogQuery) { self.query = query }

    /// The output for complete lines of a log file's bytes (records before `since` skipped;
    /// the byte limit cuts mid-record as the kubelet's `LimitWriter` does).
    mutating func render(_ lines: [ArraySlice<UInt8>]) -> [UInt8] {
        var out: [UInt8] = []
        for line in lines {
            guard !exhausted, let r = CRILog.parse(line) else { continue }
            if let since = query.since, r.time < since { continue }
            var piece: [UInt8] = []
            if query.timestamps { piece += Array((CRILog.fixedTimestamp(r.time) + " ").utf8) }
            piece += r.content
            if !r.partial { piece.append(0x0A) }
            if let limit = query.limitBytes, written + piece.count > limit { piece = Array(piece.prefix(limit - written)) }
            written += piece.count
            out += piece
        }
        return out
    }

    /// `tail.FindTailLineStartIndex`: the last `n` records.
    static func tail(_ lines: [ArraySlice<UInt8>], _ n: Int?) -> [ArraySlice<UInt8>] {
        guard let n else { return lines }
        return Array(lines.suffix(n))
    }
}

/// Complete lines of a byte buffer and the unfinished rest.
func completeLines(_ bytes: [UInt8]) -> (lines: [ArraySlice<UInt8>], consumed: Int) {
    var lines: [ArraySlice<UInt8>] = []
    var start = 0
    for (i, b) in bytes.enumerated() where b == 0x0A {
        lines.append(bytes[start..<i])
        start = i + 1
    }
    return (lines, start)
}

extension Kubelet {
    /// `GET …/pods/NAME/log`: kube-apiserver's checks (pkg/registry/core/pod/strategy.go
    /// `LogLocation`), then the kubelet's (pkg/kubelet/kubelet_pods.go `validateContainerLogStatus`,
    /// kuberuntime `ReadLogs`); plain text, chunked while following.
    func podLogs(namespace: String, pod name: String, query: [String: String]) async throws -> Response {
        let pod = try await store.get(.pod, namespace: namespace, name: name)
        let q = try PodLogQuery(query, now: Date())
        let containers = (pod["spec"]?["containers"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        let initContainers = (pod["spec"]?["initContainers"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        let container: String
        if let c = q.container {
            guard containers.contains(c) || initContainers.contains(c) else {
                throw APIError.badRequest("container \(c) is not valid for pod \(name)")
            }
            container = c
        } else if containers.count == 1 {
            container = containers[0]
        } else if containers.isEmpty {
            throw APIError.badRequest("a container name must be specified for pod \(name)")
        } else {
            var text = "a container name must be specified for pod \(name), choose one of: [\(containers.joined(separator: " "))]"
            if !initContainers.isEmpty { text += " or one of the init containers: [\(initContainers.joined(separator: " "))]" }
            throw APIError.badRequest(text)
        }
        guard (pod["spec"]?["nodeName"]?.stringValue ?? "") == self.options.name else {
            throw APIError.badRequest("pod \(name) does not have a host assigned")
        }
        let statuses = (pod["status"]?["containerStatuses"]?.arrayValue ?? []) + (pod["status"]?["initContainerStatuses"]?.arrayValue ?? [])
        guard let status = statuses.first(where: { $0["name"]?.stringValue == container }) else {
            throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is waiting to start: ContainerCreating")
        }
        // kubelet_pods.go `validateContainerLogStatus`: which instance's log, by container id.
        let state = status["state"], lastState = status["lastState"]
        let containerID: String
        if q.previous {
            guard let id = lastState?["terminated"]?["containerID"]?.stringValue, !id.isEmpty else {
                throw APIError.badRequest("previous terminated container \"\(container)\" in pod \"\(name)\" not found")
            }
            containerID = id
        } else if state?["running"] != nil, let id = status["containerID"]?.stringValue {
            containerID = id
        } else if let terminated = state?["terminated"] {
            if let id = terminated["containerID"]?.stringValue, !id.isEmpty {
                containerID = id
            } else if let id = lastState?["terminated"]?["containerID"]?.stringValue, !id.isEmpty {
                containerID = id
            } else {
                throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is terminated")
            }
        } else if let terminated = lastState?["terminated"] {
            guard let id = terminated["containerID"]?.stringValue, !id.isEmpty else {
                throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is terminated")
            }
            containerID = id
        } else if let reason = state?["waiting"]?["reason"]?.stringValue {
            switch reason {
            case "ErrImagePull": throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is waiting to start: image can't be pulled")
            case "ImagePullBackOff": throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is waiting to start: trying and failing to pull image")
            default: throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is waiting to start: \(reason)")
            }
        } else {
            throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is waiting to start - no logs yet")
        }
        guard let path = logFiles.path(forID: containerID) else {
            throw APIError.badRequest("container \"\(container)\" in pod \"\(name)\" is not available")
        }
        let content = (try? Data(contentsOf: URL(fileURLWithPath: path))).map(Array.init) ?? []
        var (lines, consumed) = completeLines(content)
        lines = LogRenderer.tail(lines, q.tailLines)
        var renderer = LogRenderer(query: q)
        let first = renderer.render(lines)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain"
        let live = q.follow && !q.previous ? logFiles.open(path) : nil
        guard let live else {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: first)))
        }
        let changes = live.changes()
        let (start, initial) = (consumed, renderer)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var renderer = initial
            if !first.isEmpty { try await writer.write(ByteBuffer(bytes: first)) }
            var offset = start
            var iterator = changes.makeAsyncIterator()
            while !renderer.exhausted {
                let closed = live.isClosed
                let bytes = Self.read(path, from: offset)
                let (lines, used) = completeLines(bytes)
                offset += used
                let out = renderer.render(lines)
                if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                if closed { break }
                guard await iterator.next() != nil else {
                    // Closed after our last read: one more pass picks up the final records.
                    let rest = renderer.render(completeLines(Self.read(path, from: offset)).lines)
                    if !rest.isEmpty { try await writer.write(ByteBuffer(bytes: rest)) }
                    break
                }
            }
            try await writer.finish(nil)
        })
    }

    /// `<logs>/<ns>_<pod>_<uid>/<container>/<restartCount>.log` (pkg/kubelet/kuberuntime
    /// `BuildContainerLogsDirectory`, `buildContainerLogsPath`).
    func logPath(namespace: String, pod: String, uid: String, container: String, instance: Int) -> String {
        "\(root)/pods/\(namespace)_\(pod)_\(uid)/\(container)/\(instance).log"
    }

    static func read(_ path: String, from offset: Int) -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        do {
            try h.seek(toOffset: UInt64(offset))
            return Array(try h.readToEnd() ?? Data())
        } catch { return [] }
    }
}
