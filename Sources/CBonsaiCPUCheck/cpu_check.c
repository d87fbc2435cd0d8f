// Runs before main (an ELF constructor) in every binary that links Bonsai, and is compiled without
// any -march flag (Package.swift), so it executes on any x86-64 CPU. If the CPU lacks an extension
// the Swift code was compiled for (build_target.c lists them), it prints one line naming what is
// missing and how to rebuild, and exits with status 1, before any wide instruction can run.
#include "cpu_check.h"
#include "build_target.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

enum { EAX, EBX, ECX, EDX };
// XCR0 state the operating system must save for the register file an extension uses.
#define XCR0_AVX 0x06u      /* SSE + AVX (ymm) state */
#define XCR0_AVX512 0xE6u   /* + opmask, upper zmm0-15, zmm16-31 */

struct feature { const char *name; unsigned leaf, subleaf, reg, bit, xcr0; };
static const struct feature features[] = {
  {"sse3", 1, 0, ECX, 0, 0},          {"ssse3", 1, 0, ECX, 9, 0},
  {"sse4_1", 1, 0, ECX, 19, 0},       {"sse4_2", 1, 0, ECX, 20, 0},
  {"popcnt", 1, 0, ECX, 23, 0},       {"movbe", 1, 0, ECX, 22, 0},
  {"abm", 0x80000001u, 0, ECX, 5, 0}, {"bmi1", 7, 0, EBX, 3, 0},
  {"bmi2", 7, 0, EBX, 8, 0},          {"adx", 7, 0, EBX, 19, 0},
  {"avx", 1, 0, ECX, 28, XCR0_AVX},   {"f16c", 1, 0, ECX, 29, XCR0_AVX},
  {"fma", 1, 0, ECX, 12, XCR0_AVX},   {"avx2", 7, 0, EBX, 5, XCR0_AVX},
  {"avx_vnni", 7, 1, EAX, 4, XCR0_AVX}, {"gfni", 7, 0, ECX, 8, 0},
  {"vaes", 7, 0, ECX, 9, XCR0_AVX},   {"vpclmulqdq", 7, 0, ECX, 10, XCR0_AVX},
  {"avx512f", 7, 0, EBX, 16, XCR0_AVX512},       {"avx512dq", 7, 0, EBX, 17, XCR0_AVX512},
  {"avx512cd", 7, 0, EBX, 28, XCR0_AVX512},      {"avx512bw", 7, 0, EBX, 30, XCR0_AVX512},
  {"avx512vl", 7, 0, EBX, 31, XCR0_AVX512},      {"avx512ifma", 7, 0, EBX, 21, XCR0_AVX512},
  {"avx512vbmi", 7, 0, ECX, 1, XCR0_AVX512},     {"avx512_vbmi2", 7, 0, ECX, 6, XCR0_AVX512},
  {"avx512_vnni", 7, 0, ECX, 11, XCR0_AVX512},   {"avx512_bitalg", 7, 0, ECX, 12, XCR0_AVX512},
  {"avx512_vpopcntdq", 7, 0, ECX, 14, XCR0_AVX512}, {"avx512_bf16", 7, 1, EAX, 5, XCR0_AVX512},
  {"avx512_fp16", 7, 0, EDX, 23, XCR0_AVX512},
};

static unsigned xcr0(void) {
  unsigned a, b, c, d;
  __cpuid(1, a, b, c, d);
  if (!(c & (1u << 27))) return 0;  // no OSXSAVE: the OS saves no extended state
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo;
}

int bonsai_cpu_host_features(char *out, size_t cap) {
  if (cap == 0) return -1;
  out[0] = 0;
  unsigned os = xcr0(), maxLeaf = __get_cpuid_max(0, NULL), maxExt = __get_cpuid_max(0x80000000u, NULL);
  size_t used = 0;
  for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
    const struct feature *f = &features[i];
    unsigned r[4] = {0, 0, 0, 0};
    if (f->leaf >= 0x80000000u ? f->leaf > maxExt : f->leaf > maxLeaf) continue;
    __cpuid_count(f->leaf, f->subleaf, r[EAX], r[EBX], r[ECX], r[EDX]);
    if (!(r[f->reg] & (1u << f->bit)) || (os & f->xcr0) != f->xcr0) continue;
    size_t n = strlen(f->name) + 1;
    if (used + n + 1 > cap) return -1;
    out[used] = ' ';
    memcpy(out + used + 1, f->name, n);  // copies the terminator too
    used += n;
  }
  return 0;
}

void bonsai_cpu_brand(char *out, size_t cap) {
  unsigned r[12];
  if (cap == 0) return;
  if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) { snprintf(out, cap, "unknown CPU"); return; }
  for (unsigned i = 0; i < 3; i++) __cpuid(0x80000002u + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
  char brand[49];
  memcpy(brand, r, 48);
  brand[48] = 0;
  const char *s = brand;
  while (*s == ' ') s++;
  snprintf(out, cap, "%s", *s ? s : "unknown CPU");
  for (size_t n = strlen(out); n > 0 && out[n - 1] == ' '; n--) out[n - 1] = 0;
}
#else
int bonsai_cpu_host_features(char *out, size_t cap) {
  if (cap == 0) return -1;
  out[0] = 0;
  return 0;
}

void bonsai_cpu_brand(char *out, size_t cap) { if (cap) snprintf(out, cap, "unknown CPU"); }
#endif

const char *bonsai_cpu_build_features(void) { return bonsai_build_features; }
const char *bonsai_cpu_build_name(void) { return bonsai_build_cpu; }

/// Whether the space-separated `list` holds `word` (of length `n`) as a whole word.
static int contains(const char *list, const char *word, size_t n) {
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
    int startOK = p == list || p[-1] == ' ', endOK = p[n] == 0 || p[n] == ' ';
    if (startOK && endOK) return 1;
  }
  return 0;
}

int bonsai_cpu_missing_features(const char *required, const char *available, char *out, size_t cap) {
  if (cap == 0) return -1;
  out[0] = 0;
  size_t used = 0;
  int missing = 0;
  for (const char *p = required; *p;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (n == 0) break;
    char word[64];
    if (n >= sizeof word) return -1;
    memcpy(word, p, n);
    word[n] = 0;
    if (!contains(available, word, n)) {
      if (used + n + 2 > cap) return -1;
      if (used) out[used++] = ' ';
      memcpy(out + used, word, n + 1);
      used += n;
      missing++;
    }
    p += n;
  }
  return missing;
}

#if defined(__x86_64__) || defined(__i386__)
// First among the binary's constructors where the format has priorities (ELF); Swift code has none.
#if defined(__ELF__)
__attribute__((constructor(101)))
#else
__attribute__((constructor))
#endif
static void bonsai_cpu_check_at_start(void) {
  char host[1024], missing[1024], brand[64];
  if (bonsai_cpu_host_features(host, sizeof host) != 0) return;
  if (bonsai_cpu_missing_features(bonsai_build_features, host, missing, sizeof missing) <= 0) return;
  bonsai_cpu_brand(brand, sizeof brand);
  char line[2048];
  int n = snprintf(line, sizeof line,
                   "bonsai: this build was compiled for CPU '%s' and needs %s, which this CPU (%s) lacks; "
                   "rebuild it on this machine (swift build -c release), or build once for every x86-64 CPU "
                   "with AVX2 and FMA: BONSAI_TARGET_CPU=haswell swift build -c release\n",
                   bonsai_build_cpu, missing, brand);
  if (n > 0) { ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1); (void)w; }
  _exit(1);
}
#endif
