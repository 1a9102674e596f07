public import KubeClient

/// The `.dockerconfigjson` document of a `kubernetes.io/dockerconfigjson` Secret.
public enum DockerConfigJSON {
    /// Whether `document` is a JSON object with an `auths` object holding an entry for `host`.
    /// Docker accepts `host`, `https://host` and `https://host/v1/` alike; anything else is no match.
    public static func hasCredentials(_ document: SecretBytes, for host: String) -> Bool {
        guard let json = try? JSONValue.parse(document.bytes), case .object(let root) = json,
              case .object(let auths)? = root["auths"] else { return false }
        return auths.keys.contains { registryHost(ofAuthsKey: $0) == host }
    }

    /// The host (with port, if any) an `auths` key names.
    public static func registryHost(ofAuthsKey key: String) -> String? {
        var k = Substring(key)
        if k.hasPrefix("https://") { k = k.dropFirst(8) } else if k.hasPrefix("http://") { k = k.dropFirst(7) }
        return k.split(separator: "/").first.map(String.init)
    }
}
