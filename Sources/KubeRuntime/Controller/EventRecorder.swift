public import KubeClient
public import Logging
public import Foundation
import Synchronization

/// Kubernetes Events about a controller's objects, written off the caller's path.
///
/// `record` never waits: it puts the Event in a bounded buffer and returns, and
/// `run()` writes the buffer out. This is client-go's split
/// (`tools/record`: the recorder hands Events to a broadcaster whose queue holds
/// `maxQueuedEvents` = 1000 and drops when full, `watch.DropIfChannelFull`), so an
/// API server that is slow to take Events never slows a reconcile.
///
/// Repeats are aggregated as client-go's `EventCorrelator` does (`events_cache.go`):
/// the same reason about the same object within `aggregationWindow` raises the
/// first Event's count with one PATCH (`series` for `events.k8s.io/v1`, `count` for
/// core/v1) instead of creating another, so retries never flood a namespace.
/// `events.k8s.io/v1` is used; core/v1 where that group is not served.
public final class EventRecorder: Sendable {
    /// Who reports (an Event's `reportingController`/`reportingInstance`, core `source`).
    public struct Reporter: Sendable {
        /// `reportingController`, e.g. `example.com/my-controller`.
        public var controller: String
        /// core/v1 `source.component`.
        public var component: String
        /// `reportingInstance` and core `source.host`: this replica.
        public var instance: String
        public init(controller: String, component: String, instance: String) {
            self.controller = controller
            self.component = component
            self.instance = instance
        }
    }

    /// One Event to write.
    public struct Note: Sendable {
        public var regarding: ObjectReference
        /// UpperCamelCase, e.g. `SecretRepaired`.
        public var reason: String
        /// What was done, e.g. `Repair`.
        public var action: String
        public var note: String
        public var warning: Bool
        public init(regarding: ObjectReference, reason: String, action: String, note: String, warning: Bool) {
            self.regarding = regarding
            self.reason = reason
            self.action = action
            self.note = note
            self.warning = warning
        }
    }

    private struct Written: Sendable {
        var core: Bool
        var namespace: String
        var name: String
        var count: Int
        var at: Date
    }

    private struct State {
        var pending: [Note] = []
        var dropped = 0
        var written = 0
        /// Taken from `pending`, not yet written.
        var writing = 0
        var idleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var isIdle: Bool { pending.isEmpty && writing == 0 }
    }

    let client: KubeClient
    let reporter: Reporter
    let logger: Logger
    let clock: RuntimeClock
    public let capacity: Int
    public let aggregationWindow: TimeInterval
    private let state = Mutex(State())
    private let wakeup = Wakeup()
    /// Touched only by `run()` (one run at a time).
    private let recent = Mutex<[String: Written]>([:])

    public init(client: KubeClient, reporter: Reporter, logger: Logger, clock: RuntimeClock = .system,
                capacity: Int = 1000, aggregationWindow: TimeInterval = 600) {
        self.client = client
        self.reporter = reporter
        self.logger = logger
        self.clock = clock
        self.capacity = max(capacity, 1)
        self.aggregationWindow = aggregationWindow
    }

    /// Queues an Event; never waits. When the buffer is full the Event is dropped and counted.
    public func record(_ note: Note) {
        let accepted = state.withLock { s -> Bool in
            guard s.pending.count + s.writing < capacity else { s.dropped += 1; return false }
            s.pending.append(note)
            return true
        }
        if accepted { wakeup.poke() }
    }

    /// Events dropped because the buffer was full.
    public var dropped: Int { state.withLock { $0.dropped } }
    /// Events waiting to be written.
    public var pendingCount: Int { state.withLock { $0.pending.count + $0.writing } }
    /// Write attempts made so far (a create or an aggregating patch, successful or not).
    public var writtenCount: Int { state.withLock { $0.written } }

    /// Writes queued Events until cancelled. Events a cancelled run did not write stay queued,
    /// in order, for the next run (a controller that loses and regains leadership runs it again).
    public func run() async {
        while !Task.isCancelled {
            let batch = state.withLock { s -> [Note] in
                defer { s.writing += s.pending.count; s.pending.removeAll(keepingCapacity: true) }
                return s.pending
            }
            for (i, note) in batch.enumerated() {
                // A write once begun is finished, even if this run is cancelled meanwhile: a request
                // cut short may have created the Event already, and writing it again would make two.
                // (An unstructured task does not inherit cancellation; it is awaited here, so it ends
                // within the client's request timeout.) Notes not begun wait for the next run.
                let done = Task.isCancelled ? false : await Task { await self.write(note) }.value
                if !done {
                    let unwritten = Array(batch[i...])
                    state.withLock { s in
                        s.pending.insert(contentsOf: unwritten, at: 0)
                        s.writing -= unwritten.count
                    }
                    return
                }
                state.withLock { $0.written += 1; $0.writing -= 1 }
            }
            resumeIdleWaiters()
            if batch.isEmpty { _ = await wakeup.wait(until: clock.date.addingTimeInterval(3600), clock: clock) }
        }
    }

