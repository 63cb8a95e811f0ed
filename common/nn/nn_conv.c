/* conv2d and conv_transpose2d by im2col + SGEMM.

   Work is cut into tasks: a block of output pixels of one image (big feature maps), or a group
   of whole images (small maps, so that a GEMM has enough columns). Each OpenMP thread runs its
   tasks with single-threaded SGEMM in its own slice of the scratch. A 1x1 stride-1 unpadded
   conv uses the input as its column matrix directly.

   conv_transpose2d(g) is the conv d that maps g's output space back to its input space, run
   backwards: its forward is d's data gradient, its data gradient d's forward. */
#include <omp.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_wino.h"

#define CONV_MINCOLS 256        /* fewer output pixels than this: batch images into one GEMM */
#define CONV_COLFLOATS (1 << 20) /* aim for an im2col block of at most this many floats */

static int conv_no_wino; /* tests and benchmarks compare against the im2col path */

void nn_conv_winograd(int on)
{
    conv_no_wino = !on;
}

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

struct conv_plan {
    int gi;    /* images per task (> 1 only for whole-image groups) */
    int blk;   /* output pixels per task when gi == 1 */
    int nb;    /* blocks per image */
    int cols;  /* max columns of a task */
    int nt;    /* thread slices in the scratch */
    int is1x1; /* the input is the column matrix */
    size_t col, tmp, dw, slice; /* floats per thread */
};

/* More blocks per image until the tasks (N * nb) divide evenly among the threads: one image
   in 3 blocks on 2 threads would leave a thread idle a third of the time. */
void nn_conv_balance(int *nb, int *blk, int N, int n, int nt)
{
    int b = *nb;
    while ((long)N * b % nt != 0 && b < n)
        b++;
    *blk = (n + b - 1) / b;
    *nb = (n + *blk - 1) / *blk;
}

/* The tasks, and so every GEMM's shape, depend on the shape and N alone, never on the thread
   count (nn.c says why); they are cut for NN_PLAN_THREADS threads. */
static void conv_plan(struct conv_plan *p, const struct nn_conv *g)
{
    int OHW = g->OH * g->OW, CKK = g->C * g->KH * g->KW, nt = NN_PLAN_THREADS;
    p->nt = g->nt > 0 ? g->nt : 1;
    p->is1x1 = g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PT == 0 &&
               g->PL == 0 && g->PB == 0 && g->PR == 0;
    if (OHW >= CONV_MINCOLS || g->N < 2 * nt) {
        int blk = CONV_COLFLOATS / (CKK > 0 ? CKK : 1);
        if (blk < CONV_MINCOLS)
            blk = CONV_MINCOLS;
        if (blk > OHW)
            blk = OHW;
        /* one image on two threads: at least nt blocks each */
        if (g->N < nt) {
            int per = (nt + g->N - 1) / g->N, b2 = (OHW + per - 1) / per;
            if (b2 < blk)
                blk = b2;
        }
        if (blk < 1)
            blk = 1;
        p->gi = 1;
        p->blk = blk;
        p->nb = (OHW + blk - 1) / blk;
        nn_conv_balance(&p->nb, &p->blk, g->N, OHW, nt);
        p->cols = p->blk;
    } else {
        int gi = (CONV_MINCOLS + OHW - 1) / OHW, most = (g->N + nt - 1) / nt;
        p->gi = gi < most ? gi : most;
        p->blk = OHW;
        p->nb = 1;
        p->cols = p->gi * OHW;
    }
    p->col = p->is1x1 && p->gi == 1 ? 0 : (size_t)CKK * p->cols;
    p->tmp = p->gi > 1 ? (size_t)g->OC * p->cols : 0;
    p->dw = (size_t)g->OC * CKK;
    p->slice = p->col + p->tmp + p->dw;
}

