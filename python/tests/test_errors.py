"""Errors, callbacks that fail, cancellation, the GIL, and inputs NumPy users pass (CPU)."""

import os
import signal
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

import almc

FAST = dict(kappa=1, delta=2e-3, t_start=1.0, t_stop=0.01)  # ~500 steps


def gaussian(d=4):
    return almc.Gaussian(np.zeros(d), np.ones(d))


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected option 'kapa'"):
        almc.Sampler(gaussian(), noise_std=0.1, kapa=3)
    with pytest.raises(TypeError, match="kappa must be a number"):
        almc.Sampler(gaussian(), noise_std=0.1, kappa="3")


def test_library_errors_carry_status_and_message(tmp_path):
    with pytest.raises(almc.Error) as e:
        almc.GaussianMixture.from_json(tmp_path / "missing.json")
    assert e.value.status == 8 and "missing.json" in str(e.value)  # ALMC_ERR_IO, the path named
    bad = tmp_path / "bad.json"
    bad.write_text('{"weights": [1], "means": [[0, 0]]}')
    with pytest.raises(almc.FileError) as e:
        almc.GaussianMixture.from_json(bad)
    assert e.value.status == 9 and "variances" in str(e.value)  # ALMC_ERR_PARSE
    with pytest.raises(almc.InvalidArgumentError) as e:
        almc.Sampler(gaussian(), noise_std=-1.0)
    assert e.value.status == 1 and "noise" in str(e.value) and isinstance(e.value, ValueError)
    with pytest.raises(almc.UnstableError) as e:
        almc.Sampler(gaussian(), noise_std=0.01, delta=0.1)
    assert e.value.status == 12 and "delta" in str(e.value)
    almc.Sampler(gaussian(), noise_std=0.01, delta=0.1, force=True)  # force runs anyway
    with pytest.raises(almc.InvalidArgumentError, match="unknown method 'mala'"):
        almc.Sampler(gaussian(), noise_std=0.1, method="mala")
    with pytest.raises(almc.FileError, match="nope.onnx"):
        almc.Sampler(almc.OnnxScore(tmp_path / "nope.onnx"), noise_std=0.1)
    if almc.cuda_device_count() == 0:
        with pytest.raises(almc.NoDeviceError) as e:
            almc.Sampler(gaussian(), noise_std=0.1, backend="cuda")
        assert e.value.status == 5


def test_wrong_shapes_are_refused_naming_the_expected_shape():
    s = almc.Sampler(gaussian(6), almc.Matrix(np.ones((3, 6))), noise_std=0.5, chains=2, **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"y has shape \[4\]; .* expects 3 values .*\[3\] or \[n_meas, 3\]"):
        s.run(np.zeros(4), progress=False)
    with pytest.raises(almc.InvalidArgumentError, match=r"the prior has d = 5 values per sample but the operator Matrix takes 6"):
        almc.Sampler(gaussian(5), almc.Matrix(np.ones((3, 6))), noise_std=0.5)
    with pytest.raises(almc.InvalidArgumentError, match=r"var has shape \[3\]; expected \[4\]"):
        almc.Gaussian(np.zeros(4), np.ones(3))
    img = almc.Sampler(almc.Gaussian(np.zeros((1, 4, 4)), 1.0), almc.Downsample(2, (1, 4, 4)), noise_std=0.5, **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"\[1, 2, 2\]"):
        img.run(np.zeros((1, 4, 4)), progress=False)
    with pytest.raises(almc.InvalidArgumentError, match="real numeric"):
        s.run(np.array(["a", "b", "c"]), progress=False)


def test_float64_and_non_contiguous_inputs_are_converted():
    rng = np.random.default_rng(1)
    big = rng.normal(size=(8, 6))
    A64 = np.asfortranarray(big[::2, :])  # float64, Fortran order
    y64 = rng.normal(size=(4, 2))[:, 0]  # float64, strided
    mean64 = rng.normal(size=12)[::2]
    kw = dict(noise_std=0.5, chains=8, seed=2, **FAST)
    a = almc.Sampler(almc.Gaussian(mean64, 1.0), almc.Matrix(A64), **kw).run(y64, progress=False)
    b = almc.Sampler(almc.Gaussian(np.ascontiguousarray(mean64, np.float32), np.float32(1.0)),
                     almc.Matrix(np.ascontiguousarray(A64, np.float32)), **kw).run(
                         np.ascontiguousarray(y64, np.float32), progress=False)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.samples.dtype == np.float32


