"""Defaults and limits of the API contract: OnnxScore's adapter from the model's JSON sidecar, the
image shape from a network's fixed x input, and refusals that match `almc sample` (smc_ess without
an SMC variant, chains above 2^24, a LinearOperator norm of 0, a Mask of another shape than the
prior's)."""

import json
import os
import shutil
import sys

import numpy as np
import pytest

import almc

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
DEMO = os.path.join(REPO, "demo", "digits_score.onnx")
DATA = os.path.join(REPO, "tests", "data", "onnx")
# A few Langevin steps (2 levels x 2 steps), fixed seed: cheap, and deterministic bit for bit.
SHORT = dict(method="langevin", levels=[1.0, 0.5], steps_per_level=2, delta=1e-3, chains=3, seed=7)


def _run(prior, y):
    return almc.Sampler(prior, noise_std=0.5, **SHORT).run(y, progress=False).samples


def test_onnx_adapter_defaults_come_from_the_sidecar():
    # demo/model.json says "output_kind": "eps", "level": "t", "convention": "VP (OU time): ...":
    # the defaults read the eps output as a score (garbage posteriors) until they were taken from it.
    net = almc.OnnxScore(DEMO)
    assert "output='eps', convention='vp', level='t'" in repr(net), repr(net)
    y = np.load(os.path.join(REPO, "demo", "test_images.npy"))[0]  # [1, 16, 16]
    explicit = almc.OnnxScore(DEMO, output="eps", convention="vp", level="t")
    a, b = _run(net, y), _run(explicit, y)
    assert a.shape == (3, 1, 16, 16) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)  # bitwise (tolerance 0): the same adapter, seed and steps
    # A value given wins over the sidecar; the others still come from it.
    score = almc.OnnxScore(DEMO, output="score")
    assert "output='score', convention='vp', level='t'" in repr(score), repr(score)
    assert not np.array_equal(_run(score, y), a)
    assert "convention='ou'" in repr(almc.OnnxScore(DEMO, convention="ou"))


def test_onnx_adapter_defaults_without_a_sidecar_are_the_contracts():
    net = almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx"))  # no mlp_embed.json, no model.json
    assert "output='score', convention='ou', level='t'" in repr(net), repr(net)


def test_sidecar_adapter_values_are_checked(tmp_path):
    model = tmp_path / "net.onnx"
    shutil.copy(DEMO, model)
    side = tmp_path / "net.json"

    def with_sidecar(obj, **kw):
        side.write_text(json.dumps(obj))
        return almc.OnnxScore(model, **kw)

    with pytest.raises(almc.InvalidArgumentError, match=r'net\.json: "output_kind" must be a string, got int 3'):
        with_sidecar({"output_kind": 3})
    with pytest.raises(almc.InvalidArgumentError, match=r'net\.json: "level" = \'minutes\' is not a known level'):
        with_sidecar({"level": "minutes"})
    with pytest.raises(almc.InvalidArgumentError, match=r'net\.json: "convention" = \'sub-VP\' is not a known'):
        with_sidecar({"convention": "sub-VP"})
    # An explicit argument is not looked up (nor checked) in the sidecar.
    assert "output='x0'" in repr(with_sidecar({"output_kind": 3}, output="x0"))
    # Names in any case, and the CLI's description prefixes for the convention.
    net = with_sidecar({"output_kind": "Denoiser", "convention": "VE (sigma = t)", "level": "sigma"})
    assert "output='denoiser', convention='ve', level='sigma'" in repr(net), repr(net)
    assert "convention='ou'" in repr(with_sidecar({"convention": "ou"}))
    # <model>.json comes before model.json beside it, key by key.
    (tmp_path / "model.json").write_text(json.dumps({"output_kind": "x0", "level": "none"}))
    net = with_sidecar({"output_kind": "eps"})
    assert "output='eps', convention='ou', level='none'" in repr(net), repr(net)


def test_smc_ess_needs_an_smc_variant():
    prior = almc.Gaussian(np.zeros(3), 1.0)
    with pytest.raises(almc.InvalidArgumentError,
                       match=r"option smc_ess applies to variant smc or geo-smc only \(here variant paper\)"):
        almc.Sampler(prior, noise_std=0.5, smc_ess=0.5)
    with pytest.raises(almc.InvalidArgumentError, match=r"option smc_ess_threshold applies to variant smc or geo-smc "
                       r"only \(here variant noised-lik\)"):
        almc.Sampler(prior, noise_std=0.5, variant="noised-lik", smc_ess_threshold=0.5)
    with pytest.raises(almc.InvalidArgumentError, match=r"applies to variant smc or geo-smc only \(here method ald\)"):
        almc.Sampler(prior, noise_std=0.5, method="ald", smc_ess=0.5)
    for v in ("smc", "geo-smc"):
        assert almc.Sampler(prior, noise_std=0.5, variant=v, smc_ess=0.5).variant == v


