// Placeholder: `almc validate` (the closed-form table) belongs to the samplers work, which
// replaces this file with the real command.
#include "host/cli/commands.hpp"

namespace almc::cli {

void register_validate_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("validate", "Closed-form validation table of the samplers (not built yet)");
  sub->allow_extras();
  sub->callback([]() { throw CliError("almc validate: not built yet", 2); });
}

}  // namespace almc::cli
