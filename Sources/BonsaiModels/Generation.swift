// Text generation from a decoder: greedy, or sampling with temperature, top-k and top-p (transformers'
// logits processors, in its order: repetition penalty, temperature, top-k, top-p); stops at an end-of-
// sequence token, a stop string or the token budget; batches of prompts; each token can be streamed.
import BonsaiEngine
import BonsaiTokenizers
import Foundation

public struct GenerationOptions: Sendable {
  public var maxNewTokens = 128
  /// 0: greedy.
  public var temperature: Float = 0
  /// 0: off.
  public var topK = 0
  /// 1: off.
  public var topP: Float = 1
  /// 1: off; > 1 discourages tokens already in the sequence (CTRL's penalty, as transformers applies it).
  public var repetitionPenalty: Float = 1
  public var seed: UInt64 = 0
  /// Generation ends when the text contains one of these (the text is cut before it).
  public var stopStrings: [String] = []
  /// End-of-sequence ids (default: the tokenizer's and the model's).
  public var eosIds: [Int]? = nil
  public init() {}
}

/// One continuation.
public struct Generated: Sendable, Equatable {
  public var text: String
  /// New token ids (an end-of-sequence token that ended generation included).
  public var tokens: [Int]
  /// "stop" (end of sequence or stop string) or "length".
  public var finishReason: String
}

public final class Generator {
  public let model: LlamaForCausalLM
  public let tokenizer: ByteLevelBPETokenizer

  public init(model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer) { self.model = model; self.tokenizer = tokenizer }

  /// Continues every prompt (token ids); `onToken(row, id)` sees each new token as it is chosen.
  public func generate(_ prompts: [[Int]], options o: GenerationOptions, onToken: ((Int, Int) -> Void)? = nil) -> [Generated] {
    let B = prompts.count
    let eos = Set(o.eosIds ?? ([tokenizer.eosId].compactMap { $0 } + model.config.eosTokenIds))
    var results = [Generated](repeating: Generated(text: "", tokens: [], finishReason: "length"), count: B)
    guard B > 0, o.maxNewTokens > 0 else { return results }
    var done = [Bool](repeating: false, count: B)
    var seen = prompts.map { Set($0) }
    let rng = RandomSource(seed: o.seed)
    var (cache, logits) = model.prefill(ids: prompts, extra: o.maxNewTokens)
    for step in 0..<o.maxNewTokens {
      let V = logits.size(-1), z = logits.data
      var next = [Int](repeating: eos.first ?? 0, count: B)
      let key = rng.nextStream()
      for b in 0..<B where !done[b] {
        var row = Array(UnsafeBufferPointer(start: z + b * V, count: V))
        next[b] = choose(&row, seen: seen[b], options: o, uniform: RandomSource.uniform(key, b))
        seen[b].insert(next[b])
        results[b].tokens.append(next[b])
        onToken?(b, next[b])
        if eos.contains(next[b]) { done[b] = true; results[b].finishReason = "stop"; continue }
        if !o.stopStrings.isEmpty {
          let text = tokenizer.decode(results[b].tokens, skipSpecialTokens: true)
          if let cut = o.stopStrings.compactMap({ text.range(of: $0)?.lowerBound }).min() {
            done[b] = true; results[b].finishReason = "stop"; results[b].text = String(text[..<cut])
          }
        }
      }
      if done.allSatisfy({ $0 }) || step == o.maxNewTokens - 1 { break }
      logits = model.step(next, cache: cache)
    }
    for b in 0..<B where results[b].text.isEmpty { results[b].text = tokenizer.decode(results[b].tokens, skipSpecialTokens: true) }
    return results
  }

  /// The next token from one row of logits (modified in place).
  func choose(_ z: inout [Float], seen: Set<Int>, options o: GenerationOptions, uniform: Float) -> Int {
    if o.repetitionPenalty != 1 {
      for id in seen where id < z.count { z[id] = z[id] < 0 ? z[id] * o.repetitionPenalty : z[id] / o.repetitionPenalty }
    }
    guard o.temperature > 0 else { return z.withUnsafeBufferPointer { argmax($0.baseAddress!, $0.count) } }  // the first largest
    for i in z.indices { z[i] /= o.temperature }
    var order = z.indices.sorted { z[$0] > z[$1] }
    if o.topK > 0 && o.topK < order.count { order = Array(order.prefix(o.topK)) }
    let m = z[order[0]]
    var p = order.map { Double(Foundation.exp(z[$0] - m)) }
    let total = p.reduce(0, +)
    p = p.map { $0 / total }
    if o.topP < 1 {  // keep the smallest prefix whose mass reaches top_p (at least one token)
      var mass = 0.0, keep = 0
      while keep < p.count { mass += p[keep]; keep += 1; if mass >= Double(o.topP) { break } }
      order = Array(order.prefix(keep)); p = Array(p.prefix(keep))
      let t = p.reduce(0, +); p = p.map { $0 / t }
    }
    var u = Double(uniform), k = 0
    while k < p.count - 1 && u >= p[k] { u -= p[k]; k += 1 }
    return order[k]
  }
}
