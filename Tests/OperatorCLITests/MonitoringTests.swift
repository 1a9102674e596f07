import KubetraceTestKit
import Foundation
import Testing
import Yams

/// `deploy/monitoring/`: the alert rules pass promtool and their unit tests, and
/// every metric they and the dashboard use is one the operator exports.
@Suite struct MonitoringTests {
    static let monitoring = repositoryRoot.appendingPathComponent("deploy/monitoring")
    static let script = repositoryRoot.appendingPathComponent("scripts/check-monitoring.sh").path

    @Test func promtoolChecksTheRulesAndRunsTheirUnitTests() async throws {
        let ok = try await runTool(Self.script, [])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("11 rules checked"), "\(ok.stdout)")

        // A rule promtool rejects: one line naming the file, exit 2.
        let dir = TempDir()
        let good = try String(contentsOf: Self.monitoring.appendingPathComponent("prometheusrule.yaml"), encoding: .utf8)
        let broken = dir.write("prometheusrule.yaml", good.replacingOccurrences(of: "changes(kubetrace_start_time_seconds", with: "changes(kubetrace_start_time_seconds("))
        let bad = try await runTool(Self.script, [broken])
        #expect(bad.status == 2)
        #expect(bad.stderr.hasPrefix("\(broken): promtool check rules rejects it:") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")

        // A rule that parses but no longer does what its unit test says.
        let slower = dir.write("slower.yaml", good.replacingOccurrences(of: "for: 2m", with: "for: 20m"))
        let failing = try await runTool(Self.script, [slower])
        #expect(failing.status == 2)
        #expect(failing.stderr.contains("promtool test rules fails") && failing.stderr.contains("KubetraceNoLeader"), "\(failing.stderr)")
    }

    /// `kubectl kustomize deploy/monitoring`: the four objects, the dashboard as the ConfigMap
    /// Grafana's sidecar picks up, and the Service selecting the operator's Pods on its metrics port.
    @Test func theKustomizationBuilds() async throws {
        let r = try await runTool("kubectl", ["kustomize", Self.monitoring.path])
        #expect(r.status == 0, "\(r.stderr)")
        let docs = try Yams.load_all(yaml: r.stdout).compactMap { $0 as? [String: Any] }
        #expect(docs.compactMap { $0["kind"] as? String }.sorted() == ["ConfigMap", "PrometheusRule", "Service", "ServiceMonitor"])
        let configMap = docs.first { $0["kind"] as? String == "ConfigMap" }
        #expect(((configMap?["metadata"] as? [String: Any])?["labels"] as? [String: Any])?["grafana_dashboard"] as? String == "1")
        let dashboard = (configMap?["data"] as? [String: Any])?["kubetrace-operator-dashboard.json"] as? String ?? ""
        #expect(try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) is [String: Any])
        let service = docs.first { $0["kind"] as? String == "Service" }?["spec"] as? [String: Any]
        #expect((service?["selector"] as? [String: Any])?["app.kubernetes.io/name"] as? String == "kubetrace-operator")
        #expect(((service?["ports"] as? [[String: Any]])?.first?["targetPort"] as? String) == "metrics")
    }

    /// Metric names in a PromQL expression: selectors (`name{`) and every `kubetrace_…` token.
    static func metricNames(in expr: String) -> Set<String> {
        var names = Set<String>()
        for pattern in [#"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\{)"#, #"\bkubetrace[_:][a-z0-9_]+"#] {
            let regex = try! NSRegularExpression(pattern: pattern)
            for m in regex.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)) {
                names.insert(String(expr[Range(m.range, in: expr)!]))
            }
        }
        return names
    }

    /// (expressions used, recording rules defined) across the PrometheusRule and the dashboard.
    static func usedNames() throws -> (used: Set<String>, recorded: Set<String>) {
        let rule = try Yams.load(yaml: String(contentsOf: monitoring.appendingPathComponent("prometheusrule.yaml"), encoding: .utf8)) as? [String: Any]
        let groups = ((rule?["spec"] as? [String: Any])?["groups"] as? [[String: Any]]) ?? []
        var used = Set<String>(), recorded = Set<String>()
        for rule in groups.flatMap({ ($0["rules"] as? [[String: Any]]) ?? [] }) {
            used.formUnion(metricNames(in: rule["expr"] as? String ?? ""))
            if let r = rule["record"] as? String { recorded.insert(r) }
        }
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: monitoring.appendingPathComponent("grafana-dashboard.json"))) as? [String: Any]
        for panel in (dashboard?["panels"] as? [[String: Any]]) ?? [] {
            for target in (panel["targets"] as? [[String: Any]]) ?? [] { used.formUnion(metricNames(in: target["expr"] as? String ?? "")) }
        }
        return (used, recorded)
    }

    @Test func theExtractorFindsSelectorsAndBareNames() {
        #expect(Self.metricNames(in: #"max by (job) (kubetrace_leader{job="x"}) < 1 and up{a="b"} unless kubetrace:lag > 0"#)
            == ["kubetrace_leader", "up", "kubetrace:lag"])
    }

    /// Checks the names against a scrape of a running operator (called from the endpoint test).
    static func checkNames(exportedBy scrape: [String: Double]) throws {
        let exported = Set(scrape.keys.map { String($0.prefix { $0 != "{" }) })
        let (used, recorded) = try usedNames()
        #expect(used.count >= 15, "\(used.sorted())")
        for name in used.sorted() {
            if name == "up" { continue }                                    // Prometheus's own per-target series
            if name.contains(":") { #expect(recorded.contains(name), "\(name) is used but no rule records it"); continue }
            #expect(name.hasPrefix("kubetrace_"), "\(name): not one of the operator's metrics")
            #expect(exported.contains(name), "\(name) is used by the alerts or the dashboard but the operator does not export it")
        }
    }
}
