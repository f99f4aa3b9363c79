"""Shared helpers for the almc Python tests (CPU backend; GPU-only tests skip with a reason)."""

import os
import shutil

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def cli_path():
    """The almc command built by scripts/build.sh ($ALMC_CLI, else build/host/cli/almc)."""
    for cand in (os.environ.get("ALMC_CLI"), os.path.join(REPO, "build", "host", "cli", "almc"), shutil.which("almc")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def ou_gmm_score(x, t, weights, means, variances):
    """The exact score of a diagonal GMM prior noised by the OU process to time t (numpy, float64),
    written from ALGORITHMS.md T4: p_t = sum_k w_k N(e^-t mu_k, e^-2t S_k + (1 - e^-2t) I)."""
    x = np.asarray(x, np.float64)
    a = np.exp(-t)
    S = a * a * variances + (1 - a * a)  # [K, d]
    diff = x[:, None, :] - a * means[None, :, :]  # [n, K, d]
    logp = np.log(weights)[None, :] - 0.5 * np.sum(diff * diff / S + np.log(S), axis=2)
    logp -= logp.max(axis=1, keepdims=True)
    r = np.exp(logp)
    r /= r.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", r, -diff / S)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed in this environment")
