import Foundation
import Hummingbird
import HummingbirdCore
import KubeClient
public import KubeTLS
public import Logging
import NIOCore
import NIOSSL
public import ServiceLifecycle
import Synchronization

/// The embedded local Kubernetes API: an in-memory API server on loopback
/// that the demo and every integration test run against.
public final class DevCluster: Service, Sendable {
    public struct Options: Sendable {
        public var host: String = "127.0.0.1"
        public var port: Int = 0
        /// Serve HTTPS with a CA generated at start (plain HTTP when false).
        public var tls: Bool = true
        /// Demand a client certificate issued by the devcluster's CA.
        public var requireClientCertificate: Bool = false
        /// Where `kubeconfig` and `port` are written once listening.
        public var stateDirectory: String?
        /// How often watchers that asked for bookmarks get one (kube-apiserver: about a minute).
        public var bookmarkInterval: Duration = .seconds(60)
        /// Changes kept for watches resumed from a resourceVersion.
        public var historyLimit: Int = 10_000
        /// Serve streaming lists (`sendInitialEvents`); false answers as a server with the WatchList gate off.
        public var streamingList = true
        /// Serve a certificate that expired an hour ago (clients must refuse it).
        public var expiredServingCertificate = false
        /// Offer HTTP/2 over TLS, as kube-apiserver does (false: HTTP/1.1 only, as `--disable-http2-serving`).
        public var http2 = true
        /// An HTTP/2 connection with no open stream this long gets GOAWAY and is closed (kube-apiserver: 90 s).
        public var http2IdleTimeout: Duration = .seconds(90)
        /// Run a node (`--node`): kubelet, controllers and the registry emulator, as root. The
        /// devcluster then listens on the node's address, which the node's Pods can reach.
        public var node: NodeOptions?
        /// Where `kubetrace-operator` is, for the PATH line of `install.env` (nil: no such line).
        public var toolDirectory: String?
        public init() {}
    }