void nn_conv_init_ex(struct nn_conv *g, int N, int C, int H, int W, int OC, int KH, int KW,
                     int SH, int SW, int PT, int PL, int PB, int PR)
{
    g->N = N, g->C = C, g->H = H, g->W = W, g->OC = OC, g->KH = KH, g->KW = KW;
    g->SH = SH, g->SW = SW, g->PT = PT, g->PL = PL, g->PB = PB, g->PR = PR;
    g->OH = (H + PT + PB - KH) / SH + 1;
    g->OW = (W + PL + PR - KW) / SW + 1;
    g->nt = nn_get_threads();
}

void nn_conv_init(struct nn_conv *g, int N, int C, int H, int W, int OC, int K, int S, int P)
{
    nn_conv_init_ex(g, N, C, H, W, OC, K, K, S, S, P, P, P, P);
}

void nn_convt_init(struct nn_conv *g, int N, int C, int H, int W, int OC, int K, int S, int P)
{
    g->N = N, g->C = C, g->H = H, g->W = W, g->OC = OC, g->KH = K, g->KW = K;
    g->SH = S, g->SW = S, g->PT = P, g->PL = P, g->PB = P, g->PR = P;
    g->OH = (H - 1) * S - 2 * P + K;
    g->OW = (W - 1) * S - 2 * P + K;
    g->nt = nn_get_threads();
}

/* the conv whose input space is g's output space (for conv_transpose2d) */
static void convt_dual(struct nn_conv *d, const struct nn_conv *g)
{
    *d = *g;
    d->C = g->OC, d->H = g->OH, d->W = g->OW;
    d->OC = g->C, d->OH = g->H, d->OW = g->W;
}

/* the conv whose forward is g's data gradient: 3x3 stride 1, channels swapped, pads 2-P,
   weights rotated (nn_wino_forward's flip) */
static void conv_dual3(struct nn_conv *d, const struct nn_conv *g)
{
    *d = *g;
    d->C = g->OC, d->H = g->OH, d->W = g->OW, d->OC = g->C, d->OH = g->H, d->OW = g->W;
    d->PT = 2 - g->PT, d->PL = 2 - g->PL, d->PB = 2 - g->PB, d->PR = 2 - g->PR;
}

/* whether g's data gradient can run as a Winograd conv d (ignoring nn_conv_winograd) */
static int conv_wino_dx(const struct nn_conv *g, struct nn_conv *d)
{
    if (g->KH != 3 || g->KW != 3 || g->SH != 1 || g->SW != 1)
        return 0;
    conv_dual3(d, g);
    return nn_wino_ok(d);
}

size_t nn_conv_scratch(const struct nn_conv *g)
{
    struct conv_plan p;
    conv_plan(&p, g);
    struct nn_conv d;
    size_t n = p.slice * p.nt;
    if (nn_wino_ok(g) && nn_wino_scratch(g) > n)
        n = nn_wino_scratch(g);
    if (conv_wino_dx(g, &d) && nn_wino_scratch(&d) > n)
        n = nn_wino_scratch(&d);
    if (nn_wino7_ok(g) && nn_wino7_scratch_threads(g) + (size_t)8 * g->OC * g->C > n)
        n = nn_wino7_scratch_threads(g) + (size_t)8 * g->OC * g->C;
    return n;
}

size_t nn_convt_scratch(const struct nn_conv *g)
{
    struct nn_conv d;
    convt_dual(&d, g);
    return nn_conv_scratch(&d);
}

/* Output columns [lo, hi) of a kernel column kw read inside the input row: ix = ox*SW - PL + kw
   in [0, W). */
static void conv_valid(const struct nn_conv *g, int kw, int *lo, int *hi)
{
    int ix0 = kw - g->PL, SW = g->SW;
    *lo = ix0 < 0 ? (-ix0 + SW - 1) / SW : 0;
    *hi = g->W - ix0 <= 0 ? 0 : (g->W - ix0 + SW - 1) / SW;
    if (*hi > g->OW)
        *hi = g->OW;
    if (*lo > *hi)
        *lo = *hi;
}

