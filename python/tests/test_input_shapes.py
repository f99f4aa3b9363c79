"""Array arguments are checked by shape, not only by size, and messages speak Python (defects found
by a new user's walkthrough; CPU). Each test says what was wrong before."""

import json
import os

import numpy as np
import pytest

import almc

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "onnx")
FAST = dict(kappa=1, delta=2e-3, t_start=1.0, t_stop=0.5)


def test_mixture_variances_are_checked_by_shape():
    # Variances [3, 2] (V.T) for means [2, 3] were reshaped to [2, 3] without a word, giving each
    # component the variances of the other coordinates.
    V = np.arange(1, 7, dtype=np.float64).reshape(2, 3)
    with pytest.raises(almc.InvalidArgumentError,
                       match=r"variances has shape \[3, 2\]; expected \[2, 3\] .*\[2\] .*or a scalar"):
        almc.GaussianMixture([0.5, 0.5], np.zeros((2, 3)), V.T)
    with pytest.raises(almc.InvalidArgumentError, match=r"variances has shape \[6\]"):
        almc.GaussianMixture([0.5, 0.5], np.zeros((2, 3)), V.ravel())
    # The documented forms still work: [K, *shape], [K] (one per component) and a scalar.
    np.testing.assert_array_equal(almc.GaussianMixture([0.5, 0.5], np.zeros((2, 3)), V).variances, V)
    np.testing.assert_array_equal(almc.GaussianMixture([0.5, 0.5], np.zeros((2, 3)), [1.0, 2.0]).variances,
                                  [[1, 1, 1], [2, 2, 2]])
    for scalar in (0.5, np.float64(0.5), [0.5], np.full((1, 1), 0.5)):
        np.testing.assert_array_equal(almc.GaussianMixture([0.5, 0.5], np.zeros((2, 3)), scalar).variances,
                                      np.full((2, 3), 0.5))
    image = almc.GaussianMixture([1.0, 1.0], np.zeros((2, 1, 2, 2)), np.ones((2, 1, 2, 2)))
    assert image.variances.shape == (2, 1, 2, 2) and image.shape == (1, 2, 2)
    with pytest.raises(almc.InvalidArgumentError, match=r"expected \[2, 1, 2, 2\]"):
        almc.GaussianMixture([1.0, 1.0], np.zeros((2, 1, 2, 2)), np.ones((2, 4)))
    # Means [K] (d = 1) with variances [K] or [K, 1].
    assert almc.GaussianMixture([0.5, 0.5], [-1.0, 1.0], [0.5, 2.0]).variances.tolist() == [[0.5], [2.0]]
    assert almc.GaussianMixture([0.5, 0.5], [-1.0, 1.0], [[0.5], [2.0]]).variances.tolist() == [[0.5], [2.0]]


def test_gaussian_var_is_checked_by_shape():
    # var [3, 2] for mean [6] was reshaped silently although the message for a wrong size says
    # "expected [6] (the shape of mean) or a scalar".
    var = np.arange(1, 7, dtype=np.float64)
    with pytest.raises(almc.InvalidArgumentError, match=r"var has shape \[3, 2\]; expected \[6\] \(the shape of mean\)"):
        almc.Gaussian(np.zeros(6), var.reshape(3, 2))
    with pytest.raises(almc.InvalidArgumentError, match=r"var has shape \[6\]; expected \[2, 3\]"):
        almc.Gaussian(np.zeros((2, 3)), var)
    np.testing.assert_array_equal(almc.Gaussian(np.zeros(6), var).var, var)
    np.testing.assert_array_equal(almc.Gaussian(np.zeros((2, 3)), var.reshape(2, 3)).var, var.reshape(2, 3))
    for scalar in (2.0, np.float32(2.0), [2.0], np.full((1, 1), 2.0)):
        np.testing.assert_array_equal(almc.Gaussian(np.zeros((2, 3)), scalar).var, np.full((2, 3), 2.0))


