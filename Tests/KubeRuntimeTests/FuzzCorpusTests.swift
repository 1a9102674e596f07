import KubetraceTestKit
import Foundation
import FuzzHarness
import Testing

/// Every committed seed and every kept crasher of Fuzz/, replayed through the same harness the
/// libFuzzer targets run (its invariants trap on a regression), in the ordinary test build.
@Suite struct FuzzCorpusTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    @Test(arguments: FuzzHarness.targets.keys.sorted())
    func corpusAndRegressionsReplayClean(target: String) throws {
        let run = try #require(FuzzHarness.targets[target])
        var replayed = 0
        for folder in ["corpus", "regressions"] {
            let dir = Self.fuzzDirectory.appendingPathComponent(folder).appendingPathComponent(target)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] {
                let bytes = try Data(contentsOf: dir.appendingPathComponent(name))
                bytes.withUnsafeBytes { run($0) }
                replayed += 1
            }
        }
        #expect(replayed >= 3, "the seed corpus of \(target) is there")
    }
}
