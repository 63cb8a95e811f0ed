/* Internal to the Inception module: inception.c holds the layer table and loads the weights,
   inception_pre.c preprocesses, inception_net.c runs the network. */
#ifndef INCEPTION_NET_H
#define INCEPTION_NET_H
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

/* Once the folded weights are in net->w, net->b: the Winograd weights net->u. */
void inception_net_prepare(struct inception *net);
#endif
