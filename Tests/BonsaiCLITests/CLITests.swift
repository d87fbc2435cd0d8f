// The `bonsai` tool as a user runs it: output format, and one clear error line with a non-zero exit
// for each kind of bad input (never a crash, never a partial output).
import Foundation
import BonsaiData
import XCTest

let assetHome = Assets.home

struct Run { let status: Int32; let stdout: String; let stderr: String }

final class CLITests: XCTestCase {
  var tmp: URL!

  override func setUpWithError() throws {
    tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

  /// The `bonsai` binary built next to this test bundle.
  var binary: URL {
    var dir = Bundle.main.bundleURL
    for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") { dir = b.bundleURL.deletingLastPathComponent() }
    if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("bonsai").path) { dir = Bundle.main.bundleURL }
    return dir.appendingPathComponent("bonsai")
  }

  func run(_ args: [String], stdin: Data = Data(), environment: [String: String] = [:]) throws -> Run {
    let p = Process()
    p.executableURL = binary
    p.arguments = args
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe; p.standardOutput = outPipe; p.standardError = errPipe
    try p.run()
    inPipe.fileHandleForWriting.write(stdin)
    try inPipe.fileHandleForWriting.close()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile(), err = errPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
  }

  var minilm: String { assetHome.appendingPathComponent("models/minilm").path }

