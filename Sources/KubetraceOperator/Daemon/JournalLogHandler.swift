import CSystemd
import Foundation
import Logging

/// Native journal entries through `sd_journal_sendv`: MESSAGE, PRIORITY,
/// SYSLOG_IDENTIFIER, CODE_FILE/LINE/FUNC, and each metadata key as an upper-case
/// `KUBETRACE_` field (`event` → `KUBETRACE_EVENT`), so `journalctl
/// KUBETRACE_EVENT=token_refresh_failed` finds what it should. Values are the
/// metadata's string forms: secret types print redacted.
struct JournalLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    static let identifier = "kubetrace-operator"

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// `k8s.namespace` → `KUBETRACE_K8S_NAMESPACE`: letters, digits and `_`, at most 64.
    static func fieldName(_ key: String) -> String {
        let upper = key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" }
        return String(("KUBETRACE_" + String(upper)).prefix(64))
    }

    static func fields(label: String, level: Logger.Level, message: String, metadata: Logger.Metadata, file: String, function: String, line: UInt) -> [String] {
        var out = [
            "MESSAGE=\(message)",
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(file)",
            "CODE_LINE=\(line)",
            "CODE_FUNC=\(function)",
            "KUBETRACE_LOGGER=\(label)",
        ]
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) { out.append("\(fieldName(k))=\(v)") }
        return out
    }

    func log(event: LogEvent) {
        write(level: event.level, message: event.message, metadata: event.metadata, file: event.file, function: event.function, line: event.line)
    }

    private func write(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, file: String, function: String, line: UInt) {
        let all = metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 })
        // One buffer holding every NAME=value; one iovec per field (values may hold newlines).
        var bytes: [UInt8] = []
        var spans: [(offset: Int, count: Int)] = []
        for field in Self.fields(label: label, level: level, message: message.description, metadata: all, file: file, function: function, line: line) {
            let utf8 = Array(field.utf8)
            spans.append((bytes.count, utf8.count))
            bytes += utf8
        }
        bytes.withUnsafeMutableBytes { raw in
            var iov = spans.map { iovec(iov_base: raw.baseAddress! + $0.offset, iov_len: $0.count) }
            _ = sd_journal_sendv(&iov, Int32(iov.count))
        }
    }
}
