// Knowledge distillation for a student classifier (shared/METHODS.md, "Shrink and Fine-Tune"; the
// losses of transformers' seq2seq-distillation `distillation.py`):
//   L = alpha_ce * CE(z_s, y) + alpha_kd * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))
//       + alpha_hidden * sum_i MSE(h_s[i], h_t[map(i)])
// Teacher logits are computed once per example (the teacher is frozen and deterministic in eval mode)
// and reused every epoch; they work across tokenizers because they are per example. Hidden-state KD
// needs the teacher's states per batch and a shared tokenizer; where the student is narrower, a learned
// projection (one Linear per mapped layer) lifts its states to the teacher's width.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import BonsaiTokenizers
import Foundation

/// Distillation options, saved in the run's config.json.
public struct DistillConfig: Codable, Sendable, Equatable {
  public var teacher: String
  public var alphaCE: Float = 0.2
  public var alphaKD: Float = 0.8
  public var temperature: Float = 2
  public var alphaHidden: Float = 0
  /// Teacher layer for each student layer (default: the student's init_metadata.copied_layers).
  public var hiddenMap: [Int]?
  /// Parameter-free layer norm on both hidden states before the MSE.
  public var normalizeHidden = false
  /// Train on the teacher's predicted labels instead of the gold ones.
  public var pseudoLabels = false
  /// Extra unlabelled texts (one per line) labelled by the teacher.
  public var unlabeled: String?
  /// Decoders: tokens of each teacher distribution kept for logit KD (the rest as one bucket; nil: 32).
  public var topK: Int?
  /// Alignment/uniformity distillation of the sentence vectors (AlignUniform.swift; nil: none).
  public var alignUniform: AlignUniformConfig?

  public init(teacher: String) { self.teacher = teacher }

  enum CodingKeys: String, CodingKey {
    case teacher, alphaCE = "alpha_ce", alphaKD = "alpha_kd", temperature, alphaHidden = "alpha_hidden", hiddenMap = "hidden_map"
    case normalizeHidden = "normalize_hidden", pseudoLabels = "pseudo_labels", unlabeled, topK = "top_k", alignUniform = "align_uniform"
  }
}

/// A distillation problem the user can fix, found before any training starts.
public enum DistillError: LocalizedError, Equatable {
  case notAClassifier(path: String)
  case labelMismatch(teacher: [String], data: [String])
  case studentLabelMismatch(teacher: [String], student: [String])
  case hiddenNeedsSharedTokenizer
  case studentWider(student: Int, teacher: Int)
  case badMap(String)
  case decoderVocabularyMismatch(teacher: String)

  public var errorDescription: String? {
    switch self {
    case let .notAClassifier(path): return "\(path)/config.json: the teacher has no id2label: fine-tune it for the task first"
    case let .labelMismatch(t, d): return "teacher labels \(t) differ from the data's labels \(d)"
    case let .studentLabelMismatch(t, st): return "the student's classifier has labels \(st), the teacher's has \(t): use a student with no head or the same labels"
    case .hiddenNeedsSharedTokenizer: return "--alpha-hidden needs teacher and student to share a tokenizer (use logit KD or pseudo-labels across tokenizers)"
    case let .studentWider(s, t): return "the student's hidden size \(s) is wider than the teacher's \(t): distil into a smaller model"
    case let .badMap(reason): return "--hidden-map: \(reason)"
    case let .decoderVocabularyMismatch(t): return "\(t): the teacher's vocabulary differs from the student's (token-level KD needs the same tokens)"
    }
  }
}

/// The loss terms above, as differentiable tensors.
public enum DistillationLoss {
  /// T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over rows ("batchmean").
  public static func logitKD(student: Tensor, teacher: Tensor, temperature t: Float) -> Tensor {
    let target = withoutGrad { teacher.scaled(by: 1 / t).softmax() }
    return Tensor.klDivergence(input: student.scaled(by: 1 / t).logSoftmax(), target: target).scaled(by: t * t)
  }

  /// Sum over mapped layers of MSE(student state, teacher state) over the rows `tokens` (non-padding
  /// positions of [B*T, C]), optionally after a parameter-free layer norm. With `projection`, student
  /// layer i's states go through its learned map to the teacher's width first.
  public static func hiddenMSE(student: [Tensor], teacher: [Tensor], map: [Int], tokens: [Int]? = nil, normalize: Bool,
                               projection: HiddenProjection? = nil) -> Tensor {
    var total: Tensor?
    for (i, j) in map.enumerated() {
      var s = student[i + 1], t = teacher[j + 1]
      if let tokens { s = s.gatherRows(tokens); t = withoutGrad { t.gatherRows(tokens) } }
      if let projection { s = projection.layers[i](s) }
      if normalize {
        let c = s.size(-1)
        let one = Tensor(repeating: 1, shape: [c]), zero = Tensor(zeros: [c])
        s = s.layerNorm(weight: one, bias: zero, eps: 1e-5)
        t = withoutGrad { t.layerNorm(weight: one, bias: zero, eps: 1e-5) }
      }
      let term = Tensor.mse(s, t)
      total = total.map { $0 + term } ?? term
    }
    return total ?? Tensor([0], shape: [])
  }
}

