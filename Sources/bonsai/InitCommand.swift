// `bonsai init`: a randomly initialised BERT student (distillation instead of pre-training).
import ArgumentParser
import BonsaiData
import BonsaiModels
import Foundation

struct InitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "init",
    abstract: "Make a randomly initialised BERT (transformers' initialisation) with the tokenizer of a model it is like; prints its shape.")

  @Option(name: .long, help: "The model whose tokenizer (and, unless given, shape) the new BERT takes: a name (minilm, mpnet) or a folder.")
  var like: String
  @Option(name: .long, help: "Layers (default: the model's).") var layers: Int?
  @Option(name: .long, help: "Hidden width (default: the model's).") var hidden: Int?
  @Option(name: .long, help: "Attention heads; must divide --hidden (default: the model's).") var heads: Int?
  @Option(name: .long, help: "Feed-forward width (default: the model's, or 4 x --hidden when that is given).") var intermediate: Int?
  @Option(name: .long, help: "Seed of the initialisation.") var seed: UInt64 = 0
  @Option(name: .long, help: "Folder for the new model (a Hugging Face folder transformers loads).") var output: String

  func run() throws {
    try runReportingErrors {
      let folder = try Assets.model(like, log: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
      guard !DecoderCheckpoint.isDecoder(folder) else { throw ValidationError("--like \(like): a decoder; init makes BERT encoders (give minilm, mpnet or an encoder folder)") }
      let c = try RandomInit.makeBERT(like: folder, shape: RandomInit.Shape(layers: layers, hidden: hidden, heads: heads, intermediate: intermediate),
                                      seed: seed, output: URL(fileURLWithPath: output))
      let (model, _, _) = try ModelFolder.loadClassifier(URL(fileURLWithPath: output), numLabels: 2)
      let out: [String: Any] = ["output": output, "layers": c.numHiddenLayers, "hidden": c.hiddenSize, "heads": c.numAttentionHeads,
                                "intermediate": c.intermediateSize, "parameters": model.parameterCount - model.namedParameters().filter { $0.key.hasPrefix("classifier") }.reduce(0) { $0 + $1.tensor.count }]
      emit(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
    }
  }
}
