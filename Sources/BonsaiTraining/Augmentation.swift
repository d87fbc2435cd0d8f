// Augmentation for small data (shared/METHODS.md section 5: "with little data, add generated augmentations";
// for text, a generative LM's paraphrases): each training text rewritten K times by a decoder (a documented
// chat prompt, sampled with a seed), and cheap token-level edits (EDA-style deletion, swap, masking). The
// texts go to a file, one per line, which `distill --unlabeled` has the teacher label. Only the training split
// of the run's seeded split is augmented, so that no paraphrase of a dev or test text joins training.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation

public enum Augmentation {
  /// The user turn each paraphrase answers (the decoder's chat template around it).
  public static let instruction = "Rewrite the following text in other words. Keep its meaning, its tone and its language, and reply with the rewritten text only.\n\nText: "

  /// Sampling of the paraphrases.
  public struct Sampling: Codable, Sendable, Equatable {
    public var temperature: Float = 0.8
    public var topP: Float = 0.95
    public var maxNewTokens = 96
    public var seed: UInt64 = 0
    public init() {}
  }

  /// `k` paraphrases of each text, in order: the prompts of 8 rows at a time (a text's k rows together), sampled
  /// with `sampling` (reproducible for a seed and the same texts); empty or unchanged continuations are dropped.
  public static func paraphrases(_ texts: [String], perExample k: Int, model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer,
                                 template: ChatTemplate, sampling s: Sampling, progress: (String) -> Void) -> [[String]] {
    var options = GenerationOptions()
    options.temperature = s.temperature; options.topP = s.topP; options.maxNewTokens = s.maxNewTokens
    let generator = Generator(model: model, tokenizer: tokenizer)
    let rows = texts.indices.flatMap { i in [Int](repeating: i, count: k) }
    var out = [[String]](repeating: [], count: texts.count)
    let started = Date()
    for (n, start) in stride(from: 0, to: rows.count, by: 8).enumerated() {
      let at = Array(rows[start..<min(start + 8, rows.count)])
      let prompts = at.map { i in
        tokenizer.encode(template.render([ChatMessage(role: "user", content: instruction + texts[i])], addGenerationPrompt: true))
      }
      options.seed = s.seed &+ UInt64(n)  // each batch its own stream: a resumed or partial run draws the same
      let made = withoutGrad { generator.generate(prompts, options: options) }
      for (i, g) in zip(at, made) {
        let text = clean(g.text)
        if !text.isEmpty && text != texts[i] { out[i].append(text) }
      }
      if n % 10 == 9 {
        let done = min(start + 8, rows.count), rate = Double(done) / Date().timeIntervalSince(started)
        progress(String(format: "paraphrases: %d/%d (%.1f a second)", done, rows.count, rate))
      }
    }
    return out
  }

  /// One line: whitespace (newlines included) collapsed, a leading "Text:" or quotes the model echoed dropped.
  static func clean(_ s: String) -> String {
    var t = s.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    for prefix in ["Text:", "Rewritten text:", "Rewritten:", "Rewrite:", "The rewritten text is:", "Rewritten version:"] where t.hasPrefix(prefix) { t = String(t.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) }
    if t.count > 1 && t.first == "\"" && t.last == "\"" { t = String(t.dropFirst().dropLast()) }
    return t
  }

  /// `k` edited copies of `text`, each made by one of: deleting each word with probability 0.1 (one kept),
  /// swapping two words (10% of the words' count, at least once), or replacing 15% of the words (at least
  /// one) by `mask`; reproducible from `seed` (with the example's line, so each example has its own draws).
  public static func edits(_ text: String, count k: Int, mask: String, seed: UInt64) -> [String] {
    let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
    guard words.count > 1 else { return [] }
    let rng = RandomSource(seed: seed)
    return (0..<k).map { _ in
      let key = rng.nextStream()
      var u = 0
      func uniform() -> Float { defer { u += 1 }; return RandomSource.uniform(key, u) }
      func index(_ n: Int) -> Int { min(Int(uniform() * Float(n)), n - 1) }
      var w = words
      switch index(3) {
      case 0:
        var kept = w.filter { _ in uniform() >= 0.1 }
        if kept.count == w.count { kept.remove(at: index(w.count)) }  // at least one word goes
        w = kept.isEmpty ? [w[index(w.count)]] : kept
      case 1:
        for _ in 0..<max(1, w.count / 10) {
          let i = index(w.count), j = (i + 1 + index(w.count - 1)) % w.count  // two different positions
          w.swapAt(i, j)
        }
      default:
        let n = max(1, Int((0.15 * Float(w.count)).rounded()))
        for _ in 0..<n { w[index(w.count)] = mask }
      }
      return w.joined(separator: " ")
    }.filter { $0 != text }  // a swap of two equal words changes nothing
  }
}
