// Dequantisation of rows of GGUF blocks to fp32 (see bonsai_quant.h), compiled with -ffp-contract=off so that
// each value is an fp32 product then sum, exactly as gguf's numpy code computes it.
#include "blocks.h"

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
