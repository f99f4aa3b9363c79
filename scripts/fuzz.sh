#!/usr/bin/env bash
# Bounded libFuzzer runs of the parsers that read untrusted input (issue 7):
#   fuzz_onnx      ONNX models -> almc_score_create_onnx / almc_onnx_eval_raw (CPU)
#   fuzz_npy       .npy bytes -> almc::io::parse_npy_* / read_npy_f32
#   fuzz_gmm_json  JSON -> almc::parse_gmm_json / almc_score_create_gmm_json
#   fuzz_cli       argv tokens -> the almc command's parser and subcommand checks
#   fuzz_snapshot  snapshot files -> almc_snapshot_parse, written back and read, almc_sampler_load_state
# Builds them (clang-14, ASan + UBSan + libFuzzer) in the sanitizer build that
# scripts/sanitizer_build.sh configures (build-asan, shared with scripts/sanitize.sh), replays the saved
# regressions (tests/data/fuzz_regressions/<name>/), then fuzzes each target for FUZZ_SECONDS
# (default 60) starting from its seed corpus (fuzz/corpus/<name>/). Exits non-zero on any crash,
# sanitizer report, leak, timeout (> 10 s per input) or input needing more than 2 GiB; the input
# that did it is left in build-asan/artifacts/.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (space-separated names, default all),
# FUZZ_SEED (libFuzzer's -seed: a fixed one makes a run repeat the same mutations, as CI does; by
# default each run draws its own), ALMC_SAN_BUILD_DIR (default build-asan), ALMC_JOBS (build parallelism).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/sanitizer_build.sh
source scripts/sanitizer_build.sh
build=$san_build
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"fuzz_npy fuzz_gmm_json fuzz_onnx fuzz_cli fuzz_snapshot"}

san_configure
# shellcheck disable=SC2086
cmake --build "$build" -j"${ALMC_JOBS:-$(nproc)}" --target $targets

# Leaks are findings (LSan runs after every input that allocated more than it freed). Huge
# allocations come back as failures (std::bad_alloc) instead of an ASan abort: the code under test
# is expected to handle them; -rss_limit_mb / -malloc_limit_mb still catch real excess.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ALMC_TEST_DATA="$root/tests/data"
export OMP_NUM_THREADS=1

artifacts="$root/$build/artifacts"
mkdir -p "$artifacts"
status=0
for t in $targets; do
  name=${t#fuzz_}
  bin="$root/$build/fuzz/$t"
  seeds="$root/fuzz/corpus/$name"
  work="$root/$build/corpus/$name"
  mkdir -p "$work"
  regress="$root/tests/data/fuzz_regressions/$name"
  # Paths are absolute: fuzz_cli changes its working directory to a scratch folder.
  flags=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 "-artifact_prefix=$artifacts/$t-")
  [ "$t" = fuzz_cli ] && flags+=(-close_fd_mask=3)
  [ -n "${FUZZ_SEED:-}" ] && flags+=("-seed=$FUZZ_SEED")
  [ -f "$root/fuzz/$name.dict" ] && flags+=("-dict=$root/fuzz/$name.dict")
  if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    echo "== $t: replaying $(ls "$regress" | wc -l) saved regressions"
    if ! "$bin" "${flags[@]}" "$regress"/* >"$artifacts/$t.regress.log" 2>&1; then
      tail -n 40 "$artifacts/$t.regress.log"
      echo "== $t: a saved regression fails again"
      status=1
      continue
    fi
  fi
  echo "== $t: fuzzing for ${seconds}s (seeds: fuzz/corpus/$name, log: $build/artifacts/$t.log)"
  if "$bin" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 "$work" "$seeds" >"$artifacts/$t.log" 2>&1; then
    grep -E "^(stat::number_of_executed_units|stat::new_units_added)" "$artifacts/$t.log" | tr '\n' ' '
    echo
  else
    tail -n 60 "$artifacts/$t.log"
    echo "== $t: FAILED (the input is in $build/artifacts/$t-*)"
    status=1
  fi
done
exit $status
