// The almc command line: sample, eval, info, demo, validate, bench, merge.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <unistd.h>

#include "host/cli/commands.hpp"
#include "host/cli/team.hpp"

namespace {

// Passive OpenMP waiting by default. GNU OpenMP reads OMP_WAIT_POLICY once, in its load-time
// initialiser, and by default spins (300k rounds) after each parallel pass: on a machine shared
// with other busy processes the spinning threads take the cores the working ones need, and runs
// take many times longer. main() is too late to set the variable, and so is a setenv() in the
// executable's .preinit_array (which runs before every library's initialiser): libc's own
// initialiser then puts back the environment the process started with. So the .preinit_array
// function re-executes the command once, with OMP_WAIT_POLICY=passive added, before any library
// has initialised (the cost is the loader's relocation work, a few ms). Nothing happens when the
// user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT set) or when /proc/self/exe cannot be
// executed (the run then goes on with libgomp's default). Only plain C here: nothing is set up yet.
bool env_has(char** envp, const char* prefix) {
  const size_t n = std::strlen(prefix);
  for (char** e = envp; e && *e; ++e)
    if (std::strncmp(*e, prefix, n) == 0) return true;
  return false;
}
void default_passive_wait(int, char** argv, char** envp) {
  if (!argv || !envp || env_has(envp, "OMP_WAIT_POLICY=") || env_has(envp, "GOMP_SPINCOUNT=")) return;
  size_t n = 0;
  while (envp[n]) ++n;
  char** env = static_cast<char**>(__builtin_alloca((n + 2) * sizeof(char*)));
  for (size_t i = 0; i < n; ++i) env[i] = envp[i];
  env[n] = const_cast<char*>("OMP_WAIT_POLICY=passive");
  env[n + 1] = nullptr;
  execve("/proc/self/exe", argv, env);  // returns only on failure
}
__attribute__((section(".preinit_array"), used)) void (*const run_default_passive_wait)(int, char**, char**) =
    default_passive_wait;

// CLI11's errors are one line already; keep ours in the same shape, prefixed by the command path.
std::string command_path(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands())
    if (sub->parsed()) return "almc " + sub->get_name();
  return "almc";
}

}  // namespace

int main(int argc, char** argv) {
  // A write beyond the file-size limit (ulimit -f) would kill the command by SIGXFSZ, without a
  // word and with its temporary file left behind: ignored, the write fails with EFBIG and the
  // command reports it as it reports a full disk, keeping the previous file.
  std::signal(SIGXFSZ, SIG_IGN);
  // The same for a closed pipe on stdout (`almc sample --json | head -c0`): SIGPIPE killed the
  // command without a word (status 141); ignored, the write fails with EPIPE and the command says
  // it could not write its output (exit 1).
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"almc: posterior sampling with score-based priors (annealed Langevin Monte Carlo)", "almc"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(almc_version()));
  // A later repetition of an option overrides an earlier one (handy for scripts that append).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  try {
    almc::cli::register_sample_command(app);
    almc::cli::register_eval_command(app);
    almc::cli::register_info_command(app);
    almc::cli::register_demo_command(app);
    almc::cli::register_inspect_command(app);
    almc::cli::register_validate_command(app);
    almc::cli::register_bench_command(app);
    almc::cli::register_merge_command(app);
    almc::cli::check_numbers(app);
    if (argc > 1 && argv[1][0] != '-') {
      bool known = false;
      std::string names;
      for (const CLI::App* sub : app.get_subcommands({})) {
        known = known || sub->get_name() == argv[1];
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      if (!known) throw almc::cli::CliError(std::string("unknown command '") + argv[1] + "' (use " + names + ")", 2);
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const almc::cli::SilentError& e) {
    return almc::cli::quiet_rank_exit_code(e.exit_code());  // another MPI rank reports it
  } catch (const CLI::ParseError& e) {
    // A value our validators refuse (option_checks.cpp) is bad usage like the commands' own checks: 2.
    const bool ours = dynamic_cast<const CLI::ValidationError*>(&e) != nullptr;
    const int code = ours || e.get_exit_code() == 0 ? 2 : e.get_exit_code();
    if (!almc::cli::prints_errors()) return almc::cli::quiet_rank_exit_code(code);
    std::string msg = e.what();
    for (auto& c : msg)
      if (c == '\n') c = ' ';
    std::fprintf(stderr, "%s: error: %s (see --help)\n", command_path(app).c_str(), msg.c_str());
    return code;
  } catch (const almc::cli::CliError& e) {
    std::fflush(stdout);
    if (!almc::cli::prints_errors()) return almc::cli::quiet_rank_exit_code(e.exit_code());
    std::fprintf(stderr, "%s: error: %s\n", command_path(app).c_str(), e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", command_path(app).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", command_path(app).c_str(), e.what());
    return 1;
  }
  // What the command printed must have reached stdout (a full disk, a closed pipe): never exit 0
  // with the summary lost.
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int err = errno;
    std::fprintf(stderr, "%s: error: cannot write to standard output: %s\n", command_path(app).c_str(),
                 err ? std::strerror(err) : "write error");
    return 1;
  }
  return 0;
}
