// The MPI helper (include/almc/almc_mpi.h): agreement on failures, rank-ordered gathers and the
// split-run-gather recipe, on top of the public C API only.
#include <almc/almc_mpi.h>

#include "host/capi/struct_sizes.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace {

void copy_message(char* dst, const char* src) {
  const size_t n = src ? std::min(std::strlen(src), size_t(ALMC_MPI_MESSAGE_SIZE - 1)) : 0;
  if (n) std::memcpy(dst, src, n);
  dst[n] = 0;
}

// The progress callback a rank runs its block with: the caller's own, then a look for a failed
// peer (which stops this rank's run so that it joins the agreement at once).
struct Watch {
  MPI_Comm comm;
  almc_progress_fn user;
  void* user_data;
  bool stopped_for_peer = false;
};

int watch_progress(const almc_progress* p, void* data) {
  auto* w = static_cast<Watch*>(data);
  if (w->user && w->user(p, w->user_data) != 0) return 1;
  if (almc_mpi_peer_failed(w->comm)) {
    w->stopped_for_peer = true;
    return 1;
  }
  return 0;
}

}  // namespace

extern "C" {

int almc_mpi_agree(MPI_Comm comm, int code, const char* message, almc_mpi_failure* out) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // Tell the others first: they may be sampling, and look for this notice between steps.
  int notice = 1;
  std::vector<MPI_Request> sends;
  if (code != 0)
    for (int r = 0; r < size; ++r)
      if (r != rank) {
        sends.emplace_back();
        MPI_Isend(&notice, 1, MPI_INT, r, ALMC_MPI_TAG, comm, &sends.back());
      }
  std::vector<int> codes(static_cast<size_t>(size));
  MPI_Allgather(&code, 1, MPI_INT, codes.data(), 1, MPI_INT, comm);
  // Every failed peer sent this rank exactly one notice: take them all, so none is left over for a
  // later agreement or a later probe.
  for (int r = 0; r < size; ++r)
    if (r != rank && codes[r] != 0) {
      int got = 0;
      MPI_Recv(&got, 1, MPI_INT, r, ALMC_MPI_TAG, comm, MPI_STATUS_IGNORE);
    }
  if (!sends.empty()) MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE);

  almc_mpi_failure f;
  f.rank = -1;
  f.code = 0;
  f.n_failed = 0;
  f.message[0] = 0;
  for (int r = 0; r < size; ++r)
    if (codes[r] != 0) {
      if (f.rank < 0) f.rank = r;
      ++f.n_failed;
    }
  if (f.rank >= 0) {
    f.code = codes[f.rank];
    if (rank == f.rank) copy_message(f.message, message);
    MPI_Bcast(f.message, ALMC_MPI_MESSAGE_SIZE, MPI_CHAR, f.rank, comm);
    f.message[ALMC_MPI_MESSAGE_SIZE - 1] = 0;
  }
  if (out) *out = f;
  return f.n_failed;
}

int almc_mpi_peer_failed(MPI_Comm comm) {
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, ALMC_MPI_TAG, comm, &flag, MPI_STATUS_IGNORE);
  return flag != 0;
}

almc_status almc_mpi_local_device(MPI_Comm comm, int* device) {
  if (!device) return ALMC_ERR_NULL_POINTER;
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  int n = 0;
  if (almc_cuda_device_count(&n) != ALMC_OK) n = 0;
  *device = n > 0 ? local % n : 0;
  return ALMC_OK;
}

almc_status almc_mpi_gather_rows(MPI_Comm comm, int root, const float* local, int64_t local_rows, int64_t row_len,
                                 float* out) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // Every rank learns every count and every pointer problem, so that all of them refuse (or none)
  // before the data moves: a rank that returned alone would leave the others waiting.
  const long long mine[3] = {local_rows, local_rows > 0 && !local, rank == root && !out};
  std::vector<long long> all(3 * static_cast<size_t>(size));
  MPI_Allgather(mine, 3, MPI_LONG_LONG, all.data(), 3, MPI_LONG_LONG, comm);
  long long total = 0;
  bool fits = row_len >= 1 && row_len <= INT_MAX, null_local = false, null_out = false;
  for (int r = 0; r < size; ++r) {
    const long long n = all[3 * r];
    fits = fits && n >= 0 && n <= INT_MAX;
    total += fits ? n : 0;
    null_local = null_local || all[3 * r + 1] != 0;
    null_out = null_out || all[3 * r + 2] != 0;
  }
  if (!fits || total > INT_MAX) return ALMC_ERR_INVALID_ARGUMENT;
  if (null_local || (null_out && total > 0)) return ALMC_ERR_NULL_POINTER;
  std::vector<int> counts(static_cast<size_t>(size)), displs(static_cast<size_t>(size));
  int at = 0;
  for (int r = 0; r < size; ++r) {
    counts[r] = static_cast<int>(all[3 * r]);
    displs[r] = at;
    at += counts[r];
  }
  MPI_Datatype row;
  MPI_Type_contiguous(static_cast<int>(row_len), MPI_FLOAT, &row);
  MPI_Type_commit(&row);
  MPI_Gatherv(local, static_cast<int>(local_rows), row, out, counts.data(), displs.data(), row, root, comm);
  MPI_Type_free(&row);
  return ALMC_OK;
}

