// The kernel sets of CBonsaiQuant (not part of its public header): each quantises activations in its own
// layout and multiplies them with weight rows; quant.c picks one at run time.
#ifndef BONSAI_QUANT_KERNELS_H
#define BONSAI_QUANT_KERNELS_H
#include "blocks.h"

typedef struct {
  const char *name;
  size_t (*floats)(int rows, int in);
  bq_activations (*quantize)(const float *x, int rows, int in, size_t ld, float *scratch);
  void (*matmul_q)(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m, float *y, size_t ldy,
                   int r0, int r1);
  void (*matmul_f)(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m, float *y, size_t ldy,
                   int r0, int r1);
  void (*matmul_q_tiled)(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m, float *y,
                         size_t ldy, int r0, int r1);
} bq_kernels;

extern const bq_kernels bq_scalar_kernels;
#if BQ_AVX2
extern const bq_kernels bq_avx2_kernels;
// The AVX2 products alone (the AVX-512 set uses them for a single row).
void bq_avx2_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m, float *y, size_t ldy,
                      int r0, int r1);
void bq_avx2_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m, float *y, size_t ldy,
                      int r0, int r1);
// Rows [r0, r1) of W (a multiple of 8 of them) against m activation rows in the plain layout, 8 weight rows at a
// time (quant_avx2_tiles.c); Q8_0, Q4_0, Q4_1.
void bq_avx2_tiles_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m, float *y, size_t ldy,
                     int r0, int r1);
// The same for W kept in tiles of 16 rows (bq_tile_rows), each taken as two of 8; r0 and r1 multiples of 16.
void bq_avx2_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m, float *y,
                            size_t ldy, int r0, int r1);
#endif
#if BQ_AVX512
extern const bq_kernels bq_avx512_kernels;
// Rows [r0, r1) of W (a multiple of 16 of them) against m activation rows in the AVX-512 layout, 16 weight rows
// at a time (quant_avx512_tiles.c); Q8_0, Q4_0, Q4_1.
void bq512_tiles_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m, float *y, size_t ldy,
                   int r0, int r1);
// The same for W kept in tiles (bq_tile_rows), r0 and r1 multiples of 16.
void bq512_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m, float *y,
                          size_t ldy, int r0, int r1);
#endif

// The plain layout (scalar and AVX2 kernels): row i's codes in order at q + i * in; its (dx, sx) pairs at
// ds + i * pairs and the same pairs swapped at sd, pairs = bq_pairs_per_row(in) (blocks are read in fours;
// the pairs past the last block are 0).
int bq_pairs_per_row(int in);
size_t bq_plain_floats(int rows, int in);
bq_activations bq_plain_quantize(const float *x, int rows, int in, size_t ld, float *scratch);

// One block of 32 activations: its codes into q (16 then 16: q_hi = q_lo + 16 in the plain layout) and dx,
// sum of codes as returned values. Shared so that every layout holds the same codes.
BQ_ALWAYS float bq_quantize_block(const float *v, int16_t *q_lo, int16_t *q_hi, int *sum) {
  float amax = 0;
  for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
  const float d = amax / 32767, id = d != 0 ? 1 / d : 0;
  int s = 0;
  for (int j = 0; j < 32; j++) {
    float c = nearbyintf(v[j] * id);
    c = c > 32767 ? 32767 : c < -32767 ? -32767 : c;
    if (j < 16) q_lo[j] = (int16_t)c;
    else q_hi[j - 16] = (int16_t)c;
    s += (int)c;
  }
  *sum = s;
  return d;
}

#endif
