// Fuzz target: the almc command's argument handling. The input is split into argv tokens at '\n'
// (the first token is the subcommand), parsed by the same CLI::App that main() builds, and the
// subcommand's callback runs, so option validation (shapes, operator specs, method names, number
// ranges) and the fail-fast checks on files are exercised, not just CLI11.
//
// What keeps a fuzzed command line from becoming a long run or touching the machine:
//   - the process works in a private scratch directory holding a few tiny fixtures (a 2-D GMM
//     prior p.json, y.npy, mask.npy, levels.npy, a small ONNX model m.onnx with x.npy); every '/'
//     in a token becomes '_', so no path leaves that directory (no /dev/zero, no ../);
//   - `sample` gets caps appended (later options win: TakeLast, as in main()): CPU backend, one
//     thread, at most 4 chains, 3 levels x 2 steps, a small ALMC time horizon, quiet;
//   - `demo`, `bench` and `validate` only parse: their runs (long by design) are skipped;
//   - files written by a run are removed and the fixtures restored after each input.
// CLI11 parse errors and CliError are the expected outcomes of bad input; any other exception
// escaping (main() would print it as an internal error) is a finding, as is a crash.
#include <dirent.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.hpp"
#include "host/cli/commands.hpp"
#include "host/io/npy.hpp"

namespace {

std::map<std::string, std::vector<unsigned char>> make_fixtures() {
  using almc::io::DType;
  using almc::io::encode_npy;
  std::map<std::string, std::vector<unsigned char>> f;
  const std::string prior = R"({"weights": [1, 2], "means": [[0, 0], [1, -1]], "variances": [0.5, [1, 2]]})";
  f["p.json"] = std::vector<unsigned char>(prior.begin(), prior.end());
  const float y[2] = {0.5f, -0.25f};
  f["y.npy"] = encode_npy(y, DType::F32, {2});
  const float mask[2] = {1.f, 0.f};
  f["mask.npy"] = encode_npy(mask, DType::F32, {2});
  const double levels[3] = {1.0, 0.3, 0.05};
  f["levels.npy"] = encode_npy(levels, DType::F64, {3});
  const float img[16] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, -0.1f, -0.2f, -0.3f, -0.4f, 0, 0, 0, 0};
  f["img.npy"] = encode_npy(img, DType::F32, {1, 4, 4});
  const float blur[9] = {0, 0.25f, 0, 0.25f, 0, 0.25f, 0, 0.25f, 0};
  f["k.npy"] = encode_npy(blur, DType::F32, {3, 3});
  const float mat[4] = {1, 0, 0.5f, 2};
  f["A.npy"] = encode_npy(mat, DType::F32, {2, 2});
  // A small ONNX model when the test data are at hand (ALMC_TEST_DATA or the source tree).
  const char* td = std::getenv("ALMC_TEST_DATA");
  for (const std::string dir : {std::string(td ? td : ""), std::string(ALMC_FUZZ_TEST_DATA)}) {
    if (dir.empty()) continue;
    FILE* in = std::fopen((dir + "/onnx/gauss_vp_eps.onnx").c_str(), "rb");
    if (!in) continue;
    std::vector<unsigned char> bytes;
    unsigned char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    std::fclose(in);
    f["m.onnx"] = bytes;
    try {
      const auto x = almc::io::read_npy_f32(dir + "/onnx/gauss_vp_eps_x.npy");
      f["x.npy"] = encode_npy(x.data.data(), DType::F32, x.shape);
    } catch (const std::exception&) {
    }
    break;
  }
  return f;
}

const std::map<std::string, std::vector<unsigned char>>& fixtures() {
  static const auto f = make_fixtures();
  return f;
}

void reset_scratch() {
  const std::string& dir = almc_fuzz::scratch_dir();
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") unlink((dir + "/" + name).c_str());
    }
    closedir(d);
  }
  for (const auto& [name, bytes] : fixtures()) almc_fuzz::write_file(dir + "/" + name, bytes.data(), bytes.size());
}

struct SkipRun {};

void run_command_line(std::vector<std::string> tokens) {
  CLI::App app{"almc (fuzz)", "almc"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(almc_version()));
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  almc::cli::register_sample_command(app);
  almc::cli::register_eval_command(app);
  almc::cli::register_info_command(app);
  almc::cli::register_demo_command(app);
  almc::cli::register_validate_command(app);
  almc::cli::register_bench_command(app);
  almc::cli::check_numbers(app);  // as main() does
  // Replacing these callbacks would destroy the options they own (CLI11 binds options to them), so
  // the run is skipped from the parse-complete hook instead: it fires after the subcommand's own
  // options are parsed and checked, before the final callback.
  for (const char* name : {"demo", "bench", "validate"})
    app.get_subcommand(name)->parse_complete_callback([] { throw SkipRun{}; });

  if (!tokens.empty() && tokens[0] == "sample")
    for (const char* cap : {"--backend", "cpu", "--threads", "1", "--chains", "4", "--levels", "3", "--steps-per-level",
                            "2", "--t-start", "0.2", "--t-stop", "0.1", "--kappa", "0.5", "--warm-steps", "2",
                            "--check-every", "1", "--png-samples", "2", "--quiet"})
      tokens.emplace_back(cap);
  else if (!tokens.empty() && tokens[0] == "eval")
    for (const char* cap : {"--backend", "cpu", "--threads", "1"}) tokens.emplace_back(cap);

  std::vector<char*> argv;
  std::string prog = "almc";
  argv.push_back(prog.data());
  for (auto& t : tokens) argv.push_back(t.data());
  try {
    app.parse(int(argv.size()), argv.data());
  } catch (const CLI::Error&) {
  } catch (const SkipRun&) {
  } catch (const almc::cli::CliError& e) {
    if (!*e.what()) __builtin_trap();  // an error must say what is wrong
  } catch (const std::bad_alloc&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  reset_scratch();
  if (chdir(almc_fuzz::scratch_dir().c_str()) != 0) __builtin_trap();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::vector<std::string> tokens(1);
  for (size_t i = 0; i < size; ++i) {
    const char c = char(data[i]);
    if (c == '\n') {
      tokens.emplace_back();
      continue;
    }
    tokens.back() += (c == '/' || c == '\0') ? '_' : c;
  }
  if (tokens.size() > 64) return 0;
  run_command_line(std::move(tokens));
  reset_scratch();
  return 0;
}
