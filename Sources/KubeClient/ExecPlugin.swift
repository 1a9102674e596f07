public import Foundation
import KubeTLS

/// Runs a kubeconfig `exec` credential plugin and reads its `ExecCredential`.
enum ExecPlugin {
    private struct ExecCredential: Decodable {
        struct Status: Decodable {
            var token: String?
            var expirationTimestamp: String?
            var clientCertificateData: String?
            var clientKeyData: String?
        }
        var apiVersion: String?
        var kind: String?
        var status: Status?
    }

    static func run(_ config: KubeConfig.ExecConfig, cluster: ClusterConnection.ExecClusterInfo, timeout: TimeInterval = 60) async throws -> CredentialProvider.Current {
        let name = (config.command as NSString).lastPathComponent
        let process = Process()
        if config.command.contains("/") {
            process.executableURL = URL(fileURLWithPath: config.command)
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        }
        process.arguments = config.command.contains("/") ? config.args : [config.command] + config.args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in config.env { env[k] = v.value }
        env["KUBERNETES_EXEC_INFO"] = execInfo(config, cluster: cluster)
        process.environment = env
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice

        let result: (status: Int32, out: Data, err: Data) = try await withCheckedThrowingContinuation { cont in
            // Reading the pipes blocks; do it on a dispatch thread, never on the cooperative pool.
            DispatchQueue.global().async {
                do {
                    try process.run()
                } catch {
                    let hint = config.installHint.map { ": \($0)" } ?? ""
                    cont.resume(throwing: KubeClientError(.configuration, "exec plugin \(name): cannot be started (\(KubeConfig.reason(error)))\(hint)"))
                    return
                }
                let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
                // Drain stderr concurrently so a chatty plugin cannot block on a full pipe.
                let err = StderrBox()
                let group = DispatchGroup()
                group.enter()
                DispatchQueue.global().async { err.data = stderr.fileHandleForReading.readDataToEndOfFile(); group.leave() }
                let out = stdout.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                killer.cancel()
                cont.resume(returning: (process.terminationStatus, out, err.data))
            }
        }
        if result.status == 127 && !config.command.contains("/") {
            let hint = config.installHint.map { ": \($0)" } ?? ""
            throw KubeClientError(.configuration, "exec plugin \(name): command not found\(hint)")
        }
        guard result.status == 0 else {
            // stderr is the plugin's own explanation; keep its first line only.
            let line = String(decoding: result.err, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            throw KubeClientError(.configuration, "exec plugin \(name): exited with status \(result.status)\(line.isEmpty ? "" : ": \(line.prefix(200))")")
        }
        // Never echo stdout: it may hold a credential.
        guard let cred = try? JSONDecoder().decode(ExecCredential.self, from: result.out), cred.kind == "ExecCredential", let status = cred.status else {
            throw KubeClientError(.configuration, "exec plugin \(name): did not print an ExecCredential JSON object on stdout")
        }
        var current = CredentialProvider.Current()
        if let t = status.expirationTimestamp {
            guard let d = RFC3339.parse(t) else {
                throw KubeClientError(.configuration, "exec plugin \(name): status.expirationTimestamp \"\(t)\" is not an RFC 3339 time")
            }
            current.expiresAt = d
        }
        if let token = status.token, !token.isEmpty {
            current.bearer = SecretString(token)
        } else if let cert = status.clientCertificateData, let key = status.clientKeyData {
            current.clientCertificatePEM = cert
            current.clientKey = PrivateKeyPEM(key)
        } else {
            throw KubeClientError(.configuration, "exec plugin \(name): ExecCredential has neither status.token nor status.clientCertificateData/clientKeyData")
        }
        return current
    }

    private static func execInfo(_ config: KubeConfig.ExecConfig, cluster: ClusterConnection.ExecClusterInfo) -> String {
        var spec: [String: JSONValue] = ["interactive": .bool(false)]
        if config.provideClusterInfo {
            var c: [String: JSONValue] = ["server": .string(cluster.server), "insecure-skip-tls-verify": .bool(cluster.insecureSkipTLSVerify)]
            if let ca = cluster.certificateAuthorityData { c["certificate-authority-data"] = .string(ca) }
            if let sn = cluster.tlsServerName { c["tls-server-name"] = .string(sn) }
            spec["cluster"] = .object(c)
        }
        let info: JSONValue = .object(["apiVersion": .string(config.apiVersion), "kind": .string("ExecCredential"), "spec": .object(spec)])
        return String(decoding: info.jsonBytes(), as: UTF8.self)
    }
}

/// Written once by the reader thread, read after `group.wait()`.
private final class StderrBox: @unchecked Sendable {
    var data = Data()
}

/// RFC 3339 times as Kubernetes writes them (with or without fractional seconds, any offset).
public enum RFC3339 {
    public static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }

    public static func format(_ d: Date, fractional: Bool = false) -> String {
        if !fractional { return seconds(d) }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }

    /// `2006-01-02T15:04:05Z` from the calendar fields (no formatter object: the devcluster
    /// stamps every write with it).
    private static func seconds(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// A `metav1.MicroTime` (Lease acquire and renew times, Event times): exactly six fractional
    /// digits in UTC. kube-apiserver parses these with the layout
    /// `2006-01-02T15:04:05.000000Z07:00` (apimachinery `pkg/apis/meta/v1/micro_time.go`
    /// `UnmarshalJSON`), which refuses any other number of digits: a millisecond time is a 400.
    public static func formatMicro(_ d: Date) -> String {
        let seconds = d.timeIntervalSince1970.rounded(.down)
        let micros = min(999_999, Int(((d.timeIntervalSince1970 - seconds) * 1_000_000).rounded(.down)))
        let whole = format(Date(timeIntervalSince1970: seconds))
        return String(whole.dropLast()) + "." + String(format: "%06d", micros) + "Z"
    }

    /// Whether `s` is a valid `metav1.MicroTime` as kube-apiserver reads one.
    public static func isMicroTime(_ s: String) -> Bool {
        s.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression) != nil
    }
}
