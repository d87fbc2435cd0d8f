import ArgumentParser
import BonsaiCheckpoint
import BonsaiData
import BonsaiModels
import BonsaiTokenizers
import BonsaiTraining
import Foundation

struct ShrinkCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shrink",
    abstract: "Make a shallower student by copying chosen layers of a teacher (Shrink and Fine-Tune).")

  @Option(name: .long, help: "Teacher: a model name (minilm, mpnet, smollm2), a Hugging Face folder or a decoder's .gguf file, ideally fine-tuned for the task.")
  var teacher: String

  @Option(name: .long, help: "Teacher layers to copy, in order, e.g. 0,6,11.")
  var layers: String?

  @Option(name: .long, help: "Student depth; layers follow the paper's table (12 -> 3: 0,6,11), first and last kept, or --select.")
  var numLayers: Int?

  @Option(name: .long, help: "With --num-layers: spread (the paper's rule) or similarity (decoders: keep the layers of greatest block influence on --data, ShortGPT's rule).")
  var select = "spread"

  @Option(name: .long, help: "--select similarity: sample text, a data set name or file as finetune reads it (its first --samples examples).")
  var data: String?

  @Option(name: .long, help: "--select similarity: examples of --data to measure on.")
  var samples = 64

  @Option(name: .long, help: "--select similarity: tokens per example at most.")
  var maxLength = 128

  @Option(name: .long, help: "Folder for the student (a Hugging Face folder).")
  var output: String

  @Flag(name: .long, help: "Initialise the student randomly instead of copying (the baseline copying is measured against).")
  var randomInit = false

  @Option(name: .long, help: "Seed for --random-init.")
  var seed: UInt64 = 0

  func validate() throws {
    guard (layers == nil) != (numLayers == nil) else { throw ValidationError("give exactly one of --layers and --num-layers") }
    guard ["spread", "similarity"].contains(select) else { throw ValidationError("--select must be spread or similarity, got '\(select)'") }
    if select == "similarity" && (numLayers == nil || data == nil) { throw ValidationError("--select similarity needs --num-layers and --data") }
    if samples < 1 || maxLength < 2 { throw ValidationError("--samples must be at least 1 and --max-length at least 2") }
    if let l = layers, l.split(separator: ",").contains(where: { Int($0.trimmingCharacters(in: .whitespaces)) == nil }) {
      throw ValidationError("--layers must be comma-separated integers, got '\(l)'")
    }
  }

  func run() throws {
    try runReportingErrors {
      let folder = try Assets.model(teacher, log: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
      let decoder = DecoderCheckpoint.isDecoder(folder)
      guard decoder || select == "spread" else { throw ValidationError("--select similarity is for decoders; \(teacher) is an encoder") }
      let loaded = decoder ? try DecoderCheckpoint.load(folder) : nil
      let n = try loaded?.0.config.numHiddenLayers ?? Shrink.layerCount(try SafeTensorsFile(folder: folder))
      var chosen: [Int], influence: [Double]? = nil
      if let layers {
        chosen = layers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
      } else {
        let k = numLayers!
        guard k >= 1 && k <= n else { throw ShrinkError.badCount(k, layers: n) }
        chosen = Shrink.defaultLayers(teacher: n, student: k)
        if select == "similarity", let (model, tokenizer) = loaded {
          let bi = Shrink.blockInfluence(model, samples: try sampleIds(tokenizer: tokenizer))
          chosen = Shrink.influentialLayers(bi, count: k)
          influence = bi
        }
      }
      try Shrink.validate(chosen, teacherLayers: n)
      if decoder {
        try Shrink.makeDecoderStudent(teacher: folder, layers: chosen, output: URL(fileURLWithPath: output), randomInit: randomInit, seed: seed)
      } else {
        try Shrink.makeStudent(teacher: folder, layers: chosen, output: URL(fileURLWithPath: output), randomInit: randomInit, seed: seed)
      }
      let bi = influence.map { ", \"block_influence\": [\($0.map { String(format: "%.5f", $0) }.joined(separator: ","))]" } ?? ""
      emit("{\"student\": \(jsonString(output)), \"copied_layers\": [\(chosen.map(String.init).joined(separator: ","))], \"teacher_layers\": \(n)\(bi)}")
    }
  }

  /// The first `samples` examples of `data`, encoded as finetune encodes them (prompt and completion), cut to `maxLength`.
  func sampleIds(tokenizer: ByteLevelBPETokenizer) throws -> [[Int]] {
    let path = try Assets.data(data!)
    let dataset = try LanguageDataset.load(path: path)
    let encoder = try LanguageEncoder(for: dataset, tokenizer: tokenizer, model: teacher, maxLength: maxLength, trainOnAll: true)
    return try zip(dataset.examples, dataset.lines).prefix(samples).map { try encoder.encode($0, path: path, line: $1).ids }
  }
}
