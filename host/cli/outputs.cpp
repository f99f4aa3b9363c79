// Output safety for the subcommands: paths checked before a run, files replaced atomically (see
// host/io/file.hpp).
#include "host/cli/commands.hpp"
#include "host/io/file.hpp"

namespace almc::cli {

void prepare_outputs(std::initializer_list<std::pair<const char*, const std::string*>> outputs) {
  for (const auto& [option, path] : outputs) {
    if (!path || path->empty()) continue;
    try {
      almc::io::prepare_output(*path);
    } catch (const almc::io::IoError& e) {
      throw CliError(std::string(option) + " " + e.what());
    }
  }
}

void write_text_file(const std::string& option, const std::string& path, const std::string& text) {
  try {
    almc::io::write_file_atomic(path, text.data(), text.size());
  } catch (const almc::io::IoError& e) {
    throw CliError(option + " " + e.what());
  }
}

}  // namespace almc::cli
