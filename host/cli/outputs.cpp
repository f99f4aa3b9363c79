// Output safety for the subcommands: paths checked before a run, files replaced atomically (see
// host/io/file.hpp).
#include "host/cli/commands.hpp"
#include "host/io/file.hpp"

#include <cstdio>

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

void JsonReport::add_option(CLI::App* app, const std::string& what, bool has_positionals) {
  const std::string help = what + ": alone (or =-) on stdout instead of the text; =FILE writes it to FILE";
  if (has_positionals) {
    // A flag never takes the next word as its value: `inspect --json model.onnx` keeps its model.
    opt_ = app->add_flag("--json{-}", target_, help);
  } else {
    opt_ = app->add_option("--json", target_, help)->expected(0, 1)->default_str("-");
  }
  opt_->type_name("[=FILE]");
}

void JsonReport::prepare() const {
  if (wanted() && !on_stdout()) prepare_outputs({{"--json", &target_}});
}

void JsonReport::emit(const nlohmann::json& report) const {
  if (!wanted()) return;
  const auto bad_utf8 = nlohmann::json::error_handler_t::replace;
  if (on_stdout())
    std::printf("%s\n", report.dump(-1, ' ', false, bad_utf8).c_str());
  else
    write_text_file("--json", target_, report.dump(1, ' ', false, bad_utf8) + "\n");
}

}  // namespace almc::cli
