import Foundation
import KubeClient

/// Everything `status` shows, computed from cluster objects only (pure, so it is
/// tested without a cluster): credentials from the three Secrets, the leader from
/// the Lease, watch health from the leader's Lease annotation, repairs from Events.
struct StatusReport: Equatable {
    struct Credential: Equatable {
        var name: String
        var secret: String
        var present: Bool
        var expiresAt: Date?
        var lastRefresh: Date?
        /// ok, expiring (inside the safety margin), expired, missing, unknown (no expiry known).
        var state: String
    }
    struct Leader: Equatable {
        /// held, expired (holder stopped renewing), released, none (no Lease).
        var state: String
        var holder: String?
        var acquiredAt: Date?
        var renewedAt: Date?
        var transitions: Int
        var leaseDurationSeconds: Int?
    }
    struct Watch: Equatable {
        var name: String
        /// As the leader reported it.
        var record: WatchHealthRecord.Watch
        var lastActivity: Date?
        /// ok, syncing, stalled (nothing for longer than the stall window).
        var state: String
    }
    struct Repair: Equatable {
        var time: Date?
        var reason: String
        var type: String
        var object: String
        var note: String
        var count: Int
    }

    var namespace: String
    var now: Date
    var credentials: [Credential]
    var leader: Leader
    var watches: [Watch]
    /// When the leader last wrote the watch record; nil: none (no leader election, or never).
    var watchesReportedAt: Date?
    var repairs: [Repair]

    static let repairReasons: Set<String> = ["PullSecretRepaired", "ServiceAccountRepaired", "RBACRepaired", "PodRestartedAfterRepair", "RepairFailed"]
    /// A watch that delivered nothing (not even a bookmark) for this long is shown as stalled.
    static let stallWindow: TimeInterval = 600
    static let safetyMargin = RefreshPolicy().safetyMargin

    static func build(names: ObjectNames, secrets: [String: Secret], lease: Lease?, events: [Event], now: Date, lastRepairs: Int = 8) -> StatusReport {
        // Credentials.
        func credential(_ name: String, secret: String, expiry: (Secret) -> Date?) -> Credential {
            guard let s = secrets[secret] else { return Credential(name: name, secret: secret, present: false, state: "missing") }
            let expiresAt = expiry(s)
            let refreshed = s.metadata.annotations?[RefreshService.refreshedAtAnnotation].flatMap(RFC3339.parse)
            let state: String
            switch expiresAt {
            case nil: state = "unknown"
            case let e? where e <= now: state = "expired"
            case let e? where e.timeIntervalSince(now) < safetyMargin: state = "expiring"
            default: state = "ok"
            }
            return Credential(name: name, secret: secret, present: true, expiresAt: expiresAt, lastRefresh: refreshed, state: state)
        }
        let credentials = [
            credential("kubeconfig-token", secret: names.kubeconfigSecret) { ReadOnlyKubeconfig.tokenFacts($0)?.expiresAt },
            credential("operator-token", secret: names.operatorSecret) { s in
                s.metadata.annotations?["kubetrace.net/operator-token-expires-at"].flatMap(RFC3339.parse)
                    ?? s.data?["operator_token"].flatMap { JWT.expiry(of: $0.string.trimmingCharacters(in: .whitespacesAndNewlines)) }
            },
            credential("registry-credentials", secret: names.registrySecret) { $0.metadata.annotations?[PullCredentials.expiryAnnotation].flatMap(RFC3339.parse) },
        ]

        // Leader.
        var leader = Leader(state: "none", transitions: 0)
        var record: WatchHealthRecord?
        if let lease {
            let spec = lease.spec ?? Lease.Spec()
            let renewed = spec.renewTime.flatMap(RFC3339.parse)
            let duration = spec.leaseDurationSeconds ?? 15
            let holder = spec.holderIdentity.flatMap { $0.isEmpty ? nil : $0 }
            let state = holder == nil ? "released" : (renewed.map { now.timeIntervalSince($0) <= TimeInterval(duration) } ?? false) ? "held" : "expired"
            leader = Leader(state: state, holder: holder, acquiredAt: spec.acquireTime.flatMap(RFC3339.parse), renewedAt: renewed,
                            transitions: spec.leaseTransitions ?? 0, leaseDurationSeconds: duration)
            record = WatchHealthRecord.decode(lease.metadata.annotations?[WatchHealthRecord.annotation])
        }
        let watches = (record?.watches ?? [:]).sorted { $0.key < $1.key }.map { name, w -> Watch in
            let last = w.lastActivity.flatMap(RFC3339.parse)
            let state = !w.synced ? "syncing" : (last.map { now.timeIntervalSince($0) > stallWindow } ?? true) ? "stalled" : "ok"
            return Watch(name: name, record: w, lastActivity: last, state: state)
        }

        // The most recent repairs first.
        let repairs = events.filter { repairReasons.contains($0.reason ?? "") }.map { e -> Repair in
            let time = (e.series?.lastObservedTime).flatMap(RFC3339.parse) ?? e.eventTime.flatMap(RFC3339.parse) ?? e.metadata.creationTimestamp.flatMap(RFC3339.parse)
            let r = e.regarding
            let object = "\(r?.kind ?? "?") \(r?.namespace.map { "\($0)/" } ?? "")\(r?.name ?? "?")"
            return Repair(time: time, reason: e.reason ?? "", type: e.type ?? "Normal", object: object, note: e.note ?? "", count: e.series?.count ?? 1)
        }.sorted { ($0.time ?? .distantPast) > ($1.time ?? .distantPast) }

        return StatusReport(namespace: names.namespace, now: now, credentials: credentials, leader: leader, watches: watches,
                            watchesReportedAt: record.flatMap { RFC3339.parse($0.at) }, repairs: Array(repairs.prefix(lastRepairs)))
    }

