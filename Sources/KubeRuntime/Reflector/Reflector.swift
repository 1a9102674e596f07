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
    private let clock: RuntimeClock
    public init(clock: RuntimeClock = .system) { self.clock = clock }
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
        let now = clock.date.timeIntervalSince1970
        state.withLock { $0.events += n; $0.resourceVersion = rv; $0.lastActivity = now }
    }
    /// Bytes arrived (a bookmark moves the position without an event).
    func heard(resourceVersion rv: String) {
        let now = clock.date.timeIntervalSince1970
        state.withLock { $0.lastActivity = now; if !rv.isEmpty { $0.resourceVersion = rv } }
    }
    func markSynced() { state.withLock { $0.synced = true } }
    /// Restarts the reflector's machine counted since the last call.
    func restarted(reconnects: Int, relists: Int) { state.withLock { $0.reconnects += reconnects; $0.relists += relists } }
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
    /// Secret data keys whose values `SecretProjection`s keep (decoded, redacted in every
    /// printout); the others keep their names only. The caller's knowledge: none by default.
    public var keptSecretValues: Set<String> = []

    public init(namespace: String? = nil) { self.namespace = namespace }
}

/// Where a reflector sends its batches: a backpressured channel (a slow consumer pauses the
/// transfer) that callers can name without importing AsyncAlgorithms.
public typealias WatchChannel<P: Projection> = AsyncChannel<[WatchEvent<P>]>

/// List, then watch, forever: resumes closed streams from the last
/// resourceVersion, relists on 410 and delivers the difference, backs off
/// with full jitter (honouring Retry-After) on errors, and declares a silent
/// stream dead after `idleTimeout`. Events go to the channel in batches; a slow
/// consumer pauses the transfer instead of growing a buffer.
///
/// client-go's `tools/cache/reflector.go`. The decisions (what to request next, how long to
/// wait) are `ReflectorMachine`'s; `run` carries them out. Every wait, the watch-duration
/// measurement and the idle timeout read `clock`, and the backoff jitter and the watch's
/// server-side timeout come from `random`, so a test runs a reflector in virtual time.
public struct Reflector<P: Projection>: Sendable {
    public let client: KubeClient
    public let options: ReflectorOptions
    public let stats: WatchStats
    /// The objects as the events so far leave them, readable from anywhere; each change is
    /// in it before the batch carrying the change is sent (see ``ReflectorStore``).
    public let store = ReflectorStore<P>()
    let logger: Logger
    let clock: RuntimeClock
    let random: RandomSource

    public init(client: KubeClient, options: ReflectorOptions = ReflectorOptions(), logger: Logger,
                clock: RuntimeClock = .system, random: RandomSource = .system) {
        self.client = client
        self.options = options
        self.clock = clock
        self.random = random
        self.stats = WatchStats(clock: clock)
        var l = logger
        l[metadataKey: "kind"] = "\(P.resource.kind)"
        if let ns = options.namespace { l[metadataKey: "k8s.namespace"] = "\(ns)" }
        self.logger = l
    }

    private var path: String { P.resource.path(namespace: options.namespace) }