def test_initial_state_is_checked_by_shape():
    # init [25, 8] for 50 chains of d = 4 was taken (only its size was compared), mixing two
    # chains' values in each row.
    prior = almc.Gaussian(np.zeros(4), 1.0)
    kw = dict(noise_std=0.5, method="xgp", levels=2, steps_per_level=2, seed=1)
    bad = almc.Sampler(prior, chains=50, init=np.zeros((25, 8)), **kw)
    with pytest.raises(almc.InvalidArgumentError,
                       match=r"init has shape \[25, 8\]; expected \[50, 4\] \(n_meas \* chains, \*shape\)"):
        bad.run(np.zeros(4), progress=False)
    # Two measurements: 2 * 3 chains.
    with pytest.raises(almc.InvalidArgumentError, match=r"init has shape \[3, 4\]; expected \[6, 4\]"):
        almc.Sampler(prior, chains=3, init=np.zeros((3, 4)), **kw).run(np.zeros((2, 4)), progress=False)
    assert almc.Sampler(prior, chains=3, init=np.zeros((6, 4)), **kw).run(
        np.zeros((2, 4)), progress=False).samples.shape == (6, 4)
    # An image-shaped chain: [chains, *shape] or [chains, d], nothing else of that size.
    image = almc.Gaussian(np.zeros((1, 2, 2)), 1.0)
    for good in (np.zeros((3, 1, 2, 2)), np.zeros((3, 4))):
        res = almc.Sampler(image, chains=3, init=good, **kw).run(np.zeros((1, 2, 2)), progress=False)
        assert res.samples.shape == (3, 1, 2, 2)
    with pytest.raises(almc.InvalidArgumentError, match=r"init has shape \[4, 3\]; expected \[3, 1, 2, 2\] .* or \[3, 4\]"):
        almc.Sampler(image, chains=3, init=np.zeros((4, 3)), **kw).run(np.zeros((1, 2, 2)), progress=False)
    # One chain's state without its row of 1 is taken.
    assert almc.Sampler(prior, chains=1, init=np.zeros(4), **kw).run(np.zeros(4), progress=False).samples.shape == (1, 4)
    # A 0-d init is reported as such (host arrays are made at least 1-D on the way).
    with pytest.raises(almc.InvalidArgumentError, match=r"init has shape \[\]; expected \[1, 4\]"):
        almc.Sampler(prior, chains=1, init=np.float64(0.0), **kw).run(np.zeros(4), progress=False)


