import ArgumentParser
import Foundation
import KubeClient
import KubeSim

/// `kubetrace-chaos`: the whole operator, installed from its own manifest and running under its own
/// ServiceAccount's RBAC, against a devcluster that a seeded random sequence of faults and outside
/// writers works on. Invariants are checked on every change and every 250 ms; the first broken one
/// fails the run with the seed to replay it (`make chaos SEED=…`).
@main
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubetrace-chaos",
        abstract: "Seeded fault injection against the running operator, with continuous invariant checks.")

    @Option(help: "Seed of the fault sequence (default: random, printed).") var seed: UInt64?
    @Option(help: "Seconds of faults.") var duration = 40
    @Option(help: "Seconds every damage must be repaired within once the faults stop (failure backoff per object reaches 16-32 s under this mix).") var recoveryBound = 45
    @Option(help: "Seconds the operator may take to exit after SIGTERM.") var stopBound = 20
    @Option(help: "Most resident memory the operator may use, in MB (the manifest's limit is 192Mi).") var memoryLimitMb = 192.0
    @Option(help: "Seconds any damage must be repaired within, even while faults go on.") var repairBound = 60
    @Option(help: "Most operator writes one repair may take (a fight loop shows as more).") var writeLimit = 4
    @Option(help: "Where to write the summary as JSON.") var summary: String?
    @Option(help: "The kubetrace-operator binary (default: beside this one).") var operatorBinary: String?
    @Flag(help: "Print every fault and damage as it happens.") var verbose = false

    func run() async throws {
        let seed = seed ?? UInt64.random(in: 1...999_999)
        print("chaos: seed \(seed), \(duration) s of faults (re-run: make chaos SEED=\(seed) CHAOS_S=\(duration))")
        let bin = operatorBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kubetrace-operator").path
        let runner = ChaosRun(seed: seed, duration: .seconds(duration), recoveryBound: .seconds(recoveryBound), repairBound: .seconds(repairBound), stopBound: .seconds(stopBound), memoryLimitMB: memoryLimitMb,
                              writeLimit: writeLimit, operatorBinary: bin, verbose: verbose)
        let report: ChaosReport
        do {
            report = try await runner.run()
        } catch {
            print("chaos: FAILED (seed \(seed)): \(error)")
            print("chaos: re-run with: make chaos SEED=\(seed) CHAOS_S=\(duration)")
            throw ExitCode(1)
        }
        print(report.table)
        if let summary { try report.json.write(toFile: summary, atomically: true, encoding: .utf8) }
        guard report.violations.isEmpty else {
            for v in report.violations.prefix(20) { print("chaos: violation: \(v)") }
            print("chaos: FAILED (seed \(seed)): \(report.violations.count) invariant violations; re-run with: make chaos SEED=\(seed) CHAOS_S=\(duration)")
            throw ExitCode(1)
        }
        print("chaos: passed (seed \(seed))")
    }
}

struct ChaosFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct ChaosReport: Sendable {
    var seed: UInt64
    var seconds: Double
    var faults: [String: Int]
    var summary: InvariantChecker.Summary
    var violations: [String]
    var rssStartMB: Double
    var rssMaxMB: Double
    var rssEndMB: Double
    var operatorExit: Int32

    var faultCount: Int { faults.values.reduce(0, +) }

    func percentile(_ p: Double) -> Double {
        let r = summary.repairSeconds
        guard !r.isEmpty else { return 0 }
        return r[min(r.count - 1, Int((Double(r.count - 1) * p).rounded()))]
    }

    var table: String {
        let s = summary
        let writes = s.writesPerRepair
        let mean = writes.isEmpty ? 0 : Double(writes.reduce(0, +)) / Double(writes.count)
        let kinds = faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return """
        chaos summary (seed \(seed), \(String(format: "%.0f", seconds)) s)
          faults injected       \(faultCount): \(kinds)
          damages made          \(s.damages), repaired \(s.repaired)
          repair time           p50 \(String(format: "%.3f", percentile(0.5))) s, p95 \(String(format: "%.3f", percentile(0.95))) s, worst \(String(format: "%.3f", s.repairSeconds.last ?? 0)) s
          writes per repair     mean \(String(format: "%.2f", mean)), max \(writes.max() ?? 0)
          token refreshes       \(s.kubeconfigWrites) kubeconfig Secret writes, \(s.registryRefreshes) pull Secret refreshes; least token time left \(s.minimumTokenRemaining.isFinite ? String(format: "%.1f s", s.minimumTokenRemaining) : "n/a")
          operator RSS          start \(String(format: "%.1f", rssStartMB)) MB, max \(String(format: "%.1f", rssMaxMB)) MB, end \(String(format: "%.1f", rssEndMB)) MB
          operator exit         \(operatorExit)
          violations            \(violations.count)
        """
    }

    var json: String {
        let s = summary
        let obj: JSONValue = .object([
            "seed": .int(Int(seed)), "seconds": .double(seconds), "faults": .object(faults.mapValues { .int($0) }), "faultsInjected": .int(faultCount),
            "damages": .int(s.damages), "repaired": .int(s.repaired), "repairP50Seconds": .double(percentile(0.5)),
            "repairWorstSeconds": .double(s.repairSeconds.last ?? 0), "writesPerRepairMax": .int(s.writesPerRepair.max() ?? 0),
            "kubeconfigWrites": .int(s.kubeconfigWrites), "registryRefreshes": .int(s.registryRefreshes),
            "rssStartMB": .double(rssStartMB), "rssMaxMB": .double(rssMaxMB), "rssEndMB": .double(rssEndMB),
            "violations": .array(violations.map { .string($0) }), "operatorExit": .int(Int(operatorExit)),
        ])
        return String(decoding: obj.jsonBytes(), as: UTF8.self) + "\n"
    }
}
