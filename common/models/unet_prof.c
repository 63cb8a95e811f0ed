/* The table of unet_prof.h. */
#include "models/unet_prof.h"

#include <string.h>

int unet_prof_enabled;
double unet_prof_sec[UNET_PROF_N];
double unet_prof_flop[UNET_PROF_N];
double unet_prof_conv3_flop;

const char *const unet_prof_name[UNET_PROF_N] = {
    [UNET_PROF_WINO_IN] = "3x3 conv: Winograd input transform",
    [UNET_PROF_WINO_GEMM] = "3x3 conv: Winograd GEMMs",
    [UNET_PROF_WINO_OUT] = "3x3 conv: Winograd output transform",
    [UNET_PROF_WINO_WEIGHTS] = "3x3 conv: weight transforms at use",
    [UNET_PROF_CONV_S2] = "3x3 stride-2 conv (downsample)",
    [UNET_PROF_CONV_1X1] = "1x1 conv (resnet shortcut)",
    [UNET_PROF_NORM] = "group norm (+ SiLU, fused)",
    [UNET_PROF_ATTN_QKV] = "attention: q, k, v GEMMs",
    [UNET_PROF_ATTN_CORE] = "attention: q k^T, softmax, att v",
    [UNET_PROF_ATTN_OUT] = "attention: output GEMM",
    [UNET_PROF_TEMB] = "time embedding (+ per-resnet proj)",
    [UNET_PROF_UPSAMPLE] = "upsample (nearest 2x)",
    [UNET_PROF_ADD] = "residual adds, rescales",
    [UNET_PROF_OTHER] = "other (concat, transposes, copies)",
};

void unet_prof_reset(void)
{
    memset(unet_prof_sec, 0, sizeof unet_prof_sec);
    memset(unet_prof_flop, 0, sizeof unet_prof_flop);
    unet_prof_conv3_flop = 0;
}
