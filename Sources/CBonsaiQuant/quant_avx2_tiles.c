// The AVX2 products of several activation rows (batched decoding) with Q8_0, Q4_0 and Q4_1 weights, 8 weight rows
// at a time, one 32-bit lane per weight row: the 256-bit version of quant_avx512_tiles.c. The per-row kernel
// (quant_avx2.c) spends two multiply-adds, an add, a conversion, a lane broadcast and an FMA on every (weight row,
// activation row, block); here 8 weight rows' blocks b are decoded and transposed in registers, so that lane n of
// vector k holds codes 2k, 2k + 1 of row n, and an activation row's block takes 16 multiply-adds against its own
// code pairs (broadcast from memory) and one conversion, multiply and FMA for all 8 weight rows. Q4_0's codes are
// offset by -8 as they are decoded, so its products need no side term. The integer sums are exact (int32), then
// rounded once to fp32; only the order of the fp32 sums differs from the per-row kernel's.
// The same kernels read weights kept in tiles of 16 rows (bq_tile_rows) half a tile at a time, with nothing to
// transpose or copy; same sums in the same order, so the same bits.
// The activations are in the plain layout (kernels.h): row i's block b codes at q + i * in + 32 b, in order; its
// dx at ds[i * pairs + 2 b] and sx at ds[i * pairs + 2 b + 1].
#include "kernels.h"

#if BQ_AVX2

// v[j] and v[8 + j] from t[j], whose 128-bit lane 0 holds word j and lane 1 word 8 + j of the 8 rows (as 16 int8).
BQ_ALWAYS void bq2t_widen(const __m256i t[8], __m256i v[16]) {
  for (int j = 0; j < 8; j++) {
    v[j] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(t[j]));
    v[8 + j] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(t[j], 1));
  }
}

// 8 x 8 words within each 128-bit lane: r[n] (row n's words) -> t[j] (word j of rows 0..7, per lane).
BQ_ALWAYS void bq2t_transpose8(const __m256i r[8], __m256i t[8]) {
  __m256i a[8], b[8];
  for (int i = 0; i < 4; i++) {  // rows 2i, 2i + 1 interleaved, words 0-3 and 4-7
    a[2 * i] = _mm256_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm256_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; g++) {  // b[4g + c]: words 2c, 2c + 1 of rows 4g..4g+3
    b[4 * g] = _mm256_unpacklo_epi32(a[4 * g], a[4 * g + 2]);
    b[4 * g + 1] = _mm256_unpackhi_epi32(a[4 * g], a[4 * g + 2]);
    b[4 * g + 2] = _mm256_unpacklo_epi32(a[4 * g + 1], a[4 * g + 3]);
    b[4 * g + 3] = _mm256_unpackhi_epi32(a[4 * g + 1], a[4 * g + 3]);
  }
  for (int c = 0; c < 4; c++) {
    t[2 * c] = _mm256_unpacklo_epi64(b[c], b[4 + c]);
    t[2 * c + 1] = _mm256_unpackhi_epi64(b[c], b[4 + c]);
  }
}

// Word k of 8 rows' Q4_0 / Q4_1 code bytes (2 bytes a row) -> v[k] (low nibbles: pair k) and v[k + 8] (high nibbles:
// pair k + 8) as int16; Q4_0's codes offset by -8.
BQ_ALWAYS void bq2t_nibbles(const int type, __m128i word, int k, __m256i v[16]) {
  const __m128i low = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  const __m128i lo = _mm_and_si128(word, low), hi = _mm_and_si128(_mm_srli_epi16(word, 4), low);
  if (type == BQ_Q4_0) {
    v[k] = _mm256_cvtepi8_epi16(_mm_sub_epi8(lo, eight));
    v[k + 8] = _mm256_cvtepi8_epi16(_mm_sub_epi8(hi, eight));
  } else {
    v[k] = _mm256_cvtepu8_epi16(lo);
    v[k + 8] = _mm256_cvtepu8_epi16(hi);
  }
}

