// The AVX-512 kernels (F, BW, VL; VNNI's vpdpwssd where the build targets it, else vpmaddwd + vpaddd) over an
// activation layout of their own: blocks go in pairs (2p, 2p + 1), so that one 512-bit register holds half of
// each block of a pair and each 32-bit lane of an integer product (4 products, exact in fp32) belongs to one
// block, and a pair is scaled by one conversion and one FMA:
//   codes, per pair, 64 int16: [b 0..15 | b' 0..15 | b 16..31 | b' 16..31] (a row with an odd number of
//   blocks ends with a pair whose second block is zero);
//   ds, per pair, 16 floats: [dx_b x8 | dx_b' x8]; sd: [sx_b / 8 x8 | sx_b' / 8 x8] (/ 8 is exact).
// Several activation rows (batched decoding) go through tiles of 16 weight rows (quant_avx512_tiles.c), which
// scale 16 weight rows' sums at once; the rows of W past the last whole tile take the kernel here: per pair and
// activation row, 2 integer multiply-adds, 1 conversion, 1 multiply by the pair's scales and 1 FMA (Q4_1: one
// more FMA for m sx). Q4_0's codes are offset by -8 as they are decoded, so its products need no side term.
// Weight blocks are decoded once for up to 8 activation rows.
// A single row (batch-1 decoding) keeps the plain layout and the AVX2 kernels: on a Zen 4, whose 512-bit
// operations are split in two, decoding a pair for one row costs more than it saves (measured: 2.9 against
// 2.4-2.6 ms for 65536 x 576 Q8_0 weights, F16 3.4-4.4 against 3.3 ms, 1 thread).
#include "kernels.h"

#if BQ_AVX512

BQ_ALWAYS int bq512_pairs(int in) { return (in / 32 + 1) / 2; }

static size_t bq512_floats(int rows, int in) {
  return rows == 1 ? bq_plain_floats(rows, in) : (size_t)rows * (size_t)bq512_pairs(in) * 64;
}

// bq_quantize_block in 512-bit registers, with the same codes: the maximum is exact, d and 1 / d are the same scalar
// operations, v / d is rounded to nearest even (as nearbyintf in the default mode) and clamped the same way. The
// scalar loop was 3% of a batch-8 generation step (1 thread, Zen 4).
BQ_ALWAYS float bq512_quantize_block(const float *v, int16_t *q_lo, int16_t *q_hi, int *sum) {
  const __m512 lo = _mm512_loadu_ps(v), hi = _mm512_loadu_ps(v + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
  const float d = amax / 32767, id = d != 0 ? 1 / d : 0;
  const __m512 vid = _mm512_set1_ps(id), top = _mm512_set1_ps(32767), bottom = _mm512_set1_ps(-32767);
  const __m512 clo = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_mul_ps(lo, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), bottom), top);
  const __m512 chi = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_mul_ps(hi, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), bottom), top);
  const __m512i ilo = _mm512_cvttps_epi32(clo), ihi = _mm512_cvttps_epi32(chi);
  _mm256_storeu_si256((__m256i *)q_lo, _mm512_cvtepi32_epi16(ilo));
  _mm256_storeu_si256((__m256i *)q_hi, _mm512_cvtepi32_epi16(ihi));
  *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(ilo, ihi));
  return d;
}

static bq_activations bq512_quantize(const float *x, int rows, int in, size_t ld, float *scratch) {
  if (rows == 1) return bq_plain_quantize(x, rows, in, ld, scratch);
  const int nb = in / 32, np = bq512_pairs(in);
  const bq_activations out = {(int16_t *)scratch, scratch + (size_t)rows * np * 32, scratch + (size_t)rows * np * 48,
                              np * 64, np * 16};
  for (int r = 0; r < rows; r++)
    for (int p = 0; p < np; p++) {
      int16_t *q = out.q + (size_t)r * out.q_stride + (size_t)p * 64;
      float *ds = out.ds + (size_t)r * out.s_stride + (size_t)p * 16, *sd = out.sd + (size_t)r * out.s_stride + (size_t)p * 16;
      for (int h = 0; h < 2; h++) {
        const int b = 2 * p + h;
        float d = 0, s8 = 0;
        if (b < nb) {
          int sum;
          d = bq512_quantize_block(x + (size_t)r * ld + (size_t)b * 32, q + 16 * h, q + 32 + 16 * h, &sum);
          s8 = d * (float)sum / 8;
        } else {
          memset(q + 16 * h, 0, 32);
          memset(q + 32 + 16 * h, 0, 32);
        }
        _mm256_storeu_ps(ds + 8 * h, _mm256_set1_ps(d));
        _mm256_storeu_ps(sd + 8 * h, _mm256_set1_ps(s8));
      }
    }
  return out;
}

// A pair of weight blocks as the layout's two code vectors, their scales d and (Q4_1) minima m, 8 lanes each.
typedef struct {
  __m512i a, b;
  __m512 d, m;
} bq512_codes;

