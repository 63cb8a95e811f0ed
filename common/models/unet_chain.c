/* The UNet's Linear layers, 1x1 shortcuts, stride-2 convs and attention on nn_sgemm_chain,
   forward and backward (see unet_chain.h for why). Each call cuts its GEMMs into tasks of at
   most TASK_ROWS rows (and CONV_COLS columns for the shortcuts) spread over the threads; a
   task's outputs are whole chains, so how the work is cut never shows in the bits. */
#include "models/unet_chain.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "models/unet_prof.h"
#include "nn/nn.h"
#include "nn/nn_math.h"

#define TASK_ROWS 48 /* rows of a task: a multiple of the column kernel's row blocks (6, 12), whose
                         leftover rows (T = 256 leaves 4) run one at a time */
#define VEC_ROWS 64  /* a Linear task's rows at a few images: the row-lane kernel's block */
#define CONV_COLS 256 /* a shortcut task's columns: its (TASK_ROWS x CONV_COLS) sum in L2 */

static int ceil_div(int a, int b)
{
    return (a + b - 1) / b;
}

static size_t attn_scratch(const struct unet_attn *a, int B)
{
    return (size_t)B * a->C * a->T; /* k^T */
}

size_t unet_chain_scratch(const struct unet *u, int B, int nthr)
{
    const struct unet_config *c = &u->cfg;
    size_t m = (size_t)(c->block_out_channels[0] + 2 * c->time_embed_dim) * B, s;
#define MAXS(x) do { s = (x); if (s > m) m = s; } while (0)
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < c->n_levels; i++) {
            const struct unet_level *lv = d ? &u->up[i] : &u->down[i];
            for (int j = 0; j < lv->n_res; j++) {
                MAXS((size_t)(c->time_embed_dim + lv->res[j].cout) * B);
                MAXS((size_t)nthr * TASK_ROWS * CONV_COLS);
                if (lv->has_attn)
                    MAXS(attn_scratch(&lv->attn[j], B));
            }
        }
    for (int i = 0; i < c->n_levels - 1; i++) { /* training's stride-2 conv backward */
        const struct unet_sample *ds = &u->down[i].sample;
        MAXS((size_t)ds->C * 9 * (ds->H / 2) * (ds->W / 2) + (size_t)nthr * TASK_ROWS * CONV_COLS);
    }
    /* and conv_in's weight gradient */
    MAXS((size_t)c->in_channels * 9 * c->sample_size * c->sample_size +
         (size_t)nthr * TASK_ROWS * CONV_COLS);
    for (int j = 0; j < 2; j++)
        MAXS((size_t)(c->time_embed_dim + u->mid_res[j].cout) * B);
    MAXS(attn_scratch(&u->mid_attn, B));
#undef MAXS
    return m;
}

float *unet_chain_backward_scratch(struct unet *u, int B)
{
    assert(unet_chain_scratch(u, B, u->acts.n_thr) <= u->acts.n_scratch);
    return u->acts.scratch;
}

/* xT (IN, B) = in^T; y (OUT, B) = w xT in row blocks; out = y^T + b */
void unet_chain_linear_vec(float *out, const float *in, const float *w, const float *b, int B,
                           int IN, int OUT, float *scratch)
{
    float *xT = scratch, *y = scratch + (size_t)IN * B;
    for (int n = 0; n < B; n++)
        for (int k = 0; k < IN; k++)
            xT[(size_t)k * B + n] = in[(size_t)n * IN + k];
    int nt = ceil_div(OUT, VEC_ROWS);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        int o0 = t * VEC_ROWS, ob = OUT - o0 < VEC_ROWS ? OUT - o0 : VEC_ROWS;
        nn_sgemm_chain(ob, B, IN, w + (size_t)o0 * IN, IN, xT, B, y + (size_t)o0 * B, B);
    }
    for (int n = 0; n < B; n++)
        for (int o = 0; o < OUT; o++)
            out[(size_t)n * OUT + o] = y[(size_t)o * B + n] + (b ? b[o] : 0.0f);
}

