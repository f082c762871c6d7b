#!/usr/bin/env python3
"""Log-probs of token sequences under a Hugging Face model directory, read and run by plain
PyTorch (make_reference.py's forward pass, independent of grail): config.json, then
model.safetensors or the shards model.safetensors.index.json names (F32, BF16 or F16).

    hf_logprobs.py HF_DIR < in.jsonl > out.jsonl     (Debian's python3 with python3-torch)

Each input line {"ids": [...]} gives {"log_probs": [...]}: log p(ids[t+1] | ids[:t+1]) for
every t, at temperature 1.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference import forward  # noqa: E402

DTYPES = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype, _ = DTYPES[t["dtype"]]
        b, e = t["data_offsets"]
        raw = bytearray(data[b:e])
        out[name] = torch.frombuffer(raw, dtype=dtype).reshape(t["shape"]).float()
    return out


def main():
    d = sys.argv[1]
    cfg = json.load(open(os.path.join(d, "config.json")))
    model_type = {"Qwen3ForCausalLM": "qwen3", "Qwen2ForCausalLM": "qwen2"}.get(cfg["architectures"][0], "llama")
    cfg.setdefault("model_type", model_type)
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    p = {}
    for f in files:
        p.update(read_safetensors(os.path.join(d, f)))
    with torch.no_grad():
        for line in sys.stdin:
            if not line.strip():
                continue
            ids = torch.tensor([json.loads(line)["ids"]], dtype=torch.int64)
            lp = torch.log_softmax(forward(cfg, p, ids).double(), dim=-1)[0]
            picked = lp[:-1].gather(1, ids[0, 1:, None])[:, 0]
            print(json.dumps({"log_probs": picked.tolist()}), flush=True)


if __name__ == "__main__":
    main()
