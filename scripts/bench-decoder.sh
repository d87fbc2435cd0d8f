#!/usr/bin/env bash
# Decoder speed, side by side in one run (one configuration per process, sides alternating): SmolLM2-135M with
# fp32 weights, prompt forward of 512 tokens, generation of 128 tokens after a 16-token prompt (batch 1 and 8),
# a training step (forward + backward, 4 x 128); Bonsai vs transformers (PyTorch CPU, float32) at 1 and 2 threads
# (one run), and llama.cpp's llama-bench on the same GGUF (Q4_1) and an F32 GGUF when LLAMA_BENCH (and
# LLAMA_QUANTIZE, to make the F32 file) point at binaries you built yourself (nothing here builds llama.cpp):
# ROUNDS (3) rounds of Bonsai and llama-bench back to back, medians. ONLY_LLAMA=1 skips transformers.
#   [LLAMA_BENCH=... LLAMA_QUANTIZE=... ROUNDS=3] scripts/bench-decoder.sh   (needs the reference environment:
#   shared/reference/, + gguf and accelerate)
# Prints JSON lines and a table naming the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
swift build -c release --product bonsai-bench >/dev/null
PY=${PY:-$HOME/.cache/bonsai-ref/venv/bin/python}
GGUF=${BONSAI_HOME:-$HOME/.cache/bonsai}/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$GGUF" ] || .build/release/bonsai fetch smollm2 >/dev/null
OUT=$(mktemp)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs); fam=$(grep -m1 "cpu family" /proc/cpuinfo | cut -d: -f2 | xargs)
mod=$(grep -m1 "^model\s" /proc/cpuinfo | cut -d: -f2 | xargs); avx512=$(grep -qm1 avx512f /proc/cpuinfo && echo yes || echo no)
echo "CPU: $cpu family $fam model $mod, AVX-512: $avx512" >&2
for threads in $([ "${ONLY_LLAMA:-0}" = 1 ] || echo 1 2); do
  for cfg in "prefill 1 512 0" "generate 1 16 128" "generate 8 16 128" "train 4 128 0"; do
    set -- $cfg
    .build/release/bonsai-bench --decoder "$GGUF" --mode $1 --batch $2 --tokens $3 --new ${4/0/128} --threads $threads --steps 2 | tee -a "$OUT"
    "$PY" scripts/bench_decoder_torch.py $1 $threads $2 $3 $4 2>/dev/null | tee -a "$OUT"
  done
done
# llama.cpp: ROUNDS rounds, each running Bonsai and llama-bench back to back on the same configuration (this VM's
# speed drifts by 10-20% over minutes, so the two sides are compared within a round; medians are reported)
if [ -n "${LLAMA_BENCH:-}" ]; then
  files=("$GGUF")
  if [ -n "${LLAMA_QUANTIZE:-}" ]; then
    F32=$(dirname "$GGUF")/SmolLM2-135M-Instruct.F32.gguf
    [ -f "$F32" ] || "$LLAMA_QUANTIZE" --allow-requantize "$GGUF" "$F32" F32 >/dev/null 2>&1
    files+=("$F32")
  fi
  for round in $(seq ${ROUNDS:-3}); do
    for threads in 1 2; do
      for cfg in "prefill 1 512 0" "generate 1 16 128"; do
        set -- $cfg
        .build/release/bonsai-bench --decoder "$GGUF" --mode $1 --batch $2 --tokens $3 --new ${4/0/128} --threads $threads --steps 2 \
          | sed 's/"impl": "bonsai"/"impl": "bonsai-vs-llama.cpp"/' | tee -a "$OUT"
      done
      for f in "${files[@]}"; do
        "$LLAMA_BENCH" -m "$f" -t $threads -p 512 -n 128 -r 3 -o jsonl 2>/dev/null | sed "s/^/{\"impl\": \"llama.cpp $(basename $f)\", \"raw\": /; s/$/}/" | tee -a "$OUT"
      done
    done
  done
fi
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by, runs = {}, {}
for r in rows:
    if "mode" in r:
        by[(r["impl"], r["mode"], r["threads"], r["batch"])] = r
        if r["impl"] == "bonsai-vs-llama.cpp": runs.setdefault(("Bonsai", r["mode"], r["threads"]), []).append(r["tokens_per_s"])
    elif "raw" in r:  # llama-bench: pp512 (n_gen 0) or tg128 (n_prompt 0)
        x = r["raw"]
        kind = "F32" if "F32" in r["impl"] else "Q4_1"
        runs.setdefault((kind, "prefill" if x["n_gen"] == 0 else "generate", x["n_threads"]), []).append(x["avg_ts"])
print("| threads | measure | Bonsai | transformers | ratio |")
print("|---|---|---|---|---|")
for (impl, mode, t, b), r in sorted(by.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][3])):
    if impl != "bonsai": continue
    p = by.get(("transformers", mode, t, b))
    what = {"prefill": "prompt forward, 512 tokens (tokens/s)", "generate": f"generation, batch {b}, 128 new (tokens/s)",
            "train": "training step 4 x 128 (tokens/s)"}[mode]
    cells = [str(t), what, f"{r['tokens_per_s']} (RSS {r['peak_rss_mib']} MiB)"]
    cells += [f"{p['tokens_per_s']} (RSS {p['peak_rss_mib']} MiB)", f"{r['tokens_per_s'] / p['tokens_per_s']:.2f}x"] if p else ["-", "-"]
    print("| " + " | ".join(cells) + " |")
if runs:
    print()
    print("| threads | measure | Bonsai (fp32) | llama.cpp F32 | ratio | llama.cpp Q4_1 | rounds |")
    print("|---|---|---|---|---|---|---|")
    for t in (1, 2):
        for mode, what in (("generate", "generation, batch 1 (tokens/s)"), ("prefill", "prompt forward, 512 tokens (tokens/s)")):
            med = {k: statistics.median(runs[(k, mode, t)]) if runs.get((k, mode, t)) else None for k in ("Bonsai", "F32", "Q4_1")}
            if med["Bonsai"] is None: continue
            ratio = f"{med['Bonsai'] / med['F32']:.2f}x" if med["F32"] else "-"
            f32 = f"{med['F32']:.1f}" if med["F32"] else "-"
            q41 = f"{med['Q4_1']:.1f}" if med["Q4_1"] else "-"
            print(f"| {t} | {what} | {med['Bonsai']:.1f} | {f32} | {ratio} | {q41} | {len(runs[('Bonsai', mode, t)])} |")
PY
