// ALMC_TEST_SANITIZED is defined when the test program (and so the library and the almc command
// built beside it) is compiled with AddressSanitizer or ThreadSanitizer. GCC names such a build with
// __SANITIZE_*__, clang with __has_feature. Tests use it where a sanitizer changes what they measure
// (peak memory) or makes a fixed-size workload several times slower than the test needs.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALMC_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALMC_TEST_SANITIZED 1
#endif
#endif
