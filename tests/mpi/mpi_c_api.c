/* The MPI helper (almc/almc_mpi.h) from a C program that already uses MPI; run under mpirun with
 * 2 or more ranks by ctest. Checks, against a single-process run of the same library on the root:
 *   1. almc_mpi_sample of a whole run (dense A, one per measurement) gives the same bytes for the
 *      samples, mean and std;
 *   2. a slice (chain_start / chain_count) split over the ranks gives those chains' bytes, and
 *      mean/std of a slice are refused on every rank alike;
 *   3. a run with fewer chains than ranks (empty blocks) works;
 *   4. a failure on the last rank (its score callback fails) stops every rank with that rank's
 *      status and message, and the root, which has a long run, stops early (it does not finish
 *      its steps);
 *   5. almc_chain_block splits evenly and in order.
 * Prints one line per failed check and exits non-zero when any failed (on any rank). */
#include <almc/almc_mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int rank = 0, size = 1;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "rank %d: FAILED %s: ", rank, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
      ++failures;                                          \
    }                                                      \
  } while (0)

enum { D = 6, M = 3, N_MEAS = 3, CPM = 5 };

static almc_sampler_config base_config(void) {
  almc_sampler_config c = almc_sampler_config_default();
  c.n_meas = N_MEAS;
  c.chains_per_meas = CPM;
  c.seed = 11;
  c.noise_std = 0.5;
  c.kappa = 2;
  c.delta = 4e-3;
  c.t_start = 1;
  c.t_stop = 0.05;
  return c;
}

/* The root's own single-process run of cfg: samples [n, D], mean/std [N_MEAS, D] (when not NULL). */
static void single_run(almc_context_t ctx, almc_score_t score, almc_operator_t op, const almc_sampler_config* cfg,
                       const float* y, float* samples, float* mean, float* std) {
  almc_sampler_t s = NULL;
  CHECK(almc_sampler_create(ctx, score, op, cfg, &s) == ALMC_OK, "%s", almc_context_last_error(ctx));
  CHECK(almc_sampler_set_measurement(s, y) == ALMC_OK, "set_measurement");
  CHECK(almc_sampler_run(s) == ALMC_OK, "%s", almc_sampler_last_error(s));
  CHECK(almc_sampler_get_samples(s, samples) == ALMC_OK, "get_samples");
  if (mean) CHECK(almc_sampler_get_mean_std(s, mean, std) == ALMC_OK, "get_mean_std");
  almc_sampler_destroy(s);
}

static int fail_score(const float* x, float* score, int64_t n, int64_t d, const almc_level* level,
                      const almc_level_device* level_dev, void* stream, void* user_data) {
  (void)x, (void)score, (void)n, (void)d, (void)level, (void)level_dev, (void)stream, (void)user_data;
  return 7;
}

