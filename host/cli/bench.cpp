// Placeholder: `almc bench` (throughput) belongs to the benchmarks work, which replaces this file
// with the real command.
#include "host/cli/commands.hpp"

namespace almc::cli {

void register_bench_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("bench", "Throughput benchmarks (not built yet)");
  sub->allow_extras();
  sub->callback([]() { throw CliError("almc bench: not built yet", 2); });
}

}  // namespace almc::cli
