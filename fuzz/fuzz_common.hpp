// Helpers shared by the fuzz targets: a private scratch directory on a RAM disk when there is one,
// and one single-threaded CPU context per process.
#pragma once

#include <almc/almc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace almc_fuzz {

// A directory private to this process, created once; the fuzzers write their input there when the
// API under test takes a path.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("ALMC_FUZZ_TMP");
    std::string tmpl = std::string(base ? base : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp")) + "/almc_fuzz_XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    return tmpl;
  }();
  return dir;
}

inline bool write_file(const std::string& path, const void* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

// One single-threaded CPU context for the whole fuzzing process (a failure here is a finding).
inline almc_context_t cpu_context() {
  static almc_context_t ctx = [] {
    almc_context_config c = almc_context_config_default();
    c.backend = ALMC_BACKEND_CPU;
    c.n_threads = 1;
    almc_context_t h = nullptr;
    if (almc_context_create(&c, &h) != ALMC_OK) __builtin_trap();
    return h;
  }();
  return ctx;
}

}  // namespace almc_fuzz
