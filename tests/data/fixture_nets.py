"""The torch classes of the network fixtures that benchmarks rebuild as well as export: needs
torch only (make_models.py exports them; bench/onnx/bench_py.py times them, on a GPU machine too,
where the onnx package may be missing)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SinusoidalMLP(nn.Module):
    """eps(x, t) with a sinusoidal embedding of the time t (level input shaped [n])."""

    def __init__(self, d=16, n_freq=8, hidden=64):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), n_freq)))
        self.net = nn.Sequential(nn.Linear(d + 2 * n_freq, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, d))

    def forward(self, x, t):
        a = t[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.sin(a), torch.cos(a)], dim=1)
        return self.net(torch.cat([x, emb], dim=1))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(4, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        att = torch.softmax(torch.matmul(q.transpose(1, 2), k) / math.sqrt(c), dim=-1)  # [n, hw, hw]
        out = torch.matmul(v, att.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.proj(out)


class Block(nn.Module):
    def __init__(self, cin, cout, emb):
        super().__init__()
        self.n1 = nn.GroupNorm(4, cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.e = nn.Linear(emb, cout)
        self.n2 = nn.GroupNorm(4, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.e(e)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class TinyUNet(nn.Module):
    """Score network on 1x16x16 images conditioned on sigma (level input shaped [n])."""

    def __init__(self, c=16, emb=32):
        super().__init__()
        self.emb = nn.Sequential(nn.Linear(16, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(50.0), 8)))
        self.inc = nn.Conv2d(1, c, 3, padding=1)
        self.b1 = Block(c, c, emb)
        self.down1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)  # 16 -> 8
        self.b2 = Block(2 * c, 2 * c, emb)
        self.att = Attention(2 * c)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)  # 8 -> 4
        self.mid = Block(2 * c, 2 * c, emb)
        self.up2 = Block(4 * c, 2 * c, emb)  # after nearest upsampling 4 -> 8 and concat
        self.up1 = Block(3 * c, c, emb)      # after bilinear upsampling 8 -> 16 and concat
        self.outn = nn.GroupNorm(4, c)
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x, sigma):
        a = torch.log(sigma)[:, None] * self.freqs[None, :]
        e = self.emb(torch.cat([torch.sin(a), torch.cos(a)], dim=1))
        h0 = self.b1(self.inc(x), e)                 # 16x16
        h1 = self.att(self.b2(self.down1(h0), e))    # 8x8
        h2 = self.mid(self.down2(h1), e)             # 4x4
        u = F.interpolate(h2, scale_factor=2.0, mode="nearest")
        u = self.up2(torch.cat([u, h1], dim=1), e)
        u = F.interpolate(u, scale_factor=2.0, mode="bilinear", align_corners=False)
        u = self.up1(torch.cat([u, h0], dim=1), e)
        return self.out(F.silu(self.outn(u))) / sigma[:, None, None, None]


class ResMLP(nn.Module):
    """LayerNorm / GELU residual MLP, level log(sigma) shaped [n, 1]."""

    def __init__(self, d=24, hidden=64, blocks=2):
        super().__init__()
        self.inp = nn.Linear(d + 1, hidden)
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
             for _ in range(blocks)])
        self.norm = nn.LayerNorm(hidden)
        self.outp = nn.Linear(hidden, d)

    def forward(self, x, log_sigma):
        h = self.inp(torch.cat([x, log_sigma], dim=1))
        for b in self.blocks:
            h = h + b(h)
        return self.outp(self.norm(h))
