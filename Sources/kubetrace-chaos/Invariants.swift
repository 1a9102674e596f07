import Foundation
import KubeClient
import KubeSim

/// What the chaos runner watches, judged on every committed change the devcluster makes (seen
/// inside the store, so no injected fault hides one), and on a clock tick.
///
/// Writes are attributed without asking the server: the runner announces each damage before it
/// makes it (`expectDamage`), and the next change of that object into a broken state is the
/// damage. Any other change into a broken state is the operator's — and a violation.
actor InvariantChecker {
    /// One damaged object and how its repair went.
    struct Damage: Sendable {
        var id: Int
        var key: String
        var what: String
        var observedAt: ContinuousClock.Instant?
        var repairedAt: ContinuousClock.Instant?
        /// Operator writes to the object from the damage until 2 s after its repair.
        var writes = 0
        var repairSeconds: Double? { observedAt.flatMap { o in repairedAt.map { Self.seconds($0 - o) } } }
        static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    }

    struct Watched: Sendable {
        var valid = false
        var exists = false
        var pendingDamages: [Int] = []
        var openDamage: Int?
        /// The last repaired damage, still counting writes for a while (a fight shows here).
        var countingDamage: (id: Int, until: ContinuousClock.Instant)?
    }

    let registryHost: String
    let operatorNamespace: String
    let managedKeys: Set<String>
    let clock = ContinuousClock()
    private(set) var violations: [String] = []
    private(set) var damages: [Int: Damage] = [:]
    private var watched: [String: Watched] = [:]
    private var desiredRules: JSONValue?
    private var desiredBinding: (subjects: JSONValue?, roleRef: JSONValue?)?
    private var operatorSecretKeys: Set<String>?
    /// The read-only kubeconfig's token expiry (the earlier of the annotation and the JWT `exp`).
    private(set) var kubeconfigExpiry: Date?
    private(set) var kubeconfigWrites = 0
    private(set) var registryRefreshes = 0
    private(set) var minimumTokenRemaining: Double = .infinity
    private var nextDamageID = 0
    private var deletedPods: Set<String> = []

    func podDeleted(_ key: String) -> Bool { deletedPods.contains(key) }

    init(registryHost: String, operatorNamespace: String, managedKeys: Set<String>) {
        self.registryHost = registryHost
        self.operatorNamespace = operatorNamespace
        self.managedKeys = managedKeys
    }

    static func key(_ resource: String, _ namespace: String?, _ name: String) -> String { "\(resource)/\(namespace ?? "")/\(name)" }

    func violate(_ message: String) { violations.append(message) }

    /// Announces a damage about to be made; returns its id.
    func expectDamage(_ key: String, _ what: String) -> Int {
        nextDamageID += 1
        damages[nextDamageID] = Damage(id: nextDamageID, key: key, what: what)
        watched[key, default: Watched()].pendingDamages.append(nextDamageID)
        return nextDamageID
    }

    /// The damage could not be made (the write failed): forget it.
    func cancelDamage(_ id: Int) {
        guard let d = damages[id], d.observedAt == nil else { return }
        damages[id] = nil
        watched[d.key]?.pendingDamages.removeAll { $0 == id }
    }

    func isHealthy(_ key: String) -> Bool { watched[key].map { $0.valid && $0.openDamage == nil && $0.pendingDamages.isEmpty } ?? false }
    var allHealthy: Bool { managedKeys.allSatisfy(isHealthy) }
    var unhealthy: [String] { managedKeys.filter { !isHealthy($0) }.sorted() }

    // MARK: changes

    func observe(_ c: ObservedChange) {
        let key = Self.key(c.resource, c.namespace, c.name)
        let now = clock.now
        switch (c.resource, c.name) {
        case ("secrets", "kubetrace-kubeconfig") where c.namespace == operatorNamespace:
            observeKubeconfig(c)
        case ("secrets", "kubetrace-operator") where c.namespace == operatorNamespace:
            observeOperatorSecret(c)
        default: break
        }
        if c.resource == "pods", c.type == "DELETED" { deletedPods.insert("\(c.namespace ?? "")/\(c.name)") }
        guard managedKeys.contains(key) else { return }
        if c.resource == "roles", desiredRules == nil, c.type != "DELETED" { desiredRules = c.object["rules"] }
        if c.resource == "rolebindings", desiredBinding == nil, c.type != "DELETED" { desiredBinding = (c.object["subjects"], c.object["roleRef"]) }

        var w = watched[key, default: Watched()]
        let wasValid = w.valid
        let valid = c.type != "DELETED" && isValid(c)
        // Which write is this? A pending damage claims the first change into a broken state.
        if !valid, let id = w.pendingDamages.first {
            w.pendingDamages.removeFirst()
            damages[id]?.observedAt = now
            if let open = w.openDamage, open != id {
                // A second damage on an object still broken: the first is folded into it.
                damages[open]?.repairedAt = now
                damages[open]?.what += " (superseded)"
            }
            w.openDamage = id
        } else {
            // The operator's (or the initial install's) write.
            if let open = w.openDamage { damages[open]?.writes += 1 }
            if let (id, until) = w.countingDamage, now < until { damages[id]?.writes += 1 }
            if !valid && w.exists {
                if c.type == "DELETED" && c.resource == "secrets" {
                    violate("\(key) was deleted by the operator: an in-place repair was possible (a window without the Secret fails new Pods' pulls)")
                } else if c.type != "DELETED" && w.openDamage == nil {
                    violate("\(key) was written into a broken state (rv \(c.resourceVersion)): \(brokenReason(c))")
                }
            }
            if valid, c.resource == "secrets", c.namespace == operatorNamespace, wasValid { registryRefreshes += 1 }
        }
        if valid, let open = w.openDamage {
            damages[open]?.repairedAt = now
            w.openDamage = nil
            w.countingDamage = (open, now.advanced(by: .seconds(2)))
        }
        w.valid = valid
        w.exists = c.type != "DELETED"
        watched[key] = w
    }

    private func isValid(_ c: ObservedChange) -> Bool { brokenReason(c).isEmpty }

    /// Empty when the object is as the operator must keep it.
    private func brokenReason(_ c: ObservedChange) -> String {
        switch c.resource {
        case "secrets":
            guard c.object["type"]?.stringValue == "kubernetes.io/dockerconfigjson" else { return "type is not kubernetes.io/dockerconfigjson" }
            guard let b64 = c.object["data"]?[".dockerconfigjson"]?.stringValue, let doc = Data(base64Encoded: b64) else { return "no .dockerconfigjson" }
            guard let json = try? JSONValue.parse(Array(doc)), let auths = json["auths"]?.objectValue else { return ".dockerconfigjson is not a docker config" }
            return auths.keys.contains { $0 == registryHost || $0.hasPrefix("https://\(registryHost)") } ? "" : "no credentials for \(registryHost)"
        case "serviceaccounts":
            let names = c.object["imagePullSecrets"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            return names.contains("kubetrace-registry") ? "" : "imagePullSecrets lacks kubetrace-registry"
        case "roles":
            return c.object["rules"] == desiredRules ? "" : "rules differ from the manifest's"
        case "rolebindings":
            return (c.object["subjects"] == desiredBinding?.subjects && c.object["roleRef"] == desiredBinding?.roleRef) ? "" : "subjects or roleRef differ from the manifest's"
        default:
            return ""
        }
    }

    private func observeKubeconfig(_ c: ObservedChange) {
        guard c.type != "DELETED" else {
            violate("the kubeconfig Secret was deleted")
            return
        }
        kubeconfigWrites += 1
        // The install's own copy (from `manifest`) has the cluster but no token yet.
        if kubeconfigWrites == 1 && c.type == "ADDED" { kubeconfigWrites = 0; return }
        guard let b64 = c.object["data"]?["kubeconfig"]?.stringValue, let data = Data(base64Encoded: b64),
              let config = try? KubeConfig.parse(yaml: String(decoding: data, as: UTF8.self), file: "kubeconfig Secret", directory: "/"),
              let token = config.users.values.first?.token?.value, !token.isEmpty else {
            violate("the kubeconfig Secret was written without a complete kubeconfig (rv \(c.resourceVersion))")
            return
        }
        let exp = JWT.expiry(of: token)
        guard let annotation = c.object["metadata"]?["annotations"]?["kubetrace.net/token-expires-at"]?.stringValue.flatMap(RFC3339.parse) else {
            violate("the kubeconfig Secret was written without a readable kubetrace.net/token-expires-at (rv \(c.resourceVersion))")
            return
        }
        // Host and cluster share a clock here, so the annotation may not promise more than the token's exp.
        if let exp, annotation > exp.addingTimeInterval(1) {
            violate("the kubeconfig Secret's expiry annotation \(RFC3339.format(annotation)) is later than its token's exp \(RFC3339.format(exp))")
        }
        // What counts is when the cluster stops accepting the token.
        kubeconfigExpiry = exp ?? annotation
    }

    private func observeOperatorSecret(_ c: ObservedChange) {
        guard c.type != "DELETED" else { violate("the operator Secret was deleted"); return }
        let keys = Set(c.object["data"]?.objectValue?.keys.map { $0 } ?? [])
        if let before = operatorSecretKeys, !before.isSubset(of: keys) {
            violate("the operator Secret lost keys \(before.subtracting(keys).sorted()) (rv \(c.resourceVersion))")
        }
        operatorSecretKeys = keys
    }

    // MARK: clock

    /// Checked every tick: the token is unexpired; no damage is older than `repairBound`.
    func tick(repairBound: Duration) {
        let now = clock.now
        if let exp = kubeconfigExpiry {
            let left = exp.timeIntervalSinceNow
            minimumTokenRemaining = min(minimumTokenRemaining, left)
            if left <= 0 { violate("the kubeconfig Secret holds an expired token (expired \(RFC3339.format(exp)))") ; kubeconfigExpiry = nil }
        }
        for (id, d) in damages where d.repairedAt == nil {
            if let o = d.observedAt, now - o > repairBound {
                violate("damage #\(id) (\(d.what) on \(d.key)) not repaired within \(repairBound)")
                damages[id]?.repairedAt = now
                damages[id]?.what += " (timed out)"
            }
        }
    }

    struct Summary: Sendable {
        var damages: Int
        var repaired: Int
        var repairSeconds: [Double]
        var writesPerRepair: [Int]
        var kubeconfigWrites: Int
        var registryRefreshes: Int
        var minimumTokenRemaining: Double
    }

    func summary() -> Summary {
        let made = damages.values.filter { $0.observedAt != nil }
        let repaired = made.filter { $0.repairedAt != nil && !$0.what.hasSuffix("(timed out)") }
        return Summary(damages: made.count, repaired: repaired.count, repairSeconds: repaired.compactMap(\.repairSeconds).sorted(),
                       writesPerRepair: repaired.map(\.writes), kubeconfigWrites: kubeconfigWrites, registryRefreshes: registryRefreshes,
                       minimumTokenRemaining: minimumTokenRemaining)
    }

    /// Checks once more that no repair became a fight: at most `limit` writes per damage.
    func checkWriteBound(limit: Int) {
        for d in damages.values where d.writes > limit {
            violate("damage #\(d.id) (\(d.what) on \(d.key)) took \(d.writes) operator writes (at most \(limit)): a write storm")
        }
    }
}
