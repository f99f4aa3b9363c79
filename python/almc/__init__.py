"""almc: posterior sampling with score-based priors (annealed Langevin Monte Carlo) on a C++/CUDA engine.

    import almc, numpy as np
    prior = almc.GaussianMixture.from_json("prior.json")
    sampler = almc.Sampler(prior, almc.Identity(), noise_std=0.5, chains=256, seed=1)
    result = sampler.run(y)            # result.samples, result.mean, result.std, result.info

See the README's Python section for the API table.
"""

import atexit as _atexit
import os as _os

# GNU OpenMP reads its wait policy once, when it is loaded (here, with the extension, unless a
# module imported earlier loaded it): idle threads then spin, which makes runs many times slower on
# a busy machine. Wait passively unless the user chose a policy; the variable is removed again
# once the runtime has read it, so child processes see the environment they would have seen.
_passive = "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ
if _passive:
    _os.environ["OMP_WAIT_POLICY"] = "passive"
try:
    from . import _almc
finally:
    if _passive:
        del _os.environ["OMP_WAIT_POLICY"]
from ._errors import (CallbackError, CancelledError, DivergedError, Error, FileError, InvalidArgumentError,
                      NoDeviceError, OutOfMemoryError, UnstableError, UnsupportedError, WrongStateError)
from ._models import (Blur, Downsample, Gaussian, GaussianMixture, Identity, LinearOperator, Mask, Matrix,
                      OnnxScore, Operator, Prior, ScoreFunction)
from ._sampler import Result, Sampler

__version__ = _almc.version()

# Drop the Python callables held by library handles before the interpreter tears modules down.
_atexit.register(_almc.release_callbacks)


def build_info():
    """One line describing the library build: its version, the backends compiled in (cpu with OpenMP;
    cuda with its architectures, or "cuda not built") and the built-in ONNX executor, e.g.
    "almc 0.1.0; backends: cpu (OpenMP), cuda (architectures 80,90); onnx executor built in"."""
    return _almc.build_info()


def cuda_device_count():
    """CUDA devices usable by this build (0 without CUDA support or without a device)."""
    return _almc.cuda_device_count()


__all__ = ["Blur", "CallbackError", "CancelledError", "DivergedError", "Downsample", "Error", "FileError",
           "Gaussian", "GaussianMixture", "Identity", "InvalidArgumentError", "LinearOperator", "Mask", "Matrix",
           "NoDeviceError", "OnnxScore", "Operator", "OutOfMemoryError", "Prior", "Result", "Sampler",
           "ScoreFunction", "UnstableError", "UnsupportedError", "WrongStateError", "build_info",
           "cuda_device_count"]
