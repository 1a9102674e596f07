import AsyncAlgorithms
import Foundation
import KubeClient
import KubeRuntime
import Logging
import Synchronization
import UnixSignals

/// `kubetrace-operator status`: credentials, leader, watches and recent repairs on
/// one screen, read from the cluster (works from a laptop against an in-cluster operator).
public struct StatusRequest: Sendable, ClusterCommand {
    public init() {}
    public var cluster = ClusterSelection()
    public var watch = false
    public var output = "text"

    public func validate() throws {
        guard ["text", "json"].contains(output) else { throw CLIError.configuration("--output: must be text or json, not \"\(output)\"") }
    }

    public func run() async throws {
        var names = ObjectNames()
        if let ns = cluster.namespace ?? ProcessInfo.processInfo.environment["POD_NAMESPACE"], !ns.isEmpty { names.namespace = ns }
        var connection = try cluster.loadConnection()
        connection.namespace = names.namespace
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")
        if watch {
            try await StatusWatcher(client: client, names: names, json: output == "json").run()
        } else {
            let report = try await Self.snapshot(client: client, names: names)
            FileHandle.standardOutput.write(Data(output == "json" ? report.json.jsonBytes() + [10] : Array(report.text().utf8)))
        }
    }

    /// One read of everything: three GETs and two LISTs.
    static func snapshot(client: KubeClient, names: ObjectNames) async throws -> StatusReport {
        let ns = names.namespace
        func reading<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
            do { return try await body() } catch let e as KubeClientError where e.code == .api {
                throw CLIError.runtime("reading \(what): \(Doctor.describe(e))")
            }
        }
        var secrets: [String: Secret] = [:]
        for name in [names.operatorSecret, names.registrySecret, names.kubeconfigSecret] {
            do { secrets[name] = try await client.get(Secret.self, namespace: ns, name: name) } catch let e as KubeClientError where e.isNotFound {
                continue
            } catch let e as KubeClientError where e.code == .api {
                throw CLIError.runtime("reading Secret \(ns)/\(name): \(Doctor.describe(e))")
            }
        }
        let lease: Lease? = try await reading("Lease \(ns)/\(names.lease)") {
            do { return try await client.get(Lease.self, namespace: ns, name: names.lease) } catch let e as KubeClientError where e.isNotFound { return nil }
        }
        let events = try await reading("Events in \(ns)") { try await client.list(Event.self, namespace: ns).items }
        return StatusReport.build(names: names, secrets: secrets, lease: lease, events: events, now: Date())
    }
}

/// `status --watch`: three watches (Secrets, the Lease, Events) feed one state; each
/// change redraws; a 1 s local tick keeps the ages current without asking the server.
final class StatusWatcher: Sendable {
    let client: KubeClient
    let names: ObjectNames
    let json: Bool
    private let state = Mutex(State())
    private let changes = AsyncChannel<Void>()

    init(client: KubeClient, names: ObjectNames, json: Bool) {
        self.client = client
        self.names = names
        self.json = json
    }

    struct State: Sendable {
        var secrets: [String: Secret] = [:]
        var lease: Lease?
        var events: [String: Event] = [:]
        var synced: Set<String> = []
    }

    func run() async throws {
        var logger = Logger(label: "kubetrace.status")
        logger.logLevel = .error
        let log = logger
        let ns = names.namespace
        let tracked: Set<String> = [names.operatorSecret, names.registrySecret, names.kubeconfigSecret]
        let (client, names, json, changes) = (self.client, self.names, self.json, self.changes)
        try await withThrowingTaskGroup(of: Void.self) { group in
            func follow<K: KubeResource>(_ kind: K.Type, _ key: String, fieldSelector: String?, apply: @escaping @Sendable (inout State, WatchEvent<RawProjection<K>>) -> Void) {
                group.addTask {
                    var options = ReflectorOptions(namespace: ns)
                    options.fieldSelector = fieldSelector
                    let reflector = Reflector<RawProjection<K>>(client: client, options: options, logger: log)
                    let channel = AsyncChannel<[WatchEvent<RawProjection<K>>]>()
                    try await withThrowingTaskGroup(of: Void.self) { inner in
                        inner.addTask { try await reflector.run(into: channel) }
                        for await batch in channel {
                            self.state.withLock { s in
                                for e in batch {
                                    if case .synced = e { s.synced.insert(key) } else { apply(&s, e) }
                                }
                            }
                            await changes.send(())
                        }
                    }
                }
            }
            follow(Secret.self, "secrets", fieldSelector: nil) { s, e in
                guard let p = e.projection, tracked.contains(p.meta.name) else { return }
                if case .deleted = e { s.secrets[p.meta.name] = nil } else { s.secrets[p.meta.name] = try? p.object() }
            }
            follow(Lease.self, "lease", fieldSelector: "metadata.name=\(names.lease)") { s, e in
                if case .deleted = e { s.lease = nil } else { s.lease = try? e.projection?.object() }
            }
            follow(Event.self, "events", fieldSelector: nil) { s, e in
                guard let p = e.projection else { return }
                if case .deleted = e { s.events[p.meta.name] = nil } else if let ev = try? p.object(), StatusReport.repairReasons.contains(ev.reason ?? "") { s.events[p.meta.name] = ev }
            }
            // Redraws: on every change once all three synced; the ages tick locally once a second.
            group.addTask {
                var last: JSONValue?
                try await withThrowingTaskGroup(of: Void.self) { draw in
                    if !json {
                        draw.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: .seconds(1))
                                await changes.send(())
                            }
                        }
                    }
                    for await _ in changes {
                        let s = self.state.withLock { $0 }
                        guard s.synced.count == 3 else { continue }
                        let report = StatusReport.build(names: names, secrets: s.secrets, lease: s.lease, events: Array(s.events.values), now: Date())
                        if json {
                            // One line per change of substance: the clock, the Lease's renewals
                            // and the record's own timestamp (every 2 s) are not changes.
                            var comparable = report.json
                            comparable["time"] = nil
                            comparable["watchesReportedAt"] = nil
                            comparable["leader"]?["renewedAt"] = nil
                            if comparable == last { continue }
                            last = comparable
                            FileHandle.standardOutput.write(Data(report.json.jsonBytes() + [10]))
                        } else {
                            FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[2J" + report.text() + "\n(watching; Ctrl-C to stop)\n").utf8))
                        }
                    }
                }
            }
            // Ctrl-C or SIGTERM ends the view cleanly (also when started with SIGINT ignored).
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
