import Foundation
import Synchronization

/// What a `ContainerProcess` shares with its two threads: the exit (reaped by one thread blocked
/// in waitpid on this pid) and the output (read by one thread polling both pipes). Threads, not
/// tasks: both block in system calls, which must not happen on the cooperative pool.
final class ContainerProcessState: Sendable {
    let pid: Int32
    let pidfd: Int32
    let enteredWithChroot: Bool
    private let exit = Mutex<ExitState>(.running([]))
    private let lines = OutputLines()

    private enum ExitState {
        case running([CheckedContinuation<ContainerExit, Never>])
        case exited(ContainerExit)
    }

    init(pid: Int32, pidfd: Int32, enteredWithChroot: Bool) {
        self.pid = pid
        self.pidfd = pidfd
        self.enteredWithChroot = enteredWithChroot
    }

    deinit { close(pidfd) }

    func startReaping() {
        let thread = Thread { [self] in
            let status = RuntimeSystem.waitForExit(pid)
            let waiters = exit.withLock { state -> [CheckedContinuation<ContainerExit, Never>] in
                guard case .running(let waiters) = state else { return [] }
                state = .exited(status)
                return waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        thread.name = "kubesim-container-\(pid)-wait"
        thread.start()
    }

    func wait() async -> ContainerExit {
        await withCheckedContinuation { continuation in
            let done = exit.withLock { state -> ContainerExit? in
                switch state {
                case .exited(let status): return status
                case .running(var waiters):
                    waiters.append(continuation)
                    state = .running(waiters)
                    return nil
                }
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    func signal(_ signal: Int32) {
        let running = exit.withLock { state in
            if case .running = state { return true }
            return false
        }
        // Between the reap and the state change pidfd_send_signal fails with ESRCH: still a no-op.
        if running { _ = RuntimeSystem.signal(pidfd: pidfd, signal) }
    }

    /// Starts the reader thread and returns the consumer's end.
    func startReading(stdout: Int32, stderr: Int32) -> AsyncStream<(ContainerOutputStream, [UInt8])> {
        let lines = self.lines
        let thread = Thread {
            OutputLines.read(stdout: stdout, stderr: stderr, into: lines)
        }
        thread.name = "kubesim-container-\(pid)-output"
        thread.start()
        return AsyncStream(unfolding: { await lines.next() }, onCancel: { lines.abandon() })
    }
}

/// The bounded queue between a container's pipes and the `output` sequence: the reader thread
/// waits while `limit` bytes are unread, so a container that writes faster than the kubelet
/// reads blocks in write(2), as it would on a full pipe.
final class OutputLines: @unchecked Sendable {
    typealias Line = (ContainerOutputStream, [UInt8])

    static let limit = 1 << 20
    /// containerd's CRI `max_container_log_line_size` default: longer lines arrive in pieces.
    static let maxLine = 16 << 10

    // Guarded by `condition`; the reader thread waits on it, the consumer never blocks.
    private let condition = NSCondition()
    private var items: [Line] = []
    private var head = 0
    private var buffered = 0
    private var finished = false
    private var abandoned = false
    private var waiter: CheckedContinuation<Line?, Never>?

    /// Reader thread: hands a line over, waiting while the queue is full.
    func push(_ line: Line) {
        condition.lock()
        while !abandoned, waiter == nil, buffered >= Self.limit { condition.wait() }
        if abandoned {
            condition.unlock()
            return
        }
        if let waiter {
            self.waiter = nil
            condition.unlock()
            waiter.resume(returning: line)
            return
        }
        items.append(line)
        buffered += line.1.count + 1
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished = true
        let waiter = self.waiter
        self.waiter = nil
        condition.unlock()
        waiter?.resume(returning: nil)
    }

    /// The consumer stopped: the rest is read and dropped so the container never blocks on us.
    func abandon() {
        condition.lock()
        abandoned = true
        items = []
        head = 0
        buffered = 0
        let waiter = self.waiter
        self.waiter = nil
        condition.broadcast()
        condition.unlock()
        waiter?.resume(returning: nil)
    }

    func next() async -> Line? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Line?, Never>) in
                condition.lock()
                if head < items.count {
                    let line = items[head]
                    head += 1
                    buffered -= line.1.count + 1
                    if head >= 1024, head * 2 >= items.count {
                        items.removeFirst(head)
                        head = 0
                    }
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: line)
                } else if finished || abandoned {
                    condition.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiter = continuation
                    condition.signal()  // a reader waiting on a full queue may hand over directly
                    condition.unlock()
                }
            }
        } onCancel: {
            abandon()
        }
    }

    /// Polls both pipes until both reach EOF, splitting lines; closes the fds.
    static func read(stdout: Int32, stderr: Int32, into lines: OutputLines) {
        let streams: [ContainerOutputStream] = [.stdout, .stderr]
        var fds = [pollfd(fd: stdout, events: Int16(POLLIN), revents: 0), pollfd(fd: stderr, events: Int16(POLLIN), revents: 0)]
        var partial: [[UInt8]] = [[], []]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fds[i].fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR || errno == EAGAIN { continue }
                if n > 0 {
                    partial[i] += buffer[..<n]
                    var start = 0
                    var index = 0
                    let chunk = partial[i]
                    while index < chunk.count {
                        if chunk[index] == 10 {
                            lines.push((streams[i], Array(chunk[start..<index])))
                            start = index + 1
                        } else if index - start >= maxLine {
                            // A full piece and more to come: a line of exactly maxLine stays whole.
                            lines.push((streams[i], Array(chunk[start..<index])))
                            start = index
                        }
                        index += 1
                    }
                    partial[i] = Array(chunk[start...])
                } else {
                    if !partial[i].isEmpty { lines.push((streams[i], partial[i])) }
                    partial[i] = []
                    close(fds[i].fd)
                    fds[i].fd = -1
                }
            }
        }
        for f in fds where f.fd >= 0 { close(f.fd) }
        lines.finish()
    }
}
