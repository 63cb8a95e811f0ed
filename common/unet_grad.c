/* The backward pass of the diffusers UNet2DModel (unet.c's forward, in reverse), over the
   activations the forward keeps in each layer. Gradients flow through two ping-pong buffers;
   each skip tensor has its own gradient buffer that collects the up block's share (from the
   concatenation) and the next down layer's share before the down path consumes it. */
#include "unet_train.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "nn_math.h"
#include "util.h"

#define GP(p) ((p) != NULL ? grads + ((p) - u->params) : NULL)

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

/* ---- sizes ---- */
struct gsize {
    size_t m;        /* largest per-image activation (floats) */
    size_t att;      /* largest per-image heads*T*T */
    int cmax;        /* largest channel count */
    int ns;
    size_t wt, wscr;  /* flipped 3x3 weights (9*C*OC) and Winograd scratch, largest */
    size_t skip[UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1) + 1]; /* per image */
};

static void upd(size_t *m, size_t v)
{
    if (v > *m)
        *m = v;
}

static size_t wg_scratch(int B, int C, int H, int W, int OC);

/* a 3x3 stride-1 conv C -> OC at H x W (data gradient by Winograd, weight gradient too) */
static void conv_sizes(struct gsize *z, int B, int C, int H, int W, int OC)
{
    upd(&z->wt, (size_t)9 * C * OC);
    upd(&z->wscr, unet_wino_scratch(B, OC, H, W, C));
    upd(&z->wscr, wg_scratch(B, C, H, W, OC));
}

static void grad_sizes(const struct unet *u, struct gsize *z, int B)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, C0 = c->block_out_channels[0];
    memset(z, 0, sizeof *z);
    upd(&z->m, (size_t)C0 * S * S);
    upd(&z->m, (size_t)c->out_channels * S * S);
    conv_sizes(z, B, C0, S, S, c->out_channels);
    conv_sizes(z, B, c->in_channels, S, S, C0);
    z->skip[z->ns++] = (size_t)C0 * S * S;
    z->cmax = C0;
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < c->n_levels; i++) {
            const struct unet_level *lv = d ? &u->up[i] : &u->down[i];
            for (int j = 0; j < lv->n_res; j++) {
                const struct unet_resnet *r = &lv->res[j];
                size_t hw = (size_t)r->H * r->W;
                upd(&z->m, (size_t)(r->cin > r->cout ? r->cin : r->cout) * hw);
                conv_sizes(z, B, r->cin, r->H, r->W, r->cout);
                conv_sizes(z, B, r->cout, r->H, r->W, r->cout);
                if (r->cout > z->cmax)
                    z->cmax = r->cout;
                if (lv->has_attn)
                    upd(&z->att, (size_t)lv->attn[j].heads * lv->attn[j].T * lv->attn[j].T);
                if (!d)
                    z->skip[z->ns++] = (size_t)r->cout * hw;
            }
            if (lv->has_sample) {
                const struct unet_sample *s = &lv->sample;
                size_t n = (size_t)s->C * s->H * s->W;
                upd(&z->m, d ? 4 * n : n);
                if (d)
                    conv_sizes(z, B, s->C, 2 * s->H, 2 * s->W, s->C);
                if (!d)
                    z->skip[z->ns++] = n / 4;
            }
        }
    for (int j = 0; j < 2; j++) {
        const struct unet_resnet *r = &u->mid_res[j];
        upd(&z->m, (size_t)r->cout * r->H * r->W);
        conv_sizes(z, B, r->cin, r->H, r->W, r->cout);
    }
    if (c->add_attention)
        upd(&z->att, (size_t)u->mid_attn.heads * u->mid_attn.T * u->mid_attn.T);
}

