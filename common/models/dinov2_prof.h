/* Where the DINOv2 forward's time goes (bench_dinov2 -v): wall time per kind of operation,
   accumulated in a static table while dinov2_prof_enabled is set. The calls sit around whole
   ops in dinov2_net.c, between OpenMP parallel regions, never in a per-element loop: with the
   flag clear each pair costs one predictable branch, and the timers only read the clock, so
   outputs are the same bits either way. Build with -DDINOV2_NO_PROF to compile them out.

       DINOV2_PROF_BEGIN(DINOV2_PROF_NORM);
       nn_layer_norm_forward(...);
       DINOV2_PROF_END(DINOV2_PROF_NORM, 0.0);   (flops of the op, 0 where not counted)

   A BEGIN declares a variable named after its kind, so a kind is timed at most once per
   block scope. */
#ifndef DINOV2_PROF_H
#define DINOV2_PROF_H
#include "util/util.h"

enum dinov2_prof_kind {
    DINOV2_PROF_PRE,   /* dgm-eval's preprocessing (PIL bicubic resize, normalise) */
    DINOV2_PROF_PATCH, /* patchify, the patch-embedding GEMM, cls token and position add */
    DINOV2_PROF_NORM,  /* the first block's norm1 and the final norm (the others: ADD) */
    DINOV2_PROF_QKV,   /* the q, k, v GEMMs (+ bias) */
    DINOV2_PROF_ATTN,  /* attention core: q k^T, softmax, att v (flops of the two GEMMs) */
    DINOV2_PROF_PROJ,  /* attention output GEMM (+ bias) */
    DINOV2_PROF_FC1,   /* MLP fc1 GEMM (+ bias), with the exact GELU on each finished tile */
    DINOV2_PROF_FC2,   /* MLP fc2 GEMM (+ bias) */
    DINOV2_PROF_ADD,   /* LayerScale and the residual adds, each fused with the next norm */
    DINOV2_PROF_N
};

extern int dinov2_prof_enabled;
extern double dinov2_prof_sec[DINOV2_PROF_N];  /* seconds of wall time */
extern double dinov2_prof_flop[DINOV2_PROF_N]; /* flops (0 for kinds not counted) */
extern const char *const dinov2_prof_name[DINOV2_PROF_N];
void dinov2_prof_reset(void);

#ifndef DINOV2_NO_PROF
#define DINOV2_PROF_BEGIN(k) double dinov2_prof_t0_##k = dinov2_prof_enabled ? util_now() : 0.0
#define DINOV2_PROF_END(k, flops)                                      \
    do {                                                               \
        if (dinov2_prof_enabled) {                                     \
            dinov2_prof_sec[k] += util_now() - dinov2_prof_t0_##k;     \
            dinov2_prof_flop[k] += (flops);                            \
        }                                                              \
    } while (0)
#else
#define DINOV2_PROF_BEGIN(k) ((void)0)
#define DINOV2_PROF_END(k, flops) ((void)0)
#endif
#endif
