import NIOCore
import NIOHTTP2

/// kube-apiserver's HTTP/2 server settings, as `SecureServingInfo.Serve` gives them to Go's
/// x/net/http2 server (k8s.io/apiserver `pkg/server/secure_serving.go`).
enum KubeAPIServerHTTP2 {
    /// `resourceBody99Percentile`: "At least 99% of serialized resources in surveyed clusters were
    /// smaller than 256kb"; both the per-stream receive buffer and the largest frame read.
    static let resourceBody99Percentile = 256 * 1024

    /// `--http2-max-streams-per-connection` is 0 for kube-apiserver (`pkg/kubeapiserver/options/serving.go`
    /// `NewSecureServingOptions` leaves it unset), which `Serve` turns into 100 "to match
    /// http2.initialMaxConcurrentStreams used by clients". (1000 is `NewRecommendedOptions`'
    /// value, for aggregated API servers behind a proxy, not kube-apiserver's.)
    static let maxConcurrentStreams = 100

    /// `MaxUploadBufferPerConnection = MaxUploadBufferPerStream * MaxConcurrentStreams`.
    static let connectionWindow = resourceBody99Percentile * maxConcurrentStreams

    /// x/net/http2 `serverConn.maxHeaderListSize`: `http.Server.MaxHeaderBytes` (kube-apiserver: 1 MiB)
    /// padded by `adjustHTTP1MaxHeaderSize` (10 fields × 32 bytes).
    static let maxHeaderListSize = (1 << 20) + 10 * 32

    /// `IdleTimeout: 90 * time.Second` (x/net/http2: with no open stream this long, GOAWAY and close).
    static let idleTimeout: TimeAmount = .seconds(90)

    /// x/net/http2 `goAwayTimeout`: after a graceful GOAWAY, the connection closes this long after
    /// its last stream ended ("so the peer sees the GOAWAY before the TCP close").
    static let goAwayTimeout: TimeAmount = .seconds(1)

    /// The SETTINGS x/net/http2 `serverConn.serve` sends first (MAX_FRAME_SIZE,
    /// MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, INITIAL_WINDOW_SIZE), and the window targets
    /// that keep them: NIO raises the connection window to `connectionWindow` with the first
    /// WINDOW_UPDATE it sends, where Go sends that update right after its SETTINGS.
    static var configuration: NIOHTTP2Handler.Configuration {
        var c = NIOHTTP2Handler.Configuration()
        c.connection.initialSettings = [
            HTTP2Setting(parameter: .maxFrameSize, value: resourceBody99Percentile),
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderListSize),
            HTTP2Setting(parameter: .initialWindowSize, value: resourceBody99Percentile),
        ]
        c.connection.targetWindowSize = connectionWindow
        c.stream.targetWindowSize = resourceBody99Percentile
        // NIOHTTP2 ends a connection after 200 RST_STREAMs from the client in 30 s; x/net/http2
        // has no such count (its rapid-reset defence, `serverConn.scheduleHandler`, bounds the
        // handlers it runs at once), and libcurl resets streams it is done with. No window, no count.
        c.stream.streamResetFrameRateLimit.windowLength = .zero
        return c
    }
}
