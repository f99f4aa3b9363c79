// Safe file access for every input and output of the library and the command line.
//
// Inputs are read only from regular files, with a size cap named in the refusal, so a device
// (/dev/zero), a FIFO or a directory fails at once with one line instead of hanging or filling
// memory. Outputs are written atomically: the bytes go to a new file in the destination's folder,
// are flushed to disk and then renamed over the destination, so a kill, a full disk or a write
// error leaves the previous file as it was. An existing destination that is not a regular file
// (a device, a FIFO, a directory) or that is write-protected (no write permission bit) is never
// opened, truncated, replaced or removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "host/io/npy.hpp"  // IoError

namespace almc::io {

// Caps on what one input file may hold (bytes).
constexpr uint64_t kMaxArrayFileBytes = uint64_t(32) << 30;  // .npy arrays: 32 GiB
constexpr uint64_t kMaxModelFileBytes = uint64_t(2) << 30;   // ONNX models: 2 GiB (protobuf's own limit)
constexpr uint64_t kMaxJsonFileBytes = uint64_t(256) << 20;  // JSON priors: 256 MiB
constexpr uint64_t kMaxImageFileBytes = uint64_t(256) << 20; // PNG images: 256 MiB

// The whole content of the regular file at `path`. Throws IoError "<path>: <why>" when it cannot be
// opened, is not a regular file (never blocks on a FIFO) or holds more than max_bytes.
std::vector<unsigned char> read_regular_file(const std::string& path, uint64_t max_bytes);

// Checks, before any long computation, that `path` can be written: an existing path must be a
// regular file (or a link to one); missing parent folders are created; a scratch file is created
// and removed in the folder to prove it is writable. Never opens or truncates an existing file.
// Throws IoError "<path>: <why>".
void prepare_output(const std::string& path);

// Replaces (or creates) the file at `path` with `size` bytes, atomically (see above). Throws
// IoError "<path>: <why, with the system's errno text>"; the previous file is then unchanged.
void write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace almc::io