class DLPackOnly:
    """An array that speaks only DLPack (as JAX or CuPy arrays do), backed by a NumPy array."""

    def __init__(self, a, device=(1, 0)):
        self._a = np.ascontiguousarray(a)
        self._device = device

    def __dlpack__(self, stream=None, **kwargs):
        if self._device[0] != 1:  # a device array: what a GPU producer says when asked for host memory
            raise BufferError("the array lives in device memory")
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._device


def test_dlpack_inputs_are_read():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(3, 6)).astype(np.float32)
    y = rng.normal(size=3).astype(np.float32)
    mean = rng.normal(size=6).astype(np.float32)
    kw = dict(noise_std=0.5, chains=8, seed=4, **FAST)
    a = almc.Sampler(almc.Gaussian(DLPackOnly(mean), 1.0), almc.Matrix(DLPackOnly(A)), **kw).run(
        DLPackOnly(y), progress=False)
    b = almc.Sampler(almc.Gaussian(mean, 1.0), almc.Matrix(A), **kw).run(y, progress=False)
    np.testing.assert_array_equal(a.samples, b.samples)


def test_unreadable_dlpack_device_array_is_refused_by_name(monkeypatch):
    dev = DLPackOnly(np.zeros(4, np.float32), device=(2, 0))
    with pytest.raises(almc.InvalidArgumentError, match="mean: .*DLPack array"):
        almc.Gaussian(dev, 1.0)
    import almc._arrays as arrays
    monkeypatch.setattr(arrays, "torch_module", lambda: None)
    with pytest.raises(almc.InvalidArgumentError, match="mean: NumPy cannot read this DLPack array"):
        almc.Gaussian(dev, 1.0)


class Boom(RuntimeError):
    pass


def test_exception_in_score_callback_is_reraised_with_traceback():
    state = {"calls": 0, "fail_at": 5}

    def my_failing_score(x, t):
        state["calls"] += 1
        if state["calls"] == state["fail_at"]:
            raise Boom("score blew up at call 5")
        return -x

    s = almc.Sampler(almc.ScoreFunction(my_failing_score), noise_std=0.5, chains=4, seed=0, **FAST)
    with pytest.raises(Boom, match="blew up") as e:
        s.run(np.zeros(3), progress=False)
    assert state["calls"] == 5  # the run stopped at the failing call
    names = [f.name for f in traceback.extract_tb(e.value.__traceback__)]
    assert "my_failing_score" in names
    state["fail_at"] = -1  # the sampler is still usable
    assert s.run(np.zeros(3), progress=False).samples.shape == (4, 3)


def test_wrong_result_shape_from_callback():
    s = almc.Sampler(almc.ScoreFunction(lambda x, t: x[:, :2]), noise_std=0.5, chains=4, **FAST)
    with pytest.raises(ValueError, match=r"returned shape \[4, 2\]; expected \[4, 3\]"):
        s.run(np.zeros(3), progress=False)


def test_exception_in_operator_callback():
    def fwd(x):
        raise KeyError("forward failed")

    s = almc.Sampler(gaussian(3), almc.LinearOperator(fwd, lambda v: v, 3), noise_std=0.5, chains=2, **FAST)
    with pytest.raises(KeyError, match="forward failed"):
        s.run(np.zeros(3), progress=False)


def test_callback_input_is_read_only():
    def writes(x, t):
        x[0, 0] = 1.0
        return -x

    s = almc.Sampler(almc.ScoreFunction(writes), noise_std=0.5, chains=2, **FAST)
    with pytest.raises(ValueError, match="read-only"):
        s.run(np.zeros(3), progress=False)