static int64_t last_step = -1, total_steps = -1;
static int record_progress(const almc_progress* p, void* user) {
  (void)user;
  last_step = p->step;
  total_steps = p->total;
  return 0;
}

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  cc.n_threads = 1;
  almc_mpi_local_device(MPI_COMM_WORLD, &cc.device);
  almc_context_t ctx = NULL;
  if (almc_context_create(&cc, &ctx) != ALMC_OK) {
    fprintf(stderr, "rank %d: no context\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const float w[2] = {0.4f, 0.6f};
  float means[2 * D], vars[2 * D], A[N_MEAS * M * D], y[N_MEAS * M];
  for (int i = 0; i < 2 * D; ++i) {
    means[i] = (i < D ? -1.0f : 1.5f) + 0.1f * (float)(i % D);
    vars[i] = 0.3f + 0.05f * (float)(i % 3);
  }
  for (int i = 0; i < N_MEAS * M * D; ++i) A[i] = (float)((i * 37) % 11) / 11.0f - 0.45f;
  for (int i = 0; i < N_MEAS * M; ++i) y[i] = (float)((i * 5) % 7) / 3.0f - 1.0f;
  almc_score_t gmm = NULL;
  almc_operator_t op = NULL, op1 = NULL;
  CHECK(almc_operator_create_matrix(ctx, M, D, 1, A, &op1) == ALMC_OK, "shared matrix");
  CHECK(almc_score_create_gmm(ctx, 2, D, w, means, vars, &gmm) == ALMC_OK, "gmm");
  CHECK(almc_operator_create_matrix(ctx, M, D, N_MEAS, A, &op) == ALMC_OK, "matrix");

  const almc_sampler_config whole = base_config();
  const int root = 0;
  float samples[N_MEAS * CPM * D], mean[N_MEAS * D], std[N_MEAS * D];
  float ref[N_MEAS * CPM * D], ref_mean[N_MEAS * D], ref_std[N_MEAS * D];
  if (rank == root) single_run(ctx, gmm, op, &whole, y, ref, ref_mean, ref_std);

  /* 1. the whole run */
  almc_mpi_failure f;
  almc_status st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, gmm, op, &whole, y, samples, mean, std, &f);
  CHECK(st == ALMC_OK && f.rank == -1, "whole run: %s (rank %d: %s)", almc_status_string(st), f.rank, f.message);
  if (rank == root) {
    CHECK(memcmp(samples, ref, sizeof ref) == 0, "whole run: samples differ from the single-process run");
    CHECK(memcmp(mean, ref_mean, sizeof ref_mean) == 0, "whole run: mean differs");
    CHECK(memcmp(std, ref_std, sizeof ref_std) == 0, "whole run: std differs");
  }

  /* 2. a slice of it, split again over the ranks */
  almc_sampler_config slice = whole;
  slice.chain_start = 2;
  slice.chain_count = 9;
  memset(samples, 0, sizeof samples);
  st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, gmm, op, &slice, y, samples, NULL, NULL, &f);
  CHECK(st == ALMC_OK, "slice: %s (%s)", almc_status_string(st), f.message);
  if (rank == root) CHECK(memcmp(samples, ref + 2 * D, 9 * D * sizeof(float)) == 0, "slice: samples differ");
  st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, gmm, op, &slice, y, samples, mean, std, &f);
  CHECK(st == ALMC_ERR_UNSUPPORTED && f.rank == root && strstr(f.message, "every chain") != NULL,
        "slice mean/std: %s, rank %d: %s", almc_status_string(st), f.rank, f.message);

  /* 2b. a config of the first released layout (a program built against that header): the fields
   * after it are not read (here: garbage that would make it a slice), they take their defaults */
  almc_sampler_config old = whole;
  memset((unsigned char*)&old + ALMC_SAMPLER_CONFIG_MIN_SIZE, 0x5a, sizeof old - ALMC_SAMPLER_CONFIG_MIN_SIZE);
  old.struct_size = ALMC_SAMPLER_CONFIG_MIN_SIZE;
  old.chain_start = 1;
  old.chain_count = 2;
  memset(samples, 0, sizeof samples);
  st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, gmm, op, &old, y, samples, mean, std, &f);
  CHECK(st == ALMC_OK, "first-layout config: %s (%s)", almc_status_string(st), f.message);
  if (rank == root) CHECK(memcmp(samples, ref, sizeof ref) == 0, "first-layout config: samples differ");
  old.struct_size = ALMC_SAMPLER_CONFIG_MIN_SIZE - 8;
  st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, gmm, op, &old, y, samples, mean, std, &f);
  CHECK(st == ALMC_ERR_STRUCT_SIZE && strstr(f.message, "struct_size") != NULL, "short config: %s (%s)",
        almc_status_string(st), f.message);

  /* 3. fewer chains than ranks */
  almc_sampler_config tiny = whole;
  tiny.n_meas = 1;
  tiny.chains_per_meas = 1;
  float one[D], one_ref[D], one_mean[D], one_std[D];
  if (rank == root) single_run(ctx, gmm, op1, &tiny, y, one_ref, NULL, NULL);
  st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, gmm, op1, &tiny, y, one, one_mean, one_std, &f);
  CHECK(st == ALMC_OK, "one chain: %s (%s)", almc_status_string(st), f.message);
  if (rank == root) CHECK(memcmp(one, one_ref, sizeof one) == 0, "one chain: samples differ");

  /* 4. the last rank fails at its first score call; the root has a long run and must stop early */
  almc_score_t bad = NULL;
  CHECK(almc_score_create_callback(ctx, D, fail_score, NULL, 0, &bad) == ALMC_OK, "callback score");
  almc_sampler_config longrun = whole;
  longrun.kappa = 4000; /* a million steps: seconds, far longer than the failure takes to be seen */
  longrun.progress = record_progress;
  longrun.check_every = 10;
  const int failing = size - 1;
  st = almc_mpi_sample(MPI_COMM_WORLD, root, ctx, rank == failing ? bad : gmm, op, &longrun, y, samples, mean, std, &f);
  CHECK(st == ALMC_ERR_CALLBACK, "failing rank: got %s", almc_status_string(st));
  CHECK(f.rank == failing && f.n_failed == 1 && f.code == ALMC_ERR_CALLBACK, "failure record: rank %d, %d failed, code %d",
        f.rank, f.n_failed, f.code);
  CHECK(strlen(f.message) > 0, "failure message is empty");
  if (rank != failing) CHECK(total_steps > 0 && last_step < total_steps, "rank %d ran to step %lld of %lld: not stopped early",
                             rank, (long long)last_step, (long long)total_steps);

  /* 5. the split */
  int64_t s0 = -1, c0 = -1, at = 10;
  for (int64_t p = 0; p < 4; ++p) {
    CHECK(almc_chain_block(10, 7, 4, p, &s0, &c0) == ALMC_OK, "chain_block");
    CHECK(s0 == at && c0 == (p < 3 ? 2 : 1), "block %lld: start %lld count %lld", (long long)p, (long long)s0, (long long)c0);
    at += c0;
  }
  CHECK(almc_chain_block(0, 1, 2, 1, &s0, &c0) == ALMC_OK && c0 == 0, "empty block");
  CHECK(almc_chain_block(0, 1, 2, 2, &s0, &c0) == ALMC_ERR_INVALID_ARGUMENT, "part out of range");

  almc_score_destroy(bad);
  almc_score_destroy(gmm);
  almc_operator_destroy(op);
  almc_operator_destroy(op1);
  almc_context_destroy(ctx);
  int any = 0;
  MPI_Allreduce(&failures, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("almc_mpi C API on %d ranks: %s\n", size, any ? "FAILED" : "passed");
  MPI_Finalize();
  return any ? 1 : 0;
}
