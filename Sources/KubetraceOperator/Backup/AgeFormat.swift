import Foundation
import KubeTLS

/// The age v1 file format (age-encryption.org/v1) with X25519 recipients:
/// files we write decrypt with `age -d -i key.txt`, and files `age -r age1…`
/// writes decrypt here. Everything happens in memory.
enum Age {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case notAge
        case malformedHeader(String)
        case noMatchingIdentity
        case headerMACMismatch
        case truncated
        case payloadAltered
        case headerTooLong

        var description: String {
            switch self {
            case .notAge: "not an age file (no age-encryption.org/v1 header)"
            case .malformedHeader(let why): "malformed age header: \(why)"
            case .noMatchingIdentity: "no identity matches this file (wrong --identity?)"
            case .headerMACMismatch: "the header was altered (MAC mismatch)"
            case .truncated: "the file is truncated"
            case .payloadAltered: "the payload was altered or is incomplete (authentication failed)"
            case .headerTooLong: "no end of the age header in its first \(Age.maxHeaderBytes >> 10) KiB (not an age file, or a damaged one)"
            }
        }
    }

    static let version = "age-encryption.org/v1"
    static let chunkSize = 64 * 1024
    static let x25519Label = Array("age-encryption.org/v1/X25519".utf8)
    /// A header holds a line per recipient stanza: a few hundred bytes each. Looking further for
    /// its end only reads a damaged or hostile file to its end.
    static let maxHeaderBytes = 64 << 10

    /// Encrypts to every recipient (each can decrypt alone).
    static func encrypt(_ plaintext: [UInt8], to recipients: [AgeRecipient]) throws -> [UInt8] {
        precondition(!recipients.isEmpty)
        // Every key below is cleansed when it goes out of scope (OPENSSL_cleanse).
        var fileKey = Crypto.randomBytes(16)
        defer { Crypto.cleanse(&fileKey) }
        var header = version + "\n"
        for r in recipients {
            var ephemeral = Crypto.randomBytes(32)
            defer { Crypto.cleanse(&ephemeral) }
            let share = try Crypto.x25519PublicKey(privateKey: ephemeral)
            var shared = try Crypto.x25519(privateKey: ephemeral, peer: r.publicKey)
            defer { Crypto.cleanse(&shared) }
            var wrapKey = Crypto.hkdfSHA256(ikm: shared, salt: share + r.publicKey, info: x25519Label, count: 32)
            defer { Crypto.cleanse(&wrapKey) }
            let body = Crypto.seal(key: wrapKey, nonce: [UInt8](repeating: 0, count: 12), fileKey[...])
            header += "-> X25519 \(base64(share))\n" + wrapped(base64(body))
        }
        header += "---"
        var macKey = Crypto.hkdfSHA256(ikm: fileKey, salt: [], info: Array("header".utf8), count: 32)
        defer { Crypto.cleanse(&macKey) }
        header += " \(base64(Crypto.hmacSHA256(key: macKey, message: Array(header.utf8))))\n"

        let nonce = Crypto.randomBytes(16)
        var payloadKey = Crypto.hkdfSHA256(ikm: fileKey, salt: nonce, info: Array("payload".utf8), count: 32)
        defer { Crypto.cleanse(&payloadKey) }
        var out = Array(header.utf8) + nonce
        out.reserveCapacity(out.count + plaintext.count + (plaintext.count / chunkSize + 1) * 16)
        var offset = 0
        var counter: UInt64 = 0
        repeat {
            let end = min(offset + chunkSize, plaintext.count)
            let last = end == plaintext.count
            out += Crypto.seal(key: payloadKey, nonce: chunkNonce(counter, last: last), plaintext[offset..<end])
            offset = end
            counter += 1
        } while offset < plaintext.count
        return out
    }

    static let armorBegin = "-----BEGIN AGE ENCRYPTED FILE-----"
    static let armorEnd = "-----END AGE ENCRYPTED FILE-----"

    /// The binary file inside `age -a` armor (PEM-style, 64-column padded base64);
    /// nil when the input is not armored.
    static func dearmor(_ file: [UInt8]) throws -> [UInt8]? {
        let start = file.prefix { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }.count
        guard file.count - start >= armorBegin.utf8.count, Array(file[start..<start + armorBegin.utf8.count]) == Array(armorBegin.utf8) else { return nil }
        guard let text = String(validating: file[start...], as: UTF8.self) else { throw Failure.malformedHeader("armor is not text") }
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" }).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        guard let end = lines.firstIndex(where: { $0 == armorEnd }) else { throw Failure.truncated }
        let body = lines[1..<end]
        guard body.dropLast().allSatisfy({ $0.count == 64 }), (body.last?.count ?? 0) <= 64, !body.isEmpty else {
            throw Failure.malformedHeader("armor lines are not 64 columns")
        }
        guard let data = Data(base64Encoded: body.joined()) else { throw Failure.malformedHeader("armor is not base64") }
        return [UInt8](data)
    }

    /// Decrypts with the first identity that unwraps the file key; verifies the header
    /// MAC and every chunk before returning anything. Binary or `age -a` armored input.
    static func decrypt(_ input: [UInt8], identities: [AgeIdentity]) throws -> [UInt8] {
        let file = try dearmor(input) ?? input
        let (stanzas, macInput, mac, payloadStart) = try parseHeader(file)
        // Every key below is cleansed when it goes out of scope (OPENSSL_cleanse).
        var fileKey: [UInt8]?
        defer { Crypto.cleanse(&fileKey) }
        for stanza in stanzas where stanza.type == "X25519" {
            guard stanza.args.count == 1, let share = unbase64(stanza.args[0]), share.count == 32 else {
                throw Failure.malformedHeader("an X25519 stanza needs one 32-byte share")
            }
            guard stanza.body.count == 32 else { throw Failure.malformedHeader("an X25519 stanza body is 32 bytes") }
            for identity in identities {
                guard var shared = try? Crypto.x25519(privateKey: identity.privateKey, peer: share) else { continue }
                defer { Crypto.cleanse(&shared) }
                var wrapKey = Crypto.hkdfSHA256(ikm: shared, salt: share + identity.publicKey, info: x25519Label, count: 32)
                defer { Crypto.cleanse(&wrapKey) }
                if let key = try? Crypto.open(key: wrapKey, nonce: [UInt8](repeating: 0, count: 12), stanza.body[...]) {
                    fileKey = key
                    break
                }
            }
            if fileKey != nil { break }
        }
        // No second name for the file key: a live copy would make the cleanse copy-on-write instead.
        guard fileKey?.count == 16 else { throw Failure.noMatchingIdentity }
        var macKey = Crypto.hkdfSHA256(ikm: fileKey!, salt: [], info: Array("header".utf8), count: 32)
        defer { Crypto.cleanse(&macKey) }
        guard Crypto.constantTimeEqual(Crypto.hmacSHA256(key: macKey, message: macInput), mac) else { throw Failure.headerMACMismatch }

        guard file.count - payloadStart >= 16 + 16 else { throw Failure.truncated }
        let nonce = Array(file[payloadStart..<payloadStart + 16])
        var payloadKey = Crypto.hkdfSHA256(ikm: fileKey!, salt: nonce, info: Array("payload".utf8), count: 32)
        defer { Crypto.cleanse(&payloadKey) }
        var plaintext: [UInt8] = []
        // The plaintext is shorter than the payload: reserved up front, it never moves, so no
        // uncleansed copy is left in freed memory.
        plaintext.reserveCapacity(file.count - payloadStart)
        var complete = false
        defer { if !complete { Crypto.cleanse(&plaintext) } }
        var offset = payloadStart + 16
        var counter: UInt64 = 0
        let sealedChunk = chunkSize + 16
        while true {
            let remaining = file.count - offset
            if remaining == 0 { throw Failure.truncated }
            let last = remaining <= sealedChunk
            let end = offset + min(remaining, sealedChunk)
            var chunk: [UInt8]
            do {
                chunk = try Crypto.open(key: payloadKey, nonce: chunkNonce(counter, last: last), file[offset..<end])
            } catch {
                // A full final chunk that opens as "not last": the file was cut at a chunk boundary.
                if last, remaining == sealedChunk,
                   var opened = try? Crypto.open(key: payloadKey, nonce: chunkNonce(counter, last: false), file[offset..<end]) {
                    Crypto.cleanse(&opened)
                    throw Failure.truncated
                }
                throw Failure.payloadAltered
            }
            if last && chunk.isEmpty && counter > 0 { throw Failure.payloadAltered }
            plaintext += chunk
            Crypto.cleanse(&chunk)
            offset = end
            counter += 1
            if last { break }
        }
        complete = true
        return plaintext
    }

    struct Stanza { var type: String; var args: [String]; var body: [UInt8] }

    /// (stanzas, the bytes the MAC covers, the MAC, where the payload starts).
    static func parseHeader(_ file: [UInt8]) throws -> ([Stanza], [UInt8], [UInt8], Int) {
        var lines: [(text: String, end: Int)] = []
        var start = 0
        // Header lines until the "--- " line; never beyond maxHeaderBytes.
        let end = min(file.count, maxHeaderBytes)
        while start < end {
            guard let nl = file[start..<end].firstIndex(of: 0x0A) else {
                if end < file.count { throw isAge(lines.first?.text, file) ? Failure.headerTooLong : Failure.notAge }
                throw lines.isEmpty ? Failure.notAge : Failure.truncated
            }
            guard let text = String(validating: file[start..<nl], as: UTF8.self) else { throw lines.isEmpty ? Failure.notAge : Failure.malformedHeader("not text") }
            lines.append((text, nl + 1))
            start = nl + 1
            if text.hasPrefix("---") { break }
        }
        guard let first = lines.first, first.text == version else { throw Failure.notAge }
        guard let last = lines.last, last.text.hasPrefix("--- ") else { throw end < file.count ? Failure.headerTooLong : Failure.truncated }
        var stanzas: [Stanza] = []
        var i = 1
        while i < lines.count - 1 {
            let head = lines[i].text
            guard head.hasPrefix("-> ") else { throw Failure.malformedHeader("expected a stanza, found \"\(head.prefix(20))\"") }
            let parts = head.dropFirst(3).split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard let type = parts.first, !type.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw Failure.malformedHeader("empty stanza argument") }
            var body = ""
            i += 1
            while true {
                guard i < lines.count - 1 else { throw Failure.malformedHeader("stanza body not terminated") }
                let line = lines[i].text
                guard line.count <= 64 else { throw Failure.malformedHeader("body line longer than 64 columns") }
                body += line
                i += 1
                if line.count < 64 { break }
            }
            guard let bytes = unbase64(body) else { throw Failure.malformedHeader("stanza body is not canonical base64") }
            stanzas.append(Stanza(type: type, args: Array(parts.dropFirst()), body: bytes))
        }
        let macLineStart = lines.count >= 2 ? lines[lines.count - 2].end : 0
        let macInput = Array(file[0..<macLineStart]) + Array("---".utf8)
        guard let mac = unbase64(String(last.text.dropFirst(4))), mac.count == 32 else { throw Failure.malformedHeader("the MAC is not 32 bytes of base64") }
        return (stanzas, macInput, mac, last.end)
    }

    /// Whether a header that did not end looked like age's: its first line, or the file's start.
    private static func isAge(_ firstLine: String?, _ file: [UInt8]) -> Bool {
        firstLine.map { $0 == version } ?? file.starts(with: version.utf8)
    }

    /// 11-byte big-endian counter, then 1 for the last chunk.
    static func chunkNonce(_ counter: UInt64, last: Bool) -> [UInt8] {
        var n = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { n[10 - i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
        n[11] = last ? 1 : 0
        return n
    }

    /// Standard alphabet, no padding (age's encoding).
    static func base64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    /// Strict: rejects padding, other alphabets and non-canonical trailing bits.
    static func unbase64(_ text: String) -> [UInt8]? {
        guard !text.contains("="), text.count % 4 != 1 else { return nil }
        let padded = text + String(repeating: "=", count: (4 - text.count % 4) % 4)
        guard let data = Data(base64Encoded: padded) else { return nil }
        let bytes = [UInt8](data)
        return base64(bytes) == text ? bytes : nil
    }

    /// Body lines of 64 columns; the last is shorter (possibly empty).
    static func wrapped(_ b64: String) -> String {
        var out = ""
        var rest = Substring(b64)
        while rest.count >= 64 {
            out += rest.prefix(64) + "\n"
            rest = rest.dropFirst(64)
        }
        return out + rest + "\n"
    }
}

/// `age1…`: an X25519 public key, Bech32-encoded.
struct AgeRecipient: Equatable {
    let publicKey: [UInt8]

    init(publicKey: [UInt8]) { self.publicKey = publicKey }

    /// Parses a recipient; the error says what kind of string it was instead.
    init(parsing text: String) throws(AgeKeyError) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("ssh-") { throw .unsupported("SSH keys are not supported; give an age X25519 recipient (age1…, from age-keygen)") }
        if t.uppercased().hasPrefix("AGE-SECRET-KEY-") { throw .unsupported("that is an identity (a secret key), not a recipient: give its age1… public key (age-keygen -y KEYFILE)") }
        guard t.lowercased().hasPrefix("age1") else { throw .unsupported("not an age recipient (age1…)") }
        guard let (hrp, data) = Bech32.decode(t), hrp == "age" else { throw .invalid("not valid Bech32 (checksum or characters)") }
        guard data.count == 32 else { throw .invalid("not a 32-byte X25519 key") }
        publicKey = data
    }

    var encoded: String { Bech32.encode(hrp: "age", data: publicKey) }
}

