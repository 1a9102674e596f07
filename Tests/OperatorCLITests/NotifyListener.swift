import KubetraceTestKit
import Foundation
import Synchronization

/// A real `AF_UNIX` datagram socket standing in for systemd's notify socket
/// (a path, or an abstract `@name`); each datagram is recorded with its arrival time.
final class NotifyListener: @unchecked Sendable {
    let address: String
    let messages = LogSink()
    let times = Mutex<[(at: ContinuousClock.Instant, text: String)]>([])
    private let fd: Int32
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchGroup()

    init(abstractName: String? = nil, path: String? = nil) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes: [UInt8]
        if let abstractName {
            bytes = [0] + Array(abstractName.utf8)
            address = "@" + abstractName
        } else {
            bytes = Array(path!.utf8)
            address = path!
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstractName == nil ? 1 : 0))
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard r == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        done.enter()
        onOwnThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !stopped.load(ordering: .relaxed) {
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n > 0 else { continue }
                let text = String(decoding: buffer[..<n], as: UTF8.self)
                times.withLock { $0.append((.now, text)) }
                messages.append(text.replacingOccurrences(of: "\n", with: " | "))
            }
            done.leave()
        }
    }

    /// The datagrams so far, in order.
    var all: [String] { times.withLock { $0.map(\.text) } }

    deinit {
        stopped.store(true, ordering: .relaxed)
        done.wait()
        close(fd)
    }
}
