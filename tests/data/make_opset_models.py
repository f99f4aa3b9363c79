#!/usr/bin/env python3
"""Fixtures for the ONNX opsets after 17 (torch 1.13 exports up to 17; newer exporters write 18 and
later): graphs written with onnx.helper, expected outputs from onnxruntime. Needs the pip packages
onnx (>= 1.16) and onnxruntime (>= 1.20), e.g. in the pyenv python3:

    python3 -m pip install onnx onnxruntime
    python3 tests/data/make_opset_models.py        # writes tests/data/onnx/zoo_opset{18,23}*

Each model maps x [B, 8, 6, 6] and per-sample levels t [B] to an output of x's size, through the
ops and attribute forms that changed after opset 17 (listed per model below), then a 1x1
convolution that mixes every feature channel into every output channel. Weights are
random, not trained: the check is the executor's arithmetic.

Before writing, the ops whose semantics changed between opsets (GroupNormalization 18 vs 21,
Resize half_pixel_symmetric, AveragePool dilations) are also checked against small NumPy
implementations written here from the operator specification, so the expected outputs do not rest
on onnxruntime alone.
"""
import math
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper as H

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "onnx")
RNG = np.random.default_rng(20261201)
B, C, S = 7, 8, 6


def f32(name, a):
    a = np.asarray(a, np.float32)
    return H.make_tensor(name, TensorProto.FLOAT, list(a.shape), a.ravel().tolist())


