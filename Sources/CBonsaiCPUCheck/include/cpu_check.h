// A start-up check that the CPU has every instruction-set extension this build was compiled for.
#ifndef BONSAI_CPU_CHECK_H
#define BONSAI_CPU_CHECK_H
#include <stddef.h>

/// Writes the extensions this CPU and operating system support (the names of build_target.h, each
/// preceded by one space) into `out`; an empty list on other architectures. Returns 0, or -1 if `cap` is too small.
int bonsai_cpu_host_features(char *out, size_t cap);

/// Writes the names in `required` that are not in `available` (both space-separated) into `out`,
/// space-separated. Returns how many are missing, or -1 if `cap` is too small.
int bonsai_cpu_missing_features(const char *required, const char *available, char *out, size_t cap);

/// The extensions this build was compiled to use (space-separated) and the CPU name it was compiled for.
const char *bonsai_cpu_build_features(void);
const char *bonsai_cpu_build_name(void);

/// Writes the CPU's brand string ("AMD EPYC 7B13 ...") into `out`; "unknown CPU" when it has none.
void bonsai_cpu_brand(char *out, size_t cap);

#endif
