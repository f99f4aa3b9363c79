#!/usr/bin/python3
"""A zoo of small score networks as people export them from PyTorch, for checking the executor on
architectures its own fixtures do not cover (run with Debian's /usr/bin/python3: torch 1.13, onnx).

    /usr/bin/python3 tests/data/make_zoo.py --out DIR [--all | NAME ...]
        every architecture at every opset and export variant -> DIR/<arch>_o<opset>[_<variant>].onnx,
        with DIR/<model>.json (the level input's shape kind) and torch outputs at batch 1 and 7
        (DIR/<model>_x<B>.npy, DIR/<model>_out<B>.npy, level value in the JSON)
    /usr/bin/python3 tests/data/make_zoo.py --fixtures [NAME ...]
        the zoo's test fixtures (or the named ones) into tests/data/onnx/ (zoo_<arch>.onnx with _x/_level/_out .npy,
        per-sample levels, the format of make_models.py), expected outputs from torch

tests/data/compare_zoo.py (onnxruntime, numpy) then compares almc, onnxruntime and torch on DIR.
Each network has random (not trained) weights: the check is the executor's arithmetic, not the
network's quality. Normalisation affine parameters are randomised too (torch initialises them to
1 and 0, which would hide a scale/bias mix-up).
"""
import argparse
import json
import math
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def sinusoidal(t, dim):
    """DDPM's timestep embedding, computed in forward (Range, Exp, Mul, Sin, Cos, Concat)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups=4, dropout=0.1):
        super().__init__()
        self.n1 = nn.GroupNorm(groups, cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2 = nn.GroupNorm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(temb))[:, :, None, None]
        h = self.c2(self.drop(F.silu(self.n2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """DDPM's attention block: GroupNorm, q/k/v 1x1 convs, scaled dot product over positions."""

    def __init__(self, c, groups=4):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.o = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(y).reshape(b, c, h * w)
        v = self.v(y).reshape(b, c, h * w).permute(0, 2, 1)
        att = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)
        out = torch.bmm(att, v).permute(0, 2, 1).reshape(b, c, h, w)
        return x + self.o(out)


class DDPMUNet(nn.Module):
    """DDPM-style U-Net on 2x8x8: sinusoidal embedding of t [B], GroupNorm+SiLU residual blocks,
    self-attention, strided-conv down, nearest upsampling and ConvTranspose up."""
    x_shape = (2, 8, 8)
    level = "B"

    def __init__(self, c=16, temb=32):
        super().__init__()
        self.temb = nn.Sequential(nn.Linear(c, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.c = c
        self.inc = nn.Conv2d(2, c, 3, padding=1)
        self.r1 = ResBlock(c, c, temb)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.r2 = ResBlock(2 * c, 2 * c, temb)
        self.att = SelfAttention(2 * c)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.mid = ResBlock(2 * c, 2 * c, temb)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.r3 = ResBlock(4 * c, 2 * c, temb)
        self.upt = nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1)
        self.r4 = ResBlock(2 * c, c, temb)
        self.outn = nn.GroupNorm(4, c)
        self.out = nn.Conv2d(c, 2, 3, padding=1)

    def forward(self, x, t):
        e = self.temb(sinusoidal(t * 999.0, self.c))
        h0 = self.r1(self.inc(x), e)
        h1 = self.att(self.r2(self.down(h0), e))
        h2 = self.mid(self.down2(h1), e)
        u = self.r3(torch.cat([self.up(h2), h1], dim=1), e)
        u = self.r4(torch.cat([self.upt(u), h0], dim=1), e)
        return self.out(F.silu(self.outn(u)))


class NCSN(nn.Module):
    """NCSN / score_sde style, noise-conditional only through the final division by sigma [B]:
    InstanceNorm, ELU, dilated convs, pooling, bilinear align_corners upsampling."""
    x_shape = (1, 12, 12)
    level = "B"

    def __init__(self, c=12):
        super().__init__()
        self.inc = nn.Conv2d(1, c, 3, padding=1)
        self.n1 = nn.InstanceNorm2d(c, affine=True)
        self.c1 = nn.Conv2d(c, c, 3, padding=2, dilation=2)
        self.n2 = nn.InstanceNorm2d(c, affine=True)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.pool = nn.AvgPool2d(5, stride=1, padding=2)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1)
        self.c3 = nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Conv2d(2 * c, 1, 3, padding=1)

    def forward(self, x, sigma):
        h = self.inc(2.0 * x - 1.0)
        h = h + self.c1(F.elu(self.n1(h)))
        h = h + self.c2(F.elu(self.n2(h)))
        p = self.pool(F.relu(h)) + h
        m = self.c3(self.mp(p))                                                  # 6x6
        u = F.interpolate(m, size=(12, 12), mode="bilinear", align_corners=True)
        out = self.out(torch.cat([p, u], dim=1))
        return out / sigma.view(x.shape[0], *([1] * len(x.shape[1:])))


