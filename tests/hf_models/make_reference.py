#!/usr/bin/env python3
"""Independent reference for loading Hugging Face checkpoints: writes small seeded models in
the layouts Hugging Face uses (config.json as transformers writes it, safetensors with HF
tensor names, optionally bf16 and sharded with model.safetensors.index.json) and the logits
a plain PyTorch implementation of each architecture's forward pass gives for fixed token ids.

    make_reference.py OUT_DIR        (Debian's python3 with python3-torch)

Writes OUT_DIR/<case>/ (an HF model directory) and OUT_DIR/<case>/expected.json
({"ids": [[...]], "logits": [[[...]]]}).
"""
import json
import math
import os
import struct
import sys

import torch

CASES = {
    # name: (config overrides, dtype, shards)
    "llama": ({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "tie_word_embeddings": False}, "F32", 1),
    "llama3_rope_tied_bf16": ({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "tie_word_embeddings": True,
                               "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                               "rope_theta": 500000.0}, "BF16", 1),
    "qwen2_sharded": ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "tie_word_embeddings": False,
                       "use_sliding_window": False, "sliding_window": 4096}, "F32", 3),
    "qwen3_head_dim_f16": ({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "tie_word_embeddings": True,
                            "head_dim": 16, "attention_bias": False, "rope_theta": 1000000.0}, "F16", 2),
}

BASE = {"vocab_size": 61, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "hidden_act": "silu", "torch_dtype": "float32", "transformers_version": "4.51.0",
        "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02}

TORCH_DTYPE = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def params(cfg, gen):
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim", h // heads)
    qwen2, qwen3 = cfg["model_type"] == "qwen2", cfg["model_type"] == "qwen3"
    p = {"model.embed_tokens.weight": torch.randn(cfg["vocab_size"], h, generator=gen) * 0.5,
         "model.norm.weight": 1 + 0.1 * torch.randn(h, generator=gen)}
    for i in range(layers):
        pre = f"model.layers.{i}."
        p[pre + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(h, generator=gen)
        p[pre + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(h, generator=gen)
        for name, shape in (("q_proj", (heads * d, h)), ("k_proj", (kv * d, h)), ("v_proj", (kv * d, h)),
                            ("o_proj", (h, heads * d))):
            p[pre + f"self_attn.{name}.weight"] = torch.randn(*shape, generator=gen) * 0.2
        if qwen2:
            for name, n in (("q_proj", heads * d), ("k_proj", kv * d), ("v_proj", kv * d)):
                p[pre + f"self_attn.{name}.bias"] = torch.randn(n, generator=gen) * 0.1
        if qwen3:
            p[pre + "self_attn.q_norm.weight"] = 1 + 0.1 * torch.randn(d, generator=gen)
            p[pre + "self_attn.k_norm.weight"] = 1 + 0.1 * torch.randn(d, generator=gen)
        for name, shape in (("gate_proj", (inter, h)), ("up_proj", (inter, h)), ("down_proj", (h, inter))):
            p[pre + f"mlp.{name}.weight"] = torch.randn(*shape, generator=gen) * 0.2
    if not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = torch.randn(cfg["vocab_size"], h, generator=gen) * 0.2
    return p


def inv_freq(cfg, d):
    base = cfg["rope_theta"]
    f = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":  # transformers' _compute_llama3_parameters
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / f
        f_llama = torch.where(wavelen > low_wavelen, f / factor, f)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * f_llama / factor + smooth * f_llama
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        f = torch.where(medium, smoothed, f_llama)
    return f


def rms(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(cfg, p, ids):
    h, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim", h // heads)
    eps = cfg["rms_norm_eps"]
    B, T = ids.shape
    x = p["model.embed_tokens.weight"][ids]
    pos = torch.arange(T).float()
    freqs = pos[:, None] * inv_freq(cfg, d)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    mask = torch.full((T, T), float("-inf")).triu(1)
    lin = lambda t, name: t @ p[name + ".weight"].T + (p[name + ".bias"] if name + ".bias" in p else 0)
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        r = x
        y = rms(x, p[pre + "input_layernorm.weight"], eps)
        q = lin(y, pre + "self_attn.q_proj").view(B, T, heads, d)
        k = lin(y, pre + "self_attn.k_proj").view(B, T, kv, d)
        v = lin(y, pre + "self_attn.v_proj").view(B, T, kv, d).transpose(1, 2)
        if cfg["model_type"] == "qwen3":
            q = rms(q, p[pre + "self_attn.q_norm.weight"], eps)
            k = rms(k, p[pre + "self_attn.k_norm.weight"], eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv, dim=1)
        v = v.repeat_interleave(heads // kv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1) @ v
        x = r + lin(att.transpose(1, 2).reshape(B, T, heads * d), pre + "self_attn.o_proj")
        r = x
        y = rms(x, p[pre + "post_attention_layernorm.weight"], eps)
        x = r + lin(torch.nn.functional.silu(lin(y, pre + "mlp.gate_proj")) * lin(y, pre + "mlp.up_proj"),
                    pre + "mlp.down_proj")
    x = rms(x, p["model.norm.weight"], eps)
    head = p["lm_head.weight"] if "lm_head.weight" in p else p["model.embed_tokens.weight"]
    return x @ head.T


def write_safetensors(path, tensors, dtype):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].to(TORCH_DTYPE[dtype]).contiguous()
        raw = (t.view(torch.int16) if dtype != "F32" else t).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def main():
    out = sys.argv[1]
    for k, (name, (overrides, dtype, shards)) in enumerate(sorted(CASES.items())):
        cfg = dict(BASE, **overrides)
        gen = torch.Generator().manual_seed(100 + k)
        p = params(cfg, gen)
        # The weights as stored (bf16/f16 rounding included) are the weights of the reference.
        p = {n: t.to(TORCH_DTYPE[dtype]).float() for n, t in p.items()}
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        cfg_written = dict(cfg, torch_dtype={"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype])
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg_written, f, indent=2)
        names = sorted(p)
        if shards == 1:
            write_safetensors(os.path.join(d, "model.safetensors"), p, dtype)
        else:
            weight_map = {}
            for s in range(shards):
                part = {n: p[n] for n in names[s::shards]}
                fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
                write_safetensors(os.path.join(d, fname), part, dtype)
                weight_map.update({n: fname for n in part})
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)
        ids = torch.tensor([[1, 5, 9, 33, 2, 60, 17, 4, 8, 8, 3, 21]])
        with torch.no_grad():
            logits = forward(cfg, p, ids)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump({"ids": ids.tolist(), "logits": logits.tolist()}, f)
    print("wrote", ", ".join(sorted(CASES)))


if __name__ == "__main__":
    main()
