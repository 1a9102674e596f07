import Foundation
import KubeClient
import Synchronization

/// Key of one stored object.
struct ObjectKey: Hashable, Comparable, Sendable {
    var namespace: String
    var name: String
    /// etcd's order: the bytes of `namespace/name` (so `a-b/x` sorts before `a/y`).
    static func < (a: ObjectKey, b: ObjectKey) -> Bool {
        // Names and namespaces are DNS-1123 (ASCII), where String order is byte order.
        if a.namespace == b.namespace { return a.name < b.name }
        let x = a.namespace.utf8, y = b.namespace.utf8
        // Only when one namespace is a prefix of the other does the `/` decide.
        if x.starts(with: y) { return x[x.index(x.startIndex, offsetBy: y.count)] < UInt8(ascii: "/") }
        if y.starts(with: x) { return UInt8(ascii: "/") < y[y.index(y.startIndex, offsetBy: x.count)] }
        return a.namespace < b.namespace
    }
    var path: String { namespace.isEmpty ? name : namespace + "/" + name }
}

/// One change, as a watch would report it.
struct ChangeEvent: Sendable {
    var type: String  // ADDED, MODIFIED, DELETED
    var kind: ResourceKind
    var key: ObjectKey
    var object: JSONValue
    /// The object before a MODIFIED change (for selector transitions).
    var old: JSONValue?
    var resourceVersion: Int
    /// `object` encoded once, shared by every watcher.
    var objectJSON: [UInt8]
}

/// What a write request asks besides its body.
struct WriteOptions: Sendable {
    var user: UserInfo?
    /// `dryRun=All`: the whole write path runs, nothing is stored, no resourceVersion is used.
    var dryRun = false
    /// `fieldManager`, else the User-Agent's product (`handlers/create.go` `managerOrUserAgent`).
    var manager = "unknown"
    /// `force` on a server-side apply.
    var force = false
    /// `status` or nil.
    var subresource: String?
    /// The subresource admission sees when the write goes through the main resource
    /// (`scale` updates `spec.replicas` of the parent): see `admitByPolicies`.
    var admissionSubresource: String?

    init(user: UserInfo? = nil) { self.user = user }
}

/// What a DELETE answers: the object (still held by finalizers, or from a store that returns
/// deleted objects) or a `Status` of success.
enum DeleteResult: Sendable {
    case object(JSONValue)
    case success(Status)
}

