/* Samples a 2-D Gaussian-mixture posterior with ALMC through the C API, from a program built
 * against the installed almc package (find_package(almc) -> almc::almc).
 *
 * Prior: two well-separated components; measurement: y = x_2 + noise (only the second
 * coordinate is seen, as in the "bars" example). Prints the posterior mean and the fraction of
 * chains in each mode, and exits non-zero if anything fails. */
#include <almc/almc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void on_log(almc_log_level level, const char* msg, void* user_data) {
  (void)user_data;
  fprintf(stderr, "[almc %d] %s\n", (int)level, msg);
}

#define CHECK(call, handle_err)                                                   \
  do {                                                                            \
    almc_status st_ = (call);                                                     \
    if (st_ != ALMC_OK) {                                                         \
      fprintf(stderr, "%s failed: %s: %s\n", #call, almc_status_string(st_), handle_err); \
      return 1;                                                                   \
    }                                                                             \
  } while (0)

int main(void) {
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  cc.log = on_log;
  almc_context_t ctx = NULL;
  CHECK(almc_context_create(&cc, &ctx), "context");

  const float weights[2] = {0.5f, 0.5f};
  const float means[4] = {-2.0f, 0.0f, 2.0f, 1.0f};
  const float variances[4] = {0.25f, 1.0f, 0.25f, 1.0f};
  almc_score_t prior = NULL;
  CHECK(almc_score_create_gmm(ctx, 2, 2, weights, means, variances, &prior), almc_context_last_error(ctx));

  /* Observe the second coordinate only: a 1 x 2 dense matrix. */
  const float A[2] = {0.0f, 1.0f};
  almc_operator_t op = NULL;
  CHECK(almc_operator_create_matrix(ctx, 1, 2, 1, A, &op), almc_context_last_error(ctx));

  almc_sampler_config cfg = almc_sampler_config_default();
  cfg.method = ALMC_METHOD_ALMC;
  cfg.chains_per_meas = 2000;
  cfg.seed = 1;
  cfg.noise_std = 0.5;
  cfg.kappa = 2;
  cfg.delta = 0.005;
  almc_sampler_t s = NULL;
  CHECK(almc_sampler_create(ctx, prior, op, &cfg, &s), almc_context_last_error(ctx));
  const float y[1] = {1.0f};
  CHECK(almc_sampler_set_measurement(s, y), almc_sampler_last_error(s));
  CHECK(almc_sampler_run(s), almc_sampler_last_error(s));

  float mean[2], std[2];
  CHECK(almc_sampler_get_mean_std(s, mean, std), almc_sampler_last_error(s));
  float* x = malloc(sizeof(float) * 2 * 2000);
  if (!x) return 1;
  CHECK(almc_sampler_get_samples(s, x), almc_sampler_last_error(s));
  int right = 0;
  for (int c = 0; c < 2000; ++c) right += x[2 * c] > 0.0f;
  almc_run_info info;
  info.struct_size = sizeof info;
  CHECK(almc_sampler_run_info(s, &info), almc_sampler_last_error(s));
  printf("almc %s: %lld steps in %.2f s\n", almc_version(), (long long)info.steps, info.seconds);
  printf("posterior mean (%.3f, %.3f), std (%.3f, %.3f), right-mode fraction %.3f\n", mean[0], mean[1], std[0],
         std[1], right / 2000.0);
  free(x);
  almc_sampler_destroy(s);
  almc_operator_destroy(op);
  almc_score_destroy(prior);
  almc_context_destroy(ctx);
  /* Both modes must be populated and the second coordinate pulled towards y. */
  return (right > 200 && right < 1800 && isfinite(mean[1])) ? 0 : 1;
}
