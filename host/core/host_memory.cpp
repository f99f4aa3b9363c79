#include "host/core/host_memory.hpp"

#include "host/core/parse_count.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

namespace almc {

namespace host_memory_detail {

namespace {
constexpr size_t kNone = std::numeric_limits<size_t>::max();

// A count from a file's text (surrounding blanks and the newline removed).
bool parse_u64(const std::string& text, unsigned long long& v) {
  size_t a = 0, b = text.size();
  while (a < b && (text[a] == ' ' || text[a] == '\t')) ++a;
  while (b > a && (text[b - 1] == '\n' || text[b - 1] == ' ' || text[b - 1] == '\t')) --b;
  uint64_t u = 0;
  if (!parse_count(text.substr(a, b - a), u)) return false;
  v = u;
  return true;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  if (!f) return {};
  return std::string(std::istreambuf_iterator<char>(f), {});
}
}  // namespace

size_t meminfo_available(const std::string& meminfo) {
  std::istringstream in(meminfo);
  std::string key;
  unsigned long long kib = 0;
  std::string unit;
  while (in >> key) {
    if (key == "MemAvailable:") {
      if (in >> kib) return kib > kNone / 1024 ? kNone : size_t(kib) * 1024;
      return 0;
    }
    std::getline(in, unit);  // the rest of the line
  }
  return 0;
}

size_t cgroup_room(const std::string& max_text, const std::string& current_text) {
  unsigned long long mx = 0, cur = 0;
  if (!parse_u64(max_text, mx)) return kNone;  // "max", or no cgroup v2 limit to read
  if (!parse_u64(current_text, cur)) cur = 0;
  return cur >= mx ? 0 : size_t(mx - cur);
}

size_t env_cap(const char* value) {
  if (!value || !*value) return kNone;
  unsigned long long mib = 0;
  if (!parse_u64(value, mib) || mib == 0 || mib > kNone / (size_t(1) << 20)) return kNone;
  return size_t(mib) << 20;
}

}  // namespace host_memory_detail

size_t available_host_memory() {
  using namespace host_memory_detail;
  size_t avail = meminfo_available(slurp("/proc/meminfo"));
  if (avail == 0) {  // no /proc: the free pages
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    avail = pages > 0 && page > 0 ? size_t(pages) * size_t(page) : kNone;
  }
  // The process's own cgroup (v2: one line "0::/path").
  const std::string cg = slurp("/proc/self/cgroup");
  const size_t p = cg.find("0::");
  if (p != std::string::npos) {
    std::string rel = cg.substr(p + 3);
    rel = rel.substr(0, rel.find('\n'));
    const std::string dir = "/sys/fs/cgroup" + (rel == "/" ? std::string() : rel);
    const size_t room = cgroup_room(slurp(dir + "/memory.max"), slurp(dir + "/memory.current"));
    if (room < avail) avail = room;
  }
  const size_t cap = env_cap(std::getenv("ALMC_HOST_MEMORY_LIMIT_MB"));
  return cap < avail ? cap : avail;
}

}  // namespace almc