BQ_ALWAYS __m128i bq512_load16(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)p); }

BQ_ALWAYS __m512 bq512_halves(float lo, float hi) { return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(lo), _mm512_set1_ps(hi)); }

// 16 bytes at p then 16 at q (zero when q is NULL) as one 32-byte vector.
BQ_ALWAYS __m256i bq512_join(const uint8_t *p, const uint8_t *q) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(bq512_load16(p)), q ? bq512_load16(q) : _mm_setzero_si128(), 1);
}

// The blocks at wb and wb + bb (when `two`; else the second is zero).
BQ_ALWAYS bq512_codes bq512_decode(const int type, const uint8_t *wb, int bb, int two) {
  bq512_codes c;
  const uint8_t *wb2 = two ? wb + bb : NULL;
  c.d = bq512_halves(bq_half(wb), wb2 ? bq_half(wb2) : 0);
  c.m = _mm512_setzero_ps();
  if (type == BQ_Q8_0) {
    c.a = _mm512_cvtepi8_epi16(bq512_join(wb + 2, wb2 ? wb2 + 2 : NULL));
    c.b = _mm512_cvtepi8_epi16(bq512_join(wb + 18, wb2 ? wb2 + 18 : NULL));
  } else {  // element j is the low nibble of byte j, element j + 16 its high nibble
    const int at = type == BQ_Q4_0 ? 2 : 4;
    const __m512i v = _mm512_cvtepu8_epi16(bq512_join(wb + at, wb2 ? wb2 + at : NULL));
    c.a = _mm512_and_si512(v, _mm512_set1_epi16(0x0F));
    c.b = _mm512_srli_epi16(v, 4);
    if (type == BQ_Q4_0) {
      c.a = _mm512_sub_epi16(c.a, _mm512_set1_epi16(8));
      c.b = _mm512_sub_epi16(c.b, _mm512_set1_epi16(8));
    } else {
      c.m = bq512_halves(bq_half(wb + 2), wb2 ? bq_half(wb2 + 2) : 0);
    }
  }
  return c;
}

// A pair's 64 integer products as 16 lanes of 4 (lanes 0-7 block b, 8-15 block b').
BQ_ALWAYS __m512i bq512_products(const bq512_codes *c, const int16_t *q) {
  const __m512i p = _mm512_madd_epi16(c->a, _mm512_loadu_si512(q));
#ifdef __AVX512VNNI__
  return _mm512_dpwssd_epi32(p, c->b, _mm512_loadu_si512(q + 32));
#else
  return _mm512_add_epi32(p, _mm512_madd_epi16(c->b, _mm512_loadu_si512(q + 32)));
#endif
}

// acc + the pair's contribution to one activation row (codes q, scales ds, sd).
BQ_ALWAYS __m512 bq512_pair(const int type, const bq512_codes *c, const int16_t *q, const float *ds, const float *sd, __m512 acc) {
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(bq512_products(c, q)), _mm512_mul_ps(c->d, _mm512_loadu_ps(ds)), acc);
  if (type == BQ_Q4_1) acc = _mm512_fmadd_ps(c->m, _mm512_loadu_ps(sd), acc);
  return acc;
}

// One weight row against m <= 8 activation rows (m a constant after inlining).
BQ_ALWAYS void bq512_rows(const int type, const uint8_t *w, bq_activations x, int in, const int m, float *y, size_t ldy) {
  const int bb = bq_block_bytes(type), nb = in / 32, np = bq512_pairs(in);
  __m512 acc[8];
  for (int i = 0; i < m; i++) acc[i] = _mm512_setzero_ps();
  for (int p = 0; p < np; p++) {
    const bq512_codes c = bq512_decode(type, w + (size_t)2 * p * bb, bb, 2 * p + 1 < nb);
    for (int i = 0; i < m; i++) {
      const size_t s = (size_t)i * x.s_stride + (size_t)p * 16;
      acc[i] = bq512_pair(type, &c, x.q + (size_t)i * x.q_stride + (size_t)p * 64, x.ds + s, x.sd + s, acc[i]);
    }
  }
  for (int i = 0; i < m; i++) y[(size_t)i * ldy] += _mm512_reduce_add_ps(acc[i]);
}

// Weight rows are asked for a few rows ahead of their use: the hardware's prefetcher alone left the batched
// products waiting on their weights (Zen 4, 8 rows of Q8_0, 1 thread: 36-38 GMAC/s from memory, 43-46 with
// 1-3 rows ahead, 34-38 with 8-16, 47-48 when the weights fit the caches).
#define BQ512_AHEAD 2
BQ_ALWAYS void bq512_prefetch(const uint8_t *w, size_t rowBytes, int r, int r1) {
  if (r >= r1) return;
  const char *p = (const char *)w + (size_t)r * rowBytes;
  for (size_t at = 0; at < rowBytes; at += 64) _mm_prefetch(p + at, _MM_HINT_T0);
}

