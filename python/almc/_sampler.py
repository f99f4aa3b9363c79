"""almc.Sampler: the C sampler behind a Python interface (NumPy or PyTorch in, the same out)."""

import math
import sys

import numpy as np

from . import _almc
from ._arrays import host_f32, is_torch, shape_str, torch_module
from ._errors import invalid
from ._models import Identity, Operator, Prior, _resolve_shape

_METHODS = {"almc": 0, "ncsn": 1, "ald": 2, "xgp": 3, "langevin": 4}
_SCHEDULES = {"default": 0, "uniform-t": 1, "uniform_t": 1, "geometric-sigma": 2, "geometric_sigma": 2,
              "geometric": 2, "list": 3}
_INITS = {"gaussian": 0, "uniform": 1}
_BACKENDS = {"auto": 0, "cpu": 1, "cuda": 2}

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
}


def _number(name, value, kind):
    if isinstance(value, bool) and kind is not bool:
        raise TypeError(f"option {name} must be a number, got a bool")
    if kind is bool:
        if not isinstance(value, (bool, int, np.bool_, np.integer)):
            raise TypeError(f"option {name} must be a bool, got {type(value).__name__}")
        return int(bool(value))
    if kind is int:
        if not isinstance(value, (int, np.integer)):
            raise TypeError(f"option {name} must be an integer, got {type(value).__name__}")
        return int(value)
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"option {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise invalid(f"option {name} must be finite, got {value}")
    return value


class Result:
    """A run's output: samples [n_meas * chains, *shape], mean and std [n_meas, *shape], residuals
    [n_meas * chains] (||y - A x|| per chain) and info (steps, score_evals, seconds, backend,
    device, mean_residual, ...). NumPy arrays, or torch tensors on y's device when y was one."""

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


