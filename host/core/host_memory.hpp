// How much host memory a run may plan to use: the least of
//   - MemAvailable in /proc/meminfo (free memory plus the page cache the kernel can reclaim; the
//     free pages alone understate it on any machine that has read files),
//   - the room left under the cgroup (v2) limit of this process (memory.max - memory.current): in a
//     container or a batch job the machine's own figures overstate it, and going past the limit
//     gets the process killed,
//   - ALMC_HOST_MEMORY_LIMIT_MB when set (a positive number of MiB): a cap chosen by the user.
// The samplers and the ONNX executor refuse plans beyond it with ALMC_ERR_OUT_OF_MEMORY.
#pragma once

#include <cstddef>
#include <string>

namespace almc {

size_t available_host_memory();

namespace host_memory_detail {
// The parts, for tests: MemAvailable in bytes from the text of /proc/meminfo (0 when absent), the
// room under a cgroup v2 limit from memory.max's and memory.current's text ("max" or unreadable:
// SIZE_MAX), and the cap from ALMC_HOST_MEMORY_LIMIT_MB's value (unset or invalid: SIZE_MAX).
size_t meminfo_available(const std::string& meminfo);
size_t cgroup_room(const std::string& max_text, const std::string& current_text);
size_t env_cap(const char* value);
}  // namespace host_memory_detail

}  // namespace almc
