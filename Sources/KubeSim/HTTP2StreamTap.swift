import NIOCore
import NIOHTTP2

/// First in each HTTP/2 stream's pipeline, below the HTTP codec: notes which streams serve a
/// watch, and ends one on the connection faults' behalf, with END_STREAM (as a server ends a
/// watch whose timeout passed) or RST_STREAM. It also puts END_STREAM on the frame that completes
/// a Content-Length body, as x/net/http2 does when the handler returns (`writeChunk`:
/// `endStream := rws.handlerDone && …`), where hummingbird's codec sends an empty DATA frame after
/// it: libcurl, done at the last byte, resets every such stream, and the resets add up.
final class HTTP2StreamTap: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let connections: HTTPConnections
    private weak var manager: HTTP2ConnectionManager?
    private var context: ChannelHandlerContext?
    private var seenRequest = false
    private var ticket: Int?
    private var responseStarted = false
    /// The stream's output is over (ended here, or by the server's own last frame).
    private var outputDone = false
    private var endAfterHead = false
    /// Body bytes still to come of a Content-Length response.
    private var bodyLeft: Int?
    /// The frame that completed a Content-Length response, held for the END_STREAM that follows.
    private var held: (payload: HTTP2Frame.FramePayload, promise: EventLoopPromise<Void>?)?

    init(connections: HTTPConnections, manager: HTTP2ConnectionManager) {
        self.connections = connections
        self.manager = manager
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        unregister()
        held?.promise?.fail(ChannelError.ioOnClosedChannel)
        held = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        unregister()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !seenRequest, case .headers(let headers) = unwrapInboundIn(data) {
            seenRequest = true
            if let path = headers.headers.first(name: ":path"), Self.isWatch(path) {
                let plain = String(path.prefix { $0 != "?" })
                ticket = connections.watchOpened(path: plain, tap: NIOLoopBound(self, eventLoop: context.eventLoop))
                manager?.watchStarted(self)
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !outputDone else {
            // Ended here: the server's own later frames go nowhere.
            promise?.fail(ChannelError.outputClosed)
            return
        }
        let payload = unwrapOutboundIn(data)
        if let h = held {
            held = nil
            if case .data(let d) = payload, d.endStream, d.data.readableBytes == 0 {
                outputDone = true
                context.write(wrapOutboundOut(Self.ending(h.payload)), promise: Self.combine(h.promise, promise))
                return
            }
            context.write(wrapOutboundOut(h.payload), promise: h.promise)
        }
        switch payload {
        case .headers(let h):
            if h.endStream {
                outputDone = true
            } else if !responseStarted {
                bodyLeft = h.headers.first(name: "content-length").flatMap { Int($0) }
                if bodyLeft == 0 {
                    responseStarted = true
                    held = (payload, promise)
                    return
                }
            }
            responseStarted = true
        case .data(let d):
            if d.endStream {
                outputDone = true
            } else if let left = bodyLeft {
                bodyLeft = left - d.data.readableBytes
                if left - d.data.readableBytes <= 0 {
                    held = (payload, promise)
                    return
                }
            }
        case .rstStream:
            outputDone = true
        default:
            break
        }
        context.write(wrapOutboundOut(payload), promise: promise)
        if endAfterHead, !outputDone, case .headers = payload { endCleanly() }
    }

    /// `payload` carrying END_STREAM.
    private static func ending(_ payload: HTTP2Frame.FramePayload) -> HTTP2Frame.FramePayload {
        switch payload {
        case .headers(var h):
            h.endStream = true
            return .headers(h)
        case .data(var d):
            d.endStream = true
            return .data(d)
        default:
            return payload
        }
    }

    private static func combine(_ a: EventLoopPromise<Void>?, _ b: EventLoopPromise<Void>?) -> EventLoopPromise<Void>? {
        guard let a else { return b }
        guard let b else { return a }
        b.futureResult.cascade(to: a)
        return b
    }

    /// Ends the response here with an empty DATA frame carrying END_STREAM, after what the
    /// server already wrote (right after the head when it has not written that yet).
    func endCleanly() {
        guard let context, !outputDone else { return }
        guard responseStarted else {
            endAfterHead = true
            return
        }
        outputDone = true
        if let h = held {
            held = nil
            context.writeAndFlush(wrapOutboundOut(Self.ending(h.payload)), promise: h.promise)
        } else {
            let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(context.channel.allocator.buffer(capacity: 0)), endStream: true))
            context.writeAndFlush(wrapOutboundOut(end), promise: nil)
        }
        unregister()
    }

    /// Resets the stream (RST_STREAM with `code`); what the server buffered for it is dropped.
    func reset(_ code: HTTP2ErrorCode) {
        guard let context, !outputDone else { return }
        outputDone = true
        held?.promise?.fail(ChannelError.outputClosed)
        held = nil
        context.writeAndFlush(wrapOutboundOut(.rstStream(code)), promise: nil)
        unregister()
    }

    private func unregister() {
        guard let t = ticket else { return }
        ticket = nil
        connections.watchEnded(t)
        manager?.watchEnded(self)
    }

    /// A watch request, as kube-apiserver's RequestInfo reads one: `watch=true` (or 1) in the query.
    static func isWatch(_ path: String) -> Bool {
        guard let q = path.firstIndex(of: "?") else { return false }
        return path[path.index(after: q)...].split(separator: "&").contains { $0 == "watch=true" || $0 == "watch=1" }
    }
}