/// The devcluster's state: every object of every kind under one global,
/// strictly increasing resourceVersion, with the API server's write semantics
/// (uid, generateName, optimistic concurrency, finalizers, each kind's strategy).
/// Where kube-apiserver's answer depends on the code path, the comment names the file
/// and function in k8s.io/apiserver or kubernetes/pkg/registry it follows; the conformance
/// suite (Tests/KubeSimTests/ConformanceTests.swift) has one row per behaviour.
actor ObjectStore {
    /// Objects by their storage kind (events.k8s.io Events live with core Events).
    private var objects: [ResourceKind: [ObjectKey: JSONValue]] = [:]
    /// Each stored object's JSON, encoded once per change and reused by lists and watches.
    private var encoded: [ResourceKind: [ObjectKey: [UInt8]]] = [:]
    private(set) var resourceVersion = 1
    /// Recent changes (bounded), for watches resumed from a resourceVersion and for lists
    /// served as of an older one.
    private(set) var history: [ChangeEvent] = []
    /// Every change after this resourceVersion is still in `history`.
    private(set) var historyStart: Int
    let historyLimit: Int
    let hub = WatchHub()
    private let now: @Sendable () -> Date
    /// Serve `sendInitialEvents` (the WatchList feature gate: on in 1.32, 1.34 and 1.35).
    let watchListEnabled: Bool
    /// Kinds defined by established CustomResourceDefinitions.
    private(set) var customKinds: [ResourceKind] = []
    /// Requests waiting for the store to reach a resourceVersion.
    private var rvWaiters: [Int: (rv: Int, continuation: CheckedContinuation<Bool, Never>)] = [:]
    private var nextWaiter = 0
    /// How long a request for a resourceVersion ahead of the store waits
    /// (k8s.io/apiserver `pkg/storage/cacher/watch_cache.go` `blockTimeout = 3 * time.Second`).
    let freshnessTimeout: Duration

    init(historyLimit: Int = 10_000, watchListEnabled: Bool = true, freshnessTimeout: Duration = .seconds(3), now: @escaping @Sendable () -> Date = Date.init) {
        self.historyLimit = historyLimit
        self.watchListEnabled = watchListEnabled
        self.freshnessTimeout = freshnessTimeout
        self.now = now
        // The namespaces every cluster starts with (`SetDefaults_Namespace` labels each one).
        var seeded: [ObjectKey: JSONValue] = [:]
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            resourceVersion += 1
            seeded[ObjectKey(namespace: "", name: ns)] = .object([
                "apiVersion": .string("v1"), "kind": .string("Namespace"),
                "metadata": .object(["name": .string(ns), "uid": .string(UUID().uuidString.lowercased()),
                                     "resourceVersion": .string(String(resourceVersion)),
                                     "creationTimestamp": .string(RFC3339.format(now())),
                                     "labels": .object(["kubernetes.io/metadata.name": .string(ns)])]),
                "spec": .object(["finalizers": .array([.string("kubernetes")])]),
                "status": .object(["phase": .string("Active")]),
            ])
        }
        objects[.namespace] = seeded
        historyStart = resourceVersion
    }

    /// Every kind served now: the built-in ones and those of established CRDs. Read by every
    /// request's routing, so it is kept outside the actor (no extra hop per request).
    private let served = Mutex<[ResourceKind]>(ResourceKind.all)
    nonisolated var servedKinds: [ResourceKind] { served.withLock { $0 } }

    /// Where a kind's objects are kept: events.k8s.io/v1 Events are core Events
    /// (pkg/registry/events/rest/storage_events.go serves them from the core event storage);
    /// every served version of a custom resource shares its CRD's storage.
    private func storage(_ kind: ResourceKind) -> ResourceKind {
        if kind == .eventsV1Event { return .coreEvent }
        if kind.custom, let stored = customKinds.first(where: { $0.group == kind.group && $0.plural == kind.plural && $0.storageVersion }) { return stored }
        return kind
    }

    /// A stored object as `kind` presents it.
    private func view(_ obj: JSONValue, as kind: ResourceKind) -> JSONValue {
        if kind == .eventsV1Event { return EventConversion.toEventsV1(obj) }
        if kind.custom, obj["apiVersion"]?.stringValue != kind.apiVersion { var o = obj; o["apiVersion"] = .string(kind.apiVersion); return o }
        return obj
    }

    private func viewJSON(_ kind: ResourceKind, _ key: ObjectKey, _ obj: JSONValue) -> [UInt8] {
        let store = storage(kind)
        if store == kind { return encoded[store]?[key] ?? obj.jsonBytes() }
        return view(obj, as: kind).jsonBytes()
    }

    // MARK: reads

    func get(_ kind: ResourceKind, namespace: String?, name: String) throws(APIError) -> JSONValue {
        guard let obj = objects[storage(kind)]?[ObjectKey(namespace: namespace ?? "", name: name)] else { throw .notFound(kind, name) }
        return view(obj, as: kind)
    }

    /// GET's answer, from the bytes encoded at the last write whenever the kind is served as
    /// stored (no re-encoding per read).
    func getJSON(_ kind: ResourceKind, namespace: String?, name: String) throws(APIError) -> [UInt8] {
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard let obj = objects[storage(kind)]?[key] else { throw .notFound(kind, name) }
        return viewJSON(kind, key, obj)
    }

    struct ListResult {
        /// The items' JSON, encoded.
        var items: [[UInt8]]
        var resourceVersion: Int
        var continueToken: String?
        var remaining: Int?
    }

    /// A LIST, with the resourceVersion semantics of k8s.io/apiserver
    /// `pkg/storage/cacher/delegator.go` `shouldDelegateList` and `pkg/storage/interfaces.go`
    /// `ValidateListOptions`:
    /// - unset: the latest state (a consistent read); `limit` pages through it;
    /// - `0`: the watch cache's state, `limit` ignored (`computeListLimit`);
    /// - N (NotOlderThan, no limit): the latest state once the store has reached N, after
    ///   waiting up to 3 s, else 504 `Too large resource version` (`waitUntilFreshAndBlock`);
    /// - N with `limit` or `resourceVersionMatch=Exact`: exactly as of N, or 410 once compacted;
    /// - continue tokens carry the resourceVersion of the first page (`pkg/storage/continue.go`).
    func list(_ kind: ResourceKind, namespace: String?, selector: Selector, options: ListOptions) async throws(APIError) -> ListResult {
        let store = storage(kind)
        var exactRV: Int?
        var after: ObjectKey?
        if let token = options.continueToken {
            if let rv = options.resourceVersion, !rv.isEmpty, rv != "0" {
                throw APIError.badRequest("specifying resource version is not allowed when using continue")
            }
            let decoded = try ContinueToken.decode(token, namespace: namespace)
            after = decoded.after
            if decoded.resourceVersion > 0 {
                exactRV = decoded.resourceVersion
                if decoded.resourceVersion < historyStart {
                    var e = APIError(410, "Expired", ContinueToken.inconsistentMessage)
                    e.listContinue = ContinueToken.encode(after: decoded.after, namespace: namespace, resourceVersion: -1)
                    throw e
                }
            }
        } else if let rvText = options.resourceVersion, !rvText.isEmpty, rvText != "0" {
            guard let rv = Int(rvText), rv >= 0 else {
                throw APIError.badRequest("invalid resource version: resourceVersion: Invalid value: \"\(rvText)\": strconv.ParseUint: parsing \"\(rvText)\": invalid syntax")
            }
            if options.resourceVersionMatch == "Exact" || (options.resourceVersionMatch == nil && options.limit != nil) {
                // Read from storage at exactly N (etcd3 `store.GetList` with `withRev`).
                if rv < historyStart { throw APIError(410, "Expired", "The resourceVersion for the provided list is too old.") }
                if rv > resourceVersion {
                    // etcd's future-revision answer, as 1.34+ maps it (`NewTooLargeResourceVersionError(withRev, currentRV, 0)`).
                    throw APIError.tooLargeResourceVersion(rv, current: resourceVersion, retryAfter: 0)
                }
                exactRV = rv
            } else if rv > resourceVersion {
                let current = resourceVersion
                guard await waitForResourceVersion(rv) else { throw APIError.tooLargeResourceVersion(rv, current: max(current, resourceVersion), retryAfter: 1) }
            }
        }
        // `computeListLimit`: the watch cache ignores `limit` for rv=0; a continued list is
        // read from storage, which honours it.
        let limit = options.resourceVersion == "0" && options.continueToken == nil ? nil : options.limit
        let listRV = exactRV ?? resourceVersion
        let state: [ObjectKey: JSONValue] = exactRV.map { snapshot(store, at: $0) } ?? (objects[store] ?? [:])
        let all = state
            .filter { key, obj in (namespace == nil || key.namespace == namespace) && (after.map { key > $0 } ?? true) && selector.matches(obj) }
            .sorted { $0.key < $1.key }
        func encode(_ e: (key: ObjectKey, value: JSONValue)) -> [UInt8] {
            exactRV == nil || exactRV == resourceVersion ? viewJSON(kind, e.key, e.value) : view(e.value, as: kind).jsonBytes()
        }
        if let limit, all.count > limit {
            let page = all.prefix(limit)
            let token = ContinueToken.encode(after: page.last!.key, namespace: namespace, resourceVersion: listRV)
            // `remainingItemCount` only without selectors (`PrepareContinueToken`).
            return ListResult(items: page.map(encode), resourceVersion: listRV, continueToken: token,
                              remaining: selector.isEmpty ? all.count - limit : nil)
        }
        return ListResult(items: all.map(encode), resourceVersion: listRV, continueToken: nil, remaining: nil)
    }

    /// The state of one storage kind as of `rv`: the current objects with every later
    /// change undone (each change keeps the object before it).
    private func snapshot(_ kind: ResourceKind, at rv: Int) -> [ObjectKey: JSONValue] {
        var state = objects[kind] ?? [:]
        for change in history.reversed() {
            if change.resourceVersion <= rv { break }
            if change.kind == kind { state[change.key] = change.old }
        }
        return state
    }

    /// Waits until the store reaches `rv`, for at most `freshnessTimeout`.
    private func waitForResourceVersion(_ rv: Int) async -> Bool {
        if resourceVersion >= rv { return true }
        let id = nextWaiter
        nextWaiter += 1
        let timeout = freshnessTimeout
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                await self.resumeWaiter(id, false)
                return nil
            }
            let reached = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                rvWaiters[id] = (rv, c)
                let ready = countWaiters.filter { $0.count <= rvWaiters.count }
                countWaiters.removeAll { $0.count <= rvWaiters.count }
                for w in ready { w.continuation.resume() }
            }
            group.cancelAll()
            return reached
        }
    }

    /// Tests: returns once `count` requests are waiting for a resourceVersion.
    private var countWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    func waitForResourceVersionWaiters(_ count: Int) async {
        if rvWaiters.count >= count { return }
        await withCheckedContinuation { countWaiters.append((count, $0)) }
    }

    private func resumeWaiter(_ id: Int, _ value: Bool) {
        rvWaiters.removeValue(forKey: id)?.continuation.resume(returning: value)
    }

    // MARK: writes

    /// POST. The create path of k8s.io/apiserver `pkg/registry/generic/registry/store.go`
    /// `(*Store).Create`: `rest.BeforeCreate` (system fields, the kind's `PrepareForCreate`,
    /// validation), then storage — or, with `dryRun=All`, the prepared object
    /// (`dryrun.go` `DryRunnableStorage.Create`: uid and creationTimestamp set, no resourceVersion).
    func create(_ kind: ResourceKind, namespace: String?, body: JSONValue, options: WriteOptions = WriteOptions(), applied: JSONValue? = nil) throws(APIError) -> JSONValue {
        guard case .object(var obj) = body else { throw APIError.badRequest("the body of the request was not a JSON object") }
        try checkTypeMeta(kind, obj)
        let store = storage(kind)
        if kind == .eventsV1Event { obj = EventConversion.toCore(.object(obj)).objectValue ?? obj }
        try Strategy.checkMicroTimes(store, obj, as: kind)
        var meta = obj["metadata"]?.objectValue ?? [:]
        let ns = try resolveNamespace(kind, path: namespace, meta: meta)
        var name = meta["name"]?.stringValue ?? ""
        let requestName = name
        if name.isEmpty, let prefix = meta["generateName"]?.stringValue, !prefix.isEmpty {
            repeat { name = prefix + Self.randomSuffix() } while objects[store]?[ObjectKey(namespace: ns ?? "", name: name)] != nil
        }
        guard !name.isEmpty else { throw APIError.invalid(kind, "", field: "metadata.name", "Required value: name or generateName is required") }
        try validateName(kind, name)
        if let ns, objects[.namespace]?[ObjectKey(namespace: "", name: ns)] == nil {
            throw APIError.notFound(.namespace, ns)
        }
        let key = ObjectKey(namespace: ns ?? "", name: name)
        if let existing = objects[store]?[key] {
            var e = APIError.alreadyExists(kind, name)
            if existing["metadata"]?["deletionTimestamp"] != nil { e.status.message = "object is being deleted: " + (e.status.message ?? "") }
            throw e
        }
        if let rv = meta["resourceVersion"]?.stringValue, !rv.isEmpty, !options.dryRun {
            // etcd3 `store.Create`: `ErrResourceVersionSetOnCreate`, a plain 500.
            throw APIError(500, "", "resourceVersion should not be set on objects to be created")
        }
        meta["name"] = .string(name)
        if let ns { meta["namespace"] = .string(ns) } else { meta["namespace"] = nil }
        meta["uid"] = .string(UUID().uuidString.lowercased())
        meta["creationTimestamp"] = .string(RFC3339.format(now()))
        for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "generation", "selfLink"] { meta[k] = nil }
        obj["metadata"] = .object(meta)
        obj["apiVersion"] = .string(kind.apiVersion)
        obj["kind"] = .string(kind.kind)
        if store == .coreEvent || kind.custom { obj["apiVersion"] = .string(store.apiVersion) }
        if kind.statusSubresource && !kind.custom { obj["status"] = nil }
        if kind.custom {
            if kind.generation { Strategy.setMeta(&obj, "generation", .int(1)) }
            if kind.statusSubresource { obj["status"] = nil }
        } else {
            try Strategy.prepareForCreate(store, &obj)
        }
        if kind == .pod { applyServiceAccountAdmission(&obj, namespace: ns ?? "") }
        try normalize(store, &obj, name: name)
        if kind == .namespace { defaultNamespace(&obj, name: name) }
        Strategy.dropEmptyMetadata(&obj)
        if let user = options.user { try checkEscalation(user, kind: kind, namespace: ns, object: .object(obj)) }
        if let applied {
            // Created by a server-side apply: the applier's entry is an Apply of what it sent.
            ManagedFields.replaceWithApply(&obj, applied: applied, manager: options.manager, apiVersion: kind.apiVersion, time: RFC3339.format(now()))
        } else {
            ManagedFields.recordUpdate(&obj, old: nil, manager: options.manager, apiVersion: kind.apiVersion, subresource: nil, time: RFC3339.format(now()))
        }
        try admitByPolicies("CREATE", kind, namespace: ns, name: requestName, object: view(.object(obj), as: kind), old: nil, options: options)
        if options.dryRun { return view(.object(obj), as: kind) }
        let stored = commit("ADDED", store, key, obj)
        if store == .customResourceDefinition { refreshCustomKinds() }
        return view(stored, as: kind)
    }

    /// PUT semantics: replace, guarded by `metadata.resourceVersion` when given; `…/status`
    /// replaces only the status.
    func update(_ kind: ResourceKind, namespace: String?, name: String, body: JSONValue, options: WriteOptions = WriteOptions()) throws(APIError) -> JSONValue {
        guard case .object(var obj) = body else { throw APIError.badRequest("the body of the request was not a JSON object") }
        try checkTypeMeta(kind, obj)
        let store = storage(kind)
        if kind == .eventsV1Event { obj = EventConversion.toCore(.object(obj)).objectValue ?? obj }
        try Strategy.checkMicroTimes(store, obj, as: kind)
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard let current = objects[store]?[key]?.objectValue else { throw APIError.notFound(kind, name) }
        var meta = obj["metadata"]?.objectValue ?? [:]
        if let bodyName = meta["name"]?.stringValue, bodyName != name {
            throw APIError.badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
        }
        _ = try resolveNamespace(kind, path: namespace, meta: meta)
        let currentMeta = current["metadata"]?.objectValue ?? [:]
        if let rv = meta["resourceVersion"]?.stringValue, !rv.isEmpty, rv != currentMeta["resourceVersion"]?.stringValue {
            throw APIError.conflict(kind, name)
        }
        if let uid = meta["uid"]?.stringValue, !uid.isEmpty, uid != currentMeta["uid"]?.stringValue {
            throw APIError(409, "Conflict", "Operation cannot be fulfilled on \(kind.plural)\(kind.groupSuffix) \"\(name)\": Precondition failed: UID in precondition: \(uid), UID in object meta: \(currentMeta["uid"]?.stringValue ?? "")",
                           details: .init(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.plural))
        }
        if kind == .secret, (obj["type"]?.stringValue ?? "Opaque") != (current["type"]?.stringValue ?? "Opaque") {
            throw APIError.invalid(kind, name, field: "type", "Invalid value: \"\(obj["type"]?.stringValue ?? "Opaque")\": field is immutable")
        }
        if kind == .roleBinding || kind == .clusterRoleBinding, obj["roleRef"] != current["roleRef"] {
            throw APIError.invalid(kind, name, field: "roleRef", "Invalid value: cannot change roleRef")
        }
        // Server-owned metadata survives a PUT (`rest.BeforeUpdate`: uid, creationTimestamp,
        // deletion fields and generation are the stored ones).
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] { meta[k] = currentMeta[k] }
        meta["name"] = .string(name)
        if let namespace { meta["namespace"] = .string(namespace) }
        obj["metadata"] = .object(meta)
        obj["apiVersion"] = .string(store.apiVersion)
        obj["kind"] = .string(kind.kind)
        if options.subresource == "status" {
            Strategy.prepareForStatusUpdate(store, &obj, old: current)
        } else if kind.custom {
            if kind.statusSubresource { obj["status"] = current["status"] }
            if kind.generation {
                let gen = currentMeta["generation"]?.intValue ?? 1
                Strategy.setMeta(&obj, "generation", .int(Strategy.specChanged(obj, current) ? gen + 1 : gen))
            }
        } else {
            try Strategy.prepareForUpdate(store, &obj, old: current)
        }
        try normalize(store, &obj, name: name)
        if kind == .namespace { defaultNamespace(&obj, name: name) }
        Strategy.dropEmptyMetadata(&obj)
        if let immutable = current["immutable"], immutable == .bool(true), obj["data"] != current["data"] {
            throw APIError.invalid(kind, name, field: "data", "Forbidden: field is immutable when `immutable` is set")
        }
        ManagedFields.recordUpdate(&obj, old: current, manager: options.manager, apiVersion: kind.apiVersion, subresource: options.subresource, time: RFC3339.format(now()))
        // Admitted even when nothing changes: etcd3 `GuaranteedUpdate` compares after `updateValidation`.
        try admitByPolicies("UPDATE", kind, namespace: namespace, name: name, object: view(.object(obj), as: kind), old: view(.object(current), as: kind), options: options)
        if obj == current.merging(resourceVersion: obj["metadata"]?["resourceVersion"]) { return view(.object(current), as: kind) }
        if let user = options.user { try checkEscalation(user, kind: kind, namespace: namespace, object: .object(obj)) }
        if options.dryRun {
            Strategy.setMeta(&obj, "resourceVersion", currentMeta["resourceVersion"])
            return view(.object(obj), as: kind)
        }
        // Removing the last finalizer of an object being deleted deletes it.
        if meta["deletionTimestamp"] != nil, (obj["metadata"]?["finalizers"]?.arrayValue ?? []).isEmpty {
            return view(commit("DELETED", store, key, obj, remove: true), as: kind)
        }
        let stored = commit("MODIFIED", store, key, obj)
        if store == .customResourceDefinition { refreshCustomKinds() }
        return view(stored, as: kind)
    }

    /// PATCH: JSON, merge and strategic-merge patches on the stored object, and server-side
    /// apply, which creates what does not exist (`handlers/patch.go`: `forceAllowCreate` for apply).
    func patch(_ kind: ResourceKind, namespace: String?, name: String, contentType: String, body: [UInt8], options: WriteOptions = WriteOptions()) throws(APIError) -> (object: JSONValue, created: Bool) {
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        let type = Patching.mediaType(contentType)
        if type == Patching.applyYAML {
            let applied = try ServerSideApply.decode(body, kind: kind)
            guard let current = objects[storage(kind)]?[key].map({ view($0, as: kind) }) else {
                if options.subresource != nil { throw APIError.notFound(kind, name) }
                var fresh = applied
                var meta = fresh["metadata"]?.objectValue ?? [:]
                meta["name"] = .string(name)
                if let namespace { meta["namespace"] = .string(namespace) }
                fresh["metadata"] = .object(meta)
                return (try create(kind, namespace: namespace, body: .object(fresh), options: options, applied: .object(applied)), true)
            }
            let merged = try ServerSideApply.apply(applied, to: current, kind: kind, manager: options.manager, force: options.force, time: RFC3339.format(now()))
            var updateOptions = options
            updateOptions.manager = ""  // ownership was recorded by the apply itself
            return (try update(kind, namespace: namespace, name: name, body: merged, options: updateOptions), false)
        }
        guard let stored = objects[storage(kind)]?[key] else { throw APIError.notFound(kind, name) }
        let current = view(stored, as: kind)
        if kind.custom && type == "application/strategic-merge-patch+json" {
            throw APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        }
        let patched = try Patching.apply(contentType: contentType, patch: body, to: current, kind: kind)
        guard case .object(var obj) = patched else { throw APIError.badRequest("the patched object is not a JSON object") }
        // A resourceVersion the patch did not set must not act as a precondition.
        if var meta = obj["metadata"]?.objectValue, meta["resourceVersion"] == current["metadata"]?["resourceVersion"] {
            meta["resourceVersion"] = nil
            obj["metadata"] = .object(meta)
        }
        return (try update(kind, namespace: namespace, name: name, body: .object(obj), options: options), false)
    }

    /// DELETE, as k8s.io/apiserver `pkg/registry/rest/delete.go` `BeforeDelete` (preconditions,
    /// worded with the Kind) and `store.go` `(*Store).Delete`: an object with finalizers is
    /// only marked (`markAsDeleting`: deletionTimestamp, `deletionGracePeriodSeconds: 0`,
    /// generation + 1) and returned; otherwise it is removed and the answer is the object for
    /// stores with `ReturnDeletedObject` (pods, service accounts, services; namespaces answer
    /// themselves too) and a success Status otherwise.
    ///
    /// Pods are deleted gracefully as kube-apiserver deletes them: `gracePeriodSeconds` is
    /// `DeleteOptions.gracePeriodSeconds` (nil: not given); see `gracefulPodDelete`.
    func delete(_ kind: ResourceKind, namespace: String?, name: String, preconditionUID: String?, preconditionRV: String?, dryRun: Bool = false, user: UserInfo? = nil,
                gracePeriodSeconds: Int? = nil, propagationPolicy: String? = nil) throws(APIError) -> DeleteResult {
        let store = storage(kind)
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        guard var obj = objects[store]?[key]?.objectValue else { throw APIError.notFound(kind, name) }
        var meta = obj["metadata"]?.objectValue ?? [:]
        let qualifiedKind = kind.kind + kind.groupSuffix
        let details = Status.Details(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.kind)
        if let uid = preconditionUID, uid != meta["uid"]?.stringValue {
            throw APIError(409, "Conflict", "Operation cannot be fulfilled on \(qualifiedKind) \"\(name)\": the UID in the precondition (\(uid)) does not match the UID in record (\(meta["uid"]?.stringValue ?? "")). The object might have been deleted and then recreated", details: details)
        }
        if let rv = preconditionRV, rv != meta["resourceVersion"]?.stringValue {
            throw APIError(409, "Conflict", "Operation cannot be fulfilled on \(qualifiedKind) \"\(name)\": the ResourceVersion in the precondition (\(rv)) does not match the ResourceVersion in record (\(meta["resourceVersion"]?.stringValue ?? "")). The object might have been modified", details: details)
        }
        var admission = WriteOptions(user: user)
        admission.dryRun = dryRun
        try admitByPolicies("DELETE", kind, namespace: namespace, name: name, object: nil, old: view(.object(obj), as: kind), options: admission)
        if meta["deletionTimestamp"] == nil, let finalizers = try Self.finalizers(meta["finalizers"]?.arrayValue ?? [], propagationPolicy: propagationPolicy) {
            meta["finalizers"] = finalizers.isEmpty ? nil : .array(finalizers.map { .string($0) })
            obj["metadata"] = .object(meta)
        }
        if kind == .pod {
            switch gracefulPodDelete(&obj, requested: gracePeriodSeconds) {
            case .pending:
                return .object(view(.object(obj), as: kind))
            case .marked(let period):
                if dryRun { return .object(view(.object(obj), as: kind)) }
                // `updateForGracefulDeletionAndFinalizers`: a grace period of 0 without
                // finalizers deletes at once; anything else stores the marked object.
                if period > 0 || !(obj["metadata"]?["finalizers"]?.arrayValue ?? []).isEmpty {
                    return .object(view(commit("MODIFIED", store, key, obj), as: kind))
                }
                meta = obj["metadata"]?.objectValue ?? [:]
            case .immediate:
                break
            }
        }
        if !(meta["finalizers"]?.arrayValue ?? []).isEmpty {
            if meta["deletionTimestamp"] != nil { return .object(view(.object(obj), as: kind)) }
            meta["deletionTimestamp"] = .string(RFC3339.format(now()))
            meta["deletionGracePeriodSeconds"] = .int(0)
            if let g = meta["generation"]?.intValue, g > 0 { meta["generation"] = .int(g + 1) }
            obj["metadata"] = .object(meta)
            if dryRun { return .object(view(.object(obj), as: kind)) }
            return .object(view(commit("MODIFIED", store, key, obj), as: kind))
        }
        let uid = meta["uid"]?.stringValue
        if !dryRun {
            if kind == .namespace {
                for k in servedKinds where k.namespaced && storage(k) == k {
                    for (childKey, child) in objects[k] ?? [:] where childKey.namespace == name {
                        _ = commit("DELETED", k, childKey, child.objectValue ?? [:], remove: true)
                    }
                }
            }
            _ = commit("DELETED", store, key, obj, remove: true)
            if store == .customResourceDefinition { dropCustomResources(of: .object(obj)) }
        }
        if kind == .namespace {
            // Removed at once here (no namespace controller); the answer is what a real server
            // answers while it finalizes: the namespace Terminating.
            var answer = obj
            Strategy.setMeta(&answer, "deletionTimestamp", .string(RFC3339.format(now())))
            answer["status"] = .object(["phase": .string("Terminating")])
            return .object(.object(answer))
        }
        if [ResourceKind.pod, .serviceAccount, .service].contains(kind) { return .object(view(.object(obj), as: kind)) }
        return .success(Status(status: "Success", message: nil, reason: nil,
                               details: .init(name: name, group: kind.group.isEmpty ? nil : kind.group, kind: kind.plural, uid: uid), code: nil))
    }

    /// k8s.io/apiserver `pkg/registry/generic/registry/store.go`
    /// `deletionFinalizersForGarbageCollection`: `Orphan` adds the `orphan` finalizer and
    /// `Foreground` the `foregroundDeletion` one (each dropping the other), `Background` drops
    /// both; nil leaves the object's finalizers as they are (every kind served here defaults to
    /// background deletion). The garbage collector then orphans or deletes the dependents and
    /// removes the finalizer. Returns nil when nothing changes.
    static func finalizers(_ current: [JSONValue], propagationPolicy: String?) throws(APIError) -> [String]? {
        guard let policy = propagationPolicy else { return nil }
        var names = current.compactMap(\.stringValue)
        let before = names
        switch policy {
        case "Orphan":
            names.removeAll { $0 == "foregroundDeletion" }
            if !names.contains("orphan") { names.append("orphan") }
        case "Foreground":
            names.removeAll { $0 == "orphan" }
            if !names.contains("foregroundDeletion") { names.append("foregroundDeletion") }
        case "Background":
            names.removeAll { $0 == "orphan" || $0 == "foregroundDeletion" }
        default:
            throw APIError(422, "Invalid", "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"\(policy)\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"")
        }
        return names == before ? nil : names
    }

    /// POST `pods/NAME/binding` (pkg/registry/core/pod/storage/storage.go `BindingREST.Create` →
    /// `assignPod` → `setPodHostAndAnnotations`): the scheduler's only way to set
    /// `spec.nodeName`, which a Pod update may not change. Conflicts as the real store words them;
    /// the Pod gets `PodScheduled=True` in the same write.
    func bind(namespace: String, name: String, uid: String?, node: String, options: WriteOptions) throws(APIError) {
        let key = ObjectKey(namespace: namespace, name: name)
        guard var pod = objects[.pod]?[key]?.objectValue else { throw APIError.notFound(.pod, name) }
        let old = pod
        let meta = pod["metadata"]?.objectValue ?? [:]
        func conflict(_ m: String) -> APIError {
            APIError(409, "Conflict", "Operation cannot be fulfilled on pods/binding \"\(name)\": \(m)", details: Status.Details(name: name, group: nil, kind: "pods/binding"))
        }
        if let uid, uid != meta["uid"]?.stringValue {
            throw conflict("Precondition failed: UID in precondition: \(uid), UID in object meta: \(meta["uid"]?.stringValue ?? "")")
        }
        if meta["deletionTimestamp"] != nil { throw conflict("pod \(name) is being deleted, cannot be assigned to a host") }
        if let host = pod["spec"]?["nodeName"]?.stringValue, !host.isEmpty { throw conflict("pod \(name) is already assigned to node \"\(host)\"") }
        guard !node.isEmpty else { throw APIError(422, "Invalid", "Binding.core \"\(name)\" is invalid: target.name: Required value") }
        var spec = pod["spec"]?.objectValue ?? [:]
        spec["nodeName"] = .string(node)
        pod["spec"] = .object(spec)
        var status = pod["status"]?.objectValue ?? [:]
        var conditions = (status["conditions"]?.arrayValue ?? []).filter { $0["type"]?.stringValue != "PodScheduled" }
        conditions.append(.object(["type": .string("PodScheduled"), "status": .string("True"), "lastProbeTime": .null,
                                   "lastTransitionTime": .string(RFC3339.format(now()))]))
        status["conditions"] = .array(conditions)
        pod["status"] = .object(status)
        if options.dryRun { return }
        ManagedFields.recordUpdate(&pod, old: old, manager: options.manager, apiVersion: "v1", subresource: "binding", time: RFC3339.format(now()))
        _ = commit("MODIFIED", .pod, key, pod)
    }

    enum GracefulDelete {
        /// Not graceful: delete (or mark, with finalizers) as any other object.
        case immediate
        /// Already terminating with a grace period no longer than the one asked: answer the object.
        case pending
        /// `deletionTimestamp` and `deletionGracePeriodSeconds` set on `obj`.
        case marked(period: Int)
    }

    /// kube-apiserver's graceful deletion of a Pod: k8s.io/apiserver `pkg/registry/rest/delete.go`
    /// `BeforeDelete` with pkg/registry/core/pod/strategy.go `CheckGracefulDelete`:
    /// - a negative requested period is 1, before anything else looks at it;
    /// - a Pod already terminating may only have its grace period shortened (the deletion
    ///   timestamp moves by the difference); asking for the same or a longer one, or nothing,
    ///   leaves it pending; one marked with 0 (or none) is deleted;
    /// - otherwise the period is the request's, else `spec.terminationGracePeriodSeconds`
    ///   (defaulted to 30 on create), forced to 0 for a Pod not bound to a node or already
    ///   Succeeded/Failed, and to 1 when negative; the Pod gets `deletionTimestamp` = now +
    ///   period, `deletionGracePeriodSeconds` = period and, when it has one, generation + 1.
    /// The kubelet then stops the containers and deletes the Pod with a grace period of 0.
    private func gracefulPodDelete(_ obj: inout [String: JSONValue], requested: Int?) -> GracefulDelete {
        var meta = obj["metadata"]?.objectValue ?? [:]
        // `BeforeDelete`: "if options.GracePeriodSeconds < 0 { 1 }" comes before the terminating
        // check, so a negative period shortens a pending deletion to 1 s rather than forcing it.
        let requested = requested.map { $0 < 0 ? 1 : $0 }
        if let timestamp = meta["deletionTimestamp"]?.stringValue {
            guard let current = meta["deletionGracePeriodSeconds"]?.intValue, current > 0 else { return .immediate }
            guard let period = requested, period < current else { return .pending }
            let moved = (RFC3339.parse(timestamp) ?? now()).addingTimeInterval(TimeInterval(period - current))
            meta["deletionTimestamp"] = .string(RFC3339.format(moved))
            meta["deletionGracePeriodSeconds"] = .int(period)
            obj["metadata"] = .object(meta)
            return .marked(period: period)
        }
        let spec = obj["spec"]?.objectValue ?? [:]
        var period = requested ?? spec["terminationGracePeriodSeconds"]?.intValue ?? 0
        if (spec["nodeName"]?.stringValue ?? "").isEmpty { period = 0 }
        if let phase = obj["status"]?["phase"]?.stringValue, phase == "Failed" || phase == "Succeeded" { period = 0 }
        if period < 0 { period = 1 }
        meta["deletionTimestamp"] = .string(RFC3339.format(now().addingTimeInterval(TimeInterval(period))))
        meta["deletionGracePeriodSeconds"] = .int(period)
        if let g = meta["generation"]?.intValue, g > 0 { meta["generation"] = .int(g + 1) }
        obj["metadata"] = .object(meta)
        return .marked(period: period)
    }

    /// DELETE on a collection (`store.go` `(*Store).DeleteCollection`): every listed object
    /// goes through `Delete`; the answer is the list as it was before.
    func deleteCollection(_ kind: ResourceKind, namespace: String?, selector: Selector, options: ListOptions, dryRun: Bool, user: UserInfo? = nil) async throws(APIError) -> ListResult {
        var listOptions = options
        listOptions.limit = nil
        let listed = try await list(kind, namespace: namespace, selector: selector, options: listOptions)
        for item in listed.items {
            guard let obj = try? JSONValue.parse(item), let name = obj["metadata"]?["name"]?.stringValue else { continue }
            do {
                _ = try delete(kind, namespace: obj["metadata"]?["namespace"]?.stringValue, name: name, preconditionUID: nil, preconditionRV: nil, dryRun: dryRun, user: user)
            } catch where error.httpCode != 404 {
                // `DeleteCollection` returns the first error that is not NotFound (an admission refusal).
                throw error
            }
        }
        return listed
    }

    // MARK: watch

    /// Opens a watch, as k8s.io/apiserver `pkg/storage/cacher/cacher.go` `Cacher.Watch` and
    /// `watch_cache.go` `getAllEventsSinceLocked` serve it:
    /// - `sendInitialEvents=true` (or, with the WatchList gate on, a watch from "" or "0"
    ///   without it: `SetListOptionsDefaults`) starts with the current state as ADDED and, for
    ///   watchers that allow bookmarks, the `k8s.io/initial-events-end` bookmark; a
    ///   resourceVersion ahead of the store is waited for (3 s), then the stream is an ERROR 504;
    /// - "" or "0" otherwise: synthetic ADDED events for the current state;
    /// - N: the changes after N; 410 Expired as an ERROR event once history no longer reaches
    ///   back that far; ahead of the store: silent until the store passes N (`cacheWatcher`
    ///   only sends events newer than its resourceVersion).
    func watch(_ kind: ResourceKind, namespace: String?, selector: Selector, options: ListOptions, timeout: Duration?) async throws(APIError) -> AsyncStream<WatchFrame> {
        let store = storage(kind)
        let rv = options.resourceVersion ?? ""
        var sendInitial = options.sendInitialEvents
        if sendInitial == nil && options.resourceVersionMatch == nil && (rv == "" || rv == "0") && watchListEnabled {
            sendInitial = true
        }
        let bookmarks = options.allowWatchBookmarks
        var initial: [WatchFrame] = []
        var after = resourceVersion
        func current() -> [WatchFrame] {
            let state = (objects[store] ?? [:]).filter { (namespace == nil || $0.key.namespace == namespace) && selector.matches($0.value) }
            return state.sorted(by: { $0.key < $1.key }).map { .event("ADDED", objectJSON: viewJSON(kind, $0.key, $0.value)) }
        }
        if sendInitial == true {
            if let wanted = Int(rv), wanted > resourceVersion {
                let before = resourceVersion
                if !(await waitForResourceVersion(wanted)) {
                    let e = APIError.tooLargeResourceVersion(wanted, current: max(before, resourceVersion), retryAfter: 1)
                    return hub.subscribe(kind: kind, namespace: namespace, selector: selector, bookmarks: false, timeout: nil,
                                         initial: [.event("ERROR", objectJSON: StatusEncoding.encode(e.status))], endAfterInitial: true)
                }
            }
            initial = current()
            after = resourceVersion
            if bookmarks { initial.append(.bookmark(kind: kind, resourceVersion: resourceVersion, initialEventsEnd: true)) }
        } else if sendInitial == false && (rv == "" || rv == "0") {
            // No initial events: from now on.
            after = resourceVersion
        } else if sendInitial == nil && (rv == "" || rv == "0") {
            initial = current()
            after = resourceVersion
        } else {
            guard let from = Int(rv), from >= 0 else {
                throw APIError.badRequest("invalid resource version: resourceVersion: Invalid value: \"\(rv)\": strconv.ParseUint: parsing \"\(rv)\": invalid syntax")
            }
            if from < historyStart {
                return hub.subscribe(kind: kind, namespace: namespace, selector: selector, bookmarks: false, timeout: nil,
                                     initial: [.expired(requested: from, oldest: historyStart)], endAfterInitial: true)
            }
            after = from
            if from <= resourceVersion {
                for change in history where change.resourceVersion > from && change.kind == store
                    && (namespace == nil || change.key.namespace == namespace) {
                    if let frame = WatchHub.frame(change, selector: selector, view: viewer(kind)) { initial.append(frame) }
                }
                after = resourceVersion
            }
        }
        return hub.subscribe(kind: store, view: kind, viewer: viewer(kind), namespace: namespace, selector: selector, bookmarks: bookmarks,
                             after: after, timeout: timeout, initial: WatchFrame.coalesced(initial))
    }

    /// How a watcher of `kind` sees a stored object, when that differs from storage.
    private func viewer(_ kind: ResourceKind) -> (@Sendable (JSONValue) -> JSONValue)? {
        if kind == .eventsV1Event { return { EventConversion.toEventsV1($0) } }
        if kind.custom, !kind.storageVersion {
            let apiVersion = kind.apiVersion
            return { var o = $0; o["apiVersion"] = .string(apiVersion); return o }
        }
        return nil
    }

    /// Sends a bookmark at the current resourceVersion to every watcher that wants them.
    func sendBookmarks() { hub.bookmark(resourceVersion: resourceVersion) }

    /// Fault injection: forget all history, so any resume gets 410 Expired.
    func compactHistory() {
        history.removeAll()
        historyStart = resourceVersion
    }

    // MARK: custom resources

    private func refreshCustomKinds() {
        customKinds = (objects[.customResourceDefinition] ?? [:]).values.flatMap(CustomResources.kinds)
            .sorted { ($0.group, $0.plural, $0.version) < ($1.group, $1.plural, $1.version) }
        let all = ResourceKind.all + customKinds
        served.withLock { $0 = all }
    }

    /// Deleting a CRD deletes its custom resources (apiextensions-apiserver's finalizer
    /// `customresourcecleanup.apiextensions.k8s.io`, done at once here).
    private func dropCustomResources(of crd: JSONValue) {
        let gone = CustomResources.kinds(crd).filter(\.storageVersion)
        for k in gone {
            for (key, obj) in objects[k] ?? [:] { _ = commit("DELETED", k, key, obj.objectValue ?? [:], remove: true) }
            objects[k] = nil
        }
        refreshCustomKinds()
    }

    // MARK: internals

    /// The stored objects of one kind, for admission (`AdmissionPolicy+Store.swift`).
    func stored(_ kind: ResourceKind) -> [ObjectKey: JSONValue] { objects[kind] ?? [:] }

    private func commit(_ type: String, _ kind: ResourceKind, _ key: ObjectKey, _ obj: [String: JSONValue], remove: Bool = false) -> JSONValue {
        resourceVersion += 1
        var o = obj
        var meta = o["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = .string(String(resourceVersion))
        o["metadata"] = .object(meta)
        let value = JSONValue.object(o)
        let old = objects[kind]?[key]
        let json = value.jsonBytes()
        if remove {
            objects[kind]?[key] = nil
            encoded[kind]?[key] = nil
        } else {
            objects[kind, default: [:]][key] = value
            encoded[kind, default: [:]][key] = json
        }
        let change = ChangeEvent(type: type, kind: kind, key: key, object: value, old: old, resourceVersion: resourceVersion, objectJSON: json)
        history.append(change)
        if history.count > historyLimit + historyLimit / 4 {
            // Trim in batches so appends stay amortized O(1).
            let drop = history.count - historyLimit
            historyStart = history[drop - 1].resourceVersion
            history.removeFirst(drop)
        }
        hub.publish(change)
        let ready = rvWaiters.filter { $0.value.rv <= resourceVersion }
        for (id, w) in ready {
            rvWaiters[id] = nil
            w.continuation.resume(returning: true)
        }
        return value
    }

    /// The ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount/admission.go):
    /// a Pod without `imagePullSecrets` gets its account's, and unless automounting is off
    /// (the Pod's `automountServiceAccountToken`, else the account's) the `kube-api-access-*`
    /// projected volume mounted at /var/run/secrets/kubernetes.io/serviceaccount.
    private func applyServiceAccountAdmission(_ obj: inout [String: JSONValue], namespace: String) {
        guard var spec = obj["spec"]?.objectValue else { return }
        let saName = spec["serviceAccountName"]?.stringValue ?? "default"
        let sa = objects[.serviceAccount]?[ObjectKey(namespace: namespace, name: saName)]
        if (spec["imagePullSecrets"]?.arrayValue ?? []).isEmpty, let pulls = sa?["imagePullSecrets"]?.arrayValue, !pulls.isEmpty {
            spec["imagePullSecrets"] = .array(pulls)
        }
        let automount = spec["automountServiceAccountToken"].flatMap { if case .bool(let b) = $0 { b } else { nil } }
            ?? sa?["automountServiceAccountToken"].flatMap { if case .bool(let b) = $0 { b } else { nil } } ?? true
        let path = "/var/run/secrets/kubernetes.io/serviceaccount"
        let hasMount = (spec["containers"]?.arrayValue ?? []).contains { c in (c["volumeMounts"]?.arrayValue ?? []).contains { $0["mountPath"]?.stringValue == path } }
        if automount && !hasMount {
            let volume = "kube-api-access-" + Self.randomSuffix()
            let mount: JSONValue = .object(["name": .string(volume), "readOnly": .bool(true), "mountPath": .string(path)])
            for field in ["initContainers", "containers"] {
                guard let list = spec[field]?.arrayValue else { continue }
                spec[field] = .array(list.map { c in
                    guard var o = c.objectValue else { return c }
                    o["volumeMounts"] = .array((o["volumeMounts"]?.arrayValue ?? []) + [mount])
                    return .object(o)
                })
            }
            let projected: JSONValue = .object([
                "sources": .array([
                    .object(["serviceAccountToken": .object(["expirationSeconds": .int(3607), "path": .string("token")])]),
                    .object(["configMap": .object(["name": .string("kube-root-ca.crt"), "items": .array([.object(["key": .string("ca.crt"), "path": .string("ca.crt")])])])]),
                    .object(["downwardAPI": .object(["items": .array([.object(["path": .string("namespace"),
                        "fieldRef": .object(["apiVersion": .string("v1"), "fieldPath": .string("metadata.namespace")])])])])]),
                ]),
                "defaultMode": .int(420),
            ])
            spec["volumes"] = .array((spec["volumes"]?.arrayValue ?? []) + [.object(["name": .string(volume), "projected": projected])])
        }
        obj["spec"] = .object(spec)
    }

    /// `SetDefaults_Namespace`: the `kubernetes.io/metadata.name` label; status Active.
    private func defaultNamespace(_ obj: inout [String: JSONValue], name: String) {
        var meta = obj["metadata"]?.objectValue ?? [:]
        var labels = meta["labels"]?.objectValue ?? [:]
        labels["kubernetes.io/metadata.name"] = .string(name)
        meta["labels"] = .object(labels)
        obj["metadata"] = .object(meta)
        if obj["spec"] == nil { obj["spec"] = .object(["finalizers": .array([.string("kubernetes")])]) }
        if obj["status"] == nil { obj["status"] = .object(["phase": .string("Active")]) }
    }

    /// A body whose kind is not the endpoint's is refused while decoding
    /// (`handlers/rest.go` `transformDecodeError`); a wrong version of the same kind by the
    /// request scope's check.
    private func checkTypeMeta(_ kind: ResourceKind, _ obj: [String: JSONValue]) throws(APIError) {
        let bodyKind = obj["kind"]?.stringValue ?? ""
        let bodyVersion = obj["apiVersion"]?.stringValue ?? ""
        if !bodyKind.isEmpty, bodyKind != kind.kind {
            let version = bodyVersion.split(separator: "/").last.map(String.init) ?? bodyVersion
            let internalPackage = kind.group.isEmpty ? "core" : String(kind.group.split(separator: ".").first ?? "")
            throw APIError.badRequest("\(bodyKind) in version \"\(version)\" cannot be handled as a \(kind.kind): converting (\(version).\(bodyKind)) to (\(internalPackage).\(kind.kind)): unknown conversion")
        }
        if !bodyVersion.isEmpty, bodyVersion != kind.apiVersion {
            throw APIError.badRequest("the API version in the data (\(bodyVersion)) does not match the expected API version (\(kind.apiVersion))")
        }
    }

    private func resolveNamespace(_ kind: ResourceKind, path: String?, meta: [String: JSONValue]) throws(APIError) -> String? {
        guard kind.namespaced else { return nil }
        let bodyNS = meta["namespace"]?.stringValue
        if let bodyNS, !bodyNS.isEmpty, let path, bodyNS != path {
            throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
        }
        guard let ns = path ?? bodyNS, !ns.isEmpty else { throw APIError.badRequest("the namespace of the object is required") }
        return ns
    }

    private func validateName(_ kind: ResourceKind, _ name: String) throws(APIError) {
        let ok = name.count <= 253 && name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." || (kind.group == "rbac.authorization.k8s.io" && $0 == ":") }
            && name.first.map { $0.isLetter || $0.isNumber } == true
        if !ok {
            throw APIError.invalid(kind, name, field: "metadata.name", "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        }
    }

    /// Secret rules applied on every write (pkg/apis/core/validation `ValidateSecret`).
    private func normalize(_ kind: ResourceKind, _ obj: inout [String: JSONValue], name: String) throws(APIError) {
        guard kind == .secret else { return }
        var data = obj["data"]?.objectValue ?? [:]
        for (k, v) in data {
            guard let s = v.stringValue, Data(base64Encoded: s) != nil else {
                // kube-apiserver fails while decoding the body, before validation.
                throw APIError.badRequest("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0 (key \(k))")
            }
        }
        if let stringData = obj["stringData"]?.objectValue {
            for (k, v) in stringData { data[k] = .string(Data((v.stringValue ?? "").utf8).base64EncodedString()) }
            obj["stringData"] = nil
        }
        for k in data.keys where !k.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) || k.isEmpty {
            throw APIError.invalid(kind, name, field: "data[\(k)]", "Invalid value: \"\(k)\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
        }
        obj["data"] = data.isEmpty ? nil : .object(data)
        let type = obj["type"]?.stringValue ?? "Opaque"
        obj["type"] = .string(type)
        if type == "kubernetes.io/dockerconfigjson" {
            guard let raw = data[".dockerconfigjson"]?.stringValue, let bytes = Data(base64Encoded: raw) else {
                throw APIError.invalid(kind, name, field: "data[.dockerconfigjson]", "Required value")
            }
            guard (try? JSONValue.parse(Array(bytes)))?.objectValue != nil else {
                throw APIError.invalid(kind, name, field: "data[.dockerconfigjson]", "Invalid value: \"<secret contents redacted>\": invalid character looking for beginning of value")
            }
        }
        var size = 0
        for v in data.values { size += (v.stringValue?.count ?? 0) * 3 / 4 }
        if size > 1 << 20 {
            throw APIError.invalid(kind, name, field: "data", "Too long: must have at most 1048576 bytes")
        }
    }

    private static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet.randomElement()! })
    }
}