/// `AGE-SECRET-KEY-1…`: an X25519 private key, Bech32-encoded in upper case.
struct AgeIdentity {
    let privateKey: [UInt8]
    let publicKey: [UInt8]

    init(privateKey: [UInt8]) throws {
        self.privateKey = privateKey
        publicKey = try Crypto.x25519PublicKey(privateKey: privateKey)
    }

    /// Any 32 bytes are an X25519 private key, so deriving its public half cannot fail.
    static func generate() -> AgeIdentity { try! AgeIdentity(privateKey: Crypto.randomBytes(32)) }

    var recipient: AgeRecipient { AgeRecipient(publicKey: publicKey) }
    var encoded: String { Bech32.encode(hrp: "age-secret-key-", data: privateKey).uppercased() }

    /// An identity file: `#` comments, blank lines, one `AGE-SECRET-KEY-1…` per line.
    /// The error names the line, never its content.
    static func parseFile(_ text: String) throws(AgeKeyError) -> [AgeIdentity] {
        var out: [AgeIdentity] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard line.hasPrefix("AGE-SECRET-KEY-1") else {
                throw .invalid("line \(n + 1) is not an age identity (AGE-SECRET-KEY-1…; SSH and plugin identities are not supported)")
            }
            guard let (hrp, data) = Bech32.decode(line), hrp == "age-secret-key-", data.count == 32,
                  let identity = try? AgeIdentity(privateKey: data) else {
                throw .invalid("line \(n + 1) is not a valid age identity (Bech32 checksum or length)")
            }
            out.append(identity)
        }
        guard !out.isEmpty else { throw .invalid("no identity in the file") }
        return out
    }
}

