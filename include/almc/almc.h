/* almc: posterior sampling with score-based priors, annealed Langevin Monte Carlo.
 *
 * Public C API. Pure C (C99), no CUDA headers: the CUDA stream type is passed as void*.
 *
 * Conventions (see the README and ALGORITHMS.md):
 *   - state x is float32 [n_chains, d], row-major; images are C*H*W per chain;
 *   - a batch holds n_meas measurements x chains_per_meas chains; chain c belongs to
 *     measurement c / chains_per_meas;
 *   - the internal noise convention is Ornstein-Uhlenbeck: X_t = e^{-t} X_0 + sqrt(1-e^{-2t}) Z;
 *   - every Langevin step is x <- x + h (s + w g) + sqrt(2 h) xi, with g = -grad R.
 *
 * Every entry point returns an almc_status; none aborts, exits or prints. A message describing
 * the last failure is kept per handle (almc_*_last_error); failures of a create call are
 * recorded on the context. The string an almc_*_last_error call returns belongs to the handle and
 * stays valid only until the next failing call on that handle (or on a handle created from the
 * same context, for the context's message) or the handle's destruction: read it after the call
 * that failed (never pass it as an argument of that same call's expression, whose evaluation order
 * is unspecified) and copy it to keep it. Calls that have no handle to keep a message
 * (almc_context_create, almc_chain_mean_std, almc_chain_block, almc_cuda_device_count,
 * almc_snapshot_create) keep it per thread: almc_context_last_error(NULL) returns the message of
 * the calling thread's last such failure, valid until that thread's next one.
 *
 * Versioned structs: almc_context_config, almc_onnx_config, almc_sampler_config (inputs) and
 * almc_run_info (an output) carry struct_size, which the caller sets to sizeof the struct in the
 * header it was compiled with (almc_*_default() does). New fields are only ever appended, so a
 * program built against an older header keeps working with a newer library: the library accepts
 * any struct_size from the struct's first released layout (ALMC_*_MIN_SIZE below: the layout of
 * almc 0.1.0's first C API) up to its own sizeof, in multiples of the struct's alignment. The
 * fields beyond the caller's struct_size take their defaults (the values almc_*_default() gives);
 * an almc_run_info is filled up to the caller's struct_size only. A struct_size below the first
 * layout, not a multiple of the alignment, or above this library's sizeof (a program built
 * against a newer header than the library it runs with: extra bytes are never guessed at, even
 * when zero) is refused with ALMC_ERR_STRUCT_SIZE and a message naming the sizes accepted.
 *
 * Lifetimes: handles are reference counted. A score or operator keeps its context alive, a sampler
 * its context, score and operator: each *_destroy drops the caller's handle, and the object goes
 * away when nothing made from it is left (destroying a context before its samplers is safe, and a
 * sampler keeps working after its score's handle was destroyed). A sampler destroyed from its own
 * progress callback is deleted when its run returns. Calling almc_sampler_run while a sampler of
 * the same context is running (e.g. from a progress callback) returns ALMC_ERR_WRONG_STATE.
 *
 * Thread safety: distinct handles may be used concurrently from different threads; one handle
 * (and the handles created from the same context) must not be used from two threads at once.
 */
#ifndef ALMC_ALMC_H
#define ALMC_ALMC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALMC_VERSION_MAJOR 0
#define ALMC_VERSION_MINOR 1
#define ALMC_VERSION_PATCH 0

/* ------------------------------------------------------------------ status and version */

typedef enum almc_status {
  ALMC_OK = 0,
  ALMC_ERR_INVALID_ARGUMENT = 1, /* a value out of range, a size mismatch, NaN where a number is needed */
  ALMC_ERR_NULL_POINTER = 2,     /* a required pointer or handle was NULL */
  ALMC_ERR_STRUCT_SIZE = 3,      /* struct_size does not match a known layout */
  ALMC_ERR_OUT_OF_MEMORY = 4,    /* host or device allocation failed, or the run would not fit */
  ALMC_ERR_NO_DEVICE = 5,        /* CUDA asked for but no device (or no CUDA build) */
  ALMC_ERR_CUDA = 6,             /* a CUDA runtime / cuBLAS call failed */
  ALMC_ERR_UNSUPPORTED = 7,      /* a feature or combination this build cannot run */
  ALMC_ERR_IO = 8,               /* a file could not be read or written */
  ALMC_ERR_PARSE = 9,            /* a file was read but its content is malformed */
  ALMC_ERR_CALLBACK = 10,        /* a user callback returned a non-zero status */
  ALMC_ERR_DIVERGED = 11,        /* a chain became NaN or Inf */
  ALMC_ERR_UNSTABLE = 12,        /* step size above the stability bound (see force_unstable) */
  ALMC_ERR_WRONG_STATE = 13,     /* call out of order (e.g. run before the measurement is set) */
  ALMC_ERR_CANCELLED = 14,       /* the progress callback asked to stop */
  ALMC_ERR_INTERNAL = 15
} almc_status;

