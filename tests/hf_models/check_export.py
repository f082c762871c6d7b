#!/usr/bin/env python3
"""Structural check of an exported Hugging Face model directory against its source: the
config keys transformers reads (with architectures and torch_dtype), the index (every tensor
mapped to an existing shard, total_size the sum of the tensors' bytes), and every tensor's
HF name, shape and dtype.

    check_export.py SOURCE_DIR EXPORTED_DIR DTYPE       (DTYPE: F32 or BF16)
"""
import json
import os
import struct
import sys


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h


def tensors(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for f in files:
        for name, t in header(os.path.join(d, f)).items():
            out[name] = (t["dtype"], t["shape"], t["data_offsets"][1] - t["data_offsets"][0], f)
    return out


def main():
    src, dst, dtype = sys.argv[1:]
    problems = []
    cfg = json.load(open(os.path.join(dst, "config.json")))
    src_cfg = json.load(open(os.path.join(src, "config.json")))
    for key in ("architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta",
                "tie_word_embeddings", "hidden_act", "torch_dtype"):
        if key not in cfg:
            problems.append(f"config.json lacks {key}")
    for key in ("architectures", "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings"):
        if key in src_cfg and cfg.get(key) != src_cfg[key]:
            problems.append(f"config.json {key}: {cfg.get(key)} != source {src_cfg[key]}")
    want_dtype = {"F32": "float32", "BF16": "bfloat16"}[dtype]
    if cfg.get("torch_dtype") != want_dtype:
        problems.append(f"torch_dtype {cfg.get('torch_dtype')} != {want_dtype}")
    a, b = tensors(src), tensors(dst)
    if sorted(a) != sorted(b):
        problems.append(f"tensor names differ: {sorted(set(a) ^ set(b))}")
    total = 0
    for name, (dt, shape, nbytes, f) in b.items():
        total += nbytes
        if dt != dtype:
            problems.append(f"{name}: dtype {dt}")
        if name in a and a[name][1] != shape:
            problems.append(f"{name}: shape {shape} != {a[name][1]}")
        if nbytes != (2 if dtype == "BF16" else 4) * max(1, eval("*".join(map(str, shape)) or "1")):
            problems.append(f"{name}: {nbytes} bytes for shape {shape}")
    index = os.path.join(dst, "model.safetensors.index.json")
    if os.path.exists(index):
        idx = json.load(open(index))
        if idx.get("metadata", {}).get("total_size") != total:
            problems.append(f"index total_size {idx.get('metadata')} != {total}")
        for name, f in idx["weight_map"].items():
            if not os.path.exists(os.path.join(dst, f)) or b.get(name, (0, 0, 0, ""))[3] != f:
                problems.append(f"index maps {name} to {f}, which does not hold it")
    for p in problems:
        print("EXPORT:", p)
    print(f"{len(b)} tensors in {len(set(t[3] for t in b.values()))} file(s), {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
