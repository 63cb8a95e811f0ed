/* pytorch-fid's FID Inception v3 (the 2015-12-05 TF graph ported to PyTorch): BasicConv2d =
   conv (no bias) + BatchNorm(eps 1e-3) + ReLU, with BN folded into the conv at load time;
   FIDInceptionA/C/E blocks (average pools exclude padding, Mixed_7c max-pools); 2048-d pool3
   and the 1008-way fc. Key names are those of pt_inception-2015-12-05-6726825d.pth.

   Images run in groups of INCEPTION_GROUP slots, a group per thread: each image alone
   through the stem and the 35x35 blocks, then the group together from Mixed_6a on, so that the
   17x17 and 8x8 convs are GEMMs over the group's columns. An image takes the slot its index in
   the whole run sets, so its features do not depend on the batch size, where the batch starts
   or the thread count (bit for bit under every OpenBLAS kernel: tested). Memory, in three
   parts: the parameters (BN folded in), the Winograd weights made from them at load (a cache,
   struct inception_wino), and a per-thread workspace (struct inception_ws) the caller
   allocates once for its largest batch: flat in the number of images, nothing allocated in a
   run.

   Synthetic weights (--weights synthetic), a closed form with no file, for tests and offline
   demos: tensors are numbered t = 6*L + j for the L-th BasicConv2d of the network in the order
   of INCEPTION_LAYERS below (j = 0 conv.weight, 1 bn.weight, 2 bn.bias, 3 bn.running_mean,
   4 bn.running_var), t = 564 for fc.weight and 565 for fc.bias. Element i (flat C order) of
   tensor t is drawn from u = fmix32(i ^ (t * 0x9E3779B9)) / 2^32 * 2 - 1 in [-1, 1), with
   murmur3's fmix32 (h ^= h>>16; h *= 0x85EBCA6B; h ^= h>>13; h *= 0xC2B2AE35; h ^= h>>16) in
   uint32 arithmetic, then: conv.weight = sqrt(6/fan_in) u (He uniform), bn.weight = 1 + 0.2u,
   bn.bias = 0.2u, running_mean = 0.2u, running_var = 1 + 0.5u, fc.weight = sqrt(3/2048) u,
   fc.bias = 0.1u; all in double, rounded to float32. Scores with these weights are NOT
   comparable with published ones. */
#ifndef INCEPTION_H
#define INCEPTION_H
#include <stddef.h>
#include <stdint.h>

#define INCEPTION_SIZE 299
#define INCEPTION_DIMS 2048
#define INCEPTION_CLASSES 1008
#define INCEPTION_N_CONV 94

/* Input conventions. PYTORCH_FID: x = u8/255, F.interpolate(299, bilinear,
   align_corners=False) (half-pixel), then 2x-1. TORCH_FIDELITY: x = u8 as 0..255, TF1
   resize_bilinear (top-left anchored), then (x-128)/128. CLEAN (clean-fid's "clean" mode): each
   channel as a float PIL image resized BICUBIC (antialiased) to 299, clipped to 0..255, then
   (x-128)/128 as its TF-ported network does. */
enum inception_resize { INCEPTION_RESIZE_PYTORCH_FID, INCEPTION_RESIZE_TORCH_FIDELITY,
                        INCEPTION_RESIZE_CLEAN };

/* The 3x3 stride-1 layers' F(2x2,3x3) Winograd weights (and the 1x7/7x1 layers' F(2,7)),
   made at load from the folded weights (inception_load, inception_synthetic): the forward
   reads them, never the plain ones, for those layers. */
struct inception_wino {
    float *buf;                         /* one block: the u[] below */
    float *u[INCEPTION_N_CONV];         /* (16,OC,C) Winograd weights, or NULL */
};

struct inception {
    float *params;                      /* one block: folded conv weights, then biases, fc */
    float *w[INCEPTION_N_CONV];         /* (OC, C, KH, KW) with BN folded in */
    float *b[INCEPTION_N_CONV];         /* (OC) */
    float *fc_w;                        /* (1008, 2048) */
    float *fc_b;                        /* (1008) */
    int synthetic;
    int fuse;                           /* run 1x1 convs sharing an input as one GEMM (default 1) */
    struct inception_wino wino;         /* set at load */
};
/* images run together from Mixed_6a; batches of a multiple of it starting at a multiple of
   it fill every group */
#define INCEPTION_GROUP 8

/* Name of the weights file and where it is looked for. */
#define INCEPTION_WEIGHTS_FILE "pt_inception-2015-12-05-6726825d.pth"

