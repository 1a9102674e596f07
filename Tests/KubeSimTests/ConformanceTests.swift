import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// The devcluster against kube-apiserver, one row per behaviour, each with the file and function
/// of the real server it follows (k8s.io/apiserver, k8s.io/apimachinery, kubernetes/pkg).
/// Rows compare status codes, bodies (byte for byte where clients compare them) and watch
/// streams. Versions: kube-apiserver 1.32 (what the devcluster announces) unless a row says.
struct ConformanceRow: Sendable, CustomTestStringConvertible {
    var behaviour: String
    var source: String
    var options: @Sendable (inout DevCluster.Options) -> Void = { _ in }
    var check: @Sendable (Conformance) async throws -> Void
    var testDescription: String { behaviour }
}

/// What a row works with: a running devcluster and raw access to it.
struct Conformance: Sendable {
    let cluster: DevCluster
    let admin: KubeClient

    struct Answer {
        var status: Int
        var text: String
        var head: HTTPResponseHead
        var json: JSONValue { (try? JSONValue.parse(Array(text.utf8))) ?? .null }
    }

    func call(_ method: String, _ path: String, _ query: [(String, String)] = [], body: String? = nil,
              contentType: String = "application/json", timeout: Duration = .seconds(20)) async throws -> Answer {
        let r = try await admin.exchange(method, path: path, query: query, body: body.map { Array($0.utf8) }, contentType: contentType, timeout: timeout)
        return Answer(status: r.status, text: String(decoding: r.body, as: UTF8.self), head: r.head)
    }

    /// Creates a ConfigMap in `default` and returns its resourceVersion.
    @discardableResult
    func configMap(_ name: String, labels: [String: String] = [:]) async throws -> Int {
        let cm = try await admin.create(ConfigMap(metadata: ObjectMeta(name: name, namespace: "default", labels: labels.isEmpty ? nil : labels), data: ["k": name]))
        return Int(cm.metadata.resourceVersion ?? "") ?? -1
    }

    func currentRV() async throws -> Int {
        Int(try await call("GET", "/api/v1/namespaces/default/configmaps").json["metadata"]?["resourceVersion"]?.stringValue ?? "") ?? -1
    }

    func watch(_ path: String, _ query: [(String, String)]) async throws -> WatchLines {
        try await openWatch(admin, path, query)
    }
}

/// Reads watch events until `predicate` holds, returning them all (bounded by the suite's time limit).
func events(_ w: inout WatchLines, until predicate: ((type: String, object: JSONValue)) -> Bool) async throws -> [(type: String, object: JSONValue)] {
    var out: [(type: String, object: JSONValue)] = []
    while let e = try await w.next() {
        out.append(e)
        if predicate(e) { return out }
    }
    return out
}

private func parse(_ s: String) -> JSONValue { (try? JSONValue.parse(Array(s.utf8))) ?? .null }

private let cms = "/api/v1/namespaces/default/configmaps"
private let pods = "/api/v1/namespaces/default/pods"

enum ConformanceTable {
    static let rows: [ConformanceRow] = watchRows + listRows + writeRows + kindRows

    // MARK: watch