def test_measurements_are_checked_by_shape():
    # y [2, 2], [4, 1] or [2, 2, 2] for m = 4 were all taken ([2, 2, 2] as two measurements): any
    # multiple of m values passed. A 0-d y was reported as "shape [1]".
    s = almc.Sampler(almc.Gaussian(np.zeros(4), 1.0), noise_std=0.5, chains=2, **FAST)
    for shape in ((2, 2), (4, 1), (2, 2, 2), (8,), (0, 4)):
        with pytest.raises(almc.InvalidArgumentError,
                           match=rf"y has shape \[{', '.join(map(str, shape))}\]; .* y of shape \[4\] or \[n_meas, 4\]$"):
            s.run(np.zeros(shape), progress=False)
    with pytest.raises(almc.InvalidArgumentError, match=r"y has shape \[\]; "):
        s.run(np.zeros(()), progress=False)
    assert s.run(np.zeros(4), progress=False).samples.shape == (2, 4)
    assert s.run(np.zeros((1, 4)), progress=False).samples.shape == (2, 4)
    assert s.run(np.zeros((3, 4)), progress=False).mean.shape == (3, 4)
    # With an image shape: y_shape and [n_meas, *y_shape] too, and [m] / [n_meas, m].
    img = almc.Sampler(almc.Gaussian(np.zeros((1, 2, 2)), 1.0), noise_std=0.5, chains=2, **FAST)
    for y, n_meas in ((np.zeros((1, 2, 2)), 1), (np.zeros((2, 2)), 1), (np.zeros(4), 1), (np.zeros((1, 1, 2, 2)), 1),
                      (np.zeros((3, 1, 2, 2)), 3), (np.zeros((3, 4)), 3)):
        assert img.run(y, progress=False).mean.shape == (n_meas, 1, 2, 2), y.shape
    for bad in ((4, 1), (2, 1, 2), (1, 4, 1)):
        with pytest.raises(almc.InvalidArgumentError,
                           match=r"y of shape \[4\], \[n_meas, 4\], \[1, 2, 2\] or \[n_meas, 1, 2, 2\]$"):
            img.run(np.zeros(bad), progress=False)
    # A Mask's own shape is y's shape even where the prior gives the chains another one.
    mask = np.ones((2, 2))
    flat = almc.Sampler(almc.Gaussian(np.zeros(4), 1.0), almc.Mask(mask), noise_std=0.5, chains=2, **FAST)
    assert flat.run(np.zeros((2, 2)), progress=False).samples.shape == (2, 4)
    assert flat.run(np.zeros((3, 2, 2)), progress=False).mean.shape == (3, 4)
    # Downsample given (H, W): its y is (1, H/f, W/f), or (H/f, W/f) as the user described it.
    down = almc.Sampler(almc.Gaussian(np.zeros((4, 4)), 1.0), almc.Downsample(2, (4, 4)), noise_std=0.5, chains=2,
                        **FAST)
    for y, n_meas in ((np.zeros((2, 2)), 1), (np.zeros((1, 2, 2)), 1), (np.zeros((3, 2, 2)), 3), (np.zeros((3, 4)), 3)):
        assert down.run(y, progress=False).mean.shape == (n_meas, 4, 4), y.shape
    with pytest.raises(almc.InvalidArgumentError, match=r"y has shape \[4, 1\]"):
        down.run(np.zeros((4, 1)), progress=False)
    # A Matrix: [m] or [n_meas, m] only.
    mat = almc.Sampler(almc.Gaussian(np.zeros(3), 1.0), almc.Matrix(np.ones((4, 3))), noise_std=0.5, chains=2, **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"y has shape \[2, 2\]; the operator Matrix expects 4 values"):
        mat.run(np.zeros((2, 2)), progress=False)
    # A score without a shape: d comes from y, and a 0-d y is refused naming its own shape.
    free = almc.Sampler(almc.ScoreFunction(lambda x, t: -x), noise_std=0.5, chains=2, **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"y has shape \[\]; expected \[m\]"):
        free.run(np.zeros(()), progress=False)
    assert free.run(np.zeros(3), progress=False).samples.shape == (2, 3)


def test_score_function_must_not_write_into_x():
    # x *= 2 in a NumPy score stopped the run with NumPy's bare "output array is read-only",
    # naming neither the function nor the rule.
    def scales_in_place(x, t):
        x *= 2
        return -x

    s = almc.Sampler(almc.ScoreFunction(scales_in_place), noise_std=0.5, chains=2, **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"the score function wrote into a read-only array \(NumPy: .*\): "
                       r"its input is the engine's own buffer and must not be modified; return a new array") as e:
        s.run(np.zeros(3), progress=False)
    assert isinstance(e.value.__cause__, ValueError) and "read-only" in str(e.value.__cause__)
    # An unrelated ValueError of the function is re-raised as itself.

    def fails(x, t):
        raise ValueError("my own error")

    with pytest.raises(ValueError, match="^my own error$"):
        almc.Sampler(almc.ScoreFunction(fails), noise_std=0.5, chains=2, **FAST).run(np.zeros(3), progress=False)


