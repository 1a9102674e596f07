import NIOCore
import NIOHTTP2

/// One HTTP/2 connection's life as Go's x/net/http2 server (kube-apiserver's) leads it: one
/// GOAWAY(NO_ERROR) naming the highest stream the client opened, streams up to it served to
/// their end, then the connection closed. Sits after `NIOHTTP2Handler`; runs on its event loop.
final class HTTP2ConnectionManager: ChannelDuplexHandler {
    /// With no open stream this long: GOAWAY and close (kube-apiserver: 90 s).
    private let idleTimeout: TimeAmount

    init(idleTimeout: TimeAmount = KubeAPIServerHTTP2.idleTimeout) {
        self.idleTimeout = idleTimeout
    }

    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// Why the connection goes away.
    enum Reason {
        /// `DevCluster.goAway()`: as kube-apiserver's `--goaway-chance` filter does it, and then
        /// the open watches end as a server that timed them out ends them.
        case fault
        /// `DevCluster.goAway(endingWatches: false)`: exactly the filter's GOAWAY — in-flight
        /// long-running requests go on on this connection until they end by themselves.
        case faultKeepingWatches
        /// No stream for `IdleTimeout` (x/net/http2 `idleTimerMsg` → `goAway(ErrCodeNo)`).
        case idle
        /// The server is shutting down or restarting (`ChannelShouldQuiesceEvent`).
        case shutdown
    }

    private var context: ChannelHandlerContext?
    private var openStreams: Set<HTTP2StreamID> = []
    /// x/net/http2 `maxClientStreamID`: the GOAWAY's last-stream-ID.
    private var maxClientStreamID: HTTP2StreamID = .rootStream
    /// The open streams that serve a watch, ended cleanly by a `.fault` GOAWAY.
    private var watches: [ObjectIdentifier: HTTP2StreamTap] = [:]
    /// Set once GOAWAY was sent: how long after the last stream ends the connection closes.
    private var closeDelay: TimeAmount?
    private var idleTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armIdleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        closeTimer?.cancel()
        watches = [:]
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { goAway(.shutdown) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIOHTTP2 has already answered: RST_STREAM for a stream error, GOAWAY for a connection
        // error. A stream error must not take the connection's other streams (watches) down, and
        // the two arrive here alike, so the connection is left to the client (as hummingbird's
        // manager would not: it closes on any error).
    }

    // MARK: streams (from the stream delegate and the stream taps)

    func streamCreated(_ id: HTTP2StreamID) {
        openStreams.insert(id)
        if id > maxClientStreamID { maxClientStreamID = id }
        idleTimer?.cancel()
        idleTimer = nil
    }

    func streamClosed(_ id: HTTP2StreamID) {
        openStreams.remove(id)
        guard openStreams.isEmpty else { return }
        if closeDelay != nil { closeWhenDrained() } else { armIdleTimer() }
    }

    func watchStarted(_ tap: HTTP2StreamTap) { watches[ObjectIdentifier(tap)] = tap }
    func watchEnded(_ tap: HTTP2StreamTap) { watches[ObjectIdentifier(tap)] = nil }

    // MARK: going away

    /// Sends GOAWAY(NO_ERROR, last-stream-ID = the highest stream the client opened) once; the
    /// streams it covers go on. A `.fault` also ends the open watches with END_STREAM. The
    /// connection closes `goAwayTimeout` after its last stream ended (at once on shutdown).
    func goAway(_ reason: Reason) {
        guard let context else { return }
        let delay: TimeAmount = reason == .shutdown ? .zero : KubeAPIServerHTTP2.goAwayTimeout
        if closeDelay == nil {
            // x/net/http2 `scheduleFrameWrite`: `writeGoAway{maxStreamID: sc.maxClientStreamID, code: sc.goAwayCode}`.
            let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: maxClientStreamID, errorCode: .noError, opaqueData: nil))
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
            idleTimer?.cancel()
            idleTimer = nil
        }
        closeDelay = min(closeDelay ?? delay, delay)
        if reason == .fault {
            for tap in watches.values { tap.endCleanly() }
        }
        if openStreams.isEmpty { closeWhenDrained() }
    }

    private func closeWhenDrained() {
        guard let context, let delay = closeDelay else { return }
        closeTimer?.cancel()
        if delay == .zero {
            context.close(promise: nil)
            return
        }
        closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            self.context?.close(promise: nil)
        }
    }

    private func armIdleTimer() {
        guard let context, closeDelay == nil else { return }
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [self] in
            self.idleTimer = nil
            if self.openStreams.isEmpty { self.goAway(.idle) }
        }
    }
}

extension HTTP2ConnectionManager {
    /// Tells the manager about streams as NIOHTTP2 creates and closes them (on its event loop).
    struct StreamDelegate: NIOHTTP2StreamDelegate {
        let manager: NIOLoopBound<HTTP2ConnectionManager>

        func streamCreated(_ id: HTTP2StreamID, channel: any Channel) { manager.value.streamCreated(id) }
        func streamClosed(_ id: HTTP2StreamID, channel: any Channel) { manager.value.streamClosed(id) }
    }
}
