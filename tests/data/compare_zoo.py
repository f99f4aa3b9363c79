#!/usr/bin/env python3
"""Compare almc's `eval` with onnxruntime and torch on the zoo of make_zoo.py (pyenv python3:
onnxruntime, numpy).

    python3 tests/data/compare_zoo.py --zoo /tmp/almc_zoo --almc build/host/cli/almc
    python3 tests/data/compare_zoo.py --expect zoo_ops    # a hand-made fixture's expected output

For each model and batch (1 and 7): onnxruntime against the torch output stored by make_zoo.py,
almc against onnxruntime, as max|a - b| / max(1, max|b|). A refusal prints almc's message.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def rel(a, b):
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default="/tmp/almc_zoo")
    ap.add_argument("--almc", default="build/host/cli/almc")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--expect", help="write tests/data/onnx/NAME_out.npy from onnxruntime (NAME_x.npy, NAME_level.npy)")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.expect:
        d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")
        sess = ort.InferenceSession(os.path.join(d, a.expect + ".onnx"), providers=["CPUExecutionProvider"])
        x, t = np.load(os.path.join(d, a.expect + "_x.npy")), np.load(os.path.join(d, a.expect + "_level.npy"))
        out = sess.run(None, {"x": x, "t": t})[0].astype(np.float32)
        np.save(os.path.join(d, a.expect + "_out.npy"), out)
        print(f"{a.expect}: out {out.shape} from onnxruntime {ort.__version__}")
        return
    bad = 0
    for meta_path in sorted(glob.glob(os.path.join(a.zoo, "*.json"))):
        name = os.path.basename(meta_path)[:-5]
        if a.names and not any(name.startswith(n) for n in a.names):
            continue
        meta = json.load(open(meta_path))
        model = os.path.join(a.zoo, name + ".onnx")
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        kind, level = meta["level_kind"], meta["level"]
        line = f"{name:28s}"
        for b in (1, 7):
            x = np.load(os.path.join(a.zoo, f"{name}_x{b}.npy"))
            ref = np.load(os.path.join(a.zoo, f"{name}_out{b}.npy"))
            t = np.full((b,) if kind == "B" else (b, 1) if kind == "B1" else (), level, np.float32)
            try:
                o = sess.run(None, {"x": x, "t": t})[0]
                e_ort = rel(o, ref)
            except Exception as e:  # noqa: BLE001
                o, e_ort = ref, float("nan")
                line += f" ort-b{b}: {str(e).splitlines()[0][:60]}"
            with tempfile.TemporaryDirectory() as d:
                xp, op = os.path.join(d, "x.npy"), os.path.join(d, "o.npy")
                np.save(xp, x)
                r = subprocess.run([a.almc, "eval", "--model", model, "--x", xp, "--level", repr(level), "--out", op, "-q"],
                                   capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "passive"})
                if r.returncode != 0:
                    msg = (r.stderr.strip().splitlines() or ["?"])[-1]
                    line += f" | b{b} REFUSED rc={r.returncode}: {msg}"
                    bad += 1
                    break
                out = np.load(op).reshape(o.shape)
            e = rel(out, o)
            ok = e <= a.tol
            bad += 0 if ok else 1
            line += f" | b{b} almc/ort {e:.1e}{'' if ok else ' WRONG'} ort/torch {e_ort:.1e}"
        print(line, flush=True)
    print(f"{bad} failure(s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
