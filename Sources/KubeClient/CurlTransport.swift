import CCurl
import Foundation
import KubeTLS
import Synchronization

/// HTTP over libcurl's multi interface, driven by one dedicated thread so no
/// Swift cooperative thread ever blocks on I/O. Requests are `async`, bodies
/// stream with backpressure (a full buffer pauses the transfer with
/// `CURL_WRITEFUNC_PAUSE`), and cancelling the awaiting task, or dropping the
/// body, aborts the transfer at once.
///
/// This is the only file that imports the libcurl shim.
public final class CurlTransport: Sendable {
    /// The process-wide transport. Like an event loop group singleton, its I/O
    /// thread lives as long as the process; connections are reused across requests.
    public static let shared = CurlTransport()

    private let loop: CurlLoop

    private init() {
        loop = CurlLoop()
    }

    /// Streams stopped because their reader left them paused on a shared HTTP/2 connection
    /// for 1 s (each resumed later by its watcher).
    public var stalledStreamsStopped: Int { loop.stalledStops.count }

    /// Returns once at least `count` such streams have been stopped since start.
    public func waitForStalledStreamsStopped(atLeast count: Int) async { await loop.stalledStops.wait(atLeast: count) }

    /// Sends a request and buffers the whole response body (at most `maxBodyBytes`).
    public func send(_ request: HTTPRequest, tls: TLSSettings = TLSSettings(), maxBodyBytes: Int = 64 << 20) async throws -> HTTPResponse {
        let (head, body) = try await stream(request, tls: tls)
        var bytes: [UInt8] = []
        for try await chunk in body {
            if bytes.count + chunk.count > maxBodyBytes {
                throw KubeClientError(.transport, "response body of \(request.method) \(redactedURL(request.url)) exceeds \(maxBodyBytes) bytes")
            }
            bytes.append(contentsOf: chunk)
        }
        return HTTPResponse(head: head, body: bytes)
    }

    /// Starts a request and returns once the response head has arrived; the
    /// body arrives through the returned sequence as the server sends it.
    public func stream(_ request: HTTPRequest, tls: TLSSettings = TLSSettings(), highWatermark: Int = 4 << 20) async throws -> (HTTPResponseHead, HTTPBody) {
        let transfer = try Transfer(request: request, tls: tls, highWatermark: highWatermark, loop: loop)
        let head = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponseHead, any Error>) in
                transfer.awaitHead(cont)
                loop.add(transfer)
            }
        } onCancel: {
            transfer.cancel()
        }
        return (head, HTTPBody(transfer: transfer))
    }
}

