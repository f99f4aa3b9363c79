// Network evaluations per second of the built-in ONNX executor, per fixture and batch size.
//
//   almc_bench_onnx [--data TESTS_DATA_DIR] [--min-seconds S] [--batches 1,64,1024] [--profile[=nodes]]
//                   [--backend cpu|cuda] [--graph] [--precisions fp32,tf32,bf16 [--rounds R]]
//                   [--model NAME=FILE.onnx ...] [fixture ...]
//
// CPU backend by default (OpenMP threads: OMP_NUM_THREADS); --backend cuda runs on device 0 with
// the inputs in device memory, each timed loop ending in a stream synchronisation. --graph (CUDA):
// one evaluation captured as a CUDA graph and replayed (the way a sampler's step graph runs the
// network), printed as engine "almc-graph". tf32 is CUDA only. --model adds a network by file
// (e.g. digits_mlp=demo/digits_score.onnx) to the fixtures of tests/data/onnx.
//
// Prints one line per (fixture, batch): "almc <fixture> <batch> <evals/s> <samples/s>". With
// --precisions, one line per precision with the precision last: the precisions are timed in turn
// (min-seconds each), R rounds of that, and the median of the R rates is printed.
// The level input gets one value per sample; x is a fixed pseudo-random batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <utility>
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
  std::vector<std::string> precisions;  // empty: fp32, the original output
  std::vector<std::pair<std::string, std::string>> models;  // --model NAME=FILE
  std::string backend = "cpu";
  bool graph = false;
  int rounds = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) dir = std::string(argv[++i]) + "/onnx/";
    else if (a == "--min-seconds" && i + 1 < argc) min_s = std::atof(argv[++i]);
    else if (a == "--profile") profile = true;
    else if (a == "--profile=nodes") profile = by_node = true;
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--graph") graph = true;
    else if (a == "--backend" && i + 1 < argc) {
      backend = argv[++i];
      if (backend != "cpu" && backend != "cuda") {
        std::fprintf(stderr, "almc_bench_onnx: --backend takes cpu or cuda, not '%s'\n", backend.c_str());
        return 1;
      }
    } else if (a == "--model" && i + 1 < argc) {
      const std::string m = argv[++i];
      const size_t eq = m.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
        std::fprintf(stderr, "almc_bench_onnx: --model takes NAME=FILE.onnx, not '%s'\n", m.c_str());
        return 1;
      }
      models.emplace_back(m.substr(0, eq), m.substr(eq + 1));
    }
    else if (a == "--precisions" && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t p = 0; p <= list.size();) {
        const size_t q = std::min(list.find(',', p), list.size());
        precisions.push_back(list.substr(p, q - p));
        if (precisions.back() != "fp32" && precisions.back() != "tf32" && precisions.back() != "bf16") {
          std::fprintf(stderr, "almc_bench_onnx: --precisions takes fp32, tf32 and bf16, not '%s'\n", precisions.back().c_str());
          return 1;
        }
        p = q + 1;
      }
    }
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
  if (names.empty() && models.empty()) names = {"mlp_embed", "resmlp", "unet"};
  std::vector<std::pair<std::string, std::string>> nets;  // (name, file)
  for (const auto& n : names) nets.emplace_back(n, dir + n + ".onnx");
  nets.insert(nets.end(), models.begin(), models.end());
  const bool cuda = backend == "cuda";
  if (graph && !cuda) {
    std::fprintf(stderr, "almc_bench_onnx: --graph needs --backend cuda\n");
    return 1;
  }
  try {
    auto be = cuda ? almc::make_cuda_backend(0, nullptr) : almc::make_cpu_backend(0);
    const bool tagged = !precisions.empty();
    if (!tagged) precisions = {"fp32"};
    for (const auto& p : precisions)
      if (p == "tf32" && !cuda) throw std::runtime_error("tf32 runs on CUDA only (--backend cuda)");
    const char* engine = graph ? "almc-graph" : "almc";
    for (const auto& [name, file] : nets) {
      std::vector<std::unique_ptr<Executor>> ex;
      for (const auto& p : precisions) {
        ExecConfig cfg;
        cfg.precision = p == "bf16" ? ALMC_PRECISION_BF16 : ALMC_PRECISION_FP32;
        cfg.allow_tf32 = p == "tf32";
        ex.push_back(std::make_unique<Executor>(almc::onnx::load_graph(file), cfg, *be));
      }
      const int64_t d = ex[0]->d();
      for (int64_t n : batches) {
        std::vector<float> x(static_cast<size_t>(n * d)), lv(static_cast<size_t>(n));
        for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.731 * double(i)));
        for (size_t i = 0; i < lv.size(); ++i) lv[i] = 0.2f + 0.001f * float(i % 100);
        // Inputs and output in the backend's memory (host memory on the CPU backend).
        almc::Buffer bx(be.get(), x.size() * sizeof(float)), bo(be.get(), x.size() * sizeof(float)),
            bl(be.get(), lv.size() * sizeof(float));
        bx.upload(x.data(), x.size() * sizeof(float));
        bl.upload(lv.data(), lv.size() * sizeof(float));
        const float* px = bx.f();
        float* po = bo.f();
        const float* pl = bl.f();
        // One evaluation per call of run(k): eager, or the replay of a graph captured once.
        std::vector<almc::GraphHandle*> graphs(ex.size(), nullptr);
        for (size_t k = 0; k < ex.size(); ++k) {
          ex[k]->prepare(n);
          ex[k]->run_raw_levels(px, po, n, pl);  // plan and warm up
          if (graph) {
            be->capture_begin();
            ex[k]->run_raw_levels(px, po, n, pl);
            graphs[k] = be->capture_end();
            if (!graphs[k]) throw std::runtime_error("the CUDA graph capture of " + name + " failed");
            be->graph_launch(graphs[k]);
          }
        }
        be->sync();
        auto run = [&](size_t k) {
          if (graph) be->graph_launch(graphs[k]);
          else ex[k]->run_raw_levels(px, po, n, pl);
        };
        std::vector<std::vector<double>> rates(ex.size());
        for (int r = 0; r < rounds; ++r)
          for (size_t k = 0; k < ex.size(); ++k) {
            // Launches are checked against the clock in groups, so that on CUDA the loop does not
            // wait for the device after every call; the time counts up to the last one's end.
            int64_t iters = 0;
            const auto t0 = std::chrono::steady_clock::now();
            double el = 0;
            while (iters < 3 || el < min_s) {
              const int64_t group = cuda ? std::max<int64_t>(1, std::min<int64_t>(64, iters)) : 1;
              for (int64_t g = 0; g < group; ++g) run(k);
              iters += group;
              be->sync();
              el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            }
            rates[k].push_back(double(iters) / el);
          }
        for (auto* g : graphs)
          if (g) be->graph_destroy(g);
        for (size_t k = 0; k < ex.size(); ++k) {
          std::sort(rates[k].begin(), rates[k].end());
          const size_t m = rates[k].size();
          const double eps = m % 2 ? rates[k][m / 2] : 0.5 * (rates[k][m / 2 - 1] + rates[k][m / 2]);
          std::printf("%s %s %lld %.1f %.1f%s%s\n", engine, name.c_str(), (long long)n, eps, eps * double(n),
                      tagged ? " " : "", tagged ? precisions[k].c_str() : "");
          std::fflush(stdout);
          if (profile)
            for (const auto& kv : ex[k]->profile_cpu(n, 3, by_node))
              std::fprintf(stderr, "  %s n=%lld %s %-8s %.6f s/eval\n", name.c_str(), (long long)n, precisions[k].c_str(),
                           kv.first.c_str(), kv.second / 3);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "almc_bench_onnx: %s\n", e.what());
    return 1;
  }
  return 0;
}
