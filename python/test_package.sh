#!/usr/bin/env bash
# Builds the Python package into a virtual environment under BUILD_DIR and runs its tests.
#
#   bash python/test_package.sh BUILD_DIR [ALMC_PREFIX]
#
# ALMC_PREFIX: an almc installed with `cmake --install` (scripts/test.sh passes the one it just
# installed): pip then compiles only the extension against it. Without it pip builds the library
# from source too, exactly as `pip install .` does. The environment is made from Debian's python3
# with --system-site-packages, so it sees Debian's numpy, torch and onnx (installed here when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: python/test_package.sh BUILD_DIR [ALMC_PREFIX]}
prefix=${2:-}
py=/usr/bin/python3
# python3-venv to make the environment; Debian's torch (1.13, CPU) and onnx so that the PyTorch
# tests (a torch module as ScoreFunction, the PyTorch example) run instead of skipping.
need=()
$py -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
$py -c "import torch" 2>/dev/null || need+=(python3-torch)
$py -c "import onnx" 2>/dev/null || need+=(python3-onnx)
if [ ${#need[@]} -gt 0 ]; then
  echo "python: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
venv="$build/pyvenv"
[ -x "$venv/bin/python" ] || $py -m venv --system-site-packages "$venv"
"$venv/bin/python" -c "import pytest" 2>/dev/null || "$venv/bin/pip" install -q pytest
settings=(--config-settings=build-dir="$build/python")
[ -n "$prefix" ] && settings+=(--config-settings=cmake.define.ALMC_PYTHON_PREBUILT="$(cd "$prefix" && pwd)")
CMAKE_BUILD_PARALLEL_LEVEL=${ALMC_JOBS:-$(nproc)} "$venv/bin/pip" install -q . "${settings[@]}" >"$build/python.log" 2>&1 ||
  { cat "$build/python.log"; exit 1; }
ALMC_CLI="$build/host/cli/almc" "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
