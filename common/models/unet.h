/* diffusers UNet2DModel (unets/unet_2d.py) built from its config.json: the same code runs the
   google/ddpm-cifar10-32 checkpoint and small test configs. Supported: positional time
   embedding, DownBlock2D / AttnDownBlock2D / UpBlock2D / AttnUpBlock2D, UNetMidBlock2D with or
   without attention, conv down/upsamplers, silu, resnet_time_scale_shift "default". Anything
   else is refused with an error naming the field.

   Memory, in the parts the caller allocates, none inside a forward: the parameters (one
   allocation, param_table's names as in the diffusers state dict: unet_init); the activations
   of a batch of up to max_batch images with the convs' scratch and weight transforms
   (struct unet_acts and unet_wino_cache: unet_alloc_acts for training, unet_alloc_infer for
   sampling); training's kept Winograd input tiles (struct unet_tiles: unet_alloc_tiles).
   Every intermediate a backward needs is kept in a named buffer of its layer (mean/rstd of
   each norm, the silu outputs (the resnet norm outputs themselves are not kept: recompute
   them from the input, mean and rstd), the conv outputs, q/k/v and the attention matrix), so
   unet_backward runs over the same storage. A parameter's gradient lives at the same offset
   in a grads block as the parameter in u->params.

   Speed: 3x3 stride-1 convolutions run as the core's Winograd F(4x4, 3x3) (nn/nn_wino4.h),
   composed in unet.c (forward) and unet_grad_conv.c (backward). The training
   layout transforms a conv's weights when it runs, into one buffer (the weights change every
   step); the inference layout caches what its memory budget allows (unet_alloc_infer; call
   unet_weights_changed after writing u->params). GroupNorm+SiLU are fused. An image's output
   does not depend on the batch it is in or on the thread count. Where a forward's time goes:
   unet_prof.h (bench_unet -v). */
#ifndef UNET_H
#define UNET_H
#include <stddef.h>
#include "io/json.h"
#include "io/st.h"
#include "models/param_table.h"

#define UNET_MAX_LEVELS 8
#define UNET_MAX_LAYERS 8 /* resnets per up block (layers_per_block + 1) */

struct unet_config {
    int sample_size, in_channels, out_channels;
    int n_levels;
    int block_out_channels[UNET_MAX_LEVELS];
    int down_attn[UNET_MAX_LEVELS]; /* 1: AttnDownBlock2D, 0: DownBlock2D */
    int up_attn[UNET_MAX_LEVELS];   /* 1: AttnUpBlock2D, 0: UpBlock2D */
    int layers_per_block;
    int norm_num_groups;
    float norm_eps;
    int flip_sin_to_cos;
    float freq_shift;
    int downsample_padding;
    int attention_head_dim;         /* 0 = null: one head per attention (head dim = C) */
    int attn_norm_num_groups;       /* 0 = null: norm_num_groups */
    int center_input_sample;
    float mid_block_scale_factor;
    int add_attention;              /* mid block attention */
    int time_embed_dim;             /* time_embedding_dim or 4 * block_out_channels[0] */
    int time_embedding_dim_set;     /* time_embedding_dim was given (for writing it back) */
};

/* The google/ddpm-cifar10-32 config. */
void unet_config_cifar10(struct unet_config *c);
/* From a parsed config.json; unknown block types and unsupported settings are errors naming
   the field ("down_block_types[2]: unsupported block type 'CrossAttnDownBlock2D'"). */
int unet_config_parse(struct unet_config *c, const struct json *j, char *msg, size_t msglen);
int unet_config_load(struct unet_config *c, const char *path, char *msg, size_t msglen);
/* Writes config.json as diffusers does (every field, sorted keys). */
int unet_config_save(const struct unet_config *c, const char *path, char *msg, size_t msglen);

/* A GroupNorm + activation bookkeeping for one norm: out = GN(in), mean/rstd saved. */
struct unet_norm {
    float *w, *b;        /* (C) */
    int C, G;
    float *out;          /* (B,C,HW), or NULL where only silu(out) is kept (resnets, out) */
    float *mean, *rstd;  /* (B,G) */
    /* (B,C): the inference layout's silu(norm) as nn_silu_sym(x * scale + shift), applied
       inside the next conv's input transform (nn_wino4_forward_pre), or NULL */
    float *scale, *shift;
};

/* ResnetBlock2D(cin, cout): spatial H x W */
struct unet_resnet {
    int cin, cout, H, W;
    float scale;                   /* output_scale_factor */
    struct unet_norm norm1, norm2;
    float *conv1_w, *conv1_b;      /* (cout,cin,3,3), (cout) */
    float *temb_w, *temb_b;        /* (cout,TE), (cout) */
    float *conv2_w, *conv2_b;      /* (cout,cout,3,3), (cout) */
    float *sc_w, *sc_b;            /* (cout,cin,1,1), (cout), or NULL when cin == cout */
    /* activations */
    const float *in;               /* (B,cin,H,W): the input (owned by the layer before) */
    float *cat;                    /* (B,cin,H,W) up blocks: cat([h, skip]); then in == cat */
    float *act1;                   /* (B,cin,H,W) silu(norm1) */
    float *tproj;                  /* (B,cout) time_emb_proj(silu(emb)) */
    float *h1;                     /* (B,cout,H,W) conv1(act1) + tproj */
    float *act2;                   /* (B,cout,H,W) silu(norm2(h1)) */
    float *out;                    /* (B,cout,H,W) (shortcut(in) + conv2(act2)) / scale */
};

