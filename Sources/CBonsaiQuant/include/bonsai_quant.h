// Matrix products that read ggml's block formats in place (Q8_0, Q4_0, Q4_1, F16, BF16), and their
// dequantisation. Weights are rows of `in` elements stored as in a GGUF file: a row is in/32 blocks
// (Q formats) or `in` 2-byte values (F16, BF16). For the Q formats the activations are first quantised
// to 16 bits per block of 32 (bq_quantize_rows; llama.cpp uses 8), so that the dot products run on
// integers, exactly, and are scaled in fp32. F16 and BF16 keep fp32 activations.
// Three sets of kernels, chosen at run time among those the build has (bq_use_kernels): "avx512" (AVX-512
// F/BW/VL, with VNNI's vpdpwssd where the build targets it), "avx2" (AVX2 + FMA + F16C) and "scalar". They
// give the same results up to the order of fp32 sums; the default is the first this build has.
#ifndef BONSAI_QUANT_H
#define BONSAI_QUANT_H

#include <stddef.h>
#include <stdint.h>

/// ggml type ids of the formats these kernels read.
enum { BQ_F32 = 0, BQ_F16 = 1, BQ_Q4_0 = 2, BQ_Q4_1 = 3, BQ_Q8_0 = 8, BQ_BF16 = 30 };

/// Rows of activations quantised per block of 32: x[j] ~ dx * q[j] with dx = max|x| / 32767 over the block
/// (codes rounded to nearest even) and sx = dx * sum(q) (used by the formats with an offset), laid out as
/// the kernels that quantised them read them: row i's codes start at q + i * q_stride and its scales at
/// ds + i * s_stride and sd + i * s_stride.
typedef struct {
  int16_t *q;
  float *ds, *sd;
  int q_stride, s_stride;
} bq_activations;

/// Floats of scratch bq_quantize_rows needs for `rows` rows of `in` with the kernels in use.
size_t bq_activation_floats(int rows, int in);

/// Quantises `rows` rows of `in` floats (in a multiple of 32; row stride `ld`) into `scratch`
/// (bq_activation_floats(rows, in) floats), for the kernels in use.
bq_activations bq_quantize_rows(const float *x, int rows, int in, size_t ld, float *scratch);

/// y[i * ldy + r] += row r of W . row i of x, for r in [r0, r1) and i in [0, m), W in Q8_0, Q4_0 or Q4_1,
/// x quantised by bq_quantize_rows with the same kernels.
void bq_matmul_q(int type, const uint8_t *w, size_t rowBytes, int in, bq_activations x, int m,
                 float *y, size_t ldy, int r0, int r1);

/// The same for F16 and BF16 weights and fp32 activations x (m rows of `in`).
void bq_matmul_f(int type, const uint8_t *w, size_t rowBytes, int in, const float *x, int m,
                 float *y, size_t ldy, int r0, int r1);

/// Rows [r0, r1) of W in fp32 into out (row stride `in`): the values gguf's dequantize gives, bit for bit.
void bq_dequantize_rows(int type, const uint8_t *w, size_t rowBytes, int in, float *out, int r0, int r1);

/// The kernels in use ("avx512", "avx2" or "scalar").
const char *bq_kernel_name(void);

/// How many kernel sets this build has, and the name of set i (0 the best; NULL past the last).
int bq_kernel_count(void);
const char *bq_kernel_at(int i);

/// Uses the named kernels from now on, in every thread (not while products run); 0 if this build lacks them.
int bq_use_kernels(const char *name);

#endif
