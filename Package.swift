// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "AdapterFusion",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "AdapterFusion", targets: ["AdapterFusion"]),
        .executable(name: "afusion", targets: ["afusion"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5-serial",
            providers: [.apt(["libhdf5-dev"])]),
        .target(
            name: "AdapterFusion",
            dependencies: ["COpenBLAS", "CHDF5", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .executableTarget(
            name: "afusion",
            dependencies: [
                "AdapterFusion",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(
            name: "AdapterFusionTests",
            dependencies: ["AdapterFusion", "afusion"],
            resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
