import Foundation
public import KubeClient
import Synchronization

/// One line of a watch stream, already encoded.
struct WatchFrame: Sendable {
    var line: [UInt8]

    static func event(_ type: String, objectJSON: [UInt8]) -> WatchFrame {
        var line = Array(#"{"type":""#.utf8)
        line += Array(type.utf8)
        line += Array(#"","object":"#.utf8)
        line += objectJSON
        line += Array("}\n".utf8)
        return WatchFrame(line: line)
    }

    /// Joins many frames into writes of about 256 KiB, so a large initial state
    /// is not sent one small write per object.
    static func coalesced(_ frames: [WatchFrame]) -> [WatchFrame] {
        var out: [WatchFrame] = []
        var current: [UInt8] = []
        for f in frames {
            current += f.line
            if current.count >= 256 << 10 {
                out.append(WatchFrame(line: current))
                current = []
            }
        }
        if !current.isEmpty { out.append(WatchFrame(line: current)) }
        return out
    }

    /// The 410 a watch from a compacted resourceVersion gets, inside a 200 stream
    /// (k8s.io/apiserver `pkg/storage/cacher/watch_cache.go` `getAllEventsSinceLocked`:
    /// `too old resource version: %d (%d)` with the oldest resourceVersion still held, minus one).
    static func expired(requested: Int, oldest: Int) -> WatchFrame {
        let status = Status(message: "too old resource version: \(requested) (\(oldest))", reason: "Expired", code: 410)
        return .event("ERROR", objectJSON: StatusEncoding.encode(status))
    }

    /// A BOOKMARK: the kind's Go zero value with only the resourceVersion set (ZeroValues.swift).
    static func bookmark(kind: ResourceKind, resourceVersion: Int, initialEventsEnd: Bool = false) -> WatchFrame {
        .event("BOOKMARK", objectJSON: ZeroValue.bookmarkObject(apiVersion: kind.apiVersion, kind: kind.kind, resourceVersion: String(resourceVersion),
                                                               initialEventsEnd: initialEventsEnd, custom: kind.custom))
    }
}

/// The live watchers. The store publishes into it inside its own serialized
/// turns, so every watcher sees changes in resourceVersion order. A watcher
/// that falls more than `bufferLimit` frames behind is closed, as a real API
/// server closes a slow watch: it resumes from its last resourceVersion.
final class WatchHub: Sendable {
    struct Subscriber: Sendable {
        /// The storage kind whose changes it follows.
        var kind: ResourceKind
        /// The kind it asked for (its bookmarks' kind).
        var view: ResourceKind
        /// How it sees a stored object, when that differs (events.k8s.io Events, other versions of a custom kind).
        var viewer: (@Sendable (JSONValue) -> JSONValue)?
        var namespace: String?
        var selector: Selector
        var bookmarks: Bool
        /// Only changes and bookmarks after this resourceVersion are sent (`cacheWatcher.process`:
        /// "only send events newer than resourceVersion"): a watch from ahead of the store stays silent.
        var after: Int
        var deadline: ContinuousClock.Instant?
        var continuation: AsyncStream<WatchFrame>.Continuation
    }

    private let subscribers = Mutex<[Int: Subscriber]>([:])
    private let observers = Mutex<[Int: AsyncStream<ObservedChange>.Continuation]>([:])
    /// Tasks waiting until at least N watches are open.
    private let waiters = Mutex<[(count: Int, continuation: CheckedContinuation<Void, Never>)]>([])
    /// Tasks waiting until at least N watches have been opened since start.
    private let openedWaiters = Mutex<(opened: Int, waiting: [(count: Int, continuation: CheckedContinuation<Void, Never>)])>((0, []))
    private let nextID = Atomic<Int>(0)
    let bufferLimit: Int

    init(bufferLimit: Int = 100_000) { self.bufferLimit = bufferLimit }

    var count: Int { subscribers.withLock { $0.count } }

    /// Registers a watcher whose first frames are `initial`.
    /// While set (a restart or shutdown under way), new watches end at once: a client that
    /// reconnects in that window must not hold the server's graceful shutdown open forever.
    private let refusing = Atomic<Bool>(false)
    func refuseNewWatches(_ on: Bool) { refusing.store(on, ordering: .relaxed) }

    func subscribe(kind: ResourceKind, view: ResourceKind? = nil, viewer: (@Sendable (JSONValue) -> JSONValue)? = nil, namespace: String?, selector: Selector,
                   bookmarks: Bool, after: Int = 0, timeout: Duration?, initial: [WatchFrame], endAfterInitial: Bool = false) -> AsyncStream<WatchFrame> {
        let (stream, cont) = AsyncStream.makeStream(of: WatchFrame.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        for f in initial { cont.yield(f) }
        if endAfterInitial || refusing.load(ordering: .relaxed) {
            cont.finish()
            return stream
        }
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        subscribers.withLock {
            $0[id] = Subscriber(kind: kind, view: view ?? kind, viewer: viewer, namespace: namespace, selector: selector, bookmarks: bookmarks,
                                after: after, deadline: deadline, continuation: cont)
        }
        cont.onTermination = { [weak self] _ in self?.remove(id) }
        let open = count
        let ready = waiters.withLock { w -> [CheckedContinuation<Void, Never>] in
            let (now, later) = (w.filter { $0.count <= open }, w.filter { $0.count > open })
            w = later
            return now.map(\.continuation)
        }
        for c in ready { c.resume() }
        let openedReady = openedWaiters.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.opened += 1
            let total = s.opened
            defer { s.waiting.removeAll { $0.count <= total } }
            return s.waiting.filter { $0.count <= total }.map(\.continuation)
        }
        for c in openedReady { c.resume() }
        return stream
    }

    /// Returns once at least `count` watches have been opened in total (a reconnect opens one more).
    func waitForWatchesOpened(_ count: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = openedWaiters.withLock { s -> Bool in
                if s.opened >= count { return true }
                s.waiting.append((count, c))
                return false
            }
            if now { c.resume() }
        }
    }

    /// Returns once at least `count` watches are open.
    func waitForWatches(_ count: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = waiters.withLock { w -> Bool in
                if self.count >= count { return true }
                w.append((count, c))
                return false
            }
            if now { c.resume() }
        }
    }

