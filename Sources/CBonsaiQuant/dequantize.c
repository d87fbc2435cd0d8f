// Dequantisation of rows of GGUF blocks to fp32 (see bonsai_quant.h), compiled with -ffp-contract=off so that
// each value is an fp32 product then sum, exactly as gguf's numpy code computes it.
#include "blocks.h"

// One block of 32 (Q8_0, Q4_0 or Q4_1) at p into y.
BQ_ALWAYS void bq_dequantize_block(const int type, const uint8_t *p, float *y) {
  const float d = bq_half(p);
  if (type == BQ_Q8_0) {
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
  } else if (type == BQ_Q4_0) {
    for (int j = 0; j < 16; j++) { y[j] = d * (float)((p[2 + j] & 0x0F) - 8); y[j + 16] = d * (float)((p[2 + j] >> 4) - 8); }
  } else {
    const float m = bq_half(p + 2);
    for (int j = 0; j < 16; j++) { y[j] = d * (float)(p[4 + j] & 0x0F) + m; y[j + 16] = d * (float)(p[4 + j] >> 4) + m; }
  }
}

void bq_dequantize_rows(int type, const uint8_t *w, size_t rowBytes, int in, float *out, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const uint8_t *p = w + (size_t)r * rowBytes;
    float *y = out + (size_t)(r - r0) * in;
    switch (type) {
    case BQ_F32: memcpy(y, p, (size_t)in * 4); break;
    case BQ_F16: for (int j = 0; j < in; j++) y[j] = bq_half(p + 2 * (size_t)j); break;
    case BQ_BF16: for (int j = 0; j < in; j++) y[j] = bq_bf16(p + 2 * (size_t)j); break;
    case BQ_Q8_0: for (int b = 0; b < in / 32; b++) bq_dequantize_block(BQ_Q8_0, p + (size_t)b * 34, y + 32 * b); break;
    case BQ_Q4_0: for (int b = 0; b < in / 32; b++) bq_dequantize_block(BQ_Q4_0, p + (size_t)b * 18, y + 32 * b); break;
    case BQ_Q4_1: for (int b = 0; b < in / 32; b++) bq_dequantize_block(BQ_Q4_1, p + (size_t)b * 20, y + 32 * b); break;
    default: break;
    }
  }
}

// Rows n0..n1-1 of tile block tb into y (row n at y + (n - n0) * in): each row's block gathered, then as the rows.
BQ_ALWAYS void bq_dequantize_tile_block(const int type, const uint8_t *tb, int n0, int n1, float *y, int in) {
  uint8_t block[34];
  for (int n = n0; n < n1; n++, y += in) {
    bq_tile_block_row(type, tb, n, block);
    bq_dequantize_block(type, block, y);
  }
}

BQ_ALWAYS void bq_dequantize_tiled_typed(const int type, const uint8_t *tiles, size_t rowBytes, int in, float *out,
                                         int r0, int r1) {
  const int bb = bq_block_bytes(type);
  for (int t = r0 / 16; t * 16 < r1; t++) {
    const int n0 = r0 > 16 * t ? r0 - 16 * t : 0, n1 = r1 < 16 * t + 16 ? r1 - 16 * t : 16;
    for (int b = 0; b < in / 32; b++)
      bq_dequantize_tile_block(type, tiles + (size_t)t * 16 * rowBytes + (size_t)b * 16 * bb, n0, n1,
                               out + (size_t)(16 * t + n0 - r0) * in + 32 * b, in);
  }
}

void bq_dequantize_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, float *out, int r0, int r1) {
  switch (type) {
  case BQ_Q8_0: bq_dequantize_tiled_typed(BQ_Q8_0, tiles, rowBytes, in, out, r0, r1); break;
  case BQ_Q4_0: bq_dequantize_tiled_typed(BQ_Q4_0, tiles, rowBytes, in, out, r0, r1); break;
  case BQ_Q4_1: bq_dequantize_tiled_typed(BQ_Q4_1, tiles, rowBytes, in, out, r0, r1); break;
  default: break;
  }
}
