/* diffusers UNet2DModel: the Winograd caches of its 3x3 stride-1 convs, each allocated by an
   explicit call (unet_alloc_acts, unet_alloc_infer, unet_alloc_tiles), never in the forward:
   the transformed weights (struct unet_wino_cache) and training's kept input tiles
   (struct unet_tiles). */
#include "models/unet_wino.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_chain.h"
#include "nn/nn.h"
#include "nn/nn_wino.h"
#include "util/util.h"

/* ---- the 3x3 stride-1 convs ---- */
struct wconv {
    const float *w;
    int C, H, W, OC;
};

static int add_conv(struct wconv *v, int n, const float *w, int C, int H, int W, int OC)
{
    v[n] = (struct wconv){w, C, H, W, OC};
    return n + 1;
}

/* every Winograd conv of the forward, in order; v: room for all (see n_wconv) */
static int list_convs(const struct unet *u, struct wconv *v)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, n = 0;
    n = add_conv(v, n, u->conv_in_w, c->in_channels, S, S, c->block_out_channels[0]);
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < c->n_levels; i++) {
            const struct unet_level *lv = d ? &u->up[i] : &u->down[i];
            for (int j = 0; j < lv->n_res; j++) {
                const struct unet_resnet *r = &lv->res[j];
                n = add_conv(v, n, r->conv1_w, r->cin, r->H, r->W, r->cout);
                n = add_conv(v, n, r->conv2_w, r->cout, r->H, r->W, r->cout);
            }
            if (d && lv->has_sample) {
                const struct unet_sample *s = &lv->sample;
                n = add_conv(v, n, s->w, s->C, 2 * s->H, 2 * s->W, s->C);
            }
            if (d == 0 && i == c->n_levels - 1)
                for (int j = 0; j < 2; j++) {
                    const struct unet_resnet *r = &u->mid_res[j];
                    n = add_conv(v, n, r->conv1_w, r->cin, r->H, r->W, r->cout);
                    n = add_conv(v, n, r->conv2_w, r->cout, r->H, r->W, r->cout);
                }
        }
    n = add_conv(v, n, u->conv_out_w, c->block_out_channels[0], S, S, c->out_channels);
    return n;
}

static int n_wconv(const struct unet *u)
{
    int n = 2 + 4; /* conv_in, conv_out, the mid resnets */
    for (int i = 0; i < u->cfg.n_levels; i++)
        n += 2 * (u->down[i].n_res + u->up[i].n_res) + 1;
    return n;
}

static int by_area(const void *a, const void *b)
{
    const struct wconv *x = a, *y = b;
    long d = (long)x->H * x->W - (long)y->H * y->W;
    return d < 0 ? -1 : d > 0 ? 1 : (x->w > y->w) - (x->w < y->w); /* stable: param order */
}

/* ---- the transformed weights ---- */

void unet_wino_free(struct unet *u)
{
    free(u->wino.buf);
    free(u->wino.off);
    free(u->wino.ok);
    free(u->wino.tmp);
    memset(&u->wino, 0, sizeof u->wino);
}

/* Training changes the weights every step and runs each conv once per forward, so keeping
   every conv's transform (515 MB on ddpm-cifar10-32, more than the parameters and Adam
   moments together) bought nothing but memory; a micro-batch
   (--gradient-accumulation-steps) transforms again, about 0.1 s of CPU a forward there
   against a step's seconds. So one buffer, sized for the largest 3x3 conv. */
void unet_wino_alloc_at_use(struct unet *u)
{
    size_t most = 0;
    unet_wino_free(u);
    for (int e = 0; e < u->pt.n; e++) {
        const struct st_entry *t = &u->pt.e[e];
        size_t f = 36 * (size_t)t->shape[0] * t->shape[1];
        if (t->ndim == 4 && t->shape[2] == 3 && t->shape[3] == 3 && f > most)
            most = f;
    }
    u->wino.n_tmp = most;
    u->wino.tmp = xmalloc_big((most ? most : 1) * sizeof(float));
}

void unet_weights_changed(struct unet *u)
{
    if (u->wino.ok != NULL)
        memset(u->wino.ok, 0, (size_t)u->pt.n);
}

/* The weight cache: the convs on the smallest maps first (their GEMMs have the fewest
   columns, so a transform at every use costs most next to them: 4x4 maps at a batch of 16
   are 16 columns a GEMM, 32x32 maps 1024) while the whole stays within mem_bytes; the rest
   share wino.tmp. Also sizes the scratch: one GEMM chunk of any conv, and conv3s2's
   im2col. */
