import COpenSSL
public import Foundation

/// X.509 facts and certificate issuance over libcrypto (KubeTLS is the only target that imports the shim).
public enum X509 {
    /// The validity window of the first certificate in a PEM document.
    public static func validity(pem: String) throws(X509Error) -> ClosedRange<Date> {
        var notBefore: Int64 = 0
        var notAfter: Int64 = 0
        let rc = pem.withCString { kt_x509_validity($0, strlen($0), &notBefore, &notAfter) }
        switch rc {
        case 0:
            return Date(timeIntervalSince1970: TimeInterval(notBefore))...Date(timeIntervalSince1970: TimeInterval(notAfter))
        case -1: throw X509Error("not a PEM-encoded X.509 certificate")
        default: throw X509Error("certificate validity could not be read")
        }
    }

    /// Whether `privateKeyPEM` is the key of the certificate in `certificatePEM`.
    public static func keyMatches(certificatePEM: String, privateKeyPEM: PrivateKeyPEM) throws(X509Error) -> Bool {
        let rc = certificatePEM.withCString { cert in
            privateKeyPEM.withCString { key in kt_x509_key_matches(cert, strlen(cert), key, strlen(key)) }
        }
        switch rc {
        case 1: return true
        case 0: return false
        case -1: throw X509Error("not a PEM-encoded X.509 certificate")
        default: throw X509Error("not a PEM-encoded private key")
        }
    }
}

/// What a certificate is for.
public enum CertificateUsage: Int32, Sendable {
    case authority = 0
    case server = 1
    case client = 2
}

/// A PEM private key; its description never shows the key. Its bytes live in a `SecretBuffer`,
/// zeroed when the last copy of the key goes.
public struct PrivateKeyPEM: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let buffer: SecretBuffer
    public init(_ pem: String) { buffer = SecretBuffer(copying: pem.utf8) }
    public init(bytes: some Collection<UInt8>) { buffer = SecretBuffer(copying: bytes) }
    init(cString: UnsafePointer<CChar>) { buffer = SecretBuffer(cString: cString) }
    /// A `String` copy of the key, which nothing cleanses: prefer `withCString`.
    public var pem: String { buffer.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }
    /// The key as a NUL-terminated C string, without a copy.
    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R { try buffer.withCString(body) }
    public static func == (a: PrivateKeyPEM, b: PrivateKeyPEM) -> Bool {
        a.buffer === b.buffer || a.buffer.withUnsafeBytes { x in b.buffer.withUnsafeBytes { y in x.elementsEqual(y) } }
    }
    public var description: String { "<redacted private key>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// A certificate with its private key.
public struct IssuedCertificate: Sendable, Equatable {
    public let certificatePEM: String
    public let privateKey: PrivateKeyPEM
}

/// A certificate authority able to issue EC P-256 server and client certificates.
public struct CertificateAuthority: Sendable {
    public let certificate: IssuedCertificate

    public init(certificate: IssuedCertificate) { self.certificate = certificate }

    /// A fresh self-signed CA.
    public static func generate(commonName: String, validity: TimeInterval = 365 * 86_400) throws(X509Error) -> CertificateAuthority {
        CertificateAuthority(certificate: try issue(
            commonName: commonName, organization: nil, subjectAltNames: [], usage: .authority,
            notBeforeOffset: -300, validity: validity, issuer: nil))
    }

    /// Issues a certificate signed by this CA. `notBeforeOffset` lets tests make
    /// certificates that are not yet valid or already expired.
    public func issue(
        commonName: String, organization: String? = nil, subjectAltNames: [String] = [],
        usage: CertificateUsage, notBeforeOffset: TimeInterval = -300, validity: TimeInterval = 365 * 86_400
    ) throws(X509Error) -> IssuedCertificate {
        try Self.issue(
            commonName: commonName, organization: organization, subjectAltNames: subjectAltNames,
            usage: usage, notBeforeOffset: notBeforeOffset, validity: validity, issuer: certificate)
    }

    private static func issue(
        commonName: String, organization: String?, subjectAltNames: [String], usage: CertificateUsage,
        notBeforeOffset: TimeInterval, validity: TimeInterval, issuer: IssuedCertificate?
    ) throws(X509Error) -> IssuedCertificate {
        var certOut: UnsafeMutablePointer<CChar>?
        var keyOut: UnsafeMutablePointer<CChar>?
        let san = subjectAltNames.joined(separator: ",")
        let ok = withOptionalCString(organization) { org in
            withOptionalCString(issuer?.certificatePEM) { issuerCert in
                withOptionalKey(issuer?.privateKey) { issuerKey in
                    kt_x509_issue(commonName, org, san, usage.rawValue, Int(notBeforeOffset), Int(validity),
                                  issuerCert, issuerKey, &certOut, &keyOut)
                }
            }
        }
        defer { kt_free(certOut); kt_free_cleansed(keyOut) }
        guard ok == 1, let certOut, let keyOut else {
            throw X509Error("issuing a certificate for \(commonName) failed in libcrypto")
        }
        return IssuedCertificate(certificatePEM: String(cString: certOut), privateKey: PrivateKeyPEM(cString: keyOut))
    }
}

private func withOptionalKey<R>(_ key: PrivateKeyPEM?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let key else { return body(nil) }
    return key.withCString { body($0) }
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}

/// An X.509 failure with a readable reason.
public struct X509Error: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "X509Error: \(reason)" }
}
