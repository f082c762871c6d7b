// The reference encodings: Hugging Face's tokenizers library (Rust, through its Node
// bindings) over JSONL lines {"text", "add_special_tokens"} on stdin; writes
// {"ids", "decoded", "decoded_skip"} per line (decoded with and without special tokens).
//
//   node reference.js MODULE_DIR TOKENIZER_JSON < in.jsonl > out.jsonl
const path = require('path');
const readline = require('readline');
const { Tokenizer } = require(path.join(process.argv[2], 'tokenizers'));

(async () => {
  const tok = Tokenizer.fromFile(process.argv[3]);
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out = [];
  for await (const line of rl) {
    const row = JSON.parse(line);
    const enc = await tok.encode(row.text, null, { addSpecialTokens: !!row.add_special_tokens });
    const ids = Array.from(enc.getIds());
    out.push(JSON.stringify({ ids, decoded: await tok.decode(ids, false), decoded_skip: await tok.decode(ids, true) }));
    if (out.length >= 1000) { process.stdout.write(out.join('\n') + '\n'); out.length = 0; }
  }
  if (out.length) process.stdout.write(out.join('\n') + '\n');
})();