// Runs ROW(r, k, i0) for every weight row r in [r0, r1) (prefetching rows ahead) and every chunk of k <= 8
// activation rows from i0, with k a constant in each case, so that the row kernel is unrolled for it.
#define BQ512_CASE(ROW, k) \
  case k: for (int r = r0; r < r1; r++) { bq512_prefetch(w, rowBytes, r + BQ512_AHEAD, r1); ROW(r, k, i0); } break;
#define BQ512_OVER_ROWS(ROW)                                                                                  \
  for (int i0 = 0; i0 < m; i0 += 8) switch (m - i0 < 8 ? m - i0 : 8) {                                      \
    BQ512_CASE(ROW, 1) BQ512_CASE(ROW, 2) BQ512_CASE(ROW, 3) BQ512_CASE(ROW, 4)                              \
    BQ512_CASE(ROW, 5) BQ512_CASE(ROW, 6) BQ512_CASE(ROW, 7) BQ512_CASE(ROW, 8)                              \
  }

// The activations from row i0 on.
BQ_ALWAYS bq_activations bq512_from(bq_activations x, int i0) {
  x.q += (size_t)i0 * x.q_stride;
  x.ds += (size_t)i0 * x.s_stride;
  x.sd += (size_t)i0 * x.s_stride;
  return x;
}

BQ_ALWAYS void bq512_by_rows(const int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                             float *y, size_t ldy, int r0, int r1) {
#define BQ512_ROW(r, k, i0) bq512_rows(type, w + (size_t)(r) * rowBytes, bq512_from(x, i0), in, k, y + (size_t)(i0) * ldy + (r), ldy)
  BQ512_OVER_ROWS(BQ512_ROW)
#undef BQ512_ROW
}

static void bq512_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                           float *y, size_t ldy, int r0, int r1) {
  if (m == 1) {
    bq_avx2_matmul_q(type, w, rowBytes, in, x, m, y, ldy, r0, r1);
    return;
  }
  // whole tiles of 16 weight rows (quant_avx512_tiles.c), then the rows left one at a time
  const int rest = r0 + (r1 - r0) / 16 * 16;
  bq512_tiles_q(type, w, rowBytes, in, x, m, y, ldy, r0, rest);
  switch (type) {
  case BQ_Q8_0: bq512_by_rows(BQ_Q8_0, w, rowBytes, in, x, m, y, ldy, rest, r1); break;
  case BQ_Q4_0: bq512_by_rows(BQ_Q4_0, w, rowBytes, in, x, m, y, ldy, rest, r1); break;
  case BQ_Q4_1: bq512_by_rows(BQ_Q4_1, w, rowBytes, in, x, m, y, ldy, rest, r1); break;
  default: break;
  }
}

// ---- F16 and BF16 weights, fp32 activations: 16 weights converted once for up to 8 activation rows -------

BQ_ALWAYS __m512 bq512_floats16(const int type, const uint8_t *w) {
  const __m256i h = _mm256_loadu_si256((const __m256i *)w);
  return type == BQ_F16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

BQ_ALWAYS void bq512_float_rows(const int type, const uint8_t *w, const float *x, int in, const int m, float *y, size_t ldy) {
  __m512 acc[8];
  for (int i = 0; i < m; i++) acc[i] = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= in; j += 16) {
    const __m512 v = bq512_floats16(type, w + 2 * (size_t)j);
    for (int i = 0; i < m; i++) acc[i] = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + (size_t)i * in + j), acc[i]);
  }
  for (int i = 0; i < m; i++) {
    float s = _mm512_reduce_add_ps(acc[i]);
    for (int k = j; k < in; k++) s += (type == BQ_F16 ? bq_half(w + 2 * (size_t)k) : bq_bf16(w + 2 * (size_t)k)) * x[(size_t)i * in + k];
    y[(size_t)i * ldy] += s;
  }
}

BQ_ALWAYS void bq512_float_typed(const int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                                 float *y, size_t ldy, int r0, int r1) {
#define BQ512_ROW(r, k, i0) bq512_float_rows(type, w + (size_t)(r) * rowBytes, x + (size_t)(i0) * in, in, k, y + (size_t)(i0) * ldy + (r), ldy)
  BQ512_OVER_ROWS(BQ512_ROW)
#undef BQ512_ROW
}

static void bq512_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                           float *y, size_t ldy, int r0, int r1) {
  if (m == 1) bq_avx2_matmul_f(type, w, rowBytes, in, x, m, y, ldy, r0, r1);
  else if (type == BQ_F16) bq512_float_typed(BQ_F16, w, rowBytes, in, x, m, y, ldy, r0, r1);
  else if (type == BQ_BF16) bq512_float_typed(BQ_BF16, w, rowBytes, in, x, m, y, ldy, r0, r1);
}

const bq_kernels bq_avx512_kernels = {"avx512", bq512_floats, bq512_quantize, bq512_matmul_q, bq512_matmul_f,
                                      bq512_matmul_q_tiled};
#endif
