import Foundation
import KubeClient

/// List continue tokens as k8s.io/apiserver `pkg/storage/continue.go` writes them: the JSON
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"<last key>\u0000"}` in unpadded URL-safe base64, the
/// key relative to the request's own prefix (etcd3 `GetList`: `name` within a namespace,
/// `namespace/name` across namespaces).
enum ContinueToken {
    static let inconsistentMessage = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."

    static func encode(after key: ObjectKey, namespace: String?, resourceVersion: Int) -> String {
        let start = (namespace == nil ? key.path : key.name) + "\u{0}"
        let json = #"{"v":"meta.k8s.io/v1","rv":\#(resourceVersion),"start":"# + String(decoding: JSONValue.string(start).jsonBytes(), as: UTF8.self) + "}"
        return Data(json.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// `DecodeContinue`; errors as the list handler words them (400).
    static func decode(_ token: String, namespace: String?) throws(APIError) -> (after: ObjectKey, resourceVersion: Int) {
        var b64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let json = try? JSONValue.parse(Array(data)) else {
            throw APIError.badRequest("invalid continue token: continue key is not valid: illegal base64 data")
        }
        guard json["v"]?.stringValue == "meta.k8s.io/v1" else {
            throw APIError.badRequest("invalid continue token: continue key is not valid: server does not recognize this encoded version \(json["v"]?.stringValue ?? "")")
        }
        guard let rv = json["rv"]?.intValue, rv != 0 else {
            throw APIError.badRequest("invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        }
        guard var start = json["start"]?.stringValue, !start.isEmpty else {
            throw APIError.badRequest("invalid continue token: continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")
        }
        if start.hasSuffix("\u{0}") { start.removeLast() }
        if start.contains("..") { throw APIError.badRequest("invalid continue token: continue key is not valid: \(start)") }
        if let namespace { return (ObjectKey(namespace: namespace, name: start), rv) }
        let parts = start.split(separator: "/", maxSplits: 1).map(String.init)
        let key = parts.count == 2 ? ObjectKey(namespace: parts[0], name: parts[1]) : ObjectKey(namespace: "", name: parts.first ?? "")
        return (key, rv)
    }
}
