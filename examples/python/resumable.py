"""A run stopped half way (as Ctrl-C or a job's time limit would stop it) and resumed from its snapshot."""
import os
import tempfile

import numpy as np

import almc

prior = almc.GaussianMixture(weights=[0.3, 0.7], means=[[-2, 0], [2, 1]], variances=[0.5, 0.3])
options = dict(noise_std=0.3, chains=1000, seed=1, kappa=2)
y = np.array([0.8])
snapshot = os.path.join(tempfile.mkdtemp(), "run.snap")


def stop_half_way(step, total, steps_per_second, elapsed_seconds, mean_residual):
    if step >= total // 2:
        raise KeyboardInterrupt  # what Ctrl-C does


try:
    almc.Sampler(prior, almc.Matrix([[1.0, 0.5]]), **options).run(y, progress=stop_half_way, snapshot=snapshot,
                                                                  snapshot_every=200)
except KeyboardInterrupt:
    print("stopped; the state is in", snapshot)
resumed = almc.Sampler(prior, almc.Matrix([[1.0, 0.5]]), **options).run(y, progress=False, resume=snapshot)
whole = almc.Sampler(prior, almc.Matrix([[1.0, 0.5]]), **options).run(y, progress=False)
print(f"resumed at step {resumed.info['start_step']} of {resumed.info['steps']}; samples identical to an "
      f"uninterrupted run: {np.array_equal(resumed.samples, whole.samples)}")
os.remove(snapshot)