/* the adjoint of nn_im2col for one image: x (C,H,W) += col scattered back */
static void col2im(float *x, const float *col, int ld, const struct nn_conv *g, int p0, int p1)
{
    int H = g->H, W = g->W, OW = g->OW, SW = g->SW;
    for (int c = 0; c < g->C; c++) {
        float *xc = x + (size_t)c * H * W;
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                const float *src = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ld;
                int lo, hi, off = kw - g->PL;
                conv_valid(g, kw, &lo, &hi);
                for (int p = p0, oy = p0 / OW, a = p0 % OW; p < p1; oy++, a = 0) {
                    int b = OW < a + p1 - p ? OW : a + p1 - p;
                    int iy = oy * g->SH - g->PT + kh;
                    int s = a > lo ? a : lo, e = b < hi ? b : hi;
                    if (iy >= 0 && iy < H) {
                        float *r = xc + (size_t)iy * W;
                        const float *sp = src - a;
                        if (SW == 1)
                            for (int ox = s; ox < e; ox++)
                                r[ox + off] += sp[ox];
                        else
                            for (int ox = s; ox < e; ox++)
                                r[ox * SW + off] += sp[ox];
                    }
                    src += b - a;
                    p += b - a;
                }
            }
    }
}

/* out (images n0..n1-1, pixels p0..p1-1) = (or +=) W * cols + b */
static void conv_fwd_task(float *out, int acc, float *sl, const float *in, const float *w,
                          const float *b, const struct nn_conv *g, const struct conv_plan *p,
                          int n0, int n1, int p0, int p1, gemm_fn gemm)
{
    int OHW = g->OH * g->OW, CKK = g->C * g->KH * g->KW, OC = g->OC;
    size_t HW = (size_t)g->H * g->W, CHW = g->C * HW, OCHW = (size_t)OC * OHW;
    float *col = sl, *tmp = sl + p->col;

    if (n1 - n0 == 1) {
        const float *x = in + n0 * CHW, *B = x + p0;
        float *y = out + n0 * OCHW + p0;
        int ldb = OHW, np = p1 - p0;
        if (!p->is1x1) {
            nn_im2col(col, np, x, HW, CHW, g, p0, np);
            B = col, ldb = np;
        }
        gemm(0, 0, OC, np, CKK, 1.0f, w, CKK, B, ldb, acc ? 1.0f : 0.0f, y, OHW);
        if (b != NULL)
            for (int o = 0; o < OC; o++) {
                float bo = b[o], *yo = y + (size_t)o * OHW;
                for (int j = 0; j < np; j++)
                    yo[j] += bo;
            }
        return;
    }
    int cols = (n1 - n0) * OHW;
    nn_im2col(col, cols, in + n0 * CHW, HW, CHW, g, 0, cols);
    gemm(0, 0, OC, cols, CKK, 1.0f, w, CKK, col, cols, 0.0f, tmp, cols);
    for (int n = n0; n < n1; n++)
        for (int o = 0; o < OC; o++) {
            const float *src = tmp + (size_t)o * cols + (size_t)(n - n0) * OHW;
            float *dst = out + n * OCHW + (size_t)o * OHW, bo = b != NULL ? b[o] : 0.0f;
            if (acc)
                for (int j = 0; j < OHW; j++)
                    dst[j] += src[j] + bo;
            else
                for (int j = 0; j < OHW; j++)
                    dst[j] = src[j] + bo;
        }
}

/* forward over all tasks; acc: add to out instead of overwriting */
static void conv_fwd(float *out, int acc, float *scratch, const float *in, const float *w,
                     const float *b, const struct nn_conv *g)
{
    struct conv_plan p;
    int nt = nn_get_threads();
    if (!conv_no_wino && nn_wino_ok(g)) {
        nn_wino_forward(out, acc, scratch, in, w, b, g, 0);
        return;
    }
    if (!conv_no_wino && !acc && nn_wino7_ok(g)) {
        nn_wino7_conv(out, scratch, in, w, b, g);
        return;
    }
    conv_plan(&p, g);
    if (nt > p.nt)
        nt = p.nt;
    int OHW = g->OH * g->OW;
    int ntask = p.gi > 1 ? (g->N + p.gi - 1) / p.gi : g->N * p.nb;
#pragma omp parallel num_threads(nt)
    {
        float *sl = scratch + p.slice * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int t = 0; t < ntask; t++) {
            if (p.gi > 1) {
                int n0 = t * p.gi, n1 = n0 + p.gi < g->N ? n0 + p.gi : g->N;
                conv_fwd_task(out, acc, sl, in, w, b, g, &p, n0, n1, 0, OHW, nn_sgemm_serial);
            } else {
                int n = t / p.nb, p0 = t % p.nb * p.blk, p1 = p0 + p.blk < OHW ? p0 + p.blk : OHW;
                conv_fwd_task(out, acc, sl, in, w, b, g, &p, n, n + 1, p0, p1, nn_sgemm_serial);
            }
        }
    }
}

