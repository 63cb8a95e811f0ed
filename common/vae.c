/* The study's convolutional VAE: parameter table, forward, backward, loss, checkpoints.
   See vae.h for the architecture and the threading scheme. */
#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "optim.h"
#include "rng.h"
#include "st.h"
#include "util.h"
#include "vae.h"

enum {
    E0W, E0B, E2W, E2B, E4W, E4B, MUW, MUB, LVW, LVB,
    D0W, D0B, D2W, D2B, D4W, D4B, D6W, D6B
};

static const char *const vae_names[VAE_NT] = {
    "enc.0.weight", "enc.0.bias", "enc.2.weight", "enc.2.bias", "enc.4.weight", "enc.4.bias",
    "mu.weight", "mu.bias", "logvar.weight", "logvar.bias", "dec.0.weight", "dec.0.bias",
    "dec.2.weight", "dec.2.bias", "dec.4.weight", "dec.4.bias", "dec.6.weight", "dec.6.bias",
};

static size_t entry_count(const struct st_entry *e)
{
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= (size_t)e->shape[d];
    return n;
}

static void set_shape(struct st_entry *e, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    e->ndim = ndim;
    e->shape[0] = a;
    e->shape[1] = b;
    e->shape[2] = c;
    e->shape[3] = d;
}

void vae_init(struct vae *m, int latent, float beta)
{
    struct st_entry *t = m->table;
    int L = latent;
    assert(latent > 0);
    memset(m, 0, sizeof *m);
    m->latent = latent;
    m->beta = beta;
    set_shape(&t[E0W], 4, 32, 3, 4, 4);
    set_shape(&t[E2W], 4, 32, 32, 4, 4);
    set_shape(&t[E4W], 4, 32, 32, 4, 4);
    set_shape(&t[MUW], 2, L, VAE_HID, 0, 0);
    set_shape(&t[LVW], 2, L, VAE_HID, 0, 0);
    set_shape(&t[D0W], 2, VAE_HID, L, 0, 0);
    set_shape(&t[D2W], 4, 32, 32, 4, 4); /* ConvTranspose2d: (in, out, k, k) */
    set_shape(&t[D4W], 4, 32, 32, 4, 4);
    set_shape(&t[D6W], 4, 32, 3, 4, 4);
    set_shape(&t[E0B], 1, 32, 0, 0, 0);
    set_shape(&t[E2B], 1, 32, 0, 0, 0);
    set_shape(&t[E4B], 1, 32, 0, 0, 0);
    set_shape(&t[MUB], 1, L, 0, 0, 0);
    set_shape(&t[LVB], 1, L, 0, 0, 0);
    set_shape(&t[D0B], 1, VAE_HID, 0, 0, 0);
    set_shape(&t[D2B], 1, 32, 0, 0, 0);
    set_shape(&t[D4B], 1, 32, 0, 0, 0);
    set_shape(&t[D6B], 1, 3, 0, 0, 0);
    for (int i = 0; i < VAE_NT; i++) {
        t[i].name = vae_names[i];
        m->n_params += entry_count(&t[i]);
    }
    m->params = xcalloc(m->n_params, sizeof(float));
    m->grads = xcalloc(m->n_params, sizeof(float));
    size_t off = 0;
    for (int i = 0; i < VAE_NT; i++) {
        m->p[i] = t[i].ptr = m->params + off;
        m->g[i] = m->grads + off;
        off += entry_count(&t[i]);
    }
}

void vae_free(struct vae *m)
{
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->thr);
    memset(m, 0, sizeof *m);
}

float vae_init_bound(const struct vae *m, int i)
{
    const struct st_entry *w = &m->table[i & ~1]; /* the module's weight */
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
        init_uniform(m->p[i], entry_count(&m->table[i]), vae_init_bound(m, i), r);
}

/* ---- batch buffers ---- */