const char* almc_status_string(almc_status status);
/* "MAJOR.MINOR.PATCH" */
const char* almc_version(void);
/* A one-line description of the build: backends compiled in, BLAS, CUDA architectures. */
const char* almc_build_info(void);

/* ------------------------------------------------------------------ context */

typedef struct almc_context_s* almc_context_t;
typedef struct almc_score_s* almc_score_t;
typedef struct almc_operator_s* almc_operator_t;
typedef struct almc_sampler_s* almc_sampler_t;

typedef enum almc_backend {
  ALMC_BACKEND_AUTO = 0, /* CUDA when a device is present, else CPU; the log says which */
  ALMC_BACKEND_CPU = 1,
  ALMC_BACKEND_CUDA = 2
} almc_backend;

typedef enum almc_log_level { ALMC_LOG_DEBUG = 0, ALMC_LOG_INFO = 1, ALMC_LOG_WARN = 2, ALMC_LOG_ERROR = 3 } almc_log_level;
typedef void (*almc_log_fn)(almc_log_level level, const char* message, void* user_data);

typedef struct almc_context_config {
  size_t struct_size;
  almc_backend backend;
  int device;           /* CUDA device ordinal */
  void* stream;         /* cudaStream_t to run on; NULL: the context creates its own */
  int n_threads;        /* CPU threads, 0 to 1024; 0: OpenMP's default */
  almc_log_fn log;      /* NULL: no logging */
  void* log_user_data;
  almc_log_level log_level;
} almc_context_config;
/* First released layout (see struct_size above): unchanged so far (the day a field is appended,
 * this becomes offsetof(almc_context_config, <that field>)). */
#define ALMC_CONTEXT_CONFIG_MIN_SIZE sizeof(almc_context_config)

almc_context_config almc_context_config_default(void);
almc_status almc_context_create(const almc_context_config* config, almc_context_t* out);
void almc_context_destroy(almc_context_t ctx);
/* The backend actually in use (never AUTO). */
almc_status almc_context_backend(almc_context_t ctx, almc_backend* out);
/* Human-readable device name ("CPU (2 threads)", "NVIDIA H100 80GB HBM3 (sm_90)"). */
const char* almc_context_device_name(almc_context_t ctx);
/* NULL: the calling thread's last failure of a call without a handle (almc_context_create's
 * included; see the top of this file), or "context is NULL" when there was none. */
const char* almc_context_last_error(almc_context_t ctx);
/* Number of CUDA devices usable by this build (0 without CUDA support or without a device). */
almc_status almc_cuda_device_count(int* out);

/* Memory helpers in the context's memory space (device memory on CUDA, host on CPU). */
almc_status almc_malloc(almc_context_t ctx, size_t bytes, void** out);
almc_status almc_free(almc_context_t ctx, void* ptr);
/* kind: 0 host->backend, 1 backend->host, 2 backend->backend. */
almc_status almc_memcpy(almc_context_t ctx, void* dst, const void* src, size_t bytes, int kind);
almc_status almc_synchronize(almc_context_t ctx);

/* ------------------------------------------------------------------ levels and score */

/* The noise level at which a score is requested, in every convention at once. */
typedef struct almc_level {
  double t;         /* OU time */
  double sigma;     /* VE noise: sqrt(e^{2t} - 1) */
  double alpha_bar; /* VP: e^{-2t} */
  int64_t step;     /* global step index of the run (-1 outside a run) */
} almc_level;

/* Level values as float32 in the backend's memory space, for callbacks that are captured into
 * CUDA graphs: they must read the level from here at execution time, not from the host struct. */
typedef struct almc_level_device {
  float t, sigma, alpha_bar, log_sigma;
} almc_level_device;

/* Fill score[n, d] = grad log p_t(x) for x[n, d]. Both pointers are in the backend's memory
 * space; work must be enqueued on `stream` (a cudaStream_t; NULL on the CPU backend).
 * level_dev points to the same level in backend memory. Return 0 on success; any other value
 * stops the run with ALMC_ERR_CALLBACK. */
typedef int (*almc_score_fn)(const float* x, float* score, int64_t n, int64_t d, const almc_level* level,
                             const almc_level_device* level_dev, void* stream, void* user_data);

enum {
  /* The callback reads the level only through level_dev, never allocates or synchronises:
   * the engine may capture it into CUDA graphs. */
  ALMC_SCORE_GRAPH_SAFE = 1
};

