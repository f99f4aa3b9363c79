"""The Python API against closed forms, the command line and its own analytic paths (CPU)."""

import json
import os
import subprocess

import numpy as np
import pytest

import almc
from conftest import cli_path, ou_gmm_score

# ALMC settings for short runs: about 2000 steps on a few dimensions.
FAST = dict(kappa=4, delta=2e-3, t_start=1.0, t_stop=0.01)


def gaussian_posterior(m0, s0, y, sigma_y, t):
    """mu_t of ALGORITHMS.md T1 for a diagonal prior and A = I: the posterior with the prior noised to t."""
    a = np.exp(-t)
    st = a * a * s0 + (1 - a * a)
    var = 1.0 / (1.0 / st + 1.0 / sigma_y**2)
    return var * (a * m0 / st + y / sigma_y**2), var


def test_gaussian_posterior_matches_closed_form():
    rng = np.random.default_rng(5)
    d, chains, sigma_y = 6, 3000, 0.5
    m0 = rng.normal(size=d)
    s0 = np.array([0.5, 0.8, 1.0, 1.3, 2.0, 0.7])
    y = rng.normal(size=d) * 1.5
    sampler = almc.Sampler(almc.Gaussian(m0, s0), noise_std=sigma_y, chains=chains, seed=11, **FAST)
    res = sampler.run(y, progress=False)
    assert res.samples.shape == (chains, d) and res.mean.shape == (1, d) and res.std.shape == (1, d)
    mean, var = gaussian_posterior(m0, s0, y, sigma_y, FAST["t_stop"])
    emp_mean = res.samples.mean(axis=0)
    emp_var = res.samples.var(axis=0)
    # Tolerance: 5 Monte Carlo standard errors plus 2% of the variance for the chain's own
    # discretisation bias and tracking lag at these short settings (ALGORITHMS.md T2 quantifies them;
    # the C++ suite tests them exactly). Breaking noise_std or y by a factor of two moves the
    # mean or the variance by far more than this.
    se_mean = np.sqrt(var / chains)
    assert np.all(np.abs(emp_mean - mean) < 5 * se_mean + 0.02 * np.sqrt(var)), (emp_mean, mean)
    se_var = var * np.sqrt(2.0 / chains)
    assert np.all(np.abs(emp_var - var) < 5 * se_var + 0.02 * var), (emp_var, var)
    # The library's own mean and std agree with the samples it returned.
    np.testing.assert_allclose(res.mean[0], emp_mean, rtol=0, atol=1e-4)
    np.testing.assert_allclose(res.std[0], np.sqrt(emp_var), rtol=1e-3, atol=1e-4)
    assert res.info["steps"] > 0 and res.info["score_evals"] > 0 and res.info["backend"] == "cpu"
    assert res.info["seconds"] >= 0 and np.isfinite(res.info["mean_residual"])


def _gmm_problem(tmp_path):
    weights = np.array([0.3, 0.7])
    means = np.array([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]])
    variances = np.array([[0.5, 0.5, 0.5], [0.3, 0.6, 0.4]])
    path = tmp_path / "gmm.json"
    path.write_text(json.dumps({"weights": weights.tolist(), "means": means.tolist(), "variances": variances.tolist()}))
    return weights, means, variances, path


