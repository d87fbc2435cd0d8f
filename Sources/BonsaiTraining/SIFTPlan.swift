// SIFT (Song et al. 2023; shared/METHODS.md "SIFT") as a parameter plan: the top ~1% gradient
// components of each selected matrix, chosen on the first batch(es), train with a sparse AdamW that
// keeps state only for them; the classifier head trains densely. Exports carry the sparse delta.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

/// SIFT options, saved in config.json.
public struct SIFTConfig: Codable, Sendable, Equatable {
  /// Fraction of each selected matrix that trains (k = int(rate * numel) + 1).
  public var rate = 0.01
  /// Batches whose |gradient| is summed to choose the indices (they make no update).
  public var voteBatches = 1
  /// Choose again from the current batch every N optimizer steps (0: never).
  public var reselectEvery = 0
  /// Substrings of the matrix keys that train sparsely (default: attention and feed-forward matrices).
  public var targets: [String]?
  public init() {}
  enum CodingKeys: String, CodingKey { case rate, voteBatches = "vote_batches", reselectEvery = "reselect_every", targets }
  public static let defaultTargets = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense",
                                      "attn.q", "attn.k", "attn.v", "attn.o"]
}

final class SIFTPlan: ParameterPlan {
  let sparse: SparseAdamW
  let options: SIFTConfig
  /// True during a step that reselects the indices from its own gradient.
  var reselecting = false

  init(task: TrainingTask, extra: [(key: String, tensor: Tensor)], config: TrainConfig, modelFolder: URL) throws {
    let s = config.sift ?? SIFTConfig()
    guard s.rate > 0 && s.rate <= 1 else { throw MethodError.badRate(s.rate) }
    let targets = s.targets ?? SIFTConfig.defaultTargets
    let all = task.model.namedParameters()
    let matrices = all.filter { p in !task.isHead(p.key) && p.tensor.rank == 2 && p.key.hasSuffix(".weight") && !p.key.contains("embeddings")
      && targets.contains { p.key.contains($0) } }
    guard !matrices.isEmpty else { throw MethodError.noMatch(option: "--sparse-target", targets: targets) }
    sparse = SparseAdamW(matrices, rate: s.rate, learningRate: config.learningRate, weightDecay: config.weightDecay)
    options = s
    try super.init(method: "sift", task: task, trained: all.filter { task.isHead($0.key) }, sparse: matrices.map(\.tensor), extra: extra,
                   config: config, modelFolder: modelFolder)
    updatesDuringBackward = false  // the sparse optimizer gathers through its own gradient sinks
  }

  override var trainableCount: Int { super.trainableCount + sparse.trainableCount }
  override var gradientBytes: Int { super.gradientBytes + sparse.gradientBytes }
  override var optimizerStateBytes: Int { super.optimizerStateBytes + sparse.stateBytes }

  /// Installs the gradient sinks; a fresh run then lets its first batches vote for the indices
  /// (|gradient| of the task loss summed, no update).
  override func willStart(_ run: TrainingRun, resumed: Bool) throws {
    sparse.attach()
    // under data parallelism a selection sums |the ranks' summed gradient|, as one process would
    if let sync = gradientSync { sparse.reduceDense = { g in sync.reduce([(g.mutableData, g.count)]) } }
    guard !resumed else { return }
    let config = run.config
    let batches = lengthGroupedBatches(task.trainIndices, lengths: task.lengths, batchSize: config.batchSize, seed: config.seed, epoch: 0)
    let voteRng = RandomSource(seed: config.seed &+ 31)
    sparse.beginSelection()
    for idx in batches.prefix(options.voteBatches) {
      let output = run.forward(SampledBatch(indices: idx), rng: voteRng), share = run.lossShares(output)[0]
      let loss = task.loss(output)
      (share == 1 ? loss : loss.scaled(by: share)).backward()
    }
    sparse.endSelection()
    Tensor.clearGrad(optimizer.parametersWithGradients)
    run.progress.message("sift: indices chosen from \(min(options.voteBatches, batches.count)) batch(es): \(sparse.trainableCount) components in \(sparse.entries.count) matrices")
  }

  override func didFinish(_ run: TrainingRun) { sparse.detach() }

  /// Every `reselectEvery` steps (not the first), the step's first micro-batch starts a reselection.
  override func willBackward(step: Int, microBatch: Int, learningRate: Float) {
    guard options.reselectEvery > 0 && step > 0 && step % options.reselectEvery == 0 && microBatch == 0 else { return }
    sparse.beginReselection()
    reselecting = true
  }

  override func step(learningRate: Float, maxGradNorm: Float) {
    kVectorsSummed = reselecting  // a reselection gathers its k-vectors from dense gradients already summed
    if reselecting { sparse.endReselection(); reselecting = false }
    super.step(learningRate: learningRate, maxGradNorm: maxGradNorm)
  }
  var kVectorsSummed = false

  /// The head's gradients and the gathered k-vectors: only what trains crosses between ranks.
  override func reduceGradients() {
    super.reduceGradients()
    if let sync = gradientSync, !kVectorsSummed { sparse.reduceGradients { sync.reduce([($0, $1)]) } }
  }

  override var gradientSquaredNorm: Double { super.gradientSquaredNorm + sparse.gradientSquaredNorm }
  override func scaleGradients(_ c: Float) { super.scaleGradients(c); sparse.scaleGradients(c) }
  override func update(learningRate: Float) {
    super.update(learningRate: learningRate)
    sparse.learningRate = learningRate
    sparse.update()
  }

  /// sift_delta.safetensors: the head, and per matrix the values and flat indices of every touched component.
  override func deltaFiles(metadata: [String: String]) throws -> [String: (URL) throws -> Void] {
    var floats = task.model.namedParameters().filter { task.isHead($0.key) }, ints: [(key: String, values: [Int32])] = []
    for e in sparse.entries {
      let w = e.weight.data
      floats.append((e.key + ".values", Tensor(e.touched.map { w[Int($0)] }, shape: [e.touched.count])))
      ints.append((e.key + ".indices", e.touched))
    }
    var m = deltaMetadata(metadata)
    let shapes = Dictionary(uniqueKeysWithValues: sparse.entries.map { ($0.key, $0.weight.shape) })
    m["shapes"] = String(decoding: try JSONSerialization.data(withJSONObject: shapes, options: [.sortedKeys]), as: UTF8.self)
    return ["sift_delta.safetensors": { try writeSafeTensors(floats, int32: ints, to: $0.path, metadata: m) }]
  }

  override func saveState(to checkpoint: CheckpointWriter) throws {
    try super.saveState(to: checkpoint)
    let st = sparse.stateTensors()
    try checkpoint.write("sparse_optimizer", tensors: st.floats, int32s: st.ints, metadata: ["format": "pt", "step": "\(sparse.step)"])
  }

  override func restoreState(from checkpoint: CheckpointReader) throws {
    try super.restoreState(from: checkpoint)
    let file = try checkpoint.tensors("sparse_optimizer")
    try sparse.restore(step: Int(file.metadata["step"] ?? "0") ?? 0, floats: { try file.tensor($0) }, ints: { try file.int32s($0) })
  }
}