/* A score from a user callback. */
almc_status almc_score_create_callback(almc_context_t ctx, int64_t d, almc_score_fn fn, void* user_data,
                                       unsigned flags, almc_score_t* out);
/* Gaussian prior N(mean, diag(var)), exact OU-noised score. Host arrays of length d. */
almc_status almc_score_create_gaussian(almc_context_t ctx, int64_t d, const float* mean, const float* var,
                                       almc_score_t* out);
/* Gaussian mixture: weights[K] (normalised internally), means[K*d], variances[K*d] (host). */
almc_status almc_score_create_gmm(almc_context_t ctx, int64_t K, int64_t d, const float* weights,
                                  const float* means, const float* variances, almc_score_t* out);
/* The GMM from a JSON file {"weights": [K], "means": [[d],...], "variances": [[d],...]}
 * ("variances" may also be a list of K scalars, or be replaced by "stds"). */
almc_status almc_score_create_gmm_json(almc_context_t ctx, const char* path, almc_score_t* out);
void almc_score_destroy(almc_score_t score);
almc_status almc_score_dim(almc_score_t score, int64_t* d);
/* Evaluate the score at OU time t for host arrays x[n, d] -> out[n, d] (a check or a test). */
almc_status almc_score_evaluate(almc_score_t score, const float* x, float* out, int64_t n, double t);
const char* almc_score_last_error(almc_score_t score);

/* ------------------------------------------------------------------ ONNX score networks */

typedef enum almc_net_output {
  ALMC_OUTPUT_SCORE = 0,    /* grad log p in the network's convention */
  ALMC_OUTPUT_EPS = 1,      /* noise prediction */
  ALMC_OUTPUT_DENOISER = 2, /* EDM-style D(x, sigma) = E[x0 | x] (VE scale) */
  ALMC_OUTPUT_X0 = 3        /* x0 prediction (VP) */
} almc_net_output;

typedef enum almc_net_convention { ALMC_CONV_OU = 0, ALMC_CONV_VP = 1, ALMC_CONV_VE = 2 } almc_net_convention;

typedef enum almc_net_level {
  ALMC_LEVEL_T = 0,         /* the network's own time (OU t for OU; t with alpha_bar = e^{-2t} for VP) */
  ALMC_LEVEL_SIGMA = 1,     /* VE sigma */
  ALMC_LEVEL_LOG_SIGMA = 2, /* natural log of VE sigma */
  ALMC_LEVEL_INDEX = 3,     /* discrete step index into alpha_bar_table (nearest alpha_bar) */
  ALMC_LEVEL_NONE = 4       /* the network takes no level input */
} almc_net_level;

/* A constant value for a graph input other than x and the level (a class label, a conditioning
 * tensor). values are row-major and converted to the input's dtype (int64 inputs: rounded).
 * ndim 0: one value, broadcast to the input's shape; else shape[ndim] must match the input's
 * fixed dims (a free dim takes the given size, usually 1, and broadcasts). A first dim named as
 * x's batch dim is x's batch: the value, of one sample there (size 1), serves every sample (the
 * model may concatenate it with x); a value of several samples is refused. */
typedef struct almc_onnx_input {
  const char* name;
  const float* values;
  const int64_t* shape;
  int64_t ndim;
} almc_onnx_input;

/* Arithmetic of a score network's GEMMs and convolutions (almc_onnx_config.precision). */
typedef enum almc_precision {
  ALMC_PRECISION_FP32 = 0,
  ALMC_PRECISION_TF32 = 1,
  ALMC_PRECISION_BF16 = 2
} almc_precision;

