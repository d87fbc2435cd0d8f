// Matrix products that read ggml's block formats in place (Q8_0, Q4_0, Q4_1, F16, BF16), and their
// dequantisation. Weights are rows of `in` elements stored as in a GGUF file: a row is in/32 blocks
// (Q formats) or `in` 2-byte values (F16, BF16). For the Q formats the activations are first quantised
// to 16 bits per block of 32 (bq_quantize_rows; llama.cpp uses 8), so that the dot products run on
// integers, exactly, and are scaled in fp32, four blocks at a time. F16 and BF16 keep fp32 activations.
#ifndef BONSAI_QUANT_H
#define BONSAI_QUANT_H

#include <stddef.h>
#include <stdint.h>

/// ggml type ids of the formats these kernels read.
enum { BQ_F32 = 0, BQ_F16 = 1, BQ_Q4_0 = 2, BQ_Q4_1 = 3, BQ_Q8_0 = 8, BQ_BF16 = 30 };

/// Rows of activations quantised per block of 32: x[j] ~ dx * q[j] with dx = max|x| / 32767 over the block,
/// and sx = dx * sum(q) (used by the formats with an offset). Row i's codes are q[i * in ...]; its block b
/// has ds[i * pairs + 2b] = dx, ds[... + 2b + 1] = sx and sd the same pair swapped, where pairs =
/// bq_pairs_per_row(in) (blocks are read in fours; the pairs past the last block are 0).
typedef struct {
  int16_t *q;
  float *ds, *sd;
} bq_activations;

/// Floats per row of ds and sd.
int bq_pairs_per_row(int in);

/// Quantises `rows` rows of `in` floats (in a multiple of 32; row stride `ld`) into `out`.
void bq_quantize_rows(const float *x, int rows, int in, size_t ld, bq_activations out);

/// y[i * ldy + r] += row r of W . row i of x, for r in [r0, r1) and i in [0, m), W in Q8_0, Q4_0 or Q4_1.
void bq_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                 float *y, size_t ldy, int r0, int r1);

/// The same for F16 and BF16 weights and fp32 activations x (m rows of `in`).
void bq_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                 float *y, size_t ldy, int r0, int r1);

/// Rows [r0, r1) of W in fp32 into out (row stride `in`): the values gguf's dequantize gives, bit for bit.
void bq_dequantize_rows(int type, const uint8_t *w, size_t rowBytes, int in, float *out, int r0, int r1);

/// Whether this build has vectorised kernels ("avx2", "scalar").
const char *bq_kernel_name(void);

#endif