@pytest.fixture
def sigint_raises():
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then leaves it ignored: install Python's own handler for these tests, as a terminal
    # session has it.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


# ~2e6 steps on 64 x 64 values: seconds to minutes uninterrupted (only when cancelling is broken).
LONG = dict(kappa=400, delta=1e-3, t_start=5.0, t_stop=0.01, check_every=20)


def test_ctrl_c_cancels_promptly_and_sampler_stays_usable(sigint_raises):
    s = almc.Sampler(gaussian(64), noise_std=0.5, chains=64, seed=0, **LONG)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        s.run(np.zeros(64), progress=False)
    elapsed = time.monotonic() - t0
    timer.join()
    assert elapsed < 5, f"the run took {elapsed:.1f} s to stop"


def test_cancelled_sampler_reruns_to_the_same_result(sigint_raises):
    # Interrupt a run of sampler s early, then run s itself to completion: the result equals an
    # uninterrupted run with the same seed.
    cfg = dict(noise_std=0.5, chains=16, seed=3, kappa=10, delta=1e-3, t_start=5.0, t_stop=0.01, check_every=10)
    t0 = time.monotonic()
    ref = almc.Sampler(gaussian(32), **cfg).run(np.ones(32), progress=False).samples
    full = time.monotonic() - t0
    s = almc.Sampler(gaussian(32), **cfg)
    timer = threading.Timer(full / 10, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        s.run(np.ones(32), progress=False)
    cut = time.monotonic() - t0
    timer.join()
    assert cut < full / 2, f"interrupted at {full / 10:.2f} s, stopped at {cut:.2f} s of {full:.2f} s"
    np.testing.assert_array_equal(s.run(np.ones(32), progress=False).samples, ref)


def test_gil_is_released_while_running():
    s = almc.Sampler(gaussian(256), noise_std=0.5, chains=64, seed=0, kappa=10, delta=1e-3, t_start=1.0, t_stop=0.01)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (s.run(np.zeros(256), progress=False), done.set()))
    ticks = 0
    worker.start()
    while worker.is_alive() and not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    assert done.is_set()
    # ~10000 steps take well over 0.1 s here: with the GIL held this loop could not tick at all.
    assert ticks > 20, ticks


