#!/usr/bin/env python3
"""Golden values for Bonsai's GGUF reader and dequantisation, from the `gguf` package (llama.cpp's own Python).

Run with the reference environment plus gguf 0.19.0 (pip install gguf==0.19.0 accelerate==1.15.0), after
`bonsai fetch smollm2`:
    ~/.cache/bonsai-ref/venv/bin/python scripts/make-golden-gguf.py
Writes Tests/BonsaiCheckpointTests/Fixtures/
  gguf-dequant-golden.json  per type: seeded random blocks (finite fp16 scales) and gguf.quants.dequantize's fp32
                            bit patterns; per real SmolLM2 tensor: a polynomial hash of all its fp32 bit patterns
  tiny.gguf                 a small v3 file written by gguf.GGUFWriter: every metadata value type, an alignment of
                            64, and one tensor of each dequantisable type (the random blocks above)
  tiny-gguf.json            what that file holds (metadata, tensor infos), for the reader's test
"""
import hashlib, json, os, sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
OUT = os.path.join(ROOT, "Tests/BonsaiCheckpointTests/Fixtures")
P = np.uint64(1099511628211)

def poly_hash(values: np.ndarray) -> str:
    """sum_i (2 bits[i] + 1) P^(i+1) mod 2^64 over the fp32 bit patterns (Bonsai's test computes the same)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        pows = np.cumprod(np.full(bits.shape, P, dtype=np.uint64), dtype=np.uint64)
        return "%016x" % int(np.sum(bits * pows, dtype=np.uint64))

# (type, fp16 field byte offsets inside a block) -- scales must be finite halves to compare bit patterns
TYPES = [(T.F32, []), (T.F16, []), (T.BF16, []), (T.Q8_0, [0]), (T.Q4_0, [0]), (T.Q4_1, [0, 2]), (T.Q5_0, [0]),
         (T.Q5_1, [0, 2]), (T.Q4_K, [0, 2]), (T.Q5_K, [0, 2]), (T.Q6_K, [208])]

def random_blocks(qtype, halves, rng, elements):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = elements // block
    if qtype == T.F32: return rng.standard_normal(elements).astype(np.float32).view(np.uint8)
    if qtype == T.F16: return rng.standard_normal(elements).astype(np.float16).view(np.uint8)
    if qtype == T.BF16: return (rng.standard_normal(elements).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    for off in halves:
        raw[:, off:off + 2] = (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint8).reshape(n, 2)
    return raw.reshape(-1)

def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2026)
    generated, blobs = [], []
    for qtype, halves in TYPES:
        elements = 512  # two rows of 256: a whole number of blocks for every type
        raw = random_blocks(qtype, halves, rng, elements)
        values = dequantize(raw, qtype).reshape(-1)
        assert np.all(np.isfinite(values)), qtype
        generated.append({"type": qtype.name, "type_id": int(qtype), "bytes": raw.tobytes().hex(),
                          "bits": values.astype(np.float32).view(np.uint32).tolist()})
        blobs.append((qtype, raw, values))

    real = []
    path = os.path.join(HOME, "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    reader = gguf.GGUFReader(path)
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.17.attn_k.weight", "blk.29.ffn_down.weight",
                 "blk.5.attn_norm.weight", "output_norm.weight"]:
        t = next(t for t in reader.tensors if t.name == name)
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        real.append({"name": name, "type": t.tensor_type.name, "shape": list(values.shape), "hash": poly_hash(values),
                     "first": values.reshape(-1)[:8].view(np.uint32).tolist()})
    with open(os.path.join(OUT, "gguf-dequant-golden.json"), "w") as f:
        json.dump({"generated": generated, "real": real}, f, indent=1)

    # a small file holding every metadata value type and one tensor per type
    tiny = os.path.join(OUT, "tiny.gguf")
    w = gguf.GGUFWriter(tiny, "llama")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200); w.add_int8("test.i8", -100); w.add_uint16("test.u16", 60000); w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000); w.add_int32("test.i32", -2000000000); w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool", True); w.add_string("test.string", "héllo wörld ✓"); w.add_uint64("test.u64", 2 ** 63 + 5)
    w.add_int64("test.i64", -(2 ** 62)); w.add_float64("test.f64", 1e-300)
    w.add_array("test.strings", ["a", "", "ĠĊ"]); w.add_array("test.ints", [1, -2, 3])
    for qtype, raw, values in blobs:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        w.add_tensor("t." + qtype.name.lower(), raw.reshape(2, -1), raw_dtype=qtype)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    r = gguf.GGUFReader(tiny)
    meta = {}
    for field in r.fields.values():
        if field.name.startswith("GGUF."): continue
        meta[field.name] = field.contents()
    tensors = [{"name": t.name, "type_id": int(t.tensor_type), "dims": [int(d) for d in t.shape], "offset": int(t.data_offset),
                "bytes": int(t.n_bytes)} for t in r.tensors]
    with open(os.path.join(OUT, "tiny-gguf.json"), "w") as f:
        json.dump({"metadata": {k: v for k, v in meta.items() if k not in ("test.u64", "test.f64")}, "tensors": tensors,
                   "data_offset": int(r.data_offset), "alignment": int(r.alignment)}, f, indent=1)
    print("wrote", OUT, "sha256(tiny.gguf) =", hashlib.sha256(open(tiny, "rb").read()).hexdigest())

main()
