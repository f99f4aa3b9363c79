#!/usr/bin/python3
"""Train the demo score network on scikit-learn's 8x8 digits and export it to ONNX.

Run with Debian's Python (it has torch, onnx, numpy, scikit-learn, matplotlib):

    /usr/bin/python3 demo/train_digits.py            # train, export, check (~6-8 min on 2 cores)
    /usr/bin/python3 demo/train_digits.py --check-only   # reload the exported weights, rerun the checks

Nothing is downloaded: load_digits ships its data with scikit-learn.

What it produces (next to this file):
    digits_score.onnx  the network, opset 17, inputs x [n,1,16,16] float32 and t [n] float32 (OU time),
                       output eps [n,1,16,16] (noise prediction); score = -eps / sqrt(1 - exp(-2 t))
    test_images.npy    held-out images, float32 [8,1,16,16] in [-1,1], never seen in training
    model.json         how to call the network, training details, the sanity figures below
    sanity.png         prior samples, inpainting and 2x super-resolution with a torch ALMC loop

Convention (ALGORITHMS.md Sec. 2): x_t = e^{-t} x0 + sqrt(1 - e^{-2t}) z, i.e. VP with alpha_bar = e^{-2t};
the network is trained to predict z from (x_t, t) for t in [0.005, 5].
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
H = W = 16
D = H * W
T_MIN, T_MAX = 0.005, 5.0
N_TEST = 8
SPLIT_SEED = 20240607

# The ops the engine's built-in ONNX executor implements. The export must stay inside this set.
ALLOWED_OPS = {
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Sin",
    "Cos", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Elu", "Softplus", "Erf", "Where", "Softmax",
    "LayerNormalization", "InstanceNormalization", "Conv", "ConvTranspose", "Pad", "Resize", "AveragePool",
    "MaxPool", "Concat", "Split", "Reshape", "Flatten", "Transpose", "Unsqueeze", "Squeeze", "Gather", "Shape",
    "Slice", "Expand", "Cast", "Constant", "ConstantOfShape", "Range", "Identity", "ReduceMean", "ReduceSum",
}


# ----------------------------------------------------------------------------------------- data

def load_data():
    """Digits scaled to [-1, 1], bilinearly upsampled 8x8 -> 16x16; a fixed held-out split."""
    from sklearn.datasets import load_digits
    raw = load_digits()
    x8 = torch.tensor(raw.images, dtype=torch.float32) / 16.0 * 2.0 - 1.0          # [1797, 8, 8]
    x16 = F.interpolate(x8[:, None], size=(H, W), mode="bilinear", align_corners=False)
    x16 = x16.clamp(-1.0, 1.0)
    # one image from each of N_TEST distinct classes, chosen with a fixed seed
    rng = np.random.default_rng(SPLIT_SEED)
    classes = np.sort(rng.choice(10, N_TEST, replace=False))
    test_idx = np.array([rng.choice(np.flatnonzero(raw.target == c)) for c in classes])
    train_idx = np.setdiff1d(np.arange(len(x16)), test_idx)
    return x16[train_idx], x16[test_idx], raw.target[test_idx], test_idx


def augment(x):
    """Random shifts of up to one pixel (16x16 grid), background value -1 fills the border."""
    n = x.shape[0]
    pad = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx = torch.randint(0, 3, (n,))
    dy = torch.randint(0, 3, (n,))
    out = torch.empty_like(x)
    for a in range(3):
        for b in range(3):
            sel = (dy == a) & (dx == b)
            if sel.any():
                out[sel] = pad[sel, :, a:a + H, b:b + W]
    return out


# ----------------------------------------------------------------------------------------- model

class ScoreMLP(nn.Module):
    """eps_hat(x_t, t): residual MLP on the flattened image with a sinusoidal embedding of log t.

    Every block: h <- h + Linear(SiLU(LayerNorm(h) + Linear_k(temb))). About 0.68 M multiply-adds
    per image (width 384, 3 blocks), so ~1.4 MFLOP per score evaluation, 2.7 MB of float32 weights.
    """

    def __init__(self, d=D, width=384, n_blocks=3, n_freq=16, temb_dim=32):
        super().__init__()
        # geometric frequencies for log t, which spans about [-5.3, 1.6]
        self.register_buffer("freqs", torch.exp(torch.linspace(math.log(0.25), math.log(16.0), n_freq)))
        self.temb = nn.Sequential(nn.Linear(2 * n_freq + 1, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim), nn.SiLU())
        self.inp = nn.Linear(d, width)
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(n_blocks)])
        self.tproj = nn.ModuleList([nn.Linear(temb_dim, width) for _ in range(n_blocks)])
        self.lins = nn.ModuleList([nn.Linear(width, width) for _ in range(n_blocks)])
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t):
        n = x.shape[0]
        lt = torch.log(t.reshape(-1, 1))                                   # [n, 1]
        ang = lt * self.freqs                                              # [n, F]
        e = self.temb(torch.cat([torch.sin(ang), torch.cos(ang), lt * 0.25], dim=1))
        h = self.inp(torch.flatten(x, 1))
        for norm, tp, lin in zip(self.norms, self.tproj, self.lins):
            h = h + lin(F.silu(norm(h) + tp(e)))
        y = self.out(F.silu(self.out_norm(h)))
        return y.reshape(-1, 1, H, W)

    def flops_per_sample(self):
        macs = sum(m.in_features * m.out_features for m in self.modules() if isinstance(m, nn.Linear))
        return 2 * macs


def load_onnx_weights(path):
    """A ScoreMLP with the weights stored in the exported ONNX file (initializer names = state-dict keys)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    sd = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    width = sd["inp.weight"].shape[0]
    n_blocks = sum(1 for k in sd if k.startswith("lins.") and k.endswith(".weight"))
    model = ScoreMLP(width=width, n_blocks=n_blocks)
    model.load_state_dict(sd)
    model.eval()
    return model


