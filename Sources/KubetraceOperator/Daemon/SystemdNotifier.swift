import CSystemd
import Foundation
import Logging
import Synchronization

/// `sd_notify` through libsystemd. Without `NOTIFY_SOCKET` every call is a no-op;
/// a socket that cannot be reached is warned about once and the operator carries on.
final class SystemdNotifier: Sendable {
    let logger: Logger
    public let socket: String?
    private let warned = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    /// Every state sent, for tests of the sequence in process.
    let sent = Mutex<[String]>([])

    init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        socket = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        self.logger = logger
    }

    public var isEnabled: Bool { socket != nil }

    public func send(_ state: String) {
        guard let socket else { return }
        // After STOPPING=1 only watchdog pings go out: no late STATUS= or READY=.
        if state.hasPrefix("STOPPING=1") { stopping.store(true, ordering: .relaxed) }
        else if stopping.load(ordering: .relaxed), state != "WATCHDOG=1" { return }
        sent.withLock { $0.append(state) }
        let r = sd_notify(0, state)
        if r < 0, !warned.exchange(true, ordering: .relaxed) {
            logger.warning("cannot notify systemd; carrying on without it",
                           metadata: ["notify_socket": "\(socket)", "error": "\(String(cString: strerror(-r)))"])
        }
    }

    /// Half of `WATCHDOG_USEC` when the watchdog is on for this process (libsystemd checks `WATCHDOG_PID`).
    public var watchdogPingInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec / 2))
    }

    /// `CLOCK_MONOTONIC` in microseconds, for `MONOTONIC_USEC=` with `RELOADING=1`.
    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}
