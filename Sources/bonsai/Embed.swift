import ArgumentParser
import BonsaiEngine
import BonsaiModels
import Foundation

struct Embed: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print a sentence vector for each stdin line as a JSON array.")

  enum Pooling: String, ExpressibleByArgument, CaseIterable { case mean, cls }

  @OptionGroup var options: ModelOptions

  @Option(name: .long, help: "mean: average over non-padding tokens (sentence-transformers); cls: the first token.")
  var pooling: Pooling = .mean

  @Flag(name: .long, help: "Scale each vector to unit L2 norm.")
  var normalize = false

  func run() throws {
    try runReportingErrors {
      let folder = try options.resolve()
      let loaded = try ModelFolder.loadEncoder(folder)
      let lines = try readLines()
      var start = 0
      while start < lines.count {
        let chunk = Array(lines[start..<min(start + options.batchSize, lines.count)])
        let batch = TokenBatch(chunk.map { loaded.tokenizer.encode($0, maxLength: options.maxLength) }, tokenizer: loaded.tokenizer)
        let vectors = withoutGrad { () -> Tensor in
          let h = loaded.encoder(batch, rng: nil)
          var v: Tensor
          switch pooling {
          case .mean: v = meanPool(h, mask: batch.attentionMask, batch: batch.batch, tokens: batch.tokens)
          case .cls: v = h.reshaped(to: [batch.batch, batch.tokens * loaded.encoder.hiddenSize]).slice(axis: 1, 0..<loaded.encoder.hiddenSize)
          }
          if normalize { v = l2Normalized(v) }
          return v
        }
        let c = loaded.encoder.hiddenSize, s = vectors.scalars
        for b in 0..<batch.batch { emit(jsonArray(Array(s[(b * c)..<((b + 1) * c)]))) }
        start += options.batchSize
      }
    }
  }
}
