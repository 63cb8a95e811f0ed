/* The metrics: feature statistics (mean and covariance, saved as pytorch-fid's .npz), the
   Frechet distance, the Inception Score and KID. Their inputs are read in metrics_input.c. */
#include "eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"
#include "nn/nn.h"
#include "util/rng.h"
#include "util/util.h"

/* Fortran BLAS/LAPACK (column-major). Our matrices are symmetric or handled as transposes. */
void dsyrk_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha,
            const double *a, const int *lda, const double *beta, double *c, const int *ldc);
void dgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
            const double *alpha, const double *a, const int *lda, const double *b, const int *ldb,
            const double *beta, double *c, const int *ldc);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info);

/* ---- statistics ---- */

void metrics_stats_init(struct metrics_stats *s, int d)
{
    s->d = d;
    s->n = 0;
    s->sum = xcalloc(d, sizeof(double));
    s->sxx = xcalloc((size_t)d * d, sizeof(double));
    s->chunk = xmalloc((size_t)METRICS_CHUNK * d * sizeof(double));
    s->n_chunk = 0;
}

static void stats_flush(struct metrics_stats *s)
{
    int d = s->d, k = s->n_chunk;
    double one = 1.0;
    if (k == 0)
        return;
    /* chunk is (k,d) row-major = (d,k) column-major: sxx += chunk^T chunk */
    dsyrk_("U", "N", &d, &k, &one, s->chunk, &d, &one, s->sxx, &d);
    s->n_chunk = 0;
}

void metrics_stats_add(struct metrics_stats *s, const float *x, int64_t n)
{
    int d = s->d;
    for (int64_t i = 0; i < n; i++) {
        double *row = s->chunk + (size_t)s->n_chunk * d;
        for (int j = 0; j < d; j++) {
            row[j] = x[i * d + j];
            s->sum[j] += row[j];
        }
        s->n++;
        if (++s->n_chunk == METRICS_CHUNK)
            stats_flush(s);
    }
}

int metrics_stats_get(struct metrics_stats *s, double *mu, double *sigma, char *msg,
                      size_t msglen)
{
    int d = s->d;
    double n = (double)s->n;
    if (s->n < 2) {
        snprintf(msg, msglen, "need at least 2 samples for a covariance, got %lld",
                 (long long)s->n);
        return -1;
    }
    stats_flush(s);
    for (int j = 0; j < d; j++)
        mu[j] = s->sum[j] / n;
    for (int j = 0; j < d; j++)
        for (int i = 0; i <= j; i++) {
            double c = (s->sxx[i + (size_t)j * d] - n * mu[i] * mu[j]) / (n - 1);
            sigma[(size_t)i * d + j] = c;
            sigma[(size_t)j * d + i] = c;
        }
    return 0;
}

void metrics_stats_free(struct metrics_stats *s)
{
    free(s->sum);
    free(s->sxx);
    free(s->chunk);
    memset(s, 0, sizeof *s);
}

int metrics_stats_save(const char *path, const double *mu, const double *sigma, int d,
                       char *msg, size_t msglen)
{
    static const char *const names[2] = { "mu", "sigma" };
    struct npy a[2];
    a[0] = (struct npy){ NPY_F64, 1, { d }, (void *)mu };
    a[1] = (struct npy){ NPY_F64, 2, { d, d }, (void *)sigma };
    return npz_write(path, names, a, 2, 1, msg, msglen);
}

