public import AsyncAlgorithms
public import KubeClient
public import Logging
import CMalloc
import Foundation
import Synchronization

/// Counters the observability work exports (events, relists, reconnects, position, liveness).
public final class WatchStats: Sendable {
    struct State {
        var events = 0, relists = 0, reconnects = 0, decodeErrors = 0
        var resourceVersion = ""
        var synced = false
        /// Wall-clock seconds (Unix) when the stream last delivered anything, bookmarks included.
        var lastActivity = 0.0
    }
    private let state = Mutex(State())
    public init() {}
    public var events: Int { state.withLock { $0.events } }
    public var relists: Int { state.withLock { $0.relists } }
    public var reconnects: Int { state.withLock { $0.reconnects } }
    public var decodeErrors: Int { state.withLock { $0.decodeErrors } }
    /// The last resourceVersion seen: the watcher's position.
    public var resourceVersion: String { state.withLock { $0.resourceVersion } }
    /// True once the initial list was delivered.
    public var synced: Bool { state.withLock { $0.synced } }
    public var lastActivity: Double { state.withLock { $0.lastActivity } }
    func add(events n: Int, resourceVersion rv: String) {
        let now = Date().timeIntervalSince1970
        state.withLock { $0.events += n; $0.resourceVersion = rv; $0.lastActivity = now }
    }
    /// Bytes arrived (a bookmark moves the position without an event).
    func heard(resourceVersion rv: String) {
        let now = Date().timeIntervalSince1970
        state.withLock { $0.lastActivity = now; if !rv.isEmpty { $0.resourceVersion = rv } }
    }
    func markSynced() { state.withLock { $0.synced = true } }
    func relisted() { state.withLock { $0.relists += 1 } }
    func reconnected() { state.withLock { $0.reconnects += 1 } }
    func badLines(_ n: Int) { state.withLock { $0.decodeErrors += n } }
}

/// How a watcher behaves; defaults follow client-go and SPEC §7.
public struct ReflectorOptions: Sendable {
    /// nil: all namespaces.
    public var namespace: String?
    public var labelSelector: String?
    public var fieldSelector: String?
    public var pageSize = 500
    /// A stream that delivers no byte at all for this long is dead (SPEC: `--watch-idle-timeout`).
    public var idleTimeout: Duration = .seconds(90)
    /// Reconnect backoff: exponential with full jitter, from `initialBackoff` to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(800)
    public var maxBackoff: Duration = .seconds(30)
    /// A watch that lasted this long resets the backoff.
    public var healthyAfter: Duration = .seconds(120)
    /// Server-side watch timeout range (client-go: 5–10 min).
    public var watchTimeoutSeconds: ClosedRange<Int> = 300...600
    /// Try a streaming list (`sendInitialEvents`) before paged LIST.
    public var useStreamingList = true
    public var maxLineBytes = 16 << 20

    public init(namespace: String? = nil) { self.namespace = namespace }
}

/// List, then watch, forever: resumes closed streams from the last
/// resourceVersion, relists on 410 and delivers the difference, backs off
/// with full jitter (honouring Retry-After) on errors, and declares a silent
/// stream dead after `idleTimeout`. Events go to `events` in batches; a slow
/// consumer pauses the transfer instead of growing a buffer.
public struct Reflector<P: Projection>: Sendable {
    public let client: KubeClient
    public let options: ReflectorOptions
    public let stats = WatchStats()
    let logger: Logger

    public init(client: KubeClient, options: ReflectorOptions = ReflectorOptions(), logger: Logger) {
        self.client = client
        self.options = options
        var l = logger
        l[metadataKey: "kind"] = "\(P.resource.kind)"
        if let ns = options.namespace { l[metadataKey: "k8s.namespace"] = "\(ns)" }
        self.logger = l
    }

    private var path: String { P.resource.path(namespace: options.namespace) }

