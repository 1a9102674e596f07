import Foundation
import KubeClient
import KubeRuntime
import KubetraceFormats

/// One entry per fuzz target: the parser run on arbitrary bytes, plus the invariants that must
/// hold whatever the bytes. A broken invariant traps, which libFuzzer records as a crash; the
/// regression tests replay the corpus and every kept crash through the same functions.
public enum FuzzHarness {
    public static let targets: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
        "watch-lines": watchLines,
        "kubeconfig": kubeconfig,
        "dockerconfigjson": dockerConfigJSON,
        "jwt-expiry": jwtExpiry,
        "api-answer": apiAnswer,
    ]

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("fuzz invariant broken: \(message())") }
    }

    /// The watch framer fed in chunks (sizes taken from the input itself), every line decoded as
    /// Secret, Pod and ServiceAccount events and as a list. The lines handed out must be exactly
    /// the input's non-empty newline-terminated lines, in order.
    @Sendable public static func watchLines(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        var framer = LineFramer(maxLineBytes: 4096)
        let decoder = WatchDecoder(keptSecretValues: ManagedSecretKeys.keptKeys)
        var seen: [[UInt8]] = []
        var offset = 0
        var chunk = max(1, Int(bytes.first ?? 7) % 64)
        var tooLong = false
        while offset < bytes.count, !tooLong {
            let end = min(bytes.count, offset + chunk)
            bytes[offset..<end].withUnsafeBytes { framer.append($0) }
            offset = end
            chunk = max(1, (chunk * 7 + 3) % 97)
            do {
                try framer.forEachLine { line, capacity in
                    seen.append(Array(line))
                    _ = try? decoder.decodeEvent(line, capacity: capacity, as: ManagedSecret.self)
                    _ = try? decoder.decodeEvent(line, capacity: capacity, as: PodProjection.self)
                    _ = try? decoder.decodeEvent(line, capacity: capacity, as: ServiceAccountProjection.self)
                    _ = try? decoder.decodeList(line, capacity: capacity, as: ManagedSecret.self)
                    return true
                }
            } catch {
                tooLong = true
            }
        }
        guard !tooLong else { return }
        var expected = bytes.split(separator: 0x0A, omittingEmptySubsequences: true).map(Array.init)
        if let last = bytes.last, last != 0x0A, !expected.isEmpty { expected.removeLast() }
        check(seen == expected, "framer returned \(seen.count) lines, the input has \(expected.count)")
    }

    /// A kubeconfig: parsed, and when it parses, its current context resolved. Every refusal is a
    /// configuration error naming the file.
    @Sendable public static func kubeconfig(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        do {
            let config = try KubeConfig.parse(yaml: text, file: "fuzz.kubeconfig", directory: "/nonexistent")
            _ = try? ClusterConnection.from(kubeconfig: config)
        } catch {
            check(error.description.contains("fuzz.kubeconfig"), "kubeconfig error does not name the file: \(error.description.prefix(200))")
        }
    }

    /// A `.dockerconfigjson`: the answer must agree with a plain reading of the document.
    @Sendable public static func dockerConfigJSON(_ data: UnsafeRawBufferPointer) {
        let document = SecretBytes(Array(data))
        let host = "blr.vultrcr.com"
        let found = DockerConfigJSON.hasCredentials(document, for: host)
        if found {
            let auths = (try? JSONValue.parse(Array(data)))?["auths"]?.objectValue
            check(auths?.keys.contains { DockerConfigJSON.registryHost(ofAuthsKey: $0) == host } == true, "credentials found where the document has none")
        }
    }

    /// The JWT `exp` reader, on the raw input and on the input as a JWT's payload.
    @Sendable public static func jwtExpiry(_ data: UnsafeRawBufferPointer) {
        let raw = String(decoding: data, as: UTF8.self)
        for token in [raw, "eyJhbGciOiJub25lIn0.\(Data(data).base64EncodedString().replacingOccurrences(of: "=", with: "")).sig"] {
            if let d = JWT.expiry(of: token) {
                check(d.timeIntervalSince1970.isFinite, "expiry is not finite")
            }
        }
    }

    /// A Kubetrace API answer: decoded, or refused with a message that never quotes the body.
    @Sendable public static func apiAnswer(_ data: UnsafeRawBufferPointer) {
        let sentAt = Date(timeIntervalSince1970: 1_800_000_000)
        let now = sentAt.addingTimeInterval(1)
        do {
            let a = try KubetraceAPIAnswer.decode(body: Array(data), dateHeader: nil, sentAt: sentAt, now: now)
            check(!a.token.value.isEmpty, "accepted an empty token")
            check(a.expiresAt > sentAt, "accepted an expiry that is not in the future")
        } catch {
            if let doc = try? JSONValue.parse(Array(data)), let token = doc["token"]?.stringValue, token.count >= 8 {
                check(!error.description.contains(token), "the refusal quotes the token")
            }
        }
    }
}
