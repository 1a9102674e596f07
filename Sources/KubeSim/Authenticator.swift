import Foundation
import Synchronization

/// Bearer-token and basic authentication (client certificates are checked
/// during the TLS handshake when the devcluster requires them).
final class Authenticator: Sendable {
    private let tokens: Mutex<[String: UserInfo]>
    private let basic: Mutex<[String: (password: String, user: UserInfo)]>
    /// When the TLS layer already verified a client certificate, every request is that admin.
    let certificateAuthenticated: Bool

    init(adminToken: String, certificateAuthenticated: Bool) {
        tokens = Mutex([adminToken: UserInfo(name: "kubetrace-admin", groups: ["system:masters", "system:authenticated"])])
        basic = Mutex([:])
        self.certificateAuthenticated = certificateAuthenticated
    }

    func addToken(_ token: String, user: UserInfo) { tokens.withLock { $0[token] = user } }
    func addBasicUser(_ name: String, password: String, groups: [String]) {
        basic.withLock { $0[name] = (password, UserInfo(name: name, groups: groups + ["system:authenticated"])) }
    }

    func authenticate(_ header: String?) -> UserInfo? {
        if let header, header.hasPrefix("Bearer ") {
            let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
            return tokens.withLock { $0[token] }
        }
        if let header, header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6))),
           let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") {
            let name = String(text[..<colon])
            let password = String(text[text.index(after: colon)...])
            return basic.withLock { b in b[name].flatMap { $0.password == password ? $0.user : nil } }
        }
        if certificateAuthenticated { return UserInfo(name: "kubetrace-admin", groups: ["system:masters", "system:authenticated"]) }
        return nil
    }
}
