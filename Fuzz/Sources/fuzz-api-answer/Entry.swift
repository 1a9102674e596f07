import CFuzzerDriver
import FuzzHarness

/// The api-answer target: each input goes to FuzzHarness.apiAnswer.
@_cdecl("fuzz_api_answer_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzHarness.apiAnswer(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
