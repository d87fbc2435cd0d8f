// Matrix products that read ggml's block formats in place (Q8_0, Q4_0, Q4_1, F16, BF16), and their
// dequantisation. Weights are rows of `in` elements stored as in a GGUF file: a row is in/32 blocks
// (Q formats) or `in` 2-byte values (F16, BF16). For the Q formats the activations are first quantised
// to 16 bits per block of 32 (bq_quantize_rows; llama.cpp uses 8), so that the dot products run on
// integers, exactly, and are scaled once per block. F16 and BF16 keep fp32 activations.
#ifndef BONSAI_QUANT_H
#define BONSAI_QUANT_H

#include <stddef.h>
#include <stdint.h>

/// ggml type ids of the formats these kernels read.
enum { BQ_F32 = 0, BQ_F16 = 1, BQ_Q4_0 = 2, BQ_Q4_1 = 3, BQ_Q8_0 = 8, BQ_BF16 = 30 };

/// 32 activations as int16 codes: x[j] ~ d * q[j] with d = max|x| / 32767; s = d * sum(q) (used by the
/// formats with an offset).
typedef struct {
  float d, s;
  int16_t q[32];
} bq_block_q16;

/// Quantises `rows` rows of `in` floats (in a multiple of 32; row stride `ld`) into rows * in/32 blocks.
void bq_quantize_rows(const float *x, int rows, int in, size_t ld, bq_block_q16 *out);

/// y[i * ldy + r] += row r of W . row i of x, for r in [r0, r1) and i in [0, m). For the Q formats `x`
/// points to m * in/32 bq_block_q16 (bq_quantize_rows); for F16 and BF16 to m rows of `in` floats (stride in).
void bq_matmul_rows(int type, const uint8_t *w, size_t rowBytes, int in, const void *x, int m,
                    float *y, size_t ldy, int r0, int r1);

/// Rows [r0, r1) of W in fp32 into out (row stride `in`): the values gguf's dequantize gives, bit for bit.
void bq_dequantize_rows(int type, const uint8_t *w, size_t rowBytes, int in, float *out, int r0, int r1);

/// Whether this build has vectorised kernels ("avx2", "scalar").
const char *bq_kernel_name(void);

#endif