void unet_chain_conv1x1_add(float *out, const float *in, const float *w, const float *b, int B,
                            int C, int OC, int HW, float *scratch, int nthr)
{
    int nr = ceil_div(OC, TASK_ROWS), nc = ceil_div(HW, CONV_COLS), nt = B * nr * nc;
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int t = 0; t < nt; t++) {
        int n = t / (nr * nc), o0 = t / nc % nr * TASK_ROWS, j0 = t % nc * CONV_COLS;
        int ob = OC - o0 < TASK_ROWS ? OC - o0 : TASK_ROWS;
        int cb = HW - j0 < CONV_COLS ? HW - j0 : CONV_COLS;
        float *y = scratch + (size_t)omp_get_thread_num() * TASK_ROWS * CONV_COLS;
        nn_sgemm_chain(ob, cb, C, w + (size_t)o0 * C, C, in + (size_t)n * C * HW + j0, HW, y, cb);
        for (int o = 0; o < ob; o++) {
            float *d = out + ((size_t)n * OC + o0 + o) * HW + j0, bb = b[o0 + o];
            const float *s = y + (size_t)o * cb;
            for (int j = 0; j < cb; j++)
                d[j] = (d[j] + s[j]) + bb;
        }
    }
}

/* a 3x3 conv's im2col, the 9 rows (c, ky, kx) of channel c (its map x, H x W), OH x OW
   columns each, of stride st and top/left padding pt, pl */
static void im2col3(float *col, const float *x, int c, int H, int W, int OH, int OW, int st,
                    int pt, int pl)
{
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            float *d = col + ((size_t)(c * 3 + ky) * 3 + kx) * OH * OW;
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int iy = oy * st - pt + ky, ix = ox * st - pl + kx;
                    d[oy * OW + ox] =
                        iy >= 0 && iy < H && ix >= 0 && ix < W ? x[(size_t)iy * W + ix] : 0.0f;
                }
        }
}

/* its adjoint: x += the 9 rows of channel c, in (ky, kx, oy, ox) order */
static void col2im3(float *x, const float *col, int c, int H, int W, int OH, int OW, int st,
                    int pt, int pl)
{
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            const float *d = col + ((size_t)(c * 3 + ky) * 3 + kx) * OH * OW;
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int iy = oy * st - pt + ky, ix = ox * st - pl + kx;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                        x[(size_t)iy * W + ix] += d[oy * OW + ox];
                }
        }
}

void unet_chain_conv3s2(float *out, float *col, const float *in, const float *w, const float *b,
                        int B, int C, int H, int W, int OC, int pt, int pl, int pb, int pr,
                        int nthr)
{
    int OH = (H + pt + pb - 3) / 2 + 1, OW = (W + pl + pr - 3) / 2 + 1, OHW = OH * OW;
    int nr = ceil_div(OC, TASK_ROWS), nc = ceil_div(OHW, CONV_COLS);
    size_t slice = (size_t)C * 9 * OHW;
    for (int n0 = 0; n0 < B; n0 += nthr) { /* as many images as the scratch has slices */
        int nb = B - n0 < nthr ? B - n0 : nthr;
#pragma omp parallel num_threads(nthr)
        {
#pragma omp for schedule(static)
            for (int t = 0; t < nb * C; t++) /* im2col */
                im2col3(col + slice * (t / C), in + ((size_t)(n0 + t / C) * C + t % C) * H * W,
                        t % C, H, W, OH, OW, 2, pt, pl);
#pragma omp for schedule(static)
            for (int t = 0; t < nb * nr * nc; t++) {
                int i = t / (nr * nc), o0 = t / nc % nr * TASK_ROWS, j0 = t % nc * CONV_COLS;
                int ob = OC - o0 < TASK_ROWS ? OC - o0 : TASK_ROWS;
                int cb = OHW - j0 < CONV_COLS ? OHW - j0 : CONV_COLS;
                float *y = out + ((size_t)(n0 + i) * OC + o0) * OHW + j0;
                nn_sgemm_chain(ob, cb, C * 9, w + (size_t)o0 * C * 9, C * 9,
                               col + slice * i + j0, OHW, y, OHW);
                for (int o = 0; o < ob; o++)
                    for (int j = 0; j < cb; j++)
                        y[(size_t)o * OHW + j] += b[o0 + o];
            }
        }
    }
}

static void add_bias_rows(float *y, int R, int N, int ld, const float *b)
{
    for (int r = 0; r < R; r++)
        for (int j = 0; j < N; j++)
            y[(size_t)r * ld + j] += b[j];
}

/* S (R, T) scaled by sc, then softmax over keys (torch: exp(x - max) / sum). The exps are
   nn_expf's, which vectorise; the sum runs in 16 fixed partial sums combined in a fixed tree,
   written out so the order is the source's, not the vectoriser's (the same on every ISA). */
