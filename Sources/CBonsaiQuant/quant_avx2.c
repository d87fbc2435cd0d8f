// The AVX2 kernels (AVX2 + FMA + F16C: every x86-64 CPU of the last decade) over the plain activation layout:
// integer dot products with vpmaddwd on 16-bit codes, scaled in fp32.
// Per block: sum_j w_j x_j = dw dx P (Q8_0), dw (dx P - 8 sx) (Q4_0: codes 0..15 offset by 8),
// dw dx P + mw sx (Q4_1), where P = sum_j qw_j qx_j is an exact integer and sx = dx sum_j qx_j.
// Blocks go in fours: their (dw, mw) scales are converted together and multiplied by the activations'
// (dx, sx) pairs at once; each block's P (8 partial sums) then takes its lane of that product. Several
// activation rows go through tiles of 8 weight rows (quant_avx2_tiles.c) and only the rows of W past the last
// whole tile through the per-row kernel here.
#include "kernels.h"

#if BQ_AVX2
// A weight block as two vectors of 16 int16 codes (elements 0..15 and 16..31).
typedef struct { __m256i a, b; } bq_codes;

BQ_ALWAYS bq_codes bq_decode(const int type, const uint8_t *wb) {
  bq_codes c;
  if (type == BQ_Q8_0) {
    const __m256i w = _mm256_loadu_si256((const __m256i *)(wb + 2));
    c.a = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
    c.b = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1));
  } else {  // 16 bytes: element j is the low nibble of byte j, element j + 16 its high nibble
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(wb + (type == BQ_Q4_0 ? 2 : 4))));
    c.a = _mm256_and_si256(v, _mm256_set1_epi16(0x0F));
    c.b = _mm256_srli_epi16(v, 4);
  }
  return c;
}

// A block's 32 products as 8 partial sums in fp32 (exact: each is at most 4 * 128 * 32767 < 2^24).
BQ_ALWAYS __m256 bq_products(bq_codes c, const int16_t *q) {
  return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(c.a, _mm256_loadu_si256((const __m256i *)q)),
                                             _mm256_madd_epi16(c.b, _mm256_loadu_si256((const __m256i *)(q + 16)))));
}

BQ_ALWAYS uint32_t bq_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// The first two fp16 values of k <= 4 consecutive blocks in fp32: [d0 m0 d1 m1 d2 m2 d3 m3] for Q4_1,
// [d0 0 d1 0 ...] for the others (whose bytes after d are codes); 0 for missing blocks.
BQ_ALWAYS __m256 bq_scales(const int type, const uint8_t *w, int bb, int k) {
  __m128i v = _mm_cvtsi32_si128((int)bq_u32(w));
  if (k > 1) v = _mm_insert_epi32(v, (int)bq_u32(w + bb), 1);
  if (k > 2) v = _mm_insert_epi32(v, (int)bq_u32(w + 2 * bb), 2);
  if (k > 3) v = _mm_insert_epi32(v, (int)bq_u32(w + 3 * bb), 3);
  if (type != BQ_Q4_1) v = _mm_and_si128(v, _mm_set1_epi32(0xFFFF));
  return _mm256_cvtph_ps(v);
}

BQ_ALWAYS __m256 bq_lane(__m256 v, int i) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i)); }

BQ_ALWAYS float bq_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The k <= 4 blocks at w against activation codes q, given u = the blocks' scales times (dx, sx):
// acc + sum over the blocks of (dw dx) P.
BQ_ALWAYS __m256 bq_group(const int type, const bq_codes *c, int k, const int16_t *q, __m256 u, __m256 acc) {
  acc = _mm256_fmadd_ps(bq_lane(u, 0), bq_products(c[0], q), acc);
  if (k > 1) acc = _mm256_fmadd_ps(bq_lane(u, 2), bq_products(c[1], q + 32), acc);
  if (k > 2) acc = _mm256_fmadd_ps(bq_lane(u, 4), bq_products(c[2], q + 64), acc);
  if (k > 3) acc = _mm256_fmadd_ps(bq_lane(u, 6), bq_products(c[3], q + 96), acc);
  return acc;
}

// The offset terms: Q4_1 keeps m sx in the odd lanes of `side` (the sum of u), Q4_0 keeps d sx in its even lanes.
BQ_ALWAYS __m256 bq_side(const int type, __m256 side, __m256 sc, __m256 u, const float *sd) {
  if (type == BQ_Q4_1) return _mm256_add_ps(side, u);
  if (type == BQ_Q4_0) return _mm256_fmadd_ps(sc, _mm256_loadu_ps(sd), side);
  return side;
}

BQ_ALWAYS float bq_finish(const int type, __m256 acc, __m256 side) {
  float r = bq_hsum(acc);
  if (type == BQ_Q4_1) r += bq_hsum(_mm256_and_ps(side, _mm256_castsi256_ps(_mm256_set_epi32(-1, 0, -1, 0, -1, 0, -1, 0))));
  if (type == BQ_Q4_0) r -= 8 * bq_hsum(side);
  return r;
}

