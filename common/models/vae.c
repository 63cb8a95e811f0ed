/* The study's convolutional VAE: parameter table, forward, backward, loss, checkpoints.
   See vae.h for the architecture and the threading scheme. */
#include <assert.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_conv_cnhw.h"
#include "nn/nn_math.h"
#include "io/npy.h"
#include "nn/optim.h"
#include "util/rng.h"
#include "io/st.h"
#include "util/util.h"
#include "models/vae.h"

/* indices into the parameter table: the order of vae_layout's calls */
enum {
    E0W, E0B, E2W, E2B, E4W, E4B, MUW, MUB, LVW, LVB,
    D0W, D0B, D2W, D2B, D4W, D4B, D6W, D6B
};

/* the state_dict, in its order */
static void vae_layout(struct param_table *t, int L)
{
    param_add(t, "enc.0.weight", 4, 32, 3, 4, 4);
    param_add(t, "enc.0.bias", 1, 32, 0, 0, 0);
    param_add(t, "enc.2.weight", 4, 32, 32, 4, 4);
    param_add(t, "enc.2.bias", 1, 32, 0, 0, 0);
    param_add(t, "enc.4.weight", 4, 32, 32, 4, 4);
    param_add(t, "enc.4.bias", 1, 32, 0, 0, 0);
    param_add(t, "mu.weight", 2, L, VAE_HID, 0, 0);
    param_add(t, "mu.bias", 1, L, 0, 0, 0);
    param_add(t, "logvar.weight", 2, L, VAE_HID, 0, 0);
    param_add(t, "logvar.bias", 1, L, 0, 0, 0);
    param_add(t, "dec.0.weight", 2, VAE_HID, L, 0, 0);
    param_add(t, "dec.0.bias", 1, VAE_HID, 0, 0, 0);
    param_add(t, "dec.2.weight", 4, 32, 32, 4, 4); /* ConvTranspose2d: (in, out, k, k) */
    param_add(t, "dec.2.bias", 1, 32, 0, 0, 0);
    param_add(t, "dec.4.weight", 4, 32, 32, 4, 4);
    param_add(t, "dec.4.bias", 1, 32, 0, 0, 0);
    param_add(t, "dec.6.weight", 4, 32, 3, 4, 4);
    param_add(t, "dec.6.bias", 1, 3, 0, 0, 0);
}

void vae_init(struct vae *m, int latent, float beta)
{
    assert(latent > 0);
    memset(m, 0, sizeof *m);
    m->latent = latent;
    m->beta = beta;
    param_table_init(&m->pt);
    vae_layout(&m->pt, latent);
    param_table_alloc(&m->pt);
    vae_layout(&m->pt, latent);
    param_table_done(&m->pt);
    assert(m->pt.n == VAE_NT);
    m->params = m->pt.base;
    m->n_params = m->pt.n_floats;
    m->grads = xcalloc_big(m->n_params, sizeof(float));
    for (int i = 0; i < VAE_NT; i++) {
        m->p[i] = m->pt.e[i].ptr;
        m->g[i] = m->grads + param_offset(&m->pt, i);
    }
}

void vae_free(struct vae *m)
{
    param_table_free(&m->pt);
    free(m->grads);
    free(m->act.acts);
    free(m->scr.thr);
    memset(m, 0, sizeof *m);
}

float vae_init_bound(const struct vae *m, int i)
{
    const struct st_entry *w = &m->pt.e[i & ~1]; /* the module's weight */
    double fan_in;
    if (w->ndim == 2)
        fan_in = (double)w->shape[1];
    else /* Conv2d (out,in,k,k) and ConvTranspose2d (in,out,k,k): torch uses size(1)*k*k */
        fan_in = (double)(w->shape[1] * w->shape[2] * w->shape[3]);
    return (float)(1.0 / sqrt(fan_in));
}

void vae_init_params(struct vae *m, struct rng *r)
{
    for (int i = 0; i < VAE_NT; i++)
        init_uniform(m->p[i], param_numel(&m->pt.e[i]), vae_init_bound(m, i), r);
}

#define VAE_CHUNK 16 /* images per work item of the batch split */

