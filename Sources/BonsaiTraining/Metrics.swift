// Classification metrics as scikit-learn's classification_report computes them.

/// Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows: gold).
public struct ClassificationMetrics: Codable, Sendable {
  public struct PerClass: Codable, Sendable { public let precision: Double, recall: Double, f1: Double, support: Int }
  public let accuracy: Double
  public let macroF1: Double
  public let perClass: [String: PerClass]
  public let confusion: [[Int]]
  public let labels: [String]
  public let loss: Double?

  enum CodingKeys: String, CodingKey { case accuracy, macroF1 = "macro_f1", perClass = "per_class", confusion = "confusion_matrix", labels, loss }

  public init(gold: [Int], predicted: [Int], labels: [String], loss: Double? = nil) {
    let k = labels.count
    var cm = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
    for (g, p) in zip(gold, predicted) { cm[g][p] += 1 }
    var per: [String: PerClass] = [:]
    var f1s: [Double] = []
    for c in 0..<k {
      let tp = Double(cm[c][c]), predictedC = Double((0..<k).reduce(0) { $0 + cm[$1][c] }), support = cm[c].reduce(0, +)
      let precision = predictedC > 0 ? tp / predictedC : 0, recall = support > 0 ? tp / Double(support) : 0
      let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
      per[labels[c]] = PerClass(precision: precision, recall: recall, f1: f1, support: support)
      f1s.append(f1)
    }
    accuracy = gold.isEmpty ? 0 : Double(zip(gold, predicted).filter { $0 == $1 }.count) / Double(gold.count)
    macroF1 = f1s.isEmpty ? 0 : f1s.reduce(0, +) / Double(f1s.count)
    perClass = per
    confusion = cm
    self.labels = labels
    self.loss = loss
  }

  /// The value of a named metric (`accuracy`, `macro_f1`, `loss`), higher is better except loss.
  public func value(_ name: String) -> Double? {
    switch name { case "accuracy": return accuracy; case "macro_f1": return macroF1; case "loss": return loss; default: return nil }
  }
}
