import ArgumentParser
import BonsaiCheckpoint
import BonsaiData
import BonsaiModels
import Foundation

struct ShrinkCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shrink",
    abstract: "Make a shallower student by copying chosen layers of a teacher (Shrink and Fine-Tune).")

  @Option(name: .long, help: "Teacher: a model name (minilm, mpnet) or a Hugging Face folder, ideally fine-tuned for the task.")
  var teacher: String

  @Option(name: .long, help: "Teacher layers to copy, in order, e.g. 0,6,11.")
  var layers: String?

  @Option(name: .long, help: "Student depth; layers follow the paper's table (12 -> 3: 0,6,11), first and last kept.")
  var numLayers: Int?

  @Option(name: .long, help: "Folder for the student (a Hugging Face folder).")
  var output: String

  @Flag(name: .long, help: "Initialise the student randomly instead of copying (the baseline copying is measured against).")
  var randomInit = false

  @Option(name: .long, help: "Seed for --random-init.")
  var seed: UInt64 = 0

  func validate() throws {
    guard (layers == nil) != (numLayers == nil) else { throw ValidationError("give exactly one of --layers and --num-layers") }
    if let l = layers, l.split(separator: ",").contains(where: { Int($0.trimmingCharacters(in: .whitespaces)) == nil }) {
      throw ValidationError("--layers must be comma-separated integers, got '\(l)'")
    }
  }

  func run() throws {
    try runReportingErrors {
      let folder = try Assets.model(teacher)
      let file = try SafeTensorsFile(folder: folder)
      let n = try Shrink.layerCount(file)
      let chosen: [Int]
      if let layers {
        chosen = layers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
      } else {
        let k = numLayers!
        guard k >= 1 && k <= n else { throw ShrinkError.badCount(k, layers: n) }
        chosen = Shrink.defaultLayers(teacher: n, student: k)
      }
      try Shrink.validate(chosen, teacherLayers: n)
      try Shrink.makeStudent(teacher: folder, layers: chosen, output: URL(fileURLWithPath: output), randomInit: randomInit, seed: seed)
      emit("{\"student\": \(jsonString(output)), \"copied_layers\": [\(chosen.map(String.init).joined(separator: ","))], \"teacher_layers\": \(n)}")
    }
  }
}