almc_status almc_mpi_sample(MPI_Comm comm, int root, almc_context_t ctx, almc_score_t score, almc_operator_t op,
                            const almc_sampler_config* config, const float* y, float* samples, float* mean, float* std,
                            almc_mpi_failure* failure) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  almc_mpi_failure scratch;
  almc_mpi_failure* fail = failure ? failure : &scratch;

  // Everything this rank can get wrong is part of its outcome: the ranks agree before any
  // collective data movement, so a failure anywhere stops all of them with the same status.
  almc_status st = ALMC_OK;
  std::string why;
  int64_t d = 0, n_meas = 0, cpm = 0, range_start = 0, range_count = 0, start = 0, count = 0;
  std::vector<float> mine, whole;
  // The caller's config in this library's layout (an older header's struct lacks later fields).
  almc_sampler_config full = almc_sampler_config_default();
  if (config) {
    why = almc::struct_size_problem<almc_sampler_config>(config->struct_size, "config");
    if (why.empty()) {
      full = almc::widen_struct(config, full);
      config = &full;
    } else {
      st = ALMC_ERR_STRUCT_SIZE;
    }
  }
  try {
    if (st != ALMC_OK) {
      // why says it
    } else if (!config || !ctx || !score) {
      st = ALMC_ERR_NULL_POINTER;
      why = "config, ctx and score must not be NULL";
    } else if (config->n_meas <= 0 || config->chains_per_meas <= 0) {
      st = ALMC_ERR_INVALID_ARGUMENT;
      why = "n_meas and chains_per_meas must be positive";
    } else if ((st = almc_score_dim(score, &d)) != ALMC_OK) {
      why = almc_score_last_error(score);
    } else {
      n_meas = config->n_meas;
      cpm = config->chains_per_meas;
      range_start = config->chain_count > 0 ? config->chain_start : 0;
      range_count = config->chain_count > 0 ? config->chain_count : n_meas * cpm;
      if ((st = almc_chain_block(range_start, range_count, size, rank, &start, &count)) != ALMC_OK)
        why = "the chain range is invalid";
      else if (rank == root && (mean || std) && config->chain_count > 0) {
        st = ALMC_ERR_UNSUPPORTED;
        why = "mean and std need every chain of the run (chain_count 0): merge the samples of a slice instead";
      }
    }
    if (st == ALMC_OK && count > 0) {
      Watch watch{comm, config->progress, config->progress_user_data};
      almc_sampler_config cfg = *config;
      cfg.chain_start = start;
      cfg.chain_count = count;
      cfg.progress = &watch_progress;
      cfg.progress_user_data = &watch;
      almc_sampler_t s = nullptr;
      st = almc_sampler_create(ctx, score, op, &cfg, &s);
      if (st != ALMC_OK) {
        why = almc_context_last_error(ctx);
      } else {
        mine.resize(static_cast<size_t>(count * d));
        if (op && y) st = almc_sampler_set_measurement(s, y);
        if (st == ALMC_OK) st = almc_sampler_run(s);
        if (st == ALMC_OK) st = almc_sampler_get_samples(s, mine.data());
        if (st != ALMC_OK) why = almc_sampler_last_error(s);
        // Stopped because a peer failed: the peer's failure is the one to report.
        if (st == ALMC_ERR_CANCELLED && watch.stopped_for_peer) st = ALMC_OK;
        almc_sampler_destroy(s);
      }
    }
    if (st == ALMC_OK && rank == root && !samples) whole.resize(static_cast<size_t>(range_count * d));
  } catch (const std::bad_alloc&) {
    st = ALMC_ERR_OUT_OF_MEMORY;
    why = "out of memory";
  }
  if (st != ALMC_OK && why.empty()) why = almc_status_string(st);
  if (almc_mpi_agree(comm, static_cast<int>(st), why.c_str(), fail) > 0) return static_cast<almc_status>(fail->code);

  float* all = rank == root ? (samples ? samples : whole.data()) : nullptr;
  st = almc_mpi_gather_rows(comm, root, mine.data(), count, d, all);
  if (st != ALMC_OK) return st;
  if (rank == root && (mean || std)) return almc_chain_mean_std(all, n_meas, cpm, d, mean, std);
  return ALMC_OK;
}

}  // extern "C"
