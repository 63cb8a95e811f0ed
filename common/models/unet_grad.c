/* The backward pass of the diffusers UNet2DModel (unet.c's forward, in reverse), over the
   activations the forward keeps in each layer. Gradients flow through two ping-pong buffers;
   each skip tensor has its own gradient buffer that collects the up block's share (from the
   concatenation) and the next down layer's share before the down path consumes it. The 3x3
   convolutions' backward (Winograd) is in unet_grad_conv.c. */
#include "models/unet_grad.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_chain.h"
#include "models/unet_grad_conv.h"
#include "nn/nn.h"
#include "nn/nn_math.h"
#include "nn/nn_wino.h"
#include "util/util.h"

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

/* a 3x3 stride-1 conv C -> OC at H x W (data gradient by Winograd, weight gradient too, or
   by im2col for few input channels: unet_conv3_backward) */
static void conv_sizes(struct gsize *z, int B, int C, int H, int W, int OC)
{
    struct nn_conv g;
    nn_conv_init_ex(&g, B, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1, 1);
    upd(&z->wt, (size_t)9 * C * OC);
    upd(&z->wscr, nn_wino4_dx_scratch(B, C, H, W, OC));
    upd(&z->wscr, nn_wino4_dw_scratch(B, C, H, W, OC));
    upd(&z->wscr, nn_conv_scratch(&g));
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
    /* the caller's unet_alloc_acts (the inference layout keeps too little); ddpm_train_init
       makes it, with the kept tiles */
    assert(!u->acts.infer && B <= u->acts.max_batch);
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
            g->buf = xmalloc_big(off * sizeof(float));
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

static void norm_bwd(float *grads, const struct unet *u, const struct unet_norm *n, float *din,
                     const float *dout, const float *in, int B, int HW)
{
    nn_group_norm_backward(din, GP(n->w), GP(n->b), dout, in, n->mean, n->rstd, n->w, B, n->C,
                           HW, n->G);
}

/* silu(GN(in)) backward: dact (B,C,HW) -> din += (din = when din == dact); y scratch. The
   forward may keep only silu's output: the norm output is then recomputed from in, mean and rstd as the
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
        float *db = GP(r->sc_b);
        unet_chain_conv1x1_backward(din, GP(r->sc_w), dout, r->in, r->sc_w, B, cin, cout, HW,
                                    unet_chain_backward_scratch(u, B), u->acts.n_thr);
        nn_conv_db_float(db, dout, B, cout, r->H, r->W);
    } else {
#pragma omp parallel for
        for (size_t i = 0; i < nin; i++)
            din[i] += dout[i];
    }
    unet_conv3_backward(u, g, t1, GP(r->conv2_w), GP(r->conv2_b), dout, r->act2, r->conv2_w, B,
                        cout, r->H, r->W, cout);
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
    unet_chain_linear_backward(g->demb_act, GP(r->temb_w), GP(r->temb_b), g->dtp,
                               u->acts.emb_act, r->temb_w, B, TE, cout,
                               unet_chain_backward_scratch(u, B), u->acts.n_thr);
    unet_conv3_backward(u, g, t2, GP(r->conv1_w), GP(r->conv1_b), t1, r->act1, r->conv1_w, B,
                        cin, r->H, r->W, cout);
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
    unet_chain_linear_backward(t[1], GP(a->o_w), GP(a->o_b), t[0], a->ao, a->o_w,
                               B * T, C, C, unet_chain_backward_scratch(u, B), u->acts.n_thr);
    unet_chain_attention_backward(t[2], t[3], t[4], g->att, t[1], a, B, u->acts.n_thr);
    zero(t[0], n);
    unet_chain_linear_backward(t[0], GP(a->q_w), GP(a->q_b), t[2], a->tok, a->q_w,
                               B * T, C, C, unet_chain_backward_scratch(u, B), u->acts.n_thr);
    unet_chain_linear_backward(t[0], GP(a->k_w), GP(a->k_b), t[3], a->tok, a->k_w,
                               B * T, C, C, unet_chain_backward_scratch(u, B), u->acts.n_thr);
    unet_chain_linear_backward(t[0], GP(a->v_w), GP(a->v_b), t[4], a->tok, a->v_w,
                               B * T, C, C, unet_chain_backward_scratch(u, B), u->acts.n_thr);
    nn_transpose_forward(t[1], t[0], B, T, C);
    norm_bwd(grads, u, &a->norm, din, t[1], a->in, B, T);
}

static void down_bwd(struct unet *u, float *grads, struct unet_sample *s, float *din,
                     const float *dout, int B)
{
    int p = u->cfg.downsample_padding;
    float *scr = unet_chain_backward_scratch(u, B);
    if (p == 0) /* the forward's (0,1,0,1) */
        unet_chain_conv3_backward(din, GP(s->w), scr, dout, s->in, s->w, B, s->C, s->H, s->W,
                                  s->C, 2, 0, 0, 1, 1, u->acts.n_thr);
    else
        unet_chain_conv3_backward(din, GP(s->w), scr, dout, s->in, s->w, B, s->C, s->H, s->W,
                                  s->C, 2, p, p, p, p, u->acts.n_thr);
    nn_conv_db_float(GP(s->b), dout, B, s->C, s->H / 2, s->W / 2);
}

