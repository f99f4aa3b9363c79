// What the almc command's end-to-end tests share: finding the executable, running it with its
// output captured, the fixture with a scratch directory, and checks on messages and figures.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host/io/image.hpp"

namespace almc_cli_test {

inline std::string almc_exe() {
  if (const char* e = std::getenv("ALMC_EXE"); e && *e) return e;
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    std::string p(buf);
    p = p.substr(0, p.rfind('/')) + "/almc";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct Result {
  int code = -1;
  std::string out, err;
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    exe_ = almc_exe();
    if (exe_.empty()) GTEST_SKIP() << "almc executable not found (set ALMC_EXE)";
    char tmpl[] = "/tmp/almc_cli_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // shell: run through `sh -c` with this prefix before the command (limits, traps, timeout).
  Result run(const std::string& args, const std::string& shell = "") const {
    const std::string out = path("stdout.txt"), err = path("stderr.txt");
    const std::string exec = "'" + exe_ + "' " + args + " >'" + out + "' 2>'" + err + "' </dev/null";
    const std::string cmd = shell.empty() ? exec : "sh -c \"" + shell + " " + exec + "\"";
    const int st = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // Starts `args` in the background (stdout/stderr to bg_out.txt/bg_err.txt); returns its pid (the
  // almc process itself: the shell execs it).
  pid_t start(const std::string& args) const {
    const std::string cmd = "exec '" + exe_ + "' " + args + " >'" + path("bg_out.txt") + "' 2>'" + path("bg_err.txt") +
                            "' </dev/null";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  }
  // Waits up to `seconds` for the process; -1 if it is still running (then it is killed).
  static int wait_for(pid_t pid, double seconds) {
    int st = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (::waitpid(pid, &st, WNOHANG) == 0) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &st, 0);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return st;
  }

  // A 1-component Gaussian prior N(m, s2 I) in d = 4 as GMM JSON.
  std::string gaussian_prior() const {
    const std::string p = path("prior.json");
    std::ofstream f(p);
    f << R"({"weights": [1.0], "means": [[0.5, -1.0, 0.0, 2.0]], "variances": [[0.25, 0.25, 0.25, 0.25]]})";
    return p;
  }

  std::string exe_, dir_;
};

// A failure must be: non-zero exit, no crash (exit code < 128), exactly one line on stderr
// mentioning `needle`.
inline void expect_one_line_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.code, 0) << r.err;
  EXPECT_LT(r.code, 128) << "crashed or killed: " << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "message lacks '" << needle << "': " << r.err;
}

// How often the built-in font's glyph for c appears in a figure drawn at text scale 1: black
// (0) where the glyph has a pixel and white (255) in the rest of its 5 x 7 cell. Image tiles are
// upscaled by at least 2 in the figures, so a single-pixel pattern there cannot come from them.
inline int count_glyph(const almc::io::Image8& im, char c) {
  almc::io::Image8 g;
  g.width = 6;
  g.height = 8;
  g.channels = 1;
  g.pixels.assign(48, 255);
  almc::io::draw_text(g, 0, 0, std::string(1, c), 1, 0);
  int found = 0;
  for (int y = 0; y + 7 <= im.height; ++y)
    for (int x = 0; x + 5 <= im.width; ++x) {
      bool same = true;
      for (int r = 0; r < 7 && same; ++r)
        for (int k = 0; k < 5 && same; ++k)
          for (int ch = 0; ch < im.channels && same; ++ch)
            same = im.pixels[(size_t(y + r) * size_t(im.width) + size_t(x + k)) * size_t(im.channels) + size_t(ch)] ==
                   g.pixels[size_t(r * 6 + k)];
      found += same;
    }
  return found;
}

}  // namespace almc_cli_test
