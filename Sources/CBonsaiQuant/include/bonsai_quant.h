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

/// Tiles of 16 rows, the layout batched products read without transposing W's blocks in registers (Q8_0, Q4_0,
/// Q4_1; rows a multiple of 16). Tile t (rows 16t..16t+15) takes the bytes of its 16 rows, at the same offset
/// (16 t rowBytes), as in/32 tile blocks of 16 row blocks' bytes each; tile block b holds the 16 rows' fp16 scales
/// d (row n at 2n), then for Q4_1 their fp16 minima (at 32 + 2n), then the codes in groups of 32 bytes: group k
/// holds code bytes 2k and 2k + 1 of row n at 2n and 2n + 1 (Q8_0: 16 groups, codes 2k, 2k + 1; Q4_0 and Q4_1:
/// 8 groups of the nibble-packed bytes, low nibbles codes 2k, 2k + 1 and high nibbles codes 2k + 16, 2k + 17).
/// Writes tiles [t0, t1) of the rows at w into out (as big as W).
void bq_tile_rows(int type, const uint8_t *w, size_t rowBytes, int in, uint8_t *out, int t0, int t1);

/// Rows [r0, r1) of W kept in tiles (bq_tile_rows) in fp32 into out (row stride `in`): bq_dequantize_rows's values.
void bq_dequantize_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, float *out, int r0, int r1);

/// bq_matmul_q for W kept in tiles (bq_tile_rows); r0 and r1 multiples of 16. The same bits as bq_matmul_q on
/// the rows wherever the kernels in use take tiles of rows there (several activation rows; every row for the
/// scalar kernels).
void bq_matmul_q_tiled(int type, const uint8_t *tiles, size_t rowBytes, int in, bq_activations x, int m,
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
