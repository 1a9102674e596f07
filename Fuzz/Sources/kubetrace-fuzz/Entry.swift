import CFuzzerDriver
import FuzzHarness
import Foundation

/// One libFuzzer binary for every target: `FUZZ_TARGET` names the harness (scripts/fuzz.sh sets it).
/// SwiftPM names an executable's entry point `<module>_main`, so libFuzzer runs through
/// `LLVMFuzzerRunDriver` rather than its own `main`.
nonisolated(unsafe) var selected: (@Sendable (UnsafeRawBufferPointer) -> Void)?

@_cdecl("kubetrace_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
    guard let target = FuzzHarness.targets[name] else {
        FileHandle.standardError.write(Data("kubetrace-fuzz: FUZZ_TARGET \"\(name)\" is not one of \(FuzzHarness.targets.keys.sorted().joined(separator: ", "))\n".utf8))
        return 2
    }
    selected = target
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        selected?(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
