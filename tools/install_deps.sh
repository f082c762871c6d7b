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
  libre2-dev libsqlite3-dev
  curl python3 bc openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
