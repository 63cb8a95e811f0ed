/* nn core plumbing: OpenBLAS kernel check and re-exec, thread counts, the SGEMM entry, linear.

   Threading model: OpenBLAS always runs single-threaded (openblas_set_num_threads(1)); all
   parallelism is OpenMP. Big GEMMs are cut into SGEMM_PANELS column (or row) panels whose
   bounds depend only on the shape, and OpenMP threads take whole panels; the conv layers give
   threads whole groups of image slots. OpenBLAS's own spinning pthreads therefore never
   compete with OpenMP threads for the cores.

   Determinism: OpenBLAS 0.3.21's Haswell SGEMM kernel (every AVX2-only CPU, or
   OPENBLAS_CORETYPE=Haswell) sums an element of C in an order that depends on where the
   element sits in the call: some micro-kernel widths split the k loop over two interleaved
   accumulators, the first and last column blocks and the first rows of a 12-row block run
   other variants, and the n partition changes past the first GEMM_P chunk. So a call's shape
   and each element's place in it must not depend on the thread count or the batch: panels
   here are fixed by the shape, and the models place each image by its index in the whole run
   (see nn_wino4.c, inception.h, vae.h). The SkylakeX and Cooperlake kernels are uniform
   across lanes except on tiny matrices; the rule covers them too.

   Measured on the conv GEMM shapes (2 threads, on a shared and busy machine, so roughly):
   the panel split at least matched OpenBLAS's threads everywhere, e.g. 256x1024x2304
   117 vs 72 GFLOP/s, 128x1024x1152 147 vs 36, 256x256x2304 50 vs 29. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"

/* provided by OpenBLAS, not declared in every cblas.h */
char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

static int nn_threads; /* 0 until nn_set_threads */

/* ---- OpenBLAS kernel check ---- */

static int core_is(const char *core, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(core, *list) == 0)
            return 1;
    return 0;
}

int nn_blas_decide(const char *core, int avx512, int avx2, const char *user, int reexeced,
                   const char **want)
{
    static const char *const k512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const k256[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                       "SapphireRapids", NULL};
    *want = NULL;
    if (avx512 && !core_is(core, k512))
        *want = "SkylakeX";
    else if (!avx512 && avx2 && !core_is(core, k256))
        *want = "Haswell";
    if (*want == NULL)
        return NN_BLAS_OK;
    if (user != NULL && user[0] != '\0')
        return NN_BLAS_USER;
    if (reexeced)
        return NN_BLAS_LOOP;
    return NN_BLAS_REEXEC;
}

