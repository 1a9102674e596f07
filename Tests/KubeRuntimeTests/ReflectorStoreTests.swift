import AsyncAlgorithms
import KubeClient
import KubeRuntime
import KubeSim
import KubetraceTestKit
import Testing

/// `Reflector.store`: every change is in it by the time the batch carrying it is received
/// (client-go updates its indexer before it calls the handlers).
@Suite(.timeLimit(.minutes(2))) struct ReflectorStoreTests {
    @Test(arguments: [true, false])
    func eachEventIsInTheStoreWhenItsBatchIsReceived(streamingList: Bool) async throws {
        var options = DevCluster.Options()
        options.streamingList = streamingList
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: "other")))
            for i in 0..<5 { _ = try await client.create(Secret(metadata: ObjectMeta(name: "s\(i)", namespace: "default"))) }
            _ = try await client.create(Secret(metadata: ObjectMeta(name: "o", namespace: "other")))
            try await withReflector(TestSecret.self, client: client, options: ReflectorOptions(namespace: nil)) { reflector, it in
                let store = reflector.store
                #expect(!store.hasSynced)
                var synced = false
                while !synced, let batch = await it.next() {
                    synced = batch.contains { if case .synced = $0 { true } else { false } }
                }
                #expect(store.hasSynced)
                #expect(store.count == 6)
                #expect(Set(store.list(namespace: "default").map(\.meta.name)) == ["s0", "s1", "s2", "s3", "s4"])
                #expect(store.list(namespace: "other").map(\.meta.name) == ["o"])
                #expect(store.get(namespace: "default", name: "s3")?.meta.name == "s3")
                #expect(!store.resourceVersion.isEmpty)

                // One change at a time: each event's object (or its absence) is in the store on receipt.
                let created = try await client.create(Secret(metadata: ObjectMeta(name: "late", namespace: "default"), data: ["k": SecretBytes("v1")]))
                let added = try await nextEvent(&it) { $0.projection?.meta.name == "late" }
                guard case .added = added else { Issue.record("expected added, got \(added.typeName)"); return }
                #expect(store.get(namespace: "default", name: "late")?.meta.resourceVersion == created.metadata.resourceVersion)
                #expect(store.resourceVersion == created.metadata.resourceVersion)

                var changed = created
                changed.data = ["k": SecretBytes("v2"), "extra": SecretBytes("x")]
                let updated = try await client.update(changed)
                _ = try await nextEvent(&it) { $0.projection?.meta.resourceVersion == updated.metadata.resourceVersion }
                #expect(store.get(namespace: "default", name: "late")?.dataKeys.sorted() == ["extra", "k"])

                try await client.delete(Secret.self, namespace: "default", name: "s0")
                let deleted = try await nextEvent(&it) { $0.projection?.meta.name == "s0" }
                guard case .deleted = deleted else { Issue.record("expected deleted, got \(deleted.typeName)"); return }
                #expect(store.get(namespace: "default", name: "s0") == nil)
                #expect(store.count == 6)
            }
        }
    }
}

/// Reads batches until an event matches (the channel's batches may carry others first).
func nextEvent<P: Projection>(_ it: inout AsyncChannel<[WatchEvent<P>]>.AsyncIterator, _ matches: (WatchEvent<P>) -> Bool) async throws -> WatchEvent<P> {
    while let batch = await it.next() {
        if let hit = batch.first(where: matches) { return hit }
    }
    throw TimedOut(what: "the channel ended before the event")
}
