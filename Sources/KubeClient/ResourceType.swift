import Foundation

/// Where a kind lives in the API: `/api/v1/…` for the core group,
/// `/apis/GROUP/VERSION/…` otherwise.
public struct ResourceType: Sendable, Hashable {
    public var group: String
    public var version: String
    /// The plural resource name in URLs (`secrets`).
    public var plural: String
    public var kind: String
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, kind: String, namespaced: Bool = true) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
    }

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// The path of a collection or of one object (and its subresource).
    /// A `nil` namespace on a namespaced kind addresses all namespaces.
    public func path(namespace: String? = nil, name: String? = nil, subresource: String? = nil) -> String {
        var p = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace { p += "/namespaces/\(ResourceType.escape(namespace))" }
        p += "/\(plural)"
        if let name {
            p += "/\(ResourceType.escape(name))"
            if let subresource { p += "/\(subresource)" }
        }
        return p
    }

    /// Percent-encodes one URL path segment.
    public static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: pathSegmentAllowed) ?? segment
    }

    private static let pathSegmentAllowed: CharacterSet = {
        var s = CharacterSet.alphanumerics
        s.insert(charactersIn: "-._~:@")
        return s
    }()
}

/// Query parameters of list and watch calls, encoded in a fixed order.
public struct ListOptions: Sendable, Equatable {
    public var labelSelector: String?
    public var fieldSelector: String?
    public var limit: Int?
    public var `continue`: String?
    public var resourceVersion: String?
    public var resourceVersionMatch: String?
    public var timeoutSeconds: Int?
    public var allowWatchBookmarks: Bool = false
    public var sendInitialEvents: Bool?

    public init(labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int? = nil, continue: String? = nil,
                resourceVersion: String? = nil) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continue = `continue`
        self.resourceVersion = resourceVersion
    }

    /// The query items; `watch` adds `watch=1`.
    public func queryItems(watch: Bool = false) -> [(String, String)] {
        var q: [(String, String)] = []
        if watch { q.append(("watch", "1")) }
        if let labelSelector { q.append(("labelSelector", labelSelector)) }
        if let fieldSelector { q.append(("fieldSelector", fieldSelector)) }
        if let limit { q.append(("limit", String(limit))) }
        if let c = self.continue, !c.isEmpty { q.append(("continue", c)) }
        if let resourceVersion { q.append(("resourceVersion", resourceVersion)) }
        if let resourceVersionMatch { q.append(("resourceVersionMatch", resourceVersionMatch)) }
        if let timeoutSeconds { q.append(("timeoutSeconds", String(timeoutSeconds))) }
        if allowWatchBookmarks { q.append(("allowWatchBookmarks", "true")) }
        if let sendInitialEvents { q.append(("sendInitialEvents", sendInitialEvents ? "true" : "false")) }
        return q
    }
}

/// Percent-encodes query items strictly (a `+` or `&` in a selector must not change its meaning).
public func encodeQuery(_ items: [(String, String)]) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return items.map { k, v in
        "\(k.addingPercentEncoding(withAllowedCharacters: allowed) ?? k)=\(v.addingPercentEncoding(withAllowedCharacters: allowed) ?? v)"
    }.joined(separator: "&")
}
