#!/usr/bin/env bash
# CI's reliability stage (issue 7), run after scripts/test.sh by .ci/run:
#   1. the whole CPU test suite and the CLI's end-to-end tests under ASan + UBSan (scripts/sanitize.sh);
#   2. the thread tests under ThreadSanitizer (scripts/tsan.sh: clang, LLVM's OpenMP with Archer);
#   3. the saved fuzz regressions, then each libFuzzer target for FUZZ_SECONDS (scripts/fuzz.sh).
# CI uses 20 s per target (five targets) to stay within its time budget, with a fixed libFuzzer
# seed so that a CI failure repeats on the same commit and does not come and go between runs of
# an unchanged tree; run scripts/fuzz.sh (default 60 s, a fresh seed each run), or longer, by hand
# to explore further.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/sanitize.sh
mid=$(date +%s)
bash scripts/tsan.sh
tsan=$(date +%s)
FUZZ_SECONDS=${FUZZ_SECONDS:-20} FUZZ_SEED=${FUZZ_SEED:-1} bash scripts/fuzz.sh
end=$(date +%s)
echo "reliability stage: sanitizer suite $((mid - start)) s, thread sanitizer $((tsan - mid)) s, fuzzing $((end - tsan)) s"
