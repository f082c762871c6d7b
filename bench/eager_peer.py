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

  eager_peer.py grpo --seed S [--target 0.75] [--weights W.safetensors]
      The demo run (deploy/demo/arithmetic.yaml) in one process: supervised warm-up to 0.5
      held-out accuracy (evaluated every 10 steps, and every step from 0.25 on, as grail's
      coordinator does), then GRPO with dynamic sampling until held-out accuracy (every 10
      steps) reaches --target. Prints {"seconds" (null if never), "steps", "accuracy",
      "warmup_seconds", "warmup_accuracy", "step_seconds_median"}: the last is the median RL
      step's sampling and update, evaluations excluded.

One intra-op thread unless --threads says otherwise (grail's services run with one).
Reads safetensors with the standard library (header JSON + raw little-endian bytes): no
pickle, no third-party packages beyond torch.
"""

import argparse
import json
import math
import random
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

    def forward(self, ids, positions, cache=None, past=0, key_valid=None):
        """ids [B,T]; cache: list of (k, v) [B,KV,capacity,D] written at [past, past+T);
        key_valid [B, past+T] bool: False on padding keys (left padding)."""
        B, T = ids.shape
        h = F.embedding(ids, self.p("model.embed_tokens.weight"))
        cos, sin = self.rope(positions)
        S = past + T
        causal = torch.ones(T, S, dtype=torch.bool).tril(past)
        if key_valid is not None:
            causal = causal.unsqueeze(0).unsqueeze(0) & key_valid[:, None, None, :S]
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
        scores = scores.masked_fill(~causal, -1e30)
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


def ppo_update(model, opt, lp, old_lp, advantages, mask):
    """One clipped-ratio step (clip 0.2 / 0.28, token-mean over `mask`, gradient clip 1)."""
    ratio = torch.exp(lp - old_lp)
    loss_tok = -torch.min(ratio * advantages, ratio.clamp(0.8, 1.28) * advantages)
    loss = (loss_tok * mask).sum() / mask.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


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
        ppo_update(model, opt, lp, old_lp, advantages, mask)
        _ = float((entropy.detach() * mask).sum() / mask.sum())
        seconds.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak}))


# The demo run (deploy/demo/arithmetic.yaml) as one Python process: 2-digit addition, the
# character tokenizer's ids (3 + ord(c) - 32; BOS 1, EOS 2), the same model and
# hyper-parameters. Supervised warm-up until greedy held-out accuracy reaches 0.5 (checked
# every 10 steps), then GRPO with DAPO dynamic sampling; held-out accuracy every 10 RL steps.
DEMO = dict(vocab_size=98, hidden_size=160, intermediate_size=448, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2)
BOS, EOS, PAD = 1, 2, 0


def encode(text):
    return [3 + ord(c) - 32 for c in text]


def decode(ids):
    out = []
    for t in ids:
        if t == EOS:
            break
        if t >= 3:
            out.append(chr(t - 3 + 32))
    return "".join(out)


def init_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    w = {"model.embed_tokens.weight": torch.randn(V, C, generator=g) * 0.02,
         "model.norm.weight": torch.ones(C), "lm_head.weight": torch.randn(V, C, generator=g) * 0.02}
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        shapes = {"self_attn.q_proj.weight": (H * D, C), "self_attn.k_proj.weight": (KV * D, C),
                  "self_attn.v_proj.weight": (KV * D, C), "self_attn.o_proj.weight": (C, H * D),
                  "mlp.gate_proj.weight": (I, C), "mlp.up_proj.weight": (I, C), "mlp.down_proj.weight": (C, I)}
        for name, shape in shapes.items():
            w[pre + name] = torch.randn(*shape, generator=g) * 0.02
        w[pre + "input_layernorm.weight"] = torch.ones(C)
        w[pre + "post_attention_layernorm.weight"] = torch.ones(C)
    return w


def left_pad(rows):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    valid = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        valid[i, width - len(r):] = True
    return ids, valid


@torch.no_grad()
def sample(model, prompts, max_new, greedy, gen):
    """KV-cache generation of left-padded prompts; returns (tokens, log_probs) per row."""
    ids, valid = left_pad(prompts)
    B, P = ids.shape
    cache = [(torch.zeros(B, model.KV, P + max_new, model.D), torch.zeros(B, model.KV, P + max_new, model.D))
             for _ in range(model.L)]
    key_valid = torch.cat([valid, torch.ones(B, max_new, dtype=torch.bool)], 1)
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)
    logits = model(ids, positions, cache, 0, key_valid)[:, -1]
    next_pos = positions[:, -1] + 1
    done = torch.zeros(B, dtype=torch.bool)
    tokens, lps = [], []
    for step in range(max_new):
        logp = torch.log_softmax(logits, -1)
        tok = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=gen).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, PAD), tok)
        tokens.append(tok)
        lps.append(logp.gather(-1, tok.unsqueeze(-1)).squeeze(-1))
        done = done | (tok == EOS)
        if bool(done.all()) or step + 1 == max_new:
            break
        logits = model(tok.unsqueeze(1), (next_pos + step).unsqueeze(1), cache, P + step, key_valid)[:, -1]
    tokens, lps = torch.stack(tokens, 1), torch.stack(lps, 1)
    out = []
    for i in range(B):
        t = tokens[i].tolist()
        n = t.index(EOS) + 1 if EOS in t else len(t)
        out.append((t[:n], lps[i, :n].tolist()))
    return out


def heldout_accuracy(model, heldout):
    prompts = [[BOS] + encode(f"{a}+{b}=") for a, b in heldout]
    res = sample(model, prompts, 5, True, None)
    return sum(decode(t) == str(a + b) for (t, _), (a, b) in zip(res, heldout)) / len(heldout)


def sequence_log_probs(model, rows):
    """Right-padded rows [prompt + response]; per-token log-probs of ids[:, 1:]."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    positions = torch.arange(width).expand(len(rows), width)
    logits = model(ids, positions)[:, :-1]
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1), ids


