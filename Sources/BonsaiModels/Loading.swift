// Strict checkpoint loading shared by the architectures: parameter names are the checkpoint keys, so
// loading is a lookup. Base-model checkpoints (no `bert.`/`mpnet.` prefix) and task checkpoints both load.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

/// What a load left to the caller: keys initialised fresh (a new classification head).
public struct LoadReport: Sendable {
  public var initialisedFresh: [String] = []
  public var ignored: [String] = []
}

extension Module {
  /// Copies weights from `file` into this module's parameters.
  ///
  /// - Parameters:
  ///   - basePrefix: the base model's prefix in task checkpoints (`bert`, `mpnet`); a checkpoint without it
  ///     is a base-model checkpoint and maps onto the keys under the prefix.
  ///   - freshPrefixes: keys of this module that may be absent (a new head), left as initialised.
  ///   - ignorable: checkpoint keys (prefix match) that have no place here and are skipped (buffers, heads of other tasks).
  public func load(from file: SafeTensorsFile, basePrefix: String, freshPrefixes: [String], ignorable: [String]) throws -> LoadReport {
    let fileKeys = Set(file.tensors.keys)
    let p = basePrefix + "."
    var report = LoadReport()
    var used = Set<String>()
    for (key, param) in namedParameters() {
      // A wrapped key (`bert.x`) may be stored bare (`x`, base checkpoint) and a bare key wrapped.
      let candidates = key.hasPrefix(p) ? [key, String(key.dropFirst(p.count))] : [key, p + key]
      guard let source = candidates.first(where: { fileKeys.contains($0) }), let info = file.tensors[source] else {
        if freshPrefixes.contains(where: { key.hasPrefix($0) }) { report.initialisedFresh.append(key); continue }
        throw CheckpointError.missingKey(path: file.path, key: candidates[0])
      }
      guard info.shape == param.shape else {
        throw CheckpointError.shapeMismatch(path: file.path, key: source, expected: param.shape, actual: info.shape)
      }
      try file.read(source, into: param)
      used.insert(source)
    }
    for key in fileKeys.subtracting(used).sorted() {
      let bare = key.hasPrefix(p) ? String(key.dropFirst(p.count)) : key
      if ignorable.contains(where: { bare.hasPrefix($0) || key.hasPrefix($0) }) { report.ignored.append(key); continue }
      throw CheckpointError.unexpectedKey(path: file.path, key: key)
    }
    return report
  }
}

/// Reads `config.json` from a model folder, naming the file in every error.
func readConfig<C: Decodable>(_ type: C.Type, folder: URL) throws -> C {
  let url = folder.appendingPathComponent("config.json")
  guard let data = FileManager.default.contents(atPath: url.path) else {
    throw CheckpointError.unreadable(path: url.path, reason: "file not found")
  }
  do { return try JSONDecoder().decode(C.self, from: data) }
  catch let DecodingError.keyNotFound(key, _) { throw CheckpointError.unsupportedConfig(path: url.path, key: key.stringValue, value: "missing") }
  catch let DecodingError.typeMismatch(_, ctx) {
    throw CheckpointError.unsupportedConfig(path: url.path, key: ctx.codingPath.map(\.stringValue).joined(separator: "."), value: "wrong type")
  } catch { throw CheckpointError.unreadable(path: url.path, reason: "invalid JSON (\(error.localizedDescription))") }
}

/// Deterministic values for tests and parity fixtures: w[i] = amplitude * sin(0.37 i + phase).
public func patternValues(count: Int, amplitude: Float, phase: Float) -> [Float] {
  (0..<count).map { amplitude * Float(Foundation.sin(0.37 * Double($0) + Double(phase))) }
}
