// Kernels over ggml's block formats (see bonsai_quant.h). Compiled with the build's -march (Package.swift)
// and -ffp-contract=off, so that dequantisation multiplies then adds exactly as gguf's numpy code does.
// With AVX2 + FMA + F16C (every x86-64 CPU of the last decade; AVX-512 machines run the same code) the
// integer dot products use vpmaddubsw/vpmaddwd on 32 codes at a time; elsewhere the scalar loops below
// are the whole implementation (and the reference the vector code is tested against).
#include "bonsai_quant.h"
#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define BQ_AVX2 1
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

const char *bq_kernel_name(void) {
#if BQ_AVX2
  return "avx2";
#else
  return "scalar";
#endif
}

void bq_quantize_rows(const float *x, int rows, int in, size_t ld, bq_block_q16 *out) {
  const int nb = in / 32;
  for (int r = 0; r < rows; r++) {
    for (int b = 0; b < nb; b++) {
      const float *v = x + (size_t)r * ld + (size_t)b * 32;
      bq_block_q16 *o = out + (size_t)r * nb + b;
      float amax = 0;
      for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
      const float d = amax / 32767, id = d != 0 ? 1 / d : 0;
      int sum = 0;
      for (int j = 0; j < 32; j++) {
        float q = nearbyintf(v[j] * id);
        q = q > 32767 ? 32767 : q < -32767 ? -32767 : q;
        o->q[j] = (int16_t)q;
        sum += (int)q;
      }
      o->d = d;
      o->s = d * (float)sum;
    }
  }
}

// ---- integer dot products of one weight row with quantised activations ------------------------------
// Per block: sum_j w_j x_j = dw dx sum_j qw_j qx_j (Q8_0), dw (dx sum qw qx - 8 sx) (Q4_0, codes 0..15
// offset by 8), dw dx sum qw qx + mw sx (Q4_1), where sx = dx sum qx. The integer sums are exact (at
// most 4 * 128 * 32767 < 2^24 per lane, so also exact in fp32); each block's is scaled in fp32.

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

// 8 partial sums of the 32 products of codes and activations, in fp32.
BQ_ALWAYS __m256 bq_products(bq_codes c, const bq_block_q16 *xb) {
  const __m256i xa = _mm256_loadu_si256((const __m256i *)xb->q), xbv = _mm256_loadu_si256((const __m256i *)(xb->q + 16));
  return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(c.a, xa), _mm256_madd_epi16(c.b, xbv)));
}

BQ_ALWAYS float bq_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The offset term's weight per block: -8 dw (Q4_0), mw (Q4_1), none (Q8_0).
BQ_ALWAYS float bq_offset(const int type, const uint8_t *wb, float dw) {
  return type == BQ_Q4_0 ? -8 * dw : type == BQ_Q4_1 ? bq_half(wb + 2) : 0;
}

BQ_ALWAYS float bq_dot_one(const int type, const uint8_t *w, const bq_block_q16 *x, int nb) {
  const int bb = bq_block_bytes(type);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  float s0 = 0, s1 = 0;
  int b = 0;
  for (; b + 1 < nb; b += 2) {  // two chains, so that the FMA latency overlaps
    const uint8_t *w0 = w + (size_t)b * bb, *w1 = w0 + bb;
    const float d0 = bq_half(w0), d1 = bq_half(w1);
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * x[b].d), bq_products(bq_decode(type, w0), x + b), a0);
    a1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * x[b + 1].d), bq_products(bq_decode(type, w1), x + b + 1), a1);
    if (type != BQ_Q8_0) { s0 += bq_offset(type, w0, d0) * x[b].s; s1 += bq_offset(type, w1, d1) * x[b + 1].s; }
  }
  if (b < nb) {
    const uint8_t *w0 = w + (size_t)b * bb;
    const float d0 = bq_half(w0);
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * x[b].d), bq_products(bq_decode(type, w0), x + b), a0);
    if (type != BQ_Q8_0) s0 += bq_offset(type, w0, d0) * x[b].s;
  }
  return bq_hsum(_mm256_add_ps(a0, a1)) + (s0 + s1);
}

// One weight row against m <= 8 activation rows: each weight block is decoded once.
BQ_ALWAYS void bq_dot_many(const int type, const uint8_t *w, const bq_block_q16 *x, int nb, int m, float *y, size_t ldy) {
  const int bb = bq_block_bytes(type);
  __m256 acc[8];
  float side[8];
  for (int i = 0; i < m; i++) { acc[i] = _mm256_setzero_ps(); side[i] = 0; }
  for (int b = 0; b < nb; b++) {
    const uint8_t *wb = w + (size_t)b * bb;
    const float dw = bq_half(wb), ow = bq_offset(type, wb, dw);
    const bq_codes c = bq_decode(type, wb);
    for (int i = 0; i < m; i++) {
      const bq_block_q16 *xb = x + (size_t)i * nb + b;
      acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), bq_products(c, xb), acc[i]);
      if (type != BQ_Q8_0) side[i] += ow * xb->s;
    }
  }
  for (int i = 0; i < m; i++) y[(size_t)i * ldy] += bq_hsum(acc[i]) + side[i];
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