class GaussianFourier(nn.Module):
    def __init__(self, dim, scale=16.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(dim // 2) * scale, requires_grad=False)

    def forward(self, t):
        p = t * self.W[None, :] * 2 * np.pi
        return torch.cat([torch.sin(p), torch.cos(p)], dim=-1)


class FourierMLP(nn.Module):
    """MLP score net with Gaussian Fourier features of log(sigma) [B, 1], LayerNorm, GELU (tanh),
    Mish, Swish, Hardswish, PReLU, Softplus and BatchNorm1d (eval)."""  # noqa
    x_shape = (12,)
    level = "B1"

    def __init__(self, d=12, h=48):
        super().__init__()
        self.f = GaussianFourier(16)
        self.inp = nn.Linear(d + 16, h)
        self.ln1 = nn.LayerNorm(h)
        self.l1 = nn.Linear(h, h)
        self.bn = nn.BatchNorm1d(h)
        self.l2 = nn.Linear(h, h)
        self.prelu = nn.PReLU(h)
        self.l3 = nn.Linear(h, h)
        self.ln2 = nn.LayerNorm(h)
        self.out = nn.Linear(h, d)

    def forward(self, x, t):
        e = self.f(torch.log(t))
        h = self.inp(torch.cat([x, e], dim=1))
        h = h + F.gelu(self.l1(self.ln1(h)), approximate="tanh")
        h = F.mish(self.bn(h)) + F.hardswish(h) * 0.5
        h = self.prelu(self.l2(h)) + F.softplus(h) - torch.sigmoid(h) * h
        h = F.silu(self.l3(self.ln2(h)))
        return self.out(h) / t


class TimmAttention(nn.Module):
    """timm's Attention (as in DiT): fused qkv Linear, heads split by reshape/permute, q @ k^T."""

    def __init__(self, dim, heads):
        super().__init__()
        self.h = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = att.softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, N, C))


class DiTLite(nn.Module):
    """A tiny DiT: patch embedding, adaLN modulation from a scalar t (shape []), timm-style multi-head
    attention, LayerNorm, GELU, unpatchify by reshape/permute. (torch 1.13 exports neither a
    LayerNorm without affine at opset 17 nor nn.MultiheadAttention's eval fast path.)"""
    x_shape = (2, 8, 8)
    level = "scalar"

    def __init__(self, dim=32, heads=4, p=2):
        super().__init__()
        self.p = p
        self.dim = dim
        self.patch = nn.Conv2d(2, dim, p, stride=p)
        self.pos = nn.Parameter(torch.randn(1, 16, dim) * 0.1)
        self.t = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.n1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TimmAttention(dim, heads)
        self.n2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(approximate="tanh"), nn.Linear(2 * dim, dim))
        self.fin = nn.Linear(dim, p * p * 2)

    def forward(self, x, t):
        b = x.shape[0]
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos             # [B, 16, dim]
        tt = t * torch.ones(b)
        c = self.t(sinusoidal(tt, self.dim))
        s1, b1, g1, s2, b2, g2 = c.chunk(6, dim=1)
        y = self.n1(h) * (1 + s1.unsqueeze(1)) + b1.unsqueeze(1)
        h = h + g1.unsqueeze(1) * self.attn(y)
        y = self.n2(h) * (1 + s2.unsqueeze(1)) + b2.unsqueeze(1)
        h = h + g2.unsqueeze(1) * self.mlp(y)
        o = self.fin(h)                                                     # [B, 16, p*p*2]
        o = o.reshape(b, 4, 4, self.p, self.p, 2).permute(0, 5, 1, 3, 2, 4)
        return o.reshape(b, 2, 8, 8)


