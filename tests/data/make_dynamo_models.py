#!/usr/bin/env python3
"""Score networks as torch 2.x's default exporter writes them (torch.onnx.export(..., dynamo=True)),
for checking the executor on what current exporters emit: IR 10, opset 18 or 23, the attention op
of opset 23 (F.scaled_dot_product_attention), Trilu (a causal mask at opset 18), GatherND (torch's
decomposition of some interpolations), GroupNormalization 21, and without the exporter's graph
optimisation (optimize=False) tensor sequences (SplitToSequence, SequenceAt). Needs torch >= 2.9 with onnxscript
(not Debian's torch 1.13); diffusers is optional. From PyPI, in a virtual environment:

    python3 -m venv /tmp/t2 && /tmp/t2/bin/pip install torch onnxscript onnx onnxruntime diffusers
    /tmp/t2/bin/python tests/data/make_dynamo_models.py --fixtures   # tests/data/onnx/zoo_dyn_*
    /tmp/t2/bin/python tests/data/make_dynamo_models.py --out DIR    # every model, make_zoo's layout
                                                                     # (names: these and make_zoo.py's)
    python3 tests/data/compare_zoo.py --zoo DIR                        # almc vs onnxruntime vs torch

Fixtures: NAME.onnx, NAME_x.npy, NAME_level.npy (per-sample levels) and NAME_out.npy, the expected
output from torch itself. Weights are random (normalisation affine parameters too, and the
projections diffusers initialises to zero): the check is the executor's arithmetic.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def sinusoidal(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class TokenAttn(nn.Module):
    """Tokens [B, 16, 24] and t [B]: nn.MultiheadAttention, then multi-head SDPA, plain and causal."""
    x_shape = (16, 24)

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(24, 32)
        self.t = nn.Linear(1, 32)
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)
        self.qkv = nn.Linear(32, 96)
        self.ln = nn.LayerNorm(32)
        self.o = nn.Linear(32, 24)

    def forward(self, x, t):
        h = self.inp(x) + self.t(t[:, None])[:, None, :]
        h = h + self.mha(h, h, h, need_weights=False)[0]
        b, n, _ = h.shape
        q, k, v = self.qkv(self.ln(h)).reshape(b, n, 3, 4, 8).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, 32)
        c = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, n, 32)
        return self.o(h + a + 0.5 * c)


class AttnUNet(nn.Module):
    """A DDPM-style U-Net on [B, 3, 8, 8]: GroupNorm, SiLU, sinusoidal time embedding, SDPA
    self-attention over the 4x4 positions, nearest upsampling, skip connection."""
    x_shape = (3, 8, 8)

    def __init__(self, c=16):
        super().__init__()
        self.inc = nn.Conv2d(3, c, 3, padding=1)
        self.temb = nn.Linear(16, c)
        self.n1 = nn.GroupNorm(4, c)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.na = nn.GroupNorm(4, 2 * c)
        self.qkv = nn.Conv2d(2 * c, 6 * c, 1)
        self.proj = nn.Conv2d(2 * c, 2 * c, 1)
        self.up = nn.Conv2d(2 * c, c, 3, padding=1)
        self.n2 = nn.GroupNorm(4, 2 * c)
        self.out = nn.Conv2d(2 * c, 3, 3, padding=1)

    def forward(self, x, t):
        h = self.inc(x) + self.temb(sinusoidal(t * 1000.0, 16))[:, :, None, None]
        h = F.silu(self.n1(h))
        d = self.down(h)
        b, c, hh, ww = d.shape
        q, k, v = self.qkv(self.na(d)).reshape(b, 3, 2, c // 2, hh * ww).permute(1, 0, 2, 4, 3)
        a = F.scaled_dot_product_attention(q, k, v).permute(0, 1, 3, 2).reshape(b, c, hh, ww)
        d = d + self.proj(a)
        u = self.up(F.interpolate(d, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.n2(torch.cat([u, h], dim=1))))


class ConvFront(nn.Module):
    """A 3x3 convolution of c channels first (what follows then acts on a computed tensor)."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Conv2d(c, c, 3, padding=1)


