// The tokenizer benchmark's baseline: Hugging Face's tokenizers (Rust, Node bindings) on
// one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false), encoding every line of a
// JSONL file of strings in one batch. Prints the encode time in seconds, loading excluded.
//
//   node tokenize_reference.js MODULE_DIR TOKENIZER_JSON CORPUS_JSONL
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(process.argv[2], 'tokenizers'));
(async () => {
  const tok = Tokenizer.fromFile(process.argv[3]);
  const texts = fs.readFileSync(process.argv[4], 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const t0 = process.hrtime.bigint();
  await tok.encodeBatch(texts, { addSpecialTokens: false });
  console.log(Number(process.hrtime.bigint() - t0) / 1e9);
})();
