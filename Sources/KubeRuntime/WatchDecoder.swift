import CSimdjson
import Foundation

/// What the decoder extracts besides metadata.
public enum DecodingProfile: Int32, Sendable {
    case meta = 0, secret = 1, serviceAccount = 2, pod = 3, raw = 4
}

/// One extracted field: `key` for map entries and pairs, `value` for the text.
/// It points into the decoder's buffers and is valid only while a projection
/// is being built; text becomes a `String` only when a projection asks for it,
/// so values nobody keeps (most Secret data) are never copied.
public struct DecodedEntry {
    public enum Field: UInt32, Sendable {
        case eventType = 1, name, namespace, uid, resourceVersion, label, annotation, owner, ownerController, deletionTimestamp
        case secretType, data, serviceAccountName, image, pullSecret, waiting, statusCode, statusReason, statusMessage, raw
        case objectKind, itemBegin, listResourceVersion, listContinue
        case unknown = 0
    }
    public var field: Field
    let keyBytes: UnsafeRawBufferPointer
    let valueBytes: UnsafeRawBufferPointer
    let interner: StringInterner?
    public var key: String { String(decoding: keyBytes, as: UTF8.self) }
    public var value: String { String(decoding: valueBytes, as: UTF8.self) }
    /// The key, sharing its storage with equal keys of other objects (label and annotation keys, data key names).
    public var sharedKey: String { interner?.string(keyBytes) ?? key }
    /// The value, sharing its storage with equal values of other objects: for values that
    /// repeat across objects (namespaces, images, types), never for names or versions.
    public var sharedValue: String { interner?.string(valueBytes) ?? value }

    public init(field: Field, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.init(field: field, key: key, value: value, interner: nil)
    }

    init(field: Field, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, interner: StringInterner?) {
        self.field = field
        self.keyBytes = key
        self.valueBytes = value
        self.interner = interner
    }
}

/// The entries of one object, as the decoder produced them. A concrete
/// sequence (not a generic one), so building a projection needs no runtime
/// generic metadata on the hot path.
public struct DecodedEntries: Sequence {
    let entries: UnsafeBufferPointer<kt_entry>
    let interner: StringInterner?
    /// Secret data keys whose values the caller keeps (`WatchDecoder.keptSecretValues`).
    let keptValues: Set<String>

    init(entries: UnsafeBufferPointer<kt_entry>, interner: StringInterner?, keptValues: Set<String> = []) {
        self.entries = entries
        self.interner = interner
        self.keptValues = keptValues
    }

    /// Whether a Secret data value under `key` is to be kept (decoded); others keep their name only.
    public func keepsValue(of key: String) -> Bool { !keptValues.isEmpty && keptValues.contains(key) }

    public struct Iterator: IteratorProtocol {
        var index: UnsafeBufferPointer<kt_entry>.Index
        let entries: UnsafeBufferPointer<kt_entry>
        let interner: StringInterner?
        public mutating func next() -> DecodedEntry? {
            guard index < entries.endIndex else { return nil }
            defer { index += 1 }
            return WatchDecoder.entry(entries[index], interner: interner)
        }
    }

    public func makeIterator() -> Iterator { Iterator(index: entries.startIndex, entries: entries, interner: interner) }
    public var underestimatedCount: Int { entries.count }

    /// No entries (a projection with only defaults).
    public static var empty: DecodedEntries { DecodedEntries(entries: UnsafeBufferPointer(start: nil, count: 0), interner: nil) }
}

/// A decoded watch line.
public enum DecodedEvent<P: Projection>: Sendable {
    case added(P), modified(P), deleted(P)
    case bookmark(resourceVersion: String, initialEventsEnd: Bool)
    /// An `ERROR` event: its Status code, reason and message.
    case error(code: Int, reason: String, message: String)
}

/// Why a line could not be used. The reflector logs it once and goes on.
public struct WatchDecodingError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}

/// simdjson On-Demand behind a Swift face (the only file that imports the shim).
/// Not thread-safe: one per reflector.
public final class WatchDecoder {
    private let decoder: OpaquePointer
    private let interner = StringInterner()
    /// Bytes of readable slack simdjson needs after the data.
    public static let padding = Int(kt_padding())

    /// Secret data keys whose values projections keep: the caller's choice (none by default).
    public let keptSecretValues: Set<String>

    public init(keptSecretValues: Set<String> = []) {
        decoder = kt_decoder_new()
        self.keptSecretValues = keptSecretValues
    }

    deinit { kt_decoder_free(decoder) }

