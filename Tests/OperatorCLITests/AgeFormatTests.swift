import KubetraceTestKit
import Foundation
import KubeTLS
@testable import KubetraceOperator
import Testing

/// Our age implementation against the real `age` and `age-keygen` (Debian package age).
@Suite struct AgeFormatTests {
    struct Key { let identityFile: String; let recipient: String }

    static func keygen(_ dir: TempDir, _ name: String) async throws -> Key {
        let path = "\(dir.path)/\(name).txt"
        let r = try await runTool("age-keygen", ["-o", path])
        #expect(r.status == 0, "\(r.stderr)")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let recipient = text.split(separator: "\n").first { $0.hasPrefix("# public key: ") }.map { String($0.dropFirst("# public key: ".count)) } ?? ""
        return Key(identityFile: path, recipient: recipient)
    }

    @Test func keysFromAgeKeygenParseAndAgree() async throws {
        let dir = TempDir()
        let key = try await Self.keygen(dir, "k")
        let identities = try AgeIdentity.parseFile(try String(contentsOfFile: key.identityFile, encoding: .utf8))
        #expect(identities.count == 1)
        // Our X25519 public key of age-keygen's secret, Bech32-encoded, is age-keygen's recipient.
        #expect(identities[0].recipient.encoded == key.recipient)
        #expect(try AgeRecipient(parsing: key.recipient).publicKey == identities[0].publicKey)
        // And our encodings round-trip.
        let mine = AgeIdentity.generate()
        #expect(try AgeIdentity.parseFile("# created by a test\n\(mine.encoded)\n")[0].privateKey == mine.privateKey)
    }

    static let sizes = [0, 1, 300, 65_536, 65_537, 200_000]

    @Test func ourFilesDecryptWithAge() async throws {
        let dir = TempDir()
        let key = try await Self.keygen(dir, "k")
        for size in Self.sizes {
            let plain = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let sealed = try Age.encrypt(plain, to: [try AgeRecipient(parsing: key.recipient)])
            let file = "\(dir.path)/ours-\(size).age"
            FileManager.default.createFile(atPath: file, contents: Data(sealed))
            let out = "\(dir.path)/ours-\(size).out"
            let r = try await runTool("age", ["-d", "-i", key.identityFile, "-o", out, file])
            #expect(r.status == 0, "size \(size): \(r.stderr)")
            // age creates the output lazily: nothing to write, no file.
            #expect((FileManager.default.contents(atPath: out) ?? Data()) == Data(plain), "size \(size)")
        }
    }

    @Test func ageFilesDecryptWithOurs() async throws {
        let dir = TempDir()
        let key = try await Self.keygen(dir, "k")
        let identities = try AgeIdentity.parseFile(try String(contentsOfFile: key.identityFile, encoding: .utf8))
        let other = AgeIdentity.generate()
        for size in Self.sizes {
            let plain = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
            let input = "\(dir.path)/plain-\(size)", file = "\(dir.path)/age-\(size).age"
            FileManager.default.createFile(atPath: input, contents: Data(plain))
            // Two recipients: ours must find its stanza whichever comes first.
            let r = try await runTool("age", ["-r", other.recipient.encoded, "-r", key.recipient, "-o", file, input])
            #expect(r.status == 0, "\(r.stderr)")
            let sealed = [UInt8](FileManager.default.contents(atPath: file) ?? Data())
            #expect(try Age.decrypt(sealed, identities: identities) == plain, "size \(size)")
            #expect(try Age.decrypt(sealed, identities: [other]) == plain, "size \(size), the other recipient")
            // And armored (`age -a`).
            let armored = "\(dir.path)/age-\(size).asc"
            #expect(try await runTool("age", ["-a", "-r", key.recipient, "-o", armored, input]).status == 0)
            #expect(try Age.decrypt([UInt8](FileManager.default.contents(atPath: armored) ?? Data()), identities: identities) == plain, "armored, size \(size)")
        }
        // Cut armor: no END line.
        let armoredText = try String(contentsOfFile: "\(dir.path)/age-300.asc", encoding: .utf8)
        #expect(throws: Age.Failure.truncated) { try Age.decrypt(Array(armoredText.prefix(armoredText.count - 40).utf8), identities: identities) }
    }

