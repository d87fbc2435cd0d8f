// The AVX-512 products of several activation rows (batched decoding) with Q8_0, Q4_0 and Q4_1 weights, 16 weight
// rows at a time, one 32-bit lane per weight row. The per-row kernel (quant_avx512.c) spends a conversion, a
// multiply of the scales and an FMA on every (weight row, activation row, pair of blocks): 3 of its 5 operations
// per 64 products. Here 16 weight rows' blocks b are decoded and transposed in registers, so that lane n of
// vector k holds codes 2k, 2k + 1 of row n: an activation row's block then takes 16 integer multiply-adds against
// its own code pairs (broadcast from memory) and one conversion, multiply and FMA for all 16 weight rows. The
// integer sums are the same as the per-row kernel's; only the order of the fp32 sums changes. Measured on a Zen 4
// (8 activation rows, 1 thread, weights in L2 / from memory): Q8_0 74 / 69 against 40 / 36 GMAC/s, Q4_0 77 / 73
// against 41 / 39, Q4_1 70 / 66 against 31 / 28; generation at batch 8 from SmolLM2's Q8_0 file 1.3-1.4x.
// The same kernels also read weights kept in tiles of 16 rows (bq_tile_rows: each block's 16 rows' codes already in
// the transposed order, scales beside each other), which skips the transposition and the copying of the scales;
// the sums are the same, in the same order, so both layouts give the same bits.
// The activations are in quant_avx512.c's pair layout: block b = 2p + h's codes at p * 64 + 16 h, 16 of them,
// and 16 more 32 further on; its dx at ds[p * 16 + 8 h] and sx / 8 at sd[p * 16 + 8 h].
#include "kernels.h"

#if BQ_AVX512

BQ_ALWAYS __m128i bq512t_load16(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)p); }

// The 32 codes of block b in 16 rows (at wb + n * rowBytes + 2), transposed: v[k]'s 32-bit lane n holds codes
// 2k, 2k + 1 of row n, as int16. The 16-bit code pairs are transposed as 16 x 16 words in 256-bit registers
// (a little cheaper than the same in 512-bit registers after widening: 56 against 59 ns per 16 rows x 8 activation rows
// x 32 codes, Zen 4), then widened.
BQ_ALWAYS void bq512_transposed_q8(const uint8_t *wb, size_t rowBytes, __m512i v[16]) {
  __m256i r[16], a[16];
  for (int n = 0; n < 16; n++) r[n] = _mm256_loadu_si256((const __m256i *)(wb + (size_t)n * rowBytes + 2));
  for (int i = 0; i < 8; i++) {  // a[2i], a[2i + 1]: rows 2i, 2i + 1 interleaved, words 0-3 and 4-7 of each lane
    a[2 * i] = _mm256_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm256_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; g++) {  // r[4g + c]: words 2c, 2c + 1 of each lane, rows 4g..4g+3
    r[4 * g] = _mm256_unpacklo_epi32(a[4 * g], a[4 * g + 2]);
    r[4 * g + 1] = _mm256_unpackhi_epi32(a[4 * g], a[4 * g + 2]);
    r[4 * g + 2] = _mm256_unpacklo_epi32(a[4 * g + 1], a[4 * g + 3]);
    r[4 * g + 3] = _mm256_unpackhi_epi32(a[4 * g + 1], a[4 * g + 3]);
  }
  for (int h = 0; h < 2; h++)  // a[8h + j]: word j of each lane, rows 8h..8h+7
    for (int c = 0; c < 4; c++) {
      a[8 * h + 2 * c] = _mm256_unpacklo_epi64(r[8 * h + c], r[8 * h + 4 + c]);
      a[8 * h + 2 * c + 1] = _mm256_unpackhi_epi64(r[8 * h + c], r[8 * h + 4 + c]);
    }
  for (int j = 0; j < 8; j++) {  // word j and 8 + j of rows 0..15
    v[j] = _mm512_cvtepi8_epi16(_mm256_permute2x128_si256(a[j], a[8 + j], 0x20));
    v[8 + j] = _mm512_cvtepi8_epi16(_mm256_permute2x128_si256(a[j], a[8 + j], 0x31));
  }
}

