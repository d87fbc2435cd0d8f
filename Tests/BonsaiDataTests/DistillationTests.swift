// Distillation losses and gradients against PyTorch on fixed inputs (scripts/make-golden.py --distill).
import BonsaiEngine
import BonsaiTraining
import Foundation
import XCTest

final class DistillationTests: XCTestCase {
  struct Golden: Decodable {
    let student: [[Double]], teacher: [[Double]], temperature: Double, kd: Double, kd_grad: [[Double]]
    let hidden_student: [[Double]], hidden_teacher: [[Double]], mse: Double, mse_grad: [[Double]], mse_norm: Double, mse_norm_grad: [[Double]]
  }

  func tensor(_ rows: [[Double]], grad: Bool = false) -> Tensor {
    Tensor(rows.flatMap { $0.map(Float.init) }, shape: [rows.count, rows[0].count], requiresGrad: grad)
  }

  func assertClose(_ t: Tensor, _ rows: [[Double]], tolerance: Double, _ what: String) {
    let want = rows.flatMap { $0 }
    XCTAssertEqual(t.count, want.count, what)
    let worst = zip(t.scalars, want).map { abs(Double($0) - $1) }.max() ?? 0
    XCTAssertLessThan(worst, tolerance, "\(what): worst difference \(worst)")
    print("\(what): largest difference from PyTorch \(worst)")
  }

  func testLossesAndGradientsMatchPyTorch() throws {
    let url = Bundle.module.url(forResource: "distill-golden", withExtension: "json", subdirectory: "Fixtures")!
    let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    let s = tensor(g.student, grad: true)
    let kd = DistillationLoss.logitKD(student: s, teacher: tensor(g.teacher), temperature: Float(g.temperature))
    XCTAssertEqual(Double(kd.item), g.kd, accuracy: 1e-5)
    kd.backward()
    assertClose(s.grad!, g.kd_grad, tolerance: 1e-5, "logit KD gradient")

    let hs = tensor(g.hidden_student, grad: true), ht = tensor(g.hidden_teacher)
    let mse = DistillationLoss.hiddenMSE(student: [hs, hs], teacher: [ht, ht], map: [0], normalize: false)
    XCTAssertEqual(Double(mse.item), g.mse, accuracy: 1e-5)
    mse.backward()
    assertClose(hs.grad!, g.mse_grad, tolerance: 1e-5, "hidden MSE gradient")

    let hn = tensor(g.hidden_student, grad: true)
    let normed = DistillationLoss.hiddenMSE(student: [hn, hn], teacher: [ht, ht], map: [0], normalize: true)
    XCTAssertEqual(Double(normed.item), g.mse_norm, accuracy: 1e-5)
    normed.backward()
    assertClose(hn.grad!, g.mse_norm_grad, tolerance: 1e-5, "normalised hidden MSE gradient")
  }
}