    /// Returns once every Event recorded before the call has been written (or given up on), or
    /// when the calling task is cancelled. For a graceful stop and for tests: a caller that needs
    /// its Events on the server waits here while `run()` is running.
    public func waitUntilWritten() async {
        let id = state.withLock { s -> Int in s.nextWaiter += 1; return s.nextWaiter }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                // Under the lock: a cancellation that came before the waiter was stored resumes
                // it here (its handler found nothing to resume).
                let now = state.withLock { s -> Bool in
                    if s.isIdle || Task.isCancelled { return true }
                    s.idleWaiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.idleWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    private func resumeIdleWaiters() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.isIdle else { return [] }
            defer { s.idleWaiters = [:] }
            return Array(s.idleWaiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// False when the write was cut short by cancellation (the note is to be written again).
    private func write(_ note: Note) async -> Bool {
        let ref = note.regarding
        let key = "\(ref.kind ?? "")/\(ref.namespace ?? "")/\(ref.name ?? "")/\(note.reason)"
        let now = clock.date
        let seen = recent.withLock { r -> Written? in
            r = r.filter { now.timeIntervalSince($0.value.at) < aggregationWindow }
            return r[key]
        }
        if var seen {
            seen.count += 1
            guard await bump(seen, at: now) else { return false }
            recent.withLock { $0[key] = seen }
            return true
        }
        let (written, interrupted) = await create(note, at: now)
        if let written { recent.withLock { $0[key] = written } }
        return !interrupted
    }

    private func create(_ note: Note, at now: Date) async -> (Written?, interrupted: Bool) {
        let ref = note.regarding
        var meta = ObjectMeta(namespace: ref.namespace)
        meta.generateName = "\(ref.name ?? reporter.component).\(note.reason.lowercased())."
        var event = Event(metadata: meta)
        event.eventTime = RFC3339.formatMicro(now)
        event.reportingController = reporter.controller
        event.reportingInstance = String(reporter.instance.prefix(128))
        event.action = note.action
        event.reason = note.reason
        event.note = String(note.note.prefix(1024))
        event.type = note.warning ? "Warning" : "Normal"
        event.regarding = ref
        let ns = ref.namespace ?? "default"
        do {
            let created = try await client.create(event)
            return (created.metadata.name.map { Written(core: false, namespace: ns, name: $0, count: 1, at: now) }, false)
        } catch let e as KubeClientError where e.isNotFound {
            var core = CoreEvent(metadata: meta, involvedObject: ref)
            core.reason = note.reason
            core.message = event.note
            core.type = event.type
            core.source = .init(component: reporter.component, host: reporter.instance)
            core.firstTimestamp = RFC3339.format(now)
            core.lastTimestamp = core.firstTimestamp
            core.count = 1
            let created = try? await client.create(core)
            return (created?.metadata.name.map { Written(core: true, namespace: ns, name: $0, count: 1, at: now) }, created == nil && Task.isCancelled)
        } catch {
            if Task.isCancelled { return (nil, true) }
            logger.debug("cannot record an Event", metadata: ["reason": "\(note.reason)", "error": "\(error)"])
            return (nil, false)
        }
    }

    /// False when cut short by cancellation.
    private func bump(_ written: Written, at time: Date) async -> Bool {
        do {
            if written.core {
                _ = try await client.patch(CoreEvent.self, namespace: written.namespace, name: written.name,
                                           .merge(.object(["count": .int(written.count), "lastTimestamp": .string(RFC3339.format(time))])))
            } else {
                _ = try await client.patch(Event.self, namespace: written.namespace, name: written.name,
                                           .merge(.object(["series": .object(["count": .int(written.count), "lastObservedTime": .string(RFC3339.formatMicro(time))])])))
            }
        } catch {
            if Task.isCancelled { return false }
            logger.debug("cannot update an Event", metadata: ["event": "\(written.name)", "error": "\(error)"])
        }
        return true
    }
}
