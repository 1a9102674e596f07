import Foundation

/// kubelet's atomic writer for secret, configMap, projected and downwardAPI volumes
/// (pkg/volume/util/atomic_writer.go): the files live in a timestamped directory, `..data` is a
/// symlink to it, and each user-visible name is a symlink through `..data`, so one rename(2)
/// swaps every file at once.
public enum AtomicWriter {
    /// One file of a payload: its content and its mode before `fsGroup` is applied.
    public struct File: Sendable {
        public var bytes: [UInt8]
        public var mode: UInt16
        public init(bytes: [UInt8], mode: UInt16) {
            self.bytes = bytes
            self.mode = mode
        }
    }

    static let dataDirName = "..data"
    static let newDataDirName = "..data_tmp"

    /// kubelet `AtomicWriter.Write`: validates the payload (`validatePayload`: relative paths, no
    /// ".." element, no leading "..", at most 255 bytes a name and 4096 a path), writes a new
    /// `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` directory, applies the modes, then the ownership of
    /// pkg/volume/volume_linux.go `SetVolumeOwnership` over the whole volume (these volumes are
    /// read-only: with `fsGroup` every file is chowned to group fsGroup with mode |= 0440 and
    /// every directory gets |= 02550; without, files stay root:root with the modes as given),
    /// then points `..data` at it through a `..data_tmp` symlink and rename(2), creates the
    /// user-visible symlinks (`key` → `..data/key`), removes the stale ones and the old
    /// timestamped directory.
    ///
    /// Returns false, writing nothing, when the payload equals what is there. Unlike kubelet's
    /// `shouldWritePayload`, which compares contents only, "equal" here also means the same file
    /// set, modes and group, so a changed mode or fsGroup or a removed key is written too.
    public static func write(_ payload: [String: File], to directory: String, fsGroup: UInt32?) throws -> Bool {
        var clean: [String: File] = [:]
        for (path, file) in payload {
            try validatePath(path)
            let normalized = path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
            guard !normalized.isEmpty else { throw NodeRuntimeError("atomic writer \(directory): invalid path \"\(path)\": empty") }
            guard clean[normalized] == nil else { throw NodeRuntimeError("atomic writer \(directory): duplicate path \"\(path)\"") }
            clean[normalized] = file
        }
        try makeDirectories(directory)
        let oldName = readLink(directory + "/" + dataDirName)
        let ownerGroup = fsGroup ?? getegid()
        if let oldName, try isUnchanged(clean, in: directory + "/" + oldName, group: ownerGroup, fsGroup: fsGroup != nil) {
            try createUserVisibleFiles(clean, in: directory)
            return false
        }
        let pathsToRemove = oldName.map { Set(relativePaths(in: directory + "/" + $0)).subtracting(withParents(clean.keys)) } ?? []

        let newName = try newTimestampDir(in: directory)
        let newPath = directory + "/" + newName
        do {
            try writePayload(clean, to: newPath, fsGroup: fsGroup)
            if let fsGroup { try setVolumeOwnership(directory, fsGroup: fsGroup) }
            let tmpLink = directory + "/" + newDataDirName
            if unlink(tmpLink) < 0, errno != ENOENT { throw failure("unlink", tmpLink) }
            guard symlink(newName, tmpLink) == 0 else { throw failure("symlink", tmpLink) }
            guard rename(tmpLink, directory + "/" + dataDirName) == 0 else { throw failure("rename", tmpLink) }
        } catch {
            try? FileManager.default.removeItem(atPath: newPath)
            throw error
        }
        try createUserVisibleFiles(clean, in: directory)
        for path in pathsToRemove where !path.contains("/") {
            let visible = directory + "/" + path
            if unlink(visible) < 0, errno != ENOENT { throw failure("unlink", visible) }
        }
        if let oldName, oldName != newName {
            try? FileManager.default.removeItem(atPath: directory + "/" + oldName)
        }
        return true
    }

    /// kubelet `validatePath`.
    static func validatePath(_ path: String) throws(NodeRuntimeError) {
        guard !path.isEmpty else { throw NodeRuntimeError("atomic writer: invalid path: must not be empty") }
        guard !path.hasPrefix("/") else { throw NodeRuntimeError("atomic writer: invalid path: must be relative path: \(path)") }
        guard path.utf8.count <= 4096 else { throw NodeRuntimeError("atomic writer: invalid path: must be less than or equal to 4096 characters") }
        let items = path.split(separator: "/", omittingEmptySubsequences: false)
        for item in items {
            if item == ".." { throw NodeRuntimeError("atomic writer: invalid path: must not contain '..': \(path)") }
            if item.utf8.count > 255 { throw NodeRuntimeError("atomic writer: invalid path: filenames must be less than or equal to 255 characters") }
        }
        if items[0].hasPrefix(".."), items[0].count > 2 {
            throw NodeRuntimeError("atomic writer: invalid path: must not start with '..': \(path)")
        }
        if path.utf8.contains(0) { throw NodeRuntimeError("atomic writer: invalid path: contains a NUL byte") }
    }

    // MARK: Steps

