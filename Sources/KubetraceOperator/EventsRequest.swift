import KubetraceFormats
import AsyncAlgorithms
import Foundation
import KubeClient
import KubeRuntime
import Logging
import Synchronization

/// `kubetrace-operator events`: the typed events the watchers see, one JSON
/// line each (like `kubectl get -w`), flushed per line. Never prints Secret values.
public struct EventsRequest: Sendable, ClusterCommand {
    public init() {}
    public var cluster = ClusterSelection()
    public var kind = "secrets,serviceaccounts,pods"
    public var allNamespaces = false
    public var watchIdleTimeout: String?
    public var maxEvents: Int?
    public var output = "json"

    public func validate() throws {
        for k in kinds where !Self.kinds.contains(k) {
            throw CLIError.configuration("--kind: unknown kind \"\(k)\" (use \(Self.kinds.joined(separator: ", ")))")
        }
        if let maxEvents, maxEvents < 1 { throw CLIError.configuration("--max-events: must be at least 1") }
        if output != "json" && output != "summary" { throw CLIError.configuration("--output: \"\(output)\" is not json or summary") }
        if let w = watchIdleTimeout ?? ProcessInfo.processInfo.environment["WATCH_IDLE_TIMEOUT"], DurationParser.parse(w) == nil {
            throw CLIError.configuration("\(watchIdleTimeout != nil ? "--watch-idle-timeout" : "WATCH_IDLE_TIMEOUT"): \"\(w)\" is not a duration (e.g. 90s, 2m)")
        }
    }

    static let kinds = ["secrets", "serviceaccounts", "pods"]

    var kinds: [String] { kind.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    public func run() async throws {
        let client = try connect()
        var watchOptions = ReflectorOptions.managed(namespace: allNamespaces ? nil : cluster.namespace)
        if let w = watchIdleTimeout ?? ProcessInfo.processInfo.environment["WATCH_IDLE_TIMEOUT"], let d = DurationParser.parse(w) { watchOptions.idleTimeout = d }
        let logger = Logger(label: "kubetrace.events")
        let printer = EventPrinter(limit: maxEvents, summary: output == "summary")
        let options = watchOptions
        try await withThrowingTaskGroup(of: Void.self) { group in
            for k in Set(kinds) {
                switch k {
                case "secrets": group.addTask { try await watch(ManagedSecret.self, client, options, logger, printer) }
                case "serviceaccounts": group.addTask { try await watch(ServiceAccountProjection.self, client, options, logger, printer) }
                default: group.addTask { try await watch(PodProjection.self, client, options, logger, printer) }
                }
            }
            // Ends when --max-events is reached; otherwise runs until interrupted.
            try await group.next()
            group.cancelAll()
        }
        printer.printSummary()
    }
}

private func watch<P: Projection>(_ type: P.Type, _ client: KubeClient, _ options: ReflectorOptions, _ logger: Logger, _ printer: EventPrinter) async throws {
    let reflector = Reflector<P>(client: client, options: options, logger: logger)
    let channel = AsyncChannel<[WatchEvent<P>]>()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await reflector.run(into: channel) }
        for await batch in channel {
            for e in batch where printer.print(e, kind: P.resource.kind) {
                group.cancelAll()
                return
            }
        }
    }
}

/// Writes one JSON line per event, whole lines only, and counts toward --max-events;
/// or, with `summary`, only counts (by type, resourceVersion sum) for one line at exit.
final class EventPrinter: Sendable {
    struct Tally {
        var count = 0
        var byType: [String: Int] = [:]
        var resourceVersionSum = 0
        var lastEvent: ContinuousClock.Instant?
        /// Resident memory when the last event was delivered (the store still held).
        var residentBytesAtLastEvent: Int?
    }
    private let state = Mutex(Tally())
    private let limit: Int?
    private let summary: Bool
    private let started = ContinuousClock.now

    init(limit: Int?, summary: Bool = false) {
        self.limit = limit
        self.summary = summary
    }

    /// Returns true when the limit was reached.
    func print<P: Projection>(_ e: WatchEvent<P>, kind: String) -> Bool {
        var bytes: [UInt8] = []
        if !summary {
            var line: [String: JSONValue] = ["type": .string(e.typeName), "kind": .string(kind)]
            if let p = e.projection {
                line["namespace"] = .string(p.meta.namespace)
                line["name"] = .string(p.meta.name)
                line["resourceVersion"] = .string(p.meta.resourceVersion)
            }
            bytes = JSONValue.object(line).jsonBytes() + [UInt8(ascii: "\n")]
        }
        return state.withLock { t in
            if let limit, t.count >= limit { return true }
            if !summary { FileHandle.standardOutput.write(Data(bytes)) }
            if let p = e.projection {
                t.byType[e.typeName, default: 0] += 1
                t.count += 1
                t.resourceVersionSum &+= Int(p.meta.resourceVersion) ?? 0
                t.lastEvent = .now
            }
            let done = limit.map { t.count >= $0 } ?? false
            if done && summary { t.residentBytesAtLastEvent = Self.residentBytes() }
            return done
        }
    }

    /// The resident set now (`VmRSS`) or its peak so far (`VmHWM`), from /proc/self/status.
    /// (Not getrusage: after a vfork-style spawn its maximum includes the parent's.)
    static func residentBytes(_ field: String = "VmRSS:") -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }

    static func peak(hwm: Int?, seen: Int?) -> Int? {
        switch (hwm, seen) {
        case let (h?, s?): max(h, s)
        case let (h, s): h ?? s
        }
    }

    private static func megabytes(_ bytes: Int?) -> JSONValue {
        bytes.map { .double((Double($0) / 1_048_576 * 10).rounded() / 10) } ?? .null
    }

    /// The `--output summary` line.
    func printSummary() {
        guard summary else { return }
        let t = state.withLock { $0 }
        let seconds = t.lastEvent.map { ($0 - started) }.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
        let line = JSONValue.object([
            "events": .int(t.count),
            "by_type": .object(t.byType.mapValues { .int($0) }),
            "resource_version_sum": .int(t.resourceVersionSum),
            "seconds": .double(seconds),
            "rss_mb": Self.megabytes(t.residentBytesAtLastEvent),
            // The kernel updates VmHWM lazily (when pages are unmapped, not when glibc gives them
            // back with madvise), so it can read below an RSS seen earlier: the peak is at least that.
            "peak_rss_mb": Self.megabytes(Self.peak(hwm: Self.residentBytes("VmHWM:"), seen: t.residentBytesAtLastEvent)),
        ])
        FileHandle.standardOutput.write(Data(line.jsonBytes() + [10]))
    }
}

/// Durations as written in flags and env: `90s`, `2m`, `1h`, `500ms`, or plain seconds.
enum DurationParser {
    static func parse(_ s: String) -> Duration? {
        let t = s.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count)), v > 0 else { return nil }
            return .milliseconds(Int64(v * scale * 1000))
        }
        guard let v = Double(t), v > 0 else { return nil }
        return .milliseconds(Int64(v * 1000))
    }
}