static void softmax_rows(float *S, int R, int T, float sc)
{
    for (int r = 0; r < R; r++) {
        float *ar = S + (size_t)r * T, mx = -INFINITY, part[16] = {0};
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < T; j++) {
            ar[j] *= sc;
            mx = ar[j] > mx ? ar[j] : mx;
        }
#pragma omp simd
        for (int j = 0; j < T; j++)
            ar[j] = nn_expf(ar[j] - mx);
        int j = 0;
        for (; j + 16 <= T; j += 16)
            for (int l = 0; l < 16; l++)
                part[l] += ar[j + l];
        for (int l = 0; j < T; j++, l++)
            part[l] += ar[j];
        for (int w = 8; w > 0; w /= 2)
            for (int l = 0; l < w; l++)
                part[l] += part[l + w];
        float sum = part[0];
#pragma omp simd
        for (int j = 0; j < T; j++)
            ar[j] /= sum;
    }
}

/* q and v as tok W^T (with W^T made once per call), k^T straight as W_k xn: the layouts q k^T
   and att v read as A and B; k itself (for the backward) is k^T transposed */
void unet_chain_attention(struct unet_attn *a, const float *xn, int B, float *scratch)
{
    int C = a->C, T = a->T, H = a->heads, D = C / H;
    float sc = 1.0f / sqrtf((float)D);
    size_t TC = (size_t)T * C;
    float *kT = scratch;
    int nrt = ceil_div(T, TASK_ROWS), nrc = ceil_div(C, TASK_ROWS);

    /* q = tok W_q^T, v = tok W_v^T and proj = ao W_o^T take W as B given transposed (the
       kernel transposes each panel as it copies it), so no transposed copy of W is made */
    UNET_PROF_BEGIN(UNET_PROF_ATTN_QKV);
    int nt = B * (2 * nrt + nrc);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        int n = t / (2 * nrt + nrc), r = t % (2 * nrt + nrc);
        if (r < 2 * nrt) { /* rows of q or v */
            int i0 = r % nrt * TASK_ROWS, rb = T - i0 < TASK_ROWS ? T - i0 : TASK_ROWS;
            float *y = (r < nrt ? a->q : a->v) + n * TC + (size_t)i0 * C;
            nn_sgemm_chain_bt(rb, C, C, a->tok + n * TC + (size_t)i0 * C, C,
                              r < nrt ? a->q_w : a->v_w, C, y, C);
            add_bias_rows(y, rb, C, C, r < nrt ? a->q_b : a->v_b);
        } else { /* rows (channels) of k^T */
            int o0 = (r - 2 * nrt) * TASK_ROWS, ob = C - o0 < TASK_ROWS ? C - o0 : TASK_ROWS;
            float *y = kT + n * TC + (size_t)o0 * T;
            nn_sgemm_chain(ob, T, C, a->k_w + (size_t)o0 * C, C, xn + n * TC, T, y, T);
            for (int o = 0; o < ob; o++)
                for (int j = 0; j < T; j++)
                    y[(size_t)o * T + j] += a->k_b[o0 + o];
        }
    }
    nn_transpose_forward(a->k, kT, B, C, T);
    UNET_PROF_END(UNET_PROF_ATTN_QKV, 6.0 * B * T * C * C);

    /* per (image, head, block of queries): scores, softmax, att v */
    UNET_PROF_BEGIN(UNET_PROF_ATTN_CORE);
    nt = B * H * nrt;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        int n = t / (H * nrt), h = t / nrt % H, i0 = t % nrt * TASK_ROWS;
        int rb = T - i0 < TASK_ROWS ? T - i0 : TASK_ROWS;
        float *S = a->att + (((size_t)n * H + h) * T + i0) * T;
        nn_sgemm_chain(rb, T, D, a->q + n * TC + (size_t)i0 * C + (size_t)h * D, C,
                       kT + n * TC + (size_t)h * D * T, T, S, T);
        softmax_rows(S, rb, T, sc);
        nn_sgemm_chain(rb, D, T, S, T, a->v + n * TC + (size_t)h * D, C,
                       a->ao + n * TC + (size_t)i0 * C + (size_t)h * D, C);
    }
    UNET_PROF_END(UNET_PROF_ATTN_CORE, 4.0 * B * T * T * C);

    UNET_PROF_BEGIN(UNET_PROF_ATTN_OUT);
    nt = B * nrt;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        int n = t / nrt, i0 = t % nrt * TASK_ROWS, rb = T - i0 < TASK_ROWS ? T - i0 : TASK_ROWS;
        float *y = a->proj + n * TC + (size_t)i0 * C;
        nn_sgemm_chain_bt(rb, C, C, a->ao + n * TC + (size_t)i0 * C, C, a->o_w, C, y, C);
        add_bias_rows(y, rb, C, C, a->o_b);
    }
    UNET_PROF_END(UNET_PROF_ATTN_OUT, 2.0 * B * T * C * C);
}

