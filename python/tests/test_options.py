"""Sampler options added with the C config: variant and smc_ess_threshold; the command line's
refusals of values that would otherwise silently mean "the default"; statuses without a test
elsewhere (diverged, out of memory). CPU."""

import json
import os
import subprocess

import numpy as np
import pytest

import almc
from conftest import cli_path

FAST = dict(kappa=2, delta=2e-3, t_start=1.0, t_stop=0.01)


def gmm_file(tmp_path):
    path = tmp_path / "gmm.json"
    path.write_text(json.dumps({"weights": [0.3, 0.7], "means": [[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]],
                                "variances": [[0.5, 0.5, 0.5], [0.3, 0.6, 0.4]]}))
    return path


def test_smc_variant_identical_to_cli(tmp_path):
    cli = cli_path()
    if cli is None:
        pytest.skip("the almc command is not built (set ALMC_CLI or build with scripts/build.sh)")
    path = gmm_file(tmp_path)
    y = np.array([[0.3, 0.6, -0.2], [1.0, -0.5, 0.0]], np.float32)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "samples.npy"
    subprocess.run([cli, "sample", "--prior", str(path), "--y", str(tmp_path / "y.npy"), "--noise-std", "0.8",
                    "--chains", "200", "--seed", "6", "--kappa", "2", "--delta", "2e-3", "--t-start", "1",
                    "--t-stop", "0.01", "--variant", "geo-smc", "--smc-ess", "0.9", "--backend", "cpu", "--out",
                    str(out), "--quiet"], check=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    kw = dict(noise_std=0.8, chains=200, seed=6, backend="cpu", **FAST)
    prior = almc.GaussianMixture.from_json(path)
    res = almc.Sampler(prior, variant="geo-smc", smc_ess_threshold=0.9, **kw).run(y, progress=False)
    np.testing.assert_array_equal(res.samples, np.load(out).reshape(res.samples.shape))
    assert res.info["smc_resamples"] >= 2  # the final resampling of each measurement at least
    # The threshold reaches the engine: resampling whenever the ESS is under 90% of the chains
    # happens more often than under the default 50%.
    default = almc.Sampler(prior, variant="geo-smc", **kw).run(y, progress=False)
    assert default.info["smc_resamples"] < res.info["smc_resamples"]
    # The CLI's name for the option is accepted too.
    alias = almc.Sampler(prior, variant="geo-smc", smc_ess=0.9, **kw).run(y, progress=False)
    np.testing.assert_array_equal(alias.samples, res.samples)
    with pytest.raises(TypeError, match="both smc_ess_threshold and its alias smc_ess"):
        almc.Sampler(prior, variant="smc", smc_ess=0.9, smc_ess_threshold=0.9, **kw)


def test_variants_reach_the_engine():
    prior = almc.Gaussian(np.zeros(4), 0.3)  # not N(0, I), which the OU process leaves unchanged at every t
    kw = dict(noise_std=0.3, chains=8, seed=2, **FAST)
    y = np.ones(4)
    runs = {v: almc.Sampler(prior, variant=v, **kw).run(y, progress=False) for v in
            ("paper", "noised-lik", "scaled_y", "best")}
    default = almc.Sampler(prior, **kw).run(y, progress=False)
    np.testing.assert_array_equal(runs["paper"].samples, default.samples)
    for v in ("noised-lik", "scaled_y", "best"):
        assert not np.array_equal(runs[v].samples, default.samples), v
    # best is the paper's likelihood on levels geometric in sigma (the library resolves it so).
    geo = almc.Sampler(prior, schedule="geometric-sigma", **kw).run(y, progress=False)
    np.testing.assert_array_equal(runs["best"].samples, geo.samples)


def test_variant_refusals():
    prior = almc.Gaussian(np.zeros(3), 1.0)
    with pytest.raises(almc.InvalidArgumentError, match="unknown variant 'fast' .*paper, noised-lik, scaled-y, smc, "
                       "geo-smc, best"):
        almc.Sampler(prior, noise_std=0.5, variant="fast")
    with pytest.raises(almc.InvalidArgumentError, match="variant smc applies to method almc only"):
        almc.Sampler(prior, noise_std=0.5, method="ncsn", variant="smc")
    for bad, why in ((1.5, r"in \(0, 1\]"), (0, "must be positive, got 0"), (-0.2, "must be positive")):
        with pytest.raises(almc.InvalidArgumentError, match=f"smc_ess_threshold (must be )?{why}"):
            almc.Sampler(prior, noise_std=0.5, variant="smc", smc_ess_threshold=bad)
    # smc weighs chains by the prior's density: a score function has none (the library says so).
    with pytest.raises(almc.UnsupportedError, match="variant smc weighs chains by the prior's density") as e:
        almc.Sampler(almc.ScoreFunction(lambda x, t: -x), noise_std=0.5, variant="smc", **FAST).run(
            np.zeros(3), progress=False)
    assert e.value.status == 7
    with pytest.raises(almc.InvalidArgumentError, match="average_last must be 0 or 1"):
        almc.Sampler(prior, noise_std=0.5, variant="smc", average_last=5)


@pytest.mark.parametrize("name,value,why", [
    ("kappa", 0, "must be positive, got 0 \\(omit it for the default\\)"),
    ("delta", -1e-3, "must be positive"),
    ("t_stop", 0.0, "must be positive"),
    ("eps", 0, "must be positive"),
    ("levels", 0, "must be at least 1, got 0"),
    ("steps_per_level", 0, "must be at least 1"),
    ("check_every", 0, "must be at least 1"),
    ("warm_steps", -1, "must be at least 0"),
    ("average_last", -2, "must be at least 0"),
])
def test_values_that_would_mean_the_default_are_refused(name, value, why):
    # The C config reads zero or a negative value as "the default"; like the command line, the
    # Python API refuses them instead of running silently with another value.
    with pytest.raises(almc.InvalidArgumentError, match=f"option {name} {why}"):
        almc.Sampler(almc.Gaussian(np.zeros(2), 1.0), noise_std=0.5, **{name: value})


def test_tweedie_and_average_last_reach_the_engine():
    prior = almc.Gaussian(np.zeros(3), 1.0)
    kw = dict(noise_std=0.5, chains=16, seed=1, **FAST)
    base = almc.Sampler(prior, **kw).run(np.ones(3), progress=False)
    tw = almc.Sampler(prior, tweedie=True, **kw).run(np.ones(3), progress=False)
    assert tw.info["score_evals"] == base.info["score_evals"] + 1  # the final denoising evaluation
    avg = almc.Sampler(prior, average_last=50, **kw).run(np.ones(3), progress=False)
    assert not np.array_equal(avg.samples, base.samples)


def test_diverged_run_raises_diverged_error():
    # A score that sends the state to infinity: the next check names the chain and the step.
    s = almc.Sampler(almc.ScoreFunction(lambda x, t: np.full_like(x, np.inf)), noise_std=0.5, chains=4,
                     check_every=10, **FAST)
    with pytest.raises(almc.DivergedError, match=r"chain \d+ became NaN or Inf by step \d+") as e:
        s.run(np.zeros(3), progress=False)
    assert e.value.status == 11


def test_a_run_too_large_raises_out_of_memory():
    # 2^22 chains x 2^12 values: 64 GiB for the state alone, refused before anything is allocated.
    with pytest.raises(almc.OutOfMemoryError, match="fewer chains") as e:
        almc.Sampler(almc.Gaussian(np.zeros(4096), 1.0), noise_std=0.5, chains=1 << 22)
    assert e.value.status == 4 and isinstance(e.value, MemoryError)


DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demo", "digits_score.onnx")
# Four score evaluations: enough to see whether an adapter option changes what the network is fed.
SHORT = dict(method="langevin", levels=[1.0, 0.5], steps_per_level=2, delta=1e-3, chains=2, seed=1)


def onnx_samples(**adapter):
    prior = almc.OnnxScore(DEMO, output="eps", convention="vp", level="t", **adapter)
    return almc.Sampler(prior, **SHORT).run(progress=False).samples


def test_onnx_adapter_options_reach_the_network():
    base = onnx_samples()
    np.testing.assert_array_equal(onnx_samples(level_scale=1.0), base)
    assert not np.array_equal(onnx_samples(level_scale=2.0), base)
    np.testing.assert_array_equal(onnx_samples(output_slice=(0, 1)), base)
    assert not np.array_equal(onnx_samples(beta_min=0.1, beta_max=20), base)


def test_onnx_adapter_options_are_checked():
    with pytest.raises(almc.InvalidArgumentError, match="use them with convention='vp', level='t'"):
        almc.OnnxScore(DEMO, convention="ou", beta_max=20)
    with pytest.raises(almc.InvalidArgumentError, match="0 <= beta_min <= beta_max"):
        almc.OnnxScore(DEMO, convention="vp", beta_min=5, beta_max=1)
    with pytest.raises(almc.InvalidArgumentError, match="level_scale must be positive"):
        almc.OnnxScore(DEMO, level_scale=0)
    with pytest.raises(almc.InvalidArgumentError, match="level_scale applies to level"):
        almc.OnnxScore(DEMO, level="none", level_scale=2)
    with pytest.raises(almc.InvalidArgumentError, match=r"output_slice \(B, E\) needs 0 <= B < E"):
        almc.OnnxScore(DEMO, output_slice=(2, 1))
    with pytest.raises(almc.InvalidArgumentError, match="level='index' needs alpha_bar"):
        almc.OnnxScore(DEMO, level="index")
    with pytest.raises(almc.InvalidArgumentError, match="alpha_bar is only used with level='index'"):
        almc.OnnxScore(DEMO, alpha_bar=[0.5, 0.9])
    # What only the network can tell is checked by the library when the sampler is made.
    with pytest.raises(almc.Error, match="no_such_input"):
        almc.Sampler(almc.OnnxScore(DEMO, inputs={"no_such_input": 3}), **SHORT)
    with pytest.raises(almc.Error, match="output"):  # channel 1 of a one-channel output
        almc.Sampler(almc.OnnxScore(DEMO, output_slice=(1, 2)), **SHORT)


def test_chain_range_slices_are_the_whole_run_bit_for_bit():
    prior = almc.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [0.4, 0.6])
    kw = dict(noise_std=0.5, chains=6, seed=4, **FAST)
    y = np.array([[0.2, -0.3], [1.0, 0.4]])  # 2 measurements x 6 chains
    whole = almc.Sampler(prior, **kw).run(y, progress=False)
    a = almc.Sampler(prior, chain_range=(0, 5), **kw).run(y, progress=False)
    b = almc.Sampler(prior, chain_range="5:7", **kw).run(y, progress=False)
    np.testing.assert_array_equal(np.concatenate([a.samples, b.samples]), whole.samples)
    np.testing.assert_array_equal(np.concatenate([a.residuals, b.residuals]), whole.residuals)
    assert a.mean is None and b.std is None and a.info["chain_range"] == (0, 5)  # each splits a measurement
    second = almc.Sampler(prior, chain_range=(6, 6), **kw).run(y, progress=False)
    assert second.mean.shape == (1, 2)
    np.testing.assert_array_equal(second.mean[0], whole.mean[1])
    np.testing.assert_array_equal(second.std[0], whole.std[1])
    with pytest.raises(almc.InvalidArgumentError, match="chain range start 10 count 5 is not a non-empty part of "
                       "the run's 12 chains"):
        almc.Sampler(prior, chain_range=(10, 5), **kw).run(y, progress=False)
    for bad in ((1, 0), "3", (1.5, 2), (-1, 2)):
        with pytest.raises(almc.InvalidArgumentError, match="chain_range"):
            almc.Sampler(prior, chain_range=bad, **kw)


