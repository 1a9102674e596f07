import Foundation
import Logging

extension OperatorConfiguration {
    /// The start-up line that says where the read-only token comes from, why, and where the
    /// operator token is read from and a rotated one written to.
    static func tokenSourceFacts(source: TokenSource, reason: String, config: RefreshConfiguration, inCluster: Bool, fileFlag: String) -> Logger.Metadata {
        var facts: Logger.Metadata = ["token_source_reason": "\(reason)"]
        switch source {
        case .kubetraceAPI(let baseURL, _, _):
            facts["token_source"] = "kubetrace-api"
            facts["api_url"] = "\(baseURL)"
            let secret = "\(config.names.namespace)/\(config.names.operatorSecret)"
            if let file = config.operatorTokenFile {
                facts["operator_token"] = "file \(file) (\(fileFlag))"
                facts["operator_token_rotations"] = inCluster ? "Secret \(secret), which the kubelet projects into the file" : "the file"
            } else {
                facts["operator_token"] = config.credentialsDirectory.map { "Secret \(secret), else \($0)/operator_token" } ?? "Secret \(secret)"
                facts["operator_token_rotations"] = "Secret \(secret)"
            }
        case .tokenRequest(let audiences, let lifetime):
            facts["token_source"] = "tokenrequest"
            facts["k8s.serviceaccount"] = "\(config.names.namespace)/\(config.names.readOnlyServiceAccount)"
            facts["token_lifetime_s"] = "\(lifetime)"
            if !audiences.isEmpty { facts["token_audiences"] = "\(audiences.joined(separator: ","))" }
        }
        return facts
    }
}