typedef struct almc_onnx_config {
  size_t struct_size;
  const char* x_input;      /* input name for x; NULL: the first input */
  const char* level_input;  /* input name for the level; NULL: the second input, if any */
  almc_net_output output;
  almc_net_convention convention;
  almc_net_level level;
  const float* alpha_bar_table; /* for ALMC_LEVEL_INDEX */
  int64_t alpha_bar_len;
  int allow_tf32;           /* CUDA only: TF32 GEMMs and convolutions */
  int64_t max_batch;        /* largest n the score will be called with; 0: grow on demand (a
                             * sampler plans for its own chain count before it captures CUDA
                             * graphs, so the network is in the step's graph either way) */
  /* Keep channels [begin, end) of the output's axis 1 (a learned-variance model's 2C channels:
   * 0, C); both 0: the whole output. */
  int64_t output_channel_begin, output_channel_end;
  const almc_onnx_input* inputs; /* constant values of further graph inputs */
  int64_t n_inputs;
  /* Continuous VP-SDE (score_sde): with beta_max > 0 and level = ALMC_LEVEL_T, the network's time s
   * in [0, 1] has alpha_bar(s) = exp(-beta_min s - (beta_max - beta_min) s^2 / 2). */
  double beta_min, beta_max;
  /* The fed t, sigma or log-sigma value is multiplied by level_scale (e.g. 999 or 1000 for time
   * labels t * 999); 0 means 1. */
  double level_scale;
  /* The network's arithmetic (the chains stay fp32 whatever it is): ALMC_PRECISION_FP32 (default),
   * _TF32 (CUDA GEMMs and convolutions on TF32 tensor cores; the same as allow_tf32 = 1; no effect on
   * the CPU) or _BF16 (GEMMs and convolutions with inputs rounded to bfloat16, products summed in
   * fp32; CPU backend; other ops stay fp32). BF16 with allow_tf32 set is refused. */
  almc_precision precision;
  /* One sample's shape (x_rank dimensions after the batch), for a model exported with dynamic
   * dimensions other than the batch (dynamic_axes on height and width, say): x_shape fills them
   * (the model's fixed dimensions must agree). For a model whose x is fixed, x_shape only has to
   * hold as many values per sample. NULL / 0: the model's own dimensions, which must then be fixed. */
  const int64_t* x_shape;
  int64_t x_rank;
} almc_onnx_config;
/* First released layout: the fields up to max_batch. */
#define ALMC_ONNX_CONFIG_MIN_SIZE offsetof(almc_onnx_config, output_channel_begin)

almc_onnx_config almc_onnx_config_default(void);
almc_status almc_score_create_onnx(almc_context_t ctx, const char* path, const almc_onnx_config* config,
                                   almc_score_t* out);
/* Run the raw network (no adapter) on host x[n, d] at a raw level value; out receives the raw
 * output [n, d]. For comparing an export with its framework. */
almc_status almc_onnx_eval_raw(almc_context_t ctx, const char* path, const almc_onnx_config* config,
                               const float* x, int64_t n, int64_t d, float level, float* out);

/* ------------------------------------------------------------------ operators (likelihoods) */

/* Forward y[n, m] = A x[n, d] and adjoint x[n, d] = A^T y[n, m], backend memory, on `stream`.
 * `meas` is the measurement index of row 0 (rows are consecutive chains). Return 0 on success. */
typedef int (*almc_linear_fn)(const float* in, float* out, int64_t n, int64_t meas0, int64_t chains_per_meas,
                              void* stream, void* user_data);
/* Nonlinear likelihood: write neg_grad[n, d] = -grad R(x) (noise variance included), backend memory. */
typedef int (*almc_neg_grad_fn)(const float* x, const float* y, float* neg_grad, int64_t n, int64_t d,
                                int64_t chains_per_meas, void* stream, void* user_data);

almc_status almc_operator_create_identity(almc_context_t ctx, int64_t d, almc_operator_t* out);
/* Pixel mask: y = m * x elementwise (m has length d, entries usually 0 or 1). y has length d. */
almc_status almc_operator_create_mask(almc_context_t ctx, int64_t d, const float* mask, almc_operator_t* out);
/* Average pooling by an integer factor on C x H x W images (H, W divisible by factor). */
almc_status almc_operator_create_downsample(almc_context_t ctx, int64_t C, int64_t H, int64_t W, int64_t factor,
                                            almc_operator_t* out);
/* 2-D correlation of each channel with kernel[kh, kw] (odd sizes), zero boundary, same size out. */
almc_status almc_operator_create_blur(almc_context_t ctx, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw,
                                      const float* kernel, almc_operator_t* out);
/* Dense A [n_mats, m, d] row-major; n_mats = 1 (shared) or n_mats = n_meas (one per measurement). */
almc_status almc_operator_create_matrix(almc_context_t ctx, int64_t m, int64_t d, int64_t n_mats, const float* A,
                                        almc_operator_t* out);
/* A linear operator from callbacks; norm_estimate is ||A||, <= 0 when unknown (NaN and infinities
 * are refused). */
almc_status almc_operator_create_linear_callback(almc_context_t ctx, int64_t m, int64_t d, almc_linear_fn forward,
                                                 almc_linear_fn adjoint, void* user_data, double norm_estimate,
                                                 almc_operator_t* out);
/* A nonlinear likelihood through -grad R; m is the length of y. */
almc_status almc_operator_create_neg_grad_callback(almc_context_t ctx, int64_t m, int64_t d, almc_neg_grad_fn fn,
                                                   void* user_data, almc_operator_t* out);
