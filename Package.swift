// swift-tools-version:6.1
// Bonsai: a CPU training engine, BERT-family models and the `bonsai` tool.
// Dependencies flow one way:
//   BonsaiEngine (tensors, kernels, autodiff) <- BonsaiNN (layers, losses, optimizers)
//   BonsaiEngine <- BonsaiCheckpoint (safetensors, configs)
//   BonsaiTokenizers (no engine dependency)
//   CBonsaiCPUCheck (start-up CPU check, C) <- BonsaiEngine, BonsaiTokenizers, BonsaiData
//   CBonsaiQuant (kernels over GGUF's blocks, C: quant.c entry points + scalar, quant_avx2[_tiles].c, quant_avx512[_tiles].c,
//   dequantize.c) <- BonsaiEngine
//   BonsaiNN + BonsaiCheckpoint + BonsaiTokenizers <- BonsaiModels (BERT, MPNet) <- bonsai (CLI)
//   BonsaiTraining (+ CMPI with the MPI trait) <- BonsaiDistributed (Open MPI ranks) <- bonsai
import PackageDescription

// Kernels are written against SIMD16<Float>; without a target CPU Swift emits SSE2 only (20-50x slower).
// On x86-64 the default is the CPU that builds ("native": AVX2 on Zen 3, AVX-512 on Zen 4/5); such a
// binary may not start elsewhere. BONSAI_TARGET_CPU overrides it: "haswell" (AVX2 + FMA) runs on every
// x86-64 CPU of the last ten years (README: "Building for other CPUs"), "none" adds no flag. On arm64
// no flag is passed (NEON is the baseline). A binary started on a CPU without what it was compiled for
// stops with one line naming what is missing (CBonsaiCPUCheck), never with SIGILL.
#if arch(x86_64)
let targetCPU = Context.environment["BONSAI_TARGET_CPU"] ?? "native"
#else
let targetCPU = Context.environment["BONSAI_TARGET_CPU"] ?? "none"
#endif
let speed: [SwiftSetting] = targetCPU == "none" ? [] : [.unsafeFlags(["-target-cpu", targetCPU])]
// The same CPU for the one C file that records what the build may use (data only, never executed);
// the start-up check itself is compiled for the baseline so that it runs on any CPU.
#if arch(x86_64)
let buildTargetFlags: [CSetting] = targetCPU == "none" ? [] : [.unsafeFlags(["-march=" + targetCPU])]
#else
let buildTargetFlags: [CSetting] = []
#endif

// GEMM backend: oneDNN (default; Debian libdnnl-dev), or OpenBLAS with BONSAI_BLAS=openblas
// (Debian libopenblas-dev). Apple platforms use Accelerate.
let useOpenBLAS = Context.environment["BONSAI_BLAS"] == "openblas"
let linuxOnly = TargetDependencyCondition.when(platforms: [Platform.linux])
let engineDependencies: [Target.Dependency] = [
  "CBonsaiCPUCheck", "CBonsaiQuant",
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
  // Data-parallel training over Open MPI (`swift build --traits MPI`; Debian's libopenmpi-dev). Off by
  // default, so that the default build never needs Open MPI.
  traits: [.trait(name: "MPI", description: "Data-parallel training over Open MPI (mpirun -np N bonsai finetune ...)"),
           .default(enabledTraits: [])],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
  ],
  targets: [
    .systemLibrary(name: "COMP", path: "Sources/COMP"),
    .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
    .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
    .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    .target(name: "CBonsaiBuildTarget", cSettings: buildTargetFlags + [.define("BONSAI_TARGET_CPU_NAME", to: targetCPU)]),
    .target(name: "CBonsaiCPUCheck", dependencies: ["CBonsaiBuildTarget"]),
    // Kernels over GGUF block formats, vectorised for the build's CPU; no contraction into FMAs, so that
    // dequantisation is bit for bit gguf's.
    .target(name: "CBonsaiQuant", cSettings: buildTargetFlags + [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
    .target(name: "BonsaiEngine", dependencies: engineDependencies, swiftSettings: engineSettings),
    .target(name: "BonsaiNN", dependencies: ["BonsaiEngine"], swiftSettings: speed),
    .target(name: "BonsaiTokenizers", dependencies: ["CBonsaiCPUCheck"], swiftSettings: speed),
    .target(name: "BonsaiCheckpoint", dependencies: ["BonsaiEngine"], swiftSettings: speed),
    .target(name: "BonsaiModels", dependencies: ["BonsaiNN", "BonsaiCheckpoint", "BonsaiTokenizers"], swiftSettings: speed),
    .target(name: "BonsaiData", dependencies: ["CBonsaiCPUCheck"], swiftSettings: speed),
    .target(name: "BonsaiTraining", dependencies: ["BonsaiModels", "BonsaiData"], swiftSettings: speed),
    .target(name: "BonsaiDistributed", dependencies: ["BonsaiTraining", .target(name: "CMPI", condition: .when(traits: ["MPI"]))],
            swiftSettings: speed),
    .executableTarget(name: "bonsai", dependencies: [
      "BonsaiModels", "BonsaiTraining", "BonsaiDistributed", .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ], swiftSettings: speed),
    .executableTarget(name: "bonsai-bench", dependencies: ["BonsaiModels"], swiftSettings: speed),
    .testTarget(name: "BonsaiEngineTests", dependencies: ["BonsaiEngine", "BonsaiNN", "CBonsaiCPUCheck"], swiftSettings: speed),
    .testTarget(name: "BonsaiTokenizersTests", dependencies: ["BonsaiTokenizers", "BonsaiData", "BonsaiCheckpoint", "BonsaiModels"], resources: [.copy("Fixtures")], swiftSettings: speed),
    .testTarget(name: "BonsaiCheckpointTests", dependencies: ["BonsaiCheckpoint", "BonsaiData"], resources: [.copy("Fixtures")], swiftSettings: speed),
    .testTarget(name: "BonsaiDataTests", dependencies: ["BonsaiData", "BonsaiTraining"], resources: [.copy("Fixtures")], swiftSettings: speed),
    .testTarget(name: "BonsaiCLITests", dependencies: ["bonsai", "BonsaiData"], swiftSettings: speed),
    .testTarget(name: "BonsaiModelsTests", dependencies: ["BonsaiModels", "BonsaiData"], resources: [.copy("Fixtures")], swiftSettings: speed),
  ]
)
