import KubeClient

/// What of an external API's error answer may reach a log line or an Event (which the read-only
/// identity can read): never the body as such, only the `error` and `message` string fields of a
/// JSON object, without control characters, with anything that looks like a credential replaced,
/// and at most `maxBytes` of UTF-8.
enum APIErrorDetail {
    static let maxBytes = 256

    /// The detail to show, or nil when the body has none worth showing.
    static func from(_ body: [UInt8]) -> String? {
        guard let object = (try? JSONValue.parse(body))?.objectValue else { return nil }
        let fields = ["error", "message"].compactMap { object[$0]?.stringValue.flatMap(sanitized) }
        guard !fields.isEmpty else { return nil }
        return bounded(fields.joined(separator: ": "))
    }

    /// One line of printable text: control characters (newlines included) become spaces, runs of
    /// blanks collapse, and credential-looking words become `<redacted>`; nil when nothing is left.
    static func sanitized(_ text: String) -> String? {
        // Bound the work before looking at it: only the start can be shown anyway.
        let head = String(decoding: text.utf8.prefix(maxBytes * 4), as: UTF8.self)
        let printable = String(String.UnicodeScalarView(head.unicodeScalars.map { scalar in
            scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
                || scalar.properties.generalCategory == .lineSeparator || scalar.properties.generalCategory == .paragraphSeparator ? " " : scalar
        }))
        let words = printable.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { looksLikeCredential($0) ? "<redacted>" : String($0) }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }

    /// Cuts at `maxBytes` on a character boundary, marking the cut.
    static func bounded(_ text: String) -> String {
        guard text.utf8.count > maxBytes else { return text }
        var out = ""
        for c in text {
            if out.utf8.count + c.utf8.count > maxBytes - 3 { break }
            out.append(c)
        }
        return out + "..."
    }

    /// A bearer or basic scheme, a PEM or age key, or a long run of token alphabet (JWTs, API keys,
    /// base64 blobs, hex digests): API messages are prose, credentials are not.
    static func looksLikeCredential(_ word: Substring) -> Bool {
        let lower = word.lowercased()
        if ["bearer", "basic", "-----begin", "age-secret-key-", "eyj"].contains(where: { lower.hasPrefix($0) }) { return true }
        if lower.contains("token=") || lower.contains("key=") || lower.contains("password=") || lower.contains("secret=") { return true }
        var run = 0
        for b in word.utf8 {
            let tokenByte = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "+") || b == UInt8(ascii: "/") || b == UInt8(ascii: "=") || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
            run = tokenByte ? run + 1 : 0
            if run >= 24 { return true }
        }
        return false
    }
}
