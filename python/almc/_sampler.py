"""almc.Sampler: the C sampler behind a Python interface (NumPy or PyTorch in, the same out)."""

import json
import math
import os
import re
import signal
import sys
import threading

import numpy as np

from . import _almc
from ._arrays import host_f32, is_torch, real_array, shape_str, torch_module
from ._errors import (CANCELLED, IO, OUT_OF_MEMORY, UNSUPPORTED, WRONG_STATE, FileError, OutOfMemoryError,
                      UnsupportedError, WrongStateError, invalid)
from ._models import Identity, Operator, Prior, _check_finite, _check_mask_shape, _resolve_shape
from ._values import boolean, choice, describe, integer, real, text

_METHODS = {"almc": 0, "ncsn": 1, "ald": 2, "xgp": 3, "langevin": 4}
_SCHEDULES = {"default": 0, "uniform-t": 1, "uniform_t": 1, "geometric-sigma": 2, "geometric_sigma": 2,
              "geometric": 2, "list": 3}
_INITS = {"gaussian": 0, "uniform": 1}
_BACKENDS = {"auto": 0, "cpu": 1, "cuda": 2}
# ALMC's likelihood along the path (almc_variant; the CLI's --variant).
_VARIANTS = {"paper": 0, "noised-lik": 1, "scaled-y": 2, "smc": 3, "geo-smc": 4, "best": 100}
_SMC_VARIANTS = (3, 4)
# int64_t fields of the C config.
_INT64_MAX = 2**63 - 1
# The library's limit on almc_context_config.n_threads.
_MAX_THREADS = 1024
# Chains per measurement, at most (as `almc sample --chains`).
_MAX_CHAINS = 1 << 24

# Options by their CLI names with underscores -> (C config field, kind).
_OPTIONS = {
    "kappa": ("kappa", float), "delta": ("delta", float), "t_start": ("t_start", float),
    "t_stop": ("t_stop", float), "warm_steps": ("warm_steps", int), "warm_step": ("warm_step", float),
    "average_last": ("average_last", int), "tweedie": ("tweedie", bool), "levels": ("n_levels", "levels"),
    "sigma_max": ("sigma_max", float), "sigma_min": ("sigma_min", float),
    "steps_per_level": ("steps_per_level", int), "eps": ("eps", float), "init": ("init", "init"),
    "init_scale": ("init_scale", float), "schedule": ("schedule", "schedule"),
    "check_every": ("check_every", int), "force": ("force_unstable", bool),
    "likelihood_weight": ("likelihood_weight", float), "use_graphs": ("use_graphs", bool),
    "variant": ("variant", "variant"), "smc_ess_threshold": ("smc_ess_threshold", float),
    "chain_range": ("chain_start", "chain_range"),
}
# The CLI's name for smc_ess_threshold (--smc-ess), accepted too.
_ALIASES = {"smc_ess": "smc_ess_threshold"}
# As on the command line, a value given is used as given: zero or a negative number does not mean
# "the default" (which is what an omitted option gets).
_POSITIVE = ("kappa", "delta", "t_start", "t_stop", "warm_step", "sigma_max", "sigma_min", "eps", "init_scale",
             "smc_ess_threshold")
_AT_LEAST = {"levels": 1, "steps_per_level": 1, "warm_steps": 0, "check_every": 1, "average_last": 0}


def _read_state(source, what="resume"):
    """The state bytes in `source`: a snapshot file (written by run(snapshot=...) or by `almc sample
    --snapshot`), or bytes (a snapshot file's content, or a state from save_state() or a snapshot
    callable). The container is the library's (almc_snapshot_read / almc_snapshot_parse)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _almc.snapshot_parse(bytes(source))[0]
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file path or the bytes of a state, got {type(source).__name__}")
    return _almc.snapshot_read(os.fspath(source))[0]


def _check_snapshot_path(path, inputs):
    """Refuses, before the run, a snapshot path the state could not be written to when the run is
    stopped (the state would be lost): a directory or other non-regular file, a write-protected
    file (the library never replaces one), a folder that does not exist or cannot be written; and
    one of the run's input files (`inputs`: (what, path) pairs), which the snapshot would replace."""
    where = f"snapshot {path}"
    for what, other in inputs:
        try:
            same = os.path.samefile(path, other)
        except OSError:
            same = False
        if same:
            raise invalid(f"{where} is the {what} {other}: writing the state there would replace it (choose another "
                          "file)")
    if os.path.lexists(path):
        if os.path.isdir(path):
            raise FileError(f"{where} is a directory; give a file path", IO)
        if not os.path.isfile(path):
            raise FileError(f"{where} exists and is not a regular file", IO)
        if not os.stat(path).st_mode & 0o222:
            raise FileError(f"{where} is write-protected; it is kept (remove it or choose another path)", IO)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileError(f"{where}: the folder {folder} does not exist", IO)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileError(f"{where}: the folder {folder} is not writable", IO)


