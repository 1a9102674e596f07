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
    /// Values kept at most; the table starts at 64 slots and doubles up to twice this.
    static let capacity = 1 << 13

    private var slots: [String?] = Array(repeating: nil, count: 64)
    private var hashes: [Int] = Array(repeating: 0, count: 64)
    private(set) var count = 0

    func string(_ bytes: UnsafeRawBufferPointer) -> String {
        // Inline strings share nothing; long ones are rarely repeated.
        guard bytes.count > 15, bytes.count <= Self.maxValueBytes else { return String(decoding: bytes, as: UTF8.self) }
        var hasher = Hasher()
        hasher.combine(bytes: bytes)
        let hash = hasher.finalize()
        var i = hash & (slots.count - 1)
        while let existing = slots[i] {
            if hashes[i] == hash, Self.equal(existing, bytes) { return existing }
            i = (i + 1) & (slots.count - 1)
        }
        let s = String(decoding: bytes, as: UTF8.self)
        if count == Self.capacity {
            // Full: start again (what was shared stays shared).
            slots = Array(repeating: nil, count: 64)
            hashes = Array(repeating: 0, count: 64)
            count = 0
        } else if (count + 1) * 2 > slots.count {
            grow()
        }
        insert(s, hash: hash)
        return s
    }

    private func insert(_ s: String, hash: Int) {
        var i = hash & (slots.count - 1)
        while slots[i] != nil { i = (i + 1) & (slots.count - 1) }
        slots[i] = s
        hashes[i] = hash
        count += 1
    }

    /// Doubles the table (load stays at most one half).
    private func grow() {
        let old = zip(slots, hashes)
        slots = Array(repeating: nil, count: slots.count * 2)
        hashes = Array(repeating: 0, count: hashes.count * 2)
        count = 0
        for (s, h) in old { if let s { insert(s, hash: h) } }
    }

    private static func equal(_ s: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var s = s
        return s.withUTF8 { u in
            u.count == bytes.count && (u.count == 0 || memcmp(u.baseAddress!, bytes.baseAddress!, u.count) == 0)
        }
    }
}

import Glibc