def test_torch_score_function_must_not_write_into_x(torch):
    # A torch score on the CPU gets a tensor sharing the chains' memory: x.mul_(2) changed the
    # chains silently. torch's version counter shows the write; the run stops naming the rule.
    def scales_in_place(x, t):
        x.mul_(2)
        return -x

    def view_in_place(x, t):
        x.view(-1)[0] = 1.0
        return -x.clone()

    for fn in (scales_in_place, view_in_place):
        s = almc.Sampler(almc.ScoreFunction(fn, framework="torch"), noise_std=0.5, chains=2, backend="cpu", **FAST)
        with pytest.raises(almc.InvalidArgumentError, match=r"the score function modified its input in place"):
            s.run(np.zeros(3), progress=False)
    # Reading x and returning a new tensor is fine.
    ok = almc.Sampler(almc.ScoreFunction(lambda x, t: -x, framework="torch"), noise_std=0.5, chains=2, backend="cpu",
                      **FAST)
    assert np.all(np.isfinite(ok.run(np.zeros(3), progress=False).samples))


def test_messages_use_python_terms(tmp_path):
    # chain_range beyond the run's chains ended with the C convention "(0 / 0: all)", which
    # Python refuses as a chain_range.
    prior = almc.Gaussian(np.zeros(4), 1.0)
    with pytest.raises(almc.InvalidArgumentError) as e:
        almc.Sampler(prior, noise_std=0.5, chains=50, chain_range=(150, 100), **FAST).run(np.zeros(4), progress=False)
    assert "0 / 0" not in str(e.value) and "omit chain_range" in str(e.value), str(e.value)
    # save_state() before any run spoke of the C API's "checkpoint callback".
    for s in (almc.Sampler(prior, noise_std=0.5, chains=2, **FAST), almc.Sampler(prior, chains=2, **FAST)):
        with pytest.raises(almc.WrongStateError) as e:
            s.save_state()
        assert "checkpoint callback" not in str(e.value) and "snapshot=" in str(e.value), str(e.value)
    # ...and after a run that finished.
    s = almc.Sampler(prior, noise_std=0.5, chains=2, **FAST)
    s.run(np.zeros(4), progress=False)
    with pytest.raises(almc.WrongStateError) as e:
        s.save_state()
    assert "checkpoint callback" not in str(e.value), str(e.value)
    # OnnxScore(shape=(17,)) for a network of d = 16 said "x_shape [17] ...", a C field.
    with pytest.raises(almc.InvalidArgumentError) as e:
        almc.Sampler(almc.OnnxScore(os.path.join(DATA, "mlp_embed.onnx"), shape=(17,)), noise_std=0.5, **FAST)
    assert "x_shape" not in str(e.value) and "shape (17,) holds 17 values" in str(e.value), str(e.value)
    # A learned-variance network's advice named "(config.output_channel_begin/end)".
    path = os.path.join(DATA, "gauss_eps_learned_var.onnx")
    with pytest.raises(almc.UnsupportedError) as e:
        almc.Sampler(almc.OnnxScore(path, output="eps", convention="vp"), noise_std=0.5, **FAST)
    assert "config." not in str(e.value) and "output_slice=(0, 1)" in str(e.value), str(e.value)
    almc.Sampler(almc.OnnxScore(path, output="eps", convention="vp", output_slice=(0, 1)), noise_std=0.5, **FAST)


def test_mixture_from_json_says_why_it_has_no_parameters(tmp_path):
    # GaussianMixture(...) has .weights/.means/.variances; one read by from_json() (the library
    # reads the file and gives no way to read the parameters back) raised a bare AttributeError.
    path = tmp_path / "gmm.json"
    path.write_text(json.dumps({"weights": [1.0], "means": [[0.0, 1.0]], "variances": [1.0]}))
    gmm = almc.GaussianMixture.from_json(path)
    for name in ("weights", "means", "variances"):
        with pytest.raises(AttributeError, match=rf"from_json\(.*\) has no \.{name}: the library reads the file"):
            getattr(gmm, name)
    assert not hasattr(gmm, "path") and gmm.dim == 2
