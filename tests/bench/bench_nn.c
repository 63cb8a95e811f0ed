/* Benchmark of the nn core on the project's real shapes (UNet at batch 16, Inception at batch
   8, the VAE at batch 64). One line per case:
     op key=value... ms=<best of runs> gflops=<G> sgemm=<G of one SGEMM of the same M,N,K>
     ratio=<gflops/sgemm>
   Element-wise ops report gbs= (bytes read + written per second) instead of GFLOP/s.
   conv2d_fwd_pre: the forward on weights Winograd-transformed once, outside the timing, as
   inference on fixed weights runs it (only where the geometry is Winograd's).
   conv2d_fwd_unet, conv2d_bwd_unet: the UNet's own 3x3 convs on its shapes (bench_unet_conv).
   The lines also go to $BENCH_NN_OUT (default /tmp/bench_nn.txt), where tests/bench/torch_nn.py
   (run by bench_nn.sh) reads them to time the same ops in PyTorch.
   usage: bench_nn [-cw] [-t threads] [filter]  (-c: CPU time; -w: no Winograd; filter: substring of the op name) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/nn.h"
#include "models/unet.h"
#include "models/unet_grad.h"
#include "models/unet_grad_conv.h"
#include "nn/nn_wino.h"
#include "util/util.h"

static const char *filter;
static FILE *copy; /* the lines again, for tests/bench/torch_nn.py */

static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (copy != NULL) {
        va_start(ap, fmt);
        vfprintf(copy, fmt, ap);
        va_end(ap);
    }
}
static int threads = 2, cputime;

/* -c: process CPU time divided by the thread count, for a machine busy with other work
   (then wall time says nothing); spinning threads count against the code */
static double now(void)
{
    struct timespec ts;
    if (!cputime)
        return util_now();
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (ts.tv_sec + ts.tv_nsec * 1e-9) / threads;
}

/* best wall time of fn over runs taking at least ~0.5 s in total (at least 3 runs) */
#define TIME(best, ...)                                                                        \
    do {                                                                                       \
        double t0_ = now(), tot_ = 0;                                                     \
        __VA_ARGS__;                                                                           \
        best = now() - t0_;                                                               \
        for (int r_ = 0; r_ < 3 || tot_ < 0.5; r_++) {                                         \
            double a_ = now();                                                            \
            __VA_ARGS__;                                                                       \
            double e_ = now() - a_;                                                       \
            tot_ += e_;                                                                        \
            if (e_ < best)                                                                     \
                best = e_;                                                                     \
            if (r_ > 50)                                                                       \
                break;                                                                         \
        }                                                                                      \
    } while (0)

static float *buf(size_t n)
{
    float *p = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static int skip(const char *op)
{
    return filter != NULL && strstr(op, filter) == NULL;
}

/* The machine's limits the ops are held against: the float FMA rate on all threads (12
   independent chains of 16-float vectors; a*m + c is one FMA only with contraction, which
   -std=c11 turns off, so this function turns it on: without it the loop ran a multiply and an
   add and measured half the peak) and the STREAM
   triad in place, a += s*b, on the add op's two 8 MB arrays (24 MB moved per pass, 16 MB
   touched: in L3, as the ops run). */
typedef float v16 __attribute__((vector_size(64)));

enum { FMA_ITERS = 4000000, TRIAD_PASSES = 20 };

__attribute__((optimize("fp-contract=fast"))) static float fma_kernel(void)
{
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        v16 a[12], m = {0}, c = {0};
        m += 0.999999f, c += 1e-7f;
        for (int i = 0; i < 12; i++)
            a[i] = m * (float)i;
        for (long k = 0; k < FMA_ITERS; k++)
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++)
                a[i] = a[i] * m + c;
        for (int i = 0; i < 12; i++)
            sink += a[i][0];
    }
    return sink;
}

/* each thread streams its own half TRIAD_PASSES times with no barrier between: the
   bandwidth, not the cost of waking the other thread */
static void triad_kernel(float *a, const float *b, size_t n)
{
#pragma omp parallel num_threads(threads)
    for (int r = 0; r < TRIAD_PASSES; r++) {
#pragma omp for simd schedule(static) nowait
        for (size_t i = 0; i < n; i++)
            a[i] += 0.5f * b[i];
    }
}

