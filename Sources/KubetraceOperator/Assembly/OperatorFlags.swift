import Foundation
import KubeClient

/// `kubetrace-operator run`'s flags as given, before any is checked: the command line fills
/// it; `OperatorConfiguration` validates it together with the environment.
public struct OperatorFlags: Sendable {
    public init() {}
    public var cluster = ClusterSelection()
    public var apiUrl: String?
    public var clusterId: String?
    public var allowInsecureHttp = false
    public var operatorTokenFile: String?
    public var caFile: String?
    public var tokenSource: String?
    public var tokenAudience: [String] = []
    public var tokenLifetime = "1h"
    public var safetyMargin: String?
    public var refreshInterval: String?
    public var registry = "blr.vultrcr.com"
    public var vultrApiUrl = "https://api.vultr.com"
    public var registryLifetime = "24h"
    public var targetNamespaces: String?
    public var targetServiceAccounts: String?
    public var restartStuckPods: String?
    public var leaderElect: String?
    public var leaseDuration: String?
    public var renewDeadline: String?
    public var retryPeriod: String?
    public var watchIdleTimeout: String?
    public var logFormat: String?
    public var logLevel: String?
    public var healthAddr: String?
    public var metricsAddr: String?
}