def test_options_a_method_never_reads_are_refused():
    # Sampler(method="ald", kappa=1) ran as if kappa were not given, and so did eps with ALMC or
    # langevin (langevin's step is delta), or a level count beside a list of levels.
    prior = almc.Gaussian(np.zeros(4), np.ones(4))
    for method, kw, needle in (
            ("ald", dict(kappa=1.0), "option kappa is not read by method ald"),
            ("ald", dict(warm_steps=5), "option warm_steps is not read by method ald"),
            ("ald", dict(warm_step=0.1), "option warm_step is not read by method ald"),
            ("ncsn", dict(delta=1e-3), "option delta is not read by method ncsn"),
            ("ncsn", dict(t_start=2.0), "option t_start is not read by method ncsn"),
            ("ncsn", dict(schedule="uniform-t", sigma_min=0.1),
             "option sigma_min is not read by method ncsn with schedule uniform-t"),
            ("almc", dict(eps=1e-4), "option eps is not read by method almc"),
            ("almc", dict(levels=20), "option levels is not read by method almc"),
            ("almc", dict(levels=[1.0, 0.5], kappa=2.0), "option kappa is not read by method almc with a list of levels"),
            ("langevin", dict(eps=1e-3), "option eps is not read by method langevin"),
            ("langevin", dict(sigma_max=10.0), "option sigma_max is not read by method langevin"),
            ("xgp", dict(sigma_min=0.1), "option sigma_min is not read by method xgp"),
    ):
        with pytest.raises(almc.InvalidArgumentError, match=needle):
            almc.Sampler(prior, noise_std=0.5, method=method, **kw)
    # What each method reads is taken.
    almc.Sampler(prior, noise_std=0.5, method="almc", kappa=1.0, warm_steps=5, warm_step=0.1, t_start=2.0, t_stop=0.1)
    almc.Sampler(prior, noise_std=0.5, method="almc", levels=[1.0, 0.5], delta=1e-3, t_start=2.0, warm_steps=3)
    almc.Sampler(prior, noise_std=0.5, method="ncsn", levels=5, sigma_max=5.0, sigma_min=0.1, eps=1e-5,
                 steps_per_level=2)
    almc.Sampler(prior, noise_std=0.5, method="ncsn", schedule="uniform-t", levels=5, t_start=2.0, t_stop=0.1)
    almc.Sampler(prior, noise_std=0.5, method="langevin", levels=3, t_start=2.0, t_stop=0.1, delta=1e-3)
    almc.Sampler(prior, noise_std=0.5, method="xgp", levels=5, sigma_max=2.0, t_stop=0.1, eps=1e-3)
