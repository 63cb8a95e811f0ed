/* Where the UNet forward's time goes (bench_unet -v): wall time per kind of operation,
   accumulated in a static table while unet_prof_enabled is set. The calls sit at layer
   granularity in unet.c (the Winograd phases as nn_wino4_forward reports them in its
   struct nn_wino4_times), between OpenMP parallel regions, never in a per-element loop:
   with the flag clear each pair costs one predictable branch, so normal runs are
   unaffected, and the timers only read the clock (outputs are the same bits either way).
   Build with -DUNET_NO_PROF to compile them out.

       UNET_PROF_BEGIN(UNET_PROF_NORM);
       nn_group_norm_silu_forward(...);
       UNET_PROF_END(UNET_PROF_NORM, 0.0);   (flops of the op, 0 where not counted)

   A BEGIN declares a variable named after its kind, so a kind is timed at most once per
   block scope. */
#ifndef UNET_PROF_H
#define UNET_PROF_H
#include "util/util.h"

enum unet_prof_kind {
    UNET_PROF_WINO_IN,      /* 3x3 stride-1 conv: Winograd input transform (B^T d B) */
    UNET_PROF_WINO_GEMM,    /* the 36 GEMMs (flops: of the GEMMs, padding columns included) */
    UNET_PROF_WINO_OUT,     /* output transform (A^T m A) + bias */
    UNET_PROF_WINO_WEIGHTS, /* weight transforms made at use (uncached under unet_alloc_infer) */
    UNET_PROF_CONV_S2,      /* the downsamplers' 3x3 stride-2 conv (im2col + GEMM) */
    UNET_PROF_CONV_1X1,     /* resnet conv_shortcut 1x1 + bias */
    UNET_PROF_NORM,         /* GroupNorm (+ SiLU, fused) */
    UNET_PROF_ATTN_QKV,     /* attention: to_q, to_k, to_v */
    UNET_PROF_ATTN_CORE,    /* attention: q k^T, softmax, att v */
    UNET_PROF_ATTN_OUT,     /* attention: to_out.0 */
    UNET_PROF_TEMB,         /* time embedding MLP, every resnet's time_emb_proj and its add */
    UNET_PROF_UPSAMPLE,     /* nearest 2x */
    UNET_PROF_ADD,          /* residual adds and output rescales */
    UNET_PROF_OTHER,        /* skip concats, attention transposes, input/output copies */
    UNET_PROF_N
};

extern int unet_prof_enabled;
extern double unet_prof_sec[UNET_PROF_N];  /* seconds of wall time */
extern double unet_prof_flop[UNET_PROF_N]; /* flops (0 for kinds not counted) */
extern double unet_prof_conv3_flop;        /* the 3x3 stride-1 convs as direct convolutions */
extern const char *const unet_prof_name[UNET_PROF_N];
void unet_prof_reset(void);

#ifndef UNET_NO_PROF
#define UNET_PROF_BEGIN(k) double unet_prof_t0_##k = unet_prof_enabled ? util_now() : 0.0
#define UNET_PROF_END(k, flops)                                      \
    do {                                                             \
        if (unet_prof_enabled) {                                     \
            unet_prof_sec[k] += util_now() - unet_prof_t0_##k;  \
            unet_prof_flop[k] += (flops);                            \
        }                                                            \
    } while (0)
#define UNET_PROF_FLOP(var, flops)                                   \
    do {                                                             \
        if (unet_prof_enabled)                                       \
            (var) += (flops);                                        \
    } while (0)
#else
#define UNET_PROF_BEGIN(k) ((void)0)
#define UNET_PROF_END(k, flops) ((void)0)
#define UNET_PROF_FLOP(var, flops) ((void)0)
#endif
#endif