    @Test func wrongKeysTruncationAndTamperingAreRefused() throws {
        let me = AgeIdentity.generate(), stranger = AgeIdentity.generate()
        let plain = [UInt8](repeating: 0x41, count: 140_000)
        let sealed = try Age.encrypt(plain, to: [me.recipient])
        #expect(throws: Age.Failure.noMatchingIdentity) { try Age.decrypt(sealed, identities: [stranger]) }
        #expect(throws: Age.Failure.truncated) { try Age.decrypt(Array(sealed.prefix(sealed.count - (140_000 - 131_072) - 16)), identities: [me]) }
        #expect(throws: Age.Failure.payloadAltered) { try Age.decrypt(Array(sealed.dropLast(10)), identities: [me]) }
        var flipped = sealed
        flipped[flipped.count - 100] ^= 1
        #expect(throws: Age.Failure.payloadAltered) { try Age.decrypt(flipped, identities: [me]) }
        // The header: a changed byte in the MAC, and a header cut short.
        let headerEnd = sealed.firstIndex(of: UInt8(ascii: "-"), after: 0, line: "---")!
        var mac = sealed
        mac[headerEnd + 6] = mac[headerEnd + 6] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: (any Error).self) { try Age.decrypt(mac, identities: [me]) }
        #expect(throws: Age.Failure.truncated) { try Age.decrypt(Array(sealed.prefix(headerEnd)), identities: [me]) }
        #expect(throws: Age.Failure.notAge) { try Age.decrypt(Array("apiVersion: v1\n".utf8), identities: [me]) }
        #expect(throws: Age.Failure.notAge) { try Age.decrypt([], identities: [me]) }
    }

    /// The header is looked for in the first 64 KiB only: a file without its end there is refused
    /// as such, not read to its end line by line (issue 19).
    @Test func aHeaderWithoutEndStopsAtTheBound() throws {
        let me = AgeIdentity.generate()
        let endless = [UInt8](repeating: UInt8(ascii: "A"), count: 1 << 20)
        #expect(throws: Age.Failure.headerTooLong) { try Age.decrypt(Array("age-encryption.org/v1\n-> X25519 ".utf8) + endless, identities: [me]) }
        #expect(throws: Age.Failure.headerTooLong) { try Age.decrypt(Array("age-encryption.org/v1".utf8) + endless, identities: [me]) }
        // Lines, but never the "---" line within the bound.
        let lines = Array(String(repeating: "-> X25519 AAAA\n", count: 10_000).utf8)
        #expect(throws: Age.Failure.headerTooLong) { try Age.decrypt(Array("age-encryption.org/v1\n".utf8) + lines, identities: [me]) }
        // Not age at all: said so, also when long.
        #expect(throws: Age.Failure.notAge) { try Age.decrypt(endless, identities: [me]) }
        #expect(Age.Failure.headerTooLong.description == "no end of the age header in its first 64 KiB (not an age file, or a damaged one)")
    }

    @Test func recipientAndIdentityErrorsSayWhatIsWrong() throws {
        #expect(throws: AgeKeyError.unsupported("SSH keys are not supported; give an age X25519 recipient (age1…, from age-keygen)")) {
            try AgeRecipient(parsing: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")
        }
        #expect(throws: AgeKeyError.unsupported("not an age recipient (age1…)")) { try AgeRecipient(parsing: "npub1xyz") }
        let good = AgeIdentity.generate().recipient.encoded
        var bad = Array(good)
        bad[10] = bad[10] == "q" ? "p" : "q"
        #expect(throws: AgeKeyError.invalid("not valid Bech32 (checksum or characters)")) { try AgeRecipient(parsing: String(bad)) }
        #expect(throws: AgeKeyError.invalid("not valid Bech32 (checksum or characters)")) { try AgeRecipient(parsing: good.prefix(10) + good.dropFirst(10).uppercased()) }
        #expect(throws: AgeKeyError.invalid("line 2 is not an age identity (AGE-SECRET-KEY-1…; SSH and plugin identities are not supported)")) {
            try AgeIdentity.parseFile("# key\n-----BEGIN OPENSSH PRIVATE KEY-----\n")
        }
        #expect(throws: AgeKeyError.invalid("no identity in the file")) { try AgeIdentity.parseFile("# nothing\n\n") }
    }
}

extension Array where Element == UInt8 {
    /// Index of the line that starts with `line` (the age header's last line).
    func firstIndex(of _: UInt8, after: Int, line: String) -> Int? {
        let marker = Array(("\n" + line + " ").utf8)
        guard count >= marker.count else { return nil }
        for i in after...(count - marker.count) where Array(self[i..<i + marker.count]) == marker { return i + 1 }
        return nil
    }
}