def test_chains_at_most_2_to_the_24():
    prior = almc.Gaussian(np.zeros(1), 1.0)
    with pytest.raises(almc.InvalidArgumentError, match=r"chains = 33554432 is too large \(at most 2\^24 = 16777216"):
        almc.Sampler(prior, chains=2**25)
    with pytest.raises(almc.InvalidArgumentError, match=r"at most 2\^24"):
        almc.Sampler(prior, chains=2**24 + 1)
    assert almc.Sampler(prior, chains=2**24).chains == 2**24  # no sampler made without noise_std


def test_linear_operator_refuses_a_zero_norm():
    with pytest.raises(almc.InvalidArgumentError, match=r"norm = 0.0 must be > 0 \(\|\|A\|\|; None when it is not"):
        almc.LinearOperator(lambda x: x, lambda y: y, 3, norm=0.0)
    assert almc.LinearOperator(lambda x: x, lambda y: y, 3, norm=1e-3).norm == 1e-3


def test_mask_of_another_shape_than_the_priors_is_refused():
    prior = almc.Gaussian(np.zeros((1, 4, 4)), 1.0)
    with pytest.raises(almc.InvalidArgumentError, match=r"mask has shape \[2, 8\]; expected \[1, 4, 4\] \(the prior's "
                       r"shape\) or \[16\]"):
        almc.Sampler(prior, almc.Mask(np.ones((2, 8))), noise_std=0.5)
    with pytest.raises(almc.InvalidArgumentError, match=r"mask has shape \[4, 2, 2\]"):
        almc.Sampler(prior, almc.Mask(np.ones((4, 2, 2))), noise_std=0.5)
    # The prior's shape, flat [d], or (H, W) for (1, H, W) (the same values in the same order).
    for shape in ((1, 4, 4), (16,), (4, 4)):
        almc.Sampler(prior, almc.Mask(np.ones(shape)), noise_std=0.5)
    # A prior without a shape (or a flat one) says nothing of the layout.
    almc.Sampler(almc.ScoreFunction(lambda x, t: -x), almc.Mask(np.ones((2, 8))), noise_std=0.5)
    almc.Sampler(almc.Gaussian(np.zeros(16), 1.0), almc.Mask(np.ones((2, 8))), noise_std=0.5)


def test_image_shape_from_the_networks_fixed_x_input():
    pytest.importorskip("onnx", reason="the onnx package reads the network's x dims")
    unet = os.path.join(DATA, "unet.onnx")  # x [batch, 1, 16, 16], no sidecar
    net = almc.OnnxScore(unet, output="eps", convention="ve", level="sigma")
    assert net.shape == (1, 16, 16)
    res = almc.Sampler(net, noise_std=0.5, **SHORT).run(np.zeros((1, 16, 16)), progress=False)
    assert res.samples.shape == (3, 1, 16, 16) and res.mean.shape == (1, 1, 16, 16)
    assert np.all(np.isfinite(res.samples))
    # shape= still wins; a network whose x is [batch, 16] gives no image shape.
    assert almc.OnnxScore(unet, shape=(256,)).shape == (256,)
    assert almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx")).shape is None


def test_image_shape_inference_is_skipped_without_onnx(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert almc.OnnxScore(os.path.join(DATA, "unet.onnx")).shape is None


def test_docstrings_of_build_info_and_result_std():
    doc = almc.build_info.__doc__
    assert "BLAS" not in doc and "onnx executor" in doc.lower() and "OpenMP" in doc
    assert "n - 1" in almc.Result.__doc__ and "0 with one chain" in almc.Result.__doc__
    # What the docstring says: the sample std over a measurement's chains (ddof = 1), 0 for one chain.
    prior = almc.Gaussian(np.zeros(3), 1.0)
    res = almc.Sampler(prior, noise_std=0.5, **SHORT).run(np.zeros((2, 3)), progress=False)
    s = res.samples.astype(np.float64).reshape(2, 3, 3)
    np.testing.assert_allclose(res.std, s.std(axis=1, ddof=1), rtol=1e-5, atol=1e-6)
    one = almc.Sampler(prior, noise_std=0.5, **dict(SHORT, chains=1)).run(np.zeros(3), progress=False)
    assert np.all(one.std == 0)
