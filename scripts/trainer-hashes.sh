#!/usr/bin/env bash
# Proof that a change to the training loop changes nothing: short fixed-seed runs of every method and
# combination, with the sha256 of each final model.safetensors, of metrics.jsonl (timing keys removed)
# and of dynamics.jsonl, and the same runs stopped in the middle and resumed. Run before and after a
# change and compare the tables (the committed one is docs/trainer-hashes.md).
#   scripts/trainer-hashes.sh [WORKDIR]        (one thread, about 10 minutes; needs `bonsai fetch minilm`)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bonsai >/dev/null
BIN=$PWD/.build/release/bonsai
W=${1:-$(mktemp -d /tmp/bonsai-hashes.XXXX)}
mkdir -p "$W"
export BONSAI_THREADS=1
STOP_AT=${STOP_AT:-10}

# Data: 120 short labelled texts, fixed, with some label noise.
python3 - "$W/data.csv" <<'PY'
import sys, random
rng = random.Random(7)
pos = ["a wonderful, delightful film", "moving and beautifully acted", "a warm, funny story", "great fun from start to end"]
neg = ["a dull and boring mess", "lifeless, flat and far too long", "an awful waste of time", "clumsy writing and bad acting"]
with open(sys.argv[1], "w") as f:
    f.write("label,text\n")
    for i in range(120):
        words = rng.choice(pos if i % 2 == 0 else neg) + " " + " ".join(rng.choice(["really", "the", "plot", "cast", "music", "ending", "scenes"]) for _ in range(rng.randint(1, 6)))
        label = ("pos" if i % 2 == 0 else "neg") if i % 7 else ("neg" if i % 2 == 0 else "pos")  # 1 in 7 mislabelled,
        f.write(label + ',"' + words + '"\n')  # so that a teacher's pseudo-labels differ from the gold ones
PY

# A narrow (96-wide) BERT student with MiniLM's tokenizer, random weights from a fixed seed, written
# with the standard library only (for hidden-state KD through a learned projection).
python3 - "$W/narrow" "${BONSAI_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bonsai}/models/minilm" <<'PY'
import sys, os, json, random, struct, shutil, array
out, minilm = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
cfg = json.load(open(os.path.join(minilm, "config.json")))
H, L, I, V, P = 96, 2, 192, cfg["vocab_size"], cfg["max_position_embeddings"]
cfg.update(hidden_size=H, num_attention_heads=3, intermediate_size=I, num_hidden_layers=L,
           architectures=["BertForSequenceClassification"], id2label={"0": "neg", "1": "pos"}, label2id={"neg": 0, "pos": 1})
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]:
    if os.path.exists(os.path.join(minilm, name)): shutil.copy(os.path.join(minilm, name), out)
rng = random.Random(3)
shapes = {"bert.embeddings.word_embeddings.weight": [V, H], "bert.embeddings.position_embeddings.weight": [P, H],
          "bert.embeddings.token_type_embeddings.weight": [2, H], "bert.embeddings.LayerNorm.weight": [H], "bert.embeddings.LayerNorm.bias": [H]}
for l in range(L):
    p = f"bert.encoder.layer.{l}."
    for m in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]:
        shapes[p + m + ".weight"] = [H, H]; shapes[p + m + ".bias"] = [H]
    shapes[p + "intermediate.dense.weight"] = [I, H]; shapes[p + "intermediate.dense.bias"] = [I]
    shapes[p + "output.dense.weight"] = [H, I]; shapes[p + "output.dense.bias"] = [H]
    for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
        shapes[p + n + ".weight"] = [H]; shapes[p + n + ".bias"] = [H]