/// Learned linear maps from the student's width to the teacher's, one per mapped student layer (as
/// TinyBERT's W_h), trained with the student and kept in checkpoints, not in the exported model.
public final class HiddenProjection: Module {
  public var layers: [Linear]

  public init(count: Int, studentWidth: Int, teacherWidth: Int, rng: RandomSource) {
    layers = (0..<count).map { _ in Linear(studentWidth, teacherWidth, rng: rng) }
  }
}

/// The teacher side of a run: cached logits for every example, and hidden states on demand.
public final class Teacher {
  public let model: SequenceClassifier
  public let tokenizer: WordPieceTokenizer
  public let labels: [String]
  let sharesTokenizer: Bool
  /// Cached logits, one row per example of the run's data (then the unlabelled texts).
  public private(set) var logits: [[Float]] = []
  /// Cached sentence vectors (the first token's final hidden state), when asked for, in the same order.
  public private(set) var features: [[Float]] = []

  public init(folder: URL, studentTokenizer: WordPieceTokenizer) throws {
    guard let labels = ModelFolder.labels(folder) else { throw DistillError.notAClassifier(path: folder.path) }
    let (m, tok, _) = try ModelFolder.loadClassifier(folder, numLabels: labels.count)
    model = m; tokenizer = tok; self.labels = labels
    sharesTokenizer = tok.vocabularySize == studentTokenizer.vocabularySize
      && tok.encode("Distillation check: Héllo, wörld! 123").ids == studentTokenizer.encode("Distillation check: Héllo, wörld! 123").ids
  }

  /// Computes (once) the teacher's logits for `texts` (each read with the teacher's own tokenizer) and, with
  /// `features`, its sentence vectors.
  public func cacheLogits(_ examples: [(text: String, pair: String?)], maxLength: Int, features keepFeatures: Bool = false, progress: (String) -> Void) {
    let encodings = examples.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: maxLength) }
    let order = encodings.indices.sorted { encodings[$0].ids.count > encodings[$1].ids.count }
    var rows = [[Float]](repeating: [], count: examples.count), vectors = keepFeatures ? rows : []
    let k = labels.count, width = model.encoderModel.hiddenSize
    for start in stride(from: 0, to: order.count, by: 64) {
      let idx = Array(order[start..<min(start + 64, order.count)])
      let batch = TokenBatch(idx.map { encodings[$0] }, tokenizer: tokenizer)
      let (z, h) = withoutGrad { () -> ([Float], [Float]) in
        let last = model.encoderModel.hiddenStates(batch, rng: nil).last!
        let logits = model.head(last.reshaped(to: [batch.batch, batch.tokens, width]), batch: batch, rng: nil).scalars
        return (logits, keepFeatures ? last.gatherRows((0..<batch.batch).map { $0 * batch.tokens }).scalars : [])
      }
      for (r, i) in idx.enumerated() {
        rows[i] = Array(z[(r * k)..<((r + 1) * k)])
        if keepFeatures { vectors[i] = Array(h[(r * width)..<((r + 1) * width)]) }
      }
    }
    logits = rows; features = vectors
    progress("teacher logits\(keepFeatures ? " and sentence vectors" : "") cached for \(examples.count) examples")
  }

  /// Teacher hidden states for a student batch (same tokenizer: the same token ids).
  public func hiddenStates(_ batch: TokenBatch) -> [Tensor] { withoutGrad { model.encoderModel.hiddenStates(batch, rng: nil) } }

  /// Checks a distillation set-up against the data and the student; returns the hidden-state layer map.
  public func validate(_ d: DistillConfig, dataLabels: [String], student: SequenceClassifier, studentFolder: URL) throws -> [Int] {
    guard labels == dataLabels else { throw DistillError.labelMismatch(teacher: labels, data: dataLabels) }
    let ws = student.encoderModel.hiddenSize, wt = model.encoderModel.hiddenSize
    guard ws <= wt else { throw DistillError.studentWider(student: ws, teacher: wt) }
    guard d.alphaHidden > 0 else { return [] }
    guard sharesTokenizer else { throw DistillError.hiddenNeedsSharedTokenizer }
    return try d.layerMap(studentFolder: studentFolder, studentLayers: student.encoderModel.layerCount, teacherLayers: model.encoderModel.layerCount)
  }
}

extension DistillConfig {
  /// Teacher layer of each student layer: `hiddenMap`, else the student's init_metadata.copied_layers (`bonsai shrink`).
  func layerMap(studentFolder: URL, studentLayers ns: Int, teacherLayers nt: Int) throws -> [Int] {
    var map = hiddenMap
    if map == nil, let data = FileManager.default.contents(atPath: studentFolder.appendingPathComponent("config.json").path),
       let cfg = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
       let meta = cfg["init_metadata"] as? [String: Any], let copied = meta["copied_layers"] as? [Int] { map = copied }
    guard let m = map else { throw DistillError.badMap("the student has no init_metadata.copied_layers; give --hidden-map") }
    guard m.count == ns else { throw DistillError.badMap("\(m.count) entries for a student of \(ns) layers") }
    for j in m where j < 0 || j >= nt { throw DistillError.badMap("teacher layer \(j) outside 0...\(nt - 1)") }
    return m
  }
}