/* the layers on a chunk of n images, run by one thread (nt = 1: each thread of the batch
   split calls the conv layers with its own scratch) */
static void conv_geoms(struct nn_conv g[6], int n)
{
    nn_conv_init(&g[0], n, 3, 32, 32, 32, 4, 2, 1);   /* enc.0 -> 16x16 */
    nn_conv_init(&g[1], n, 32, 16, 16, 32, 4, 2, 1);  /* enc.2 -> 8x8 */
    nn_conv_init(&g[2], n, 32, 8, 8, 32, 4, 2, 1);    /* enc.4 -> 4x4 */
    nn_convt_init(&g[3], n, 32, 4, 4, 32, 4, 2, 1);   /* dec.2 -> 8x8 */
    nn_convt_init(&g[4], n, 32, 8, 8, 32, 4, 2, 1);   /* dec.4 -> 16x16 */
    nn_convt_init(&g[5], n, 32, 16, 16, 3, 4, 2, 1);  /* dec.6 -> 32x32 */
    for (int i = 0; i < 6; i++)
        g[i].nt = 1;
}

void vae_batch_alloc(struct vae *m, int max_batch)
{
    size_t B = (size_t)max_batch, L = (size_t)m->latent, off = 0;
    /* sizes per image of every activation and gradient buffer, in struct order */
    float **bufs[] = {&m->h1, &m->h2, &m->h3, &m->mu, &m->logvar, &m->eps, &m->z, &m->d0,
                      &m->d1, &m->d2, &m->xhat, &m->dxhat, &m->dd2, &m->dd1, &m->dd0, &m->dz,
                      &m->dmu, &m->dlogvar, &m->dh3, &m->dh2, &m->dh1};
    size_t per[] = {8192, 2048, 512, L, L, L, L, 512, 2048, 8192, VAE_D, VAE_D, 8192, 2048,
                    512, L, L, L, 512, 2048, 8192};
    size_t total = 0;
    int nb = (int)(sizeof per / sizeof per[0]);
    struct nn_conv g[6];

    assert(max_batch > 0);
    free(m->acts);
    free(m->thr);
    for (int i = 0; i < nb; i++)
        total += per[i] * B;
    m->acts = xcalloc(total, sizeof(float));
    for (int i = 0; i < nb; i++) {
        *bufs[i] = m->acts + off;
        off += per[i] * B;
    }
    m->max_batch = max_batch;
    m->n_threads = nn_get_threads();
    if (m->n_threads > max_batch)
        m->n_threads = max_batch;
    /* the biggest chunk a thread gets */
    conv_geoms(g, (max_batch + m->n_threads - 1) / m->n_threads);
    m->scratch_len = 0;
    for (int i = 0; i < 6; i++) {
        size_t s = i < 3 ? nn_conv_scratch(&g[i]) : nn_convt_scratch(&g[i]);
        if (s > m->scratch_len)
            m->scratch_len = s;
    }
    m->thr_stride = (m->n_params + m->scratch_len + 15) / 16 * 16;
    m->thr = xcalloc(m->thr_stride * (size_t)m->n_threads, sizeof(float));
}

void vae_zero_grad(struct vae *m)
{
    memset(m->grads, 0, m->n_params * sizeof(float));
}

/* ---- forward and backward of one chunk of images [o, o+n) ---- */

static void relu_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0 ? x[i] : 0;
}

/* ReLU backward in place: d *= (y > 0) with y the ReLU's output */
static void relu_mask(float *d, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = y[i] > 0 ? d[i] : 0;
}