    public let options: Options
    /// The devcluster's CA (nil when serving plain HTTP).
    public let certificateAuthority: CertificateAuthority?
    /// The admin bearer token (group system:masters).
    public let adminToken: String
    let store: ObjectStore
    let authenticator: Authenticator
    let tokens: ServiceAccountTokens
    /// Failed requests and latency, switched on by tests.
    public let faults = FaultInjector()
    /// The client connections, counted and reachable by the connection faults.
    let connections = HTTPConnections()
    /// `pods/log` and the registry's `/v2/`, plugged in by the node.
    let nodeRoutes = NodeRoutes()
    /// SPEC §4's Kubetrace API, under `/kubetrace-api`.
    public let kubetraceAPI: KubetraceAPIEmulator
    /// Vultr's registry credentials endpoint, under `/vultr`.
    public let vultr: VultrEmulator
    /// The operator token the Kubetrace API emulator accepts from the start.
    public let operatorToken: String
    /// The Vultr API key the Vultr emulator accepts from the start.
    public let vultrAPIKey: String
    public static let vultrRegistryID = "devcluster-registry"
    private let currentServer = Mutex<ServiceGroup?>(nil)
    private let restartRequested = Atomic<Bool>(false)
    private let lastBoundPort = Atomic<Int>(0)
    private let serving: IssuedCertificate?
    let logger: Logger
    private let boundPort = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))
    /// The node's network (with `options.node`): the address the devcluster listens on.
    let nodeNetwork: NodeNetwork?
    /// Where the devcluster listens: `options.host`, or the node's address with a node.
    public let host: String

    public init(options: Options = Options(), logger: Logger = Logger(label: "kubetrace.devcluster")) throws {
        self.options = options
        self.logger = logger
        adminToken = "kt-admin-" + UUID().uuidString.lowercased()
        operatorToken = "kt_op_" + UUID().uuidString.lowercased()
        vultrAPIKey = "vultr-" + UUID().uuidString.lowercased()
        if options.node != nil {
            // Pods live in their own network namespaces: 127.0.0.1 there is the Pod's own. The
            // devcluster listens on the node's address instead, which the Pods route to.
            let network = try NodeNetwork.setUp()
            nodeNetwork = network
            host = network.nodeAddress
        } else {
            nodeNetwork = nil
            host = options.host
        }
        kubetraceAPI = KubetraceAPIEmulator(operatorToken: operatorToken)
        vultr = VultrEmulator(apiKey: vultrAPIKey, registryID: Self.vultrRegistryID, registry: .init(host: "blr.vultrcr.com", name: "kubetrace"))
        if options.tls {
            let ca = try CertificateAuthority.generate(commonName: "kubetrace-devcluster-ca")
            certificateAuthority = ca
            serving = try ca.issue(commonName: "kubetrace-devcluster", subjectAltNames: ["DNS:localhost", "IP:127.0.0.1", "IP:::1"] + (host == options.host ? [] : ["IP:\(host)"]), usage: .server,
                                   notBeforeOffset: options.expiredServingCertificate ? -7200 : -300,
                                   validity: options.expiredServingCertificate ? 3600 : 365 * 86_400)
        } else {
            certificateAuthority = nil
            serving = nil
        }
        store = ObjectStore(historyLimit: options.historyLimit, watchListEnabled: options.streamingList)
        tokens = try ServiceAccountTokens()
        authenticator = Authenticator(adminToken: adminToken, certificateAuthenticated: options.requireClientCertificate)
    }

    deinit { nodeNetwork?.tearDown() }

    /// The base URL, once listening.
    public func url() async -> String {
        let port = await port()
        return "\(options.tls ? "https" : "http")://\(host):\(port)"
    }

    /// Waits until the listener is bound and returns its port.
    public func port() async -> Int {
        await withCheckedContinuation { cont in
            let ready: Int? = boundPort.withLock { s in
                if let p = s.port { return p }
                s.waiters.append(cont)
                return nil
            }
            if let ready { cont.resume(returning: ready) }
        }
    }

    /// Lets a test accept another bearer token as `user`.
    public func addToken(_ token: String, user: String, groups: [String] = []) {
        authenticator.addToken(token, user: UserInfo(name: user, groups: groups + ["system:authenticated"]))
    }

    /// Lets a test accept basic authentication.
    public func addBasicUser(_ name: String, password: String, groups: [String] = []) {
        authenticator.addBasicUser(name, password: password, groups: groups)
    }

    /// A kubeconfig for the admin user.
    public func kubeconfigYAML(server: String, token: String? = nil) -> String {
        var cluster = "    server: \(server)\n"
        if let ca = certificateAuthority {
            cluster += "    certificate-authority-data: \(Data(ca.certificate.certificatePEM.utf8).base64EncodedString())\n"
        }
        return """
        apiVersion: v1
        kind: Config
        current-context: kubetrace-devcluster
        clusters:
        - name: kubetrace-devcluster
          cluster:
        \(cluster)contexts:
        - name: kubetrace-devcluster
          context:
            cluster: kubetrace-devcluster
            user: admin
            namespace: default
        users:
        - name: admin
          user:
            token: \(token ?? adminToken)

        """
    }

    /// Serves until graceful shutdown; a `restart()` closes every connection
    /// and listens again on the same port with the same state, as a restarted
    /// API server in front of the same etcd would.
    public func run() async throws {
        let hub = store.hub
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.tick() }
                if options.node != nil { group.addTask { await self.runNode() } }
                var port = options.port
                while true {
                    let app = try makeApplication(port: port)
                    let server = ServiceGroup(configuration: .init(services: [app], logger: logger))
                    currentServer.withLock { $0 = server }
                    try await server.run()
                    guard restartRequested.exchange(false, ordering: .relaxed) else { break }
                    port = lastBoundPort.load(ordering: .relaxed)
                }
                group.cancelAll()
            }
            nodeNetwork?.tearDown()
        } onGracefulShutdown: {
            // Open watches would hold graceful shutdown forever: end them first.
            hub.refuseNewWatches(true)
            hub.dropAll()
        }
    }

    /// Fault injection: every open watch ends mid-stream.
    public func dropWatches() { store.hub.dropAll() }

    /// Fault injection: every open HTTP/2 connection goes away as a kube-apiserver's does when its
    /// `--goaway-chance` filter (k8s.io/apiserver `pkg/server/filters/goaway.go`) marks a response
    /// `Connection: close`: x/net/http2 then sends GOAWAY(NO_ERROR) naming the highest stream the
    /// client opened, serves the streams up to it to their end and closes the connection
    /// `goAwayTimeout` (1 s) after the last one. Watches never end on their own, so here they end
    /// cleanly (END_STREAM, as a watch whose timeout passed) right after the GOAWAY; clients must
    /// resume them on a new connection. With `endingWatches: false`, exactly what the filter does:
    /// its comment says in-flight long-running requests "will not be influenced", so the watches
    /// go on on the old connection while new requests open another. Returns once every GOAWAY is sent.
    public func goAway(endingWatches: Bool = true) async { await connections.goAwayAll(endingWatches: endingWatches) }

    /// Fault injection: RST_STREAM with INTERNAL_ERROR on one HTTP/2 watch — the oldest open one
    /// whose path (without the query) starts with `watchPathPrefix` — as x/net/http2 resets a
    /// stream whose handler panicked (`handlerPanicRST` → `ErrCodeInternal`); other streams on
    /// its connection go on. Returns the watch's path, or nil when no such watch is open.
    @discardableResult
    public func resetStream(watchPathPrefix: String) async -> String? {
        await connections.resetOldestWatch(pathPrefix: watchPathPrefix, code: .internalError)
    }

    /// Client connections accepted and not yet closed, and how many of them speak HTTP/2.
    public var openConnections: (total: Int, http2: Int) { connections.open }

    /// Client connections accepted since start, and how many of them negotiated HTTP/2.
    public var acceptedConnections: (total: Int, http2: Int) { connections.accepted }

    /// Returns once the open connections satisfy `condition` (tests wait for a reconnect to settle).
    public func waitForOpenConnections(_ condition: @escaping @Sendable ((total: Int, http2: Int)) -> Bool) async {
        await connections.wait(until: condition)
    }

    /// Fault injection: history is forgotten, so the next resume gets `410 Expired`.
    public func compactHistory() async { await store.compactHistory() }

    /// Fault injection: stop listening, close every connection, listen again.
    /// Returns once the new listener is up.
    public func restart() async {
        restartRequested.store(true, ordering: .relaxed)
        boundPort.withLock { $0.port = nil }
        store.hub.refuseNewWatches(true)
        store.hub.dropAll()
        let server = currentServer.withLock { $0 }
        await server?.triggerGracefulShutdown()
        _ = await port()
    }

    /// Every committed change from now on, in resourceVersion order, seen inside the store (not
    /// over HTTP, so no injected fault touches it): the chaos runner checks its invariants on it.
    public func changes() -> AsyncStream<ObservedChange> { store.hub.observe() }

    /// The number of open watches.
    public var openWatches: Int { store.hub.count }

    /// Returns once `count` requests wait for the store to reach a resourceVersion ahead of it.
    public func waitForListWaiters(_ count: Int) async { await store.waitForResourceVersionWaiters(count) }

    /// Returns once at least `count` watches are open (tests wait for an outside watcher to connect).
    public func waitForWatches(_ count: Int) async { await store.hub.waitForWatches(count) }

    /// Returns once at least `count` watches have been opened since start (tests observe reconnects).
    public func waitForWatchesOpened(_ count: Int) async { await store.hub.waitForWatchesOpened(count) }

    /// Bookmarks and watch timeouts.
    private func tick() async {
        let clock = ContinuousClock()
        var nextBookmark = clock.now.advanced(by: options.bookmarkInterval)
        let step = min(Duration.milliseconds(250), options.bookmarkInterval)
        while !Task.isCancelled {
            do { try await clock.sleep(for: step) } catch { return }
            let now = clock.now
            store.hub.expire(now: now)
            if now >= nextBookmark {
                await store.sendBookmarks()
                nextBookmark = now.advanced(by: options.bookmarkInterval)
            }
        }
    }

    /// The `/kubetrace-devcluster/faults/ACTION` endpoints.
    func control(_ action: String, _ params: [String: String]) async throws {
        switch action {
        case "drop-watches": dropWatches()
        case "goaway": await goAway(endingWatches: params["watches"] != "keep")
        case "reset-stream":
            guard let path = params["path"], !path.isEmpty else { throw APIError.badRequest("reset-stream needs path=<watch path prefix>") }
            guard await resetStream(watchPathPrefix: path) != nil else {
                throw APIError(404, "NotFound", "no open HTTP/2 watch under \"\(path)\"")
            }
        case "compact": await compactHistory()
        case "restart": await restart()
        case "latency": faults.setLatency(.milliseconds(Int(params["ms"] ?? "0") ?? 0))
        case "fail":
            faults.failNext(.init(count: Int(params["count"] ?? "1") ?? 1, status: Int(params["status"] ?? "500") ?? 500,
                                  retryAfterSeconds: params["retryAfter"].flatMap(Int.init), plainText: params["plain"] == "true",
                                  method: params["method"], pathPrefix: params["path"]))
        case "clear": faults.clear()
        case "kubetrace-api":
            if let f = params["fail"] {
                guard let failure = KubetraceAPIEmulator.Failure(rawValue: f) else { throw APIError.badRequest("unknown Kubetrace API failure \"\(f)\"") }
                kubetraceAPI.fail(failure, times: Int(params["count"] ?? "1") ?? 1)
            }
            if let secs = params["tokenLifetime"].flatMap(TimeInterval.init) { kubetraceAPI.configure { $0.tokenLifetime = secs } }
            if let secs = params["registryLifetime"].flatMap(TimeInterval.init) { kubetraceAPI.configure { $0.registryLifetime = secs } }
            if let rotate = params["rotateOperatorToken"] { kubetraceAPI.configure { $0.rotateOperatorToken = rotate == "true" } }
            if let secs = params["rotationGrace"].flatMap(TimeInterval.init) { kubetraceAPI.configure { $0.rotationGrace = secs } }
            if let secs = params["outage"].flatMap(TimeInterval.init) {
                guard let failure = KubetraceAPIEmulator.Failure(rawValue: params["outageFailure"] ?? "unavailable") else { throw APIError.badRequest("unknown Kubetrace API failure") }
                kubetraceAPI.outage(failure, seconds: secs)
            }
        case "vultr":
            if let status = params["fail"].flatMap(Int.init) { vultr.failNext(status: status) }
        default: throw APIError.badRequest("unknown fault \"\(action)\" (drop-watches, goaway, reset-stream, compact, restart, latency, fail, clear)")
        }
    }

    private func makeApplication(port: Int) throws -> some Service {
        let responder = APIServer(store: store, auth: authenticator, tokens: tokens, faults: faults, streamingList: options.streamingList, kubetraceAPI: kubetraceAPI, vultr: vultr,
                                  serverInfo: { [unowned self] in (await self.url(), self.certificateAuthority.map { Data($0.certificate.certificatePEM.utf8).base64EncodedString() }) }, control: { [unowned self] in try await self.control($0, $1) }, nodeRoutes: nodeRoutes)
        var tls: TLSConfiguration?
        if let serving {
            var config = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(serving.certificatePEM.utf8), format: .pem))],
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(serving.privateKey.pem.utf8), format: .pem)))
            // Idle pooled client connections never answer close_notify; do not wait 5 s for them on shutdown.
            config.shutdownTimeout = .milliseconds(200)
            if options.requireClientCertificate, let ca = certificateAuthority {
                config.certificateVerification = .noHostnameVerification
                config.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(ca.certificate.certificatePEM.utf8), format: .pem)])
            }
            tls = config
        }
        // ALPN (h2, http/1.1) over TLS, HTTP/1.1 in plain mode: see DevClusterChannel.
        let (tlsConfiguration, http2, connections) = (tls, options.http2, connections)
        let idle = TimeAmount.milliseconds(options.http2IdleTimeout.components.seconds * 1000 + options.http2IdleTimeout.components.attoseconds / 1_000_000_000_000_000)
        let server = HTTPServerBuilder { responder in
            try DevClusterChannel(tls: tlsConfiguration, http2: http2, idleTimeout: idle, connections: connections, responder: responder)
        }
        return Application(
            responder: responder, server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "kubetrace-devcluster"),
            onServerRunning: { [self] channel in
                self.didBind(port: channel.localAddress?.port ?? port)
            },
            logger: logger)
    }

    private func didBind(port: Int) {
        lastBoundPort.store(port, ordering: .relaxed)
        store.hub.refuseNewWatches(false)
        let waiters = boundPort.withLock { s in
            s.port = port
            defer { s.waiters = [] }
            return s.waiters
        }
        if let dir = options.stateDirectory {
            do {
                try writeState(directory: dir, port: port)
            } catch {
                logger.error("cannot write the devcluster state", metadata: ["directory": "\(dir)", "error": "\(error)"])
            }
        }
        logger.info("kubetrace-devcluster ready", metadata: ["port": "\(port)", "state": "\(options.stateDirectory ?? "-")"])
        for w in waiters { w.resume(returning: port) }
    }

    private func writeState(directory: String, port: Int) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let server = "\(options.tls ? "https" : "http")://\(host):\(port)"
        // The kubeconfig holds the admin token: owner-only, written whole then renamed.
        try PrivateFile.write(kubeconfigYAML(server: server), to: "\(directory)/kubeconfig", mode: 0o600)
        try PrivateFile.write(operatorToken + "\n", to: "\(directory)/operator_token", mode: 0o600)
        try PrivateFile.write(vultrAPIKey + "\n", to: "\(directory)/vultr_api_key", mode: 0o600)
        try PrivateFile.write("\(server)\(KubetraceAPIEmulator.pathPrefix)\n", to: "\(directory)/api_url", mode: 0o644)
        try PrivateFile.write("\(server)\(VultrEmulator.pathPrefix)\n", to: "\(directory)/vultr_api_url", mode: 0o644)
        try PrivateFile.write(installEnvironment(directory: directory, server: server), to: "\(directory)/install.env", mode: 0o644)
        // Written last: its presence says the others are ready.
        try PrivateFile.write("\(port)\n", to: "\(directory)/port", mode: 0o644)
        if let ca = certificateAuthority {
            try PrivateFile.write(ca.certificate.certificatePEM, to: "\(directory)/ca.crt", mode: 0o644)
        }
    }


    /// `install.env`: the README's install against this devcluster, word for word, after
    /// `. .devcluster/install.env`. Names of files, never their secrets.
    func installEnvironment(directory: String, server: String) -> String {
        let dir = URL(fileURLWithPath: directory).standardizedFileURL.path
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        var lines = ["# The README's \"Installing into a cluster\" against this devcluster: . \(quoted(dir + "/install.env"))"]
        var vars: [(String, String)] = [
            ("KUBECONFIG", dir + "/kubeconfig"), ("CLUSTER_ID", "devcluster"), ("API_URL", server + KubetraceAPIEmulator.pathPrefix),
            ("OPERATOR_TOKEN_FILE", dir + "/operator_token"), ("VULTR_API_KEY_FILE", dir + "/vultr_api_key"),
            ("REGISTRY_ID", Self.vultrRegistryID), ("VULTR_API_URL", server + VultrEmulator.pathPrefix),
        ]
        if certificateAuthority != nil { vars.append(("CA_FILE", dir + "/ca.crt")) }
        // With a node, the registry emulator answers on the devcluster's listener.
        if options.node != nil, let hostPort = server.split(separator: "/").last {
            vars.append(("REGISTRY", String(hostPort)))
            if certificateAuthority != nil { vars.append(("REGISTRY_CA_FILE", dir + "/ca.crt")) }
        }
        for (k, v) in vars { lines.append("export \(k)=\(quoted(v))") }
        if let tools = options.toolDirectory { lines.append("export PATH=\(quoted(tools)):\"$PATH\"") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Runs a devcluster for the duration of `body` (tests, `make run`'s fallback).
    /// Shuts down gracefully afterwards, so idle keep-alive connections close at once.
    public static func withRunning<R: Sendable>(
        _ options: Options = Options(), logger: Logger = DevCluster.quietLogger, _ body: @Sendable (DevCluster) async throws -> R
    ) async throws -> R {
        let cluster = try DevCluster(options: options, logger: logger)
        let services = ServiceGroup(configuration: .init(services: [cluster], logger: logger))
        return try await withThrowingTaskGroup(of: R?.self) { group in
            group.addTask {
                try await services.run()
                return nil
            }
            _ = await cluster.port()
            let outcome: Result<R, any Error>
            do { outcome = .success(try await body(cluster)) } catch { outcome = .failure(error) }
            await services.triggerGracefulShutdown()
            while let _ = try await group.next() {}
            return try outcome.get()
        }
    }

    /// A logger for tests: only real problems.
    public static var quietLogger: Logger {
        var l = Logger(label: "kubetrace.devcluster")
        l.logLevel = .error
        return l
    }
}
