// Network evaluations per second of the built-in ONNX executor, per fixture and batch size.
//
//   almc_bench_onnx [--data TESTS_DATA_DIR] [--min-seconds S] [--batches 1,64,1024] [--profile[=nodes]]
//                   [fixture ...]
//
// CPU backend (OpenMP threads: OMP_NUM_THREADS; OpenBLAS: OPENBLAS_NUM_THREADS).
//
// Prints one line per (fixture, batch): "almc <fixture> <batch> <evals/s> <samples/s>".
// The level input gets one value per sample; x is a fixed pseudo-random batch.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "host/backend/backend.hpp"
#include "host/onnx/executor.hpp"

using almc::onnx::ExecConfig;
using almc::onnx::Executor;

int main(int argc, char** argv) {
  std::string dir = "tests/data/onnx/";
  if (const char* e = std::getenv("ALMC_TEST_DATA")) dir = std::string(e) + "/onnx/";
  double min_s = 1.0;
  bool profile = false;  // --profile: seconds per step kind (to stderr); --profile=nodes: per step
  bool by_node = false;
  std::vector<std::string> names;
  std::vector<int64_t> batches = {1, 64, 1024};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) dir = std::string(argv[++i]) + "/onnx/";
    else if (a == "--min-seconds" && i + 1 < argc) min_s = std::atof(argv[++i]);
    else if (a == "--profile") profile = true;
    else if (a == "--profile=nodes") profile = by_node = true;
    else if (a == "--batches" && i + 1 < argc) {
      batches.clear();
      for (const char* q = argv[++i]; *q;) {
        char* end = nullptr;
        batches.push_back(std::strtoll(q, &end, 10));
        if (end == q || batches.back() <= 0) {
          std::fprintf(stderr, "almc_bench_onnx: bad --batches list\n");
          return 1;
        }
        q = *end == ',' ? end + 1 : end;
      }
    }
    else names.push_back(a);
  }
  if (names.empty()) names = {"mlp_embed", "resmlp", "unet"};
  try {
    auto be = almc::make_cpu_backend(0);
    for (const auto& name : names) {
      ExecConfig cfg;
      Executor ex(almc::onnx::load_graph(dir + name + ".onnx"), cfg, *be);
      const int64_t d = ex.d();
      for (int64_t n : batches) {
        std::vector<float> x(static_cast<size_t>(n * d)), out(x.size()), lv(static_cast<size_t>(n));
        for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.731 * double(i)));
        for (size_t i = 0; i < lv.size(); ++i) lv[i] = 0.2f + 0.001f * float(i % 100);
        const float* px = x.data();
        float* po = out.data();
        const float* pl = lv.data();
        ex.run_raw_levels(px, po, n, pl);  // plan and warm up
        int64_t iters = 0;
        const auto t0 = std::chrono::steady_clock::now();
        double el = 0;
        while (iters < 3 || el < min_s) {
          ex.run_raw_levels(px, po, n, pl);
          ++iters;
          el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        const double eps = double(iters) / el;
        std::printf("almc %s %lld %.1f %.1f\n", name.c_str(), (long long)n, eps, eps * double(n));
        std::fflush(stdout);
        if (profile)
          for (const auto& kv : ex.profile_cpu(n, 3, by_node)) std::fprintf(stderr, "  %s n=%lld %-8s %.6f s/eval\n", name.c_str(), (long long)n, kv.first.c_str(), kv.second / 3);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "almc_bench_onnx: %s\n", e.what());
    return 1;
  }
  return 0;
}
