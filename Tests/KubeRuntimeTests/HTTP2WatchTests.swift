import AsyncAlgorithms
import Foundation
import KubeClient
import KubeRuntime
import KubeSim
import KubetraceTestKit
import Synchronization
import Testing

/// Watches multiplexed on one HTTP/2 connection to a TLS devcluster, through the project's own
/// client (KubeClient → CurlTransport → libcurl with CURLPIPE_MULTIPLEX and PIPEWAIT).
@Suite(.timeLimit(.minutes(2))) struct HTTP2WatchTests {
    /// Several seconds: a watch that ended with an error resumes after up to ~800 ms of backoff.
    static let resumeBound: Duration = .seconds(Int64(10 * testTimeScale))

    @Test func oneConnectionCarriesEveryWatchAndAPausedOneHoldsNoOtherAndIsStopped() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            // Writes go over a connection of their own (another TLS server name, so libcurl does
            // not reuse the watches' connection): if the watches' connection stalls, the writes still land.
            let writer = try await Self.client(cluster, tlsServerName: "localhost")
            let watches = try await Self.namespaceWatches(client, prefix: "h2a", count: 8)
            try await Self.running(watches) {
                for w in watches { try await within(Self.resumeBound, "\(w.namespace) synced") { await w.waitUntilSynced() } }
                try await within(Self.resumeBound, "one HTTP/2 connection") { await cluster.waitForOpenConnections { $0 == (1, 1) } }
                #expect(cluster.openConnections == (1, 1), "every watch and request multiplexed on one h2 connection")

                // The first watch's consumer stops reading: its batches wait in the reflector, its
                // transfer buffers up to the 4 MiB high watermark and is then paused by libcurl.
                // Each large write to it is followed by a probe in another namespace, which must
                // arrive within 2 s: from about the 12th write on, the paused stream has more data
                // waiting than its transfer takes.
                let stalled = watches[0]
                let stoppedBefore = CurlTransport.shared.stalledStreamsStopped
                stalled.stopConsuming()
                let blob = SecretBytes([UInt8](repeating: 0x61, count: 256 << 10))
                let bigCount = 24  // ≈ 8 MiB of watch lines: twice the paused transfer's buffer
                let clock = ContinuousClock()
                var latencies: [Duration] = []
                for i in 0..<bigCount {
                    _ = try await writer.create(Secret(metadata: ObjectMeta(name: "big-\(i)", namespace: stalled.namespace), data: ["blob": blob]))
                    let target = watches[1 + i % (watches.count - 1)]
                    let started = clock.now
                    _ = try await writer.create(Secret(metadata: ObjectMeta(name: "probe-\(i)", namespace: target.namespace)))
                    do {
                        try await within(.seconds(Int64(2 * testTimeScale)), "probe-\(i) in \(target.namespace) after \(i + 1) × 341 KiB to the paused \(stalled.namespace)") {
                            await target.waitFor("probe-\(i)")
                        }
                    } catch {
                        print("HTTP2WatchTests: probe-\(i) stalled; earlier probes \(Self.ms(latencies)), open watches \(cluster.openWatches), paused watch saw \(stalled.count) objects")
                        throw error
                    }
                    latencies.append(clock.now - started)
                }
                let slowest = latencies.indices.max { latencies[$0] < latencies[$1] } ?? 0
                print("HTTP2WatchTests: \(bigCount) probes, slowest probe-\(slowest) \(Self.ms([latencies[slowest]])), all \(Self.ms(latencies)); open watches \(cluster.openWatches) of \(watches.count); paused watch saw \(stalled.count) objects, reconnects \(stalled.reflector.stats.reconnects)")

                // Paused longer than the transport lets one stream hold a shared connection, the
                // transfer is stopped: libcurl resets the stream and drops what it held for it. (7.88
                // sends that RST_STREAM with the connection's next frame, so the server's side of the
                // watch ends when the connection next carries anything.)
                let acceptedBeforeStop = cluster.acceptedConnections
                try await within(.seconds(Int64(5 * testTimeScale)), "the paused transfer stopped") {
                    await CurlTransport.shared.waitForStalledStreamsStopped(atLeast: stoppedBefore + 1)
                }
                #expect(cluster.acceptedConnections == acceptedBeforeStop, "stopping one stream cost a connection")

                // Read again, the watch delivers what its transfer had buffered, then resumes from
                // its resourceVersion and catches up, without a relist.
                stalled.startConsuming()
                try await within(.seconds(Int64(30 * testTimeScale)), "\(stalled.namespace) catches up") {
                    for i in 0..<bigCount { await stalled.waitFor("big-\(i)") }
                }
                #expect(stalled.reflector.stats.reconnects >= 1, "the stopped stream was not resumed")
                try await within(Self.resumeBound, "every watch open again") { await cluster.waitForWatches(watches.count) }
                for w in watches { #expect(w.reflector.stats.relists == 0, "\(w.namespace) relisted") }
                for w in watches.dropFirst() { #expect(w.reflector.stats.reconnects == 0, "\(w.namespace) was disturbed") }
            }
        }
    }

    /// GOAWAY ends every watch; each resumes from its resourceVersion on a new connection, without
    /// a relist. libcurl 7.88 may open several connections for that burst of resumes (in 7 of 10
    /// runs here: 2–7 for 6 watches): transfers started while the new connection is still in its
    /// TLS handshake do not wait for it (lib/url.c `ConnectionExists` skips a connection that is
    /// not yet known to multiplex). At their next resume — the server's watch timeout, here every
    /// watch dropped — the watches gather on the first connection, and the idle ones go away
    /// after the server's HTTP/2 idle timeout: the steady state is one connection again.
    @Test func goAwayMovesEveryWatchToANewConnectionWithoutARelist() async throws {
        var options = DevCluster.Options()
        options.http2IdleTimeout = .seconds(2)
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            let watches = try await Self.namespaceWatches(client, prefix: "h2b", count: 6)
            try await Self.running(watches) {
                for w in watches { try await within(Self.resumeBound, "\(w.namespace) synced") { await w.waitUntilSynced() } }
                try await within(Self.resumeBound, "one HTTP/2 connection") { await cluster.waitForOpenConnections { $0 == (1, 1) } }
                let acceptedBefore = cluster.acceptedConnections
                let reconnectsBefore = watches.map(\.reflector.stats.reconnects)

                await cluster.goAway()
                for w in watches {
                    _ = try await client.create(Secret(metadata: ObjectMeta(name: "after-goaway", namespace: w.namespace)))
                }
                for w in watches {
                    try await within(Self.resumeBound, "after-goaway in \(w.namespace)") { await w.waitFor("after-goaway") }
                }
                #expect(cluster.acceptedConnections.http2 > acceptedBefore.http2, "the watches resumed on a new connection")
                for (w, before) in zip(watches, reconnectsBefore) {
                    #expect(w.reflector.stats.relists == 0, "\(w.namespace) relisted")
                    #expect(w.reflector.stats.reconnects > before, "\(w.namespace)'s watch was not ended by the GOAWAY")
                }
                let afterGoAway = cluster.openConnections

                // The watches' next resume (their timeout) gathers them on one connection.
                cluster.dropWatches()
                for w in watches {
                    _ = try await client.create(Secret(metadata: ObjectMeta(name: "after-drop", namespace: w.namespace)))
                }
                for w in watches {
                    try await within(Self.resumeBound, "after-drop in \(w.namespace)") { await w.waitFor("after-drop") }
                }
                do {
                    try await within(Self.resumeBound, "back to one HTTP/2 connection") { await cluster.waitForOpenConnections { $0 == (1, 1) } }
                } catch {
                    Issue.record("open connections \(cluster.openConnections) (after the GOAWAY: \(afterGoAway)), accepted \(cluster.acceptedConnections) (before: \(acceptedBefore)), open watches \(cluster.openWatches)")
                    throw error
                }
                for w in watches { #expect(w.reflector.stats.relists == 0, "\(w.namespace) relisted") }
                #expect(cluster.openWatches == watches.count)
            }
        }
    }

    /// The `--goaway-chance` GOAWAY itself: the watches in flight are not influenced (they go on
    /// delivering on the old connection, none reconnects), while new requests open a new one.
    @Test func goAwayLeavesWatchesInFlightAlone() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let watches = try await Self.namespaceWatches(client, prefix: "h2k", count: 4)
            try await Self.running(watches) {
                for w in watches { try await within(Self.resumeBound, "\(w.namespace) synced") { await w.waitUntilSynced() } }
                try await within(Self.resumeBound, "one HTTP/2 connection") { await cluster.waitForOpenConnections { $0 == (1, 1) } }
                let acceptedBefore = cluster.acceptedConnections
                let reconnectsBefore = watches.map(\.reflector.stats.reconnects)

                await cluster.goAway(endingWatches: false)
                // A new request may not use the connection that went away.
                for w in watches {
                    _ = try await client.create(Secret(metadata: ObjectMeta(name: "after-goaway", namespace: w.namespace)))
                }
                for w in watches {
                    try await within(Self.resumeBound, "after-goaway in \(w.namespace)") { await w.waitFor("after-goaway") }
                }
                #expect(cluster.acceptedConnections.http2 == acceptedBefore.http2 + 1, "the writes opened one new connection")
                #expect(cluster.openConnections == (2, 2), "the old connection stays while its watches run")
                for (w, before) in zip(watches, reconnectsBefore) {
                    #expect(w.reflector.stats.reconnects == before, "\(w.namespace)'s watch was disturbed")
                    #expect(w.reflector.stats.relists == 0, "\(w.namespace) relisted")
                }
            }
        }
    }

    @Test func resetStreamResumesThatWatchAlone() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let watches = try await Self.namespaceWatches(client, prefix: "h2c", count: 4)
            try await Self.running(watches) {
                for w in watches { try await within(Self.resumeBound, "\(w.namespace) synced") { await w.waitUntilSynced() } }
                try await within(Self.resumeBound, "one HTTP/2 connection") { await cluster.waitForOpenConnections { $0 == (1, 1) } }
                let acceptedBefore = cluster.acceptedConnections
                let reconnectsBefore = watches.map(\.reflector.stats.reconnects)
                let target = watches[1]

                let reset = await cluster.resetStream(watchPathPrefix: "/api/v1/namespaces/\(target.namespace)/secrets")
                #expect(reset == "/api/v1/namespaces/\(target.namespace)/secrets")
                // The reset watch is opened again (the open count returns to every watch)…
                try await within(Self.resumeBound, "the reset watch reopened") { await cluster.waitForWatchesOpened(watches.count + 1) }
                for w in watches {
                    _ = try await client.create(Secret(metadata: ObjectMeta(name: "after-reset", namespace: w.namespace)))
                }
                // …and every watch, the reset one included, delivers what came after.
                for w in watches {
                    try await within(Self.resumeBound, "after-reset in \(w.namespace)") { await w.waitFor("after-reset") }
                }
                #expect(target.reflector.stats.reconnects > reconnectsBefore[1], "the reset watch did not resume")
                for (i, w) in watches.enumerated() {
                    #expect(w.reflector.stats.relists == 0, "\(w.namespace) relisted")
                    if i != 1 { #expect(w.reflector.stats.reconnects == reconnectsBefore[i], "\(w.namespace) was disturbed by another stream's reset") }
                }
                // RST_STREAM ends a stream, not the connection.
                #expect(cluster.openConnections == (1, 1))
                #expect(cluster.acceptedConnections == acceptedBefore)
            }
        }
    }

    // MARK: helpers

    static func ms(_ ds: [Duration]) -> String {
        ds.map { "\($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) ms" }.joined(separator: ", ")
    }

    /// A client of the devcluster that verifies its certificate as `tlsServerName` (a SAN of it).
    static func client(_ cluster: DevCluster, tlsServerName: String) async throws -> KubeClient {
        let server = await cluster.url()
        let yaml = cluster.kubeconfigYAML(server: server)
            .replacingOccurrences(of: "    server: \(server)\n", with: "    server: \(server)\n    tls-server-name: \(tlsServerName)\n")
        return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "devcluster", directory: "/")))
    }

    /// One namespace per watch, created first (so the client's connection exists before the watches start).
    static func namespaceWatches(_ client: KubeClient, prefix: String, count: Int) async throws -> [NamespaceWatch] {
        var watches: [NamespaceWatch] = []
        for i in 0..<count {
            let ns = "\(prefix)-\(i)"
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: ns)))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "seed", namespace: ns)))
            watches.append(NamespaceWatch(client: client, namespace: ns))
        }
        return watches
    }

    /// Runs every watch (reflector and consumer) for the duration of `body`.
    static func running(_ watches: [NamespaceWatch], _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in watches {
                group.addTask { try await w.reflector.run(into: w.channel) }
                group.addTask { await w.consume() }
            }
            defer { group.cancelAll() }
            try await body()
        }
    }
}

