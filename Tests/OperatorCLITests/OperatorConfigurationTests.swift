import Foundation
import KubeClient
import KubeRuntime
import KubetraceOperator
import KubetraceTestKit
import Testing

/// `OperatorConfiguration` is the one place `run` reads flags and environment: checked in
/// process, without starting the daemon or touching the network.
@Suite struct OperatorConfigurationTests {
    static func kubeconfig(_ dir: TempDir) -> String {
        dir.write("kubeconfig", """
        current-context: c
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
        users: [{name: u, user: {token: t}}]
        contexts: [{name: c, context: {cluster: c, user: u, namespace: ops}}]
        """)
    }

    static func message(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as CLIError { return e.exitCode == ExitStatus.usage ? e.message : "exit \(e.exitCode): \(e.message)" } catch { return "\(error)" }
    }

    @Test func environmentAloneConfiguresTheAPISourceWithDefaults() throws {
        let dir = TempDir()
        let env = ["KUBECONFIG": Self.kubeconfig(dir), "API_URL": "https://api.example.com", "CLUSTER_ID": "c-1", "POD_NAMESPACE": "kubetrace-system"]
        let config = try OperatorConfiguration(flags: OperatorFlags(), environment: env)
        guard case .kubetraceAPI(let baseURL, _, let id) = config.refresh.source else { Issue.record("not the API source"); return }
        #expect(baseURL == "https://api.example.com" && id == "c-1")
        #expect(config.names.namespace == "kubetrace-system")
        #expect(config.inCluster == false)
        #expect(config.leaderElection?.leaseDuration == 15 && config.leaderElection?.renewDeadline == 10 && config.leaderElection?.retryPeriod == 2)
        #expect(config.watchIdleTimeout == .seconds(90))
        #expect(config.repair.targetServiceAccounts == ["default"] && config.repair.restartStuckPods)
        #expect(config.refresh.registryLifetimeSeconds == 86_400)
    }

    @Test func flagsWinOverTheEnvironmentAndErrorsNameWhicheverWasUsed() throws {
        let dir = TempDir()
        var env = ["KUBECONFIG": Self.kubeconfig(dir), "API_URL": "https://api.example.com", "CLUSTER_ID": "c-1"]
        var flags = OperatorFlags()
        flags.clusterId = "from-flag"
        flags.safetyMargin = "2m"
        env["SAFETY_MARGIN"] = "9m"
        let config = try OperatorConfiguration(flags: flags, environment: env)
        guard case .kubetraceAPI(_, _, let id) = config.refresh.source else { Issue.record("not the API source"); return }
        #expect(id == "from-flag")
        #expect(config.refresh.policy.safetyMargin == 120)

        env["SAFETY_MARGIN"] = "soon"
        #expect(Self.message { _ = try OperatorConfiguration(flags: OperatorFlags(), environment: env) } == #"SAFETY_MARGIN: "soon" is not a duration (e.g. 5m, 90s)"#)
        flags.safetyMargin = "later"
        #expect(Self.message { _ = try OperatorConfiguration(flags: flags, environment: env) } == #"--safety-margin: "later" is not a duration (e.g. 5m, 90s)"#)
    }

    @Test func leaderElectionTimingIsCheckedAndCanBeTurnedOff() throws {
        let dir = TempDir()
        let env = ["KUBECONFIG": Self.kubeconfig(dir), "TOKEN_SOURCE": "tokenrequest"]
        var flags = OperatorFlags()
        flags.leaseDuration = "5s"
        flags.renewDeadline = "10s"
        #expect(Self.message { _ = try OperatorConfiguration(flags: flags, environment: env) }?.hasPrefix("--lease-duration, --renew-deadline, --retry-period: need") == true)
        flags = OperatorFlags()
        flags.leaderElect = "off"
        #expect(try OperatorConfiguration(flags: flags, environment: env).leaderElection == nil)
        flags.leaderElect = "maybe"
        #expect(Self.message { _ = try OperatorConfiguration(flags: flags, environment: env) } == #"--leader-elect: "maybe" is not true or false"#)
    }

    @Test func theTokenRequestSourceNeedsNoAPIAndRefusesShortLifetimes() throws {
        let dir = TempDir()
        let env = ["KUBECONFIG": Self.kubeconfig(dir)]
        let config = try OperatorConfiguration(flags: OperatorFlags(), environment: env)
        guard case .tokenRequest(let audiences, let lifetime) = config.refresh.source else { Issue.record("not TokenRequest"); return }
        #expect(audiences.isEmpty && lifetime == 3600)
        var flags = OperatorFlags()
        flags.tokenLifetime = "5m"
        #expect(Self.message { _ = try OperatorConfiguration(flags: flags, environment: env) } == "--token-lifetime: must be at least 10m (the API server refuses shorter TokenRequests)")
        flags = OperatorFlags()
        flags.tokenSource = "api"
        #expect(Self.message { _ = try OperatorConfiguration(flags: flags, environment: env) } == "--api-url (or API_URL) is required with --token-source api")
    }

    @Test func targetsAreParsedAndBadNamesRefused() throws {
        let dir = TempDir()
        var env = ["KUBECONFIG": Self.kubeconfig(dir), "TARGET_NAMESPACES": "apps, web", "TARGET_SERVICE_ACCOUNTS": "default,builder"]
        let config = try OperatorConfiguration(flags: OperatorFlags(), environment: env)
        #expect(config.repair.targetNamespaces == .list(["apps", "web"]))
        #expect(config.repair.targetServiceAccounts == ["default", "builder"])
        env["TARGET_SERVICE_ACCOUNTS"] = "Bad_Name"
        #expect(Self.message { _ = try OperatorConfiguration(flags: OperatorFlags(), environment: env) } == #"TARGET_SERVICE_ACCOUNTS: "Bad_Name" is not a ServiceAccount name"#)
    }
}