static double fma_peak(void)
{
    double t;
    volatile float sink;
    TIME(t, sink = fma_kernel());
    (void)sink;
    return 2.0 * 16 * 12 * FMA_ITERS * threads / t / 1e9;
}

static double triad_peak(void)
{
    size_t n = (size_t)16 * 128 * 1024;
    float *a = buf(n), *b = buf(n);
    double t;
    TIME(t, triad_kernel(a, b, n));
    free(a), free(b);
    return TRIAD_PASSES * 12.0 * n / t / 1e9;
}

/* GFLOP/s of one nn_sgemm of the given size */
static double sgemm_rate(int M, int N, int K)
{
    float *A = buf((size_t)M * K), *B = buf((size_t)K * N), *C = buf((size_t)M * N);
    double t;
    TIME(t, nn_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N));
    free(A), free(B), free(C);
    return 2.0 * M * N * K / t / 1e9;
}

struct cv {
    const char *tag;
    int N, C, H, W, OC, KH, KW, S, PT, PL, PB, PR;
};

/* The UNet runs its 3x3 stride-1 convs by the core's Winograd F(4x4, 3x3) (nn_wino4.c,
   nn_wino4_grad.c, composed by unet.c and unet_grad_conv.c), not by nn_conv2d_*:
   conv2d_fwd_unet is that forward on weights transformed once (as sampling runs it),
   conv2d_bwd_unet its backward (data and weight gradients, the weights transformed and the
   input tiles made inside, as a step without kept tiles runs it; dx=0: no data gradient, as
   for conv_in). */
static void bench_unet_conv(const struct cv *c, const float *in, const float *w, const float *b,
                            float *out, float *din, float *dw, float *db, double flops,
                            double ref, int backward)
{
    int N = c->N, C = c->C, H = c->H, W = c->W, OC = c->OC;
    double t;
    const char *op = backward ? "conv2d_bwd_unet" : "conv2d_fwd_unet";
    if (backward) {
        struct unet u = {0}; /* no kept tiles */
        struct unet_grad gr = {0};
        size_t ns = nn_wino4_dw_scratch(N, C, H, W, OC), nf = nn_wino4_dx_scratch(N, C, H, W, OC);
        gr.n_wt = (size_t)9 * C * OC;
        struct nn_conv g;
        nn_conv_init_ex(&g, N, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1, 1);
        gr.n_wscr = ns > nf ? ns : nf;
        gr.n_wscr = nn_conv_scratch(&g) > gr.n_wscr ? nn_conv_scratch(&g) : gr.n_wscr;
        gr.wu = buf(4 * gr.n_wt), gr.wscr = buf(gr.n_wscr);
        /* conv_in (C = 3): the data needs no gradient, so training asks for none */
        float *dx = C == 3 ? NULL : din;
        TIME(t, unet_conv3_backward(&u, &gr, dx, dw, db, out, in, w, N, C, H, W, OC));
        if (dx == NULL)
            flops /= 2;
        free(gr.wu), free(gr.wscr);
    } else {
        float *U = buf((size_t)36 * OC * C), *ws = buf(nn_wino4_scratch(N, C, H, W, OC));
        nn_wino4_weights(U, w, C, OC);
        TIME(t, nn_wino4_forward(out, ws, in, U, b, N, C, H, W, OC, NULL));
        free(U), free(ws);
    }
    double gf = flops / t / 1e9;
    emit("%s tag=%s N=%d C=%d H=%d W=%d OC=%d KH=3 KW=3 S=1 PT=1 PL=1 PB=1 PR=1%s ms=%.3f "
         "gflops=%.1f sgemm=%.1f ratio=%.2f\n", op, c->tag, N, C, H, W, OC,
         backward && C == 3 ? " dx=0" : "", t * 1e3, gf, ref, gf / ref);
    fflush(stdout);
}

