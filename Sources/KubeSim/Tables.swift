import Foundation
import KubeClient

/// Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, what
/// `kubectl get` asks for) for Events, the kind users read through kubectl most: columns and
/// cells as kubernetes/pkg/printers/internalversion/printers.go `eventColumnDefinitions` /
/// `printEvent` make them. Other kinds answer their plain list, which kubectl prints as
/// NAME and AGE (a real server has columns for every built-in kind).
enum Tables {
    static func wantsTable(_ accept: String?) -> Bool { accept?.contains("as=Table") == true }

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
            var meta = core["metadata"]?.objectValue ?? [:]
            meta["managedFields"] = nil
            return .object(["cells": .array(cells),
                            "object": .object(["kind": .string("PartialObjectMetadata"), "apiVersion": .string("meta.k8s.io/v1"), "metadata": .object(meta)])])
        }
        var listMeta: [String: JSONValue] = ["resourceVersion": .string(String(resourceVersion))]
        if let continueToken { listMeta["continue"] = .string(continueToken) }
        return .object(["kind": .string("Table"), "apiVersion": .string("meta.k8s.io/v1"), "metadata": .object(listMeta),
                        "columnDefinitions": .array(columns), "rows": .array(rows)])
    }

    /// apimachinery pkg/util/duration `HumanDuration`.
    static func age(_ seconds: TimeInterval) -> String {
        if seconds < -1 { return "<invalid>" }
        let s = max(0, Int(seconds))
        if s < 120 { return "\(s)s" }
        let m = s / 60
        if m < 10 { return s % 60 == 0 ? "\(m)m" : "\(m)m\(s % 60)s" }
        if m < 180 { return "\(m)m" }
        let h = m / 60
        if h < 8 { return m % 60 == 0 ? "\(h)h" : "\(h)h\(m % 60)m" }
        if h < 48 { return "\(h)h" }
        if h < 192 { return h % 24 == 0 ? "\(h / 24)d" : "\(h / 24)d\(h % 24)h" }
        return "\(h / 24)d"
    }
}
