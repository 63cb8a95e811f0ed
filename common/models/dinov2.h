/* DINOv2's ViT (facebookresearch/dinov2 DinoVisionTransformer, as torch.hub's dinov2_vitl14
   builds it and dgm-eval runs it for FD-DINOv2): patch embedding Conv2d(3, dim, patch, stride
   patch), a cls token and learned position embeddings for a grid x grid patch table (518 px:
   37 x 37) interpolated to the input's grid, depth pre-norm blocks x += ls1(attn(norm1(x))),
   x += ls2(mlp(norm2(x))) with LayerScale, exact-erf GELU MLP, LayerNorm eps 1e-6, no
   register tokens; the feature is the cls token after the final norm. Key names are those of
   the official dinov2_vitl14_pretrain.pth (343 tensors for ViT-L/14).

   Up to DINOV2_BATCH images run together through each GEMM (their tokens stacked), on the
   packed kernel of nn_linear_packed.c, where an output's bits depend on its own row and column
   alone: a feature is the same bit for bit whatever the batch and the thread count. The
   Linear weights (patch_embed.proj, attn.qkv, attn.proj, mlp.fc1, mlp.fc2) are held packed
   (nn_pack_linear) once loaded, so dim and mlp must be multiples of NN_PACK_NR (32; every
   official DINOv2 is).

   Synthetic weights ("synthetic", the ViT-L/14 shape, for tests and offline demos): tensor t
   is the t-th of dinov2_names' order (0 cls_token, 1 pos_embed, 2 mask_token, 3
   patch_embed.proj.weight, 4 .bias, then 14 a block: norm1.weight, norm1.bias, attn.qkv.weight,
   attn.qkv.bias, attn.proj.weight, attn.proj.bias, ls1.gamma, norm2.weight, norm2.bias,
   mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias, ls2.gamma; then norm.weight,
   norm.bias). Element i (flat C order) is u = inception_synth_u(i, t) in [-1, 1) (inception.h's
   fmix32 formula) scaled: cls_token 0.5u, pos_embed u, mask_token 0, weights sqrt(3/fan_in) u,
   biases 0.05u, norm weights 1 + 0.1u, norm biases 0.05u, gammas 0.25 + 0.25u; in double,
   rounded to float32. Features with them are NOT comparable with published ones. */
#ifndef DINOV2_H
#define DINOV2_H
#include <stddef.h>
#include <stdint.h>

#define DINOV2_SIZE 224       /* dgm-eval's input size */
#define DINOV2_EPS 1e-6f
#define DINOV2_WEIGHTS_FILE "dinov2_vitl14_pretrain.pth"
#define DINOV2_URL "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
#define DINOV2_N_BLOCK_TENSORS 14
#define DINOV2_BATCH 8         /* images a forward pass takes at once */

struct dinov2_config {
    int patch, dim, depth, heads, mlp; /* ViT-L/14: 14, 1024, 24, 16, 4096 */
    int grid;                          /* pos_embed's patch grid side: 37 (518 / 14) */
};
extern const struct dinov2_config dinov2_vitl14;

struct dinov2_block {
    float *norm1_w, *norm1_b;   /* (dim) */
    float *qkv_w, *qkv_b;       /* (3 dim, dim) packed, (3 dim): q, k, v row blocks */
    float *proj_w, *proj_b;     /* (dim, dim) packed, (dim) */
    float *ls1;                 /* (dim) */
    float *norm2_w, *norm2_b;   /* (dim) */
    float *fc1_w, *fc1_b;       /* (mlp, dim) packed, (mlp) */
    float *fc2_w, *fc2_b;       /* (dim, mlp) packed, (dim) */
    float *ls2;                 /* (dim) */
};

struct dinov2 {
    struct dinov2_config cfg;
    float *params;               /* one block holding every tensor below */
    float *cls_token;            /* (dim) */
    float *pos_embed;            /* (1 + grid*grid, dim) */
    float *mask_token;           /* (dim): loaded, unused at inference */
    float *patch_w, *patch_b;    /* (dim, 3, patch, patch) packed as (dim, 3 patch^2), (dim) */
    struct dinov2_block *blocks; /* (depth) */
    float *norm_w, *norm_b;      /* (dim) */
    int synthetic;
};

