#!/usr/bin/python3
"""Make the ONNX fixtures of the built-in executor's tests (tests/data/onnx/).

Run with Debian's /usr/bin/python3 (python3-torch 1.13 CPU, python3-onnx 1.12, numpy):

    /usr/bin/python3 tests/data/make_models.py

Every network is exported with torch.onnx.export at opset 17 with a dynamic batch axis; for each
one we store fixed-seed inputs and the torch outputs as .npy:

    <name>.onnx, <name>_x.npy [n, ...], <name>_level.npy [n], <name>_out.npy [n, ...]

A few hand-built models (onnx.helper, make_graphs.py: needs only onnx and numpy) test refusals and
input bindings: an unsupported op, a cycle, a float64 initializer, a node input that nothing
produces, an int64 timestep input, a level listed before x.
"""
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_nets import ResMLP, SinusoidalMLP, TinyUNet
from make_graphs import OPSET, OUT, hand_made


class MiscOps(nn.Module):
    """Operators the other fixtures do not reach: ConvTranspose, pools, Pad, Split, reductions,
    activations, Pow, Where, Expand, Transpose, Flatten, Gather. Input 2x8x8, level t [n]."""

    def __init__(self):
        super().__init__()
        self.ct = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)  # 8 -> 16
        self.cg = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)

    def forward(self, x, t):
        n = x.shape[0]
        y = self.ct(x)                                                    # [n, 3, 16, 16]
        y = F.max_pool2d(y, 2) + F.avg_pool2d(y, 3, stride=2, padding=1)  # [n, 3, 8, 8]
        y = F.pad(y, (1, 0, 0, 1))                                        # [n, 3, 9, 9]
        y = torch.cat([y, F.leaky_relu(y[:, :1], 0.1)], dim=1)[:, :, :8, 1:]  # [n, 4, 8, 8]
        y = self.cg(y)
        a, b = torch.split(y, [1, 3], dim=1)
        z = F.elu(a) * torch.tanh(b).mean(dim=1, keepdim=True) + F.softplus(b).sum(dim=1, keepdim=True)
        z = z + torch.sqrt(torch.abs(z) + 1.0) - torch.reciprocal(1.0 + torch.exp(-z)) + torch.log(1.0 + z * z)
        z = torch.where(z > 0.5, z, torch.pow(z, 2.0)) * (1.0 + t)[:, None, None, None]
        z = z.transpose(2, 3).expand(n, 2, 8, 8)
        f = torch.flatten(z, 1)                                           # [n, 128]
        return f.reshape(n, 2, 8, 8) + 0.5 * x