void unet_grad_init(struct unet_grad *g, struct unet *u, int B)
{
    struct gsize z;
    size_t off = 0, TE = (size_t)u->cfg.time_embed_dim;
    float *p;
    assert(B > 0);
    memset(g, 0, sizeof *g);
    if (u->max_batch < B)
        unet_alloc_acts(u, B);
    unet_keep_wino_inputs(u);
    grad_sizes(u, &z, B);
    g->max_batch = B;
    g->n_skips = z.ns;
#define CARVE(n) (p = g->buf ? g->buf + off : NULL, off += ((n) + 15) & ~(size_t)15, p)
    for (int pass = 0; pass < 2; pass++) {
        off = 0;
        for (int i = 0; i < 2; i++)
            g->d[i] = CARVE(B * z.m);
        for (int i = 0; i < 5; i++)
            g->tmp[i] = CARVE(B * z.m);
        g->att = CARVE(B * (z.att ? z.att : 1));
        g->dtp = CARVE((size_t)B * z.cmax);
        g->demb_act = CARVE(B * TE);
        g->demb = CARVE(B * TE);
        g->dte1_act = CARVE(B * TE);
        g->dte1 = CARVE(B * TE);
        g->wu = CARVE(4 * z.wt);
        g->wscr = CARVE(z.wscr);
        g->n_wt = z.wt;
        g->n_wscr = z.wscr;
        for (int i = 0; i < z.ns; i++) {
            g->dskip[i] = CARVE(B * z.skip[i]);
            g->skip_n[i] = z.skip[i];
        }
        if (pass == 0) {
            g->n_buf = off;
            g->buf = xmalloc(off * sizeof(float));
        }
    }
#undef CARVE
}

void unet_grad_free(struct unet_grad *g)
{
    free(g->buf);
    memset(g, 0, sizeof *g);
}

/* ---- layers ---- */

/* ---- Winograd weight gradient ----
   The forward is F(4x4, 3x3) on points 0, +-1, +-2, inf: y = A^T [(G g G^T) . (B^T d B)] A.
   By the transposition principle the kernel gradient of one 4x4 output tile is
   dW = G^T [(A dY A^T) . (B^T X B)] G with the same 6x6 input patch X, so summed over tiles
   it is 36 GEMMs (OC x T) (T x C) over all T tiles of the batch, a quarter of im2col's
   multiplies. B^T, G as in unet_conv.c; A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
   0 1 -1 8 -8 1]. */

/* o[k*s] = (B^T d)[k], d[k*si], k < 6 */
static inline void wg_bt2(float *o, const float *d, int si, int s)
{
    float d0 = d[0], d1 = d[si], d2 = d[2 * si], d3 = d[3 * si], d4 = d[4 * si], d5 = d[5 * si];
    o[0] = 4 * d0 - 5 * d2 + d4;
    o[s] = -4 * d1 - 4 * d2 + d3 + d4;
    o[2 * s] = 4 * d1 - 4 * d2 - d3 + d4;
    o[3 * s] = -2 * d1 - d2 + 2 * d3 + d4;
    o[4 * s] = 2 * d1 - d2 - 2 * d3 + d4;
    o[5 * s] = 4 * d1 - 5 * d3 + d5;
}

/* o[k*s] = (A y)[k], y[i*si] i < 4 -> 6 values */
static inline void wg_a2(float *o, const float *y, int si, int s)
{
    float y0 = y[0], y1 = y[si], y2 = y[2 * si], y3 = y[3 * si];
    o[0] = y0;
    o[s] = y0 + y1 + y2 + y3;
    o[2 * s] = y0 - y1 + y2 - y3;
    o[3 * s] = y0 + 2 * y1 + 4 * y2 + 8 * y3;
    o[4 * s] = y0 - 2 * y1 + 4 * y2 - 8 * y3;
    o[5 * s] = y3;
}

/* o[k*s] = (G^T v)[k], v[p*s] p < 6 -> 3 values */
static inline void wg_gt(float *o, const float *v, int s)
{
    float v0 = v[0], v1 = v[s], v2 = v[2 * s], v3 = v[3 * s], v4 = v[4 * s], v5 = v[5 * s];
    const float r6 = 1.0f / 6, r12 = 1.0f / 12, r24 = 1.0f / 24; /* multiplies: no divider */
    o[0] = v0 * 0.25f - (v1 + v2) * r6 + (v3 + v4) * r24;
    o[s] = (v2 - v1) * r6 + (v3 - v4) * r12;
    o[2 * s] = (v3 + v4 - v1 - v2) * r6 + v5;
}

/* o[k*so] = (G g)[k], g[i*si] i < 3 -> 6 values */
static inline void wg_g(float *o, const float *g, int si, int so)
{
    const float r6 = 1.0f / 6, r12 = 1.0f / 12, r24 = 1.0f / 24;
    float g0 = g[0], g1 = g[si], g2 = g[2 * si];
    o[0] = g0 * 0.25f;
    o[so] = -(g0 + g1 + g2) * r6;
    o[2 * so] = -(g0 - g1 + g2) * r6;
    o[3 * so] = g0 * r24 + g1 * r12 + g2 * r6;
    o[4 * so] = g0 * r24 - g1 * r12 + g2 * r6;
    o[5 * so] = g2;
}