    /// Runs until cancelled, sending batches of events into `channel`.
    public func run(into channel: AsyncChannel<[WatchEvent<P>]>) async throws {
        var processor = WatchStreamProcessor<P>(maxLineBytes: options.maxLineBytes, keptSecretValues: options.keptSecretValues)
        processor.sharedStore = store
        var machine = ReflectorMachine(options: options, random: random)
        var action = machine.start()
        while !Task.isCancelled {
            let outcome: ReflectorMachine.Outcome
            switch action {
            case .wait(let delay, let then):
                logger.debug("backing off before the next watch", metadata: ["attempt": "\(machine.failures)", "retry_in_ms": "\(delay.milliseconds)"])
                do { try await clock.sleep(for: delay) } catch { return }
                action = then
                continue
            case .list:
                do {
                    let (items, rv) = try await list(&processor)
                    var events = store.replace(with: items, resourceVersion: rv)
                    processor.resourceVersion = rv
                    if machine.markSynced() { events.append(.synced); stats.markSynced() }
                    stats.add(events: events.count, resourceVersion: rv)
                    await channel.send(events)
                    Self.returnFreedMemory()
                    outcome = .listed
                } catch {
                    guard let failed = self.outcome(of: error, attempt: machine.failures + 1) else { return }
                    outcome = failed
                }
            case .watch(let initial):
                do {
                    outcome = try await watch(&processor, channel: channel, initial: initial, machine: &machine)
                } catch {
                    guard let failed = self.outcome(of: error, attempt: machine.failures + 1) else { return }
                    outcome = failed
                }
                switch outcome {
                case .unsupported where initial:
                    logger.debug("the server has no streaming list; using LIST then WATCH")
                case .unsupported, .expired:
                    logger.info("resourceVersion expired; relisting", metadata: ["resourceVersion": "\(processor.resourceVersion)"])
                default:
                    break
                }
            }
            let (reconnects, relists) = (machine.reconnects, machine.relists)
            action = machine.after(outcome, now: clock.elapsed)
            stats.restarted(reconnects: machine.reconnects - reconnects, relists: machine.relists - relists)
        }
    }

    /// What a thrown error means for the machine; nil when this task was cancelled (stop).
    private func outcome(of error: any Error, attempt: Int) -> ReflectorMachine.Outcome? {
        switch error {
        case is CancellationError where Task.isCancelled:
            return nil
        case let e as KubeClientError where e.code == .cancelled && Task.isCancelled:
            return nil
        case let e as KubeClientError where e.isExpired:
            return .expired
        default:
            // Anything else — a CancellationError from a child that was cancelled while this
            // task was not, too — is a failure to retry: a reflector stops only when cancelled.
            logger.warning("watch failed; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
            return .failed(retryAfter: (error as? KubeClientError)?.retryAfter)
        }
    }

    /// A full (re)list allocates and frees a copy of the whole state; hand the
    /// freed pages back so the steady-state RSS is the store's, not the peak's.
    static func returnFreedMemory() { ProcessMemory.returnFreed() }

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

    /// One watch request, read to its end. With `initial`, it is a streaming
    /// list: the synthetic ADDED events up to the initial-events-end bookmark
    /// replace the store (difference delivered), then the stream goes on.
    /// Returns `.watchEnded`, `.expired` or `.unsupported`; throws what is a failure.
    private func watch(_ processor: inout WatchStreamProcessor<P>, channel: AsyncChannel<[WatchEvent<P>]>, initial: Bool,
                       machine: inout ReflectorMachine) async throws -> ReflectorMachine.Outcome {
        var opts = ListOptions(labelSelector: options.labelSelector, fieldSelector: options.fieldSelector)
        opts.allowWatchBookmarks = true
        opts.timeoutSeconds = machine.watchTimeoutSeconds()
        if initial {
            opts.sendInitialEvents = true
            opts.resourceVersionMatch = "NotOlderThan"
            opts.resourceVersion = ""
        } else {
            opts.resourceVersion = processor.resourceVersion
        }
        let clock = self.clock
        let started = clock.elapsed
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
        let watchdog = IdleWatchdog(clock: clock)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            // The idle watchdog: cancels the transfer when no byte arrived within `idleTimeout`.
            group.addTask {
                while !Task.isCancelled {
                    try await clock.sleep(for: max(idle / 4, .milliseconds(10)))
                    if watchdog.silentFor() > idle {
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
                store.setResourceVersion(processor.resourceVersion)
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
                            var events = store.replace(with: initialItems ?? [], resourceVersion: processor.resourceVersion)
                            initialItems = nil
                            if machine.markSynced() { events.append(.synced); stats.markSynced() }
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
                let ended = ReflectorMachine.Outcome.watchEnded(lasted: clock.elapsed - started, lines: processor.framer.lineNumber - linesBefore)
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
            return .watchEnded(lasted: clock.elapsed - started, lines: processor.framer.lineNumber - linesBefore)
        }
    }
}

extension Reflector {
    /// The most events handed over at once while a stream is busy.
    static var maxBatch: Int { 4096 }
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
