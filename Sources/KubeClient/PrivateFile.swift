public import Foundation

/// Files that hold secrets (kubeconfigs, tokens, manifests, backups): created with
/// their final mode in the `open(2)` call itself, never wider even for a moment,
/// written whole, fsynced, then renamed over the destination.
///
/// Foundation's `createFile(atPath:contents:attributes:)` creates the file with
/// 0666 & ~umask and only then applies the permissions; a descriptor opened in
/// between keeps reading whatever is written afterwards, and a later `chmod`
/// does not take it back.
public enum PrivateFile {
    /// A write that could not be done; names the file and the system's reason.
    public struct WriteError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    /// Writes `bytes` to `path` atomically with `mode` (0600 unless said otherwise).
    /// The temporary file sits beside the destination, is created with
    /// `O_CREAT|O_EXCL|O_NOFOLLOW` (so it cannot be a planted file or link) and is
    /// removed on any failure; the destination is either the old or the new content.
    public static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o600) throws(WriteError) {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        func failure(_ what: String) -> WriteError {
            WriteError(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("create") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        // umask may have narrowed the mode; it can never have widened it. Set it exactly.
        guard fchmod(fd, mode) == 0 else { close(fd); throw failure("chmod") }
        let array = Array(bytes)
        var written = 0
        while written < array.count {
            let n = array.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, array.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                close(fd)
                throw failure("write")
            }
            written += n
        }
        guard fsync(fd) == 0 else { close(fd); throw failure("fsync") }
        guard close(fd) == 0 else { throw failure("close") }
        guard rename(tmp, path) == 0 else { throw failure("rename") }
        ok = true
        // The rename itself survives a crash once the directory is synced.
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    public static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws(WriteError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }
}
