"""Resumable states in files: the container `almc sample --snapshot` writes (a line naming the
format, one JSON line describing the run, then the library's state bytes), written atomically.

The library's state (almc_sampler_save_state) carries digests of everything that decides the run
(seed, sizes, schedule, prior, operator, measurement): loading it into another run is refused by
the library, naming what differs. The JSON line is informative only (step, total, who wrote it)."""

import json
import os
import tempfile

from ._errors import IO, PARSE, FileError

FORMAT = "almc-snapshot-1"


def write(path, run, step, total, state):
    """Write `state` (bytes) to `path` atomically: a crash while writing leaves the previous file."""
    path = os.fspath(path)
    record = {"format": FORMAT, "run_id": "python", "run": run, "step": int(step), "total": int(total),
              "state_bytes": len(state)}
    head = (FORMAT + "\n" + json.dumps(record, separators=(",", ":")) + "\n").encode()
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".almc-snapshot-", dir=folder)
    except OSError as e:
        raise FileError(f"snapshot {path}: cannot write in {folder} ({e.strerror})", IO) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(state)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FileError(f"snapshot {path}: cannot write it ({e.strerror})", IO) from None


def split(data, what):
    """(record or None, state bytes): a snapshot container's parts, or raw state bytes as given."""
    magic = (FORMAT + "\n").encode()
    if not data.startswith(magic):
        return None, data
    end = data.find(b"\n", len(magic))
    if end < 0:
        raise FileError(f"{what}: the snapshot's record is cut off", PARSE)
    try:
        record = json.loads(data[len(magic):end].decode())
        size = int(record["state_bytes"])
    except (ValueError, KeyError, TypeError):
        raise FileError(f"{what}: the snapshot's record is malformed", PARSE) from None
    state = data[end + 1:]
    if len(state) != size:
        raise FileError(f"{what}: the snapshot is truncated or padded ({len(state)} state bytes, its record says "
                        f"{size})", PARSE)
    return record, state


def read(source):
    """The state bytes in `source`: a path to a snapshot file (written by run(snapshot=...) or by
    `almc sample --snapshot`), or bytes (from save_state() or a snapshot callable)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return split(bytes(source), "resume")[1]
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"resume must be a file path or the bytes of a state, got {type(source).__name__}")
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FileError(f"resume: cannot read {path} ({e.strerror})", IO) from None
    return split(data, f"resume {path}")[1]