const char *nn_blas_corename(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

void nn_cpu_features(int *avx512, int *avx2)
{
    __builtin_cpu_init();
    /* SkylakeX kernels use F, BW, DQ and VL */
    *avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    *avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define NN_REEXEC_MARK "NN_BLAS_REEXECED"
/* set with OPENBLAS_CORETYPE when this code chose the kernel: the one OpenBLAS had picked */
#define NN_PICKED_MARK "NN_BLAS_PICKED"

/* Re-executes the program once with the environment set (the caller has set it). */
static void reexec(char **argv, int verbose)
{
    if (argv == NULL || argv[0] == NULL)
        return;
    setenv(NN_REEXEC_MARK, "1", 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    if (verbose)
        fprintf(stderr, "nn: re-exec failed; carrying on\n");
}

void nn_blas_setup(char **argv, int verbose)
{
    int avx512, avx2;
    const char *core = nn_blas_corename(), *want, *user = getenv("OPENBLAS_CORETYPE");
    const char *mark = getenv(NN_REEXEC_MARK), *picked = getenv(NN_PICKED_MARK);
    int reexeced = mark != NULL && strcmp(mark, "1") == 0, again = 0;
    const char *cpu;

    /* whose choice the kernel is: a re-exec's OPENBLAS_CORETYPE is ours, not the user's */
    if (!reexeced)
        picked = NULL;
    if (picked != NULL)
        user = NULL;

    nn_cpu_features(&avx512, &avx2);
    cpu = avx512 ? "AVX-512" : avx2 ? "AVX2" : "no AVX2";
    /* the kernel line is said once, by the process that does the work (after any re-exec) */
    char line[256] = "";
    switch (nn_blas_decide(core, avx512, avx2, user, reexeced, &want)) {
    case NN_BLAS_OK:
        if (picked != NULL)
            snprintf(line, sizeof line, "nn: OpenBLAS kernel %s, set by this tool (OpenBLAS "
                     "picked %s; CPU has %s)\n", core, picked, cpu);
        else if (user != NULL && user[0] != '\0')
            snprintf(line, sizeof line, "nn: OpenBLAS kernel %s, as OPENBLAS_CORETYPE=%s set by "
                     "the user asks (CPU has %s)\n", core, user, cpu);
        else
            snprintf(line, sizeof line, "nn: OpenBLAS kernel %s, OpenBLAS's own choice (CPU has "
                     "%s)\n", core, cpu);
        break;
    case NN_BLAS_USER:
        snprintf(line, sizeof line, "nn: OpenBLAS kernel %s: OPENBLAS_CORETYPE=%s set by the "
                 "user, not overridden (CPU has %s, %s would be faster)\n", core, user, cpu, want);
        break;
    case NN_BLAS_LOOP:
        snprintf(line, sizeof line, "nn: OpenBLAS kernel %s: re-exec with OPENBLAS_CORETYPE=%s "
                 "did not help; running slow\n", core, want);
        break;
    case NN_BLAS_REEXEC:
        if (verbose)
            fprintf(stderr, "nn: OpenBLAS picked %s on a CPU with %s; re-executing with "
                            "OPENBLAS_CORETYPE=%s\n", core, cpu, want);
        snprintf(line, sizeof line, "nn: OpenBLAS kernel %s (re-exec failed)\n", core);
        setenv("OPENBLAS_CORETYPE", want, 1);
        setenv(NN_PICKED_MARK, core, 1);
        again = 1;
        break;
    }
    /* libgomp reads OMP_WAIT_POLICY once, at start-up. Its default spins waiting threads for a
       long while; on 2 cores shared with another process (the other end of a pipe, a second
       job) the spinning thread steals the core the work needs: measured 2-5x slower training
       than passive waiting, which costs little when the machine is idle. */
    if (!reexeced && getenv("OMP_WAIT_POLICY") == NULL) {
        if (verbose)
            fprintf(stderr, "nn: re-executing with OMP_WAIT_POLICY=passive\n");
        setenv("OMP_WAIT_POLICY", "passive", 1);
        again = 1;
    }
    if (again) {
        reexec(argv, verbose);
        if (want != NULL && user == NULL)
            unsetenv("OPENBLAS_CORETYPE");
    }
    if (verbose)
        fputs(line, stderr);
    /* do not leak the markers into child processes a tool may start */
    unsetenv(NN_REEXEC_MARK);
    unsetenv(NN_PICKED_MARK);
}

/* ---- threads ---- */

void nn_set_threads(int n)
{
    if (n < 1)
        n = 1;
    nn_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
}

int nn_get_threads(void)
{
    if (nn_threads == 0)
        nn_set_threads(omp_get_max_threads());
    return nn_threads;
}

/* ---- SGEMM ---- */

static void sgemm1(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_sgemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    sgemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* C is cut into panels that depend on the shape alone, never on the thread count: under
   OpenBLAS's Haswell kernels an element's sum depends on the shape of the call it is computed
   in and on its place there (the micro-kernels of some widths run the k loop in two
   interleaved accumulators, and a call's first and last column blocks take other widths), so
   one panel per thread would make results depend on --threads. Big products are cut into
   SGEMM_PANELS panels of whole columns (or rows when N is small), multiples of 16, that the
   threads take in turn; on one thread, or inside a parallel region, the same panels run one
   after the other. */
#ifndef SGEMM_PANELS
#define SGEMM_PANELS 4
#endif

static int sgemm_split(int M, int N, int K)
{
    return 2.0 * M * N * K >= 4e6 && (N >= 32 || M >= 32);
}

/* panel p of SGEMM_PANELS of C = alpha op(A) op(B) + beta C */
static void sgemm_panel(int p, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (N >= M || N >= 256) {
        int step = ((N + SGEMM_PANELS - 1) / SGEMM_PANELS + 15) / 16 * 16;
        int j0 = p * step, j1 = j0 + step < N ? j0 + step : N;
        if (j0 < j1) {
            const float *Bp = tb ? B + (size_t)j0 * ldb : B + j0;
            sgemm1(ta, tb, M, j1 - j0, K, alpha, A, lda, Bp, ldb, beta, C + j0, ldc);
        }
    } else {
        int step = ((M + SGEMM_PANELS - 1) / SGEMM_PANELS + 15) / 16 * 16;
        int i0 = p * step, i1 = i0 + step < M ? i0 + step : M;
        if (i0 < i1) {
            const float *Ap = ta ? A + i0 : A + (size_t)i0 * lda;
            sgemm1(ta, tb, i1 - i0, N, K, alpha, Ap, lda, B, ldb, beta, C + (size_t)i0 * ldc,
                   ldc);
        }
    }
}

void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    int nt = nn_get_threads();

    if (!sgemm_split(M, N, K)) {
        sgemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    nt = omp_in_parallel() ? 1 : nt < SGEMM_PANELS ? nt : SGEMM_PANELS;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int p = 0; p < SGEMM_PANELS; p++)
        sgemm_panel(p, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- linear ---- */

void nn_linear_forward(float *out, const float *in, const float *w, const float *b,
                       int N, int IN, int OUT)
{
    if (b != NULL) {
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OUT, b, sizeof(float) * OUT);
    }
    /* out (N,OUT) = in (N,IN) w^T (IN,OUT) */
    nn_sgemm(0, 1, N, OUT, IN, 1.0f, in, IN, w, IN, b != NULL ? 1.0f : 0.0f, out, OUT);
}

/* The two GEMMs share one parallel region: on small layers waking the other thread costs as
   much as a GEMM. */
void nn_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int N, int IN, int OUT)
{
    int nt = nn_get_threads();
    if (din != NULL && dw != NULL && sgemm_split(N, IN, OUT) && sgemm_split(OUT, IN, N)) {
        nt = omp_in_parallel() ? 1 : nt < 2 * SGEMM_PANELS ? nt : 2 * SGEMM_PANELS;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
        for (int p = 0; p < 2 * SGEMM_PANELS; p++) {
            if (p < SGEMM_PANELS)
                sgemm_panel(p, 0, 0, N, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, din, IN);
            else
                sgemm_panel(p - SGEMM_PANELS, 1, 0, OUT, IN, N, 1.0f, dout, OUT, in, IN, 1.0f,
                            dw, IN);
        }
    } else {
        if (din != NULL) /* din (N,IN) += dout (N,OUT) w (OUT,IN) */
            nn_sgemm(0, 0, N, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, din, IN);
        if (dw != NULL) /* dw (OUT,IN) += dout^T (OUT,N) in (N,IN) */
            nn_sgemm(1, 0, OUT, IN, N, 1.0f, dout, OUT, in, IN, 1.0f, dw, IN);
    }
    if (db != NULL) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++)
                db[o] += dout[(size_t)n * OUT + o];
    }
}