static void bench_conv(const struct cv *c, int backward)
{
    const char *op = backward ? "conv2d_bwd" : "conv2d_fwd";
    if (skip(op) && skip(c->tag))
        return;
    struct nn_conv g;
    nn_conv_init_ex(&g, c->N, c->C, c->H, c->W, c->OC, c->KH, c->KW, c->S, c->S, c->PT, c->PL,
                    c->PB, c->PR);
    size_t nin = (size_t)g.N * g.C * g.H * g.W, nout = (size_t)g.N * g.OC * g.OH * g.OW;
    size_t nw = (size_t)g.OC * g.C * g.KH * g.KW;
    float *in = buf(nin), *w = buf(nw), *b = buf(g.OC), *out = buf(nout);
    float *scratch = buf(nn_conv_scratch(&g)), *din = buf(nin), *dw = buf(nw), *db = buf(g.OC);
    int M = g.OC, N = g.N * g.OH * g.OW, K = g.C * g.KH * g.KW;
    double flops = 2.0 * M * N * K, t;
    if (backward) {
        flops *= 2;
        TIME(t, nn_conv2d_backward(din, dw, db, scratch, out, in, w, &g));
    } else {
        TIME(t, nn_conv2d_forward(out, scratch, in, w, b, &g));
    }
    double gf = flops / t / 1e9, ref = sgemm_rate(M, N, K);
    emit("%s tag=%s N=%d C=%d H=%d W=%d OC=%d KH=%d KW=%d S=%d PT=%d PL=%d PB=%d PR=%d "
           "ms=%.3f gflops=%.1f sgemm=%.1f ratio=%.2f\n",
           op, c->tag, g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, g.SH, g.PT, g.PL, g.PB, g.PR,
           t * 1e3, gf, ref, gf / ref);
    fflush(stdout);
    /* inference on fixed weights (the Inception network): the Winograd weight transform done
       once, outside the timing */
    if (!backward && nn_conv_wino_size(&g) > 0) {
        float *u = buf(nn_conv_wino_size(&g)), *ws = buf(nn_conv_wino_scratch(&g));
        nn_conv_wino_weights(u, w, &g);
        TIME(t, nn_conv2d_forward_wino(out, ws, in, u, b, &g));
        gf = flops / t / 1e9;
        emit("conv2d_fwd_pre tag=%s N=%d C=%d H=%d W=%d OC=%d KH=%d KW=%d S=%d PT=%d PL=%d "
             "PB=%d PR=%d ms=%.3f gflops=%.1f sgemm=%.1f ratio=%.2f\n",
             c->tag, g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, g.SH, g.PT, g.PL, g.PB, g.PR,
             t * 1e3, gf, ref, gf / ref);
        fflush(stdout);
        free(u), free(ws);
    }
    if (c->tag[0] == 'u' && c->KH == 3 && c->KW == 3 && c->S == 1 && c->PT == 1 && c->PL == 1 &&
        c->PB == 1 && c->PR == 1)
        bench_unet_conv(c, in, w, b, out, din, dw, db, flops, ref, backward);
    free(in), free(w), free(b), free(out), free(scratch), free(din), free(dw), free(db);
}

static void bench_convt(int N, int C, int H, int OC, int backward)
{
    const char *op = backward ? "convt2d_bwd" : "convt2d_fwd";
    if (skip(op))
        return;
    struct nn_conv g;
    nn_convt_init(&g, N, C, H, H, OC, 4, 2, 1);
    size_t nin = (size_t)N * C * H * H, nout = (size_t)N * OC * g.OH * g.OW, nw = (size_t)C * OC * 16;
    float *in = buf(nin), *w = buf(nw), *b = buf(OC), *out = buf(nout);
    float *scratch = buf(nn_convt_scratch(&g)), *din = buf(nin), *dw = buf(nw), *db = buf(OC);
    int M = OC * 16, NN = N * H * H, K = C;
    double flops = 2.0 * M * NN * K, t;
    if (backward) {
        flops *= 2;
        TIME(t, nn_conv_transpose2d_backward(din, dw, db, scratch, out, in, w, &g));
    } else {
        TIME(t, nn_conv_transpose2d_forward(out, scratch, in, w, b, &g));
    }
    double gf = flops / t / 1e9, ref = sgemm_rate(M, NN, K);
    emit("%s N=%d C=%d H=%d W=%d OC=%d K=4 S=2 P=1 ms=%.3f gflops=%.1f sgemm=%.1f "
           "ratio=%.2f\n", op, N, C, H, H, OC, t * 1e3, gf, ref, gf / ref);
    fflush(stdout);
    free(in), free(w), free(b), free(out), free(scratch), free(din), free(dw), free(db);
}