def _mode_weights(samples, means):
    dist = ((samples[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    return np.bincount(dist.argmin(axis=1), minlength=len(means)) / len(samples)


def test_gmm_posterior_identical_to_cli(tmp_path):
    cli = cli_path()
    if cli is None:
        pytest.skip("the almc command is not built (set ALMC_CLI or build with scripts/build.sh)")
    weights, means, variances, path = _gmm_problem(tmp_path)
    y = np.array([0.3, 0.6, -0.2], np.float32)
    sigma_y, chains, seed = 1.5, 800, 7
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "samples.npy"
    subprocess.run([cli, "sample", "--prior", str(path), "--y", str(tmp_path / "y.npy"), "--noise-std", str(sigma_y),
                    "--chains", str(chains), "--seed", str(seed), "--kappa", "4", "--delta", "2e-3", "--t-start", "1",
                    "--t-stop", "0.01", "--backend", "cpu", "--out", str(out), "--quiet"], check=True,
                   env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    cli_samples = np.load(out)
    sampler = almc.Sampler(almc.GaussianMixture.from_json(path), almc.Identity(), noise_std=sigma_y, chains=chains,
                           seed=seed, backend="cpu", **FAST)
    res = sampler.run(y, progress=False)
    np.testing.assert_array_equal(res.samples, cli_samples.reshape(res.samples.shape))
    got = _mode_weights(res.samples, means)
    assert np.array_equal(got, _mode_weights(cli_samples.reshape(res.samples.shape), means))
    # Posterior mode weights in closed form: w_k N(y; mu_k, S_k + sigma_y^2 I), normalised (the
    # noising to t_stop = 0.01 changes them by well under the tolerance: 5 se + 0.03).
    S = variances + sigma_y**2
    logw = np.log(weights) - 0.5 * (((y - means) ** 2) / S + np.log(S)).sum(axis=1)
    want = np.exp(logw - logw.max())
    want /= want.sum()
    se = np.sqrt(want * (1 - want) / chains)
    assert np.all(np.abs(got - want) < 5 * se + 0.03), (got, want)


def test_score_function_equals_analytic_gmm(tmp_path):
    weights, means, variances, _ = _gmm_problem(tmp_path)
    y = np.array([0.3, 0.6, -0.2])
    calls = []

    def score(x, t):
        calls.append(x.shape)
        return ou_gmm_score(x, t, weights, means, variances)

    kw = dict(noise_std=1.0, chains=64, seed=3, **FAST)
    analytic = almc.Sampler(almc.GaussianMixture(weights, means, variances), **kw).run(y, progress=False)
    python = almc.Sampler(almc.ScoreFunction(score), **kw).run(y, progress=False)
    assert calls and calls[0] == (64, 3)
    assert python.info["score_evals"] == analytic.info["score_evals"] == len(calls)
    # Same noise stream, same step: only float32 rounding of the score differs, and the stable
    # Langevin contraction keeps it from growing.
    np.testing.assert_allclose(python.samples, analytic.samples, rtol=0, atol=2e-3)


def test_linear_operator_equals_matrix():
    rng = np.random.default_rng(2)
    d, m = 5, 3
    A = rng.normal(size=(m, d)) / np.sqrt(d)
    prior = almc.Gaussian(np.zeros(d), np.ones(d))
    y = rng.normal(size=m)
    # Warm start fixed: the dense operator's norm comes from power iteration, the callback's from us.
    kw = dict(noise_std=0.4, chains=32, seed=9, warm_steps=50, warm_step=0.05, **FAST)
    dense = almc.Sampler(prior, almc.Matrix(A), **kw).run(y, progress=False)
    user = almc.Sampler(prior, almc.LinearOperator(lambda x: x @ A.T, lambda v: v @ A, m, norm=np.linalg.norm(A, 2)),
                        **kw).run(y, progress=False)
    np.testing.assert_allclose(user.samples, dense.samples, rtol=0, atol=1e-4)
    assert abs(user.info["mean_residual"] - dense.info["mean_residual"]) < 1e-4


def test_measurement_batches_and_image_shapes():
    shape = (1, 4, 4)
    mask = np.zeros(shape)
    mask[..., :2, :] = 1
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3,) + shape) * mask
    sampler = almc.Sampler(almc.Gaussian(np.zeros(shape), 1.0), almc.Mask(mask), noise_std=0.2, chains=4, seed=1,
                           **FAST)
    res = sampler.run(y, progress=False)
    assert res.samples.shape == (12,) + shape and res.mean.shape == (3,) + shape and res.std.shape == (3,) + shape
    # Chains of measurement i come from y[i]: observed pixels near y, hidden ones near the prior.
    obs = res.mean[:, 0, :2, :]
    assert np.abs(obs - y[:, 0, :2, :] / (1 + 0.04)).max() < 0.35
    # The same run with y flattened to [n_meas, m] gives the same samples.
    flat = sampler.run(y.reshape(3, -1), progress=False)
    np.testing.assert_array_equal(flat.samples, res.samples)
    down = almc.Sampler(almc.Gaussian(np.zeros(shape), 1.0), almc.Downsample(2, shape), noise_std=0.2, chains=2,
                        **FAST)
    assert down.run(np.zeros((2, 1, 2, 2)), progress=False).samples.shape == (4,) + shape
    blur = almc.Sampler(almc.Gaussian(np.zeros(shape), 1.0), almc.Blur(np.ones((3, 3)) / 9, shape), noise_std=0.2,
                        chains=2, **FAST)
    assert blur.run(np.zeros(shape), progress=False).samples.shape == (2,) + shape


def test_prior_sampling_without_y():
    # From t_start = 3 (N(0, I) is close to p_3 for this prior) with kappa 10: little tracking lag.
    res = almc.Sampler(almc.Gaussian([1.0, -1.0], [0.25, 0.8]), chains=500, seed=4, kappa=10, delta=2e-3, t_start=3.0,
                       t_stop=0.01).run(progress=False)
    m, v = gaussian_posterior(np.array([1.0, -1.0]), np.array([0.25, 0.8]), 0.0, np.inf, 0.01)
    assert np.all(np.abs(res.samples.mean(0) - m) < 5 * np.sqrt(v / 500) + 0.02 * np.sqrt(v))


def test_onnx_score_demo_network():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "demo", "digits_score.onnx")
    prior = almc.OnnxScore(path, output="eps", convention="vp", level="t")
    assert prior.shape == (1, 16, 16)
    x = np.load(os.path.join(os.path.dirname(path), "test_images.npy"))[:1]
    mask = np.ones((1, 16, 16))
    mask[:, 8:, :] = 0
    sampler = almc.Sampler(prior, almc.Mask(mask), noise_std=0.05, chains=2, seed=0, kappa=0.5, delta=2e-3,
                           t_start=1.0, t_stop=0.05)
    res = sampler.run(x[0] * mask, progress=False)
    assert res.samples.shape == (2, 1, 16, 16) and np.all(np.isfinite(res.samples))
    # The visible half is pinned by the measurement (sigma_y = 0.05) up to the t_stop noise.
    assert np.abs(res.mean[0, 0, :8] - x[0, 0, :8]).mean() < 0.2


def test_onnx_score_bf16_precision():
    # precision="bf16": the network's GEMMs in bfloat16 (CPU), the chains in fp32: a run with the
    # same seed differs from fp32 by a little; unknown names and tf32=True with bf16 are refused.
    path = os.path.join(os.path.dirname(__file__), "..", "..", "demo", "digits_score.onnx")
    runs = {}
    for p in ("fp32", "bf16"):
        prior = almc.OnnxScore(path, output="eps", convention="vp", level="t", precision=p)
        runs[p] = almc.Sampler(prior, chains=2, seed=3, kappa=0.5, delta=2e-3, t_start=1.0, t_stop=0.5).run(
            progress=False).samples
    assert np.all(np.isfinite(runs["bf16"])) and not np.array_equal(runs["bf16"], runs["fp32"])
    assert np.abs(runs["bf16"] - runs["fp32"]).max() < 0.1 * np.abs(runs["fp32"]).max()
    with pytest.raises(almc.InvalidArgumentError, match="unknown precision 'fp16'"):
        almc.OnnxScore(path, precision="fp16")
    with pytest.raises(almc.InvalidArgumentError, match="disagree"):
        almc.OnnxScore(path, tf32=True, precision="bf16")


def test_onnx_score_dynamic_height_and_width():
    # A network exported with a dynamic height and width (tests/data/onnx, exported at 8x8) runs at
    # the shape given; without it the sampler refuses it, saying how to give it.
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "onnx", "zoo_ddpm_unet_o17_dynhw.onnx")
    prior = almc.OnnxScore(path, output="eps", convention="vp", level="t", shape=(2, 12, 16))
    res = almc.Sampler(prior, chains=2, seed=1, kappa=0.5, delta=2e-3, t_start=1.0, t_stop=0.5).run(progress=False)
    assert res.samples.shape == (2, 2, 12, 16) and np.all(np.isfinite(res.samples))
    with pytest.raises(almc.Error, match="dynamic dimension 2"):
        almc.Sampler(almc.OnnxScore(path, output="eps", convention="vp", level="t"), chains=2).run(progress=False)


