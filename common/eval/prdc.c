/* Precision/recall and density/coverage on feature sets; see prdc.h.

   Why the two-level distance: a float32 GEMM gives |x|^2 + |y|^2 - 2 x.y at full BLAS speed,
   but its round-off (up to ~d * eps * (|x|^2 + |y|^2)) can flip a comparison with a radius,
   and it is not symmetric, so identical sets would not give density exactly 1. Every
   comparison closer than that bound is redone with the direct float64 sum, which is exact
   enough to decide and equal for (i, j) and (j, i). The tile shapes are fixed, but since
   every decision is the exact one, neither they nor the thread count can change a result. */
#include "eval/prdc.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "util/util.h"

#define PRDC_RB 256    /* rows per tile (one OpenMP work item) */
#define PRDC_CB 1024   /* columns per tile */
#define PRDC_EXTRA 8   /* candidates kept past k+1, so a near tie rarely needs a full row */

/* direct float64 squared distance, in k order: symmetric in a and b */
static double dist2_exact(const float *a, const float *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = (double)a[k] - (double)b[k];
        s += t * t;
    }
    return s;
}

static void norms(double *nrm, const float *x, int64_t n, int d)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++)
            s += (double)x[i * d + k] * x[i * d + k];
        nrm[i] = s;
    }
}

/* Bound on |GEMM d^2 - exact d^2| for rows with squared norms ni, nj: the float32 dot
   product errs by at most d*u*|x||y| <= d*u*(ni+nj)/2 in any summation order (u =
   FLT_EPSILON/2); this is twice that, plus slack for the float64 terms. */
static double tau(int d, double ni, double nj)
{
    return (d + 4) * (double)FLT_EPSILON * (ni + nj);
}