static void bench_linear(int N, int IN, int OUT)
{
    if (skip("linear"))
        return;
    float *in = buf((size_t)N * IN), *w = buf((size_t)OUT * IN), *b = buf(OUT);
    float *out = buf((size_t)N * OUT), *din = buf((size_t)N * IN), *dw = buf((size_t)OUT * IN);
    double t, tb, f = 2.0 * N * IN * OUT;
    TIME(t, nn_linear_forward(out, in, w, b, N, IN, OUT));
    TIME(tb, nn_linear_backward(din, dw, b, out, in, w, N, IN, OUT));
    double ref = sgemm_rate(N, OUT, IN);
    emit("linear_fwd N=%d IN=%d OUT=%d ms=%.3f gflops=%.1f sgemm=%.1f ratio=%.2f\n", N, IN,
           OUT, t * 1e3, f / t / 1e9, ref, f / t / 1e9 / ref);
    emit("linear_bwd N=%d IN=%d OUT=%d ms=%.3f gflops=%.1f sgemm=%.1f ratio=%.2f\n", N, IN,
           OUT, tb * 1e3, 2 * f / tb / 1e9, ref, 2 * f / tb / 1e9 / ref);
    fflush(stdout);
    free(in), free(w), free(b), free(out), free(din), free(dw);
}

static void line_bw(const char *op, const char *dims, double t, double bytes)
{
    emit("%s %s ms=%.3f gbs=%.1f\n", op, dims, t * 1e3, bytes / t / 1e9);
    fflush(stdout);
}

