#!/usr/bin/python3
"""Exact posterior of a GMM prior under a linear Gaussian measurement (ALGORITHMS.md T4), and a checker.

Run with Debian's Python (/usr/bin/python3; numpy only, float64 throughout).

    mu_t(x) ∝ p_t(x) exp(-||y - A x||^2 / (2 sigma_y^2)),  p_t = sum_k w_k N(e^{-t} mu_k, S_{k,t}),
    S_{k,t} = e^{-2t} S_k + (1 - e^{-2t}) I,
    C_k = (S_{k,t}^{-1} + A^T A / sigma_y^2)^{-1},  M_k = C_k (S_{k,t}^{-1} e^{-t} mu_k + A^T y / sigma_y^2),
    w'_k ∝ w_k N(y; A e^{-t} mu_k, sigma_y^2 I + A S_{k,t} A^T).

identity and mask give diagonal C_k (any d); downsample and matrix use dense d x d algebra (small d).

    /usr/bin/python3 bench/reference/gmm_posterior.py --prior P/gmm.json --operator mask:P/mask.npy \
        --y P/y_mask.npy --noise-std 0.1 --t 0.01 [--mean exact_mean.npy] [--json post.json] \
        [--check samples.npy ...]

--check compares the samples' empirical mean with the exact mean coordinate by coordinate, in units of
the Monte Carlo standard error sqrt(Var_mu_t[x_j] / n) (assumes independent chains), and the chains'
average responsibility of each component of mu_t with w'_k (equal in expectation when x ~ mu_t).
Exit status 1 when a check fails (|z| > --z-max for more than 0.5% of coordinates, or the largest |z|
above a Bonferroni bound, or a weight off by more than 4 standard errors + 0.005).
"""
import argparse
import json
import math
import sys

import numpy as np


def load_gmm(path):
    with open(path) as f:
        g = json.load(f)
    w = np.asarray(g["weights"], dtype=np.float64)
    mu = np.asarray(g["means"], dtype=np.float64)
    v = np.asarray(g["variances"], dtype=np.float64) if "variances" in g else np.asarray(g["stds"], dtype=np.float64) ** 2
    if v.ndim == 1:
        v = np.repeat(v[:, None], mu.shape[1], axis=1)
    return w / w.sum(), mu, v


