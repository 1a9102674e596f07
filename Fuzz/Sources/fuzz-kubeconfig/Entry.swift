import CFuzzerDriver
import FuzzHarness

/// The kubeconfig target: each input goes to FuzzHarness.kubeconfig.
@_cdecl("fuzz_kubeconfig_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzHarness.kubeconfig(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
