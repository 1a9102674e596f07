import Foundation
@testable import KubeRuntime
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

    /// The watch's order: the store has the change, then the event is published.
    static func publish(_ e: WatchEvent<ManagedSecret>, _ feed: SecretFeed, _ store: ReflectorStore<ManagedSecret>) {
        switch e {
        case .added(let s), .modified(let s): _ = store.upsert(s)
        case .deleted(let s): _ = store.remove(s)
        case .synced: break
        }
        feed.publish(e)
    }

    @Test func aLateSubscriberGetsTheStateThenTheChangesInOrder() async throws {
        let feed = SecretFeed(namespace: "kubetrace-system")
        let store = ReflectorStore<ManagedSecret>()
        feed.attach(store)
        Self.publish(.added(Self.secret("b", rv: "1")), feed, store)
        Self.publish(.added(Self.secret("a", rv: "2")), feed, store)
        Self.publish(.modified(Self.secret("b", rv: "3")), feed, store)
        Self.publish(.added(Self.secret("gone", rv: "4")), feed, store)
        Self.publish(.deleted(Self.secret("gone", rv: "5")), feed, store)
        Self.publish(.synced, feed, store)
        let stream = feed.subscribe()
        Self.publish(.modified(Self.secret("a", rv: "6")), feed, store)
        var seen: [String] = []
        for await e in stream {
            seen.append(Self.describe(e))
            if seen.count == 4 { break }
        }
        #expect(seen == ["added a@2", "added b@3", "synced", "modified a@6"])
    }

    @Test func beforeTheWatchSyncsTheSubscriberWaitsForSynced() async throws {
        let feed = SecretFeed(namespace: "kubetrace-system")
        let store = ReflectorStore<ManagedSecret>()
        feed.attach(store)
        Self.publish(.added(Self.secret("a", rv: "1")), feed, store)
        let stream = feed.subscribe()
        Self.publish(.synced, feed, store)
        var seen: [String] = []
        for await e in stream {
            seen.append(Self.describe(e))
            if seen.count == 2 { break }
        }
        #expect(seen == ["added a@1", "synced"])
    }

    /// A subscriber that falls too far behind is ended (it subscribes again from the store).
    @Test func aSubscriberTooFarBehindIsEnded() async throws {
        let feed = SecretFeed(namespace: "kubetrace-system", bufferLimit: 4)
        let store = ReflectorStore<ManagedSecret>()
        feed.attach(store)
        let stream = feed.subscribe()
        for i in 0..<10 { Self.publish(.modified(Self.secret("a", rv: "\(i)")), feed, store) }
        #expect(feed.subscriberCount == 0)
        var seen = 0
        for await _ in stream { seen += 1 }
        #expect(seen == 4, "the buffered events, then the end")
        var again: [String] = []
        for await e in feed.subscribe() {
            again.append(Self.describe(e))
            break
        }
        #expect(again == ["added a@9"])
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
