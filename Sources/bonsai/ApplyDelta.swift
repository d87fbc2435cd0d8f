// `bonsai apply-delta`: a SIFT delta or LoRA adapters added back onto their base model.
import ArgumentParser
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation

struct ApplyDelta: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "apply-delta",
    abstract: "Add a SIFT delta (sift_delta.safetensors) or LoRA adapters (adapter_model.safetensors) onto their base model; writes the trained classifier.")

  @Option(name: .long, help: "The base model the run started from (a name or folder).") var base: String
  @Option(name: .long, help: "The delta file from a run's best/ or final/ folder.") var delta: String
  @Option(name: .long, help: "Folder for the resulting Hugging Face model.") var output: String

  func run() throws {
    try runReportingErrors {
      try Delta.apply(base: try Assets.model(base), delta: URL(fileURLWithPath: delta), output: URL(fileURLWithPath: output))
      emit("{\"output\": \"\(output)\"}")
    }
  }
}
