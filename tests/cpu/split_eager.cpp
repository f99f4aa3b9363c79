// Every test in this program splits small CPU work over its threads as if OpenMP's threads spun
// (host/core/parallel.hpp): under ctest's passive OpenMP the small problems of the thread- and
// batch-invariance tests would otherwise run on one thread, and those tests would check nothing.
#include <cstdlib>

namespace {
const int kSplitEager = [] { return setenv("ALMC_CPU_SPLIT", "eager", 0); }();
}  // namespace
