#!/usr/bin/env bash
# Data-parallel benchmark (docs/distributed.md): MiniLM, MPNet and SmolLM2 trained with the same global batch
# as 1 rank x 2 threads and as 2 ranks x 1 thread (Open MPI, shared memory) on this machine. Prints, per model:
# median step time, tokens/s, gradient bytes and all-reduce time per step, peak RSS of rank 0, and the largest
# difference between the two loss curves (the same data order: they must agree within float summation order);
# then the scaling model for N machines over 10, 25 and 100 Gbit/s from these figures.
# Needs a build with the MPI trait (swift build -c release --traits MPI). Run it alone on the machine.
#   STEPS="50 20 10" (MiniLM, MPNet, SmolLM2)   OUT=/tmp/bench-dp
set -euo pipefail
cd "$(dirname "$0")/.."
B=.build/release/bonsai
out=${OUT:-/tmp/bench-dp}; mkdir -p "$out"
read -r s_minilm s_mpnet s_smol <<<"${STEPS:-50 20 10}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs), $(grep -q avx512f /proc/cpuinfo && echo AVX-512 || echo 'AVX2, no AVX-512'), $(nproc) cores"
echo "CPU: $cpu; Open MPI $(mpirun --version | head -1 | awk '{print $NF}'); $(date -u '+%Y-%m-%d %H:%M UTC')"
mpirun --version >/dev/null || { echo "bench-data-parallel: needs mpirun (scripts/install-deps.sh --mpi)"; exit 1; }

for spec in "minilm polarity $s_minilm 32" "mpnet polarity $s_mpnet 32" "smollm2 bbc-headlines $s_smol 8"; do
  read -r model data steps batch <<<"$spec"
  common=(finetune --model "$model" --data "$data" --max-steps "$steps" --batch-size "$batch" --max-length 128 --dev-fraction 0.02
          --test-fraction 0.02 --eval-every 1000000 --generation-tokens 0 --overwrite)
  echo "== $model: $steps steps of $batch examples, 1 rank x 2 threads, then 2 ranks x 1 thread" >&2
  $B "${common[@]}" --threads 2 --output "$out/$model-1x2" >"$out/$model-1x2.log" 2>&1
  mpirun -np 2 --bind-to core --mca btl self,vader $B "${common[@]}" --output "$out/$model-2x1" >"$out/$model-2x1.log" 2>&1
done

python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
def run(name):
    steps = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl") if '"step_seconds"' in l]
    summary = json.load(open(f"{out}/{name}/summary.json"))
    warm = steps[2:] or steps
    med = lambda k: statistics.median(s[k] for s in warm) if k in warm[0] else 0.0
    tokens = summary["train_tokens_processed"] / max(summary["steps"], 1)
    return dict(loss=[s["loss"] for s in steps], step=med("step_seconds"), tok=tokens / med("step_seconds"),
                mb=med("allreduce_mb"), ms=med("allreduce_ms"), wait=med("rank_wait_ms"), rss=summary["peak_rss_bytes"] / 2**20, params=summary["parameters"])
rows = {}
print("\n| model | params | 1 rank x 2 threads: s/step | tok/s | 2 ranks x 1 thread: s/step | tok/s | speed-up | gradient MB/step | all-reduce ms/step | wait for the other rank ms/step | rank-0 peak RSS MiB (1x2 / 2x1) | max loss diff (rel.) over the steps |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for m in ["minilm", "mpnet", "smollm2"]:
    a, b = run(f"{m}-1x2"), run(f"{m}-2x1")
    diff = max(abs(x - y) / max(abs(x), 1e-9) for x, y in zip(a["loss"], b["loss"]))
    rows[m] = (a, b)
    print(f"| {m} | {a['params']/1e6:.1f}M | {a['step']:.3f} | {a['tok']:.0f} | {b['step']:.3f} | {b['tok']:.0f} | {a['step']/b['step']:.2f}x | "
          f"{b['mb']:.1f} | {b['ms']:.1f} | {b['wait']:.1f} | {a['rss']:.0f} / {b['rss']:.0f} | {diff:.1e} ({len(a['loss'])} steps) |")

# Scaling model: N machines like this one (2 cores each), gradients summed by a ring all-reduce, which sends and
# receives 2(N-1)/N x G bytes per machine per step at link bandwidth L. Strong scaling (the global batch fixed):
# compute T1/N per step; without overlap a step takes T1/N + comm; with the all-reduce overlapped with the
# backward pass (about 2/3 of a step), T1/N + max(0, comm - 2/3 T1/N). Communication dominates once comm > T1/N.
print("\nScaling model (global batch fixed; T1 = the 1 x 2 step above; comm = 2(N-1)/N x G / L; no overlap / overlap with backward):")
print("| model | link | N=2 | N=4 | N=8 | N=16 | N=32 | comm > compute from N = |")
print("|---|---|---|---|---|---|---|---|")
for m, (a, b) in rows.items():
    T1, G = a["step"], b["mb"] * 1e6
    for gbit in [10, 25, 100]:
        L = gbit * 1e9 / 8
        cells = []
        for N in [2, 4, 8, 16, 32]:
            comm = 2 * (N - 1) / N * G / L
            plain = T1 / (T1 / N + comm); over = T1 / (T1 / N + max(0, comm - 2 / 3 * T1 / N))
            cells.append(f"{plain:.1f}x / {over:.1f}x")
        cross = next((N for N in range(2, 4097) if 2 * (N - 1) / N * G / L > T1 / N), None)
        print(f"| {m} | {gbit} Gbit/s | " + " | ".join(cells) + f" | {cross} |")
PY
