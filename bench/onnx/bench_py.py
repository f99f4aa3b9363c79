"""Evaluations per second of the ONNX fixtures in onnxruntime or torch (CPU), same batches as
almc_bench_onnx. Prints "<engine> <fixture> <batch> <evals/s> <samples/s>".

    python3 bench/onnx/bench_py.py ort   [--threads T] [--batches 1,64] [--fixtures unet,...] [--min-seconds S]
    /usr/bin/python3 bench/onnx/bench_py.py torch [same options]   # Debian's torch

The torch models are the classes of tests/data/make_models.py (weights are irrelevant to speed).
"""
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "tests", "data")
FIXTURES = ["mlp_embed", "resmlp", "unet"]
BATCHES = [1, 64, 1024]


def inputs(name, n):
    x0 = np.load(os.path.join(DATA, "onnx", name + "_x.npy"))
    shape = (n,) + x0.shape[1:]
    x = np.sin(0.731 * np.arange(np.prod(shape))).astype(np.float32).reshape(shape)
    lv = (0.2 + 0.001 * (np.arange(n) % 100)).astype(np.float32)
    if name == "resmlp":
        lv = lv.reshape(n, 1)
    return x, lv


def timeit(fn, min_s):
    fn()
    it, t0 = 0, time.perf_counter()
    while True:
        fn()
        it += 1
        el = time.perf_counter() - t0
        if it >= 3 and el >= min_s:
            return it / el


def main():
    engine = sys.argv[1]
    def opt(name, default):
        return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default

    threads = int(opt("--threads", os.cpu_count()))
    min_s = float(opt("--min-seconds", 1.0))
    global FIXTURES, BATCHES
    FIXTURES = opt("--fixtures", ",".join(FIXTURES)).split(",")
    BATCHES = [int(b) for b in opt("--batches", ",".join(map(str, BATCHES))).split(",")]
    if engine == "ort":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        for name in FIXTURES:
            sess = ort.InferenceSession(os.path.join(DATA, "onnx", name + ".onnx"), so, providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()]
            for n in BATCHES:
                x, lv = inputs(name, n)
                feed = {names[0]: x, names[1]: lv}
                r = timeit(lambda: sess.run(None, feed), min_s)
                print(f"onnxruntime {name} {n} {r:.1f} {r * n:.1f}", flush=True)
    else:
        import torch
        sys.path.insert(0, DATA)
        import make_models as mm
        torch.set_num_threads(threads)
        models = {"mlp_embed": mm.SinusoidalMLP(), "resmlp": mm.ResMLP(), "unet": mm.TinyUNet()}
        for name in FIXTURES:
            m = models[name].eval()
            for n in BATCHES:
                x, lv = inputs(name, n)
                tx, tl = torch.from_numpy(x), torch.from_numpy(lv)
                with torch.inference_mode():
                    r = timeit(lambda: m(tx, tl), min_s)
                print(f"torch {name} {n} {r:.1f} {r * n:.1f}", flush=True)


if __name__ == "__main__":
    main()