    /// Runs until cancelled, sending batches of events into `channel`.
    public func run(into channel: AsyncChannel<[WatchEvent<P>]>) async throws {
        var processor = WatchStreamProcessor<P>(maxLineBytes: options.maxLineBytes)
        var needList = true
        var synced = false
        var streamingList = options.useStreamingList
        var failures = 0
        let clock = ContinuousClock()
        while !Task.isCancelled {
            do {
                if needList {
                    var events: [WatchEvent<P>] = []
                    if streamingList {
                        // The initial state arrives on the watch itself; see `watch(…)`.
                        let outcome = try await watch(&processor, channel: channel, initial: true, synced: &synced)
                        switch outcome {
                        case .unsupported:
                            streamingList = false
                            logger.debug("the server has no streaming list; using LIST then WATCH")
                            continue
                        case .expired:
                            stats.relisted()
                            continue
                        case .ended(let lasted):
                            // The state arrived; the stream then ended (timeout, drop, idle): resume it.
                            needList = false
                            stats.reconnected()
                            failures = lasted >= options.healthyAfter ? 0 : failures
                            continue
                        }
                    }
                    let (items, rv) = try await list(&processor)
                    events = processor.store.replace(with: items)
                    processor.resourceVersion = rv
                    if !synced { events.append(.synced); synced = true; stats.markSynced() }
                    stats.add(events: events.count, resourceVersion: rv)
                    await channel.send(events)
                    events = []
                    needList = false
                    Self.returnFreedMemory()
                }
                let t0 = clock.now
                switch try await watch(&processor, channel: channel, initial: false, synced: &synced) {
                case .expired, .unsupported:
                    needList = true
                    stats.relisted()
                    logger.info("resourceVersion expired; relisting", metadata: ["resourceVersion": "\(processor.resourceVersion)"])
                case .ended(let lasted):
                    stats.reconnected()
                    if clock.now - t0 >= options.healthyAfter { failures = 0 }
                    if lasted < .seconds(1) {
                        // As client-go: a watch that ends at once counts as a failure, so a
                        // server that keeps closing streams never turns this into a hot loop.
                        failures += 1
                        try await Task.sleep(for: backoff(failures: failures, retryAfter: nil))
                    }
                }
            } catch is CancellationError where Task.isCancelled {
                return
            } catch let e as KubeClientError where e.code == .cancelled && Task.isCancelled {
                return
            } catch {
                // Anything else — a CancellationError from a child that was cancelled while this
                // task was not, too — is a failure to retry: a reflector stops only when cancelled.
                failures += 1
                stats.reconnected()
                let delay = backoff(failures: failures, retryAfter: (error as? KubeClientError)?.retryAfter)
                if let e = error as? KubeClientError, e.isExpired { needList = true }
                logger.warning("watch failed; retrying", metadata: [
                    "error": "\(error)", "attempt": "\(failures)", "retry_in_ms": "\(delay.milliseconds)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// A full (re)list allocates and frees a copy of the whole state; hand the
    /// freed pages back so the steady-state RSS is the store's, not the peak's.
    static func returnFreedMemory() { _ = kt_malloc_trim() }

    /// Full jitter: uniform in [0, min(max, initial·2^(n-1))], never below Retry-After.
    func backoff(failures: Int, retryAfter: Duration?) -> Duration {
        let cap = min(options.maxBackoff, options.initialBackoff * (1 << min(failures - 1, 20)))
        let ms = cap.milliseconds
        let jittered = Duration.milliseconds(Int64.random(in: 0...max(ms, 1)))
        return max(jittered, retryAfter ?? .zero)
    }

    /// Paged LIST, decoded with simdjson.
    private func list(_ processor: inout WatchStreamProcessor<P>) async throws -> ([P], String) {
        var items: [P] = []
        var token: String?
        var rv = ""
        repeat {
            var opts = ListOptions(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector, limit: options.pageSize, continue: token)
            opts.resourceVersion = nil
            let response = try await client.request("GET", path: path, query: opts.queryItems())
            let page = try processor.decodeList(response.body)
            items += page.items
            rv = page.resourceVersion
            token = page.continue
        } while token != nil
        return (items, rv)
    }

    enum WatchOutcome { case ended(lasted: Duration), expired, unsupported }

    /// One watch request, read to its end. With `initial`, it is a streaming
    /// list: the synthetic ADDED events up to the initial-events-end bookmark
    /// replace the store (difference delivered), then the stream goes on.
    private func watch(_ processor: inout WatchStreamProcessor<P>, channel: AsyncChannel<[WatchEvent<P>]>, initial: Bool, synced: inout Bool) async throws -> WatchOutcome {
        var opts = ListOptions(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector)
        opts.allowWatchBookmarks = true
        opts.timeoutSeconds = Int.random(in: options.watchTimeoutSeconds)
        if initial {
            opts.sendInitialEvents = true
            opts.resourceVersionMatch = "NotOlderThan"
            opts.resourceVersion = ""
        } else {
            opts.resourceVersion = processor.resourceVersion
        }
        let clock = ContinuousClock()
        let started = clock.now
        let head: HTTPResponseHead
        let body: HTTPBody
        do {
            (head, body) = try await client.stream(path: path, query: opts.queryItems(watch: true))
        } catch let e as KubeClientError where initial && (e.httpStatus == 400 || e.httpStatus == 422) {
            return .unsupported
        } catch let e as KubeClientError where !initial && e.isExpired {
            return .expired
        }
        _ = head
        processor.framer.reset()
        // During a streaming list, build the new state aside and deliver the difference at the end.
        var initialItems: [P]? = initial ? [] : nil
        let idle = options.idleTimeout
        let idleMs = idle.milliseconds
        let watchdog = IdleWatchdog()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            // The idle watchdog: cancels the transfer when no byte arrived within `idleTimeout`.
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(max(idleMs / 4, 10)))
                    if watchdog.silentFor() > idleMs {
                        watchdog.idled.store(true, ordering: .relaxed)
                        body.cancel()
                        return
                    }
                }
            }
            defer { group.cancelAll() }
            var batch: [WatchEvent<P>] = []
            func flush(_ batch: inout [WatchEvent<P>]) async {
                guard !batch.isEmpty else { return }
                stats.add(events: batch.count, resourceVersion: processor.resourceVersion)
                await channel.send(batch)
                batch.removeAll(keepingCapacity: true)
            }
            do {
                for try await chunk in body {
                    watchdog.heard()
                    defer { stats.heard(resourceVersion: processor.resourceVersion) }
                    var signal: WatchStreamProcessor<P>.Signal?
                    var pending: [UInt8] = chunk
                    repeat {
                        if initialItems != nil {
                            signal = try processor.consume(pending, collectingInto: &initialItems!)
                        } else {
                            signal = try processor.consume(pending, into: &batch)
                        }
                        pending = []
                        let bad = processor.takeDecodeErrors()
                        if !bad.isEmpty {
                            stats.badLines(bad.count)
                            logger.warning("skipped watch lines that cannot be used", metadata: [
                                "count": "\(bad.count)", "first_line": "\(bad[0].line)", "reason": "\(bad[0].reason)"])
                        }
                        // While more bytes are already buffered, keep filling the batch: a busy
                        // stream is handed over in fewer, larger batches; an idle one at once.
                        if !batch.isEmpty, signal != nil || body.bufferedBytes == 0 || batch.count >= Self.maxBatch {
                            await flush(&batch)
                        }
                        switch signal {
                        case .initialEventsEnd?:
                            var events = processor.store.replace(with: initialItems ?? [])
                            initialItems = nil
                            if !synced { events.append(.synced); synced = true; stats.markSynced() }
                            stats.add(events: events.count, resourceVersion: processor.resourceVersion)
                            await channel.send(events)
                            Self.returnFreedMemory()
                            // The lines after the end bookmark are ordinary watch events: go on with them.
                        case .plainBookmark?:
                            return .unsupported
                        case .expired(let message)?:
                            logger.info("watch answered 410 Expired", metadata: ["message": "\(message)"])
                            return .expired
                        case .error(let code, let message)?:
                            throw KubeClientError.watchError(code: code, message: message, path: path)
                        case nil:
                            break
                        }
                    } while signal != nil
                }
            } catch {
                // Events already applied to the store are delivered whatever ended the stream:
                // the next watch resumes after them.
                await flush(&batch)
                if let e = error as? LineFramer.LineTooLong {
                    logger.error("watch line too long; reconnecting", metadata: ["limit": "\(e.limit)", "line": "\(processor.framer.lineNumber + 1)"])
                    return .ended(lasted: clock.now - started)
                }
                if let e = error as? KubeClientError, e.code == .cancelled, watchdog.idled.load(ordering: .relaxed), !Task.isCancelled {
                    logger.info("watch idle; reconnecting", metadata: ["idle_timeout_s": "\(idle.components.seconds)"])
                    return .ended(lasted: clock.now - started)
                }
                throw error
            }
            await flush(&batch)
            // A streaming list that ended before its end bookmark did not happen: try plain LIST.
            if initialItems != nil { return .unsupported }
            return .ended(lasted: clock.now - started)
        }
    }
}

extension Reflector {
    /// The most events handed over at once while a stream is busy.
    static var maxBatch: Int { 4096 }
}

/// When the stream last delivered a byte, shared with the watchdog task.
final class IdleWatchdog: Sendable {
    private let start = ContinuousClock.now
    private let lastByteMs = Atomic<Int64>(0)
    let idled = Atomic<Bool>(false)

    func heard() { lastByteMs.store((ContinuousClock.now - start).milliseconds, ordering: .relaxed) }
    func silentFor() -> Int64 { (ContinuousClock.now - start).milliseconds - lastByteMs.load(ordering: .relaxed) }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

extension KubeClientError {
    static func watchError(code: Int, message: String, path: String) -> KubeClientError {
        var e = KubeClientError(.api, "watch \(path): ERROR event \(code): \(message)")
        e.httpStatus = code
        return e
    }
}
