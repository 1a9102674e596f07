import Foundation
import KubeClient
import Logging
import Synchronization

/// One JSON object per line on stderr, for container log collectors:
/// `{"ts":…,"level":…,"logger":…,"msg":…,"source":"File.swift:12",<metadata>}`.
/// Values are the metadata's string forms, so secret types print redacted.
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    private static let lock = Mutex(())

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        write(level: event.level, message: event.message, metadata: event.metadata, file: event.file, function: event.function, line: event.line)
    }

    private func write(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, file: String, function: String, line: UInt) {
        var fields: [String: JSONValue] = [
            "ts": .string(RFC3339.format(Date(), fractional: true)),
            "level": .string(level.rawValue),
            "logger": .string(label),
            "msg": .string(message.description),
            "source": .string("\((file as NSString).lastPathComponent):\(line)"),
        ]
        for (k, v) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) where fields[k] == nil {
            fields[k] = .string("\(v)")
        }
        var bytes = JSONValue.object(fields).jsonBytes()
        bytes.append(10)
        // One write per line, so concurrent lines never interleave.
        Self.lock.withLock { _ in
            bytes.withUnsafeBytes { p in _ = Foundation.write(2, p.baseAddress, p.count) }
        }
    }
}
