import CFuzzerDriver
import FuzzHarness

/// The dockerconfigjson target: each input goes to FuzzHarness.dockerConfigJSON.
@_cdecl("fuzz_dockerconfigjson_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzHarness.dockerConfigJSON(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
