// The sha256 that stamps caches (augment's data, LoRA bases): a file's is coreutils'; a label-per-folder data set's is
// the hash of its manifest, equal to the documented shell pipeline, and it changes with any file's bytes or name.
import BonsaiData
import Foundation
import XCTest

final class AssetHashTests: XCTestCase {
  func testFolderHashIsTheManifestHashAndFollowsContentAndNames() throws {
    let root = try makeTemporaryFolder("bonsai-hash")
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("news")
    let files = ["business/001.txt": "Shares rose.\n", "business/002.txt": "Rates fell.", "tech/001.txt": "A new chip.\n",
                 "tech/deep/-odd name.txt": "nested, a leading dash and a space", "Zeta.txt": "upper case sorts first in C order"]
    for (path, text) in files {
      let url = data.appendingPathComponent(path)
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data(text.utf8).write(to: url)
    }
    let hash = try Assets.sha256(data)
    XCTAssertEqual(hash, try shell("cd '\(data.path)' && find . -type f -printf '%P\\n' | LC_ALL=C sort | tr '\\n' '\\0' | xargs -0 sha256sum -- | sha256sum | cut -c1-64"))
    XCTAssertEqual(try Assets.sha256(data.appendingPathComponent("tech/001.txt")),
                   try shell("sha256sum '\(data.path)/tech/001.txt' | cut -c1-64"), "a file's hash is coreutils'")

    let copy = root.appendingPathComponent("copy")
    try FileManager.default.copyItem(at: data, to: copy)
    XCTAssertEqual(try Assets.sha256(copy), hash, "the folder's own path is not part of it")
    try Data("Rates rose.".utf8).write(to: copy.appendingPathComponent("business/002.txt"))
    XCTAssertNotEqual(try Assets.sha256(copy), hash, "a changed file changes it")
    try FileManager.default.removeItem(at: copy)
    try FileManager.default.copyItem(at: data, to: copy)
    try FileManager.default.moveItem(at: copy.appendingPathComponent("tech/001.txt"), to: copy.appendingPathComponent("business/003.txt"))
    XCTAssertNotEqual(try Assets.sha256(copy), hash, "a file moved to another label changes it")
  }

  private func shell(_ command: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", command]
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, command)
    return out.trimmingCharacters(in: .whitespacesAndNewlines)
  }
}
