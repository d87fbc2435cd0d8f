// The public entry points of CBonsaiQuant's products (bonsai_quant.h): which kernel set is in use, the
// plain activation layout, and the scalar kernels (the whole implementation on CPUs without AVX2; the
// reference the vector kernels are tested against).
#include "kernels.h"
#include <stdlib.h>

static const bq_kernels *bq_sets[] = {
#if BQ_AVX512
  &bq_avx512_kernels,
#endif
#if BQ_AVX2
  &bq_avx2_kernels,
#endif
  &bq_scalar_kernels,
};
static const int bq_set_count = (int)(sizeof bq_sets / sizeof bq_sets[0]);
static const bq_kernels *bq_current = NULL;  // NULL: the first set

BQ_ALWAYS const bq_kernels *bq_in_use(void) { return bq_current ? bq_current : bq_sets[0]; }

const char *bq_kernel_name(void) { return bq_in_use()->name; }

int bq_kernel_count(void) { return bq_set_count; }

const char *bq_kernel_at(int i) { return i >= 0 && i < bq_set_count ? bq_sets[i]->name : NULL; }

int bq_use_kernels(const char *name) {
  for (int i = 0; i < bq_set_count; i++)
    if (strcmp(bq_sets[i]->name, name) == 0) {
      bq_current = bq_sets[i];
      return 1;
    }
  return 0;
}

size_t bq_activation_floats(int rows, int in) { return bq_in_use()->floats(rows, in); }

bq_activations bq_quantize_rows(const float *x, int rows, int in, size_t ld, float *scratch) {
  return bq_in_use()->quantize(x, rows, in, ld, scratch);
}

void bq_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                 float *y, size_t ldy, int r0, int r1) {
  bq_in_use()->matmul_q(type, w, rowBytes, in, x, m, y, ldy, r0, r1);
}

void bq_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                 float *y, size_t ldy, int r0, int r1) {
  bq_in_use()->matmul_f(type, w, rowBytes, in, x, m, y, ldy, r0, r1);
}

// ---- the plain layout ---------------------------------------------------------------------------------

int bq_pairs_per_row(int in) { return (in / 32 + 3) / 4 * 8; }

size_t bq_plain_floats(int rows, int in) { return (size_t)rows * ((size_t)in / 2 + 2 * (size_t)bq_pairs_per_row(in)); }

bq_activations bq_plain_quantize(const float *x, int rows, int in, size_t ld, float *scratch) {
  const int nb = in / 32, pairs = bq_pairs_per_row(in);
  const bq_activations out = {(int16_t *)scratch, scratch + (size_t)rows * in / 2,
                              scratch + (size_t)rows * in / 2 + (size_t)rows * pairs, in, pairs};
  for (int r = 0; r < rows; r++) {
    float *ds = out.ds + (size_t)r * pairs, *sd = out.sd + (size_t)r * pairs;
    for (int j = 2 * nb; j < pairs; j++) ds[j] = sd[j] = 0;
    for (int b = 0; b < nb; b++) {
      int16_t *q = out.q + (size_t)r * in + (size_t)b * 32;
      int sum;
      const float d = bq_quantize_block(x + (size_t)r * ld + (size_t)b * 32, q, q + 16, &sum);
      ds[2 * b] = sd[2 * b + 1] = d;
      ds[2 * b + 1] = sd[2 * b] = d * (float)sum;
    }
  }
  return out;
}

// ---- scalar kernels -----------------------------------------------------------------------------------
// Per block: sum_j w_j x_j = dw dx P (Q8_0), dw (dx P - 8 sx) (Q4_0: codes 0..15 offset by 8),
// dw dx P + mw sx (Q4_1), where P = sum_j qw_j qx_j is an exact integer and sx = dx sum_j qx_j.

static void bq_scalar_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                               float *y, size_t ldy, int r0, int r1) {
  const int bb = bq_block_bytes(type), nb = in / 32;
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < m; i++) {
      const int16_t *xq = x.q + (size_t)i * x.q_stride;
      const float *ds = x.ds + (size_t)i * x.s_stride;
      float sum = 0;
      for (int b = 0; b < nb; b++) {
        const uint8_t *wb = w + (size_t)r * rowBytes + (size_t)b * bb;
        const int16_t *q = xq + (size_t)b * 32;
        const float dw = bq_half(wb);
        int isum = 0;
        if (type == BQ_Q8_0) {
          for (int j = 0; j < 32; j++) isum += (int)(int8_t)wb[2 + j] * q[j];
          sum += dw * ds[2 * b] * (float)isum;
        } else {
          const uint8_t *c = wb + (type == BQ_Q4_0 ? 2 : 4);
          for (int j = 0; j < 16; j++) isum += (c[j] & 0x0F) * q[j] + (c[j] >> 4) * q[j + 16];
          sum += dw * ds[2 * b] * (float)isum + (type == BQ_Q4_0 ? -8 * dw : bq_half(wb + 2)) * ds[2 * b + 1];
        }
      }
      y[(size_t)i * ldy + r] += sum;
    }
}

static void bq_scalar_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                               float *y, size_t ldy, int r0, int r1) {
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < m; i++) {
      const uint8_t *wr = w + (size_t)r * rowBytes;
      float s = 0;
      for (int j = 0; j < in; j++) s += (type == BQ_F16 ? bq_half(wr + 2 * (size_t)j) : bq_bf16(wr + 2 * (size_t)j)) * x[(size_t)i * in + j];
      y[(size_t)i * ldy + r] += s;
    }
}

// The scalar product over tiles: each row block gathered from its tile, then bq_scalar_matmul_q's sums in its order.
static void bq_scalar_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m,
                                     float *y, size_t ldy, int r0, int r1) {
  const int bb = bq_block_bytes(type), nb = in / 32;
  uint8_t *row = malloc(rowBytes);
  for (int r = r0; r < r1; r++) {
    for (int b = 0; b < nb; b++) bq_tile_block_row(type, tiles + (size_t)(r / 16) * 16 * rowBytes + (size_t)b * 16 * bb, r % 16, row + (size_t)b * bb);
    bq_scalar_matmul_q(type, row, rowBytes, in, x, m, y + r, ldy, 0, 1);
  }
  free(row);
}

const bq_kernels bq_scalar_kernels = {"scalar", bq_plain_floats, bq_plain_quantize, bq_scalar_matmul_q, bq_scalar_matmul_f,
                                      bq_scalar_matmul_q_tiled};

// ---- tiles of 16 rows -----------------------------------------------------------------------------------

void bq_tile_rows(int type, const uint8_t *w, size_t rowBytes, int in, uint8_t *out, int t0, int t1) {
  const int bb = bq_block_bytes(type), nb = in / 32;
  for (int t = t0; t < t1; t++)
    for (int b = 0; b < nb; b++) {
      uint8_t *tb = out + (size_t)t * 16 * rowBytes + (size_t)b * 16 * bb;
      for (int n = 0; n < 16; n++) {
        const uint8_t *block = w + (size_t)(16 * t + n) * rowBytes + (size_t)b * bb;
        bq_tile_block_store(type, block, n, tb);
      }
    }
}

void bq_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m,
                       float *y, size_t ldy, int r0, int r1) {
  bq_in_use()->matmul_q_tiled(type, tiles, rowBytes, in, x, m, y, ldy, r0, r1);
}
