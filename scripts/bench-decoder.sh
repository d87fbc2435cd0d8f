#!/usr/bin/env bash
# Decoder speed, side by side in one run (one configuration per process, sides alternating): SmolLM2-135M with
# fp32 weights, prompt forward of 512 tokens, generation of 128 tokens after a 16-token prompt (batch 1 and 8),
# a training step (forward + backward, 4 x 128); Bonsai vs transformers (PyTorch CPU, float32) at 1 and 2 threads,
# and llama.cpp's llama-bench on the same GGUF (Q4_1) and an F32 GGUF when LLAMA_BENCH (and LLAMA_QUANTIZE, to make
# the F32 file) point at binaries you built yourself (nothing here builds llama.cpp).
#   scripts/bench-decoder.sh            (needs the reference environment: shared/reference/, + gguf and accelerate)
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
for threads in 1 2; do
  for cfg in "prefill 1 512 0" "generate 1 16 128" "generate 8 16 128" "train 4 128 0"; do
    set -- $cfg
    .build/release/bonsai-bench --decoder "$GGUF" --mode $1 --batch $2 --tokens $3 --new ${4/0/128} --threads $threads --steps 2 | tee -a "$OUT"
    "$PY" scripts/bench_decoder_torch.py $1 $threads $2 $3 $4 2>/dev/null | tee -a "$OUT"
  done
  if [ -n "${LLAMA_BENCH:-}" ]; then
    files=("$GGUF")
    if [ -n "${LLAMA_QUANTIZE:-}" ]; then
      F32=$(dirname "$GGUF")/SmolLM2-135M-Instruct.F32.gguf
      [ -f "$F32" ] || "$LLAMA_QUANTIZE" --allow-requantize "$GGUF" "$F32" F32 >/dev/null 2>&1
      files+=("$F32")
    fi
    for f in "${files[@]}"; do
      "$LLAMA_BENCH" -m "$f" -t $threads -p 512 -n 128 -o jsonl 2>/dev/null | sed "s/^/{\"impl\": \"llama.cpp $(basename $f)\", \"raw\": /; s/$/}/" | tee -a "$OUT"
    done
  fi
done
"$PY" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    if "mode" in r: by[(r["impl"], r["mode"], r["threads"], r["batch"])] = r
print("| threads | measure | Bonsai | transformers | ratio |")
print("|---|---|---|---|---|")
for (impl, mode, t, b), r in sorted(by.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][3])):
    if impl != "bonsai": continue
    p = by.get(("transformers", mode, t, b))
    what = {"prefill": "prompt forward, 512 tokens (tokens/s)", "generate": f"generation, batch {b}, 128 new (tokens/s)",
            "train": "training step 4 x 128 (tokens/s)"}[mode]
    print(f"| {t} | {what} | {r['tokens_per_s']} (RSS {r['peak_rss_mib']} MiB) | {p['tokens_per_s'] if p else '-'} (RSS {p['peak_rss_mib'] if p else '-'} MiB) | {r['tokens_per_s'] / p['tokens_per_s']:.2f}x |" if p else f"| {t} | {what} | {r['tokens_per_s']} | - | - |")
PY