/* insert (v, j) into the ascending list (vals, idx) of at most cap entries */
static void list_insert(double *vals, int64_t *idx, int *count, int cap, double v, int64_t j)
{
    int c = *count;
    if (c == cap) {
        if (!(v < vals[cap - 1]))
            return;
        c--;
    }
    int p = c;
    while (p > 0 && vals[p - 1] > v) {
        vals[p] = vals[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    vals[p] = v;
    idx[p] = j;
    *count = c + 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The exact (k+1)-th smallest squared distance of row i (self included = k-th neighbour).
   vals/idx: the row's GEMM candidates, count of them (all n when full). The k+1 smallest
   GEMM values are true within a+tau, so the true (k+1)-th is <= a+tau, and every point at or
   under it has a GEMM value <= a+2tau: those are the candidates. A list too short for that
   means a full exact scan of the row (scratch: n doubles). */
static double kth_exact(const float *x, int64_t n, int d, int64_t i, int k, const double *vals,
                        const int64_t *idx, int count, int full, double t, double *cand,
                        double *scratch)
{
    double thr = vals[k] + 2 * t;
    int m = 0;
    if (!full && vals[count - 1] <= thr) {
        for (int64_t j = 0; j < n; j++)
            scratch[j] = dist2_exact(x + i * d, x + j * d, d);
        qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
        return scratch[k];
    }
    for (int c = 0; c < count && vals[c] <= thr; c++)
        cand[m++] = dist2_exact(x + i * d, x + idx[c] * d, d);
    qsort(cand, (size_t)m, sizeof *cand, cmp_double);
    return cand[k];
}

/* squared radii r2[q] (n) for each of the nk neighbourhood sizes ks[q] */
static int radii2(double **r2, const int *ks, int nk, const float *x, int64_t n, int d,
                  const double *nrm, char *msg, size_t msglen)
{
    int kmax = 0, fail = 0;
    for (int q = 0; q < nk; q++)
        kmax = ks[q] > kmax ? ks[q] : kmax;
    int64_t cap64 = kmax + 1 + PRDC_EXTRA;
    int cap = (int)(cap64 < n ? cap64 : n), full = cap == n;
    double nmax = 0;
    for (int64_t i = 0; i < n; i++)
        nmax = nrm[i] > nmax ? nrm[i] : nmax;
    int64_t nblk = (n + PRDC_RB - 1) / PRDC_RB;

    #pragma omp parallel
    {
        float *g = malloc(sizeof(float) * PRDC_RB * PRDC_CB);
        double *vals = malloc(sizeof(double) * PRDC_RB * cap);
        int64_t *idx = malloc(sizeof(int64_t) * PRDC_RB * cap);
        int *count = malloc(sizeof(int) * PRDC_RB);
        double *cand = malloc(sizeof(double) * cap);
        double *scratch = NULL;
        if (g == NULL || vals == NULL || idx == NULL || count == NULL || cand == NULL) {
            #pragma omp atomic write
            fail = 1;
        }
        #pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < nblk; b++) {
            if (g == NULL || vals == NULL || idx == NULL || count == NULL || cand == NULL)
                continue;
            int64_t i0 = b * PRDC_RB;
            int rows = (int)(n - i0 < PRDC_RB ? n - i0 : PRDC_RB);
            memset(count, 0, sizeof(int) * PRDC_RB);
            for (int64_t j0 = 0; j0 < n; j0 += PRDC_CB) {
                int cols = (int)(n - j0 < PRDC_CB ? n - j0 : PRDC_CB);
                nn_sgemm_serial(0, 1, rows, cols, d, 1.0f, x + i0 * d, d, x + j0 * d, d,
                                0.0f, g, PRDC_CB);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) {
                        double a = nrm[i0 + r] + nrm[j0 + c] - 2.0 * g[(size_t)r * PRDC_CB + c];
                        list_insert(vals + (size_t)r * cap, idx + (size_t)r * cap, &count[r],
                                    cap, a, j0 + c);
                    }
            }
            for (int r = 0; r < rows; r++) {
                int64_t i = i0 + r;
                double t = tau(d, nrm[i], nmax);
                for (int q = 0; q < nk; q++) {
                    if (!full && vals[(size_t)r * cap + cap - 1] <= vals[(size_t)r * cap + ks[q]] + 2 * t &&
                        scratch == NULL) {
                        scratch = malloc(sizeof(double) * n);
                        if (scratch == NULL) {
                            #pragma omp atomic write
                            fail = 1;
                            continue;
                        }
                    }
                    r2[q][i] = kth_exact(x, n, d, i, ks[q], vals + (size_t)r * cap,
                                         idx + (size_t)r * cap, count[r], full, t, cand, scratch);
                }
            }
        }
        free(g);
        free(vals);
        free(idx);
        free(count);
        free(cand);
        free(scratch);
    }
    if (fail) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    return 0;
}

/* d <= r (le) or d < r with d^2 from the GEMM (a, error bound t) and r^2 = r2 exact; the exact
   distance is computed once per pair into *e (NAN until then). The margin 4 eps r2 keeps a
   GEMM decision clear of sqrt rounding two squares to the same distance. */
static int decide(double a, double t, double r2, int le, const float *x, const float *y, int d,
                  double *e)
{
    double m = t + 4 * DBL_EPSILON * r2;
    if (a + m < r2)
        return 1;
    if (a - m > r2)
        return 0;
    if (isnan(*e))
        *e = sqrt(dist2_exact(x, y, d));
    double r = sqrt(r2);
    return le ? *e <= r : *e < r;
}

struct cross {
    const float *real, *gen;
    int64_t nr, ng;
    int d, k_pr, k_dc;
    const double *nr_real, *nr_gen;
    const double *rp2, *rg2, *rd2;   /* real k_pr, gen k_pr, real k_dc squared radii */
    unsigned char *pflag, *rflag, *cflag;
    int64_t dens;
};

static void cross_tile(struct cross *s, const float *g, int64_t i0, int rows, int64_t j0,
                       int cols, int64_t *dens)
{
    int d = s->d;
    for (int r = 0; r < rows; r++) {
        int64_t i = i0 + r;
        const float *xi = s->real + i * d;
        for (int c = 0; c < cols; c++) {
            int64_t j = j0 + c;
            const float *yj = s->gen + j * d;
            double a = s->nr_real[i] + s->nr_gen[j] - 2.0 * g[(size_t)r * PRDC_CB + c];
            double t = tau(d, s->nr_real[i], s->nr_gen[j]), e = NAN;
            if (s->k_pr) {
                unsigned char p;
                #pragma omp atomic read
                p = s->pflag[j];
                if (!p && decide(a, t, s->rp2[i], 1, xi, yj, d, &e)) {
                    #pragma omp atomic write
                    s->pflag[j] = 1;
                }
                if (!s->rflag[i] && decide(a, t, s->rg2[j], 1, xi, yj, d, &e))
                    s->rflag[i] = 1;
            }
            if (s->k_dc && decide(a, t, s->rd2[i], 0, xi, yj, d, &e)) {
                (*dens)++;
                s->cflag[i] = 1;
            }
        }
    }
}

static int cross_pass(struct cross *s, char *msg, size_t msglen)
{
    int64_t nblk = (s->nr + PRDC_RB - 1) / PRDC_RB, dens = 0;
    int fail = 0;
    #pragma omp parallel reduction(+ : dens)
    {
        float *g = malloc(sizeof(float) * PRDC_RB * PRDC_CB);
        if (g == NULL) {
            #pragma omp atomic write
            fail = 1;
        }
        #pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < nblk; b++) {
            if (g == NULL)
                continue;
            int64_t i0 = b * PRDC_RB;
            int rows = (int)(s->nr - i0 < PRDC_RB ? s->nr - i0 : PRDC_RB);
            for (int64_t j0 = 0; j0 < s->ng; j0 += PRDC_CB) {
                int cols = (int)(s->ng - j0 < PRDC_CB ? s->ng - j0 : PRDC_CB);
                nn_sgemm_serial(0, 1, rows, cols, s->d, 1.0f, s->real + i0 * s->d, s->d,
                                s->gen + j0 * s->d, s->d, 0.0f, g, PRDC_CB);
                cross_tile(s, g, i0, rows, j0, cols, &dens);
            }
        }
        free(g);
    }
    s->dens = dens;
    if (fail) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    return 0;
}

