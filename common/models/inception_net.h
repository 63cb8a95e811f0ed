/* Internal to the Inception module: inception.c holds the layer table and loads the weights,
   inception_pre.c preprocesses, inception_net.c is the network's forward, inception_run.c its
   workspace and batch driver. */
#ifndef INCEPTION_NET_H
#define INCEPTION_NET_H
#include <stddef.h>

#include "models/inception.h"

/* One BasicConv2d: Conv2d(C, OC, (KH,KW), stride S, padding (PH,PW), bias=False) + BN + ReLU */
struct inception_layer {
    const char *name;
    int C, OC, KH, KW, S, PH, PW;
};

/* in memory order, see inception.c */
extern const struct inception_layer inception_layers[INCEPTION_N_CONV];

/* first layer of each block */
enum { L_5B = 5, L_5C = 12, L_5D = 19, L_6A = 26, L_6B = 30, L_6C = 40, L_6D = 50, L_6E = 60,
       L_7A = 70, L_7B = 76, L_7C = 85 };

/* Preprocessing (inception_pre.c) into x (3,299,299), with inception_pre_scratch(H, W)
   floats of scratch tmp, for inception_preprocess and the batch driver. */
size_t inception_pre_scratch(int H, int W);
/* clean-fid's "clean" resize (inception_clean.c): in (3,H,W) 0..255 floats -> out (3,299,299)
   clipped to 0..255; scratch: inception_clean_scratch(H, W) floats */
size_t inception_clean_scratch(int H, int W);
void inception_clean_resize(float *out, const float *in, float *scratch, int H, int W);
void inception_pre_run(float *x, float *tmp, const uint8_t *img, int H, int W,
                       enum inception_resize mode);

/* A thread's workspace. In plan mode nothing is computed: the sizes every op needs are
   recorded, so the workspace is sized by the same code that uses it. */
struct ws {
    int plan;
    size_t max_act, max_scratch;
    size_t *wino_n;    /* plan for inception_net_prepare: Winograd weight floats per layer */
    float *buf[6];     /* max_act floats each */
    float *grp;        /* (288,G,35,35): the group's Mixed_5d outputs */
    float *scratch;
    int stage;         /* capture the output of this stage into stage_out (-1: none) */
    float *stage_out;
    size_t stage_len, stage_n;
};

/* the tail starts at Mixed_6a (stage 10), on Mixed_5d outputs (288,G,35,35) */
#define TAIL_STAGE 10
#define TAIL_C 288
#define TAIL_HW (35 * 35)
/* floats per slot of the tail's outputs: pool3, logits, dims768, spatial */
#define TAIL_OUT (INCEPTION_DIMS + INCEPTION_CLASSES + 768 + INCEPTION_SPATIAL_DIMS)

/* The network (inception_net.c). One image x (3,299,299) up to Mixed_5d; d64, d192 may be
   NULL. Returns its output (288,35,35), in ws->buf[1], or NULL when the stage asked for was
   before. */
float *inception_net_head(const struct inception *net, struct ws *ws, const float *x,
                          float *d64, float *d192);
/* A group from Mixed_6a on: x (288,G,35,35) -> pool3 (G,2048), logits (G,1008),
   d768 (G,768), sp (G,2023); any may be NULL */
void inception_net_tail(const struct inception *net, struct ws *ws, const float *x, int G,
                        float *pool3, float *logits, float *d768, float *sp);

/* Once the folded weights are in net->w, net->b: the Winograd weights net->u (inception_run.c). */
void inception_net_prepare(struct inception *net);
#endif
