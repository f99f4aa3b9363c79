#!/usr/bin/python3
"""ALMC in plain PyTorch: the reference a researcher would write, for speed and agreement checks.

Run with Debian's Python (/usr/bin/python3: torch 1.13, numpy). Same files and parameters as
`almc sample` (ALGORITHMS.md Sec. 3):

    /usr/bin/python3 bench/reference/almc_ref.py --prior P/gmm.json --operator mask:P/mask.npy \
        --y P/y_mask.npy --noise-std 0.1 --kappa 10 --delta 1e-3 --chains 4000 --seed 0 \
        --out samples.npy --mean mean.npy --json timing.json [--impl eager|jit|compile] [--device cuda]

Algorithm (exactly Sec. 3):
  x ~ N(0, I);  L = ||A||^2 / sigma_y^2,  h_ws = 0.5 / (1 + L),  N_ws = ceil(10 (1 + L));
  warm start N_ws times: x <- x + h_ws (-x - grad R(x)) + sqrt(2 h_ws) xi;
  annealing for i = N, ..., M+1 (N = round(kappa T / delta), M = round(kappa tau / delta)), t_i = i delta / kappa:
      x <- x + delta (s(x, t_i) - grad R(x)) + sqrt(2 delta) xi,        -grad R(x) = A^T (y - A x) / sigma_y^2.
  Output: the last iterate.
Priors: --prior gmm.json (exact OU-noised GMM score, ALGORITHMS.md T4, log-sum-exp responsibilities), or
  --torch-model demo/digits_score.onnx (the demo network rebuilt in torch from the weights stored in its
  ONNX file, or from a .pt state dict; eps output, OU/VP time). torch 1.13 has no ONNX importer, so
  only the demo architecture (demo/train_digits.py ScoreMLP) can be loaded this way.
Operators: identity | mask:FILE.npy (length d, y has length d) | downsample:K (K x K average pooling of
  x viewed as --shape C,H,W; y has C*(H/K)*(W/K) entries) | matrix:FILE.npy ([m, d]).
Implementations: eager (default); jit = the step function traced with torch.jit.trace (the compiled
  variant available on torch 1.13); compile = torch.compile (torch >= 2.0 only; "torch.compile
  unavailable in torch 1.13" is reported otherwise).
Timing: a short warm-up (a few steps, not counted), then the warm start and the annealing loop are
  timed together; CUDA is synchronised before reading the clock. The random numbers come from
  torch's generator, so samples agree with almc in law, not bit for bit.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------- priors

class GMMScore(torch.nn.Module):
    """s(x, t) of p_t = sum_k w_k N(e^{-t} mu_k, S_k e^{-2t} + (1 - e^{-2t}) I), diagonal S_k.

    Written with matrix products (no [n, K, d] temporaries):
      log N_k(x) = -0.5 [x^2 . (1/S_k) - 2 x . (a mu_k / S_k) + a^2 mu_k^2 . (1/S_k)] - 0.5 sum log(2 pi S_k)
      s(x) = -x * (r @ 1/S) + r @ (a mu / S)
    """

    def __init__(self, weights, means, variances):
        super().__init__()
        self.register_buffer("logw", torch.log(weights / weights.sum()))
        self.register_buffer("mu", means)
        self.register_buffer("var", variances)

    def forward(self, x, t):
        a = torch.exp(-t)
        a2 = a * a
        S = a2 * self.var + (1.0 - a2)                        # [K, d]
        P = 1.0 / S
        amu = a * self.mu
        PM = amu * P                                          # [K, d]
        const = (amu * PM).sum(1) + torch.log(S).sum(1) + self.mu.shape[1] * math.log(2 * math.pi)
        logp = -0.5 * ((x * x) @ P.t() - 2.0 * (x @ PM.t()) + const) + self.logw   # [n, K]
        r = torch.softmax(logp, dim=1)
        return -x * (r @ P) + r @ PM


class EpsNetScore(torch.nn.Module):
    """Score from a network predicting eps in the OU/VP convention: s = -eps(x, t) / sqrt(1 - e^{-2t})."""

    def __init__(self, net, shape):
        super().__init__()
        self.net = net
        self.shape = shape

    def forward(self, x, t):
        n = x.shape[0]
        eps = self.net(x.reshape((n,) + tuple(self.shape)), t.expand(n))
        return -eps.reshape(n, -1) / torch.sqrt(-torch.expm1(-2.0 * t))


def load_gmm(path):
    with open(path) as f:
        g = json.load(f)
    w = torch.tensor(g["weights"], dtype=torch.float64)
    mu = torch.tensor(g["means"], dtype=torch.float64)
    if "variances" in g:
        v = torch.tensor(g["variances"], dtype=torch.float64)
    else:
        v = torch.tensor(g["stds"], dtype=torch.float64) ** 2
    if v.dim() == 1:
        v = v[:, None].expand_as(mu).clone()
    return w, mu, v


def load_torch_model(path):
    """The demo ScoreMLP (demo/train_digits.py) with weights from its ONNX export or a torch state dict."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "demo"))
    from train_digits import ScoreMLP, load_onnx_weights, H, W  # noqa: E402
    if path.endswith(".onnx"):
        net = load_onnx_weights(path)   # initializer names are the state-dict keys
    else:
        sd = torch.load(path, map_location="cpu")
        width = sd["inp.weight"].shape[0]
        n_blocks = sum(1 for k in sd if k.startswith("lins.") and k.endswith(".weight"))
        net = ScoreMLP(width=width, n_blocks=n_blocks)
        net.load_state_dict(sd)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, (1, H, W)