static void decode_chunk(struct vae *m, float *scratch, int o, int n)
{
    struct nn_conv g[6];
    size_t ob = (size_t)o;
    float *d0 = m->d0 + ob * 512, *d1 = m->d1 + ob * 2048, *d2 = m->d2 + ob * 8192;
    float *xhat = m->xhat + ob * VAE_D;

    conv_geoms(g, n);
    nn_linear_forward(d0, m->z + ob * m->latent, m->p[D0W], m->p[D0B], n, m->latent, VAE_HID);
    nn_conv_transpose2d_forward(d1, scratch, d0, m->p[D2W], m->p[D2B], &g[3]);
    relu_inplace(d1, (size_t)n * 2048);
    nn_conv_transpose2d_forward(d2, scratch, d1, m->p[D4W], m->p[D4B], &g[4]);
    relu_inplace(d2, (size_t)n * 8192);
    nn_conv_transpose2d_forward(xhat, scratch, d2, m->p[D6W], m->p[D6B], &g[5]);
    for (size_t i = 0; i < (size_t)n * VAE_D; i++)
        xhat[i] = tanhf(xhat[i]);
}

static void forward_chunk(struct vae *m, float *scratch, const float *eps, int o, int n)
{
    struct nn_conv g[6];
    size_t ob = (size_t)o, L = (size_t)m->latent;
    float *h1 = m->h1 + ob * 8192, *h2 = m->h2 + ob * 2048, *h3 = m->h3 + ob * 512;
    float *mu = m->mu + ob * L, *lv = m->logvar + ob * L, *z = m->z + ob * L;

    conv_geoms(g, n);
    nn_conv2d_forward(h1, scratch, m->x + ob * VAE_D, m->p[E0W], m->p[E0B], &g[0]);
    relu_inplace(h1, (size_t)n * 8192);
    nn_conv2d_forward(h2, scratch, h1, m->p[E2W], m->p[E2B], &g[1]);
    relu_inplace(h2, (size_t)n * 2048);
    nn_conv2d_forward(h3, scratch, h2, m->p[E4W], m->p[E4B], &g[2]);
    relu_inplace(h3, (size_t)n * 512);
    nn_linear_forward(mu, h3, m->p[MUW], m->p[MUB], n, VAE_HID, m->latent);
    nn_linear_forward(lv, h3, m->p[LVW], m->p[LVB], n, VAE_HID, m->latent);
    if (eps != NULL) {
        float *e = m->eps + ob * L;
        memcpy(e, eps + ob * L, (size_t)n * L * sizeof(float));
        for (size_t i = 0; i < (size_t)n * L; i++)
            z[i] = mu[i] + expf(0.5f * lv[i]) * e[i];
    } else {
        memset(m->eps + ob * L, 0, (size_t)n * L * sizeof(float));
        memcpy(z, mu, (size_t)n * L * sizeof(float));
    }
    decode_chunk(m, scratch, o, n);
}

