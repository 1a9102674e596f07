import Foundation

/// The mounts that back pod volumes on the node.
public enum VolumeMounts {
    /// kubelet backs secret and projected volumes with tmpfs (pkg/volume/secret/secret.go
    /// `SetUpAt` wraps an emptyDir with `medium: Memory`; pkg/volume/emptydir/empty_dir.go
    /// `setupTmpfs`) so secrets never reach the disk: mkdir -p, then mount tmpfs mode=0755.
    /// Already a tmpfs mount point: nothing to do (kubelet checks `IsLikelyNotMountPoint`).
    public static func mountTmpfs(at path: String) throws(NodeRuntimeError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw NodeRuntimeError("mkdir -p \(path): \(error.localizedDescription)")
        }
        let resolved = realpath(path)
        if mounts().contains(where: { $0.target == resolved && $0.type == "tmpfs" }) { return }
        let error = RuntimeSystem.mountTmpfs(path, options: "mode=0755")
        guard error == 0 else { throw NodeRuntimeError("mount tmpfs at \(path): \(RuntimeSystem.errnoText(error))") }
    }

    /// umount2(MNT_DETACH); not mounted (EINVAL) or missing (ENOENT) is fine.
    public static func unmount(_ path: String) {
        _ = RuntimeSystem.unmountDetach(path)
    }

    /// Start-up cleanup after a crash (kubelet's orphaned pod volume cleanup): detaches every
    /// mount whose target is below `directory`, from /proc/self/mountinfo, deepest first.
    public static func unmountAll(under directory: String) {
        let root = realpath(directory)
        let prefix = root.hasSuffix("/") ? root : root + "/"
        let targets = mounts().map(\.target).filter { $0.hasPrefix(prefix) }
        // Deepest first; a path mounted twice appears twice and is detached twice.
        for target in targets.sorted(by: { $0.split(separator: "/").count > $1.split(separator: "/").count }) {
            _ = RuntimeSystem.unmountDetach(target)
        }
    }

    // MARK: /proc/self/mountinfo

    struct MountEntry {
        var target: String
        var type: String
    }

    /// proc(5) mountinfo: field 5 is the mount point (octal escapes for space, tab, newline and
    /// backslash), the filesystem type follows the " - " separator.
    static func mounts() -> [MountEntry] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        var out: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            out.append(MountEntry(target: unescape(fields[4]), type: String(fields[dash + 1])))
        }
        return out
    }

    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let b = utf8.first {
            if b == UInt8(ascii: "\\"), utf8.count >= 4,
               let value = UInt8(String(decoding: utf8.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(4)
            } else {
                bytes.append(b)
                utf8 = utf8.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// realpath(3), or the path itself when it does not resolve.
    static func realpath(_ path: String) -> String {
        guard let resolved = Glibc.realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