# ----------------------------------------------------------------------------------------- operators

class Identity(torch.nn.Module):
    def forward(self, x):
        return x

    def adjoint(self, r):
        return r


class Mask(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.register_buffer("m", m)

    def forward(self, x):
        return x * self.m

    def adjoint(self, r):
        return r * self.m


class Downsample(torch.nn.Module):
    def __init__(self, k, shape):
        super().__init__()
        self.k, self.shape = k, tuple(shape)

    def forward(self, x):
        n = x.shape[0]
        return F.avg_pool2d(x.reshape((n,) + self.shape), self.k).reshape(n, -1)

    def adjoint(self, r):
        n = r.shape[0]
        C, H, W = self.shape
        r = r.reshape(n, C, H // self.k, W // self.k)
        return F.interpolate(r, scale_factor=self.k, mode="nearest").reshape(n, -1) / (self.k * self.k)


class Matrix(torch.nn.Module):
    def __init__(self, A):
        super().__init__()
        self.register_buffer("A", A)

    def forward(self, x):
        return x @ self.A.t()

    def adjoint(self, r):
        return r @ self.A


def make_operator(spec, d, shape, device, dtype):
    """Returns (operator module, ||A||^2)."""
    if spec == "identity":
        return Identity(), 1.0
    kind, _, arg = spec.partition(":")
    if kind == "mask":
        m = torch.tensor(np.load(arg).reshape(-1), dtype=dtype, device=device)
        if m.numel() != d:
            raise SystemExit(f"mask has {m.numel()} entries, prior has d = {d}")
        return Mask(m), float(m.abs().max()) ** 2
    if kind == "downsample":
        k = int(arg)
        if shape is None or int(np.prod(shape)) != d or shape[1] % k or shape[2] % k:
            raise SystemExit(f"downsample:{k} needs --shape C,H,W with C*H*W = d and H, W divisible by {k}")
        return Downsample(k, shape), 1.0 / (k * k)
    if kind == "matrix":
        A = torch.tensor(np.load(arg), dtype=torch.float64)
        if A.dim() != 2 or A.shape[1] != d:
            raise SystemExit(f"matrix has shape {tuple(A.shape)}, expected [m, {d}]")
        norm2 = float(torch.linalg.matrix_norm(A, ord=2)) ** 2
        return Matrix(A.to(device=device, dtype=dtype)), norm2
    raise SystemExit(f"unknown operator {spec!r}")


# ----------------------------------------------------------------------------------------- sampler

class Step(torch.nn.Module):
    """One annealing step x <- x + h (s(x, t) + A^T (y - A x) / sigma^2) + sqrt(2 h) xi."""

    def __init__(self, score, op, y, sigma):
        super().__init__()
        self.score, self.op = score, op
        self.register_buffer("y", y)
        self.inv_s2 = 1.0 / (sigma * sigma)

    def forward(self, x, t, h, xi):
        g = self.op.adjoint(self.y - self.op(x)) * self.inv_s2
        return x + h * (self.score(x, t) + g) + torch.sqrt(2.0 * h) * xi


class WarmStep(torch.nn.Module):
    """x <- x + h (-x - grad R(x)) + sqrt(2 h) xi (target N(0, I) exp(-R))."""

    def __init__(self, op, y, sigma):
        super().__init__()
        self.op = op
        self.register_buffer("y", y)
        self.inv_s2 = 1.0 / (sigma * sigma)

    def forward(self, x, h, xi):
        g = self.op.adjoint(self.y - self.op(x)) * self.inv_s2
        return x + h * (g - x) + torch.sqrt(2.0 * h) * xi


def run_almc(step, warm, n, d, L, kappa, delta, t_start, t_stop, gen, device, dtype,
             warm_steps=None, warm_h=None, sync=lambda: None):
    h_ws = warm_h if warm_h is not None else 0.5 / (1.0 + L)
    n_ws = warm_steps if warm_steps is not None else math.ceil(10 * (1.0 + L))
    N, M = round(kappa * t_start / delta), round(kappa * t_stop / delta)
    x = torch.randn(n, d, generator=gen, device=device, dtype=dtype)
    hw = torch.tensor(h_ws, device=device, dtype=dtype)
    ha = torch.tensor(delta, device=device, dtype=dtype)
    xi = torch.empty_like(x)
    with torch.no_grad():
        for _ in range(n_ws):
            xi.normal_(generator=gen)
            x = warm(x, hw, xi)
        # the level as a device tensor, computed on the host (no per-step host<->device copies
        # beyond the scalar fill that a researcher's loop would do anyway)
        for i in range(N, M, -1):
            t = torch.tensor(i * delta / kappa, device=device, dtype=dtype)
            xi.normal_(generator=gen)
            x = step(x, t, ha, xi)
    sync()
    return x, n_ws, N - M


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", help="GMM JSON")
    ap.add_argument("--torch-model", help="demo ScoreMLP: demo/digits_score.onnx (weights read from it) or a .pt state dict")
    ap.add_argument("--operator", default="identity")
    ap.add_argument("--shape", default=None, help="C,H,W for downsample (default: from the model)")
    ap.add_argument("--y", required=True)
    ap.add_argument("--noise-std", type=float, required=True)
    ap.add_argument("--kappa", type=float, default=10.0)
    ap.add_argument("--delta", type=float, default=1e-3)
    ap.add_argument("--t-start", type=float, default=5.0)
    ap.add_argument("--t-stop", type=float, default=0.01)
    ap.add_argument("--warm-steps", type=int, default=None)
    ap.add_argument("--warm-step", type=float, default=None)
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--impl", default="eager", choices=["eager", "jit", "compile"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before timing")
    ap.add_argument("--out")
    ap.add_argument("--mean")
    ap.add_argument("--json")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.noise_std <= 0 or not math.isfinite(args.noise_std):
        raise SystemExit("--noise-std must be positive")
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else None
    if (args.prior is None) == (args.torch_model is None):
        raise SystemExit("give exactly one of --prior and --torch-model")
    if args.prior:
        w, mu, v = load_gmm(args.prior)
        d = mu.shape[1]
        score = GMMScore(w, mu, v).to(device=device, dtype=dtype)
        prior_desc = f"gmm K={mu.shape[0]}"
    else:
        net, shp = load_torch_model(args.torch_model)
        shape = shape or shp
        d = int(np.prod(shp))
        score = EpsNetScore(net, shp).to(device=device, dtype=dtype)
        prior_desc = f"torch model {os.path.basename(args.torch_model)}"
    op, norm2 = make_operator(args.operator, d, shape, device, dtype)
    op = op.to(device=device, dtype=dtype)
    y = torch.tensor(np.load(args.y).reshape(-1), dtype=dtype, device=device)
    with torch.no_grad():
        m_expected = op(torch.zeros(1, d, device=device, dtype=dtype)).shape[1]
    if y.numel() != m_expected:
        raise SystemExit(f"y has {y.numel()} entries, operator {args.operator} produces {m_expected}")
    if not torch.isfinite(y).all():
        raise SystemExit("y contains NaN or Inf")
    L = norm2 / args.noise_std ** 2

    step = Step(score, op, y, args.noise_std).to(device)
    warm = WarmStep(op, y, args.noise_std).to(device)
    impl_note = "eager"
    if args.impl == "jit":
        ex = torch.randn(args.chains, d, device=device, dtype=dtype)
        one = torch.tensor(1.0, device=device, dtype=dtype)
        with torch.no_grad():
            step = torch.jit.trace(step, (ex, one, one * 1e-3, ex), check_trace=False)
            warm = torch.jit.trace(warm, (ex, one * 1e-3, ex), check_trace=False)
            step = torch.jit.freeze(step.eval()) if hasattr(torch.jit, "freeze") else step
            warm = torch.jit.freeze(warm.eval()) if hasattr(torch.jit, "freeze") else warm
        impl_note = "torch.jit.trace + freeze of the step"
    elif args.impl == "compile":
        if not hasattr(torch, "compile"):
            raise SystemExit(f"torch.compile unavailable in torch {torch.__version__} (needs torch >= 2.0); "
                             "use --impl jit")
        step, warm = torch.compile(step), torch.compile(warm)
        impl_note = "torch.compile"

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    # warm-up (untimed): a few annealing and warm-start steps on a scratch state
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed + 1_000_003)
    with torch.no_grad():
        xs = torch.randn(args.chains, d, generator=gen, device=device, dtype=dtype)
        for j in range(args.warmup_steps):
            xs = step(xs, torch.tensor(1.0 - 0.1 * j, device=device, dtype=dtype),
                      torch.tensor(args.delta, device=device, dtype=dtype), torch.randn_like(xs))
            xs = warm(xs, torch.tensor(1e-3, device=device, dtype=dtype), torch.randn_like(xs))
    sync()
    del xs

    gen.manual_seed(args.seed)
    t0 = time.perf_counter()
    x, n_ws, n_anneal = run_almc(step, warm, args.chains, d, L, args.kappa, args.delta, args.t_start, args.t_stop,
                                 gen, device, dtype, args.warm_steps, args.warm_step, sync)
    secs = time.perf_counter() - t0
    xh = x.detach().to("cpu", torch.float32).numpy()
    if not np.isfinite(xh).all():
        print("warning: some chains diverged (NaN/Inf); is delta * (Lipschitz of the drift) < 2?", file=sys.stderr)
    out_shape = (args.chains,) + tuple(shape) if (shape and args.torch_model) else (args.chains, d)
    if args.out:
        np.save(args.out, xh.reshape(out_shape))
    if args.mean:
        np.save(args.mean, xh.mean(0).reshape(out_shape[1:]))
    steps = n_ws + n_anneal
    res = {"impl": args.impl, "impl_note": impl_note, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
           "torch": torch.__version__, "dtype": args.dtype, "prior": prior_desc, "operator": args.operator,
           "d": d, "chains": args.chains, "kappa": args.kappa, "delta": args.delta, "t_start": args.t_start,
           "t_stop": args.t_stop, "L": L, "warm_steps": n_ws, "anneal_steps": n_anneal, "steps": steps,
           "seconds": secs, "steps_per_s": steps / secs, "samples_per_s": args.chains / secs,
           "score_evals_per_s": args.chains * n_anneal / secs, "chain_steps_per_s": args.chains * steps / secs}
    if not hasattr(torch, "compile"):
        res["compile_note"] = f"torch.compile unavailable in torch {torch.__version__}"
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print(f"{args.impl}: {steps} steps ({n_ws} warm + {n_anneal} annealing) x {args.chains} chains, d={d}: "
          f"{secs:.3f} s, {steps / secs:.1f} steps/s, {args.chains / secs:.1f} samples/s")


if __name__ == "__main__":
    main()
