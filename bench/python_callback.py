"""The cost of a Python score callback against the engine's own ONNX path, per ALMC step.

    python bench/python_callback.py [--device cpu|cuda] [--chains 1,64,1024] [--steps 300] [--repeats 3]

Runs the same short ALMC inpainting run (the demo's 16x16 digits, top half seen) with four priors:
  onnx        almc.OnnxScore on demo/digits_score.onnx (the network inside the engine)
  torch_net   almc.ScoreFunction around the same network as a PyTorch module (demo/train_digits.py's
              ScoreMLP; the ONNX file's weights when the onnx package is importable, else random
              ones: the cost is the same), zero-copy tensors on CUDA
  torch_null  almc.ScoreFunction returning -x (PyTorch): the callback's own cost
  numpy_null  almc.ScoreFunction returning -x (NumPy; CPU only)
and prints, per chain count, microseconds per score evaluation (the run's seconds over its score
evaluations, with a warm start of 10 steps, which call no score) for each, and torch_net / onnx.
Needs the almc Python package, numpy and torch.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

import almc

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--chains", default="1,64,1024")
    ap.add_argument("--steps", type=int, default=300, help="annealing steps per run (about)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per case; the fastest counts")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.device == "cuda" and almc.cuda_device_count() == 0:
        sys.exit("python_callback: no CUDA device for almc here")
    sys.path.insert(0, DEMO)
    import train_digits
    try:
        net = train_digits.load_onnx_weights(os.path.join(DEMO, "digits_score.onnx"))
        weights = "the ONNX file's"
    except ImportError:
        net = train_digits.ScoreMLP().eval()
        weights = "random (no onnx package)"
    net = net.to(a.device)
    torch.set_num_threads(max(1, a.threads) if a.threads else torch.get_num_threads())

    def torch_net(x, t):
        with torch.inference_mode():
            return -net(x, torch.full((x.shape[0],), t, device=x.device)) / math.sqrt(1 - math.exp(-2 * t))

    priors = {
        "onnx": lambda: almc.OnnxScore(os.path.join(DEMO, "digits_score.onnx"), output="eps", convention="vp", level="t"),
        "torch_net": lambda: almc.ScoreFunction(torch_net, shape=(1, 16, 16), framework="torch"),
        "torch_null": lambda: almc.ScoreFunction(lambda x, t: -x, shape=(1, 16, 16), framework="torch"),
    }
    if a.device == "cpu":
        priors["numpy_null"] = lambda: almc.ScoreFunction(lambda x, t: -x, shape=(1, 16, 16))
    x = np.load(os.path.join(DEMO, "test_images.npy"))[:1]
    mask = np.broadcast_to((np.arange(16) < 8)[None, :, None], (1, 16, 16)).astype(np.float32)
    y = (x + 0.05 * np.random.default_rng(0).normal(size=x.shape)) * mask
    # kappa (t_start - t_stop) / delta = steps, from t_start 1 to t_stop 0.01 with delta 2e-3; the
    # default warm start at sigma_y 0.05 would be ~4000 steps without a score and dominate.
    kappa = a.steps * 2e-3 / 0.99
    print(f"# almc {almc.__version__}, device {a.device}, torch {torch.__version__}, network weights {weights}; "
          f"us per score evaluation, fastest of {a.repeats}")
    print("chains " + " ".join(f"{k:>10}" for k in priors) + "  torch_net/onnx")
    for chains in [int(c) for c in a.chains.split(",")]:
        us = {}
        for name, make in priors.items():
            s = almc.Sampler(make(), almc.Mask(mask), noise_std=0.05, chains=chains, seed=0, kappa=kappa, delta=2e-3,
                             t_start=1.0, t_stop=0.01, warm_steps=10, backend=a.device, threads=a.threads)
            best = math.inf
            for _ in range(a.repeats):
                info = s.run(y, progress=False).info
                best = min(best, info["seconds"] / max(1, info["score_evals"]))
            us[name] = best * 1e6
        print(f"{chains:6d} " + " ".join(f"{us[k]:10.1f}" for k in priors) + f"  {us['torch_net'] / us['onnx']:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