void almc_operator_destroy(almc_operator_t op);
almc_status almc_operator_dims(almc_operator_t op, int64_t* m, int64_t* d);
/* Host arrays; x[n, d] -> y[n, m] and back, all rows with measurement `meas`. */
almc_status almc_operator_forward(almc_operator_t op, const float* x, float* y, int64_t n, int64_t meas);
almc_status almc_operator_adjoint(almc_operator_t op, const float* y, float* x, int64_t n, int64_t meas);
/* Spectral norm ||A|| (exact for local operators, power iteration for dense; -1 if unknown). */
almc_status almc_operator_norm(almc_operator_t op, double* out);
/* Dense operators on CUDA: allow TF32 tensor-core GEMMs (10-bit mantissa inputs, fp32
 * accumulation) for A x and A^T r; off by default. No effect on the CPU backend or on other
 * operator kinds. */
almc_status almc_operator_set_tf32(almc_operator_t op, int enable);
const char* almc_operator_last_error(almc_operator_t op);

/* ------------------------------------------------------------------ samplers */

typedef enum almc_method {
  ALMC_METHOD_ALMC = 0,     /* annealed Langevin Monte Carlo (Parulekar et al.), the default */
  ALMC_METHOD_NCSN = 1,     /* annealed Langevin on the prior only (no likelihood) */
  ALMC_METHOD_ALD = 2,      /* Jalal et al.: likelihood annealed with sigma_y^2 + sigma_k^2 */
  ALMC_METHOD_XGP = 3,      /* Xun-Gupta-Price: annealed measurement noise */
  ALMC_METHOD_LANGEVIN = 4  /* plain annealed Langevin over the levels given (schedule list) */
} almc_method;

typedef enum almc_schedule {
  ALMC_SCHEDULE_DEFAULT = 0,         /* the method's own: uniform t for ALMC, geometric sigma for the rest */
  ALMC_SCHEDULE_UNIFORM_T = 1,       /* n_levels OU times uniform from t_start down to t_stop */
  ALMC_SCHEDULE_GEOMETRIC_SIGMA = 2, /* n_levels VE sigmas geometric from sigma_max down to sigma_min */
  ALMC_SCHEDULE_LIST = 3             /* levels[] (OU times, decreasing) */
} almc_schedule;

/* How ALMC's likelihood term changes along the path (ALGORITHMS.md Sec. 7). Every variant is
 * the paper's likelihood at the last level; s = t - t_last below. */
typedef enum almc_variant {
  ALMC_VARIANT_PAPER = 0,       /* the paper: A^T (y - A x) / sigma_y^2 at every level */
  ALMC_VARIANT_NOISED_LIK = 1,  /* Gaussian approximation of p(y | x_t): y ~ N(e^s A x, sigma_y^2 + (e^{2s} - 1) ||A||^2) */
  ALMC_VARIANT_SCALED_Y = 2,    /* the measurement follows the OU mean: A^T (e^{-s} y - A x) / sigma_y^2 */
  ALMC_VARIANT_SMC = 3,         /* the paper's likelihood plus sequential Monte Carlo along the path (Sec. 9):
                                   exact importance weights of each measurement's chains, systematic
                                   resampling when their effective sample size falls below
                                   smc_ess_threshold; analytic priors only, a slice must hold whole
                                   measurements, no average_last */
  ALMC_VARIANT_GEO_SMC = 4,     /* ALMC_VARIANT_SMC on levels geometric in sigma (unless a schedule is set) */
  ALMC_VARIANT_BEST = 100       /* the README's recommendation, resolved at create: the paper's likelihood on
                                   levels geometric in sigma (ALMC_SCHEDULE_GEOMETRIC_SIGMA unless a schedule is set) */
} almc_variant;

typedef enum almc_init { ALMC_INIT_GAUSSIAN = 0, ALMC_INIT_UNIFORM = 1, ALMC_INIT_USER = 2 } almc_init;

typedef struct almc_progress {
  int64_t step, total;
  double steps_per_second;
  double elapsed_seconds;
  double mean_residual; /* mean over chains of ||y - A x|| at the last check (NaN if unknown) */
} almc_progress;
/* Called at every check (check_every steps) and, whatever check_every is, at least about every
 * 0.2 s of wall time between steps or graph chunks, so a cancel takes effect within that plus one
 * step (or chunk). Return non-zero to stop the run (it then returns ALMC_ERR_CANCELLED and keeps
 * no result; snapshots taken so far stay readable). */
typedef int (*almc_progress_fn)(const almc_progress* progress, void* user_data);
/* Called with the run's resumable state (see almc_sampler_load_state) after every
 * checkpoint_every-th step: `state` is host memory of `bytes` bytes, valid during the call. Return
 * non-zero to stop the run (ALMC_ERR_CALLBACK). */
