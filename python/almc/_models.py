"""Priors (scores) and operators (likelihoods): descriptions that a Sampler turns into library
handles in its own context (so one prior can serve CPU and CUDA samplers alike)."""

import copy
import json
import math
import os

import numpy as np

from . import _almc
from ._arrays import CudaArray, check_result_shape, host_f32, is_torch, result_into, shape_str, torch_module
from ._errors import IO, Error, FileError, invalid
from ._values import boolean, describe, integer, real, text
from ._values import choice as _checked_choice
from ._values import shape as _checked_shape

_OUTPUTS = {"score": 0, "eps": 1, "denoiser": 2, "x0": 3}
_CONVENTIONS = {"ou": 0, "vp": 1, "ve": 2}
_LEVELS = {"t": 0, "sigma": 1, "log-sigma": 2, "log_sigma": 2, "index": 3, "none": 4}
_PRECISIONS = {"fp32": 0, "tf32": 1, "bf16": 2}

_validation_context = None


def _cpu_context():
    """A CPU context for checks made when a prior is described (e.g. reading a GMM file)."""
    global _validation_context
    if _validation_context is None:
        _validation_context = _almc.make_context(1, 0, 1)
    return _validation_context


def _choice(name, value, table):
    return _checked_choice(name, value, table, sorted(set(table) - {"log_sigma"}))


def _check_finite(name, a):
    """Refuses NaN and inf when a prior is described (not when the sampler is made), by the
    argument's name and the element's index in its shape."""
    bad = ~np.isfinite(a)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise invalid(f"{name}{list(i) if i else ''} is not finite ({a[i]})")


def _check_nonempty(name, a, what="one value per sample"):
    """Refuses an array without values when it is described (the library would say "d = 0")."""
    if a.size == 0:
        raise invalid(f"{name} has shape {shape_str(a.shape)}, no values; it needs at least {what}")


def _check_positive(name, a):
    _check_finite(name, a)
    bad = a <= 0
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise invalid(f"{name}{list(i) if i else ''} = {a[i]:g} must be positive (a variance)")


# ------------------------------------------------------------------ priors


class Prior:
    """Base of the priors: `dim` (d, or None until known) and `shape` (one chain's shape, or None).
    `_create(ctx, d, shape)` makes the library score (d and shape None when not known yet)."""

    dim = None
    shape = None

    def _create(self, ctx, d, shape):
        raise NotImplementedError


class Gaussian(Prior):
    """N(mean, diag(var)): exact OU-noised score. mean has one chain's shape; var the same or a scalar."""

    def __init__(self, mean, var):
        self.mean = host_f32("mean", mean)
        _check_nonempty("mean", self.mean)
        var = host_f32("var", var)
        # The shape, not only the count, must agree: var [3, 2] for mean [6] (or a transposed var)
        # used to be reshaped silently, giving variances to the wrong coordinates. One value (of
        # any shape: [], [1], ...) is the scalar form.
        if var.size == 1:
            var = np.full(self.mean.shape, var.reshape(()), np.float32)
        elif var.shape != self.mean.shape:
            raise invalid(f"var has shape {shape_str(var.shape)}; expected {shape_str(self.mean.shape)} "
                          "(the shape of mean) or a scalar")
        self.var = np.ascontiguousarray(var)
        _check_finite("mean", self.mean)
        _check_positive("var", self.var)
        self.dim = int(self.mean.size)
        self.shape = self.mean.shape if self.mean.ndim > 0 else (1,)

    def _create(self, ctx, d, shape):
        return _almc.score_gaussian(ctx, self.mean.ravel(), self.var.ravel())

    def __repr__(self):
        return f"almc.Gaussian(shape {shape_str(self.shape)})"


