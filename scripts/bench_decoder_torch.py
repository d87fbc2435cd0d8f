#!/usr/bin/env python3
"""transformers' side of scripts/bench-decoder.sh: SmolLM2 from its GGUF (fp32), one configuration per process.
    bench_decoder_torch.py MODE THREADS BATCH TOKENS NEW [METHOD]   (MODE: prefill | generate | train | step;
    step: forward, backward and AdamW of METHOD full or lora, PEFT's LoRA r=16 alpha 32 on every projection;
    METHOD+checkpointing: with transformers' gradient checkpointing; METHOD+selective: the same with PyTorch's
    selective activation checkpointing, the outputs of matrix products kept and the rest recomputed)"""
import json, os, sys, time, resource
mode, threads, B, T, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
method = sys.argv[6] if len(sys.argv) > 6 else "full"  # full | lora, "+checkpointing" or "+selective": gradient checkpointing
import torch, transformers
torch.set_num_threads(threads)
HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(HOME, "models/smollm2"), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                                          dtype=torch.float32)
if method.endswith("+checkpointing"):
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
if method.endswith("+selective"):  # torch.utils.checkpoint's policy API: save what the products return, recompute the rest
    import functools
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts
    products = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}
    policy = lambda ctx, op, *args, **kwargs: CheckpointPolicy.MUST_SAVE if op in products else CheckpointPolicy.PREFER_RECOMPUTE
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={
        "use_reentrant": False, "context_fn": functools.partial(create_selective_checkpoint_contexts, policy)})
if mode == "step" and method.startswith("lora"):
    import peft
    model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-5, weight_decay=0.01) if mode == "step" else None
g = torch.Generator().manual_seed(0)
ids = torch.randint(17, 40000, (B, T), generator=g)
times = []
for step in range(1 + int(os.environ.get("STEPS", "2"))):  # a warm-up, then STEPS timed (median)
    t0 = time.perf_counter()
    if mode == "prefill":
        model.eval()
        with torch.no_grad(): model(input_ids=ids)
    elif mode == "train":
        model.train(); model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
    elif mode == "step":
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step(); opt.zero_grad()
    else:
        model.eval()
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new, do_sample=False)
    if step > 0: times.append(time.perf_counter() - t0)
median = sorted(times)[len(times) // 2]
tokens = B * new if mode == "generate" else B * T
print(json.dumps({"impl": "transformers", "mode": mode, "method": method if mode == "step" else "-", "threads": threads, "batch": B, "tokens": T, "new": new if mode == "generate" else 0,
                  "seconds": round(median, 4), "tokens_per_s": round(tokens / median, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