    static let watchRows: [ConformanceRow] = [
        ConformanceRow(
            behaviour: "a Pod BOOKMARK is the Pod's Go zero value with only the resourceVersion",
            source: "apiserver pkg/storage/cacher/cacher.go Cacher.dispatchEvents (newFunc + versioner.UpdateObject); core/v1 types.go json tags",
            options: { $0.bookmarkInterval = .milliseconds(100) },
            check: { c in
                var w = try await c.watch(pods, [("resourceVersion", String(try await c.currentRV())), ("allowWatchBookmarks", "true")])
                // A write elsewhere moves the cache's resourceVersion past the watch's: bookmarks
                // at the watch's own resourceVersion are not sent (cache_watcher.go `process`).
                try await c.configMap("elsewhere")
                let got = try #require(try await w.next())
                #expect(got.type == "BOOKMARK")
                let rv = got.object["metadata"]?["resourceVersion"]?.stringValue ?? ""
                #expect(got.object == parse(#"{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"\#(rv)","creationTimestamp":null},"spec":{"containers":null},"status":{}}"#))
            }),
        ConformanceRow(
            behaviour: "no BOOKMARK at all without allowWatchBookmarks",
            source: "apiserver pkg/storage/cacher/cacher.go Cacher.Watch (bookmarks only for watchers with AllowWatchBookmarks)",
            options: { $0.bookmarkInterval = .milliseconds(100) },
            check: { c in
                let rv = String(try await c.currentRV())
                var plain = try await c.watch(cms, [("resourceVersion", rv)])
                var withBookmarks = try await c.watch(cms, [("resourceVersion", rv), ("allowWatchBookmarks", "true")])
                _ = try await c.admin.create(Secret(metadata: ObjectMeta(name: "elsewhere", namespace: "default")))
                // Once the other watcher had a bookmark, any bookmark for this one would be queued first.
                #expect(try await withBookmarks.next()?.type == "BOOKMARK")
                try await c.configMap("after-bookmark")
                let first = try #require(try await plain.next())
                #expect(first.type == "ADDED" && first.object.name == "after-bookmark")
            }),
        ConformanceRow(
            behaviour: "watch-list ends its initial events with the annotated bookmark, only when bookmarks are allowed",
            source: "apiserver pkg/storage/cacher/cache_watcher.go processInterval; cacher.go setInitialEventsEndBookmarkIfRequested",
            check: { c in
                try await c.configMap("a")
                try await c.configMap("b")
                let query = [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan")]
                var allowed = try await c.watch(cms, query + [("allowWatchBookmarks", "true")])
                let seen = try await events(&allowed) { $0.type == "BOOKMARK" }
                #expect(seen.map(\.type) == ["ADDED", "ADDED", "BOOKMARK"])
                #expect(seen.last?.object["metadata"]?["annotations"] == parse(#"{"k8s.io/initial-events-end":"true"}"#))
                var silent = try await c.watch(cms, query)
                #expect(try await silent.next()?.type == "ADDED")
                #expect(try await silent.next()?.type == "ADDED")
                try await c.configMap("c")
                let third = try #require(try await silent.next())
                #expect(third.type == "ADDED" && third.object.name == "c")
            }),
        ConformanceRow(
            behaviour: "a watch from \"\" with the WatchList gate on is a watch-list (SetListOptionsDefaults)",
            source: "apiserver pkg/endpoints/handlers/get.go ListResource → metainternalversion SetListOptionsDefaults",
            check: { c in
                try await c.configMap("a")
                var w = try await c.watch(cms, [("allowWatchBookmarks", "true")])
                let seen = try await events(&w) { $0.type == "BOOKMARK" }
                #expect(seen.map(\.type) == ["ADDED", "BOOKMARK"])
                #expect(seen.last?.object["metadata"]?["annotations"]?["k8s.io/initial-events-end"] == .string("true"))
            }),
        ConformanceRow(
            behaviour: "a watch from a resourceVersion ahead of the store answers 200 and stays silent until the store passes it",
            source: "apiserver pkg/storage/cacher/cache_watcher.go process (only events newer than the watcher's resourceVersion)",
            check: { c in
                let now = try await c.currentRV()
                var w = try await c.watch(cms, [("resourceVersion", String(now + 2))])
                try await c.configMap("skipped-1")
                try await c.configMap("skipped-2")
                let third = try await c.configMap("delivered")
                let first = try #require(try await w.next())
                #expect(first.object.name == "delivered" && first.object.resourceVersion == String(third))
            }),
        ConformanceRow(
            behaviour: "a watch-list from a resourceVersion ahead of the store ends with an ERROR 504 inside the stream",
            source: "apiserver pkg/storage/cacher/cacher.go waitUntilWatchCacheFreshAndForceAllEvents → newErrWatcher; storage/errors.go NewTooLargeResourceVersionError",
            check: { c in
                let now = try await c.currentRV()
                var w = try await c.watch(cms, [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan"),
                                                ("resourceVersion", String(now + 50)), ("allowWatchBookmarks", "true")])
                let e = try #require(try await w.next())
                #expect(e.type == "ERROR")
                #expect(e.object == parse(#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: Too large resource version: \#(now + 50), current: \#(now)","reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504}"#))
                #expect(try await w.next() == nil)
            }),
        ConformanceRow(
            behaviour: "sendInitialEvents=false from a resourceVersion resumes like a plain watch",
            source: "apiserver pkg/storage/cacher/watch_cache.go getAllEventsSinceLocked (no initial events: the events since N, or 410)",
            check: { c in
                let from = try await c.configMap("a")
                try await c.configMap("b")
                var w = try await c.watch(cms, [("sendInitialEvents", "false"), ("resourceVersionMatch", "NotOlderThan"), ("resourceVersion", String(from))])
                let e = try #require(try await w.next())
                #expect(e.type == "ADDED" && e.object.name == "b")
            }),
        ConformanceRow(
            behaviour: "a watch from a compacted resourceVersion gets ERROR 410 Expired in a 200 stream",
            source: "apiserver pkg/storage/cacher/watch_cache.go getAllEventsSinceLocked (too old resource version: %d (%d))",
            check: { c in
                let old = try await c.configMap("a")
                try await c.configMap("b")
                await c.cluster.compactHistory()
                let now = try await c.currentRV()
                var w = try await c.watch(cms, [("resourceVersion", String(old))])
                let e = try #require(try await w.next())
                #expect(e.type == "ERROR")
                #expect(e.object == parse(#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: \#(old) (\#(now))","reason":"Expired","code":410}"#))
            }),
        ConformanceRow(
            behaviour: "an object that stops matching a selector watch arrives as DELETED carrying its previous state",
            source: "apiserver pkg/storage/cacher/cache_watcher.go convertToWatchEvent (!curObjPasses && oldObjPasses)",
            check: { c in
                try await c.configMap("x", labels: ["app": "web"])
                var w = try await c.watch(cms, [("resourceVersion", String(try await c.currentRV())), ("labelSelector", "app=web")])
                let patched = try await c.call("PATCH", "\(cms)/x", body: #"{"metadata":{"labels":{"app":"db"}}}"#, contentType: "application/merge-patch+json")
                let e = try #require(try await w.next())
                #expect(e.type == "DELETED")
                #expect(e.object["metadata"]?["labels"]?["app"] == .string("web"))
                #expect(e.object.resourceVersion == patched.json.resourceVersion)
            }),
        ConformanceRow(
            behaviour: "events.k8s.io/v1 watches see core Events converted",
            source: "kubernetes pkg/apis/events/v1/conversion.go Convert_core_Event_To_v1_Event; pkg/registry/events/rest/storage_events.go",
            check: { c in
                var w = try await c.watch("/apis/events.k8s.io/v1/namespaces/default/events", [("resourceVersion", String(try await c.currentRV()))])
                _ = try await c.call("POST", "/api/v1/namespaces/default/events", body: #"{"metadata":{"name":"e1"},"involvedObject":{"kind":"Secret","name":"s","namespace":"default"},"reason":"R","message":"hello","type":"Normal","source":{"component":"c"}}"#)
                let e = try #require(try await w.next())
                #expect(e.object["apiVersion"] == .string("events.k8s.io/v1"))
                #expect(e.object["note"] == .string("hello") && e.object["regarding"]?["name"] == .string("s"))
                #expect(e.object["deprecatedSource"]?["component"] == .string("c"))
            }),
    ]

    // MARK: list

    static let listRows: [ConformanceRow] = [
        ConformanceRow(
            behaviour: "resourceVersionMatch=Exact with resourceVersion=0 is 422 with details.causes",
            source: "apimachinery pkg/apis/meta/internalversion/validation/validation.go ValidateListOptions; apiserver handlers/get.go errors.NewInvalid(ListOptions)",
            check: { c in
                let a = try await c.call("GET", cms, [("resourceVersion", "0"), ("resourceVersionMatch", "Exact")])
                #expect(a.status == 422)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"","reason":"Invalid","details":{"group":"meta.k8s.io","kind":"ListOptions","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"","field":"resourceVersionMatch"}]},"code":422}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "sendInitialEvents without resourceVersionMatch=NotOlderThan is 422 with details.causes",
            source: "apimachinery validation.go validateWatchOptions",
            check: { c in
                let a = try await c.call("GET", cms, [("watch", "1"), ("sendInitialEvents", "true")])
                #expect(a.status == 422)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan","reason":"Invalid","details":{"group":"meta.k8s.io","kind":"ListOptions","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan","field":"resourceVersionMatch"}]},"code":422}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "several option errors are aggregated in one 422",
            source: "apimachinery validation.go ValidateListOptions; utilerrors.NewAggregate",
            check: { c in
                let a = try await c.call("GET", cms, [("resourceVersionMatch", "Sometimes"), ("sendInitialEvents", "true")])
                #expect(a.status == 422)
                #expect(a.json["message"] == .string(#"ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Unsupported value: "Sometimes": supported values: "Exact", "NotOlderThan", "", sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list]"#))
                #expect(a.json["details"]?["causes"]?.arrayValue?.count == 3)
            }),
        ConformanceRow(
            behaviour: "LIST with resourceVersion=0 is served from the cache and ignores limit",
            source: "apiserver pkg/storage/cacher/cacher.go computeListLimit (Limit ignored for ResourceVersion \"0\")",
            check: { c in
                for i in 0..<5 { try await c.configMap("cm\(i)") }
                let a = try await c.call("GET", cms, [("resourceVersion", "0"), ("limit", "2")])
                #expect(a.json["items"]?.arrayValue?.count == 5)
                #expect(a.json["metadata"]?["continue"] == nil)
            }),
        ConformanceRow(
            behaviour: "LIST pages carry a continue token of {v, rv, start} and remainingItemCount without selectors",
            source: "apiserver pkg/storage/continue.go EncodeContinue / PrepareContinueToken",
            check: { c in
                for i in 0..<5 { try await c.configMap("cm\(i)") }
                let a = try await c.call("GET", cms, [("limit", "2")])
                #expect(a.json["items"]?.arrayValue?.map(\.name) == ["cm0", "cm1"])
                #expect(a.json["metadata"]?["remainingItemCount"] == .int(3))
                var token = a.json["metadata"]?["continue"]?.stringValue ?? ""
                #expect(!token.contains("=") && !token.contains("+"))
                token = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
                while token.count % 4 != 0 { token += "=" }
                let decoded = parse(String(decoding: Data(base64Encoded: token) ?? Data(), as: UTF8.self))
                #expect(decoded == .object(["v": .string("meta.k8s.io/v1"), "rv": .int(Int(a.json["metadata"]?["resourceVersion"]?.stringValue ?? "") ?? 0),
                                            "start": .string("cm1\u{0}")]))
                // Across namespaces the key is `namespace/name`.
                let all = try await c.call("GET", "/api/v1/configmaps", [("limit", "1")])
                var allToken = all.json["metadata"]?["continue"]?.stringValue ?? ""
                allToken = allToken.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
                while allToken.count % 4 != 0 { allToken += "=" }
                #expect(parse(String(decoding: Data(base64Encoded: allToken) ?? Data(), as: UTF8.self))["start"] == .string("default/cm0\u{0}"))
                let labelled = try await c.call("GET", cms, [("limit", "2"), ("labelSelector", "!missing")])
                #expect(labelled.json["metadata"]?["remainingItemCount"] == nil && labelled.json["metadata"]?["continue"] != nil)
            }),
        ConformanceRow(
            behaviour: "later pages are served as of the first page's resourceVersion",
            source: "apiserver pkg/storage/etcd3/store.go GetList (continue: read at the token's revision)",
            check: { c in
                for i in 0..<3 { try await c.configMap("cm\(i)") }
                let first = try await c.call("GET", cms, [("limit", "1")])
                try await c.configMap("cm9")
                let rest = try await c.call("GET", cms, [("limit", "10"), ("continue", first.json["metadata"]?["continue"]?.stringValue ?? "")])
                #expect(rest.json["items"]?.arrayValue?.map(\.name) == ["cm1", "cm2"])
                #expect(rest.json["metadata"]?["resourceVersion"] == first.json["metadata"]?["resourceVersion"])
            }),
        ConformanceRow(
            behaviour: "LIST with resourceVersionMatch=Exact, or with limit and an older resourceVersion, is served as of that resourceVersion",
            source: "apiserver pkg/storage/cacher/delegator.go shouldDelegateList (Exact and legacy exact match go to storage at that revision)",
            check: { c in
                let rv = try await c.configMap("first")
                try await c.configMap("second")
                _ = try await c.call("DELETE", "\(cms)/first")
                for query in [[("resourceVersion", String(rv)), ("resourceVersionMatch", "Exact")], [("resourceVersion", String(rv)), ("limit", "10")]] {
                    let a = try await c.call("GET", cms, query)
                    #expect(a.json["items"]?.arrayValue?.map(\.name) == ["first"], "\(query)")
                    #expect(a.json["metadata"]?["resourceVersion"] == .string(String(rv)))
                }
                // Without limit or Exact, an older resourceVersion means "not older than": the latest state.
                let latest = try await c.call("GET", cms, [("resourceVersion", String(rv))])
                #expect(latest.json["items"]?.arrayValue?.map(\.name) == ["second"])
            }),
        ConformanceRow(
            behaviour: "LIST Exact at a compacted resourceVersion is 410 Expired",
            source: "apiserver pkg/storage/etcd3/errors.go interpretListError (The resourceVersion for the provided list is too old.)",
            check: { c in
                let rv = try await c.configMap("a")
                try await c.configMap("b")
                await c.cluster.compactHistory()
                let a = try await c.call("GET", cms, [("resourceVersion", String(rv)), ("resourceVersionMatch", "Exact")])
                #expect(a.status == 410)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The resourceVersion for the provided list is too old.","reason":"Expired","code":410}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "an expired continue token is 410 with a fresh token in the Status's metadata",
            source: "apiserver pkg/storage/etcd3/errors.go handleCompactedErrorForPaging",
            check: { c in
                for i in 0..<3 { try await c.configMap("cm\(i)") }
                let first = try await c.call("GET", cms, [("limit", "1")])
                try await c.configMap("cm9")
                await c.cluster.compactHistory()
                let a = try await c.call("GET", cms, [("limit", "1"), ("continue", first.json["metadata"]?["continue"]?.stringValue ?? "")])
                #expect(a.status == 410)
                #expect(a.json["reason"] == .string("Expired"))
                #expect(a.json["message"]?.stringValue?.hasPrefix("The provided continue parameter is too old to display a consistent list result.") == true)
                #expect(a.json["metadata"]?["continue"]?.stringValue?.isEmpty == false)
            }),
        ConformanceRow(
            behaviour: "LIST from a resourceVersion ahead of the store waits, then 504 with ResourceVersionTooLarge and Retry-After",
            source: "apiserver pkg/storage/cacher/watch_cache.go waitUntilFreshAndBlock (blockTimeout 3 s); storage/errors.go NewTooLargeResourceVersionError",
            check: { c in
                let now = try await c.currentRV()
                let a = try await c.call("GET", cms, [("resourceVersion", String(now + 100))])
                #expect(a.status == 504)
                #expect(a.head.header("Retry-After") == "1")
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: Too large resource version: \#(now + 100), current: \#(now)","reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "LIST from a resourceVersion just ahead succeeds once the store catches up",
            source: "apiserver pkg/storage/cacher/watch_cache.go waitUntilFreshAndBlock (w.cond.Wait until resourceVersion)",
            check: { c in
                let now = try await c.currentRV()
                async let listed = c.call("GET", cms, [("resourceVersion", String(now + 1))])
                await c.cluster.waitForListWaiters(1)
                try await c.configMap("late")
                let a = try await listed
                #expect(a.status == 200)
                #expect(a.json["items"]?.arrayValue?.map(\.name) == ["late"])
            }),
        ConformanceRow(
            behaviour: "field labels are per kind; events select on involvedObject.*",
            source: "kubernetes pkg/registry/core/event/strategy.go ToSelectableFields; pkg/apis/core/v1/conversion.go AddFieldLabelConversionsForEvent",
            check: { c in
                _ = try await c.call("POST", "/api/v1/namespaces/default/events", body: #"{"metadata":{"name":"e1"},"involvedObject":{"kind":"Secret","name":"s","namespace":"default","uid":"u1"},"reason":"R","message":"m"}"#)
                _ = try await c.call("POST", "/api/v1/namespaces/default/events", body: #"{"metadata":{"name":"e2"},"involvedObject":{"kind":"Secret","name":"t","namespace":"default"},"reason":"R","message":"m"}"#)
                let byObject = try await c.call("GET", "/api/v1/namespaces/default/events", [("fieldSelector", "involvedObject.uid=u1,involvedObject.kind=Secret,involvedObject.name=s,involvedObject.namespace=default")])
                #expect(byObject.json["items"]?.arrayValue?.map(\.name) == ["e1"])
                let v1 = try await c.call("GET", "/apis/events.k8s.io/v1/namespaces/default/events", [("fieldSelector", "regarding.name=t")])
                #expect(v1.json["items"]?.arrayValue?.map(\.name) == ["e2"])
                let unsupported = try await c.call("GET", cms, [("fieldSelector", "involvedObject.name=s")])
                #expect(unsupported.status == 400 && unsupported.json["message"] == .string("field label not supported: involvedObject.name"))
            }),
    ]

    // MARK: writes

    static let writeRows: [ConformanceRow] = [
        ConformanceRow(
            behaviour: "Status bodies in metav1.Status field order with details name/group/kind",
            source: "apimachinery pkg/apis/meta/v1/types.go Status; pkg/api/errors/errors.go NewNotFound",
            check: { c in
                let a = try await c.call("GET", "/api/v1/namespaces/default/secrets/missing")
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"secrets"},"code":404}"# + "\n")
                let b = try await c.call("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/missing")
                #expect(b.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"roles.rbac.authorization.k8s.io \"missing\" not found","reason":"NotFound","details":{"name":"missing","group":"rbac.authorization.k8s.io","kind":"roles"},"code":404}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "dryRun=All answers as if done: 201 with uid, no resourceVersion, nothing stored",
            source: "apiserver pkg/registry/generic/registry/dryrun.go DryRunnableStorage.Create; handlers/create.go",
            check: { c in
                let before = try await c.currentRV()
                let a = try await c.call("POST", cms, [("dryRun", "All")], body: #"{"metadata":{"name":"dry"},"data":{"k":"v"}}"#)
                #expect(a.status == 201)
                #expect(a.json["metadata"]?["uid"]?.stringValue?.isEmpty == false)
                #expect(a.json["metadata"]?["resourceVersion"] == nil)
                #expect(try await c.call("GET", "\(cms)/dry").status == 404)
                #expect(try await c.currentRV() == before)
                let bad = try await c.call("POST", cms, [("dryRun", "Sometimes")], body: #"{"metadata":{"name":"dry"}}"#)
                #expect(bad.status == 422 && bad.json["message"] == .string(#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Sometimes"}: supported values: "All""#))
            }),
        ConformanceRow(
            behaviour: "a dry-run update or delete changes nothing",
            source: "apiserver pkg/registry/generic/registry/dryrun.go GuaranteedUpdate / Delete with dryRun",
            check: { c in
                try await c.configMap("keep")
                let before = try await c.currentRV()
                let u = try await c.call("PATCH", "\(cms)/keep", [("dryRun", "All")], body: #"{"data":{"k":"changed"}}"#, contentType: "application/merge-patch+json")
                #expect(u.status == 200 && u.json["data"]?["k"] == .string("changed") && u.json.resourceVersion == String(before))
                let d = try await c.call("DELETE", "\(cms)/keep", [("dryRun", "All")])
                #expect(d.status == 200)
                let still = try await c.call("GET", "\(cms)/keep")
                #expect(still.json["data"]?["k"] == .string("keep"))
                #expect(try await c.currentRV() == before)
            }),
        ConformanceRow(
            behaviour: "a merge patch that removes the last label leaves no labels",
            source: "apimachinery pkg/apis/meta/v1/types.go ObjectMeta (labels,omitempty)",
            check: { c in
                try await c.configMap("l", labels: ["a": "1"])
                let a = try await c.call("PATCH", "\(cms)/l", body: #"{"metadata":{"labels":{"a":null}}}"#, contentType: "application/merge-patch+json")
                #expect(a.status == 200)
                #expect(a.json["metadata"]?.objectValue?.keys.contains("labels") == false)
            }),
        ConformanceRow(
            behaviour: "a failing delete precondition names the Kind, with details name/kind",
            source: "apiserver pkg/registry/rest/delete.go BeforeDelete",
            check: { c in
                let s = try await c.admin.create(Secret(metadata: ObjectMeta(name: "x", namespace: "default")))
                let rv = s.metadata.resourceVersion ?? ""
                let a = try await c.call("DELETE", "/api/v1/namespaces/default/secrets/x", body: #"{"preconditions":{"resourceVersion":"1"}}"#)
                #expect(a.status == 409)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on Secret \"x\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (\#(rv)). The object might have been modified","reason":"Conflict","details":{"name":"x","kind":"Secret"},"code":409}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "deleting a Secret answers a success Status; a Pod or ServiceAccount answers the object",
            source: "apiserver pkg/registry/generic/registry/store.go finalizeDelete (ReturnDeletedObject)",
            check: { c in
                let s = try await c.admin.create(Secret(metadata: ObjectMeta(name: "gone", namespace: "default")))
                let a = try await c.call("DELETE", "/api/v1/namespaces/default/secrets/gone")
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"gone","kind":"secrets","uid":"\#(s.metadata.uid ?? "")"}}"# + "\n")
                _ = try await c.admin.create(ServiceAccount(metadata: ObjectMeta(name: "sa", namespace: "default")))
                let b = try await c.call("DELETE", "/api/v1/namespaces/default/serviceaccounts/sa")
                #expect(b.json["kind"] == .string("ServiceAccount"))
            }),
        ConformanceRow(
            behaviour: "a delete held by finalizers answers 200 with deletionTimestamp and deletionGracePeriodSeconds 0",
            source: "apiserver pkg/registry/generic/registry/store.go updateForGracefulDeletionAndFinalizers / markAsDeleting",
            check: { c in
                _ = try await c.call("POST", cms, body: #"{"metadata":{"name":"held","finalizers":["example.com/keep"]}}"#)
                let a = try await c.call("DELETE", "\(cms)/held")
                #expect(a.status == 200)
                #expect(a.json["metadata"]?["deletionTimestamp"]?.stringValue != nil)
                #expect(a.json["metadata"]?["deletionGracePeriodSeconds"] == .int(0))
                // Removing the last finalizer completes the deletion.
                _ = try await c.call("PATCH", "\(cms)/held", body: #"{"metadata":{"finalizers":null}}"#, contentType: "application/merge-patch+json")
                #expect(try await c.call("GET", "\(cms)/held").status == 404)
            }),
        ConformanceRow(
            behaviour: "a failing JSON patch test is a bare 422",
            source: "apiserver pkg/endpoints/handlers/patch.go applyJSPatch → errors.NewGenericServerResponse(422)",
            check: { c in
                try await c.configMap("p")
                let a = try await c.call("PATCH", "\(cms)/p", body: #"[{"op":"test","path":"/metadata/resourceVersion","value":"1"},{"op":"replace","path":"/data/k","value":"x"}]"#,
                                         contentType: "application/json-patch+json")
                #expect(a.status == 422)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server rejected our request due to an error in our request","reason":"Invalid","details":{},"code":422}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "a body of another kind cannot be handled as the endpoint's kind",
            source: "apiserver pkg/endpoints/handlers/rest.go transformDecodeError; apimachinery conversion/converter.go",
            check: { c in
                let a = try await c.call("POST", "/api/v1/namespaces/default/secrets", body: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#)
                #expect(a.status == 400)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"ConfigMap in version \"v1\" cannot be handled as a Secret: converting (v1.ConfigMap) to (core.Secret): unknown conversion","reason":"BadRequest","code":400}"# + "\n")
            }),
        ConformanceRow(
            behaviour: "MicroTime fields (Lease renewTime, Event eventTime) take exactly six fractional digits",
            source: "apimachinery pkg/apis/meta/v1/micro_time.go MicroTime.UnmarshalJSON (time.Parse with RFC3339Micro); apiserver handlers/rest.go transformDecodeError",
            check: { c in
                let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
                let millis = try await c.call("POST", leases, body: #"{"metadata":{"name":"l"},"spec":{"holderIdentity":"a","renewTime":"2026-12-06T08:33:43.215Z"}}"#)
                #expect(millis.status == 400)
                #expect(millis.json["message"] == .string(#"Lease in version "v1" cannot be handled as a Lease: parsing time "2026-12-06T08:33:43.215Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".215Z" as ".000000""#))
                let micros = try await c.call("POST", leases, body: #"{"metadata":{"name":"l"},"spec":{"holderIdentity":"a","renewTime":"\#(RFC3339.formatMicro(Date()))"}}"#)
                #expect(micros.status == 201, "\(micros.text)")
                let event = try await c.call("POST", "/apis/events.k8s.io/v1/namespaces/default/events",
                                             body: #"{"metadata":{"name":"e"},"eventTime":"2026-12-06T08:33:43Z","reportingController":"x","reportingInstance":"y","action":"A","reason":"R","type":"Normal","regarding":{"kind":"Secret","name":"s","namespace":"default"}}"#)
                #expect(event.status == 400 && event.json["message"]?.stringValue?.hasPrefix(#"Event in version "v1" cannot be handled as a Event: parsing time"#) == true)
            }),
        ConformanceRow(
            behaviour: "deletecollection deletes what the selector lists and answers that list",
            source: "apiserver pkg/registry/generic/registry/store.go DeleteCollection; handlers/delete.go DeleteCollection",
            check: { c in
                try await c.configMap("a", labels: ["tier": "x"])
                try await c.configMap("b", labels: ["tier": "x"])
                try await c.configMap("c")
                let a = try await c.call("DELETE", cms, [("labelSelector", "tier=x")])
                #expect(a.status == 200)
                #expect(a.json["kind"] == .string("ConfigMapList"))
                #expect(a.json["items"]?.arrayValue?.map(\.name) == ["a", "b"])
                let left = try await c.call("GET", cms)
                #expect(left.json["items"]?.arrayValue?.map(\.name) == ["c"])
            }),
        ConformanceRow(
            behaviour: "server-side apply creates, records an Apply entry, and removes what the manager stopped applying",
            source: "apiserver handlers/patch.go applyPatcher; apimachinery pkg/util/managedfields/internal/structuredmerge.go Apply",
            check: { c in
                let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    a: \"1\"\n    b: \"2\"\ndata:\n  k: v\n"
                let created = try await c.call("PATCH", "\(cms)/ssa", [("fieldManager", "me")], body: doc, contentType: "application/apply-patch+yaml")
                #expect(created.status == 201)
                let entry = created.json["metadata"]?["managedFields"]?.arrayValue?.first
                #expect(entry?["manager"] == .string("me") && entry?["operation"] == .string("Apply") && entry?["fieldsType"] == .string("FieldsV1"))
                #expect(entry?["fieldsV1"] == parse(#"{"f:data":{"f:k":{}},"f:metadata":{"f:labels":{"f:a":{},"f:b":{}}}}"#))
                let again = try await c.call("PATCH", "\(cms)/ssa", [("fieldManager", "me")], body: doc.replacingOccurrences(of: "    b: \"2\"\n", with: ""),
                                             contentType: "application/apply-patch+yaml")
                #expect(again.status == 200)
                #expect(again.json["metadata"]?["labels"] == parse(#"{"a":"1"}"#))
                let missing = try await c.call("PATCH", "\(cms)/ssa", body: doc, contentType: "application/apply-patch+yaml")
                #expect(missing.status == 422 && missing.json["message"] == .string(#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#))
            }),
        ConformanceRow(
            behaviour: "JSON bodies end with a newline",
            source: "apimachinery pkg/runtime/serializer/json/json.go Serializer.Encode (json.Encoder.Encode)",
            check: { c in
                let list = try await c.call("GET", cms)
                let missing = try await c.call("GET", "\(cms)/missing")
                #expect(list.text.hasSuffix("]}\n") && missing.text.hasSuffix("}\n"))
            }),
        ConformanceRow(
            behaviour: "strategic merge patches merge keyed lists (Service ports by port, container ports by containerPort) and keep no directives",
            source: "apimachinery pkg/util/strategicpatch/patch.go; k8s.io/api core/v1 types.go patchMergeKey tags",
            check: { c in
                _ = try await c.call("POST", "/api/v1/namespaces/default/services", body: #"{"metadata":{"name":"s"},"spec":{"ports":[{"name":"a","port":80}]}}"#)
                let svc = try await c.call("PATCH", "/api/v1/namespaces/default/services/s", body: #"{"spec":{"$setElementOrder/ports":[{"port":80},{"port":81}],"ports":[{"name":"b","port":81}]}}"#,
                                           contentType: "application/strategic-merge-patch+json")
                #expect(svc.json["spec"]?["ports"]?.arrayValue?.map { $0["port"] } == [.int(80), .int(81)])
                #expect(!svc.text.contains("$setElementOrder"))
                _ = try await c.call("POST", pods, body: #"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80}]}]}}"#)
                let deployments = "/apis/apps/v1/namespaces/default/deployments"
                _ = try await c.call("POST", deployments, body: #"{"metadata":{"name":"e"},"spec":{"selector":{"matchLabels":{"app":"e"}},"template":{"metadata":{"labels":{"app":"e"}},"spec":{"containers":[{"name":"c","image":"nginx","env":[{"name":"B","value":"2"}]}]}}}}"#)
                let ordered = try await c.call("PATCH", "\(deployments)/e", body: #"{"spec":{"template":{"spec":{"containers":[{"name":"c","$setElementOrder/env":[{"name":"A"},{"name":"B"}],"env":[{"name":"A","value":"1"}]}]}}}}"#,
                                               contentType: "application/strategic-merge-patch+json")
                let env = ordered.json["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["env"]?.arrayValue
                #expect(env?.compactMap { $0["name"]?.stringValue } == ["A", "B"], "\(ordered.text)")
                let pod = try await c.call("PATCH", "\(pods)/p", body: #"{"metadata":{"labels":{"x":"1"},"finalizers":["a/b"]}}"#, contentType: "application/strategic-merge-patch+json")
                #expect(pod.json["metadata"]?["finalizers"] == parse(#"["a/b"]"#))
                let deleted = try await c.call("DELETE", "/api/v1/namespaces/default/services/s")
                #expect(deleted.json["kind"] == .string("Service"), "services/storage sets ReturnDeletedObject")
            }),
        ConformanceRow(
            behaviour: "re-applying an unchanged Deployment server-side is no conflict, defaulted fields included",
            source: "apimachinery pkg/util/managedfields (listMapKeys: container ports by containerPort)",
            check: { c in
                let path = "/apis/apps/v1/namespaces/default/deployments/web"
                let doc = #"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27","ports":[{"containerPort":80}]}]}}}}"#
                let first = try await c.call("PATCH", path, [("fieldManager", "python-client")], body: doc, contentType: "application/apply-patch+yaml")
                #expect(first.status == 201, "\(first.text)")
                let again = try await c.call("PATCH", path, [("fieldManager", "python-client")], body: doc, contentType: "application/apply-patch+yaml")
                #expect(again.status == 200, "\(again.text)")
                #expect(again.json.resourceVersion == first.json.resourceVersion, "a no-op apply writes nothing")
                #expect(again.json["metadata"]?["generation"] == .int(1))
                let other = try await c.call("PATCH", path, [("fieldManager", "someone-else")], body: doc.replacingOccurrences(of: "nginx:1.27", with: "nginx:1.28"),
                                             contentType: "application/apply-patch+yaml")
                #expect(other.status == 409)
                #expect(other.json["message"] == .string(#"Apply failed with 1 conflict: conflict with "python-client": .spec.template.spec.containers[name="nginx"].image"#))
            }),
        ConformanceRow(
            behaviour: "server-side apply refuses to change another manager's field unless forced",
            source: "apimachinery pkg/util/managedfields/internal/conflict.go NewConflictError",
            check: { c in
                _ = try await c.call("POST", cms, [("fieldManager", "editor")], body: #"{"metadata":{"name":"owned"},"data":{"k":"mine"}}"#)
                let doc = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"owned"},"data":{"k":"theirs"}}"#
                let a = try await c.call("PATCH", "\(cms)/owned", [("fieldManager", "applier")], body: doc, contentType: "application/apply-patch+yaml")
                #expect(a.status == 409)
                #expect(a.text == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.k","reason":"Conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"editor\" using v1","field":".data.k"}]},"code":409}"# + "\n")
                let forced = try await c.call("PATCH", "\(cms)/owned", [("fieldManager", "applier"), ("force", "true")], body: doc, contentType: "application/apply-patch+yaml")
                #expect(forced.status == 200 && forced.json["data"]?["k"] == .string("theirs"))
                let nonApplyForce = try await c.call("PATCH", "\(cms)/owned", [("force", "true")], body: "{}", contentType: "application/merge-patch+json")
                #expect(nonApplyForce.status == 422)
            }),
    ]

    // MARK: kinds

    static let kindRows: [ConformanceRow] = [
        ConformanceRow(
            behaviour: "a Pod is created Pending with the defaults; the main resource ignores status, pods/status ignores spec",
            source: "kubernetes pkg/registry/core/pod/strategy.go PrepareForCreate/PrepareForUpdate, podStatusStrategy; pkg/apis/core/v1/defaults.go",
            check: { c in
                let a = try await c.call("POST", pods, body: #"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"phase":"Running"}}"#)
                #expect(a.status == 201)
                #expect(a.json["status"] == parse(#"{"phase":"Pending","qosClass":"BestEffort"}"#))
                let spec = a.json["spec"]
                #expect(spec?["restartPolicy"] == .string("Always") && spec?["dnsPolicy"] == .string("ClusterFirst") && spec?["schedulerName"] == .string("default-scheduler"))
                #expect(spec?["serviceAccountName"] == .string("default") && spec?["terminationGracePeriodSeconds"] == .int(30))
                #expect(spec?["containers"]?.arrayValue?.first?["imagePullPolicy"] == .string("Always"))
                #expect(spec?["containers"]?.arrayValue?.first?["terminationMessagePath"] == .string("/dev/termination-log"))
                #expect(spec?["tolerations"]?.arrayValue?.count == 2)
                let main = try await c.call("PATCH", "\(pods)/p", body: #"{"status":{"phase":"Running"}}"#, contentType: "application/merge-patch+json")
                #expect(main.json["status"]?["phase"] == .string("Pending"))
                let status = try await c.call("PATCH", "\(pods)/p/status", body: #"{"status":{"phase":"Running"},"spec":{"schedulerName":"other"}}"#,
                                              contentType: "application/merge-patch+json")
                #expect(status.json["status"]?["phase"] == .string("Running"))
                #expect(status.json["spec"]?["schedulerName"] == .string("default-scheduler"))
                let forbidden = try await c.call("PATCH", "\(pods)/p", body: #"{"spec":{"restartPolicy":"Never"}}"#, contentType: "application/merge-patch+json")
                #expect(forbidden.status == 422)
            }),
        ConformanceRow(
            behaviour: "a Pod gets its ServiceAccount's imagePullSecrets and the kube-api-access volume",
            source: "kubernetes plugin/pkg/admission/serviceaccount/admission.go Admit (imagePullSecrets, mountServiceAccountToken)",
            check: { c in
                _ = try await c.admin.create(ServiceAccount(metadata: ObjectMeta(name: "puller", namespace: "default"), imagePullSecrets: [LocalObjectReference(name: "reg")]))
                let a = try await c.call("POST", pods, body: #"{"metadata":{"name":"p"},"spec":{"serviceAccountName":"puller","containers":[{"name":"c","image":"nginx:1.27"}]}}"#)
                #expect(a.json["spec"]?["imagePullSecrets"] == parse(#"[{"name":"reg"}]"#))
                #expect(a.json["spec"]?["containers"]?.arrayValue?.first?["imagePullPolicy"] == .string("IfNotPresent"))
                let volume = a.json["spec"]?["volumes"]?.arrayValue?.first
                #expect(volume?.name.hasPrefix("kube-api-access-") == true || volume?["name"]?.stringValue?.hasPrefix("kube-api-access-") == true)
                #expect(a.json["spec"]?["containers"]?.arrayValue?.first?["volumeMounts"]?.arrayValue?.first?["mountPath"] == .string("/var/run/secrets/kubernetes.io/serviceaccount"))
            }),
        ConformanceRow(
            behaviour: "core/v1 and events.k8s.io/v1 Events are one storage",
            source: "kubernetes pkg/registry/events/rest/storage_events.go; pkg/apis/events/v1/conversion.go",
            check: { c in
                let a = try await c.call("POST", "/apis/events.k8s.io/v1/namespaces/default/events",
                                         body: #"{"metadata":{"name":"ev"},"eventTime":"2026-12-06T10:00:00.000000Z","reportingController":"kubetrace.net/operator","reportingInstance":"op-1","action":"Repair","reason":"PullSecretRepaired","note":"recreated","type":"Normal","regarding":{"kind":"Secret","name":"kubetrace-registry","namespace":"default"}}"#)
                #expect(a.status == 201)
                let core = try await c.call("GET", "/api/v1/namespaces/default/events/ev")
                #expect(core.json["apiVersion"] == .string("v1"))
                #expect(core.json["message"] == .string("recreated") && core.json["involvedObject"]?["name"] == .string("kubetrace-registry"))
                #expect(core.json["reportingComponent"] == .string("kubetrace.net/operator"))
                let back = try await c.call("GET", "/apis/events.k8s.io/v1/namespaces/default/events/ev")
                #expect(back.json["note"] == .string("recreated") && back.json["regarding"]?["name"] == .string("kubetrace-registry"))
            }),
        ConformanceRow(
            behaviour: "Deployments: defaults, generation bumped by spec changes only, status and scale subresources",
            source: "kubernetes pkg/apis/apps/v1/defaults.go SetDefaults_Deployment; pkg/registry/apps/deployment/strategy.go; storage/storage.go ScaleREST",
            check: { c in
                let path = "/apis/apps/v1/namespaces/default/deployments"
                let d = #"{"metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#
                let a = try await c.call("POST", path, body: d)
                #expect(a.status == 201)
                #expect(a.json["metadata"]?["generation"] == .int(1))
                #expect(a.json["spec"]?["replicas"] == .int(1) && a.json["spec"]?["revisionHistoryLimit"] == .int(10) && a.json["spec"]?["progressDeadlineSeconds"] == .int(600))
                #expect(a.json["spec"]?["strategy"] == parse(#"{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}}"#))
                let status = try await c.call("PATCH", "\(path)/web/status", body: #"{"status":{"replicas":1}}"#, contentType: "application/merge-patch+json")
                #expect(status.json["metadata"]?["generation"] == .int(1) && status.json["status"]?["replicas"] == .int(1))
                let scale = try await c.call("GET", "\(path)/web/scale")
                #expect(scale.json["kind"] == .string("Scale") && scale.json["apiVersion"] == .string("autoscaling/v1"))
                #expect(scale.json["spec"]?["replicas"] == .int(1) && scale.json["status"]?["selector"] == .string("app=web"))
                let scaled = try await c.call("PATCH", "\(path)/web/scale", body: #"{"spec":{"replicas":3}}"#, contentType: "application/merge-patch+json")
                #expect(scaled.json["spec"]?["replicas"] == .int(3))
                let after = try await c.call("GET", "\(path)/web")
                #expect(after.json["spec"]?["replicas"] == .int(3) && after.json["metadata"]?["generation"] == .int(2))
                let mismatch = try await c.call("POST", path, body: d.replacingOccurrences(of: #""name":"web"}"#, with: #""name":"other"}"#)
                    .replacingOccurrences(of: #"{"labels":{"app":"web"}}"#, with: #"{"labels":{"app":"db"}}"#))
                #expect(mismatch.status == 422)
                #expect(mismatch.json["message"]?.stringValue?.contains("`selector` does not match template `labels`") == true)
            }),
        ConformanceRow(
            behaviour: "ReplicaSets: defaults, status.replicas 0, generation",
            source: "kubernetes pkg/apis/apps/v1/defaults.go SetDefaults_ReplicaSet; pkg/registry/apps/replicaset/strategy.go",
            check: { c in
                let a = try await c.call("POST", "/apis/apps/v1/namespaces/default/replicasets",
                                         body: #"{"metadata":{"name":"rs"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#)
                #expect(a.status == 201)
                #expect(a.json["status"] == parse(#"{"replicas":0}"#) && a.json["spec"]?["replicas"] == .int(1) && a.json["metadata"]?["generation"] == .int(1))
            }),
        ConformanceRow(
            behaviour: "Services get a cluster IP and the defaults",
            source: "kubernetes pkg/apis/core/v1/defaults.go SetDefaults_Service; pkg/registry/core/service/storage/alloc.go",
            check: { c in
                let a = try await c.call("POST", "/api/v1/namespaces/default/services",
                                         body: #"{"metadata":{"name":"svc"},"spec":{"selector":{"app":"web"},"ports":[{"name":"metrics","port":8080}]}}"#)
                #expect(a.status == 201)
                let spec = a.json["spec"]
                #expect(spec?["type"] == .string("ClusterIP") && spec?["sessionAffinity"] == .string("None"))
                #expect(spec?["clusterIP"]?.stringValue?.hasPrefix("10.96.") == true && spec?["clusterIPs"]?.arrayValue?.count == 1)
                #expect(spec?["ports"] == parse(#"[{"name":"metrics","port":8080,"protocol":"TCP","targetPort":8080}]"#))
                #expect(spec?["ipFamilies"] == parse(#"["IPv4"]"#) && spec?["ipFamilyPolicy"] == .string("SingleStack"))
                #expect(a.json["status"] == parse(#"{"loadBalancer":{}}"#))
                #expect(a.json["metadata"]?["generation"] == nil)
                let moved = try await c.call("PATCH", "/api/v1/namespaces/default/services/svc", body: #"{"spec":{"clusterIP":"10.96.200.200"}}"#,
                                             contentType: "application/merge-patch+json")
                #expect(moved.status == 422 && moved.json["message"]?.stringValue?.hasSuffix("may not change once set") == true, "\(moved.text)")
            }),
        ConformanceRow(
            behaviour: "ValidatingAdmissionPolicy and binding are stored with their defaults",
            source: "kubernetes pkg/apis/admissionregistration/v1/defaults.go; pkg/registry/admissionregistration/validatingadmissionpolicy/strategy.go",
            check: { c in
                let a = try await c.call("POST", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
                                         body: #"{"metadata":{"name":"p"},"spec":{"matchConstraints":{"resourceRules":[{"apiGroups":[""],"apiVersions":["v1"],"operations":["CREATE"],"resources":["secrets"]}]},"validations":[{"expression":"true"}]}}"#)
                #expect(a.status == 201)
                #expect(a.json["spec"]?["failurePolicy"] == .string("Fail"))
                #expect(a.json["spec"]?["matchConstraints"]?["matchPolicy"] == .string("Equivalent"))
                #expect(a.json["spec"]?["matchConstraints"]?["resourceRules"]?.arrayValue?.first?["scope"] == .string("*"))
                #expect(a.json["metadata"]?["generation"] == .int(1))
                let b = try await c.call("POST", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
                                         body: #"{"metadata":{"name":"b"},"spec":{"policyName":"p","validationActions":["Deny"]}}"#)
                #expect(b.status == 201)
                let missing = try await c.call("POST", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings", body: #"{"metadata":{"name":"c"},"spec":{}}"#)
                #expect(missing.status == 422)
            }),
        ConformanceRow(
            behaviour: "a CustomResourceDefinition is Established and serves its custom resources and discovery",
            source: "apiextensions-apiserver pkg/controller/status/naming_controller.go, pkg/controller/establish; pkg/apis/apiextensions/v1/defaults.go",
            check: { c in
                let crd = #"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},"spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"widgets","kind":"Widget"},"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#
                let a = try await c.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: crd)
                #expect(a.status == 201)
                #expect(a.json["status"]?["conditions"]?.arrayValue?.map { $0["type"]?.stringValue ?? "" } == ["NamesAccepted", "Established"])
                #expect(a.json["status"]?["acceptedNames"]?["listKind"] == .string("WidgetList"))
                let discovery = try await c.call("GET", "/apis/example.com/v1")
                #expect(discovery.json["resources"]?.arrayValue?.first?["kind"] == .string("Widget"))
                let w = try await c.call("POST", "/apis/example.com/v1/namespaces/default/widgets", body: #"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":3}}"#)
                #expect(w.status == 201 && w.json["metadata"]?["generation"] == .int(1))
                let list = try await c.call("GET", "/apis/example.com/v1/namespaces/default/widgets")
                #expect(list.json["kind"] == .string("WidgetList") && list.json["items"]?.arrayValue?.count == 1)
                // Updating the CRD (a short name, a status subresource) keeps its resources.
                let updated = try await c.call("PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
                                               body: #"{"spec":{"names":{"shortNames":["wd"]},"versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#,
                                               contentType: "application/merge-patch+json")
                #expect(updated.status == 200 && updated.json["metadata"]?["generation"] == .int(2))
                #expect(try await c.call("GET", "/apis/example.com/v1/namespaces/default/widgets/w").status == 200)
                _ = try await c.call("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
                #expect(try await c.call("GET", "/apis/example.com/v1/namespaces/default/widgets").status == 404)
            }),
    ]
}

/// One row at a time: each starts a devcluster, and 46 at once on two cores would starve the
/// real-time tests that run beside this suite.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ConformanceTests {
    @Test(arguments: ConformanceTable.rows)
    func behavesAsKubeAPIServer(row: ConformanceRow) async throws {
        var options = DevCluster.Options()
        row.options(&options)
        try await DevCluster.withRunning(options) { cluster in
            let admin = try await adminClient(cluster)
            try await row.check(Conformance(cluster: cluster, admin: admin))
        }
    }

    /// Every row names where in the real server its behaviour comes from.
    @Test func everyRowHasASource() {
        for row in ConformanceTable.rows {
            #expect(row.source.contains(".go") || row.source.contains("pkg/"), "\(row.behaviour)")
        }
        #expect(Set(ConformanceTable.rows.map(\.behaviour)).count == ConformanceTable.rows.count)
    }
}
