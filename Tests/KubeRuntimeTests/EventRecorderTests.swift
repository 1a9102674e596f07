import Foundation
import KubeClient
import KubeRuntime
import KubeSim
import KubetraceTestKit
import Logging
import Testing

/// Events leave the caller's path: `record` never waits, a full buffer drops (and counts),
/// and repeats about the same object and reason within the window become one Event whose
/// series count rises (client-go's EventCorrelator).
@Suite(.timeLimit(.minutes(1))) struct EventRecorderTests {
    static let reporter = EventRecorder.Reporter(controller: "example.com/tests", component: "tests", instance: "test-0")

    static func note(_ name: String, reason: String = "Checked") -> EventRecorder.Note {
        EventRecorder.Note(regarding: ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "default", name: name),
                           reason: reason, action: "Check", note: "checked \(name)", warning: false)
    }

    @Test func aFullBufferDropsAndCountsWithoutWaiting() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let recorder = EventRecorder(client: client, reporter: Self.reporter, logger: quiet, capacity: 3)
            for i in 0..<5 { recorder.record(Self.note("cm-\(i)")) }
            #expect(recorder.pendingCount == 3)
            #expect(recorder.dropped == 2)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await recorder.run() }
                await recorder.waitUntilWritten()
                group.cancelAll()
            }
            let events = try await client.list(Event.self, namespace: "default").items.filter { $0.reportingController == "example.com/tests" }
            #expect(Set(events.compactMap { $0.regarding?.name }) == ["cm-0", "cm-1", "cm-2"])
            #expect(events.allSatisfy { $0.reportingInstance == "test-0" && $0.action == "Check" && $0.type == "Normal" })
        }
    }

    @Test func repeatsWithinTheWindowRaiseOneEventsSeriesCount() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let recorder = EventRecorder(client: client, reporter: Self.reporter, logger: quiet)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await recorder.run() }
                for _ in 0..<3 {
                    recorder.record(Self.note("settings"))
                    await recorder.waitUntilWritten()
                }
                recorder.record(Self.note("settings", reason: "Other"))
                await recorder.waitUntilWritten()
                group.cancelAll()
            }
            let events = try await client.list(Event.self, namespace: "default").items.filter { $0.regarding?.name == "settings" }
            let checked = events.filter { $0.reason == "Checked" }
            #expect(checked.count == 1, "aggregated, not one per record")
            #expect(checked.first?.series?.count == 3)
            #expect(events.filter { $0.reason == "Other" }.count == 1)
            #expect(recorder.writtenCount == 4)
        }
    }

    /// A run cancelled mid-way (leadership lost) leaves what it did not write queued, in order,
    /// and the next run writes it: nothing lost, nothing written twice.
    @Test func aCancelledRunLeavesTheRestForTheNextRun() async throws {
        try await DevCluster.withRunning { cluster in
            let client = try await adminClient(cluster)
            let recorder = EventRecorder(client: client, reporter: Self.reporter, logger: quiet)
            let names = (0..<20).map { "cm-\($0)" }
            for n in names { recorder.record(Self.note(n)) }
            let first = Task { await recorder.run() }
            await Task.yield()
            first.cancel()
            await first.value
            func written() async throws -> [String] {
                try await client.list(Event.self, namespace: "default").items
                    .filter { $0.reportingController == "example.com/tests" }.compactMap { $0.regarding?.name }
            }
            let afterFirst = try await written()
            #expect(afterFirst.count + recorder.pendingCount == names.count, "\(afterFirst.count) written, \(recorder.pendingCount) queued")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await recorder.run() }
                await recorder.waitUntilWritten()
                group.cancelAll()
            }
            let all = try await written()
            #expect(all.sorted() == names.sorted(), "every Event once")
            #expect(recorder.pendingCount == 0)
        }
    }

    /// A waiter that is cancelled returns, even with Events queued and no run.
    @Test func waitingIsCancellable() async throws {
        try await DevCluster.withRunning { cluster in
            let recorder = EventRecorder(client: try await adminClient(cluster), reporter: Self.reporter, logger: quiet)
            recorder.record(Self.note("x"))
            let waiter = Task { await recorder.waitUntilWritten() }
            waiter.cancel()
            try await within(.seconds(10), "the cancelled waiter to return") { await waiter.value }
            #expect(recorder.pendingCount == 1)
        }
    }
}
