import COpenSSL
public import Foundation
import Synchronization

/// Key material in memory of its own, NUL-terminated for C, zeroed with `OPENSSL_cleanse` (which
/// the optimizer cannot drop, unlike a plain loop or `memset` before a free) when the last
/// reference goes. Swift `String`s and `Array`s cannot promise that: they are copied freely and
/// freed without being cleared.
public final class SecretBuffer: @unchecked Sendable {
    // Immutable after init: safe to share.
    private let base: UnsafeMutableRawPointer
    public let count: Int

    public init(copying bytes: some Collection<UInt8>) {
        count = bytes.count
        base = .allocate(byteCount: count + 1, alignment: 1)
        let buffer = UnsafeMutableRawBufferPointer(start: base, count: count + 1)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        buffer[count] = 0
    }

    /// Copies a NUL-terminated C string (the terminator is not counted).
    public convenience init(cString: UnsafePointer<CChar>) {
        self.init(copying: UnsafeRawBufferPointer(start: cString, count: strlen(cString)))
    }

    deinit {
        kt_cleanse(base, count + 1)
        if let observe = Self.cleansedObserver.withLock({ $0 }) {
            observe(UnsafeRawBufferPointer(start: base, count: count + 1))
        }
        base.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try body(base.assumingMemoryBound(to: CChar.self))
    }

    /// For tests: sees each buffer after it was cleansed, just before it is freed.
    static let cleansedObserver = Mutex<(@Sendable (UnsafeRawBufferPointer) -> Void)?>(nil)
}

extension Crypto {
    /// Zeroes the array's storage in place (`OPENSSL_cleanse`). A copy made earlier by
    /// copy-on-write keeps its own bytes: cleanse the last owner.
    public static func cleanse(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { kt_cleanse($0.baseAddress, $0.count) }
    }

    public static func cleanse(_ bytes: inout [UInt8]?) {
        guard bytes != nil else { return }
        bytes!.withUnsafeMutableBytes { kt_cleanse($0.baseAddress, $0.count) }
    }

    public static func cleanse(_ data: inout Data?) {
        guard data != nil else { return }
        data!.withUnsafeMutableBytes { kt_cleanse($0.baseAddress, $0.count) }
    }
}