def test_level_list_and_user_initial_state():
    # levels as a list selects the list schedule: 3 levels x 4 steps, no warm start for langevin.
    prior = almc.Gaussian(np.zeros(2), 1.0)
    s = almc.Sampler(prior, noise_std=0.5, method="langevin", levels=[1.0, 0.5, 0.1], steps_per_level=4, delta=1e-3,
                     chains=3, seed=1)
    res = s.run(np.zeros(2), progress=False)
    assert res.info["steps"] == 12 and res.info["score_evals"] == 12
    # init as an array: XGP starts from it; a wrong-sized state is refused naming the shape.
    x0 = np.full((3, 2), 0.25)
    a = almc.Sampler(prior, noise_std=0.5, method="xgp", init=x0, chains=3, seed=1, levels=5, steps_per_level=2)
    b = almc.Sampler(prior, noise_std=0.5, method="xgp", init=x0 + 1, chains=3, seed=1, levels=5, steps_per_level=2)
    assert not np.array_equal(a.run(np.zeros(2), progress=False).samples, b.run(np.zeros(2), progress=False).samples)
    bad = almc.Sampler(prior, noise_std=0.5, method="xgp", init=np.zeros((2, 2)), chains=3, levels=5)
    with pytest.raises(almc.InvalidArgumentError, match=r"init has shape \[2, 2\]; expected \[3, 2\]"):
        bad.run(np.zeros(2), progress=False)


def test_score_function_sees_the_image_shape():
    # The shape comes from ScoreFunction(shape=...), else the operator (here the mask's), else y.
    mask = np.ones((1, 4, 4))
    mask[..., 2:] = 0
    seen = []

    def score(x, t):
        seen.append(x.shape)
        return -x

    res = almc.Sampler(almc.ScoreFunction(score), almc.Mask(mask), noise_std=0.3, chains=2, **FAST).run(
        mask, progress=False)
    assert seen[0] == (2, 1, 4, 4) and res.samples.shape == (2, 1, 4, 4)
    seen.clear()
    almc.Sampler(almc.ScoreFunction(score, shape=(2, 8)), noise_std=0.3, **FAST).run(np.zeros(16), progress=False)
    assert seen[0] == (1, 2, 8)
