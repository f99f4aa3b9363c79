#!/usr/bin/env bash
# Builds the Python package into a virtual environment under BUILD_DIR and runs its tests.
#
#   bash python/test_package.sh BUILD_DIR [ALMC_PREFIX]
#
# ALMC_PREFIX: an almc installed with `cmake --install` (scripts/test.sh passes the one it just
# installed): pip then compiles only the extension against it. Without it pip builds the library
# from source too, exactly as `pip install .` does. The environment is made from Debian's python3
# with --system-site-packages, so it sees Debian's numpy (and torch and onnx when installed: the
# PyTorch tests and example skip, saying why, without them).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: python/test_package.sh BUILD_DIR [ALMC_PREFIX]}
prefix=${2:-}
py=/usr/bin/python3
if ! $py -c "import ensurepip" 2>/dev/null; then
  echo "python: installing python3-venv"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
venv="$build/pyvenv"
[ -x "$venv/bin/python" ] || $py -m venv --system-site-packages "$venv"
"$venv/bin/python" -c "import pytest" 2>/dev/null || "$venv/bin/pip" install -q pytest
settings=(--config-settings=build-dir="$build/python")
[ -n "$prefix" ] && settings+=(--config-settings=cmake.define.ALMC_PYTHON_PREBUILT="$(cd "$prefix" && pwd)")
CMAKE_BUILD_PARALLEL_LEVEL=${ALMC_JOBS:-$(nproc)} "$venv/bin/pip" install -q . "${settings[@]}" >"$build/python.log" 2>&1 ||
  { cat "$build/python.log"; exit 1; }
ALMC_CLI="$build/host/cli/almc" "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