static int64_t nonfinite_row(const float *x, int64_t n, int d)
{
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < d; k++)
            if (!isfinite(x[i * d + k]))
                return i;
    return -1;
}

int prdc_radii(double *radius, const float *x, int64_t n, int d, int k, char *msg,
               size_t msglen)
{
    if (k < 1 || n < k + 1) {
        snprintf(msg, msglen, "%lld samples: the k=%d neighbourhood needs at least %d",
                 (long long)n, k, k + 1);
        return -1;
    }
    double *nrm = malloc(sizeof(double) * n);
    if (nrm == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    norms(nrm, x, n, d);
    int rc = radii2(&radius, &k, 1, x, n, d, nrm, msg, msglen);
    for (int64_t i = 0; rc == 0 && i < n; i++)
        radius[i] = sqrt(radius[i]);
    free(nrm);
    return rc;
}

static int check(const char *what, const float *x, int64_t n, int d, int k, char *msg,
                 size_t msglen)
{
    int64_t bad = nonfinite_row(x, n, d);
    if (bad >= 0) {
        snprintf(msg, msglen, "%s features: row %lld has a NaN or infinite value", what,
                 (long long)bad);
        return -1;
    }
    if (n < k + 1) {
        snprintf(msg, msglen, "%s features: %lld samples: k=%d needs at least %d", what,
                 (long long)n, k, k + 1);
        return -1;
    }
    return 0;
}

int prdc_compute(struct prdc_result *res, const float *real, int64_t n_real, const float *gen,
                 int64_t n_gen, int d, int k_pr, int k_dc, char *msg, size_t msglen)
{
    memset(res, 0, sizeof *res);
    int kr = k_pr > k_dc ? k_pr : k_dc;
    if (d < 1 || k_pr < 0 || k_dc < 0 || kr == 0) {
        snprintf(msg, msglen, "nothing to compute (d=%d, k_pr=%d, k_dc=%d)", d, k_pr, k_dc);
        return -1;
    }
    if (check("real", real, n_real, d, kr, msg, msglen) == -1 ||
        check("generated", gen, n_gen, d, k_pr, msg, msglen) == -1)
        return -1;
    int rc = -1;
    double *nrr = malloc(sizeof(double) * n_real), *nrg = malloc(sizeof(double) * n_gen);
    double *rp2 = malloc(sizeof(double) * n_real), *rd2 = malloc(sizeof(double) * n_real);
    double *rg2 = malloc(sizeof(double) * n_gen);
    unsigned char *pflag = calloc(n_gen, 1), *rflag = calloc(n_real, 1),
                  *cflag = calloc(n_real, 1);
    if (!nrr || !nrg || !rp2 || !rd2 || !rg2 || !pflag || !rflag || !cflag) {
        snprintf(msg, msglen, "out of memory");
        goto out;
    }
    norms(nrr, real, n_real, d);
    norms(nrg, gen, n_gen, d);
    double *rr[2];
    int ks[2], nk = 0;
    if (k_pr) {
        rr[nk] = rp2;
        ks[nk++] = k_pr;
    }
    if (k_dc) {
        rr[nk] = rd2;
        ks[nk++] = k_dc;
    }
    if (radii2(rr, ks, nk, real, n_real, d, nrr, msg, msglen) == -1)
        goto out;
    if (k_pr && radii2((double *[]){rg2}, &k_pr, 1, gen, n_gen, d, nrg, msg, msglen) == -1)
        goto out;
    struct cross s = {real, gen, n_real, n_gen, d, k_pr, k_dc, nrr, nrg, rp2, rg2, rd2,
                      pflag, rflag, cflag, 0};
    if (cross_pass(&s, msg, msglen) == -1)
        goto out;
    int64_t np = 0, nrc = 0, nc = 0;
    for (int64_t j = 0; j < n_gen; j++)
        np += pflag[j];
    for (int64_t i = 0; i < n_real; i++) {
        nrc += rflag[i];
        nc += cflag[i];
    }
    if (k_pr) {
        res->precision = (double)np / n_gen;
        res->recall = (double)nrc / n_real;
        double sum = res->precision + res->recall;
        res->f_score = 2 * res->precision * res->recall / (sum > 1e-5 ? sum : 1e-5);
    }
    if (k_dc) {
        res->density = (double)s.dens / ((double)k_dc * n_gen);
        res->coverage = (double)nc / n_real;
    }
    rc = 0;
out:
    free(nrr);
    free(nrg);
    free(rp2);
    free(rd2);
    free(rg2);
    free(pflag);
    free(rflag);
    free(cflag);
    return rc;
}
