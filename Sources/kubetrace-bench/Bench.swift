import KubetraceFormats
import ArgumentParser
import AsyncAlgorithms
import KubeRuntime
import Foundation
import KubeClient
import KubeSim
import Logging

/// `kubetrace-bench`: measured numbers, printed as a table and written as JSON.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubetrace-bench",
        abstract: "Benchmarks of the operator's core paths (run with `make bench`).",
        subcommands: [DecodeBench.self, SyncBench.self, DevClusterBench.self, RepairBench.self, ReplayBench.self, OperatorBench.self, InstructionsBench.self])
}

struct DevClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "devcluster", abstract: "The devcluster: objects held, write rate, watch fan-out.")

    @Option(help: "Objects to create before measuring.") var objects = 20_000
    @Option(help: "Updates made while the watchers watch.") var updates = 20_000
    @Option(help: "Concurrent watchers.") var watchers = 4
    @Option(help: "Concurrent writers.") var writers = 8
    @Option(help: "Where to write the JSON figures (default: $BENCH_OUT or .build/bench.json).") var output: String?
    @Flag(help: "Bind a ValidatingAdmissionPolicy on every Secret write first (the install's kind of policy), to measure its cost.")
    var admissionPolicy = false
    @Flag(help: "Serve HTTPS as HTTP/1.1 only (the devcluster's --disable-http2-serving), to compare with HTTP/2.")
    var disableHttp2Serving = false

    func run() async throws {
        var options = DevCluster.Options()
        options.http2 = !disableHttp2Serving
        let figures = try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            let clock = ContinuousClock()
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "bench")))
            if admissionPolicy {
                // The shape of the install's policy (a name and a type, `||` of `&&`s), matching every writer.
                let policy = #"{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicy","metadata":{"name":"bench"},"spec":{"failurePolicy":"Fail","#
                    + #""matchConstraints":{"resourceRules":[{"apiGroups":[""],"apiVersions":["v1"],"operations":["CREATE","UPDATE"],"resources":["secrets"]}]},"#
                    + #""matchConditions":[{"name":"all","expression":"request.userInfo.username.startsWith('')"}],"#
                    + #""validations":[{"expression":"object.metadata.name == 'kubetrace-registry' && object.type == 'kubernetes.io/dockerconfigjson' || request.namespace == 'bench' && object.metadata.name.startsWith('s-') && object.type == 'Opaque'","reason":"Forbidden"}]}}"#
                let binding = #"{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicyBinding","metadata":{"name":"bench"},"spec":{"policyName":"bench","validationActions":["Deny"]}}"#
                _ = try await client.request("POST", path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies", body: Array(policy.utf8))
                _ = try await client.request("POST", path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings", body: Array(binding.utf8))
            }

            // 1. Fill the store.
            let t0 = clock.now
            try await forEachConcurrently(0..<objects, width: writers) { i in
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "s-\(i)", namespace: "bench", labels: ["i": "\(i % 10)"]),
                                                   type: "Opaque", data: ["token": SecretBytes("value-\(i)")]))
            }
            let createSeconds = (clock.now - t0).seconds
            let tl = clock.now
            let listed = try await client.listAll(Secret.self, namespace: "bench")
            let listSeconds = (clock.now - tl).seconds
            precondition(listed.items.count == objects, "listed \(listed.items.count) of \(objects)")

            // 2. Our watchers (Reflector: streaming list, then watch) see every update the writers make.
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            var options = ReflectorOptions.managed(namespace: "bench")
            options.idleTimeout = .seconds(600)
            let reflectors = (0..<watchers).map { _ in Reflector<ManagedSecret>(client: client, options: options, logger: logger) }
            let delivered: Double = try await withThrowingTaskGroup(of: Void.self) { group in
                let channels = reflectors.map { _ in AsyncChannel<[WatchEvent<ManagedSecret>]>() }
                for (r, c) in zip(reflectors, channels) { group.addTask { try await r.run(into: c) } }
                // Wait until each has synced, then measure from the first write.
                try await withThrowingTaskGroup(of: Void.self) { synced in
                    for c in channels {
                        synced.addTask { for await b in c where b.contains(where: { if case .synced = $0 { true } else { false } }) { return } }
                    }
                    try await synced.waitForAll()
                }
                let tw = clock.now
                try await withThrowingTaskGroup(of: Void.self) { consumers in
                    for c in channels {
                        consumers.addTask {
                            var seen = 0
                            for await batch in c {
                                seen += batch.count
                                if seen >= updates { return }
                            }
                        }
                    }
                    try await forEachConcurrently(0..<updates, width: writers) { i in
                        let name = "s-\(i % objects)"
                        _ = try await client.patch(Secret.self, namespace: "bench", name: name, .merge(.object(["metadata": .object(["labels": .object(["u": .string("\(i)")])])])))
                    }
                    try await consumers.waitForAll()
                }
                let seconds = (clock.now - tw).seconds
                group.cancelAll()
                return seconds
            }
            let events = Double(updates * watchers)
            return [
                ("devcluster_admission_policies", admissionPolicy ? 1 : 0),
                ("devcluster_objects", Double(objects)),
                ("devcluster_create_per_s", Double(objects) / createSeconds),
                ("devcluster_list_s", listSeconds),
                ("devcluster_watchers", Double(watchers)),
                ("devcluster_events_per_s", events / delivered),
                ("devcluster_events_per_s_per_watcher", Double(updates) / delivered),
                ("rss_mb_devcluster", residentMegabytes()),
            ]
        }
        Self.report(figures, output: output)
    }

    static func report(_ figures: [(String, Double)], output: String?) {
        print("| measure | value |")
        print("| --- | ---: |")
        for (k, v) in figures { print("| \(k) | \(String(format: v < 10 ? "%.3f" : "%.0f", v)) |") }
        let path = output ?? ProcessInfo.processInfo.environment["BENCH_OUT"] ?? ".build/bench.json"
        var json: [String: JSONValue] = [:]
        if let old = try? JSONValue.parse(Array((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data())), let o = old.objectValue { json = o }
        for (k, v) in figures { json[k] = .double((v * 1000).rounded() / 1000) }
        FileManager.default.createFile(atPath: path, contents: Data(JSONValue.object(json).jsonBytes()))
        print("figures written to \(path)")
    }
}

func adminClient(_ cluster: DevCluster) async throws -> KubeClient {
    let yaml = cluster.kubeconfigYAML(server: await cluster.url())
    return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "devcluster", directory: "/")))
}

/// Runs `body` for every element with at most `width` in flight.
func forEachConcurrently<S: Sequence & Sendable>(_ items: S, width: Int, _ body: @escaping @Sendable (S.Element) async throws -> Void) async throws where S.Element: Sendable {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var inFlight = 0
        for item in items {
            if inFlight == width {
                try await group.next()
                inFlight -= 1
            }
            group.addTask { try await body(item) }
            inFlight += 1
        }
        try await group.waitForAll()
    }
}

/// VmRSS of this process, in MB.
func residentMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kb / 1024
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
