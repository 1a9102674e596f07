import Foundation
import KubeRuntime
import Logging
import ServiceLifecycle
import UnixSignals

/// The systemd side of the daemon: `READY=1` once every watcher has synced (with
/// `EXTEND_TIMEOUT_USEC` while a long initial sync runs), `STATUS=` when the summary
/// changes, `WATCHDOG=1` at half of `WATCHDOG_USEC` only while the loop is healthy,
/// `RELOADING=1`/`READY=1` around a SIGHUP reload, and `STOPPING=1` on shutdown.
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let repair: RepairService
    let elector: LeaderElector?
    let status: OperatorStatus
    let health: LoopHealth
    let reload: @Sendable () async -> Void
    let logger: Logger

    func summary() -> String {
        status.summary(watching: repair.watchedKinds, leading: elector.map { $0.isLeader })
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await self.announceReady() }
                    group.addTask { await self.pingWatchdog() }
                    group.addTask { await self.reloadOnSIGHUP() }
                    await group.waitForAll()
                }
            }
        } onGracefulShutdown: {
            notifier.send("STOPPING=1\nSTATUS=stopping")
        }
    }

    private func announceReady() async {
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // A long initial sync asks systemd for more time, 30 s at a time.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(10))
                    if Task.isCancelled || repair.sync.allSynced { return }
                    notifier.send("EXTEND_TIMEOUT_USEC=30000000\nSTATUS=initial sync: \(repair.sync.summary.synced) of \(repair.sync.summary.expected) watchers")
                }
            }
            await repair.sync.waitUntilSynced()
            group.cancelAll()
        }
        guard !Task.isCancelled else { return }
        var last = summary()
        notifier.send("READY=1\nSTATUS=\(last)")
        Failpoints.markReady()
        logger.info("initial sync complete; ready", metadata: ["event": "ready", "took": "\(ContinuousClock.now - started)", "status": "\(last)"])
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            let now = summary()
            if now != last { notifier.send("STATUS=\(now)"); last = now }
        }
    }

    private func pingWatchdog() async {
        guard let interval = notifier.watchdogPingInterval else { return }
        logger.info("systemd watchdog on", metadata: ["ping_every": "\(interval)"])
        var silent = false
        while !Task.isCancelled {
            // Healthy means a heartbeat went through the loop within the ping interval (at least 1 s).
            if health.isHealthy(staleAfter: max(interval, .seconds(1))) {
                notifier.send("WATCHDOG=1")
                silent = false
            } else if !silent {
                silent = true
                logger.error("the event loop is not responding; withholding watchdog pings", metadata: ["event": "loop_stalled"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func reloadOnSIGHUP() async {
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            notifier.send("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())\nSTATUS=reloading")
            await reload()
            notifier.send("READY=1\nSTATUS=\(summary())")
        }
    }
}
