"""Misuse a new user runs into (CPU): callback results that are not real numbers,
a pending resume state after a refused run, chain ranges beyond what the library takes, byte paths,
and unreadable hint files beside a model. Each is refused by name or handled, never silently
turned into a wrong run, a hang or an unrelated error."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import almc

FAST = dict(kappa=1, delta=2e-3, t_start=1.0, t_stop=0.01)  # ~500 steps
DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demo")


def run_score(result, **kw):
    """A run whose score callback returns `result(x)`."""
    prior = almc.ScoreFunction(lambda x, t: result(x), shape=4)
    return almc.Sampler(prior, noise_std=0.5, chains=2, **FAST, **kw).run(np.zeros(4), progress=False)


def test_callback_results_that_are_not_real_numbers_are_refused_by_name():
    # Complex: NumPy's cast dropped the imaginary part with only a ComplexWarning, and the run went on.
    with pytest.raises(almc.InvalidArgumentError, match="the score function's result must be a real numeric array, "
                                                        "got dtype complex128"):
        run_score(lambda x: x.astype(np.complex128))
    with pytest.raises(almc.InvalidArgumentError, match="the score function's result must be a real numeric array, "
                                                        "got dtype <U3"):
        run_score(lambda x: "abc")
    with pytest.raises(almc.InvalidArgumentError, match="the score function's result is not an array of numbers"):
        run_score(lambda x: [[1.0], [1.0, 2.0]])
    A = np.eye(4, dtype=np.float32)[:2]
    complex_adjoint = almc.LinearOperator(lambda x: x @ A.T, lambda y: (y @ A).astype(np.complex64), m=2)
    with pytest.raises(almc.InvalidArgumentError, match="the adjoint operator's result must be a real numeric array"):
        almc.Sampler(almc.Gaussian(np.zeros(4), 1.0), complex_adjoint, noise_std=0.5, **FAST).run(np.zeros(2),
                                                                                                  progress=False)
    # A scalar is named as such; results of other real dtypes and lists are still taken.
    with pytest.raises(ValueError, match=r"returned shape \[\]; expected \[2, 4\]"):
        run_score(lambda x: 0.0)
    assert run_score(lambda x: -x.astype(np.float64)).samples.shape == (2, 4)
    assert run_score(lambda x: (-x).tolist()).samples.shape == (2, 4)
    assert run_score(lambda x: np.zeros(x.shape, np.int64)).samples.shape == (2, 4)


def test_a_loaded_state_stays_pending_when_a_run_is_refused_before_it_starts():
    prior = almc.Gaussian(np.zeros(4), np.ones(4))
    cfg = dict(noise_std=0.5, chains=3, seed=5, check_every=50, **FAST)
    y = np.ones(4, np.float32)
    whole = almc.Sampler(prior, **cfg).run(y, progress=False).samples

    def stop(step, total, *rest):
        if step >= 200:
            raise KeyboardInterrupt

    s = almc.Sampler(prior, **cfg)
    with pytest.raises(KeyboardInterrupt):
        s.run(y, progress=stop)
    state = s.save_state()
    s.load_state(state)
    with pytest.raises(almc.InvalidArgumentError, match=r"y has shape \[5\]"):
        s.run(np.zeros(5), progress=False)
    # The refused run dropped the state, and this one started over (start_step 0).
    res = s.run(y, progress=False)
    assert res.info["start_step"] == 200
    np.testing.assert_array_equal(res.samples, whole)
    # Taken by that run: the next one starts over.
    assert s.run(y, progress=False).info["start_step"] == 0


@pytest.mark.parametrize("bad", [(np.float32(1.5), 2), (1, np.float16(2.7)), (np.bool_(True), 2), "1_0:2", "+1:2",
                                 "\u0661:2"])
def test_chain_range_parts_are_integers(bad):
    # int() truncated np.float32(1.5) to 1 and read "1_0" as 10.
    with pytest.raises(almc.InvalidArgumentError, match="chain_range must be"):
        almc.Sampler(almc.Gaussian(np.zeros(4), 1.0), noise_std=0.5, chains=4, chain_range=bad)


def test_chain_ranges_beyond_int64_are_refused_by_name():
    # These reached the C config and failed in nanobind ("incompatible function arguments").
    for bad in ((2**70, 1), (0, 2**63), f"{2**64}:1"):
        with pytest.raises(almc.InvalidArgumentError, match="chain_range: start .* is too large"):
            almc.Sampler(almc.Gaussian(np.zeros(4), 1.0), noise_std=0.5, chains=4, chain_range=bad)
    s = almc.Sampler(almc.Gaussian(np.zeros(4), 1.0), noise_std=0.5, chains=4, chain_range=(np.int64(1), 2), **FAST)
    assert s.run(np.zeros(4), progress=False).samples.shape == (2, 4)


def test_byte_paths_are_read_as_str_paths_are(tmp_path):
    # os.fspath kept bytes, which the extension refused with a nanobind signature dump.
    gmm = tmp_path / "prior.json"
    gmm.write_text('{"weights": [1], "means": [[0, 1]], "variances": [[1, 2]]}')
    assert almc.GaussianMixture.from_json(os.fsencode(gmm)).dim == 2
    with pytest.raises(almc.FileError, match="missing.json"):
        almc.GaussianMixture.from_json(os.fsencode(tmp_path / "missing.json"))
    net = almc.OnnxScore(os.fsencode(os.path.join(DEMO, "digits_score.onnx")), output="eps", convention="vp")
    assert net.shape == (1, 16, 16)
    assert almc.Sampler(net, noise_std=0.5).prior is net


def test_an_unreadable_hint_beside_a_model_is_skipped(tmp_path):
    model = tmp_path / "net.onnx"
    shutil.copy(os.path.join(DEMO, "digits_score.onnx"), model)
    # JSON nested deeper than Python's reader goes raised RecursionError from OnnxScore().
    (tmp_path / "net.json").write_text("[" * 100000 + "]" * 100000)
    # Skipped: the shape is then the network's own x dims (read when the onnx package is there).
    try:
        import onnx  # noqa: F401
        own = (1, 16, 16)
    except ImportError:
        own = None
    assert almc.OnnxScore(model, output="eps", convention="vp").shape == own
    # A FIFO named model.json blocked OnnxScore() forever in open(); in a child process, so that a
    # regression fails on the timeout instead of hanging the tests.
    os.remove(tmp_path / "net.json")
    os.mkfifo(tmp_path / "model.json")
    code = f"import almc; print(almc.OnnxScore({str(model)!r}, output='eps', convention='vp').shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == str(own), out.stderr
