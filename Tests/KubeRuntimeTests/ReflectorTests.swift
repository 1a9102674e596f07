import AsyncAlgorithms
import Foundation
import KubeClient
import KubeRuntime
import KubeSim
import KubetraceTestKit
import Logging
import Synchronization
import Testing

var quiet: Logger {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}

/// Runs a reflector for the duration of `body`, which reads its events.
func withReflector<P: Projection>(_ type: P.Type, client: KubeClient, options: ReflectorOptions, _ body: (Reflector<P>, inout AsyncChannel<[WatchEvent<P>]>.AsyncIterator) async throws -> Void) async throws {
    let reflector = Reflector<P>(client: client, options: options, logger: quiet)
    let channel = AsyncChannel<[WatchEvent<P>]>()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await reflector.run(into: channel) }
        var it = channel.makeAsyncIterator()
        try await body(reflector, &it)
        group.cancelAll()
    }
}

/// The state an event log builds, applied in order to an empty map.
struct Replay {
    var objects: [String: String] = [:]  // key → resourceVersion
    var seen: [String: [Int]] = [:]      // key → resourceVersions of its adds and updates
    var synced = 0
    mutating func apply(_ e: WatchEvent<TestSecret>) {
        guard let p = e.projection else { synced += 1; return }
        // A delete found by a relist carries the last state seen, so only adds and updates are sequenced.
        if case .deleted = e { objects[p.meta.key] = nil; return }
        seen[p.meta.key, default: []].append(Int(p.meta.resourceVersion) ?? -1)
        objects[p.meta.key] = p.meta.resourceVersion
    }
}

