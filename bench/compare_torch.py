#!/usr/bin/python3
"""almc against the PyTorch reference (bench/reference/almc_ref.py), side by side on one machine.

    /usr/bin/python3 bench/compare_torch.py [--almc build/host/cli/almc] [--device cpu|cuda]
        [--quick] [--case NAME ...] [--repeats 2] [--threads T] [--json out.json] [--work DIR]

For every case: make the problem files (bench/reference/make_problem.py, cached in --work), then run
`almc sample` and the reference (eager, and torch.jit.trace where it works) one after the other with
the same prior, operator, y, sigma_y, kappa, delta, warm start and chains, alternating them
--repeats times (with --baseline, a second almc executable runs right after the first in every
round, so before/after figures share the machine's load). Time per run: almc's own run time (`seconds` of `almc sample --json`: the run,
initial noise and final check included, setup excluded) and the reference's timed loop (warm start
and annealing; setup and a few warm-up steps excluded). steps/s = steps / seconds (median).

Agreement before the time counts: both final iterates are draws from the same law (the same
discretised chain), so the per-coordinate means must agree within Monte Carlo error:
z_j = (mean_almc_j - mean_ref_j) / sqrt(var_almc_j / n + var_ref_j / n); the case agrees when at
most 1% of the coordinates have |z_j| > 5 (about 6e-7 expected under the null). A case that
disagrees is printed with ratio "-" and reported as a failure (exit status 1).
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF = os.path.join(HERE, "reference", "almc_ref.py")
MAKE = os.path.join(HERE, "reference", "make_problem.py")

# name, problem (make_problem args), operator key, chains, annealing steps, [cuda-only]
SIGMA, DELTA, WARM_STEPS, WARM_STEP = 0.1, 0.004, 20, 0.004


def cases(device, quick):
    cpu = [
        # name                 problem args                  op          chains steps
        ("gmm8/identity/d64", ["--d", "64"], "identity", 1024, 300),
        ("gmm8/mask/d4096", ["--d", "4096"], "mask", 64, 100),
        ("gmm8/identity/d4096", ["--d", "4096"], "identity", 256, 60),
        ("gmm8/downsample/3x64x64", ["--shape", "3,64,64"], "downsample", 32, 60),
        ("gmm8/matrix/d4096", ["--d", "4096"], "matrix", 64, 40),
        ("gmm8/mask/d65536", ["--d", "65536"], "mask", 16, 30),
        ("onnx_mlp/identity/digits16x16", None, "identity", 256, 60),
    ]
    gpu = [
        ("gmm8/mask/d4096", ["--d", "4096"], "mask", 1024, 500),
        ("gmm8/identity/d4096", ["--d", "4096"], "identity", 1024, 500),
        ("gmm8/mask/d65536", ["--d", "65536"], "mask", 1024, 200),
        ("gmm8/downsample/3x64x64", ["--shape", "3,64,64"], "downsample", 1024, 300),
        ("gmm8/matrix/d4096", ["--d", "4096"], "matrix", 1024, 200),
        ("onnx_mlp/identity/digits16x16", None, "identity", 1024, 300),
    ]
    cs = gpu if device == "cuda" else cpu
    if quick:
        cs = [c for c in cs if c[0] in ("gmm8/identity/d64", "gmm8/mask/d4096", "onnx_mlp/identity/digits16x16")]
    return cs


def find_almc():
    for p in (os.environ.get("ALMC_EXE"), "build-bench/host/cli/almc", "build/host/cli/almc", "build/almc"):
        if p and os.path.isfile(os.path.join(ROOT, p) if not os.path.isabs(p) else p):
            return os.path.join(ROOT, p) if not os.path.isabs(p) else p
    return None


def run(cmd, env, timeout):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-600:]}")
    return r.stdout


def problem(work, args, py):
    key = "_".join(a.replace(",", "x").lstrip("-") for a in args)
    d = os.path.join(work, "p_" + key)
    if not os.path.isfile(os.path.join(d, "problem.json")):
        subprocess.run([py, MAKE, *args, "--noise-std", str(SIGMA), "--out", d], check=True, capture_output=True)
    with open(os.path.join(d, "problem.json")) as f:
        return d, json.load(f)


def digits_problem(work):
    d = os.path.join(work, "p_digits")
    os.makedirs(d, exist_ok=True)
    y = os.path.join(d, "y_identity.npy")
    if not os.path.isfile(y):
        img = np.load(os.path.join(ROOT, "demo", "test_images.npy"))[0].reshape(-1).astype(np.float64)
        rng = np.random.default_rng(0)
        np.save(y, (img + SIGMA * rng.standard_normal(img.size)).astype(np.float32))
    return d, y


def agree(a, b):
    a, b = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return False, float("inf"), 1.0
    se = np.sqrt(a.var(0, ddof=1) / a.shape[0] + b.var(0, ddof=1) / b.shape[0]) + 1e-12
    z = np.abs(a.mean(0) - b.mean(0)) / se
    frac = float((z > 5).mean())
    return frac <= 0.01, float(z.max()), frac


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--almc", default=None, help="almc executable (default $ALMC_EXE or build-bench/host/cli/almc)")
    ap.add_argument("--almc-prefix", default="", help="command prefix for almc (e.g. a bundle's run.sh)")
    ap.add_argument("--baseline", default=None,
                    help="a second almc executable (e.g. main's) timed in the same rounds, right after the first: "
                         "its steps/s and its ratio to eager are reported too, for before/after figures on a loaded machine")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case", action="append", default=[], help="only cases whose name contains this")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--impls", default="eager,jit")
    ap.add_argument("--python", default=sys.executable, help="python with torch for the reference")
    ap.add_argument("--work", default=None, help="folder for problem files and samples (default: a temp dir)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per single run")
    args = ap.parse_args()

    almc = args.almc or find_almc()
    if not almc:
        raise SystemExit("compare_torch: no almc executable (build almc_cli, or pass --almc)")
    prefix = args.almc_prefix.split() if args.almc_prefix else []
    work = args.work or tempfile.mkdtemp(prefix="almc_cmp_")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    impls = [i for i in args.impls.split(",") if i]
    cpu_model = ""
    try:
        cpu_model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# almc vs PyTorch reference: device {args.device}, {os.cpu_count()} CPUs ({cpu_model}), {args.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, repeats {args.repeats} (median), work {work}",
          flush=True)
    rows, failures = [], 0
    for name, pargs, opkey, chains, steps in cases(args.device, args.quick):
        if args.case and not any(c in name for c in args.case):
            continue
        kappa = steps * DELTA / (5.0 - 0.01)
        common = ["--noise-std", str(SIGMA), "--kappa", repr(kappa), "--delta", str(DELTA), "--warm-steps", str(WARM_STEPS),
                  "--warm-step", str(WARM_STEP), "--chains", str(chains)]
        if pargs is None:
            pdir, y = digits_problem(work)
            almc_prior = ["--model", os.path.join(ROOT, "demo", "digits_score.onnx"), "--shape", "1,16,16"]
            ref_prior = ["--torch-model", os.path.join(ROOT, "demo", "digits_score.onnx")]
            op_a = op_r = "identity"
            d = 256
            shape = []
        else:
            # The interpreter running this script has numpy (torch needs it); on the GPU machine
            # /usr/bin/python3 has none.
            pdir, info = problem(work, pargs, sys.executable)
            o = info["operators"][opkey]
            spec = o["operator"]
            if ":" in spec and not spec.startswith("downsample"):
                k, f = spec.split(":", 1)
                spec = f"{k}:{os.path.join(pdir, f)}"
            op_a = op_r = spec
            y = os.path.join(pdir, o["y"])
            almc_prior = ref_prior = ["--prior", os.path.join(pdir, "gmm.json")]
            d = info["d"]
            shape = ["--shape", ",".join(str(v) for v in info["shape"])] if opkey == "downsample" else []
        row = {"case": name, "d": d, "chains": chains, "annealing_steps": steps, "kappa": kappa, "delta": DELTA,
               "noise_std": SIGMA, "warm_steps": WARM_STEPS}
        times = {"almc": [], **({"baseline": []} if args.baseline else {}), **{i: [] for i in impls}}
        total_steps = {}
        samples = {}
        notes = []
        try:
            for r in range(args.repeats):
                out_a = os.path.join(work, "almc.npy")
                cmd = prefix + [almc, "sample", "--backend", args.device, "--threads", str(args.threads), *almc_prior,
                                "--operator", op_a, "--y", y, *shape, *common, "--seed", str(11 + r), "--out", out_a,
                                "--json", "--quiet"]
                j = json.loads(run(cmd, env, args.timeout))
                times["almc"].append(j["seconds"])
                total_steps["almc"] = j["steps"]
                row["device"] = j.get("device")
                if r == 0:
                    samples["almc"] = np.load(out_a)
                if args.baseline:
                    cmd[len(prefix)] = args.baseline
                    jb = json.loads(run(cmd, env, args.timeout))
                    times["baseline"].append(jb["seconds"])
                    total_steps["baseline"] = jb["steps"]
                for impl in impls:
                    if impl in notes:
                        continue
                    out_r, js = os.path.join(work, f"ref_{impl}.npy"), os.path.join(work, f"ref_{impl}.json")
                    cmd = [args.python, REF, *ref_prior, "--operator", op_r, "--y", y, *shape, *common,
                           "--seed", str(11 + r), "--device", args.device, "--impl", impl, "--threads", str(args.threads),
                           "--out", out_r, "--json", js]
                    try:
                        run(cmd, env, args.timeout)
                    except RuntimeError as e:
                        notes.append(impl)
                        row[f"{impl}_error"] = str(e)[-300:]
                        print(f"  {name}: {impl} failed: {str(e)[-200:]}", file=sys.stderr)
                        continue
                    with open(js) as f:
                        jr = json.load(f)
                    times[impl].append(jr["seconds"])
                    total_steps[impl] = jr["steps"]
                    row["torch"] = jr.get("torch")
                    if r == 0:
                        samples[impl] = np.load(out_r)
        except (RuntimeError, subprocess.TimeoutExpired, KeyError, ValueError) as e:
            row["error"] = str(e)[-400:]
            print(f"{name}: error: {row['error']}", file=sys.stderr)
            rows.append(row)
            failures += 1
            continue
        ok_all = True
        for impl in impls:
            if impl in samples:
                ok, zmax, frac = agree(samples["almc"], samples[impl])
                row[f"agree_{impl}"] = {"ok": ok, "max_abs_z": zmax, "frac_abs_z_gt_5": frac}
                ok_all &= ok
        row["agree"] = ok_all
        for k, v in times.items():
            if v:
                row[f"{k}_seconds"] = v
                row[f"{k}_steps_per_s"] = total_steps[k] / float(np.median(v))
        a = row.get("almc_steps_per_s")
        for impl in impls:
            t = row.get(f"{impl}_steps_per_s")
            row[f"ratio_vs_{impl}"] = (a / t) if (a and t and ok_all) else None
            b = row.get("baseline_steps_per_s")
            if args.baseline:
                row[f"baseline_ratio_vs_{impl}"] = (b / t) if (b and t) else None
        if not ok_all:
            failures += 1
        rows.append(row)
        fmt = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) and v is not None else "-"  # noqa: E731
        print(f"{name:32s} c={chains:5d} almc {fmt(a):>9s} st/s | eager {fmt(row.get('eager_steps_per_s')):>8s} | "
              f"jit {fmt(row.get('jit_steps_per_s')):>8s} | x{fmt(row.get('ratio_vs_eager'))} (eager) "
              f"x{fmt(row.get('ratio_vs_jit'))} (jit) | agree {ok_all}" +
              (f" | baseline {fmt(row.get('baseline_steps_per_s'))} st/s x{fmt(row.get('baseline_ratio_vs_eager'))} (eager)"
               if args.baseline else ""), flush=True)

    print()
    bh = " baseline steps/s | baseline / eager |" if args.baseline else ""
    print("| case | d | chains | steps | almc steps/s | torch eager steps/s | torch jit steps/s | almc / eager | almc / jit | "
          "agree (max abs z) |" + bh)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|---:|" if args.baseline else ""))
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['d']} | {r['chains']} | - | error: {r['error'][:80]} | | | | | |")
            continue
        f = lambda k, p=1: ("%.*f" % (p, r[k])) if r.get(k) is not None else "-"  # noqa: E731
        zs = ", ".join(f"{i} {r[f'agree_{i}']['max_abs_z']:.1f}" for i in impls if f"agree_{i}" in r)
        print(f"| {r['case']} | {r['d']} | {r['chains']} | {WARM_STEPS}+{r['annealing_steps']} | {f('almc_steps_per_s')} | "
              f"{f('eager_steps_per_s')} | {f('jit_steps_per_s')} | {f('ratio_vs_eager', 2)} | {f('ratio_vs_jit', 2)} | "
              f"{'yes' if r['agree'] else 'NO'} ({zs}) |" +
              (f" {f('baseline_steps_per_s')} | {f('baseline_ratio_vs_eager', 2)} |" if args.baseline else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "threads": args.threads, "cpu_model": cpu_model,
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "rows": rows}, f, indent=1)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