    /// Decodes one event line. `capacity - count >= padding` readable bytes must follow `bytes`.
    public func decodeEvent<P: Projection>(_ bytes: UnsafeRawBufferPointer, capacity: Int, as: P.Type) throws(WatchDecodingError) -> DecodedEvent<P> {
        var entries: UnsafePointer<kt_entry>?
        let n = kt_decode_event(decoder, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, capacity, P.decoding.rawValue, &entries)
        guard n >= 0, let entries else { throw WatchDecodingError(reason: String(cString: kt_decoder_error(decoder))) }
        let list = UnsafeBufferPointer(start: entries, count: Int(n))
        var type = ""
        var kind = ""
        for e in list {
            if e.field == KT_F_EVENT_TYPE.rawValue { type = Self.text(e.value, e.value_len) }
            else if e.field == KT_F_OBJECT_KIND.rawValue { kind = Self.text(e.value, e.value_len) }
        }
        switch type {
        case "ADDED", "MODIFIED", "DELETED":
            let p = P(entries: DecodedEntries(entries: list, interner: interner, keptValues: keptSecretValues))
            guard !p.meta.name.isEmpty, !p.meta.resourceVersion.isEmpty else {
                throw WatchDecodingError(reason: "\(type) event without metadata.name or metadata.resourceVersion")
            }
            return type == "ADDED" ? .added(p) : type == "MODIFIED" ? .modified(p) : .deleted(p)
        case "BOOKMARK":
            var rv = ""
            var end = false
            for e in list {
                if e.field == KT_F_RESOURCE_VERSION.rawValue { rv = Self.text(e.value, e.value_len) }
                if e.field == KT_F_ANNOTATION.rawValue, Self.text(e.key, e.key_len) == "k8s.io/initial-events-end" { end = Self.text(e.value, e.value_len) == "true" }
            }
            guard !rv.isEmpty else { throw WatchDecodingError(reason: "BOOKMARK without metadata.resourceVersion") }
            return .bookmark(resourceVersion: rv, initialEventsEnd: end)
        case "ERROR":
            var code = 0, reason = "", message = ""
            for e in list {
                switch e.field {
                case KT_F_STATUS_CODE.rawValue: code = Int(Self.text(e.value, e.value_len)) ?? 0
                case KT_F_STATUS_REASON.rawValue: reason = Self.text(e.value, e.value_len)
                case KT_F_STATUS_MESSAGE.rawValue: message = Self.text(e.value, e.value_len)
                default: break
                }
            }
            _ = kind
            return .error(code: code, reason: reason, message: message)
        default:
            throw WatchDecodingError(reason: "unknown watch event type \"\(type)\"")
        }
    }

    /// Decodes a `…List` answer into projections, its resourceVersion and continue token.
    public func decodeList<P: Projection>(_ bytes: UnsafeRawBufferPointer, capacity: Int, as: P.Type) throws(WatchDecodingError) -> (items: [P], resourceVersion: String, continue: String?) {
        var entries: UnsafePointer<kt_entry>?
        let n = kt_decode_list(decoder, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, capacity, P.decoding.rawValue, &entries)
        guard n >= 0, let entries else { throw WatchDecodingError(reason: String(cString: kt_decoder_error(decoder))) }
        let list = UnsafeBufferPointer(start: entries, count: Int(n))
        var items: [P] = []
        var rv = ""
        var cont: String?
        var start: Int?
        for i in 0..<list.count {
            let e = list[i]
            if e.field == KT_F_LIST_RESOURCE_VERSION.rawValue { rv = Self.text(e.value, e.value_len) }
            else if e.field == KT_F_LIST_CONTINUE.rawValue { cont = Self.text(e.value, e.value_len) }
            else if e.field == KT_F_ITEM_BEGIN.rawValue {
                if let s = start { items.append(P(entries: DecodedEntries(entries: UnsafeBufferPointer(rebasing: list[s..<i]), interner: interner, keptValues: keptSecretValues))) }
                start = i + 1
            }
        }
        if let s = start { items.append(P(entries: DecodedEntries(entries: UnsafeBufferPointer(rebasing: list[s...]), interner: interner, keptValues: keptSecretValues))) }
        return (items, rv, (cont?.isEmpty ?? true) ? nil : cont)
    }

    static func entry(_ e: kt_entry, interner: StringInterner?) -> DecodedEntry {
        DecodedEntry(field: DecodedEntry.Field(rawValue: e.field) ?? .unknown,
                     key: UnsafeRawBufferPointer(start: e.key, count: Int(e.key_len)),
                     value: UnsafeRawBufferPointer(start: e.value, count: Int(e.value_len)),
                     interner: interner)
    }

    @inline(__always)
    static func text(_ p: UnsafePointer<CChar>?, _ n: UInt32) -> String {
        guard let p, n > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: Int(n)), as: UTF8.self)
    }
}
