// swift-tools-version:6.1
import PackageDescription

// Strict, modern Swift everywhere; C libraries stay behind one shim each.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "kubetrace-operator",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kubetrace-operator", targets: ["kubetrace-operator"]),
        .executable(name: "kubetrace-devcluster", targets: ["kubetrace-devcluster"]),
        // The Kubernetes client and the controller runtime, for any Swift operator (see the
        // KubeRuntime DocC catalog and Sources/kubetrace-example-controller).
        .library(name: "KubeClient", targets: ["KubeClient"]),
        .library(name: "KubeRuntime", targets: ["KubeRuntime"]),
        // What the tests share (devclusters as processes, awaiting conditions, temp dirs).
        .library(name: "KubetraceTestKit", targets: ["KubetraceTestKit"]),
        .library(name: "KubeSim", targets: ["KubeSim"]),
        .library(name: "FuzzHarness", targets: ["FuzzHarness"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.9.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: a clock the tests advance (refresh schedules, backoffs in virtual time).
        .package(url: "https://github.com/pointfreeco/swift-clocks", from: "1.1.1"),
        // `make docs`: builds the KubeRuntime DocC catalog.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: C shims (system libraries, found through pkg-config)
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CMalloc"),

        // The watch hot path's JSON decoder: simdjson On-Demand behind a C header.
        .target(
            name: "CSimdjson",
            cxxSettings: [.unsafeFlags(["-O3"])],
            linkerSettings: [.linkedLibrary("simdjson")]
        ),

        // The node's fork/namespace/mount primitives (runc's nsexec.c and init, in C because a
        // forked child of a multithreaded process may only make async-signal-safe calls).
        .target(name: "CContainer"),

        // MARK: Libraries, one job each
        .target(
            name: "KubeTLS",
            dependencies: ["COpenSSL"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KubeClient",
            dependencies: [
                "CCurl", "KubeTLS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KubeRuntime",
            dependencies: [
                "KubeClient", "CSimdjson", "CMalloc",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: swiftSettings
        ),
        // Pure decoders of the credential documents the operator reads (fuzzed on their own).
        .target(
            name: "KubetraceFormats",
            dependencies: ["KubeClient", "KubeRuntime"],
            swiftSettings: swiftSettings
        ),
        // The fuzz targets' bodies and invariants: libFuzzer entry points in Fuzz/, corpus replay in the tests.
        .target(
            name: "FuzzHarness",
            dependencies: ["KubeClient", "KubeRuntime", "KubetraceFormats"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KubeSim",
            dependencies: [
                "KubeTLS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP2", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                "KubeClient",
                "CContainer",
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KubetraceOperator",
            dependencies: [
                "KubeClient", "KubeRuntime", "KubeTLS", "CSystemd", "KubetraceFormats",
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Executables: the command lines (argument-parser lives only here)
        .executableTarget(
            name: "kubetrace-operator",
            dependencies: [
                "KubetraceOperator", "KubeClient", "KubeRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "kubetrace-devcluster",
            dependencies: [
                "KubeSim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // A leader-elected ConfigMap mirror built on the two library products only: the example
        // the KubeRuntime DocC catalog points to (ExampleControllerTests runs it against a devcluster).
        .executableTarget(
            name: "kubetrace-example-controller",
            dependencies: ["KubeRuntime", "KubeClient", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // Seeded generators of realistic watch events, shared by the benchmarks.
        .target(name: "BenchSupport", swiftSettings: swiftSettings),
        // Instructions per Pod event under callgrind: synchronous and small, so valgrind
        // can run it (it cannot start the full bench binary).
        .executableTarget(
            name: "kubetrace-instructions",
            dependencies: ["BenchSupport", "KubeRuntime"],
            swiftSettings: swiftSettings
        ),
        // Seeded fault injection against the whole operator (`make chaos`, `make soak`).
        .executableTarget(
            name: "kubetrace-chaos",
            dependencies: [
                "BenchSupport", "KubeSim", "KubeClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "kubetrace-bench",
            dependencies: [
                "BenchSupport", "KubeSim", "KubeClient", "KubeRuntime", "KubetraceOperator", "KubetraceFormats",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .target(
            name: "KubetraceTestKit",
            dependencies: ["KubeClient", "KubeSim", .product(name: "Logging", package: "swift-log")],
            path: "Tests/KubetraceTestKit",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KubeClientTests",
            dependencies: ["KubetraceTestKit", "KubeClient", "KubeSim", "KubeTLS"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KubeSimTests",
            dependencies: ["KubetraceTestKit", "KubeSim", "KubeClient"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KubeRuntimeTests",
            dependencies: ["KubetraceTestKit", "KubeRuntime", "KubeSim", "KubeClient", "KubeTLS", "FuzzHarness", .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"), .product(name: "Logging", package: "swift-log"), .product(name: "Clocks", package: "swift-clocks")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RefreshTests",
            dependencies: ["KubetraceTestKit", "KubetraceOperator", "KubetraceFormats", "KubeRuntime", "KubeSim", "KubeClient", "KubeTLS", .product(name: "Logging", package: "swift-log"), .product(name: "Clocks", package: "swift-clocks")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RepairTests",
            dependencies: ["KubetraceTestKit", "KubetraceOperator", "KubeSim", "KubeClient", "KubeRuntime", .product(name: "Logging", package: "swift-log"), .product(name: "Clocks", package: "swift-clocks")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OperatorCLITests",
            dependencies: ["KubetraceTestKit", "KubetraceOperator", "KubeSim", "KubeClient", .product(name: "Yams", package: "Yams")],
            exclude: ["Golden"],
            swiftSettings: swiftSettings
        ),
    ],
    cxxLanguageStandard: .cxx17
)
