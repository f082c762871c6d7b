#!/usr/bin/env python3
"""Writes a seeded corpus of strings for the tokenizer agreement test, one JSON string per
line: multilingual text, CJK, emoji (with ZWJ sequences and modifiers), code, whitespace
runs, digits, text of special tokens, combining marks (NFC), and mixtures of these.

    make_corpus.py N SEED > corpus.jsonl
"""
import json
import random
import sys

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or "
         "one had by word but not what all were we when your can said there use an each which she do how "
         "their if will up other about out many then them these so some her would make like him into time "
         "has look two more write go see number no way could people my than first water been call who oil "
         "its now find long down day did get come made may part tokenizer grail policy gradient reward "
         "don't can't I'm you're we've they'll she'd it's O'Neil").split()

BLOCKS = [  # (first, last) code points of scripts and symbol ranges
    (0x00C0, 0x00FF), (0x0100, 0x017F), (0x0180, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF),
    (0x0530, 0x058F), (0x05D0, 0x05EA), (0x0620, 0x064A), (0x0900, 0x097F), (0x0E01, 0x0E5B),
    (0x10A0, 0x10FF), (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x20A0, 0x20BF), (0x2190, 0x21FF),
    (0x2200, 0x22FF), (0x2500, 0x257F), (0x3041, 0x3096), (0x30A1, 0x30FA), (0x3105, 0x312F),
    (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF01, 0xFF5E), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F),
    (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x1D400, 0x1D7FF),
]
COMBINING = [0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030A, 0x0327, 0x0323]
WHITESPACE = [" ", " ", " ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028", "\x0b", "\x0c"]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
           "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|im_", "|>", "<|", "<s>"]
CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "if __name__ == '__main__':\n\tmain()\n",
    "const auto& [k, v] : std::map<std::string, int>{};",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
    "  - name: grail\n    image: grail:latest\n    args: [\"--listen=0.0.0.0:50051\"]\n",
    "x = {'a': 1, \"b\": [2, 3.5e-4, None]}",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "$ ls -la /tmp | grep -v '^d' && echo \"done\" >&2",
    "<div class=\"row\"><span>&nbsp;&amp;</span></div>",
]


def rand_char(r):
    lo, hi = r.choice(BLOCKS)
    return chr(r.randint(lo, hi))


def word(r):
    w = r.choice(WORDS)
    k = r.random()
    if k < 0.15:
        w = w.capitalize()
    elif k < 0.2:
        w = w.upper()
    return w


def piece(r):
    k = r.randrange(9)
    if k == 0:
        return " ".join(word(r) for _ in range(r.randint(1, 12))) + r.choice(["", ".", "?", "!", ",", " ...", ";"])
    if k == 1:
        return "".join(rand_char(r) for _ in range(r.randint(1, 15)))
    if k == 2:  # emoji with modifiers and zero-width joiners
        e = []
        for _ in range(r.randint(1, 4)):
            e.append(chr(r.randint(0x1F466, 0x1F469)))
            if r.random() < 0.5:
                e.append(chr(r.randint(0x1F3FB, 0x1F3FF)))
            if r.random() < 0.3:
                e.append("\u200d")
        if r.random() < 0.3:
            e.append("\ufe0f")
        return "".join(e)
    if k == 3:
        return r.choice(CODE)
    if k == 4:
        return "".join(r.choice(WHITESPACE) for _ in range(r.randint(1, 30)))
    if k == 5:
        n = r.randint(1, 40)
        s = "".join(r.choice("0123456789") for _ in range(n))
        return r.choice([s, s[:3] + "." + s[3:], "-" + s, s + "%", "1,234,567", "3.14159", "2^64"])
    if k == 6:
        return r.choice(SPECIAL)
    if k == 7:  # decomposed accents (NFC composes them)
        return "".join(r.choice("aeiouAEIOUnc") + chr(r.choice(COMBINING)) for _ in range(r.randint(1, 6)))
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyz'\"()[]{}-_=+*/\\|<>.,;:!?@#$%^&`~")
                   for _ in range(r.randint(1, 20)))


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    r = random.Random(seed)
    out = sys.stdout
    for _ in range(n):
        parts = [piece(r) for _ in range(r.randint(1, 6))]
        sep = r.choice(["", " ", "\n", ""])
        out.write(json.dumps(sep.join(parts), ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
