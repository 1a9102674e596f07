import Foundation
import Logging

extension Kubelet {
    /// Clears what a previous run under the same root left when it was killed without stopping
    /// its Pods (SIGKILL, a crash): kubelet's orphaned-volume cleanup at start
    /// (kubelet_volumes.go `cleanupOrphanedPodDirs`), done wholesale because no Pod of this
    /// run exists yet. Every mount below the root is detached first (secret and projected
    /// volumes are tmpfs holding tokens), then each `pods/*` entry is removed — unless a
    /// mount is still there, which is never recursed into.
    static func removeStaleState(root: String, logger: Logger) {
        VolumeMounts.unmountAll(under: root)
        let pods = root + "/pods"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: pods), !entries.isEmpty else { return }
        let mounted = VolumeMounts.mounts().map(\.target)
        var removed = 0
        for entry in entries {
            let path = pods + "/" + entry
            let real = VolumeMounts.realpath(path)
            if mounted.contains(where: { $0 == real || $0.hasPrefix(real + "/") }) {
                logger.info("a stale pod directory is still mounted; left in place", metadata: ["path": "\(path)"])
                continue
            }
            do {
                try FileManager.default.removeItem(atPath: path)
                removed += 1
            } catch {
                logger.info("cannot remove a stale pod directory", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        logger.info("removed the pod directories of a previous run", metadata: ["count": "\(removed)", "root": "\(root)"])
    }
}