def test_progress_line_without_tqdm(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    almc.Sampler(gaussian(), noise_std=0.5, chains=2, check_every=100, **FAST).run(np.zeros(4), progress=True)
    err = capsys.readouterr().err
    assert "almc: step" in err and "steps/s" in err
    almc.Sampler(gaussian(), noise_std=0.5, chains=2, **FAST).run(np.zeros(4), progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_with_tqdm(monkeypatch):
    import sys
    import types

    bars = []

    class FakeBar:
        def __init__(self, total, **kwargs):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix_str(self, s, refresh=True):
            self.postfix = s

        def close(self):
            self.closed = True

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    res = almc.Sampler(gaussian(), noise_std=0.5, chains=2, **FAST).run(np.zeros(4), progress=True)
    assert len(bars) == 1 and bars[0].closed
    assert bars[0].n == bars[0].total == res.info["steps"]
    assert bars[0].postfix.startswith("residual ")


def test_openmp_waits_passively_unless_the_user_chose():
    # GNU OpenMP's own report of what it read at start-up (OMP_DISPLAY_ENV=verbose): spin count 0 is
    # passive waiting, its default is 300000. The variable must not stay in the environment.
    import subprocess
    import sys

    code = "import os, almc; print('left:', os.environ.get('OMP_WAIT_POLICY'))"

    def run(**env):
        base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        r = subprocess.run([sys.executable, "-c", code], env=dict(base, OMP_DISPLAY_ENV="verbose", **env),
                           capture_output=True, text=True, check=True)
        spins = [line.split("'")[1] for line in r.stderr.splitlines() if "GOMP_SPINCOUNT = '" in line]
        return spins, r.stdout.strip()

    spins, out = run()
    if not spins:
        pytest.skip("the OpenMP runtime is not GNU OpenMP")
    assert (spins, out) == (["0"], "left: None")
    assert run(OMP_WAIT_POLICY="active") == (["30000000000"], "left: active")
    assert run(GOMP_SPINCOUNT="1000") == (["1000"], "left: None")


def test_out_of_range_seeds_and_threads_are_refused_by_name():
    for bad in (2**64, -1):
        with pytest.raises(almc.InvalidArgumentError, match=r"seed = .* must be an integer from 0 to 2\*\*64 - 1"):
            almc.Sampler(gaussian(), noise_std=0.5, seed=bad)
    almc.Sampler(gaussian(), noise_std=0.5, seed=2**64 - 1)  # the largest seed
    for bad in (-1, 1025):
        with pytest.raises(almc.InvalidArgumentError, match=r"threads = .* must be an integer from 0 \(OpenMP's "
                                                            r"default\) to 1024"):
            almc.Sampler(gaussian(), noise_std=0.5, threads=bad)
    # Other types are TypeErrors (test_option_types.py).
    for bad in (1.5, True):
        with pytest.raises(TypeError, match=r"seed must be an integer, got"):
            almc.Sampler(gaussian(), noise_std=0.5, seed=bad)
    assert almc.Sampler(gaussian(), noise_std=0.5, threads=np.int64(1), **FAST).run(np.zeros(4), progress=False)


def test_values_beyond_float32_are_refused_not_turned_into_inf():
    s = almc.Sampler(gaussian(), noise_std=0.5, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warning on the way
        with pytest.raises(almc.InvalidArgumentError, match=r"y\[2\] = -1e\+40 is outside float32's range"):
            s.run(np.array([0.0, 1.0, -1e40, 0.0]), progress=False)
        with pytest.raises(almc.InvalidArgumentError, match=r"mean\[1\] = 1e\+39 is outside float32's range"):
            almc.Gaussian([0.0, 1e39, 0.0], 1.0)
    # Large but representable values still pass, as do NaN and inf given as such (the library names them).
    assert almc.Gaussian([0.0, 3e38], 1.0).dim == 2
    with pytest.raises(almc.InvalidArgumentError, match=r"y\[1\] is not finite \(inf\)"):
        s.run(np.array([0.0, np.inf, 0.0, 0.0]), progress=False)


def test_priors_refuse_bad_parameters_when_described():
    with pytest.raises(almc.InvalidArgumentError, match=r"mean\[1\] is not finite \(nan\)"):
        almc.Gaussian([0.0, np.nan], 1.0)
    with pytest.raises(almc.InvalidArgumentError, match=r"var\[1\] = -1 must be positive"):
        almc.Gaussian([0.0, 0.0], [1.0, -1.0])
    with pytest.raises(almc.InvalidArgumentError, match=r"var\[0, 1\] = 0 must be positive"):
        almc.Gaussian(np.zeros((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(almc.InvalidArgumentError, match=r"var\[0\] is not finite \(inf\)"):
        almc.Gaussian([0.0], np.inf)
    with pytest.raises(almc.InvalidArgumentError, match=r"weights must be >= 0 with a positive sum, got \[0.0, 0.0\]"):
        almc.GaussianMixture([0, 0], [[0.0], [1.0]], 1.0)
    with pytest.raises(almc.InvalidArgumentError, match=r"weights must be >= 0"):
        almc.GaussianMixture([-1, 2], [[0.0], [1.0]], 1.0)
    with pytest.raises(almc.InvalidArgumentError, match=r"means\[1, 0\] is not finite \(inf\)"):
        almc.GaussianMixture([1, 1], [[0.0], [np.inf]], 1.0)
    with pytest.raises(almc.InvalidArgumentError, match=r"variances\[1, 0\] = -2 must be positive"):
        almc.GaussianMixture([1, 1], [[0.0], [1.0]], [1.0, -2.0])


def test_a_score_function_that_returns_nothing_says_so():
    s = almc.Sampler(almc.ScoreFunction(lambda x, t: None, shape=(3,)), noise_std=0.5, **FAST)
    with pytest.raises(TypeError, match=r"the score function returned None; expected an array of shape \[\d+, 3\]"):
        s.run(np.zeros(3), progress=False)


def test_arguments_are_refused_when_given_naming_the_python_argument(tmp_path):
    with pytest.raises(almc.FileError, match=r"OnnxScore: cannot read the model .*nope\.onnx \(No such file"):
        almc.OnnxScore(tmp_path / "nope.onnx")  # when described, not when a sampler loads it
    with pytest.raises(almc.FileError, match=r"OnnxScore: .* is not a regular file|OnnxScore: cannot read the model"):
        almc.OnnxScore(tmp_path)
    init = np.zeros((2, 4))
    init[1, 3] = np.nan
    with pytest.raises(almc.InvalidArgumentError, match=r"init\[1, 3\] is not finite \(nan\)"):
        almc.Sampler(gaussian(), noise_std=0.5, chains=2, init=init)
    with pytest.raises(almc.InvalidArgumentError, match=r"levels must be a count or a non-empty, decreasing list"):
        almc.Sampler(gaussian(), noise_std=0.5, method="langevin", levels=[])


def test_an_unwritable_snapshot_path_is_refused_before_the_run(tmp_path):
    # The state of a stopped run goes to `snapshot` only when the run stops: a path it cannot be
    # written to was found then, and the state was lost. Now it is refused before any step runs.
    s = almc.Sampler(gaussian(), noise_std=0.5, **FAST)
    calls = []

    def stop(*args):
        calls.append(args)
        raise KeyboardInterrupt

    for path, says in ((tmp_path, "is a directory"), (tmp_path / "missing" / "run.snap", "does not exist")):
        with pytest.raises(almc.FileError, match=f"snapshot .*{says}"):
            s.run(np.zeros(4), progress=stop, snapshot=path)
    protected = tmp_path / "kept.snap"
    protected.write_bytes(b"previous state")
    os.chmod(protected, 0o444)
    with pytest.raises(almc.FileError, match="is write-protected; it is kept"):
        s.run(np.zeros(4), progress=stop, snapshot=protected)
    assert calls == [] and protected.read_bytes() == b"previous state"
    # A writable path keeps the state of the stopped run.
    with pytest.raises(KeyboardInterrupt):
        s.run(np.zeros(4), progress=stop, snapshot=tmp_path / "run.snap")
    assert len(calls) == 1 and (tmp_path / "run.snap").stat().st_size > 0


def test_a_mixture_without_components_is_refused_by_name():
    with pytest.raises(almc.InvalidArgumentError, match=r"weights must hold at least one component"):
        almc.GaussianMixture([], np.zeros((0, 3)), 1.0)


def test_results_that_cannot_be_held_are_refused_before_the_run(monkeypatch):
    # The result arrays were allocated after the run: a run whose workspace fitted but whose samples
    # did not beside it sampled for nothing, then failed (or was killed when the pages were written).
    # They are now taken, and written, before the first step (as the command does).
    import almc._sampler as impl

    class NoRoomForLargeArrays:
        def __getattr__(self, name):
            return getattr(np, name)

        def empty(self, shape, dtype=float):
            if int(np.prod(shape)) > 1000:
                raise MemoryError
            return np.empty(shape, dtype)

    s = almc.Sampler(gaussian(), noise_std=0.5, chains=400, **FAST)
    steps = []
    monkeypatch.setattr(impl, "np", NoRoomForLargeArrays())
    with pytest.raises(almc.OutOfMemoryError, match=r"the samples \(400 chains x d = 4\) need 0 MiB of host memory"):
        s.run(np.zeros(4), progress=lambda *a: steps.append(a))
    assert steps == []
    monkeypatch.undo()
    assert s.run(np.zeros(4), progress=False).samples.shape == (400, 4)


def test_a_snapshot_never_replaces_the_prior_file(tmp_path):
    # run(y, snapshot=<the prior's JSON or ONNX file>) wrote the state over the prior.
    path = tmp_path / "prior.json"
    path.write_text('{"weights": [1.0], "means": [[0.0, 0.5, 1.0, 0.0]], "variances": [[1.0, 1.0, 1.0, 1.0]]}')
    text = path.read_text()
    s = almc.Sampler(almc.GaussianMixture.from_json(path), noise_std=0.5, **FAST)
    with pytest.raises(almc.InvalidArgumentError, match=r"snapshot .*prior.json is the prior's file .*would replace it"):
        s.run(np.zeros(4), progress=False, snapshot=str(tmp_path / "." / "prior.json"), snapshot_every=10)
    assert path.read_text() == text


def test_gmm_json_with_nan_names_the_file_and_field(tmp_path):
    # json.dump writes NaN and Infinity, which JSON has no words for: the library named neither
    # ("not valid JSON: [json.exception.parse_error.101] ... invalid literal").
    import json
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"weights": [1, 1], "means": [[0, 0], [0, float("nan")]], "stds": [1, float("inf")]}))
    with pytest.raises(almc.FileError) as e:
        almc.GaussianMixture.from_json(path)
    msg = str(e.value)
    assert msg.startswith(str(path) + ": GMM JSON: means[1][1] is NaN"), msg
    assert "json.exception" not in msg and e.value.status == 9


def test_empty_and_ragged_arrays_are_named_when_described():
    # They were accepted, then refused when the sampler was made as "d = 0 must be positive" (or
    # NumPy's "setting an array element with a sequence"), naming no argument.
    cases = [
        (lambda: almc.Gaussian(np.zeros(0), 1.0), "mean has shape [0], no values"),
        (lambda: almc.GaussianMixture(np.ones(2), np.zeros((2, 0)), 1.0), "means has shape [2, 0], no values"),
        (lambda: almc.Mask(np.zeros((0, 3))), "mask has shape [0, 3], no values"),
        (lambda: almc.Matrix(np.zeros((0, 4))), "A has shape [0, 4], no values"),
        (lambda: almc.Blur(np.zeros((0, 3)), (1, 4, 4)), "kernel has shape [0, 3], no values"),
        (lambda: almc.Gaussian([[0.0, 1.0], [2.0]], 1.0), "mean is not an array of numbers"),
    ]
    for make, message in cases:
        with pytest.raises(almc.InvalidArgumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
            make()


def test_an_empty_path_is_named():
    # from_json("") said ": cannot open: No such file or directory".
    with pytest.raises(almc.FileError, match="from_json: the path is empty"):
        almc.GaussianMixture.from_json("")


def _library_sources():
    """The library's C and C++ sources (host/ outside host/cli, cuda/, include/), adjacent string
    literals joined ("abc " "def" on two lines -> "abc def"): where its messages are written."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    texts = []
    for top in ("host", "cuda", "include"):
        for p in (root / top).rglob("*"):
            if p.suffix not in (".cpp", ".hpp", ".h", ".cu", ".cuh") or "host/cli/" in p.as_posix():
                continue
            texts.append(re.sub(r'"\s+"', "", p.read_text(errors="replace")))
    return "\n".join(texts)


def test_every_rewritten_c_phrase_is_still_in_the_librarys_messages():
    # _errors rewrites the library's messages by their text (C field names into Python ones): a
    # reworded C message would silently stop being rewritten. Every phrase _TERMS replaces, and
    # the fixed parts of every _PATTERNS entry, must still be in the library's sources.
    from almc import _errors

    src = _library_sources()
    assert len(src) > 100000, "the repository's sources were not found"
    for api, python in _errors._TERMS:
        assert api in src, f"no library message contains {api!r} (rewritten as {python!r})"
    # One example per pattern, made of its fixed parts: the pattern must match it and each part
    # must be in the sources (a new pattern needs its example here).
    examples = [("x_shape [1, 16, 16]", ["x_shape ["]),
                ("with output channels 0 to 3 (config.output_channel_begin/end)",
                 ["with output channels ", " to ", " (config.output_channel_begin/end)"])]
    assert len(examples) == len(_errors._PATTERNS)
    for (pattern, _), (example, parts) in zip(_errors._PATTERNS, examples):
        assert pattern.search(example), (pattern.pattern, example)
        for part in parts:
            assert part in example and part in src, f"no library message contains {part!r} ({pattern.pattern})"
