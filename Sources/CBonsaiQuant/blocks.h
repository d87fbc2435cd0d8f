// Helpers shared by the kernel files of CBonsaiQuant (not part of its public header): fp16/bf16 scalars and
// block sizes, and whether this build has the AVX2 and AVX-512 kernels.
#ifndef BONSAI_QUANT_BLOCKS_H
#define BONSAI_QUANT_BLOCKS_H
#include "include/bonsai_quant.h"
#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define BQ_AVX2 1
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define BQ_AVX512 1
#endif
#endif

#define BQ_ALWAYS static inline __attribute__((always_inline))

BQ_ALWAYS float bq_half_bits(uint16_t h) {
#if BQ_AVX2
  return _cvtsh_ss(h);
#else
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (e == 0) {
    float f = (float)man * 5.9604644775390625e-8f;  // subnormal (or zero): man * 2^-24
    memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (e == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((e + 112) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}

BQ_ALWAYS float bq_half(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return bq_half_bits(h);
}

BQ_ALWAYS float bq_bf16(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

BQ_ALWAYS int bq_block_bytes(int type) { return type == BQ_Q8_0 ? 34 : type == BQ_Q4_0 ? 18 : 20; }

// Bytes before the codes in a block of a tile of 16 rows (bq_tile_rows): 16 scales, and Q4_1's 16 minima.
BQ_ALWAYS int bq_tile_header(int type) { return type == BQ_Q4_1 ? 64 : 32; }

// Row n's block as the rows keep it, from the tile block tb (bq_tile_rows), and back.
BQ_ALWAYS void bq_tile_block_row(int type, const uint8_t *tb, int n, uint8_t *block) {
  const int at = type == BQ_Q4_1 ? 4 : 2, pairs = (bq_block_bytes(type) - at) / 2;  // code bytes in pairs: 16 or 8
  const uint8_t *codes = tb + bq_tile_header(type) + 2 * n;
  memcpy(block, tb + 2 * n, 2);
  if (type == BQ_Q4_1) memcpy(block + 2, tb + 32 + 2 * n, 2);
  for (int k = 0; k < pairs; k++) memcpy(block + at + 2 * k, codes + 32 * k, 2);
}

BQ_ALWAYS void bq_tile_block_store(int type, const uint8_t *block, int n, uint8_t *tb) {
  const int at = type == BQ_Q4_1 ? 4 : 2, pairs = (bq_block_bytes(type) - at) / 2;
  uint8_t *codes = tb + bq_tile_header(type) + 2 * n;
  memcpy(tb + 2 * n, block, 2);
  if (type == BQ_Q4_1) memcpy(tb + 32 + 2 * n, block + 2, 2);
  for (int k = 0; k < pairs; k++) memcpy(codes + 32 * k, block + at + 2 * k, 2);
}

#endif
