#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"
#include "nn.h"
#include "rng.h"
#include "util.h"

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

/* sum of (g/d + 1)^3 over the m x m Gram g, without its diagonal when offdiag */
static double poly_sum(const float *g, int m, int d, int offdiag)
{
    double s = 0, gamma = 1.0 / d;
    #pragma omp parallel for reduction(+ : s)
    for (int i = 0; i < m; i++) {
        double r = 0;
        for (int j = 0; j < m; j++) {
            if (offdiag && i == j)
                continue;
            double k = g[(size_t)i * m + j] * gamma + 1.0;
            r += k * k * k;
        }
        s += r;
    }
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
    double *mmd = xmalloc((size_t)subsets * sizeof(double));
    mt_seed(&mt, seed);
    for (int s = 0; s < subsets; s++) {
        mt_permutation(&mt, perm, n1);
        memcpy(i1, perm, (size_t)m * sizeof(int64_t));
        mt_permutation(&mt, perm, n2);
        gather(x, f1, i1, m, d);
        gather(y, f2, perm, m, d);
        nn_sgemm(0, 1, m, m, d, 1.0f, x, d, x, d, 0.0f, g, m);
        double kxx = poly_sum(g, m, d, 1);
        nn_sgemm(0, 1, m, m, d, 1.0f, y, d, y, d, 0.0f, g, m);
        double kyy = poly_sum(g, m, d, 1);
        nn_sgemm(0, 1, m, m, d, 1.0f, x, d, y, d, 0.0f, g, m);
        double kxy = poly_sum(g, m, d, 0);
        mmd[s] = (kxx + kyy) / ((double)m * (m - 1)) - 2 * kxy / ((double)m * m);
    }
    mean_std(mean, std, mmd, subsets);
    free(perm);
    free(i1);
    free(x);
    free(y);
    free(g);
    free(mmd);
    return 0;
}

/* ---- inputs ---- */

const char *metrics_kind_name(enum metrics_kind k)
{
    static const char *const names[] = { "images", "image folder", "features", "statistics" };
    return names[k];
}

/* pytorch-fid's IMAGE_EXTENSIONS, case-sensitive */
static int image_ext(const char *name)
{
    static const char *const ext[] = { "bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff",
                                       "webp" };
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcmp(dot + 1, ext[i]) == 0)
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int open_folder(struct metrics_input *in, const char *path, char *msg, size_t msglen)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    size_t cap = 0;
    if (dir == NULL) {
        snprintf(msg, msglen, "cannot open folder");
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.' || !image_ext(de->d_name))
            continue;
        size_t l = strlen(path) + strlen(de->d_name) + 2;
        char *full = xmalloc(l);
        snprintf(full, l, "%s/%s", path, de->d_name);
        if (util_is_dir(full)) {
            free(full);
            continue;
        }
        if ((size_t)in->n == cap) {
            cap = cap ? 2 * cap : 64;
            in->files = xrealloc(in->files, cap * sizeof(char *));
        }
        in->files[in->n++] = full;
    }
    closedir(dir);
    if (in->n == 0) {
        snprintf(msg, msglen, "no images in folder (bmp jpg jpeg pgm png ppm tif tiff webp)");
        return -1;
    }
    qsort(in->files, in->n, sizeof(char *), cmp_str);
    in->kind = METRICS_FOLDER;
    return 0;
}

static int has_name(char **names, int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0)
            return 1;
    return 0;
}

static int is_zip(const char *path)
{
    unsigned char m[4] = { 0 };
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
}