    func remove(_ id: Int) { _ = subscribers.withLock { $0.removeValue(forKey: id) } }

    /// Delivers one change to every watcher it concerns, translating selector
    /// transitions: an object that stops matching is DELETED for that watcher,
    /// one that starts matching is ADDED.
    func observe() -> AsyncStream<ObservedChange> {
        let (stream, cont) = AsyncStream.makeStream(of: ObservedChange.self)
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        observers.withLock { $0[id] = cont }
        cont.onTermination = { [weak self] _ in _ = self?.observers.withLock { $0.removeValue(forKey: id) } }
        return stream
    }

    func publish(_ change: ChangeEvent) {
        let observed = observers.withLock { $0.isEmpty ? [] : Array($0.values) }
        if !observed.isEmpty {
            let c = ObservedChange(type: change.type, resource: change.kind.plural, group: change.kind.group, namespace: change.key.namespace.isEmpty ? nil : change.key.namespace, name: change.key.name,
                                   object: change.object, resourceVersion: change.resourceVersion)
            for o in observed { o.yield(c) }
        }
        var slow: [AsyncStream<WatchFrame>.Continuation] = []
        subscribers.withLock { subs in
            for (_, s) in subs where s.kind == change.kind && (s.namespace == nil || s.namespace == change.key.namespace) && change.resourceVersion > s.after {
                guard let frame = Self.frame(change, selector: s.selector, view: s.viewer) else { continue }
                if case .dropped = s.continuation.yield(frame) { slow.append(s.continuation) }
            }
        }
        for c in slow { c.finish() }
    }

    /// The frame one watcher gets for a change, with selector transitions as the watch cache
    /// makes them (k8s.io/apiserver `pkg/storage/cacher/cache_watcher.go`
    /// `cacheWatcher.convertToWatchEvent`): an object that starts matching is ADDED; one that
    /// stops matching is DELETED carrying its **previous** state with the change's
    /// resourceVersion; one that matches neither before nor after is not sent.
    static func frame(_ change: ChangeEvent, selector: Selector, view: (@Sendable (JSONValue) -> JSONValue)?) -> WatchFrame? {
        // The stored object's bytes are encoded once per change and shared; only a converted
        // view or a previous state is encoded here.
        func json(_ v: JSONValue, current: Bool = true) -> [UInt8] {
            if let view { return view(v).jsonBytes() }
            return current ? change.objectJSON : v.jsonBytes()
        }
        // Selectors match the stored form (events.k8s.io field labels were mapped to core ones).
        let current = change.object
        if selector.isEmpty { return .event(change.type, objectJSON: json(change.object)) }
        switch change.type {
        case "ADDED": return selector.matches(current) ? .event("ADDED", objectJSON: json(change.object)) : nil
        case "DELETED": return selector.matches(current) ? .event("DELETED", objectJSON: json(change.object)) : nil
        default:
            let was = change.old.map(selector.matches) ?? false
            let now = selector.matches(current)
            switch (was, now) {
            case (true, true): return .event("MODIFIED", objectJSON: json(change.object))
            case (false, true): return .event("ADDED", objectJSON: json(change.object))
            case (true, false):
                guard var previous = change.old else { return nil }
                previous["metadata"]?["resourceVersion"] = .string(String(change.resourceVersion))
                return .event("DELETED", objectJSON: json(previous, current: false))
            case (false, false): return nil
            }
        }
    }

    /// Sends a BOOKMARK at `resourceVersion` to every watcher that asked for them.
    func bookmark(resourceVersion: Int) {
        subscribers.withLock { subs in
            for s in subs.values where s.bookmarks && resourceVersion > s.after {
                _ = s.continuation.yield(.bookmark(kind: s.view, resourceVersion: resourceVersion))
            }
        }
    }

    /// Ends watches whose `timeoutSeconds` passed.
    func expire(now: ContinuousClock.Instant) {
        let done = subscribers.withLock { subs in subs.values.filter { $0.deadline.map { $0 <= now } ?? false }.map(\.continuation) }
        for c in done { c.finish() }
    }

    /// Fault injection: every open watch ends mid-stream.
    func dropAll() {
        let all = subscribers.withLock { $0.values.map(\.continuation) }
        for c in all { c.finish() }
    }
}

/// A committed change, as an in-process observer sees it.
public struct ObservedChange: Sendable {
    /// ADDED, MODIFIED or DELETED.
    public var type: String
    /// The plural resource name (`secrets`, `serviceaccounts`, `roles` …).
    public var resource: String
    /// The API group ("" for core).
    public var group: String
    public var namespace: String?
    public var name: String
    /// The object as stored (for DELETED, its last state).
    public var object: JSONValue
    public var resourceVersion: Int
}