typedef int (*almc_checkpoint_fn)(const void* state, size_t bytes, int64_t step, void* user_data);

typedef struct almc_sampler_config {
  size_t struct_size;
  almc_method method;
  int64_t n_meas;          /* measurements in the batch */
  int64_t chains_per_meas; /* chains per measurement */
  uint64_t seed;
  double noise_std;        /* sigma_y */
  double likelihood_weight;/* multiplies g (1 = the posterior); 0 samples the prior */

  /* ALMC (ALGORITHMS.md Sec. 3). Non-positive values select the documented defaults. */
  double kappa;            /* 10 */
  double delta;            /* 1e-3 */
  double t_start;          /* T_ws = 5 */
  double t_stop;           /* tau = 0.01 */
  int64_t warm_steps;      /* >= 0, or -1: ceil(10 (1 + L_R)) */
  double warm_step;        /* <= 0: 0.5 / (1 + L_R) */
  int64_t average_last;    /* W > 1: output a uniformly random iterate among the last W steps */
  int tweedie;             /* 1: final Tweedie denoise at the last level (0 or 1) */

  /* Annealed family (Sec. 4) and schedules. */
  almc_schedule schedule;
  int64_t n_levels;        /* 100 */
  double sigma_max;        /* 50 for NCSN/ALD; eta_1 for XGP */
  double sigma_min;        /* 0.01 */
  int64_t steps_per_level; /* T = 5 */
  double eps;              /* base step 2e-5 (h_k = eps sigma_k^2 / sigma_L^2); XGP: h */
  const double* levels;    /* ALMC_SCHEDULE_LIST: OU times, decreasing; copied at create */
  int64_t n_levels_list;
  almc_init init;
  double init_scale;       /* uniform init on [-s, s] / std of Gaussian init; default 1 */

  /* Execution. */
  int use_graphs;          /* CUDA: capture chunks of steps into graphs (0 or 1; default 1) */
  int64_t graph_chunk;     /* steps per captured chunk (default 50) */
  int force_unstable;      /* 1: run even when delta exceeds the stability bound (0 or 1) */
  int64_t check_every;     /* NaN/Inf and residual check period in steps (default 100) */
  int64_t snapshot_every;  /* keep x every k steps (0: none) */
  almc_progress_fn progress;
  void* progress_user_data;

  /* A slice of the run: global chains chain_start .. chain_start + chain_count - 1 of the
   * n_meas * chains_per_meas chains (chain c belongs to measurement c / chains_per_meas);
   * 0 / 0 runs them all. Chain c's noise is keyed by (seed, its measurement, its index within
   * it), so a slice's samples are bitwise those of the same chains in the whole run on the same
   * backend. In a slice, set_state, get_samples and get_residuals hold the slice's chains only
   * (row 0 = chain_start); set_measurement still takes all n_meas rows; get_mean_std needs a slice
   * of whole measurements and returns those measurements' rows (merge the samples otherwise). */
  int64_t chain_start;
  int64_t chain_count;

  /* ALMC only: the likelihood along the path (almc_variant; default ALMC_VARIANT_PAPER). */
  almc_variant variant;
  /* ALMC_VARIANT_SMC / GEO_SMC: resample a measurement's chains when their effective sample size
   * falls below this fraction of chains_per_meas (in (0, 1]; <= 0: 0.5). Read by those variants only:
   * a value > 0 with any other variant or method is refused (the run would not read it). */
  double smc_ess_threshold;

  /* Resumable checkpoints: every checkpoint_every steps (0: never) the run hands its state to
   * checkpoint (see almc_checkpoint_fn and almc_sampler_load_state). */
  int64_t checkpoint_every;
  almc_checkpoint_fn checkpoint;
  void* checkpoint_user_data;
} almc_sampler_config;
/* First released layout: the fields up to progress_user_data. */
#define ALMC_SAMPLER_CONFIG_MIN_SIZE offsetof(almc_sampler_config, chain_start)

almc_sampler_config almc_sampler_config_default(void);

/* Whether `method` with `schedule` reads the step-size or level field of almc_sampler_config named
 * `field` ("kappa", "delta", "t_start", "t_stop", "warm_steps", "warm_step", "n_levels",
 * "steps_per_level", "sigma_max", "sigma_min", "eps"): 1 when it does, 0 when the run would be the
 * same whatever its value (a front end can refuse a value given for nothing), -1 for another name
 * or an unknown method or schedule. */
int almc_method_reads_field(almc_method method, almc_schedule schedule, const char* field);

/* `op` may be NULL (no likelihood: the prior is sampled). */
almc_status almc_sampler_create(almc_context_t ctx, almc_score_t score, almc_operator_t op,
                                const almc_sampler_config* config, almc_sampler_t* out);
