// MiniLM (BERT) and MPNet against transformers: last hidden states, mean-pooled embeddings,
// classifier logits and loss, and gradients of named weights (fixtures from scripts/make-golden.py).
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiModels
import BonsaiData
import BonsaiNN
import Foundation
import XCTest

let assetHome = Assets.home

func modelFolder(_ name: String) throws -> URL {
  let url = assetHome.appendingPathComponent("models/\(name)")
  guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) else {
    XCTFail("missing \(url.path): run `bonsai fetch` (or scripts/test.sh) first")
    throw CocoaError(.fileNoSuchFile)
  }
  return url
}

struct ModelGolden: Decodable {
  struct Hidden: Decodable { let shape: [Int]; let first16: [[[Double]]]; let row_sum: [[Double]]; let row_sumsq: [[Double]] }
  struct Sample: Decodable { let indices: [Int]; let values: [Double]; let norm: Double; let shape: [Int] }
  struct Batch: Decodable {
    let kind: String
    let input_ids: [[Int]]
    let attention_mask: [[Int]]
    let token_type_ids: [[Int]]?
    let hidden: Hidden
    let mean_pooled: [[Double]]
    let labels: [Int]
    let logits: [[Double]]
    let loss: Double
    let grads: [String: Sample]
  }
  let batches: [Batch]
}

/// Largest parity errors seen, printed at the end for the closing note.
nonisolated(unsafe) var worstSeen: [String: Double] = [:]
func note(_ key: String, _ v: Double) { worstSeen[key] = max(worstSeen[key] ?? 0, v) }

final class ModelParityTests: XCTestCase {
  override class func tearDown() {
    for (k, v) in worstSeen.sorted(by: { $0.key < $1.key }) { print(String(format: "parity %@: %.3g", k, v)) }
  }

  func golden(_ name: String) throws -> ModelGolden {
    let url = Bundle.module.url(forResource: "\(name)-golden", withExtension: "json", subdirectory: "Fixtures")!
    return try JSONDecoder().decode(ModelGolden.self, from: Data(contentsOf: url))
  }

