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
        func failure(_ what: String, _ code: Int32 = errno) -> WriteError {
            WriteError(path: path, reason: "\(what): \(String(cString: strerror(code)))")
        }
        /// Closes `fd` keeping the errno of the failure being reported.
        func failing(_ what: String, closing fd: Int32) -> WriteError {
            let code = errno
            close(fd)
            return failure(what, code)
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("create") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        // umask may have narrowed the mode; it can never have widened it. Set it exactly.
        guard fchmod(fd, mode) == 0 else { throw failing("chmod", closing: fd) }
        // Written from the caller's own storage where it is contiguous: no extra copy of a secret.
        let direct: Bool? = bytes.withContiguousStorageIfAvailable { writeAll(fd, UnsafeRawBufferPointer($0)) }
        let complete = direct ?? Array(bytes).withUnsafeBytes { writeAll(fd, $0) }
        guard complete else { throw failing("write", closing: fd) }
        guard fsync(fd) == 0 else { throw failing("fsync", closing: fd) }
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

    /// Writes the whole buffer, retrying short writes and EINTR; false on an error (errno set).
    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var written = 0
        while written < buffer.count {
            let n = Foundation.write(fd, buffer.baseAddress! + written, buffer.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            written += n
        }
        return true
    }

    public static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws(WriteError) {
        try write(Array(text.utf8), to: path, mode: mode)
    }
}
