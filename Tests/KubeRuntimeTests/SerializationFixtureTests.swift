import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeRuntime
import KubeSim
import Testing

/// kube-apiserver's own serialization fixtures (`../shared/fixtures/kubernetes-api/`, from
/// kubernetes/api `testdata/`: every field set, HEAD and v1.33.0) and each kind's Go zero value
/// (what every BOOKMARK carries) go through every projection, as watch lines and as list items.
/// A valid object is never skipped, and what a projection keeps equals a plain reading of the JSON.
enum Fixtures {
    /// The folder beside the repository (CI lays `shared/` beside its clone too).
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/fixtures/kubernetes-api")

    static var available: Bool { FileManager.default.fileExists(atPath: directory.path) }

    struct File: Sendable, CustomTestStringConvertible {
        var release: String
        var name: String
        var json: [UInt8]
        var testDescription: String { "\(release)/\(name)" }
        var value: JSONValue { (try? JSONValue.parse(json)) ?? .null }
        /// The object on one line, as a watch stream carries it.
        var compact: [UInt8] { value.jsonBytes() }
    }

    static let all: [File] = {
        guard available else { return [] }
        var out: [File] = []
        for release in ["HEAD", "v1.33.0"] {
            let dir = directory.appendingPathComponent(release)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            for name in names {
                guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
                out.append(File(release: release, name: name, json: Array(data)))
            }
        }
        return out
    }()
}