/* ---- training's backward: the same kernel, the tasks' products added to the
   accumulators after (d += y), so neither the cut nor the thread count shows in the bits ---- */

static void add_tile(float *d, int ldd, const float *y, int rb, int cb)
{
    for (int r = 0; r < rb; r++) {
        float *dr = d + (size_t)r * ldd;
        const float *yr = y + (size_t)r * cb;
        for (int j = 0; j < cb; j++)
            dr[j] += yr[j];
    }
}

static int imin(int a, int b)
{
    return a < b ? a : b;
}

void unet_chain_linear_backward(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, int N, int IN, int OUT,
                                float *scratch, int nthr)
{
    int cr = ceil_div(IN, CONV_COLS);
    int n1 = din ? ceil_div(N, TASK_ROWS) * cr : 0, n2 = dw ? ceil_div(OUT, TASK_ROWS) * cr : 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
    for (int t = 0; t < n1 + n2; t++) {
        float *y = scratch + (size_t)omp_get_thread_num() * TASK_ROWS * CONV_COLS;
        int s = t < n1 ? t : t - n1, r0 = s / cr * TASK_ROWS, j0 = s % cr * CONV_COLS;
        int cb = imin(IN - j0, CONV_COLS);
        if (t < n1) { /* din (N,IN) += dout (N,OUT) w (OUT,IN) */
            int rb = imin(N - r0, TASK_ROWS);
            nn_sgemm_chain(rb, cb, OUT, dout + (size_t)r0 * OUT, OUT, w + j0, IN, y, cb);
            add_tile(din + (size_t)r0 * IN + j0, IN, y, rb, cb);
        } else { /* dw (OUT,IN) += dout^T (OUT,N) in (N,IN), dout read as A transposed */
            int rb = imin(OUT - r0, TASK_ROWS);
            nn_sgemm_chain_at(rb, cb, N, dout + r0, OUT, in + j0, IN, y, cb);
            add_tile(dw + (size_t)r0 * IN + j0, IN, y, rb, cb);
        }
    }
    if (db != NULL)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++)
                db[o] += dout[(size_t)n * OUT + o];
}

void unet_chain_conv1x1_backward(float *din, float *dw, const float *dout, const float *in,
                                 const float *w, int B, int C, int OC, int HW, float *scratch,
                                 int nthr)
{
    int rc = ceil_div(C, TASK_ROWS), cc = ceil_div(HW, CONV_COLS);
    int n1 = B * rc * cc, wc = ceil_div(C, CONV_COLS), n2 = ceil_div(OC, TASK_ROWS) * wc;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
    for (int t = 0; t < n1 + n2; t++) {
        float *y = scratch + (size_t)omp_get_thread_num() * TASK_ROWS * CONV_COLS;
        if (t < n1) { /* din_b (C,HW) += w^T (C,OC) dout_b (OC,HW), w read as A transposed */
            int n = t / (rc * cc), c0 = t / cc % rc * TASK_ROWS, j0 = t % cc * CONV_COLS;
            int rb = imin(C - c0, TASK_ROWS), cb = imin(HW - j0, CONV_COLS);
            nn_sgemm_chain_at(rb, cb, OC, w + c0, C, dout + (size_t)n * OC * HW + j0, HW, y, cb);
            add_tile(din + ((size_t)n * C + c0) * HW + j0, HW, y, rb, cb);
        } else { /* dw (OC,C) += dout_b (OC,HW) in_b^T (HW,C), the images in order */
            int s = t - n1, o0 = s / wc * TASK_ROWS, c0 = s % wc * CONV_COLS;
            int rb = imin(OC - o0, TASK_ROWS), cb = imin(C - c0, CONV_COLS);
            for (int n = 0; n < B; n++) {
                nn_sgemm_chain_bt(rb, cb, HW, dout + ((size_t)n * OC + o0) * HW, HW,
                                  in + ((size_t)n * C + c0) * HW, HW, y, cb);
                add_tile(dw + (size_t)o0 * C + c0, C, y, rb, cb);
            }
        }
    }
}