/* gradients of this chunk into g (a thread's copy of the gradient layout) */
static void backward_chunk(struct vae *m, float *gr, float *scratch, int o, int n)
{
    struct nn_conv g[6];
    size_t ob = (size_t)o, L = (size_t)m->latent, nn = (size_t)n;
    float *G[VAE_NT];
    float *dxhat = m->dxhat + ob * VAE_D, *xhat = m->xhat + ob * VAE_D;
    float *dd2 = m->dd2 + ob * 8192, *dd1 = m->dd1 + ob * 2048, *dd0 = m->dd0 + ob * 512;
    float *dz = m->dz + ob * L, *dmu = m->dmu + ob * L, *dlv = m->dlogvar + ob * L;
    float *dh3 = m->dh3 + ob * 512, *dh2 = m->dh2 + ob * 2048, *dh1 = m->dh1 + ob * 8192;
    const float *lv = m->logvar + ob * L, *eps = m->eps + ob * L;

    for (int i = 0; i < VAE_NT; i++)
        G[i] = gr + (m->g[i] - m->grads);
    conv_geoms(g, n);
    memset(dd2, 0, nn * 8192 * sizeof(float));
    memset(dd1, 0, nn * 2048 * sizeof(float));
    memset(dd0, 0, nn * 512 * sizeof(float));
    memset(dz, 0, nn * L * sizeof(float));
    memset(dh3, 0, nn * 512 * sizeof(float));
    memset(dh2, 0, nn * 2048 * sizeof(float));
    memset(dh1, 0, nn * 8192 * sizeof(float));
    /* Tanh: d/dx tanh = 1 - y^2, in place */
    for (size_t i = 0; i < nn * VAE_D; i++)
        dxhat[i] *= 1.0f - xhat[i] * xhat[i];
    nn_conv_transpose2d_backward(dd2, G[D6W], G[D6B], scratch, dxhat, m->d2 + ob * 8192,
                                 m->p[D6W], &g[5]);
    relu_mask(dd2, m->d2 + ob * 8192, nn * 8192);
    nn_conv_transpose2d_backward(dd1, G[D4W], G[D4B], scratch, dd2, m->d1 + ob * 2048,
                                 m->p[D4W], &g[4]);
    relu_mask(dd1, m->d1 + ob * 2048, nn * 2048);
    nn_conv_transpose2d_backward(dd0, G[D2W], G[D2B], scratch, dd1, m->d0 + ob * 512,
                                 m->p[D2W], &g[3]);
    nn_linear_backward(dz, G[D0W], G[D0B], dd0, m->z + ob * L, m->p[D0W], n, m->latent,
                       VAE_HID);
    /* z = mu + exp(logvar/2) eps */
    for (size_t i = 0; i < nn * L; i++) {
        dmu[i] += dz[i];
        dlv[i] += dz[i] * eps[i] * 0.5f * expf(0.5f * lv[i]);
    }
    nn_linear_backward(dh3, G[MUW], G[MUB], dmu, m->h3 + ob * 512, m->p[MUW], n, VAE_HID,
                       m->latent);
    nn_linear_backward(dh3, G[LVW], G[LVB], dlv, m->h3 + ob * 512, m->p[LVW], n, VAE_HID,
                       m->latent);
    relu_mask(dh3, m->h3 + ob * 512, nn * 512);
    nn_conv2d_backward(dh2, G[E4W], G[E4B], scratch, dh3, m->h2 + ob * 2048, m->p[E4W], &g[2]);
    relu_mask(dh2, m->h2 + ob * 2048, nn * 2048);
    nn_conv2d_backward(dh1, G[E2W], G[E2B], scratch, dh2, m->h1 + ob * 8192, m->p[E2W], &g[1]);
    relu_mask(dh1, m->h1 + ob * 8192, nn * 8192);
    nn_conv2d_backward(NULL, G[E0W], G[E0B], scratch, dh1, m->x + ob * VAE_D, m->p[E0W],
                       &g[0]);
}

/* thread t's rows of a batch of N */
static void chunk_of(int t, int T, int N, int *o, int *n)
{
    int a = (int)((long)N * t / T), b = (int)((long)N * (t + 1) / T);
    *o = a;
    *n = b - a;
}

float vae_forward(struct vae *m, const float *x, const float *eps, int N, float *recon,
                  float *kl)
{
    float r, k, loss;
    int T = m->n_threads < N ? m->n_threads : N;

    assert(N > 0 && N <= m->max_batch);
    m->x = x;
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), o, n;
        chunk_of(t, T, N, &o, &n);
        if (n > 0)
            forward_chunk(m, m->thr + m->thr_stride * t + m->n_params, eps, o, n);
    }
    loss = nn_vae_loss_forward(&r, &k, m->xhat, x, m->mu, m->logvar, N, VAE_D, m->latent,
                               m->beta);
    if (recon != NULL)
        *recon = r;
    if (kl != NULL)
        *kl = k;
    return loss;
}