// Word k of 16 rows' Q4_0 / Q4_1 code bytes (2 bytes a row) -> v[k] (low nibbles: pair k) and v[k + 8] (high nibbles:
// pair k + 8) as int16; Q4_0's codes offset by -8.
BQ_ALWAYS void bq512_nibbles(const int type, __m256i word, int k, __m512i v[16]) {
  const __m256i low = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  const __m256i lo = _mm256_and_si256(word, low), hi = _mm256_and_si256(_mm256_srli_epi16(word, 4), low);
  if (type == BQ_Q4_0) {
    v[k] = _mm512_cvtepi8_epi16(_mm256_sub_epi8(lo, eight));
    v[k + 8] = _mm512_cvtepi8_epi16(_mm256_sub_epi8(hi, eight));
  } else {
    v[k] = _mm512_cvtepu8_epi16(lo);
    v[k + 8] = _mm512_cvtepu8_epi16(hi);
  }
}

// The same for Q4_0 and Q4_1, whose 16 code bytes (at wb + n * rowBytes + 2 or 4) hold codes j (low nibble) and
// j + 16 (high nibble) in byte j, so that word k holds pairs k and k + 8: rows n and n + 8 share a 256-bit register,
// an 8 x 8 word transpose within its halves gives word k of the 16 rows, split into nibbles after it (Q4_0:
// offset by -8 as it is decoded).
BQ_ALWAYS void bq512_transposed_q4(const int type, const uint8_t *wb, size_t rowBytes, __m512i v[16]) {
  const int at = type == BQ_Q4_0 ? 2 : 4;
  __m256i r[8], a[8];
  for (int n = 0; n < 8; n++)
    r[n] = _mm256_inserti128_si256(_mm256_castsi128_si256(bq512t_load16(wb + (size_t)n * rowBytes + at)),
                                   bq512t_load16(wb + (size_t)(n + 8) * rowBytes + at), 1);
  for (int i = 0; i < 4; i++) {  // rows 2i, 2i + 1 (and 8 on), words 0-3 and 4-7
    a[2 * i] = _mm256_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm256_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; g++) {  // r[4g + c]: words 2c, 2c + 1 of rows 4g..4g+3 (and 8 on)
    r[4 * g] = _mm256_unpacklo_epi32(a[4 * g], a[4 * g + 2]);
    r[4 * g + 1] = _mm256_unpackhi_epi32(a[4 * g], a[4 * g + 2]);
    r[4 * g + 2] = _mm256_unpacklo_epi32(a[4 * g + 1], a[4 * g + 3]);
    r[4 * g + 3] = _mm256_unpackhi_epi32(a[4 * g + 1], a[4 * g + 3]);
  }
  for (int c = 0; c < 4; c++)
    for (int o = 0; o < 2; o++) {  // word k = 2c + o of rows 0..15
      const int k = 2 * c + o;
      bq512_nibbles(type, o ? _mm256_unpackhi_epi64(r[c], r[4 + c]) : _mm256_unpacklo_epi64(r[c], r[4 + c]), k, v);
    }
}

// The same 16 vectors from a block of a tile (bq_tile_rows): 32-byte groups already in that order.
BQ_ALWAYS void bq512_tiled_codes(const int type, const uint8_t *codes, __m512i v[16]) {
  if (type == BQ_Q8_0) {
    for (int k = 0; k < 16; k++) v[k] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(codes + 32 * k)));
    return;
  }
  for (int k = 0; k < 8; k++) bq512_nibbles(type, _mm256_loadu_si256((const __m256i *)(codes + 32 * k)), k, v);
}

BQ_ALWAYS __m512i bq512_pair_bcast(const int16_t *q) {
  int32_t v;
  memcpy(&v, q, 4);
  return _mm512_set1_epi32(v);
}