def _result_arrays(s, shape):
    """The host arrays a run's results go to (samples, residuals, mean, std; mean and std None for a
    slice that splits a measurement), allocated and written once before the run, as the command
    does: a run whose results cannot fit beside its workspace is refused now, not after sampling."""
    n, rows = int(s.n_chains), int(s.mean_rows)

    def taken(dims):
        a = np.empty(dims, np.float32)
        a.fill(0)  # written: memory the kernel only promised is not memory
        return a

    try:
        samples, residuals = taken((n,) + tuple(shape)), taken((n,))
        mean = std = None
        if rows > 0:
            mean, std = taken((rows,) + tuple(shape)), taken((rows,) + tuple(shape))
    except MemoryError:
        need = 4 * (n * int(np.prod(shape)) + n + 2 * max(rows, 0) * int(np.prod(shape)))
        raise OutOfMemoryError(f"out of memory: the samples ({n} chains x d = {int(np.prod(shape))}) need "
                               f"{need / 2**20:.0f} MiB of host memory; use fewer chains (or chain_range slices)",
                               OUT_OF_MEMORY) from None
    return samples, residuals, mean, std


def _number(name, value, kind):
    """An option's value of its kind (bool, int or float): a value of another type is a TypeError."""
    if kind is bool:
        return int(boolean(name, value))
    if kind is int:
        return integer(name, value)
    return real(name, value)


def _chain_range(value):
    """(start, count) from (start, count) or "START:COUNT" (the CLI's --chain-range): integers (Python's
    or NumPy's, not bools or floats such as np.float32(1.5), which int() would truncate), or decimal
    digits; each within int64, as the library takes them."""
    parts = value.split(":") if isinstance(value, str) else value
    try:
        start, count = parts
        if isinstance(value, str):
            if not all(re.fullmatch(r"\s*[0-9]+\s*", p, re.ASCII) for p in parts):
                raise ValueError  # int() would also take "1_0", "+3" or non-ASCII digits
        elif any(isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)) for p in parts):
            raise TypeError
        start, count = int(start), int(count)
    except (TypeError, ValueError):
        raise invalid(f"chain_range must be (start, count) or 'START:COUNT', got {value!r}") from None
    if start < 0 or count < 1:
        raise invalid(f"chain_range: start must be >= 0 and count >= 1, got start {start}, count {count}")
    if start > _INT64_MAX or count > _INT64_MAX:
        raise invalid(f"chain_range: start {start} or count {count} is too large (at most 2**63 - 1)")
    return start, count


class Result:
    """A run's output: samples [n_meas * chains, *shape], mean and std [n_meas, *shape] (per
    measurement, over its chains; std is the sample standard deviation, with the n - 1 denominator
    (n = chains), so 0 with one chain), residuals [n_meas * chains] (||y - A x|| per chain) and info (steps, score_evals, seconds, backend,
    device, mean_residual, smc_resamples, start_step, ...). NumPy arrays, or torch tensors on y's
    device when y was one. With chain_range: the slice's chains, and the mean and std of the
    measurements it holds whole (None when it splits one)."""

    def __init__(self, samples, mean, std, residuals, info):
        self.samples, self.mean, self.std, self.residuals, self.info = samples, mean, std, residuals, info

    def __repr__(self):
        return (f"almc.Result(samples {list(self.samples.shape)}, {self.info['steps']} steps, "
                f"{self.info['seconds']:.3g} s on {self.info['backend']})")