class Sampler:
    """Posterior samples of p(x | y) ∝ p(x) exp(-||y - A x||² / 2 noise_std²).

    prior: Gaussian, GaussianMixture, OnnxScore or ScoreFunction; operator: Identity() (default),
    Mask, Downsample, Blur, Matrix or LinearOperator; method: almc | ncsn | ald | xgp | langevin;
    chains: per measurement; backend: auto | cpu | cuda; threads: CPU threads (0: OpenMP's default).
    options (the command's names with underscores): kappa, delta, t_start, t_stop, warm_steps,
    warm_step, average_last, tweedie, levels (a count, or a decreasing list of OU times), sigma_max,
    sigma_min, steps_per_level, eps, init ("gaussian", "uniform" or an initial state
    [n_meas * chains, *shape]), init_scale, schedule, check_every, force, likelihood_weight, use_graphs.
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
        if str(backend).lower() not in _BACKENDS:
            raise invalid(f"unknown backend '{backend}' (use auto, cpu or cuda)")
        if not isinstance(chains, (int, np.integer)) or isinstance(chains, bool) or chains < 1:
            raise invalid(f"chains = {chains!r} must be a positive integer")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise invalid(f"seed = {seed!r} must be a non-negative integer")
        self.noise_std = None if noise_std is None else _number("noise_std", noise_std, float)
        self.chains = int(chains)
        self._state = None
        self._y_shape = None
        cfg = _almc.Config()
        cfg.method = _METHODS.get(str(method).lower(), -1)
        if cfg.method < 0:
            raise invalid(f"unknown method '{method}' (use {', '.join(_METHODS)})")
        cfg.chains_per_meas = self.chains
        cfg.seed = int(seed)
        for name, value in options.items():
            if name not in _OPTIONS:
                raise TypeError(f"Sampler() got an unexpected option '{name}' (options: {', '.join(sorted(_OPTIONS))})")
            field, kind = _OPTIONS[name]
            if kind == "levels":
                if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                    cfg.n_levels = int(value)
                else:
                    cfg.levels = [float(v) for v in host_f32("levels", value, ndim=(1,)).astype(np.float64)]
                    cfg.schedule = _SCHEDULES["list"]
            elif kind == "schedule":
                if str(value).lower() not in _SCHEDULES:
                    raise invalid(f"unknown schedule '{value}' (use default, uniform-t, geometric-sigma or list)")
                cfg.schedule = _SCHEDULES[str(value).lower()]
            elif kind == "init":
                if isinstance(value, str):
                    if value.lower() not in _INITS:
                        raise invalid(f"unknown init '{value}' (use gaussian, uniform or an array)")
                    cfg.init = _INITS[value.lower()]
                else:
                    self._state = host_f32("init", value)
                    cfg.init = 2
            else:
                setattr(cfg, field, _number(name, value, kind))
        self._cfg = cfg
        self._ctx = _almc.make_context(_BACKENDS[str(backend).lower()], 0, int(threads))
        self.backend = "cuda" if _almc.context_backend(self._ctx) == 2 else "cpu"
        self.device = _almc.context_device_name(self._ctx)
        self._built = None  # (d, shape, score, op) once d is known
        self._sampler = None
        self._sampler_key = None
        d = prior.dim if prior.dim is not None else operator.dim
        if prior.dim is not None and operator.dim is not None and prior.dim != operator.dim:
            raise invalid(f"the prior has d = {prior.dim} values per sample but the operator {operator.name} "
                          f"takes {operator.dim}")
        if d is not None or hasattr(prior, "path"):
            self._build(d)
            # Create the sampler now when the measurement count is known, so that bad options
            # (an unstable step, a refused combination) are reported here rather than at run().
            if self.noise_std is not None:
                self._sampler_for(operator.n_mats, with_operator=True)

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

    def _sampler_for(self, n_meas, with_operator):
        key = (n_meas, with_operator)
        if self._sampler is None or self._sampler_key != key:
            d, shape, score, op = self._built
            cfg = self._cfg
            cfg.n_meas = n_meas
            if with_operator:
                if self.noise_std is None:
                    raise invalid("noise_std is required to sample a posterior (give Sampler(..., noise_std=...))")
                cfg.noise_std = self.noise_std
            self._sampler = None
            self._sampler = _almc.make_sampler(score, op if with_operator else None, cfg)
            self._sampler_key = key
        return self._sampler

    def _measurements(self, y):
        """(y as float32, n_meas, d) for y [m], [n_meas, m] or image-shaped; refuses other shapes."""
        op = self.operator
        if self._built is None and self.prior.dim is None and op.dim is None:
            if not isinstance(op, Identity):
                raise invalid("cannot tell the signal size d: give ScoreFunction(fn, shape=...) or LinearOperator(..., d=...)")
            d = y.size if y.ndim <= 1 else int(np.prod(y.shape[1:]))
            self._y_shape = tuple(y.shape) if y.ndim <= 1 else tuple(y.shape[1:])
            self._build(d)
        d = self._built[0]
        m = op.rows(d)
        yshape = op.y_shape(d, self._built[1])
        if y.size == m and y.ndim >= 1:
            n_meas = 1
        elif y.ndim >= 2 and y.shape[0] > 0 and y.shape[0] * m == y.size:
            n_meas = y.shape[0]
        else:
            alt = f", {shape_str(yshape)}" if len(yshape) > 1 else ""
            raise invalid(f"y has shape {shape_str(y.shape)}; the operator {op.name} expects {m} values per "
                          f"measurement: y of shape [{m}]{alt} or [n_meas, {m}]"
                          + (f" / [n_meas, {', '.join(str(s) for s in yshape)}]" if len(yshape) > 1 else ""))
        if op.n_mats > 1 and n_meas != op.n_mats:
            raise invalid(f"y holds {n_meas} measurement(s) but the Matrix has one per measurement for "
                          f"{op.n_mats}: expected y of shape [{op.n_mats}, {m}]")
        return n_meas, d

    # -- running

    def run(self, y=None, progress=True):
        """Sample the posterior given y ([m], [n_meas, m] or image-shaped; None samples the prior).
        Returns a Result. Ctrl-C stops the run (KeyboardInterrupt); the sampler stays usable."""
        torch_device = y.device if is_torch(y) else None
        if y is not None:
            y = host_f32("y", y)
            n_meas, d = self._measurements(y)
        else:
            if self._built is None:
                if self.prior.dim is None and self.operator.dim is None:
                    raise invalid("cannot tell the signal size d without y: give ScoreFunction(fn, shape=...)")
                self._build(self.prior.dim or self.operator.dim)
            n_meas, d = 1, self._built[0]
        s = self._sampler_for(n_meas, with_operator=y is not None)
        if y is not None:
            s.set_measurement(y.ravel())
        if self._state is not None:
            if self._state.size != s.n_chains * d:
                raise invalid(f"init has shape {shape_str(self._state.shape)}; expected "
                              f"{shape_str((s.n_chains,) + self._built[1])} (n_meas * chains, *shape)")
            s.set_state(self._state.ravel())
        bar = _Progress() if progress else None
        try:
            s.run(bar)
        finally:
            if bar is not None:
                bar.close()
        shape = self._built[1]
        samples = np.empty((s.n_chains,) + shape, np.float32)
        mean = np.empty((n_meas,) + shape, np.float32)
        std = np.empty((n_meas,) + shape, np.float32)
        residuals = np.empty((s.n_chains,), np.float32)
        s.samples(samples)
        s.mean_std(mean, std)
        s.residuals(residuals)
        info = s.info()
        info["backend"] = self.backend
        info["device"] = self.device
        if torch_device is not None:
            torch = torch_module()
            samples, mean, std, residuals = (torch.from_numpy(a).to(torch_device) for a in (samples, mean, std, residuals))
        return Result(samples, mean, std, residuals, info)

    def __repr__(self):
        return (f"almc.Sampler({type(self.prior).__name__}, {self.operator.name}, chains={self.chains}, "
                f"backend={self.backend})")