// Rows [0, 16) of W (from w) against m <= 8 activation rows: y[i * ldy + n] += row n . activation row i.
// `next`: the following tile, whose lines are asked for a few per block as this one's are used (past the last
// tile they may lie past W: prefetches do not fault). The 16 rows'
// scales (and Q4_1's minima) are copied beside each other first (scalar loads and stores, off the vector pipes:
// a gather per block cost 13% of the tile on a Zen 4), up to BQ512_SCALES blocks at a time.
#define BQ512_SCALES 64
// `tiled`: w is a tile of bq_tile_rows's layout (its blocks one after the other: no scales to copy; the next tile's
// block is prefetched as this one is read).
BQ_ALWAYS void bq512_tile(const int type, const int tiled, const uint8_t *w, size_t rowBytes, int in, bq_activations x,
                          const int m, float *y, size_t ldy, const uint8_t *next) {
  const int bb = bq_block_bytes(type), nb = in / 32;
  const int lines = (int)((rowBytes + 63) / 64), ahead = (16 * lines + nb - 1) / nb;  // next tile's lines per block
  int row = 0, line = 0;  // the next of the next tile's lines to ask for
  uint16_t scales[BQ512_SCALES][16], minima[BQ512_SCALES][16];
  __m512 acc[8];
  for (int i = 0; i < m; i++) acc[i] = _mm512_setzero_ps();
  for (int b0 = 0; b0 < nb; b0 += BQ512_SCALES) {
    const int b1 = b0 + BQ512_SCALES < nb ? b0 + BQ512_SCALES : nb;
    for (int n = 0; n < 16 && !tiled; n++)
      for (int b = b0; b < b1; b++) {
        memcpy(&scales[b - b0][n], w + (size_t)n * rowBytes + (size_t)b * bb, 2);
        if (type == BQ_Q4_1) memcpy(&minima[b - b0][n], w + (size_t)n * rowBytes + (size_t)b * bb + 2, 2);
      }
    for (int b = b0; b < b1; b++) {
      const uint8_t *wb = w + (size_t)b * bb, *tb = w + (size_t)b * 16 * bb;  // rows: block b of row 0; tiled: its tile block
      for (int a = 0; a < ahead && row < 16 && !tiled; a++) {
        _mm_prefetch((const char *)next + (size_t)row * rowBytes + (size_t)line * 64, _MM_HINT_T0);
        if (++line == lines) line = 0, row++;
      }
      if (tiled)  // the same block of the next tile, as far ahead as the rows' prefetches above
        for (int o = 0; o < 16 * bb; o += 64) _mm_prefetch((const char *)tb + 16 * rowBytes + o, _MM_HINT_T0);
      __m512i v[16];
      if (tiled) bq512_tiled_codes(type, tb + bq_tile_header(type), v);
      else if (type == BQ_Q8_0) bq512_transposed_q8(wb, rowBytes, v);
      else bq512_transposed_q4(type, wb, rowBytes, v);
      const uint16_t *sc = tiled ? (const uint16_t *)tb : scales[b - b0], *mi = tiled ? (const uint16_t *)(tb + 32) : minima[b - b0];
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sc));
      // Q4_1: m sx per row, sx = 8 sd in this layout (both factors of 8 exact)
      const __m512 mw = type == BQ_Q4_1 ? _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)mi)), _mm512_set1_ps(8))
                                        : _mm512_setzero_ps();
      const int p = b >> 1, h = b & 1;
#pragma clang loop unroll(full)
      for (int i = 0; i < m; i++) {
        const int16_t *q = x.q + (size_t)i * x.q_stride + (size_t)p * 64 + 16 * h;  // pair k at 2k (k < 8), 2k + 16
        // two sums (pairs 0-7 and 8-15) halve the chain of dependent multiply-adds
        __m512i s = _mm512_madd_epi16(v[0], bq512_pair_bcast(q)), s2 = _mm512_madd_epi16(v[8], bq512_pair_bcast(q + 32));
        for (int k = 1; k < 8; k++) {
#ifdef __AVX512VNNI__
          s = _mm512_dpwssd_epi32(s, v[k], bq512_pair_bcast(q + 2 * k));
          s2 = _mm512_dpwssd_epi32(s2, v[k + 8], bq512_pair_bcast(q + 2 * k + 32));
#else
          s = _mm512_add_epi32(s, _mm512_madd_epi16(v[k], bq512_pair_bcast(q + 2 * k)));
          s2 = _mm512_add_epi32(s2, _mm512_madd_epi16(v[k + 8], bq512_pair_bcast(q + 2 * k + 32)));
#endif
        }
        s = _mm512_add_epi32(s, s2);
        const size_t at = (size_t)i * x.s_stride + (size_t)p * 16 + 8 * h;
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(x.ds[at])), acc[i]);
        if (type == BQ_Q4_1) acc[i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.sd[at]), acc[i]);
      }
    }
  }
  for (int i = 0; i < m; i++) _mm512_storeu_ps(y + (size_t)i * ldy, _mm512_add_ps(_mm512_loadu_ps(y + (size_t)i * ldy), acc[i]));
}