class GaussianMixture(Prior):
    """sum_k w_k N(means[k], diag(variances[k])): weights [K], means [K, *shape], variances
    [K, *shape], [K] (one per component) or a scalar. Exact OU-noised score."""

    def __init__(self, weights, means, variances):
        self.weights = host_f32("weights", weights, ndim=(1,))
        K = self.weights.size
        if K == 0:
            raise invalid("weights must hold at least one component, got []")
        self.means = host_f32("means", means)
        if self.means.ndim < 1 or self.means.shape[0] != K:
            raise invalid(f"means has shape {shape_str(self.means.shape)}; expected [K = {K}, ...] "
                          "(one row per weight)")
        if self.means.ndim == 1:
            self.means = self.means.reshape(K, 1)
        _check_nonempty("means", self.means, "one value per component and sample")
        per = self.means[0].size
        v = host_f32("variances", variances)
        # Checked by shape, not by count: variances [3, 2] for means [2, 3] (V.T for V) used to be
        # reshaped silently, scrambling which component and coordinate each value belongs to.
        if v.size == 1:
            v = np.full(self.means.shape, v.reshape(()), np.float32)
        elif v.shape == (K,):
            v = np.repeat(v.reshape(K, 1), per, axis=1).reshape(self.means.shape)
        elif v.shape != self.means.shape:
            raise invalid(f"variances has shape {shape_str(v.shape)}; expected {shape_str(self.means.shape)} "
                          f"(the shape of means), [{K}] (one per component) or a scalar")
        self.variances = np.ascontiguousarray(v)
        _check_finite("weights", self.weights)
        if (self.weights < 0).any() or not self.weights.sum() > 0:
            raise invalid(f"weights must be >= 0 with a positive sum, got {self.weights.tolist()}")
        _check_finite("means", self.means)
        _check_positive("variances", self.variances)
        self.dim = int(per)
        self.shape = self.means.shape[1:]
        self._path = None

    @classmethod
    def from_json(cls, path):
        """The mixture in a JSON file {"weights": [K], "means": [[d], ...], "variances": [[d], ...]}
        ("variances" may be K scalars, or "stds" instead); read by the library's own reader."""
        obj = cls.__new__(cls)
        obj._path = os.fsdecode(path)  # str, bytes or os.PathLike, as open() takes them
        if not obj._path:
            raise FileError("GaussianMixture.from_json: the path is empty", IO)
        obj.dim = _almc.score_gmm_json(_cpu_context(), obj._path).dim
        obj.shape = (obj.dim,)
        return obj

    def __getattr__(self, name):
        # Only reached for attributes not set: a mixture read by from_json() keeps its path, not
        # its parameters (the library reads the file and gives no way to read them back).
        if name in ("weights", "means", "variances") and self.__dict__.get("_path") is not None:
            raise AttributeError(f"GaussianMixture.from_json({self._path!r}) has no .{name}: the library reads "
                                 "the file and does not hand its parameters back (load the JSON with json.load to "
                                 "see them)")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _create(self, ctx, d, shape):
        if self._path is not None:
            return _almc.score_gmm_json(ctx, self._path)
        K = self.weights.size
        return _almc.score_gmm(ctx, K, self.dim, self.weights, self.means.ravel(), self.variances.ravel())

    def __repr__(self):
        if self._path is not None:
            return f"almc.GaussianMixture.from_json({self._path!r})"
        return f"almc.GaussianMixture(K = {self.weights.size}, shape {shape_str(self.shape)})"


def _sidecars(path):
    """The JSON objects in <model>.json and model.json beside an ONNX file (the files `almc sample`
    and `almc demo` read), as (file, object) pairs in that order. Only hints: a file that cannot be
    read is skipped (as the command skips it): a regular file only (opening a FIFO there would
    block), JSON nested too deep for Python's reader included."""
    base = os.path.splitext(path)[0]
    found = []
    for cand in dict.fromkeys((base + ".json", os.path.join(os.path.dirname(path), "model.json"))):
        if not os.path.isfile(cand):
            continue
        try:
            with open(cand) as f:
                obj = json.load(f)
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            found.append((cand, obj))
    return found


def _json_image_shape(sidecars):
    """image_shape from the sidecars (the first that has a valid one)."""
    for _, obj in sidecars:
        shape = obj.get("image_shape")
        if isinstance(shape, list) and shape and all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                                      for s in shape):
            return tuple(shape)
    return None


# OnnxScore's adapter arguments read from a sidecar: argument -> (JSON key, the contract's default).
_SIDECAR_KEYS = {"output": ("output_kind", "score"), "convention": ("convention", "ou"), "level": ("level", "t")}


def _sidecar_value(arg, key, value):
    """The argument's value for a sidecar's string, or None when it names none. A convention may
    also be a description (demo/model.json: "VP (OU time): ..."): by its first two letters, VE, OU
    or VP, as `almc demo` reads it."""
    low = value.strip().lower()
    if arg == "output":
        return low if low in _OUTPUTS else None
    if arg == "level":
        return low if low in _LEVELS else None
    if low in _CONVENTIONS:
        return low
    return next((c for c in ("ve", "ou", "vp") if value.startswith(c.upper())), None)


