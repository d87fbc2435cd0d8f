#!/usr/bin/env python3
"""Check that a model folder written by Bonsai loads in the Python `safetensors` library and in
transformers, and that transformers' probabilities equal `bonsai predict`'s within 1e-4.
    ~/.cache/bonsai-ref/venv/bin/python scripts/check-export.py [--model minilm|mpnet]
Builds bonsai (release), fine-tunes a few steps on sentence polarity with --output, then compares."""
import argparse, json, os, subprocess, sys, tempfile
import torch, transformers
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
p = argparse.ArgumentParser(); p.add_argument("--model", default="minilm"); p.add_argument("--steps", default="3")
a = p.parse_args()
subprocess.run(["swift", "build", "-c", "release", "--product", "bonsai"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
bonsai = os.path.join(ROOT, ".build/release/bonsai")
out = os.path.join(tempfile.mkdtemp(), "model")
subprocess.run([bonsai, "finetune", "--model", os.path.join(HOME, "models", a.model), "--data", os.path.join(HOME, "data/polarity.csv"),
                "--max-steps", a.steps, "--output", out], check=True, stdout=subprocess.DEVNULL)
with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
    keys = list(f.keys())
    print(f"safetensors: {len(keys)} tensors, e.g. {keys[0]} {tuple(f.get_tensor(keys[0]).shape)}")
model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
tok = transformers.AutoTokenizer.from_pretrained(out)
texts = ["the movie was a delight from start to finish .", "a dull, lifeless mess.", "neither good nor bad, just long"]
with torch.no_grad():
    probs = model(**tok(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
res = subprocess.run([bonsai, "predict", "--model", out], input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
worst = 0.0
for i, line in enumerate(res.stdout.strip().split("\n")):
    obj = json.loads(line)
    for j in range(probs.shape[1]):
        worst = max(worst, abs(obj["probabilities"][model.config.id2label[j]] - float(probs[i, j])))
print(f"transformers loaded {type(model).__name__} with labels {model.config.id2label}; max |p_bonsai - p_transformers| = {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