/* U (36,C,OC): the Winograd transforms of w (OC,C,3,3) flipped in both axes with the channels
   swapped, i.e. the kernel of the data gradient (a conv OC -> C) in unet_wino_conv3's layout.
   Vector operations over oc, in chunks of WG_VEC. */
#define WG_VEC 64
#define WG_CB 16
static void wg_flip_weights(float *U, const float *w, int C, int OC)
{
    const float r6 = 1.0f / 6, r12 = 1.0f / 12, r24 = 1.0f / 24;
    /* c innermost within a task: the n rows of w are then read as n sequential streams, not
       one 36-byte piece per cache line and visit */
#pragma omp parallel for collapse(2) schedule(static)
    for (int o0 = 0; o0 < OC; o0 += WG_VEC)
        for (int c0 = 0; c0 < C; c0 += WG_CB)
            for (int c = c0; c < C && c < c0 + WG_CB; c++) {
                int n = OC - o0 < WG_VEC ? OC - o0 : WG_VEC;
                float f[9][WG_VEC], t[6][3][WG_VEC];
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < 9; k++)
                        f[k][i] = w[((size_t)(o0 + i) * C + c) * 9 + 8 - k];
                for (int x = 0; x < 3; x++)
                    for (int i = 0; i < n; i++) { /* t = G f (columns) */
                        float g0 = f[x][i], g1 = f[3 + x][i], g2 = f[6 + x][i];
                        t[0][x][i] = g0 * 0.25f;
                        t[1][x][i] = -(g0 + g1 + g2) * r6;
                        t[2][x][i] = -(g0 - g1 + g2) * r6;
                        t[3][x][i] = g0 * r24 + g1 * r12 + g2 * r6;
                        t[4][x][i] = g0 * r24 - g1 * r12 + g2 * r6;
                        t[5][x][i] = g2;
                    }
                for (int y = 0; y < 6; y++) {       /* u = t G^T (rows) */
                    float *u0 = U + ((size_t)(y * 6) * C + c) * OC + o0;
                    size_t st = (size_t)C * OC;
                    for (int i = 0; i < n; i++) {
                        float g0 = t[y][0][i], g1 = t[y][1][i], g2 = t[y][2][i];
                        u0[i] = g0 * 0.25f;
                        u0[st + i] = -(g0 + g1 + g2) * r6;
                        u0[2 * st + i] = -(g0 - g1 + g2) * r6;
                        u0[3 * st + i] = g0 * r24 + g1 * r12 + g2 * r6;
                        u0[4 * st + i] = g0 * r24 - g1 * r12 + g2 * r6;
                        u0[5 * st + i] = g2;
                    }
                }
            }
}

#define WG_PLANE (34 * 34) /* floats of a padded plane on the stack */
#define WG_ROW 132          /* widest padded row of the vectorised tile transforms */

static size_t wg_scratch(int B, int C, int H, int W, int OC)
{
    size_t T = (size_t)B * ((H + 3) / 4) * ((W + 3) / 4);
    return 36 * ((size_t)C * T + (size_t)OC * T + (size_t)OC * C);
}

/* 3x3 stride-1 pad-1 conv C -> OC on (B,C,H,W): dw (OC,C,3,3) += ; scratch of wg_scratch.
   kept: the input's tiles (36,C,T) as the forward made them (unet_kept_tiles), or NULL to
   transform in here. */