/* images n0..n1-1: dwt += dout cols^T; din += col2im(W^T dout) */
static void conv_bwd_task(float *din, float *dwt, float *sl, const float *dout,
                          const float *in, const float *w, const struct nn_conv *g,
                          const struct conv_plan *p, int n0, int n1, gemm_fn gemm)
{
    int OHW = g->OH * g->OW, CKK = g->C * g->KH * g->KW, OC = g->OC;
    size_t HW = (size_t)g->H * g->W, CHW = g->C * HW, OCHW = (size_t)OC * OHW;
    float *col = sl, *tmp = sl + p->col;

    if (n1 - n0 == 1) {
        const float *x = in != NULL ? in + n0 * CHW : NULL; /* NULL when dwt is */
        for (int p0 = 0; p0 < OHW; p0 += p->blk) {
            int p1 = p0 + p->blk < OHW ? p0 + p->blk : OHW, np = p1 - p0;
            const float *dy = dout + n0 * OCHW + p0;
            if (p->is1x1) {
                if (dwt != NULL)
                    gemm(0, 1, OC, CKK, np, 1.0f, dy, OHW, x + p0, OHW, 1.0f, dwt, CKK);
                if (din != NULL)
                    gemm(1, 0, CKK, np, OC, 1.0f, w, CKK, dy, OHW, 1.0f, din + n0 * CHW + p0,
                         OHW);
                continue;
            }
            if (dwt != NULL) {
                nn_im2col(col, np, x, HW, CHW, g, p0, np);
                gemm(0, 1, OC, CKK, np, 1.0f, dy, OHW, col, np, 1.0f, dwt, CKK);
            }
            if (din != NULL) {
                gemm(1, 0, CKK, np, OC, 1.0f, w, CKK, dy, OHW, 0.0f, col, np);
                col2im(din + n0 * CHW, col, np, g, p0, p1);
            }
        }
        return;
    }
    int cols = (n1 - n0) * OHW;
    for (int n = n0; n < n1; n++)
        for (int o = 0; o < OC; o++)
            memcpy(tmp + (size_t)o * cols + (size_t)(n - n0) * OHW,
                   dout + n * OCHW + (size_t)o * OHW, sizeof(float) * OHW);
    if (dwt != NULL) {
        nn_im2col(col, cols, in + n0 * CHW, HW, CHW, g, 0, cols);
        gemm(0, 1, OC, CKK, cols, 1.0f, tmp, cols, col, cols, 1.0f, dwt, CKK);
    }
    if (din != NULL) {
        gemm(1, 0, CKK, cols, OC, 1.0f, w, CKK, tmp, cols, 0.0f, col, cols);
        for (int n = n0; n < n1; n++)
            col2im(din + n * CHW, col + (size_t)(n - n0) * OHW, cols, g, 0, OHW);
    }
}