def _adapter_setting(arg, given, sidecars):
    """An adapter argument: as given, else from the first sidecar with its key (checked), else the
    contract's default."""
    if given is not None:
        return given
    key, default = _SIDECAR_KEYS[arg]
    for cand, obj in sidecars:
        if key not in obj:
            continue
        raw = obj[key]
        if not isinstance(raw, str):
            raise invalid(f"OnnxScore: {cand}: \"{key}\" must be a string, got {describe(raw)} (or pass {arg}=... "
                          "to OnnxScore)")
        value = _sidecar_value(arg, key, raw)
        if value is None:
            known = {"output": "score, eps, denoiser or x0", "convention": "ou, vp or ve (or a text starting with "
                     "VE, OU or VP)", "level": "t, sigma, log-sigma, index or none"}[arg]
            raise invalid(f"OnnxScore: {cand}: \"{key}\" = {raw!r} is not a known {arg} (use {known}; or pass "
                          f"{arg}=... to OnnxScore)")
        return value
    return default


def _input_image_shape(path, x_input):
    """(C, H, W) from the network's x input when it fixes every dimension after the batch ([n, C, H, W];
    [n, H, W] gives (1, H, W)), as `almc sample` reads it (shape_from_model_input); x is the input
    named x_input, else the first. Read with the onnx package when it is importable, else not at
    all (None); a model it cannot read gives None too (the library reports it when it loads it)."""
    try:
        import onnx
    except Exception:  # not installed, or an install that does not import
        return None
    try:
        graph = onnx.load(path, load_external_data=False).graph
        weights = {t.name for t in graph.initializer}
        inputs = [v for v in graph.input if v.name not in weights]
        if not inputs:
            return None
        x = next((v for v in inputs if v.name == x_input), inputs[0])
        if not x.type.HasField("tensor_type") or not x.type.tensor_type.HasField("shape"):
            return None
        dims = [int(v.dim_value) if v.HasField("dim_value") else 0 for v in x.type.tensor_type.shape.dim]
    except Exception:
        return None
    rest = dims[1:]
    if len(rest) not in (2, 3) or min(rest) <= 0:
        return None
    if len(rest) == 2:
        rest = [1] + rest
    # As the command: H or W of 1 is not an image.
    return tuple(rest) if rest[1] > 1 and rest[2] > 1 else None


