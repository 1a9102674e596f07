import ArgumentParser
import BenchSupport
import Foundation
import Hummingbird
import KubeClient
import Logging
import NIOCore
import Synchronization

/// Over loopback HTTP, ours vs the peers on the same bytes: a replay server answers
/// the list with nothing and streams a recorded Pod watch response (chunked, as fast
/// as the socket allows); each consumer runs as its own process, must see every
/// event (count and resourceVersion sum are checked) and reports its own timing.
struct ReplayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "Pod watch stream over loopback: ours vs curl, the Python client, lightkube and kopf.")

    @Option(help: "Pod events in the recorded stream.") var events = 30_000
    @Option(help: "Consumers, comma-separated: ours, curl, python-client, lightkube, kopf.") var peers = "curl,ours,python-client,lightkube,kopf"
    @Option(help: "Directory of the peer scripts.") var peerScripts = "scripts/bench-peers"
    @Option(help: "Where to write the JSON figures.") var output: String?
    @Option(help: "Only serve for this many seconds (printing the kubeconfig path), for profiling a consumer by hand.") var serveOnly: Int?

    func run() async throws {
        var gen = SampleStream(seed: 7)
        // resourceVersions 2 … events+1, after the list's "1".
        let stream = Array((0..<events).map { gen.podEvent(type: $0 < events / 2 ? "ADDED" : "MODIFIED", index: $0, resourceVersion: 2 + $0) }.joined().utf8)
        let expectedSum = (0..<events).reduce(0) { $0 + 2 + $1 }
        let server = ReplayServer(stream: stream)
        let dir = NSTemporaryDirectory() + "kt-replay-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let scripts = peerScripts
        let figures: [(String, Double)] = try await server.withRunning { port in
            let kubeconfig = "\(dir)/kubeconfig"
            try """
            apiVersion: v1
            kind: Config
            current-context: replay
            clusters: [{name: replay, cluster: {server: "http://127.0.0.1:\(port)"}}]
            contexts: [{name: replay, context: {cluster: replay, user: replay, namespace: bench}}]
            users: [{name: replay, user: {}}]
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            if let serveOnly {
                print("serving \(events) Pod events; kubeconfig: \(kubeconfig)")
                try await Task.sleep(for: .seconds(serveOnly))
                return []
            }
            var out: [(String, Double)] = [("replay_pod_events", Double(events)), ("replay_stream_mb", Double(stream.count) / 1e6)]
            var rates: [String: Double] = [:]
            /// One run of a consumer; nil for curl, which only shows the server's pace.
            func runOnce(_ peer: String) throws -> PeerResult? {
                switch peer {
                case "curl":
                    let p = try runPeer("/usr/bin/env", ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                                                         "http://127.0.0.1:\(port)/api/v1/namespaces/bench/pods?watch=1&close=1"], env: [:])
                    let parts = p.stdout.split(separator: " ").compactMap { Double($0) }
                    guard parts.count == 2, Int(parts[0]) == stream.count else { throw ValidationError("curl read \(p)") }
                    out.append(("replay_curl_mb_per_s", parts[0] / parts[1] / 1e6))
                    print("curl: \(String(format: "%.0f", parts[0] / parts[1] / 1e6)) MB/s (\(Int(parts[0])) bytes)")
                    return nil
                case "ours":
                    return try PeerResult.parse(runPeer("\(bin)/kubetrace-operator", ["events", "--kubeconfig", kubeconfig, "--namespace", "bench", "--kind", "pods",
                                                                                       "--max-events", "\(events)", "--output", "summary"], env: ["LOG_FORMAT": "text"]))
                case "python-client":
                    return try PeerResult.parse(runPeer("/usr/bin/env", ["python3", "\(scripts)/python_client.py", kubeconfig, "bench", "\(events)"], env: [:]))
                case "lightkube":
                    return try PeerResult.parse(runPeer("/usr/bin/env", ["python3", "\(scripts)/lightkube_client.py", kubeconfig, "bench", "\(events)"], env: [:]))
                case "kopf":
                    return try PeerResult.parse(runPeer("/usr/bin/env", ["kopf", "run", "--standalone", "--namespace", "bench", "--quiet", "\(scripts)/kopf_counter.py"],
                                                        env: ["KUBECONFIG": kubeconfig, "BENCH_EXPECTED": "\(events)"]))
                default:
                    throw ValidationError("--peers: unknown \(peer)")
                }
            }
            for peer in peers.split(separator: ",").map(String.init) {
                // Best of three for the consumers that take seconds at most (as `decode`); kopf once (30 s).
                // Timed as whole processes, from spawn to exit: start-up included.
                var best: PeerResult?
                for _ in 0..<(peer == "kopf" || peer == "curl" ? 1 : 3) {
                    guard let r = try runOnce(peer) else { continue }
                    guard r.events == events, r.resourceVersionSum == expectedSum else {
                        throw ValidationError("\(peer) saw \(r.events) events (rv sum \(r.resourceVersionSum)), expected \(events) (\(expectedSum))")
                    }
                    if best.map({ r.wallSeconds < $0.wallSeconds }) ?? true { best = r }
                }
                guard let r = best else { continue }
                let rate = Double(r.events) / r.wallSeconds
                rates[peer] = rate
                print("\(peer): \(Int(rate)) events/s as a whole process (\(String(format: "%.3f", r.wallSeconds)) s; \(String(format: "%.3f", r.seconds)) s from its first request to its last event\(r.ownPeakRSSMegabytes.map { "; peak RSS \(Int($0)) MB" } ?? ""))")
                if peer == "ours" {
                    if let peak = r.ownPeakRSSMegabytes { out.append(("replay_peak_rss_mb", peak)) }
                    if let final = r.finalRSSMegabytes { out.append(("replay_final_rss_mb", final)) }
                }
            }
            let key = ["ours": "replay_pod_events_per_s", "python-client": "python_client_events_per_s", "lightkube": "lightkube_events_per_s", "kopf": "kopf_events_per_s"]
            for (peer, rate) in rates { out.append((key[peer]!, rate)) }
            if let ours = rates["ours"] {
                out.append(("replay_pod_mb_per_s", ours * Double(stream.count) / Double(events) / 1e6))
                for (peer, ratioKey) in [("python-client", "ratio_vs_python_client"), ("lightkube", "ratio_vs_lightkube"), ("kopf", "ratio_vs_kopf")] {
                    if let theirs = rates[peer] { out.append((ratioKey, ours / theirs)) }
                }
            }
            return out
        }
        DevClusterBench.report(figures, output: output)
    }
}

struct PeerResult {
    var events: Int
    var resourceVersionSum: Int
    /// As the consumer reports it: from its first request to its last event.
    var seconds: Double
    /// The whole process, spawn to exit.
    var wallSeconds = 0.0
    /// Ours only: resident memory when the last event arrived (the store held), and its
    /// own peak (`VmHWM`: wait4's maximum counts the spawning bench's memory too).
    var finalRSSMegabytes: Double?
    var ownPeakRSSMegabytes: Double?

    static func parse(_ run: MeasuredRun) throws -> PeerResult {
        var r = try parse(run.stdout)
        r.wallSeconds = run.wallSeconds
        return r
    }

    private static func megabytes(_ v: JSONValue?) -> Double? {
        switch v {
        case .double(let d)?: return d
        case .int(let i)?: return Double(i)
        default: return nil
        }
    }

    static func parse(_ output: String) throws -> PeerResult {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let json = try? JSONValue.parse(Array(line.utf8)),
              case .int(let events)? = json["events"], case .int(let sum)? = json["resource_version_sum"] else {
            throw ValidationError("no summary line in: \(output.suffix(400))")
        }
        let seconds: Double
        switch json["seconds"] {
        case .double(let d)?: seconds = d
        case .int(let i)?: seconds = Double(i)
        default: seconds = 0
        }
        var r = PeerResult(events: events, resourceVersionSum: sum, seconds: seconds)
        if let mb = megabytes(json["rss_mb"]) { r.finalRSSMegabytes = mb }
        if let mb = megabytes(json["peak_rss_mb"]) { r.ownPeakRSSMegabytes = mb }
        return r
    }
}

/// Runs a peer to completion, measured as a whole process (wall time, peak RSS).
func runPeer(_ executable: String, _ args: [String], env: [String: String]) throws -> MeasuredRun {
    var e = ProcessInfo.processInfo.environment
    e.merge(env) { _, n in n }
    let run = try MeasuredRun.run([executable] + args, environment: e)
    guard run.status == 0 else { throw ValidationError("\(args.prefix(3).joined(separator: " ")) exited \(run.status)") }
    return run
}

/// The replay server: the API surface the consumers touch (discovery, the `bench`
/// namespace and no CRDs for kopf, idle watches) and the recorded Pod watch stream.
struct ReplayServer: Sendable {
    let chunks: [ByteBuffer]
    let stopping = Stopping()

    init(stream: [UInt8]) {
        chunks = stride(from: 0, to: stream.count, by: 1 << 16).map { ByteBuffer(bytes: stream[$0..<min($0 + (1 << 16), stream.count)]) }
    }

    func withRunning<T: Sendable>(_ body: @Sendable @escaping (Int) async throws -> T) async throws -> T {
        let (portStream, portCont) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "replay")
        // Shutdown with open idle watches logs cancellation "errors" that are expected.
        logger.logLevel = .critical
        let app = Application(responder: ReplayResponder(chunks: chunks, stopping: stopping), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in portCont.yield(channel.localAddress?.port ?? 0); portCont.finish() }, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []); return nil }
            var port = 0
            for await p in portStream { port = p }
            defer { stopping.stop() }
            let result = try await body(port)
            stopping.stop()
            group.cancelAll()
            return result
        }
    }
}

/// Ends the idle watches when the bench is done, so the server can shut down.
final class Stopping: Sendable {
    private let state = Mutex<(stopped: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func stop() {
        let w = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.stopped = true
            defer { s.waiters = [] }
            return s.waiters
        }
        w.forEach { $0.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.stopped { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}

struct ReplayResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let chunks: [ByteBuffer]
    let stopping: Stopping

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A watch with nothing to say: open until the bench ends.
    func idleWatch() -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { [stopping] writer in
            await stopping.wait()
            try await writer.finish(nil)
        })
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        let query = request.uri.queryParameters
        let watching = query["watch"].map { $0 == "1" || $0 == "true" } ?? false
        switch path {
        case "/api": return Self.json(#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#)
        case "/apis":
            return Self.json(#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"apiextensions.k8s.io","versions":[{"groupVersion":"apiextensions.k8s.io/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apiextensions.k8s.io/v1","version":"v1"}}]}"#)
        case "/api/v1":
            return Self.json(#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list","watch"]},{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["get","list","watch"]}]}"#)
        case "/apis/apiextensions.k8s.io/v1":
            return Self.json(#"{"kind":"APIResourceList","groupVersion":"apiextensions.k8s.io/v1","resources":[{"name":"customresourcedefinitions","singularName":"customresourcedefinition","namespaced":false,"kind":"CustomResourceDefinition","verbs":["get","list","watch"]}]}"#)
        case "/api/v1/namespaces":
            return watching ? idleWatch() : Self.json(#"{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000001"},"status":{"phase":"Active"}}]}"#)
        case "/apis/apiextensions.k8s.io/v1/customresourcedefinitions":
            return watching ? idleWatch() : Self.json(#"{"kind":"CustomResourceDefinitionList","apiVersion":"apiextensions.k8s.io/v1","metadata":{"resourceVersion":"1"},"items":[]}"#)
        case "/api/v1/namespaces/bench/pods", "/api/v1/pods":
            guard watching else { return Self.json(#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#) }
            if query["sendInitialEvents"] == "true" {
                // As a server without the WatchList feature: the client falls back to LIST then WATCH.
                return Self.json(#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled","reason":"Invalid","code":422}"#, status: .unprocessableContent)
            }
            let close = query["close"] == "1"
            let chunks = chunks
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { [stopping] writer in
                for chunk in chunks { try await writer.write(chunk) }
                if !close { await stopping.wait() }
                try await writer.finish(nil)
            })
        default:
            return Self.json(#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#, status: .notFound)
        }
    }
}
