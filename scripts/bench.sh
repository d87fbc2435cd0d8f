#!/usr/bin/env bash
# Side-by-side benchmark, Bonsai vs PyTorch + transformers, in one run, alternating the two sides.
#   scripts/bench.sh            (needs the reference venv: shared/reference/setup-reference-env.sh)
# MiniLM at batch 32 x 64 and MPNet at batch 16 x 64, forward and forward+backward+AdamW, 1 and 2 threads.
# Each configuration runs in its own process, so peak RSS is per configuration. Medians of STEPS steps.
# The environment is kept as set (OPENBLAS_* variables untouched; oneDNN ignores them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/.cache/bonsai-ref/venv/bin/python}
M=${BONSAI_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bonsai}/models
STEPS=${STEPS:-5}
THREADS=${THREADS:-"2 1"}
swift build -c release --product bonsai-bench >/dev/null
BIN=.build/release/bonsai-bench
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs)"
for t in $THREADS; do echo "sgemm 1024^3, $t thread(s): $($BIN --sgemm --threads $t)"; done
printf "\n| model | work | threads | PyTorch s/step | Bonsai s/step | PyTorch tok/s | Bonsai tok/s | speed ratio | PyTorch RSS MiB | Bonsai RSS MiB | RSS ratio |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
for cfg in "minilm 32" "mpnet 16"; do
  set -- $cfg; model=$1; batch=$2
  for mode in forward train; do
    for t in $THREADS; do
      pt=$("$PY" scripts/bench_torch.py --model "$M/$model" --batch "$batch" --tokens 64 --mode $mode --threads "$t" --steps "$STEPS" 2>/dev/null | tail -1)
      bo=$($BIN --model "$M/$model" --batch "$batch" --tokens 64 --mode $mode --threads "$t" --steps "$STEPS" | tail -1)
      python3 - "$model" "$mode" "$t" "$pt" "$bo" <<'PYEOF'
import json, sys
m, mode, t, pt, bo = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
print(f"| {m} | {mode} | {t} | {pt['seconds']:.3f} | {bo['seconds']:.3f} | {pt['tokens_per_s']:.0f} | {bo['tokens_per_s']:.0f} | "
      f"{bo['tokens_per_s'] / pt['tokens_per_s']:.2f}x | {pt['peak_rss_mib']:.0f} | {bo['peak_rss_mib']:.0f} | {bo['peak_rss_mib'] / pt['peak_rss_mib']:.2f} |")
PYEOF
    done
  done
done