static double *to_f64(const struct npy *t)
{
    int64_t n = npy_count(t);
    double *p = xmalloc((size_t)(n ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        p[i] = t->dtype == NPY_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
    return p;
}

int metrics_stats_load(const char *path, double **mu, double **sigma, int *d, char *msg,
                       size_t msglen)
{
    struct npy m, s;
    if (npz_read(path, "mu", &m, msg, msglen) == -1)
        return -1;
    if (npz_read(path, "sigma", &s, msg, msglen) == -1) {
        npy_free(&m);
        return -1;
    }
    int ok = (m.dtype == NPY_F64 || m.dtype == NPY_F32) && (s.dtype == NPY_F64 ||
             s.dtype == NPY_F32) && m.ndim == 1 && m.shape[0] >= 1 && m.shape[0] <= 65536 &&
             s.ndim == 2 && s.shape[0] == m.shape[0] && s.shape[1] == m.shape[0];
    if (!ok)
        snprintf(msg, msglen, "statistics: expected float mu (d,) and sigma (d,d), got %s mu "
                 "(%lld%s) and %s sigma (%lld,%lld%s)", npy_dtype_name(m.dtype),
                 (long long)m.shape[0], m.ndim == 1 ? "," : ",...", npy_dtype_name(s.dtype),
                 (long long)s.shape[0], s.ndim >= 2 ? (long long)s.shape[1] : 0LL,
                 s.ndim == 2 ? "" : ",...");
    else {
        *d = (int)m.shape[0];
        *mu = to_f64(&m);
        *sigma = to_f64(&s);
    }
    npy_free(&m);
    npy_free(&s);
    return ok ? 0 : -1;
}

/* ---- Frechet distance ---- */

/* eigenvalues of the symmetric a (n,n) into w; vectors: a is overwritten by them (column j of
   the column-major result = eigenvector j) */
static int syevd(double *a, double *w, int n, int vectors, char *msg, size_t msglen)
{
    int info = 0, lwork = -1, liwork = -1, iw;
    double wq;
    const char *jobz = vectors ? "V" : "N";
    dsyevd_(jobz, "U", &n, a, &n, w, &wq, &lwork, &iw, &liwork, &info);
    if (info != 0) {
        snprintf(msg, msglen, "dsyevd workspace query failed (info %d)", info);
        return -1;
    }
    lwork = (int)wq + 1;
    liwork = iw;
    double *work = xmalloc((size_t)lwork * sizeof(double));
    int *iwork = xmalloc((size_t)(liwork > 0 ? liwork : 1) * sizeof(int));
    dsyevd_(jobz, "U", &n, a, &n, w, work, &lwork, iwork, &liwork, &info);
    free(work);
    free(iwork);
    if (info != 0) {
        snprintf(msg, msglen, "dsyevd failed to converge (info %d)", info);
        return -1;
    }
    return 0;
}

/* The eigen-basis of the symmetric PSD a (d,d): b (d,r) column-major = U_r diag(sqrt(e_r))
   over the r eigenvalues above d * eps * max(e); the rest are round-off (a covariance of
   N < d samples has d-N+1 of them) and count as 0. */
static int psd_basis(double *b, int *r, const double *a, double *e, int d, char *msg,
                     size_t msglen)
{
    double emax = 0;
    memcpy(b, a, (size_t)d * d * sizeof(double));
    if (syevd(b, e, d, 1, msg, msglen) == -1)
        return -1;
    for (int j = 0; j < d; j++)
        emax = e[j] > emax ? e[j] : emax;
    double tol = d * 2.220446049250313e-16 * emax;
    int k = 0;
    for (int j = 0; j < d; j++) {
        if (!(e[j] > tol))
            continue;
        double s = sqrt(e[j]);
        for (int i = 0; i < d; i++)
            b[(size_t)k * d + i] = b[(size_t)j * d + i] * s;
        k++;
    }
    *r = k;
    return 0;
}

int metrics_frechet(double *fid, const double *mu1, const double *sigma1, const double *mu2,
                    const double *sigma2, int d, char *msg, size_t msglen)
{
    size_t dd = (size_t)d * d;
    double *b1 = xmalloc(dd * sizeof(double)), *b2 = xmalloc(dd * sizeof(double));
    double *t = xmalloc(dd * sizeof(double)), *e = xmalloc((size_t)d * sizeof(double));
    double one = 1.0, zero = 0.0, diff = 0, tr1 = 0, tr2 = 0, trs = 0;
    int rc = -1, r1, r2 = d + 1;
    for (int i = 0; i < d; i++) {
        double x = mu1[i] - mu2[i];
        diff += x * x;
        tr1 += sigma1[(size_t)i * d + i];
        tr2 += sigma2[(size_t)i * d + i];
    }
    if (!isfinite(diff) || !isfinite(tr1) || !isfinite(tr2)) {
        snprintf(msg, msglen, "statistics are not finite");
        goto out;
    }
    /* With S1 = U L U^T, S1 S2 has the nonzero eigenvalues of K = B^T S2 B, B = U L^(1/2)
       (r x r, symmetric PSD). Taking the basis from the covariance of lower rank keeps K free
       of null directions, whose round-off eigenvalues would be square-rooted into a bias. */
    if (psd_basis(b1, &r1, sigma1, e, d, msg, msglen) == -1)
        goto out;
    if (r1 == d && psd_basis(b2, &r2, sigma2, e, d, msg, msglen) == -1)
        goto out;
    const double *b = r2 < r1 ? b2 : b1, *other = r2 < r1 ? sigma1 : sigma2;
    int r = r2 < r1 ? r2 : r1;
    if (r > 0) {
        double *k = r2 < r1 ? b1 : b2;
        dgemm_("N", "N", &d, &r, &d, &one, other, &d, b, &d, &zero, t, &d);
        dgemm_("T", "N", &r, &r, &d, &one, b, &d, t, &d, &zero, k, &r);
        for (int j = 0; j < r; j++)
            for (int i = 0; i < j; i++) {
                double m = 0.5 * (k[(size_t)j * r + i] + k[(size_t)i * r + j]);
                k[(size_t)j * r + i] = k[(size_t)i * r + j] = m;
            }
        if (syevd(k, e, r, 0, msg, msglen) == -1)
            goto out;
        for (int i = 0; i < r; i++)
            trs += e[i] > 0 ? sqrt(e[i]) : 0;
    }
    *fid = diff + tr1 + tr2 - 2 * trs;
    rc = 0;
out:
    free(b1);
    free(b2);
    free(t);
    free(e);
    return rc;
}

/* ---- Inception Score ---- */

/* row of C logits -> log-softmax in float64 */
static void log_softmax(double *lp, const float *x, int C)
{
    double mx = -INFINITY, s = 0;
    for (int c = 0; c < C; c++)
        mx = x[c] > mx ? x[c] : mx;
    for (int c = 0; c < C; c++)
        s += exp((double)x[c] - mx);
    double ls = log(s);
    for (int c = 0; c < C; c++)
        lp[c] = (double)x[c] - mx - ls;
}

static void mean_std(double *mean, double *std, const double *v, int n)
{
    double m = 0, s = 0;
    for (int i = 0; i < n; i++)
        m += v[i];
    m /= n;
    for (int i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    *mean = m;
    *std = sqrt(s / n);
}

int metrics_inception_score(double *mean, double *std, const float *logits, int64_t N, int C,
                            int splits, int shuffle, uint32_t seed, char *msg, size_t msglen)
{
    if (splits < 1 || N < splits) {
        snprintf(msg, msglen, "need at least as many samples as splits (%d), got %lld", splits,
                 (long long)N);
        return -1;
    }
    int64_t *perm = xmalloc((size_t)N * sizeof(int64_t));
    double *lp = xmalloc((size_t)C * sizeof(double)), *q = xmalloc((size_t)C * sizeof(double));
    double *scores = xmalloc((size_t)splits * sizeof(double));
    if (shuffle) {
        struct mt19937 mt;
        mt_seed(&mt, seed);
        mt_permutation(&mt, perm, N);
    } else
        for (int64_t i = 0; i < N; i++)
            perm[i] = i;
    for (int k = 0; k < splits; k++) {
        int64_t r0 = k * N / splits, r1 = (k + 1) * N / splits;
        double kl = 0;
        memset(q, 0, (size_t)C * sizeof(double));
        for (int64_t r = r0; r < r1; r++) {
            log_softmax(lp, logits + perm[r] * C, C);
            for (int c = 0; c < C; c++)
                q[c] += exp(lp[c]);
        }
        for (int c = 0; c < C; c++)
            q[c] = log(q[c] / (double)(r1 - r0));
        for (int64_t r = r0; r < r1; r++) {
            double row = 0;
            log_softmax(lp, logits + perm[r] * C, C);
            for (int c = 0; c < C; c++)
                row += exp(lp[c]) * (lp[c] - q[c]);
            kl += row;
        }
        scores[k] = exp(kl / (double)(r1 - r0));
    }
    mean_std(mean, std, scores, splits);
    free(perm);
    free(lp);
    free(q);
    free(scores);
    return 0;
}

/* ---- KID ---- */

static void gather(float *dst, const float *src, const int64_t *idx, int m, int d)
{
    for (int i = 0; i < m; i++)
        memcpy(dst + (size_t)i * d, src + idx[i] * d, (size_t)d * sizeof(float));
}

/* sum of (g/d + 1)^3 over the m x m Gram g, without its diagonal when offdiag. Rows in
   parallel, their sums added in row order: an OpenMP reduction would add them in an order
   that depends on the thread count. rows: m doubles of scratch. */
static double poly_sum(double *rows, const float *g, int m, int d, int offdiag)
{
    double s = 0, gamma = 1.0 / d;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < m; i++) {
        double r = 0;
        for (int j = 0; j < m; j++) {
            if (offdiag && i == j)
                continue;
            double k = g[(size_t)i * m + j] * gamma + 1.0;
            r += k * k * k;
        }
        rows[i] = r;
    }
    for (int i = 0; i < m; i++)
        s += rows[i];
    return s;
}

int metrics_kid(double *mean, double *std, const float *f1, int64_t n1, const float *f2,
                int64_t n2, int d, int subsets, int m, uint32_t seed, char *msg, size_t msglen)
{
    if (m < 2 || subsets < 1) {
        snprintf(msg, msglen, "subset size must be at least 2 and subsets at least 1");
        return -1;
    }
    if (n1 < m || n2 < m) {
        snprintf(msg, msglen, "subset size %d is larger than the number of samples (%lld and "
                 "%lld): use --subset-size", m, (long long)n1, (long long)n2);
        return -1;
    }
    struct mt19937 mt;
    int64_t nmax = n1 > n2 ? n1 : n2;
    int64_t *perm = xmalloc((size_t)nmax * sizeof(int64_t)), *i1 = xmalloc((size_t)m * 8);
    float *x = xmalloc((size_t)m * d * sizeof(float)), *y = xmalloc((size_t)m * d * sizeof(float));
    float *g = xmalloc((size_t)m * m * sizeof(float));
    double *mmd = xmalloc((size_t)subsets * sizeof(double)), *rows = xmalloc((size_t)m * 8);
    mt_seed(&mt, seed);
    for (int s = 0; s < subsets; s++) {
        mt_permutation(&mt, perm, n1);
        memcpy(i1, perm, (size_t)m * sizeof(int64_t));
        mt_permutation(&mt, perm, n2);
        gather(x, f1, i1, m, d);
        gather(y, f2, perm, m, d);
        nn_sgemm(0, 1, m, m, d, 1.0f, x, d, x, d, 0.0f, g, m);
        double kxx = poly_sum(rows, g, m, d, 1);
        nn_sgemm(0, 1, m, m, d, 1.0f, y, d, y, d, 0.0f, g, m);
        double kyy = poly_sum(rows, g, m, d, 1);
        nn_sgemm(0, 1, m, m, d, 1.0f, x, d, y, d, 0.0f, g, m);
        double kxy = poly_sum(rows, g, m, d, 0);
        mmd[s] = (kxx + kyy) / ((double)m * (m - 1)) - 2 * kxy / ((double)m * m);
    }
    mean_std(mean, std, mmd, subsets);
    free(perm);
    free(i1);
    free(x);
    free(y);
    free(g);
    free(mmd);
    free(rows);
    return 0;
}

void metrics_repr(char *buf, size_t len, double v)
{
    if (!isfinite(v)) {
        snprintf(buf, len, "%s", isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (strpbrk(buf, ".e") == NULL && strlen(buf) + 3 <= len)
        strcat(buf, ".0");
}