/* ---- batch buffers ---- */

void vae_batch_alloc(struct vae *m, int max_batch)
{
    /* rows for the slots of the chunks a batch of max_batch can touch, wherever it starts */
    int n_chunks = (VAE_CHUNK - 1 + max_batch + VAE_CHUNK - 1) / VAE_CHUNK;
    size_t B = (size_t)n_chunks * VAE_CHUNK, L = (size_t)m->latent, off = 0, total = 0;
    /* per slot, in struct order; chunk c uses rows c*VAE_CHUNK .. of each */
    struct vae_acts *a = &m->act;
    float **bufs[] = {&a->xin, &a->xc, &a->h1, &a->h2, &a->h3c, &a->h3, &a->mu, &a->logvar,
                      &a->eps, &a->z, &a->d0, &a->d0c, &a->d1, &a->d2, &a->xhc, &a->xhat,
                      &a->dxhat, &a->dxc, &a->dd2, &a->dd1, &a->dd0c, &a->dd0, &a->dz, &a->dmu,
                      &a->dlogvar, &a->dh3, &a->dh3c, &a->dh2, &a->dh1};
    size_t per[] = {VAE_D, VAE_D, 8192, 2048, 512, 512, L, L, L, L, 512, 512, 2048, 8192, VAE_D, VAE_D,
                    VAE_D, VAE_D, 8192, 2048, 512, 512, L, L, L, 512, 512, 2048, 8192};
    int nb = (int)(sizeof per / sizeof per[0]);

    assert(max_batch > 0 && sizeof bufs / sizeof bufs[0] == sizeof per / sizeof per[0]);
    free(m->act.acts);
    free(m->scr.thr);
    for (int i = 0; i < nb; i++)
        total += per[i] * B;
    m->act.acts = xcalloc_big(total, sizeof(float));
    for (int i = 0; i < nb; i++) {
        *bufs[i] = m->act.acts + off;
        off += per[i] * B;
    }
    m->act.max_batch = max_batch;
    m->act.n_chunks = n_chunks;
    /* a group's column block is at most NN_CNHW_COLMAX floats, or one image's (32*1024) */
    m->scr.scratch_len = NN_CNHW_COLMAX > 32 * 1024 ? NN_CNHW_COLMAX : 32 * 1024;
    m->scr.thr_stride = (m->n_params + m->scr.scratch_len + 15) / 16 * 16;
    m->scr.thr = xcalloc(m->scr.thr_stride * (size_t)m->act.n_chunks, sizeof(float));
}

void vae_zero_grad(struct vae *m)
{
    memset(m->grads, 0, m->n_params * sizeof(float));
}

/* ---- forward and backward of one chunk of images [o, o+n) ---- */

/* pointer to the chunk at image o of a buffer with `per` floats per image */
#define AT(buf, per) ((buf) + (size_t)o * (per))

static void decode_chunk(struct vae *m, float *col, int o, int n)
{
    struct vae_acts *a = &m->act;
    float *d0 = AT(a->d0, 512), *d0c = AT(a->d0c, 512), *d1 = AT(a->d1, 2048);
    float *d2 = AT(a->d2, 8192), *xhc = AT(a->xhc, VAE_D), *xhat = AT(a->xhat, VAE_D);

    nn_linear_forward(d0, AT(a->z, m->latent), m->p[D0W], m->p[D0B], n, m->latent, VAE_HID);
    nn_cnhw_from_nchw(d0c, d0, n, 32, 16);                   /* Unflatten(1, (32, 4, 4)) */
    nn_convt4s2_cnhw_forward(d1, col, d0c, m->p[D2W], 32, 32, n, 4, 4);
    nn_cnhw_bias_act(d1, m->p[D2B], 32, (size_t)n * 64, 1);
    nn_convt4s2_cnhw_forward(d2, col, d1, m->p[D4W], 32, 32, n, 8, 8);
    nn_cnhw_bias_act(d2, m->p[D4B], 32, (size_t)n * 256, 1);
    nn_convt4s2_cnhw_forward(xhc, col, d2, m->p[D6W], 32, 3, n, 16, 16);
    nn_cnhw_bias_act(xhc, m->p[D6B], 3, (size_t)n * 1024, 0);
    nn_cnhw_to_nchw(xhat, xhc, n, 3, 1024);
    for (size_t i = 0; i < (size_t)n * VAE_D; i++)
        xhat[i] = nn_tanhf_rational(xhat[i]);
}