void unet_wino_alloc_infer(struct unet *u, int B, size_t mem_bytes)
{
    int nc = n_wconv(u);
    struct wconv *v = xmalloc((size_t)nc * sizeof *v);
    size_t total = 0, tmp = 0, scr = 0, most = 0, room;
    int n = list_convs(u, v);
    assert(n <= nc);
    for (int i = 0; i < n; i++) {
        size_t f = 36 * (size_t)v[i].C * v[i].OC;
        most = f > most ? f : most;
        f = nn_wino4_scratch(1, v[i].C, v[i].H, v[i].W, v[i].OC);
        scr = f > scr ? f : scr;
    }
    for (int i = 0; i < u->cfg.n_levels - 1; i++) { /* conv3s2's per-thread im2col slices */
        const struct unet_sample *s = &u->down[i].sample;
        size_t im = (size_t)nn_get_threads() * s->C * 9 * (s->H / 2) * (s->W / 2);
        scr = im > scr ? im : scr;
    }
    size_t ch = unet_chain_scratch(u, B, nn_get_threads());
    scr = ch > scr ? ch : scr;
    /* floats left for the cache when one uncached conv's transform needs room too */
    room = u->n_params + u->acts.n + scr + most;
    room = mem_bytes / sizeof(float) > room ? mem_bytes / sizeof(float) - room : 0;
    unet_wino_free(u);
    u->wino.off = xmalloc((size_t)u->pt.n * sizeof *u->wino.off);
    u->wino.ok = xcalloc((size_t)u->pt.n, 1);
    for (int e = 0; e < u->pt.n; e++)
        u->wino.off[e] = UNET_WINO_NONE;
    qsort(v, (size_t)n, sizeof *v, by_area);
    for (int i = 0; i < n; i++) {
        size_t f = 36 * (size_t)v[i].C * v[i].OC;
        int e = param_find_ptr(&u->pt, v[i].w);
        if (u->wino.off[e] != UNET_WINO_NONE)
            continue; /* a weight used twice (none in diffusers) is cached once */
        if (total + f <= room) {
            u->wino.off[e] = total;
            total += f;
        } else if (f > tmp) {
            tmp = f;
        }
    }
    free(v);
    u->wino.n = total;
    u->wino.n_tmp = tmp;
    u->wino.buf = total ? xmalloc_big(total * sizeof(float)) : NULL;
    u->wino.tmp = tmp ? xmalloc_big(tmp * sizeof(float)) : NULL;
    free(u->acts.scratch);
    u->acts.n_scratch = scr;
    u->acts.scratch = xmalloc_big((scr ? scr : 1) * sizeof(float));
}


/* ---- training's kept tiles ---- */

void unet_tiles_free(struct unet *u)
{
    free(u->tiles.buf);
    free(u->tiles.v);
    free(u->tiles.cap);
    free(u->tiles.batch);
    memset(&u->tiles, 0, sizeof u->tiles);
}

/* A conv's tiles are kept when they are unpadded (T = B * tiles per image, whole GEMM chunks),
   the layout the weight gradient reads; so each conv gets room for the largest such batch
   from image 0 within B, the most a training forward keeps (none when one chunk holds more
   images than B). */
void unet_alloc_tiles(struct unet *u, int B)
{
    int nc = n_wconv(u);
    struct wconv *v = xmalloc((size_t)nc * sizeof *v);
    int n = list_convs(u, v);
    size_t total = 0;
    assert(B > 0 && B <= u->acts.max_batch && !u->acts.infer && n <= nc);
    unet_tiles_free(u);
    u->tiles.max_batch = B;
    u->tiles.v = xcalloc((size_t)u->pt.n, sizeof *u->tiles.v);
    u->tiles.cap = xcalloc((size_t)u->pt.n, sizeof *u->tiles.cap);
    u->tiles.batch = xcalloc((size_t)u->pt.n, sizeof *u->tiles.batch);
    for (int i = 0; i < n; i++) { /* sizes, then one allocation carved */
        int ipc = nn_wino4_chunk_images(v[i].H, v[i].W), e = param_find_ptr(&u->pt, v[i].w);
        if (B < ipc || u->tiles.cap[e] != 0)
            continue; /* a weight used twice (none in diffusers) keeps one set */
        u->tiles.cap[e] = nn_wino4_tiles(B / ipc * ipc, v[i].C, v[i].H, v[i].W);
        total += (u->tiles.cap[e] + 15) & ~(size_t)15; /* 64-byte aligned */
    }
    u->tiles.n = total;
    u->tiles.buf = xmalloc_big((total ? total : 1) * sizeof(float));
    total = 0;
    for (int e = 0; e < u->pt.n; e++)
        if (u->tiles.cap[e] != 0) {
            u->tiles.v[e] = u->tiles.buf + total;
            total += (u->tiles.cap[e] + 15) & ~(size_t)15;
        }
    free(v);
}

const float *unet_kept_tiles(const struct unet *u, const float *w, int B)
{
    if (u->tiles.v == NULL)
        return NULL;
    int e = param_find_ptr(&u->pt, w);
    return u->tiles.batch[e] == B ? u->tiles.v[e] : NULL;
}
