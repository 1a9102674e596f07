import KubeClient

/// The `pod-template-hash` label, after pkg/controller/controller_utils.go `ComputeHash`: FNV-32a
/// over the template, then the collision count's eight little-endian bytes (low four set) when
/// the Deployment has one, the decimal sum rendered by k8s.io/apimachinery
/// `pkg/util/rand/rand.go` `SafeEncodeString` (each digit mapped into an alphabet without vowels).
///
/// Not byte-identical to Go's: `DeepHashObject` hashes go-spew's `%#v` dump of the typed struct,
/// which has no equivalent here; the template's canonical JSON (sorted keys, as stored after
/// defaulting) is hashed instead. Same properties — deterministic, changes with the template or
/// the collision count, ten-ish characters from the same alphabet — but a given template gets
/// a different hash than on a real cluster.
enum PodTemplateHash {
    static let label = "pod-template-hash"

    static func compute(_ template: JSONValue, collisionCount: Int?) -> String {
        var hash = FNV32a()
        hash.write(template.jsonBytes())
        if let collisionCount {
            let c = UInt32(truncatingIfNeeded: collisionCount)
            hash.write([UInt8(c & 0xff), UInt8((c >> 8) & 0xff), UInt8((c >> 16) & 0xff), UInt8(c >> 24), 0, 0, 0, 0])
        }
        return safeEncode(String(hash.value))
    }

    /// `rand.SafeEncodeString`: "bcdfghjklmnpqrstvwxz2456789" indexed by each character's code modulo 27.
    static func safeEncode(_ s: String) -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String(s.unicodeScalars.map { alphabet[Int($0.value) % alphabet.count] })
    }
}

/// Go's `hash/fnv` `New32a`.
struct FNV32a {
    private(set) var value: UInt32 = 2_166_136_261

    mutating func write(_ bytes: some Sequence<UInt8>) {
        for b in bytes {
            value ^= UInt32(b)
            value = value &* 16_777_619
        }
    }
}