def sigma_of(t):
    return torch.sqrt(-torch.expm1(-2.0 * t))


def sample_t(n):
    """Half log-uniform (detail at small t), half uniform (where ALMC spends most of its steps)."""
    u = torch.rand(n)
    t_log = torch.exp(math.log(T_MIN) + u * (math.log(T_MAX) - math.log(T_MIN)))
    t_uni = T_MIN + u * (T_MAX - T_MIN)
    pick = torch.rand(n) < 0.5
    return torch.where(pick, t_log, t_uni)


def train(model, x_train, steps, batch, lr, time_budget, log_every=500):
    params = [p for p in model.parameters()]
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.time()
    run_loss, history = None, []
    step = 0
    for step in range(1, steps + 1):
        # schedule by whichever of step count and wall time is further along
        frac = max(step / steps, (time.time() - t0) / time_budget)
        if frac >= 1.0:
            break
        warm = min(1.0, step / 200)
        for g in opt.param_groups:
            g["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * frac))
        idx = torch.randint(0, len(x_train), (batch,))
        x0 = augment(x_train[idx]) if step % 2 else x_train[idx]
        t = sample_t(batch)
        z = torch.randn_like(x0)
        xt = torch.exp(-t)[:, None, None, None] * x0 + sigma_of(t)[:, None, None, None] * z
        loss = F.mse_loss(model(xt, t), z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, [p.detach() for p in params], alpha=1 - decay)
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % log_every == 0:
            history.append((step, round(time.time() - t0, 1), run_loss))
            print(f"  step {step:6d}  {time.time() - t0:6.1f}s  loss {run_loss:.4f}  lr {opt.param_groups[0]['lr']:.2e}",
                  flush=True)
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    return step, time.time() - t0, run_loss, history


@torch.no_grad()
def eval_loss(model, x, n_rep=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    tot = 0.0
    for _ in range(n_rep):
        u = torch.rand(len(x), generator=g)
        t = torch.exp(math.log(T_MIN) + u * (math.log(T_MAX) - math.log(T_MIN)))
        z = torch.randn(x.shape, generator=g)
        xt = torch.exp(-t)[:, None, None, None] * x + sigma_of(t)[:, None, None, None] * z
        tot += F.mse_loss(model(xt, t), z).item()
    return tot / n_rep


# ----------------------------------------------------------------------------------------- export and checks

def export(model, path):
    import onnx
    model.eval()
    x = torch.randn(4, 1, H, W)
    t = torch.tensor([0.01, 0.1, 1.0, 5.0])
    torch.onnx.export(model, (x, t), path, opset_version=17, input_names=["x", "t"], output_names=["eps"],
                      dynamic_axes={"x": {0: "n"}, "t": {0: "n"}, "eps": {0: "n"}}, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    bad = [o for o in ops if o not in ALLOWED_OPS]
    if bad:
        raise SystemExit(f"export uses ops the engine does not implement: {bad}")
    print(f"  ONNX ops: {ops}")
    print(f"  onnx.checker: ok; size {os.path.getsize(path) / 1e6:.2f} MB")
    return m, ops


def numpy_eval(m, feeds):
    """A small independent evaluator of the exported graph (onnx 1.12 has no onnx.reference).

    Implements only the ops this export uses; it is written from the ONNX operator spec, not from
    torch, so agreement with torch checks the export itself.
    """
    from onnx import numpy_helper
    env = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    env.update(feeds)

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx_attr_value(a)
        return default

    for node in m.graph.node:
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Constant":
            out = numpy_helper.to_array(attr(node, "value"))
        elif op == "Gemm":
            a, b = ins[0], ins[1]
            if attr(node, "transA", 0): a = a.T
            if attr(node, "transB", 0): b = b.T
            out = attr(node, "alpha", 1.0) * (a @ b)
            if len(ins) > 2 and ins[2] is not None:
                out = out + attr(node, "beta", 1.0) * ins[2]
        elif op == "MatMul":
            out = ins[0] @ ins[1]
        elif op in ("Add", "Sub", "Mul", "Div"):
            out = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](ins[0], ins[1])
        elif op in ("Sin", "Cos", "Log", "Exp", "Sqrt", "Tanh", "Neg"):
            out = {"Sin": np.sin, "Cos": np.cos, "Log": np.log, "Exp": np.exp, "Sqrt": np.sqrt, "Tanh": np.tanh,
                   "Neg": np.negative}[op](ins[0])
        elif op == "Sigmoid":
            out = 1.0 / (1.0 + np.exp(-ins[0]))
        elif op == "LayerNormalization":
            axis = attr(node, "axis", -1)
            eps = attr(node, "epsilon", 1e-5)
            x = ins[0]
            axes = tuple(range(axis % x.ndim, x.ndim))
            mu = x.mean(axis=axes, keepdims=True)
            var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
            out = (x - mu) / np.sqrt(var + eps) * ins[1]
            if len(ins) > 2 and ins[2] is not None:
                out = out + ins[2]
        elif op == "Concat":
            out = np.concatenate(ins, axis=attr(node, "axis"))
        elif op == "Flatten":
            axis = attr(node, "axis", 1)
            x = ins[0]
            out = x.reshape(int(np.prod(x.shape[:axis])), -1)
        elif op == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            out = ins[0].reshape(shape)
        elif op == "Unsqueeze":
            out = ins[0]
            for ax in sorted(int(a) % (out.ndim + 1) for a in ins[1]):
                out = np.expand_dims(out, ax)
        elif op == "Shape":
            out = np.array(ins[0].shape, dtype=np.int64)
        elif op == "Gather":
            out = np.take(ins[0], ins[1], axis=attr(node, "axis", 0))
        elif op == "Identity":
            out = ins[0]
        elif op == "Cast":
            out = ins[0].astype({1: np.float32, 7: np.int64, 11: np.float64}[attr(node, "to")])
        else:
            raise NotImplementedError(op)
        env[node.output[0]] = np.asarray(out)
    return {o.name: env[o.name] for o in m.graph.output}


def onnx_attr_value(a):
    from onnx import helper
    return helper.get_attribute_value(a)


def check_export(model, m):
    try:
        import onnx.reference  # noqa: F401  (onnx >= 1.13)
        have_ref = True
    except ImportError:
        have_ref = False
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 1, H, W, generator=g)
    t = torch.tensor([0.005, 0.01, 0.05, 0.3, 1.0, 2.5, 5.0])
    with torch.no_grad():
        ref = model(x, t).numpy()
    res = {}
    if have_ref:
        from onnx.reference import ReferenceEvaluator
        out = ReferenceEvaluator(m).run(None, {"x": x.numpy(), "t": t.numpy()})[0]
        res["onnx_reference_max_abs_err"] = float(np.abs(out - ref).max())
    else:
        print("  onnx.reference unavailable in onnx", __import__("onnx").__version__,
              "- skipped; using this script's numpy evaluator instead")
    out = numpy_eval(m, {"x": x.numpy(), "t": t.numpy()})["eps"]
    err = float(np.abs(out - ref).max())
    res["numpy_eval_max_abs_err"] = err
    print(f"  numpy evaluation of the ONNX graph vs torch: max |diff| = {err:.2e}")
    if not err < 1e-4:
        raise SystemExit("the exported graph disagrees with torch")
    return res


# ----------------------------------------------------------------------------------------- sanity sampling

def make_score(model):
    def score(x, t):
        tt = torch.full((x.shape[0],), float(t))
        return -model(x, tt) / math.sqrt(-math.expm1(-2.0 * t))
    return score


@torch.no_grad()
def almc(score, neg_grad_R, L, n, kappa, delta, T=5.0, tau=0.01, seed=0):
    """ALGORITHMS.md Sec. 3: warm start on N(0,I) exp(-R), then x += delta (s(x,t_i) - grad R) + sqrt(2 delta) xi."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, H, W, generator=g)
    h_ws, n_ws = 0.5 / (1 + L), math.ceil(10 * (1 + L))
    for _ in range(n_ws):
        x = x + h_ws * (-x + neg_grad_R(x)) + math.sqrt(2 * h_ws) * torch.randn(x.shape, generator=g)
    N, M = round(kappa * T / delta), round(kappa * tau / delta)
    c = math.sqrt(2 * delta)
    for i in range(N, M, -1):
        t = i * delta / kappa
        x = x + delta * (score(x, t) + neg_grad_R(x)) + c * torch.randn(x.shape, generator=g)
    return x


def psnr(a, b):
    """PSNR on the [-1, 1] range (peak-to-peak 2)."""
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(4.0 / mse)


def sanity(model, x_test, kappa, delta, chains, out_png, sig=0.05, n_img=2, n_prior=16):
    """One batched ALMC run: n_prior prior chains, then `chains` chains for each of n_img inpainting
    (lower half hidden) and n_img 2x super-resolution problems (2x2 average pooling), noise std sig.
    The warm start uses the largest L of the batch (inpainting, 1/sig^2) for all chains."""
    model.eval()
    score = make_score(model)
    imgs = x_test[:n_img]
    g = torch.Generator().manual_seed(7)
    mask = torch.ones(1, 1, H, W)
    mask[..., H // 2:, :] = 0.0
    y_in = [mask[0] * (x0 + sig * torch.randn(x0.shape, generator=g)) for x0 in imgs]
    y_sr = [F.avg_pool2d(x0[None], 2)[0] + sig * torch.randn(1, H // 2, W // 2, generator=g) for x0 in imgs]
    a = n_prior
    b = a + n_img * chains
    c = b + n_img * chains
    Ym = torch.cat([y.expand(chains, 1, H, W) for y in y_in])            # [n_img*chains, 1, H, W]
    Ys = torch.cat([y[None].expand(chains, 1, H // 2, W // 2) for y in y_sr])

    def neg_grad_R(x):
        out = torch.zeros_like(x)
        out[a:b] = mask * (Ym - mask * x[a:b]) / sig ** 2
        r = Ys - F.avg_pool2d(x[b:c], 2)
        out[b:c] = F.interpolate(r, scale_factor=2, mode="nearest") / 4 / sig ** 2
        return out

    t0 = time.time()
    xs = almc(score, neg_grad_R, 1 / sig ** 2, c, kappa, delta, seed=1)
    res = {"kappa": kappa, "delta": delta, "t_start": 5.0, "t_stop": 0.01, "chains_per_image": chains,
           "noise_std": sig, "sampling_seconds": round(time.time() - t0, 1),
           "psnr_convention": "10 log10(4 / MSE) on the [-1,1] range, against the truth"}
    prior = xs[:a]
    res["prior_sample_range"] = [round(float(prior.min()), 3), round(float(prior.max()), 3)]
    rows_in = [(y_in[j], xs[a + j * chains:a + (j + 1) * chains], imgs[j]) for j in range(n_img)]
    rows_sr = [(F.interpolate(y_sr[j][None], scale_factor=2, mode="nearest")[0],
                xs[b + j * chains:b + (j + 1) * chains], imgs[j]) for j in range(n_img)]
    for name, rows, base in (("inpaint_lower_half", rows_in, "measurement with -1 (background) in the hole"),
                             ("superres_2x", rows_sr, "nearest-neighbour upsampling of y")):
        ps_mean = [psnr(s.mean(0), x0) for _, s, x0 in rows]
        ps_samp = [float(np.mean([psnr(si, x0) for si in s])) for _, s, x0 in rows]
        if name == "inpaint_lower_half":
            ps_base = [psnr(torch.where(mask[0].bool(), yv, -torch.ones_like(yv)), x0) for yv, _, x0 in rows]
        else:
            ps_base = [psnr(yv, x0) for yv, _, x0 in rows]
        res[name] = {"psnr_posterior_mean": [round(v, 2) for v in ps_mean],
                     "psnr_sample_average": [round(v, 2) for v in ps_samp],
                     "psnr_baseline": [round(v, 2) for v in ps_base], "baseline": base}
        print(f"  {name}: PSNR posterior mean {[round(v, 2) for v in ps_mean]}, average sample "
              f"{[round(v, 2) for v in ps_samp]}, baseline ({base}) {[round(v, 2) for v in ps_base]}")
    print(f"  ({res['sampling_seconds']} s)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  matplotlib unavailable: no PNG")
        return res
    ncol = min(8, chains)
    nc = ncol + 3
    fig, axes = plt.subplots(2 + 2 * n_img, nc, figsize=(nc, 2 + 2 * n_img))
    for ax in axes.flat:
        ax.axis("off")
    show = lambda ax, im: ax.imshow(im.reshape(H, W).clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)  # noqa: E731
    for k in range(min(n_prior, 2 * nc)):
        show(axes[k // nc, k % nc], prior[k])
    axes[0, 0].set_title("prior samples", fontsize=7, loc="left")
    for r, (yv, s, x0) in enumerate(rows_in + rows_sr):
        row = axes[2 + r]
        show(row[0], yv)
        for j in range(ncol):
            show(row[1 + j], s[j])
        show(row[ncol + 1], s.mean(0))
        show(row[ncol + 2], x0)
        row[0].set_title("inpaint y" if r < n_img else "2x SR y", fontsize=7)
        row[1].set_title("posterior samples", fontsize=7, loc="left")
        row[ncol + 1].set_title("mean", fontsize=7)
        row[ncol + 2].set_title("truth", fontsize=7)
    plt.tight_layout()
    fig.savefig(out_png, dpi=64)
    plt.close(fig)
    print(f"  wrote {out_png}")
    return res


# ----------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--time-budget", type=float, default=300.0, help="seconds of training at most")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-kappa", type=float, default=2.0)
    ap.add_argument("--check-delta", type=float, default=2e-3)
    ap.add_argument("--check-chains", type=int, default=16)
    ap.add_argument("--check-only", action="store_true",
                    help="load the weights from digits_score.onnx instead of training, rerun export checks and sampling")
    ap.add_argument("--outdir", default=HERE)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, x_test, y_test, test_idx = load_data()
    print(f"digits: {len(x_train)} train, {len(x_test)} held out (indices {test_idx.tolist()}, labels {y_test.tolist()})")

    model = ScoreMLP(width=args.width, n_blocks=args.blocks)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"ScoreMLP: {n_params} parameters, {model.flops_per_sample() / 1e6:.2f} MFLOP per image")
    info_path = os.path.join(args.outdir, "model.json")
    onnx_path = os.path.join(args.outdir, "digits_score.onnx")
    if args.check_only:
        model = load_onnx_weights(onnx_path)
        info = {}
        if os.path.exists(info_path):
            with open(info_path) as f:
                info = json.load(f)
    else:
        t0 = time.time()
        steps, secs, loss, hist = train(model, x_train, args.steps, args.batch, args.lr, args.time_budget)
        print(f"trained {steps} steps in {secs:.1f}s, final running loss {loss:.4f}")
        model.eval()
        info = {"training": {"steps": steps, "seconds": round(secs, 1), "final_running_loss": round(loss, 5),
                             "batch": args.batch, "lr": args.lr, "optimizer": "Adam, cosine decay, EMA 0.999 (exported)",
                             "t_sampling": "half log-uniform, half uniform on [0.005, 5]",
                             "augmentation": "random shifts of up to 1 pixel on half the batches",
                             "loss": "MSE(eps_hat, eps), unweighted", "threads": args.threads, "seed": args.seed,
                             "history": hist, "torch": torch.__version__}}
        info["training"]["eval_loss_train_ema"] = round(eval_loss(model, x_train), 5)
        info["training"]["eval_loss_heldout_ema"] = round(eval_loss(model, x_test), 5)
        print(f"EMA eps-MSE (log-uniform t): train {info['training']['eval_loss_train_ema']}, "
              f"held-out {info['training']['eval_loss_heldout_ema']}")

    print("export:")
    m, ops = export(model, onnx_path)
    checks = check_export(model, m)
    np.save(os.path.join(args.outdir, "test_images.npy"), x_test.numpy().astype(np.float32))

    info.update({
        "file": "digits_score.onnx",
        "inputs": {"x": "float32 [n, 1, 16, 16]", "t": "float32 [n], OU time t (alpha_bar = exp(-2 t))"},
        "output": {"eps": "float32 [n, 1, 16, 16], noise prediction"},
        "convention": "VP (OU time): x_t = exp(-t) x0 + sqrt(1 - exp(-2 t)) z",
        "level": "t", "output_kind": "eps",
        "score": "s(x, t) = -eps(x, t) / sqrt(1 - exp(-2 t))",
        "trained_t_range": [T_MIN, T_MAX],
        "image_shape": [1, H, W], "d": D, "data_range": [-1.0, 1.0],
        "data": "sklearn.datasets.load_digits (8x8, 0..16) scaled to [-1,1], bilinear upsampling to 16x16",
        "test_images": {"file": "test_images.npy", "shape": [N_TEST, 1, H, W],
                        "digits_indices": test_idx.tolist(), "labels": y_test.tolist(), "split_seed": SPLIT_SEED},
        "architecture": f"residual MLP: Linear(256,{args.width}), {args.blocks} x [h += Linear(SiLU(LayerNorm(h) + "
                        f"Linear(temb)))], LayerNorm, SiLU, Linear({args.width},256); temb = MLP(sin/cos of 16 "
                        f"frequencies x log t, log t / 4) -> 32",
        "parameters": n_params, "flops_per_image": model.flops_per_sample(),
        "onnx": {"opset": 17, "ops": ops, **checks},
    })
    print("sanity sampling (torch ALMC):")
    info["sanity"] = sanity(model, x_test, args.check_kappa, args.check_delta, args.check_chains,
                            os.path.join(args.outdir, "sanity.png"))
    with open(info_path, "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {onnx_path}, {info_path}, test_images.npy")


if __name__ == "__main__":
    main()
