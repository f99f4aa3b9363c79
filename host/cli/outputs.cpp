// Output safety for the subcommands: paths checked before a run, files replaced atomically (see
// host/io/file.hpp).
#include "host/cli/commands.hpp"
#include "host/io/file.hpp"

#include <sys/stat.h>

#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

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

namespace {

// The absolute path `path` names, with every link resolved: each component that exists is
// resolved by the system (realpath), each missing one (a folder an output will create, the file
// itself) is kept as spelt, and ".." after a missing folder returns to the folder before it, as it
// will once that folder is made. So every spelling of one file gives the same string.
std::string resolved_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path abs = fs::absolute(path, ec);
  if (ec) return path;
  fs::path cur = "/";
  for (const fs::path& part : abs.relative_path()) {
    const std::string name = part.string();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      cur = cur.parent_path();  // cur holds no link, so its parent is the real one
      continue;
    }
    char buf[PATH_MAX];
    const fs::path next = cur / part;
    cur = ::realpath(next.c_str(), buf) ? fs::path(buf) : next;
  }
  return cur.string();
}

// What identifies the file a path names: its device and inode when it exists (however the path is
// spelt, through missing folders too), else its resolved path.
std::string file_identity(const std::string& path) {
  const std::string resolved = resolved_path(path);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 || ::stat(resolved.c_str(), &st) == 0)
    return "inode " + std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
           std::to_string(static_cast<unsigned long long>(st.st_ino));
  return "path " + resolved;
}

}  // namespace

void check_distinct_files(const NamedPaths& outputs, const NamedPaths& inputs) {
  std::vector<std::pair<std::string, const std::pair<std::string, std::string>*>> seen;
  for (const auto& in : inputs)
    if (!in.second.empty()) seen.emplace_back(file_identity(in.second), &in);
  const size_t n_inputs = seen.size();
  for (const auto& out : outputs) {
    if (out.second.empty()) continue;
    const std::string id = file_identity(out.second);
    for (size_t k = 0; k < seen.size(); ++k) {
      if (seen[k].first != id) continue;
      const auto& [option, path] = *seen[k].second;
      if (k < n_inputs)
        throw CliError(out.first + " " + out.second + " is the input " + option + " " + path +
                           ": writing it would replace the input (choose another file)",
                       2);
      throw CliError(out.first + " " + out.second + " is the same file as " + option + " " + path +
                         ": give each output its own file",
                     2);
    }
    seen.emplace_back(id, &out);
  }
}

NamedPaths input_files(const std::vector<std::string>& input_specs) {
  NamedPaths files;
  for (const std::string& spec : input_specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos) continue;
    const std::string value = spec.substr(eq + 1);
    // As ScoreOptions::onnx_config reads it: a number unless it names a .npy file.
    char* end = nullptr;
    std::strtod(value.c_str(), &end);
    std::string ext = value.size() >= 4 ? value.substr(value.size() - 4) : std::string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool npy = ext == ".npy";
    if (value.empty() || (end && *end == 0 && !npy)) continue;
    files.emplace_back("--input " + spec.substr(0, eq), value);
  }
  return files;
}

void write_text_file(const std::string& option, const std::string& path, const std::string& text) {
  try {
    almc::io::write_file_atomic(path, text.data(), text.size());
  } catch (const almc::io::IoError& e) {
    throw CliError(option + " " + e.what());
  }
  output_written(path);
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
