#!/usr/bin/env bash
# Decoder speed, side by side in one run (one configuration per process): SmolLM2-135M-Instruct in GGUF files of
# the same weights in several formats (FORMATS, default "Q4_1 Q8_0 F16 F32": the fetched Q4_1 file and its
# re-quantisations by llama.cpp's llama-quantize), Bonsai multiplying straight from each file's blocks:
#   - transformers (PyTorch CPU, fp32, reading the Q4_1 GGUF dequantised), one run per configuration: prompt
#     forward of 512 tokens, generation of 128 tokens after a 16-token prompt at batch 1 and 8, and a training
#     step (4 x 128; Bonsai with --fp32 weights, since packed weights are frozen);
#   - llama.cpp's llama-bench (pp512, tg128) on every file, in ROUNDS (3) rounds of Bonsai and llama-bench back to
#     back (this VM's speed drifts by 10-30% over minutes, so the two sides are compared within a round; medians).
# Bonsai's generation is timed after its prompt, as llama-bench's tg; transformers' includes its 16-token prompt.
# Peak RSS is the process's VmHWM. llama.cpp is never built here: LLAMA_BENCH and LLAMA_QUANTIZE name binaries you
# built yourself (without them only the transformers table is printed). ONLY_LLAMA=1 skips transformers.
# PACKED_KERNELS=avx2|scalar runs Bonsai with other kernels than the best its build has; BONSAI_FLAGS adds flags to
# every bonsai-bench run (e.g. --rows-layout: Q formats kept row after row, not in tiles of 16 rows). TABLE_ROUNDS=N repeats the
# Bonsai/transformers table N times, alternating sides, and prints medians; TABLE_CONFIGS (';'-separated "mode batch
# tokens new", default the three rows above) and TABLE_TRAIN=0 narrow it, e.g. to batch-8 generation:
#   TABLE_ROUNDS=5 TABLE_CONFIGS="generate 8 16 128" TABLE_TRAIN=0 FORMATS="Q4_1 Q8_0" scripts/bench-decoder.sh
#   [LLAMA_BENCH=... LLAMA_QUANTIZE=... ROUNDS=3 FORMATS="Q4_1 Q8_0"] scripts/bench-decoder.sh
#   (needs the reference environment: shared/reference/, + gguf and accelerate)
# Prints JSON lines and the tables, naming the CPU.
set -euo pipefail
source "$(dirname "$0")/decoder-bench-setup.sh"
OUT=$(mktemp)
declare -A file
for f in ${FORMATS:-Q4_1 Q8_0 F16 F32}; do
  path=$(dirname "$GGUF")/SmolLM2-135M-Instruct.$f.gguf
  if [ ! -f "$path" ]; then
    [ -n "${LLAMA_QUANTIZE:-}" ] || { echo "skipping $f: no $path and no LLAMA_QUANTIZE to make it" >&2; continue; }
    "$LLAMA_QUANTIZE" --allow-requantize "$GGUF" "$path" $f >/dev/null 2>&1
  fi
  file[$f]=$path
done
bonsai() {  # FORMAT MODE BATCH TOKENS NEW THREADS [extra flags]
  .build/release/bonsai-bench --decoder "${file[$1]}" --mode $2 --batch $3 --tokens $4 --new $5 --threads $6 --steps 2 \
    ${PACKED_KERNELS:+--packed-kernels $PACKED_KERNELS} ${BONSAI_FLAGS:-} "${@:7}" \
    | sed "s/\"impl\": \"bonsai\"/\"impl\": \"bonsai\", \"format\": \"$1\", \"file_mib\": $(( $(stat -L -c %s "${file[$1]}") >> 20 ))/"
}
IFS=';' read -ra table_configs <<< "${TABLE_CONFIGS:-prefill 1 512 128;generate 1 16 128;generate 8 16 128}"
if [ "${ONLY_LLAMA:-0}" != 1 ]; then
  for round in $(seq ${TABLE_ROUNDS:-1}); do
    for threads in 1 2; do
      for cfg in "${table_configs[@]}"; do
        set -- $cfg
        for f in "${!file[@]}"; do bonsai $f $1 $2 $3 $4 $threads | tee -a "$OUT"; done
        "$PY" scripts/bench_decoder_torch.py $1 $threads $2 $3 $4 2>/dev/null | tee -a "$OUT"
      done
      if [ "${TABLE_TRAIN:-1}" = 1 ]; then
        bonsai Q4_1 train 4 128 0 $threads --fp32 | tee -a "$OUT"
        "$PY" scripts/bench_decoder_torch.py train $threads 4 128 0 2>/dev/null | tee -a "$OUT"
      fi
    done
  done
