// `almc info`: version, build, backends and CUDA devices.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "host/cli/commands.hpp"

namespace almc::cli {
namespace {

struct InfoOptions {
  JsonReport json;
};

void run_info(const InfoOptions& o) {
  o.json.prepare();
  nlohmann::json j;
  j["version"] = almc_version();
  j["build"] = almc_build_info();
  int n_dev = 0;
  if (almc_cuda_device_count(&n_dev) != ALMC_OK) n_dev = 0;
  nlohmann::json backends = {"cpu"};
  if (n_dev > 0) backends.push_back("cuda");
  j["backends"] = backends;
  j["cuda_devices"] = n_dev;
  nlohmann::json names = nlohmann::json::array();
  for (int i = 0; i < n_dev; ++i) {
    almc_context_config cfg = almc_context_config_default();
    cfg.backend = ALMC_BACKEND_CUDA;
    cfg.device = i;
    almc_context_t ctx = nullptr;
    if (almc_context_create(&cfg, &ctx) == ALMC_OK) {
      const char* name = almc_context_device_name(ctx);
      names.push_back(name ? name : "?");
    } else {
      names.push_back(std::string("unavailable: ") + (ctx ? almc_context_last_error(ctx) : ""));
    }
    almc_context_destroy(ctx);
  }
  j["cuda_device_names"] = names;
  {
    almc_context_config cfg = almc_context_config_default();
    cfg.backend = ALMC_BACKEND_CPU;
    almc_context_t ctx = nullptr;
    if (almc_context_create(&cfg, &ctx) == ALMC_OK) j["cpu_device"] = almc_context_device_name(ctx);
    almc_context_destroy(ctx);
  }
  // The command sets OMP_WAIT_POLICY=passive before OpenMP starts unless the user chose (main.cpp).
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  j["omp_wait_policy"] = policy ? policy : "";
  j["gomp_spincount"] = spin ? spin : "";
  o.json.emit(j);
  if (o.json.on_stdout()) return;
  std::printf("almc %s\n", almc_version());
  std::printf("build: %s\n", almc_build_info());
  std::printf("backends usable: cpu%s\n", n_dev > 0 ? ", cuda" : "");
  if (j.contains("cpu_device")) std::printf("cpu: %s\n", j["cpu_device"].get<std::string>().c_str());
  std::printf("openmp waiting: %s%s%s\n", policy ? policy : (spin ? "" : "OpenMP's default (spinning)"),
              spin ? (policy ? ", GOMP_SPINCOUNT=" : "GOMP_SPINCOUNT=") : "", spin ? spin : "");
  std::printf("cuda devices: %d\n", n_dev);
  for (int i = 0; i < n_dev; ++i) std::printf("  %d: %s\n", i, names[i].get<std::string>().c_str());
}

}  // namespace

void register_info_command(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand("info", "Version, build options, backends and devices");
  o->json.add_option(sub, "the same as JSON");
  sub->callback([o]() { run_info(*o); });
}

}  // namespace almc::cli
