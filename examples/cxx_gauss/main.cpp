// Samples the posterior of a Gaussian prior observed through the identity with the C++ wrapper,
// from a C++-only project linked against the installed CPU-only library (almc::almc_cpu).
// Exits non-zero unless the posterior mean and std match the closed form.
#include <almc/almc.hpp>

#include <cmath>
#include <cstdio>

int main() {
  try {
    almc::Context ctx(ALMC_BACKEND_CPU);
    almc_sampler_config cfg = almc_sampler_config_default();
    cfg.chains_per_meas = 1000;
    cfg.seed = 2;
    cfg.noise_std = 0.5;
    cfg.kappa = 2;
    cfg.delta = 4e-3;
    // Temporaries are fine: the sampler shares ownership of its score and operator.
    almc::Sampler s(ctx, almc::Score::gaussian(ctx, {1.f, -1.f, 0.f}, {1.f, 1.f, 1.f}), almc::Operator::identity(ctx, 3),
                    cfg);
    s.set_measurement({0.5f, 0.5f, 0.5f});
    s.run();
    const auto [mean, sd] = s.mean_std();
    bool ok = true;
    const double m0[3] = {1, -1, 0};
    for (int j = 0; j < 3; ++j) {
      const double want = (m0[j] + 4 * 0.5) / 5, want_sd = std::sqrt(0.2);
      std::printf("coordinate %d: mean %.3f (closed form %.3f), std %.3f (%.3f)\n", j, mean[j], want, sd[j], want_sd);
      // 5 standard errors of the mean plus 0.05 for tau and the ULA lag; std within 15 %.
      ok = ok && std::fabs(mean[j] - want) < 5 * want_sd / std::sqrt(1000.0) + 0.05 && std::fabs(sd[j] - want_sd) < 0.15 * want_sd;
    }
    std::printf("almc %s from a C++-only project: %s\n", almc_version(), ok ? "passed" : "FAILED");
    return ok ? 0 : 1;
  } catch (const almc::Exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
