import Foundation
public import Logging

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

    /// The value of `flag` in the arguments (`--flag X` or `--flag=X`), else of `variable`, and
    /// which of the two it came from. Logging is set up once, before the command line is
    /// parsed, so its settings are read early.
    static func early(_ flag: String, _ variable: String, arguments: [String], environment: [String: String]) -> (value: String?, source: String) {
        var raw: String?
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { break }
            if a == flag, i + 1 < arguments.count { raw = arguments[i + 1]; i += 1 }
            else if a.hasPrefix(flag + "=") { raw = String(a.dropFirst(flag.count + 1)) }
            i += 1
        }
        return raw != nil ? (raw, flag) : (environment[variable], variable)
    }

    /// `LOG_LEVEL` / `--log-level`: trace, debug, info (default), notice, warning, error, critical.
    public static func requestedLevel(arguments: [String], environment: [String: String]) throws -> Logger.Level {
        let (raw, source) = early("--log-level", "LOG_LEVEL", arguments: arguments, environment: environment)
        guard let value = raw, !value.isEmpty else { return .info }
        guard let level = Logger.Level(rawValue: value.lowercased()) else {
            throw CLIError.configuration("\(source): \"\(value)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        return level
    }

    /// Finds `--log-format X` / `--log-format=X` in the arguments, else `LOG_FORMAT`.
    public static func requested(arguments: [String], environment: [String: String]) throws -> LogFormat {
        let (raw, source) = early("--log-format", "LOG_FORMAT", arguments: arguments, environment: environment)
        guard let value = raw, !value.isEmpty else { return .auto }
        guard let format = LogFormat(rawValue: value.lowercased()) else {
            throw CLIError.configuration("\(source): \"\(value)\" is not one of auto, json, text, journald")
        }
        return format
    }

    /// Installs the handler for this format. `level` applies to every logger.
    public static func bootstrap(_ format: LogFormat, level: Logger.Level) {
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
