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
    private let warnedFull = Atomic<Bool>(false)
    private let pending = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "kubetrace.sd-notify")
    static let maxPending = 16
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
        // sd_notify blocks once the receiver's queue is full (a busy or stuck manager, a listener
        // that does not read): measured here, the 12th unread datagram blocks for good. It runs
        // on a queue of its own, never on a task's thread, and at most `maxPending` wait; beyond
        // that STATUS updates are dropped (READY, RELOADING, STOPPING are always queued).
        let essential = !state.hasPrefix("STATUS=") && state != "WATCHDOG=1"
        guard essential || pending.load(ordering: .relaxed) < Self.maxPending else {
            if !warnedFull.exchange(true, ordering: .relaxed) {
                logger.warning("systemd is not reading notifications; dropping status updates until it does", metadata: ["notify_socket": "\(socket)"])
            }
            return
        }
        pending.add(1, ordering: .relaxed)
        queue.async { [self] in
            let r = sd_notify(0, state)
            pending.subtract(1, ordering: .relaxed)
            if r < 0, !warned.exchange(true, ordering: .relaxed) {
                logger.warning("cannot notify systemd; carrying on without it",
                               metadata: ["notify_socket": "\(socket)", "error": "\(String(cString: strerror(-r)))"])
            }
        }
    }

    /// Waits (at most `timeout`) until every queued notification went out: before exit, so
    /// STOPPING=1 is delivered, without hanging on a manager that does not read.
    func flush(timeout: DispatchTimeInterval = .seconds(2)) {
        let done = DispatchSemaphore(value: 0)
        queue.async { done.signal() }
        _ = done.wait(timeout: .now() + timeout)
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
