// The data map as an SVG figure, after the cartography paper's: variability against confidence, one
// dot per training example coloured by correctness, the three regions marked.
import Foundation

extension DataMap {
  /// The data map: variability (x) against confidence (y), one dot per example coloured by correctness,
  /// with the easy / ambiguous / hard-to-learn regions marked as in the cartography paper's figure.
  public static func svg(_ scores: [ExampleScores], title: String) -> String {
    let w = 640.0, h = 560.0, l = 60.0, r = 150.0, t = 40.0, b = 50.0
    let xMax = max(0.5, (scores.map(\.variability).max() ?? 0.5) * 1.05)
    func x(_ v: Double) -> Double { l + (w - l - r) * v / xMax }
    func y(_ c: Double) -> Double { t + (h - t - b) * (1 - c) }
    func colour(_ c: Double) -> String {  // 0 -> red, 0.5 -> amber, 1 -> blue
      let stops: [(Double, (Double, Double, Double))] = [(0, (214, 39, 40)), (0.5, (240, 170, 20)), (1, (31, 119, 180))]
      let i = c <= 0.5 ? 0 : 1
      let f = (c - stops[i].0) / 0.5
      let a = stops[i].1, z = stops[i + 1].1
      return String(format: "#%02x%02x%02x", Int(a.0 + (z.0 - a.0) * f), Int(a.1 + (z.1 - a.1) * f), Int(a.2 + (z.2 - a.2) * f))
    }
    var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"\(Int(l))\" y=\"22\" font-size=\"14\">\(escapeXML(title))</text>\n"
    // regions (as the cartography figure labels them)
    svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1f77b4\" fill-opacity=\"0.06\"/>\n", x(0), y(1), x(0.2) - x(0), y(0.7) - y(1))
    svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\" fill-opacity=\"0.06\"/>\n", x(0), y(0.3), x(0.2) - x(0), y(0) - y(0.3))
    svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f0aa14\" fill-opacity=\"0.06\"/>\n", x(0.3), y(0.85), x(xMax) - x(0.3), y(0.15) - y(0.85))
    svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#1f77b4\" font-weight=\"bold\">easy-to-learn</text>\n", x(0.01), y(0.97))
    svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#d62728\" font-weight=\"bold\">hard-to-learn</text>\n", x(0.01), y(0.03))
    svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#b07800\" font-weight=\"bold\">ambiguous</text>\n", x(0.31), y(0.52))
    // axes and ticks
    svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", l, h - b, w - r, h - b)
    svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", l, t, l, h - b)
    for k in 0...5 {
      let v = xMax * Double(k) / 5, c = Double(k) / 5
      svg += String(format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.2f</text>\n", x(v), h - b + 16, v)
      svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", l - 4, y(c) + 4, c)
    }
    svg += "<text x=\"\(Int((l + w - r) / 2))\" y=\"\(Int(h - 12))\" text-anchor=\"middle\">variability</text>\n"
    svg += String(format: "<text x=\"16\" y=\"%.0f\" transform=\"rotate(-90 16 %.0f)\" text-anchor=\"middle\">confidence</text>\n", (t + h - b) / 2, (t + h - b) / 2)
    // one dot per example
    svg += "<g fill-opacity=\"0.7\">\n"
    for s in scores {
      svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%@\"><title>line %d</title></circle>\n", x(s.variability), y(s.confidence),
                    colour(s.correctness), s.id)
    }
    svg += "</g>\n"
    // legend: correctness
    let lx = w - r + 20
    svg += String(format: "<text x=\"%.0f\" y=\"%.0f\">correctness</text>\n", lx, t + 10)
    for k in 0...4 {
      let c = Double(k) / 4
      svg += String(format: "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"5\" fill=\"%@\"/><text x=\"%.0f\" y=\"%.0f\">%.2f</text>\n", lx + 6, t + 30 + Double(k) * 20,
                    colour(c), lx + 16, t + 34 + Double(k) * 20, c)
    }
    svg += String(format: "<text x=\"%.0f\" y=\"%.0f\">%d examples</text>\n", lx, t + 140, scores.count)
    return svg + "</svg>\n"
  }
}

func escapeXML(_ s: String) -> String {
  s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
