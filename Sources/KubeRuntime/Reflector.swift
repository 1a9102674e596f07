public import AsyncAlgorithms
public import KubeClient
public import Logging
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
    /// Backoff for failed requests, 410 relists and empty short watches (a stream that delivered
    /// anything resumes at once): exponential with full jitter, from `initialBackoff` to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(800)
    public var maxBackoff: Duration = .seconds(30)
    /// A backoff this long after the previous one starts again from `initialBackoff` (client-go: 2 min).
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
        var restart = WatchRestartPolicy(initialBackoff: options.initialBackoff, maxBackoff: options.maxBackoff, resetAfter: options.healthyAfter)
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let ending: WatchRestartPolicy.Ending
            do {
                if needList && !streamingList {
                    let (items, rv) = try await list(&processor)
                    var events = processor.store.replace(with: items)
                    processor.resourceVersion = rv
                    if !synced { events.append(.synced); synced = true; stats.markSynced() }
                    stats.add(events: events.count, resourceVersion: rv)
                    await channel.send(events)
                    needList = false
                    Self.returnFreedMemory()
                }
                // With `needList` and a streaming list, the initial state arrives on the watch itself.
                let initial = needList
                switch try await watch(&processor, channel: channel, initial: initial, synced: &synced) {
                case .unsupported where initial:
                    streamingList = false
                    logger.debug("the server has no streaming list; using LIST then WATCH")
                    continue
                case .expired, .unsupported:
                    ending = .expired
                    logger.info("resourceVersion expired; relisting", metadata: ["resourceVersion": "\(processor.resourceVersion)"])
                case .ended(let lasted, let lines):
                    // The state arrived (a streaming list ends `.ended` only after its end bookmark).
                    needList = false
                    ending = .closed(lasted: lasted, lines: lines)
                }
            } catch is CancellationError where Task.isCancelled {
                return
            } catch let e as KubeClientError where e.code == .cancelled && Task.isCancelled {
                return
            } catch let e as KubeClientError where e.isExpired {
                ending = .expired
            } catch {
                // Anything else — a CancellationError from a child that was cancelled while this
                // task was not, too — is a failure to retry: a reflector stops only when cancelled.
                ending = .failed(retryAfter: (error as? KubeClientError)?.retryAfter)
                logger.warning("watch failed; retrying", metadata: ["error": "\(error)", "attempt": "\(restart.failures + 1)"])
            }
            let decision = restart.after(ending, now: clock.now)
            stats.reconnected()
            if decision.relist {
                needList = true
                stats.relisted()
            }
            if let cap = decision.backoffCap {
                let delay = max(Self.fullJitter(cap), decision.floor)
                logger.debug("backing off before the next watch", metadata: ["attempt": "\(restart.failures)", "retry_in_ms": "\(delay.milliseconds)"])
                do { try await Task.sleep(for: delay) } catch { return }
            }
        }
    }

    /// A full (re)list allocates and frees a copy of the whole state; hand the
    /// freed pages back so the steady-state RSS is the store's, not the peak's.
    static func returnFreedMemory() { ProcessMemory.returnFreed() }

    /// Full jitter: uniform in [0, cap].
    static func fullJitter(_ cap: Duration) -> Duration {
        .milliseconds(Int64.random(in: 0...max(cap.milliseconds, 1)))
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

    enum WatchOutcome {
        /// The stream ended after delivering `lines` lines (events, bookmarks).
        case ended(lasted: Duration, lines: Int)
        case expired, unsupported
    }

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
        let linesBefore = processor.framer.lineNumber
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
                // A streaming list cut before its end bookmark delivered no state: retry it as a
                // failure; a line too long for the framer is fetched by paged LIST instead.
                if initialItems != nil {
                    if error is LineFramer.LineTooLong { return .unsupported }
                    throw error
                }
                let ended = WatchOutcome.ended(lasted: clock.now - started, lines: processor.framer.lineNumber - linesBefore)
                if let e = error as? LineFramer.LineTooLong {
                    logger.error("watch line too long; reconnecting", metadata: ["limit": "\(e.limit)", "line": "\(processor.framer.lineNumber + 1)"])
                    return ended
                }
                if let e = error as? KubeClientError, e.code == .cancelled, watchdog.idled.load(ordering: .relaxed), !Task.isCancelled {
                    logger.info("watch idle; reconnecting", metadata: ["idle_timeout_s": "\(idle.components.seconds)"])
                    return ended
                }
                if let e = error as? KubeClientError, e.code == .transport, !Task.isCancelled {
                    // A connection cut, a GOAWAY that closed it, a reset stream: the stream ended
                    // early but what it delivered is applied — resume after it, as after a close.
                    logger.info("watch stream broke; resuming", metadata: ["error": "\(e)"])
                    return ended
                }
                throw error
            }
            await flush(&batch)
            // A streaming list that ended before its end bookmark did not happen: try plain LIST.
            if initialItems != nil { return .unsupported }
            return .ended(lasted: clock.now - started, lines: processor.framer.lineNumber - linesBefore)
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