static void bench_elementwise(void)
{
    char d[128];
    double t;
    {
        int N = 16, C = 128, HW = 1024;
        size_t n = (size_t)N * C * HW;
        float *x = buf(n), *y = buf(n), *dx = buf(n), *gm = buf(C), *bt = buf(C);
        float *mean = buf(N * 32), *rstd = buf(N * 32), *dg = buf(C), *db = buf(C);
        snprintf(d, sizeof d, "N=%d C=%d H=32 W=32 G=32", N, C);
        if (!skip("group_norm_fwd")) {
            TIME(t, nn_group_norm_forward(y, mean, rstd, x, gm, bt, N, C, HW, 32, 1e-6f));
            line_bw("group_norm_fwd", d, t, 8.0 * n);
        }
        if (!skip("group_norm_bwd")) {
            TIME(t, nn_group_norm_backward(dx, dg, db, y, x, mean, rstd, gm, N, C, HW, 32));
            line_bw("group_norm_bwd", d, t, 16.0 * n);
        }
        snprintf(d, sizeof d, "N=%d C=%d H=32 W=32", N, C);
        if (!skip("silu_fwd")) {
            TIME(t, nn_silu_forward(y, x, n));
            line_bw("silu_fwd", d, t, 8.0 * n);
        }
        if (!skip("silu_bwd")) {
            TIME(t, nn_silu_backward(dx, y, x, n));
            line_bw("silu_bwd", d, t, 16.0 * n);
        }
        if (!skip("add")) {
            TIME(t, nn_add_forward(y, y, x, n));
            line_bw("add", d, t, 12.0 * n);
        }
        free(x), free(y), free(dx), free(gm), free(bt), free(mean), free(rstd), free(dg), free(db);
    }
    {
        int N = 16, C = 256, H = 16;
        size_t n = (size_t)N * C * H * H;
        float *x = buf(n), *y = buf(4 * n), *dx = buf(n);
        snprintf(d, sizeof d, "N=%d C=%d H=%d W=%d", N, C, H, H);
        if (!skip("upsample2x_fwd")) {
            TIME(t, nn_upsample2x_forward(y, x, N, C, H, H));
            line_bw("upsample2x_fwd", d, t, 20.0 * n);
        }
        if (!skip("upsample2x_bwd")) {
            TIME(t, nn_upsample2x_backward(dx, y, N, C, H, H));
            line_bw("upsample2x_bwd", d, t, 24.0 * n);
        }
        if (!skip("concat")) {
            TIME(t, nn_concat_forward(y, x, x, N, C, C, H * H));
            line_bw("concat", d, t, 16.0 * n);
        }
        free(x), free(y), free(dx);
    }
    {
        int N = 8, C = 64, H = 147;
        int OH = nn_pool_out(H, 3, 2, 0);
        size_t n = (size_t)N * C * H * H;
        float *x = buf(n), *y = buf(n);
        snprintf(d, sizeof d, "N=%d C=%d H=%d W=%d K=3 S=2 P=0", N, C, H, H);
        if (!skip("max_pool2d")) {
            TIME(t, nn_max_pool2d_forward(y, x, N, C, H, H, 3, 2, 0));
            line_bw("max_pool2d", d, t, 4.0 * n + 4.0 * N * C * OH * OH);
        }
        free(x), free(y);
        N = 8, C = 288, H = 35;
        n = (size_t)N * C * H * H;
        x = buf(n), y = buf(n);
        snprintf(d, sizeof d, "N=%d C=%d H=%d W=%d K=3 S=1 P=1 cip=0", N, C, H, H);
        if (!skip("avg_pool2d")) {
            TIME(t, nn_avg_pool2d_forward(y, x, N, C, H, H, 3, 1, 1, 0));
            line_bw("avg_pool2d", d, t, 8.0 * n);
        }
        free(x), free(y);
    }
    {
        int N = 8;
        float *x = buf((size_t)N * 3 * 32 * 32), *y = buf((size_t)N * 3 * 299 * 299);
        snprintf(d, sizeof d, "N=%d C=3 H=32 W=32 OH=299 OW=299", N);
        if (!skip("bilinear")) {
            TIME(t, nn_bilinear_resize_forward(y, x, N, 3, 32, 32, 299, 299));
            line_bw("bilinear", d, t, 4.0 * N * 3 * 299 * 299);
        }
        free(x), free(y);
    }
    {
        int N = 16, T = 256, C = 256;
        size_t n = (size_t)N * T * C, na = (size_t)N * T * T;
        float *q = buf(n), *k = buf(n), *v = buf(n), *o = buf(n), *att = buf(na);
        float *dq = buf(n), *dk = buf(n), *dv = buf(n), *s = buf(na);
        double f = 4.0 * N * T * T * C;
        snprintf(d, sizeof d, "N=%d T=%d C=%d heads=1", N, T, C);
        double ref = sgemm_rate(T, T, C);
        if (!skip("attention_fwd")) {
            TIME(t, nn_attention_forward(o, att, q, k, v, N, T, C, 1));
            emit("attention_fwd %s ms=%.3f gflops=%.1f sgemm=%.1f ratio=%.2f\n", d, t * 1e3,
                   f / t / 1e9, ref, f / t / 1e9 / ref);
        }
        if (!skip("attention_bwd")) {
            TIME(t, nn_attention_backward(dq, dk, dv, s, o, q, k, v, att, N, T, C, 1));
            emit("attention_bwd %s ms=%.3f gflops=%.1f sgemm=%.1f ratio=%.2f\n", d, t * 1e3,
                   2 * f / t / 1e9, ref, 2 * f / t / 1e9 / ref);
        }
        snprintf(d, sizeof d, "rows=%d cols=%d", N * T, T);
        if (!skip("softmax")) {
            TIME(t, nn_softmax_forward(att, att, N * T, T));
            line_bw("softmax", d, t, 8.0 * na);
        }
        fflush(stdout);
        free(q), free(k), free(v), free(o), free(att), free(dq), free(dk), free(dv), free(s);
    }
}

