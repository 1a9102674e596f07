import Foundation
import KubeClient
import KubeRuntime
import Logging
import Metrics
import ServiceLifecycle

/// The daemon, assembled from a checked `OperatorConfiguration`: the one place that wires
/// the refreshers, the repair watches and workers, leader election, systemd and the HTTP
/// endpoints into one ServiceGroup, stopped by SIGTERM or SIGINT.
public struct Operator: Sendable {
    public let configuration: OperatorConfiguration

    public init(configuration: OperatorConfiguration) {
        self.configuration = configuration
    }

    public func run() async throws {
        var config = configuration
        // Before any metric is created: swift-metrics binds handlers at creation.
        let metrics = OperatorMetrics()
        metrics.bootstrap()
        let names = config.names
        let connection = config.connection
        let client = KubeClient(connection: connection, userAgent: "kubetrace-operator/\(kubetraceVersion)")
        var logger = Logger(label: "kubetrace.operator")
        if case .kubetraceAPI(_, _, let id) = config.refresh.source { logger[metadataKey: "cluster_id"] = "\(id)" }
        let status = OperatorStatus()
        config.refresh.status = status

        var elector: LeaderElector?
        var watchHealth: WatchHealthBox?
        if let timing = config.leaderElection {
            let identity = "\(config.refresh.instance)_\(UUID().uuidString.lowercased().prefix(8))"
            let health = WatchHealthBox()
            let leaderGauge = Gauge(label: "kubetrace_leader", dimensions: [])
            elector = LeaderElector(client: client, namespace: names.namespace, name: names.lease, identity: identity, timing: timing, logger: logger,
                                    leaseLabels: config.repair.managedLabels,
                                    annotations: { health.annotations() },
                                    onChange: { leaderGauge.record($0 ? 1 : 0) })
            watchHealth = health
        } else {
            // Without election this process always leads.
            Gauge(label: "kubetrace_leader", dimensions: []).record(1)
        }

        do {
            let version = try await client.serverVersion()
            logger.info("connected to the API server", metadata: ["server": "\(connection.server)", "version": "\(version)", "source": "\(connection.source)", "k8s.namespace": "\(names.namespace)"])
        } catch let e as KubeClientError where e.code == .configuration {
            // The kubeconfig's credentials cannot be had (an exec plugin failed or printed garbage).
            throw CLIError.configuration("\(connection.source): \(e.message)")
        } catch {
            throw CLIError.runtime("cannot reach the API server of \(connection.source): \(error)")
        }
        // Said once connected, so a configuration error (a flag, the kubeconfig's credentials) stays the only line.
        logger.info("token sources", metadata: OperatorConfiguration.tokenSourceFacts(
            source: config.refresh.source, reason: config.tokenSourceReason, config: config.refresh, inCluster: config.inCluster,
            fileFlag: config.operatorTokenFileSetting))
        // Vultr re-minting is on when the operator Secret holds its key and registry id. A failed
        // read is not "no Secret": it is retried, and the start fails if it keeps failing.
        var operatorSecret: Secret?
        for attempt in 1...4 {
            do {
                operatorSecret = try await client.get(Secret.self, namespace: names.namespace, name: names.operatorSecret)
                break
            } catch let e as KubeClientError where e.httpStatus == 404 || e.httpStatus == 403 {
                if e.httpStatus == 403 { logger.warning("cannot read the operator Secret; Vultr re-minting stays off", metadata: ["error": "\(e)"]) }
                break
            } catch {
                guard attempt < 4 else { throw CLIError.runtime("cannot read Secret \(names.namespace)/\(names.operatorSecret): \(error)") }
                try await Task.sleep(for: .seconds(attempt))
            }
        }
        if let secret = operatorSecret, secret.data?["vultr_api_key"] != nil, secret.data?["registry_id"] != nil {
            config.refresh.vultr = (config.vultr.baseURL, config.vultr.tls)
        }

        // One watch of the operator namespace's Secrets serves both sides: the repair side's
        // (always running), fed to the refresh side (while leading).
        let secretFeed = SecretFeed(namespace: names.namespace)
        // One Event recorder for the process, off every reconcile's path (client-go's broadcaster).
        let events = EventRecorder(client: client, reporter: .kubetraceOperator(instance: config.refresh.instance), logger: logger)
        let refresh = RefreshService(client: client, configuration: config.refresh, logger: logger, secretFeed: secretFeed, events: events)
        let repair = RepairService(client: client, configuration: config.repair, logger: logger, watchIdleTimeout: config.watchIdleTimeout,
                                   minter: config.refresh.vultr != nil ? refresh : nil, secretFeed: secretFeed, events: events)
        watchHealth?.attach { repair.watchStats }
        let health = LoopHealth()
        let service = OperatorService(refresh: refresh, repair: repair, elector: elector, events: events, health: health, logger: logger)
        let notifier = SystemdNotifier(logger: logger)
        let systemd = SystemdService(notifier: notifier, repair: repair, elector: elector, status: status, health: health, reload: { [logger] in
            // SIGHUP: credential files are read again; the watches and their state stay.
            await client.credentials.invalidate()
            refresh.reload()
            logger.info("reloaded credential files", metadata: ["event": "reloaded"])
        }, logger: logger)
        let probes = HTTPEndpoints.Probes(
            healthy: { health.isHealthy() ? (true, "ok") : (false, "event loop not responding") },
            ready: { [elector] in
                guard repair.sync.allSynced else { return (false, "initial sync not complete") }
                guard let elector else { return (true, "ok") }
                if elector.isLeader { return (true, "ok: leader") }
                return elector.isHealthy ? (true, "ok: standby, leader is \(elector.holder ?? "unknown")") : (false, "cannot reach the Lease")
            },
            metrics: { metrics.render(watchers: repair.watchStats) })
        let http = HTTPEndpoints.services(health: config.healthAddress, metrics: config.metricsAddress, probes: probes, logger: logger)
        var services: [any Service] = [service, systemd] + http
        if let (file, claims) = config.ownToken {
            logger.info("renewing the operator's own token in the state directory", metadata: [
                "event": "own_token_adopted", "serviceaccount": "\(claims.namespace)/\(claims.serviceAccount)", "file": "\(file)",
                "expires_at": "\(RFC3339.format(claims.expiresAt))"])
            services.append(OwnTokenRenewal(client: client, tokenFile: file, logger: logger))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { notifier.flush() }
        try await group.run()
    }
}
