"""PyTorch: modules as scores, tensors in and out (CPU here; the CUDA path skips without a device)."""

import math

import numpy as np
import pytest

import almc

FAST = dict(kappa=4, delta=2e-3, t_start=1.0, t_stop=0.01)


def gaussian_module(torch, m0, s0):
    class GaussianScore(torch.nn.Module):
        """The OU-noised score of N(m0, diag(s0)) (ALGORITHMS.md T1), batched: x [n, d], t a float."""

        def __init__(self):
            super().__init__()
            self.register_buffer("m0", torch.tensor(m0, dtype=torch.float32))
            self.register_buffer("s0", torch.tensor(s0, dtype=torch.float32))
            self.calls = 0

        def forward(self, x, t):
            self.calls += 1
            assert isinstance(x, torch.Tensor) and not x.requires_grad
            a = math.exp(-t)
            st = a * a * self.s0 + (1 - a * a)
            return -(x - a * self.m0) / st

    return GaussianScore()


def test_torch_module_as_score_function(torch):
    m0, s0 = [0.5, -1.0, 2.0], [0.4, 1.0, 2.5]
    net = gaussian_module(torch, m0, s0)
    kw = dict(noise_std=0.7, chains=32, seed=8, **FAST)
    y = np.array([1.0, 0.0, -1.0])
    ours = almc.Sampler(almc.ScoreFunction(net), **kw).run(y, progress=False)
    ref = almc.Sampler(almc.Gaussian(m0, s0), **kw).run(y, progress=False)
    assert net.calls == ours.info["score_evals"] > 0
    np.testing.assert_allclose(ours.samples, ref.samples, rtol=0, atol=2e-3)


def test_tensor_in_tensor_out(torch):
    prior = almc.Gaussian(np.zeros((2, 3)), 1.0)
    y = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    res = almc.Sampler(prior, noise_std=0.5, chains=4, seed=1, **FAST).run(y, progress=False)
    for a in (res.samples, res.mean, res.std):
        assert isinstance(a, torch.Tensor) and a.device == y.device and a.dtype == torch.float32
    assert tuple(res.samples.shape) == (4, 2, 3) and tuple(res.mean.shape) == (1, 2, 3)
    same = almc.Sampler(prior, noise_std=0.5, chains=4, seed=1, **FAST).run(y.numpy(), progress=False)
    np.testing.assert_array_equal(res.samples.numpy(), same.samples)


def test_torch_score_zero_copy_on_cuda(torch):
    if not torch.cuda.is_available() or almc.cuda_device_count() == 0:
        pytest.skip("no CUDA device: the zero-copy PyTorch callback runs only on a GPU")
    m0, s0 = [0.5, -1.0, 2.0], [0.4, 1.0, 2.5]
    net = gaussian_module(torch, m0, s0).cuda()
    seen = []

    def score(x, t):
        seen.append((x.device.type, x.data_ptr()))
        return net(x, t)

    kw = dict(noise_std=0.7, chains=32, seed=8, backend="cuda", **FAST)
    ours = almc.Sampler(almc.ScoreFunction(score), **kw).run(np.ones(3), progress=False)
    ref = almc.Sampler(almc.Gaussian(m0, s0), **kw).run(np.ones(3), progress=False)
    assert seen and all(dev == "cuda" for dev, _ in seen)
    np.testing.assert_allclose(ours.samples, ref.samples, rtol=0, atol=2e-3)