void vae_backward(struct vae *m, int N)
{
    size_t L = (size_t)m->latent, P = m->n_params;
    int T = m->n_threads < N ? m->n_threads : N;

    assert(N > 0 && N <= m->max_batch && m->x != NULL);
    memset(m->dxhat, 0, (size_t)N * VAE_D * sizeof(float));
    memset(m->dmu, 0, (size_t)N * L * sizeof(float));
    memset(m->dlogvar, 0, (size_t)N * L * sizeof(float));
    nn_vae_loss_backward(m->dxhat, m->dmu, m->dlogvar, m->xhat, m->x, m->mu, m->logvar, N,
                         VAE_D, m->latent, m->beta);
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), o, n;
        float *gr = m->thr + m->thr_stride * t;
        chunk_of(t, T, N, &o, &n);
        memset(gr, 0, P * sizeof(float));
        if (n > 0)
            backward_chunk(m, gr, gr + P, o, n);
#pragma omp barrier
        /* sum the thread copies in thread order: the same bits for the same T */
#pragma omp for schedule(static)
        for (size_t i = 0; i < P; i++) {
            float s = m->thr[i];
            for (int u = 1; u < T; u++)
                s += m->thr[m->thr_stride * u + i];
            m->grads[i] += s;
        }
    }
}

const float *vae_decode(struct vae *m, const float *z, int N)
{
    int T = m->n_threads < N ? m->n_threads : N;

    assert(N > 0 && N <= m->max_batch);
    memcpy(m->z, z, (size_t)N * m->latent * sizeof(float));
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), o, n;
        chunk_of(t, T, N, &o, &n);
        if (n > 0)
            decode_chunk(m, m->thr + m->thr_stride * t + m->n_params, o, n);
    }
    return m->xhat;
}

/* ---- images ---- */

void vae_images_to_input(float *x, const uint8_t *img, int N)
{
    for (size_t n = 0; n < (size_t)N; n++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++)
                x[n * VAE_D + (size_t)c * 1024 + p] = img[n * VAE_D + (size_t)p * 3 + c] / 127.5f
                                                      - 1.0f;
}

void vae_output_to_images(uint8_t *img, const float *x, int N)
{
    for (size_t n = 0; n < (size_t)N; n++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) {
                float v = (x[n * VAE_D + (size_t)c * 1024 + p] + 1.0f) * 127.5f;
                v = v > 0 ? (v < 255 ? nearbyintf(v) : 255) : 0; /* NaN -> 0 */
                img[n * VAE_D + (size_t)p * 3 + c] = (uint8_t)v;
            }
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
    return st_save_entries(path, m->table, VAE_NT, k, v, n, msg, msglen);
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
    if (st_load_entries(f, m->table, VAE_NT, 0, msg, msglen) == -1) {
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

/* adam.m.NAME then adam.v.NAME entries over am and av */
static void state_table(struct st_entry e[2 * VAE_NT], char names[2 * VAE_NT][32],
                        const struct vae *m, const float *am, const float *av)
{
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < VAE_NT; i++) {
            struct st_entry *t = &e[k * VAE_NT + i];
            *t = m->table[i];
            snprintf(names[k * VAE_NT + i], 32, "adam.%c.%s", k ? 'v' : 'm', vae_names[i]);
            t->name = names[k * VAE_NT + i];
            t->ptr = (float *)(k ? av : am) + (m->p[i] - m->params);
        }
}

int vae_state_save(const struct vae *m, const float *am, const float *av, const char *path,
                   const char *const *keys, const char *const *vals, int n_meta, char *msg,
                   size_t msglen)
{
    struct st_entry e[2 * VAE_NT];
    char names[2 * VAE_NT][32];
    state_table(e, names, m, am, av);
    return st_save_entries(path, e, 2 * VAE_NT, keys, vals, n_meta, msg, msglen);
}

int vae_state_load(const struct vae *m, float *am, float *av, const struct st_file *f,
                   char *msg, size_t msglen)
{
    struct st_entry e[2 * VAE_NT];
    char names[2 * VAE_NT][32];
    state_table(e, names, m, am, av);
    return st_load_entries(f, e, 2 * VAE_NT, 0, msg, msglen);
}