class Interp(ConvFront):
    """[B, 3, 12, 12]: interpolations torch 2.x decomposes (1-D linear, nearest-exact, area,
    align_corners bilinear, an explicit size) next to the ones it exports as Resize."""
    x_shape = (3, 12, 12)

    def __init__(self):
        super().__init__(3)

    def forward(self, x, t):
        h = self.c(x) * t[:, None, None, None]
        a = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        b = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)
        e = F.interpolate(h, scale_factor=2, mode="nearest-exact")
        c = F.interpolate(h, size=(7, 5), mode="bilinear")
        d = F.interpolate(h, scale_factor=0.5, mode="area")
        r = F.interpolate(h.flatten(2), scale_factor=2, mode="linear")[:, :, ::2].reshape(h.shape)
        return (a + b + e)[:, :, ::2, ::2] + F.interpolate(c, size=(12, 12)) + F.interpolate(d, size=(12, 12)) + r


class Bicubic(ConvFront):
    """[B, 3, 12, 12]: bicubic interpolation up (align_corners False and True) and down."""
    x_shape = (3, 12, 12)

    def __init__(self):
        super().__init__(3)

    def forward(self, x, t):
        h = self.c(x) * t[:, None, None, None]
        u = F.interpolate(h, scale_factor=2, mode="bicubic", align_corners=False)[:, :, 1::2, ::2]
        v = F.interpolate(h, size=(23, 12), mode="bicubic", align_corners=True)[:, :, ::2]
        d = F.interpolate(F.interpolate(h, scale_factor=0.5, mode="bicubic"), size=(12, 12), mode="nearest")
        return u + v + d


class InPlace(ConvFront):
    """[B, 4, 6, 6]: in-place assignments (torch writes ScatterND and ScatterElements)."""
    x_shape = (4, 6, 6)

    def __init__(self):
        super().__init__(4)

    def forward(self, x, t):
        h = self.c(x)
        h2 = h.clone()
        h2[:, 1] = h[:, 2] * t[:, None, None]
        h2[:, :, 0, :] = 0.5
        h3 = h2.clone()
        h3[:, torch.tensor([3, 0, 1])] = h2[:, :3] + 1.0
        h3[..., 2] += t[:, None, None]
        return h3


class DiffusersUNet(nn.Module):
    """diffusers' UNet2DModel (DDPM configuration, attention in the middle resolution)."""
    x_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DModel
        self.u = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                             block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=8,
                             down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                             up_block_types=("AttnUpBlock2D", "UpBlock2D"))

    def forward(self, x, t):
        return self.u(x, t * 1000.0).sample


ARCHS = {"token_attn": TokenAttn, "attn_unet": AttnUNet, "interp": Interp, "bicubic": Bicubic, "inplace": InPlace,
         "diffusers_unet": DiffusersUNet}

# (arch, opset, optimize): what each adds. token_attn at 18: Trilu (the causal mask), SDPA as
# MatMul/Softmax; at 23: Attention (4-D, causal). attn_unet at 23: Attention over spatial tokens,
# GroupNormalization 21. interp at 18: GatherND. diffusers_unet at 23: a real library's model.
# make_zoo.py's shuffle without the exporter's optimisation: SplitToSequence / SequenceAt, CastLike.
# bicubic at 18: Resize mode cubic (coefficient -0.75, pytorch_half_pixel and align_corners).
# inplace at 18: ScatterND and ScatterElements with indices computed from shapes (constant).
# make_zoo.py's sweep at 18: CumSum, IsNaN, IsInf, Atan, Asin, Mod (fmod), Tile, DepthToSpace, ReduceL2, ...
FIXTURES = [("token_attn", 18, True), ("token_attn", 23, True), ("attn_unet", 23, True), ("interp", 18, True),
            ("diffusers_unet", 23, True), ("shuffle", 18, False), ("bicubic", 18, True),
            ("inplace", 18, True), ("sweep", 18, True)]


def zoo_arch(arch):
    """make_zoo.py's architecture (torch-version neutral), or None."""
    sys.path.insert(0, HERE)
    import make_zoo
    return make_zoo if arch in make_zoo.ARCHS else None


