#include "host/io/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace almc::io {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw IoError(path + ": " + why); }

std::string errno_text(int err) { return std::strerror(err); }

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string human_bytes(uint64_t b) {
  if (b >= (uint64_t(1) << 30) && b % (uint64_t(1) << 30) == 0) return std::to_string(b >> 30) + " GiB";
  if (b >= (uint64_t(1) << 20) && b % (uint64_t(1) << 20) == 0) return std::to_string(b >> 20) + " MiB";
  return std::to_string(b) + " bytes";
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// The folder part of a path ("." when there is none) and whether the path names a folder.
std::string parent_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Creates `dir` and its missing parents (like mkdir -p).
void make_dirs(const std::string& dir, const std::string& for_path) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) fail(for_path, "'" + dir + "' is not a directory");
    return;
  }
  if (errno != ENOENT) fail(for_path, "cannot use the folder '" + dir + "': " + errno_text(errno));
  const std::string up = parent_of(dir);
  if (up != dir) make_dirs(up, for_path);
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    fail(for_path, "cannot create the folder '" + dir + "': " + errno_text(errno));
}

// The file actually replaced: an existing link to a regular file is followed, so the link stays.
// Throws when the destination exists and is not a regular file, or names a folder.
std::string destination(const std::string& path, struct stat* existing, bool* exists) {
  if (path.empty()) throw IoError("empty output path");
  if (path.back() == '/') fail(path, "is a directory");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) fail(path, "cannot use the path: " + errno_text(errno));
    struct stat lst;
    if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) fail(path, "is a link to a missing file");
    *exists = false;
    return path;
  }
  if (!S_ISREG(st.st_mode)) fail(path, "is " + kind_of(st.st_mode) + ", not a regular file: refusing to write it");
  // A write-protected file is kept (the rename would replace it, permissions or not, as root too).
  if ((st.st_mode & 0222) == 0) fail(path, "is read-only: refusing to replace it (make it writable or choose another file)");
  *exists = true;
  *existing = st;
  struct stat lst;
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf)) return buf;
  }
  return path;
}

// Opens a new, empty file next to `target` (same folder, so the rename stays on one file system).
int create_scratch(const std::string& target, std::string* name) {
  static std::atomic<unsigned> counter{0};
  const std::string dir = parent_of(target);
  const std::string base = target.substr(target.find_last_of('/') == std::string::npos ? 0 : target.find_last_of('/') + 1);
  for (int attempt = 0; attempt < 100; ++attempt) {
    *name = (dir == "/" ? "" : dir) + "/." + base + ".tmp-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter.fetch_add(1));
    const int fd = ::open(name->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) fail(target, "cannot create a file in '" + dir + "': " + errno_text(errno));
  }
  fail(target, "cannot find a free temporary name in '" + dir + "'");
}

}  // namespace

std::vector<unsigned char> read_regular_file(const std::string& path, uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO with no writer must not wait; the type is checked right after.
  Fd f(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (f.fd < 0) fail(path, "cannot open: " + errno_text(errno));
  struct stat st;
  if (::fstat(f.fd, &st) != 0) fail(path, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "is " + kind_of(st.st_mode) + ", not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes)
    fail(path, "the file has " + std::to_string(size) + " bytes, over the limit of " + human_bytes(max_bytes));
  std::vector<unsigned char> buf(static_cast<size_t>(size));
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(f.fd, buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "read error: " + errno_text(errno));
    }
    if (n == 0) break;  // the file shrank while being read: keep what is there
    got += static_cast<size_t>(n);
  }
  buf.resize(got);
  return buf;
}

void prepare_output(const std::string& path) {
  struct stat existing;
  bool exists = false;
  const std::string target = destination(path, &existing, &exists);
  make_dirs(parent_of(target), path);
  std::string scratch;
  const int fd = create_scratch(target, &scratch);
  ::close(fd);
  ::unlink(scratch.c_str());
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  struct stat existing;
  bool exists = false;
  const std::string target = destination(path, &existing, &exists);
  make_dirs(parent_of(target), path);
  std::string scratch;
  int fd = create_scratch(target, &scratch);
  auto abandon = [&](const std::string& why) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(scratch.c_str());
    fail(path, why + ": " + errno_text(err) + (exists ? " (the previous file is unchanged)" : ""));
  };
  const auto* p = static_cast<const unsigned char*>(data);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, p + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon("write error");
    }
    done += static_cast<size_t>(n);
  }
  if (exists) (void)::fchmod(fd, existing.st_mode & 07777);  // keep the previous file's permissions
  if (::fsync(fd) != 0 && errno != EINVAL) abandon("cannot flush to disk");
  const int closing = fd;
  fd = -1;
  if (::close(closing) != 0) abandon("write error on close");
  if (::rename(scratch.c_str(), target.c_str()) != 0) abandon("cannot replace the file");
  // Make the rename itself durable (best effort: some file systems refuse fsync on folders).
  Fd dir(::open(parent_of(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd >= 0) (void)::fsync(dir.fd);
}

}  // namespace almc::io