class NormAct(nn.Module):
    """Normalisations followed by per-channel affine maps and activations, which the planner fuses
    into the normalisation (fuse_norm_epilogues), next to three it must leave alone; Softmax over a
    strided axis, LogSoftmax, a bilinear align_corners resize and a nearest one. x [n, 8, 4, 4],
    level t [n]."""

    def __init__(self):
        super().__init__()
        self.g1 = nn.GroupNorm(2, 8)
        self.c1 = nn.Conv2d(8, 8, 1)
        self.g2 = nn.GroupNorm(4, 8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.i1 = nn.InstanceNorm2d(8, affine=True)
        self.l1 = nn.LayerNorm([8, 4, 4])
        self.w = nn.Parameter(torch.rand(8) + 0.5)
        self.l2 = nn.LayerNorm(4)
        self.c3 = nn.Conv2d(8, 8, 1)
        self.g3 = nn.GroupNorm(4, 8)
        self.g4 = nn.GroupNorm(2, 8)

    def forward(self, x, t):
        h = self.c1(F.silu(self.g1(x)))                           # fused: GroupNorm + SiLU
        h = self.c2(F.relu(self.g2(h)))                           # fused: GroupNorm + ReLU
        h = F.leaky_relu(self.i1(h), 0.2)                         # fused: InstanceNorm's own affine + LeakyRelu
        h = torch.tanh(self.l1(h) * self.w[:, None, None] - 0.1)  # fused: LayerNorm over [C, H, W], a per-channel map, Tanh
        h = self.c3(F.elu(self.l2(h)))                            # fused: LayerNorm over W + Elu
        h = F.relu(self.g3(h)) + x                                # not fused: the program reads x too
        g = F.gelu(self.g4(h))                                    # GELU as one op (gelu_match.cpp), in the program that adds the next line
        m = F.instance_norm(h)                                    # not fused: read twice
        h = g + m * torch.sigmoid(m.mean(dim=(2, 3), keepdim=True))
        h = h + torch.softmax(h, dim=1) + F.log_softmax(h, dim=-1)
        u = F.interpolate(h, size=(6, 6), mode="bilinear", align_corners=True)
        h = h + F.interpolate(u, size=(4, 4), mode="nearest")
        return h * (1.0 + t)[:, None, None, None]


class GaussVPEps(nn.Module):
    """Exact eps of the prior N(0, s0^2 I) under VP with alpha_bar = exp(-2 t): level t [n, 1]."""

    def __init__(self, s0=0.7):
        super().__init__()
        self.s0 = s0

    def forward(self, x, t):
        ab = torch.exp(-2.0 * t)
        var = ab * self.s0 ** 2 + 1.0 - ab
        return torch.sqrt(1.0 - ab) * x / var


class GaussVEDenoiser(nn.Module):
    """Exact EDM denoiser D(x, sigma) of the prior N(0, s0^2 I): level sigma, a scalar per batch [n]."""

    def __init__(self, s0=0.7):
        super().__init__()
        self.s0 = s0

    def forward(self, x, sigma):
        return x * (self.s0 ** 2 / (self.s0 ** 2 + sigma * sigma))[:, None]


def export(name, model, x, level, level_name="level"):
    model.eval()
    path = os.path.join(OUT, name + ".onnx")
    with torch.no_grad():
        out = model(x, level)
        torch.onnx.export(model, (x, level), path, opset_version=OPSET, input_names=["x", level_name],
                          output_names=["out"],
                          dynamic_axes={"x": {0: "batch"}, level_name: {0: "batch"}, "out": {0: "batch"}})
    onnx.checker.check_model(onnx.load(path))
    np.save(os.path.join(OUT, name + "_x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, name + "_level.npy"), level.numpy().astype(np.float32).reshape(-1))
    np.save(os.path.join(OUT, name + "_out.npy"), out.numpy().astype(np.float32))
    print(f"{name}: {os.path.getsize(path)} bytes, out {tuple(out.shape)}")


# ---- One small exact network per model family of docs/MODELS.md: each has the family's calling
# convention (inputs, dtypes, output layout, level parametrisation) and computes the exact
# eps/score/denoiser of a Gaussian prior N(mu, S0^2 I), so the posterior the flags give is known.
S0 = 0.7
FAMILY_SHAPE = (1, 4, 4)


def family_mean(k=0):
    """The prior mean (class k for the class-conditional family), [1, 4, 4]."""
    g = torch.arange(16, dtype=torch.float32).reshape(FAMILY_SHAPE)
    return torch.sin(0.7 * g + 1.3 * k) * (0.5 + 0.25 * k)


def ddpm_alphas_cumprod():
    """diffusers DDPMScheduler / guided-diffusion "linear": betas 1e-4 .. 0.02 over 1000 steps."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0).float()


class DiffusersUNetLike(nn.Module):
    """diffusers UNet2DModel's convention: forward(sample [n, C, H, W], timestep int64 [n]) -> eps."""

    def __init__(self):
        super().__init__()
        self.register_buffer("alphas_cumprod", ddpm_alphas_cumprod())
        self.register_buffer("mu", family_mean())

    def forward(self, sample, timestep):
        ab = self.alphas_cumprod[timestep].reshape(-1, 1, 1, 1)
        return torch.sqrt(1 - ab) * (sample - torch.sqrt(ab) * self.mu) / (ab * S0 ** 2 + 1 - ab)


class GuidedDiffusionLike(nn.Module):
    """guided-diffusion's class-conditional UNet with learned sigma: forward(x, timesteps int64 [n],
    y int64 [n]) -> [n, 2C, H, W], eps first, then the variance interpolation values."""

    def __init__(self):
        super().__init__()
        self.register_buffer("alphas_cumprod", ddpm_alphas_cumprod())
        self.register_buffer("mus", torch.stack([family_mean(k) for k in range(3)]))

    def forward(self, x, timesteps, y):
        ab = self.alphas_cumprod[timesteps].reshape(-1, 1, 1, 1)
        mu = self.mus[y]
        eps = torch.sqrt(1 - ab) * (x - torch.sqrt(ab) * mu) / (ab * S0 ** 2 + 1 - ab)
        return torch.cat([eps, torch.tanh(x)], dim=1)


class ScoreSdeVPLike(nn.Module):
    """score_sde DDPM++ (continuous VP-SDE, beta 0.1 .. 20): forward(x, labels = t * 999) -> eps
    (score_sde's score is -output / std)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mu", family_mean())

    def forward(self, x, labels):
        s = (labels / 999.0).reshape(-1, 1, 1, 1)
        ab = torch.exp(-0.1 * s - 0.5 * (20.0 - 0.1) * s * s)
        return torch.sqrt(1 - ab) * (x - torch.sqrt(ab) * self.mu) / (ab * S0 ** 2 + 1 - ab)


class ScoreSdeVELike(nn.Module):
    """score_sde NCSN++ (VE-SDE): forward(x, sigmas [n]) -> the score (scale_by_sigma inside)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mu", family_mean())

    def forward(self, x, sigmas):
        s2 = (sigmas * sigmas).reshape(-1, 1, 1, 1)
        return -(x - self.mu) / (S0 ** 2 + s2)


class EdmLike(nn.Module):
    """EDM's preconditioned denoiser: forward(x, sigma [n]) -> D(x, sigma) = E[x0 | x]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mu", family_mean())

    def forward(self, x, sigma):
        s2 = (sigma * sigma).reshape(-1, 1, 1, 1)
        return self.mu + S0 ** 2 / (S0 ** 2 + s2) * (x - self.mu)


def export_family(name, model, args, names):
    """Export with a dynamic batch on every input and the output (opset 17)."""
    model.eval()
    path = os.path.join(OUT, name + ".onnx")
    with torch.no_grad():
        torch.onnx.export(model, args, path, opset_version=OPSET, input_names=names, output_names=["out"],
                          dynamic_axes={**{k: {0: "batch"} for k in names}, "out": {0: "batch"}})
    onnx.checker.check_model(onnx.load(path))
    print(f"{name}: {os.path.getsize(path)} bytes")


def families():
    n = 3
    x = torch.randn(n, *FAMILY_SHAPE)
    t_idx = torch.tensor([0, 500, 999])
    export_family("family_diffusers_ddpm", DiffusersUNetLike(), (x, t_idx), ["sample", "timestep"])
    export_family("family_guided_diffusion", GuidedDiffusionLike(), (x, t_idx, torch.tensor([0, 1, 2])),
                  ["x", "timesteps", "y"])
    export_family("family_score_sde_vp", ScoreSdeVPLike(), (x, torch.rand(n) * 999), ["x", "labels"])
    export_family("family_score_sde_ve", ScoreSdeVELike(), (x, torch.rand(n) * 50), ["x", "sigmas"])
    export_family("family_edm", EdmLike(), (x, torch.rand(n) * 80), ["x", "sigma"])
    np.save(os.path.join(OUT, "family_ddpm_alphas_cumprod.npy"), ddpm_alphas_cumprod().numpy())
    for k in range(3):
        np.save(os.path.join(OUT, f"family_mean_{k}.npy"), family_mean(k).numpy().reshape(-1))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1234)
    n = 5
    export("mlp_embed", SinusoidalMLP(), torch.randn(n, 16), torch.rand(n) * 2.0 + 0.05, "t")
    torch.manual_seed(1235)
    unet = TinyUNet()
    # Non-trivial GroupNorm affine parameters (torch initialises them to 1 and 0).
    with torch.no_grad():
        for m in unet.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    export("unet", unet, torch.randn(3, 1, 16, 16), torch.exp(torch.randn(3)), "sigma")
    torch.manual_seed(1236)
    resmlp = ResMLP()
    with torch.no_grad():
        for m in resmlp.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    export("resmlp", resmlp, torch.randn(n, 24), torch.randn(n, 1), "log_sigma")
    torch.manual_seed(1237)
    export("misc_ops", MiscOps(), torch.randn(4, 2, 8, 8), torch.rand(4), "t")
    torch.manual_seed(1238)
    export("gauss_vp_eps", GaussVPEps(), torch.randn(n, 6), torch.rand(n, 1) + 0.05, "t")
    torch.manual_seed(1239)
    export("gauss_ve_denoiser", GaussVEDenoiser(), torch.randn(n, 6), torch.rand(n) * 3.0 + 0.1, "sigma")
    hand_made()
    torch.manual_seed(1240)
    families()
    torch.manual_seed(1241)
    norm_act = NormAct()
    with torch.no_grad():
        for m in norm_act.modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    export("norm_act", norm_act, torch.randn(4, 8, 4, 4) * 2.0 + 0.5, torch.rand(4), "t")


if __name__ == "__main__":
    main()