class _Progress:
    """A tqdm bar when tqdm is importable, else a plain line on stderr (rewritten in place on a
    terminal; otherwise one line per tenth of the run)."""

    def __init__(self):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.bar = None
        self.tqdm = tqdm
        self.last = 0
        self.tty = tqdm is None and sys.stderr.isatty()
        self.next_line = 0

    def __call__(self, step, total, steps_per_second, elapsed, residual):
        res = "" if math.isnan(residual) else f", residual {residual:.4g}"
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=int(total), unit="step", desc="almc", leave=False)
            self.bar.update(int(step) - self.last)
            if res:
                self.bar.set_postfix_str(res[2:], refresh=False)
        elif self.tty or step >= self.next_line or step == total:
            line = f"almc: step {step}/{total}, {steps_per_second:.4g} steps/s, {elapsed:.1f} s{res}"
            sys.stderr.write(f"\r{line}   " if self.tty else line + "\n")
            sys.stderr.flush()
            self.next_line = step + max(1, total // 10)
        self.last = int(step)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.tty and self.last:
            sys.stderr.write("\n")


class _CtrlC:
    """While a run goes on in the main thread under Python's own SIGINT handler: a first Ctrl-C asks
    the run to stop at its next progress check (within about 0.2 s plus one step), so that no Python
    callback is cut short and the stopped run's state can be saved; a second one raises
    KeyboardInterrupt at once, wherever Python code runs. Other handlers are left alone."""

    def __init__(self):
        self.pressed = False
        self.previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


class Sampler:
    """Posterior samples of p(x | y) ∝ p(x) exp(-||y - A x||² / 2 noise_std²).

    prior: Gaussian, GaussianMixture, OnnxScore or ScoreFunction; operator: Identity() (default),
    Mask, Downsample, Blur, Matrix or LinearOperator; method: almc | ncsn | ald | xgp | langevin;
    chains: per measurement, 1 to 2^24; backend: auto | cpu | cuda; threads: CPU threads (0: OpenMP's default).
    options (the command's names with underscores): kappa, delta, t_start, t_stop, warm_steps,
    warm_step, average_last, tweedie, levels (a count, or a decreasing list of OU times), sigma_max,
    sigma_min, steps_per_level, eps, init ("gaussian", "uniform" or an initial state
    [n_meas * chains, *shape]), init_scale, schedule, check_every, force, likelihood_weight, use_graphs,
    variant (ALMC's likelihood along the path: paper, noised-lik, scaled-y, smc, geo-smc or best),
    smc_ess_threshold (smc / geo-smc: resample when the effective sample size falls below this
    fraction of the chains; also spelt smc_ess; refused with another variant) and chain_range ((start, count) or "START:COUNT": run
    only those of the n_meas * chains chains, bit for bit as in the whole run; samples and residuals
    then hold them, mean and std the measurements they hold whole, None when they split one).
    As on the command line, zero or a negative value is
    refused rather than read as the default: omit an option for its default.
    """

    def __init__(self, prior, operator=None, noise_std=None, method="almc", chains=1, seed=0, backend="auto",
                 threads=0, **options):
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be an almc prior (Gaussian, GaussianMixture, OnnxScore, ScoreFunction), "
                            f"got {type(prior).__name__}")
        operator = Identity() if operator is None else operator
        if not isinstance(operator, Operator):
            raise TypeError(f"operator must be an almc operator (Identity, Mask, Downsample, Blur, Matrix, "
                            f"LinearOperator), got {type(operator).__name__}")
        self.prior, self.operator = prior, operator
        backend_id = choice("backend", backend, _BACKENDS)
        chains = integer("chains", chains)
        if chains < 1:
            raise invalid(f"chains = {chains} must be a positive integer")
        if chains > _MAX_CHAINS:
            raise invalid(f"chains = {chains} is too large (at most 2^24 = {_MAX_CHAINS} per measurement)")
        if not 0 <= integer("seed", seed, maximum=None) < 2**64:
            raise invalid(f"seed = {seed!r} must be an integer from 0 to 2**64 - 1")
        if not 0 <= integer("threads", threads, maximum=None) <= _MAX_THREADS:
            raise invalid(f"threads = {threads!r} must be an integer from 0 (OpenMP's default) to {_MAX_THREADS}")
        self.noise_std = None if noise_std is None else _number("noise_std", noise_std, float)
        self.chains = int(chains)
        self._state = None
        self._y_shape = None
        cfg = _almc.Config()
        cfg.method = choice("method", method, _METHODS)
        cfg.chains_per_meas = self.chains
        cfg.seed = int(seed)
        spelt = {}  # option -> the name the caller gave it (an alias), for messages
        for alias, name in _ALIASES.items():
            if alias in options:
                if name in options:
                    raise TypeError(f"Sampler() got both {name} and its alias {alias}")
                options[name] = options.pop(alias)
                spelt[name] = alias
        self.variant = "paper"
        self.chain_range = None
        self._pending_state = None
        for name, value in options.items():
            if name not in _OPTIONS:
                raise TypeError(f"Sampler() got an unexpected option '{name}' (options: {', '.join(sorted(_OPTIONS))})")
            field, kind = _OPTIONS[name]
            label = f"option {name}"
            if name in _POSITIVE and _number(label, value, kind) <= 0:
                raise invalid(f"option {name} must be positive, got {value} (omit it for the default)")
            count = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            if name in _AT_LEAST and (name != "levels" or count):
                if _number(label, value, int) < _AT_LEAST[name]:
                    raise invalid(f"option {name} must be at least {_AT_LEAST[name]}, got {value} "
                                  "(omit it for the default)")
            if kind == "variant":
                key = text(label, value).lower().replace("_", "-")
                if key not in _VARIANTS:
                    raise invalid(f"unknown variant '{value}' (use {', '.join(_VARIANTS)})")
                cfg.variant = _VARIANTS[key]
                self.variant = key
            elif name == "smc_ess_threshold":
                v = _number(label, value, float)
                if v > 1:
                    raise invalid(f"option smc_ess_threshold must be in (0, 1] (a fraction of the chains), got {value}")
                cfg.smc_ess_threshold = v
            elif kind == "chain_range":
                self.chain_range = _chain_range(value)
                cfg.chain_start, cfg.chain_count = self.chain_range
            elif kind == "levels":
                if count:
                    cfg.n_levels = int(value)
                elif isinstance(value, (list, tuple, np.ndarray)) or hasattr(value, "__array__") or hasattr(
                        value, "__dlpack__"):
                    levels = host_f32("levels", value, ndim=(1,))
                    if levels.size == 0:
                        raise invalid("levels must be a count or a non-empty, decreasing list of OU times, got []")
                    _check_finite("levels", levels)
                    cfg.levels = [float(v) for v in levels.astype(np.float64)]
                    cfg.schedule = _SCHEDULES["list"]
                else:
                    raise TypeError(f"option levels must be a count (an integer) or a list of OU times, got "
                                    f"{describe(value)}")
            elif kind == "schedule":
                cfg.schedule = choice("schedule", value, _SCHEDULES, ("default", "uniform-t", "geometric-sigma", "list"),
                                      label=label)
            elif kind == "init":
                if isinstance(value, str):
                    cfg.init = choice("init", value, _INITS, ("gaussian", "uniform", "an array"), label=label)
                else:
                    if value is None:
                        raise TypeError("option init must be 'gaussian', 'uniform' or an array, got None")
                    value = real_array("init", value)
                    self._state = host_f32("init", value).reshape(value.shape)  # its own shape, 0-d too
                    _check_finite("init", self._state)
                    cfg.init = 2
            else:
                setattr(cfg, field, _number(label, value, kind))
        if cfg.variant != 0 and cfg.method != 0:
            raise invalid(f"variant {self.variant} applies to method almc only")
        # A step-size or level option the method (with its schedule) never reads would run as if
        # it were not given: refused as `almc sample` refuses it (the library's table). A list of
        # levels is the schedule itself.
        listed = cfg.schedule == _SCHEDULES["list"]
        for name in options:
            field = _OPTIONS[name][0]
            if name == "levels" and listed:
                continue
            if _almc.method_reads_field(cfg.method, cfg.schedule, field) == 0:
                how = (" with a list of levels" if listed else
                       f" with schedule {options['schedule']}" if "schedule" in options and cfg.schedule != 0 else "")
                raise invalid(f"option {name} is not read by method {method.lower()}{how}: the run would be the "
                              "same without it")
        # The ESS threshold is read by the SMC variants only (as `almc sample` refuses --smc-ess
        # without --variant smc or geo-smc).
        if "smc_ess_threshold" in options and cfg.variant not in _SMC_VARIANTS:
            now = f"method {method.lower()}" if cfg.method != 0 else f"variant {self.variant}"
            raise invalid(f"option {spelt.get('smc_ess_threshold', 'smc_ess_threshold')} applies to variant smc or "
                          f"geo-smc only (here {now}): the run would be the same without it")
        self.method = method.lower()
        self._cfg = cfg
        self._ctx = _almc.make_context(backend_id, 0, int(threads))
        self.backend = "cuda" if _almc.context_backend(self._ctx) == 2 else "cpu"
        self.device = _almc.context_device_name(self._ctx)
        self._built = None  # (d, shape, score, op) once d is known
        self._sampler = None
        self._sampler_key = None
        d = prior.dim if prior.dim is not None else operator.dim
        if prior.dim is not None and operator.dim is not None and prior.dim != operator.dim:
            raise invalid(f"the prior has d = {prior.dim} values per sample but the operator {operator.name} "
                          f"takes {operator.dim}")
        _check_mask_shape(prior, operator)
        if d is not None or hasattr(prior, "path"):
            self._build(d)
            # Create the sampler now (for one measurement, or the Matrix's count), so that bad
            # options (an unstable step, a refused combination) are reported here rather than at
            # run(); not with a chain range, which may lie beyond one measurement's chains.
            if self.noise_std is not None and (self.chain_range is None or operator.n_mats > 1):
                self._sampler_for(operator.n_mats, with_operator=True, checkpoint_every=0)

    # -- building the library objects

    def _build(self, d):
        if self._built is not None and (d is None or self._built[0] == d):
            return
        hint = None if d is None else _resolve_shape(self.prior, self.operator, d, self._y_shape)
        score = self.prior._create(self._ctx, d, hint)
        d = score.dim
        shape = _resolve_shape(self.prior, self.operator, d, self._y_shape)
        op = self.operator._create(self._ctx, d, shape)
        if op.dims[1] != d:
            raise invalid(f"the operator {self.operator.name} takes {op.dims[1]} values per sample but the prior "
                          f"has d = {d}")
        self._built = (d, shape, score, op)
        self._sampler = None

    def _sampler_for(self, n_meas, with_operator, checkpoint_every):
        key = (n_meas, with_operator, checkpoint_every)
        if self._sampler is None or self._sampler_key != key:
            d, shape, score, op = self._built
            cfg = self._cfg
            cfg.n_meas = n_meas
            cfg.checkpoint_every = checkpoint_every
            if with_operator:
                if self.noise_std is None:
                    raise invalid("noise_std is required to sample a posterior (give Sampler(..., noise_std=...))")
                cfg.noise_std = self.noise_std
            self._sampler = None
            self._sampler = _almc.make_sampler(score, op if with_operator else None, cfg)
            self._sampler_key = key
        return self._sampler

    def _measurements(self, y):
        """(n_meas, d) for y [m], [n_meas, m], the operator's image shape y_shape or [n_meas, *y_shape];
        refuses other shapes."""
        op = self.operator
        if self._built is None and self.prior.dim is None and op.dim is None:
            if not isinstance(op, Identity):
                raise invalid("cannot tell the signal size d: give ScoreFunction(fn, shape=...) or LinearOperator(..., d=...)")
            if y.ndim == 0:
                raise invalid("y has shape []; expected [m] (one measurement) or [n_meas, m]")
            d = y.size if y.ndim == 1 else int(np.prod(y.shape[1:]))
            self._y_shape = tuple(y.shape) if y.ndim == 1 else tuple(y.shape[1:])
            self._build(d)
        d = self._built[0]
        m = op.rows(d)
        yshape = tuple(op.y_shape(d, self._built[1]))
        # By shape, not by count: y [2, 2] for m = 4 (or a transposed [m, 1], or [2, 2, 2] read as
        # two measurements) used to be taken as long as its size was a multiple of m.
        forms = [(m,)] + op.y_shapes(d, self._built[1])
        got = tuple(int(s) for s in y.shape)
        if got in forms:
            n_meas = 1
        elif len(got) >= 2 and got[0] > 0 and got[1:] in forms:
            n_meas = got[0]
        else:
            image = yshape != (m,)
            listed = [shape_str((m,)), f"[n_meas, {m}]"] + (
                [shape_str(yshape), "[n_meas, " + ", ".join(str(v) for v in yshape) + "]"] if image else [])
            raise invalid(f"y has shape {shape_str(got)}; the operator {op.name} expects {m} values per measurement: "
                          f"y of shape {', '.join(listed[:-1])} or {listed[-1]}")
        if op.n_mats > 1 and n_meas != op.n_mats:
            raise invalid(f"y holds {n_meas} measurement(s) but the Matrix has one per measurement for "
                          f"{op.n_mats}: expected y of shape [{op.n_mats}, {m}]")
        return n_meas, d

    # -- running

    def run(self, y=None, progress=True, snapshot=None, snapshot_every=0, resume=None):
        """Sample the posterior given y ([m], [n_meas, m] or image-shaped; None samples the prior).
        Returns a Result. Ctrl-C stops the run (KeyboardInterrupt); the sampler stays usable.

        progress: True (a tqdm bar, else a plain line on stderr), False (nothing), or a callable
        progress(step, total, steps_per_second, elapsed_seconds, mean_residual) called at every
        check; an exception it raises stops the run, as Ctrl-C does, and is re-raised here.
        snapshot: a file that receives the run's resumable state every snapshot_every steps
        (written atomically) and when Ctrl-C or the progress callable stops the run; or a callable
        snapshot(state: bytes, step: int) called likewise. resume: a snapshot file or state bytes
        (from a snapshot callable or save_state()) of this run, which then continues where that one
        stopped: its samples are bit for bit those of an uninterrupted run. A state of another run
        (seed, prior, operator, y, options) is refused, naming what differs."""
        torch_device = y.device if is_torch(y) else None
        every = _number("snapshot_every", snapshot_every, int)
        if every < 0:
            raise invalid(f"snapshot_every must be >= 0 (0: only when the run is interrupted), got {snapshot_every}")
        if snapshot is not None and not (callable(snapshot) or isinstance(snapshot, (str, os.PathLike))):
            raise TypeError(f"snapshot must be a file path or a callable (state, step), got {type(snapshot).__name__}")
        if snapshot is not None and not callable(snapshot):
            _check_snapshot_path(os.fspath(snapshot), self._input_files())
        if every > 0 and snapshot is None:
            raise invalid("snapshot_every needs snapshot: a file path (or a callable taking (state, step)) that "
                          "keeps the state")
        if progress is not None and not isinstance(progress, (bool, np.bool_)) and not callable(progress):
            raise TypeError(f"progress must be True, False or a callable, got {describe(progress)}")
        if snapshot is not None or resume is not None:
            self._check_resumable()
        # A state given to load_state() stays pending until a run starts from it: a run refused
        # before it starts (a wrong y, say) must not leave the next one silently starting over.
        state = self._pending_state if resume is None else _read_state(resume)
        if y is not None:
            # host_f32's float32 copy is at least 1-D: y's own shape is kept for the check (a 0-d y
            # was reported as shape [1]).
            y = real_array("y", y)
            y = host_f32("y", y).reshape(y.shape)
            n_meas, d = self._measurements(y)
        else:
            if self._built is None:
                if self.prior.dim is None and self.operator.dim is None:
                    raise invalid("cannot tell the signal size d without y: give ScoreFunction(fn, shape=...)")
                self._build(self.prior.dim or self.operator.dim)
            n_meas, d = 1, self._built[0]
        s = self._sampler_for(n_meas, with_operator=y is not None, checkpoint_every=every)
        if y is not None:
            s.set_measurement(y.ravel())
        if self._state is not None:
            # By shape, not by count: init [25, 8] for 50 chains of d = 4 used to be taken (its
            # rows then mixed values of two chains).
            n, shape = int(s.n_chains), tuple(self._built[1])
            # One chain's state may also come without its row of 1.
            if tuple(self._state.shape) not in ((n,) + shape, (n, d)) + ((shape, (d,)) if n == 1 else ()):
                rows = "chain_range's count" if self.chain_range is not None else "n_meas * chains"
                raise invalid(f"init has shape {shape_str(self._state.shape)}; expected {shape_str((n,) + shape)} "
                              f"({rows}, *shape)" + (f" or {shape_str((n, d))}" if shape != (d,) else ""))
            s.set_state(self._state.ravel())
        if state is not None:
            s.load_state(state)
            self._pending_state = None  # taken (an explicit resume replaces it too)
        samples, residuals, mean, std = _result_arrays(s, self._built[1])
        bar = _Progress() if progress is True or (progress and not callable(progress)) else None
        user = progress if callable(progress) else None
        seen = {"total": -1}
        ctrl_c = _CtrlC()

        def report(step, total, *rest):
            if ctrl_c.pressed:
                raise KeyboardInterrupt
            seen["total"] = int(total)
            if user is not None:
                user(step, total, *rest)
            elif bar is not None:
                bar(step, total, *rest)

        keep = self._snapshot_writer(snapshot, s)
        try:
            with ctrl_c:
                s.run(report, keep)
            if ctrl_c.pressed:  # after the last check: the run finished, but Ctrl-C means stop
                raise KeyboardInterrupt
        except BaseException as e:
            # Stopped by Ctrl-C or the progress callable: the state is resumable; keep it.
            if keep is not None and s.last_status == CANCELLED:
                where = self._keep_interrupted(s, keep, snapshot, seen)
                if hasattr(e, "add_note"):
                    e.add_note(where)
            raise
        finally:
            if bar is not None:
                bar.close()
        s.samples(samples)
        s.residuals(residuals)
        if mean is not None:
            s.mean_std(mean, std)
        info = s.info()
        info["backend"] = self.backend
        info["device"] = self.device
        if self.chain_range is not None:
            info["chain_range"] = self.chain_range
        if torch_device is not None:
            torch = torch_module()
            samples, mean, std, residuals = (None if a is None else torch.from_numpy(a).to(torch_device)
                                             for a in (samples, mean, std, residuals))
        return Result(samples, mean, std, residuals, info)

    def _snapshot_writer(self, snapshot, s):
        """The callable that keeps a state: the user's, or one writing the snapshot file."""
        if snapshot is None or callable(snapshot):
            return snapshot
        run = {"written_by": "almc Python package " + _almc.version(), "method": self.method, "variant": self.variant,
               "seed": int(self._cfg.seed), "n_meas": int(s.n_meas), "chains": self.chains, "d": int(s.d),
               "m": int(s.m), "backend": self.backend, "chain_range": self.chain_range}

        path, text = os.fspath(snapshot), json.dumps(run)

        def write(state, step):
            _almc.snapshot_write(path, state, text)  # atomic; the step is in the state

        return write

    def _keep_interrupted(self, s, keep, snapshot, seen):
        state, step = s.save_state()
        keep(state, step)
        if callable(snapshot):
            return f"almc: the run stopped at step {step} of {seen['total']}; its state went to the snapshot callable"
        return (f"almc: the run stopped at step {step} of {seen['total']}; the state is saved in {os.fspath(snapshot)}: "
                f"continue with run(y, resume={os.fspath(snapshot)!r})")

    def _input_files(self):
        """(what, path) of the files the prior was described with (the snapshot must not replace them)."""
        files = []
        for attr in ("path", "_path"):
            p = getattr(self.prior, attr, None)
            if isinstance(p, str):
                files.append(("prior's file", p))
        return files

    def save_state(self):
        """The resumable state (bytes) where the last run stopped, when Ctrl-C or a progress callable
        stopped it (almc_sampler_save_state); run(y, resume=state) continues it. Refused
        (WrongStateError) after a run that finished or failed, or before any run."""
        # The library's refusal speaks of its checkpoint callback, which Python users meet as
        # run(snapshot=..., snapshot_every=N): said in those terms, here and before any run.
        what = ("no stopped run to save: save_state() returns the state of a run stopped by Ctrl-C or a progress "
                "callable; for states during a run, pass run(y, snapshot=path or callable, snapshot_every=N)")
        if self._sampler is None:
            raise WrongStateError(what, WRONG_STATE)
        try:
            return self._sampler.save_state()[0]
        except WrongStateError as e:
            if not e.message.startswith("no stopped run"):
                raise
            raise WrongStateError(what, WRONG_STATE) from None

    def load_state(self, state):
        """Make the next run() continue the run whose state this is (almc_sampler_load_state): a
        snapshot file or state bytes, as run(y, resume=state) takes them; checked, and refused when
        it is another run's, when that run starts. It stays pending until a run starts from it (a
        run() refused before that, for a wrong y say, keeps it for the next)."""
        if not isinstance(state, (bytes, bytearray, memoryview, str, os.PathLike)):
            raise TypeError(f"state must be a file path or the bytes of a state, got {type(state).__name__}")
        self._check_resumable()
        self._pending_state = _read_state(state, "state")

    def _check_resumable(self):
        """Refuses snapshots and resume where the library has no resumable state (variant smc)."""
        if self._cfg.method == 0 and self._cfg.variant in _SMC_VARIANTS:
            raise UnsupportedError(f"variant {self.variant} carries per-chain importance weights that a resumable state "
                                   "does not hold: snapshots and resume are not available with it", UNSUPPORTED)

    def __repr__(self):
        return (f"almc.Sampler({type(self.prior).__name__}, {self.operator.name}, chains={self.chains}, "
                f"backend={self.backend})")
