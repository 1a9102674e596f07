import Foundation

/// `true`/`false` (and 1/0, yes/no, on/off) from a flag, else from the environment.
func boolean(_ value: String?, _ flag: String, _ envName: String?, _ env: [String: String]) throws -> Bool? {
    guard let v = value ?? envName.flatMap({ env[$0] }) else { return nil }
    switch v.lowercased() {
    case "true", "1", "yes", "on": return true
    case "false", "0", "no", "off": return false
    default: throw CLIError.configuration("\(value != nil ? flag : envName ?? flag): \"\(v)\" is not true or false")
    }
}