    private static func isUnchanged(_ payload: [String: File], in dir: String, group: UInt32, fsGroup: Bool) throws -> Bool {
        let existing = Set(relativePaths(in: dir).filter { isRegularFile(dir + "/" + $0) })
        guard existing == Set(payload.keys) else { return false }
        for (path, file) in payload {
            var st = stat()
            guard lstat(dir + "/" + path, &st) == 0 else { return false }
            let expectedMode = fsGroup ? file.mode | 0o440 : file.mode
            guard st.st_mode & 0o7777 == mode_t(expectedMode), st.st_gid == group else { return false }
            guard let bytes = FileManager.default.contents(atPath: dir + "/" + path), [UInt8](bytes) == file.bytes else { return false }
        }
        return true
    }

    /// `newTimestampDir`: "..2006_01_02_15_04_05." + a unique number, mode 0755.
    private static func newTimestampDir(in directory: String) throws(NodeRuntimeError) -> String {
        for _ in 0..<16 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            var seconds = now.tv_sec
            var parts = tm()
            localtime_r(&seconds, &parts)
            let name = String(format: "..%04d_%02d_%02d_%02d_%02d_%02d.%09d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                              Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec),
                              Int(now.tv_nsec) ^ Int.random(in: 0..<1000))
            let path = directory + "/" + name
            if mkdir(path, 0o755) == 0 {
                guard chmod(path, 0o755) == 0 else { throw failure("chmod", path) }
                return name
            }
            guard errno == EEXIST else { throw failure("mkdir", path) }
        }
        throw NodeRuntimeError("atomic writer \(directory): could not create a unique timestamped directory")
    }

    /// `writePayloadToDir`: each file created exclusively, written, then chmod'ed (umask aside).
    private static func writePayload(_ payload: [String: File], to dir: String, fsGroup: UInt32?) throws(NodeRuntimeError) {
        for (path, file) in payload.sorted(by: { $0.key < $1.key }) {
            let full = dir + "/" + path
            if let slash = path.lastIndex(of: "/") { try makeDirectories(dir + "/" + path[..<slash]) }
            let fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(file.mode & 0o7777))
            guard fd >= 0 else { throw failure("open", full) }
            defer { close(fd) }
            var written = 0
            while written < file.bytes.count {
                let n = file.bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("write", full)
                }
                written += n
            }
            guard fchmod(fd, mode_t(file.mode & 0o7777)) == 0 else { throw failure("chmod", full) }
            // Without fsGroup: root:root (a setgid directory left by an earlier fsGroup must not
            // hand its group down).
            if fsGroup == nil, fchown(fd, geteuid(), getegid()) != 0 { throw failure("chown", full) }
        }
    }

    /// pkg/volume/volume_linux.go `SetVolumeOwnership` + `changeFilePermission` for a
    /// read-only volume: lchown(-1, fsGroup) everything; symlinks keep their mode; files get
    /// |= 0440, directories |= 0440 | 0110 | setgid.
    private static func setVolumeOwnership(_ directory: String, fsGroup: UInt32) throws(NodeRuntimeError) {
        var pending = [directory]
        while let path = pending.popLast() {
            var st = stat()
            guard lstat(path, &st) == 0 else { throw failure("lstat", path) }
            guard lchown(path, uid_t.max, fsGroup) == 0 else { throw failure("lchown", path) }
            let type = st.st_mode & S_IFMT
            if type == S_IFLNK { continue }
            var mask: mode_t = 0o440
            if type == S_IFDIR {
                mask |= S_ISGID | 0o110
                let children = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                pending += children.map { path + "/" + $0 }
            }
            guard chmod(path, (st.st_mode & 0o7777) | mask) == 0 else { throw failure("chmod", path) }
        }
    }

    /// `createUserVisibleFiles`: a symlink per top-level name, unless something is there.
    private static func createUserVisibleFiles(_ payload: [String: File], in directory: String) throws(NodeRuntimeError) {
        let tops = Set(payload.keys.map { String($0.split(separator: "/")[0]) })
        for top in tops.sorted() {
            let visible = directory + "/" + top
            var st = stat()
            if lstat(visible, &st) == 0 { continue }
            guard symlink(dataDirName + "/" + top, visible) == 0 else { throw failure("symlink", visible) }
        }
    }

    // MARK: Helpers

    private static func failure(_ call: String, _ path: String) -> NodeRuntimeError {
        NodeRuntimeError("atomic writer: \(call) \(path): \(RuntimeSystem.errnoText(errno))")
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buffer, 4096)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
    }

    /// Every path below `dir` (files and directories), relative, without following symlinks.
    private static func relativePaths(in dir: String) -> [String] {
        var out: [String] = []
        var pending = [""]
        while let relative = pending.popLast() {
            let base = relative.isEmpty ? dir : dir + "/" + relative
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
                let child = relative.isEmpty ? name : relative + "/" + name
                out.append(child)
                var st = stat()
                if lstat(dir + "/" + child, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { pending.append(child) }
            }
        }
        return out
    }

    /// The payload's paths and each of their parent directories (kubelet `pathsToRemove`).
    private static func withParents(_ paths: some Sequence<String>) -> Set<String> {
        var out: Set<String> = []
        for path in paths {
            var parts = path.split(separator: "/")
            while !parts.isEmpty {
                out.insert(parts.joined(separator: "/"))
                parts.removeLast()
            }
        }
        return out
    }

    private static func makeDirectories(_ path: String) throws(NodeRuntimeError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw NodeRuntimeError("atomic writer: mkdir -p \(path): \(error.localizedDescription)")
        }
    }
}
