import Foundation
import KubeRuntime
import KubetraceFormats
@testable import KubetraceOperator
import Testing

/// One watch of the operator namespace's Secrets serves both sides: a subscriber that
/// arrives late (the refresh side, on becoming leader) first gets the state, then changes.
@Suite struct SecretFeedTests {
    static func secret(_ name: String, rv: String) -> ManagedSecret {
        var s = ManagedSecret(entries: .empty)
        s.meta.name = name
        s.meta.namespace = "kubetrace-system"
        s.meta.resourceVersion = rv
        return s
    }

    static func describe(_ e: WatchEvent<ManagedSecret>) -> String {
        switch e {
        case .added(let s): "added \(s.meta.name)@\(s.meta.resourceVersion)"
        case .modified(let s): "modified \(s.meta.name)@\(s.meta.resourceVersion)"
        case .deleted(let s): "deleted \(s.meta.name)"
        case .synced: "synced"
        }
    }

    @Test func aLateSubscriberGetsTheStateThenTheChangesInOrder() async throws {
        let feed = SecretFeed(namespace: "kubetrace-system")
        feed.publish(.added(Self.secret("b", rv: "1")))
        feed.publish(.added(Self.secret("a", rv: "2")))
        feed.publish(.modified(Self.secret("b", rv: "3")))
        feed.publish(.added(Self.secret("gone", rv: "4")))
        feed.publish(.deleted(Self.secret("gone", rv: "5")))
        feed.publish(.synced)
        let stream = feed.subscribe()
        feed.publish(.modified(Self.secret("a", rv: "6")))
        var seen: [String] = []
        for await e in stream {
            seen.append(Self.describe(e))
            if seen.count == 4 { break }
        }
        #expect(seen == ["added a@2", "added b@3", "synced", "modified a@6"])
    }

    @Test func beforeTheWatchSyncsTheSubscriberWaitsForSynced() async throws {
        let feed = SecretFeed(namespace: "kubetrace-system")
        feed.publish(.added(Self.secret("a", rv: "1")))
        let stream = feed.subscribe()
        feed.publish(.synced)
        var seen: [String] = []
        for await e in stream {
            seen.append(Self.describe(e))
            if seen.count == 2 { break }
        }
        #expect(seen == ["added a@1", "synced"])
    }

    @Test func aSubscriberThatStopsIsForgotten() async throws {
        let feed = SecretFeed(namespace: "kubetrace-system")
        do {
            let stream = feed.subscribe()
            #expect(feed.subscriberCount == 1)
            let task = Task { for await _ in stream {} }
            task.cancel()
            await task.value
        }
        #expect(feed.subscriberCount == 0)
    }
}
