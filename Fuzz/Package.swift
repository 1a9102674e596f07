// swift-tools-version:6.1
import PackageDescription

// The libFuzzer binary: one executable, the target chosen by FUZZ_TARGET (driven through
// LLVMFuzzerRunDriver). Built only by `make fuzz` (and briefly by `make test`):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// The bodies and invariants live in the main package's FuzzHarness target.
let package = Package(
    name: "kubetrace-fuzz",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "kubetrace-fuzz", targets: ["kubetrace-fuzz"])],
    dependencies: [.package(name: "kubetrace-operator", path: "..")],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(name: "kubetrace-fuzz", dependencies: ["CFuzzerDriver", .product(name: "FuzzHarness", package: "kubetrace-operator")]),
    ]
)