#else  // scalar

BQ_ALWAYS float bq_dot_one(const int type, const uint8_t *w, const bq_block_q16 *x, int nb) {
  const int bb = bq_block_bytes(type);
  float sum = 0;
  for (int b = 0; b < nb; b++) {
    const uint8_t *wb = w + (size_t)b * bb;
    const bq_block_q16 *xb = x + b;
    const float dw = bq_half(wb);
    int isum = 0;
    if (type == BQ_Q8_0) {
      for (int j = 0; j < 32; j++) isum += (int)(int8_t)wb[2 + j] * xb->q[j];
      sum += dw * xb->d * (float)isum;
    } else {
      const uint8_t *q = wb + (type == BQ_Q4_0 ? 2 : 4);
      for (int j = 0; j < 16; j++) isum += (q[j] & 0x0F) * xb->q[j] + (q[j] >> 4) * xb->q[j + 16];
      sum += dw * xb->d * (float)isum + (type == BQ_Q4_0 ? -8 * dw : bq_half(wb + 2)) * xb->s;
    }
  }
  return sum;
}

BQ_ALWAYS void bq_dot_many(const int type, const uint8_t *w, const bq_block_q16 *x, int nb, int m, float *y, size_t ldy) {
  for (int i = 0; i < m; i++) y[(size_t)i * ldy] += bq_dot_one(type, w, x + (size_t)i * nb, nb);
}

BQ_ALWAYS float bq_dot_float(const int type, const uint8_t *w, const float *x, int n) {
  float s = 0;
  for (int j = 0; j < n; j++) s += (type == BQ_F16 ? bq_half(w + 2 * (size_t)j) : bq_bf16(w + 2 * (size_t)j)) * x[j];
  return s;
}
#endif

BQ_ALWAYS void bq_matmul_q(const int type, const uint8_t *w, size_t rowBytes, int nb, const bq_block_q16 *x, int m,
                           float *y, size_t ldy, int r0, int r1) {
  if (m == 1) {
    for (int r = r0; r < r1; r++) y[r] += bq_dot_one(type, w + (size_t)r * rowBytes, x, nb);
    return;
  }
  for (int i0 = 0; i0 < m; i0 += 8) {
    const int mi = m - i0 < 8 ? m - i0 : 8;
    for (int r = r0; r < r1; r++) bq_dot_many(type, w + (size_t)r * rowBytes, x + (size_t)i0 * nb, nb, mi, y + (size_t)i0 * ldy + r, ldy);
  }
}

BQ_ALWAYS void bq_matmul_f(const int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                        float *y, size_t ldy, int r0, int r1) {
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < m; i++) y[(size_t)i * ldy + r] += bq_dot_float(type, w + (size_t)r * rowBytes, x + (size_t)i * in, in);
}

void bq_matmul_rows(int type, const uint8_t *w, size_t rowBytes, int in, const void *x, int m,
                    float *y, size_t ldy, int r0, int r1) {
  const int nb = in / 32;
  switch (type) {
  case BQ_Q8_0: bq_matmul_q(BQ_Q8_0, w, rowBytes, nb, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_0: bq_matmul_q(BQ_Q4_0, w, rowBytes, nb, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_1: bq_matmul_q(BQ_Q4_1, w, rowBytes, nb, x, m, y, ldy, r0, r1); break;
  case BQ_F16: bq_matmul_f(BQ_F16, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_BF16: bq_matmul_f(BQ_BF16, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  default: break;
  }
}

// ---- dequantisation (gguf/quants.py's formulas: fp32 products then sums, no fused multiply-add) ------

void bq_dequantize_rows(int type, const uint8_t *w, size_t rowBytes, int in, float *out, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const uint8_t *p = w + (size_t)r * rowBytes;
    float *y = out + (size_t)(r - r0) * in;
    switch (type) {
    case BQ_F32: memcpy(y, p, (size_t)in * 4); break;
    case BQ_F16: for (int j = 0; j < in; j++) y[j] = bq_half(p + 2 * (size_t)j); break;
    case BQ_BF16: for (int j = 0; j < in; j++) y[j] = bq_bf16(p + 2 * (size_t)j); break;
    case BQ_Q8_0:
      for (int b = 0; b < in / 32; b++, p += 34, y += 32) {
        const float d = bq_half(p);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
      }
      break;
    case BQ_Q4_0:
      for (int b = 0; b < in / 32; b++, p += 18, y += 32) {
        const float d = bq_half(p);
        for (int j = 0; j < 16; j++) { y[j] = d * (float)((p[2 + j] & 0x0F) - 8); y[j + 16] = d * (float)((p[2 + j] >> 4) - 8); }
      }
      break;
    case BQ_Q4_1:
      for (int b = 0; b < in / 32; b++, p += 20, y += 32) {
        const float d = bq_half(p), m = bq_half(p + 2);
        for (int j = 0; j < 16; j++) { y[j] = d * (float)(p[4 + j] & 0x0F) + m; y[j + 16] = d * (float)(p[4 + j] >> 4) + m; }
      }
      break;
    default: break;
    }
  }
}
