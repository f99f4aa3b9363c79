// The public header included alone from C++, linked with an object compiled from C.
#include <almc/almc.h>
#include <cstring>

extern "C" int almc_header_c_version_major(void);

int main() {
  if (almc_header_c_version_major() != ALMC_VERSION_MAJOR + 1) return 1;
  return std::strlen(almc_version()) > 0 ? 0 : 1;
}
