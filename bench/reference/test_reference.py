#!/usr/bin/python3
"""Quick self-checks of the reference (seconds; /usr/bin/python3 bench/reference/test_reference.py).

1. every operator satisfies <A x, v> = <x, A^T v> (T7);
2. the GMM score equals the autograd gradient of log p_t (float64, T4);
3. gmm_posterior's diagonal (mask) and dense formulas agree on the same problem, and its dense mean matches
   the brute-force mean of mu_t computed on a grid in d = 2.
"""
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import almc_ref  # noqa: E402
import gmm_posterior  # noqa: E402


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        check.failed = True


check.failed = False


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dt = torch.float64
    C, H, W = 2, 6, 8
    d = C * H * W
    ops = {"identity": almc_ref.Identity(),
           "mask": almc_ref.Mask(torch.tensor(rng.random(d) < 0.5, dtype=dt)),
           "downsample": almc_ref.Downsample(2, (C, H, W)),
           "matrix": almc_ref.Matrix(torch.randn(7, d, dtype=dt))}
    for name, op in ops.items():
        x = torch.randn(3, d, dtype=dt)
        v = torch.randn_like(op(x))
        lhs = (op(x) * v).sum()
        rhs = (x * op.adjoint(v)).sum()
        check(f"adjoint {name}", abs(float(lhs - rhs)) < 1e-10 * (1 + abs(float(lhs))), f"{float(lhs):.6f} {float(rhs):.6f}")

    K, d = 5, 6
    w = torch.rand(K, dtype=dt) + 0.1
    mu = 2 * torch.randn(K, d, dtype=dt)
    var = 0.05 + 0.5 * torch.rand(K, d, dtype=dt)
    sc = almc_ref.GMMScore(w, mu, var)
    for t in (0.01, 0.3, 2.0):
        x = torch.randn(4, d, dtype=dt, requires_grad=True)
        a = math.exp(-t)
        S = a * a * var + 1 - a * a
        logp = torch.logsumexp(torch.log(w / w.sum())
                               - 0.5 * (((x[:, None] - a * mu[None]) ** 2) / S[None] + torch.log(2 * math.pi * S[None])).sum(-1), 1)
        g, = torch.autograd.grad(logp.sum(), x)
        s = sc(x.detach(), torch.tensor(t, dtype=dt))
        err = float((g - s).abs().max())
        check(f"GMM score vs autograd at t={t}", err < 1e-8, f"max err {err:.2e}")

    # posterior: mask via the diagonal path and via an explicit matrix
    y = rng.standard_normal(d)
    m = (rng.random(d) < 0.5).astype(float)
    y *= m
    wn, mun, varn = (w / w.sum()).numpy(), mu.numpy(), var.numpy()
    pd = gmm_posterior.posterior(wn, mun, varn, "diag", m, y, 0.3, 0.05)
    pf = gmm_posterior.posterior(wn, mun, varn, "dense", np.diag(m), y, 0.3, 0.05)
    err = max(np.abs(pd["weights"] - pf["weights"]).max(), np.abs(pd["mean"] - pf["mean"]).max())
    check("posterior diagonal == dense (mask)", err < 1e-9, f"max err {err:.2e}")

    # brute force in d = 2 with a dense A
    K2 = 3
    w2 = np.array([0.2, 0.5, 0.3])
    mu2 = np.array([[-1.0, 0.5], [1.0, 1.0], [0.0, -1.5]])
    v2 = np.array([[0.3, 0.1], [0.2, 0.4], [0.5, 0.2]])
    A = np.array([[1.0, 0.5]])
    y2 = np.array([0.4])
    sig, t = 0.5, 0.2
    p = gmm_posterior.posterior(w2, mu2, v2, "dense", A, y2, sig, t)
    g1 = np.linspace(-6, 6, 801)
    X, Y = np.meshgrid(g1, g1, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    a = math.exp(-t)
    S = a * a * v2 + 1 - a * a
    dens = np.zeros(len(pts))
    for k in range(K2):
        dens += w2[k] * np.exp(-0.5 * (((pts - a * mu2[k]) ** 2) / S[k]).sum(1)) / np.sqrt(np.prod(2 * math.pi * S[k]))
    dens *= np.exp(-0.5 * ((pts @ A.T - y2) ** 2).sum(1) / sig ** 2)
    bf = (pts * dens[:, None]).sum(0) / dens.sum()
    err = float(np.abs(bf - p["mean"]).max())
    check("posterior mean vs grid (d=2, dense A)", err < 1e-5, f"max err {err:.2e}")
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
