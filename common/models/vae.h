/* The study's baseline convolutional VAE for 32x32 RGB images (spec: docs spec/vae.md):

     enc.0 Conv2d(3,32,4,2,1) ReLU, enc.2 Conv2d(32,32,4,2,1) ReLU, enc.4 Conv2d(32,32,4,2,1)
     ReLU, Flatten -> 512; heads mu, logvar: Linear(512, L); z = mu + exp(logvar/2) * eps;
     dec.0 Linear(L, 512), Unflatten (32,4,4), dec.2 ConvTranspose2d(32,32,4,2,1) ReLU,
     dec.4 ConvTranspose2d(32,32,4,2,1) ReLU, dec.6 ConvTranspose2d(32,3,4,2,1) Tanh.

   Parameters are one float32 block in the order of the PyTorch state_dict, and the table
   (param_table.h) carries the state_dict names, so a checkpoint is safetensors that
   load_state_dict reads unchanged. Metadata: format=pt, model=vae, latent, beta.

   Loss per batch of N: recon = sum((xhat - x)^2)/N, kl = -0.5*sum(1 + logvar - mu^2 -
   exp(logvar))/N, loss = recon + beta*kl.

   Threads: forward and backward run whole chunks of 16 image slots that the nn_get_threads()
   OpenMP threads take dynamically; each chunk has its own gradient copy, summed in chunk order
   at the end. An image's slot is its index in the whole run (the `first` argument + its index
   in the batch) modulo 16, and unfilled slots hold zeros, so every GEMM has the same shape and
   the image the same place in it whatever the batch: results are bit-identical for any batch
   size, start and thread count under any OpenBLAS kernel (and equal to PyTorch within float
   rounding). */
#ifndef VAE_H
#define VAE_H
#include <stddef.h>
#include <stdint.h>

#include "io/st.h"
#include "models/param_table.h"

struct rng;

#define VAE_NT 18      /* parameter tensors */
#define VAE_D 3072     /* values per image, (3,32,32) */
#define VAE_HID 512    /* flattened encoder output, (32,4,4) */

/* Activations of the last forward for batches of up to max_batch images (a larger batch is
   a programmer error: vae_forward and vae_decode assert, and every caller sizes for its
   --batch-size); rows are slots. */
struct vae_acts {
    int max_batch, n_chunks;
    int batch, slot0, batch_chunks; /* the last forward: N, the slot of its first image, chunks */
    float *acts;                    /* the one block the pointers below are carved from */
    const float *x;                 /* (N,3,32,32) the caller's input, kept for backward */
    /* Chunk c uses rows 16c..16c+15 of each buffer; feature maps inside a chunk are stored
       (C, 16, H, W) (see vae.c), marked CNHW. */
    float *xin;                     /* (3,32,32) the input in its slots, zeros elsewhere */
    float *xc;                      /* CNHW (3, 32, 32) the input */
    float *h1, *h2, *h3c;           /* CNHW (32,16,16) (32,8,8) (32,4,4) after ReLU */
    float *h3;                      /* (N,512) h3c flattened as torch does */
    float *mu, *logvar, *eps, *z;   /* (N,L) */
    float *d0, *d0c;                /* (N,512) dec.0's output, CNHW (32,4,4) unflattened */
    float *d1, *d2;                 /* CNHW (32,8,8) (32,16,16) after ReLU */
    float *xhc;                     /* CNHW (3,32,32) before Tanh */
    float *xhat;                    /* (N,3,32,32) after Tanh */
    float *dxhat, *dxc, *dd2, *dd1, *dd0c, *dd0, *dz, *dmu, *dlogvar, *dh3, *dh3c, *dh2, *dh1;
};

/* Per chunk of VAE_CHUNK slots: a gradient copy (n_params floats, summed in chunk order), then
   its im2col scratch (scratch_len floats); chunk c at thr + c * thr_stride. */