enum AgeKeyError: Error, Equatable, CustomStringConvertible {
    case unsupported(String)
    case invalid(String)
    var description: String {
        switch self {
        case .unsupported(let s), .invalid(let s): s
        }
    }
}

/// Bech32 (BIP 173) without the 90-character limit, as age uses it.
enum Bech32 {
    static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    static let generator: [UInt32] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]

    static func polymod(_ values: [UInt8]) -> UInt32 {
        var chk: UInt32 = 1
        for v in values {
            let top = chk >> 25
            chk = (chk & 0x1ffffff) << 5 ^ UInt32(v)
            for i in 0..<5 where (top >> i) & 1 == 1 { chk ^= generator[i] }
        }
        return chk
    }

    static func expand(_ hrp: [UInt8]) -> [UInt8] { hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 } }

    static func convert(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var acc = 0, bits = 0
        var out: [UInt8] = []
        let maxv = (1 << to) - 1
        for v in data {
            guard Int(v) >> from == 0 else { return nil }
            acc = (acc << from) | Int(v)
            bits += from
            while bits >= to {
                bits -= to
                out.append(UInt8((acc >> bits) & maxv))
            }
        }
        if pad {
            if bits > 0 { out.append(UInt8((acc << (to - bits)) & maxv)) }
        } else if bits >= from || (acc << (to - bits)) & maxv != 0 {
            return nil
        }
        return out
    }

    static func encode(hrp: String, data: [UInt8]) -> String {
        let h = Array(hrp.lowercased().utf8)
        let values = convert(data, from: 8, to: 5, pad: true)!
        let mod = polymod(expand(h) + values + [0, 0, 0, 0, 0, 0]) ^ 1
        let checksum = (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
        return String(decoding: h + [UInt8(ascii: "1")] + (values + checksum).map { charset[Int($0)] }, as: UTF8.self)
    }

    /// (hrp in lower case, data) or nil. Mixed case is rejected.
    static func decode(_ text: String) -> (String, [UInt8])? {
        guard text.lowercased() == text || text.uppercased() == text else { return nil }
        let s = Array(text.lowercased().utf8)
        guard let sep = s.lastIndex(of: UInt8(ascii: "1")), sep >= 1, s.count - sep - 1 >= 6 else { return nil }
        let hrp = Array(s[..<sep])
        guard hrp.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { return nil }
        var values: [UInt8] = []
        for c in s[(sep + 1)...] {
            guard let v = charset.firstIndex(of: c) else { return nil }
            values.append(UInt8(v))
        }
        guard polymod(expand(hrp) + values) == 1 else { return nil }
        guard let data = convert(Array(values.dropLast(6)), from: 5, to: 8, pad: false) else { return nil }
        return (String(decoding: hrp, as: UTF8.self), data)
    }
}
