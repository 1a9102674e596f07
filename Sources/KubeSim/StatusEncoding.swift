import KubeClient

/// A `Status` as kube-apiserver writes it: the fields in `metav1.Status`'s declaration order
/// (k8s.io/apimachinery `pkg/apis/meta/v1/types.go`: TypeMeta `kind, apiVersion`, then
/// `metadata` — a ListMeta struct, so `{}` even when empty — `status, message, reason,
/// details, code`), `StatusDetails` as `name, group, kind, uid, causes, retryAfterSeconds`
/// and `StatusCause` as `reason, message, field`, each omitted when empty (`omitempty`).
/// Clients that compare error bodies byte for byte (the Python client's tests do) see the
/// server's own bytes.
enum StatusEncoding {
    static func encode(_ s: Status, continueToken: String? = nil) -> [UInt8] {
        var w = OrderedJSON()
        w.string("kind", s.kind ?? "Status")
        w.string("apiVersion", s.apiVersion ?? "v1")
        var meta = OrderedJSON()
        meta.string("continue", continueToken)
        w.raw("metadata", meta.finish())
        w.string("status", s.status)
        w.string("message", s.message)
        w.string("reason", s.reason)
        if let d = s.details {
            var dw = OrderedJSON()
            dw.string("name", d.name)
            dw.string("group", d.group)
            dw.string("kind", d.kind)
            dw.string("uid", d.uid)
            if let causes = d.causes, !causes.isEmpty {
                let items = causes.map { c -> String in
                    var cw = OrderedJSON()
                    cw.string("reason", c.reason)
                    cw.string("message", c.message)
                    cw.string("field", c.field)
                    return cw.finish()
                }
                dw.raw("causes", "[" + items.joined(separator: ",") + "]")
            }
            if let r = d.retryAfterSeconds, r != 0 { dw.raw("retryAfterSeconds", String(r)) }
            w.raw("details", dw.finish())
        }
        if let c = s.code, c != 0 { w.raw("code", String(c)) }
        return Array(w.finish().utf8)
    }

    /// Builds one JSON object with its keys in the order they are added.
    struct OrderedJSON {
        private var parts: [String] = []
        mutating func string(_ key: String, _ value: String?) {
            guard let value, !value.isEmpty else { return }
            parts.append(Self.quote(key) + ":" + Self.quote(value))
        }
        mutating func raw(_ key: String, _ json: String) { parts.append(Self.quote(key) + ":" + json) }
        func finish() -> String { "{" + parts.joined(separator: ",") + "}" }
        static func quote(_ s: String) -> String { String(decoding: JSONValue.string(s).jsonBytes(), as: UTF8.self) }
    }
}
