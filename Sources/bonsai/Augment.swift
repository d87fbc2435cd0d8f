// `bonsai augment`: paraphrases by a decoder and/or token edits of a data set's training texts, one per line,
// for `distill --unlabeled` (the teacher labels them). Cached: the same options and data reuse the file.
import ArgumentParser
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation

struct Augment: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write paraphrases (sampled from a decoder with a seed) and/or token edits of the training texts of a data set, one per line, for distill --unlabeled.")

  @OptionGroup var decoder: DecoderOptions
  @OptionGroup var dataOptions: DataOptions
  @Option(name: .long, help: "Paraphrases per training text (0: none).") var perExample = 2
  @Flag(name: .long, help: "Also write --per-example token-edited copies of each text (deletion, swap or masking, one each).") var edits = false
  @Option(name: .long, help: "The word masking puts in (the student's mask token).") var maskToken = "[MASK]"
  @Option(name: .long, help: "Sampling temperature of the paraphrases.") var temperature: Float = 0.8
  @Option(name: .long, help: "Nucleus sampling's top-p.") var topP: Float = 0.95
  @Option(name: .long, help: "New tokens per paraphrase at most.") var maxNewTokens = 96
  @Option(name: .long, help: "Seed of the split (as finetune's, unless --split-seed) and of the sampling and edits.") var seed: UInt64 = 42
  @Option(name: .long, help: "Seed of the split alone (as finetune's).") var splitSeed: UInt64?
  @Option(name: .long, help: "Dev fraction of the split (as finetune's).") var devFraction = 0.1
  @Option(name: .long, help: "Test fraction of the split (as finetune's).") var testFraction = 0.2
  @Option(name: .long, help: "A selection file (bonsai select): augment only those training texts.") var trainSubset: String?
  @Option(name: .long, help: "The file to write (and <file>.json, the stamp that makes it a cache).") var output: String

  func validate() throws {
    if perExample < 1 { throw ValidationError("--per-example must be at least 1, got \(perExample)") }
    if !(temperature > 0) || !(topP > 0 && topP <= 1) || maxNewTokens < 1 {
      throw ValidationError("--temperature must be positive, --top-p in (0, 1] and --max-new-tokens at least 1")
    }
    if devFraction < 0 || testFraction < 0 || devFraction + testFraction >= 1 { throw ValidationError("--dev-fraction and --test-fraction must be >= 0 and sum below 1") }
  }

  func run() throws {
    try runReportingErrors {
      let log = StderrProgress()
      let dataPath = try Assets.data(dataOptions.data, log: log.message)
      let dataset = try Dataset.load(path: dataPath, columns: ColumnSpec(text: dataOptions.textColumn, pair: dataOptions.textPairColumn, label: dataOptions.labelColumn))
      var split = Split.stratified(labels: dataset.examples.map(\.label), dev: devFraction, test: testFraction, seed: splitSeed ?? seed)
      if let subset = trainSubset {
        let lines = Set(try Selection.read(subset).ids)
        split.train = split.train.filter { lines.contains(dataset.examples[$0].line) }
      }
      let train = split.train.sorted()
      var sampling = Augmentation.Sampling()
      sampling.temperature = temperature; sampling.topP = topP; sampling.maxNewTokens = maxNewTokens; sampling.seed = seed
      let outURL = URL(fileURLWithPath: output), stampURL = URL(fileURLWithPath: output + ".json")
      let stamp: [String: Any] = [
        "model": decoder.model, "instruction": Augmentation.instruction, "per_example": perExample, "edits": edits, "mask": maskToken,
        "temperature": Double(temperature), "top_p": Double(topP), "max_new_tokens": maxNewTokens, "seed": seed, "split_seed": splitSeed ?? seed,
        "dev_fraction": devFraction, "test_fraction": testFraction, "train_subset": trainSubset ?? "", "data": dataPath,
        "data_sha256": try Assets.sha256(URL(fileURLWithPath: dataPath)), "texts": train.count]
      let stampData = try JSONSerialization.data(withJSONObject: stamp, options: [.prettyPrinted, .sortedKeys])
      if FileManager.default.contents(atPath: stampURL.path) == stampData, FileManager.default.fileExists(atPath: outURL.path) {
        let lines = try String(contentsOf: outURL, encoding: .utf8).split(separator: "\n").count
        log.message("\(output): made earlier with these options and data (\(stampURL.lastPathComponent)); reused")
        emit(#"{"cached":true,"lines":\#(lines),"output":"\#(output)"}"#)
        return
      }
      let started = Date()
      let texts = train.map { dataset.examples[$0].text }
      let (model, tokenizer) = try decoder.load()
      let template = try chatTemplate(tokenizer, source: decoder.model)
      log.message("paraphrasing \(texts.count) training texts x \(perExample) with \(decoder.model) (temperature \(temperature), top-p \(topP), seed \(seed))")
      let paraphrases = Augmentation.paraphrases(texts, perExample: perExample, model: model, tokenizer: tokenizer, template: template,
                                                 sampling: sampling, progress: log.message)
      var lines: [String] = [], edited = 0
      for (n, i) in train.enumerated() {
        lines += paraphrases[n]
        if edits {
          let e = Augmentation.edits(texts[n], count: perExample, mask: maskToken, seed: seed ^ UInt64(dataset.examples[i].line) &* 0x9E37_79B9)
          lines += e; edited += e.count
        }
      }
      let tmp = outURL.deletingLastPathComponent().appendingPathComponent(".\(outURL.lastPathComponent).tmp-\(getpid())")
      try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp)
      _ = try? FileManager.default.removeItem(at: outURL)
      try FileManager.default.moveItem(at: tmp, to: outURL)
      try stampData.write(to: stampURL, options: .atomic)
      let seconds = Date().timeIntervalSince(started)
      log.message(String(format: "%d paraphrases and %d edits of %d training texts in %.0f s -> %@", lines.count - edited, edited, texts.count, seconds, output))
      let out: [String: Any] = ["cached": false, "lines": lines.count, "paraphrases": lines.count - edited, "edits": edited, "texts": texts.count,
                                "seconds": seconds, "output": output]
      emit(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
    }
  }
}
