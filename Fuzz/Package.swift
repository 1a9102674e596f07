// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets, one executable each (driven through LLVMFuzzerRunDriver). Built only by `make fuzz` (and briefly by `make test`):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// The bodies and invariants live in the main package's FuzzHarness target.
let targets = ["watch-lines", "kubeconfig", "dockerconfigjson", "jwt-expiry", "api-answer"]

let package = Package(
    name: "kubetrace-fuzz",
    platforms: [.macOS(.v15)],
    products: targets.map { .executable(name: "fuzz-\($0)", targets: ["fuzz-\($0)"]) },
    dependencies: [.package(name: "kubetrace-operator", path: "..")],
    targets: [.target(name: "CFuzzerDriver")] + targets.map {
        .executableTarget(name: "fuzz-\($0)", dependencies: ["CFuzzerDriver", .product(name: "FuzzHarness", package: "kubetrace-operator")])
    }
)