static void wino_dw(float *dw, float *scratch, const float *kept, const float *dout,
                    const float *in, int B, int C, int H, int W, int OC)
{
    int th = (H + 3) / 4, tw = (W + 3) / 4, tpi = th * tw;
    size_t T = (size_t)B * tpi, HW = (size_t)H * W;
    float *V = scratch, *M = V + 36 * (size_t)C * T, *S = M + 36 * (size_t)OC * T;
    const float *Vr = kept != NULL ? kept : V;

    /* planes are copied zero-padded (pad 1 before, up to the tile grid after) so the tiles
       read without bounds checks; larger planes than WG_PLANE take the checked path */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < (kept != NULL ? 0 : B); b++)
        for (int c = 0; c < C; c++) {
            const float *x = in + ((size_t)b * C + c) * HW;
            float pl[WG_PLANE];
            int pw = 4 * tw + 2, ph = 4 * th + 2, fast = pw * ph <= WG_PLANE;
            if (fast) {
                memset(pl, 0, sizeof(float) * (size_t)pw * ph);
                for (int y = 0; y < H; y++)
                    memcpy(pl + (size_t)(y + 1) * pw + 1, x + (size_t)y * W, sizeof(float) * W);
            }
            if (fast && pw <= WG_ROW) {
                /* B^T down the 6 rows of a tile row at every x, then B^T across each tile */
                for (int ty = 0; ty < th; ty++) {
                    float e[6][WG_ROW];
                    const float *q = pl + (size_t)(4 * ty) * pw;
                    size_t t0 = (size_t)b * tpi + (size_t)ty * tw;
                    for (int xx = 0; xx < pw; xx++)
                        wg_bt2(&e[0][xx], q + xx, pw, WG_ROW);
                    for (int k = 0; k < 6; k++) {
                        float *v = V + ((size_t)(k * 6) * C + c) * T + t0;
                        size_t st = (size_t)C * T;
                        for (int tx = 0; tx < tw; tx++) {
                            float o6[6];
                            wg_bt2(o6, &e[k][4 * tx], 1, 1);
                            for (int l = 0; l < 6; l++)
                                v[l * st + tx] = o6[l];
                        }
                    }
                }
                continue;
            }
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[36], e[36];
                    size_t t = (size_t)b * tpi + ty * tw + tx;
                    if (fast) {
                        const float *q = pl + (size_t)(4 * ty) * pw + 4 * tx;
                        for (int j = 0; j < 6; j++)
                            wg_bt2(e + j, q + j, pw, 6);     /* columns */
                    } else {
                        for (int i = 0; i < 6; i++) {
                            int iy = 4 * ty - 1 + i;
                            for (int j = 0; j < 6; j++) {
                                int ix = 4 * tx - 1 + j;
                                d[i * 6 + j] = iy >= 0 && iy < H && ix >= 0 && ix < W
                                                   ? x[(size_t)iy * W + ix] : 0.0f;
                            }
                        }
                        for (int j = 0; j < 6; j++)
                            wg_bt2(e + j, d + j, 6, 6);
                    }
                    for (int i = 0; i < 6; i++)
                        wg_bt2(d + i * 6, e + i * 6, 1, 1); /* rows */
                    for (int p = 0; p < 36; p++)
                        V[((size_t)p * C + c) * T + t] = d[p];
                }
        }
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            const float *y = dout + ((size_t)b * OC + o) * HW;
            if (H % 4 == 0 && W % 4 == 0 && W <= WG_ROW) {
                /* A down the 4 rows of a tile row at every x, then A across each tile */
                for (int ty = 0; ty < th; ty++) {
                    float e[6][WG_ROW];
                    const float *q = y + (size_t)(4 * ty) * W;
                    size_t t0 = (size_t)b * tpi + (size_t)ty * tw;
                    for (int xx = 0; xx < W; xx++)
                        wg_a2(&e[0][xx], q + xx, W, WG_ROW);
                    for (int k = 0; k < 6; k++) {
                        float *m = M + ((size_t)(k * 6) * OC + o) * T + t0;
                        size_t st = (size_t)OC * T;
                        for (int tx = 0; tx < tw; tx++) {
                            float o6[6];
                            wg_a2(o6, &e[k][4 * tx], 1, 1);
                            for (int l = 0; l < 6; l++)
                                m[l * st + tx] = o6[l];
                        }
                    }
                }
                continue;
            }
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[16], e[24], f[36];
                    size_t t = (size_t)b * tpi + ty * tw + tx;
                    const float *q = y + (size_t)(4 * ty) * W + 4 * tx;
                    if (4 * ty + 4 <= H && 4 * tx + 4 <= W) {
                        for (int j = 0; j < 4; j++)
                            wg_a2(e + j, q + j, W, 4);       /* columns: e (6,4) */
                    } else {
                        for (int i = 0; i < 4; i++) {
                            int iy = 4 * ty + i;
                            for (int j = 0; j < 4; j++) {
                                int ix = 4 * tx + j;
                                d[i * 4 + j] = iy < H && ix < W ? y[(size_t)iy * W + ix] : 0.0f;
                            }
                        }
                        for (int j = 0; j < 4; j++)
                            wg_a2(e + j, d + j, 4, 4);
                    }
                    for (int i = 0; i < 6; i++)
                        wg_a2(f + i * 6, e + i * 4, 1, 1); /* rows: f (6,6) */
                    for (int p = 0; p < 36; p++)
                        M[((size_t)p * OC + o) * T + t] = f[p];
                }
        }
    /* one serial GEMM per point: the result does not depend on the thread count */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < 36; p++)
        nn_sgemm_serial(0, 1, OC, C, (int)T, 1.0f, M + (size_t)p * OC * T, (int)T,
                        Vr + (size_t)p * C * T, (int)T, 0.0f, S + (size_t)p * OC * C, C);
    /* dW = G^T S G per (o, c), vector operations over c */
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < OC; o++)
        for (int c0 = 0; c0 < C; c0 += WG_VEC) {
            const float r6 = 1.0f / 6, r12 = 1.0f / 12, r24 = 1.0f / 24;
            int n = C - c0 < WG_VEC ? C - c0 : WG_VEC;
            float e[3][6][WG_VEC];
            for (int x = 0; x < 6; x++) {       /* e = G^T S (columns) */
                const float *v = S + ((size_t)x * OC + o) * C + c0;
                size_t st = (size_t)6 * OC * C;
                for (int i = 0; i < n; i++) {
                    float v0 = v[i], v1 = v[st + i], v2 = v[2 * st + i], v3 = v[3 * st + i];
                    float v4 = v[4 * st + i], v5 = v[5 * st + i];
                    e[0][x][i] = v0 * 0.25f - (v1 + v2) * r6 + (v3 + v4) * r24;
                    e[1][x][i] = (v2 - v1) * r6 + (v3 - v4) * r12;
                    e[2][x][i] = (v3 + v4 - v1 - v2) * r6 + v5;
                }
            }
            for (int y = 0; y < 3; y++)         /* r = e G (rows) */
                for (int i = 0; i < n; i++) {
                    float v0 = e[y][0][i], v1 = e[y][1][i], v2 = e[y][2][i], v3 = e[y][3][i];
                    float v4 = e[y][4][i], v5 = e[y][5][i];
                    float *g = dw + ((size_t)o * C + c0 + i) * 9 + y * 3;
                    g[0] += v0 * 0.25f - (v1 + v2) * r6 + (v3 + v4) * r24;
                    g[1] += (v2 - v1) * r6 + (v3 - v4) * r12;
                    g[2] += (v3 + v4 - v1 - v2) * r6 + v5;
                }
        }
}

