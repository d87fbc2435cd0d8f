// `bonsai fetch`: models and data sets by name, sha256-checked and cached.
import ArgumentParser
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation

struct Fetch: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Download models and data sets by name into $BONSAI_HOME (sha256-checked, reused).")

  @Argument(help: "Names: minilm, mpnet, polarity, reviews, bbc, tweets (default: all).") var names: [String] = []

  func run() throws {
    try runReportingErrors {
      let all = names.isEmpty ? Assets.modelNames + Assets.dataNames : names
      for n in all {
        try Assets.fetch(n) { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
        emit("{\"name\": \"\(n)\", \"path\": \"\(Assets.modelNames.contains(n) ? Assets.modelPath(n).path : try Assets.data(n))\"}")
      }
    }
  }
}
