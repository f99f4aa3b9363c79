"""Inpainting of the bundled digits (lower half hidden) with the demo ONNX score network."""
import os

import numpy as np

import almc

demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "demo")
x = np.load(os.path.join(demo, "test_images.npy"))[:2]  # [2, 1, 16, 16] in [-1, 1]
mask = np.broadcast_to((np.arange(16) < 8)[None, :, None], (1, 16, 16)).astype(np.float32)  # top half seen
y = (x + 0.05 * np.random.default_rng(0).normal(size=x.shape)) * mask

prior = almc.OnnxScore(os.path.join(demo, "digits_score.onnx"), output="eps", convention="vp", level="t")
kappa = float(os.environ.get("ALMC_EXAMPLE_KAPPA", 2))  # 2: 5000 annealing steps after a 4010-step warm start
sampler = almc.Sampler(prior, almc.Mask(mask), noise_std=0.05, chains=8, seed=0, kappa=kappa, delta=2e-3,
                       tweedie=True)
result = sampler.run(y)  # samples [16, 1, 16, 16], mean and std [2, 1, 16, 16]


def psnr(a):
    return 10 * np.log10(4 / np.mean((a - x) ** 2))


print(f"PSNR: posterior mean {psnr(result.mean):.2f} dB, measurement {psnr(y):.2f} dB "
      f"({result.info['steps']} steps, {result.info['seconds']:.1f} s on {result.info['device']})")