/// A response body as it arrives: a sequence of byte chunks. Dropping it
/// before the end aborts the transfer.
public final class HTTPBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    fileprivate let transfer: Transfer

    fileprivate init(transfer: Transfer) { self.transfer = transfer }

    deinit { transfer.cancel() }

    /// Aborts the transfer now.
    public func cancel() { transfer.cancel() }

    /// Bytes received but not yet consumed (bounded by the high watermark plus one libcurl chunk).
    public var bufferedBytes: Int { transfer.bufferedBytes }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let body: HTTPBody
        public mutating func next() async throws -> [UInt8]? {
            let transfer = body.transfer
            return try await withTaskCancellationHandler {
                try await transfer.nextChunk()
            } onCancel: {
                transfer.cancel()
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}

/// Strips query strings from URLs before they reach a message.
func redactedURL(_ url: String) -> String {
    url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
}

// MARK: - One transfer

private final class Transfer: Sendable {
    fileprivate struct State {
        var status: Int?
        var headers: [(name: String, value: String)] = []
        var headDone = false
        var headWaiter: CheckedContinuation<HTTPResponseHead, any Error>?
        var chunks: [[UInt8]] = []
        var chunkIndex = 0
        var buffered = 0
        var paused = false
        /// When the transfer was paused on a multiplexed (HTTP/2) connection.
        var pausedOnSharedConnection: ContinuousClock.Instant?
        var bodyWaiter: CheckedContinuation<[UInt8]?, any Error>?
        var completion: Result<Void, KubeClientError>?
        var cancelled = false
    }

    nonisolated(unsafe) let easy: UnsafeMutableRawPointer
    nonisolated(unsafe) private let headerList: UnsafeMutablePointer<curl_slist>?
    nonisolated(unsafe) private let errorBuffer: UnsafeMutablePointer<CChar>
    private let state = ThreadLock(State())
    private let highWatermark: Int
    private let lowWatermark: Int
    let method: String
    let url: String
    private let loop: CurlLoop

    init(request: HTTPRequest, tls: TLSSettings, highWatermark: Int, loop: CurlLoop) throws {
        // The last line of defence against header injection: libcurl sends header strings as
        // given, so a CR or LF in a value (a credential from a Secret, say) would start another
        // header. Callers check credentials by name first; this names only the header.
        for (name, value) in request.headers where value.utf8.contains(where: { $0 == 0x0d || $0 == 0x0a || $0 == 0 }) {
            throw KubeClientError(.configuration, "\(request.method) \(redactedURL(request.url)): the \(name) header holds a control character; not sent")
        }
        guard let easy = curl_easy_init() else { throw KubeClientError(.transport, "curl_easy_init failed") }
        self.easy = easy
        self.highWatermark = highWatermark
        self.lowWatermark = highWatermark / 4
        self.method = request.method
        self.loop = loop
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        var url = request.url
        var connectTo: UnsafeMutablePointer<curl_slist>?
        if let serverName = tls.serverName, let parts = URLComponents(string: url), let host = parts.host {
            // Verify (and send SNI) as `serverName` while connecting to the URL's host.
            let port = parts.port ?? (parts.scheme == "http" ? 80 : 443)
            var renamed = parts
            renamed.host = serverName
            url = renamed.string ?? url
            connectTo = curl_slist_append(nil, "\(serverName):\(port):\(host):\(port)")
        }
        self.url = url

        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in request.headers { list = curl_slist_append(list, "\(name): \(value)") }
        list = curl_slist_append(list, "Expect:")
        headerList = list

        func set(_ option: CURLoption, _ value: Int) { _ = kt_curl_setopt_long(easy, option, value) }
        func set(_ option: CURLoption, _ value: String) { _ = value.withCString { kt_curl_setopt_ptr(easy, option, $0) } }

        set(CURLOPT_URL, url)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_TCP_KEEPALIVE, 1)
        // Reads of up to 64 KiB (libcurl's default is 16 KiB): a busy watch stream reaches its
        // consumer in fewer, larger chunks, each still below malloc's mmap threshold (128 KiB),
        // so chunk buffers are recycled, not mapped and faulted in. An idle stream still
        // delivers each event as it arrives.
        set(CURLOPT_BUFFERSIZE, 64 << 10)
        set(CURLOPT_CONNECTTIMEOUT_MS, 10_000)
        set(CURLOPT_HTTP_VERSION, Int(kt_curl_http_version_2tls()))
        set(CURLOPT_PIPEWAIT, 1)
        if let timeout = request.timeout {
            set(CURLOPT_TIMEOUT_MS, Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        }
        _ = kt_curl_setopt_ptr(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        _ = kt_curl_setopt_ptr(easy, CURLOPT_HTTPHEADER, list)
        if let connectTo { _ = kt_curl_setopt_ptr(easy, CURLOPT_CONNECT_TO, connectTo) }
        switch request.method {
        case "GET": set(CURLOPT_HTTPGET, 1)
        default: set(CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            _ = kt_curl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            _ = body.withUnsafeBytes { kt_curl_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) }
        }
        // TLS: everything from memory, so no secret is written to disk.
        if tls.insecureSkipVerify {
            set(CURLOPT_SSL_VERIFYPEER, 0)
            set(CURLOPT_SSL_VERIFYHOST, 0)
        } else {
            set(CURLOPT_SSL_VERIFYPEER, 1)
            set(CURLOPT_SSL_VERIFYHOST, 2)
        }
        if let ca = tls.certificateAuthorityPEM {
            // Exactly this CA, as client-go: libcurl would otherwise also load its compiled-in
            // bundle and directory (Debian: /etc/ssl/certs), so any CA in the system store
            // could vouch for the API server. System trust only when no CA is named.
            _ = ca.withCString { kt_curl_setopt_blob(easy, CURLOPT_CAINFO_BLOB, $0, strlen($0)) }
            _ = kt_curl_setopt_ptr(easy, CURLOPT_CAINFO, nil)
            _ = kt_curl_setopt_ptr(easy, CURLOPT_CAPATH, nil)
        }
        if let cert = tls.clientCertificatePEM, let key = tls.clientKey {
            set(CURLOPT_SSLCERTTYPE, "PEM")
            _ = cert.withCString { kt_curl_setopt_blob(easy, CURLOPT_SSLCERT_BLOB, $0, strlen($0)) }
            set(CURLOPT_SSLKEYTYPE, "PEM")
            _ = key.withCString { kt_curl_setopt_blob(easy, CURLOPT_SSLKEY_BLOB, $0, strlen($0)) }
        }
        if let connectTo { connectToList = connectTo } else { connectToList = nil }

        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = kt_curl_setopt_ptr(easy, CURLOPT_HEADERDATA, me)
        _ = kt_curl_setopt_data_cb(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
        _ = kt_curl_setopt_ptr(easy, CURLOPT_WRITEDATA, me)
        _ = kt_curl_setopt_data_cb(easy, CURLOPT_WRITEFUNCTION, curlWriteCallback)
    }

    nonisolated(unsafe) private let connectToList: UnsafeMutablePointer<curl_slist>?

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
        curl_slist_free_all(connectToList)
        errorBuffer.deallocate()
    }

    var isFinished: Bool { state.withLock { $0.completion != nil || $0.cancelled } }
    var bufferedBytes: Int { state.withLock { $0.buffered } }

    // MARK: consumer side

    func awaitHead(_ cont: CheckedContinuation<HTTPResponseHead, any Error>) {
        let immediate: Result<HTTPResponseHead, KubeClientError>? = state.withLock { s in
            if s.cancelled { return .failure(KubeClientError.cancelled) }
            s.headWaiter = cont
            return nil
        }
        if let immediate { cont.resume(with: immediate) }
    }

    func nextChunk() async throws -> [UInt8]? {
        enum Step { case chunk([UInt8], unpause: Bool), end, fail(KubeClientError), wait }
        let step: Step = state.withLock { s in
            if s.chunkIndex < s.chunks.count { return .chunk(s.pop(), unpause: s.unpauseIfDrained(low: lowWatermark)) }
            if s.cancelled { return .fail(.cancelled) }
            switch s.completion {
            case .success?: return .end
            case .failure(let e)?: return .fail(e)
            case nil: return .wait
            }
        }
        switch step {
        case .chunk(let c, let unpause):
            if unpause { loop.unpause(self) }
            return c
        case .end: return nil
        case .fail(let e): throw e
        case .wait: break
        }
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<[UInt8]?, any Error>) in
            let ready: Result<[UInt8]?, KubeClientError>? = state.withLock { s in
                if s.chunkIndex < s.chunks.count { return .success(s.pop()) }
                if s.cancelled { return .failure(.cancelled) }
                switch s.completion {
                case .success?: return .success(nil)
                case .failure(let e)?: return .failure(e)
                case nil:
                    s.bodyWaiter = cont
                    return nil
                }
            }
            if let ready { cont.resume(with: ready) }
        }
    }

    func cancel() {
        let first = state.withLock { s in
            if s.cancelled || s.completion != nil { return false }
            s.cancelled = true
            return true
        }
        guard first else { return }
        loop.remove(self)
        finish(.failure(.cancelled))
    }

    // MARK: loop-thread side

    func onHeaderLine(_ line: Substring) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        var resume: (CheckedContinuation<HTTPResponseHead, any Error>, HTTPResponseHead)?
        state.withLock { s in
            if trimmed.hasPrefix("HTTP/") {
                let parts = trimmed.split(separator: " ", maxSplits: 2)
                s.status = parts.count > 1 ? Int(parts[1]) : nil
                s.headers = []
            } else if trimmed.isEmpty {
                guard let status = s.status, status >= 200 else { return }  // 1xx: another head follows
                s.headDone = true
                if let w = s.headWaiter {
                    s.headWaiter = nil
                    resume = (w, HTTPResponseHead(status: status, headers: s.headers))
                }
            } else if let colon = trimmed.firstIndex(of: ":") {
                s.headers.append((String(trimmed[..<colon]), trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        if let (w, head) = resume { w.resume(returning: head) }
    }

    /// Returns the number of bytes taken, or the pause sentinel when the consumer lags.
    func onBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        var chunk: [UInt8]?
        // Copied before taking the lock, so the consumer never waits on the copy.
        let c = [UInt8](bytes)
        let taken: Int = state.withLock { s in
            if s.cancelled { return 0 }
            if s.buffered >= highWatermark {
                s.paused = true
                if isMultiplexed { s.pausedOnSharedConnection = .now }
                return Int(kt_curl_writefunc_pause())
            }
            if let w = s.bodyWaiter, s.chunkIndex == s.chunks.count {
                s.bodyWaiter = nil
                waiter = w
                chunk = c
            } else {
                s.chunks.append(c)
                s.buffered += c.count
            }
            return bytes.count
        }
        if let waiter { waiter.resume(returning: chunk) }
        return taken
    }

    func finish(_ result: Result<Void, KubeClientError>) {
        var head: (CheckedContinuation<HTTPResponseHead, any Error>, Result<HTTPResponseHead, KubeClientError>)?
        var body: (CheckedContinuation<[UInt8]?, any Error>, Result<[UInt8]?, KubeClientError>)?
        state.withLock { s in
            if s.completion == nil { s.completion = result }
            let final = s.completion!
            if let w = s.headWaiter {
                s.headWaiter = nil
                switch final {
                case .failure(let e): head = (w, .failure(e))
                case .success:
                    if let status = s.status {
                        head = (w, .success(HTTPResponseHead(status: status, headers: s.headers)))
                    } else {
                        head = (w, .failure(KubeClientError(.transport, "\(method) \(redactedURL(url)): connection closed before a response")))
                    }
                }
            }
            if let w = s.bodyWaiter {
                s.bodyWaiter = nil
                switch final {
                case .success: body = (w, .success(nil))
                case .failure(let e): body = (w, .failure(e))
                }
            }
        }
        if let (w, r) = head { w.resume(with: r) }
        if let (w, r) = body { w.resume(with: r) }
    }

    /// `scheme://host:port` of the URL: transfers that may share a connection (worked out only
    /// when a stalled stream is judged, not per request).
    var origin: String {
        let parts = URLComponents(string: url)
        return "\(parts?.scheme ?? "")://\(parts?.host ?? ""):\(parts?.port ?? (parts?.scheme == "http" ? 80 : 443))"
    }

    /// The response came over HTTP/2, where this transfer shares its connection (loop thread).
    var isMultiplexed: Bool {
        var version = 0
        _ = kt_curl_getinfo_long(easy, CURLINFO_HTTP_VERSION, &version)
        return version >= Int(kt_curl_http_version_2_0())
    }

    /// Paused on a shared connection for at least `limit`. libcurl 7.88 grants every HTTP/2 stream
    /// a 32 MiB window (lib/http2.c `HTTP2_HUGE_WINDOW_SIZE`) and, for a paused stream, keeps what
    /// the server sends within it in its own buffers: measured, 8.7 MB beyond this transfer's
    /// 4 MiB after 42 MB were sent to one paused watch (the other streams kept flowing, probes in
    /// 2–34 ms). So a stream paused this long is stopped (libcurl resets it), which bounds that
    /// memory; what the transfer buffered is still delivered, then an error its watcher resumes from.
    func stallsSharedConnection(now: ContinuousClock.Instant, limit: Duration) -> Bool {
        state.withLock { s in
            guard s.paused, let since = s.pausedOnSharedConnection else { return false }
            return now - since >= limit
        }
    }

    /// Whether a pause on a shared connection is still on (false once the reader caught up).
    var isPausedOnSharedConnection: Bool { state.withLock { $0.paused && $0.pausedOnSharedConnection != nil } }

    func stoppedAsStalled(after limit: Duration) -> KubeClientError {
        KubeClientError(.transport, "\(method) \(redactedURL(url)): the reader fell \(highWatermark >> 10) KiB behind for \(limit.components.seconds) s; the stream was stopped, so libcurl does not go on buffering it on the shared HTTP/2 connection; resume it when read again")
    }

    func transportError(_ code: CURLcode) -> KubeClientError {
        let detail = String(cString: errorBuffer)
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        var e = KubeClientError(.transport, "\(method) \(redactedURL(url)): \(text) (curl error \(code.rawValue))")
        e.curlCode = Int(code.rawValue)
        return e
    }
}

private extension Transfer.State {
    /// Takes the oldest chunk. Its slot is emptied at once and the taken slots are dropped
    /// as they pile up: under a firehose the queue is never empty, and a slot that kept its
    /// chunk would hold on to the whole stream.
    mutating func pop() -> [UInt8] {
        let c = chunks[chunkIndex]
        chunks[chunkIndex] = []
        chunkIndex += 1
        buffered -= c.count
        if chunkIndex == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            chunkIndex = 0
        } else if chunkIndex >= 64, chunkIndex * 2 >= chunks.count {
            chunks.removeFirst(chunkIndex)
            chunkIndex = 0
        }
        return c
    }

    mutating func unpauseIfDrained(low: Int) -> Bool {
        guard paused, buffered <= low else { return false }
        paused = false
        pausedOnSharedConnection = nil
        return true
    }
}

private let curlHeaderCallback: kt_curl_data_cb = { ptr, size, count, userdata in
    let n = size * count
    guard let ptr, let userdata else { return n }
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
    transfer.onHeaderLine(line[...])
    return n
}

private let curlWriteCallback: kt_curl_data_cb = { ptr, size, count, userdata in
    let n = size * count
    guard let ptr, let userdata else { return n }
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
    return transfer.onBody(UnsafeRawBufferPointer(start: ptr, count: n))
}

// MARK: - The I/O thread

private final class CurlLoop: Sendable {
    private enum Op {
        case add(Transfer)
        case remove(Transfer)
        case unpause(Transfer)
    }

    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    nonisolated(unsafe) private let multi: UnsafeMutableRawPointer
    private let ops = ThreadLock<[Op]>([])
    /// How long one paused stream may hold its HTTP/2 connection (see `stallsSharedConnection`).
    static let sharedConnectionStallLimit: Duration = .seconds(1)
    let stalledStops = StopCount()

    init() {
        Self.globalInit
        multi = curl_multi_init()
        // Several watches share one HTTP/2 connection when the server offers it.
        _ = kt_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, 2 /* CURLPIPE_MULTIPLEX */)
        // The thread keeps the loop alive: it serves the process until exit.
        let thread = Thread { [self] in self.run() }
        thread.name = "kubeclient-curl"
        thread.start()
    }

    func add(_ t: Transfer) { enqueue(.add(t)) }
    func remove(_ t: Transfer) { enqueue(.remove(t)) }
    func unpause(_ t: Transfer) { enqueue(.unpause(t)) }

    private func enqueue(_ op: Op) {
        ops.withLock { $0.append(op) }
        curl_multi_wakeup(multi)
    }

    /// The loop owns (retains) every attached transfer, so the unretained
    /// pointers handed to libcurl stay valid while it can call back.
    private func run() {
        var attached: [UnsafeMutableRawPointer: Transfer] = [:]
        var running: Int32 = 0
        while true {
            for op in ops.withLock({ q -> [Op] in defer { q.removeAll() }; return q }) {
                switch op {
                case .add(let t):
                    // A transfer cancelled before it was attached is already finished.
                    guard !t.isFinished else { continue }
                    let rc = curl_multi_add_handle(multi, t.easy)
                    if rc == CURLM_OK { attached[t.easy] = t } else {
                        t.finish(.failure(KubeClientError(.transport, "curl_multi_add_handle failed (\(rc.rawValue))")))
                    }
                case .remove(let t):
                    if attached.removeValue(forKey: t.easy) != nil { curl_multi_remove_handle(multi, t.easy) }
                case .unpause(let t):
                    if attached[t.easy] != nil { curl_easy_pause(t.easy, 0 /* CURLPAUSE_CONT */) }
                }
            }
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let msg = curl_multi_info_read(multi, &left) {
                var easy: UnsafeMutableRawPointer?
                var result = CURLE_OK
                guard kt_curl_msg_done(msg, &easy, &result) == 1, let easy, let t = attached.removeValue(forKey: easy) else { continue }
                curl_multi_remove_handle(multi, easy)
                let outcome: Result<Void, KubeClientError> = result == CURLE_OK ? .success(()) : .failure(t.transportError(result))
                t.finish(outcome)
            }
            // Streams paused on a shared connection: stop those that held it too long. Shared means
            // another HTTP/2 transfer to the same origin (libcurl 7.88 names no connection of a
            // transfer in progress; multiplexed transfers to one origin share one, as a rule).
            var pausedShared = false
            if attached.count > 1 {
                let now = ContinuousClock.now
                for (easy, t) in attached where t.isPausedOnSharedConnection {
                    pausedShared = true
                    guard t.stallsSharedConnection(now: now, limit: Self.sharedConnectionStallLimit) else { continue }
                    let origin = t.origin
                    guard attached.contains(where: { $0.key != easy && $0.value.origin == origin && $0.value.isMultiplexed }) else { continue }
                    attached.removeValue(forKey: easy)
                    curl_multi_remove_handle(multi, easy)
                    t.finish(.failure(t.stoppedAsStalled(after: Self.sharedConnectionStallLimit)))
                    stalledStops.increment()
                }
            }
            curl_multi_poll(multi, nil, 0, pausedShared ? 100 : 1000, nil)
        }
    }
}


/// A count with waiters (the stalled streams the loop stopped).
final class StopCount: Sendable {
    private struct State {
        var count = 0
        var waiters: [(id: Int, atLeast: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var nextID = 0
    }
    private let state = ThreadLock(State())

    var count: Int { state.withLock { $0.count } }

    func increment() {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.count += 1
            let n = s.count
            defer { s.waiters.removeAll { $0.atLeast <= n } }
            return s.waiters.filter { $0.atLeast <= n }.map(\.continuation)
        }
        for c in ready { c.resume() }
    }

    /// Returns once the count reaches `atLeast`, or when the waiting task is cancelled.
    func wait(atLeast n: Int) async {
        let id = state.withLock { s -> Int in s.nextID += 1; return s.nextID }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.count >= n || Task.isCancelled { return true }
                    s.waiters.append((id, n, c))
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let mine = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                defer { s.waiters.removeAll { $0.id == id } }
                return s.waiters.filter { $0.id == id }.map(\.continuation)
            }
            for c in mine { c.resume() }
        }
    }
}