def i64(name, v):
    return H.make_tensor(name, TensorProto.INT64, [len(v)], list(v))


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def finish(name, opset, nodes, inits, feats, nfeat, functions=()):
    """Concat the [B, k, S, S] features, mix the channels with a 1x1 Conv to C, scale by (t + 1)."""
    nodes = list(nodes) + [
        H.make_node("Concat", feats, ["cat"], axis=1),
        H.make_node("Conv", ["cat", "W", "bias"], ["mixed"], kernel_shape=[1, 1]),
        H.make_node("Unsqueeze", ["t", "t_axes"], ["t1"]),
        H.make_node("Add", ["t1", "one"], ["t2"]),
        H.make_node("Mul", ["mixed", "t2"], ["out"]),
    ]
    inits = list(inits) + [
        f32("W", rand(C, nfeat, 1, 1, scale=1.0 / math.sqrt(nfeat))), f32("bias", rand(C, scale=0.1)),
        i64("t_axes", [1, 2, 3]), f32("one", 1.0),
    ]
    graph = H.make_graph(
        nodes, name,
        [H.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", C, S, S]),
         H.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"])],
        [H.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", C, S, S])], initializer=inits)
    imports = [H.make_opsetid("", opset)] + ([H.make_opsetid("local", 1)] if functions else [])
    model = H.make_model(graph, opset_imports=imports, functions=list(functions))
    model.ir_version = 10
    # The checker refuses GroupNormalization-18 as deprecated (opset 21 redefined it); onnxruntime
    # still runs it, and models carrying it exist, so that model skips the checker.
    if name != "zoo_opset18":
        onnx.checker.check_model(model, full_check=True)
    x = rand(B, C, S, S)
    t = RNG.random(B).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": x, "t": t})[0]
    assert out.shape == x.shape and np.all(np.isfinite(out))
    onnx.save(model, os.path.join(OUT, name + ".onnx"))
    np.save(os.path.join(OUT, name + "_x.npy"), x)
    np.save(os.path.join(OUT, name + "_level.npy"), t)
    np.save(os.path.join(OUT, name + "_out.npy"), out)
    print(f"{name}: opset {opset}, {len(nodes)} nodes, written")


def opset18():
    """GroupNormalization-18 (one scale per group), ReduceMean / ReduceMax with axes as an input,
    Split with num_outputs (uneven: 3, 3, 2), Pad with axes (constant and reflect), Resize with axes
    (linear, scales) and with sizes and keep_aspect_ratio_policy not_larger (nearest)."""
    nodes = [
        H.make_node("GroupNormalization", ["x", "gs", "gb"], ["gn"], num_groups=4, epsilon=1e-4),
        H.make_node("ReduceMean", ["gn", "hw"], ["m"], keepdims=1),
        H.make_node("Sub", ["gn", "m"], ["c"]),
        H.make_node("Split", ["c"], ["s0", "s1", "s2"], axis=1, num_outputs=3),
        H.make_node("ReduceMax", ["s0", "ax1"], ["mx"], keepdims=1),
        H.make_node("Add", ["s0", "mx"], ["a0"]),                                           # [B, 3, 6, 6]
        H.make_node("Pad", ["s1", "p_hw", "", "hw"], ["q"], mode="reflect"),                 # [B, 3, 8, 8]
        H.make_node("Resize", ["q", "", "sc"], ["a1"], mode="linear", axes=[2, 3]),          # [B, 3, 6, 6]
        H.make_node("Pad", ["s2", "p_c", "half", "ax1"], ["p2"], mode="constant"),           # [B, 3, 6, 6]
        H.make_node("Resize", ["p2", "", "", "sz"], ["r4"], mode="nearest", axes=[2, 3],
                    keep_aspect_ratio_policy="not_larger"),                                 # [B, 3, 4, 4]
        H.make_node("Resize", ["r4", "", "", "sz6"], ["a2"], mode="linear", axes=[3, 2]),    # [B, 3, 6, 6]
    ]
    inits = [f32("gs", rand(4) + 1), f32("gb", rand(4)), i64("hw", [2, 3]), i64("ax1", [1]),
             i64("p_hw", [1, 1, 1, 1]), f32("sc", [0.75, 0.75]), i64("p_c", [1, 0]), f32("half", 0.5),
             i64("sz", [4, 5]), i64("sz6", [6, 6])]
    finish("zoo_opset18", 18, nodes, inits, ["a0", "a1", "a2"], 9)


def opset23():
    """GroupNormalization-21 (one scale per channel), Gelu (opset 20, exact and tanh), AveragePool
    with dilations (19), Resize half_pixel_symmetric (19), Pad mode wrap (19) with axes,
    RMSNormalization (23), CastLike (to int64 and back: truncation)."""
    nodes = [
        H.make_node("GroupNormalization", ["x", "gs", "gb"], ["gn"], num_groups=2, epsilon=1e-5),
        H.make_node("Gelu", ["gn"], ["g1"]),
        H.make_node("Gelu", ["gn"], ["g2"], approximate="tanh"),
        H.make_node("AveragePool", ["g1"], ["a0"], kernel_shape=[2, 2], dilations=[2, 2],
                    pads=[1, 1, 1, 1], count_include_pad=0),                                  # [B, 8, 6, 6]
        H.make_node("Resize", ["g2", "", "sc"], ["rs"], mode="linear",
                    coordinate_transformation_mode="half_pixel_symmetric"),                   # [B, 8, 4, 9]
        H.make_node("Pad", ["rs", "p_wrap", "", "hw"], ["pw"], mode="wrap"),                 # [B, 8, 6, 6]
        H.make_node("Slice", ["pw", "z", "four", "ax1"], ["a1"]),                            # [B, 4, 6, 6]
        H.make_node("RMSNormalization", ["x", "rs_scale"], ["rms"], axis=2, epsilon=1e-3),
        H.make_node("Mul", ["x", "three"], ["x3"]),
        H.make_node("CastLike", ["x3", "like_i"], ["xi"]),
        H.make_node("CastLike", ["xi", "x"], ["xf"]),
        H.make_node("Add", ["rms", "xf"], ["a2"]),                                           # [B, 8, 6, 6]
        # The two Gelu forms differ by < 1e-3: their difference, magnified, is a feature of its own.
        H.make_node("Sub", ["g2", "g1"], ["gd"]),
        H.make_node("Mul", ["gd", "thousand"], ["a3"]),                                      # [B, 8, 6, 6]
    ]
    inits = [f32("gs", rand(C) + 1), f32("gb", rand(C)), f32("sc", [1, 1, 0.7, 1.5]),
             i64("p_wrap", [1, 0, 1, -3]), i64("hw", [2, 3]), i64("z", [0]), i64("four", [4]), i64("ax1", [1]),
             f32("rs_scale", rand(S, S) + 1), f32("three", 3.0), i64("like_i", [1]),
             f32("thousand", 1000.0)]
    # rs: H = floor(6 * 0.7) = 4, W = 9; wrap pads H by (1, 1) and W by (0, -3) -> [B, 8, 6, 6]
    finish("zoo_opset23", 23, nodes, inits, ["a0", "a1", "a2", "a3"], 8 + 4 + 8 + 8)


def spec_checks():
    """onnxruntime against NumPy implementations of the changed ops, on random inputs."""
    def run(node, opset, x, inits):
        g = H.make_graph([node], "g", [H.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                         [H.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
        m = H.make_model(g, opset_imports=[H.make_opsetid("", opset)])
        m.ir_version = 10
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    x = rand(3, 8, 5, 4)
    for opset, per_channel in ((18, False), (21, True)):
        n = C if per_channel else 4
        s, b = rand(n) + 1, rand(n)
        y = run(H.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=4, epsilon=1e-5), opset, x,
                [f32("s", s), f32("b", b)])
        g = x.reshape(3, 4, -1).astype(np.float64)
        z = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
        if per_channel:
            want = z * s[None, :, None, None] + b[None, :, None, None]
        else:
            want = z * np.repeat(s, 2)[None, :, None, None] + np.repeat(b, 2)[None, :, None, None]
        assert np.abs(y - want).max() < 1e-4, ("GroupNormalization", opset)

    # Resize half_pixel_symmetric (linear), one axis at a time: x_in = offset + (x_out + 0.5) / s - 0.5.
    x = rand(1, 1, 1, 7)
    for scale in (0.7, 1.5):
        y = run(H.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear",
                            coordinate_transformation_mode="half_pixel_symmetric"), 19, x,
                [f32("sc", [1, 1, 1, scale])])
        n_out = int(math.floor(7 * scale))
        adj = n_out / (7 * scale)
        off = 7 / 2 * (1 - adj)
        want = []
        for o in range(n_out):
            p = min(max(off + (o + 0.5) / scale - 0.5, 0), 6)
            i0 = int(math.floor(p))
            i1 = min(i0 + 1, 6)
            want.append(x[0, 0, 0, i0] * (1 - (p - i0)) + x[0, 0, 0, i1] * (p - i0))
        assert np.abs(y.ravel() - np.array(want)).max() < 1e-5, ("Resize half_pixel_symmetric", scale)

    # AveragePool with dilations 2, pads 1, count_include_pad 0.
    x = rand(1, 1, 6, 6)
    y = run(H.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1],
                        count_include_pad=0), 19, x, [])
    want = np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            v = [x[0, 0, i - 1 + 2 * a, j - 1 + 2 * b] for a in range(2) for b in range(2)
                 if 0 <= i - 1 + 2 * a < 6 and 0 <= j - 1 + 2 * b < 6]
            want[i, j] = np.mean(v)
    assert np.abs(y[0, 0] - want).max() < 1e-5, "AveragePool dilations"
    print("onnxruntime agrees with the NumPy checks of GroupNormalization 18/21, half_pixel_symmetric, dilated AveragePool")


def np_attention(q, k, v, heads, kv_heads, mask=None, pk=None, pv=None, causal=False, softcap=0.0, scale=None):
    """The Attention-23 specification in NumPy (float64) for 3-D inputs [B, S, heads * size]."""
    b, sq, _ = q.shape
    split = lambda a, h: a.reshape(b, a.shape[1], h, -1).transpose(0, 2, 1, 3).astype(np.float64)
    q4, k4, v4 = split(q, heads), split(k, kv_heads), split(v, kv_heads)
    past = 0
    if pk is not None:
        past = pk.shape[2]
        k4, v4 = np.concatenate([pk, k4], 2), np.concatenate([pv, v4], 2)
    k4, v4 = np.repeat(k4, heads // kv_heads, 1), np.repeat(v4, heads // kv_heads, 1)
    sc = 1 / math.sqrt(q4.shape[-1]) if scale is None else scale
    s = q4 @ k4.transpose(0, 1, 3, 2) * sc
    if softcap > 0:
        s = softcap * np.tanh(s / softcap)
    total = k4.shape[2]
    bias = np.zeros((sq, total))
    if causal:
        bias[np.arange(total)[None, :] > np.arange(sq)[:, None] + past] = -np.inf
    if mask is not None:
        bias = bias + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    s = s + bias
    m = np.max(s, -1, keepdims=True)
    e = np.where(np.isfinite(m), np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    den = e.sum(-1, keepdims=True)
    p = np.where(den > 0, e / np.where(den > 0, den, 1), 0.0)  # a fully masked row: zeros
    return (p @ v4).transpose(0, 2, 1, 3).reshape(b, sq, -1), k4, v4


def attention_spec_check():
    """onnxruntime's Attention-23 against np_attention: 3-D inputs, grouped key/value heads, past
    keys and values, causal with the past offset, a boolean mask with a fully masked row, softcap."""
    b, sq, skv, past = 2, 5, 5, 3
    q, k, v = rand(b, sq, 4 * 6), rand(b, skv, 2 * 6), rand(b, skv, 2 * 5)
    pk, pv = rand(b, 2, past, 6), rand(b, 2, past, 5)
    mask = RNG.random((sq, skv + past)) < 0.7
    mask[2] = False
    names = ["q", "k", "v", "mask", "pk", "pv"]
    vals = [q, k, v, mask, pk, pv]
    g = H.make_graph([H.make_node("Attention", names, ["y", "present_k", "present_v"], q_num_heads=4, kv_num_heads=2, is_causal=1, softcap=2.0)],
                     "g", [H.make_tensor_value_info(n, TensorProto.BOOL if n == "mask" else TensorProto.FLOAT, list(a.shape))
                           for n, a in zip(names, vals)], [H.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = H.make_model(g, opset_imports=[H.make_opsetid("", 23)])
    m.ir_version = 10
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, dict(zip(names, vals)))[0]
    want = np_attention(q, k, v, 4, 2, mask, pk, pv, causal=True, softcap=2.0)[0]
    assert np.all(want[:, 2] == 0) and np.abs(y - want).max() < 1e-5, ("Attention", np.abs(y - want).max())
    print("onnxruntime agrees with the NumPy check of Attention-23 (GQA, past, causal, boolean mask, softcap)")


def attention23():
    """Attention (23): 3-D with grouped key/value heads, past keys/values (their present value used
    too), causal, a boolean mask with a fully masked row and softcap; 4-D with an additive mask and
    a scale; 3-D plain. Trilu (upper with k = 1, lower with k = -1 as an input). GatherND: depth 2
    with negative indices, batch_dims 1, and runtime indices (the level's bucket) into a table."""
    nodes = [
        H.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1, 3]),
        H.make_node("Reshape", ["xt", "tok"], ["x3"]),                                   # [B, 6, 48]
        H.make_node("MatMul", ["x3", "wq"], ["q"]),
        H.make_node("MatMul", ["x3", "wk"], ["k"]),
        H.make_node("MatMul", ["x3", "wv"], ["v"]),
        H.make_node("Shape", ["x"], ["xs"], start=0, end=1),
        H.make_node("Concat", ["xs", "pk_rest"], ["pk_shape"], axis=0),
        H.make_node("Expand", ["pk0", "pk_shape"], ["pk"]),
        H.make_node("Expand", ["pv0", "pk_shape"], ["pv"]),
        H.make_node("Attention", ["q", "k", "v", "mask", "pk", "pv"], ["y1", "present_k", "present_v"],
                    q_num_heads=4, kv_num_heads=2, is_causal=1, softcap=2.0),           # [B, 6, 48]
        H.make_node("Reshape", ["y1", "hw_c"], ["y1r"]),
        H.make_node("Transpose", ["y1r"], ["a0"], perm=[0, 2, 1, 3]),                    # [B, 8, 6, 6]
        H.make_node("Reshape", ["present_v", "six_cube"], ["a1"]),                       # [B, 2*9*12 = 216 -> 6, 6, 6]
        H.make_node("Mul", ["x", "kscale"], ["k4"]),
        H.make_node("Tanh", ["x"], ["v4"]),
        H.make_node("Attention", ["x", "k4", "v4", "fmask"], ["a2"], scale=0.3),         # [B, 8, 6, 6]
        H.make_node("Attention", ["x3", "x3", "x3"], ["y3"], q_num_heads=3, kv_num_heads=3),
        H.make_node("Reshape", ["y3", "hw_c"], ["y3r"]),
        H.make_node("Transpose", ["y3r"], ["a3"], perm=[0, 2, 1, 3]),
        H.make_node("Trilu", ["x", "one_i"], ["a4"]),
        H.make_node("Trilu", ["x", "minus_one_i"], ["a5"], upper=0),
        H.make_node("Transpose", ["x"], ["xg"], perm=[2, 3, 0, 1]),                      # [6, 6, B, 8]
        H.make_node("GatherND", ["xg", "idx2"], ["g1"]),
        H.make_node("Transpose", ["g1"], ["a6"], perm=[2, 3, 0, 1]),
        H.make_node("Transpose", ["x"], ["xb"], perm=[1, 2, 3, 0]),                      # [8, 6, 6, B]
        H.make_node("GatherND", ["xb", "idx_b"], ["g2"], batch_dims=1),
        H.make_node("Transpose", ["g2"], ["a7"], perm=[3, 0, 1, 2]),
        H.make_node("Mul", ["t", "bucket"], ["tb"]),
        H.make_node("Floor", ["tb"], ["tf"]),
        H.make_node("Cast", ["tf"], ["ti"], to=TensorProto.INT64),
        H.make_node("Unsqueeze", ["ti", "ax1"], ["tu"]),                                 # [B, 1]
        H.make_node("GatherND", ["table", "tu"], ["g3"]),                                # [B, 288]
        H.make_node("Reshape", ["g3", "chw"], ["a8"]),
    ]
    mask = RNG.random((6, 9)) < 0.7
    mask[2] = False
    idx2 = RNG.integers(-6, 6, size=(6, 6, 2))
    idx_b = RNG.integers(0, 6, size=(8, 6, 1))
    inits = [i64("tok", [0, 6, 48]), f32("wq", rand(48, 48, scale=0.2)), f32("wk", rand(48, 24, scale=0.2)),
             f32("wv", rand(48, 24, scale=0.2)), i64("pk_rest", [2, 3, 12]), f32("pk0", rand(1, 2, 3, 12)),
             f32("pv0", rand(1, 2, 3, 12)), H.make_tensor("mask", TensorProto.BOOL, [6, 9], mask.ravel().tolist()),
             i64("hw_c", [0, 6, 8, 6]), i64("six_cube", [0, 6, 6, 6]), f32("kscale", rand(1, 8, 1, 6) + 1),
             f32("fmask", rand(1, 1, 6, 6)), H.make_tensor("one_i", TensorProto.INT64, [], [1]),
             H.make_tensor("minus_one_i", TensorProto.INT64, [], [-1]),
             H.make_tensor("idx2", TensorProto.INT64, [6, 6, 2], idx2.ravel().tolist()),
             H.make_tensor("idx_b", TensorProto.INT64, [8, 6, 1], idx_b.ravel().tolist()),
             f32("bucket", 5.99), i64("ax1", [1]), f32("table", rand(6, 288)), i64("chw", [0, 8, 6, 6])]
    finish("zoo_attention23", 23, nodes, inits, ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"], 8 * 8 + 6)


def sequences18():
    """Tensor sequences (what torch 2.x writes for split / chunk without graph optimisation):
    SplitToSequence with a scalar split (uneven last chunk), with a list, and without split
    (keepdims 0); SequenceAt with negative positions, SequenceErase / SequenceInsert,
    SequenceConstruct, SequenceEmpty, SequenceLength, ConcatFromSequence with and without new_axis."""
    nodes = [
        H.make_node("SplitToSequence", ["x", "three"], ["s1"], axis=1),                  # 3, 3, 2 channels
        H.make_node("SequenceAt", ["s1", "minus_one"], ["a0"]),                          # [B, 2, 6, 6]
        H.make_node("SequenceAt", ["s1", "zero"], ["a1"]),                               # [B, 3, 6, 6]
        H.make_node("SplitToSequence", ["x"], ["s2"], axis=2, keepdims=0),               # 6 x [B, 8, 6]
        H.make_node("SequenceErase", ["s2", "pos_one"], ["s3"]),
        H.make_node("SequenceAt", ["s2", "minus_one"], ["last"]),
        H.make_node("SequenceInsert", ["s3", "last", "zero"], ["s4"]),
        H.make_node("ConcatFromSequence", ["s4"], ["a2"], axis=2, new_axis=1),           # [B, 8, 6, 6]
        H.make_node("SplitToSequence", ["x", "sizes"], ["s5"], axis=-1),                 # widths 2 and 4
        H.make_node("SequenceAt", ["s5", "pos_one"], ["w4"]),
        H.make_node("SequenceAt", ["s5", "zero"], ["w2"]),
        H.make_node("SequenceConstruct", ["w4", "w2"], ["s6"]),
        H.make_node("ConcatFromSequence", ["s6"], ["a3"], axis=3),                       # [B, 8, 6, 6]
        H.make_node("SequenceLength", ["s2"], ["n"]),
        H.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
        H.make_node("Mul", ["x", "nf"], ["a4"]),
        H.make_node("SequenceEmpty", [], ["e"], dtype=TensorProto.FLOAT),
        H.make_node("SequenceInsert", ["e", "a3"], ["e1"]),
        H.make_node("SequenceInsert", ["e1", "a2"], ["e2"]),
        H.make_node("SequenceAt", ["e2", "zero"], ["a3b"]),
        H.make_node("Sub", ["a3b", "x"], ["a5"]),
    ]
    scalar = lambda name, v: H.make_tensor(name, TensorProto.INT64, [], [v])
    inits = [scalar("three", 3), scalar("minus_one", -1), scalar("zero", 0), scalar("pos_one", 1), i64("sizes", [2, 4])]
    finish("zoo_sequences18", 18, nodes, inits, ["a0", "a1", "a2", "a3", "a4", "a5"], 2 + 3 + 8 + 8 + 8 + 8)


def functions18():
    """Model-local functions: a function with two outputs (the second unused in one call), an
    attribute without default referenced by LeakyRelu's alpha, an attribute with a default
    (attribute_proto, IR 9) referenced by a Constant; a second function calling the first twice
    (nested expansion, the same internal names in both calls), itself called twice."""
    def ref(name, target, kind):
        a = onnx.AttributeProto()
        a.name, a.ref_attr_name, a.type = name, target, kind
        return a
    act = H.make_node("LeakyRelu", ["X"], ["A"])
    act.attribute.append(ref("alpha", "slope", onnx.AttributeProto.FLOAT))
    gain = H.make_node("Constant", [], ["G"])
    gain.attribute.append(ref("value_float", "gain", onnx.AttributeProto.FLOAT))
    scaled = H.make_function(
        "local", "ScaledAct", ["X", "S"], ["Y", "Z"],
        [act, gain, H.make_node("Mul", ["A", "G"], ["AG"]), H.make_node("Add", ["AG", "S"], ["Y"]),
         H.make_node("Sigmoid", ["X"], ["Z"])],
        [H.make_opsetid("", 18)], attributes=["slope"], attribute_protos=[H.make_attribute("gain", 2.0)])
    block = H.make_function(
        "local", "Block", ["X", "S"], ["Y"],
        [H.make_node("ScaledAct", ["X", "S"], ["Y1", "Z1"], domain="local", slope=0.1),
         H.make_node("ScaledAct", ["Y1", "S"], ["Y", "Zunused"], domain="local", slope=0.3, gain=0.5)],
        [H.make_opsetid("", 18), H.make_opsetid("local", 1)])
    nodes = [
        H.make_node("Unsqueeze", ["t", "axes123"], ["t4"]),
        H.make_node("Block", ["x", "t4"], ["a0"], domain="local"),
        H.make_node("Block", ["a0", "t4"], ["a1"], domain="local"),
        H.make_node("ScaledAct", ["x", "t4"], ["a2", "a3"], domain="local", slope=0.2),
    ]
    finish("zoo_functions18", 18, nodes, [i64("axes123", [1, 2, 3])], ["a0", "a1", "a2", "a3"], 4 * 8,
           functions=[scaled, block])


def half_models():
    """Models exported in half precision, which the executor runs in float32 with the weights
    widened exactly: zoo_half_attn_unet (float16) and zoo_bf16_token_attn (bfloat16), from the
    dynamo exports zoo_dyn_attn_unet_o23 / zoo_dyn_token_attn_o23, every float weight, input,
    output and cast in the half type, the output then scaled by a constant 1.1 cast to it (held as its
rounding, 1.0996 or 1.1016, which moves the output by 3e-4 or 1e-3 of itself). The
    expected output is onnxruntime's run of the same graph in float32 with the rounded weights."""
    from onnx import numpy_helper as NH

    def to_bits(a, kind):
        a = np.asarray(a, np.float32)
        if kind == TensorProto.FLOAT16:
            h = a.astype(np.float16)
            return h.view(np.uint16), h.astype(np.float32)
        u = a.view(np.uint32).astype(np.uint64)
        b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # to nearest even
        return b, (b.astype(np.uint32) << 16).view(np.float32)

    def convert(src, name, kind):
        half, ref = onnx.load(os.path.join(OUT, src + ".onnx")), onnx.load(os.path.join(OUT, src + ".onnx"))
        for m in (half, ref):
            del m.graph.value_info[:]
        keep = {n.input[i] for n in half.graph.node if n.op_type == "Resize" for i in (1, 2) if i < len(n.input)}
        for t_half, t_ref in zip(half.graph.initializer, ref.graph.initializer):
            if t_half.data_type == TensorProto.FLOAT and t_half.name not in keep:  # (Resize's roi/scales stay float)
                bits, rounded = to_bits(NH.to_array(t_half), kind)
                t_ref.CopyFrom(NH.from_array(rounded.reshape(t_half.dims), t_half.name))
                t_half.CopyFrom(H.make_tensor(t_half.name, kind, list(t_half.dims), bits.tobytes(), raw=True))
        for n in half.graph.node:
            for a in n.attribute:
                if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = kind
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    bits, _ = to_bits(NH.to_array(a.t), kind)
                    a.t.CopyFrom(H.make_tensor(a.t.name, kind, list(a.t.dims), bits.tobytes(), raw=True))
        for n in ref.graph.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(NH.from_array(to_bits(NH.to_array(a.t), kind)[1].reshape(a.t.dims), a.t.name))
        for vi in list(half.graph.input) + list(half.graph.output):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = kind
        out = half.graph.output[0].name
        for m, ck in ((half, kind), (ref, TensorProto.FLOAT)):
            g = m.graph
            g.node.extend([H.make_node("Constant", [], ["scale"], value=H.make_tensor("v", TensorProto.FLOAT, [], [1.1])),
                           H.make_node("Cast", ["scale"], ["scale_c"], to=ck)])
            if m is ref:  # the reference adds the rounded value itself
                g.node[-1].CopyFrom(H.make_node("Constant", [], ["scale_c"],
                                                value=NH.from_array(to_bits(np.float32(1.1), kind)[1].reshape(()), "v")))
            for n in g.node:
                n.output[:] = [o + "_pre" if o == out else o for o in n.output]
            g.node.append(H.make_node("Mul", [out + "_pre", "scale_c"], [out]))
        onnx.checker.check_model(half)
        x = np.load(os.path.join(OUT, src + "_x.npy"))
        t = np.load(os.path.join(OUT, src + "_level.npy"))
        want = ort.InferenceSession(ref.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x, "t": t})[0]
        onnx.save(half, os.path.join(OUT, name + ".onnx"))
        np.save(os.path.join(OUT, name + "_x.npy"), x)
        np.save(os.path.join(OUT, name + "_level.npy"), t)
        np.save(os.path.join(OUT, name + "_out.npy"), want.astype(np.float32))
        print(f"{name}: {TensorProto.DataType.Name(kind)} weights, written")
    convert("zoo_dyn_attn_unet_o23", "zoo_half_attn_unet", TensorProto.FLOAT16)
    convert("zoo_dyn_token_attn_o23", "zoo_bf16_token_attn", TensorProto.BFLOAT16)


def cubic19():
    """Resize mode cubic: Keys' coefficient -0.5 with exclude_outside (up by 1.5, half_pixel), the
    default -0.75 down by 0.5 (asymmetric), and align_corners to an explicit size on one axis."""
    nodes = [
        H.make_node("Resize", ["x", "", "up"], ["u"], mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1),  # [B, 8, 9, 9]
        H.make_node("Resize", ["u", "", "", "six"], ["a0"], mode="cubic", coordinate_transformation_mode="align_corners",
                    axes=[2, 3]),                                                                            # [B, 8, 6, 6]
        H.make_node("Resize", ["x", "", "down"], ["d"], mode="cubic", coordinate_transformation_mode="asymmetric"),  # 3x3
        H.make_node("Resize", ["d", "", "two"], ["a1"], mode="cubic", coordinate_transformation_mode="pytorch_half_pixel"),
    ]
    inits = [f32("up", [1, 1, 1.5, 1.5]), i64("six", [6, 6]), f32("down", [1, 1, 0.5, 0.5]), f32("two", [1, 1, 2, 2])]
    finish("zoo_cubic19", 19, nodes, inits, ["a0", "a1"], 16)


def scatter18():
    """ScatterND of depth 2 (negative indices) into [6, 6, B, 8], of depth 1 with reduction add into
    [8, B, 6, 6]; ScatterElements along axis 2 with reduction max and along axis -1 (negative
    indices), their indices expanded over the batch from shapes, as torch writes them. Every index
    is written once (the operators leave the order of duplicate writes undefined)."""
    perm = lambda n, k: RNG.permutation(n)[:k]
    idx1 = np.array([[0, 1], [5, 5], [-1, 2], [3, -6]])
    idx_c = np.array([[2], [-1], [4]])
    rows = np.stack([np.stack([perm(6, 3) for _ in range(6)], -1) for _ in range(8)])[None]  # [1, 8, 3, 6]
    rows = np.where(RNG.random(rows.shape) < 0.3, rows - 6, rows)
    cols = np.stack([np.stack([perm(6, 2) for _ in range(6)]) for _ in range(8)])[None] - 6  # [1, 8, 6, 2]
    nodes = [
        H.make_node("Transpose", ["x"], ["xt"], perm=[2, 3, 0, 1]),                     # [6, 6, B, 8]
        H.make_node("Mul", ["xt", "two"], ["u1"]),
        H.make_node("Slice", ["u1", "z", "four", "z"], ["u1s"]),                         # [4, 6, B, 8]
        H.make_node("Slice", ["u1s", "z", "one_i", "ax1"], ["u1t"]),                     # [4, 1, B, 8]
        H.make_node("Reshape", ["u1t", "upd_shape"], ["upd1"]),                          # [4, B, 8]
        H.make_node("ScatterND", ["xt", "idx1", "upd1"], ["s1"]),
        H.make_node("Transpose", ["s1"], ["a0"], perm=[2, 3, 0, 1]),
        H.make_node("Transpose", ["x"], ["xc"], perm=[1, 0, 2, 3]),                      # [8, B, 6, 6]
        H.make_node("Slice", ["xc", "z", "three", "z"], ["uc"]),                         # [3, B, 6, 6]
        H.make_node("ScatterND", ["xc", "idx_c", "uc"], ["s2"], reduction="add"),
        H.make_node("Transpose", ["s2"], ["a1"], perm=[1, 0, 2, 3]),
        H.make_node("Shape", ["x"], ["xs"], start=0, end=1),
        H.make_node("Concat", ["xs", "rest_e"], ["shape_e"], axis=0),
        H.make_node("Expand", ["rows", "shape_e"], ["idx_e"]),                           # [B, 8, 3, 6]
        H.make_node("Slice", ["a0", "z", "three", "ax2"], ["ue"]),
        H.make_node("ScatterElements", ["x", "idx_e", "ue"], ["a2"], axis=2, reduction="max"),
        H.make_node("Concat", ["xs", "rest_w"], ["shape_w"], axis=0),
        H.make_node("Expand", ["cols", "shape_w"], ["idx_w"]),                           # [B, 8, 6, 2]
        H.make_node("Slice", ["a1", "z", "two_i", "ax3"], ["uw"]),
        H.make_node("ScatterElements", ["x", "idx_w", "uw"], ["a3"], axis=-1),
    ]
    i64t = lambda name, a: H.make_tensor(name, TensorProto.INT64, list(a.shape), a.ravel().tolist())
    inits = [f32("two", 2.0), i64("z", [0]), i64("four", [4]), i64("one_i", [1]), i64("ax1", [1]), i64("ax2", [2]),
             i64("ax3", [3]), i64("three", [3]), i64("two_i", [2]), i64("upd_shape", [4, -1, 8]), i64t("idx1", idx1),
             i64t("idx_c", idx_c), i64("rest_e", [8, 3, 6]), i64t("rows", rows), i64("rest_w", [8, 6, 2]), i64t("cols", cols)]
    finish("zoo_scatter18", 18, nodes, inits, ["a0", "a1", "a2", "a3"], 32)


def math18():
    """Elementwise functions torch exports rarely: Tan, Asin, Acos, Sinh, Cosh, Asinh, Acosh, Atanh (on
    inputs mapped into their domains), IsInf with detect_negative / detect_positive, IsNaN, Mod on
    integers (fmod 0: the divisor's sign, negative operands) and on floats (fmod 1); CumSum
    exclusive, reverse, and both, along axes 2 and -1."""
    nodes = [
        H.make_node("Tanh", ["x"], ["u"]),                                                 # (-1, 1)
        H.make_node("Mul", ["u", "nine_tenths"], ["u9"]),
        H.make_node("Tan", ["u"], ["f0"]),
        H.make_node("Asin", ["u9"], ["f1"]),
        H.make_node("Acos", ["u9"], ["f2"]),
        H.make_node("Cosh", ["u"], ["f3"]),
        H.make_node("Asinh", ["x"], ["f4"]),
        H.make_node("Abs", ["x"], ["ax"]),
        H.make_node("Add", ["ax", "one_f"], ["ax1"]),
        H.make_node("Acosh", ["ax1"], ["f5"]),
        H.make_node("Atanh", ["u9"], ["f6"]),
        H.make_node("Sinh", ["u"], ["f7"]),
        H.make_node("Sum", ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"], ["a0"]),
        H.make_node("Div", ["x", "u_step"], ["q"]),                                        # +-inf where x's sign flips the step
        H.make_node("IsInf", ["q"], ["i_pos"], detect_negative=0),
        H.make_node("IsInf", ["q"], ["i_neg"], detect_positive=0),
        H.make_node("Sub", ["q", "q"], ["nan_or_zero"]),
        H.make_node("IsNaN", ["nan_or_zero"], ["i_nan"]),
        H.make_node("Cast", ["i_pos"], ["p_f"], to=TensorProto.FLOAT),
        H.make_node("Cast", ["i_neg"], ["n_f"], to=TensorProto.FLOAT),
        H.make_node("Cast", ["i_nan"], ["nan_f"], to=TensorProto.FLOAT),
        H.make_node("Sum", ["p_f", "n_f", "nan_f", "n_f"], ["a1"]),
        H.make_node("Mul", ["x", "ten"], ["x10"]),
        H.make_node("Floor", ["x10"], ["xf"]),
        H.make_node("Cast", ["xf"], ["xi"], to=TensorProto.INT64),
        H.make_node("Mod", ["xi", "mods"], ["m_i"]),                                       # divisors 3 and -4
        H.make_node("Cast", ["m_i"], ["a2a"], to=TensorProto.FLOAT),
        H.make_node("Mod", ["x", "m_f"], ["a2b"], fmod=1),
        H.make_node("Add", ["a2a", "a2b"], ["a2"]),
        H.make_node("CumSum", ["x", "ax2"], ["c0"], exclusive=1),
        H.make_node("CumSum", ["x", "axm1"], ["c1"], reverse=1),
        H.make_node("CumSum", ["c0", "axm1"], ["c2"], exclusive=1, reverse=1),
        H.make_node("Add", ["c1", "c2"], ["a3"]),
    ]
    u_step = np.where(RNG.random((1, C, S, S)) < 0.5, 0.0, 1.0).astype(np.float32)
    mods = np.where(np.arange(S) % 2 == 0, 3, -4).astype(np.int64).reshape(1, 1, 1, S)
    scalar_i = lambda name, v: H.make_tensor(name, TensorProto.INT64, [], [v])
    inits = [f32("nine_tenths", 0.9), f32("one_f", 1.0), f32("u_step", u_step), f32("ten", 10.0),
             H.make_tensor("mods", TensorProto.INT64, list(mods.shape), mods.ravel().tolist()), f32("m_f", -0.7),
             scalar_i("ax2", 2), scalar_i("axm1", -1)]
    finish("zoo_math18", 18, nodes, inits, ["a0", "a1", "a2", "a3"], 32)


def refusals():
    """Models the loader must refuse with a message naming the problem: an opset past 25, an
    antialiased linear down-sampling, an unknown Gelu approximation (x [N, 4, 4, 4] -> y)."""
    def save(name, node, opset, inits=(), functions=()):
        nodes = node if isinstance(node, list) else [node]
        g = H.make_graph(nodes, name, [H.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 4, 4])],
                         [H.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=list(inits))
        imports = [H.make_opsetid("", opset)] + ([H.make_opsetid("local", 1)] if functions else [])
        m = H.make_model(g, opset_imports=imports, functions=list(functions))
        m.ir_version = 10
        onnx.save(m, os.path.join(OUT, name + ".onnx"))
    save("refuse_opset26", H.make_node("Relu", ["x"], ["y"]), 26)
    save("refuse_antialias", H.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear", antialias=1, axes=[2, 3]), 18,
         [f32("sc", [0.5, 0.5])])
    save("refuse_gelu_approx", H.make_node("Gelu", ["x"], ["y"], approximate="fast"), 20)
    save("refuse_attention_qk", H.make_node("Attention", ["x", "x", "x"], ["y", "", "", "qk"]), 23)
    loop = H.make_function("local", "Loop", ["X"], ["Y"], [H.make_node("Loop", ["X"], ["Y"], domain="local")],
                           [H.make_opsetid("", 18), H.make_opsetid("local", 1)])
    save("refuse_recursive_function", H.make_node("Loop", ["x"], ["y"], domain="local"), 18, functions=[loop])
    save("refuse_gathernd_runtime", [
        H.make_node("Slice", ["x", "s0", "s2", "ax3"], ["xs"]),
        H.make_node("Cast", ["xs"], ["idx"], to=TensorProto.INT64),
        H.make_node("GatherND", ["x", "idx"], ["y"])], 18,
        [i64("s0", [0]), i64("s2", [2]), i64("ax3", [3])])
    print("refuse_opset26, refuse_antialias, refuse_gelu_approx, refuse_attention_qk, refuse_recursive_function, "
          "refuse_gathernd_runtime: written")


def external_data():
    """onnx/external/mlp_embed_ext.onnx: mlp_embed.onnx with every weight in mlp_embed_ext.onnx.data
    (the layout torch.onnx.export(..., dynamo=True) writes by default); its expected outputs are
    mlp_embed's."""
    d = os.path.join(OUT, "external")
    os.makedirs(d, exist_ok=True)
    m = onnx.load(os.path.join(OUT, "mlp_embed.onnx"))
    onnx.save_model(m, os.path.join(d, "mlp_embed_ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="mlp_embed_ext.onnx.data", size_threshold=0)
    print("external/mlp_embed_ext.onnx (+ .data): written")


if __name__ == "__main__":
    external_data()
    refusals()
    spec_checks()
    opset18()
    opset23()
    attention_spec_check()
    attention23()
    sequences18()
    functions18()
    half_models()
    cubic19()
    scatter18()
    math18()