class EinsumAttnNet(nn.Module):
    """score_sde NCSN++'s AttnBlockpp and NIN layers, written with einsum, GroupNorm(num_groups=min(C//4, 32)),
    and the GELU's erf form. Level sigma [B] enters through log and a Fourier embedding."""
    x_shape = (4, 6, 6)
    level = "B"

    def __init__(self, c=16):
        super().__init__()
        self.f = GaussianFourier(16, scale=1.0)
        self.emb = nn.Linear(16, c)
        self.inc = nn.Conv2d(4, c, 3, padding=1)
        self.norm = nn.GroupNorm(min(c // 4, 32), c, eps=1e-6)
        self.W = nn.Parameter(torch.randn(4, c, c) * 0.2)   # NIN q, k, v, out
        self.bias = nn.Parameter(torch.randn(4, c) * 0.1)
        self.out = nn.Conv2d(c, 4, 3, padding=1)

    def nin(self, x, i):
        y = torch.einsum("bchw,cd->bdhw", x, self.W[i])
        return y + self.bias[i][None, :, None, None]

    def forward(self, x, sigma):
        e = self.emb(self.f(torch.log(sigma)[:, None]))
        h = self.inc(x) + e[:, :, None, None]
        B, C, H, W = h.shape
        y = self.norm(h)
        q, k, v = self.nin(y, 0), self.nin(y, 1), self.nin(y, 2)
        w = torch.einsum("bchw,bcij->bhwij", q, k) * (int(C) ** (-0.5))
        w = torch.reshape(w, (B, H, W, H * W))
        w = F.softmax(w, dim=-1)
        w = torch.reshape(w, (B, H, W, H, W))
        a = torch.einsum("bhwij,bcij->bchw", w, v)
        h = (h + self.nin(a, 3)) / np.sqrt(2.0)
        h = F.gelu(h)
        return self.out(h) / sigma[:, None, None, None]


class Conv1DNet(nn.Module):
    """1-D signals [B, 2, 16]: Conv1d, GroupNorm, 1-D pooling, strided down, ConvTranspose1d and
    nearest / linear 1-D upsampling, level t [B, 1]."""
    x_shape = (2, 16)
    level = "B1"

    def __init__(self, c=8):
        super().__init__()
        self.inc = nn.Conv1d(2, c, 5, padding=2)
        self.t = nn.Linear(1, c)
        self.n = nn.GroupNorm(2, c)
        self.down = nn.Conv1d(c, 2 * c, 3, stride=2, padding=1)    # 8
        self.down2 = nn.Conv1d(2 * c, 2 * c, 3, stride=2, padding=1)  # 4
        self.upt = nn.ConvTranspose1d(2 * c, c, 4, stride=2, padding=1)  # 8 -> 16
        self.out = nn.Conv1d(2 * c, 2, 3, padding=1)

    def forward(self, x, t):
        h = self.inc(x) + self.t(t)[:, :, None]
        h = F.silu(self.n(h))
        h = h + F.avg_pool1d(h, 3, stride=1, padding=1) - F.max_pool1d(h, 3, stride=1, padding=1)
        d = self.down(h)
        d2 = self.down2(F.silu(d))
        u = F.interpolate(d2, scale_factor=2.0, mode="nearest") + d     # 8
        u2 = F.interpolate(u, scale_factor=2.0, mode="linear", align_corners=False)  # 16
        return self.out(torch.cat([self.upt(u) + h, u2[:, :8]], dim=1))


class ShuffleNet(nn.Module):
    """PixelUnshuffle/PixelShuffle, reflect and replicate padded convs (torch 1.13 exports
    circular padding wrongly: onnxruntime and almc agree with each other, not with torch), x.repeat (Tile), chunk,
    clamp, BatchNorm2d after a non-fusable op, level t [B]."""
    x_shape = (1, 8, 8)
    level = "B"

    def __init__(self, c=8):
        super().__init__()
        self.un = nn.PixelUnshuffle(2)                                 # [B, 4, 4, 4]
        self.c1 = nn.Conv2d(4, c, 3, padding=1, padding_mode="reflect")
        self.c2 = nn.Conv2d(c, 2 * c, 3, padding=1, padding_mode="replicate")
        self.bn = nn.BatchNorm2d(c)
        self.c3 = nn.Conv2d(c, 4, 3, padding=1)
        self.sh = nn.PixelShuffle(2)

    def forward(self, x, t):
        h = self.c1(self.un(x))
        h = h * torch.tanh(t)[:, None, None, None].repeat(1, h.shape[1], 1, 1)
        a, b = self.c2(F.leaky_relu(h, 0.2)).chunk(2, dim=1)
        h = self.bn(a * torch.sigmoid(b) + 0.1)
        h = torch.clamp(h, -2.0, 2.0) + F.hardtanh(h, -0.5, 0.5)
        return self.sh(self.c3(h)) + x.repeat(1, 1, 1, 1) * 0.1


class ReduceNet(nn.Module):
    """Reductions and odd elementwise ops: p-norms (ReduceL2), amax/amin, logsumexp, var/std,
    where, sign, abs, pow, hardsigmoid, selu, softsign; level t [B]."""
    x_shape = (3, 10)
    level = "B"

    def __init__(self):
        super().__init__()
        self.l = nn.Linear(10, 10)

    def forward(self, x, t):
        h = self.l(x)
        n = h.norm(dim=-1, keepdim=True)
        m = h.amax(dim=1, keepdim=True) - h.amin(dim=(1, 2), keepdim=True)
        s = torch.logsumexp(h, dim=-1, keepdim=True)
        v = h.var(dim=-1, keepdim=True) + h.std(dim=1, keepdim=True)
        y = h / (n + 1e-3) + m + 0.1 * s + v
        y = torch.where(y > 0, y.pow(1.5), -torch.abs(y) * torch.sign(h))
        y = y + F.hardsigmoid(h) + F.selu(h) + F.softsign(h) + F.relu6(h)
        return y * t[:, None, None] + x


class SongScoreNet(nn.Module):
    """The ScoreNet of Song's score-SDE tutorial (VE, MNIST), smaller: Gaussian Fourier features of
    t [B], Dense layers broadcast over space, GroupNorm, unpadded stride-2 convs, ConvTranspose with
    output_padding, and the division by marginal_prob_std(t) = sqrt((s^(2t) - 1) / (2 log s))
    (Pow with a constant base and a runtime exponent)."""
    x_shape = (1, 16, 16)
    level = "B"

    def __init__(self, ch=(8, 16, 16), emb=16, sigma=25.0):
        super().__init__()
        self.sigma = sigma
        self.embed = nn.Sequential(GaussianFourier(emb, scale=30.0), nn.Linear(emb, emb))
        self.conv1 = nn.Conv2d(1, ch[0], 3, stride=1, bias=False)            # 14
        self.dense1 = nn.Linear(emb, ch[0])
        self.gn1 = nn.GroupNorm(4, ch[0])
        self.conv2 = nn.Conv2d(ch[0], ch[1], 3, stride=2, bias=False)        # 6
        self.dense2 = nn.Linear(emb, ch[1])
        self.gn2 = nn.GroupNorm(ch[1], ch[1])                                # one channel per group
        self.conv3 = nn.Conv2d(ch[1], ch[2], 3, stride=2, bias=False)        # 2
        self.dense3 = nn.Linear(emb, ch[2])
        self.gn3 = nn.GroupNorm(1, ch[2])                                    # one group
        self.tconv3 = nn.ConvTranspose2d(ch[2], ch[1], 3, stride=2, bias=False, output_padding=1)  # 6
        self.tgn3 = nn.GroupNorm(4, ch[1])
        self.tconv2 = nn.ConvTranspose2d(2 * ch[1], ch[0], 3, stride=2, bias=False, output_padding=1)  # 14
        self.tgn2 = nn.GroupNorm(4, ch[0])
        self.tconv1 = nn.ConvTranspose2d(2 * ch[0], 1, 3, stride=1)          # 16
        self.act = lambda x: x * torch.sigmoid(x)

    def forward(self, x, t):
        embed = self.act(self.embed(t[:, None]))
        h1 = self.act(self.gn1(self.conv1(x) + self.dense1(embed)[..., None, None]))
        h2 = self.act(self.gn2(self.conv2(h1) + self.dense2(embed)[..., None, None]))
        h3 = self.act(self.gn3(self.conv3(h2) + self.dense3(embed)[..., None, None]))
        h = self.act(self.tgn3(self.tconv3(h3)))
        h = self.act(self.tgn2(self.tconv2(torch.cat([h, h2], dim=1))))
        h = self.tconv1(torch.cat([h, h1], dim=1))
        std = torch.sqrt((self.sigma ** (2 * t) - 1.0) / 2.0 / np.log(self.sigma))
        return h / std[:, None, None, None]


class MiscNet(nn.Module):
    """Less common layers: integer timesteps (t * 999).long() into an nn.Embedding, a
    squeeze-excitation block (AdaptiveAvgPool2d(1)), a depthwise conv, AvgPool with ceil_mode and
    count_include_pad=False, nearest resize to a size, bilinear downsampling, Softmax over channels,
    a grouped ConvTranspose with output_padding, Swish with a learned beta, uneven chunks."""
    x_shape = (4, 9, 9)
    level = "B"

    def __init__(self, c=8):
        super().__init__()
        self.temb = nn.Embedding(1000, c)
        self.inc = nn.Conv2d(4, c, 3, padding=1)
        self.dw = nn.Conv2d(c, c, 5, padding=2, groups=c)
        self.se1 = nn.Linear(c, c // 2)
        self.se2 = nn.Linear(c // 2, c)
        self.beta = nn.Parameter(torch.tensor(1.3))
        self.ct = nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.out = nn.Conv2d(c + 3, 4, 3, padding=1)

    def forward(self, x, t):
        idx = (t * 999.0).long()
        h = self.inc(x) + self.temb(idx)[:, :, None, None] + (idx.float() * 0.001)[:, None, None, None]
        h = self.dw(h)
        s = F.adaptive_avg_pool2d(h, 1).flatten(1)
        h = h * torch.sigmoid(self.se2(F.relu(self.se1(s))))[:, :, None, None]
        h = h * torch.sigmoid(self.beta * h)
        p = F.avg_pool2d(h, 2, stride=2, ceil_mode=True, count_include_pad=False)      # 5x5
        u = F.interpolate(p, size=(9, 9), mode="nearest")
        d = F.interpolate(self.ct(p), scale_factor=0.5, mode="bilinear", align_corners=False)  # 10 -> 5
        g = torch.softmax(h, dim=1) + u + F.interpolate(d, size=(9, 9), mode="bilinear", align_corners=False)
        a, b, c = torch.chunk(torch.cat([g, x[:, :3]], dim=1), 3, dim=1)   # 11 channels: 4, 4, 3
        return self.out(torch.cat([c * a[:, :3], b, a], dim=1)[:, :11])


class SweepNet(nn.Module):
    """Tensor functions torch 1.13 exports to ops the other networks lack: in-place assignments
    (ScatterND), nan_to_num (IsInf on a float64 cast, IsNaN), cumsum (CumSum), bicubic
    interpolation (Resize cubic), atan / asin (Atan, Asin), fmod (Mod), plus repeat_interleave,
    roll, flip, normalize, rsqrt, hardtanh, relu6, adaptive pooling, log1p, an embedding of the
    level, std / var, a rotary-style interleave, LayerNorm over channels, maximum / minimum / clamp
    / where, pixel (un)shuffle, remainder and unfold. Thresholds act on the exact input x (a
    threshold on a computed value could flip between torch's and ONNX's rounding)."""
    x_shape = (4, 8, 8)
    level = "B"

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(4, 8, 3, padding=1)
        self.emb = nn.Embedding(10, 8)
        self.ln = nn.LayerNorm(8)

    def forward(self, x, t):
        h = self.c(x)
        a = h.repeat_interleave(2, dim=1)[:, ::2]
        b = torch.roll(h, shifts=(1, -2), dims=(2, 3))
        c = torch.flip(h, dims=[3])
        d = torch.cumsum(h, dim=2) / 8.0
        e = F.normalize(h, dim=1)
        f = torch.rsqrt(h * h + 1.0) + F.hardtanh(h) + F.relu6(h) + \
            torch.nan_to_num(h / (x[:, :1].abs() > 0.1).float(), nan=0.0, posinf=1.0, neginf=-1.0)
        g = F.adaptive_avg_pool2d(h, 4).repeat(1, 1, 2, 2)
        k = torch.atan(h) + torch.log1p(h.abs()) + torch.asin(torch.tanh(h) * 0.9)
        em = self.emb((t * 9).long().clamp(0, 9))[:, :, None, None]
        std = h.std(dim=(2, 3), keepdim=True) + h.var(dim=1, keepdim=True)
        rot = torch.stack([h[..., ::2] * torch.cos(t)[:, None, None, None], h[..., 1::2]], dim=-1).flatten(-2)
        ln = self.ln(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        m = torch.maximum(h, c) - torch.minimum(h, b) + torch.clamp(h, min=-0.5) + torch.where(h > 0, h, 0.1 * h)
        xx = x.repeat(1, 2, 1, 1)
        p = F.pixel_unshuffle(F.pixel_shuffle(h, 2), 2) + torch.fmod(xx, 0.7) + torch.remainder(xx, 0.7)
        q = F.unfold(h, 3, padding=1).reshape(h.shape[0], 8, 9, 8, 8).mean(2)
        r = F.interpolate(h, scale_factor=2, mode="bicubic", align_corners=False)[:, :, ::2, ::2]
        out = a + b + c + d + e + f + g + k + em + std + rot + ln + m + p + q + r
        out[:, 1] = out[:, 2] * t[:, None, None]
        out[:, :, 0, :] = 0.5
        return out[:, :4]


class InterpNet(nn.Module):
    """Resize at scales no power of two divides (0.4, 0.6, 0.8, 1.2, 1.6, 2.2): nearest takes the
    floor of a source coordinate o / scale that is often an integer in exact arithmetic (3 / 0.6 =
    5), so one computed otherwise than torch and onnxruntime do (float32) picks the neighbouring
    pixel; bilinear and bicubic at such scales too. Each result is brought back to x's size by
    bilinear interpolation to a size."""
    x_shape = (2, 10, 10)
    level = "B"

    def forward(self, x, t):
        back = lambda y: F.interpolate(y, size=(10, 10), mode="bilinear", align_corners=False)  # noqa: E731
        out = x
        for s in (0.4, 0.6, 0.8, 1.2, 1.6, 2.2):
            out = out + back(F.interpolate(x, scale_factor=s, mode="nearest"))
        for s in (0.6, 1.6):
            out = out + back(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
        out = out + back(F.interpolate(x, scale_factor=0.6, mode="bicubic", align_corners=False))
        return out * t[:, None, None, None]


ARCHS = {
    "song": SongScoreNet,
    "misc": MiscNet,
    "ddpm_unet": DDPMUNet,
    "ncsn": NCSN,
    "fourier_mlp": FourierMLP,
    "dit_lite": DiTLite,
    "einsum_attn": EinsumAttnNet,
    "conv1d": Conv1DNet,
    "shuffle": ShuffleNet,
    "reduce": ReduceNet,
    "sweep": SweepNet,
    "interp": InterpNet,
}

# torch 1.13 exports at opsets 9 to 17; the ones the executor is asked to run.
OPSETS = [11, 13, 14, 17]


def build(arch, seed=1):
    torch.manual_seed(seed)
    m = ARCHS[arch]()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d, nn.BatchNorm1d, nn.BatchNorm2d)):
                if getattr(mod, "weight", None) is not None:
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.3, 0.3)
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def level_tensor(kind, values):
    v = torch.tensor(values, dtype=torch.float32)
    if kind == "B":
        return v
    if kind == "B1":
        return v[:, None]
    return v[0]  # scalar


def export(m, path, opset, kind, variant):
    x = torch.randn(3, *m.x_shape)
    t = level_tensor(kind, [0.5, 0.7, 0.9])
    dyn = {"x": {0: "batch"}, "out": {0: "batch"}}
    if kind != "scalar":
        dyn["t"] = {0: "batch"}
    kw = dict(opset_version=opset, input_names=["x", "t"], output_names=["out"], dynamic_axes=dyn)
    if variant == "nofold":
        kw["do_constant_folding"] = False
    elif variant == "static":  # no dynamic_axes: the batch of the example (3) is fixed in the graph
        del kw["dynamic_axes"]
    elif variant == "dynhw":  # height and width dynamic too (a fully convolutional export)
        dyn["x"].update({2: "height", 3: "width"})
        dyn["out"].update({2: "height", 3: "width"})
    with torch.no_grad():
        torch.onnx.export(m, (x, t), path, **kw)
    onnx.checker.check_model(onnx.load(path))


def zoo(out_dir, names):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    for arch in names:
        m = build(arch)
        kind = ARCHS[arch].level
        variants = [(o, "") for o in OPSETS] + [(13, "nofold"), (17, "static")]
        for opset, variant in variants:
            name = f"{arch}_o{opset}" + (f"_{variant}" if variant else "")
            path = os.path.join(out_dir, name + ".onnx")
            try:
                export(m, path, opset, kind, variant)
            except Exception as e:  # noqa: BLE001 (torch refuses some ops at low opsets)
                print(f"{name}: torch export failed: {str(e).splitlines()[0]}")
                continue
            level = float(0.3 + 0.6 * rng.random())
            meta = {"arch": arch, "opset": opset, "variant": variant, "level_kind": kind, "level": level,
                    "bytes": os.path.getsize(path)}
            for b in (1, 7):
                x = torch.from_numpy(rng.standard_normal((b, *m.x_shape)).astype(np.float32))
                with torch.no_grad():
                    out = m(x, level_tensor(kind, [level] * b) if kind != "scalar" else torch.tensor(level))
                np.save(os.path.join(out_dir, f"{name}_x{b}.npy"), x.numpy())
                np.save(os.path.join(out_dir, f"{name}_out{b}.npy"), out.numpy().astype(np.float32))
            with open(os.path.join(out_dir, name + ".json"), "w") as f:
                json.dump(meta, f)
            print(f"{name}: {meta['bytes']} bytes")


# The fixtures committed for the executor's tests: (arch, opset, variant). Each exposed a bug or a
# missing op of the executor (see tests/cpu/test_onnx_zoo.cpp).
FIXTURES = [
    ("einsum_attn", 17, ""),     # Einsum (score_sde's attention and NIN layers)
    ("fourier_mlp", 14, ""),     # BatchNormalization (1-D), HardSwish, PRelu, LayerNorm decomposed
    ("reduce", 13, ""),          # ReduceMax / Min / LogSumExp, ReduceProd of shapes, Sign, Selu, HardSigmoid
    ("shuffle", 13, "nofold"),   # Tile, DepthToSpace, BatchNormalization (2-D), float64 constants
    ("conv1d", 13, ""),          # 1-D pooling, 1-D resize
    ("misc", 13, ""),            # a runtime Cast to int64 feeding a Gather (nn.Embedding of timesteps)
    ("sweep", 17, ""),           # ScatterND, CumSum, IsInf after a float64 Cast, IsNaN, Resize cubic, Atan, Mod
    ("ddpm_unet", 17, "dynhw"),  # dynamic height and width, run at 12x16 (exported at 8x8): x_shape
    ("interp", 11, ""),          # Resize at non-dyadic scales (nearest floor: the float32 coordinate)
    ("interp", 17, ""),
]


def fixtures(names=None):
    out_dir = os.path.join(HERE, "onnx")
    for arch, opset, variant in FIXTURES:
        name = f"zoo_{arch}_o{opset}" + (f"_{variant}" if variant else "")
        if names and name not in names:
            continue
        m = build(arch)
        kind = ARCHS[arch].level
        path = os.path.join(out_dir, name + ".onnx")
        export(m, path, opset, kind, variant)
        torch.manual_seed(99)
        n = 7 if kind != "scalar" else 5
        x = torch.randn(n, *((m.x_shape[0], 12, 16) if variant == "dynhw" else m.x_shape))
        if kind == "scalar":
            levels = torch.full((n,), 0.65)
            t = torch.tensor(0.65)
        else:
            levels = torch.rand(n) * 0.8 + 0.2
            t = level_tensor(kind, levels.tolist())
        with torch.no_grad():
            out = m(x, t)
        np.save(os.path.join(out_dir, name + "_x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out_dir, name + "_level.npy"), levels.numpy().astype(np.float32))
        np.save(os.path.join(out_dir, name + "_out.npy"), out.numpy().astype(np.float32))
        print(f"{name}: {os.path.getsize(path)} bytes, out {tuple(out.shape)}")


def ops_graph():
    """zoo_ops.onnx: ops no torch 1.13 export of the zoo emits, by onnx.helper at opset 17 (x [B, 4, 4, 4],
    t [B], out [B, 64]): SpaceToDepth, DepthToSpace (CRD), ReduceL1 / L2 / SumSquare / LogSumExp,
    Einsum with an ellipsis, one operand and implicit output, variadic Max / Sum / Mean, Round,
    Sign, Celu, Softsign, GlobalMaxPool. Its expected output is onnxruntime's
    (tests/data/compare_zoo.py --expect zoo_ops); x and t are written here."""
    from onnx import TensorProto, helper
    H = helper
    ints = lambda name, v: H.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    nodes = [
        H.make_node("SpaceToDepth", ["x"], ["s2d"], blocksize=2),                              # [B, 16, 2, 2]
        H.make_node("ReduceL2", ["s2d"], ["r1"], axes=[1], keepdims=0),                         # [B, 2, 2]
        H.make_node("DepthToSpace", ["x"], ["d2s"], blocksize=2, mode="CRD"),                   # [B, 1, 8, 8]
        H.make_node("ReduceL1", ["d2s"], ["r2"], axes=[2], keepdims=0),                         # [B, 1, 8]
        H.make_node("ReduceSumSquare", ["x"], ["r3"], axes=[1, 3], keepdims=1),                 # [B, 1, 4, 1]
        H.make_node("ReduceLogSumExp", ["x"], ["r4"], axes=[3], keepdims=0),                    # [B, 4, 4]
        H.make_node("Einsum", ["x", "x"], ["mm"], equation="...ij,...jk->...ik"),               # [B, 4, 4, 4]
        H.make_node("ReduceMax", ["mm"], ["r5"], axes=[1], keepdims=0),                         # [B, 4, 4]
        H.make_node("Neg", ["x"], ["nx"]),
        H.make_node("Mul", ["x", "three"], ["x3"]),
        H.make_node("Round", ["x3"], ["rx"]),
        H.make_node("Max", ["x", "nx", "rx"], ["mx"]),
        H.make_node("GlobalMaxPool", ["mx"], ["r6"]),                                           # [B, 4, 1, 1]
        H.make_node("Celu", ["x"], ["ce"], alpha=0.7),
        H.make_node("Softsign", ["x"], ["ss"]),
        H.make_node("Mean", ["ce", "ss", "x"], ["mean"]),
        H.make_node("ReduceMean", ["mean"], ["r7"], axes=[2, 3], keepdims=0),                   # [B, 4]
        H.make_node("Einsum", ["x"], ["r8"], equation="bijk->bk"),                              # [B, 4]
        H.make_node("Sign", ["x"], ["sg"]),
        H.make_node("Sum", ["x", "rx", "sg"], ["sm"]),
        H.make_node("Einsum", ["sm", "x"], ["e9"], equation="...ij,...jk"),                     # implicit -> ...ik
        H.make_node("ReduceMin", ["e9"], ["r9"], axes=[1, 2], keepdims=0),                      # [B, 4]
    ]
    parts = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]
    for k in parts:
        nodes.append(H.make_node("Reshape", [k, "flat"], [k + "_f"]))
    nodes.append(H.make_node("Concat", [k + "_f" for k in parts], ["cat"], axis=1))             # [B, 64]
    nodes.append(H.make_node("Unsqueeze", ["t", "ax1"], ["t1"]))
    nodes.append(H.make_node("Add", ["t1", "one"], ["t2"]))
    nodes.append(H.make_node("Mul", ["cat", "t2"], ["out"]))
    graph = H.make_graph(
        nodes, "zoo_ops",
        [H.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 4, 4]),
         H.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"])],
        [H.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 64])],
        initializer=[ints("flat", [0, -1]), ints("ax1", [1]),
                     H.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
                     H.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    model = H.make_model(graph, opset_imports=[H.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    out_dir = os.path.join(HERE, "onnx")
    onnx.save(model, os.path.join(out_dir, "zoo_ops.onnx"))
    rng = np.random.default_rng(5)
    np.save(os.path.join(out_dir, "zoo_ops_x.npy"), rng.standard_normal((7, 4, 4, 4)).astype(np.float32))
    np.save(os.path.join(out_dir, "zoo_ops_level.npy"), rng.random(7).astype(np.float32))
    print("zoo_ops: written (run compare_zoo.py --expect zoo_ops for its expected output)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/almc_zoo")
    ap.add_argument("--fixtures", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.fixtures:  # with names (zoo_<arch>_o<opset>[_<variant>]): those fixtures only
        fixtures(a.names)
        if not a.names:
            ops_graph()
    else:
        zoo(a.out, a.names or list(ARCHS))


if __name__ == "__main__":
    main()
