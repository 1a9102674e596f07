import CFuzzerDriver
import FuzzHarness

/// The jwt-expiry target: each input goes to FuzzHarness.jwtExpiry.
@_cdecl("fuzz_jwt_expiry_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzHarness.jwtExpiry(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}
