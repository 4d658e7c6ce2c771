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
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // Elementwise kernels (one build per instruction-set level, chosen at run time) and CPUID.
        // Optimised in every configuration: `swift test` builds debug, and -O0 kernels would
        // make the tests' training runs many times slower.
        .target(
            name: "CKernels", path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O2", "-fno-math-errno"])]),
        // MPI, dlopened at run time only when an MPI launcher started the process (no build dependency).
        .target(name: "CMPI", path: "Sources/CMPI"),
        .systemLibrary(
            name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5-serial",
            providers: [.apt(["libhdf5-dev"])]),
        .target(
            name: "AdapterFusion",
            dependencies: ["CKernels", "CHDF5", "CMPI"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .executableTarget(
            name: "afusion",
            dependencies: [
                "AdapterFusion", "CHDF5",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(
            name: "AdapterFusionTests",
            dependencies: ["AdapterFusion", "afusion"],
            resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)

// `make fuzz` sets AFUSION_FUZZ: a libFuzzer executable over the parsers of user input, built
// with -sanitize=fuzzer,address (libFuzzer supplies `main`, hence -parse-as-library).
if Context.environment["AFUSION_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "afusion-fuzz", dependencies: ["AdapterFusion"], path: "Sources/afusion-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    package.products.append(.executable(name: "afusion-fuzz", targets: ["afusion-fuzz"]))
}