struct vae_scratch {
    float *thr;
    size_t thr_stride, scratch_len;
};

/* The model: configuration, parameters (their names in pt), activations, scratch. */
struct vae {
    int latent;
    float beta;
    struct param_table pt;          /* names and shapes (state_dict order), ptr into params */
    size_t n_params;
    float *params;                  /* (n_params) pt.base */
    float *grads;                   /* (n_params) same layout; backward accumulates here */
    float *p[VAE_NT], *g[VAE_NT];   /* each tensor inside params / grads */

    struct vae_acts act;            /* sized once by vae_batch_alloc */
    struct vae_scratch scr;         /* sized with them */
};

/* Allocates parameters (zero) and gradients for latent size L. The model holds no batch
   buffers until vae_batch_alloc. */
void vae_init(struct vae *m, int latent, float beta);
void vae_free(struct vae *m);
/* PyTorch default initialisation, module by module, weight then bias: U(+-1/sqrt(fan_in)),
   fan_in = in*k*k for Conv2d, in for Linear, weight.size(1)*k*k = out*k*k for
   ConvTranspose2d (its weight is (in, out, k, k)). */
void vae_init_params(struct vae *m, struct rng *r);
/* fan_in bound of tensor i (weight or bias of its module) */
float vae_init_bound(const struct vae *m, int i);
/* Activations and scratch for batches of up to max_batch images starting anywhere (a larger
   batch asserts); call after nn_set_threads. Calling it again replaces them. */
void vae_batch_alloc(struct vae *m, int max_batch);
void vae_zero_grad(struct vae *m);

/* Training forward: x (N,3,32,32) in [-1,1], eps (N,L) the reparameterisation noise (NULL:
   z = mu); first: the index of x's first image in the whole run (0 for training batches).
   Keeps x and the activations for vae_backward; recon and kl may be NULL. Returns the loss;
   the reconstruction (N,3,32,32) is at vae_xhat(m). */
float vae_forward(struct vae *m, const float *x, const float *eps, int N, int first,
                  float *recon, float *kl);
const float *vae_xhat(const struct vae *m);
/* Gradients of the last forward's loss, accumulated into m->grads. */
void vae_backward(struct vae *m, int N);
/* Inference: z (N,L), the first being image `first` of the run -> images (N,3,32,32),
   returned (inside m's buffers). */
const float *vae_decode(struct vae *m, const float *z, int N, int first);

/* Checkpoints: safetensors with the state_dict names; metadata format, model, latent, beta
   and n_extra more key/value pairs. */
int vae_save(const struct vae *m, const char *path, const char *const *keys,
             const char *const *vals, int n_extra, char *msg, size_t msglen);
/* Reads a checkpoint written by vae_save or by PyTorch (latent from the metadata or the
   mu.weight shape, beta from the metadata or 1): vae_init's the model. Errors name the
   missing or mis-shaped tensor, or say the file is another model. */
int vae_load(struct vae *m, const char *path, char *msg, size_t msglen);
/* the same from an open file (metadata available to the caller) */
int vae_load_st(struct vae *m, const struct st_file *f, char *msg, size_t msglen);

/* The trainer's companion state: the parameters (state_dict names), the Adam moments am, av
   (n_params each, the params' layout) as tensors adam.m.NAME and adam.v.NAME, plus string
   metadata (step, rng state, ...). With the parameters inside, the state file alone is a
   complete checkpoint: a run killed between writing it and the model file resumes from it. */
int vae_state_save(const struct vae *m, const float *am, const float *av, const char *path,
                   const char *const *keys, const char *const *vals, int n_meta, char *msg,
                   size_t msglen);
/* whether f holds the parameters (state files of earlier versions hold only the moments) */
int vae_state_has_params(const struct st_file *f);
/* Loads am, av, and the parameters into m when f has them. */
int vae_state_load(struct vae *m, float *am, float *av, const struct st_file *f, char *msg,
                   size_t msglen);
#endif
