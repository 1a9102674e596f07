import Foundation
import HTTPTypes
import Hummingbird
import KubeClient
import NIOCore

/// Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, what
/// `kubectl get` asks for), as k8s.io/apiserver `handlers/rest.go` `transformResponseObject`
/// answers it: a `meta.k8s.io/v1` Table whose columns and cells are those of
/// kubernetes/pkg/printers/internalversion/printers.go for Events, Pods, Deployments,
/// ReplicaSets and Nodes. The server always prints the wide columns (priority 1); kubectl
/// shows them for `-o wide`. Other kinds answer their plain list, which kubectl prints as
/// NAME and AGE (a real server has columns for every built-in kind). Watches are not printed.
enum Tables {
    static func wantsTable(_ accept: String?) -> Bool { accept?.contains("as=Table") == true }

    /// One column of a Table (`TableColumnDefinition`).
    struct Column: Sendable {
        var name: String
        var type = "string"
        var format = ""
        var description: String
        var priority = 0

        var json: JSONValue {
            .object(["name": .string(name), "type": .string(type), "format": .string(format), "description": .string(description), "priority": .int(priority)])
        }
    }

    /// What a kind prints: its columns and, for one object at `now`, the cells and the row's conditions.
    struct Printer: Sendable {
        var columns: [Column]
        var row: @Sendable (_ object: JSONValue, _ now: Date) -> (cells: [JSONValue], conditions: [JSONValue])
    }

    static func printer(for kind: ResourceKind) -> Printer? {
        switch (kind.group, kind.plural) {
        case ("", "pods"): podPrinter
        case ("apps", "deployments"): deploymentPrinter
        case ("apps", "replicasets"): replicaSetPrinter
        case ("", "nodes"): nodePrinter
        default: nil
        }
    }

    /// The Table for a LIST, or nil when the kind has no printer here.
    static func list(_ kind: ResourceKind, _ result: ObjectStore.ListResult, includeObject: String?, now: Date) -> JSONValue? {
        if kind.plural == "events", !kind.custom {
            return events(result.items, resourceVersion: result.resourceVersion, continueToken: result.continueToken, now: now)
        }
        guard let printer = printer(for: kind) else { return nil }
        var meta: [String: JSONValue] = ["resourceVersion": .string(String(result.resourceVersion))]
        if let c = result.continueToken { meta["continue"] = .string(c) }
        if let r = result.remaining { meta["remainingItemCount"] = .int(r) }
        let objects = result.items.compactMap { try? JSONValue.parse($0) }
        return table(printer, objects, metadata: meta, includeObject: includeObject, now: now)
    }

    /// The Table for a GET of one object (`kubectl get pod NAME`), or nil when the kind has no printer here.
    static func object(_ kind: ResourceKind, _ bytes: [UInt8], includeObject: String?, now: Date) -> JSONValue? {
        guard let object = try? JSONValue.parse(bytes) else { return nil }
        let rv = object["metadata"]?["resourceVersion"]?.stringValue ?? ""
        if kind.plural == "events", !kind.custom { return events([bytes], resourceVersion: Int(rv) ?? 0, continueToken: nil, now: now) }
        guard let printer = printer(for: kind) else { return nil }
        return table(printer, [object], metadata: ["resourceVersion": .string(rv)], includeObject: includeObject, now: now)
    }

