#!/usr/bin/env bash
# Installs the Debian packages almc builds with (as root; a no-op when they are present).
# The CUDA toolkit is expected at /usr/local/cuda (nvcc need not be on PATH).
set -euo pipefail
pkgs=(cmake g++ libgtest-dev libgmock-dev libbenchmark-dev libonnx-dev libprotobuf-dev protobuf-compiler
      libcli11-dev nlohmann-json3-dev libpng-dev python3-numpy clang-14 libclang-rt-14-dev
      libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "export PATH=/usr/local/cuda/bin:\$PATH  # (nvcc found at /usr/local/cuda)"
fi
