import ArgumentParser
import BonsaiEngine
import BonsaiModels
import Foundation

struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Classify each input line: {\"label\": ..., \"probabilities\": {...}} per line.")

  @OptionGroup var options: ModelOptions

  @Option(name: .long, help: "Read texts from this file (one per line) instead of stdin.")
  var input: String?

  func run() throws {
    try runReportingErrors {
      let folder = try options.resolve()
      guard let labels = ModelFolder.labels(folder) else {
        throw ValidationError("\(folder.appendingPathComponent("config.json").path): no id2label: not a classifier (fine-tune it first)")
      }
      let (model, tokenizer, _) = try ModelFolder.loadClassifier(folder, numLabels: labels.count)
      let lines = try readLines(from: input)
      var start = 0
      while start < lines.count {
        let chunk = Array(lines[start..<min(start + options.batchSize, lines.count)])
        let batch = TokenBatch(chunk.map { tokenizer.encode($0, maxLength: options.maxLength) }, tokenizer: tokenizer)
        let probs = withoutGrad { model(batch, rng: nil).softmax() }
        let k = labels.count, p = probs.scalars
        for b in 0..<batch.batch {
          let row = Array(p[(b * k)..<((b + 1) * k)])
          let best = row.firstIndex(of: row.max()!)!
          let dict = zip(labels, row).map { "\(jsonString($0)): \($1)" }.joined(separator: ", ")
          emit("{\"label\": \(jsonString(labels[best])), \"probabilities\": {\(dict)}}")
        }
        start += options.batchSize
      }
    }
  }
}

/// A JSON string literal.
func jsonString(_ s: String) -> String {
  let data = try! JSONSerialization.data(withJSONObject: [s])
  let text = String(decoding: data, as: UTF8.self)
  return String(text.dropFirst().dropLast())
}
