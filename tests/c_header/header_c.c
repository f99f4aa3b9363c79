/* Compiled as strict C99 with -pedantic -Werror: the public header must need nothing else. */
#include <almc/almc.h>

int almc_header_c_version_major(void) {
  almc_sampler_config cfg = almc_sampler_config_default();
  return (int)(cfg.struct_size > 0) * ALMC_VERSION_MAJOR + (almc_status_string(ALMC_OK) != 0);
}
