/* A 16 x 16 float transpose in AVX-512 registers, for the packing copies of the packed
   kernel (nn_linear_packed.c, nn_attn_qkv.c): moves only, so the bits are the copy's. */
#ifndef NN_TRANSPOSE_H
#define NN_TRANSPOSE_H
#if defined(__AVX512F__)
#include <immintrin.h>

/* r[i] = row i in, column i out */
static inline __attribute__((always_inline)) void nn_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4g + c], 128-bit lane L: column 4L + c of rows 4g .. 4g+3 */
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; c++) {
        /* u0: columns c, 8+c of rows 0-7; u1: 4+c, 12+c; v0, v1 the same of rows 8-15 */
        __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        __m512 u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        __m512 v0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
        t[c] = _mm512_shuffle_f32x4(u0, v0, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(u0, v0, 0xdd);
        t[4 + c] = _mm512_shuffle_f32x4(u1, v1, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(u1, v1, 0xdd);
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}
#endif
#endif
