import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeRuntime
import Testing

func secretLine(_ type: String, _ name: String, rv: Int, data: [String: String] = [:]) -> String {
    let d = data.map { #""\#($0.key)":"\#(Data($0.value.utf8).base64EncodedString())""# }.joined(separator: ",")
    return #"{"type":"\#(type)","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"ns","uid":"u-\#(name)","resourceVersion":"\#(rv)","labels":{"a":"b"},"ownerReferences":[{"apiVersion":"v1","kind":"Thing","name":"boss","uid":"x","controller":true}]},"type":"Opaque","data":{\#(d)}}}"# + "\n"
}

@Suite struct ProcessorTests {
    @Test func decodesProjectionsAndKeepsOnlyManagedValues() throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        let line = secretLine("ADDED", "s1", rv: 7, data: [".dockerconfigjson": #"{"auths":{}}"#, "other": "CANARY"])
        _ = try p.consume(Array(line.utf8), into: &out)
        guard case .added(let s)? = out.first else { Issue.record("expected added"); return }
        #expect(s.meta.name == "s1" && s.meta.namespace == "ns" && s.meta.resourceVersion == "7")
        #expect(s.meta.labels == ["a": "b"])
        #expect(s.meta.controller == "boss")
        #expect(s.type == "Opaque")
        #expect(Set(s.dataKeys) == [".dockerconfigjson", "other"])
        #expect(s.values[".dockerconfigjson"]?.string == #"{"auths":{}}"#)
        #expect(s.values["other"] == nil)
        #expect(!"\(s)".contains("auths"))
        #expect(p.resourceVersion == "7")
    }

    @Test func modifiedOfUnknownIsAddedAndDeleteOfUnknownIsDropped() throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        _ = try p.consume(Array((secretLine("MODIFIED", "a", rv: 2) + secretLine("DELETED", "zzz", rv: 3) + secretLine("MODIFIED", "a", rv: 4) + secretLine("DELETED", "a", rv: 5)).utf8), into: &out)
        #expect(out.map(\.typeName) == ["added", "modified", "deleted"])
        #expect(p.store.count == 0)
        #expect(p.resourceVersion == "5")
    }

    @Test func badLinesAreSkippedAndCounted() throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        let stream = secretLine("ADDED", "a", rv: 2) + "this is not json\n" + #"{"type":"EXPLODED","object":{}}"# + "\n"
            + #"{"type":"ADDED","object":{"kind":"Secret"}}"# + "\n" + "\n" + secretLine("ADDED", "b", rv: 3)
        _ = try p.consume(Array(stream.utf8), into: &out)
        #expect(out.compactMap { $0.projection?.meta.name } == ["a", "b"])
        let errors = p.takeDecodeErrors()
        #expect(errors.map(\.line) == [2, 3, 4])
        #expect(errors[1].reason == #"unknown watch event type "EXPLODED""#)
        #expect(errors[2].reason == "ADDED event without metadata.name or metadata.resourceVersion")
    }

    @Test func bookmarksAndErrors() throws {
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        let bookmark = #"{"type":"BOOKMARK","object":{"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":"12746"}}}"# + "\n"
        #expect(try p.consume(Array(bookmark.utf8), into: &out) == nil)
        #expect(p.resourceVersion == "12746")
        let expired = #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}"# + "\n"
        #expect(try p.consume(Array(expired.utf8), into: &out) == .expired("too old resource version: 1 (2)"))
        var q = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        let other = #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"boom","reason":"InternalError","code":500}}"# + "\n"
        #expect(try q.consume(Array(other.utf8), into: &out) == .error(code: 500, message: "boom"))
        #expect(out.isEmpty)
    }

    @Test func overlongLinesAreRefused() throws {
        var p = WatchStreamProcessor<TestSecret>(maxLineBytes: 1024, keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<TestSecret>] = []
        #expect(throws: LineFramer.LineTooLong.self) {
            _ = try p.consume([UInt8](repeating: UInt8(ascii: "x"), count: 2048), into: &out)
        }
    }

    /// Any split of a valid stream gives the same events; random corruption never crashes.
    @Test func randomSplitsAndCorruptions() throws {
        var rng = SystemRandomNumberGenerator()
        var stream = ""
        for i in 0..<200 { stream += secretLine(i % 3 == 2 ? "MODIFIED" : "ADDED", "s\(i % 50)", rv: 10 + i) }
        let bytes = Array(stream.utf8)
        func events(_ splits: [Int]) throws -> [String] {
            var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
            var out: [WatchEvent<TestSecret>] = []
            var start = 0
            for end in splits + [bytes.count] where end > start {
                _ = try p.consume(Array(bytes[start..<end]), into: &out)
                start = end
            }
            return out.map { "\($0.typeName) \($0.projection?.meta.name ?? "") \($0.projection?.meta.resourceVersion ?? "")" }
        }
        let whole = try events([])
        #expect(whole.count == 200)
        for _ in 0..<50 {
            let splits = (0..<Int.random(in: 1...40, using: &rng)).map { _ in Int.random(in: 0..<bytes.count, using: &rng) }.sorted()
            #expect(try events(splits) == whole)
        }
        for _ in 0..<200 {
            var corrupt = bytes
            for _ in 0..<Int.random(in: 1...20, using: &rng) { corrupt[Int.random(in: 0..<corrupt.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
            var out: [WatchEvent<TestSecret>] = []
            _ = try? p.consume(corrupt, into: &out)
            #expect(out.count <= 200)
        }
    }

    @Test func relistDifference() {
        func s(_ name: String, _ rv: String) -> TestSecret {
            var p = TestSecret(entries: .empty)
            p.meta.name = name
            p.meta.namespace = "ns"
            p.meta.resourceVersion = rv
            return p
        }
        var store = ProjectionStore<TestSecret>()
        _ = store.replace(with: [s("a", "1"), s("b", "1"), s("c", "1")])
        let diff = store.replace(with: [s("a", "1"), s("b", "5"), s("d", "6")])
        #expect(Set(diff.map { "\($0.typeName) \($0.projection!.meta.name)" }) == ["modified b", "added d", "deleted c"])
    }
}

@Suite struct StreamingListTests {
    /// Events after the initial-events-end bookmark in the same chunk are not lost.
    @Test func linesAfterTheEndBookmarkStayBuffered() throws {
        let end = #"{"type":"BOOKMARK","object":{"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":"20","annotations":{"k8s.io/initial-events-end":"true"}}}}"# + "\n"
        let chunk = secretLine("ADDED", "a", rv: 10) + secretLine("ADDED", "b", rv: 11) + end + secretLine("MODIFIED", "a", rv: 21) + secretLine("ADDED", "c", rv: 22)
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var initial: [TestSecret] = []
        #expect(try p.consume(Array(chunk.utf8), collectingInto: &initial) == .initialEventsEnd)
        #expect(initial.map(\.meta.name) == ["a", "b"])
        #expect(p.resourceVersion == "20")
        _ = p.store.replace(with: initial)
        var out: [WatchEvent<TestSecret>] = []
        #expect(try p.consume([], into: &out) == nil)
        #expect(out.map { "\($0.typeName) \($0.projection!.meta.name)" } == ["modified a", "added c"])
        #expect(p.resourceVersion == "22")
    }

    @Test func aPlainBookmarkDuringAStreamingListMeansUnsupported() throws {
        let plain = #"{"type":"BOOKMARK","object":{"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":"20"}}}"# + "\n"
        var p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        var initial: [TestSecret] = []
        #expect(try p.consume(Array((secretLine("ADDED", "a", rv: 10) + plain).utf8), collectingInto: &initial) == .plainBookmark)
    }
}
