#!/usr/bin/python3
"""Generate a benchmark / validation problem: a GMM prior, a ground truth drawn from it, measurements.

Run with Debian's Python (/usr/bin/python3, numpy only). Example:

    /usr/bin/python3 bench/reference/make_problem.py --d 4096 --out /tmp/p4096
    /usr/bin/python3 bench/reference/make_problem.py --shape 3,64,64 --out /tmp/pimg   # d = 12288

The folder receives (all float32, C order):
    gmm.json        {"weights": [K], "means": [[d]...], "variances": [[d]...]}  (engine format)
    truth.npy       [d]   x drawn from the prior
    mask.npy        [d]   0/1, about --mask-frac of the entries observed
    y_identity.npy  [d]   x + n
    y_mask.npy      [d]   mask * (x + n)       (masked entries are exactly 0)
    y_downsample.npy [C*(H/K)*(W/K)]  K x K average pooling of x viewed as C x H x W, + n   (when the shape allows)
    A.npy, y_matrix.npy  [m, d] with entries N(0, 1/d) and y = A x + n, m = d/4  (only for d <= --max-dense-d)
    problem.json    d, shape, K, noise std, seed, and for every operator the --operator string and y file
                    to pass to `almc sample` and to almc_ref.py (paths relative to the folder).
Noise n ~ N(0, noise_std^2 I). Means ~ N(0, mean_scale^2 I), variances ~ U[0.05, 0.5] per coordinate,
weights ~ Dirichlet(2) (fixed seed: the same arguments always give the same files).
"""
import argparse
import json
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=None, help="dimension (flat); or give --shape")
    ap.add_argument("--shape", default=None, help="C,H,W; d = C*H*W (needed for downsample)")
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--mean-scale", type=float, default=1.0)
    ap.add_argument("--var-range", default="0.05,0.5")
    ap.add_argument("--noise-std", type=float, default=0.1)
    ap.add_argument("--mask-frac", type=float, default=0.5, help="fraction of observed entries")
    ap.add_argument("--down", type=int, default=2, help="downsampling factor")
    ap.add_argument("--dense-m", type=int, default=None, help="rows of the dense A (default d/4)")
    ap.add_argument("--max-dense-d", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    if args.shape:
        shape = [int(v) for v in args.shape.split(",")]
        if len(shape) != 3:
            raise SystemExit("--shape needs C,H,W")
        d = int(np.prod(shape))
        if args.d is not None and args.d != d:
            raise SystemExit("--d disagrees with --shape")
    elif args.d:
        d = args.d
        side = int(round(np.sqrt(d)))
        shape = [1, side, side] if side * side == d else [d, 1, 1]
    else:
        raise SystemExit("give --d or --shape")
    K = args.K
    lo, hi = (float(v) for v in args.var_range.split(","))
    rng = np.random.default_rng(args.seed)
    weights = rng.dirichlet(np.full(K, 2.0))
    means = args.mean_scale * rng.standard_normal((K, d))
    variances = rng.uniform(lo, hi, (K, d))
    k = rng.choice(K, p=weights)
    truth = means[k] + np.sqrt(variances[k]) * rng.standard_normal(d)
    sig = args.noise_std

    os.makedirs(args.out, exist_ok=True)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    with open(os.path.join(args.out, "gmm.json"), "w") as f:
        json.dump({"weights": [float(w) for w in weights],
                   "means": [[float(v) for v in f32(m)] for m in means],
                   "variances": [[float(v) for v in f32(v_)] for v_ in variances]}, f)
    np.save(os.path.join(args.out, "truth.npy"), f32(truth))
    ops = {}

    y = truth + sig * rng.standard_normal(d)
    np.save(os.path.join(args.out, "y_identity.npy"), f32(y))
    ops["identity"] = {"operator": "identity", "y": "y_identity.npy", "m": d, "norm2": 1.0}

    mask = (rng.random(d) < args.mask_frac).astype(np.float64)
    y = mask * (truth + sig * rng.standard_normal(d))
    np.save(os.path.join(args.out, "mask.npy"), f32(mask))
    np.save(os.path.join(args.out, "y_mask.npy"), f32(y))
    ops["mask"] = {"operator": "mask:mask.npy", "y": "y_mask.npy", "m": d, "norm2": float(mask.max())}

    C, H, W = shape
    Kd = args.down
    if H % Kd == 0 and W % Kd == 0 and H > 1:
        low = truth.reshape(C, H // Kd, Kd, W // Kd, Kd).mean(axis=(2, 4)).reshape(-1)
        y = low + sig * rng.standard_normal(low.size)
        np.save(os.path.join(args.out, "y_downsample.npy"), f32(y))
        ops["downsample"] = {"operator": f"downsample:{Kd}", "y": "y_downsample.npy", "m": int(low.size),
                             "norm2": 1.0 / Kd ** 2}

    if d <= args.max_dense_d:
        m = args.dense_m or max(1, d // 4)
        A = rng.standard_normal((m, d)) / np.sqrt(d)
        A = f32(A)
        y = A.astype(np.float64) @ truth + sig * rng.standard_normal(m)
        np.save(os.path.join(args.out, "A.npy"), A)
        np.save(os.path.join(args.out, "y_matrix.npy"), f32(y))
        ops["matrix"] = {"operator": "matrix:A.npy", "y": "y_matrix.npy", "m": m,
                         "norm2": float(np.linalg.norm(A.astype(np.float64), 2) ** 2)}

    info = {"d": d, "shape": shape, "K": K, "noise_std": sig, "seed": args.seed, "mean_scale": args.mean_scale,
            "var_range": [lo, hi], "truth_component": int(k), "operators": ops}
    with open(os.path.join(args.out, "problem.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {args.out}: d={d} shape={shape} K={K} operators={list(ops)}")


if __name__ == "__main__":
    main()