/// A reflector on one namespace's Secrets and the names it delivered, with waits on them. Its
/// consumer can stop reading (the reflector then waits to hand over its next batch) and start again.
final class NamespaceWatch: Sendable {
    let namespace: String
    let reflector: Reflector<TestSecret>
    let channel = AsyncChannel<[WatchEvent<TestSecret>]>()

    private struct State {
        var names: Set<String> = []
        var synced = false
        var reading = true
        var waiters: [(id: UUID, ready: @Sendable (State) -> Bool, c: CheckedContinuation<Void, Never>)] = []
        var resume: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    init(client: KubeClient, namespace: String) {
        self.namespace = namespace
        reflector = Reflector(client: client, options: ReflectorOptions(namespace: namespace), logger: quiet)
    }

    var count: Int { state.withLock { $0.names.count } }

    func stopConsuming() { state.withLock { $0.reading = false } }

    func startConsuming() {
        let c = state.withLock { s in
            s.reading = true
            defer { s.resume = nil }
            return s.resume
        }
        c?.resume()
    }

    /// Applies batches as they come; while stopped, takes none.
    func consume() async {
        var it = channel.makeAsyncIterator()
        while !Task.isCancelled {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let go = state.withLock { s -> Bool in
                        if s.reading { return true }
                        s.resume = c
                        return false
                    }
                    if go { c.resume() }
                }
            } onCancel: {
                self.startConsuming()
            }
            guard let batch = await it.next() else { return }
            let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                for e in batch {
                    switch e {
                    case .synced: s.synced = true
                    case .added(let p), .modified(let p): s.names.insert(p.meta.name)
                    case .deleted(let p): s.names.remove(p.meta.name)
                    }
                }
                let snapshot = s
                let hit = s.waiters.filter { $0.ready(snapshot) }
                s.waiters.removeAll { $0.ready(snapshot) }
                return hit.map(\.c)
            }
            for c in ready { c.resume() }
        }
    }

    func waitUntilSynced() async { await wait { $0.synced } }
    func waitFor(_ name: String) async { await wait { $0.names.contains(name) } }

    private func wait(_ ready: @escaping @Sendable (State) -> Bool) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if Task.isCancelled || ready(s) { return true }
                    s.waiters.append((id, ready, c))
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let mine = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                defer { s.waiters.removeAll { $0.id == id } }
                return s.waiters.filter { $0.id == id }.map(\.c)
            }
            for c in mine { c.resume() }
        }
    }
}
