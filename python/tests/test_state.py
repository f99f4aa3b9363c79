"""Resumable runs: snapshot files and callables, save_state(), resume (CPU). A resumed run must give
the samples of an uninterrupted run with the same seed bit for bit; a state of another run is
refused with the library's message."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

import almc

# ~2000 ALMC steps (a warm start included) on a few dimensions, checked every 10 steps.
CFG = dict(noise_std=0.5, chains=16, seed=3, kappa=4, delta=2e-3, t_start=1.0, t_stop=0.01, check_every=10)


def problem(seed=CFG["seed"], mean=0.0, **over):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 6)) / 2
    prior = almc.GaussianMixture([0.4, 0.6], [np.full(6, -1.0 + mean), np.full(6, 1.0 + mean)], [0.3, 0.5])
    return almc.Sampler(prior, almc.Matrix(A), **dict(CFG, seed=seed, **over)), rng.normal(size=(2, 4))


def reference():
    s, y = problem()
    return s.run(y, progress=False)


class StopAt:
    """A progress callable that stops the run (as Ctrl-C does) once `step` is reached."""

    def __init__(self, step):
        self.step, self.stopped_at, self.total = step, None, None

    def __call__(self, step, total, steps_per_second, elapsed, residual):
        self.total = total
        if step >= self.step:
            self.stopped_at = step
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_the_snapshot_file_bit_for_bit(tmp_path):
    ref = reference()
    total = ref.info["steps"]
    path = tmp_path / "run.snap"
    s, y = problem()
    stop = StopAt(total // 3)
    with pytest.raises(KeyboardInterrupt) as e:
        s.run(y, progress=stop, snapshot=path)
    assert 0 < stop.stopped_at < total
    notes = getattr(e.value, "__notes__", None)
    if notes is not None:  # Python >= 3.11
        assert str(path) in notes[0] and "resume=" in notes[0]
    # The file is the CLI's container: a format line, a JSON record, then the state.
    head, record = path.read_bytes().split(b"\n")[:2]
    record = json.loads(record)
    assert head == b"almc-snapshot-1" and record["step"] == stop.stopped_at and record["total"] == total
    # A fresh sampler (as after a restart) continues the run.
    s2, _ = problem()
    res = s2.run(y, progress=False, resume=path)
    assert res.info["start_step"] == stop.stopped_at
    np.testing.assert_array_equal(res.samples, ref.samples)
    np.testing.assert_array_equal(res.mean, ref.mean)
    # The sampler that was interrupted can resume too, and then runs from scratch again.
    np.testing.assert_array_equal(s.run(y, progress=False, resume=path).samples, ref.samples)
    again = s.run(y, progress=False)
    assert again.info["start_step"] == 0
    np.testing.assert_array_equal(again.samples, ref.samples)


def test_periodic_snapshots_do_not_change_the_run_and_each_resumes(tmp_path):
    ref = reference()
    total = ref.info["steps"]
    kept = []
    s, y = problem()
    every = total // 4
    res = s.run(y, progress=False, snapshot=lambda state, step: kept.append((bytes(state), step)), snapshot_every=every)
    np.testing.assert_array_equal(res.samples, ref.samples)
    assert [step for _, step in kept] == list(range(every, total + 1, every))
    for state, step in kept[:2]:
        s2, _ = problem()
        out = s2.run(y, progress=False, resume=state)
        assert out.info["start_step"] == step
        np.testing.assert_array_equal(out.samples, ref.samples)
    # A snapshot file written every N steps holds the last checkpoint when the process dies: a
    # score that fails stands for the crash (the failed run's own state is not resumable).
    path = tmp_path / "every.snap"
    calls = {"n": 0}

    def crashing(x, t):
        calls["n"] += 1
        if calls["n"] == 700:
            raise RuntimeError("the machine went away")
        return x * 0

    s3 = almc.Sampler(almc.ScoreFunction(crashing), almc.Identity(), **CFG)
    with pytest.raises(RuntimeError, match="went away"):
        s3.run(np.zeros(5), progress=False, snapshot=path, snapshot_every=100)
    step = json.loads(path.read_bytes().split(b"\n")[1])["step"]
    assert step > 0 and step % 100 == 0
    calls["n"] = -10**9
    ref3 = almc.Sampler(almc.ScoreFunction(lambda x, t: x * 0), almc.Identity(), **CFG).run(np.zeros(5), progress=False)
    out3 = s3.run(np.zeros(5), progress=False, resume=path)
    assert out3.info["start_step"] == step
    np.testing.assert_array_equal(out3.samples, ref3.samples)


def test_save_state_after_an_interrupt_and_resume_from_bytes():
    ref = reference()
    s, y = problem()
    with pytest.raises(almc.WrongStateError):
        s.save_state()  # no run yet
    with pytest.raises(KeyboardInterrupt):
        s.run(y, progress=StopAt(ref.info["steps"] // 2))
    state = s.save_state()
    assert isinstance(state, bytes) and len(state) > 16 * 2 * 6 * 4
    np.testing.assert_array_equal(s.run(y, progress=False, resume=state).samples, ref.samples)
    with pytest.raises(almc.WrongStateError) as e:
        s.save_state()  # a finished run's state is its output
    assert e.value.status == 13
    # load_state (almc_sampler_load_state): the next run continues the state, the one after starts over.
    s.load_state(state)
    res = s.run(y, progress=False)
    assert ref.info["steps"] // 2 <= res.info["start_step"] < ref.info["steps"]
    np.testing.assert_array_equal(res.samples, ref.samples)
    assert s.run(y, progress=False).info["start_step"] == 0
    other, _ = problem(seed=9)
    other.load_state(state)
    with pytest.raises(almc.InvalidArgumentError, match="seed 3, this sampler's is 9"):
        other.run(y, progress=False)
    with pytest.raises(TypeError, match="state must be a file path or the bytes"):
        other.load_state(12)


def test_states_of_other_runs_are_refused_with_the_library_message(tmp_path):
    s, y = problem()
    with pytest.raises(KeyboardInterrupt):
        s.run(y, progress=StopAt(500))
    state = s.save_state()
    other_seed, _ = problem(seed=4)
    with pytest.raises(almc.InvalidArgumentError, match="another run: seed 3, this sampler's is 4"):
        other_seed.run(y, progress=False, resume=state)
    other_prior, _ = problem(mean=0.5)
    with pytest.raises(almc.InvalidArgumentError, match="another run: its prior differs"):
        other_prior.run(y, progress=False, resume=state)
    other_options, _ = problem(kappa=5)
    with pytest.raises(almc.InvalidArgumentError, match="its method or schedule differs"):
        other_options.run(y, progress=False, resume=state)
    same, _ = problem()
    with pytest.raises(almc.InvalidArgumentError, match="measurement differs"):
        same.run(y + 1, progress=False, resume=state)
    with pytest.raises(almc.FileError, match="not an almc snapshot .* nor a sampler state"):
        same.run(y, progress=False, resume=b"\0" * 64)
    with pytest.raises(almc.FileError, match="missing.snap"):
        same.run(y, progress=False, resume=tmp_path / "missing.snap")
    cut = tmp_path / "cut.snap"
    cut.write_bytes(b"almc-snapshot-1\n" + json.dumps({"state_bytes": len(state) + 1}).encode() + b"\n" + state)
    with pytest.raises(almc.FileError, match="truncated or padded"):
        same.run(y, progress=False, resume=cut)
    # After the refusals the sampler still runs.
    np.testing.assert_array_equal(same.run(y, progress=False).samples, reference().samples)


def test_snapshot_options_are_checked():
    s, y = problem()
    with pytest.raises(almc.InvalidArgumentError, match="snapshot_every needs snapshot"):
        s.run(y, progress=False, snapshot_every=10)
    with pytest.raises(almc.InvalidArgumentError, match="snapshot_every must be >= 0"):
        s.run(y, progress=False, snapshot=lambda *a: None, snapshot_every=-1)
    with pytest.raises(TypeError, match="snapshot must be a file path or a callable"):
        s.run(y, progress=False, snapshot=3)
    with pytest.raises(TypeError, match="resume must be a file path or the bytes"):
        s.run(y, progress=False, resume=3)


def test_snapshot_and_resume_are_refused_with_smc(tmp_path):
    kw = dict(noise_std=0.5, chains=16, seed=1, kappa=2, delta=2e-3, t_start=1.0, t_stop=0.01)
    for variant in ("smc", "geo-smc"):
        s = almc.Sampler(almc.Gaussian(np.zeros(3), 1.0), variant=variant, **kw)
        for args in (dict(snapshot=tmp_path / "s.snap", snapshot_every=10), dict(snapshot=tmp_path / "s.snap"),
                     dict(resume=b"state")):
            with pytest.raises(almc.UnsupportedError, match="snapshots and resume are not available"):
                s.run(np.zeros(3), progress=False, **args)
        with pytest.raises(almc.UnsupportedError, match="snapshots and resume are not available"):
            s.load_state(b"state")
        assert s.run(np.zeros(3), progress=False).info["smc_resamples"] >= 1


@pytest.fixture
def sigint_raises():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_saves_the_snapshot(tmp_path, sigint_raises):
    # Long enough that the signal lands mid-run; wherever it lands, the resumed run must match.
    cfg = dict(noise_std=0.5, chains=16, seed=5, kappa=40, delta=1e-3, t_start=5.0, t_stop=0.01, check_every=10)
    prior = almc.Gaussian(np.zeros(32), 1.0)
    t0 = time.monotonic()
    ref = almc.Sampler(prior, **cfg).run(np.ones(32), progress=False)
    full = time.monotonic() - t0
    path = tmp_path / "ctrl_c.snap"
    s = almc.Sampler(prior, **cfg)
    timer = threading.Timer(full / 4, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        s.run(np.ones(32), progress=False, snapshot=path)
    timer.join()
    step = json.loads(path.read_bytes().split(b"\n")[1])["step"]
    assert 0 < step < ref.info["steps"]
    res = almc.Sampler(prior, **cfg).run(np.ones(32), progress=False, resume=str(path))
    assert res.info["start_step"] == step
    np.testing.assert_array_equal(res.samples, ref.samples)


def test_the_package_resumes_a_snapshot_of_the_command(tmp_path):
    import subprocess

    from conftest import cli_path

    cli = cli_path()
    if cli is None:
        pytest.skip("the almc command is not built (set ALMC_CLI or build with scripts/build.sh)")
    prior = tmp_path / "gmm.json"
    prior.write_text(json.dumps({"weights": [0.5, 0.5], "means": [[-1.0, 0.0], [1.0, 0.5]], "variances": [0.4, 0.6]}))
    y = np.array([0.2, -0.3], np.float32)
    np.save(tmp_path / "y.npy", y)
    snap, out = tmp_path / "cli.snap", tmp_path / "cli.npy"
    subprocess.run([cli, "sample", "--prior", str(prior), "--y", str(tmp_path / "y.npy"), "--noise-std", "0.5",
                    "--chains", "8", "--seed", "2", "--kappa", "2", "--delta", "2e-3", "--t-start", "1", "--t-stop",
                    "0.01", "--backend", "cpu", "--snapshot", str(snap), "--snapshot-every", "300", "--out", str(out),
                    "--quiet"], check=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    s = almc.Sampler(almc.GaussianMixture.from_json(prior), noise_std=0.5, chains=8, seed=2, kappa=2, delta=2e-3,
                     t_start=1.0, t_stop=0.01, backend="cpu")
    res = s.run(y, progress=False, resume=snap)
    assert res.info["start_step"] > 0 and res.info["start_step"] % 300 == 0
    np.testing.assert_array_equal(res.samples, np.load(out).reshape(res.samples.shape))


def test_ctrl_c_in_a_python_score_keeps_a_resumable_state(tmp_path, sigint_raises):
    # Most of the run's time is spent inside the Python score: the first Ctrl-C must not cut it
    # short (a run failed in a callback has no resumable state) but stop at the next check.
    def slow_score(x, t):
        time.sleep(0.002)
        return -x

    cfg = dict(noise_std=0.5, chains=4, seed=8, kappa=1, delta=2e-3, t_start=1.0, t_stop=0.01, check_every=5)
    ref = almc.Sampler(almc.ScoreFunction(lambda x, t: -x), **cfg).run(np.ones(3), progress=False)
    path = tmp_path / "score.snap"
    s = almc.Sampler(almc.ScoreFunction(slow_score), **cfg)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        s.run(np.ones(3), progress=False, snapshot=path)
    timer.join()
    assert path.exists(), "Ctrl-C inside the score callback left no snapshot"
    res = almc.Sampler(almc.ScoreFunction(lambda x, t: -x), **cfg).run(np.ones(3), progress=False, resume=path)
    assert 0 < res.info["start_step"] < ref.info["steps"]
    np.testing.assert_array_equal(res.samples, ref.samples)


def test_a_second_ctrl_c_interrupts_a_callback_that_hangs(sigint_raises):
    def hangs(x, t):
        end = time.monotonic() + 30
        while time.monotonic() < end:
            time.sleep(0.01)
        return -x

    def press_twice():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    s = almc.Sampler(almc.ScoreFunction(hangs), noise_std=0.5, chains=2, kappa=1, delta=2e-3, t_start=1.0, t_stop=0.01)
    timer = threading.Timer(0.3, press_twice)
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        s.run(np.ones(3), progress=False)
    timer.join()
    assert time.monotonic() - t0 < 10
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the run