/* 3x3 stride-1 pad-1 conv: din (may be NULL) = (overwritten, not accumulated), dw += ,
   db += . The data gradient is the convolution of dout with the flipped kernel, channels
   swapped: Winograd as the forward (unet_conv.c), on weights transformed here each call (they
   change every step). The weight gradient by Winograd too (wino_dw). */
static void conv3_bwd(struct unet *u, struct unet_grad *gr, float *din, float *dw, float *db,
                      const float *dout, const float *in, const float *w, int B, int C, int H,
                      int W, int OC)
{
    if (din != NULL) {
        assert((size_t)9 * C * OC <= gr->n_wt &&
               unet_wino_scratch(B, OC, H, W, C) <= gr->n_wscr);
        wg_flip_weights(gr->wu, w, C, OC);
        unet_wino_conv3(din, gr->wscr, dout, gr->wu, NULL, B, OC, H, W, C);
    }
    assert(wg_scratch(B, C, H, W, OC) <= gr->n_wscr);
    wino_dw(dw, gr->wscr, unet_kept_tiles(u, w, B), dout, in, B, C, H, W, OC);
    {
        size_t HW = (size_t)H * W;
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            float s = 0;
            for (int b = 0; b < B; b++) {
                const float *d = dout + ((size_t)b * OC + o) * HW;
                for (size_t i = 0; i < HW; i++)
                    s += d[i];
            }
            db[o] += s;
        }
    }
}

