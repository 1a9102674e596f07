import COpenSSL
import Foundation

/// JWS ES256 signing and verification (ECDSA P-256, SHA-256, raw r||s signatures).
public struct ES256Key: Sendable {
    public let privateKey: PrivateKeyPEM

    public init(privateKey: PrivateKeyPEM) { self.privateKey = privateKey }

    public static func generate() throws(X509Error) -> ES256Key {
        var out: UnsafeMutablePointer<CChar>?
        guard kt_ec_generate(&out) == 1, let out else { throw X509Error("EC key generation failed in libcrypto") }
        defer { kt_free_cleansed(out) }
        return ES256Key(privateKey: PrivateKeyPEM(cString: out))
    }

    public func sign(_ message: [UInt8]) throws(X509Error) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: 64)
        let ok = privateKey.withCString { key in
            message.withUnsafeBufferPointer { m in sig.withUnsafeMutableBufferPointer { kt_es256_sign(key, m.baseAddress, m.count, $0.baseAddress) } }
        }
        guard ok == 1 else { throw X509Error("ES256 signing failed in libcrypto") }
        return sig
    }

    public func verify(_ message: [UInt8], signature: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        return privateKey.withCString { key in
            message.withUnsafeBufferPointer { m in signature.withUnsafeBufferPointer { kt_es256_verify(key, m.baseAddress, m.count, $0.baseAddress) } }
        } == 1
    }
}
