#!/usr/bin/env python3
"""Check the GGUF files `bonsai convert --to gguf` (and `finetune --export-gguf`) writes: llama.cpp and transformers
load them, and their greedy continuations of the decoder issue's golden prompts equal `bonsai generate`'s.

    LLAMA_SIMPLE=/path/to/llama.cpp/build/bin/llama-simple \
      ~/.cache/bonsai-ref/venv/bin/python scripts/check-gguf-export.py [MODEL (default smollm2)] [DTYPES (default f32,f16,q8_0,q4_0)]
llama.cpp is built by hand outside the repo (its `llama-simple` decodes greedily); without LLAMA_SIMPLE only
transformers is checked. With LLAMA_QUANTIZE too, llama.cpp's own file of each type (llama-quantize --pure from
Bonsai's F32 export) is decoded by llama.cpp as well: where llama.cpp differs from Bonsai on Bonsai's file, this tells
whether it differs the same way on its own quantisation (its 8-bit activations) or only on Bonsai's file. Prints one JSON line per file and a table; exits non-zero when transformers differs on a
prompt (llama.cpp quantises activations to 8 bits in its Q8_0/Q4_0 products, so near-ties may go the other way there:
the table counts them, and the line names each).
"""
import json, os, subprocess, sys, tempfile
import torch, transformers

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bonsai = os.path.join(root, ".build/release/bonsai")
model = sys.argv[1] if len(sys.argv) > 1 else "smollm2"
dtypes = (sys.argv[2] if len(sys.argv) > 2 else "f32,f16,q8_0,q4_0").split(",")
NEW = 32
golden = json.load(open(os.path.join(root, "Tests/BonsaiModelsTests/Fixtures/smollm2-golden.json")))["generate"]
out_dir = tempfile.mkdtemp(prefix="bonsai-gguf-")
failed, rows = False, []
for dtype in dtypes:
    path = os.path.join(out_dir, f"model-{dtype}.gguf")
    subprocess.run([bonsai, "convert", "--model", model, "--to", "gguf", "--dtype", dtype, "--output", path], check=True, capture_output=True)
    tok = transformers.AutoTokenizer.from_pretrained(out_dir, gguf_file=os.path.basename(path))
    ref = transformers.AutoModelForCausalLM.from_pretrained(out_dir, gguf_file=os.path.basename(path), dtype=torch.float32).eval()
    same_tf, same_llama, same_own, differ = 0, 0, 0, []
    own = None
    if os.environ.get("LLAMA_QUANTIZE") and os.environ.get("LLAMA_SIMPLE") and dtype != "f32":
        f32 = os.path.join(out_dir, "model-f32.gguf")
        if not os.path.exists(f32):
            subprocess.run([bonsai, "convert", "--model", model, "--to", "gguf", "--dtype", "f32", "--output", f32], check=True, capture_output=True)
        own = os.path.join(out_dir, f"llama-quantize-{dtype}.gguf")
        subprocess.run([os.environ["LLAMA_QUANTIZE"], "--pure", f32, own, dtype.upper()], check=True, capture_output=True)
    for g in golden:
        text = tok.apply_chat_template([{"role": "user", "content": g["prompt"]}], tokenize=False, add_generation_prompt=True) if g["chat"] else g["prompt"]
        ids = tok(text)["input_ids"]
        b = json.loads(subprocess.run([bonsai, "generate", "--model", path, "--max-new-tokens", str(NEW)], input=text,
                                      capture_output=True, text=True, check=True).stdout.splitlines()[0] if not g["chat"] else
                       subprocess.run([bonsai, "generate", "--model", path, "--max-new-tokens", str(NEW), "--chat"], input=g["prompt"],
                                      capture_output=True, text=True, check=True).stdout.splitlines()[0])
        with torch.no_grad():
            t = ref.generate(torch.tensor([ids]), max_new_tokens=NEW, do_sample=False, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        t_new = t[0, len(ids):].tolist()
        n = min(len(t_new), len(b["tokens"]))
        if t_new[:n] == b["tokens"][:n]: same_tf += 1
        else: failed = True; differ.append(("transformers", g["prompt"]))
        if os.environ.get("LLAMA_SIMPLE"):
            r = subprocess.run([os.environ["LLAMA_SIMPLE"], "-m", path, "-n", str(NEW), text], capture_output=True, text=True)
            # llama-simple prints the prompt, the continuation (without the end-of-generation token) and a newline
            llama_text = (r.stdout[len(text):] if r.stdout.startswith(text) else r.stdout)[:-1]
            bonsai_text = tok.decode(b["tokens"], skip_special_tokens=True)
            if r.returncode == 0 and llama_text == bonsai_text: same_llama += 1
            else: differ.append(("llama.cpp", g["prompt"], llama_text, bonsai_text))
            if own:
                o = subprocess.run([os.environ["LLAMA_SIMPLE"], "-m", own, "-n", str(NEW), text], capture_output=True, text=True)
                if o.returncode == 0 and o.stdout == r.stdout: same_own += 1
    line = {"dtype": dtype, "file_mib": os.path.getsize(path) >> 20, "prompts": len(golden), "transformers_identical": same_tf,
            "llama_cpp_identical": same_llama if os.environ.get("LLAMA_SIMPLE") else None,
            "llama_cpp_same_on_its_own_quantisation": same_own if own else None, "differ": differ}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    rows.append(line)
print("\n| GGUF type | file MiB | prompts | transformers greedy identical | llama.cpp greedy identical | llama.cpp: same output on llama-quantize's file |\n|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['dtype']} | {r['file_mib']} | {r['prompts']} | {r['transformers_identical']} | {r['llama_cpp_identical']} | {r['llama_cpp_same_on_its_own_quantisation']} |")
sys.exit(1 if failed else 0)
