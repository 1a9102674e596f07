/// What a watcher delivers: every change exactly once, in order, and
/// `synced` once the initial state (or a relist's difference) is delivered.
public enum WatchEvent<P: Projection>: Sendable {
    case added(P)
    case modified(P)
    case deleted(P)
    case synced

    public var projection: P? {
        switch self {
        case .added(let p), .modified(let p), .deleted(let p): return p
        case .synced: return nil
        }
    }

    public var typeName: String {
        switch self {
        case .added: "added"
        case .modified: "modified"
        case .deleted: "deleted"
        case .synced: "synced"
        }
    }
}

/// The watcher's view of the server: projections by `namespace/name`.
public struct ProjectionStore<P: Projection>: Sendable {
    public private(set) var objects: [ObjectKey: P] = [:]

    public init() {}

    public var count: Int { objects.count }
    public subscript(key: ObjectKey) -> P? { objects[key] }

    /// Applies an upsert, returning the event to deliver (added for a new key).
    mutating func upsert(_ p: P) -> WatchEvent<P> {
        let key = p.meta.storeKey
        let existed = objects.updateValue(p, forKey: key) != nil
        return existed ? .modified(p) : .added(p)
    }

    /// Applies a delete, returning the event to deliver (nil for an unknown key).
    mutating func remove(_ p: P) -> WatchEvent<P>? {
        objects.removeValue(forKey: p.meta.storeKey).map { _ in .deleted(p) }
    }

    /// Replaces the contents with a fresh list and returns the difference as
    /// events, so a relist delivers each change once and nothing twice.
    public mutating func replace(with items: [P]) -> [WatchEvent<P>] {
        var events: [WatchEvent<P>] = []
        var fresh: [ObjectKey: P] = [:]
        fresh.reserveCapacity(items.count)
        for item in items {
            let key = item.meta.storeKey
            fresh[key] = item
            if let old = objects[key] {
                if old.meta.resourceVersion != item.meta.resourceVersion || old.meta.uid != item.meta.uid { events.append(.modified(item)) }
            } else {
                events.append(.added(item))
            }
        }
        for (key, old) in objects where fresh[key] == nil { events.append(.deleted(old)) }
        objects = fresh
        return events
    }
}

/// Turns the bytes of one watch response into events against the store:
/// framing, decoding, store update. The reflector and the benchmark share it.
public struct WatchStreamProcessor<P: Projection> {
    public var framer: LineFramer
    let decoder: WatchDecoder
    public var store = ProjectionStore<P>()
    /// When set (a reflector's), changes are applied there instead of `store`: one copy of the
    /// objects, shared with the reflector's readers.
    var sharedStore: ReflectorStore<P>?
    /// The last resourceVersion seen (object or bookmark): where to resume.
    public var resourceVersion = ""
    /// Lines that could not be used since the last `takeDecodeErrors()`.
    public private(set) var decodeErrors: [(line: Int, reason: String)] = []

    /// What the stream says besides object changes.
    public enum Signal: Sendable, Equatable {
        case initialEventsEnd
        /// A bookmark without the initial-events-end annotation during a
        /// streaming list: the server ignored `sendInitialEvents`.
        case plainBookmark
        /// `ERROR` with 410: the resourceVersion is too old; relist.
        case expired(String)
        /// Any other `ERROR` event.
        case error(code: Int, message: String)
    }

    /// `keptSecretValues`: the Secret data keys whose values `SecretProjection`s keep.
    public init(maxLineBytes: Int = 16 << 20, keptSecretValues: Set<String> = []) {
        framer = LineFramer(maxLineBytes: maxLineBytes)
        decoder = WatchDecoder(keptSecretValues: keptSecretValues)
    }

    /// Convenience for byte arrays.
    public mutating func consume(_ chunk: [UInt8], into out: inout [WatchEvent<P>]) throws -> Signal? {
        try chunk.withUnsafeBytes { try consume($0, into: &out) }
    }

