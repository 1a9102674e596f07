import Foundation
import KubeRuntime
import KubeClient
import Logging
import ServiceLifecycle

/// The daemon's work as one Service. Watches run at all times; refreshers and
/// repair workers run only while this replica leads. On graceful shutdown the
/// workers stop taking work, in-flight writes finish, the watches stop, and the
/// Lease is released so the next replica takes over at once.
struct OperatorService: Service {
    let refresh: RefreshService
    let repair: RepairService
    let elector: LeaderElector?
    /// The process's one Event recorder: both sides record into it; it runs here, beside the watches.
    let events: EventRecorder
    let health: LoopHealth
    let logger: Logger

    func run() async throws {
        let lead: @Sendable () async throws -> Void = { [refresh, repair, logger] in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await refresh.run() }
                group.addTask { await repair.runWorkers(); logger.debug("repair workers stopped") }
                // The workers return once drained (shutdown); the refreshers then stop too.
                try await group.next()
                group.cancelAll()
            }
            logger.debug("leader work stopped")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [events] in await events.run() }
            group.addTask { try await repair.runWatches() }
            group.addTask { [health, repair] in await health.run { await repair.heartbeat() } }
            group.addTask { [elector, repair] in
                try await withGracefulShutdownHandler {
                    if let elector { try await elector.run(whileLeading: lead) } else { try await lead() }
                } onGracefulShutdown: { [logger] in
                    logger.info("stopping: draining the repair queue", metadata: ["event": "stopping"])
                    repair.drain()
                    elector?.stop()
                }
            }
            // Either leadership work ended (shutdown) or a watcher failed.
            do {
                try await group.next()
            } catch {
                group.cancelAll()
                throw error
            }
            // The last Events (a refresh or repair just before the stop) are written, within 5 s.
            await withTaskGroup(of: Void.self) { drain in
                drain.addTask { [events] in await events.waitUntilWritten() }
                drain.addTask { try? await Task.sleep(for: .seconds(5)) }
                await drain.next()
                drain.cancelAll()
            }
            logger.debug("stopping the watches")
            group.cancelAll()
        }
        do {
            try await elector?.release()
        } catch {
            logger.warning("could not release the lease; another replica takes over after it lapses", metadata: ["error": "\(error)"])
        }
    }
}