static void conv_bwd(float *din, float *dw, float *scratch, const float *dout, const float *in,
                     const float *w, const struct nn_conv *g)
{
    struct conv_plan p;
    struct nn_conv d;
    int nt = nn_get_threads();
    if (dw != NULL && !conv_no_wino && nn_wino_ok(g)) {
        nn_wino_dw(dw, scratch, dout, in, g);
        dw = NULL;
    }
    if (din != NULL && !conv_no_wino && conv_wino_dx(g, &d)) {
        nn_wino_forward(din, 1, scratch, dout, w, NULL, &d, 1);
        din = NULL;
    }
    conv_plan(&p, g);
    if (nt > p.nt)
        nt = p.nt;
    if (din == NULL && dw == NULL)
        return;
    if (g->N < nt || nt == 1) {
        /* too few images to split: one image at a time, the GEMMs split instead */
        for (int n = 0; n < g->N; n++)
            conv_bwd_task(din, dw, scratch, dout, in, w, g, &p, n, n + 1, nn_sgemm);
        return;
    }
    int ntask = (g->N + p.gi - 1) / p.gi;
    size_t ndw = p.dw;
#pragma omp parallel num_threads(nt)
    {
        /* the team may be smaller than asked (nested inside another parallel region) */
        int t = omp_get_thread_num(), nth = omp_get_num_threads();
        float *sl = scratch + p.slice * t, *dwt = NULL;
        if (dw != NULL) {
            dwt = t == 0 ? dw : sl + p.col + p.tmp;
            if (t > 0)
                memset(dwt, 0, sizeof(float) * ndw);
        }
#pragma omp for schedule(static)
        for (int k = 0; k < ntask; k++) {
            int n0 = k * p.gi, n1 = n0 + p.gi < g->N ? n0 + p.gi : g->N;
            conv_bwd_task(din, dwt, sl, dout, in, w, g, &p, n0, n1, nn_sgemm_serial);
        }
        if (dw != NULL) {
            /* implicit barrier above; reduce the private dW slices, split by rows */
#pragma omp for schedule(static)
            for (size_t i = 0; i < ndw; i++)
                for (int s = 1; s < nth; s++)
                    dw[i] += scratch[p.slice * s + p.col + p.tmp + i];
        }
    }
}

/* db[o] += sum over images and pixels of dout[n][o] */
static void bias_grad(float *db, const float *dout, int N, int OC, int OHW)
{
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            const float *d = dout + ((size_t)n * OC + o) * OHW;
            float a = 0;
            for (int j = 0; j < OHW; j++)
                a += d[j];
            s += a;
        }
        db[o] += (float)s;
    }
}

void nn_conv2d_forward(float *out, float *scratch, const float *in, const float *w,
                       const float *b, const struct nn_conv *g)
{
    conv_fwd(out, 0, scratch, in, w, b, g);
}

void nn_conv2d_backward(float *din, float *dw, float *db, float *scratch, const float *dout,
                        const float *in, const float *w, const struct nn_conv *g)
{
    if (db != NULL)
        bias_grad(db, dout, g->N, g->OC, g->OH * g->OW);
    conv_bwd(din, dw, scratch, dout, in, w, g);
}

void nn_conv_transpose2d_forward(float *out, float *scratch, const float *in, const float *w,
                                 const float *b, const struct nn_conv *g)
{
    struct nn_conv d;
    size_t OHW = (size_t)g->OH * g->OW;
    convt_dual(&d, g);
    memset(out, 0, sizeof(float) * g->N * g->OC * OHW);
    /* out = d's data gradient for "dout" = in; w (C,OC,KH,KW) is d's weight */
    conv_bwd(out, NULL, scratch, in, NULL, w, &d);
    if (b != NULL) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < g->N * g->OC; i++) {
            float bo = b[i % g->OC], *y = out + i * OHW;
            for (size_t j = 0; j < OHW; j++)
                y[j] += bo;
        }
    }
}

void nn_conv_transpose2d_backward(float *din, float *dw, float *db, float *scratch,
                                  const float *dout, const float *in, const float *w,
                                  const struct nn_conv *g)
{
    struct nn_conv d;
    convt_dual(&d, g);
    if (db != NULL)
        bias_grad(db, dout, g->N, g->OC, g->OH * g->OW);
    if (din != NULL)
        conv_fwd(din, 1, scratch, dout, w, NULL, &d);
    if (dw != NULL)
        conv_bwd(NULL, dw, scratch, in, dout, w, &d);
}

void nn_conv_db_float(float *db, const float *dout, int B, int OC, int H, int W)
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