    public mutating func consume(_ chunk: [UInt8], collectingInto items: inout [P]) throws -> Signal? {
        try chunk.withUnsafeBytes { try consume($0, collectingInto: &items) }
    }

    /// Consumes a chunk, appending the resulting events to `out`. Stops at the
    /// first signal (the caller acts on it); lines after it stay buffered and
    /// are processed by the next call (pass an empty chunk to continue at once).
    @_specialize(exported: true, where P == SecretProjection)
    @_specialize(exported: true, where P == PodProjection)
    @_specialize(exported: true, where P == ServiceAccountProjection)
    public mutating func consume(_ chunk: UnsafeRawBufferPointer, into out: inout [WatchEvent<P>]) throws -> Signal? {
        let shared = sharedStore
        return try process(chunk, initialList: false) { event, store in
            switch event {
            case .added(let p), .modified(let p): out.append(shared?.upsert(p) ?? store.upsert(p))
            case .deleted(let p): if let e = shared != nil ? shared!.remove(p) : store.remove(p) { out.append(e) }
            default: break
            }
        }
    }

    /// During a streaming list: collects the synthetic ADDED objects instead of
    /// applying them, so the caller can replace the store and deliver the difference.
    @_specialize(exported: true, where P == SecretProjection)
    @_specialize(exported: true, where P == PodProjection)
    @_specialize(exported: true, where P == ServiceAccountProjection)
    public mutating func consume(_ chunk: UnsafeRawBufferPointer, collectingInto items: inout [P]) throws -> Signal? {
        try process(chunk, initialList: true) { event, _ in
            switch event {
            case .added(let p), .modified(let p): items.append(p)
            case .deleted(let p): items.removeAll { $0.meta.storeKey == p.meta.storeKey }
            default: break
            }
        }
    }

    private mutating func process(_ chunk: UnsafeRawBufferPointer, initialList: Bool, _ apply: (DecodedEvent<P>, inout ProjectionStore<P>) -> Void) throws -> Signal? {
        framer.append(chunk)
        var signal: Signal?
        let decoder = self.decoder
        // Move the store out so it stays uniquely referenced (no copy-on-write per chunk).
        var store = self.store
        self.store = ProjectionStore()
        var rv = resourceVersion
        var errors = decodeErrors
        let line0 = framer.lineNumber
        var index = 0
        defer {
            self.store = store
            self.resourceVersion = rv
            self.decodeErrors = errors
        }
        try framer.forEachLine { bytes, capacity in
            index += 1
            do {
                let event = try decoder.decodeEvent(bytes, capacity: capacity, as: P.self)
                switch event {
                case .added(let p), .modified(let p), .deleted(let p):
                    rv = p.meta.resourceVersion
                    apply(event, &store)
                case .bookmark(let v, let end):
                    rv = v
                    if end { signal = .initialEventsEnd } else if initialList { signal = .plainBookmark }
                case .error(let code, let reason, let message):
                    signal = (code == 410 || reason == "Expired" || reason == "Gone") ? .expired(message) : .error(code: code, message: message)
                }
            } catch {
                if errors.count < 100 { errors.append((line0 + index, (error as? WatchDecodingError)?.reason ?? "\(error)")) }
            }
            return signal == nil
        }
        return signal
    }

    public mutating func takeDecodeErrors() -> [(line: Int, reason: String)] {
        defer { decodeErrors = [] }
        return decodeErrors
    }

    /// Decodes a list page.
    public func decodeList(_ bytes: [UInt8]) throws -> (items: [P], resourceVersion: String, continue: String?) {
        var padded = bytes
        padded.append(contentsOf: repeatElement(0, count: WatchDecoder.padding))
        return try padded.withUnsafeBytes { raw in
            try decoder.decodeList(UnsafeRawBufferPointer(rebasing: raw[0..<bytes.count]), capacity: raw.count, as: P.self)
        }
    }
}
