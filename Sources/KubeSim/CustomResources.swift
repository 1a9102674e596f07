import Foundation
import KubeClient

/// CustomResourceDefinitions as apiextensions-apiserver handles them, enough for
/// `kubectl apply` of an operator's CRDs and its custom resources:
/// - defaults (`pkg/apis/apiextensions/v1/defaults.go`: `names.singular` = lowercased kind,
///   `names.listKind` = kind + "List", `conversion.strategy` None);
/// - status written at once as the naming and establishing controllers would
///   (`pkg/controller/status/naming_controller.go`, `pkg/controller/establish`):
///   NamesAccepted and Established True, `acceptedNames` = the names, `storedVersions`;
/// - every served version is served from the storage version's objects, as unstructured JSON
///   (no schema pruning or defaulting: said in the README).
enum CustomResources {
    static func prepareForCreate(_ obj: inout [String: JSONValue]) throws(APIError) {
        try defaultAndValidate(&obj)
        obj["status"] = status(for: obj, old: nil)
    }

    static func prepareForUpdate(_ obj: inout [String: JSONValue], old: [String: JSONValue]) throws(APIError) {
        try defaultAndValidate(&obj)
        obj["status"] = status(for: obj, old: old)
    }

    private static func defaultAndValidate(_ obj: inout [String: JSONValue]) throws(APIError) {
        let name = obj["metadata"]?["name"]?.stringValue ?? ""
        var spec = obj["spec"]?.objectValue ?? [:]
        var names = spec["names"]?.objectValue ?? [:]
        guard let group = spec["group"]?.stringValue, !group.isEmpty else {
            throw APIError.invalid(.customResourceDefinition, name, field: "spec.group", "Required value")
        }
        guard let plural = names["plural"]?.stringValue, !plural.isEmpty, let kind = names["kind"]?.stringValue, !kind.isEmpty else {
            throw APIError.invalid(.customResourceDefinition, name, field: "spec.names.plural", "Required value")
        }
        if name != "\(plural).\(group)" {
            throw APIError.invalid(.customResourceDefinition, name, field: "metadata.name",
                                   "Invalid value: \"\(name)\": must be spec.names.plural+\".\"+spec.group")
        }
        if names["singular"] == nil { names["singular"] = .string(kind.lowercased()) }
        if names["listKind"] == nil { names["listKind"] = .string(kind + "List") }
        spec["names"] = .object(names)
        if spec["conversion"] == nil { spec["conversion"] = .object(["strategy": .string("None")]) }
        let versions = spec["versions"]?.arrayValue ?? []
        if versions.filter({ $0["storage"] == .bool(true) }).count != 1 {
            throw APIError.invalid(.customResourceDefinition, name, field: "spec.versions", "Invalid value: must have exactly one version marked as storage version")
        }
        obj["spec"] = .object(spec)
    }

    private static func status(for obj: [String: JSONValue], old: [String: JSONValue]?) -> JSONValue {
        let names = obj["spec"]?["names"] ?? .object([:])
        let storage = (obj["spec"]?["versions"]?.arrayValue ?? []).first { $0["storage"] == .bool(true) }?["name"]?.stringValue
        var stored = old?["status"]?["storedVersions"]?.arrayValue ?? []
        if let storage, !stored.contains(.string(storage)) { stored.append(.string(storage)) }
        let time = old?["status"]?["conditions"]?.arrayValue?.first?["lastTransitionTime"]
            ?? obj["metadata"]?["creationTimestamp"] ?? .string(RFC3339.format(Date()))
        func condition(_ type: String, _ reason: String, _ message: String) -> JSONValue {
            .object(["type": .string(type), "status": .string("True"), "lastTransitionTime": time, "reason": .string(reason), "message": .string(message)])
        }
        return .object([
            "conditions": .array([condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                                  condition("Established", "InitialNamesAccepted", "the initial names have been accepted")]),
            "acceptedNames": names,
            "storedVersions": .array(stored),
        ])
    }

    /// The kinds a CRD serves: one per served version.
    static func kinds(_ crd: JSONValue) -> [ResourceKind] {
        guard let spec = crd["spec"], let group = spec["group"]?.stringValue, let names = spec["names"],
              let plural = names["plural"]?.stringValue, let kind = names["kind"]?.stringValue else { return [] }
        let namespaced = spec["scope"]?.stringValue != "Cluster"
        return (spec["versions"]?.arrayValue ?? []).compactMap { v -> ResourceKind? in
            guard let version = v["name"]?.stringValue, v["served"] != .bool(false) else { return nil }
            return ResourceKind(group: group, version: version, plural: plural, singular: names["singular"]?.stringValue ?? kind.lowercased(),
                                kind: kind, namespaced: namespaced,
                                shortNames: names["shortNames"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                                custom: true, generation: true, statusSubresource: v["subresources"]?["status"] != nil,
                                storageVersion: v["storage"] == .bool(true))
        }
    }
}
