// Benchmark of one configuration per process (so peak RSS is per configuration):
//   bonsai-bench --model DIR --batch 32 --tokens 64 --mode forward|train --threads 2 --steps 5
//   bonsai-bench --sgemm
//   bonsai-bench --step-floor [--rows 512] [--threads 2]   (the least time of a SmolLM2 full fine-tuning step: StepFloor.swift)
//   bonsai-bench --kernels --threads 1     (ns per element of the SIMD kernels: GELU, softmax, layer norm, AdamW)
//   bonsai-bench --decoder FILE.gguf|DIR --mode prefill|generate|train --batch B --tokens T --new 128 --threads 2
//                [--packed-kernels avx512|avx2|scalar]   (the kernels over GGUF blocks; default the best this build has)
//     prefill: one forward of B x T tokens; generate: B prompts of T tokens, then --new greedy tokens each
//     (KV cache; tokens/s counts new tokens, timed after the prompt as llama-bench's tg); generate-all: the
//     same through `Generator`, prompt included; train: forward + backward of the causal-LM loss on B x T;
//     step: forward, backward and AdamW of --method full|lora (r=16 on every projection; without --fp32 the
//     frozen base stays in the GGUF's blocks: LoRA over a quantised base); each tensor is updated when its
//     gradient is complete, as finetune does without clipping or accumulation, and the loss is made from the
//     final states a block of rows at a time (--unfused: every logit at once, then one update after the pass);
//     --checkpointing recomputes each layer in the backward pass (finetune --gradient-checkpointing); --selective
//     keeps each layer's products and recomputes the rest (finetune --selective-checkpointing), --whole-layers N
//     recomputing the first N layers whole (finetune --selective-checkpointing --whole-layers N).
//     A GGUF's matrices stay in their blocks, as `bonsai generate` keeps them; --fp32 converts them at load;
//     --rows-layout keeps Q8_0/Q4_0/Q4_1 row after row instead of in tiles of 16 rows (the layout before tiles).
// Prints one JSON line: median seconds per step, tokens/s, peak RSS (VmHWM) in MiB.
import BonsaiEngine
import COMP
import BonsaiModels
import BonsaiNN
import Foundation

func arg(_ name: String, _ fallback: String) -> String {
  let a = CommandLine.arguments
  if let i = a.firstIndex(of: "--" + name), i + 1 < a.count { return a[i + 1] }
  return fallback
}

func peakRSSMiB() -> Double {
  guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
  for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
    return Double(line.split(separator: " ").dropFirst().first.map(String.init) ?? "0")! / 1024
  }
  return 0
}

