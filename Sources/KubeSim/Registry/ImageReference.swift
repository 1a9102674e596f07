/// An image reference as the kubelet and containerd read it (distribution's
/// `reference` grammar, `ParseNormalizedNamed`): `[domain/]path[:tag][@digest]`,
/// where a first component with a `.` or `:` (or `localhost`) is the registry
/// host, no host means `docker.io`, and a one-component Docker Hub path gets
/// `library/`. No tag and no digest means `:latest` (kubelet `applyDefaultImageTag`).
struct ImageReference: Sendable, Hashable {
    var domain: String
    var path: String
    var tag: String?
    var digest: String?

    /// The name and the tag or digest asked for (`digest` wins, as containerd resolves it).
    var reference: String { digest ?? tag ?? "latest" }

    /// The fully qualified form containerd reports in its errors (`docker.io/library/busybox:latest`).
    var canonical: String {
        var s = "\(domain)/\(path)"
        if let tag { s += ":\(tag)" }
        if let digest { s += "@\(digest)" }
        return s
    }

    /// Why a reference does not parse, in distribution's words (`reference.ErrReferenceInvalidFormat` …).
    struct ParseError: Error, Sendable {
        var reason: String
    }

    static func parse(_ raw: String) throws(ParseError) -> ImageReference {
        guard !raw.isEmpty, raw.count <= 255 + 128 + 72, !raw.contains(where: { $0.isWhitespace }) else { throw ParseError(reason: "invalid reference format") }
        var rest = Substring(raw)
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let d = rest[rest.index(after: at)...]
            let parts = d.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0] == "sha256", parts[1].count == 64, parts[1].allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw ParseError(reason: "invalid reference format")
            }
            digest = String(d)
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let t = rest[rest.index(after: colon)...]
            guard (1...128).contains(t.count), t.first.map({ $0.isLetter || $0.isNumber || $0 == "_" }) == true,
                  t.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
                throw ParseError(reason: "invalid reference format")
            }
            tag = String(t)
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !components.isEmpty, components.allSatisfy({ !$0.isEmpty }) else { throw ParseError(reason: "invalid reference format") }
        var domain = "docker.io"
        if components.count > 1, let first = components.first, first.contains(".") || first.contains(":") || first == "localhost" || first.contains(where: \.isUppercase) {
            domain = first
            components.removeFirst()
        }
        for c in components {
            if c.contains(where: \.isUppercase) { throw ParseError(reason: "invalid reference format: repository name (\(components.joined(separator: "/"))) must be lowercase") }
            guard c.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || "._-".contains($0)) }),
                  let f = c.first, let l = c.last, f.isLetter || f.isNumber, l.isLetter || l.isNumber else {
                throw ParseError(reason: "invalid reference format")
            }
        }
        if domain == "index.docker.io" { domain = "docker.io" }
        if domain == "docker.io", components.count == 1 { components.insert("library", at: 0) }
        if tag == nil, digest == nil { tag = "latest" }
        return ImageReference(domain: domain, path: components.joined(separator: "/"), tag: tag, digest: digest)
    }
}
