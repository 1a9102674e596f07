import Foundation
import KubeClient
import KubeTLS

/// Mints and verifies bound service-account tokens: ES256-signed JWTs with
/// the claims kube-apiserver puts in them (`aud`, `exp`, `iat`, `nbf`, `iss`,
/// `sub`, `kubernetes.io`).
struct ServiceAccountTokens: Sendable {
    static let issuer = "https://kubernetes.default.svc"
    let key: ES256Key
    let keyID: String

    init() throws {
        key = try ES256Key.generate()
        keyID = UUID().uuidString.lowercased()
    }

    struct Claims: Sendable {
        var namespace: String
        var name: String
        var uid: String
        var expiry: Date
    }

    func mint(namespace: String, name: String, uid: String, audiences: [String], lifetime: TimeInterval, now: Date) throws -> (token: String, expiry: Date) {
        let iat = Int(now.timeIntervalSince1970)
        let exp = iat + Int(lifetime)
        let header: JSONValue = .object(["alg": .string("ES256"), "kid": .string(keyID)])
        let claims: JSONValue = .object([
            "aud": .array(audiences.map { .string($0) }), "exp": .int(exp), "iat": .int(iat), "nbf": .int(iat),
            "iss": .string(Self.issuer), "jti": .string(UUID().uuidString.lowercased()),
            "sub": .string("system:serviceaccount:\(namespace):\(name)"),
            "kubernetes.io": .object(["namespace": .string(namespace), "serviceaccount": .object(["name": .string(name), "uid": .string(uid)])]),
        ])
        let signingInput = Self.b64url(header.jsonBytes()) + "." + Self.b64url(claims.jsonBytes())
        let signature = try key.sign(Array(signingInput.utf8))
        return (signingInput + "." + Self.b64url(signature), Date(timeIntervalSince1970: TimeInterval(exp)))
    }

    /// The claims of a token this devcluster signed and that has not expired.
    func verify(_ token: String, now: Date) -> Claims? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let sig = Self.unb64url(String(parts[2])),
              key.verify(Array("\(parts[0]).\(parts[1])".utf8), signature: sig),
              let payload = Self.unb64url(String(parts[1])), let claims = try? JSONValue.parse(payload),
              case .int(let exp)? = claims["exp"], TimeInterval(exp) > now.timeIntervalSince1970,
              let ns = claims["kubernetes.io"]?["namespace"]?.stringValue,
              let name = claims["kubernetes.io"]?["serviceaccount"]?["name"]?.stringValue,
              let uid = claims["kubernetes.io"]?["serviceaccount"]?["uid"]?.stringValue else { return nil }
        return Claims(namespace: ns, name: name, uid: uid, expiry: Date(timeIntervalSince1970: TimeInterval(exp)))
    }

    static func b64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func unb64url(_ s: String) -> [UInt8]? {
        var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        return Data(base64Encoded: b).map(Array.init)
    }
}