@Suite(.timeLimit(.minutes(2))) struct ReflectorTests {
    @Test(arguments: [true, false])
    func initialSyncThenChanges(streamingList: Bool) async throws {
        var options = DevCluster.Options()
        options.streamingList = streamingList
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            for i in 0..<30 { _ = try await client.create(Secret(metadata: ObjectMeta(name: "s\(i)", namespace: "default"))) }
            var ro = ReflectorOptions(namespace: "default")
            ro.pageSize = 7
            try await withReflector(TestSecret.self, client: client, options: ro) { reflector, it in
                var replay = Replay()
                while replay.synced == 0, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                #expect(replay.objects.count == 30)
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "late", namespace: "default")))
                try await client.delete(Secret.self, namespace: "default", name: "s0")
                while replay.objects["default/late"] == nil || replay.objects["default/s0"] != nil, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                #expect(replay.objects.count == 30)
                #expect(reflector.stats.relists == 0)
            }
        }
    }

    /// Random writes interleaved with drops, compactions, restarts and 429/500
    /// storms: every change is seen once, in order, and the replayed log equals the server.
    @Test(arguments: [UInt64(1), 2, 3])
    func exactlyOnceUnderFaults(seed: UInt64) async throws {
        var options = DevCluster.Options()
        options.historyLimit = 50
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            var ro = ReflectorOptions(namespace: "default")
            ro.initialBackoff = .milliseconds(5)
            ro.maxBackoff = .milliseconds(50)
            var rng = SeededRandom(seed: seed)
            try await withReflector(TestSecret.self, client: client, options: ro) { reflector, it in
                var replay = Replay()
                while replay.synced == 0, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                var expected: [String: Secret] = [:]
                for step in 0..<150 {
                    let name = "s\(Int.random(in: 0..<12, using: &rng))"
                    do {
                        if let existing = expected[name], Bool.random(using: &rng) {
                            if Bool.random(using: &rng) {
                                try await client.delete(Secret.self, namespace: "default", name: name)
                                expected[name] = nil
                            } else {
                                var s = existing
                                s.data = ["v": SecretBytes("\(step)")]
                                expected[name] = try await client.update(s)
                            }
                        } else if expected[name] == nil {
                            expected[name] = try await client.create(Secret(metadata: ObjectMeta(name: name, namespace: "default")))
                        }
                    } catch let e as KubeClientError where e.isRetryable {
                        // An injected failure hit the writer: the change did not happen.
                    }
                    switch Int.random(in: 0..<30, using: &rng) {
                    case 0: cluster.dropWatches()
                    case 1: await cluster.compactHistory()
                    case 2: await cluster.restart()
                    case 3: cluster.faults.failNext(.init(count: 3, status: 429, retryAfterSeconds: 0, plainText: true, method: "GET"))
                    case 4: cluster.faults.failNext(.init(count: 2, status: 500, method: "GET"))
                    case 5: cluster.faults.setLatency(.milliseconds(15))
                    case 6: cluster.faults.setLatency(.zero)
                    default: break
                    }
                }
                cluster.faults.clear()
                let server = try await client.listAll(Secret.self, namespace: "default")
                let want = Dictionary(uniqueKeysWithValues: server.items.map { ("default/\($0.name)", $0.metadata.resourceVersion!) })
                while replay.objects != want, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                #expect(replay.objects == want)
                for (key, rvs) in replay.seen {
                    #expect(rvs == rvs.sorted() && Set(rvs).count == rvs.count, "\(key) saw \(rvs)")
                }
                #expect(reflector.stats.reconnects + reflector.stats.relists > 0)
            }
        }
    }

    /// client-go's resume rule: a watch the server cuts after delivering events
    /// resumes at once from its last resourceVersion. Against a server that
    /// cuts every 37 changes and keeps 50, that is the difference between
    /// delivering every change and relisting (which loses the intermediate ones).
    @Test func cutWatchesResumeWithoutRelisting() async throws {
        var options = DevCluster.Options()
        options.historyLimit = 50
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            var current: [Secret] = []
            for i in 0..<4 { current.append(try await client.create(Secret(metadata: ObjectMeta(name: "s\(i)", namespace: "default")))) }
            let changes = 399
            try await withReflector(TestSecret.self, client: client, options: ReflectorOptions(namespace: "default")) { reflector, it in
                var replay = Replay()
                while replay.synced == 0, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                try await withThrowingTaskGroup(of: [String: [Int]].self) { group in
                    group.addTask { [current] in
                        var objects = current
                        var written: [String: [Int]] = [:]
                        for n in 1...changes {
                            var s = objects[n % 4]
                            s.data = ["n": SecretBytes("\(n)")]
                            objects[n % 4] = try await client.update(s)
                            written["default/\(s.name)", default: []].append(Int(objects[n % 4].metadata.resourceVersion!)!)
                            if n % 37 == 0 { cluster.dropWatches() }
                        }
                        _ = try await client.create(Secret(metadata: ObjectMeta(name: "done", namespace: "default")))
                        return written
                    }
                    // Bounded by the suite's time limit.
                    while replay.objects["default/done"] == nil, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                    let written = try #require(try await group.next())
                    let delivered = written.reduce(0) { sum, entry in
                        let seen = Set(replay.seen[entry.key] ?? [])
                        return sum + entry.value.filter(seen.contains).count
                    }
                    #expect(written.values.map(\.count).reduce(0, +) == changes)
                    #expect(Double(delivered) >= 0.95 * Double(changes), "delivered \(delivered) of \(changes) changes")
                    #expect(reflector.stats.relists == 0, "a cut watch relisted")
                    #expect(reflector.stats.reconnects >= changes / 37, "the server cut the watch \(changes / 37) times")
                }
            }
        }
    }

    /// A streaming list cut before its initial-events-end bookmark delivered no state: the
    /// reflector must not take the partial list for the state (nor resume after it), but
    /// list again and announce `synced` once, with the whole list.
    @Test func aStreamingListCutBeforeItsEndIsListedAgain() async throws {
        let attempts = Atomic<Int>(0)
        @Sendable func added(_ name: String, _ rv: Int) -> String {
            LoopbackHTTPServer.chunk(#"{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"default","resourceVersion":"\#(rv)"},"type":"Opaque"}}"# + "\n")
        }
        let server = try LoopbackHTTPServer { write in
            let n = attempts.wrappingAdd(1, ordering: .relaxed).newValue
            _ = write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            _ = write(added("b", 7))
            if n == 1 { return }  // cut: the connection closes mid-body, before the end bookmark
            _ = write(added("a", 5))
            _ = write(LoopbackHTTPServer.chunk(#"{"type":"BOOKMARK","object":{"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":"9","annotations":{"k8s.io/initial-events-end":"true"}}}}"# + "\n"))
            // Then the watch stays open, quiet, until the client goes.
            while write(LoopbackHTTPServer.chunk("\n")) { Thread.sleep(forTimeInterval: 0.05) }
        }
        defer { server.close() }
        let client = try server.client()
        var ro = ReflectorOptions(namespace: "default")
        ro.initialBackoff = .milliseconds(5)
        try await withReflector(TestSecret.self, client: client, options: ro) { reflector, it in
            var replay = Replay()
            var events: [String] = []
            while replay.synced == 0, let batch = try await it.next() {
                for e in batch {
                    replay.apply(e)
                    events.append(e.projection.map { "\(e.typeName) \($0.meta.name)" } ?? "synced")
                }
            }
            #expect(events.sorted() == ["added a", "added b", "synced"], "\(events)")
            #expect(replay.objects == ["default/a": "5", "default/b": "7"])
            #expect(attempts.load(ordering: .relaxed) == 2)
            #expect(reflector.stats.resourceVersion == "9")
        }
    }

    @Test func selectorsAndClusterWideScope() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "other")))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "a", namespace: "default", labels: ["team": "x"])))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "b", namespace: "other", labels: ["team": "x"])))
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "c", namespace: "other", labels: ["team": "y"])))
            var ro = ReflectorOptions(namespace: nil)
            ro.labelSelector = "team=x"
            try await withReflector(TestSecret.self, client: client, options: ro) { _, it in
                var replay = Replay()
                while replay.synced == 0, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                #expect(Set(replay.objects.keys) == ["default/a", "other/b"])
                // Relabelling moves an object out of the selection: the watcher sees it deleted.
                _ = try await client.patch(Secret.self, namespace: "other", name: "b", .merge(.object(["metadata": .object(["labels": .object(["team": .string("y")])])])))
                while replay.objects["other/b"] != nil, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                #expect(Set(replay.objects.keys) == ["default/a"])
            }
        }
    }

    @Test func silentStreamsAreDeclaredDead() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            var ro = ReflectorOptions(namespace: "default")
            ro.idleTimeout = .milliseconds(300)
            try await withReflector(TestSecret.self, client: client, options: ro) { reflector, it in
                var replay = Replay()
                while replay.synced == 0, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                // No bookmarks come (the devcluster sends one a minute): the watch is resumed after the
                // idle timeout, which opens a second watch.
                await cluster.waitForWatchesOpened(2)
                #expect(reflector.stats.reconnects >= 1)
                _ = try await client.create(Secret(metadata: ObjectMeta(name: "after", namespace: "default")))
                while replay.objects["default/after"] == nil, let batch = try await it.next() { batch.forEach { replay.apply($0) } }
                #expect(replay.objects["default/after"] != nil)
            }
        }
    }
}

struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
