import KubetraceTestKit
import Foundation
import KubeClient
import Testing

/// The chaos runner against the real operator, for fixed seeds (a failure prints the seed and the
/// `make chaos SEED=…` line that replays it). `make soak` runs the same mix for as long as asked.
/// One seed at a time: three operators and devclusters at once on two cores stretched repairs
/// past their bounds once in eight full local runs.
@Suite(.serialized, .timeLimit(.minutes(6))) struct ChaosTests {
    static let seeds: [UInt64] = [7, 19, 42]

    @Test(arguments: seeds)
    func faultsAndOutsideWritersLeaveEverythingRepaired(seed: UInt64) async throws {
        let dir = TempDir()
        let summary = "\(dir.path)/summary.json"
        let r = try await runProcess(binaryDirectory().appendingPathComponent("kubetrace-chaos"),
                                     ["--seed", "\(seed)", "--duration", "25", "--summary", summary,
                                      // The manifest's limit; AddressSanitizer's shadow memory and quarantine need more.
                                      "--memory-limit-mb", ProcessInfo.processInfo.environment["ASAN_OPTIONS"] != nil ? "1024" : "192"],
                                     environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": dir.path].merging(sanitizerEnvironment) { a, _ in a })
        #expect(r.status == 0, "chaos seed \(seed) failed — replay with `make chaos SEED=\(seed) CHAOS_S=25`:\n\(r.stdout)\n\(r.stderr)")
        let json = try JSONValue.parse(Array((try String(contentsOfFile: summary, encoding: .utf8)).utf8))
        #expect(json["violations"]?.arrayValue?.isEmpty == true)
        // The run did something: faults and damages happened, and every damage was repaired.
        #expect((json["faultsInjected"]?.intValue ?? 0) >= 10, "\(r.stdout)")
        let damages = json["damages"]?.intValue ?? 0
        #expect(damages >= 4, "\(r.stdout)")
        #expect(json["repaired"]?.intValue == damages)
        #expect((json["writesPerRepairMax"]?.intValue ?? 99) <= 4)
        #expect(json["operatorExit"]?.intValue == 0)
        print(r.stdout)
    }
}
