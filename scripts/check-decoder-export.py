#!/usr/bin/env python3
"""Check that a folder `bonsai convert` wrote loads in transformers and matches the GGUF it came from.

    bonsai convert --model smollm2 --output /tmp/smol-hf [--dtype f16|bf16]
    ~/.cache/bonsai-ref/venv/bin/python scripts/check-decoder-export.py /tmp/smol-hf [f32|f16|bf16]
Prints the largest logit difference against transformers reading the GGUF (dequantised, fp32), token ids and
the chat template on a few texts; exits non-zero on a mismatch.
"""
import os, sys
import torch, transformers
folder, dtype = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "f32")
HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
gguf_dir, gguf_file = os.path.join(HOME, "models/smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf"
ref = transformers.AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32).eval()
ref_tok = transformers.AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval().float()
tok = transformers.AutoTokenizer.from_pretrained(folder)
texts = ["The capital of France is", "naïve café — Zürich, 日本語 😀 E=mc² ½", "def f(x):\n\treturn x**2  # comment\n",
         "<|im_start|>user\nHi<|im_end|>\n"]
ok = True
for t in texts:
    a, b = tok(t)["input_ids"], ref_tok(t)["input_ids"]
    if a != b: ok = False; print("ids differ:", repr(t), a, b)
conv = [{"role": "user", "content": "What is 2+2?"}]
if tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True) != ref_tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True):
    ok = False; print("chat template renders differently")
enc = ref_tok(texts[0], return_tensors="pt")
with torch.no_grad():
    diff = (model(**enc).logits - ref(**enc).logits).abs().max().item()
limit = {"f32": 1e-4, "f16": 0.5, "bf16": 2.0}[dtype]
print(f"{folder} ({dtype}): largest |logit difference| vs transformers from the GGUF = {diff:.3g} (limit {limit}); ids and chat template {'equal' if ok else 'DIFFER'}")
sys.exit(0 if ok and diff < limit else 1)