def build(arch):
    z = zoo_arch(arch) if arch not in ARCHS else None
    if z:
        return z.build(arch)
    torch.manual_seed(1)
    m = ARCHS[arch]()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.GroupNorm, nn.LayerNorm)) and getattr(mod, "weight", None) is not None:
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
        for p in m.parameters():
            if float(p.abs().max()) == 0.0:
                p.normal_(0.0, 0.1)
    return m.eval()


def export(m, path, opset, optimize=True):
    x = torch.randn(3, *m.x_shape)
    t = torch.tensor([0.5, 0.7, 0.9])
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        torch.onnx.export(m, (x, t), path, dynamo=True, opset_version=opset, input_names=["x", "t"], optimize=optimize,
                          output_names=["out"], dynamic_shapes=({0: batch}, {0: batch}), external_data=False)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    # The exporter's per-node metadata (source locations and module paths, half the bytes) is
    # dropped: the executor never reads it, and it would tie the fixtures to the folder they were
    # written from.
    for n in list(model.graph.node) + [n for f in model.functions for n in f.node]:
        del n.metadata_props[:]
    del model.metadata_props[:]
    onnx.save(model, path)
    return sorted({n.op_type for n in model.graph.node})


def available(arch):
    if arch not in ARCHS:
        return zoo_arch(arch) is not None and getattr(zoo_arch(arch).ARCHS[arch], "level", "B") == "B"
    try:
        ARCHS[arch]()
        return True
    except ImportError as e:
        print(f"{arch}: skipped ({e})")
        return False


def fixtures():
    out_dir = os.path.join(HERE, "onnx")
    for arch, opset, optimize in FIXTURES:
        if not available(arch):
            continue
        m = build(arch)
        name = f"zoo_dyn_{arch}_o{opset}" + ("" if optimize else "_noopt")
        ops = export(m, os.path.join(out_dir, name + ".onnx"), opset, optimize)
        torch.manual_seed(99)
        x = torch.randn(7, *m.x_shape)
        t = torch.rand(7) * 0.8 + 0.2
        with torch.no_grad():
            out = m(x, t)
        np.save(os.path.join(out_dir, name + "_x.npy"), x.numpy())
        np.save(os.path.join(out_dir, name + "_level.npy"), t.numpy())
        np.save(os.path.join(out_dir, name + "_out.npy"), out.numpy().astype(np.float32))
        print(f"{name}: {os.path.getsize(os.path.join(out_dir, name + '.onnx'))} bytes, ops {ops}")


def zoo(out_dir, names):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    for arch in names:
        if not available(arch):
            continue
        m = build(arch)
        for opset, optimize in ((18, True), (23, True), (18, False)):
            name = f"{arch}_o{opset}_dynamo" + ("" if optimize else "_noopt")
            path = os.path.join(out_dir, name + ".onnx")
            export(m, path, opset, optimize)
            level = float(0.3 + 0.6 * rng.random())
            meta = {"arch": arch, "opset": opset, "variant": "dynamo", "level_kind": "B", "level": level,
                    "bytes": os.path.getsize(path)}
            for b in (1, 7):
                x = torch.from_numpy(rng.standard_normal((b, *m.x_shape)).astype(np.float32))
                with torch.no_grad():
                    out = m(x, torch.full((b,), level))
                np.save(os.path.join(out_dir, f"{name}_x{b}.npy"), x.numpy())
                np.save(os.path.join(out_dir, f"{name}_out{b}.npy"), out.numpy().astype(np.float32))
            with open(os.path.join(out_dir, name + ".json"), "w") as f:
                json.dump(meta, f)
            print(f"{name}: {meta['bytes']} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/almc_zoo_dynamo")
    ap.add_argument("--fixtures", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 9):
        sys.exit(f"torch {torch.__version__}: needs torch >= 2.9 (the dynamo exporter by default)")
    if a.fixtures:
        fixtures()
    else:
        zoo(a.out, a.names or list(ARCHS))


if __name__ == "__main__":
    main()
