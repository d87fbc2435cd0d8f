#!/usr/bin/env bash
# The decoder fine-tuning quality table of the README against PyTorch: the short recipe (40 optimizer steps of batch 4,
# seed 42, 20 greedy tokens generated per test example) on bbc-headlines at --max-length 160 (dev 2%, test 3%) (full, learning rate 5e-5;
# LoRA r=16 alpha 32, 5e-4; the same LoRA over the base kept in its GGUF blocks) and on chitchat at --max-length 192
# (dev and test 2%; LoRA), each run's own recipe then rerun by scripts/reference_decoder_finetune.py with PyTorch + transformers
# (+ PEFT) on the run's split.json and batches. Prints the table: test ROUGE-1/2/L and perplexity, both sides.
# No timing is quoted from it, so it may share the machine.
#   [OUT=dir] [BONSAI=path/to/bonsai] scripts/compare-decoder-quality.sh
#   (needs the reference environment, plus peft, gguf and rouge-score==0.1.2 in it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/.cache/bonsai-ref/venv/bin/python}
if [ -z "${BONSAI:-}" ]; then swift build -c release --product bonsai ${SWIFT_BUILD_FLAGS:-} >/dev/null; BONSAI=.build/release/bonsai; fi
OUT=${OUT:-$(mktemp -d)}; mkdir -p "$OUT"
"$BONSAI" fetch smollm2 bbc-headlines chitchat >/dev/null
common=(--model smollm2 --batch-size 4 --max-steps 40 --generation-tokens 20 --seed 42 --eval-every 0 --threads 2 --overwrite)
lora=(--method lora --rank 16 --alpha 32 --learning-rate 5e-4)
run() {  # name, then finetune's options
  local name=$1; shift
  "$BONSAI" finetune "${common[@]}" --output "$OUT/$name" "$@" > "$OUT/$name.out" 2> "$OUT/$name.log"
  case $name in *quantized*) ;; *) "$PY" scripts/reference_decoder_finetune.py "$OUT/$name" --threads 2 > "$OUT/$name.ref" 2> "$OUT/$name.ref.log" ;; esac
}
run bbc-full --data bbc-headlines --max-length 160 --dev-fraction 0.02 --test-fraction 0.03 --method full --learning-rate 5e-5
run bbc-lora --data bbc-headlines --max-length 160 --dev-fraction 0.02 --test-fraction 0.03 "${lora[@]}"
run bbc-lora-quantized --data bbc-headlines --max-length 160 --dev-fraction 0.02 --test-fraction 0.03 "${lora[@]}" --quantized-base
run chitchat-lora --data chitchat --max-length 192 --dev-fraction 0.02 --test-fraction 0.02 "${lora[@]}"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def rouge(t): return " / ".join(f"{t[k]:.4f}" for k in ("rouge1", "rouge2", "rougeL"))
print("| run | test ROUGE-1 / 2 / L: Bonsai | PyTorch | test perplexity: Bonsai | PyTorch | difference | trainable parameters |")
print("|---|---|---|---|---|---|---|")
for name in ["bbc-full", "bbc-lora", "bbc-lora-quantized", "chitchat-lora"]:
    s = json.load(open(os.path.join(out, name, "summary.json")))
    b = s["test"]
    ref_file = os.path.join(out, (name.replace("-quantized", "")) + ".ref")
    r = json.loads(open(ref_file).read().strip().splitlines()[-1])["reference"]
    print(f"| {name} | {rouge(b)} | {rouge(r)} | {b['perplexity']:.4f} | {r['perplexity']:.4f} "
          f"| {100 * (b['perplexity'] / r['perplexity'] - 1):+.4f}% | {s['trainable_parameters']:,} |")
PY