static void up_bwd(struct unet *u, struct unet_grad *g, float *grads, struct unet_sample *s,
                   float *din, const float *dout, int B)
{
    float *t = g->tmp[0];
    unet_conv3_backward(u, g, t, GP(s->w), GP(s->b), dout, s->up, s->w, B, s->C, 2 * s->H,
                        2 * s->W, s->C);
    nn_upsample2x_backward(din, t, B, s->C, s->H, s->W);
}

/* ---- the model ---- */

/* g->final: the gradients from p's offset up are final */
static void final_from(const struct unet *u, const struct unet_grad *g, const float *p)
{
    if (g->final != NULL)
        g->final(g->final_ctx, (size_t)(p - u->params));
}

/* the lowest parameter of resnet j of lv and everything after it in u->params (the
   attentions come before the resnets: they are done only with resnet 0) */
static const float *level_from(const struct unet_level *lv, int j)
{
    return lv->has_attn && j == 0 ? lv->attn[0].norm.w : lv->res[j].norm1.w;
}

void unet_backward(struct unet *u, struct unet_grad *g, float *grads, const float *deps, int B)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    int nl = c->n_levels, cur = 0, ns = g->n_skips, k;
    size_t hw = (size_t)S * S;
    const struct unet_level *last = &u->up[nl - 1];
    const float *hout;

    assert(!u->acts.infer && B <= g->max_batch && B <= u->acts.max_batch &&
           ns == u->acts.n_skips);
    for (int i = 0; i < ns; i++)
        zero(g->dskip[i], B * g->skip_n[i]);
    zero(g->demb_act, (size_t)B * TE);

    /* conv_out(silu(conv_norm_out(h))) */
    hout = last->has_attn ? last->attn[last->n_res - 1].out : last->res[last->n_res - 1].out;
    unet_conv3_backward(u, g, g->tmp[0], GP(u->conv_out_w), GP(u->conv_out_b), deps,
                        u->acts.act_out, u->conv_out_w, B, C0, S, S, c->out_channels);
    zero(g->d[cur], (size_t)B * C0 * hw);
    norm_silu_bwd(grads, u, &u->norm_out, g->d[cur], g->tmp[0], hout, g->tmp[1], B, (int)hw);
    final_from(u, g, u->norm_out.w);

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
            final_from(u, g, s->w);
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
            final_from(u, g, level_from(lv, j));
            k++;
        }
    }
    assert(k == ns);

    /* mid block */
    zero(g->d[!cur], (size_t)B * u->mid_res[1].cin * u->mid_res[1].H * u->mid_res[1].W);
    resnet_bwd(u, g, grads, &u->mid_res[1], g->d[!cur], g->d[cur], B);
    cur = !cur;
    final_from(u, g, u->mid_res[1].norm1.w);
    if (c->add_attention) {
        zero(g->d[!cur], (size_t)B * u->mid_attn.C * u->mid_attn.T);
        attn_bwd(u, g, grads, &u->mid_attn, g->d[!cur], g->d[cur], B);
        cur = !cur;
    }
    resnet_bwd(u, g, grads, &u->mid_res[0], g->dskip[ns - 1], g->d[cur], B);
    final_from(u, g, c->add_attention ? u->mid_attn.norm.w : u->mid_res[0].norm1.w);

    /* down blocks, last to first: layer outputs are skips k, inputs skips k-1 */
    k = ns - 1;
    for (int i = nl - 1; i >= 0; i--) {
        struct unet_level *lv = &u->down[i];
        if (lv->has_sample) {
            down_bwd(u, grads, &lv->sample, g->dskip[k - 1], g->dskip[k], B);
            final_from(u, g, lv->sample.w);
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
            final_from(u, g, level_from(lv, j));
            k--;
        }
    }
    assert(k == 0);
    unet_conv3_backward(u, g, NULL, GP(u->conv_in_w), GP(u->conv_in_b), g->dskip[0],
                        u->acts.x_in, u->conv_in_w, B, c->in_channels, S, S, C0);

    /* time embedding: emb_act = silu(linear_2(silu(linear_1(temb)))) */
    zero(g->demb, (size_t)B * TE);
    nn_silu_backward(g->demb, g->demb_act, u->acts.emb, (size_t)B * TE);
    zero(g->dte1_act, (size_t)B * TE);
    unet_chain_linear_backward(g->dte1_act, GP(u->lin2_w), GP(u->lin2_b), g->demb,
                               u->acts.te1_act, u->lin2_w, B, TE, TE,
                               unet_chain_backward_scratch(u, B), u->acts.n_thr);
    zero(g->dte1, (size_t)B * TE);
    nn_silu_backward(g->dte1, g->dte1_act, u->acts.te1, (size_t)B * TE);
    unet_chain_linear_backward(NULL, GP(u->lin1_w), GP(u->lin1_b), g->dte1, u->acts.temb,
                               u->lin1_w, B, C0, TE, unet_chain_backward_scratch(u, B),
                               u->acts.n_thr);
    final_from(u, g, u->params);
}