// Rows [r0, r1) of W (whole tiles of 16) against m <= 8 activation rows.
// (tiled: the tile of rows r starts at w + r * rowBytes too, tiles having the bytes of their 16 rows)
BQ_ALWAYS void bq512_tiled(const int type, const int tiled, const uint8_t *w, size_t rowBytes, int in, bq_activations x,
                           const int m, float *y, size_t ldy, int r0, int r1) {
  for (int r = r0; r + 16 <= r1; r += 16)
    bq512_tile(type, tiled, w + (size_t)r * rowBytes, rowBytes, in, x, m, y + r, ldy, w + (size_t)(r + 16) * rowBytes);
}

BQ_ALWAYS void bq512_tiles_typed(const int type, const int tiled, const uint8_t *w, size_t rowBytes, int in,
                                 bq_activations x, int m, float *y, size_t ldy, int r0, int r1) {
  for (int i0 = 0; i0 < m; i0 += 8) {
    bq_activations xi = x;
    xi.q += (size_t)i0 * x.q_stride;
    xi.ds += (size_t)i0 * x.s_stride;
    xi.sd += (size_t)i0 * x.s_stride;
    float *yi = y + (size_t)i0 * ldy;
    switch (m - i0 < 8 ? m - i0 : 8) {
    case 1: bq512_tiled(type, tiled, w, rowBytes, in, xi, 1, yi, ldy, r0, r1); break;
    case 2: bq512_tiled(type, tiled, w, rowBytes, in, xi, 2, yi, ldy, r0, r1); break;
    case 3: bq512_tiled(type, tiled, w, rowBytes, in, xi, 3, yi, ldy, r0, r1); break;
    case 4: bq512_tiled(type, tiled, w, rowBytes, in, xi, 4, yi, ldy, r0, r1); break;
    case 5: bq512_tiled(type, tiled, w, rowBytes, in, xi, 5, yi, ldy, r0, r1); break;
    case 6: bq512_tiled(type, tiled, w, rowBytes, in, xi, 6, yi, ldy, r0, r1); break;
    case 7: bq512_tiled(type, tiled, w, rowBytes, in, xi, 7, yi, ldy, r0, r1); break;
    default: bq512_tiled(type, tiled, w, rowBytes, in, xi, 8, yi, ldy, r0, r1); break;
    }
  }
}

void bq512_tiles_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m, float *y, size_t ldy,
                   int r0, int r1) {
  switch (type) {
  case BQ_Q8_0: bq512_tiles_typed(BQ_Q8_0, 0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_0: bq512_tiles_typed(BQ_Q4_0, 0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_1: bq512_tiles_typed(BQ_Q4_1, 0, w, rowBytes, in, x, m, y, ldy, r0, r1); break;
  default: break;
  }
}

void bq512_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m, float *y,
                          size_t ldy, int r0, int r1) {
  if (m == 1) {  // one row is quantised in the plain layout (bq512_quantize), as the AVX2 kernels read it
    bq_avx2_matmul_q_tiled(type, tiles, rowBytes, in, x, m, y, ldy, r0, r1);
    return;
  }
  switch (type) {
  case BQ_Q8_0: bq512_tiles_typed(BQ_Q8_0, 1, tiles, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_0: bq512_tiles_typed(BQ_Q4_0, 1, tiles, rowBytes, in, x, m, y, ldy, r0, r1); break;
  case BQ_Q4_1: bq512_tiles_typed(BQ_Q4_1, 1, tiles, rowBytes, in, x, m, y, ldy, r0, r1); break;
  default: break;
  }
}
#endif