shapes.update({"bert.pooler.dense.weight": [H, H], "bert.pooler.dense.bias": [H], "classifier.weight": [2, H], "classifier.bias": [2]})
header, blobs, offset = {}, [], 0
for key in sorted(shapes):
    n = 1
    for d in shapes[key]: n *= d
    if "LayerNorm.weight" in key: values = array.array("f", [1.0] * n)
    elif key.endswith(".bias") or "LayerNorm" in key: values = array.array("f", [0.0] * n)
    else: values = array.array("f", (rng.gauss(0, 0.02) for _ in range(n)))
    blob = values.tobytes()
    header[key] = {"dtype": "F32", "shape": shapes[key], "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob); offset += len(blob)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for b in blobs: f.write(b)
PY

COMMON=(--data "$W/data.csv" --epochs 3 --batch-size 8 --max-length 16 --eval-every 5 --seed 42)
run() {  # run NAME COMMAND ARGS...: uninterrupted, then stopped after step STOP_AT and resumed
  local name=$1; shift
  "$BIN" "$@" "${COMMON[@]}" --output "$W/$name" --overwrite >/dev/null 2>"$W/$name.log"
  BONSAI_TEST_STOP_AFTER_STEP=$STOP_AT "$BIN" "$@" "${COMMON[@]}" --output "$W/$name-resumed" --overwrite >/dev/null 2>>"$W/$name.log" || true
  "$BIN" "$@" "${COMMON[@]}" --resume "$W/$name-resumed" >/dev/null 2>>"$W/$name.log"
  echo "$name" >> "$W/runs.txt"
}
rm -f "$W/runs.txt"
run full finetune --model minilm
"$BIN" shrink --teacher "$W/full/best" --layers 0,5 --output "$W/student" >/dev/null
run head finetune --model minilm --method head --learning-rate 1e-3
run sift finetune --model minilm --method sift --sparsity 0.01 --learning-rate 5e-4
run lora finetune --model minilm --method lora --learning-rate 5e-4
run dynsdpb finetune --model minilm --method dynsdpb
run dlb finetune --model minilm --method dlb
run distill-logit-kd distill --teacher "$W/full/best" --student "$W/student"
run distill-hidden-projection distill --teacher "$W/full/best" --student "$W/narrow" --alpha-ce 0.5 --alpha-kd 0.5 --alpha-hidden 1 --hidden-map 1,5 --learning-rate 3e-4
run pseudo-labels distill --teacher "$W/full/best" --student "$W/student" --pseudo-labels
run record-dynamics finetune --model minilm --record-dynamics
run distill-lora-dynamic-sd distill --teacher "$W/full/best" --student "$W/student" --method lora --self-distill dynamic --learning-rate 5e-4
run sift-record-dynamics finetune --model minilm --method sift --sparsity 0.01 --learning-rate 5e-4 --record-dynamics

python3 - "$W" <<'PY'
import hashlib, json, os, sys
W = sys.argv[1]
TIMING = ("seconds", "per_s", "per_second", "eta", "time")
def sha(path, strip=False):
    if not os.path.exists(path): return "-"
    data = open(path, "rb").read()
    if strip:
        lines = []
        for line in data.decode().splitlines():
            obj = json.loads(line)
            lines.append(json.dumps({k: v for k, v in obj.items() if not any(t in k for t in TIMING)}, sort_keys=True))
        data = "\n".join(lines).encode()
    return hashlib.sha256(data).hexdigest()[:16]
print("| run | final/model.safetensors | metrics.jsonl (no timings) | dynamics.jsonl | stopped at step %s and resumed: all three equal |" % os.environ.get("STOP_AT", "10"))
print("|---|---|---|---|---|")
for name in open(os.path.join(W, "runs.txt")).read().split():
    row = [sha(os.path.join(W, name, "final/model.safetensors")), sha(os.path.join(W, name, "metrics.jsonl"), True), sha(os.path.join(W, name, "dynamics.jsonl"))]
    again = [sha(os.path.join(W, name + "-resumed", "final/model.safetensors")), sha(os.path.join(W, name + "-resumed", "metrics.jsonl"), True),
             sha(os.path.join(W, name + "-resumed", "dynamics.jsonl"))]
    print(f"| {name} | {row[0]} | {row[1]} | {row[2]} | {'yes' if row == again else 'NO: ' + ' '.join(again)} |")
PY
