"""The same inpainting with a PyTorch score module through almc.ScoreFunction (zero-copy on CUDA)."""
import math, os, sys  # noqa: E401

import numpy as np
import torch

import almc

demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "demo")
sys.path.insert(0, demo)
from train_digits import load_onnx_weights  # noqa: E402  (the demo network as a torch module; needs onnx)

device = "cuda" if torch.cuda.is_available() and almc.cuda_device_count() > 0 else "cpu"
net = load_onnx_weights(os.path.join(demo, "digits_score.onnx")).to(device)


def score(x, t):  # x: [n, 1, 16, 16] tensor viewing the engine's buffer; t: OU time
    return -net(x, torch.full((x.shape[0],), t, device=x.device)) / math.sqrt(1 - math.exp(-2 * t))


x = np.load(os.path.join(demo, "test_images.npy"))[:2]
mask = np.broadcast_to((np.arange(16) < 8)[None, :, None], (1, 16, 16)).astype(np.float32)  # top half seen
y = (x + 0.05 * np.random.default_rng(0).normal(size=x.shape)) * mask
kappa = float(os.environ.get("ALMC_EXAMPLE_KAPPA", 2))
sampler = almc.Sampler(almc.ScoreFunction(score, shape=(1, 16, 16), framework="torch"), almc.Mask(mask),
                       noise_std=0.05, chains=8, seed=0, kappa=kappa, delta=2e-3, tweedie=True, backend=device)
result = sampler.run(y)
print(f"PSNR: posterior mean {10 * np.log10(4 / np.mean((result.mean - x) ** 2)):.2f} dB "
      f"({result.info['steps']} steps, {result.info['seconds']:.1f} s on {result.info['device']})")