int metrics_input_open(struct metrics_input *in, const char *path, char *msg, size_t msglen)
{
    memset(in, 0, sizeof *in);
    if (strcmp(path, "-") != 0 && util_is_dir(path)) {
        if (open_folder(in, path, msg, msglen) == -1) {
            metrics_input_free(in);
            return -1;
        }
        return 0;
    }
    if (strcmp(path, "-") != 0 && is_zip(path)) {
        char **names;
        int n, stats;
        if (npz_names(path, &names, &n, msg, msglen) == -1)
            return -1;
        stats = has_name(names, n, "mu") && has_name(names, n, "sigma");
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        if (stats) {
            in->kind = METRICS_STATS;
            return metrics_stats_load(path, &in->mu, &in->sigma, &in->d, msg, msglen);
        }
    }
    if (npy_load(path, NULL, &in->arr, msg, msglen) == -1)
        return -1;
    struct npy *t = &in->arr;
    if (t->dtype == NPY_U8 && t->ndim == 4 && t->shape[3] == 3 && t->shape[0] >= 1 &&
        t->shape[1] >= 1 && t->shape[2] >= 1 && t->shape[1] <= 16384 && t->shape[2] <= 16384) {
        in->kind = METRICS_IMAGES;
        in->n = t->shape[0];
        return 0;
    }
    if ((t->dtype == NPY_F32 || t->dtype == NPY_F64) && t->ndim == 2 && t->shape[0] >= 1 &&
        t->shape[1] >= 1 && t->shape[1] <= 65536) {
        if (t->dtype == NPY_F64) {
            int64_t n = npy_count(t);
            float *f = xmalloc((size_t)n * sizeof(float));
            for (int64_t i = 0; i < n; i++)
                f[i] = (float)((double *)t->data)[i];
            free(t->data);
            t->data = f;
            t->dtype = NPY_F32;
        }
        in->kind = METRICS_FEATURES;
        in->n = t->shape[0];
        in->d = (int)t->shape[1];
        return 0;
    }
    char s[96];
    int k = 0;
    s[0] = '\0';
    for (int i = 0; i < t->ndim && k < (int)sizeof s - 24; i++)
        k += snprintf(s + k, sizeof s - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    snprintf(msg, msglen, "expected uint8 images (N,H,W,3), float features (N,D) or an .npz "
             "with mu and sigma, got %s (%s)", npy_dtype_name(t->dtype), s);
    npy_free(t);
    return -1;
}

void metrics_input_free(struct metrics_input *in)
{
    for (int64_t i = 0; i < in->n && in->files != NULL; i++)
        free(in->files[i]);
    free(in->files);
    if (in->arr.data != NULL)
        npy_free(&in->arr);
    free(in->mu);
    free(in->sigma);
    memset(in, 0, sizeof *in);
}

/* the output pointer for the requested width among the network's outputs */
static void pick(float *f, int dims, float **p3, float **d64, float **d192, float **d768)
{
    *p3 = dims == 2048 ? f : NULL;
    *d64 = dims == 64 ? f : NULL;
    *d192 = dims == 192 ? f : NULL;
    *d768 = dims == 768 ? f : NULL;
}

int metrics_input_features(struct metrics_input *in, const struct inception *net, int batch,
                           enum inception_resize mode, int dims, metrics_sink sink, void *ctx,
                           char *msg, size_t msglen)
{
    float *p3, *d64, *d192, *d768;
    if (in->kind == METRICS_STATS) {
        snprintf(msg, msglen, "statistics have no features");
        return -1;
    }
    if (in->kind == METRICS_FEATURES) {
        if (in->d != dims) {
            snprintf(msg, msglen, "features have %d columns, expected %d (--dims)", in->d, dims);
            return -1;
        }
        const float *f = in->arr.data;
        for (int64_t i = 0; i < in->n; i += batch) {
            int b = in->n - i < batch ? (int)(in->n - i) : batch;
            if (sink(ctx, f + i * dims, b) != 0) {
                snprintf(msg, msglen, "stopped");
                return -1;
            }
        }
        return 0;
    }
    if (dims != 64 && dims != 192 && dims != 768 && dims != 2048) {
        snprintf(msg, msglen, "dims must be 64, 192, 768 or 2048, got %d", dims);
        return -1;
    }
    float *feat = xmalloc((size_t)batch * dims * sizeof(float));
    float *x = NULL;
    int rc = 0;
    pick(feat, dims, &p3, &d64, &d192, &d768);
    if (in->kind == METRICS_FOLDER)
        x = xmalloc((size_t)batch * 3 * INCEPTION_SIZE * INCEPTION_SIZE * sizeof(float));
    for (int64_t i = 0; i < in->n && rc == 0; i += batch) {
        int b = in->n - i < batch ? (int)(in->n - i) : batch;
        if (in->kind == METRICS_IMAGES) {
            int H = (int)in->arr.shape[1], W = (int)in->arr.shape[2];
            const uint8_t *img = (const uint8_t *)in->arr.data + (size_t)i * H * W * 3;
            inception_forward_u8(net, p3, NULL, d64, d192, d768, img, b, H, W, mode);
        } else {
            for (int k = 0; k < b; k++) {
                struct img im;
                const char *path = in->files[i + k];
                if (img_load(path, &im, msg, msglen) == -1) {
                    char m2[256];
                    snprintf(m2, sizeof m2, "%s: %s", path, msg);
                    snprintf(msg, msglen, "%s", m2);
                    rc = -1;
                    break;
                }
                inception_preprocess(x + (size_t)k * 3 * INCEPTION_SIZE * INCEPTION_SIZE,
                                     im.rgb, im.h, im.w, mode);
                img_free(&im);
            }
            if (rc == -1)
                break;
            inception_forward(net, p3, NULL, d64, d192, d768, x, b);
        }
        if (sink(ctx, feat, b) != 0) {
            snprintf(msg, msglen, "stopped");
            rc = -1;
        }
    }
    free(feat);
    free(x);
    return rc;
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
