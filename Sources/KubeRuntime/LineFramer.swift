/// Splits a byte stream into newline-terminated lines (the watch framing:
/// one JSON document per line), with a bound on the line length. The buffer
/// always keeps `padding` spare bytes after its data, so a line can be handed
/// to simdjson in place.
public struct LineFramer: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var dataEnd = 0
    public let maxLineBytes: Int
    public let padding: Int
    /// Lines delivered so far (positions in log messages).
    public private(set) var lineNumber = 0

    public struct LineTooLong: Error, Sendable, CustomStringConvertible {
        public var limit: Int
        public var description: String { "a watch line exceeds \(limit) bytes" }
    }

    public init(maxLineBytes: Int = 16 << 20, padding: Int = WatchDecoder.padding) {
        self.maxLineBytes = maxLineBytes
        self.padding = padding
    }

    public mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if start > 0 && start >= dataEnd / 2 {
            // Drop consumed lines before growing.
            buffer.removeSubrange(0..<start)
            dataEnd -= start
            scanned -= start
            start = 0
        }
        buffer.removeSubrange(dataEnd...)
        buffer.append(contentsOf: chunk)
        dataEnd = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: padding))
    }

    /// Calls `body` with each complete line (without its newline) and the
    /// readable capacity from the line's start. Empty lines are skipped. When
    /// `body` returns false the lines after that one stay buffered for the next call.
    public mutating func forEachLine(_ body: (UnsafeRawBufferPointer, Int) throws -> Bool) throws {
        let end = dataEnd
        var lineStart = start
        var scanFrom = scanned
        try buffer.withUnsafeBytes { raw in
            while scanFrom < end {
                guard let nl = Self.findNewline(raw, from: scanFrom, to: end) else {
                    scanFrom = end
                    break
                }
                var goOn = true
                if nl > lineStart {
                    lineNumber += 1
                    goOn = try body(UnsafeRawBufferPointer(rebasing: raw[lineStart..<nl]), raw.count - lineStart)
                }
                lineStart = nl + 1
                scanFrom = lineStart
                if !goOn { break }
            }
        }
        start = lineStart
        scanned = scanFrom
        if end - start > maxLineBytes {
            throw LineTooLong(limit: maxLineBytes)
        }
    }

    /// Forgets everything (after a reconnect).
    public mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        start = 0
        scanned = 0
        dataEnd = 0
    }

    @inline(__always)
    private static func findNewline(_ raw: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
        guard let base = raw.baseAddress, from < to else { return nil }
        guard let hit = memchr(base + from, 0x0A, to - from) else { return nil }
        return UnsafeRawPointer(hit) - base
    }
}

import Glibc
