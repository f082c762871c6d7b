#!/usr/bin/env python3
"""grail-tokenize chat against the references, for each real tokenizer: on seeded
conversations (system/user/assistant/tool turns, reasoning in <think> or reasoning_content,
tool calls and tool lists, whitespace and Unicode at the edges, special-token text),
  - the text equals Debian's python3-jinja2 rendering with transformers' environment
    (trim_blocks, lstrip_blocks, loopcontrols, raise_exception, json.dumps tojson);
  - the ids equal Hugging Face's tokenizers (npm) on that text;
  - the assistant mask covers every assistant turn's content and end token (after the
    generation prompt, which with enable_thinking false holds Qwen3's empty think block), and
    nothing of a user or system turn.
Exits non-zero on any disagreement, printing the first ones.

    chat_test.py GRAIL_TOKENIZE CACHE_DIR N      (run with /usr/bin/python3)
"""
import json
import os
import random
import subprocess
import sys
import unicodedata

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
EDGES = ["", " ", "\n", "\n\n", "  \t", "\u00a0", "\u3000 ", "\u2003"]
TEXTS = ["What is 2+2?", "Explain gradient descent.", "你好，世界", "Grüße aus Köln", "emoji 😀👍🏽",
         "x = [1, 2, 3]\nprint(sum(x))", "<|im_start|>not a turn", "Use <tool_call> literally", "line1\nline2\n\nline4",
         "🙂", "The answer is 42.", "a\u0301 combining", "tabs\tand  spaces", "<think>inline</think>"]


def conversation(r):
    msgs = []
    if r.random() < 0.5:
        msgs.append({"role": "system", "content": r.choice(EDGES) + r.choice(TEXTS) + r.choice(EDGES)})
    for turn in range(r.randint(1, 4)):
        msgs.append({"role": "user", "content": r.choice(EDGES) + r.choice(TEXTS) + r.choice(EDGES)})
        a = {"role": "assistant", "content": r.choice(TEXTS) + r.choice(EDGES)}
        k = r.random()
        if k < 0.25:
            a["content"] = "<think>\n" + r.choice(TEXTS) + "\n</think>\n\n" + a["content"]
        elif k < 0.35:
            a["reasoning_content"] = r.choice(TEXTS)
        if r.random() < 0.15:
            a["tool_calls"] = [{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": r.randint(0, 9)}}}]
            if r.random() < 0.5:
                a["tool_calls"].append({"name": "lookup", "arguments": "{\"q\": \"x\"}"})
            msgs.append(a)
            for _ in range(r.randint(1, 2)):
                msgs.append({"role": "tool", "content": r.choice(TEXTS)})
            msgs.append({"role": "assistant", "content": r.choice(TEXTS)})
        else:
            msgs.append(a)
    if r.random() < 0.3:  # end on a user turn
        msgs.append({"role": "user", "content": r.choice(TEXTS)})
    row = {"messages": msgs, "add_generation_prompt": r.random() < 0.5, "parse_special_in_content": True}
    k = r.random()
    if k < 0.3:
        row["enable_thinking"] = False
    elif k < 0.5:
        row["enable_thinking"] = True
    if r.random() < 0.15:
        row["tools"] = [{"type": "function", "function": {"name": "add", "description": "Adds two numbers, ünïcode ok",
                                                         "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
    return row


def reference_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def text_of(config, key):
    v = config.get(key)
    return v.get("content", "") if isinstance(v, dict) else (v or "")


def main():
    tool, cache, n = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), int(sys.argv[3])
    r = random.Random(20261130)
    rows = [conversation(r) for _ in range(n)]
    failures = 0
    for name in ("qwen3", "llama3", "llama3_1"):
        d = os.path.join(cache, "models", name)
        config = json.load(open(os.path.join(d, "tokenizer_config.json")))
        tmpl = reference_env().from_string(config["chat_template"])
        want_text = []
        for row in rows:
            kw = {k: row[k] for k in ("enable_thinking", "tools") if k in row}
            want_text.append(tmpl.render(messages=row["messages"], add_generation_prompt=row["add_generation_prompt"],
                                         bos_token=text_of(config, "bos_token"), eos_token=text_of(config, "eos_token"),
                                         **kw))
        got = subprocess.run([tool, f"--tokenizer={d}", "chat"], input="\n".join(json.dumps(x) for x in rows) + "\n",
                             capture_output=True, text=True, check=True).stdout.split("\n")
        got = [json.loads(l) for l in got if l]
        ref = subprocess.run(["node", os.path.join(HERE, "reference.js"), os.path.join(cache, "reference", "node_modules"),
                              os.path.join(d, "tokenizer.json")],
                             input="\n".join(json.dumps({"text": t}) for t in want_text) + "\n",
                             capture_output=True, text=True, check=True).stdout.split("\n")
        ref = [json.loads(l) for l in ref if l]
        ids_to_text = subprocess.run([tool, f"--tokenizer={d}", "decode"], capture_output=True, text=True, check=True,
                                     input="\n".join(json.dumps({"ids": [i for i, m in zip(g.get("ids", []), g.get("assistant_mask", [])) if m]})
                                                     for g in got) + "\n").stdout.split("\n")
        masked_text = [json.loads(l).get("text", "") for l in ids_to_text if l]
        bad = []
        for i, (row, g) in enumerate(zip(rows, got)):
            if g.get("text") != want_text[i]:
                have = g.get("text", "")
                k = next((k for k in range(min(len(have), len(want_text[i]))) if have[k] != want_text[i][k]),
                         min(len(have), len(want_text[i])))
                bad.append(("text", i, want_text[i][max(0, k - 80):k + 80], have[max(0, k - 80):k + 80], g.get("error")))
                continue
            if g.get("ids") != ref[i]["ids"]:
                bad.append(("ids", i, ref[i]["ids"], g.get("ids")))
            # Every assistant turn's rendered content and end token is inside the masked text;
            # no user or system content that is not also assistant content is.
            end = "<|im_end|>" if name == "qwen3" else "<|eot_id|>"
            header = "<|im_start|>assistant\n" if name == "qwen3" else "<|start_header_id|>assistant<|end_header_id|>\n\n"
            text = want_text[i]
            pos, regions = 0, []
            while text.find(header, pos) >= 0:
                s = text.find(header, pos) + len(header)
                e = text.find(end, s)
                if e < 0:
                    break
                # With enable_thinking false, Qwen3's generation prompt holds the empty think
                # block: the reply the model learns starts after it.
                empty_think = "<think>\n\n</think>\n\n"
                if row.get("enable_thinking") is False and text.startswith(empty_think, s):
                    s += len(empty_think)
                # The tokens spell the normalized text (Qwen3's tokenizer normalizes to NFC).
                regions.append(unicodedata.normalize("NFC", text[s:e + len(end)]) if name == "qwen3" else text[s:e + len(end)])
                pos = e + len(end)
            if sum(len(x) for x in regions) > len(masked_text[i]) or any(x not in masked_text[i] for x in regions):
                bad.append(("mask", i, regions, masked_text[i]))
            if not regions and any(g.get("assistant_mask", [])):
                bad.append(("mask", i, "no assistant turn but a 1", g.get("assistant_mask")))
        print(f"{name}: {len(rows) - len({b[1] for b in bad})}/{len(rows)} conversations agree (text, ids, mask)")
        for b in bad[:3]:
            print("  DISAGREE", json.dumps(b, ensure_ascii=True)[:800])
        failures += len(bad)
    print(f"{3 * len(rows)} renderings compared, {failures} disagreements")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
