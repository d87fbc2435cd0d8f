// One checkpoint protocol for every component: each writes its state as named tensors
// (NAME.safetensors) and/or JSON (NAME.json) into a temporary folder, which then replaces
// checkpoint-last/ by two renames, so a kill at any moment leaves one whole checkpoint behind.
import BonsaiCheckpoint
import BonsaiEngine
import Foundation

/// The checkpoint folder being assembled; components write into it by name.
public final class CheckpointWriter {
  /// The (temporary) folder, for a component that writes a whole model folder.
  public let folder: URL
  init(folder: URL) { self.folder = folder }

  /// NAME.safetensors with these tensors (and Int32 arrays, e.g. indices).
  public func write(_ name: String, tensors: [(key: String, tensor: Tensor)], int32s: [(key: String, values: [Int32])] = [],
                    metadata: [String: String] = ["format": "pt"]) throws {
    try writeSafeTensors(tensors, int32: int32s, to: folder.appendingPathComponent(name + ".safetensors").path, metadata: metadata)
  }

  /// NAME.json.
  public func write<T: Encodable>(_ name: String, json value: T) throws {
    try JSONEncoder.pretty.encode(value).write(to: folder.appendingPathComponent(name + ".json"))
  }
}

/// A checkpoint folder being read back.
public final class CheckpointReader {
  public let folder: URL
  init(folder: URL) { self.folder = folder }

  /// NAME.safetensors (a missing or damaged file is an error naming it).
  public func tensors(_ name: String) throws -> SafeTensorsFile {
    try SafeTensorsFile(path: folder.appendingPathComponent(name + ".safetensors").path)
  }

  /// NAME.json decoded, or nil when the checkpoint has no such file.
  public func json<T: Decodable>(_ name: String, as type: T.Type) throws -> T? {
    let url = folder.appendingPathComponent(name + ".json")
    guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
    do { return try JSONDecoder().decode(type, from: data) } catch {
      throw TrainingError.badResume(path: url.path, reason: "unreadable (\(error))")
    }
  }
}

/// Where a run stands between steps; with the components' own states it makes `--resume` exact.
/// The data order follows from (seed, epoch, batch in epoch), dropout from its stream counter.
public struct TrainerState: Codable, Sendable {
  public var globalStep = 0
  public var epoch = 0
  /// Batches of the current epoch already done.
  public var batchInEpoch = 0
  public var dropoutCounter: UInt64 = 0
  public var finished = false

  enum CodingKeys: String, CodingKey {
    case globalStep = "global_step", epoch, batchInEpoch = "batch_in_epoch", dropoutCounter = "dropout_counter", finished
  }
}

/// checkpoint-last/ of a run folder.
enum CheckpointFolder {
  static func last(_ runDir: URL) -> URL { runDir.appendingPathComponent("checkpoint-last") }

  /// Assembles a checkpoint through `write` and swaps it in: the old one stays whole until the new one is.
  static func save(in runDir: URL, _ write: (CheckpointWriter) throws -> Void) throws {
    let fm = FileManager.default
    let tmp = runDir.appendingPathComponent(".checkpoint-last.tmp")
    try? fm.removeItem(at: tmp)
    try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
    try write(CheckpointWriter(folder: tmp))
    let old = runDir.appendingPathComponent(".checkpoint-last.old")
    try? fm.removeItem(at: old)
    if fm.fileExists(atPath: last(runDir).path) { try fm.moveItem(at: last(runDir), to: old) }
    try fm.moveItem(at: tmp, to: last(runDir))
    try? fm.removeItem(at: old)
  }

  /// The checkpoint to resume from (a kill between the two renames leaves it under .old) and its trainer state.
  static func open(in runDir: URL) throws -> (CheckpointReader, TrainerState) {
    let fm = FileManager.default
    var dir = last(runDir)
    if !fm.fileExists(atPath: dir.appendingPathComponent("trainer_state.json").path) {
      dir = runDir.appendingPathComponent(".checkpoint-last.old")
    }
    let reader = CheckpointReader(folder: dir)
    guard let state = try reader.json("trainer_state", as: TrainerState.self) else {
      throw TrainingError.badResume(path: runDir.path, reason: "no checkpoint-last/trainer_state.json")
    }
    return (reader, state)
  }
}