private extension Dictionary where Key == String, Value == JSONValue {
    /// The current object with the request's resourceVersion, to detect no-op updates.
    func merging(resourceVersion rv: JSONValue?) -> [String: JSONValue] {
        var o = self
        var meta = o["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = rv
        o["metadata"] = .object(meta)
        return o
    }
}


// MARK: - RBAC over the stored Roles and bindings

extension ObjectStore {
    /// The rules granted to `user` in `namespace` (nil: cluster-wide rules only).
    func rules(for user: UserInfo, namespace: String?) -> [Rule] {
        if user.groups.contains("system:masters") { return [Rule(verbs: ["*"], apiGroups: ["*"], resources: ["*"])] }
        var out = builtinRules
        func subjectMatches(_ s: JSONValue) -> Bool {
            let name = s["name"]?.stringValue ?? ""
            switch s["kind"]?.stringValue {
            case "User": return name == user.name
            case "Group": return user.groups.contains(name)
            case "ServiceAccount": return user.name == "system:serviceaccount:\(s["namespace"]?.stringValue ?? ""):\(name)"
            default: return false
            }
        }
        func roleRules(_ ref: JSONValue?, bindingNamespace: String?) -> [Rule] {
            guard let kindName = ref?["kind"]?.stringValue, let name = ref?["name"]?.stringValue else { return [] }
            let role: JSONValue?
            if kindName == "ClusterRole" {
                role = objects[.clusterRole]?[ObjectKey(namespace: "", name: name)]
            } else if let ns = bindingNamespace {
                role = objects[.role]?[ObjectKey(namespace: ns, name: name)]
            } else { role = nil }
            return role?["rules"]?.arrayValue?.map(Rule.init) ?? []
        }
        for (_, b) in objects[.clusterRoleBinding] ?? [:] where (b["subjects"]?.arrayValue ?? []).contains(where: subjectMatches) {
            out += roleRules(b["roleRef"], bindingNamespace: nil)
        }
        if let namespace {
            for (key, b) in objects[.roleBinding] ?? [:] where key.namespace == namespace && (b["subjects"]?.arrayValue ?? []).contains(where: subjectMatches) {
                out += roleRules(b["roleRef"], bindingNamespace: namespace)
            }
        }
        return out
    }

