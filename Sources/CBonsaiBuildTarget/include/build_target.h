// What this build of Bonsai was compiled for: the CPU name given to the compiler and the x86
// instruction-set extensions it enabled, as a space-separated list ("avx2 fma ...").
#ifndef BONSAI_BUILD_TARGET_H
#define BONSAI_BUILD_TARGET_H

/// The CPU the Swift targets were compiled for (BONSAI_TARGET_CPU, "native" by default on x86-64).
extern const char bonsai_build_cpu[];
/// The extensions the compiler may have used, each preceded by one space, in /proc/cpuinfo's spelling.
extern const char bonsai_build_features[];

#endif