int main(int argc, char **argv)
{
    /* the UNet (batch 16, diffusers ddpm-cifar10-32) and Inception (batch 8) conv shapes */
    static const struct cv convs[] = {
        {"unet_in", 16, 3, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1},
        {"unet32", 16, 128, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1},
        {"unet32cat", 16, 256, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1},
        {"unet_down", 16, 128, 32, 32, 128, 3, 3, 2, 0, 0, 1, 1},
        {"unet16", 16, 256, 16, 16, 256, 3, 3, 1, 1, 1, 1, 1},
        {"unet16cat", 16, 512, 16, 16, 256, 3, 3, 1, 1, 1, 1, 1},
        {"unet16sc", 16, 512, 16, 16, 256, 1, 1, 1, 0, 0, 0, 0},
        {"unet8", 16, 256, 8, 8, 256, 3, 3, 1, 1, 1, 1, 1},
        {"unet4", 16, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1},
        {"unet4cat", 16, 512, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1},
        {"unet_out", 16, 128, 32, 32, 3, 3, 3, 1, 1, 1, 1, 1},
        {"inc_stem1", 8, 3, 299, 299, 32, 3, 3, 2, 0, 0, 0, 0},
        {"inc_stem2", 8, 32, 149, 149, 32, 3, 3, 1, 0, 0, 0, 0},
        {"inc_stem3", 8, 32, 147, 147, 64, 3, 3, 1, 1, 1, 1, 1},
        {"inc35_1x1", 8, 288, 35, 35, 64, 1, 1, 1, 0, 0, 0, 0},
        {"inc35_3x3", 8, 64, 35, 35, 96, 3, 3, 1, 1, 1, 1, 1},
        {"inc35_5x5", 8, 48, 35, 35, 64, 5, 5, 1, 2, 2, 2, 2},
        {"inc35_s2", 8, 288, 35, 35, 384, 3, 3, 2, 0, 0, 0, 0},
        {"inc17_1x1", 8, 768, 17, 17, 192, 1, 1, 1, 0, 0, 0, 0},
        {"inc17_1x7", 8, 160, 17, 17, 160, 1, 7, 1, 0, 3, 0, 3},
        {"inc17_7x1", 8, 160, 17, 17, 192, 7, 1, 1, 3, 0, 3, 0},
        {"inc8_1x1", 8, 1280, 8, 8, 320, 1, 1, 1, 0, 0, 0, 0},
        {"inc8_2048", 8, 2048, 8, 8, 448, 1, 1, 1, 0, 0, 0, 0},
        {"inc8_3x3", 8, 448, 8, 8, 384, 3, 3, 1, 1, 1, 1, 1},
        {"inc8_1x3", 8, 384, 8, 8, 384, 1, 3, 1, 0, 1, 0, 1},
    };
    int c;
    while ((c = getopt(argc, argv, "ct:w")) != -1) {
        long v;
        if (c == 'c') {
            cputime = 1;
            continue;
        }
        if (c == 'w') {
            nn_conv_winograd(0);
            continue;
        }
        if (c != 't' || util_parse_long(optarg, 1, 256, &v) == -1) {
            fprintf(stderr, "usage: bench_nn [-cw] [-t threads] [filter]\n");
            return 2;
        }
        threads = (int)v;
    }
    if (optind < argc)
        filter = argv[optind];
    const char *cp = getenv("BENCH_NN_OUT");
    copy = fopen(cp != NULL ? cp : "/tmp/bench_nn.txt", "w");
    nn_blas_setup(argv, 0);
    nn_set_threads(threads);
    emit("# bench_nn: %d threads, OpenBLAS %s\n", threads, nn_blas_corename());
    emit("peak fma_gflops=%.1f triad_gbs=%.1f\n", fma_peak(), triad_peak());
    if (!skip("sgemm")) {
        static const int sq[][3] = {{1024, 1024, 1024}, {256, 16384, 2304}, {128, 16384, 1152}};
        for (int i = 0; i < 3; i++)
            emit("sgemm M=%d N=%d K=%d gflops=%.1f\n", sq[i][0], sq[i][1], sq[i][2],
                   sgemm_rate(sq[i][0], sq[i][1], sq[i][2]));
    }
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        bench_conv(&convs[i], 0);
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        if (convs[i].tag[0] == 'u') /* backward: the trainer's shapes */
            bench_conv(&convs[i], 1);
    for (int bw = 0; bw < 2; bw++) {
        bench_convt(64, 32, 4, 32, bw);
        bench_convt(64, 32, 8, 32, bw);
        bench_convt(64, 32, 16, 3, bw);
    }
    bench_linear(16, 128, 512);
    bench_linear(64, 512, 128);
    bench_linear(8, 2048, 1008);
    bench_elementwise();
    if (copy != NULL && fclose(copy) != 0)
        perror("bench_nn: copy of the results");
    return 0;
}