fi
if [ -n "${LLAMA_BENCH:-}" ]; then
  for round in $(seq ${ROUNDS:-3}); do
    for threads in 1 2; do
      for f in "${!file[@]}"; do
        for cfg in "prefill 1 512 128" "generate 1 16 128"; do
          set -- $cfg
          bonsai $f $1 $2 $3 $4 $threads | sed 's/"impl": "bonsai"/"impl": "bonsai-vs-llama.cpp"/' | tee -a "$OUT"
        done
        "$LLAMA_BENCH" -m "${file[$f]}" -t $threads -p 512 -n 128 -r 3 -o jsonl 2>/dev/null \
          | sed "s/^/{\"impl\": \"llama.cpp\", \"format\": \"$f\", \"raw\": /; s/$/}/" | tee -a "$OUT"
      done
    done
  done
fi
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
one, runs, rss = {}, {}, {}
for r in rows:
    if r["impl"] == "transformers": one.setdefault(("transformers", "fp32", r["mode"], r["threads"], r["batch"]), []).append(r)
    elif r["impl"] == "bonsai": one.setdefault(("bonsai", r["format"], r["mode"], r["threads"], r["batch"]), []).append(r)
    elif r["impl"] == "bonsai-vs-llama.cpp":
        runs.setdefault(("Bonsai", r["format"], r["mode"], r["threads"]), []).append(r["tokens_per_s"])
        if r["mode"] == "generate": rss.setdefault((r["format"], r["threads"]), (r["peak_rss_mib"], r["file_mib"]))
    elif "raw" in r:  # llama-bench: pp512 (n_gen 0) or tg128 (n_prompt 0)
        x = r["raw"]
        runs.setdefault(("llama.cpp", r["format"], "prefill" if x["n_gen"] == 0 else "generate", x["n_threads"]), []).append(x["avg_ts"])
formats = [f for f in ("Q4_1", "Q8_0", "F16", "F32") if any(k[1] == f for k in one) or any(k[1] == f for k in runs)]
table_rounds = max((len(v) for v in one.values()), default=0)
# several rounds (TABLE_ROUNDS): the median tokens/s of each configuration and its largest peak RSS
one = {k: {"tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in v), 1), "peak_rss_mib": max(r["peak_rss_mib"] for r in v)}
       for k, v in one.items()}
if one:
    print("| threads | measure | " + " | ".join(f"Bonsai {f}" for f in formats) + " | transformers fp32 | best ratio |")
    print("|---|---|" + "---|" * (len(formats) + 2))
    for t in (1, 2):
        for mode, b, what in (("prefill", 1, "prompt forward, 512 tokens"), ("generate", 1, "generation, batch 1"),
                              ("generate", 8, "generation, batch 8"), ("train", 4, "training step 4 x 128 (Bonsai fp32)")):
            p = one.get(("transformers", "fp32", mode, t, b))
            if not p and not any(k[2:] == (mode, t, b) for k in one): continue
            cells = []
            for f in formats:
                r = one.get(("bonsai", f, mode, t, b))
                cells.append(f"{r['tokens_per_s']} ({r['peak_rss_mib']} MiB)" if r else "-")
            best = max((one[k]["tokens_per_s"] for k in one if k[0] == "bonsai" and k[2:] == (mode, t, b)), default=None)
            ratio = f"{best / p['tokens_per_s']:.2f}x" if p and best else "-"
            print(f"| {t} | {what} (tokens/s, peak RSS) | " + " | ".join(cells) + f" | {p['tokens_per_s'] if p else '-'}" + (f" ({p['peak_rss_mib']} MiB)" if p else "") + f" | {ratio} |")
    if table_rounds > 1: print(f"(medians of {table_rounds} rounds)")
if runs:
    n = max(len(v) for v in runs.values())
    print()
    print(f"| threads | format | generation b1: Bonsai | llama.cpp | ratio | prompt 512: Bonsai | llama.cpp | ratio | Bonsai peak RSS generating / file |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in (1, 2):
        for f in formats:
            med = {(k, m): statistics.median(runs[(k, f, m, t)]) for k in ("Bonsai", "llama.cpp") for m in ("generate", "prefill") if runs.get((k, f, m, t))}
            if len(med) < 4: continue
            g, p = med[("Bonsai", "generate")] / med[("llama.cpp", "generate")], med[("Bonsai", "prefill")] / med[("llama.cpp", "prefill")]
            peak, size = rss[(f, t)]
            print(f"| {t} | {f} | {med[('Bonsai', 'generate')]:.1f} | {med[('llama.cpp', 'generate')]:.1f} | {g:.2f}x | {med[('Bonsai', 'prefill')]:.1f} | "
                  f"{med[('llama.cpp', 'prefill')]:.1f} | {p:.2f}x | {peak} / {size} MiB ({peak / size:.2f}x) |")
    print(f"(medians of {n} rounds)")
PY
