import KubetraceTestKit
import Foundation
import Synchronization
import Testing

/// The real systemd-journald for tests that read the journal: started when none runs (no
/// systemd as PID 1 needed, but root), shared by concurrent tests, stopped by the last user.
enum Journald {
    private struct State {
        var users = 0
        var started: Process?
    }
    private static let state = Mutex(State())

    /// Starting systemd-journald without systemd as PID 1 needs root (CI runs as root).
    static var canStart: Bool { getuid() == 0 }

    /// Runs `body` with journald listening. Tests calling it are `.enabled(if: Journald.canStart)`;
    /// without root this records an issue instead of passing.
    static func withRunning(_ body: () async throws -> Void) async throws {
        guard canStart else {
            Issue.record("systemd-journald cannot be started here (uid \(getuid())): mark the test .enabled(if: Journald.canStart)")
            return
        }
        let startErr = state.withLock { s -> (any Error)? in
            s.users += 1
            guard s.started == nil, !running() else { return nil }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/lib/systemd/systemd-journald")
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { return error }
            s.started = p
            return nil
        }
        defer {
            let stop = state.withLock { s -> Process? in
                s.users -= 1
                guard s.users == 0 else { return nil }
                defer { s.started = nil }
                return s.started
            }
            if let stop { stop.terminate(); stop.waitUntilExit() }
        }
        if let startErr { throw startErr }
        // Wait (bounded) until it listens: a connect to its socket succeeds.
        let end = ContinuousClock.now + .seconds(10)
        while !socketListening(), ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(50)) }
        #expect(socketListening(), "systemd-journald did not start listening")
        try await body()
    }

    /// A systemd-journald process exists (its socket file may be a stale leftover).
    static func running() -> Bool {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.contains { pid in
            pid.allSatisfy(\.isNumber) && (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("systemd-journal") == true
        }
    }

    static func socketListening() -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array("/run/systemd/journal/socket".utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.enumerated() { raw[i] = b } }
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } } == 0
    }
}