// One weight row against one activation row, block by block (two chains, so that FMA latencies overlap):
// for a single row this measures faster than the groups of four below.
BQ_ALWAYS float bq_dot_one(const int type, const uint8_t *w, const int16_t *q, const float *ds, int nb) {
  const int bb = bq_block_bytes(type);
  __m256 a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  float side[2] = {0, 0};
  for (int b = 0; b < nb; b++) {
    const uint8_t *wb = w + (size_t)b * bb;
    const float dw = bq_half(wb);
    a[b & 1] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ds[2 * b]), bq_products(bq_decode(type, wb), q + (size_t)b * 32), a[b & 1]);
    if (type == BQ_Q4_0) side[b & 1] -= 8 * dw * ds[2 * b + 1];
    if (type == BQ_Q4_1) side[b & 1] += bq_half(wb + 2) * ds[2 * b + 1];
  }
  return bq_hsum(_mm256_add_ps(a[0], a[1])) + (side[0] + side[1]);
}

// One weight row against m <= 8 activation rows: each group of four weight blocks is decoded once.
BQ_ALWAYS void bq_dot_rows(const int type, const uint8_t *w, bq_activations x, int in, int m, float *y, size_t ldy) {
  const int bb = bq_block_bytes(type), nb = in / 32, pairs = bq_pairs_per_row(in);
  __m256 acc[8], side[8];
  for (int i = 0; i < m; i++) acc[i] = side[i] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b += 4) {
    const int k = nb - b < 4 ? nb - b : 4;
    const uint8_t *wb = w + (size_t)b * bb;
    const __m256 sc = bq_scales(type, wb, bb, k);
    bq_codes c[4];
    for (int j = 0; j < k; j++) c[j] = bq_decode(type, wb + j * bb);
    for (int i = 0; i < m; i++) {
      const size_t at = (size_t)i * pairs + 2 * (size_t)b;
      const __m256 u = _mm256_mul_ps(sc, _mm256_loadu_ps(x.ds + at));
      side[i] = bq_side(type, side[i], sc, u, x.sd + at);
      acc[i] = bq_group(type, c, k, x.q + (size_t)i * in + (size_t)b * 32, u, acc[i]);
    }
  }
  for (int i = 0; i < m; i++) y[(size_t)i * ldy] += bq_finish(type, acc[i], side[i]);
}

BQ_ALWAYS float bq_dot_float(const int type, const uint8_t *w, const float *x, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
#define BQ_LOAD8(j) (type == BQ_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * (size_t)(j)))) \
  : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * (size_t)(j)))), 16)))
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    a0 = _mm256_fmadd_ps(BQ_LOAD8(j), _mm256_loadu_ps(x + j), a0);
    a1 = _mm256_fmadd_ps(BQ_LOAD8(j + 8), _mm256_loadu_ps(x + j + 8), a1);
    a2 = _mm256_fmadd_ps(BQ_LOAD8(j + 16), _mm256_loadu_ps(x + j + 16), a2);
    a3 = _mm256_fmadd_ps(BQ_LOAD8(j + 24), _mm256_loadu_ps(x + j + 24), a3);
  }
  for (; j + 8 <= n; j += 8) a0 = _mm256_fmadd_ps(BQ_LOAD8(j), _mm256_loadu_ps(x + j), a0);
#undef BQ_LOAD8
  float s = bq_hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; j < n; j++) s += (type == BQ_F16 ? bq_half(w + 2 * (size_t)j) : bq_bf16(w + 2 * (size_t)j)) * x[j];
  return s;
}

BQ_ALWAYS void bq_avx2_typed(const int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                             float *y, size_t ldy, int r0, int r1) {
  const int pairs = bq_pairs_per_row(in);
  if (m == 1) {
    for (int r = r0; r < r1; r++) y[r] += bq_dot_one(type, w + (size_t)r * rowBytes, x.q, x.ds, in / 32);
    return;
  }
  // whole tiles of 8 weight rows (quant_avx2_tiles.c), then the rows left one at a time
  const int rest = r0 + (r1 - r0) / 8 * 8;
  bq_avx2_tiles_q(type, w, rowBytes, in, x, m, y, ldy, r0, rest);
  for (int i0 = 0; i0 < m; i0 += 8) {
    const int mi = m - i0 < 8 ? m - i0 : 8;
    const bq_activations xi = {x.q + (size_t)i0 * in, x.ds + (size_t)i0 * pairs, x.sd + (size_t)i0 * pairs, in, pairs};
    for (int r = rest; r < r1; r++) bq_dot_rows(type, w + (size_t)r * rowBytes, xi, in, mi, y + (size_t)i0 * ldy + r, ldy);
  }
}

void bq_avx2_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                             float *y, size_t ldy, int r0, int r1) {
  switch (type) {
  case BQ_Q8_0: bq_avx2_typed(BQ_Q8_0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_0: bq_avx2_typed(BQ_Q4_0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_1: bq_avx2_typed(BQ_Q4_1, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  default: break;
  }
}

BQ_ALWAYS void bq_avx2_float(const int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                             float *y, size_t ldy, int r0, int r1) {
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < m; i++) y[(size_t)i * ldy + r] += bq_dot_float(type, w + (size_t)r * rowBytes, x + (size_t)i * in, in);
}

void bq_avx2_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                             float *y, size_t ldy, int r0, int r1) {
  if (type == BQ_F16) bq_avx2_float(BQ_F16, w, rowBytes, in, x, m, y, ldy, r0, r1);
  else if (type == BQ_BF16) bq_avx2_float(BQ_BF16, w, rowBytes, in, x, m, y, ldy, r0, r1);
}

const bq_kernels bq_avx2_kernels = {"avx2", bq_plain_floats, bq_plain_quantize, bq_avx2_matmul_q, bq_avx2_matmul_f,
                                    bq_avx2_matmul_q_tiled};
#endif
