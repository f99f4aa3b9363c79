"""Evaluations per second of the ONNX fixtures in onnxruntime or torch, same batches as
almc_bench_onnx. Prints "<engine> <fixture> <batch> <evals/s> <samples/s>".

    python3 bench/onnx/bench_py.py ort   [--threads T] [--batches 1,64] [--fixtures unet,...] [--min-seconds S]
    /usr/bin/python3 bench/onnx/bench_py.py torch [same options]   # Debian's torch
    python3 bench/onnx/bench_py.py torch --device cuda [--graph] [same options]

The torch models are the classes of tests/data/fixture_nets.py and the demo's ScoreMLP
(demo/train_digits.py, fixture name digits_mlp); weights are irrelevant to speed. On CUDA each
timed loop ends in a synchronisation; --graph captures one evaluation as a CUDA graph and replays
it (engine "torch-graph"), the fastest way PyTorch runs a fixed-shape network. ort with --device
cuda uses the CUDA execution provider and stops with a message when onnxruntime has none.
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "tests", "data")
FIXTURES = ["mlp_embed", "resmlp", "unet"]
DEMO = os.path.join(HERE, "..", "..", "demo")
BATCHES = [1, 64, 1024]


def model_file(name):
    return os.path.join(DEMO, "digits_score.onnx") if name == "digits_mlp" else os.path.join(DATA, "onnx", name + ".onnx")


def inputs(name, n):
    sample = (1, 16, 16) if name == "digits_mlp" else np.load(os.path.join(DATA, "onnx", name + "_x.npy")).shape[1:]
    shape = (n,) + tuple(sample)
    x = np.sin(0.731 * np.arange(np.prod(shape))).astype(np.float32).reshape(shape)
    lv = (0.2 + 0.001 * (np.arange(n) % 100)).astype(np.float32)
    if name == "resmlp":
        lv = lv.reshape(n, 1)
    return x, lv


def timeit(fn, min_s, sync=None):
    """Calls per second of fn over at least min_s seconds; sync (CUDA) waits for the device, after
    groups of calls so that launches overlap as they would in a loop."""
    fn()
    if sync:
        sync()
    it, t0 = 0, time.perf_counter()
    while True:
        group = max(1, min(64, it)) if sync else 1
        for _ in range(group):
            fn()
        it += group
        if sync:
            sync()
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
    device = opt("--device", "cpu")
    graph = "--graph" in sys.argv
    if engine == "ort":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            sys.exit(f"bench_py: onnxruntime here has no {provider} (it has {', '.join(ort.get_available_providers())})")
        for name in FIXTURES:
            sess = ort.InferenceSession(model_file(name), so, providers=[provider])
            names = [i.name for i in sess.get_inputs()]
            for n in BATCHES:
                x, lv = inputs(name, n)
                feed = {names[0]: x, names[1]: lv}
                r = timeit(lambda: sess.run(None, feed), min_s)
                print(f"onnxruntime{'-cuda' if device == 'cuda' else ''} {name} {n} {r:.1f} {r * n:.1f}", flush=True)
    else:
        import torch
        sys.path.insert(0, DATA)
        sys.path.insert(0, DEMO)
        import fixture_nets as fn
        torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            sys.exit("bench_py: torch here has no CUDA device")
        if graph and device != "cuda":
            sys.exit("bench_py: --graph needs --device cuda")
        sync = torch.cuda.synchronize if device == "cuda" else None

        def build(name):
            if name == "digits_mlp":
                import train_digits
                return train_digits.ScoreMLP()
            return {"mlp_embed": fn.SinusoidalMLP, "resmlp": fn.ResMLP, "unet": fn.TinyUNet}[name]()

        tag = "torch-graph" if graph else "torch-cuda" if device == "cuda" else "torch"
        for name in FIXTURES:
            m = build(name).eval().to(device)
            for n in BATCHES:
                x, lv = inputs(name, n)
                tx, tl = torch.from_numpy(x).to(device), torch.from_numpy(lv).to(device)
                with torch.inference_mode():
                    call = lambda: m(tx, tl)  # noqa: E731
                    if graph:
                        # Warm up on a side stream (as torch.cuda.graphs asks), then capture once.
                        s = torch.cuda.Stream()
                        s.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(s):
                            for _ in range(3):
                                call()
                        torch.cuda.current_stream().wait_stream(s)
                        g = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(g):
                            call()
                        call = g.replay
                    r = timeit(call, min_s, sync)
                print(f"{tag} {name} {n} {r:.1f} {r * n:.1f}", flush=True)

if __name__ == "__main__":
    main()