class OnnxScore(Prior):
    """A score network exported to ONNX, run by the engine's executor (CPU and CUDA).

    output: score | eps | denoiser | x0; convention: ou | vp | ve; level: t | sigma | log-sigma |
    index | none (alpha_bar: the table for level="index"). Each of these three, when not given (None),
    comes from the model's JSON sidecar (<model>.json, else model.json beside the model, the files
    `almc demo` reads): "output_kind", "convention" (ou, vp, ve, or a text starting with VE, OU or VP
    as demo/model.json's "VP (OU time): ...") and "level"; a value there that is not a string or
    names none of these raises InvalidArgumentError naming the file and the key. Without a sidecar
    key: output="score", convention="ou", level="t". A value given always wins over the sidecar.
    x_input / level_input: input names
    (default: the first and second inputs); precision: the network's GEMMs and convolutions, fp32
    (default), tf32 (CUDA tensor cores) or bf16 (CPU: bfloat16 inputs, fp32 sums; the chains stay
    fp32); tf32=True is precision="tf32"; shape: one chain's shape (default: image_shape in
    <model>.json or model.json beside the model, else the network's x input when it fixes every
    dimension after the batch, [n, C, H, W] or [n, H, W] -> (1, H, W), read with the onnx package
    when that is importable; else unknown: the operator's or y's shape, else [d]); it also fills the
    dimensions of a model exported with a dynamic height and width, which needs it.
    As `almc sample`'s --beta-min/--beta-max (a continuous VP-SDE network fed its time s in [0, 1],
    convention="vp", level="t"), --level-scale (the fed t, sigma or log-sigma is multiplied by it,
    e.g. 999), --output-slice (output_slice=(B, E): keep channels B..E-1 of a learned-variance
    model's output) and --input (inputs={name: value or array}: constant values of further graph
    inputs, e.g. a class label)."""

    def __init__(self, path, output=None, convention=None, level=None, alpha_bar=None, x_input=None,
                 level_input=None, tf32=False, shape=None, beta_min=None, beta_max=None, level_scale=None,
                 output_slice=None, inputs=None, precision=None):
        self.path = os.fsdecode(path)  # str, bytes or os.PathLike, as open() takes them
        # A missing or unreadable file is refused now, by name, rather than when a sampler loads it.
        try:
            with open(self.path, "rb"):
                pass
        except OSError as e:
            raise FileError(f"OnnxScore: cannot read the model {self.path} ({e.strerror})", IO) from None
        if not os.path.isfile(self.path):
            raise FileError(f"OnnxScore: the model {self.path} is not a regular file", IO)
        sidecars = _sidecars(self.path)
        self.output = _choice("output", _adapter_setting("output", output, sidecars), _OUTPUTS)
        self.convention = _choice("convention", _adapter_setting("convention", convention, sidecars), _CONVENTIONS)
        self.level = _choice("level", _adapter_setting("level", level, sidecars), _LEVELS)
        self.alpha_bar = None if alpha_bar is None else host_f32("alpha_bar", alpha_bar).ravel()
        if self.level == _LEVELS["index"]:
            if self.alpha_bar is None or self.alpha_bar.size == 0:
                raise invalid("OnnxScore: level='index' needs alpha_bar (the table of alpha_bar per step index)")
            if not np.all((self.alpha_bar > 0) & (self.alpha_bar <= 1)):
                raise invalid("OnnxScore: alpha_bar values must lie in (0, 1]")
        elif self.alpha_bar is not None:
            raise invalid("OnnxScore: alpha_bar is only used with level='index'")
        self.x_input = None if x_input is None else text("x_input", x_input)
        self.level_input = None if level_input is None else text("level_input", level_input)
        self.tf32 = boolean("tf32", tf32)
        self.precision = _choice("precision", "tf32" if precision is None and self.tf32 else precision or "fp32",
                                 _PRECISIONS)
        if self.tf32 and self.precision != _PRECISIONS["tf32"]:
            raise invalid(f"tf32=True and precision='{precision}' disagree: give one")
        self.beta_min = self.beta_max = 0.0
        if beta_min is not None or beta_max is not None:
            bmin = 0.0 if beta_min is None else real("beta_min", beta_min)
            bmax = float("nan") if beta_max is None else real("beta_max", beta_max)
            if not (math.isfinite(bmax) and bmax > 0 and math.isfinite(bmin) and 0 <= bmin <= bmax):
                raise invalid("OnnxScore: beta_min and beta_max need 0 <= beta_min <= beta_max, beta_max > 0 "
                              "(score_sde: 0.1 and 20)")
            if self.convention != _CONVENTIONS["vp"] or self.level != _LEVELS["t"]:
                raise invalid("OnnxScore: beta_min/beta_max describe a VP network fed its time: use them with "
                              "convention='vp', level='t'")
            self.beta_min, self.beta_max = bmin, bmax
        self.level_scale = 0.0
        if level_scale is not None:
            v = real("level_scale", level_scale)
            if not (math.isfinite(v) and v > 0):
                raise invalid(f"OnnxScore: level_scale must be positive and finite, got {level_scale}")
            if self.level in (_LEVELS["index"], _LEVELS["none"]):
                raise invalid("OnnxScore: level_scale applies to level 't', 'sigma' or 'log-sigma'")
            self.level_scale = v
        self.output_slice = (0, 0)
        if output_slice is not None:
            try:
                b, e = output_slice
            except (TypeError, ValueError):
                raise TypeError(f"OnnxScore: output_slice must be (B, E), channels B to E-1, got {output_slice!r}") from None
            b, e = integer("output_slice[0]", b), integer("output_slice[1]", e)
            if b < 0 or e <= b:
                raise invalid(f"OnnxScore: output_slice (B, E) needs 0 <= B < E, got {output_slice!r}")
            self.output_slice = (b, e)
        self.inputs = []
        if inputs is not None and not isinstance(inputs, dict):
            raise TypeError(f"OnnxScore: inputs must be a dict {{name: value or array}}, got {type(inputs).__name__}")
        for name, value in (inputs or {}).items():
            text("OnnxScore: an inputs name", name)
            a = host_f32(f"inputs[{name!r}]", value)
            if not np.all(np.isfinite(a)):
                raise invalid(f"OnnxScore: inputs[{name!r}] must be finite")
            self.inputs.append((str(name), a.ravel(), [int(s) for s in a.shape]))
        self._shape = _checked_shape("OnnxScore: shape", shape) if shape is not None else _json_image_shape(sidecars)
        if self._shape is not None:
            self.dim = int(np.prod(self._shape))
            self.shape = self._shape
        else:
            # The network's own fixed x dims (the library reads them itself: not passed as x_shape).
            inferred = _input_image_shape(self.path, self.x_input)
            if inferred is not None:
                self.dim = int(np.prod(inferred))
                self.shape = inferred

    def __repr__(self):
        names = {v: k for k, v in _OUTPUTS.items()}, {v: k for k, v in _CONVENTIONS.items()}, \
            {v: k for k, v in _LEVELS.items() if k != "log_sigma"}, {v: k for k, v in _PRECISIONS.items()}
        return (f"almc.OnnxScore({self.path!r}, output={names[0][self.output]!r}, "
                f"convention={names[1][self.convention]!r}, level={names[2][self.level]!r}, "
                f"precision={names[3][self.precision]!r}"
                f"{'' if self.shape is None else ', shape ' + shape_str(self.shape)})")

    def _create(self, ctx, d, shape):
        s = _almc.score_onnx(ctx, self.path, self.output, self.convention, self.level, self.alpha_bar, self.x_input,
                             self.level_input, self.precision, self.beta_min, self.beta_max, self.level_scale,
                             self.output_slice[0], self.output_slice[1], [n for n, _, _ in self.inputs],
                             [v for _, v, _ in self.inputs], [sh for _, _, sh in self.inputs],
                             [int(v) for v in self._shape] if self._shape is not None else [])
        if self.dim is not None and s.dim != self.dim:
            raise invalid(f"the network {self.path} takes {s.dim} values per sample, not {self.dim} = "
                          f"prod({shape_str(self.shape)})")
        # The shape stays unknown (None) unless given, in model.json or fixed by the network's x
        # input: the operator's or y's shape then shapes the samples (_resolve_shape), else [d].
        self.dim = s.dim
        return s


