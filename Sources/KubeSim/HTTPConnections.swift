import Foundation
import NIOCore
import NIOHTTP2
import Synchronization

/// The devcluster's client connections: counted for tests, and reachable by the connection
/// faults (`DevCluster.goAway()`, `DevCluster.resetStream(watchPathPrefix:)`). Shared across
/// restarts; each connection's own state stays on its event loop.
final class HTTPConnections: Sendable {
    typealias Counts = (total: Int, http2: Int)

    private struct Connection {
        var http2: NIOLoopBound<HTTP2ConnectionManager>?
    }

    /// An HTTP/2 stream serving a watch, by the order it was opened in.
    private struct Watch {
        var path: String
        var tap: NIOLoopBound<HTTP2StreamTap>
    }

    private struct Waiter {
        var id: UUID
        var predicate: @Sendable (Counts) -> Bool
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var open: [Int: Connection] = [:]
        var accepted: Counts = (0, 0)
        var watches: [Int: Watch] = [:]
        var waiters: [Waiter] = []

        var openCounts: Counts { (open.count, open.values.filter { $0.http2 != nil }.count) }

        /// Takes the waiters whose condition now holds.
        mutating func ready() -> [CheckedContinuation<Void, Never>] {
            let now = openCounts
            let hit = waiters.filter { $0.predicate(now) }
            waiters.removeAll { $0.predicate(now) }
            return hit.map(\.continuation)
        }
    }

    private let state = Mutex(State())
    private let nextID = Atomic<Int>(0)

    func makeID() -> Int { nextID.wrappingAdd(1, ordering: .relaxed).newValue }

    var open: Counts { state.withLock { $0.openCounts } }
    var accepted: Counts { state.withLock { $0.accepted } }

    func opened(_ id: Int) {
        let ready = state.withLock { s in
            s.open[id] = Connection()
            s.accepted.total += 1
            return s.ready()
        }
        for c in ready { c.resume() }
    }

    /// ALPN chose `h2`: the connection is served by `manager`.
    func negotiatedHTTP2(_ id: Int, manager: NIOLoopBound<HTTP2ConnectionManager>) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.open[id] != nil else { return [] }
            s.open[id]?.http2 = manager
            s.accepted.http2 += 1
            return s.ready()
        }
        for c in ready { c.resume() }
    }

    func closed(_ id: Int) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.open.removeValue(forKey: id) != nil else { return [] }
            return s.ready()
        }
        for c in ready { c.resume() }
    }

    /// Returns once the open connections satisfy `predicate` (at once if they already do).
    func wait(until predicate: @escaping @Sendable (Counts) -> Bool) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if Task.isCancelled || predicate(s.openCounts) { return true }
                    s.waiters.append(Waiter(id: id, predicate: predicate, continuation: c))
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

    // MARK: watches on HTTP/2 streams

    /// Registers a watch stream; returns the ticket to hand back when it ends.
    func watchOpened(path: String, tap: NIOLoopBound<HTTP2StreamTap>) -> Int {
        let ticket = makeID()
        state.withLock { $0.watches[ticket] = Watch(path: path, tap: tap) }
        return ticket
    }

    func watchEnded(_ ticket: Int) { _ = state.withLock { $0.watches.removeValue(forKey: ticket) } }

    /// RST_STREAM on the oldest open watch whose path (without the query) starts with `prefix`.
    /// Returns its path, or nil when no such watch is open.
    func resetOldestWatch(pathPrefix prefix: String, code: HTTP2ErrorCode) async -> String? {
        let chosen = state.withLock { s -> Watch? in
            guard let ticket = s.watches.filter({ $0.value.path.hasPrefix(prefix) }).keys.min() else { return nil }
            return s.watches.removeValue(forKey: ticket)
        }
        guard let chosen else { return nil }
        let tap = chosen.tap
        try? await tap.eventLoop.submit { tap.value.reset(code) }.get()
        return chosen.path
    }

    /// GOAWAY on every open HTTP/2 connection (see `HTTP2ConnectionManager.goAway`); returns
    /// once each has been sent.
    func goAwayAll(endingWatches: Bool = true) async {
        let managers = state.withLock { $0.open.values.compactMap(\.http2) }
        for m in managers {
            try? await m.eventLoop.submit { m.value.goAway(endingWatches ? .fault : .faultKeepingWatches) }.get()
        }
    }
}

/// First in every accepted connection's pipeline: counts it open until the TCP connection closes.
final class ConnectionTracker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let connections: HTTPConnections
    let id: Int
    private var counted = false

    init(connections: HTTPConnections, id: Int) {
        self.connections = connections
        self.id = id
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        connections.opened(id)
    }

    func channelInactive(context: ChannelHandlerContext) {
        uncount()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { uncount() }

    private func uncount() {
        guard counted else { return }
        counted = false
        connections.closed(id)
    }
}
