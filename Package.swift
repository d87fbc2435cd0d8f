// swift-tools-version:6.0
// Bonsai: a CPU training engine, BERT-family models and the `bonsai` tool.
// Dependencies flow one way:
//   BonsaiEngine (tensors, kernels, autodiff) <- BonsaiNN (layers, losses, optimizers)
//   BonsaiEngine <- BonsaiCheckpoint (safetensors, configs)
//   BonsaiTokenizers (no engine dependency)
//   BonsaiNN + BonsaiCheckpoint + BonsaiTokenizers <- BonsaiModels (BERT, MPNet) <- bonsai (CLI)
import PackageDescription

// Kernels are written against SIMD16<Float>; without a target CPU Swift emits SSE2 only (20-50x slower). znver4 (Zen 4) code also runs on Zen 5.
// BONSAI_TARGET_CPU overrides the CPU (e.g. "x86-64-v3" for a machine without AVX-512); "none" disables.
let targetCPU = Context.environment["BONSAI_TARGET_CPU"] ?? "znver4"
let speed: [SwiftSetting] = targetCPU == "none" ? [] : [.unsafeFlags(["-target-cpu", targetCPU])]

// GEMM backend: oneDNN (default; Debian libdnnl-dev), or OpenBLAS with BONSAI_BLAS=openblas
// (Debian libopenblas-dev). Apple platforms use Accelerate.
let useOpenBLAS = Context.environment["BONSAI_BLAS"] == "openblas"
let linuxOnly = TargetDependencyCondition.when(platforms: [Platform.linux])
let engineDependencies: [Target.Dependency] = [
  .target(name: "COMP", condition: linuxOnly),
  .target(name: useOpenBLAS ? "COpenBLAS" : "CDNNL", condition: linuxOnly),
]
let engineSettings = speed + (useOpenBLAS ? [.define("BONSAI_OPENBLAS")] : [])

let package = Package(
  name: "Bonsai",
  products: [
    .library(name: "Bonsai", targets: ["BonsaiEngine", "BonsaiNN", "BonsaiTokenizers", "BonsaiCheckpoint", "BonsaiModels",
                                       "BonsaiData", "BonsaiTraining"]),
    .executable(name: "bonsai", targets: ["bonsai"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
  ],
  targets: [
    .systemLibrary(name: "COMP", path: "Sources/COMP"),
    .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
    .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
    .target(name: "BonsaiEngine", dependencies: engineDependencies, swiftSettings: engineSettings),
    .target(name: "BonsaiNN", dependencies: ["BonsaiEngine"], swiftSettings: speed),
    .target(name: "BonsaiTokenizers", swiftSettings: speed),
    .target(name: "BonsaiCheckpoint", dependencies: ["BonsaiEngine"], swiftSettings: speed),
    .target(name: "BonsaiModels", dependencies: ["BonsaiNN", "BonsaiCheckpoint", "BonsaiTokenizers"], swiftSettings: speed),
    .target(name: "BonsaiData", swiftSettings: speed),
    .target(name: "BonsaiTraining", dependencies: ["BonsaiModels", "BonsaiData"], swiftSettings: speed),
    .executableTarget(name: "bonsai", dependencies: [
      "BonsaiModels", "BonsaiTraining", .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ], swiftSettings: speed),
    .executableTarget(name: "bonsai-bench", dependencies: ["BonsaiModels"], swiftSettings: speed),
    .testTarget(name: "BonsaiEngineTests", dependencies: ["BonsaiEngine", "BonsaiNN"], swiftSettings: speed),
    .testTarget(name: "BonsaiTokenizersTests", dependencies: ["BonsaiTokenizers", "BonsaiData"], resources: [.copy("Fixtures")], swiftSettings: speed),
    .testTarget(name: "BonsaiCheckpointTests", dependencies: ["BonsaiCheckpoint"], swiftSettings: speed),
    .testTarget(name: "BonsaiDataTests", dependencies: ["BonsaiData", "BonsaiTraining"], resources: [.copy("Fixtures")], swiftSettings: speed),
    .testTarget(name: "BonsaiCLITests", dependencies: ["bonsai", "BonsaiData"], swiftSettings: speed),
    .testTarget(name: "BonsaiModelsTests", dependencies: ["BonsaiModels", "BonsaiData"], resources: [.copy("Fixtures")], swiftSettings: speed),
  ]
)
