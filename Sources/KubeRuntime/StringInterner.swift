/// Shares one heap copy of the values that repeat across cached objects — a
/// namespace, an image, a label key, a Secret type — so 10,000 Pods of one
/// namespace hold one "kubetrace-system", not 10,000. Swift keeps strings of up
/// to 15 UTF-8 bytes inline; longer ones are what this saves.
///
/// Lookups hash the decoder's bytes directly, so a value already seen costs no
/// allocation. Bounded: values longer than `maxValueBytes` are not shared, and
/// a full table starts again empty (what was shared stays shared). One per
/// decoder; not thread-safe.
final class StringInterner {
    static let maxValueBytes = 128
    static let capacity = 1 << 13

    private var slots: [String?]
    private var hashes: [Int]
    private var count = 0

    init() {
        slots = Array(repeating: nil, count: Self.capacity * 2)
        hashes = Array(repeating: 0, count: Self.capacity * 2)
    }

    func string(_ bytes: UnsafeRawBufferPointer) -> String {
        // Inline strings share nothing; long ones are rarely repeated.
        guard bytes.count > 15, bytes.count <= Self.maxValueBytes else { return String(decoding: bytes, as: UTF8.self) }
        var hasher = Hasher()
        hasher.combine(bytes: bytes)
        let hash = hasher.finalize()
        let mask = slots.count - 1
        var i = hash & mask
        while let existing = slots[i] {
            if hashes[i] == hash, Self.equal(existing, bytes) { return existing }
            i = (i + 1) & mask
        }
        let s = String(decoding: bytes, as: UTF8.self)
        if count == Self.capacity {
            for j in slots.indices { slots[j] = nil }
            count = 0
            i = hash & mask
        }
        slots[i] = s
        hashes[i] = hash
        count += 1
        return s
    }

    private static func equal(_ s: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var s = s
        return s.withUTF8 { u in
            u.count == bytes.count && (u.count == 0 || memcmp(u.baseAddress!, bytes.baseAddress!, u.count) == 0)
        }
    }
}

import Glibc