    static func response(_ table: JSONValue) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json;as=Table;v=v1;g=meta.k8s.io"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: table.jsonBytes() + [0x0A])))
    }

    /// `includeObject` as `asTable` applies it: `Metadata` (the default) a PartialObjectMetadata,
    /// `Object` the object itself, `None` nothing.
    static func table(_ printer: Printer, _ objects: [JSONValue], metadata: [String: JSONValue], includeObject: String?, now: Date) -> JSONValue {
        let rows: [JSONValue] = objects.map { object in
            let (cells, conditions) = printer.row(object, now)
            var row: [String: JSONValue] = ["cells": .array(cells)]
            if !conditions.isEmpty { row["conditions"] = .array(conditions) }
            switch includeObject {
            case "None": break
            case "Object": row["object"] = object
            default: row["object"] = partialObjectMetadata(object)
            }
            return .object(row)
        }
        return .object(["kind": .string("Table"), "apiVersion": .string("meta.k8s.io/v1"), "metadata": .object(metadata),
                        "columnDefinitions": .array(printer.columns.map(\.json)), "rows": .array(rows)])
    }

    static func partialObjectMetadata(_ object: JSONValue) -> JSONValue {
        var meta = object["metadata"]?.objectValue ?? [:]
        meta["managedFields"] = nil
        return .object(["kind": .string("PartialObjectMetadata"), "apiVersion": .string("meta.k8s.io/v1"), "metadata": .object(meta)])
    }

    static func events(_ items: [[UInt8]], resourceVersion: Int, continueToken: String?, now: Date = Date()) -> JSONValue {
        func column(_ name: String, priority: Int = 0, format: String = "") -> JSONValue {
            .object(["name": .string(name), "type": .string("string"), "format": .string(format), "description": .string(""), "priority": .int(priority)])
        }
        let columns: [JSONValue] = [
            column("Last Seen"), column("Type"), column("Reason"), column("Object"), column("Subobject", priority: 1), column("Source", priority: 1),
            column("Message"), column("First Seen", priority: 1), column("Count", priority: 1), column("Name", priority: 1, format: "name"),
        ]
        let rows: [JSONValue] = items.compactMap { try? JSONValue.parse($0) }.map { e in
            let core = e["involvedObject"] != nil ? e : EventConversion.toCore(e)
            let first = core["firstTimestamp"]?.stringValue.flatMap(RFC3339.parse) ?? core["eventTime"]?.stringValue.flatMap(RFC3339.parse)
            let last = core["series"]?["lastObservedTime"]?.stringValue.flatMap(RFC3339.parse)
                ?? core["lastTimestamp"]?.stringValue.flatMap(RFC3339.parse) ?? first
            let involved = core["involvedObject"]
            let object = "\((involved?["kind"]?.stringValue ?? "").lowercased())/\(involved?["name"]?.stringValue ?? "")"
            var source = core["source"]?["component"]?.stringValue ?? ""
            if source.isEmpty { source = core["reportingComponent"]?.stringValue ?? "" }
            if let host = core["source"]?["host"]?.stringValue, !host.isEmpty { source += ", " + host }
            else if let instance = core["reportingInstance"]?.stringValue, !instance.isEmpty { source += ", " + instance }
            let count = core["series"]?["count"]?.intValue ?? core["count"]?.intValue ?? 1
            let cells: [JSONValue] = [
                .string(last.map { age(now.timeIntervalSince($0)) } ?? "<unknown>"), .string(core["type"]?.stringValue ?? ""),
                .string(core["reason"]?.stringValue ?? ""), .string(object), .string(involved?["fieldPath"]?.stringValue ?? ""), .string(source),
                .string(core["message"]?.stringValue ?? ""), .string(first.map { age(now.timeIntervalSince($0)) } ?? "<unknown>"),
                .string(String(count)), .string(core["metadata"]?["name"]?.stringValue ?? ""),
            ]
            return .object(["cells": .array(cells), "object": partialObjectMetadata(core)])
        }
        var listMeta: [String: JSONValue] = ["resourceVersion": .string(String(resourceVersion))]
        if let continueToken { listMeta["continue"] = .string(continueToken) }
        return .object(["kind": .string("Table"), "apiVersion": .string("meta.k8s.io/v1"), "metadata": .object(listMeta),
                        "columnDefinitions": .array(columns), "rows": .array(rows)])
    }

    /// printers.go `translateTimestampSince`: the age of an RFC 3339 timestamp, `<unknown>` without one.
    static func since(_ timestamp: String?, now: Date) -> String {
        guard let t = timestamp.flatMap(RFC3339.parse) else { return "<unknown>" }
        return age(now.timeIntervalSince(t))
    }

    /// apimachinery pkg/util/duration `HumanDuration`.
    static func age(_ interval: TimeInterval) -> String {
        // Go truncates toward zero; up to a second in the future (clock skew) reads as now.
        let s = Int(interval)
        if s < -1 { return "<invalid>" }
        if s < 0 { return "0s" }
        if s < 120 { return "\(s)s" }
        let m = s / 60
        if m < 10 { return s % 60 == 0 ? "\(m)m" : "\(m)m\(s % 60)s" }
        if m < 180 { return "\(m)m" }
        let h = m / 60
        if h < 8 { return m % 60 == 0 ? "\(h)h" : "\(h)h\(m % 60)m" }
        if h < 48 { return "\(h)h" }
        if h < 192 { return h % 24 == 0 ? "\(h / 24)d" : "\(h / 24)d\(h % 24)h" }
        if h < 24 * 365 * 2 { return "\(h / 24)d" }
        if h < 24 * 365 * 8 {
            let days = (h / 24) % 365
            return days == 0 ? "\(h / 24 / 365)y" : "\(h / 24 / 365)y\(days)d"
        }
        return "\(h / 24 / 365)y"
    }
}
