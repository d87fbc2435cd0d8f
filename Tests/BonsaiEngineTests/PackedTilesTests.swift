// Q8_0, Q4_0 and Q4_1 matrices kept in tiles of 16 rows (PackedMatrix.tiled(), bq_tile_rows): the same values as
// the rows they came from, and, with every kernel set this build has, the same product bits wherever the kernels
// read the rows in tiles as well (several activation rows; every row for the scalar kernels), and products within
// the activation rounding of the exact ones otherwise (one activation row).
import BonsaiEngine
import XCTest

final class PackedTilesTests: XCTestCase {
  let quantized: [PackedFormat] = [.q8_0, .q4_0, .q4_1]

  func random(_ shape: [Int], seed: UInt64) -> Tensor { RandomSource(seed: seed).normalTensor(shape, std: 0.5) }

  func testTilesKeepEveryValueAndOnlyQuantisedMatricesOfWholeTilesAreTiled() {
    for format in quantized {
      for inF in [320, 2112] {  // an even and an odd number of blocks
        let rows = PackedMatrix(quantizing: random([48, inF], seed: 1), to: format), tiles = rows.tiled()
        XCTAssertTrue(tiles.isTiled)
        XCTAssertEqual(tiles.byteCount, rows.byteCount)
        XCTAssertFalse(memcmp(tiles.base, rows.base, rows.byteCount) == 0, "\(format): the bytes move")
        XCTAssertEqual(tiles.dequantized().scalars.map(\.bitPattern), rows.dequantized().scalars.map(\.bitPattern), "\(format) in \(inF)")
        let part = Tensor(uninitialized: [32, inF]), expected = Tensor(uninitialized: [32, inF])
        tiles.dequantizeRows(5..<37, into: part.mutableData); rows.dequantizeRows(5..<37, into: expected.mutableData)
        XCTAssertEqual(part.scalars.map(\.bitPattern), expected.scalars.map(\.bitPattern), "\(format): rows 5..<37, across tiles")
        XCTAssertEqual(Tensor.embedding(tiles, ids: [47, 0, 16, 15]).scalars, Tensor.embedding(rows, ids: [47, 0, 16, 15]).scalars)
        XCTAssertTrue(tiles.tiled() === tiles)
      }
    }
    let odd = PackedMatrix(quantizing: random([40, 64], seed: 2), to: .q8_0), half = PackedMatrix(quantizing: random([48, 64], seed: 2), to: .f16)
    XCTAssertFalse(odd.canTile); XCTAssertTrue(odd.tiled() === odd)
    XCTAssertFalse(half.canTile); XCTAssertTrue(half.tiled() === half)
  }

  func testTiledProductsGiveTheRowsBitsAndStayWithinTheActivationRounding() {
    defer { usePackedKernels(availablePackedKernels[0]) }
    let outF = 80, bias = random([outF], seed: 3)
    for kernels in availablePackedKernels {
      XCTAssertTrue(usePackedKernels(kernels))
      for inF in [352, 2112] {  // 2112: more blocks than the tile kernels copy scales for at a time
        for format in quantized {
          let rows = PackedMatrix(quantizing: random([outF, inF], seed: 4), to: format), tiles = rows.tiled()
          let w = rows.dequantized()
          for m in [1, 2, 3, 8] {
            let x = random([m, inF], seed: UInt64(20 + m))
            let yTiles = withoutGrad { x.linear(packed: tiles, bias: bias) }, yRows = withoutGrad { x.linear(packed: rows, bias: bias) }
            let what = "\(kernels) \(format) in \(inF), \(m) rows"
            if m > 1 || kernels == "scalar" {
              XCTAssertEqual(yTiles.scalars.map(\.bitPattern), yRows.scalars.map(\.bitPattern), what + ": the same bits as the rows")
            }
            // against the exact product, within half an activation step per weight (codes of 16 bits per block of 32)
            for r in 0..<m {
              for o in 0..<outF {
                var exact = Double(bias.data[o]), bound = 0.0, scale = 0.0
                for b in stride(from: 0, to: inF, by: 32) {
                  let amax = (b..<(b + 32)).map { abs(x.data[r * inF + $0]) }.max()!
                  for j in b..<(b + 32) {
                    let wj = Double(w.data[o * inF + j]), xj = Double(x.data[r * inF + j])
                    exact += wj * xj; scale += abs(wj * xj); bound += abs(wj) * Double(amax) / 32767 / 2
                  }
                }
                XCTAssertEqual(Double(yTiles.data[r * outF + o]), exact, accuracy: bound + 2e-6 * (scale + 1), "\(what): [\(r), \(o)]")
              }
            }
          }
        }
      }
    }
  }

  func testPromptProductsAndInputGradientReadTheTiles() {
    let inF = 96, outF = 48, rows = 20
    for format in quantized {
      let packed = PackedMatrix(quantizing: random([outF, inF], seed: 5), to: format), tiles = packed.tiled()
      let x = random([rows, inF], seed: 6).requiringGrad(), upstream = random([rows, outF], seed: 7)
      let y = x.linear(packed: tiles, bias: nil)
      (y * upstream).sum().backward()
      let gx = x.grad!.scalars
      Tensor.clearGrad([x])
      let yRows = x.linear(packed: packed, bias: nil)
      (yRows * upstream).sum().backward()
      XCTAssertEqual(y.scalars, yRows.scalars, "\(format): prompt products")
      XCTAssertEqual(gx, x.grad!.scalars, "\(format): input gradient")
    }
  }
}
