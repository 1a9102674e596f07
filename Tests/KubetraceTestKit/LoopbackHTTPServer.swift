public import Foundation
public import KubeClient
import Synchronization

/// A misbehaving HTTP/1.1 server on 127.0.0.1 (the devcluster only behaves): each connection's
/// request head is read, then `answer` writes whatever it likes through `write`, which returns
/// false once the client has gone away. Connections are served on threads of their own.
public final class LoopbackHTTPServer: Sendable {
    public let port: Int
    private let fd: Int32

    /// A client of this server over plain HTTP, with a bearer token it ignores.
    public func client() throws -> KubeClient {
        let yaml = """
        apiVersion: v1
        kind: Config
        current-context: c
        clusters: [{name: c, cluster: {server: "http://127.0.0.1:\(port)"}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        users: [{name: u, user: {token: t}}]
        """
        return KubeClient(connection: try ClusterConnection.from(kubeconfig: try KubeConfig.parse(yaml: yaml, file: "loopback", directory: "/")))
    }

    public init(answer: @escaping @Sendable (_ write: (String) -> Bool) -> Void) throws {
        (fd, port) = try loopbackSocket(listening: true)
        let listener = fd
        onOwnThread {
            while true {
                let conn = accept(listener, nil, nil)
                guard conn >= 0 else { return }  // closed by `close()`
                onOwnThread {
                    defer { Foundation.close(conn) }
                    // The request head (bounded); its content does not matter here.
                    var head: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while head.count < 64 << 10, !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
                        let n = recv(conn, &buffer, 1, 0)
                        guard n > 0 else { return }
                        head.append(buffer[0])
                    }
                    answer { text in
                        var bytes = Array(text.utf8)[...]
                        while !bytes.isEmpty {
                            let n = bytes.withUnsafeBytes { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                            guard n > 0 else { return false }
                            bytes = bytes.dropFirst(n)
                        }
                        return true
                    }
                }
            }
        }
    }

    /// Stops accepting (a blocked `accept` returns on shutdown).
    public func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Foundation.close(fd)
    }

    /// A chunked-encoding chunk.
    public static func chunk(_ text: String) -> String { String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n" }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "\(what) did not finish in time" }
}

/// Runs `body`, or throws `TimedOut` once `limit` has passed: a bound on a wait, not a
/// synchronisation. The tasks are unstructured on purpose: code that ignores cancellation (the
/// bug a test is looking for) must not hold the test past the limit; the loser is cancelled.
public func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let tasks = Mutex<[Task<Void, Never>]>([])
    let result: T = try await withCheckedThrowingContinuation { cont in
        once.withLock { $0 = cont }
        let finish: @Sendable (Result<T, any Error>) -> Void = { r in
            once.withLock { c in let taken = c; c = nil; return taken }?.resume(with: r)
        }
        tasks.withLock { $0 = [
            Task { do { finish(.success(try await body())) } catch { finish(.failure(error)) } },
            Task { try? await Task.sleep(for: limit); finish(.failure(TimedOut(what: what))) },
        ] }
    }
    for t in tasks.withLock({ $0 }) { t.cancel() }
    return result
}