// The codes of block b in 8 rows (at wb + n * rowBytes), transposed: v[k]'s lane n holds codes 2k, 2k + 1 of row
// n as int16. Q8_0: a row's 32 codes are 16 words, words j and 8 + j in the two halves of a register. Q4_0/Q4_1:
// byte j holds codes j (low nibble) and j + 16 (high nibble), so word k holds pairs k and k + 8: the 8 rows'
// 16 bytes are transposed in 128-bit registers and split into nibbles after it.
BQ_ALWAYS void bq2t_decode(const int type, const uint8_t *wb, size_t rowBytes, __m256i v[16]) {
  if (type == BQ_Q8_0) {
    __m256i r[8], t[8];
    for (int n = 0; n < 8; n++) r[n] = _mm256_loadu_si256((const __m256i *)(wb + (size_t)n * rowBytes + 2));
    bq2t_transpose8(r, t);
    bq2t_widen(t, v);
    return;
  }
  const int at = type == BQ_Q4_0 ? 2 : 4;
  __m128i r[8], a[8], b[8];
  for (int n = 0; n < 8; n++) r[n] = _mm_loadu_si128((const __m128i *)(wb + (size_t)n * rowBytes + at));
  for (int i = 0; i < 4; i++) {
    a[2 * i] = _mm_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; g++) {
    b[4 * g] = _mm_unpacklo_epi32(a[4 * g], a[4 * g + 2]);
    b[4 * g + 1] = _mm_unpackhi_epi32(a[4 * g], a[4 * g + 2]);
    b[4 * g + 2] = _mm_unpacklo_epi32(a[4 * g + 1], a[4 * g + 3]);
    b[4 * g + 3] = _mm_unpackhi_epi32(a[4 * g + 1], a[4 * g + 3]);
  }
  for (int c = 0; c < 4; c++)
    for (int o = 0; o < 2; o++)  // word k = 2c + o of rows 0..7
      bq2t_nibbles(type, o ? _mm_unpackhi_epi64(b[c], b[4 + c]) : _mm_unpacklo_epi64(b[c], b[4 + c]), 2 * c + o, v);
}

// The same vectors for rows 8h..8h+7 of a tile block's codes (bq_tile_rows): bytes 16h.. of each 32-byte group.
BQ_ALWAYS void bq2t_tiled_codes(const int type, const uint8_t *codes, int h, __m256i v[16]) {
  if (type == BQ_Q8_0) {
    for (int k = 0; k < 16; k++) v[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(codes + 32 * k + 16 * h)));
    return;
  }
  for (int k = 0; k < 8; k++) bq2t_nibbles(type, _mm_loadu_si128((const __m128i *)(codes + 32 * k + 16 * h)), k, v);
}

BQ_ALWAYS __m256i bq2t_pair(const int16_t *q) {
  int32_t v;
  memcpy(&v, q, 4);
  return _mm256_set1_epi32(v);
}

// acc + pairs [k0, k0 + 8) of v against q's: 8 multiply-adds.
BQ_ALWAYS __m256i bq2t_half(const __m256i v[16], int k0, const int16_t *q) {
  __m256i s = _mm256_madd_epi16(v[k0], bq2t_pair(q + 2 * k0));
  for (int k = k0 + 1; k < k0 + 8; k++) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    s = _mm256_dpwssd_epi32(s, v[k], bq2t_pair(q + 2 * k));
#elif defined(__AVXVNNI__)
    s = _mm256_dpwssd_avx_epi32(s, v[k], bq2t_pair(q + 2 * k));
#else
    s = _mm256_add_epi32(s, _mm256_madd_epi16(v[k], bq2t_pair(q + 2 * k)));
#endif
  }
  return s;
}

