#!/usr/bin/env python3
"""The eager PyTorch peer of grail's benchmarks (bench/run): the same work written as a
competent Python RL loop would write it, on the same weights, so grail-bench can print a
ratio against a baseline measured in the same run.

  eager_peer.py generate --weights W.safetensors --config C.json --prompts P.json
                         --new_tokens N --temperature T --seed S
      A KV-cache generation loop: one batched prefill of the prompts (all the same length),
      then N decode steps, each sampling with softmax + multinomial and recording the
      token's log-prob (an RL rollout needs them). Prints {"seconds", "tokens"}: the
      generation alone, model load excluded.

  eager_peer.py ppo_step --weights W.safetensors --config C.json --batch B --seq_len L
                         --repeats R --seed S
      R PPO policy steps (clipped ratio loss, token-mean, entropy reported without a
      gradient, gradient clip 1, AdamW) on a fixed synthetic batch. Prints {"seconds": [per step], "peak_rss_bytes"}.

  eager_peer.py sgemm
      One-thread sgemm peak (1024^3). Prints {"flops"}.

One intra-op thread unless --threads says otherwise (grail's services run with one).
Reads safetensors with the standard library (header JSON + raw little-endian bytes): no
pickle, no third-party packages beyond torch.
"""

import argparse
import json
import math
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = bytearray(data[base + begin : base + end])
        t = torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]) if end > begin else torch.empty(0)
        out[name] = t.reshape(info["shape"]).clone()
    return out


class Llama(torch.nn.Module):
    """Llama-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU), HF names."""

    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.H = cfg["num_attention_heads"]
        self.KV = cfg["num_key_value_heads"]
        self.D = cfg["hidden_size"] // self.H
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.L = cfg["num_hidden_layers"]
        self.params = torch.nn.ParameterDict(
            {k.replace(".", "__"): torch.nn.Parameter(v) for k, v in weights.items()}
        )
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.D, 2, dtype=torch.float64) / self.D)).float()

    def p(self, name):
        return self.params[name.replace(".", "__")]

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, positions):
        freqs = positions.float().unsqueeze(-1) * self.inv_freq
        emb = torch.cat([freqs, freqs], -1)
        return emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], -1)

    def forward(self, ids, positions, cache=None, past=0):
        """ids [B,T]; cache: list of (k, v) [B,KV,capacity,D] written at [past, past+T)."""
        B, T = ids.shape
        h = F.embedding(ids, self.p("model.embed_tokens.weight"))
        cos, sin = self.rope(positions)
        S = past + T
        causal = torch.ones(T, S, dtype=torch.bool).tril(past)
        for i in range(self.L):
            pre = f"model.layers.{i}."
            x = self.norm(h, self.p(pre + "input_layernorm.weight"))
            q = F.linear(x, self.p(pre + "self_attn.q_proj.weight")).view(B, T, self.H, self.D).transpose(1, 2)
            k = F.linear(x, self.p(pre + "self_attn.k_proj.weight")).view(B, T, self.KV, self.D).transpose(1, 2)
            v = F.linear(x, self.p(pre + "self_attn.v_proj.weight")).view(B, T, self.KV, self.D).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            if cache is not None:
                ck, cv = cache[i]
                ck[:, :, past:S] = k
                cv[:, :, past:S] = v
                k, v = ck[:, :, :S], cv[:, :, :S]
            if self.KV != self.H:  # HF's repeat_kv
                k = k.repeat_interleave(self.H // self.KV, 1)
                v = v.repeat_interleave(self.H // self.KV, 1)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=causal) if hasattr(
                F, "scaled_dot_product_attention") else self.attend(q, k, v, causal)
            h = h + F.linear(att.transpose(1, 2).reshape(B, T, self.H * self.D), self.p(pre + "self_attn.o_proj.weight"))
            x = self.norm(h, self.p(pre + "post_attention_layernorm.weight"))
            g = F.linear(x, self.p(pre + "mlp.gate_proj.weight"))
            u = F.linear(x, self.p(pre + "mlp.up_proj.weight"))
            h = h + F.linear(F.silu(g) * u, self.p(pre + "mlp.down_proj.weight"))
        h = self.norm(h, self.p("model.norm.weight"))
        head = self.p("lm_head.weight") if "lm_head__weight" in self.params else self.p("model.embed_tokens.weight")
        return F.linear(h, head)

    def attend(self, q, k, v, causal):
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.D)
        scores = scores.masked_fill(~causal, float("-inf"))
        return torch.softmax(scores, -1) @ v


def generate(args):
    cfg = json.load(open(args.config))
    model = Llama(cfg, load_safetensors(args.weights)).eval()
    prompts = torch.tensor(json.load(open(args.prompts)), dtype=torch.long)
    B, P = prompts.shape
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        t0 = time.perf_counter()
        capacity = P + args.new_tokens
        cache = [
            (torch.zeros(B, model.KV, capacity, model.D), torch.zeros(B, model.KV, capacity, model.D))
            for _ in range(model.L)
        ]
        positions = torch.arange(P).expand(B, P)
        logits = model(prompts, positions, cache, 0)[:, -1]
        tokens, log_probs = [], []
        for step in range(args.new_tokens):
            scaled = logits / args.temperature
            probs = torch.softmax(scaled, -1)
            tok = torch.multinomial(probs, 1, generator=gen)
            log_probs.append(torch.log_softmax(scaled, -1).gather(-1, tok))
            tokens.append(tok)
            if step + 1 == args.new_tokens:
                break
            pos = torch.full((B, 1), P + step, dtype=torch.long)
            logits = model(tok, pos, cache, P + step)[:, -1]
        out = torch.cat(tokens, 1)
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "tokens": int(out.numel())}))


def ppo_step(args):
    cfg = json.load(open(args.config))
    model = Llama(cfg, load_safetensors(args.weights)).train()
    g = torch.Generator().manual_seed(args.seed)
    B, L, V = args.batch, args.seq_len, cfg["vocab_size"]
    ids = torch.randint(0, V, (B, L), generator=g)
    mask = torch.ones(B, L - 1)
    mask[:, : args.prompt_len - 1] = 0
    old_lp = None
    advantages = torch.randn(B, 1, generator=g).expand(B, L - 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    positions = torch.arange(L).expand(B, L)
    seconds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        logits = model(ids, positions)[:, :-1]
        logp_all = torch.log_softmax(logits, -1)
        lp = logp_all.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():  # reported, not trained on (no entropy bonus)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
        if old_lp is None:
            old_lp = lp.detach() - 0.01
        ratio = torch.exp(lp - old_lp)
        loss_tok = -torch.min(ratio * advantages, ratio.clamp(0.8, 1.28) * advantages)
        loss = (loss_tok * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        _ = float((entropy.detach() * mask).sum() / mask.sum())
        seconds.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak}))


def sgemm(args):
    """One-thread sgemm peak: the best of 5 products of two 1024 x 1024 float32 matrices."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a.mm(b)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"flops": 2 * 1024**3 / best}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["generate", "ppo_step", "sgemm"])
    ap.add_argument("--weights")
    ap.add_argument("--config")
    ap.add_argument("--prompts")
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq_len", type=int, default=128)
    ap.add_argument("--prompt_len", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    {"generate": generate, "ppo_step": ppo_step, "sgemm": sgemm}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