static void norm_bwd(float *grads, const struct unet *u, const struct unet_norm *n, float *din,
                     const float *dout, const float *in, int B, int HW)
{
    nn_group_norm_backward(din, GP(n->w), GP(n->b), dout, in, n->mean, n->rstd, n->w, B, n->C,
                           HW, n->G);
}

/* silu(GN(in)) backward: dact (B,C,HW) -> din += (din = when din == dact); y scratch. The forward may keep
   only silu's output: the norm output is then recomputed from in, mean and rstd as the
   forward formed it (x * a + b with a = rstd * gamma, b = beta - mean * a). */
static void norm_silu_bwd(float *grads, const struct unet *u, const struct unet_norm *n,
                          float *din, const float *dact, const float *in, float *y, int B, int HW)
{
    int C = n->C, G = n->G, CG = n->C / n->G;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            int gi = b * G + c / CG;
            size_t o = ((size_t)b * C + c) * HW;
            float a = n->rstd[gi] * n->w[c], bb = n->b[c] - n->mean[gi] * a;
            const float *x = in + o, *d = dact + o, *no = n->out != NULL ? n->out + o : NULL;
            float *yo = y + o;
            /* nn_expf (nn_math.h): libm's expf does not vectorise */
            if (no != NULL)
                for (int i = 0; i < HW; i++) {
                    float v = no[i], s = 1.0f / (1.0f + nn_expf(-v));
                    yo[i] = d[i] * s * (1.0f + v * (1.0f - s));
                }
            else
                for (int i = 0; i < HW; i++) {
                    float v = x[i] * a + bb, s = 1.0f / (1.0f + nn_expf(-v));
                    yo[i] = d[i] * s * (1.0f + v * (1.0f - s));
                }
        }
    if (din == dact) /* dact's buffer is reused for din: overwrite instead of accumulate */
        zero(din, (size_t)B * C * HW);
    norm_bwd(grads, u, n, din, y, in, B, HW);
}

static void scale_grad(float *d, size_t n, float s)
{
    if (s == 1.0f)
        return;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        d[i] /= s;
}

/* ResnetBlock2D: dout (B,cout,HW) (divided in place by the output scale) -> din += */
static void resnet_bwd(struct unet *u, struct unet_grad *g, float *grads, struct unet_resnet *r,
                       float *din, float *dout, int B)
{
    int HW = r->H * r->W, cin = r->cin, cout = r->cout, TE = u->cfg.time_embed_dim;
    size_t nin = (size_t)B * cin * HW, nout = (size_t)B * cout * HW;
    float *t1 = g->tmp[0], *t2 = g->tmp[1];

    scale_grad(dout, nout, r->scale);
    if (r->sc_w != NULL) {
        /* conv_shortcut 1x1: din += W^T dout, dW += dout in^T, db += sum dout */
        float *dw = GP(r->sc_w), *db = GP(r->sc_b);
        for (int b = 0; b < B; b++) {
            const float *d = dout + (size_t)b * cout * HW;
            nn_sgemm(1, 0, cin, HW, cout, 1.0f, r->sc_w, cin, d, HW, 1.0f,
                     din + (size_t)b * cin * HW, HW);
            nn_sgemm(0, 1, cout, cin, HW, 1.0f, d, HW, r->in + (size_t)b * cin * HW, HW, 1.0f,
                     dw, cin);
        }
#pragma omp parallel for
        for (int c = 0; c < cout; c++) {
            float s = 0;
            for (int b = 0; b < B; b++) {
                const float *d = dout + ((size_t)b * cout + c) * HW;
                for (int i = 0; i < HW; i++)
                    s += d[i];
            }
            db[c] += s;
        }
    } else {
#pragma omp parallel for
        for (size_t i = 0; i < nin; i++)
            din[i] += dout[i];
    }
    conv3_bwd(u, g, t1, GP(r->conv2_w), GP(r->conv2_b), dout, r->act2, r->conv2_w, B, cout, r->H,
              r->W, cout);
    norm_silu_bwd(grads, u, &r->norm2, t1, t1, r->h1, t2, B, HW);
    /* h1 = conv1(..) + tproj[:, :, None, None] */
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < cout; c++) {
            const float *d = t1 + ((size_t)b * cout + c) * HW;
            float s = 0;
            for (int i = 0; i < HW; i++)
                s += d[i];
            g->dtp[b * cout + c] = s;
        }
    nn_linear_backward(g->demb_act, GP(r->temb_w), GP(r->temb_b), g->dtp, u->emb_act, r->temb_w,
                       B, TE, cout);
    conv3_bwd(u, g, t2, GP(r->conv1_w), GP(r->conv1_b), t1, r->act1, r->conv1_w, B, cin, r->H,
              r->W, cout);
    norm_silu_bwd(grads, u, &r->norm1, din, t2, r->in, t1, B, HW);
}

