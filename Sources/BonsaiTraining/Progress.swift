// Progress: a one-line bar on a terminal, plain log lines otherwise; the observer that feeds it after
// every step; memory tracing (BONSAI_TRACE_MEMORY) and the peak resident set for summaries.
import BonsaiEngine
import Foundation

/// Where progress goes.
public protocol ProgressSink: AnyObject {
  func step(epoch: Int, step: Int, total: Int, loss: Float, learningRate: Float, examplesPerSecond: Double, eta: Double)
  func message(_ text: String)
}

public final class StderrProgress: ProgressSink {
  let tty = isatty(2) != 0
  var lastLog = 0
  public init() {}
  public func step(epoch: Int, step: Int, total: Int, loss: Float, learningRate: Float, examplesPerSecond: Double, eta: Double) {
    if tty {
      let width = 30, done = total > 0 ? width * step / total : 0
      let bar = String(repeating: "#", count: done) + String(repeating: ".", count: width - done)
      write(String(format: "\repoch %d [%@] %d/%d loss %.4f lr %.2e %.1f ex/s ETA %@   ", epoch, bar, step, total, loss, learningRate,
                   examplesPerSecond, formatDuration(eta)))
    } else if step - lastLog >= 10 || step == total {
      lastLog = step
      write(String(format: "epoch %d step %d/%d loss %.4f lr %.2e %.1f ex/s ETA %@\n", epoch, step, total, loss, learningRate,
                   examplesPerSecond, formatDuration(eta)))
    }
  }
  public func message(_ text: String) { write((tty ? "\r\u{1B}[K" : "") + text + "\n") }
  func write(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }
}

/// Says nothing (ranks other than 0 under data parallelism).
public final class SilentProgress: ProgressSink {
  public init() {}
  public func step(epoch: Int, step: Int, total: Int, loss: Float, learningRate: Float, examplesPerSecond: Double, eta: Double) {}
  public func message(_ text: String) {}
}

/// Reports each optimizer step (loss, learning rate, throughput, ETA) to the run's progress sink.
final class ProgressObserver: TrainingComponent {
  func didStep(_ report: inout StepReport, run: TrainingRun) throws {
    run.progress.step(epoch: report.epoch + 1, step: report.step, total: run.totalSteps, loss: report.loss, learningRate: report.learningRate,
                      examplesPerSecond: report.examplesPerSecond, eta: report.eta)
  }
}

func formatDuration(_ s: Double) -> String {
  guard s.isFinite else { return "?" }
  let t = Int(s.rounded())
  return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

/// With BONSAI_TRACE_MEMORY set: peak and current RSS, live tensor bytes and cached blocks, to stderr.
func traceMemory(_ tag: String) {
  guard ProcessInfo.processInfo.environment["BONSAI_TRACE_MEMORY"] != nil else { return }
  let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  let rss = status.split(separator: "\n").filter { $0.hasPrefix("VmHWM") || $0.hasPrefix("VmRSS") }.map { $0.replacingOccurrences(of: "\t", with: "") }
  FileHandle.standardError.write("[memory] \(tag): \(rss.joined(separator: " ")) live \(liveStorageBytes.load(ordering: .relaxed) >> 20) MiB cached \(BlockCache.cachedBytes >> 20) MiB\n".data(using: .utf8)!)
}

/// The process's peak resident set (VmHWM), in bytes.
public func peakRSSBytes() -> Int {
  let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM") }),
        let kb = Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "") else { return 0 }
  return kb * 1024
}
