"""Arguments of the wrong type are refused with a TypeError naming the argument, never converted:
a bool option takes True or False (Python's or NumPy's), not 7 or 0; an integer takes no 2.5, True
or "3"; a number no string or None; a choice no non-string. Values of the right type out of range
stay InvalidArgumentError. CPU, no run longer than a few steps."""

import numpy as np
import pytest

import almc

FAST = dict(kappa=1, delta=2e-3, t_start=1.0, t_stop=0.01)


def prior(d=4):
    return almc.Gaussian(np.zeros(d), np.ones(d))


def sampler(**options):
    return almc.Sampler(prior(), noise_std=0.5, **options)


@pytest.mark.parametrize("name", ["tweedie", "force", "use_graphs"])
@pytest.mark.parametrize("bad", [7, 2, 0, 1, 1.0, "yes", "False", None, np.int64(1), [True]])
def test_bool_options_take_only_bools(name, bad):
    with pytest.raises(TypeError, match=rf"option {name} must be True or False, got "):
        sampler(**{name: bad})


def test_bool_options_take_python_and_numpy_bools():
    for value in (True, False, np.bool_(True), np.bool_(False)):
        sampler(tweedie=value, use_graphs=value, **FAST)
    # A NumPy bool reaches the engine as the bool it is: force=np.True_ accepts an unstable step.
    with pytest.raises(almc.UnstableError):
        almc.Sampler(prior(), noise_std=0.01, delta=0.1, force=np.bool_(False))
    almc.Sampler(prior(), noise_std=0.01, delta=0.1, force=np.bool_(True))


@pytest.mark.parametrize("name", ["warm_steps", "average_last", "steps_per_level", "check_every"])
@pytest.mark.parametrize("bad", [2.5, 3.0, "3", None, True, np.float32(2)])
def test_integer_options_refuse_other_types(name, bad):
    with pytest.raises(TypeError, match=rf"option {name} must be an integer, got "):
        sampler(**{name: bad})


def test_integer_options_take_numpy_integers_and_refuse_int64_overflow():
    sampler(warm_steps=np.int32(3), check_every=np.uint8(7), **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"option check_every = 1000000000000000000000 is too large"):
        sampler(check_every=10**21)


@pytest.mark.parametrize("name", ["kappa", "delta", "t_start", "warm_step", "likelihood_weight", "init_scale"])
@pytest.mark.parametrize("bad", ["2", None, True, np.bool_(True), [1.0], 1j])
def test_number_options_refuse_other_types(name, bad):
    with pytest.raises(TypeError, match=rf"option {name} must be a number, got "):
        sampler(**{name: bad})


def test_choices_must_be_strings():
    with pytest.raises(TypeError, match=r"method must be a string, got int 1"):
        almc.Sampler(prior(), noise_std=0.5, method=1)
    with pytest.raises(TypeError, match=r"backend must be a string, got None"):
        almc.Sampler(prior(), noise_std=0.5, backend=None)
    with pytest.raises(TypeError, match=r"option schedule must be a string, got int 2"):
        sampler(method="langevin", levels=[1.0, 0.5], schedule=2)
    with pytest.raises(TypeError, match=r"option variant must be a string"):
        sampler(variant=None)
    with pytest.raises(TypeError, match=r"option init must be 'gaussian', 'uniform' or an array, got None"):
        sampler(init=None)
    with pytest.raises(almc.InvalidArgumentError, match=r"unknown init 'normal' \(use gaussian, uniform, an array\)"):
        sampler(init="normal")
    sampler(method="ALMC", backend="CPU", init="Uniform", **FAST)  # case does not matter


def test_levels_is_a_count_or_a_list():
    for bad in (2.5, "3", None, True):
        with pytest.raises(TypeError, match=r"option levels must be a count \(an integer\) or a list of OU times"):
            sampler(method="ncsn", levels=bad)
    with pytest.raises(almc.InvalidArgumentError, match=r"levels\[1\] is not finite"):
        sampler(method="langevin", levels=[1.0, np.nan, 0.1])
    sampler(method="ncsn", levels=np.int64(3), steps_per_level=2)
    sampler(method="langevin", levels=(1.0, 0.5, 0.1), steps_per_level=2)


