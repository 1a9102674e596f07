import Foundation

/// Opt-in namespaces beyond the operator's own (SPEC §3 `TARGET_NAMESPACES`).
public enum TargetNamespaces: Sendable, Equatable {
    case list([String])
    /// `selector=LABEL_SELECTOR`: namespaces by label, followed as they come and go.
    case selector(String)

    /// Parses `a,b,c` or `selector=team=payments`; `flag` names the source in errors.
    public static func parse(_ raw: String, flag: String) throws -> TargetNamespaces? {
        let text = raw.trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return nil }
        if text.hasPrefix("selector=") {
            let selector = String(text.dropFirst("selector=".count)).trimmingCharacters(in: .whitespaces)
            guard !selector.isEmpty else { throw CLIError.configuration("\(flag): selector= needs a label selector, e.g. selector=kubetrace.net/pull-secret=true") }
            if let problem = LabelSelectorSyntax.problem(selector) { throw CLIError.configuration("\(flag): selector \(problem)") }
            return .selector(selector)
        }
        var names: [String] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingCharacters(in: .whitespaces)
            guard isDNSLabel(name) else { throw CLIError.configuration("\(flag): \"\(name)\" is not a namespace name (lower-case letters, digits and '-', at most 63)") }
            if !names.contains(name) { names.append(name) }
        }
        return .list(names)
    }

    static func isDNSLabel(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 63, s.first != "-", s.last != "-" else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
    }
}

/// A registry host as `.dockerconfigjson` keys and image references name it: `host` or `host:port`.
enum RegistryHost {
    static func isValid(_ s: String) -> Bool {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let host = parts.first, !host.isEmpty, host.count <= 253 else { return false }
        if parts.count == 2 { guard let port = Int(parts[1]), (1...65_535).contains(port) else { return false } }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
        }
    }
}

/// What the repair handlers keep, beyond the object names.
public struct RepairConfiguration: Sendable {
    public var names = ObjectNames()
    public var registryHost = "blr.vultrcr.com"
    public var targetNamespaces: TargetNamespaces?
    /// ServiceAccounts kept referencing the pull Secret in target namespaces.
    public var targetServiceAccounts = ["default"]
    /// Delete a controller-owned Pod that still backs off after the repair, once.
    public var restartStuckPods = true
    public var instance = ProcessInfo.processInfo.hostName

    public init() {}

    static let managedByKey = "app.kubernetes.io/managed-by"
    static let managedByValue = "kubetrace-operator"
    var managedLabels: [String: String] { [Self.managedByKey: Self.managedByValue] }
}
