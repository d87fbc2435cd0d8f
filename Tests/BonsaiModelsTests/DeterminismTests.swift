// Same seed, same thread count: bit-identical training. And training moves the loss.
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import XCTest

final class DeterminismTests: XCTestCase {
  func trainSteps(threads: Int, steps: Int) throws -> (losses: [Float], weights: [Float]) {
    Engine.threads = threads
    defer { Engine.threads = 2 }
    let (model, tokenizer, _) = try ModelFolder.loadClassifier(modelFolder("minilm"), numLabels: 2, seed: 7)
    let texts = ["a wonderful film", "a dull, boring mess of a movie", "great acting and a clever plot", "i want my two hours back"]
    let batch = TokenBatch(texts.map { tokenizer.encode($0) }, tokenizer: tokenizer)
    let opt = AdamW(model.namedParameters(), learningRate: 1e-4, weightDecay: 0.01)
    let rng = RandomSource(seed: 3)
    var losses: [Float] = []
    for _ in 0..<steps {
      Tensor.zeroGrad(opt.parametersWithGradients)
      let loss = Tensor.crossEntropy(logits: model(batch, rng: rng), labels: [1, 0, 1, 0])
      loss.backward()
      opt.update()
      losses.append(loss.item)
    }
    let w = model.parameterDictionary()
    return (losses, w["bert.encoder.layer.2.attention.self.query.weight"]!.scalars + w["classifier.weight"]!.scalars)
  }

  func testTrainingIsBitIdenticalForSeedAndThreadCount() throws {
    let a = try trainSteps(threads: 2, steps: 4), b = try trainSteps(threads: 2, steps: 4)
    XCTAssertEqual(a.losses, b.losses)
    XCTAssertEqual(a.weights, b.weights)
    XCTAssertLessThan(a.losses.last!, a.losses.first!, "the loss falls on a batch it keeps seeing")
    let single = try trainSteps(threads: 1, steps: 4)
    XCTAssertEqual(single.losses, try trainSteps(threads: 1, steps: 4).losses)
    XCTAssertEqual(Double(single.losses.last!), Double(a.losses.last!), accuracy: 1e-3, "thread counts agree up to rounding")
  }
}