def grpo(args):
    cfg = DEMO
    rng = random.Random(args.seed)
    problems = [(a, b) for a in range(100) for b in range(100)]
    rng.shuffle(problems)
    heldout, train = problems[:500], problems[500:]
    # grail's initial weights for the same seed when given (--weights), else the same
    # initialisation drawn here.
    weights = load_safetensors(args.weights) if args.weights else init_weights(cfg, args.seed)
    model = Llama(cfg, weights)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    # Supervised warm-up: answer + EOS after BOS + prompt, 64 rows a step, lr 1e-3.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    sft_steps, acc, close = 0, 0.0, False
    while sft_steps < 1500:
        batch = [train[rng.randrange(len(train))] for _ in range(64)]
        rows, masks = [], []
        for a, b in batch:
            p = [BOS] + encode(f"{a}+{b}=")
            r = encode(str(a + b)) + [EOS]
            rows.append(p + r)
            masks.append([0] * (len(p) - 1) + [1] * len(r))
        lp, ids = sequence_log_probs(model, rows)
        mask = torch.zeros_like(lp)
        for i, m in enumerate(masks):
            mask[i, : len(m)] = torch.tensor(m, dtype=torch.float)
        loss = -(lp * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sft_steps += 1
        # The demo's warm-up rule (trainer.sft_eval_every 10, sft_target_accuracy 0.5, as
        # grail's coordinator applies it): evaluate every 10 steps, and every step once an
        # evaluation has reached half the target, so the warm-up stops within a step of it.
        if sft_steps % 10 == 0 or close:
            acc = heldout_accuracy(model, heldout)
            if acc >= 0.5:
                break
            close = acc >= 0.25
    warmup_seconds, warmup_accuracy = time.perf_counter() - t0, acc
    print(f"eager_peer grpo: warm-up {sft_steps} steps to {acc:.3f} in {warmup_seconds:.1f} s", file=sys.stderr)
    # GRPO: 64 prompts x 16 samples, temperature 1, 5 new tokens, groups with equal rewards
    # dropped and refilled from new prompts (at most 3 sampling rounds), clip 0.2/0.28,
    # token-mean loss, lr 4e-4 with 10 warm-up steps then cosine to 0.1 over 140 steps,
    # gradient clip 1.
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.0)
    total, warm, reached, step = 140, 10, None, 0
    step_seconds = []  # each RL step's sampling and update, the held-out evaluations excluded
    for step in range(1, total + 1):
        t_step = time.perf_counter()
        lr = 4e-4 * min(1.0, step / warm)
        if step > warm:
            lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
        for g in opt.param_groups:
            g["lr"] = lr
        groups = []
        for _ in range(3):
            need = 64 - len(groups)
            batch = [train[rng.randrange(len(train))] for _ in range(need)]
            prompts = [[BOS] + encode(f"{a}+{b}=") for a, b in batch for _ in range(16)]
            res = sample(model, prompts, 5, False, gen)
            for j, (a, b) in enumerate(batch):
                g = res[j * 16 : (j + 1) * 16]
                rewards = [1.0 if decode(t) == str(a + b) else 0.0 for t, _ in g]
                if max(rewards) != min(rewards):
                    groups.append((prompts[j * 16], g, rewards))
            if len(groups) >= 64:
                break
        rows, olds, advs = [], [], []
        for prompt, g, rewards in groups[:64]:
            r = torch.tensor(rewards)
            adv = ((r - r.mean()) / (r.std() + 1e-6)).tolist()
            for (t, lp), a in zip(g, adv):
                rows.append(prompt + t)
                olds.append((len(prompt), lp))
                advs.append(a)
        if rows:
            lp, _ = sequence_log_probs(model, rows)
            mask, old, adv = torch.zeros_like(lp), torch.zeros_like(lp), torch.zeros_like(lp)
            for i, (plen, o) in enumerate(olds):
                mask[i, plen - 1 : plen - 1 + len(o)] = 1
                old[i, plen - 1 : plen - 1 + len(o)] = torch.tensor(o)
                adv[i] = advs[i]
            ppo_update(model, opt, lp, old, adv, mask)
        step_seconds.append(time.perf_counter() - t_step)
        if step % 10 == 0:
            acc = heldout_accuracy(model, heldout)
            print(f"eager_peer grpo: step {step} held-out {acc:.3f} at {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            if acc >= args.target:
                reached = time.perf_counter() - t0
                break
    print(json.dumps({"seconds": reached, "steps": step, "sft_steps": sft_steps, "accuracy": acc,
                      "warmup_seconds": warmup_seconds, "warmup_accuracy": warmup_accuracy,
                      "step_seconds_median": sorted(step_seconds)[len(step_seconds) // 2]}))


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
    ap.add_argument("mode", choices=["generate", "ppo_step", "sgemm", "grpo"])
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
    ap.add_argument("--target", type=float, default=0.75)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    {"generate": generate, "ppo_step": ppo_step, "sgemm": sgemm, "grpo": grpo}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
