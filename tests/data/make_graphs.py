#!/usr/bin/python3
"""Hand-built ONNX graphs (onnx.helper) for the executor's and the command's tests: refusals and
input bindings. Needs only onnx and numpy; make_models.py runs it too.

    python3 tests/data/make_graphs.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")
OPSET = 17


def save_raw(name, graph, check=True):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


def hand_made():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 8])
    # Two ops the executor does not implement; the refusal must name both and their nodes.
    save_raw("unsupported_ops", helper.make_graph([
        helper.make_node("Relu", ["x"], ["a"], name="relu0"),
        helper.make_node("Hardmax", ["a"], ["b"], name="hardmax_node", axis=1),
        helper.make_node("Relu", ["b"], ["c"], name="relu1"),
        helper.make_node("ThresholdedRelu", ["c"], ["out"], name="thresholded_node"),
    ], "unsupported", [x], [y]))
    # A cycle a -> b -> a.
    save_raw("cycle", helper.make_graph([
        helper.make_node("Add", ["x", "b"], ["a"], name="add_cycle"),
        helper.make_node("Relu", ["a"], ["b"], name="relu_cycle"),
        helper.make_node("Identity", ["a"], ["out"], name="id"),
    ], "cycle", [x], [y]), check=False)
    # A float64 weight.
    w = helper.make_tensor("w64", TensorProto.DOUBLE, [8], np.linspace(0, 1, 8).tolist())
    save_raw("double_weight", helper.make_graph([
        helper.make_node("Cast", ["x"], ["xd"], name="cast", to=TensorProto.DOUBLE),
        helper.make_node("Add", ["xd", "w64"], ["s"], name="add_double"),
        helper.make_node("Cast", ["s"], ["out"], name="cast_back", to=TensorProto.FLOAT),
    ], "double", [x], [y], initializer=[w]))
    # A node input that nothing produces.
    save_raw("missing_input", helper.make_graph([
        helper.make_node("Add", ["x", "ghost"], ["out"], name="add_ghost"),
    ], "missing", [x], [y]), check=False)
    # A DDPM-style integer timestep: the level input is int64 (issue 12, item 2).
    tl = helper.make_tensor_value_info("timestep", TensorProto.INT64, ["batch"])
    y6 = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 6])
    x6 = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])
    axes = helper.make_tensor("axes1", TensorProto.INT64, [1], [1])
    save_raw("int64_level", helper.make_graph([
        helper.make_node("Cast", ["timestep"], ["tf"], name="cast_t", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["tf", "axes1"], ["tu"], name="unsq_t"),
        helper.make_node("Mul", ["x", "tu"], ["out"], name="mul_t"),
    ], "int64_level", [x6, tl], [y6], initializer=[axes]))
    # The level listed before x: the default binding (first input = x) is wrong.
    tf = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"])
    save_raw("level_first", helper.make_graph([
        helper.make_node("Unsqueeze", ["t", "axes1"], ["tu"], name="unsq_t"),
        helper.make_node("Mul", ["x", "tu"], ["out"], name="mul_t"),
    ], "level_first", [tf, x6], [y6], initializer=[axes]))
    # x alone: a network without a level input.
    save_raw("x_only", helper.make_graph([
        helper.make_node("Neg", ["x"], ["out"], name="neg_x"),
    ], "x_only", [x], [y]))
    # Exact eps of a class-conditional prior N(mu_c, s0^2 I), VP with alpha_bar = exp(-2 t); the class
    # label is an extra int64 input (issue 12, item 11).
    s0 = 0.7
    means = np.array([[0.0] * 6, [1.5, -1.0, 0.5, 2.0, -2.0, 1.0], [-1.0] * 6], dtype=np.float32)
    cls = helper.make_tensor_value_info("class_label", TensorProto.INT64, ["batch"])
    t1 = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch", 1])
    consts = [
        helper.make_tensor("means", TensorProto.FLOAT, [3, 6], means.reshape(-1).tolist()),
        helper.make_tensor("minus2", TensorProto.FLOAT, [], [-2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("s0sq", TensorProto.FLOAT, [], [s0 * s0]),
    ]
    save_raw("gauss_class_eps", helper.make_graph([
        helper.make_node("Gather", ["means", "class_label"], ["mu"], name="embed", axis=0),
        helper.make_node("Mul", ["t", "minus2"], ["m2t"], name="m2t"),
        helper.make_node("Exp", ["m2t"], ["ab"], name="ab"),
        helper.make_node("Sqrt", ["ab"], ["sab"], name="sab"),
        helper.make_node("Sub", ["one", "ab"], ["omab"], name="omab"),
        helper.make_node("Sqrt", ["omab"], ["somab"], name="somab"),
        helper.make_node("Mul", ["ab", "s0sq"], ["abs0"], name="abs0"),
        helper.make_node("Add", ["abs0", "omab"], ["var"], name="var"),
        helper.make_node("Mul", ["sab", "mu"], ["smu"], name="smu"),
        helper.make_node("Sub", ["x", "smu"], ["centred"], name="centred"),
        helper.make_node("Mul", ["somab", "centred"], ["num"], name="num"),
        helper.make_node("Div", ["num", "var"], ["out"], name="eps"),
    ], "gauss_class_eps", [x6, t1, cls], [y6], initializer=consts))
    # Learned variance: the output has 2C channels, eps (of N(0, s0^2 I)) first, then a channel
    # that is not eps (issue 12, item 10). x [n, 1, 2, 3] -> out [n, 2, 2, 3].
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 2, 3])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2, 2, 3])
    save_raw("gauss_eps_learned_var", helper.make_graph([
        helper.make_node("Mul", ["t", "minus2"], ["m2t"], name="m2t"),
        helper.make_node("Exp", ["m2t"], ["ab"], name="ab"),
        helper.make_node("Sub", ["one", "ab"], ["omab"], name="omab"),
        helper.make_node("Sqrt", ["omab"], ["somab"], name="somab"),
        helper.make_node("Mul", ["ab", "s0sq"], ["abs0"], name="abs0"),
        helper.make_node("Add", ["abs0", "omab"], ["var"], name="var"),
        helper.make_node("Div", ["somab", "var"], ["k"], name="k"),
        helper.make_node("Reshape", ["k", "k_shape"], ["k4"], name="k4"),
        helper.make_node("Mul", ["x", "k4"], ["eps"], name="eps"),
        helper.make_node("Mul", ["x", "five"], ["junk"], name="junk"),
        helper.make_node("Concat", ["eps", "junk"], ["out"], name="cat", axis=1),
    ], "gauss_eps_learned_var", [xi, t1], [yo], initializer=consts[1:] + [
        helper.make_tensor("k_shape", TensorProto.INT64, [4], [-1, 1, 1, 1]),
        helper.make_tensor("five", TensorProto.FLOAT, [], [5.0])]))
    # A continuous VP-SDE network (score_sde, beta 0.1 .. 20) fed its time label s * 999: exact eps of
    # N(0, s0^2 I) with alpha_bar(s) = exp(-0.1 s - 19.9 s^2 / 2) (issue 12, item 12).
    tl = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch"])
    vconsts = consts[2:] + [
        helper.make_tensor("inv999", TensorProto.FLOAT, [], [1.0 / 999.0]),
        helper.make_tensor("neg_bmin", TensorProto.FLOAT, [], [-0.1]),
        helper.make_tensor("neg_half_bd", TensorProto.FLOAT, [], [-19.9 / 2]),
        helper.make_tensor("axes1", TensorProto.INT64, [1], [1])]
    save_raw("gauss_vpsde_eps", helper.make_graph([
        helper.make_node("Mul", ["t", "inv999"], ["s"], name="s"),
        helper.make_node("Mul", ["s", "neg_half_bd"], ["hs"], name="hs"),
        helper.make_node("Add", ["hs", "neg_bmin"], ["lin"], name="lin"),
        helper.make_node("Mul", ["lin", "s"], ["logab"], name="logab"),
        helper.make_node("Exp", ["logab"], ["ab1"], name="ab1"),
        helper.make_node("Unsqueeze", ["ab1", "axes1"], ["ab"], name="ab"),
        helper.make_node("Sub", ["one", "ab"], ["omab"], name="omab"),
        helper.make_node("Sqrt", ["omab"], ["somab"], name="somab"),
        helper.make_node("Mul", ["ab", "s0sq"], ["abs0"], name="abs0"),
        helper.make_node("Add", ["abs0", "omab"], ["var"], name="var"),
        helper.make_node("Div", ["somab", "var"], ["k"], name="k"),
        helper.make_node("Mul", ["x", "k"], ["out"], name="eps"),
    ], "gauss_vpsde_eps", [x6, tl], [y6], initializer=vconsts))
    # A constant reshape to an absurd size (2^31 x 2^31 elements).
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [2 ** 31, 2 ** 31])
    save_raw("absurd_shape", helper.make_graph([
        helper.make_node("ConstantOfShape", ["shape"], ["big"], name="huge_fill",
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("ReduceSum", ["big"], ["s"], name="sum_all", keepdims=0),
        helper.make_node("Add", ["x", "s"], ["out"], name="add_s"),
    ], "absurd", [x], [y], initializer=[shape]))



if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    hand_made()
