#!/usr/bin/env bash
# Strong and weak scaling of `mpirun almc sample` on this machine's CPUs, 1 vs 2 ranks (one
# OpenMP thread per rank), on the demo's digit network (d = 256) doing 2x super-resolution of the
# demo's held-out digits. Runs are interleaved (1 rank, 2 ranks, 1 rank, ...) so that a load that
# comes and goes hits both alike; prints the median wall time of REPS runs each (the whole
# command: start-up, model load, sampling, gather and writing) and the ratios.
#   strong: the same run (4 measurements x 8 chains) on 1 and on 2 ranks; also 1 process with
#           2 OpenMP threads, the one-process way to use both cores;
#   weak:   4 x 8 chains per rank: 4 measurements on 1 rank, 8 on 2 ranks.
# Environment: ALMC_BUILD_DIR (default build), REPS (default 3), KAPPA (default 1: ALMC's levels),
# MPIEXEC_FLAGS (default: Open MPI's --oversubscribe --allow-run-as-root).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ALMC_BUILD_DIR:-build}
exe=$build/host/cli/almc
reps=${REPS:-3}
kappa=${KAPPA:-1}
flags=${MPIEXEC_FLAGS:---oversubscribe --allow-run-as-root}
export OMP_WAIT_POLICY=passive OMPI_MCA_mpi_yield_when_idle=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'EOF'
import sys, numpy as np
x = np.load("demo/test_images.npy").astype(np.float32)          # [8, 1, 16, 16] in [-1, 1]
y = x.reshape(8, 1, 8, 2, 8, 2).mean(axis=(3, 5))                # 2x2 average pooling
y += 0.05 * np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
np.save(sys.argv[1] + "/y8.npy", y.astype(np.float32))
np.save(sys.argv[1] + "/y4.npy", y[:4].astype(np.float32))
EOF
args="sample --model demo/digits_score.onnx --operator downsample:2 --shape 1,16,16 --noise-std 0.05 --chains 8
      --backend cpu --kappa $kappa --delta 2e-3 --seed 1 -q"

run() {  # label, command...; appends "label wall_seconds cpu_seconds" to $tmp/times
  local label=$1; shift
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$label $(echo "$t" | awk '{print $1, $2 + $3}')" >>"$tmp/times"
}
load0=$(cut -d' ' -f1 /proc/loadavg)
for ((i = 0; i < reps; i++)); do
  # shellcheck disable=SC2086
  {
    run strong_1rank "$exe" $args --y "$tmp/y4.npy" --threads 1 --out "$tmp/a.npy"
    run strong_2ranks mpirun -n 2 $flags "$exe" $args --y "$tmp/y4.npy" --threads 1 --out "$tmp/b.npy"
    run strong_1proc_2threads "$exe" $args --y "$tmp/y4.npy" --threads 2 --out "$tmp/c.npy"
    run weak_2ranks mpirun -n 2 $flags "$exe" $args --y "$tmp/y8.npy" --threads 1 --out "$tmp/d.npy"
  }
  cmp -s "$tmp/a.npy" "$tmp/b.npy" || { echo "1 rank and 2 ranks differ"; exit 1; }
done
median() { grep "^$1 " "$tmp/times" | awk -v c="$2" '{print $c}' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
s1=$(median strong_1rank 2); s2=$(median strong_2ranks 2); s3=$(median strong_1proc_2threads 2); w2=$(median weak_2ranks 2)
c1=$(median strong_1rank 3); c2=$(median strong_2ranks 3); c3=$(median strong_1proc_2threads 3); cw=$(median weak_2ranks 3)
echo "almc $($exe --version | tail -1), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $load0 at the start, $(cut -d' ' -f1 /proc/loadavg) at the end"
echo "demo network d=256, 2x super-resolution, ALMC kappa $kappa delta 2e-3, 8 chains per measurement; medians of $reps; wall s (CPU s = user + sys of every process)"
printf "strong (4 x 8 chains):  1 rank %.2f (%.2f) | 2 ranks %.2f (%.2f), speed-up %.2f | 1 process, 2 threads %.2f (%.2f), speed-up %.2f\n" \
  "$s1" "$c1" "$s2" "$c2" "$(echo "$s1 / $s2" | bc -l)" "$s3" "$c3" "$(echo "$s1 / $s3" | bc -l)"
printf "weak (4 x 8 chains per rank): 1 rank %.2f (%.2f) | 2 ranks, 8 x 8 chains %.2f (%.2f), efficiency %.2f\n" \
  "$s1" "$c1" "$w2" "$cw" "$(echo "$s1 / $w2" | bc -l)"
