#!/usr/bin/env bash
# CI's reliability stage (issue 7), run after scripts/test.sh by .ci/run:
#   1. the whole CPU test suite and the CLI's end-to-end tests under ASan + UBSan (scripts/sanitize.sh);
#   2. the thread tests under ThreadSanitizer (scripts/tsan.sh: clang, LLVM's OpenMP with Archer);
#   3. the saved fuzz regressions, then each libFuzzer target for FUZZ_SECONDS (scripts/fuzz.sh).
# CI uses 30 s per target (five targets) to stay within its time budget; run scripts/fuzz.sh with the
# default 60 s, or longer, by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/sanitize.sh
mid=$(date +%s)
bash scripts/tsan.sh
tsan=$(date +%s)
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh
end=$(date +%s)
echo "reliability stage: sanitizer suite $((mid - start)) s, thread sanitizer $((tsan - mid)) s, fuzzing $((end - tsan)) s"