/* one (image, head): ds = dout v^T, then the softmax's backward in place (nn_attn.c's),
   then dq = ds k, dk = ds^T q, dv = att^T dout, each written once */
static void attn_bwd_head(float *dq, float *dk, float *dv, float *ds, const float *dout,
                          const float *q, const float *k, const float *v, const float *att, int T,
                          int C, int D)
{
    float sc = 1.0f / sqrtf((float)D);
    nn_sgemm_chain_at(T, D, T, att, T, dout, C, dv, C);
    nn_sgemm_chain_bt(T, T, D, dout, C, v, C, ds, T);
    nn_attention_softmax_backward(ds, att, T, sc);
    nn_sgemm_chain(T, D, T, ds, T, k, C, dq, C);
    nn_sgemm_chain_at(T, D, T, ds, T, q, C, dk, C);
}

void unet_chain_attention_backward(float *dq, float *dk, float *dv, float *ds, const float *dout,
                                   const struct unet_attn *a, int B, int nthr)
{
    int C = a->C, T = a->T, heads = a->heads, D = C / heads;
    size_t TC = (size_t)T * C, TT = (size_t)T * T;
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int i = 0; i < B * heads; i++) {
        size_t o = i / heads * TC + (size_t)(i % heads) * D;
        attn_bwd_head(dq + o, dk + o, dv + o, ds + i * TT, dout + o, a->q + o, a->k + o,
                      a->v + o, a->att + i * TT, T, C, D);
    }
}

void unet_chain_conv3_backward(float *din, float *dw, float *scratch, const float *dout,
                               const float *in, const float *w, int B, int C, int H, int W,
                               int OC, int st, int pt, int pl, int pb, int pr, int nthr)
{
    int OH = (H + pt + pb - 3) / st + 1, OW = (W + pl + pr - 3) / st + 1, OHW = OH * OW;
    int K9 = C * 9, wr = ceil_div(OC, TASK_ROWS), wc = ceil_div(K9, CONV_COLS);
    int dr = ceil_div(K9, TASK_ROWS), dc = ceil_div(OHW, CONV_COLS);
    float *col = scratch, *ys = scratch + (size_t)K9 * OHW;
#pragma omp parallel num_threads(nthr)
    {
        float *y = ys + (size_t)omp_get_thread_num() * TASK_ROWS * CONV_COLS;
        for (int n = 0; n < B; n++) {
            const float *dy = dout + (size_t)n * OC * OHW;
#pragma omp for schedule(static)
            for (int c = 0; c < C; c++)
                im2col3(col, in + ((size_t)n * C + c) * H * W, c, H, W, OH, OW, st, pt, pl);
#pragma omp for schedule(dynamic, 1)
            for (int t = 0; t < wr * wc; t++) { /* dw (OC,K9) += dout_n col^T */
                int o0 = t / wc * TASK_ROWS, j0 = t % wc * CONV_COLS;
                int rb = imin(OC - o0, TASK_ROWS), cb = imin(K9 - j0, CONV_COLS);
                nn_sgemm_chain_bt(rb, cb, OHW, dy + (size_t)o0 * OHW, OHW, col + (size_t)j0 * OHW,
                                  OHW, y, cb);
                add_tile(dw + (size_t)o0 * K9 + j0, K9, y, rb, cb);
            }
            if (din == NULL)
                continue;
#pragma omp for schedule(dynamic, 1)
            for (int t = 0; t < dr * dc; t++) { /* col (K9,OHW) = w^T dout_n, w read as A^T */
                int r0 = t / dc * TASK_ROWS, j0 = t % dc * CONV_COLS;
                int rb = imin(K9 - r0, TASK_ROWS), cb = imin(OHW - j0, CONV_COLS);
                nn_sgemm_chain_at(rb, cb, OC, w + r0, K9, dy + j0, OHW, col + (size_t)r0 * OHW + j0,
                                  OHW);
            }
#pragma omp for schedule(static)
            for (int c = 0; c < C; c++)
                col2im3(din + ((size_t)n * C + c) * H * W, col, c, H, W, OH, OW, st, pt, pl);
        }
    }
}
