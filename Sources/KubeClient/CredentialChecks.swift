import Foundation

/// Checks applied to credentials and endpoints before anything is sent.
public enum CredentialChecks {
    /// Whether `host` (a URL's host, brackets removed) is a loopback *address*:
    /// 127.0.0.0/8 or ::1 (also IPv4-mapped ::ffff:127.x.y.z), parsed as an address.
    /// A name is never loopback here, not even `localhost` or `127.example.com`:
    /// what it resolves to is not ours to vouch for.
    public static func isLoopbackAddress(_ host: String) -> Bool {
        var h = host
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, h, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, h, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0 ..< 15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        let mapped = b[0 ..< 10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff
        return mapped && b[12] == 127
    }

    /// The URL's host is a loopback address.
    public static func isLoopbackURL(_ url: String) -> Bool {
        guard let host = URLComponents(string: url)?.host else { return false }
        return isLoopbackAddress(host)
    }

    /// A token, password or key that goes into an HTTP header must not hold control
    /// characters: a CR or LF would end the header and start another one. Returns the
    /// reason, naming no part of the value, or nil when it is fine.
    public static func headerValueProblem(_ value: String) -> String? {
        for (offset, scalar) in value.unicodeScalars.enumerated() where scalar.value < 0x20 || scalar.value == 0x7f {
            let name: String
            switch scalar.value {
            case 0x0a: name = "a line feed"
            case 0x0d: name = "a carriage return"
            case 0x09: name = "a tab"
            case 0x00: name = "a NUL byte"
            default: name = "control character 0x\(String(scalar.value, radix: 16))"
            }
            return "contains \(name) at character \(offset + 1); a credential must be a single line of printable characters"
        }
        return nil
    }

    /// `headerValueProblem` as a configuration error naming `field`.
    public static func checkHeaderValue(_ value: String, field: String) throws(KubeClientError) {
        if let problem = headerValueProblem(value) {
            throw KubeClientError(.configuration, "\(field): \(problem)")
        }
    }
}