// Rows [0, 8) of W (from w) against m <= 8 activation rows: y[i * ldy + n] += row n . activation row i. `next`:
// the following tile, whose lines are asked for a few per block (prefetches past W do not fault). The 8 rows'
// scales (and Q4_1's minima) are copied beside each other first, up to BQ2T_SCALES blocks at a time.
#define BQ2T_SCALES 64
// `tiled`: w is a tile of 16 rows in bq_tile_rows's layout and these are its rows 8h..8h+7.
BQ_ALWAYS void bq2t_tile(const int type, const int tiled, const int h, const uint8_t *w, size_t rowBytes, int in,
                         bq_activations x, const int m, float *y, size_t ldy, const uint8_t *next) {
  const int bb = bq_block_bytes(type), nb = in / 32;
  const int lines = (int)((rowBytes + 63) / 64), ahead = (8 * lines + nb - 1) / nb;
  int row = 0, line = 0;  // the next of the next tile's lines to ask for
  uint16_t scales[BQ2T_SCALES][8], minima[BQ2T_SCALES][8];
  __m256 acc[8];
  for (int i = 0; i < m; i++) acc[i] = _mm256_setzero_ps();
  for (int b0 = 0; b0 < nb; b0 += BQ2T_SCALES) {
    const int b1 = b0 + BQ2T_SCALES < nb ? b0 + BQ2T_SCALES : nb;
    for (int n = 0; n < 8 && !tiled; n++)
      for (int b = b0; b < b1; b++) {
        memcpy(&scales[b - b0][n], w + (size_t)n * rowBytes + (size_t)b * bb, 2);
        if (type == BQ_Q4_1) memcpy(&minima[b - b0][n], w + (size_t)n * rowBytes + (size_t)b * bb + 2, 2);
      }
    for (int b = b0; b < b1; b++) {
      for (int a = 0; a < ahead && row < 8 && !tiled; a++) {
        _mm_prefetch((const char *)next + (size_t)row * rowBytes + (size_t)line * 64, _MM_HINT_T0);
        if (++line == lines) line = 0, row++;
      }
      __m256i v[16];
      const uint8_t *tb = w + (size_t)b * 16 * bb;  // tiled: the tile block
      if (tiled && h == 0)  // the same block of the next tile (the second half reads this tile again, from cache)
        for (int o = 0; o < 16 * bb; o += 64) _mm_prefetch((const char *)tb + 16 * rowBytes + o, _MM_HINT_T0);
      if (tiled) bq2t_tiled_codes(type, tb + bq_tile_header(type), h, v);
      else bq2t_decode(type, w + (size_t)b * bb, rowBytes, v);
      const uint16_t *sc = tiled ? (const uint16_t *)(tb + 16 * h) : scales[b - b0];
      const uint16_t *mi = tiled ? (const uint16_t *)(tb + 32 + 16 * h) : minima[b - b0];
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)sc));
      const __m256 mw = type == BQ_Q4_1 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)mi)) : _mm256_setzero_ps();
      for (int i = 0; i < m; i++) {
        const int16_t *q = x.q + (size_t)i * x.q_stride + (size_t)b * 32;
        const __m256i s = _mm256_add_epi32(bq2t_half(v, 0, q), bq2t_half(v, 8, q));  // two chains
        const float *d = x.ds + (size_t)i * x.s_stride + 2 * (size_t)b;  // dx, sx
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(d[0])), acc[i]);
        if (type == BQ_Q4_1) acc[i] = _mm256_fmadd_ps(mw, _mm256_set1_ps(d[1]), acc[i]);
      }
    }
  }
  for (int i = 0; i < m; i++) _mm256_storeu_ps(y + (size_t)i * ldy, _mm256_add_ps(_mm256_loadu_ps(y + (size_t)i * ldy), acc[i]));
}

BQ_ALWAYS void bq2t_tiled(const int type, const int tiled, const uint8_t *w, size_t rowBytes, int in, bq_activations x,
                          const int m, float *y, size_t ldy, int r0, int r1) {
  if (tiled) {
    for (int r = r0; r + 16 <= r1; r += 16)
      for (int h = 0; h < 2; h++) bq2t_tile(type, 1, h, w + (size_t)r * rowBytes, rowBytes, in, x, m, y + r + 8 * h, ldy, NULL);
    return;
  }
  for (int r = r0; r + 8 <= r1; r += 8)
    bq2t_tile(type, 0, 0, w + (size_t)r * rowBytes, rowBytes, in, x, m, y + r, ldy, w + (size_t)(r + 8) * rowBytes);
}

BQ_ALWAYS void bq2t_typed(const int type, const int tiled, const uint8_t *w, size_t rowBytes, int in, bq_activations x,
                          int m, float *y, size_t ldy, int r0, int r1) {
  for (int i0 = 0; i0 < m; i0 += 8) {
    bq_activations xi = x;
    xi.q += (size_t)i0 * x.q_stride;
    xi.ds += (size_t)i0 * x.s_stride;
    xi.sd += (size_t)i0 * x.s_stride;
    float *yi = y + (size_t)i0 * ldy;
    switch (m - i0 < 8 ? m - i0 : 8) {
    case 1: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 1, yi, ldy, r0, r1); break;
    case 2: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 2, yi, ldy, r0, r1); break;
    case 3: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 3, yi, ldy, r0, r1); break;
    case 4: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 4, yi, ldy, r0, r1); break;
    case 5: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 5, yi, ldy, r0, r1); break;
    case 6: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 6, yi, ldy, r0, r1); break;
    case 7: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 7, yi, ldy, r0, r1); break;
    default: bq2t_tiled(type, tiled, w, rowBytes, in, xi, 8, yi, ldy, r0, r1); break;
    }
  }
}

void bq_avx2_tiles_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m, float *y, size_t ldy,
                     int r0, int r1) {
  switch (type) {
  case BQ_Q8_0: bq2t_typed(BQ_Q8_0, 0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_0: bq2t_typed(BQ_Q4_0, 0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_1: bq2t_typed(BQ_Q4_1, 0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  default: break;
  }
}

void bq_avx2_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m, float *y,
                            size_t ldy, int r0, int r1) {
  switch (type) {
  case BQ_Q8_0: bq2t_typed(BQ_Q8_0, 1, tiles, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_0: bq2t_typed(BQ_Q4_0, 1, tiles, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_1: bq2t_typed(BQ_Q4_1, 1, tiles, rowBytes, in, x, m, y, ldy, r0, r1); break;
  default: break;
  }
}
#endif
