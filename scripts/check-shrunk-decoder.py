#!/usr/bin/env python3
"""Check that a decoder student `bonsai shrink` wrote loads in transformers and equals the teacher with the other
layers deleted (transformers' own surgery on the teacher's GGUF, dequantised to fp32).

    bonsai shrink --teacher smollm2 --num-layers 6 --output /tmp/s6
    ~/.cache/bonsai-ref/venv/bin/python scripts/check-shrunk-decoder.py /tmp/s6
Prints the largest logit difference on a few texts; exits non-zero above 1e-4.
"""
import json, os, sys
import torch, transformers
folder = sys.argv[1]
HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
kept = json.load(open(os.path.join(folder, "config.json")))["init_metadata"]["copied_layers"]
ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(HOME, "models/smollm2"), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                                        dtype=torch.float32).eval()
ref.model.layers = torch.nn.ModuleList([ref.model.layers[i] for i in kept])
for j, layer in enumerate(ref.model.layers): layer.self_attn.layer_idx = j
ref.config.num_hidden_layers = len(kept)
student = transformers.AutoModelForCausalLM.from_pretrained(folder).eval().float()
tok = transformers.AutoTokenizer.from_pretrained(folder)
worst = 0.0
for text in ["The capital of France is", "BBC News: the chancellor said on Tuesday that", "<|im_start|>user\nHi<|im_end|>\n"]:
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        a, b = student(ids).logits, ref(ids).logits
    worst = max(worst, (a - b).abs().max().item())
print(json.dumps({"student": folder, "copied_layers": kept, "largest_logit_difference": worst}))
sys.exit(0 if worst < 1e-4 else 1)