/* Attention (heads of head_dim), residual, rescale_output_factor; tokens T = H*W */
struct unet_attn {
    int C, T, heads;
    float scale;                   /* rescale_output_factor */
    struct unet_norm norm;         /* group_norm */
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* (C,C), (C) */
    const float *in;               /* (B,C,T) */
    float *tok;                    /* (B,T,C) transposed norm output */
    float *q, *k, *v;              /* (B,T,C) */
    float *att;                    /* (B,heads,T,T) softmax */
    float *ao;                     /* (B,T,C) attention output before to_out */
    float *proj;                   /* (B,T,C) to_out.0(ao) */
    float *out;                    /* (B,C,T) (proj^T + in) / scale */
};

/* Downsample2D (conv stride 2, padding per downsample_padding) or Upsample2D (nearest x2 then
   3x3 conv); H, W are the input size */
struct unet_sample {
    int C, H, W;
    float *w, *b;                  /* (C,C,3,3), (C) */
    const float *in;               /* (B,C,H,W) */
    float *up;                     /* (B,C,2H,2W) upsampled input (Upsample2D only) */
    float *out;                    /* (B,C,H/2,W/2) or (B,C,2H,2W) */
};

struct unet_level {
    int n_res, has_attn, has_sample;
    struct unet_resnet res[UNET_MAX_LAYERS];
    struct unet_attn attn[UNET_MAX_LAYERS];
    struct unet_sample sample;
};

/* The activations of batches of up to max_batch images, one allocation (buf) that the layers'
   activation pointers (struct unet_resnet's act1 ..., struct unet_attn's q ...) and the ones
   below point into, in one of two layouts: unet_alloc_acts's (training: every layer's kept
   for a backward) or unet_alloc_infer's (sampling: shared slabs). A bigger batch is an error:
   unet_forward asserts B <= max_batch, it never reallocates. */
struct unet_acts {
    int max_batch;                 /* 0: none allocated */
    int infer;                     /* 1: unet_alloc_infer's layout (no backward) */
    float *buf;
    size_t n;                      /* floats of buf */
    float *scratch;                /* conv scratch (im2col or Winograd tiles) for a batch */
    size_t n_scratch;
    int n_thr;                     /* threads the scratch was sized for */
    float *x_in;                   /* (B,in,H,W) the input (centred if center_input_sample) */
    float *t_in;                   /* (B) timesteps as float */
    float *temb;                   /* (B,C0) sinusoidal embedding */
    float *te1, *te1_act;          /* (B,TE) linear_1, silu */
    float *emb, *emb_act;          /* (B,TE) linear_2, silu (what every resnet projects) */
    float *h0;                     /* (B,C0,H,W) conv_in output */
    float *act_out;                /* (B,C0,H,W) silu(conv_norm_out) */
    float *out;                    /* (B,out,H,W) */
    int n_skips;
    const float *skips[UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1) + 1];
};

/* The 3x3 convs' Winograd-transformed weights (36 floats per 9, 4x the weight), allocated
   with the activations: unet_alloc_acts transforms each conv's weights at its use into tmp
   (training changes them every step); unet_alloc_infer caches what its memory budget allows
   in buf and transforms the rest into tmp. */
struct unet_wino_cache {
    float *buf;                    /* the cached transforms */
    size_t n;                      /* floats of buf */
    size_t *off;                   /* pt.n, or NULL (nothing cached): where an entry's
                                      transform starts in buf; UNET_WINO_NONE: not cached */
    unsigned char *ok;             /* pt.n, or NULL: the cached transform is current */
    float *tmp;                    /* a conv's transform made at its use, one at a time */
    size_t n_tmp;                  /* floats of tmp */
};

/* Training (unet_alloc_tiles): the forward keeps each 3x3 conv's input tiles V (36,C,T) for
   the weight gradient, which needs exactly them; sized once for max_batch. */
struct unet_tiles {
    int max_batch;                 /* 0: none: the forward keeps nothing */
    float *buf;                    /* one allocation */
    size_t n;                      /* floats of buf */
    float **v;                     /* pt.n: an entry's tiles in buf, or NULL */
    size_t *cap;                   /* pt.n: floats at v[e] */
    int *batch;                    /* pt.n: batch of the last forward's tiles, 0: none */
};

