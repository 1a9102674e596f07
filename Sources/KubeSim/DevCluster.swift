public import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
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
        public init() {}
    }

    public let options: Options
    /// The devcluster's CA (nil when serving plain HTTP).
    public let certificateAuthority: CertificateAuthority?
    /// The admin bearer token (group system:masters).
    public let adminToken: String
    let store: ObjectStore
    let authenticator: Authenticator
    private let serving: IssuedCertificate?
    private let logger: Logger
    private let boundPort = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))

    public init(options: Options = Options(), logger: Logger = Logger(label: "kubetrace.devcluster")) throws {
        self.options = options
        self.logger = logger
        adminToken = "kt-admin-" + UUID().uuidString.lowercased()
        if options.tls {
            let ca = try CertificateAuthority.generate(commonName: "kubetrace-devcluster-ca")
            certificateAuthority = ca
            serving = try ca.issue(commonName: "kubetrace-devcluster", subjectAltNames: ["DNS:localhost", "IP:127.0.0.1", "IP:::1"], usage: .server)
        } else {
            certificateAuthority = nil
            serving = nil
        }
        store = ObjectStore()
        authenticator = Authenticator(adminToken: adminToken, certificateAuthenticated: options.requireClientCertificate)
    }

    /// The base URL, once listening.
    public func url() async -> String {
        let port = await port()
        return "\(options.tls ? "https" : "http")://\(options.host):\(port)"
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

    public func run() async throws {
        let responder = APIServer(store: store, auth: authenticator)
        let server: HTTPServerBuilder
        if let serving {
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(serving.certificatePEM.utf8), format: .pem))],
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(serving.privateKey.pem.utf8), format: .pem)))
            tls.applicationProtocols = ["http/1.1"]
            // Idle pooled client connections never answer close_notify; do not wait 5 s for them on shutdown.
            tls.shutdownTimeout = .milliseconds(200)
            if options.requireClientCertificate, let ca = certificateAuthority {
                tls.certificateVerification = .noHostnameVerification
                tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(ca.certificate.certificatePEM.utf8), format: .pem)])
            }
            server = try .tls(.http1(), tlsConfiguration: tls)
        } else {
            server = .http1()
        }
        let app = Application(
            responder: responder, server: server,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "kubetrace-devcluster"),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? options.port
                self.didBind(port: port)
            },
            logger: logger)
        try await app.run()
    }

    private func didBind(port: Int) {
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
        for w in waiters { w.resume(returning: port) }
    }

    private func writeState(directory: String, port: Int) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let server = "\(options.tls ? "https" : "http")://\(options.host):\(port)"
        // The kubeconfig holds the admin token: owner-only, written whole then renamed.
        try Self.writeAtomically(kubeconfigYAML(server: server), to: "\(directory)/kubeconfig", mode: 0o600)
        try Self.writeAtomically("\(port)\n", to: "\(directory)/port", mode: 0o644)
        if let ca = certificateAuthority {
            try Self.writeAtomically(ca.certificate.certificatePEM, to: "\(directory)/ca.crt", mode: 0o644)
        }
    }

    static func writeAtomically(_ text: String, to path: String, mode: Int) throws {
        let tmp = "\(path).tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: tmp])
        }
        if rename(tmp, path) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
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