static void forward_chunk(struct vae *m, float *col, int noise, int o, int n)
{
    struct vae_acts *a = &m->act;
    size_t L = (size_t)m->latent;
    float *xc = AT(a->xc, VAE_D), *h1 = AT(a->h1, 8192), *h2 = AT(a->h2, 2048);
    float *h3c = AT(a->h3c, 512), *h3 = AT(a->h3, 512);
    float *mu = AT(a->mu, L), *lv = AT(a->logvar, L), *z = AT(a->z, L), *e = AT(a->eps, L);

    nn_cnhw_from_nchw(xc, AT(a->xin, VAE_D), n, 3, 1024);
    nn_conv4s2_cnhw_forward(h1, col, xc, m->p[E0W], 3, 32, n, 32, 32);
    nn_cnhw_bias_act(h1, m->p[E0B], 32, (size_t)n * 256, 1);
    nn_conv4s2_cnhw_forward(h2, col, h1, m->p[E2W], 32, 32, n, 16, 16);
    nn_cnhw_bias_act(h2, m->p[E2B], 32, (size_t)n * 64, 1);
    nn_conv4s2_cnhw_forward(h3c, col, h2, m->p[E4W], 32, 32, n, 8, 8);
    nn_cnhw_bias_act(h3c, m->p[E4B], 32, (size_t)n * 16, 1);
    nn_cnhw_to_nchw(h3, h3c, n, 32, 16);                 /* Flatten */
    nn_linear_forward(mu, h3, m->p[MUW], m->p[MUB], n, VAE_HID, m->latent);
    nn_linear_forward(lv, h3, m->p[LVW], m->p[LVB], n, VAE_HID, m->latent);
    if (noise) {
        for (size_t i = 0; i < (size_t)n * L; i++)
            z[i] = mu[i] + expf(0.5f * lv[i]) * e[i];
    } else {
        memcpy(z, mu, (size_t)n * L * sizeof(float));
    }
    decode_chunk(m, col, o, n);
}

