#!/usr/bin/env bash
# What a portable build costs: bonsai-bench built for this CPU (default, "native") and for "haswell"
# (AVX2 + FMA, runs on every x86-64 CPU of the last decade), run alternately on the same machine.
#   scripts/bench-targets.sh            (ROUNDS=3 STEPS=5 by default; run nothing else meanwhile)
# Prints the CPU, then one table: SIMD kernels (1 thread, ns/element, best of 7), sgemm, MiniLM forward
# and training steps (2 threads, batch 32 x 64, median of STEPS), each the median over ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; STEPS=${STEPS:-5}
M=${BONSAI_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bonsai}/models
swift build -c release --product bonsai-bench >/dev/null
BONSAI_TARGET_CPU=haswell swift build -c release --product bonsai-bench --scratch-path .build-portable >/dev/null
flags=$(grep -m1 '^flags' /proc/cpuinfo)
avx512=$(echo "$flags" | grep -qw avx512f && echo "AVX-512" || echo "no AVX-512")
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs), $avx512, $(nproc) cores"
out=$(mktemp); trap 'rm -f "$out"' EXIT
for r in $(seq "$ROUNDS"); do
  for build in native haswell; do
    bin=.build/release/bonsai-bench; [ $build = haswell ] && bin=.build-portable/release/bonsai-bench
    echo "{\"build\": \"$build\", \"kernels\": $($bin --kernels --threads 1), \"sgemm\": $($bin --sgemm --threads 2)," \
         "\"forward\": $($bin --model "$M/minilm" --batch 32 --tokens 64 --mode forward --threads 2 --steps "$STEPS" | tail -1)," \
         "\"train\": $($bin --model "$M/minilm" --batch 32 --tokens 64 --mode train --threads 2 --steps "$STEPS" | tail -1)}" >> "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(build, f): return statistics.median(f(r) for r in runs if r["build"] == build)
rows = [(k + " (ns/element, 1 thread)", lambda r, k=k: r["kernels"][k], False) for k in runs[0]["kernels"] if k != "threads"]
rows += [("sgemm 1024^3 (GFLOP/s, 2 threads)", lambda r: r["sgemm"]["sgemm_gflops"], True),
         ("MiniLM forward 32x64 (s/step, 2 threads)", lambda r: r["forward"]["seconds"], False),
         ("MiniLM training step 32x64 (s/step, 2 threads)", lambda r: r["train"]["seconds"], False)]
print("| measure | native | haswell (portable) | portable vs native |\n|---|---|---|---|")
for name, f, higher in rows:
    n, h = med("native", f), med("haswell", f)
    ratio = (h / n) if higher else (n / h)
    print(f"| {name} | {n:.3f} | {h:.3f} | {ratio:.2f}x speed |")
PY
