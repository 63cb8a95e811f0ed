/* The table of dinov2_prof.h. */
#include "models/dinov2_prof.h"

#include <string.h>

int dinov2_prof_enabled;
double dinov2_prof_sec[DINOV2_PROF_N];
double dinov2_prof_flop[DINOV2_PROF_N];

const char *const dinov2_prof_name[DINOV2_PROF_N] = {
    [DINOV2_PROF_PRE] = "preprocess (PIL bicubic, normalise)",
    [DINOV2_PROF_PATCH] = "patch embedding (+ cls, position)",
    [DINOV2_PROF_NORM] = "layer norms (first norm1, final norm)",
    [DINOV2_PROF_QKV] = "attention: q, k, v GEMMs",
    [DINOV2_PROF_ATTN] = "attention: q k^T, softmax, att v",
    [DINOV2_PROF_PROJ] = "attention: output GEMM",
    [DINOV2_PROF_FC1] = "MLP fc1 GEMM + GELU (fused)",
    [DINOV2_PROF_FC2] = "MLP fc2 GEMM",
    [DINOV2_PROF_ADD] = "LayerScale + residual + next norm",
};

void dinov2_prof_reset(void)
{
    memset(dinov2_prof_sec, 0, sizeof dinov2_prof_sec);
    memset(dinov2_prof_flop, 0, sizeof dinov2_prof_flop);
}