/* gradients of this chunk into gr (a thread's copy of the gradient layout) */
static void backward_chunk(struct vae *m, float *gr, float *col, int o, int n)
{
    struct vae_acts *a = &m->act;
    size_t L = (size_t)m->latent, nn = (size_t)n;
    float *G[VAE_NT];
    float *dxhat = AT(a->dxhat, VAE_D), *xhat = AT(a->xhat, VAE_D), *dxc = AT(a->dxc, VAE_D);
    float *dd2 = AT(a->dd2, 8192), *dd1 = AT(a->dd1, 2048), *dd0c = AT(a->dd0c, 512);
    float *dd0 = AT(a->dd0, 512), *dz = AT(a->dz, L), *dmu = AT(a->dmu, L);
    float *dlv = AT(a->dlogvar, L), *dh3 = AT(a->dh3, 512), *dh3c = AT(a->dh3c, 512);
    float *dh2 = AT(a->dh2, 2048), *dh1 = AT(a->dh1, 8192);
    const float *lv = AT(a->logvar, L), *eps = AT(a->eps, L);

    for (int i = 0; i < VAE_NT; i++)
        G[i] = gr + (m->g[i] - m->grads);
    /* Tanh: d/dx tanh = 1 - y^2 */
    for (size_t i = 0; i < nn * VAE_D; i++)
        dxhat[i] *= 1.0f - xhat[i] * xhat[i];
    nn_cnhw_from_nchw(dxc, dxhat, n, 3, 1024);
    nn_cnhw_bias_grad(G[D6B], dxc, 3, nn * 1024);
    nn_convt4s2_cnhw_backward(dd2, G[D6W], col, dxc, AT(a->d2, 8192), m->p[D6W], 32, 3, n, 16, 16);
    nn_relu_mask(dd2, AT(a->d2, 8192), nn * 8192);
    nn_cnhw_bias_grad(G[D4B], dd2, 32, nn * 256);
    nn_convt4s2_cnhw_backward(dd1, G[D4W], col, dd2, AT(a->d1, 2048), m->p[D4W], 32, 32, n, 8, 8);
    nn_relu_mask(dd1, AT(a->d1, 2048), nn * 2048);
    nn_cnhw_bias_grad(G[D2B], dd1, 32, nn * 64);
    nn_convt4s2_cnhw_backward(dd0c, G[D2W], col, dd1, AT(a->d0c, 512), m->p[D2W], 32, 32, n, 4, 4);
    nn_cnhw_to_nchw(dd0, dd0c, n, 32, 16);
    memset(dz, 0, nn * L * sizeof(float));
    nn_linear_backward(dz, G[D0W], G[D0B], dd0, AT(a->z, L), m->p[D0W], n, m->latent, VAE_HID);
    /* z = mu + exp(logvar/2) eps */
    for (size_t i = 0; i < nn * L; i++) {
        dmu[i] += dz[i];
        dlv[i] += dz[i] * eps[i] * 0.5f * expf(0.5f * lv[i]);
    }
    memset(dh3, 0, nn * 512 * sizeof(float));
    nn_linear_backward(dh3, G[MUW], G[MUB], dmu, AT(a->h3, 512), m->p[MUW], n, VAE_HID,
                       m->latent);
    nn_linear_backward(dh3, G[LVW], G[LVB], dlv, AT(a->h3, 512), m->p[LVW], n, VAE_HID,
                       m->latent);
    nn_relu_mask(dh3, AT(a->h3, 512), nn * 512);
    nn_cnhw_from_nchw(dh3c, dh3, n, 32, 16);
    nn_cnhw_bias_grad(G[E4B], dh3c, 32, nn * 16);
    nn_conv4s2_cnhw_backward(dh2, G[E4W], col, dh3c, AT(a->h2, 2048), m->p[E4W], 32, 32, n, 8, 8);
    nn_relu_mask(dh2, AT(a->h2, 2048), nn * 2048);
    nn_cnhw_bias_grad(G[E2B], dh2, 32, nn * 64);
    nn_conv4s2_cnhw_backward(dh1, G[E2W], col, dh2, AT(a->h1, 8192), m->p[E2W], 32, 32, n, 16, 16);
    nn_relu_mask(dh1, AT(a->h1, 8192), nn * 8192);
    nn_cnhw_bias_grad(G[E0B], dh1, 32, nn * 256);
    nn_conv4s2_cnhw_backward(NULL, G[E0W], col, dh1, AT(a->xc, VAE_D), m->p[E0W], 3, 32, n, 32, 32);
}
#undef AT

/* Chunks of VAE_CHUNK images go to the threads dynamically; chunk k always uses copy k of
   the gradients and scratch, and the copies are summed in chunk order, so the result does
   not depend on the thread count or on which thread ran which chunk. */
static int threads_for(int K)
{
    int T = nn_get_threads();
    return T < K ? T : K;
}

/* A batch of N images starting at image `first` of the whole run fills slots s .. s+N-1
   (s = first % VAE_CHUNK) of K whole chunks; the other slots hold zeros. Every chunk is run
   whole, so each GEMM's shape and an image's place in it are set by its index in the run:
   under OpenBLAS's Haswell kernels a column's sum depends on both (nn.c), and this way an
   image's result does not depend on the batch size or where the batch starts. */
static void batch_slots(struct vae *m, int N, int first, int *K, size_t *s)
{
    struct vae_acts *a = &m->act;
    *s = (size_t)(first % VAE_CHUNK);
    *K = (int)((*s + (size_t)N + VAE_CHUNK - 1) / VAE_CHUNK);
    a->batch = N;
    a->slot0 = (int)*s;
    a->batch_chunks = *K;
}

