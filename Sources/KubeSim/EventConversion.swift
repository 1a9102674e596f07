import KubeClient

/// core/v1 and events.k8s.io/v1 Events are one storage (kubernetes/pkg/registry/core/event
/// serves both; pkg/registry/events/rest/storage_events.go). Objects are kept in core/v1 form
/// and converted on the way in and out, field for field as
/// kubernetes/pkg/apis/events/v1/conversion.go `Convert_v1_Event_To_core_Event` /
/// `Convert_core_Event_To_v1_Event` do: regarding ↔ involvedObject, note ↔ message,
/// reportingController ↔ reportingComponent, deprecatedSource ↔ source,
/// deprecatedFirstTimestamp/LastTimestamp/Count ↔ firstTimestamp/lastTimestamp/count; the
/// rest (eventTime, series, related, action, reason, type, reportingInstance) by name.
enum EventConversion {
    /// (events.k8s.io/v1 field, core/v1 field) pairs that are renamed.
    static let renamed: [(String, String)] = [
        ("regarding", "involvedObject"), ("note", "message"), ("reportingController", "reportingComponent"),
        ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"),
    ]

    static func toCore(_ v: JSONValue) -> JSONValue {
        guard var o = v.objectValue else { return v }
        for (events, core) in renamed {
            let value = o.removeValue(forKey: events)
            o[core] = value
        }
        o["apiVersion"] = .string("v1")
        // core/v1 has no omitempty on these two strings (types.go `json:"reportingComponent"`).
        if o["reportingComponent"] == nil { o["reportingComponent"] = .string("") }
        if o["reportingInstance"] == nil { o["reportingInstance"] = .string("") }
        if o["involvedObject"] == nil { o["involvedObject"] = .object([:]) }
        return .object(o)
    }

    static func toEventsV1(_ v: JSONValue) -> JSONValue {
        guard var o = v.objectValue else { return v }
        for (events, core) in renamed {
            let value = o.removeValue(forKey: core)
            o[events] = value
        }
        o["apiVersion"] = .string("events.k8s.io/v1")
        // events/v1 omits empty strings and zero counts (`omitempty`), and always has eventTime.
        for k in ["reportingController", "reportingInstance", "note", "reason", "type", "action"] where o[k] == .string("") { o[k] = nil }
        if o["deprecatedCount"] == .int(0) { o["deprecatedCount"] = nil }
        if o["eventTime"] == nil { o["eventTime"] = .null }
        if o["regarding"] == nil { o["regarding"] = .object([:]) }
        return .object(o)
    }

    /// events.k8s.io/v1 field selector labels, mapped to the core ones
    /// (pkg/apis/events/v1/conversion.go `AddFieldLabelConversionsForEvent`).
    static func coreFieldLabel(_ label: String) -> String {
        if label.hasPrefix("regarding.") { return "involvedObject." + label.dropFirst("regarding.".count) }
        if label == "reportingController" { return "reportingComponent" }
        return label
    }
}
