import Foundation
import KubeTLS

/// Everything needed to talk to one API server: the resolved, validated form
/// of a kubeconfig context or of the in-cluster files.
public struct ClusterConnection: Sendable {
    /// Base URL without a trailing slash, e.g. `https://127.0.0.1:6443`.
    public var server: String
    public var tls: TLSSettings
    /// The default namespace (context namespace, in-cluster namespace file, or `default`).
    public var namespace: String
    public var credentials: Credentials
    /// Where this came from, for messages: `kubeconfig /path (context ctx)` or `in-cluster`.
    public var source: String

    /// How requests authenticate (besides a client certificate, which sits in `tls`).
    public enum Credentials: Sendable {
        case none
        case token(SecretString)
        /// Re-read periodically and after a 401 (rotated projected tokens).
        case tokenFile(String)
        case basic(username: String, password: SecretString)
        case exec(KubeConfig.ExecConfig, ExecClusterInfo)

        /// Whether requests carry a secret in a header (everything but `none`).
        public var sendsASecret: Bool {
            if case .none = self { return false }
            return true
        }
    }

    /// What an exec plugin may be told about the cluster (`provideClusterInfo`).
    public struct ExecClusterInfo: Sendable {
        public var server: String
        public var certificateAuthorityData: String?
        public var insecureSkipTLSVerify: Bool
        public var tlsServerName: String?
    }

    public init(server: String, tls: TLSSettings, namespace: String, credentials: Credentials, source: String) {
        self.server = server
        self.tls = tls
        self.namespace = namespace
        self.credentials = credentials
        self.source = source
    }

    /// Resolves a kubeconfig context (`context`, else `current-context`) and
    /// checks it: files exist, PEM data parses, the client key matches its
    /// certificate. Errors name the file and field at fault.
    public static func from(kubeconfig config: KubeConfig, context contextOverride: String? = nil) throws(KubeClientError) -> ClusterConnection {
        let files = config.files.joined(separator: ", ")
        guard let contextName = contextOverride ?? config.currentContext, !contextName.isEmpty else {
            throw KubeClientError(.configuration, "kubeconfig \(files): current-context is not set (pass --context NAME; contexts: \(Self.names(config.contexts.keys)))")
        }
        guard let ctx = config.contexts[contextName] else {
            let via = contextOverride != nil ? "--context" : "current-context"
            throw KubeClientError(.configuration, "kubeconfig \(files): \(via) \"\(contextName)\" is not defined (contexts: \(Self.names(config.contexts.keys)))")
        }
        guard let cluster = config.clusters[ctx.cluster] else {
            throw KubeClientError(.configuration, "\(ctx.origin.field("cluster")): cluster \"\(ctx.cluster)\" is not defined (clusters: \(Self.names(config.clusters.keys)))")
        }
        guard let rawServer = cluster.server, !rawServer.isEmpty else {
            throw KubeClientError(.configuration, "\(cluster.origin.field("server")): is required")
        }
        let server = try Self.validateServer(rawServer, origin: cluster.origin.field("server"))

        var tls = TLSSettings(insecureSkipVerify: cluster.insecureSkipTLSVerify, serverName: cluster.tlsServerName)
        if let data = cluster.certificateAuthorityData {
            tls.certificateAuthorityPEM = try Self.certificatePEM(data, origin: cluster.origin.field("certificate-authority-data"))
        } else if let file = cluster.certificateAuthority {
            let data = try Self.read(file, origin: cluster.origin.field("certificate-authority"))
            tls.certificateAuthorityPEM = try Self.certificatePEM(data, origin: cluster.origin.field("certificate-authority"))
        }
        var credentials = Credentials.none
        if !ctx.user.isEmpty {
            guard let user = config.users[ctx.user] else {
                throw KubeClientError(.configuration, "\(ctx.origin.field("user")): user \"\(ctx.user)\" is not defined (users: \(Self.names(config.users.keys)))")
            }
            // Client certificate: `-data` wins over the path field.
            let certOrigin = user.clientCertificateData != nil ? user.origin.field("client-certificate-data") : user.origin.field("client-certificate")
            let keyOrigin = user.clientKeyData != nil ? user.origin.field("client-key-data") : user.origin.field("client-key")
            var certBytes = user.clientCertificateData
            if certBytes == nil, let file = user.clientCertificate { certBytes = try Self.read(file, origin: certOrigin) }
            var keyBytes = user.clientKeyData?.bytes
            defer { Crypto.cleanse(&keyBytes) }
            if keyBytes == nil, let file = user.clientKey { keyBytes = try Self.read(file, origin: keyOrigin) }
            switch (certBytes, keyBytes) {
            case (nil, nil): break
            case (.some, nil): throw KubeClientError(.configuration, "\(user.origin): client-certificate is set but client-key is missing")
            case (nil, .some): throw KubeClientError(.configuration, "\(user.origin): client-key is set but client-certificate is missing")
            case (let cert?, let key?):
                let certPEM = try Self.certificatePEM(cert, origin: certOrigin)
                let keyPEM = PrivateKeyPEM(bytes: key)
                let matches: Bool
                do { matches = try X509.keyMatches(certificatePEM: certPEM, privateKeyPEM: keyPEM) } catch {
                    throw KubeClientError(.configuration, "\(keyOrigin): \(error.reason)")
                }
                guard matches else {
                    throw KubeClientError(.configuration, "\(keyOrigin): does not match \(certOrigin.path)")
                }
                // An expired client certificate only shows as a TLS alert or a 401 later: say so now.
                if let validity = try? X509.validity(pem: certPEM) {
                    let now = Date()
                    if validity.upperBound < now {
                        throw KubeClientError(.configuration, "\(certOrigin): the client certificate expired at \(RFC3339.format(validity.upperBound))")
                    }
                    if validity.lowerBound > now.addingTimeInterval(300) {
                        throw KubeClientError(.configuration, "\(certOrigin): the client certificate is not valid before \(RFC3339.format(validity.lowerBound))")
                    }
                }
                tls.clientCertificatePEM = certPEM
                tls.clientKey = keyPEM
            }
            if let token = user.token, !token.value.isEmpty {
                try CredentialChecks.checkHeaderValue(token.value, field: "\(user.origin.field("token"))")
                credentials = .token(token)
            } else if let file = user.tokenFile {
                let text = String(decoding: try Self.read(file, origin: user.origin.field("tokenFile")), as: UTF8.self)
                try CredentialChecks.checkHeaderValue(text.trimmingCharacters(in: .whitespacesAndNewlines), field: "\(user.origin.field("tokenFile")) (\(file))")
                credentials = .tokenFile(file)
            } else if let exec = user.exec {
                credentials = .exec(exec, ExecClusterInfo(
                    server: server,
                    certificateAuthorityData: tls.certificateAuthorityPEM.map { Data($0.utf8).base64EncodedString() },
                    insecureSkipTLSVerify: tls.insecureSkipVerify, tlsServerName: tls.serverName))
            } else if let username = user.username, let password = user.password {
                try CredentialChecks.checkHeaderValue(username, field: "\(user.origin.field("username"))")
                try CredentialChecks.checkHeaderValue(password.value, field: "\(user.origin.field("password"))")
                credentials = .basic(username: username, password: password)
            }
        }
        // Never send a credential in clear text to anything but a loopback address: a token,
        // a token file, a password or an exec plugin's answer alike.
        if !server.hasPrefix("https://"), credentials.sendsASecret, !CredentialChecks.isLoopbackURL(server) {
            throw KubeClientError(.configuration, "\(cluster.origin.field("server")): \(server) is plain http; credentials are sent only over https (or to a loopback address: 127.0.0.0/8, ::1)")
        }
        return ClusterConnection(
            server: server, tls: tls, namespace: ctx.namespace ?? "default", credentials: credentials,
            source: "kubeconfig \(ctx.origin.file) (context \(contextName))")
    }

