"""What a new user meets first: readable reprs, messages in Python's terms, shapes and bounds
(defects found by walking through the package as a new user would; CPU)."""

import os

import numpy as np
import pytest

import almc

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "onnx")
FAST = dict(kappa=1, delta=2e-3, t_start=1.0, t_stop=0.01)


def test_models_and_operators_have_readable_reprs(tmp_path):
    # They printed as <almc._models.Gaussian object at 0x...>.
    def fwd(x):
        return x

    gmm = tmp_path / "gmm.json"
    gmm.write_text('{"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]], "variances": [[1, 1], [1, 1]]}')
    cases = [
        (almc.Gaussian(np.zeros((2, 3)), 1.0), "almc.Gaussian(shape [2, 3])"),
        (almc.GaussianMixture(np.ones(3) / 3, np.zeros((3, 5)), np.ones((3, 5))), "almc.GaussianMixture(K = 3, shape [5])"),
        (almc.GaussianMixture.from_json(gmm), "almc.GaussianMixture.from_json("),
        (almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx")), "mlp_embed.onnx', output='score', convention='ou'"),
        (almc.ScoreFunction(fwd), "almc.ScoreFunction(test_models_and_operators_have_readable_reprs.<locals>.fwd"),
        (almc.Identity(), "almc.Identity()"),
        (almc.Mask(np.array([[1, 0], [1, 1]])), "almc.Mask(shape [2, 2], 3 of 4 observed)"),
        (almc.Downsample(2, (1, 4, 4)), "almc.Downsample(2, shape [1, 4, 4])"),
        (almc.Blur(np.ones((3, 3)) / 9, (1, 8, 8)), "almc.Blur(kernel [3, 3], shape [1, 8, 8])"),
        (almc.Matrix(np.ones((2, 3))), "almc.Matrix(A [2, 3])"),
        (almc.Matrix(np.ones((4, 2, 3))), "almc.Matrix(A [4, 2, 3])"),
        (almc.LinearOperator(fwd, fwd, 3, norm=1.5), "m = 3, norm 1.5"),
        (almc.LinearOperator(fwd, fwd, 3), "norm unknown"),
    ]
    for obj, needle in cases:
        text = repr(obj)
        assert needle in text, text
        assert " object at 0x" not in text, text


def test_linear_operator_refuses_a_negative_norm():
    # norm=-1 was taken as "unknown" without a word; a bound below zero is a mistake. So is 0,
    # which the library also reads as "unknown" (test_contract_fixes.py).
    for bad in (-1, 0):
        with pytest.raises(almc.InvalidArgumentError, match=rf"norm = {bad} must be > 0"):
            almc.LinearOperator(lambda x: x, lambda y: y, 3, norm=bad)


def test_messages_name_python_arguments_not_c_fields():
    # The unstable step said "(set force_unstable to run anyway)", a C config field.
    prior = almc.Gaussian(np.zeros(4), 1.0)
    with pytest.raises(almc.UnstableError) as e:
        almc.Sampler(prior, noise_std=0.01, delta=0.1)
    assert "force=True" in str(e.value) and "force_unstable" not in str(e.value), str(e.value)
    # A constant input the network does not have said "(config.inputs)".
    with pytest.raises(almc.InvalidArgumentError) as e:
        almc.Sampler(almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx"), inputs={"nope": 1.0}), noise_std=0.5)
    assert "no input named 'nope' (OnnxScore's inputs=)" in str(e.value), str(e.value)


def test_warm_step_above_its_bound_is_refused():
    # Identity, sigma_y = 0.5: the warm start's curvature is 1 + 4, so warm steps >= 2 / 5 diverge;
    # they ran (and produced NaN) with only delta checked.
    prior = almc.Gaussian(np.zeros(4), 1.0)
    with pytest.raises(almc.UnstableError, match=r"warm_step = 0.45 .* largest stable warm step is 0.4"):
        almc.Sampler(prior, noise_std=0.5, warm_step=0.45, **FAST)
    res = almc.Sampler(prior, noise_std=0.5, warm_step=0.45, force=True, chains=2, **FAST)
    assert res is not None
    y = np.zeros(4, np.float32)
    out = almc.Sampler(prior, noise_std=0.5, warm_step=0.35, chains=2, **FAST).run(y, progress=False)
    assert np.all(np.isfinite(out.samples))


def test_network_without_a_shape_takes_the_operators():
    # A network with no model.json beside it gave [chains, d] samples even when the operator said
    # the image's shape; the operator's (or y's) shape now shapes them, as for the other priors.
    net = almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx"))  # d = 16, no model.json
    mask = np.ones((4, 4), np.float32)
    mask[1, 2] = 0
    res = almc.Sampler(net, almc.Mask(mask), noise_std=0.5, chains=2, seed=1, **FAST).run(
        np.zeros((4, 4), np.float32), progress=False)
    assert res.samples.shape == (2, 4, 4)
    assert res.mean.shape == (1, 4, 4)
    flat = almc.Sampler(almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx")), noise_std=0.5, chains=2, seed=1,
                        **FAST).run(np.zeros(16, np.float32), progress=False)
    assert flat.samples.shape == (2, 16)
