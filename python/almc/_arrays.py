"""Array conversion at the boundary: NumPy / PyTorch in, float32 C-contiguous host arrays to the
library; engine buffers out as NumPy views (CPU) or zero-copy PyTorch / __cuda_array_interface__
views (CUDA)."""

import numpy as np

from ._errors import invalid


def torch_module():
    """The torch module when it is importable, else None (torch is optional)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def is_torch(a):
    return type(a).__module__.split(".")[0] == "torch" and hasattr(a, "detach")


def real_array(name, a):
    """`a` (NumPy, PyTorch, DLPack or nested lists) as a NumPy array of real numbers, its shape kept;
    complex, text and object arrays are refused by name."""
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    if is_torch(a):
        a = a.detach().cpu().numpy()
    elif not isinstance(a, np.ndarray) and hasattr(a, "__dlpack__"):
        a = from_dlpack(name, a)
    try:
        arr = np.asarray(a)
    except ValueError as e:  # ragged nested lists: NumPy's own words after the argument's name
        raise invalid(f"{name} is not an array of numbers ({e})") from None
    if arr.dtype.kind not in "fiub":
        raise invalid(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def host_f32(name, a, ndim=None):
    """`a` as a float32 C-contiguous NumPy array (converted or copied as NumPy users expect)."""
    arr = real_array(name, a)
    if ndim is not None and arr.ndim not in ndim:
        want = " or ".join(str(k) for k in ndim)
        raise invalid(f"{name} must have {want} dimensions, got shape {list(arr.shape)}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        # Values beyond float32's range would become inf with only a NumPy warning: refuse them by
        # name instead (NaN and inf given as such are the library's to refuse, naming the element).
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(arr, dtype=np.float32)
            lost = np.isinf(out) & np.isfinite(arr)
        if lost.any():
            i = int(np.flatnonzero(lost.ravel())[0])
            raise invalid(f"{name}[{i}] = {float(arr.ravel()[i])!r} is outside float32's range (|x| <= 3.4e38); almc "
                          "computes in float32")
        return out
    return np.ascontiguousarray(arr, dtype=np.float32)


def from_dlpack(name, a):
    """A DLPack array (JAX, CuPy, TensorFlow, ...) as a host NumPy array: zero-copy when it lives in
    host memory, else copied to the host through torch when torch is importable."""
    try:
        return np.from_dlpack(a)
    except (BufferError, RuntimeError, TypeError, ValueError) as e:
        torch = torch_module()
        if torch is None:
            raise invalid(f"{name}: NumPy cannot read this DLPack array ({e}); pass a host array, "
                          "or install torch to copy device arrays") from None
        try:
            return torch.from_dlpack(a).detach().cpu().numpy()
        except Exception as e2:  # torch raises AssertionError, RuntimeError, ... by build
            raise invalid(f"{name}: neither NumPy nor torch can read this DLPack array ({e2})") from None


def shape_str(shape):
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


class CudaArray:
    """A float32 device buffer of the engine, exposed through __cuda_array_interface__ (v3) so that
    PyTorch, CuPy or Numba view it without a copy. Valid only during the callback that got it."""

    def __init__(self, ptr, shape, readonly=False):
        self.shape = tuple(int(s) for s in shape)
        self.__cuda_array_interface__ = {
            "shape": self.shape,
            "typestr": "<f4",
            "data": (int(ptr), bool(readonly)),
            "strides": None,
            "version": 3,
            # The callback runs on the engine's stream already: nothing to synchronise.
            "stream": None,
        }


def result_into(name, r, out, n, width, shape):
    """Copy a callback's result r ([n, *shape] or [n, width]) into the host view out[n, width]."""
    if r is None:
        raise TypeError(f"{name} returned None; expected an array of shape {shape_str((n,) + tuple(shape))} "
                        "(did it forget to return?)")
    # Complex, text or object results are refused by name, as such arguments are (the cast below
    # dropped an imaginary part with only a ComplexWarning). NaN, inf and values beyond float32's
    # range go through: a chain running off makes them too, and the engine's check names it.
    r = real_array(f"{name}'s result", r)
    check_result_shape(name, r.shape, n, width, shape)
    out[...] = r.reshape(n, width)


def check_result_shape(name, got, n, width, shape):
    """A callback's result must be [n, *shape] or [n, width]: the same count in another layout (a
    transposed [width, n], say) would be read as other chains' values."""
    got = tuple(int(s) for s in got)
    if got != (n,) + tuple(shape) and got != (n, width):
        raise ValueError(f"{name} returned shape {list(got)}; expected {shape_str((n,) + tuple(shape))}"
                         + (f" or {shape_str((n, width))}" if len(shape) != 1 else ""))