float vae_forward(struct vae *m, const float *x, const float *eps, int N, int first,
                  float *recon, float *kl)
{
    struct vae_acts *a = &m->act;
    size_t L = (size_t)m->latent, s;
    float r, k, loss;
    int K;

    assert(N > 0 && N <= a->max_batch && first >= 0);
    batch_slots(m, N, first, &K, &s);
    a->x = x;
    memset(a->xin, 0, (size_t)K * VAE_CHUNK * VAE_D * sizeof(float));
    memcpy(a->xin + s * VAE_D, x, (size_t)N * VAE_D * sizeof(float));
    memset(a->eps, 0, (size_t)K * VAE_CHUNK * L * sizeof(float));
    if (eps != NULL)
        memcpy(a->eps + s * L, eps, (size_t)N * L * sizeof(float));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(K))
    for (int c = 0; c < K; c++)
        forward_chunk(m, m->scr.thr + m->scr.thr_stride * c + m->n_params, eps != NULL,
                      c * VAE_CHUNK, VAE_CHUNK);
    loss = nn_vae_loss_forward(&r, &k, a->xhat + s * VAE_D, x, a->mu + s * L,
                               a->logvar + s * L, N, VAE_D, m->latent, m->beta);
    if (recon != NULL)
        *recon = r;
    if (kl != NULL)
        *kl = k;
    return loss;
}

void vae_backward(struct vae *m, int N)
{
    struct vae_acts *a = &m->act;
    size_t L = (size_t)m->latent, P = m->n_params, s = (size_t)a->slot0;
    int K = a->batch_chunks;

    assert(N > 0 && N == a->batch && a->x != NULL);
    memset(a->dxhat, 0, (size_t)K * VAE_CHUNK * VAE_D * sizeof(float));
    memset(a->dmu, 0, (size_t)K * VAE_CHUNK * L * sizeof(float));
    memset(a->dlogvar, 0, (size_t)K * VAE_CHUNK * L * sizeof(float));
    nn_vae_loss_backward(a->dxhat + s * VAE_D, a->dmu + s * L, a->dlogvar + s * L,
                         a->xhat + s * VAE_D, a->x, a->mu + s * L, a->logvar + s * L, N, VAE_D,
                         m->latent, m->beta);
#pragma omp parallel num_threads(threads_for(K))
    {
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < K; c++) {
            float *gr = m->scr.thr + m->scr.thr_stride * c;
            memset(gr, 0, P * sizeof(float));
            backward_chunk(m, gr, gr + P, c * VAE_CHUNK, VAE_CHUNK);
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < P; i++) {
            float g = m->scr.thr[i];
            for (int c = 1; c < K; c++)
                g += m->scr.thr[m->scr.thr_stride * c + i];
            m->grads[i] += g;
        }
    }
}

const float *vae_xhat(const struct vae *m)
{
    const struct vae_acts *a = &m->act;
    return a->xhat + (size_t)a->slot0 * VAE_D;
}

const float *vae_decode(struct vae *m, const float *z, int N, int first)
{
    struct vae_acts *a = &m->act;
    size_t L = (size_t)m->latent, s;
    int K;

    assert(N > 0 && N <= a->max_batch && first >= 0);
    batch_slots(m, N, first, &K, &s);
    memset(a->z, 0, (size_t)K * VAE_CHUNK * L * sizeof(float));
    memcpy(a->z + s * L, z, (size_t)N * L * sizeof(float));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(K))
    for (int c = 0; c < K; c++)
        decode_chunk(m, m->scr.thr + m->scr.thr_stride * c + m->n_params, c * VAE_CHUNK, VAE_CHUNK);
    return a->xhat + s * VAE_D;
}

/* ---- checkpoints ---- */

int vae_save(const struct vae *m, const char *path, const char *const *keys,
             const char *const *vals, int n_extra, char *msg, size_t msglen)
{
    const char *k[32], *v[32];
    char latent[32], beta[32];
    int n = 0;

    if (n_extra < 0 || n_extra > 28) {
        snprintf(msg, msglen, "too many metadata entries");
        return -1;
    }
    snprintf(latent, sizeof latent, "%d", m->latent);
    snprintf(beta, sizeof beta, "%.9g", m->beta);
    k[n] = "format", v[n++] = "pt";
    k[n] = "model", v[n++] = "vae";
    k[n] = "latent", v[n++] = latent;
    k[n] = "beta", v[n++] = beta;
    for (int i = 0; i < n_extra; i++)
        k[n] = keys[i], v[n++] = vals[i];
    return param_table_save(&m->pt, 0, path, k, v, n, msg, msglen);
}

