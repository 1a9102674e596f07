import Foundation
public import KubeTLS

/// One HTTP request as the transport sends it.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// Whole-transfer limit; `nil` for long-lived streams (watches), which are
    /// declared dead by their consumer's idle timer instead.
    public var timeout: Duration?

    public init(method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil, timeout: Duration? = .seconds(60)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// The status line and headers of a response.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// A buffered response.
public struct HTTPResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: [UInt8]
    public var status: Int { head.status }
}

/// How to reach and trust one server: everything libcurl needs besides the request.
public struct TLSSettings: Sendable {
    /// PEM bundle of trusted CAs; `nil` uses the system store.
    public var certificateAuthorityPEM: String?
    public var insecureSkipVerify: Bool
    /// Name to verify the server certificate against (and send as SNI), when it differs from the URL host.
    public var serverName: String?
    public var clientCertificatePEM: String?
    public var clientKey: PrivateKeyPEM?

    public init(certificateAuthorityPEM: String? = nil, insecureSkipVerify: Bool = false, serverName: String? = nil,
                clientCertificatePEM: String? = nil, clientKey: PrivateKeyPEM? = nil) {
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipVerify = insecureSkipVerify
        self.serverName = serverName
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKey = clientKey
    }
}