class _UserCall:
    """Calls a user function on engine buffers: NumPy views on the CPU backend (or torch tensors
    that share their memory), zero-copy torch tensors (or __cuda_array_interface__ objects) on CUDA,
    on the engine's stream."""

    def __init__(self, fn, framework, what):
        if not callable(fn):
            raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.what = what
        framework = text("framework", framework).lower()
        if framework not in ("auto", "numpy", "torch"):
            raise invalid(f"unknown framework '{framework}' (use auto, numpy or torch)")
        torch = torch_module()
        if framework == "auto":
            framework = "torch" if torch is not None and isinstance(fn, torch.nn.Module) else "auto"
        if framework == "torch" and torch is None:
            raise invalid(f"{what}: framework='torch' but torch is not importable")
        self.framework = framework

    def __repr__(self):
        fn = self.fn
        return getattr(fn, "__qualname__", None) or type(fn).__name__

    def bound(self, ctx):
        """A copy set up for a context: CPU (NumPy views) or CUDA (device pointers)."""
        self = copy.copy(self)
        self.cuda = _almc.context_backend(ctx) == 2
        self.device = _almc.context_device(ctx)
        self.ctx = ctx
        self.torch = torch_module() if (self.framework == "torch" or (self.cuda and self.framework == "auto")) else None
        return self

    def _modified_input(self, numpy_error=None):
        """The error for a function that wrote into its input: that input is the engine's own
        buffer (the chains' state for a score), so an in-place update would change the chains."""
        what = (f"{self.what} modified its input in place" if numpy_error is None else
                f"{self.what} wrote into a read-only array (NumPy: {numpy_error})")
        return invalid(f"{what}: its input is the engine's own buffer and must not be modified; return a new array "
                       "instead (x = x * 2, not x *= 2)")

    def _call_torch(self, xt, args):
        """fn(xt, *args), refusing a call that wrote into xt: torch counts in-place updates of a
        tensor (and of its views) in its version counter, which costs nothing to compare."""
        try:
            before = xt._version
        except RuntimeError:  # an inference tensor (run() inside torch.inference_mode) keeps no count
            before = None
        r = self.fn(xt, *args)
        if before is not None and xt._version != before:
            raise self._modified_input()
        return r

    def __call__(self, x, out, n, in_shape, out_shape, *args, stream=0):
        out_width = int(np.prod(out_shape))
        if not self.cuda:
            xs = x.reshape((n,) + tuple(in_shape))
            if self.torch is not None:
                with self.torch.no_grad():
                    r = self._call_torch(self.torch.from_numpy(xs), args)
            else:
                xs.flags.writeable = False  # the engine's state: read, never write
                try:
                    r = self.fn(xs, *args)
                except ValueError as e:
                    # NumPy's words for a write into a read-only array ("output array is
                    # read-only", "assignment destination is read-only") said nothing about which
                    # array or why: name the rule, chained from NumPy's error.
                    if "read-only" not in str(e) or isinstance(e, Error):
                        raise
                    raise self._modified_input(e) from e
            result_into(self.what, r, out, n, out_width, out_shape)
            return
        in_shape = (n,) + tuple(in_shape)
        if self.torch is None:
            r = self.fn(CudaArray(x, in_shape, readonly=True), *args)
            self._copy_cuda(r, out, n, out_width, out_shape)
            return
        torch = self.torch
        dev = torch.device("cuda", self.device)
        with torch.cuda.stream(torch.cuda.ExternalStream(stream, device=dev)), torch.no_grad():
            xt = torch.as_tensor(CudaArray(x, in_shape, readonly=True), device=dev)
            ot = torch.as_tensor(CudaArray(out, (n, out_width)), device=dev)
            r = self._call_torch(xt, args)
            if not is_torch(r) and r is not None:
                r = torch.as_tensor(r, device=dev)  # CuPy / Numba (__cuda_array_interface__) or host arrays
            if not is_torch(r):
                got = list(r.shape) if hasattr(r, "shape") else type(r).__name__
                raise ValueError(f"{self.what} returned {got}; expected {shape_str((n,) + tuple(out_shape))}")
            # As on the CPU: complex results are refused by name (copy_ would drop the imaginary
            # part with only a warning), and the layout must be [n, *shape] or [n, width].
            if r.is_complex() or not (r.is_floating_point() or r.dtype in (torch.int8, torch.uint8, torch.int16,
                                                                             torch.int32, torch.int64, torch.bool)):
                raise invalid(f"{self.what}'s result must be a real numeric array, got dtype {r.dtype}")
            check_result_shape(self.what, r.shape, n, out_width, out_shape)
            ot.copy_(r.reshape(n, out_width))

    def _copy_cuda(self, r, out, n, width, shape):
        cai = getattr(r, "__cuda_array_interface__", None)
        if cai is None:
            raise ValueError(f"{self.what} returned {type(r).__name__}; on CUDA without torch it must return a "
                             "device array with __cuda_array_interface__")
        if cai.get("typestr") != "<f4" or cai.get("strides") not in (None,):
            raise ValueError(f"{self.what} returned a {cai.get('typestr')} array of shape {list(cai['shape'])}; "
                             f"expected contiguous float32 {shape_str((n,) + tuple(shape))}")
        check_result_shape(self.what, cai["shape"], n, width, shape)
        _almc.memcpy_device(self.ctx, out, cai["data"][0], n * width * 4)