  /// A copy of MiniLM's folder (weights linked, not copied) that a test may break.
  func modelCopy() throws -> URL {
    let dir = tmp.appendingPathComponent("model-\(UUID().uuidString.prefix(6))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"] {
      try FileManager.default.copyItem(atPath: minilm + "/" + f, toPath: dir.appendingPathComponent(f).path)
    }
    try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("model.safetensors").path, withDestinationPath: minilm + "/model.safetensors")
    return dir
  }

  func assertCleanFailure(_ r: Run, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertNotEqual(r.status, 0, "exit status", file: file, line: line)
    XCTAssertLessThan(r.status, 128, "killed by a signal: \(r.stderr)", file: file, line: line)
    XCTAssertTrue(r.stderr.contains(mentions), "stderr should mention \(mentions): \(r.stderr)", file: file, line: line)
    XCTAssertEqual(r.stdout, "", "no partial output", file: file, line: line)
  }

  func testTokenizeAndEmbed() throws {
    let r = try run(["tokenize", "--model", minilm], stdin: Data("the movie was a delight from start to finish .\nhi\n".utf8))
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(r.stdout, "[101,1996,3185,2001,1037,12208,2013,2707,2000,3926,1012,102]\n[101,7632,102]\n")
    let long = String(repeating: "word ", count: 2000)
    let t = try run(["tokenize", "--model", minilm, "--max-length", "16"], stdin: Data((long + "\n").utf8))
    XCTAssertEqual(t.stdout.split(separator: ",").count, 16, "truncated to --max-length")
    let e = try run(["embed", "--model", minilm, "--normalize"], stdin: Data("a short text\n\(long)\n".utf8))
    XCTAssertEqual(e.status, 0, e.stderr)
    let vectors = try e.stdout.split(separator: "\n").map { try JSONDecoder().decode([Float].self, from: Data($0.utf8)) }
    XCTAssertEqual(vectors.count, 2, "a text longer than the model's positions is truncated, not an error")
    for v in vectors {
      XCTAssertEqual(v.count, 384)
      XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4)
    }
  }

  func testBadModelInput() throws {
    assertCleanFailure(try run(["embed", "--model", tmp.appendingPathComponent("nope").path], stdin: Data("x\n".utf8)), mentions: "nope")

    let truncated = try modelCopy()
    let st = truncated.appendingPathComponent("model.safetensors")
    try FileManager.default.removeItem(at: st)
    let whole = try Data(contentsOf: URL(fileURLWithPath: minilm + "/model.safetensors"))
    try whole.prefix(whole.count / 2).write(to: st)
    assertCleanFailure(try run(["embed", "--model", truncated.path], stdin: Data("x\n".utf8)), mentions: "model.safetensors")

    let llama = try modelCopy()
    try #"{"model_type": "llama"}"#.write(to: llama.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["embed", "--model", llama.path], stdin: Data("x\n".utf8)), mentions: "config.json")

    let bpe = try modelCopy()
    try #"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#.write(to: bpe.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["tokenize", "--model", bpe.path], stdin: Data("x\n".utf8)), mentions: "tokenizer.json")

    let noTokenizer = try modelCopy()
    try FileManager.default.removeItem(at: noTokenizer.appendingPathComponent("tokenizer.json"))
    assertCleanFailure(try run(["embed", "--model", noTokenizer.path], stdin: Data("x\n".utf8)), mentions: "tokenizer.json")

    assertCleanFailure(try run(["tokenize", "--model", minilm], stdin: Data([0x61, 0x0A, 0xFF, 0xFE, 0x0A])), mentions: "line 2")
    assertCleanFailure(try run(["embed", "--model", minilm, "--batch-size", "0"]), mentions: "--batch-size")
  }

  func tinyCSV() throws -> URL {
    var csv = "label,text\n"
    for i in 0..<60 { csv += i % 2 == 0 ? "pos,\"a wonderful, delightful film \(i)\"\n" : "neg,\"a dull and boring mess \(i)\"\n" }
    let data = tmp.appendingPathComponent("tiny.csv")
    try csv.write(to: data, atomically: true, encoding: .utf8)
    return data
  }

  func testFinetuneEvalPredict() throws {
    let data = try tinyCSV()
    let out = tmp.appendingPathComponent("run")
    let args = ["finetune", "--model", minilm, "--data", data.path, "--epochs", "4", "--batch-size", "8", "--max-length", "16",
                "--learning-rate", "1e-4", "--output", out.path]
    let r = try run(args)
    XCTAssertEqual(r.status, 0, r.stderr)
    let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    XCTAssertGreaterThan(summary["test_accuracy"] as! Double, 0.5, "above chance on a trivially separable set")
    for f in ["config.json", "split.json", "metrics.jsonl", "summary.json", "learning-curve.svg", "best/config.json", "final/model.safetensors",
              "checkpoint-last/optimizer.safetensors", "checkpoint-last/trainer_state.json"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), "run folder has \(f)")
    }
    // the loss falls
    let losses = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double }
    XCTAssertLessThan(losses.suffix(3).reduce(0, +), losses.prefix(3).reduce(0, +), "training loss falls")

    let p = try run(["predict", "--model", out.appendingPathComponent("best").path], stdin: Data("a wonderful, delightful film\na dull and boring mess\n".utf8))
    XCTAssertEqual(p.status, 0, p.stderr)
    let rows = try p.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    XCTAssertEqual(rows.map { $0["label"] as! String }, ["pos", "neg"])
    for row in rows { XCTAssertEqual((row["probabilities"] as! [String: Double]).values.reduce(0, +), 1, accuracy: 1e-5) }

    let e = try run(["eval", "--model", out.appendingPathComponent("best").path, "--data", data.path])
    XCTAssertEqual(e.status, 0, e.stderr)
    let metrics = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
    XCTAssertNotNil(metrics["macro_f1"]); XCTAssertNotNil(metrics["confusion_matrix"]); XCTAssertNotNil(metrics["per_class"])

    // Shrink the fine-tuned model and distil into the student: the loss falls
    let student = tmp.appendingPathComponent("student"), distilled = tmp.appendingPathComponent("distilled")
    XCTAssertEqual(try run(["shrink", "--teacher", out.appendingPathComponent("best").path, "--layers", "0,5", "--output", student.path]).status, 0)
    let d = try run(["distill", "--teacher", out.appendingPathComponent("best").path, "--student", student.path, "--data", data.path,
                     "--alpha-hidden", "1", "--epochs", "3", "--batch-size", "8", "--max-length", "16", "--learning-rate", "1e-4",
                     "--output", distilled.path])
    XCTAssertEqual(d.status, 0, d.stderr)
    XCTAssertTrue(d.stderr.contains("teacher logits cached"), d.stderr)
    let dLosses = try String(contentsOf: distilled.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double }
    XCTAssertLessThan(dLosses.suffix(3).reduce(0, +), dLosses.prefix(3).reduce(0, +), "distillation loss falls")
    assertCleanFailure(try run(["distill", "--teacher", minilm, "--student", student.path, "--data", data.path]), mentions: "no id2label")
    assertCleanFailure(try run(["distill", "--teacher", out.appendingPathComponent("best").path, "--student", minilm, "--data", data.path,
                                "--alpha-hidden", "1", "--output", tmp.appendingPathComponent("d2").path]), mentions: "--hidden-map")
    assertCleanFailure(try run(["shrink", "--teacher", minilm, "--layers", "0,9", "--output", tmp.appendingPathComponent("s2").path]), mentions: "outside")

    // refuses to overwrite a run, and bad data names its line
    assertCleanFailure(try run(args), mentions: "--overwrite")
    let unseen = tmp.appendingPathComponent("unseen.csv")
    try "label,text\npos,fine\nmaybe,hmm\n".write(to: unseen, atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["eval", "--model", out.appendingPathComponent("best").path, "--data", unseen.path]), mentions: "line 3")
    let bad = tmp.appendingPathComponent("bad.csv")
    try "label,text\npos,fine\nneg\n".write(to: bad, atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["finetune", "--model", minilm, "--data", bad.path, "--output", tmp.appendingPathComponent("r2").path]), mentions: "line 3")
    assertCleanFailure(try run(["finetune", "--model", minilm, "--data", data.path, "--text-column", "review"]), mentions: "no column 'review'")
    assertCleanFailure(try run(["predict", "--model", minilm], stdin: Data("x\n".utf8)), mentions: "id2label")
    assertCleanFailure(try run(["finetune", "--model", minilm, "--data", data.path, "--learning-rate", "1e30", "--max-length", "16",
                                "--output", tmp.appendingPathComponent("nan").path]), mentions: "the loss became")
    assertCleanFailure(try run(["finetune", "--model", minilm, "--data", data.path, "--batch-size", "0"]), mentions: "--batch-size")
    let emptyFile = tmp.appendingPathComponent("empty.csv")
    try "".write(to: emptyFile, atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["finetune", "--model", minilm, "--data", emptyFile.path]), mentions: "no examples")
  }

  /// The length a model was trained at is recorded in its folder (tokenizer_config.json's model_max_length)
  /// and is what eval, predict and embed use by default; without a test split nothing pretends to be tested.
  func testTrainingLengthIsTheDefaultAfterwardsAndNoTestSplitPrintsNoTestMetrics() throws {
    let data = try tinyCSV()
    let out = tmp.appendingPathComponent("run16")
    let r = try run(["finetune", "--model", minilm, "--data", data.path, "--epochs", "1", "--batch-size", "8", "--max-length", "16",
                     "--test-fraction", "0", "--output", out.path])
    XCTAssertEqual(r.status, 0, r.stderr)
    let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    XCTAssertNil(summary["test_accuracy"], "no test split, no test accuracy: \(r.stdout)")
    XCTAssertEqual(summary["test_examples"] as? Int, 0)
    XCTAssertTrue((summary["evaluate"] as? String ?? "").contains("bonsai eval --model \(out.path)/"), r.stdout)
    let runSummary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
    XCTAssertNil(runSummary["test"])
    for folder in ["best", "final"] where FileManager.default.fileExists(atPath: out.appendingPathComponent(folder).path) {
      let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("\(folder)/tokenizer_config.json"))) as! [String: Any]
      XCTAssertEqual(cfg["model_max_length"] as? Int, 16, "\(folder)/tokenizer_config.json records the training length")
      XCTAssertNotNil(cfg["do_lower_case"] ?? cfg["tokenizer_class"], "the source's other keys are kept")
    }
    let model = out.appendingPathComponent("final").path
    let e = try run(["eval", "--model", model, "--data", data.path])
    XCTAssertEqual(e.status, 0, e.stderr)
    XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any])["max_length"] as? Int, 16)
    let long = Data((Array(repeating: "a wonderful film", count: 8) + Array(repeating: "a dull and boring mess", count: 8)).joined(separator: " ").utf8 + [10])
    let byDefault = try run(["predict", "--model", model], stdin: long).stdout
    XCTAssertEqual(byDefault, try run(["predict", "--model", model, "--max-length", "16"], stdin: long).stdout)
    XCTAssertNotEqual(byDefault, try run(["predict", "--model", model, "--max-length", "64"], stdin: long).stdout, "the text is longer than 16 tokens")
    let embedded = try run(["embed", "--model", model], stdin: long).stdout
    XCTAssertEqual(embedded, try run(["embed", "--model", model, "--max-length", "16"], stdin: long).stdout)
  }

  func testResumeEndsExactlyWhereAnUninterruptedRunEnds() throws {
    let data = try tinyCSV()
    let common = ["finetune", "--model", minilm, "--data", data.path, "--epochs", "2", "--batch-size", "8", "--max-length", "16", "--eval-every", "2"]
    let full = tmp.appendingPathComponent("full"), part = tmp.appendingPathComponent("part")
    XCTAssertEqual(try run(common + ["--output", full.path]).status, 0)
    setenv("BONSAI_TEST_CRASH_AFTER_STEP", "3", 1)
    let crashed = try run(common + ["--output", part.path])
    unsetenv("BONSAI_TEST_CRASH_AFTER_STEP")
    XCTAssertEqual(crashed.status, 75, "stopped after a checkpoint, as a kill would")
    let resumed = try run(common + ["--resume", part.path])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertTrue(resumed.stderr.contains("resuming at step 4"), resumed.stderr)
    XCTAssertEqual(try Data(contentsOf: full.appendingPathComponent("final/model.safetensors")),
                   try Data(contentsOf: part.appendingPathComponent("final/model.safetensors")), "bit-identical final weights")
    XCTAssertEqual(try Data(contentsOf: full.appendingPathComponent("summary.json")).count > 0, true)
  }

  func testKillDashNineLeavesAResumableCheckpoint() throws {
    let data = try tinyCSV()
    let out = tmp.appendingPathComponent("killed")
    let args = ["finetune", "--model", minilm, "--data", data.path, "--epochs", "50", "--max-steps", "40", "--batch-size", "8",
                "--max-length", "16", "--eval-every", "1"]
    let p = Process()
    p.executableURL = binary
    p.arguments = args + ["--output", out.path]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let state = out.appendingPathComponent("checkpoint-last/trainer_state.json")
    let deadline = Date().addingTimeInterval(120)
    while !FileManager.default.fileExists(atPath: state.path) && Date() < deadline { usleep(20_000) }
    usleep(UInt32.random(in: 0..<300_000))  // somewhere among later steps and checkpoint writes
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    XCTAssertEqual(p.terminationReason, .uncaughtSignal)
    let resumed = try run(args + ["--resume", out.path])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertTrue(resumed.stderr.contains("resuming at step"), resumed.stderr)
    let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
    XCTAssertEqual(summary["steps"] as? Int, 40)
    // a changed option is refused, not silently continued
    let changed = try run(args.map { $0 == "40" ? "41" : $0 } + ["--resume", out.path])
    XCTAssertTrue(changed.stderr.contains("options differ"), changed.stderr)
  }

  func testDataMapSelectFTFTAndDeltasFromTheCommandLine() throws {
    let data = try tinyCSV()
    let common = ["--data", data.path, "--batch-size", "8", "--max-length", "16", "--threads", "2"]
    let ref = tmp.appendingPathComponent("ref")
    XCTAssertEqual(try run(["finetune", "--model", minilm, "--epochs", "2", "--record-dynamics", "--method", "sift", "--sparsity", "0.005",
                            "--learning-rate", "5e-4", "--output", ref.path] + common).status, 0)
    let map = try run(["datamap", ref.path])
    XCTAssertEqual(map.status, 0, map.stderr)
    let csv = try String(contentsOf: ref.appendingPathComponent("datamap.csv"), encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(csv.first, "id,label,confidence,variability,correctness,text")
    let split = try JSONSerialization.jsonObject(with: Data(contentsOf: ref.appendingPathComponent("split.json"))) as! [String: [Int]]
    XCTAssertEqual(csv.count - 1, split["train"]!.count, "one row per training example")
    let sel = tmp.appendingPathComponent("sel.json"), selCSV = tmp.appendingPathComponent("sel.csv")
    XCTAssertEqual(try run(["select", ref.path, "--strategy", "hard", "--fraction", "0.25", "--output", sel.path]).status, 0)
    XCTAssertEqual(try run(["select", ref.path, "--strategy", "hard", "--fraction", "0.25", "--output", selCSV.path]).status, 0)
    let ids = (try JSONSerialization.jsonObject(with: Data(contentsOf: sel)) as! [String: Any])["ids"] as! [Int]
    XCTAssertEqual(ids.count, Int((0.25 * Double(split["train"]!.count)).rounded(.up)))
    XCTAssertEqual(try String(contentsOf: selCSV, encoding: .utf8).split(separator: "\n").count, ids.count + 1, "a data file finetune reads")
    let sub = try run(["finetune", "--model", minilm, "--epochs", "1", "--train-subset", sel.path, "--output", tmp.appendingPathComponent("sub").path] + common)
    XCTAssertEqual(sub.status, 0, sub.stderr)
    XCTAssertTrue(sub.stderr.contains("training on \(ids.count) selected examples"), sub.stderr)
    // the SIFT reference's delta rebuilds it; another base is refused
    let rebuilt = tmp.appendingPathComponent("rebuilt")
    XCTAssertEqual(try run(["apply-delta", "--base", minilm, "--delta", ref.appendingPathComponent("best/sift_delta.safetensors").path,
                            "--output", rebuilt.path]).status, 0)
    XCTAssertEqual(try Data(contentsOf: rebuilt.appendingPathComponent("model.safetensors")), try Data(contentsOf: ref.appendingPathComponent("best/model.safetensors")))
    assertCleanFailure(try run(["apply-delta", "--base", ref.appendingPathComponent("best").path, "--delta",
                                ref.appendingPathComponent("best/sift_delta.safetensors").path, "--output", tmp.appendingPathComponent("x").path]), mentions: "sha256")
    // the whole FTFT pipeline
    let ftft = tmp.appendingPathComponent("ftft")
    let f = try run(["ftft", "--reference", minilm, "--main", minilm, "--epochs", "2", "--fraction", "0.5", "--main-steps", "4", "--output", ftft.path] + common)
    XCTAssertEqual(f.status, 0, f.stderr)
    let report = try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as! [String: Any]
    XCTAssertLessThanOrEqual((report["main"] as! [String: Any])["steps"] as! Int, 4, "the main model keeps to its step budget")
    for file in ["datamap.svg", "datamap.csv", "selection.json", "reference/dynamics.jsonl", "main/best/model.safetensors"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: ftft.appendingPathComponent(file).path), file)
    }
    // bad input
    assertCleanFailure(try run(["select", ref.path, "--fraction", "0", "--output", sel.path]), mentions: "(0, 1]")
    assertCleanFailure(try run(["datamap", ftft.appendingPathComponent("main").path]), mentions: "--record-dynamics")
    let one = tmp.appendingPathComponent("one")
    XCTAssertEqual(try run(["finetune", "--model", minilm, "--epochs", "1", "--record-dynamics", "--output", one.path] + common).status, 0)
    assertCleanFailure(try run(["datamap", one.path]), mentions: "at least 2")
    assertCleanFailure(try run(["finetune", "--model", minilm, "--method", "sift", "--sparsity", "2"] + common), mentions: "--sparsity")
    assertCleanFailure(try run(["finetune", "--model", minilm, "--method", "lora", "--target", "nowhere", "--output", tmp.appendingPathComponent("l").path] + common),
                       mentions: "matches no parameter")
  }
}