def test_sampler_sizes_refuse_other_types():
    for bad in (2.5, "8", None, True):
        with pytest.raises(TypeError, match=r"chains must be an integer, got "):
            almc.Sampler(prior(), noise_std=0.5, chains=bad)
        with pytest.raises(TypeError, match=r"threads must be an integer, got "):
            almc.Sampler(prior(), noise_std=0.5, threads=bad)
    for bad in (1.5, True, "1"):
        with pytest.raises(TypeError, match=r"seed must be an integer, got "):
            almc.Sampler(prior(), noise_std=0.5, seed=bad)
    with pytest.raises(almc.InvalidArgumentError, match=r"chains = 0 must be a positive integer"):
        almc.Sampler(prior(), noise_std=0.5, chains=0)
    for bad in ("0.5", True):  # (None is a prior-only sampler)
        with pytest.raises(TypeError, match=r"noise_std must be a number, got "):
            almc.Sampler(prior(), noise_std=bad)


def test_run_arguments_refuse_other_types():
    s = sampler(**FAST)
    for bad in (1, 0, 2, "yes"):
        with pytest.raises(TypeError, match=r"progress must be True, False or a callable, got "):
            s.run(np.zeros(4), progress=bad)
    with pytest.raises(TypeError, match=r"snapshot_every must be an integer, got float 2.5"):
        s.run(np.zeros(4), progress=False, snapshot=lambda state, step: None, snapshot_every=2.5)
    assert s.run(np.zeros(4), progress=np.bool_(False)).samples.shape == (1, 4)


def test_priors_and_operators_refuse_other_types(tmp_path):
    with pytest.raises(TypeError, match=r"Downsample: factor must be an integer, got float 2.5"):
        almc.Downsample(2.5, (1, 4, 4))
    with pytest.raises(TypeError, match=r"Downsample: shape\[1\] must be an integer, got float 4.5"):
        almc.Downsample(2, (1, 4.5, 4))
    with pytest.raises(TypeError, match=r"Blur: shape must be a sequence of integers, got str"):
        almc.Blur(np.ones((3, 3)), "1,4,4")
    with pytest.raises(TypeError, match=r"LinearOperator: m must be an integer, got float 2.5"):
        almc.LinearOperator(lambda x: x, lambda y: y, m=2.5)
    with pytest.raises(TypeError, match=r"LinearOperator: d must be an integer, got str"):
        almc.LinearOperator(lambda x: x, lambda y: y, m=2, d="4")
    with pytest.raises(almc.InvalidArgumentError, match=r"LinearOperator: d = 0 must be positive"):
        almc.LinearOperator(lambda x: x, lambda y: y, m=2, d=0)
    with pytest.raises(TypeError, match=r"LinearOperator: norm must be a number, got bool"):
        almc.LinearOperator(lambda x: x, lambda y: y, m=2, norm=True)
    with pytest.raises(TypeError, match=r"ScoreFunction: shape\[0\] must be an integer, got float 2.5"):
        almc.ScoreFunction(lambda x, t: -x, shape=(2.5,))
    assert almc.ScoreFunction(lambda x, t: -x, shape=3).shape == (3,)
    with pytest.raises(TypeError, match=r"framework must be a string, got int 1"):
        almc.ScoreFunction(lambda x, t: -x, framework=1)
    with pytest.raises(TypeError, match=r"mean must be an array, got None"):
        almc.Gaussian(None, 1.0)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not a model")  # described, not loaded: the checks below come first
    with pytest.raises(TypeError, match=r"tf32 must be True or False, got int 7"):
        almc.OnnxScore(model, tf32=7)
    with pytest.raises(TypeError, match=r"output must be a string, got int 1"):
        almc.OnnxScore(model, output=1)  # None is "not given": the sidecar's, else "score"
    with pytest.raises(TypeError, match=r"x_input must be a string, got int 0"):
        almc.OnnxScore(model, x_input=0)
    with pytest.raises(TypeError, match=r"level_scale must be a number, got str"):
        almc.OnnxScore(model, level_scale="999")
    with pytest.raises(TypeError, match=r"output_slice\[1\] must be an integer, got float 3.7"):
        almc.OnnxScore(model, output_slice=(0, 3.7))
    with pytest.raises(TypeError, match=r"OnnxScore: inputs must be a dict"):
        almc.OnnxScore(model, inputs=[("label", 3)])
    assert almc.OnnxScore(model, tf32=np.bool_(True)).tf32 is True
