import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

@Suite(.timeLimit(.minutes(1))) struct WatchTests {
    let path = ConfigMap.resource.path(namespace: "default")

    @Test func resumesFromAResourceVersionWithoutGapsOrRepeats() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let first = try await client.create(configMap("a"))
            _ = try await client.create(configMap("b"))
            var w = try await openWatch(client, path, [("resourceVersion", first.metadata.resourceVersion!)])
            let e1 = try #require(try await w.next())
            #expect(e1.type == "ADDED" && e1.object.name == "b")
            var changed = first
            changed.data = ["k": "changed"]
            _ = try await client.update(changed)
            try await client.delete(ConfigMap.self, namespace: "default", name: "b")
            let e2 = try #require(try await w.next())
            let e3 = try #require(try await w.next())
            #expect(e2.type == "MODIFIED" && e2.object.name == "a" && e2.object["data"]?["k"] == .string("changed"))
            #expect(e3.type == "DELETED" && e3.object.name == "b")
        }
    }

    @Test func unsetResourceVersionStartsWithSyntheticAdds() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            _ = try await client.create(configMap("x"))
            _ = try await client.create(configMap("y"))
            var w = try await openWatch(client, path, [])
            #expect(try await w.next()?.object.name == "x")
            #expect(try await w.next()?.object.name == "y")
        }
    }

    @Test func sendInitialEventsEndsWithTheAnnotatedBookmark() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            _ = try await client.create(configMap("x"))
            var w = try await openWatch(client, path, [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan"),
                                                       ("allowWatchBookmarks", "true"), ("resourceVersion", "")])
            let added = try #require(try await w.next())
            #expect(added.type == "ADDED")
            let bookmark = try #require(try await w.next())
            #expect(bookmark.type == "BOOKMARK")
            #expect(bookmark.object["metadata"]?["annotations"]?["k8s.io/initial-events-end"] == .string("true"))
            let bad = await expectError { _ = try await client.stream(path: path, query: [("watch", "1"), ("sendInitialEvents", "true")]) }
            #expect(bad?.httpStatus == 422)
        }
    }

    @Test func compactedHistoryAnswers410Expired() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let a = try await client.create(configMap("a"))
            _ = try await client.create(configMap("b"))
            await cluster.compactHistory()
            var w = try await openWatch(client, path, [("resourceVersion", a.metadata.resourceVersion!)])
            let e = try #require(try await w.next())
            #expect(e.type == "ERROR")
            #expect(e.object["code"] == .int(410))
            #expect(e.object["reason"] == .string("Expired"))
            #expect(e.object["message"]?.stringValue?.hasPrefix("too old resource version: \(a.metadata.resourceVersion!)") == true)
            #expect(try await w.next() == nil)
        }
    }

    @Test func historyIsBounded() async throws {
        var options = DevCluster.Options()
        options.historyLimit = 4
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            let first = try await client.create(configMap("c0"))
            for i in 1...10 { _ = try await client.create(configMap("c\(i)")) }
            var w = try await openWatch(client, path, [("resourceVersion", first.metadata.resourceVersion!)])
            #expect(try await w.next()?.type == "ERROR")
        }
    }

    @Test func selectorTransitionsBecomeAddsAndDeletes() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let start = try await client.create(configMap("other"))
            var w = try await openWatch(client, path, [("labelSelector", "app=web"), ("resourceVersion", start.metadata.resourceVersion!)])
            let cm = try await client.create(configMap("c", labels: ["app": "api"]))
            _ = try await client.patch(ConfigMap.self, namespace: "default", name: "c", .merge(.object(["metadata": .object(["labels": .object(["app": .string("web")])])])))
            _ = try await client.patch(ConfigMap.self, namespace: "default", name: "c", .merge(.object(["data": .object(["k": .string("2")])])))
            _ = try await client.patch(ConfigMap.self, namespace: "default", name: "c", .merge(.object(["metadata": .object(["labels": .object(["app": .string("db")])])])))
            let events = [try await w.next(), try await w.next(), try await w.next()].compactMap { $0?.type }
            #expect(events == ["ADDED", "MODIFIED", "DELETED"])
            #expect(cm.name == "c")
        }
    }

    @Test func bookmarksCarryTheCurrentResourceVersion() async throws {
        var options = DevCluster.Options()
        options.bookmarkInterval = .milliseconds(100)
        try await DevCluster.withRunning(options) { cluster in
            let client = try await adminClient(cluster)
            let cm = try await client.create(configMap("a"))
            var w = try await openWatch(client, path, [("allowWatchBookmarks", "true"), ("resourceVersion", cm.metadata.resourceVersion!)])
            // A write to another resource moves the cache's resourceVersion on; a bookmark at the
            // watcher's own resourceVersion is never sent (apiserver cache_watcher.go `process`:
            // only events newer than the watch's resourceVersion).
            let other = try await client.create(Secret(metadata: ObjectMeta(name: "elsewhere", namespace: "default")))
            let b = try #require(try await w.next())
            #expect(b.type == "BOOKMARK")
            #expect(b.object["kind"] == .string("ConfigMap"))
            #expect(Int(b.object.resourceVersion)! >= Int(other.metadata.resourceVersion!)!)
        }
    }

    @Test func timeoutSecondsEndsTheStream() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let cm = try await client.create(configMap("a"))
            var w = try await openWatch(client, path, [("timeoutSeconds", "1"), ("resourceVersion", cm.metadata.resourceVersion!)])
            #expect(try await w.next() == nil)
        }
    }

    @Test func droppedWatchesEndAndRestartKeepsState() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let a = try await client.create(configMap("a"))
            var w = try await openWatch(client, path, [("resourceVersion", a.metadata.resourceVersion!)])
            // The response head is sent once the watch is registered.
            #expect(cluster.openWatches == 1)
            cluster.dropWatches()
            #expect(try await w.next() == nil)
            await cluster.restart()
            // Same port, same objects, resumable from the same resourceVersion.
            let got = try await client.get(ConfigMap.self, namespace: "default", name: "a")
            #expect(got.metadata.uid == a.metadata.uid)
            _ = try await client.create(configMap("b"))
            var resumed = try await openWatch(client, path, [("resourceVersion", a.metadata.resourceVersion!)])
            #expect(try await resumed.next()?.object.name == "b")
        }
    }
}