    /// True when nothing needs attention (credentials ok, a leader, every watch ok).
    var healthy: Bool {
        credentials.allSatisfy { $0.state == "ok" || $0.state == "unknown" } && leader.state == "held" && watches.allSatisfy { $0.state == "ok" }
    }

    // MARK: rendering

    var json: JSONValue {
        func time(_ d: Date?) -> JSONValue { d.map { .string(RFC3339.format($0)) } ?? .null }
        func seconds(_ d: Date?) -> JSONValue { d.map { .int(Int($0.timeIntervalSince(now).rounded())) } ?? .null }
        return .object([
            "namespace": .string(namespace),
            "time": .string(RFC3339.format(now)),
            "healthy": .bool(healthy),
            "credentials": .array(credentials.map { c in .object([
                "name": .string(c.name), "secret": .string(c.secret), "present": .bool(c.present), "state": .string(c.state),
                "expiresAt": time(c.expiresAt), "expiresInSeconds": seconds(c.expiresAt), "lastRefresh": time(c.lastRefresh),
            ]) }),
            "leader": .object([
                "state": .string(leader.state), "holder": leader.holder.map { .string($0) } ?? .null,
                "acquiredAt": time(leader.acquiredAt), "renewedAt": time(leader.renewedAt),
                "leaseAgeSeconds": leader.acquiredAt.map { .int(Int(now.timeIntervalSince($0).rounded())) } ?? .null,
                "transitions": .int(leader.transitions),
            ]),
            "watchesReportedAt": time(watchesReportedAt),
            "watches": .array(watches.map { w in .object([
                "name": .string(w.name), "state": .string(w.state), "synced": .bool(w.record.synced), "events": .int(w.record.events),
                "relists": .int(w.record.relists), "reconnects": .int(w.record.reconnects), "decodeErrors": .int(w.record.decodeErrors), "lastActivity": time(w.lastActivity),
            ]) }),
            "repairs": .array(repairs.map { r in .object([
                "time": time(r.time), "reason": .string(r.reason), "type": .string(r.type), "object": .string(r.object),
                "note": .string(r.note), "count": .int(r.count),
            ]) }),
        ])
    }

    /// Ages as people read them: 42s, 3m, 2h5m, 3d.
    static func age(_ interval: TimeInterval) -> String {
        let s = Int(abs(interval).rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86_400 { return s % 3600 / 60 == 0 ? "\(s / 3600)h" : "\(s / 3600)h\(s % 3600 / 60)m" }
        return "\(s / 86_400)d"
    }

    /// The one-screen text view.
    func text(width: Int = 100) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
        func ago(_ d: Date?) -> String { d.map { Self.age(now.timeIntervalSince($0)) + " ago" } ?? "—" }
        var out = "kubetrace-operator status · namespace \(namespace) · \(RFC3339.format(now))\(healthy ? "" : " · NEEDS ATTENTION")\n\n"

        switch leader.state {
        case "none": out += "LEADER  none: no Lease (leader election off, or no operator has run)\n"
        case "released": out += "LEADER  none: the Lease was released \(ago(leader.renewedAt)) (operator stopped or handing over)\n"
        default:
            out += "LEADER  \(leader.holder ?? "?")  \(leader.state)"
            out += leader.acquiredAt.map { " for \(Self.age(now.timeIntervalSince($0)))" } ?? ""
            out += ", renewed \(ago(leader.renewedAt)), \(leader.transitions) transition\(leader.transitions == 1 ? "" : "s")\n"
        }

        out += "\n" + pad("CREDENTIAL", 22) + pad("SECRET", 24) + pad("EXPIRES IN", 12) + pad("LAST REFRESH", 15) + "STATE\n"
        for c in credentials {
            let expires = c.expiresAt.map { $0 > now ? Self.age($0.timeIntervalSince(now)) : "expired" } ?? "—"
            out += pad(c.name, 22) + pad(c.secret, 24) + pad(expires, 12) + pad(ago(c.lastRefresh), 15) + c.state + "\n"
        }

        out += "\n" + pad("WATCH", 34) + pad("SYNCED", 8) + pad("EVENTS", 9) + pad("RELISTS", 9) + pad("RECONNECTS", 12) + pad("LAST ACTIVITY", 15) + "STATE\n"
        if watches.isEmpty {
            out += "  (no watch record on the Lease: " + (leader.state == "none" ? "leader election is off)\n" : "the leader has not reported yet)\n")
        } else {
            for w in watches {
                out += pad(w.name, 34) + pad(w.record.synced ? "yes" : "no", 8) + pad("\(w.record.events)", 9) + pad("\(w.record.relists)", 9) + pad("\(w.record.reconnects)", 12)
                    + pad(ago(w.lastActivity), 15) + w.state + "\n"
            }
            if let at = watchesReportedAt { out += "  (reported by the leader \(ago(at)))\n" }
        }

        out += "\nLAST REPAIRS\n"
        if repairs.isEmpty { out += "  none recorded\n" }
        for r in repairs {
            let line = "  \(pad(ago(r.time), 10))\(pad(r.reason, 25))\(r.object)\(r.count > 1 ? " ×\(r.count)" : "") — \(r.note)"
            out += (line.count > width ? String(line.prefix(width - 1)) + "…" : line) + "\n"
        }
        return out
    }
}
