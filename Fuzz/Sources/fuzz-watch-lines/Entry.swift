import CFuzzerDriver
import FuzzHarness

/// The watch-lines target: each input goes to FuzzHarness.watchLines.
@_cdecl("fuzz_watch_lines_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzHarness.watchLines(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
