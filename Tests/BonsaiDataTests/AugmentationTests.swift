// Augmentation for small data: token edits change each text in the way their kind says and are reproducible by
// seed; paraphrases sampled from a decoder (the tiny random Llama, with a ChatML template) are the same for the
// same seed and differ for another; the output cleaner keeps one line.
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import BonsaiTraining
import Foundation
import XCTest

final class AugmentationTests: XCTestCase {
  func testEditsAreReproducibleAndEachChangesTheText() {
    let text = "a wonderful delightful film with a warm heart and a fine cast"
    let a = Augmentation.edits(text, count: 30, mask: "[MASK]", seed: 7), b = Augmentation.edits(text, count: 30, mask: "[MASK]", seed: 7)
    XCTAssertEqual(a, b, "the same seed, the same edits")
    XCTAssertNotEqual(a, Augmentation.edits(text, count: 30, mask: "[MASK]", seed: 8))
    XCTAssertGreaterThan(a.count, 25)
    let words = text.split(separator: " ").count
    for e in a {
      XCTAssertNotEqual(e, text)
      let n = e.split(separator: " ").count
      let masked = e.contains("[MASK]"), shorter = n < words, swapped = n == words && !masked
      XCTAssertTrue(masked || shorter || swapped, e)
      if swapped { XCTAssertEqual(e.split(separator: " ").sorted(), text.split(separator: " ").sorted(), "a swap keeps the words: \(e)") }
    }
    XCTAssertTrue(a.contains { $0.contains("[MASK]") } && a.contains { $0.split(separator: " ").count < words }, "every kind appears")
    XCTAssertEqual(Augmentation.edits("single", count: 3, mask: "[MASK]", seed: 1), [], "nothing to edit in one word")
  }

  func testParaphrasesAreReproducibleBySeed() throws {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("BonsaiModelsTests/Fixtures/tiny-llama")
    let (model, tokenizer) = try DecoderCheckpoint.load(folder)
    let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
      + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    let template = try ChatTemplate(chatml, source: "test")
    var s = Augmentation.Sampling()
    s.maxNewTokens = 6; s.seed = 3
    let texts = ["a fine film", "a dull film", "a long film"]
    let one = Augmentation.paraphrases(texts, perExample: 3, model: model, tokenizer: tokenizer, template: template, sampling: s, progress: { _ in })
    let again = Augmentation.paraphrases(texts, perExample: 3, model: model, tokenizer: tokenizer, template: template, sampling: s, progress: { _ in })
    XCTAssertEqual(one, again)
    XCTAssertEqual(one.count, 3)
    XCTAssertTrue(one.allSatisfy { $0.count <= 3 && $0.allSatisfy { !$0.contains("\n") && !$0.isEmpty } })
    s.seed = 4
    XCTAssertNotEqual(Augmentation.paraphrases(texts, perExample: 3, model: model, tokenizer: tokenizer, template: template, sampling: s, progress: { _ in }), one)
  }
}
