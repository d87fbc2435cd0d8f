// `bonsai augment` and `bonsai init` from the outside: paraphrases of the training split only, one per line,
// cached by their options (a second run reuses the file, another seed makes another); a random BERT's shape.
import Foundation
import XCTest

extension CLITests {
  func testAugmentWritesTrainingParaphrasesOnceAndInitMakesARandomBERT() throws {
    let data = tmp.appendingPathComponent("reviews.csv")
    try (["label,text"] + (0..<10).map { "\($0 % 2 == 0 ? "pos" : "neg"),review number \($0) was \($0 % 2 == 0 ? "lovely" : "awful")" })
      .joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
    let out = tmp.appendingPathComponent("aug.txt")
    let args = ["augment", "--model", "smollm2", "--data", data.path, "--per-example", "1", "--edits", "--max-new-tokens", "8",
                "--dev-fraction", "0.2", "--test-fraction", "0.2", "--output", out.path]
    let first = try run(args)
    XCTAssertEqual(first.status, 0, first.stderr)
    let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any], first.stdout)
    XCTAssertEqual(o["texts"] as? Int, 6, "the training split alone (10 - 2 dev - 2 test)")
    let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(lines.count, o["lines"] as? Int)
    XCTAssertEqual(o["edits"] as? Int, 6)
    let again = try run(args)
    XCTAssertTrue(again.stdout.contains(#""cached":true"#), again.stdout + again.stderr)
    XCTAssertEqual(try String(contentsOf: out, encoding: .utf8).split(separator: "\n"), lines)
    XCTAssertFalse(try run(args + ["--seed", "7"]).stdout.contains(#""cached":true"#), "another seed is another augmentation")

    // A label-per-folder data set (as BBC) is stamped by its files' manifest: an edited file is another augmentation.
    let folder = tmp.appendingPathComponent("news")
    for i in 0..<10 {
      let file = folder.appendingPathComponent(i % 2 == 0 ? "sport" : "tech").appendingPathComponent("\(i).txt")
      try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
      try "story \(i) is about \(i % 2 == 0 ? "a match" : "a chip")".write(to: file, atomically: true, encoding: .utf8)
    }
    let folderArgs = ["augment", "--model", "smollm2", "--data", folder.path, "--per-example", "1", "--max-new-tokens", "4",
                      "--dev-fraction", "0.2", "--test-fraction", "0.2", "--output", tmp.appendingPathComponent("news-aug.txt").path]
    let fromFolder = try run(folderArgs)
    XCTAssertEqual(fromFolder.status, 0, fromFolder.stderr)
    XCTAssertTrue(try run(folderArgs).stdout.contains(#""cached":true"#))
    try "story 0 is about a final".write(to: folder.appendingPathComponent("sport/0.txt"), atomically: true, encoding: .utf8)
    XCTAssertFalse(try run(folderArgs).stdout.contains(#""cached":true"#), "an edited file is another data set")

    let model = tmp.appendingPathComponent("random-bert")
    let r = try run(["init", "--like", minilm, "--layers", "2", "--hidden", "128", "--heads", "4", "--output", model.path])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains(#""hidden":128"#) && r.stdout.contains(#""intermediate":512"#) && r.stdout.contains(#""layers":2"#), r.stdout)
    assertCleanFailure(try run(["init", "--like", minilm, "--hidden", "100", "--heads", "12", "--output", model.path]), mentions: "must be a positive multiple of --heads")
  }
}