/* Names and shapes of every tensor in the official order (t = 0 .. 5 + 14 depth + 1):
   name into buf; returns the number of dims and fills shape, or 0 past the last. */
int dinov2_tensor(const struct dinov2_config *cfg, int t, char *buf, size_t len,
                  int64_t shape[4]);
int dinov2_n_tensors(const struct dinov2_config *cfg);

/* The weights at path (.pth, zip or legacy, or .safetensors with the same names) or
   "synthetic" (ViT-L/14 shape). The shape is read from the file: dim from cls_token, depth
   from the blocks, patch from patch_embed, mlp from fc1, grid from pos_embed; heads is
   dim / 64 (every official DINOv2 ViT has 64-channel heads; 1 below 64) unless heads > 0 is
   given. -1
   with one line in msg for a missing, corrupt or foreign file. */
int dinov2_load(struct dinov2 *net, const char *path, int heads, char *msg, size_t msglen);
/* Synthetic weights of the shape cfg (see above). */
void dinov2_synthetic(struct dinov2 *net, const struct dinov2_config *cfg);
void dinov2_free(struct dinov2 *net);

/* The default weights: $DINOV2_WEIGHTS if set, else weights/DINOV2_WEIGHTS_FILE next to the
   executable's directory or in the current directory. -1 with a message saying how to get
   them. */
int dinov2_default_weights(char *path, size_t pathlen, const char *argv0, char *msg,
                           size_t msglen);
/* dinov2_load of path, or of dinov2_default_weights when path is NULL; used receives the
   path; msg is "path: problem". */
int dinov2_open(struct dinov2 *net, const char *path, const char *argv0, char *used,
                size_t usedlen, char *msg, size_t msglen);

/* dgm-eval's DINOv2 transform on one uint8 image (H,W,3): PIL Resize((224, 224), BICUBIC)
   (antialiased, uint8 result; aspect not kept, no crop), ToTensor (/255), Normalize with
   ImageNet's mean and std, in float32 -> x (3,224,224). tmp: 224*224*3 bytes. */
void dinov2_preprocess(float *x, uint8_t *tmp, const uint8_t *img, int H, int W);

/* A workspace for inputs of H x W pixels: activations of DINOV2_BATCH images and the
   position embedding interpolated to their grid (computed here, once). */
struct dinov2_ws {
    int H, W, gh, gw, T;        /* input size, patch grid, tokens (1 + gh*gw) */
    float *mem;                 /* one block for the buffers below */
    float *pos;                 /* (T, dim) */
    float *x, *h, *a;           /* (DINOV2_BATCH * T, dim) */
    float *qkv;                 /* (DINOV2_BATCH * T, 3 dim) */
    float *m;                   /* (DINOV2_BATCH * T, mlp); also the patches */
    float *pre;                 /* (DINOV2_BATCH, 3, 224, 224) */
    uint8_t *tmp;               /* 224*224*3 */
};
void dinov2_ws_init(struct dinov2_ws *ws, const struct dinov2 *net, int H, int W);
void dinov2_ws_free(struct dinov2_ws *ws);
/* The position embedding for a gh x gw grid of an H x W input, as DINOv2's
   interpolate_pos_encoding: pos (1 + gh*gw, dim). */
void dinov2_pos_embed(float *pos, const struct dinov2 *net, int H, int W, int gh, int gw);

/* Features (N, dim) of x (N,3,H,W) with H, W those of ws. */
void dinov2_forward(const struct dinov2 *net, struct dinov2_ws *ws, float *feat,
                    const float *x, int N);
/* The same from uint8 images (N,H,W,3) of any size through dinov2_preprocess; ws must be for
   224 x 224. */
void dinov2_forward_u8(const struct dinov2 *net, struct dinov2_ws *ws, float *feat,
                       const uint8_t *img, int N, int H, int W);
#endif
