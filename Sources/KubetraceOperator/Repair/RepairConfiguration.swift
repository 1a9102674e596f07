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