/* Attention: dout (B,C,T) (divided in place by rescale_output_factor) -> din += */
static void attn_bwd(struct unet *u, struct unet_grad *g, float *grads, struct unet_attn *a,
                     float *din, float *dout, int B)
{
    int C = a->C, T = a->T;
    size_t n = (size_t)B * T * C;
    float **t = g->tmp;

    scale_grad(dout, n, a->scale);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++)
        din[i] += dout[i];
    nn_transpose_forward(t[0], dout, B, C, T);
    zero(t[1], n);
    nn_linear_backward(t[1], GP(a->o_w), GP(a->o_b), t[0], a->ao, a->o_w, B * T, C, C);
    zero(t[2], n);
    zero(t[3], n);
    zero(t[4], n);
    nn_attention_backward(t[2], t[3], t[4], g->att, t[1], a->q, a->k, a->v, a->att, B, T, C,
                          a->heads);
    zero(t[0], n);
    nn_linear_backward(t[0], GP(a->q_w), GP(a->q_b), t[2], a->tok, a->q_w, B * T, C, C);
    nn_linear_backward(t[0], GP(a->k_w), GP(a->k_b), t[3], a->tok, a->k_w, B * T, C, C);
    nn_linear_backward(t[0], GP(a->v_w), GP(a->v_b), t[4], a->tok, a->v_w, B * T, C, C);
    nn_transpose_forward(t[1], t[0], B, T, C);
    norm_bwd(grads, u, &a->norm, din, t[1], a->in, B, T);
}

static void down_bwd(struct unet *u, float *grads, struct unet_sample *s, float *din,
                     const float *dout, int B)
{
    struct nn_conv g;
    int p = u->cfg.downsample_padding;
    if (p == 0)
        nn_conv_init_ex(&g, B, s->C, s->H, s->W, s->C, 3, 3, 2, 2, 0, 0, 1, 1);
    else
        nn_conv_init_ex(&g, B, s->C, s->H, s->W, s->C, 3, 3, 2, 2, p, p, p, p);
    assert(nn_conv_scratch(&g) <= u->n_scratch);
    nn_conv2d_backward(din, GP(s->w), GP(s->b), u->scratch, dout, s->in, s->w, &g);
}

static void up_bwd(struct unet *u, struct unet_grad *g, float *grads, struct unet_sample *s,
                   float *din, const float *dout, int B)
{
    float *t = g->tmp[0];
    conv3_bwd(u, g, t, GP(s->w), GP(s->b), dout, s->up, s->w, B, s->C, 2 * s->H, 2 * s->W, s->C);
    nn_upsample2x_backward(din, t, B, s->C, s->H, s->W);
}

/* ---- the model ---- */