    /// The in-cluster configuration, as client-go builds it: the service
    /// account's token (re-read as it rotates), CA and namespace files, and
    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    public static func inCluster(
        environment: [String: String],
        serviceAccountDirectory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(KubeClientError) -> ClusterConnection {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeClientError(.configuration, "unable to load in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (or pass --kubeconfig)")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let tokenFile = "\(serviceAccountDirectory)/token"
        let origin = KubeConfig.Origin(file: serviceAccountDirectory, path: "in-cluster")
        _ = try read(tokenFile, origin: origin.field("token"))
        let ca = try read("\(serviceAccountDirectory)/ca.crt", origin: origin.field("ca.crt"))
        let caPEM = try certificatePEM(ca, origin: origin.field("ca.crt"))
        let ns = (try? String(contentsOfFile: "\(serviceAccountDirectory)/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return ClusterConnection(
            server: "https://\(hostPart):\(port)", tls: TLSSettings(certificateAuthorityPEM: caPEM),
            namespace: (ns?.isEmpty ?? true) ? "default" : ns!, credentials: .tokenFile(tokenFile), source: "in-cluster")
    }

    static func validateServer(_ raw: String, origin: KubeConfig.Origin) throws(KubeClientError) -> String {
        var s = raw
        while s.hasSuffix("/") { s.removeLast() }
        guard let url = URLComponents(string: s), let scheme = url.scheme, scheme == "https" || scheme == "http",
              let host = url.host, !host.isEmpty else {
            throw KubeClientError(.configuration, "\(origin): \"\(raw)\" is not an http(s) URL")
        }
        return s
    }


    static func read(_ file: String, origin: KubeConfig.Origin) throws(KubeClientError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw KubeClientError(.configuration, "\(origin): cannot read \(file) (\(KubeConfig.reason(error)))")
        }
    }

    static func certificatePEM(_ bytes: [UInt8], origin: KubeConfig.Origin) throws(KubeClientError) -> String {
        let pem = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try X509.validity(pem: pem)
        } catch {
            throw KubeClientError(.configuration, "\(origin): \(error.reason)")
        }
        return pem
    }

    private static func names(_ keys: Dictionary<String, some Any>.Keys) -> String {
        keys.isEmpty ? "none" : keys.sorted().joined(separator: ", ")
    }
}