/* Finds the default weights: $FID_WEIGHTS if set, else weights/INCEPTION_WEIGHTS_FILE next to
   the executable's directory (exe_dir/../weights/, exe_dir/weights/), else in the current
   directory (./weights/). -1 with a message naming `make weights` when none exists. */
int inception_default_weights(char *path, size_t pathlen, const char *argv0, char *msg,
                              size_t msglen);

/* path: a .pth (legacy or zip), a .safetensors with the same key names, or "synthetic". */
int inception_load(struct inception *net, const char *path, char *msg, size_t msglen);
void inception_synthetic(struct inception *net);
/* inception_load of path, or of inception_default_weights when path is NULL; used receives
   the path loaded (for -v). */
int inception_open(struct inception *net, const char *path, const char *argv0, char *used,
                   size_t usedlen, char *msg, size_t msglen);
void inception_free(struct inception *net);

/* The synthetic value of element i of tensor t (see above), before scaling. */
double inception_synth_u(uint64_t i, uint32_t t);

/* One image, u8 HWC (H,W,3) -> x (3,299,299) ready for the network. */
void inception_preprocess(float *x, const uint8_t *img, int H, int W, enum inception_resize mode);

/* sFID's spatial features, as guided-diffusion's evaluator takes them: TF's mixed_6/conv:0 is
   Mixed_6d's branch1x1 after BN and ReLU (192x17x17); its channels 0..6 flattened in TF's
   NHWC order, index (h*17 + w)*7 + c: 2023 values an image. */
#define INCEPTION_SPATIAL_C 7
#define INCEPTION_SPATIAL_HW 17
#define INCEPTION_SPATIAL_DIMS (INCEPTION_SPATIAL_HW * INCEPTION_SPATIAL_HW * INCEPTION_SPATIAL_C)

/* Every output of one pass, rows of N images; any may be NULL, and asking for one changes no
   bit of another: pool3 (N,2048); logits (N,1008) = fc(pool3) with bias; dims64 (N,64),
   dims192 (N,192) and dims768 (N,768): spatial means after the first max-pool, the second
   max-pool and Mixed_6e (pytorch-fid --dims); spatial (N,INCEPTION_SPATIAL_DIMS) (sFID). */
struct inception_outputs {
    float *pool3, *logits, *dims64, *dims192, *dims768, *spatial;
};

/* The per-thread workspace of runs of up to max_batch images: each thread's activations, the
   group's Mixed_5d outputs, conv scratch, the 299x299 input with the preprocessing scratch of
   HxW u8 images (H = 0: float input only), the tail's outputs. One allocation, for as many
   threads as such a run uses (nn_get_threads() at init, at most the groups of max_batch
   images: a batch that does not start at a group's first slot spans one more). */
struct inception_ws {
    int max_batch, n_thr, H, W;
    size_t act_n, scratch_n;            /* floats of each activation buffer, of conv scratch */
    size_t per;                         /* floats a thread */
    float *buf;                         /* (n_thr, per) */
};
void inception_ws_init(struct inception_ws *ws, const struct inception *net, int max_batch,
                       int H, int W);
void inception_ws_free(struct inception_ws *ws);

/* The outputs o of N images x (N,3,299,299), N <= ws->max_batch (asserted). first: the index
   of x's first image in the whole run, which sets each image's slot (0 when the images are
   all there is). Runs groups in parallel over nn_get_threads() threads, at most ws->n_thr. */
void inception_run(const struct inception *net, struct inception_ws *ws,
                   const struct inception_outputs *o, const float *x, int N, int first);
/* Same from u8 images (N,H,W,3), preprocessing each in its thread; ws made for H x W. */
void inception_run_u8(const struct inception *net, struct inception_ws *ws,
                      const struct inception_outputs *o, const uint8_t *img, int N, int first,
                      int H, int W, enum inception_resize mode);

/* inception_run and inception_run_u8 with the outputs (but spatial) as arguments */
void inception_forward(const struct inception *net, struct inception_ws *ws, float *pool3,
                       float *logits, float *dims64, float *dims192, float *dims768,
                       const float *x, int N, int first);
void inception_forward_u8(const struct inception *net, struct inception_ws *ws, float *pool3,
                          float *logits, float *dims64, float *dims192, float *dims768,
                          const uint8_t *img, int N, int first, int H, int W,
                          enum inception_resize mode);

/* Per-block activations of one image, for tests, in ws's first thread's workspace: out
   receives the output of stage s (0 Conv2d_1a .. see inception.c) ; returns its float count,
   or 0 for s out of range. */
size_t inception_stage(const struct inception *net, struct inception_ws *ws, float *out,
                       size_t outlen, const float *x, int stage);
#endif
