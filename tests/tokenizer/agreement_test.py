#!/usr/bin/env python3
"""grail-tokenize against the reference library on a seeded corpus, for each real tokenizer:
every encoding (without and, for a fifth of the strings, with add_special_tokens) must give
the reference's ids, and decoding the reference's ids (with and without special tokens) its
text, after transformers' clean_up_tokenization_spaces where tokenizer_config.json asks;
streamed decoding gives one piece per token, the pieces add up to the text, and no piece
shows a character split across tokens. Byte-level BPE (Qwen3, Llama-3, Llama-3.1) and
SentencePiece-style BPE with byte fallback (Llama-2).
Exits non-zero on any disagreement, printing the first ones.

    agreement_test.py GRAIL_TOKENIZE CACHE_DIR N
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cleanup(text):  # transformers' clean_up_tokenization
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


def run(cmd, lines):
    r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, encoding="utf-8",
                       errors="surrogatepass")
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return [json.loads(l) for l in r.stdout.split("\n") if l]


def main():
    tool, cache, n = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), int(sys.argv[3])
    corpus = subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), str(n), "20261130"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    texts = [json.loads(l) for l in corpus]
    rows = [{"text": t, "add_special_tokens": i % 5 == 0} for i, t in enumerate(texts)]
    in_lines = [json.dumps(r) for r in rows]
    failures = 0
    for name in ("qwen3", "llama3", "llama3_1", "llama2"):
        d = os.path.join(cache, "models", name)
        if not os.path.exists(os.path.join(d, "tokenizer.json")):
            sys.exit(f"missing {d}/tokenizer.json: run `make deps` (tools/fetch_tokenizers.sh)")
        config = json.load(open(os.path.join(d, "tokenizer_config.json")))
        ref = run(["node", os.path.join(HERE, "reference.js"), os.path.join(cache, "reference", "node_modules"),
                   os.path.join(d, "tokenizer.json")], in_lines)
        t0 = time.time()
        got = run([tool, f"--tokenizer={d}", "encode"], in_lines)
        seconds = time.time() - t0
        dec_in = [json.dumps({"ids": r["ids"], "skip_special_tokens": s, "stream": s}) for r in ref for s in (False, True)]
        dec = run([tool, f"--tokenizer={d}", "decode"], dec_in)
        bad = []
        for i, (r, g) in enumerate(zip(ref, got)):
            if g.get("ids") != r["ids"]:
                bad.append(("encode", i, rows[i], r["ids"], g))
            for k, key in enumerate(("decoded", "decoded_skip")):
                want = cleanup(r[key]) if config.get("clean_up_tokenization_spaces") else r[key]
                have = dec[2 * i + k].get("text")
                if have != want:
                    bad.append((key, i, r["ids"], want, dec[2 * i + k]))
            # Streaming: one piece per token, holding back split characters, adding up to the
            # whole text (tokenizers that clean up spaces do so on whole texts only).
            streamed = dec[2 * i + 1]
            pieces = streamed.get("pieces", [])
            if len(pieces) != len(r["ids"]) or (not config.get("clean_up_tokenization_spaces") and
                                                "".join(pieces) != streamed.get("text")):
                bad.append(("stream", i, r["ids"], streamed))
            elif "\ufffd" not in streamed.get("text", "") and any("\ufffd" in p for p in pieces):
                bad.append(("stream: a split character was not held back", i, r["ids"], pieces))
        agree = len(ref) - len({b[1] for b in bad})
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        print(f"{name}: {agree}/{len(ref)} strings agree (encode and decode); "
              f"encode {mb:.2f} MB in {seconds:.2f} s through grail-tokenize")
        for b in bad[:5]:
            print("  DISAGREE", json.dumps(b, ensure_ascii=True)[:600])
        failures += len(bad)
    print(f"{4 * len(rows)} encodings compared (each also decoded, and streamed), {failures} disagreements")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
