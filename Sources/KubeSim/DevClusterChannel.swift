import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP2
import NIOSSL

/// How the devcluster serves one accepted connection, as kube-apiserver does: over TLS, ALPN
/// offers `h2` then `http/1.1` (k8s.io/apiserver `pkg/server/secure_serving.go` `tlsConfig`:
/// `NextProtos: []string{"h2", "http/1.1"}`, only `http/1.1` with `DisableHTTP2`), and HTTP/2
/// runs with kube-apiserver's settings (`KubeAPIServerHTTP2`); plain HTTP is HTTP/1.1 only.
/// Modelled on hummingbird 2.28.1's `HTTP2UpgradeChannel`/`HTTP2Channel`/`HTTP2StreamChannel`,
/// whose HTTP/2 settings are NIOHTTP2's defaults and cannot be changed.
struct DevClusterChannel: HTTPChannelHandler {
    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<NIONegotiatedHTTPVersion<HTTP1Channel.Value, HTTP2Connection>>
        let channel: any Channel
    }

    struct HTTP2Connection: Sendable {
        let streams: NIOHTTP2Handler.AsyncStreamMultiplexer<HTTP1Channel.Value>
    }

    let responder: Responder
    private let http1: HTTP1Channel
    private let tls: NIOSSLContext?
    private let http2: Bool
    private let idleTimeout: TimeAmount
    private let connections: HTTPConnections

    /// - Parameters:
    ///   - tls: the server's TLS configuration (its ALPN list is set here); nil: plain HTTP/1.1.
    ///   - http2: offer `h2` over TLS (false: as kube-apiserver's `--disable-http2-serving`).
    ///   - idleTimeout: an HTTP/2 connection with no open stream this long goes away.
    init(tls: TLSConfiguration?, http2: Bool, idleTimeout: TimeAmount = KubeAPIServerHTTP2.idleTimeout, connections: HTTPConnections, responder: @escaping Responder) throws {
        self.idleTimeout = idleTimeout
        if var tls {
            tls.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
            self.tls = try NIOSSLContext(configuration: tls)
        } else {
            self.tls = nil
        }
        self.http2 = http2 && tls != nil
        self.connections = connections
        self.responder = responder
        http1 = HTTP1Channel(responder: responder)
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let http1 = http1
        let connections = connections
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionTracker(connections: connections, id: connections.makeID()))
            if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
        }.flatMap { () -> EventLoopFuture<Value> in
            guard http2 else {
                return http1.setup(channel: channel, logger: logger).map { Value(negotiated: channel.eventLoop.makeSucceededFuture(.http1_1($0)), channel: channel) }
            }
            return channel.configureHTTP2AsyncSecureUpgrade { channel in
                http1.setup(channel: channel, logger: logger)
            } http2ConnectionInitializer: { channel in
                self.setupHTTP2(channel: channel, logger: logger)
            }.map { Value(negotiated: $0, channel: channel) }
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http1_1(let http1Value):
                await http1.handle(value: http1Value, logger: logger)
            case .http2(let connection):
                try await withThrowingDiscardingTaskGroup { group in
                    for try await stream in connection.streams.inbound {
                        group.addTask { await self.handleStream(stream, logger: logger) }
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func setupHTTP2(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP2Connection> {
        channel.eventLoop.makeCompletedFuture {
            let manager = HTTP2ConnectionManager(idleTimeout: idleTimeout)
            let bound = NIOLoopBound(manager, eventLoop: channel.eventLoop)
            let connections = connections
            let streams = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                mode: .server, streamDelegate: HTTP2ConnectionManager.StreamDelegate(manager: bound), configuration: KubeAPIServerHTTP2.configuration
            ) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2StreamTap(connections: connections, manager: bound.value))
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTPServerCodec())
                    try stream.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
                    return try HTTP1Channel.Value(wrappingChannelSynchronously: stream)
                }
            }
            try channel.pipeline.syncOperations.addHandler(manager)
            if let tracker = try? channel.pipeline.syncOperations.handler(type: ConnectionTracker.self) {
                connections.negotiatedHTTP2(tracker.id, manager: bound)
            }
            return HTTP2Connection(streams: streams)
        }
    }

    /// One request on its own stream. When the stream closes first (END_STREAM sent by a fault,
    /// RST_STREAM from either side, the connection gone), the handler is cancelled: a watch's
    /// subscription ends at once instead of at its next event.
    private func handleStream(_ stream: HTTP1Channel.Value, logger: Logger) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.handleHTTP(asyncChannel: stream, logger: logger) }
            group.addTask { try? await stream.channel.closeFuture.get() }
            await group.next()
            group.cancelAll()
        }
    }
}