class ScoreFunction(Prior):
    """A score from Python: fn(x, t) returns grad log p_t(x) at OU time t (a float) for the batch
    x [n, *shape]. NumPy arrays on the CPU backend (torch tensors sharing their memory when fn is a
    torch.nn.Module or framework="torch"); on CUDA, torch tensors viewing the engine's device
    buffers, on its stream. shape: one chain's shape (default: from the operator or y).
    x is the chains' state itself, not a copy: fn must not modify it (return a new array). A
    write into it is refused with InvalidArgumentError (NumPy's x is read-only; a torch tensor's
    in-place update is seen by its version counter, after the call)."""

    def __init__(self, fn, shape=None, framework="auto"):
        self.call = _UserCall(fn, framework, "the score function")
        if shape is not None:
            self.shape = _checked_shape("ScoreFunction: shape", shape)
            self.dim = int(np.prod(self.shape))

    def _create(self, ctx, d, shape):
        call = self.call.bound(ctx)
        shape = tuple(shape) if shape is not None else (d,)

        def adapter(x, out, n, t, stream):
            call(x, out, n, shape, shape, t, stream=stream)

        return _almc.score_callback(ctx, d, adapter)

    def __repr__(self):
        return f"almc.ScoreFunction({self.call!r}{'' if self.shape is None else ', shape ' + shape_str(self.shape)})"