  func check(_ name: String) throws {
    let folder = try modelFolder(name)
    let g = try golden(name)
    let loaded = try ModelFolder.loadEncoder(folder)
    let (clf, tokenizer, report) = try ModelFolder.loadClassifier(folder, numLabels: 3)
    XCTAssertFalse(report.initialisedFresh.isEmpty, "the classification head is new")
    // the fixture's deterministic head
    for (i, (key, t)) in clf.namedParameters().filter({ $0.key.hasPrefix("classifier.") }).enumerated() {
      t.copyValues(from: Tensor(patternValues(count: t.count, amplitude: key.hasSuffix("weight") ? 0.05 : 0.01, phase: 0.1 * Float(i + 1)), shape: t.shape))
    }
    for b in g.batches {
      let B = b.input_ids.count, T = b.input_ids[0].count
      let batch = TokenBatch(batch: B, tokens: T, ids: b.input_ids.flatMap { $0 }, typeIds: b.token_type_ids?.flatMap { $0 },
                             attentionMask: b.attention_mask.flatMap { $0 })
      // our tokenizer gives the same ids
      if b.kind == "single" {
        let texts = ["the movie was a delight from start to finish .", "a dull, lifeless mess.",
                     "Héllo Wörld! CJK 你好 and unusual input… with several more words to make it the longest"]
        let mine = TokenBatch(texts.map { tokenizer.encode($0) }, tokenizer: tokenizer)
        XCTAssertEqual(mine.ids, batch.ids, "\(name): token ids")
        XCTAssertEqual(mine.attentionMask, batch.attentionMask)
      }
      let h = withoutGrad { loaded.encoder(batch, rng: nil) }
      XCTAssertEqual(h.shape, b.hidden.shape)
      let C = h.shape[2]
      var worstH = 0.0, worstSum = 0.0, worstSq = 0.0
      for i in 0..<B {
        for t in 0..<T {
          let row = h.data + (i * T + t) * C
          for d in 0..<16 { worstH = max(worstH, abs(Double(row[d]) - b.hidden.first16[i][t][d])) }
          var s = 0.0, sq = 0.0
          for d in 0..<C { s += Double(row[d]); sq += Double(row[d]) * Double(row[d]) }
          worstSum = max(worstSum, abs(s - b.hidden.row_sum[i][t]))
          worstSq = max(worstSq, abs(sq - b.hidden.row_sumsq[i][t]) / max(1, b.hidden.row_sumsq[i][t]))
        }
      }
      note("\(name) hidden max abs", worstH); note("\(name) hidden row-sum abs", worstSum)
      XCTAssertLessThan(worstH, 1e-4, "\(name) \(b.kind): last hidden state")
      XCTAssertLessThan(worstSum, 2e-3, "\(name) \(b.kind): hidden row sums (\(C) values each)")
      XCTAssertLessThan(worstSq, 1e-5, "\(name) \(b.kind): hidden row sums of squares (relative)")
      let pooled = withoutGrad { meanPool(h, mask: batch.attentionMask, batch: B, tokens: T) }
      var worstP = 0.0
      for i in 0..<B { for d in 0..<C { worstP = max(worstP, abs(Double(pooled.data[i * C + d]) - b.mean_pooled[i][d])) } }
      note("\(name) pooled max abs", worstP)
      XCTAssertLessThan(worstP, 1e-4, "\(name) \(b.kind): mean-pooled embedding")

      // classifier logits, loss and gradients (eval mode: no dropout)
      for (_, p) in clf.namedParameters() { p.grad = nil }
      let logits = clf(batch, rng: nil)
      let loss = Tensor.crossEntropy(logits: logits, labels: b.labels)
      var worstL = 0.0
      for i in 0..<B { for k in 0..<3 { worstL = max(worstL, abs(Double(logits.data[i * 3 + k]) - b.logits[i][k])) } }
      note("\(name) logits max abs", worstL)
      XCTAssertLessThan(worstL, 1e-4, "\(name) \(b.kind): logits")
      XCTAssertEqual(Double(loss.item), b.loss, accuracy: 1e-4)
      loss.backward()
      let params = clf.parameterDictionary()
      for (key, want) in b.grads {
        guard let p = params[key], let grad = p.grad else { XCTFail("\(name): no gradient for \(key)"); continue }
        XCTAssertEqual(grad.shape, want.shape, key)
        let scale = max(want.values.map(abs).max()!, 1e-12)
        var worst = 0.0
        for (i, idx) in want.indices.enumerated() { worst = max(worst, abs(Double(grad.data[idx]) - want.values[i]) / scale) }
        var norm = 0.0
        for i in 0..<grad.count { norm += Double(grad.data[i]) * Double(grad.data[i]) }
        let normErr = abs(norm.squareRoot() - want.norm) / max(want.norm, 1e-12)
        note("\(name) grad relative", max(worst, normErr))
        XCTAssertLessThan(worst, 1e-4, "\(name) \(b.kind): gradient of \(key) (relative to its largest sampled value)")
        XCTAssertLessThan(normErr, 1e-4, "\(name) \(b.kind): gradient norm of \(key)")
      }
    }
  }

  func testMiniLMMatchesTransformers() throws { try check("minilm") }
  func testMPNetMatchesTransformers() throws { try check("mpnet") }

  func testRelativePositionBuckets() {
    // transformers' MPNetEncoder.relative_position_bucket for relative = key - query
    let rel = [0, 1, -1, 7, -7, 8, 12, 20, 100, 200, -200, 16, -16, 32, 64, 127, 128]
    XCTAssertEqual(rel.map { MPNetEncoder.bucket($0) }, [0, 17, 1, 23, 7, 24, 25, 26, 31, 31, 15, 26, 10, 28, 30, 31, 31])
  }
}
