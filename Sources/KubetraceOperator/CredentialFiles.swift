import Foundation
import KubeClient

/// Reads a credential from a file named by a flag or variable: trimmed (a trailing
/// newline is common), never empty, one line of printable characters (it goes into an
/// HTTP header). Errors name the flag and the file, never the content.
func readCredentialFile(_ path: String, flag: String) throws -> SecretString {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError.configuration("\(flag): cannot read \(path)")
    }
    let value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !value.isEmpty else { throw CLIError.configuration("\(flag): \(path) is empty") }
    if let problem = CredentialChecks.headerValueProblem(value) {
        throw CLIError.configuration("\(flag): \(path) \(problem)")
    }
    return SecretString(value)
}
