// The `bonsai` command-line tool: one subcommand per file.
import ArgumentParser
import BonsaiData
import BonsaiDistributed
import BonsaiEngine
import BonsaiTraining
import Foundation

@main
struct Bonsai: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bonsai",
    abstract: "Fine-tune, shrink, distil and sparsify small language models on a CPU.",
    subcommands: [Fetch.self, Tokenize.self, Embed.self, Finetune.self, Eval.self, Predict.self, ShrinkCommand.self, InitCommand.self, Distill.self, Augment.self,
                  Datamap.self, Select.self, FTFT.self, ApplyDelta.self, Generate.self, Chat.self, Score.self, Convert.self])
}

/// Options every model command shares.
struct ModelOptions: ParsableArguments {
  @Option(name: .long, help: "A model name (minilm, mpnet) or a Hugging Face folder (config.json, model.safetensors, tokenizer.json).")
  var model: String

  @Option(name: .long, help: "Truncate texts to this many tokens including special tokens (default: the folder's model_max_length, which for a Bonsai-trained model is the length it was trained at).")
  var maxLength: Int?

  @Option(name: .long, help: "Threads for kernels and matrix products (default: all cores).")
  var threads: Int?

  @Option(name: .long, help: "Texts per forward pass.")
  var batchSize = 32

  func validate() throws {
    if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2 (it counts the special tokens), got \(m)") }
    if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
  }

  /// The model folder (a known name is fetched on first use) after applying --threads.
  func resolve() throws -> URL {
    if let t = threads { Engine.threads = t }
    return try Assets.model(model)
  }
}

/// Reads texts one per line from `file`, or stdin when nil (UTF-8; invalid bytes are an error naming the line).
func readLines(from file: String? = nil) throws -> [String] {
  let source = file ?? "stdin"
  let data: Data
  if let file {
    guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("\(file): file not found") }
    data = d
  } else {
    data = FileHandle.standardInput.readDataToEndOfFile()
  }
  var lines: [String] = []
  var lineNo = 0
  for chunk in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
    lineNo += 1
    var bytes = chunk
    if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
    guard let s = String(bytes: bytes, encoding: .utf8) else {
      throw ValidationError("\(source) line \(lineNo): not valid UTF-8")
    }
    lines.append(s)
  }
  if lines.last == "" { lines.removeLast() }
  return lines
}

/// Writes one line to stdout.
func emit(_ line: String) {
  FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}

/// Formats floats as a JSON array with enough digits to round-trip.
func jsonArray(_ values: [Float]) -> String {
  "[" + values.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ",") + "]"
}

/// Runs a command body, turning errors into one clear line and exit code 1. Only the commands that train
/// data-parallel (`dataParallel`) may be launched by mpirun as several ranks; the others refuse, rather than run
/// N copies that write the same files.
func runReportingErrors(dataParallel: Bool = false, _ body: () throws -> Void) throws {
  if !dataParallel && Distributed.launchedRanks > 1 {
    // one line from rank 0; the others' copies of it would interleave with it on the shared stderr
    guard Distributed.launchedRank == 0 else { throw ExitCode(1) }
    throw ValidationError("launched as \(Distributed.launchedRanks) MPI ranks: only finetune and distill train data-parallel; run this command as one process")
  }
  do {
    try body()
  } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
    let world = DataParallel.world, rank = world.size > 1 ? " (rank \(world.rank) of \(world.size))" : ""
    FileHandle.standardError.write(("error\(rank): " + ((error as? LocalizedError)?.errorDescription ?? "\(error)") + "\n").data(using: .utf8)!)
    Distributed.abort(code: 1)  // the other ranks would wait for this one forever
    throw ExitCode(1)
  }
}
