"""almc.Error and its subclasses, one per library status worth catching on its own."""

import re

# The library's status codes (almc_status in include/almc/almc.h).
OK = 0
INVALID_ARGUMENT = 1
NULL_POINTER = 2
STRUCT_SIZE = 3
OUT_OF_MEMORY = 4
NO_DEVICE = 5
CUDA = 6
UNSUPPORTED = 7
IO = 8
PARSE = 9
CALLBACK = 10
DIVERGED = 11
UNSTABLE = 12
WRONG_STATE = 13
CANCELLED = 14
INTERNAL = 15

_NAMES = {
    OK: "ok", INVALID_ARGUMENT: "invalid argument", NULL_POINTER: "null pointer", STRUCT_SIZE: "struct size",
    OUT_OF_MEMORY: "out of memory", NO_DEVICE: "no device", CUDA: "CUDA error", UNSUPPORTED: "unsupported",
    IO: "I/O error", PARSE: "parse error", CALLBACK: "callback failed", DIVERGED: "diverged",
    UNSTABLE: "unstable step", WRONG_STATE: "wrong state", CANCELLED: "cancelled", INTERNAL: "internal error",
}


class Error(Exception):
    """A failure reported by the almc library: `.status` (int), `.status_name` and the message."""

    def __init__(self, message, status=INVALID_ARGUMENT):
        super().__init__(message)
        self.status = int(status)
        self.status_name = _NAMES.get(self.status, "unknown")
        self.message = message


class InvalidArgumentError(Error, ValueError):
    """A value out of range, a shape mismatch, NaN where a number is needed."""


class UnstableError(Error):
    """The step size is above the stability bound (the message gives the largest stable one; force=True runs anyway)."""


class DivergedError(Error):
    """A chain became NaN or Inf (the message names the chain and the step)."""


class CallbackError(Error):
    """A user callback failed (a Python exception raised in a callback is re-raised as itself instead)."""


class OutOfMemoryError(Error, MemoryError):
    """Host or device memory ran out, or the run would not fit."""


class NoDeviceError(Error):
    """The CUDA backend was asked for but there is no usable device (or no CUDA build)."""


class FileError(Error):
    """A file could not be read, or its content is malformed."""


class CancelledError(Error):
    """The run was stopped by the progress callback."""


class UnsupportedError(Error):
    """A feature or combination this build cannot run (e.g. snapshots with variant smc)."""


class WrongStateError(Error):
    """A call out of order (e.g. save_state() when the last run was not interrupted)."""


_CLASSES = {
    INVALID_ARGUMENT: InvalidArgumentError, NULL_POINTER: InvalidArgumentError, UNSTABLE: UnstableError,
    DIVERGED: DivergedError, CALLBACK: CallbackError, OUT_OF_MEMORY: OutOfMemoryError, NO_DEVICE: NoDeviceError,
    IO: FileError, PARSE: FileError, CANCELLED: CancelledError, UNSUPPORTED: UnsupportedError,
    WRONG_STATE: WrongStateError,
}


# The library's messages name the C config's fields; where a Python name differs, it is said instead.
_TERMS = (("(set force_unstable to run anyway)", "(pass force=True to run anyway)"),
          ("(config.inputs)", "(OnnxScore's inputs=)"), ("config.inputs", "OnnxScore's inputs="),
          # A chain range of 0 / 0 is the C config's "every chain"; Python spells that by omitting it.
          ("(0 / 0: all)", "(omit chain_range to run them all)"))


def _py_tuple(dims):
    """A C message's list of sizes ('17' or '1, 16, 16') as Python writes a tuple: (17,) or (1, 16, 16)."""
    parts = [p.strip() for p in dims.split(",") if p.strip()]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


# Rewrites that need the values in the message: the ONNX executor's "x_shape [a, b]" (a C field;
# OnnxScore's shape= in Python) and its advice to slice a learned-variance output with the C
# config's output channels (OnnxScore's output_slice=(B, E) in Python).
_PATTERNS = ((re.compile(r"\bx_shape \[([0-9, ]*)\]"), lambda m: f"OnnxScore's shape {_py_tuple(m.group(1))}"),
             (re.compile(r"with output channels ([0-9]+) to ([0-9]+) \(config\.output_channel_begin/end\)"),
              lambda m: f"with OnnxScore(..., output_slice=({m.group(1)}, {m.group(2)}))"))


def make(status, message):
    """The exception for a library status (called by the extension when a C call fails)."""
    cls = _CLASSES.get(int(status), Error)
    for api, python in _TERMS:
        message = message.replace(api, python)
    for pattern, python in _PATTERNS:
        message = pattern.sub(python, message)
    return cls(message, status)


def invalid(message):
    """A refused argument found by the Python layer (shape, dtype, unknown option value)."""
    return InvalidArgumentError(message, INVALID_ARGUMENT)
