/* almc_mpi.h: running one almc run over the ranks of an MPI communicator (optional; installed
 * and linked as almc::almc_mpi when almc is built with ALMC_MPI).
 *
 * A run's n_meas * chains_per_meas chains are split into contiguous blocks, one per rank in rank
 * order (almc_chain_block); each rank runs its block as a slice of the run (chain_start /
 * chain_count) and the blocks are gathered on a root rank in rank order, which is chain order.
 * Chain c's noise depends only on (seed, its measurement, its index), so the gathered samples are
 * bitwise those of a single-process run on the same backend, and the mean and std computed from
 * them on the root (almc_chain_mean_std) are the single run's bytes too.
 *
 * Failures: every rank reports its outcome to almc_mpi_agree (collective); all ranks learn the
 * lowest failing rank, its code and its message, so every rank can stop with the same error. A
 * failing rank first sends every other rank a notice (tag ALMC_MPI_TAG on the communicator), which
 * almc_mpi_peer_failed sees without blocking: a rank still sampling stops early from its progress
 * callback. Programs that use ALMC_MPI_TAG themselves pass a duplicate of their communicator.
 *
 * Every function here is called from the thread that initialised MPI (MPI_THREAD_FUNNELED is
 * enough: almc calls the progress callback from the thread that runs the sampler). */
#ifndef ALMC_ALMC_MPI_H
#define ALMC_ALMC_MPI_H

#include <mpi.h>

#include <almc/almc.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALMC_MPI_TAG 0x616C
#define ALMC_MPI_MESSAGE_SIZE 1024

typedef struct almc_mpi_failure {
  int rank;                            /* the lowest rank that failed; -1: none did */
  int code;                            /* that rank's code (non-zero) */
  int n_failed;                        /* how many ranks failed */
  char message[ALMC_MPI_MESSAGE_SIZE]; /* that rank's message (truncated to fit, NUL-terminated) */
} almc_mpi_failure;

/* Collective over comm. code: this rank's outcome (0: success; any other value is a failure,
 * e.g. an almc_status); message: its text (may be NULL). Fills *out identically on every rank
 * and returns out->n_failed. A rank with a non-zero code first sends a notice to every other
 * rank (see almc_mpi_peer_failed); the notices are all received before this returns. */
int almc_mpi_agree(MPI_Comm comm, int code, const char* message, almc_mpi_failure* out);

/* Not collective: 1 when another rank of comm has entered almc_mpi_agree with a failure, so this
 * rank should stop and join it; else 0. Cheap (one probe): call it from a progress callback. */
int almc_mpi_peer_failed(MPI_Comm comm);

/* This rank's CUDA device: its rank among the ranks of its node, modulo the node's CUDA devices
 * (0 when there are none). Collective over comm. */
almc_status almc_mpi_local_device(MPI_Comm comm, int* device);

/* Collective: rows [local_rows, row_len] of float from every rank, concatenated in rank order
 * into out on root ([total rows, row_len]; out is not used elsewhere and may be NULL there).
 * Rank counts and row_len must fit an int (in rows, not values). A refusal (ALMC_ERR_NULL_POINTER,
 * ALMC_ERR_INVALID_ARGUMENT) is returned by every rank alike. */
almc_status almc_mpi_gather_rows(MPI_Comm comm, int root, const float* local, int64_t local_rows, int64_t row_len,
                                 float* out);

/* The whole recipe, collective over comm: each rank runs its block of the run `config` describes
 * (all of its chains, or its chain_start / chain_count slice) with its own ctx, score and op
 * (op may be NULL: the prior), every rank passing the same config and all n_meas rows of y (NULL
 * without op), then the samples go to root. On root: samples [chains of the run, d], and for a
 * whole run (chain_count 0) mean and std [n_meas, d]; each may be NULL (mean/std of a slice:
 * ALMC_ERR_UNSUPPORTED). config->progress, when set, is called as usual (its non-zero return
 * stops every rank). Returns the same status on every rank: ALMC_OK, or the status of the
 * lowest failing rank, with failure (may be NULL) saying which rank and why; nothing is written
 * to samples, mean or std then. A rank whose block is empty (more ranks than chains) runs
 * nothing. */
almc_status almc_mpi_sample(MPI_Comm comm, int root, almc_context_t ctx, almc_score_t score, almc_operator_t op,
                            const almc_sampler_config* config, const float* y, float* samples, float* mean, float* std,
                            almc_mpi_failure* failure);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ALMC_ALMC_MPI_H */