def _layout(shape):
    """A shape with a leading single channel dropped: (1, H, W) and (H, W) hold the same values in the
    same order (as for y's shapes)."""
    shape = tuple(int(v) for v in shape)
    return shape[1:] if len(shape) == 3 and shape[0] == 1 else shape


def _check_mask_shape(prior, op):
    """Refuses a Mask whose shape is neither the prior's image shape nor flat [d] (a mask [2, 8] for
    a prior [1, 4, 4] used to be taken by its count, masking other pixels than the user meant). A
    prior without a shape, or a flat one, says nothing of the layout: any mask of d values goes."""
    if not isinstance(op, Mask) or prior.shape is None or len(prior.shape) < 2:
        return
    d = int(np.prod(prior.shape))
    if op.mask.ndim == 1 or _layout(op.shape) == _layout(prior.shape):
        return
    raise invalid(f"mask has shape {shape_str(op.shape)}; expected {shape_str(prior.shape)} (the prior's shape) "
                  f"or [{d}]")


def _resolve_shape(prior, op, d, y_shape=None):
    """One chain's shape: the prior's, else the operator's, else the measurement's (identity), else [d]."""
    for s in (prior.shape, op.shape if op is not None else None, y_shape):
        if s is not None and int(np.prod(s)) == d:
            return tuple(s)
    return (d,)


# ------------------------------------------------------------------ operators


class Operator:
    """Base of the operators: `dim` (d or None), `shape` (one chain's shape or None), and
    `rows(d)` (m, the values per measurement) and `y_shape(d)`."""

    dim = None
    shape = None
    name = "operator"
    n_mats = 1
    # y has x's layout (Identity, Mask, Blur): the operator's own shape is then y's image shape too.
    _y_like_x = False

    def rows(self, d):
        return d

    def y_shape(self, d, shape):
        return tuple(shape)

    def y_shapes(self, d, shape):
        """The shapes one measurement may have besides [m]: y_shape, the operator's own shape when
        y has x's layout (a Mask's shape, say, where the prior gave the chains another), and each of
        these without its leading axis when that is a single channel ((H, W) for (1, H, W)). All
        have the same values in the same order: no other layout of the m values is taken."""
        forms = [tuple(int(v) for v in self.y_shape(d, shape))]
        if self._y_like_x and self.shape is not None:
            forms.append(tuple(int(v) for v in self.shape))
        forms += [f[1:] for f in forms if len(f) == 3 and f[0] == 1]
        m = self.rows(d)
        return [f for i, f in enumerate(forms) if f not in forms[:i] and int(np.prod(f)) == m]

    def _create(self, ctx, d, shape):
        raise NotImplementedError


class Identity(Operator):
    """y = x."""

    name = "Identity"
    _y_like_x = True

    def _create(self, ctx, d, shape):
        return _almc.operator_identity(ctx, d)

    def __repr__(self):
        return "almc.Identity()"


class Mask(Operator):
    """y = mask * x elementwise (mask has one chain's shape, or [d]; y has the mask's shape too). A
    mask of another shape than a prior's image shape (even with as many values) is refused."""

    name = "Mask"
    _y_like_x = True

    def __init__(self, mask):
        self.mask = host_f32("mask", mask)
        _check_nonempty("mask", self.mask)
        self.dim = int(self.mask.size)
        self.shape = self.mask.shape

    def _create(self, ctx, d, shape):
        return _almc.operator_mask(ctx, self.mask.ravel())

    def __repr__(self):
        return f"almc.Mask(shape {shape_str(self.shape)}, {int(np.count_nonzero(self.mask))} of {self.mask.size} observed)"