void almc_sampler_destroy(almc_sampler_t s);
/* y: host [n_meas, m]. Must be finite. */
almc_status almc_sampler_set_measurement(almc_sampler_t s, const float* y);
/* Initial state for ALMC_INIT_USER: host [n_chains, d] (n_chains: the slice's chain_count when set). */
almc_status almc_sampler_set_state(almc_sampler_t s, const float* x);
almc_status almc_sampler_run(almc_sampler_t s);
/* Host [n_chains, d] with n_chains = n_meas * chains_per_meas (or the slice's chain_count). */
almc_status almc_sampler_get_samples(almc_sampler_t s, float* out);
/* Per-measurement posterior mean and std across that measurement's chains: host [n_meas, d]
 * (a slice of whole measurements: its chain_count / chains_per_meas measurements; any other
 * slice: ALMC_ERR_UNSUPPORTED). */
almc_status almc_sampler_get_mean_std(almc_sampler_t s, float* mean, float* std);
/* Per-measurement mean and std of host samples x[n_meas * chains_per_meas, d] (chains in order),
 * into host mean/std [n_meas, d] (either may be NULL): the computation almc_sampler_get_mean_std
 * does, so merged slices give the whole run's values bit for bit. */
almc_status almc_chain_mean_std(const float* x, int64_t n_meas, int64_t chains_per_meas, int64_t d, float* mean,
                                float* std);
/* Part `part` (0 .. parts - 1) of the chains start .. start + count - 1 (start + count within
 * int64) split into `parts` contiguous blocks in order, as even as can be (the first
 * count % parts blocks hold one chain more): *block_start, *block_count (0 when parts > count).
 * The split the MPI helper
 * (almc_mpi.h) and `mpirun almc sample` use; a Slurm array task can use it for its
 * chain_start / chain_count. */
almc_status almc_chain_block(int64_t start, int64_t count, int64_t parts, int64_t part, int64_t* block_start,
                             int64_t* block_count);
/* Per-chain residual ||y - A x|| of the final state: host [n_chains]. */
almc_status almc_sampler_get_residuals(almc_sampler_t s, float* out);
/* The state in backend memory ([n_chains, d]); valid until the next run or destroy. */
almc_status almc_sampler_state_pointer(almc_sampler_t s, float** out);
/* Snapshots kept with snapshot_every: count, then host [count, n_chains, d] and their steps
 * (a trajectory of x for inspection; to continue a run, use the resumable state below). */
almc_status almc_sampler_snapshot_count(almc_sampler_t s, int64_t* count);
almc_status almc_sampler_get_snapshots(almc_sampler_t s, float* out, int64_t* steps);

/* Resumable state. A run's state at a step boundary is an opaque byte string: the chains' x, the
 * method's auxiliary state (XGP's per-chain measurements, the average-last pick), the number of
 * steps done, and digests of what decides the run (the step schedule, seed, sizes, slice, prior and
 * operator descriptions, the measurement). It comes from the checkpoint callback during a run, or
 * from almc_sampler_save_state after a run stopped by its progress callback (ALMC_ERR_CANCELLED).
 * almc_sampler_load_state on a sampler created with the same configuration, score and operator
 * (and, before the run, the same measurement) makes its next almc_sampler_run continue at that
 * step instead of starting over: the final samples are bit for bit those of an uninterrupted run
 * on the same backend, since every step's noise is keyed by (seed, measurement, chain, step,
 * coordinate). A state from another run is refused (ALMC_ERR_INVALID_ARGUMENT, naming what
 * differs), and so is one whose chains hold NaN or inf (a checkpoint taken after a chain had
 * diverged, between two of the run's checks). The measurement is checked when the run starts: a
 * state loaded for another measurement fails that run (ALMC_ERR_INVALID_ARGUMENT) and is dropped,
 * so the sampler's next run starts over unless the state is loaded again. The layout is this library's, native-endian: keep states with the build that made them. */
almc_status almc_sampler_state_size(almc_sampler_t s, size_t* bytes);
/* The state where the last run stopped (after ALMC_ERR_CANCELLED only: a finished run's state is
 * its output, a failed run's is not resumable): ALMC_ERR_WRONG_STATE otherwise. step (may be NULL)
 * receives the number of steps done. */
almc_status almc_sampler_save_state(almc_sampler_t s, void* state, size_t bytes, int64_t* step);
almc_status almc_sampler_load_state(almc_sampler_t s, const void* state, size_t bytes);