struct unet {
    struct unet_config cfg;
    struct param_table pt;         /* the parameters' names (modern: to_q, to_k, to_v,
                                      to_out.0; the legacy query/key/value/proj_attn as
                                      aliases), shapes and places in params */
    float *params;                 /* (n_params) pt.base */
    size_t n_params;
    /* parameters of the non-block layers */
    float *conv_in_w, *conv_in_b;  /* (C0,in,3,3), (C0) */
    float *lin1_w, *lin1_b;        /* (TE,C0), (TE) */
    float *lin2_w, *lin2_b;        /* (TE,TE), (TE) */
    struct unet_norm norm_out;     /* conv_norm_out */
    float *conv_out_w, *conv_out_b;/* (out,C0,3,3), (out) */
    struct unet_level down[UNET_MAX_LEVELS], up[UNET_MAX_LEVELS];
    struct unet_resnet mid_res[2];
    struct unet_attn mid_attn;
    struct unet_acts acts;         /* unet_alloc_acts or unet_alloc_infer */
    struct unet_wino_cache wino;   /* with the activations */
    struct unet_tiles tiles;       /* unet_alloc_tiles (training) */
};

#define UNET_WINO_NONE ((size_t)-1)

/* Lays out the model for c (parameters zeroed). -1 with msg on an impossible config. */
int unet_init(struct unet *u, const struct unet_config *c, char *msg, size_t msglen);
void unet_free(struct unet *u);
/* (Re)allocates activations, scratch and the one-conv-at-a-time weight transform for batches
   of up to B images, every layer's kept for a backward (training); frees the kept tiles
   (sized for the old batch: call unet_alloc_tiles again). */
void unet_alloc_acts(struct unet *u, int B);
/* Inference only (unet_infer.c), for batches of up to B images: the skip connections and the
   time embedding get their own storage, every other activation shares a few buffers sized
   for the largest layer (so a backward cannot run: unet_grad_init goes back to
   unet_alloc_acts's layout); the Winograd
   scratch holds one GEMM chunk of images, the 3x3 convs run chunk by chunk; the transformed
   weights are cached for the convs on the smallest maps, where the transform costs most
   next to the GEMMs, as long as parameters, activations, scratch and cache stay within
   mem_bytes, and the others transformed at every use into one buffer (0: cache nothing;
   SIZE_MAX: everything). Same bits as unet_alloc_acts's layout. Frees the kept tiles.
   unet_alloc_acts returns to the training layout. */
void unet_alloc_infer(struct unet *u, int B, size_t mem_bytes);
/* x (B,in,S,S), t (B) timesteps -> eps (B,out,S,S). eps may be NULL (result in u->out).
   An image's result is the same bits whatever batch it is run in, wherever the inference
   layout's chunks of images cut the batch, and whatever the thread count (the Winograd
   products are unpadded, nn/nn_chain.c). Allocates nothing: B <= acts.max_batch
   (asserted; unet_alloc_acts or unet_alloc_infer first). */
void unet_forward(struct unet *u, float *eps, const float *x, const float *t, int B);

/* Fills the parameters from a state dict, accepting the modern (to_q/to_k/to_v/to_out.0) and
   legacy (query/key/value/proj_attn) attention names. Missing, mis-shaped or unexpected
   tensors are errors naming the tensor. */
int unet_load_state(struct unet *u, const struct st_file *f, char *msg, size_t msglen);
/* A diffusers model folder: config.json, scheduler_config.json, and
   diffusion_pytorch_model.safetensors (preferred) or diffusion_pytorch_model.bin. */
int unet_load_dir(struct unet *u, const char *dir, char *msg, size_t msglen);
/* Writes config.json, diffusion_pytorch_model.safetensors (F32, legacy attention names so old
   and new diffusers load it) and model_index.json into dir (created). The scheduler config
   is written by sched_config_save. */
int unet_save_dir(const struct unet *u, const char *dir, char *msg, size_t msglen);

/* Training, after unet_alloc_acts: the tiles of every 3x3 conv (one allocation, for batches up
   to B <= acts.max_batch) that the forward keeps from now on; a conv whose GEMM chunk holds
   more images than B never has unpadded tiles from image 0 and gets none. unet_kept_tiles returns
   those of the conv with weight w if the last forward made them for batch B with T = B * tiles
   per image (no padding), else NULL. */
void unet_alloc_tiles(struct unet *u, int B);
const float *unet_kept_tiles(const struct unet *u, const float *w, int B);
/* The inference layout keeps Winograd-transformed copies of the 3x3 weights (4x their size),
   made on first use: call this after changing u->params (loading, an optimizer step). */
void unet_weights_changed(struct unet *u);

/* Closed-form test weights (tests and benchmarks, documented in tests/fixtures/gen_unet.py):
   with k the index of the tensor in the sorted list of (modern) names and i the flat index:
   conv/linear weights s * sin(0.1 * i + k), s = 1/sqrt(prod(shape[1:])); GroupNorm weights
   (names containing "norm") 1 + 0.1 * sin(0.1 * i + k); every bias 0.1 * sin(0.1 * i + k).
   Computed in double, rounded to float. */
void unet_init_closed_form(struct unet *u);
#endif
