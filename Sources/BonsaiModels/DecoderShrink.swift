// Shrink and Fine-Tune for decoder stacks (SmolLM2, Qwen2), from a Hugging Face folder or a GGUF file:
// the student keeps the teacher's embedding, final norm and head and a chosen subset of its layers, in
// order. Layers are chosen by the spread rule (`Shrink.defaultLayers`: first and last kept) or by their
// block influence on sample text (ShortGPT, Men et al. 2024: BI_i = 1 - mean cos(x_i, x_{i+1}) over tokens,
// x_i a layer's input and x_{i+1} its output; reported here as the angular distance arccos(cos) / pi of
// Gromov et al. 2024, the same order): the layers that change the hidden state least are the ones dropped.
import BonsaiEngine
import BonsaiNN
import BonsaiTokenizers
import Foundation

extension Shrink {
  /// Writes a decoder student as a Hugging Face folder (F32, so the copied tensors equal the teacher's
  /// fp32 values bit for bit; transformers loads it and `convert` makes a GGUF of it), with
  /// `init_metadata` in its config. `randomInit`: the same shapes with transformers' initialisation
  /// (N(0, 0.02), norms 1), the baseline that shows what copying buys.
  public static func makeDecoderStudent(teacher url: URL, layers: [Int], output: URL, randomInit: Bool = false, seed: UInt64 = 0) throws {
    let (teacher, tokenizer) = try DecoderCheckpoint.load(url)
    let n = teacher.config.numHiddenLayers
    let student = try decoderStudent(of: teacher, layers: layers, randomInit: randomInit, seed: seed)
    let metadata: [String: Any] = randomInit ? ["teacher": url.path, "random_init": true, "seed": seed]
      : ["teacher": url.path, "teacher_layers": n, "copied_layers": layers]
    try DecoderCheckpoint.save(student, tokenizer: tokenizer, to: output, configExtras: ["init_metadata": metadata])
  }

  /// A student of `teacher` with its layers `layers` (copied, or randomly initialised with `randomInit`).
  public static func decoderStudent(of teacher: LlamaForCausalLM, layers: [Int], randomInit: Bool = false, seed: UInt64 = 0) throws -> LlamaForCausalLM {
    try validate(layers, teacherLayers: teacher.config.numHiddenLayers)
    var c = teacher.config
    c.numHiddenLayers = layers.count
    if randomInit { return LlamaForCausalLM(config: c, seed: seed) }
    let student = ParameterInit.deferred { LlamaForCausalLM(config: c, seed: seed) }
    let source = Dictionary(uniqueKeysWithValues: teacher.namedParameters().map { ($0.key, $0.tensor) })
    for (key, t) in student.namedParameters() {
      var from = key
      if let (prefix, j, rest) = splitLayerKey(key) { from = prefix + "\(layers[j])" + rest }
      guard let s = source[from], s.shape == t.shape else { preconditionFailure("decoderStudent: no teacher tensor \(from) of shape \(t.shape)") }
      t.copyValues(from: s)
    }
    return student
  }

  /// Each layer's block influence on `samples` (token ids, one sequence each): the mean angular distance
  /// arccos(cos(x_i, x_{i+1})) / pi between its input and output states over every token (0: the layer
  /// changes nothing). Computed without gradient, one sequence at a time.
  public static func blockInfluence(_ model: LlamaForCausalLM, samples: [[Int]]) -> [Double] {
    let n = model.config.numHiddenLayers, c = model.config.hiddenSize
    var total = [Double](repeating: 0, count: n), tokens = 0
    for ids in samples where !ids.isEmpty {
      let hidden = withoutGrad {  // layer l reads hidden[l] and writes hidden[l + 1]
        model.hiddenStates(TokenBatch(batch: 1, tokens: ids.count, ids: ids), positions: Array(0..<ids.count), finalNorm: false)
      }
      for l in 0..<n {
        let a = hidden[l].data, b = hidden[l + 1].data
        for t in 0..<ids.count {
          var dot = 0.0, na = 0.0, nb = 0.0
          for j in 0..<c { let x = Double(a[t * c + j]), y = Double(b[t * c + j]); dot += x * y; na += x * x; nb += y * y }
          total[l] += acos(max(-1, min(1, dot / max((na * nb).squareRoot(), 1e-30)))) / Double.pi
        }
      }
      tokens += ids.count
    }
    return total.map { $0 / Double(max(tokens, 1)) }
  }

  /// The `k` layers of greatest influence, in order (the others change the hidden state least).
  public static func influentialLayers(_ influence: [Double], count k: Int) -> [Int] {
    Array(influence.indices.sorted { influence[$0] != influence[$1] ? influence[$0] > influence[$1] : $0 < $1 }.prefix(k)).sorted()
  }
}
