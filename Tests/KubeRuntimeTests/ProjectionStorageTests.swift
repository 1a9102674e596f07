import KubetraceTestKit
@testable import KubeRuntime
import Testing

/// How projections keep what they keep: the values the cache holds 22,000 times.
@Suite struct ProjectionStorageTests {
    @Test(arguments: ["0f8fad5b-d9cb-469f-a165-70867728950e", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
                      "0F8FAD5B-D9CB-469F-A165-70867728950E", "not-a-uuid", "", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b+d9cb-469f-a165-70867728950e"])
    func uidsRoundTripExactly(_ uid: String) {
        var m = MetaProjection()
        m.uid = uid
        #expect(m.uid == uid)
        let fromBytes = Array(uid.utf8).withUnsafeBytes { CompactUID($0) }
        #expect(fromBytes.text == uid)
        #expect(fromBytes == CompactUID(uid))
    }

    @Test func repeatedValuesShareOneCopyAndUniqueOnesDoNot() throws {
        var p = WatchStreamProcessor<PodProjection>()
        var out: [WatchEvent<PodProjection>] = []
        func line(_ name: String, _ rv: Int) -> String {
            #"{"type":"ADDED","object":{"metadata":{"name":"\#(name)","namespace":"kubetrace-system-long","uid":"0f8fad5b-d9cb-469f-a165-70867728950e","resourceVersion":"\#(rv)","labels":{"app":"web"},"ownerReferences":[{"kind":"ReplicaSet","name":"web-deployment-5d8f7c9b4d","controller":true}]},"spec":{"serviceAccountName":"a-long-service-account","containers":[{"name":"a","image":"blr.vultrcr.com/kubetrace/web:1.2.3"},{"name":"b","image":"blr.vultrcr.com/kubetrace/web:1.2.3"}]}}}"# + "\n"
        }
        _ = try p.consume(Array((line("web-deployment-5d8f7c9b4d-aaaaa", 1) + line("web-deployment-5d8f7c9b4d-bbbbb", 2)).utf8), into: &out)
        let pods = out.compactMap(\.projection)
        try #require(pods.count == 2)
        func storage(_ s: String) -> UnsafeRawPointer? {
            var s = s
            return s.withUTF8 { UnsafeRawPointer($0.baseAddress) }
        }
        for keep in [\PodProjection.meta.namespace, \.serviceAccountName, \.meta.owners[0].name, \.images[0]] {
            #expect(storage(pods[0][keyPath: keep]) == storage(pods[1][keyPath: keep]), "\(keep) is not shared")
        }
        #expect(pods[0].meta.controller.map(storage) == storage(pods[0].meta.owners[0].name))
        #expect(storage(pods[0].meta.name) != storage(pods[1].meta.name))
        // Distinct images only; no labels on a Pod projection (its handlers read none).
        #expect(pods[0].images == ["blr.vultrcr.com/kubetrace/web:1.2.3"])
        #expect(pods[0].meta.labels.isEmpty)
        #expect(pods[0].meta.uid == "0f8fad5b-d9cb-469f-a165-70867728950e")
    }

    @Test func theInternerIsBounded() {
        let interner = StringInterner()
        var wrong = 0
        for i in 0..<(StringInterner.capacity * 3) {
            let s = "value-that-is-long-enough-\(i % (StringInterner.capacity + 7))"
            if Array(s.utf8).withUnsafeBytes({ interner.string($0) }) != s { wrong += 1 }
        }
        #expect(wrong == 0)
        #expect(interner.count <= StringInterner.capacity)
        let long = String(repeating: "x", count: StringInterner.maxValueBytes + 1)
        #expect(Array(long.utf8).withUnsafeBytes { interner.string($0) } == long)
    }
}