/// What every projection's metadata must equal, read plainly from the JSON.
private func expectMeta(_ m: MetaProjection, _ o: JSONValue, _ what: String, kept: MetadataKept) {
    let meta = o["metadata"]
    #expect(m.name == meta?["name"]?.stringValue ?? "", "\(what): name")
    #expect(m.namespace == meta?["namespace"]?.stringValue ?? "", "\(what): namespace")
    #expect(m.uid == meta?["uid"]?.stringValue ?? "", "\(what): uid")
    #expect(m.resourceVersion == meta?["resourceVersion"]?.stringValue ?? "", "\(what): resourceVersion")
    // A projection whose handlers read no labels or annotations keeps none.
    #expect(m.labels.count == (kept.contains(.labels) ? meta?["labels"]?.objectValue?.count ?? 0 : 0), "\(what): labels")
    #expect(m.annotations.count == (kept.contains(.annotations) ? meta?["annotations"]?.objectValue?.count ?? 0 : 0), "\(what): annotations")
    if kept.contains(.labels) { for (k, v) in meta?["labels"]?.objectValue ?? [:] { #expect(m.labels[k] == v.stringValue, "\(what): label \(k)") } }
    if kept.contains(.annotations) { for (k, v) in meta?["annotations"]?.objectValue ?? [:] { #expect(m.annotations[k] == v.stringValue, "\(what): annotation \(k)") } }
    let owners = (meta?["ownerReferences"]?.arrayValue ?? []).map { "\($0["kind"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")" }
    #expect(m.owners.map { "\($0.kind)/\($0.name)" } == owners, "\(what): owners")
    #expect(m.deleting == (meta?["deletionTimestamp"]?.stringValue != nil), "\(what): deleting")
}

private func names(_ list: JSONValue?) -> [String] { (list?.arrayValue ?? []).compactMap { $0["name"]?.stringValue } }

/// The fields each projection keeps, checked against the JSON.
private func expectProjection<P: Projection>(_ p: P, _ o: JSONValue, _ what: String) {
    expectMeta(p.meta, o, what, kept: P.metadataKept)
    switch p {
    case let s as TestSecret:
        #expect(s.type == o["type"]?.stringValue ?? "", "\(what): type")
        #expect(Set(s.dataKeys) == Set((o["data"]?.objectValue ?? [:]).keys), "\(what): data keys")
    case let sa as ServiceAccountProjection:
        #expect(sa.imagePullSecrets == names(o["imagePullSecrets"]), "\(what): imagePullSecrets")
    case let pod as PodProjection:
        let spec = o["spec"]
        let containers = (spec?["containers"]?.arrayValue ?? []) + (spec?["initContainers"]?.arrayValue ?? [])
        let images = containers.map { $0["image"]?.stringValue ?? "" }
        #expect(pod.images == images.enumerated().filter { !images[..<$0.offset].contains($0.element) }.map(\.element), "\(what): distinct images")
        #expect(pod.serviceAccountName == spec?["serviceAccountName"]?.stringValue ?? "", "\(what): serviceAccountName")
        #expect(pod.imagePullSecrets == names(spec?["imagePullSecrets"]), "\(what): imagePullSecrets")
        let statuses = (o["status"]?["containerStatuses"]?.arrayValue ?? []) + (o["status"]?["initContainerStatuses"]?.arrayValue ?? [])
        let waiting = statuses.compactMap { $0["state"]?["waiting"] }.map { $0["reason"]?.stringValue ?? "" }
        #expect(pod.waiting.map(\.reason) == waiting, "\(what): waiting reasons")
    case let raw as RawProjection<Role>:
        #expect((try? JSONValue.parse(raw.json)) == o, "\(what): raw JSON")
    default:
        Issue.record("no expectation for \(P.self)")
    }
}

/// Feeds `object` as ADDED, MODIFIED and DELETED lines (when it is on one line, as a watch
/// stream carries it) and as two list items (a list answer may be indented).
private func roundTrip<P: Projection>(_ type: P.Type, _ object: [UInt8], _ what: String) throws {
    let o = try JSONValue.parse(object)
    var p = WatchStreamProcessor<P>(keptSecretValues: TestSecretKeys.keptKeys)
    if !object.contains(UInt8(ascii: "\n")) {
        var out: [WatchEvent<P>] = []
        var lines: [UInt8] = []
        for t in ["ADDED", "MODIFIED", "DELETED"] { lines += Array(#"{"type":"\#(t)","object":"#.utf8) + object + Array("}\n".utf8) }
        _ = try p.consume(lines, into: &out)
        let errors = p.takeDecodeErrors()
        #expect(errors.isEmpty, "\(what) as a watch line was skipped: \(errors.first?.reason ?? "")")
        #expect(out.map(\.typeName) == ["added", "modified", "deleted"], "\(what): \(out.map(\.typeName))")
        if let first = out.first?.projection { expectProjection(first, o, "\(what) (watch)") }
    }
    let list = Array(#"{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"77"},"items":["#.utf8) + object + [UInt8(ascii: ",")] + object + Array("]}".utf8)
    let decoded = try p.decodeList(list)
    #expect(decoded.items.count == 2 && decoded.resourceVersion == "77", "\(what) as list items")
    if let first = decoded.items.first { expectProjection(first, o, "\(what) (list)") }
}

@Suite struct SerializationFixtureTests {
    /// Not disabled when the folder is missing: then every fixture test below would be.
    @Test func fixturesArePresentForBothReleases() {
        #expect(Fixtures.available, "\(Fixtures.directory.path) is missing: the fixture tests cannot run")
        #expect(Fixtures.all.filter { $0.release == "HEAD" }.count >= 20)
        #expect(Fixtures.all.filter { $0.release == "v1.33.0" }.count >= 19)
    }

    /// Every fixture, whatever its kind, through every projection: the widest JSON a server
    /// writes, with fields no projection knows.
    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/kubernetes-api is not beside the repository"), arguments: Fixtures.all)
    func everyFixtureThroughEveryProjection(file: Fixtures.File) throws {
        for object in [file.json, file.compact] {
            try roundTrip(TestSecret.self, object, file.testDescription)
            try roundTrip(ServiceAccountProjection.self, object, file.testDescription)
            try roundTrip(PodProjection.self, object, file.testDescription)
            try roundTrip(RawProjection<Role>.self, object, file.testDescription)
        }
    }

    /// The Codable models read the fixtures of their kind.
    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/kubernetes-api is not beside the repository"), arguments: Fixtures.all)
    func codableModelsReadTheirFixtures(file: Fixtures.File) throws {
        let data = Data(file.json)
        let d = JSONDecoder()
        switch file.name {
        case "core.v1.Secret.json": #expect(try d.decode(Secret.self, from: data).metadata.name == "nameValue")
        case "core.v1.ServiceAccount.json": #expect(try d.decode(ServiceAccount.self, from: data).imagePullSecrets?.first?.name == "nameValue")
        case "core.v1.Pod.json": #expect(try d.decode(Pod.self, from: data).spec?.containers?.first?.image == "imageValue")
        case "core.v1.Namespace.json": #expect(try d.decode(Namespace.self, from: data).metadata.name == "nameValue")
        case "core.v1.ConfigMap.json": #expect(try d.decode(ConfigMap.self, from: data).data?.isEmpty == false)
        case "core.v1.Event.json": #expect(try d.decode(CoreEvent.self, from: data).involvedObject.name == "nameValue")
        case "events.k8s.io.v1.Event.json": #expect(try d.decode(Event.self, from: data).regarding?.name == "nameValue")
        case "rbac.authorization.k8s.io.v1.Role.json": #expect(try d.decode(Role.self, from: data).rules?.first?.verbs == ["verbsValue"])
        case "rbac.authorization.k8s.io.v1.ClusterRole.json": #expect(try d.decode(ClusterRole.self, from: data).rules?.first?.verbs == ["verbsValue"])
        case "rbac.authorization.k8s.io.v1.RoleBinding.json": #expect(try d.decode(RoleBinding.self, from: data).roleRef.name == "nameValue")
        case "rbac.authorization.k8s.io.v1.ClusterRoleBinding.json": #expect(try d.decode(ClusterRoleBinding.self, from: data).subjects?.first?.name == "nameValue")
        case "coordination.k8s.io.v1.Lease.json": #expect(try d.decode(Lease.self, from: data).spec?.holderIdentity == "holderIdentityValue")
        case "authentication.k8s.io.v1.TokenRequest.json": #expect(try d.decode(TokenRequest.self, from: data).spec.audiences == ["audiencesValue"])
        default: break
        }
    }

    /// Each kind's Go zero value as a BOOKMARK, plain and ending a watch-list's initial events:
    /// the resourceVersion advances and the right signal comes, nothing is skipped.
    @Test(arguments: ZeroValue.kinds.map { "\($0.apiVersion) \($0.kind)" })
    func zeroValueBookmarksOfEveryKind(kind: String) throws {
        let parts = kind.split(separator: " ").map(String.init)
        // 1.32/1.33 write `"creationTimestamp":null`; 1.34 and later omit it.
        for (end, null) in [(false, true), (true, true), (false, false), (true, false)] {
            let object = ZeroValue.bookmarkObject(apiVersion: parts[0], kind: parts[1], resourceVersion: "4242", initialEventsEnd: end, creationTimestampNull: null)
            let line = Array(#"{"type":"BOOKMARK","object":"#.utf8) + object + Array("}\n".utf8)
            try expectBookmark(TestSecret.self, line, end: end, kind)
            try expectBookmark(ServiceAccountProjection.self, line, end: end, kind)
            try expectBookmark(PodProjection.self, line, end: end, kind)
            try expectBookmark(RawProjection<Role>.self, line, end: end, kind)
        }
    }

    private func expectBookmark<P: Projection>(_ type: P.Type, _ line: [UInt8], end: Bool, _ what: String) throws {
        var p = WatchStreamProcessor<P>(keptSecretValues: TestSecretKeys.keptKeys)
        var out: [WatchEvent<P>] = []
        let signal = try p.consume(line, into: &out)
        #expect(p.takeDecodeErrors().isEmpty, "\(what) bookmark skipped by \(P.self)")
        #expect(p.resourceVersion == "4242", "\(what): \(P.self) did not advance")
        #expect(signal == (end ? .initialEventsEnd : nil), "\(what): \(P.self) signal \(String(describing: signal))")
        #expect(out.isEmpty)
    }

    /// A zero value with a name (what a client that sends no optional field stores, and what
    /// a list of such objects carries) is an object like any other.
    @Test(arguments: ZeroValue.kinds.map { "\($0.apiVersion) \($0.kind)" })
    func zeroValueObjectsAsEventsAndListItems(kind: String) throws {
        let parts = kind.split(separator: " ").map(String.init)
        for null in [true, false] {
            var object = String(decoding: ZeroValue.bookmarkObject(apiVersion: parts[0], kind: parts[1], resourceVersion: "9", initialEventsEnd: false,
                                                                   creationTimestampNull: null), as: UTF8.self)
            object = object.replacingOccurrences(of: #""metadata":{"#, with: #""metadata":{"name":"zero","namespace":"ns","#)
            try roundTrip(TestSecret.self, Array(object.utf8), kind)
            try roundTrip(ServiceAccountProjection.self, Array(object.utf8), kind)
            try roundTrip(PodProjection.self, Array(object.utf8), kind)
            try roundTrip(RawProjection<Role>.self, Array(object.utf8), kind)
        }
    }

    /// The exact bookmark kube-apiserver 1.32 ends a Pod watch-list with (issue 18): before the
    /// fix it was "skipped … The JSON element does not have the requested type".
    @Test func theIssuesPodBookmark() throws {
        let line = #"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"1187","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null},"status":{}}}"# + "\n"
        var p = WatchStreamProcessor<PodProjection>()
        var items: [PodProjection] = []
        let signal = try p.consume(Array(line.utf8), collectingInto: &items)
        #expect(signal == .initialEventsEnd)
        #expect(p.resourceVersion == "1187")
        #expect(p.takeDecodeErrors().isEmpty)
    }

    /// Null where a client may send it, for every field a projection reads.
    @Test func nullsAreAbsentFields() throws {
        let pod = #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns","resourceVersion":"3","labels":null,"annotations":null,"ownerReferences":null},"spec":{"containers":[{"name":"c","image":"i"}],"initContainers":null,"imagePullSecrets":null,"serviceAccountName":null},"status":{"containerStatuses":null,"initContainerStatuses":null}}"#
        try roundTrip(PodProjection.self, Array(pod.utf8), "pod with nulls")
        let podNullSpec = #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns","resourceVersion":"3"},"spec":null,"status":null}"#
        try roundTrip(PodProjection.self, Array(podNullSpec.utf8), "pod with null spec and status")
        let secret = #"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"ns","resourceVersion":"3"},"type":null,"data":null}"#
        try roundTrip(TestSecret.self, Array(secret.utf8), "secret with nulls")
        let sa = #"{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","resourceVersion":"3"},"imagePullSecrets":null,"secrets":null}"#
        try roundTrip(ServiceAccountProjection.self, Array(sa.utf8), "service account with nulls")
        let p = WatchStreamProcessor<TestSecret>(keptSecretValues: TestSecretKeys.keptKeys)
        let empty = try p.decodeList(Array(#"{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":null}"#.utf8))
        #expect(empty.items.isEmpty && empty.resourceVersion == "5")
    }

    /// The Codable models read every kind's zero value (nil slices as null, zero times as null,
    /// `{}` for a LocalObjectReference whose name is omitempty).
    @Test func codableModelsReadZeroValues() throws {
        func zero(_ apiVersion: String, _ kind: String) -> Data {
            var s = String(decoding: ZeroValue.bookmarkObject(apiVersion: apiVersion, kind: kind, resourceVersion: "1", initialEventsEnd: false), as: UTF8.self)
            s = s.replacingOccurrences(of: #""metadata":{"#, with: #""metadata":{"name":"z","#)
            return Data(s.utf8)
        }
        let d = JSONDecoder()
        #expect(try d.decode(Pod.self, from: zero("v1", "Pod")).spec?.containers == nil)
        #expect(try d.decode(Secret.self, from: zero("v1", "Secret")).data == nil)
        #expect(try d.decode(ServiceAccount.self, from: zero("v1", "ServiceAccount")).imagePullSecrets == nil)
        #expect(try d.decode(Role.self, from: zero("rbac.authorization.k8s.io/v1", "Role")).rules == nil)
        #expect(try d.decode(ClusterRole.self, from: zero("rbac.authorization.k8s.io/v1", "ClusterRole")).rules == nil)
        #expect(try d.decode(RoleBinding.self, from: zero("rbac.authorization.k8s.io/v1", "RoleBinding")).roleRef.name == "")
        #expect(try d.decode(ClusterRoleBinding.self, from: zero("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")).subjects == nil)
        #expect(try d.decode(Lease.self, from: zero("coordination.k8s.io/v1", "Lease")).spec?.holderIdentity == nil)
        #expect(try d.decode(CoreEvent.self, from: zero("v1", "Event")).involvedObject.name == nil)
        #expect(try d.decode(Event.self, from: zero("events.k8s.io/v1", "Event")).eventTime == nil)
        // Fields without omitempty, written as null by a Go server.
        let rule = try d.decode(PolicyRule.self, from: Data(#"{"verbs":null}"#.utf8))
        #expect(rule.verbs == [])
        #expect(try d.decode(LocalObjectReference.self, from: Data("{}".utf8)).name == "")
        let list = try d.decode(ObjectList<Secret>.self, from: Data(#"{"metadata":{},"items":null}"#.utf8))
        #expect(list.items.isEmpty)
        let series = try d.decode(Event.Series.self, from: Data(#"{"count":0,"lastObservedTime":null}"#.utf8))
        #expect(series.count == 0)
        let tr = try d.decode(TokenRequest.self, from: Data(#"{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":null},"status":{"token":"","expirationTimestamp":null}}"#.utf8))
        #expect(tr.spec.audiences == [])
    }
}
