import Foundation
import Logging

/// `LOG_FORMAT` / `--log-format` (SPEC §3).
public enum LogFormat: String, CaseIterable, Sendable {
    case auto, json, text, journald

    /// What `auto` means here: journald when `JOURNAL_STREAM` names stderr (systemd
    /// connected it to the journal), text on a terminal, JSON lines otherwise.
    public static func resolve(_ format: LogFormat, environment: [String: String], stderrFD: Int32 = 2) -> LogFormat {
        guard format == .auto else { return format }
        if let stream = environment["JOURNAL_STREAM"], journalStreamMatches(stream, fd: stderrFD) { return .journald }
        return isatty(stderrFD) == 1 ? .text : .json
    }

    /// `JOURNAL_STREAM` is `DEVICE:INODE` of the journal's stream socket.
    static func journalStreamMatches(_ value: String, fd: Int32) -> Bool {
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    /// Finds `--log-format X` / `--log-format=X` in the arguments, else `LOG_FORMAT`.
    /// Logging is set up once, before the command line is parsed, so it is read early.
    static func requested(arguments: [String], environment: [String: String]) throws -> LogFormat {
        var raw: String?
        var source = "LOG_FORMAT"
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { break }
            if a == "--log-format", i + 1 < arguments.count { raw = arguments[i + 1]; source = "--log-format"; i += 1 }
            else if a.hasPrefix("--log-format=") { raw = String(a.dropFirst("--log-format=".count)); source = "--log-format" }
            i += 1
        }
        guard let value = raw ?? environment["LOG_FORMAT"], !value.isEmpty else { return .auto }
        guard let format = LogFormat(rawValue: value.lowercased()) else {
            throw CLIError.configuration("\(source): \"\(value)\" is not one of auto, json, text, journald")
        }
        return format
    }

    /// Installs the handler for this format. `level` applies to every logger.
    static func bootstrap(_ format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .journald: handler = JournalLogHandler(label: label)
            case .json: handler = JSONLogHandler(label: label)
            case .text, .auto: handler = StreamLogHandler.standardError(label: label)
            }
            handler.logLevel = level
            return handler
        }
    }
}