/* Snapshot files: a resumable state with a description of its run, the container that
 * `almc sample --snapshot` and the Python package write and read. The file is a line
 * "almc-snapshot-1", one line of JSON {"format", "run_id", "run", "step", "total", "state_bytes",
 * "state_fnv1a"} ("run": the caller's description of the run, any JSON value; "run_id": a digest of
 * it; "step" and "total": the state's; "state_fnv1a": a digest of the state's bytes, checked on
 * reading when present), then the state's bytes. Writes are atomic (a temporary file in the
 * same folder, flushed, renamed over the destination: a kill or a full disk leaves the previous
 * file). Reading checks the container (a damaged, truncated or padded file, or one whose state does
 * not match its digest, is ALMC_ERR_PARSE) and
 * the state's header (not a state of this library's format, written on a machine of the other byte
 * order, another state version: ALMC_ERR_INVALID_ARGUMENT); whether the state belongs to a given
 * sampler's run is checked by almc_sampler_load_state. A snapshot handle holds one snapshot (a state
 * and its run) and the message of its last failure; it belongs to no context. */
typedef struct almc_snapshot_s* almc_snapshot_t;
/* An empty snapshot (no state; run "null"). */
almc_status almc_snapshot_create(almc_snapshot_t* out);
void almc_snapshot_destroy(almc_snapshot_t snap);
const char* almc_snapshot_last_error(almc_snapshot_t snap);
/* Holds `state` (from almc_sampler_save_state or the checkpoint callback; copied) with `run` (JSON
 * text, e.g. an object naming the options and inputs of the run; NULL: null). A state whose size is
 * not the one its header gives is ALMC_ERR_PARSE. */
almc_status almc_snapshot_set(almc_snapshot_t snap, const void* state, size_t bytes, const char* run);
/* Writes the snapshot held to the file `path` (atomically). ALMC_ERR_IO with the system's reason. */
almc_status almc_snapshot_write(almc_snapshot_t snap, const char* path);
/* Holds the snapshot in the file `path` (a regular file of at most 96 GiB): a snapshot container,
 * or the bare bytes of a state (run null). Missing or unreadable: ALMC_ERR_IO; neither, or a bare
 * state cut short or padded (its size is not the one its header gives): ALMC_ERR_PARSE.
 * On failure the snapshot held before is kept. */
almc_status almc_snapshot_read(almc_snapshot_t snap, const char* path);
/* The same from memory (copied): a snapshot container, or else the bytes of a state, refused with
 * the same statuses and messages (those of a file name it first). */
almc_status almc_snapshot_parse(almc_snapshot_t snap, const void* data, size_t bytes);
/* The state held (valid until the snapshot changes or is destroyed), its step and its run's total
 * number of steps; any output may be NULL. ALMC_ERR_WRONG_STATE when the snapshot is empty. */
almc_status almc_snapshot_state(almc_snapshot_t snap, const void** state, size_t* bytes, int64_t* step,
                                int64_t* total);
/* The run held, as compact JSON text (object keys sorted); valid until the snapshot changes. */
const char* almc_snapshot_run(almc_snapshot_t snap);
/* ALMC_OK when the run held equals `run` (JSON text; compared as JSON values), else
 * ALMC_ERR_INVALID_ARGUMENT with a message naming the top-level keys that differ, or saying that
 * the snapshot is a bare state with no run record (run null) to compare. */
almc_status almc_snapshot_check_run(almc_snapshot_t snap, const char* run);

typedef struct almc_run_info {
  size_t struct_size;
  int64_t steps;            /* Langevin steps run (warm start included) */
  int64_t score_evals;      /* score calls (each on all chains) */
  int64_t warm_steps;
  double warm_step;
  double seconds;
  double max_stable_delta;  /* 2 / (L + P): L = the likelihood's curvature, P = the prior's (1 for a network); -1 when unknown */
  double operator_norm;     /* -1 when unknown */
  int64_t diverged_chain;   /* global chain index, -1 when none */
  int64_t diverged_step;
  double mean_residual;
  int used_graphs;
  int64_t smc_resamples;    /* ALMC_VARIANT_SMC: resampling events, summed over measurements (the final one included) */
  int64_t start_step;       /* steps already done when the run started: 0, or a loaded state's */
} almc_run_info;
/* First released layout: the fields up to used_graphs. */
#define ALMC_RUN_INFO_MIN_SIZE offsetof(almc_run_info, smc_resamples)
almc_status almc_sampler_run_info(almc_sampler_t s, almc_run_info* out);
/* Bytes of backend memory the sampler's workspace uses. */
almc_status almc_sampler_workspace_bytes(almc_sampler_t s, size_t* out);
const char* almc_sampler_last_error(almc_sampler_t s);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ALMC_ALMC_H */