/// The most likely token of each row of logits [B, V].
func greedy(_ logits: Tensor) -> [Int] {
  let v = logits.shape[1], p = logits.data
  return (0..<logits.shape[0]).map { b in argmax(p + b * v, v) }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// The fastest of `repeats` runs of `body`, in seconds (after one uncounted run with `warmUp`).
func fastestSeconds(warmUp: Bool, repeats: Int, _ body: () -> Void) -> Double {
  if warmUp { body() }
  var t = Double.infinity
  for _ in 0..<repeats { let t0 = now(); body(); t = min(t, now() - t0) }
  return t
}

nonisolated(unsafe) let traceStart = now()

func rssLine(_ tag: String) {
  if ProcessInfo.processInfo.environment["BENCH_TRACE"] == nil { return }
  let s = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  let parts = s.split(separator: "\n").filter { $0.hasPrefix("VmRSS") || $0.hasPrefix("VmHWM") || $0.hasPrefix("RssFile") || $0.hasPrefix("RssAnon") }
  let mi = mallinfo2()
  let heap = " heap arena \(mi.arena >> 20) mmap \(mi.hblkhd >> 20) used \(mi.uordblks >> 20) free \(mi.fordblks >> 20) MiB"
  let live = liveStorageBytes.load(ordering: .relaxed) >> 20, peak = peakStorageBytes.load(ordering: .relaxed) >> 20
  let elapsed = String(format: "%.3f s ", now() - traceStart)
  FileHandle.standardError.write("\(elapsed)\(tag): \(parts.joined(separator: " ")) tensors live \(live) MiB peak \(peak) MiB cached \(BlockCache.cachedBytes >> 20) MiB\(heap)\n".data(using: .utf8)!)
}
Engine.threads = Int(arg("threads", "2"))!
let packedChoice = arg("packed-kernels", packedKernels)
guard usePackedKernels(packedChoice) else {
  FileHandle.standardError.write("error: --packed-kernels \(packedChoice): this build has \(availablePackedKernels.joined(separator: ", "))\n".data(using: .utf8)!)
  exit(1)
}
if CommandLine.arguments.contains("--sgemm") {
  print(String(format: "{\"sgemm_gflops\": %.1f, \"threads\": %d}", measureSGEMM(n: 1024, seconds: 1.0), Engine.threads))
  exit(0)
}
if CommandLine.arguments.contains("--step-gemms") {
  // GFLOP/s of each product of a SmolLM2 training step on 512 rows: forward x W^T (NT), input gradient g W (NN),
  // weight gradient g^T x (TN), for the layer shapes (out, in)
  let rows = Int(arg("rows", "512"))!
  var out: [String] = []
  for (o, i) in [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)] {
    let x = Tensor(repeating: 0.01, shape: [rows, i]), w = Tensor(repeating: 0.01, shape: [o, i])
    let y = Tensor(zeros: [rows, o]), gx = Tensor(zeros: [rows, i]), gw = Tensor(zeros: [o, i])
    func rate(_ body: () -> Void) -> Double { 2 * Double(rows * o * i) / fastestSeconds(warmUp: true, repeats: 5, body) / 1e9 }
    let nt = rate { gemm(.no, .yes, m: rows, n: o, k: i, x.data, lda: i, w.data, ldb: i, y.mutableData, ldc: o) }
    let nn = rate { gemm(.no, .no, m: rows, n: i, k: o, y.data, lda: o, w.data, ldb: i, beta: 1, gx.mutableData, ldc: i) }
    let tn = rate { gemm(.yes, .no, m: o, n: i, k: rows, y.data, lda: o, x.data, ldb: i, beta: 1, gw.mutableData, ldc: i) }
    out.append(String(format: "\"%dx%d\": [%.0f, %.0f, %.0f]", o, i, nt, nn, tn))
  }
  print("{" + out.joined(separator: ", ") + String(format: ", \"threads\": %d}", Engine.threads))
  exit(0)
}
if CommandLine.arguments.contains("--step-floor") {
  printStepFloor()
  exit(0)
}
if CommandLine.arguments.contains("--kernels") {
  // Best of several runs, ns per element, of the hot SIMD16 loops (are they vectorised on this build's CPU?).
  func best(_ elements: Int, _ body: () -> Void) -> Double { fastestSeconds(warmUp: false, repeats: 7, body) / Double(elements) * 1e9 }
  let n = 1 << 20, x = Tensor((0..<n).map { Float($0 % 997) / 200 - 2.5 }, shape: [n]), y = Tensor(zeros: [n]), g = Tensor(repeating: 0.5, shape: [n])
  let xp = UnsafePointer(x.mutableData), yp = y.mutableData, gp = UnsafePointer(g.mutableData)
  var out: [String] = []
  out.append(String(format: "\"gelu_fwd\": %.3f", best(n) { geluForward(yp, xp, n) }))
  out.append(String(format: "\"gelu_bwd\": %.3f", best(n) { geluBackward(yp, gp, xp, n) }))
  out.append(String(format: "\"softmax_64\": %.3f", best(n) { softmaxRows(yp, xp, rows: n / 64, cols: 64) }))
  out.append(String(format: "\"softmax_512\": %.3f", best(n) { softmaxRows(yp, xp, rows: n / 512, cols: 512) }))
  let c = 384, rows = n / c, ones = Tensor(repeating: 1, shape: [c]), zeros = Tensor(zeros: [c]), mean = Tensor(zeros: [rows]), rstd = Tensor(zeros: [rows])
  let dgamma = Tensor(zeros: [c]), dbeta = Tensor(zeros: [c])
  out.append(String(format: "\"layernorm_fwd_384\": %.3f", best(rows * c) {
    layerNormForward(yp, mean.mutableData, rstd.mutableData, xp, ones.mutableData, zeros.mutableData, rows: rows, cols: c, eps: 1e-12) }))
  out.append(String(format: "\"layernorm_bwd_384\": %.3f", best(rows * c) {
    layerNormBackward(yp, dgamma.mutableData, dbeta.mutableData, gp, xp, ones.mutableData, mean.mutableData, rstd.mutableData, rows: rows, cols: c) }))
  let p = Tensor([Float](repeating: 0.1, count: 22_000_000), shape: [22_000_000], requiresGrad: true)
  p.grad = Tensor(repeating: 0.01, shape: [22_000_000])
  let adam = AdamW([("w", p)], learningRate: 1e-4, weightDecay: 0.01)
  out.append(String(format: "\"adamw_22m\": %.3f", best(p.count) { adam.update() }))
  print("{" + out.joined(separator: ", ") + String(format: ", \"threads\": %d}", Engine.threads))
  exit(0)
}
if CommandLine.arguments.contains("--packed") {
  // one x [B, 576] times W [R, 576] in each packed format, W larger than the caches (GB/s of weights read)
  let B = Int(arg("batch", "1"))!, R = Int(arg("rows", "65536"))!, C = 576
  let w = RandomSource(seed: 1).normalTensor([R, C], std: 0.05), x = RandomSource(seed: 2).normalTensor([B, C], std: 1)
  var out: [String] = []
  for format in [PackedFormat.q4_1, .q8_0, .f16, .f32] {
    let rowsLayout = PackedMatrix(quantizing: w, to: format)
    let p = CommandLine.arguments.contains("--tiled") ? rowsLayout.tiled() : rowsLayout  // --tiled: tiles of 16 rows
    var best = 1e9
    for _ in 0..<15 { let t0 = now(); _ = withoutGrad { x.linear(packed: p, bias: nil) }; best = min(best, now() - t0) }
    out.append(String(format: "\"%@_ms\": %.2f, \"%@_gbs\": %.1f", "\(format)", best * 1000, "\(format)", Double(p.byteCount) / best / 1e9))
  }
  print("{" + out.joined(separator: ", ") + String(format: ", \"threads\": %d, \"batch\": %d}", Engine.threads, B))
  exit(0)
}
if CommandLine.arguments.contains("--attention") {
  // the fused attention op alone, at MiniLM's shape
  let s = AttentionShape(batch: 32, tokens: 64, heads: 12, headSize: 32)
  let q = Tensor(repeating: 0.01, shape: [32, 64, 384]), k = Tensor(repeating: 0.02, shape: [32, 64, 384]), v = Tensor(repeating: 0.03, shape: [32, 64, 384])
  let mask = [Float](repeating: 0, count: 32 * 64)
  var best = 1e9
  for _ in 0..<20 {
    let t0 = now()
    _ = withoutGrad { Tensor.attention(query: q, key: k, value: v, shape: s, keyMask: mask) }
    best = min(best, now() - t0)
  }
  let x = Tensor(repeating: 0.01, shape: [2048, 384]), w = Tensor(repeating: 0.01, shape: [384, 384]), b = Tensor(zeros: [384])
  var bestLinear = 1e9
  for _ in 0..<20 {
    let t0 = now()
    _ = withoutGrad { x.linear(weight: w, bias: b) }
    bestLinear = min(bestLinear, now() - t0)
  }
  let flops: Double = 2 * 2 * 32 * 12 * 64 * 64 * 32
  print(String(format: "{\"attention_ms\": %.2f, \"attention_gflops\": %.1f, \"linear_384_ms\": %.2f}", best * 1000, flops / best / 1e9, bestLinear * 1000))
  exit(0)
}
if CommandLine.arguments.contains("--decoder") {
  let B = Int(arg("batch", "1"))!, T = Int(arg("tokens", "16"))!, steps = Int(arg("steps", "3"))!, new = Int(arg("new", "128"))!
  let mode = arg("mode", "generate")
  do {
    rssLine("start")
    let (model, tokenizer) = try DecoderCheckpoint.load(URL(fileURLWithPath: arg("decoder", "")),
                                                        keepingBlocks: !CommandLine.arguments.contains("--fp32"),
                                                        tiling: !CommandLine.arguments.contains("--rows-layout"))
    rssLine("loaded")
    var optimizer: AdamW?
    if mode == "step" {
      var trained = model.namedParameters()
      if arg("method", "full") == "lora" {  // as finetune --method lora --rank 16 --alpha 32 adapts a decoder
        for (_, t) in trained { t.requiringGrad(false) }
        let rng = RandomSource(seed: 41)
        trained = model.namedLinears().filter { k, _ in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].contains { k.hasSuffix($0) } }
          .flatMap { key, linear -> [(key: String, tensor: Tensor)] in
            let lora = LoRA(inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: 16, alpha: 32, rng: rng)
            linear.adapter.lora = lora
            return [(key + ".lora_A.weight", lora.A), (key + ".lora_B.weight", lora.B)]
          }
      }
      optimizer = AdamW(trained, learningRate: 1e-5, weightDecay: 0.01)
    }
    let unfused = CommandLine.arguments.contains("--unfused")
    model.checkpointing = CommandLine.arguments.contains("--checkpointing") ? .input : CommandLine.arguments.contains("--selective") ? .products : nil
    model.wholeRecomputedLayers = Int(arg("whole-layers", "0"))!
    let prompts = (0..<B).map { b in (0..<T).map { 17 + Int(mix64(UInt64(b * T + $0)) % 40000) } }
    let batch = TokenBatch(batch: B, tokens: T, ids: prompts.flatMap { $0 })
    var times: [Double] = []
    for step in 0..<(steps + 1) {
      let t0 = now()
      switch mode {
      case "prefill": _ = withoutGrad { model(batch) }
      case "train":
        let loss = LlamaForCausalLM.nextTokenLoss(logits: model(batch), batch: batch)
        loss.backward()
        Tensor.clearGrad(model.namedParameters().map(\.tensor))
      case "step":  // a whole optimizer step of `--method` (full, or lora r=16 on every projection)
        // as finetune computes it: the head and the cross-entropy a block of rows at a time (--unfused: all logits at once)
        let loss = unfused ? LlamaForCausalLM.nextTokenLoss(logits: model(batch), batch: batch)
          : model.nextTokenLoss(states: model.forward(batch, stateRows: Array(0..<(B * T))).states, batch: batch)
        rssLine("after forward")
        if unfused {  // every gradient held to the end of the pass, then one update
          loss.backward()
          rssLine("after backward")
          optimizer!.update()
        } else {  // what finetune does without clipping or accumulation: each tensor updated when its gradient is complete
          optimizer!.beginStep()
          Tensor.gradientSinks = optimizer!.updatingDuringBackward()
          Tensor.gradientRowSinks = optimizer!.updatingRowsDuringBackward()
          loss.backward()
          Tensor.gradientSinks = []
          Tensor.gradientRowSinks = []
        }
        rssLine("after update")
        Tensor.clearGrad(optimizer!.parametersWithGradients)
      case "generate":  // greedy steps after the prompt (llama-bench's tg: the prompt is not timed)
        var (cache, logits) = model.prefill(ids: prompts, extra: new)
        let t1 = now()
        for _ in 0..<new {
          let next = greedy(logits)
          logits = model.step(next, cache: cache)
        }
        if step > 0 { times.append(now() - t1) }
        continue
      default:  // generate-all: prompt and new tokens, through the Generator (what `bonsai generate` does)
        var o = GenerationOptions()
        o.maxNewTokens = new; o.eosIds = [-1]  // never stop early
        _ = Generator(model: model, tokenizer: tokenizer).generate(prompts, options: o)
      }
      if step > 0 { times.append(now() - t0) }
    }
    let median = times.sorted()[times.count / 2]
    let tokens = mode.hasPrefix("generate") ? B * new : B * T
    rssLine("after \(mode)")
    let packed = Set(model.namedPackedWeights().map { "\($0.matrix.format)" }).sorted().joined(separator: "+")
    print(String(format: "{\"impl\": \"bonsai\", \"mode\": \"%@\", \"method\": \"%@\", \"threads\": %d, \"batch\": %d, \"tokens\": %d, \"new\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.1f, \"peak_rss_mib\": %.0f, \"packed\": \"%@\", \"kernels\": \"%@\"}",
                 mode, mode == "step" ? arg("method", "full") : "-", Engine.threads, B, T, mode.hasPrefix("generate") ? new : 0, median, Double(tokens) / median, peakRSSMiB(),
                 packed.isEmpty ? "none" : packed, packedKernels))
  } catch {
    FileHandle.standardError.write("error: \(error.localizedDescription)\n".data(using: .utf8)!)
    exit(1)
  }
  exit(0)
}
let folder = URL(fileURLWithPath: arg("model", ""))
let B = Int(arg("batch", "32"))!, T = Int(arg("tokens", "64"))!, steps = Int(arg("steps", "5"))!
let mode = arg("mode", "forward")
rssLine("start")
do {
  let (model, _, _) = try ModelFolder.loadClassifier(folder, numLabels: 2, seed: 1)
  rssLine("loaded")
  var ids = [Int](repeating: 0, count: B * T)
  for i in 0..<B * T { ids[i] = 1000 + Int(mix64(UInt64(i)) % 20000) }
  let batch = TokenBatch(batch: B, tokens: T, ids: ids)
  let labels = (0..<B).map { $0 % 2 }
  let opt = mode == "forward" ? nil : AdamW(model.namedParameters().filter { $0.tensor.requiresGrad }, learningRate: 5e-5, weightDecay: 0.01)
  let rng = RandomSource(seed: 42)
  var times: [Double] = []
  for step in 0..<(steps + 1) {
    let t0 = now()
    if mode == "forward" {
      _ = withoutGrad { model(batch, rng: nil) }
    } else {
      Tensor.zeroGrad(opt!.parametersWithGradients)
      let loss = Tensor.crossEntropy(logits: model(batch, rng: rng), labels: labels)
      rssLine("after forward")
      loss.backward()
      rssLine("after backward")
      opt!.update()
    }
    if step > 0 { times.append(now() - t0) }
    rssLine("step \(step)")  // first step warms up
  }
  let median = times.sorted()[times.count / 2]
  print(String(format: "{\"impl\": \"bonsai\", \"mode\": \"%@\", \"threads\": %d, \"batch\": %d, \"tokens\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.0f, \"peak_rss_mib\": %.0f}",
               mode, Engine.threads, B, T, median, Double(B * T) / median, peakRSSMiB()))
} catch {
  FileHandle.standardError.write("error: \(error.localizedDescription)\n".data(using: .utf8)!)
  exit(1)
}