int vae_load_st(struct vae *m, const struct st_file *f, char *msg, size_t msglen)
{
    const char *model = st_meta(f, "model"), *s;
    const struct st_tensor *mu;
    long latent;
    double beta = 1.0;

    if (model != NULL && strcmp(model, "vae") != 0) {
        snprintf(msg, msglen, "not a VAE checkpoint (model: %.40s)", model);
        return -1;
    }
    if (st_find(f, "enc.0.weight") == NULL || (mu = st_find(f, "mu.weight")) == NULL) {
        snprintf(msg, msglen, "not a VAE checkpoint: no tensor %s",
                 st_find(f, "enc.0.weight") == NULL ? "enc.0.weight" : "mu.weight");
        return -1;
    }
    if ((s = st_meta(f, "latent")) != NULL) {
        if (util_parse_long(s, 1, 1 << 20, &latent) == -1) {
            snprintf(msg, msglen, "bad latent in metadata: %.40s", s);
            return -1;
        }
    } else if (mu->ndim == 2 && mu->shape[0] >= 1 && mu->shape[0] <= (1 << 20)) {
        latent = (long)mu->shape[0];
    } else {
        snprintf(msg, msglen, "mu.weight: bad shape");
        return -1;
    }
    if ((s = st_meta(f, "beta")) != NULL && util_parse_float(s, 0, 1e30, &beta) == -1) {
        snprintf(msg, msglen, "bad beta in metadata: %.40s", s);
        return -1;
    }
    vae_init(m, (int)latent, (float)beta);
    if (param_table_load(&m->pt, f, 0, msg, msglen) == -1) {
        vae_free(m);
        return -1;
    }
    return 0;
}

int vae_load(struct vae *m, const char *path, char *msg, size_t msglen)
{
    struct st_file f;
    int rc;

    if (st_open(&f, path, msg, msglen) == -1)
        return -1;
    rc = vae_load_st(m, &f, msg, msglen);
    st_close(&f);
    return rc;
}

/* adam.m.NAME, adam.v.NAME over am, av, then the parameters; caller frees the array and
   *names */
static struct st_entry *state_table(const struct vae *m, const float *am, const float *av,
                                    char *names[2])
{
    struct st_entry *e = xmalloc(3 * VAE_NT * sizeof *e);
    struct st_entry *em = param_entries(&m->pt, am, "adam.m.", 0, &names[0]);
    struct st_entry *ev = param_entries(&m->pt, av, "adam.v.", 0, &names[1]);
    memcpy(e, em, VAE_NT * sizeof *e);
    memcpy(e + VAE_NT, ev, VAE_NT * sizeof *e);
    memcpy(e + 2 * VAE_NT, m->pt.e, VAE_NT * sizeof *e);
    free(em);
    free(ev);
    return e;
}

int vae_state_save(const struct vae *m, const float *am, const float *av, const char *path,
                   const char *const *keys, const char *const *vals, int n_meta, char *msg,
                   size_t msglen)
{
    char *names[2];
    struct st_entry *e = state_table(m, am, av, names);
    int rc = st_save_entries(path, e, 3 * VAE_NT, keys, vals, n_meta, msg, msglen);
    free(e);
    free(names[0]);
    free(names[1]);
    return rc;
}

int vae_state_has_params(const struct st_file *f)
{
    return st_find(f, "enc.0.weight") != NULL;
}

int vae_state_load(struct vae *m, float *am, float *av, const struct st_file *f, char *msg,
                   size_t msglen)
{
    char *names[2];
    struct st_entry *e = state_table(m, am, av, names);
    int n = vae_state_has_params(f) ? 3 * VAE_NT : 2 * VAE_NT;
    int rc = st_load_entries(f, e, n, 0, msg, msglen);
    free(e);
    free(names[0]);
    free(names[1]);
    return rc;
}