def _image_shape(name, shape):
    shape = _checked_shape(f"{name}: shape", shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or min(shape) <= 0:
        raise invalid(f"{name}: shape must be (C, H, W) or (H, W) with positive sizes, got {list(shape)}")
    return shape


class Downsample(Operator):
    """factor x factor average pooling of C x H x W images (H and W divisible by factor)."""

    name = "Downsample"

    def __init__(self, factor, shape):
        self.factor = integer("Downsample: factor", factor)
        self.shape = _image_shape("Downsample", shape)
        C, H, W = self.shape
        if self.factor < 1 or H % self.factor or W % self.factor:
            raise invalid(f"Downsample: factor {factor} must be >= 1 and divide H = {H} and W = {W}")
        self.dim = C * H * W

    def rows(self, d):
        C, H, W = self.shape
        return C * (H // self.factor) * (W // self.factor)

    def y_shape(self, d, shape):
        C, H, W = self.shape
        return (C, H // self.factor, W // self.factor)

    def _create(self, ctx, d, shape):
        C, H, W = self.shape
        return _almc.operator_downsample(ctx, C, H, W, self.factor)

    def __repr__(self):
        return f"almc.Downsample({self.factor}, shape {shape_str(self.shape)})"


class Blur(Operator):
    """2-D correlation of each channel of C x H x W images with kernel [kh, kw] (odd sizes), zero boundary."""

    name = "Blur"
    _y_like_x = True

    def __init__(self, kernel, shape):
        self.kernel = host_f32("kernel", kernel, ndim=(2,))
        _check_nonempty("kernel", self.kernel, "one tap")
        self.shape = _image_shape("Blur", shape)
        self.dim = int(np.prod(self.shape))

    def _create(self, ctx, d, shape):
        C, H, W = self.shape
        kh, kw = self.kernel.shape
        return _almc.operator_blur(ctx, C, H, W, kh, kw, self.kernel)

    def __repr__(self):
        return f"almc.Blur(kernel {shape_str(self.kernel.shape)}, shape {shape_str(self.shape)})"


class Matrix(Operator):
    """Dense A: [m, d] shared by every measurement, or [n_meas, m, d] one per measurement."""

    name = "Matrix"

    def __init__(self, A):
        A = host_f32("A", A, ndim=(2, 3))
        _check_nonempty("A", A, "one row and one column")
        self.n_mats = A.shape[0] if A.ndim == 3 else 1
        self.A = A.reshape(self.n_mats, A.shape[-2], A.shape[-1])
        self.m, self.dim = int(self.A.shape[1]), int(self.A.shape[2])

    def rows(self, d):
        return self.m

    def y_shape(self, d, shape):
        return (self.m,)

    def _create(self, ctx, d, shape):
        return _almc.operator_matrix(ctx, self.m, self.dim, self.n_mats, self.A)

    def __repr__(self):
        return f"almc.Matrix(A {shape_str(self.A.shape if self.n_mats > 1 else self.A.shape[1:])})"


class LinearOperator(Operator):
    """A linear operator from Python: forward(x) returns A x ([n, m]) for x [n, *shape] and
    adjoint(y) returns A^T y ([n, *shape]) for y [n, m]; same array conventions as ScoreFunction.
    norm: ||A|| if known (enables the stability guard). d: the signal size when no prior gives it."""

    name = "LinearOperator"

    def __init__(self, forward, adjoint, m, d=None, norm=None, framework="auto"):
        self.forward = _UserCall(forward, framework, "the forward operator")
        self.adjoint = _UserCall(adjoint, framework, "the adjoint operator")
        self.m = integer("LinearOperator: m", m)
        if self.m <= 0:
            raise invalid(f"LinearOperator: m = {m} must be positive")
        self.dim = None if d is None else integer("LinearOperator: d", d)
        if self.dim is not None and self.dim <= 0:
            raise invalid(f"LinearOperator: d = {d} must be positive")
        self.norm = -1.0 if norm is None else real("LinearOperator: norm", norm)
        # The library reads a norm <= 0 as "not known" (no stability guard): 0 is refused, not
        # silently taken as unknown.
        if norm is not None and self.norm <= 0:
            raise invalid(f"LinearOperator: norm = {norm} must be > 0 (||A||; None when it is not known)")

    def rows(self, d):
        return self.m

    def y_shape(self, d, shape):
        return (self.m,)

    def _create(self, ctx, d, shape):
        fwd = self.forward.bound(ctx)
        adj = self.adjoint.bound(ctx)
        m = self.m

        def forward(x, out, n, stream):
            fwd(x, out, n, shape, (m,), stream=stream)

        def adjoint(y, out, n, stream):
            adj(y, out, n, (m,), shape, stream=stream)

        return _almc.operator_linear_callback(ctx, m, d, forward, adjoint, self.norm)

    def __repr__(self):
        norm = "unknown" if self.norm < 0 else f"{self.norm:g}"
        return f"almc.LinearOperator({self.forward!r}, {self.adjoint!r}, m = {self.m}, norm {norm})"
