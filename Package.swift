// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "EngineStore",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EngineStoreWire", targets: ["EngineStoreWire"]),
        .library(name: "EngineStoreClient", targets: ["EngineStoreClient"]),
        .executable(name: "engine-store", targets: ["engine-store"]),
        .executable(name: "engine-store-probe", targets: ["engine-store-probe"]),
        .executable(name: "engine-store-load", targets: ["engine-store-load"]),
        .executable(name: "engine-sim", targets: ["engine-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries, bound through pkg-config (Debian: libpq-dev, libhiredis-dev).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"]), .brew(["libpq"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis",
                       providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]),

        // epoll and eventfd, which the Glibc module does not export.
        .systemLibrary(name: "CLinuxShims"),

        // Level-triggered epoll and an eventfd wake-up: the server's loop and the client's.
        .target(name: "EventPoll", dependencies: ["CLinuxShims"]),

        // The wire codec: pure, no I/O, shared by server and client.
        .target(name: "EngineStoreWire"),

        // Thin wrappers, one type per handle.
        .target(name: "LibPQ", dependencies: ["CLibPQ"]),
        .target(name: "Hiredis", dependencies: ["CHiredis"]),

        // The server: transport -> dispatcher -> RPC families -> Postgres / Redis.
        // Its SQL lives in SQL/*.sql; scripts/gen-sql embeds it as Generated/SQLText.swift.
        .target(name: "EngineStoreServer", dependencies: [
            "EngineStoreWire", "EventPoll", "LibPQ", "Hiredis", "CLinuxShims",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], exclude: ["SQL"]),

        // What engine code links.
        .target(name: "EngineStoreClient", dependencies: ["EngineStoreWire", "EventPoll", "CLinuxShims"]),

        // Executables: thin argument-parsing shells.
        .executableTarget(name: "engine-store", dependencies: [
            "EngineStoreServer", "EngineStoreClient",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "engine-store-probe", dependencies: [
            "EngineStoreClient",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // The socket-level load tester: a library (driven by tests) and its thin CLI.
        .target(name: "EngineStoreLoad", dependencies: [
            "EngineStoreClient", "LibPQ",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        .executableTarget(name: "engine-store-load", dependencies: [
            "EngineStoreLoad",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // A small nof0-style engine wired to EngineStore by injection (a library and its thin CLI).
        .target(name: "EngineSim", dependencies: ["EngineStoreClient"]),
        .executableTarget(name: "engine-sim", dependencies: [
            "EngineSim",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Test support: starts throwaway Postgres and Redis processes.
        .target(name: "TestHarness", dependencies: ["LibPQ", "Hiredis"], path: "Tests/TestHarness"),

        .testTarget(name: "EngineStoreWireTests", dependencies: ["EngineStoreWire"]),
        .testTarget(name: "EngineStoreClientTests", dependencies: ["EngineStoreClient", "EngineStoreWire"]),
        .testTarget(name: "EngineSimTests", dependencies: ["EngineSim", "EngineStoreClient"]),
        // Pure server types (the connection state machine): no Postgres or Redis.
        .testTarget(name: "EngineStoreServerTests", dependencies: ["EngineStoreServer", "EngineStoreWire"]),
        .testTarget(name: "EngineStoreIntegrationTests", dependencies: [
            "EngineStoreServer", "EngineStoreClient", "EngineStoreWire", "TestHarness", "LibPQ", "Hiredis", "EngineStoreLoad", "EngineSim",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
