import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU time and context switches of a process (all its threads), from /proc.
public enum ProcessStats {
    public struct Sample: Sendable { public var cpuSeconds: Double; public var contextSwitches: Int }

    public static func sample(_ pid: Int32) -> Sample {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var cpu = 0.0
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // Fields after the command: state is [0]; utime [11], stime [12].
            if fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) { cpu = (u + s) / ticks }
        }
        var switches = 0
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for t in tasks {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches") || line.hasPrefix("nonvoluntary_ctxt_switches") {
                switches += Int(line.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
            }
        }
        return Sample(cpuSeconds: cpu, contextSwitches: switches)
    }

    public static func rssMegabytes(_ pid: Int32, field: String = "VmRSS:") -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }
}

/// An `AF_UNIX` datagram socket standing in for systemd's notify socket.
public final class DatagramListener: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    deinit { close(fd) }

    /// Reads and discards datagrams until the socket fails (blocking: run it on a thread of its
    /// own). A notify socket nobody reads fills after 11 datagrams and then blocks the sender.
    public func drain() {
        var timeout = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &buffer, buffer.count, 0) >= 0 {}
    }

    /// Blocks (this bench's own thread of control) until a datagram contains `text`.
    public func waitFor(_ text: String, seconds: Int) -> Bool {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { return false }
            if String(decoding: buffer[..<n], as: UTF8.self).contains(text) { return true }
        }
    }
}

/// A child process run to its end and timed as a whole, from spawn to exit (start-up
/// included). (Not its peak RSS: after a vfork-style spawn, `wait4`'s maximum includes
/// the spawning process's own; a child reports its `VmHWM` itself.)
public struct MeasuredRun: Sendable {
    public var status: Int32
    public var wallSeconds: Double
    public var stdout: String

    /// Runs `argv` (`argv[0]` looked up in PATH) with `environment`, capturing stdout;
    /// stderr is the caller's.
    public static func run(_ argv: [String], environment: [String: String]) throws -> MeasuredRun {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let started = ContinuousClock.now
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, cEnv)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        close(pipeFDs[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let wall = ContinuousClock.now - started
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return MeasuredRun(status: exited, wallSeconds: Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18,
                           stdout: String(decoding: out, as: UTF8.self))
    }
}