def dense_operator(spec, d, shape):
    """The operator as an explicit [m, d] matrix (downsample and matrix) or as a diagonal [d] (identity, mask)."""
    if spec == "identity":
        return "diag", np.ones(d)
    kind, _, arg = spec.partition(":")
    if kind == "mask":
        return "diag", np.load(arg).reshape(-1).astype(np.float64)
    if kind == "matrix":
        return "dense", np.load(arg).astype(np.float64)
    if kind == "downsample":
        k = int(arg)
        C, H, W = shape
        A = np.zeros((C * (H // k) * (W // k), d))
        r = 0
        for c in range(C):
            for i in range(H // k):
                for j in range(W // k):
                    for a in range(k):
                        for b in range(k):
                            A[r, c * H * W + (i * k + a) * W + (j * k + b)] = 1.0 / (k * k)
                    r += 1
        return "dense", A
    raise SystemExit(f"unknown operator {spec!r}")


def posterior(w, mu, var, kind, A, y, sigma, t):
    """Returns dict: weights [K], means [K, d], cov ([K, d] diagonal or [K, d, d]), mean [d], var [d]."""
    K, d = mu.shape
    a = math.exp(-t)
    S = a * a * var + (1.0 - a * a)                                     # [K, d]
    s2 = sigma * sigma
    logw = np.log(w)
    if kind == "diag":
        m = A
        if y.size != d:
            raise SystemExit(f"y has {y.size} entries, expected {d}")
        Cd = 1.0 / (1.0 / S + (m * m)[None] / s2)                      # [K, d]
        M = Cd * (a * mu / S + (m * y)[None] / s2)
        # evidence: coordinates with m_j = 0 contribute a k-independent factor (y_j is 0 there)
        ev_var = s2 + (m * m)[None] * S                                 # [K, d]
        resid = y[None] - m[None] * a * mu
        logev = -0.5 * ((resid ** 2) / ev_var + np.log(2 * math.pi * ev_var)).sum(1)
        cov = Cd
        within_var = Cd
    else:
        if A.shape[1] != d or y.size != A.shape[0]:
            raise SystemExit(f"operator {A.shape} and y {y.shape} do not fit d = {d}")
        AtA = A.T @ A / s2
        Aty = A.T @ y / s2
        M = np.empty((K, d))
        cov = np.empty((K, d, d))
        logev = np.empty(K)
        for k in range(K):
            P = np.diag(1.0 / S[k]) + AtA
            Lc = np.linalg.cholesky(P)
            Ck = np.linalg.inv(P)
            Ck = 0.5 * (Ck + Ck.T)
            cov[k] = Ck
            M[k] = np.linalg.solve(Lc.T, np.linalg.solve(Lc, a * mu[k] / S[k] + Aty))
            E = s2 * np.eye(A.shape[0]) + (A * S[k][None]) @ A.T
            Le = np.linalg.cholesky(E)
            r = np.linalg.solve(Le, y - A @ (a * mu[k]))
            logev[k] = -0.5 * (r @ r) - np.log(np.diag(Le)).sum() - 0.5 * A.shape[0] * math.log(2 * math.pi)
        within_var = np.stack([np.diag(c) for c in cov])
    lw = logw + logev
    lw -= lw.max()
    wp = np.exp(lw)
    wp /= wp.sum()
    mean = wp @ M
    var_tot = wp @ (within_var + M * M) - mean * mean
    return {"weights": wp, "means": M, "cov": cov, "cov_kind": kind, "mean": mean, "var": np.maximum(var_tot, 0.0)}


def component_log_resp(post, x):
    """log responsibilities of the posterior components for samples x [n, d] (diagonal or dense)."""
    M, cov, wp = post["means"], post["cov"], post["weights"]
    K = M.shape[0]
    out = np.empty((x.shape[0], K))
    for k in range(K):
        diff = x - M[k]
        if post["cov_kind"] == "diag":
            ll = -0.5 * ((diff ** 2) / cov[k] + np.log(cov[k])).sum(1)
        else:
            Lc = np.linalg.cholesky(cov[k])
            z = np.linalg.solve(Lc, diff.T)
            ll = -0.5 * (z * z).sum(0) - np.log(np.diag(Lc)).sum()
        out[:, k] = ll + (np.log(wp[k]) if wp[k] > 0 else -np.inf)
    return out


def check_samples(post, x, z_max=4.0):
    n, d = x.shape
    emp = x.mean(0)
    se = np.sqrt(post["var"] / n)
    z = (emp - post["mean"]) / np.maximum(se, 1e-300)
    # Bonferroni over d coordinates at a 1e-3 family level
    z_bonf = max(z_max, _norm_isf(1e-3 / (2 * d)))
    # E_{x ~ mu_t}[r_k(x)] = w'_k exactly, so the average responsibility is an unbiased weight estimate
    # even where components overlap (a hard argmax assignment is not)
    lr = component_log_resp(post, x)
    lr -= lr.max(1, keepdims=True)
    r = np.exp(lr)
    r /= r.sum(1, keepdims=True)
    frac = r.mean(0)
    wp = post["weights"]
    tol = 4 * r.std(0) / math.sqrt(n) + 0.005
    res = {"n": n, "d": d,
           "mean_abs_err_max": float(np.abs(emp - post["mean"]).max()),
           "mean_rms_err": float(np.sqrt(((emp - post["mean"]) ** 2).mean())),
           "mc_se_rms": float(np.sqrt((se ** 2).mean())),
           "z_max": float(np.abs(z).max()), "z_rms": float(np.sqrt((z ** 2).mean())),
           "frac_z_above": float((np.abs(z) > z_max).mean()), "z_bonferroni": z_bonf,
           "weights_exact": [round(float(v), 4) for v in wp],
           "weights_empirical": [round(float(v), 4) for v in frac],
           "weight_tv": float(0.5 * np.abs(frac - wp).sum())}
    res["mean_ok"] = bool(res["frac_z_above"] <= 0.005 + 3 * math.sqrt(0.005 / d) and res["z_max"] <= z_bonf)
    res["weights_ok"] = bool((np.abs(frac - wp) <= tol).all())
    res["sample_var_ratio_median"] = float(np.median(x.var(0) / np.maximum(post["var"], 1e-300)))
    return res


def _norm_isf(p):
    """Inverse survival function of N(0,1) by bisection (no scipy needed)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(mid / math.sqrt(2)) > p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", required=True)
    ap.add_argument("--operator", default="identity")
    ap.add_argument("--shape", default=None, help="C,H,W for downsample")
    ap.add_argument("--y", required=True)
    ap.add_argument("--noise-std", type=float, required=True)
    ap.add_argument("--t", type=float, default=0.01, help="OU time of the noised prior (ALMC's t_stop)")
    ap.add_argument("--mean", help="write the exact posterior mean [d] (float32 .npy)")
    ap.add_argument("--json", help="write weights, component means and the check results")
    ap.add_argument("--check", nargs="*", default=[], help="samples .npy files [n, d] (or [n, C, H, W])")
    ap.add_argument("--z-max", type=float, default=4.0)
    ap.add_argument("--max-dense-d", type=int, default=2048)
    args = ap.parse_args()

    w, mu, var = load_gmm(args.prior)
    d = mu.shape[1]
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else None
    if args.operator.startswith("downsample") and shape is None:
        side = int(round(math.sqrt(d)))
        if side * side != d:
            raise SystemExit("downsample needs --shape")
        shape = (1, side, side)
    kind, A = dense_operator(args.operator, d, shape)
    if kind == "dense" and d > args.max_dense_d:
        raise SystemExit(f"dense posterior at d = {d} is too large (limit --max-dense-d {args.max_dense_d})")
    y = np.load(args.y).reshape(-1).astype(np.float64)
    post = posterior(w, mu, var, kind, A, y, args.noise_std, args.t)
    print(f"exact mu_t at t = {args.t}: weights {np.round(post['weights'], 4).tolist()}")
    out = {"t": args.t, "weights": post["weights"].tolist(), "mean": post["mean"].tolist(),
           "var": post["var"].tolist(), "component_means": post["means"].tolist(), "checks": {}}
    if args.mean:
        np.save(args.mean, post["mean"].astype(np.float32))
    ok = True
    for path in args.check:
        x = np.load(path).astype(np.float64)
        x = x.reshape(x.shape[0], -1)
        r = check_samples(post, x, args.z_max)
        out["checks"][path] = r
        ok &= r["mean_ok"] and r["weights_ok"]
        print(f"{path}: n={r['n']} mean err rms {r['mean_rms_err']:.4g} (MC s.e. rms {r['mc_se_rms']:.4g}), "
              f"|z| max {r['z_max']:.2f} (bound {r['z_bonferroni']:.2f}), z rms {r['z_rms']:.2f}, "
              f"var ratio {r['sample_var_ratio_median']:.3f}; weights exact {r['weights_exact']} "
              f"empirical {r['weights_empirical']} (TV {r['weight_tv']:.3f}) -> "
              f"mean {'ok' if r['mean_ok'] else 'FAIL'}, weights {'ok' if r['weights_ok'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
