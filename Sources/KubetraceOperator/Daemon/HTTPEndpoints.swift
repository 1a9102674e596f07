import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import KubeRuntime
import ServiceLifecycle
import Synchronization

/// A listener address: `host:port`, `:port` (all interfaces) or `[v6]:port`.
struct ListenAddress: Equatable, Sendable, CustomStringConvertible {
    var host: String
    var port: Int
    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Nil for "" or "off" (disabled).
    static func parse(_ raw: String, flag: String) throws -> ListenAddress? {
        let t = raw.trimmingCharacters(in: .whitespaces)
        if t.isEmpty || t == "off" { return nil }
        guard let colon = t.lastIndex(of: ":"), let port = Int(t[t.index(after: colon)...]), (0...65535).contains(port) else {
            throw CLIError.configuration("\(flag): \"\(raw)\" is not an address (host:port, :port or [v6]:port; off to disable)")
        }
        var host = String(t[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return ListenAddress(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    /// Fails with a configuration error when the port is taken, before anything starts.
    func checkAvailable(flag: String) throws {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else { throw CLIError.configuration("\(flag): \"\(host)\" is not an IPv6 address") }
            result = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            let h = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, h, &a.sin_addr) == 1 else { throw CLIError.configuration("\(flag): \"\(host)\" is not an IPv4 address") }
            result = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if result != 0 {
            let reason = errno == EADDRINUSE ? "is already in use" : "cannot be bound: \(String(cString: strerror(errno)))"
            throw CLIError.configuration("\(flag): \(self) \(reason)")
        }
    }
}

/// The Prometheus registry behind swift-metrics, plus the watchers' counters
/// (kept by the reflectors, exported at each scrape as deltas).
final class OperatorMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let exported = Mutex<[String: (events: Int, relists: Int, reconnects: Int, decodeErrors: Int)]>([:])

    /// Installs the Prometheus backend for the process (once), with the series the
    /// alerts rely on present from the first scrape (an absent series never fires).
    func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        registry.makeGauge(name: "kubetrace_start_time_seconds", labels: [], help: "Unix time the operator process started").set(Date().timeIntervalSince1970)
        registry.makeGauge(name: "kubetrace_build_info", labels: [("version", kubetraceVersion)], help: "Always 1; the running version as a label").set(Double(1))
        for kind in RepairService.kindLabels {
            for outcome in ["repaired", "throttled", "failed"] {
                _ = Counter(label: "kubetrace_repairs_total", dimensions: [("kind", kind), ("outcome", outcome)])
            }
        }
        _ = Gauge(label: "kubetrace_leader", dimensions: [])
    }

    func render(watchers: [String: WatchStats]) -> String {
        exported.withLock { last in
            for (name, stats) in watchers {
                let previous = last[name] ?? (0, 0, 0, 0)
                let now = (stats.events, stats.relists, stats.reconnects, stats.decodeErrors)
                let labels = [("watch", name)]
                for (metric, help, delta) in [
                    ("events", "Watch events delivered, per watcher", now.0 - previous.events),
                    ("relists", "Relists after 410 Gone or a failed resume, per watcher", now.1 - previous.relists),
                    ("reconnects", "Watch streams re-opened, per watcher", now.2 - previous.reconnects),
                    ("decode_errors", "Watch lines that could not be decoded, per watcher", now.3 - previous.decodeErrors),
                ] {
                    let descriptor = MetricNameDescriptor(namespace: "kubetrace", subsystem: "watch", metricName: metric, unitName: "total", helpText: help)
                    registry.makeCounter(descriptor: descriptor, labels: labels).increment(by: Int64(max(0, delta)))
                }
                last[name] = now
                registry.makeGauge(name: "kubetrace_watch_synced", labels: labels, help: "1 once the watcher delivered its initial list").set(Double(stats.synced ? 1 : 0))
                registry.makeGauge(name: "kubetrace_watch_last_activity_timestamp_seconds", labels: labels,
                                   help: "Unix time the watch stream last delivered an event or bookmark").set(stats.lastActivity)
                if let rv = Double(stats.resourceVersion) {
                    registry.makeGauge(name: "kubetrace_watch_resource_version", labels: labels,
                                       help: "The watcher's position: the last resourceVersion seen (numeric on etcd-backed servers)").set(rv)
                }
            }
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// `/healthz`, `/readyz` and `/metrics` (SPEC §3 `HEALTH_ADDR` / `METRICS_ADDR`);
/// one listener when both addresses are the same.
enum HTTPEndpoints {
    struct Probes: Sendable {
        let healthy: @Sendable () -> (Bool, String)
        let ready: @Sendable () -> (Bool, String)
        let metrics: @Sendable () -> String
    }

    static func services(health: ListenAddress?, metrics: ListenAddress?, probes: Probes, logger: Logger) -> [any Service] {
        var out: [any Service] = []
        func app(_ address: ListenAddress, health: Bool, metrics: Bool) -> any Service {
            let router = Router()
            if health {
                router.get("healthz") { _, _ -> Response in
                    let (ok, why) = probes.healthy()
                    return Response(status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: why + "\n")))
                }
                router.get("readyz") { _, _ -> Response in
                    let (ok, why) = probes.ready()
                    return Response(status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: why + "\n")))
                }
            }
            if metrics {
                router.get("metrics") { _, _ -> Response in
                    Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: probes.metrics())))
                }
            }
            return Application(router: router, configuration: .init(address: .hostname(address.host, port: address.port), serverName: "kubetrace-operator"),
                               onServerRunning: { channel in
                                   logger.info("serving \(health ? "/healthz /readyz " : "")\(metrics ? "/metrics" : "")",
                                               metadata: ["address": "\(address)", "port": "\(channel.localAddress?.port ?? address.port)"])
                               }, logger: logger)
        }
        if let health, health == metrics, health.port != 0 {
            out.append(app(health, health: true, metrics: true))
        } else {
            if let health { out.append(app(health, health: true, metrics: false)) }
            if let metrics { out.append(app(metrics, health: false, metrics: true)) }
        }
        return out
    }
}