    /// What every authenticated user may do (system:basic-user, system:discovery).
    private var builtinRules: [Rule] {
        [Rule(verbs: ["create"], apiGroups: ["authorization.k8s.io"], resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews"])]
    }

    func authorize(_ user: UserInfo, _ a: RequestAttributes) -> Bool {
        rules(for: user, namespace: a.namespace).contains { $0.allows(a) }
    }

    /// kube-apiserver's escalation prevention for Role/ClusterRole and (Cluster)RoleBinding writes.
    func checkEscalation(_ user: UserInfo, kind: ResourceKind, namespace: String?, object: JSONValue) throws(APIError) {
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        let owner = rules(for: user, namespace: namespace)
        switch kind {
        case .role, .clusterRole:
            let verb = RequestAttributes(verb: "escalate", group: kind.group, resource: kind.plural, namespace: namespace, name: name)
            if owner.contains(where: { $0.allows(verb) }) { return }
            let requested = object["rules"]?.arrayValue?.map(Rule.init) ?? []
            let missing = RBAC.uncovered(requested, by: owner)
            if !missing.isEmpty { throw RBAC.escalation(user, kind: kind, name: name, missing: missing) }
        case .roleBinding, .clusterRoleBinding:
            guard let refKind = object["roleRef"]?["kind"]?.stringValue, let refName = object["roleRef"]?["name"]?.stringValue else { return }
            let refResource = refKind == "ClusterRole" ? "clusterroles" : "roles"
            let bind = RequestAttributes(verb: "bind", group: "rbac.authorization.k8s.io", resource: refResource, namespace: namespace, name: refName)
            if owner.contains(where: { $0.allows(bind) }) { return }
            let refRole: JSONValue? = refKind == "ClusterRole"
                ? objects[.clusterRole]?[ObjectKey(namespace: "", name: refName)]
                : objects[.role]?[ObjectKey(namespace: namespace ?? "", name: refName)]
            let requested = refRole?["rules"]?.arrayValue?.map(Rule.init) ?? []
            let missing = RBAC.uncovered(requested, by: owner)
            if !missing.isEmpty { throw RBAC.escalation(user, kind: kind, name: name, missing: missing) }
        default:
            return
        }
    }

    /// The ServiceAccount a token names, if it still exists with that uid.
    func serviceAccountExists(namespace: String, name: String, uid: String) -> Bool {
        objects[.serviceAccount]?[ObjectKey(namespace: namespace, name: name)]?["metadata"]?["uid"]?.stringValue == uid
    }
}