void unet_backward(struct unet *u, struct unet_grad *g, float *grads, const float *deps, int B)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    int nl = c->n_levels, cur = 0, ns = g->n_skips, k;
    size_t hw = (size_t)S * S;
    const struct unet_level *last = &u->up[nl - 1];
    const float *hout;

    assert(B <= g->max_batch && B <= u->max_batch && ns == u->n_skips);
    for (int i = 0; i < ns; i++)
        zero(g->dskip[i], B * g->skip_n[i]);
    zero(g->demb_act, (size_t)B * TE);

    /* conv_out(silu(conv_norm_out(h))) */
    hout = last->has_attn ? last->attn[last->n_res - 1].out : last->res[last->n_res - 1].out;
    conv3_bwd(u, g, g->tmp[0], GP(u->conv_out_w), GP(u->conv_out_b), deps, u->act_out,
              u->conv_out_w, B, C0, S, S, c->out_channels);
    zero(g->d[cur], (size_t)B * C0 * hw);
    norm_silu_bwd(grads, u, &u->norm_out, g->d[cur], g->tmp[0], hout, g->tmp[1], B, (int)hw);

    /* up blocks, last to first; their resnets popped skips ns-1, ns-2, ... in order */
    k = 0;
    for (int i = 0; i < nl; i++)
        k += u->up[i].n_res;
    k = ns - k; /* the skip popped last */
    for (int i = nl - 1; i >= 0; i--) {
        struct unet_level *lv = &u->up[i];
        if (lv->has_sample) {
            struct unet_sample *s = &lv->sample;
            zero(g->d[!cur], (size_t)B * s->C * s->H * s->W);
            up_bwd(u, g, grads, s, g->d[!cur], g->d[cur], B);
            cur = !cur;
        }
        for (int j = lv->n_res - 1; j >= 0; j--) {
            struct unet_resnet *r = &lv->res[j];
            size_t rhw = (size_t)r->H * r->W;
            if (lv->has_attn) {
                zero(g->d[!cur], (size_t)B * r->cout * rhw);
                attn_bwd(u, g, grads, &lv->attn[j], g->d[!cur], g->d[cur], B);
                cur = !cur;
            }
            zero(g->tmp[2], (size_t)B * r->cin * rhw);
            resnet_bwd(u, g, grads, r, g->tmp[2], g->d[cur], B);
            {
                /* cat([h, skip]): the skip's channels are what the forward popped */
                int sc = r->cin - (j ? r->cout : (i ? u->up[i - 1].res[0].cout
                                                    : c->block_out_channels[nl - 1]));
                zero(g->d[!cur], (size_t)B * (r->cin - sc) * rhw);
                nn_concat_backward(g->d[!cur], g->dskip[k], g->tmp[2], B, r->cin - sc, sc,
                                   (int)rhw);
                cur = !cur;
            }
            k++;
        }
    }
    assert(k == ns);

    /* mid block */
    zero(g->d[!cur], (size_t)B * u->mid_res[1].cin * u->mid_res[1].H * u->mid_res[1].W);
    resnet_bwd(u, g, grads, &u->mid_res[1], g->d[!cur], g->d[cur], B);
    cur = !cur;
    if (c->add_attention) {
        zero(g->d[!cur], (size_t)B * u->mid_attn.C * u->mid_attn.T);
        attn_bwd(u, g, grads, &u->mid_attn, g->d[!cur], g->d[cur], B);
        cur = !cur;
    }
    resnet_bwd(u, g, grads, &u->mid_res[0], g->dskip[ns - 1], g->d[cur], B);

    /* down blocks, last to first: layer outputs are skips k, inputs skips k-1 */
    k = ns - 1;
    for (int i = nl - 1; i >= 0; i--) {
        struct unet_level *lv = &u->down[i];
        if (lv->has_sample) {
            down_bwd(u, grads, &lv->sample, g->dskip[k - 1], g->dskip[k], B);
            k--;
        }
        for (int j = lv->n_res - 1; j >= 0; j--) {
            struct unet_resnet *r = &lv->res[j];
            if (lv->has_attn) {
                zero(g->d[0], (size_t)B * r->cout * r->H * r->W);
                attn_bwd(u, g, grads, &lv->attn[j], g->d[0], g->dskip[k], B);
                resnet_bwd(u, g, grads, r, g->dskip[k - 1], g->d[0], B);
            } else {
                resnet_bwd(u, g, grads, r, g->dskip[k - 1], g->dskip[k], B);
            }
            k--;
        }
    }
    assert(k == 0);
    conv3_bwd(u, g, NULL, GP(u->conv_in_w), GP(u->conv_in_b), g->dskip[0], u->x_in, u->conv_in_w, B,
              c->in_channels, S, S, C0);

    /* time embedding: emb_act = silu(linear_2(silu(linear_1(temb)))) */
    zero(g->demb, (size_t)B * TE);
    nn_silu_backward(g->demb, g->demb_act, u->emb, (size_t)B * TE);
    zero(g->dte1_act, (size_t)B * TE);
    nn_linear_backward(g->dte1_act, GP(u->lin2_w), GP(u->lin2_b), g->demb, u->te1_act, u->lin2_w,
                       B, TE, TE);
    zero(g->dte1, (size_t)B * TE);
    nn_silu_backward(g->dte1, g->dte1_act, u->te1, (size_t)B * TE);
    nn_linear_backward(NULL, GP(u->lin1_w), GP(u->lin1_b), g->dte1, u->temb, u->lin1_w, B, C0, TE);
}
