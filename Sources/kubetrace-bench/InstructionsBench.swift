import ArgumentParser
import Foundation

/// Instructions per Pod event under `valgrind --tool=callgrind`: repeatable on a noisy
/// machine, so the decoder's cost can be tracked from change to change. Counts only
/// `countedPass` (framing + decoding + store update + dispatch), not the stream's generation.
/// valgrind 3.19 cannot start the full bench binary, so the pass lives in the small
/// synchronous `kubetrace-instructions` executable.
struct InstructionsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "instructions", abstract: "Instructions per Pod event (callgrind).")

    @Option(help: "Pod events in the counted pass.") var events = 4_000
    @Option(help: "Where to write the JSON figures.") var output: String?

    func run() async throws {
        let tool = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kubetrace-instructions").path
        let out = NSTemporaryDirectory() + "kt-callgrind-\(getpid()).out"
        // valgrind 3.19 cannot read Swift 6's DWARF: count on a copy without debug info (symbols stay).
        let stripped = NSTemporaryDirectory() + "kt-instructions-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: stripped) }
        try FileManager.default.copyItem(atPath: tool, toPath: stripped)
        let strip = Process()
        strip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        strip.arguments = ["strip", "-g", stripped]
        try strip.run()
        strip.waitUntilExit()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=*countedPass*", "--callgrind-out-file=\(out)",
                       stripped, "\(events)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let text = try? String(contentsOfFile: out, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("totals:") || $0.hasPrefix("summary:") }),
              let total = Double(line.split(separator: " ").dropFirst().first ?? "") else {
            throw ValidationError("valgrind --tool=callgrind failed (is valgrind installed? make bench installs it)")
        }
        DevClusterBench.report([("pod_event_instructions", total / Double(events))], output: output)
    }
}
