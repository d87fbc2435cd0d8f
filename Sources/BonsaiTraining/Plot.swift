// A dependency-free SVG learning curve: training loss (left axis) and the dev metric (right axis) by step.
import Foundation

/// `extra` curves (e.g. self-distillation's mean alpha and temperature) share the right axis, each
/// multiplied by its `scale` to fit [0, 1] and named in a legend.
public func learningCurveSVG(loss: [(step: Int, value: Double)], metric: [(step: Int, value: Double)], metricName: String,
                             extra: [(name: String, points: [(Int, Double)], scale: Double)] = []) -> String {
  let w = 720.0, h = 360.0, l = 60.0, r = 60.0, t = 30.0, b = 40.0
  let maxStep = Double(max(loss.map(\.step).max() ?? 1, metric.map(\.step).max() ?? 1, 1))
  let lossMax = max(loss.map(\.value).max() ?? 1, 1e-9)
  func x(_ s: Int) -> Double { l + (w - l - r) * Double(s) / maxStep }
  func yLoss(_ v: Double) -> Double { t + (h - t - b) * (1 - v / lossMax) }
  func yMetric(_ v: Double) -> Double { t + (h - t - b) * (1 - v) }
  func path(_ pts: [(Int, Double)], _ y: (Double) -> Double) -> String {
    pts.enumerated().map { i, p in String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", x(p.0), y(p.1)) }.joined(separator: " ")
  }
  var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
  svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", l, h - b, w - r, h - b)
  svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", l, t, l, h - b)
  svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", w - r, t, w - r, h - b)
  for k in 0...4 {
    let f = Double(k) / 4
    svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" fill=\"#1f77b4\">%.2f</text>\n", l - 4, yLoss(lossMax * f) + 4, lossMax * f)
    svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" fill=\"#d62728\">%.2f</text>\n", w - r + 4, yMetric(f) + 4, f)
    svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n", x(Int(maxStep * f)), h - b + 16, Int(maxStep * f))
  }
  svg += "<text x=\"\(Int(w / 2))\" y=\"\(Int(h - 6))\" text-anchor=\"middle\">optimizer step</text>\n"
  svg += "<text x=\"\(Int(l))\" y=\"18\" fill=\"#1f77b4\">training loss</text>\n"
  svg += "<text x=\"\(Int(w - r))\" y=\"18\" text-anchor=\"end\" fill=\"#d62728\">dev \(metricName)</text>\n"
  if !loss.isEmpty { svg += "<path d=\"\(path(loss.map { ($0.step, $0.value) }, yLoss))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n" }
  if !metric.isEmpty {
    svg += "<path d=\"\(path(metric.map { ($0.step, $0.value) }, yMetric))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
    for p in metric { svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n", x(p.step), yMetric(p.value)) }
  }
  let colours = ["#2ca02c", "#9467bd", "#8c564b"]
  for (n, curve) in extra.enumerated() where !curve.points.isEmpty {
    let c = colours[n % colours.count]
    svg += "<path d=\"\(path(curve.points.map { ($0.0, $0.1 * curve.scale) }, yMetric))\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.2\" stroke-dasharray=\"4 2\"/>\n"
    svg += "<text x=\"\(Int(w - r - 8))\" y=\"\(Int(t + 14 + 14 * Double(n)))\" text-anchor=\"end\" fill=\"\(c)\">\(curve.name)</text>\n"
  }
  return svg + "</svg>\n"
}
