/* Sample-quality metrics on Inception features: feature statistics (mean and covariance,
   float64, streamed), Frechet distance (FID), Inception Score and Kernel Inception Distance
   exactly as pytorch-fid and torch-fidelity compute them. The inputs the metric tools accept
   and the batch loop that turns them into features are in metrics_input.h.

   Errors: functions return -1 and fill msg with one line. Nothing here prints. */
#ifndef METRICS_H
#define METRICS_H
#include <stddef.h>
#include <stdint.h>

/* ---- feature statistics: mu = mean, sigma = np.cov(rowvar=False) (ddof 1) ----
   Sums of x and x x^T in float64 over fixed chunks of rows, so the result does not depend on
   how the caller batches the rows (only on their order, at round-off level). Memory is
   O(d^2), flat in N. */
struct metrics_stats {
    int d;
    int64_t n;
    double *sum;    /* (d) */
    double *sxx;    /* (d,d), upper triangle in column-major (LAPACK) terms */
    double *chunk;  /* (METRICS_CHUNK, d) rows not yet folded into sxx */
    int n_chunk;
};
#define METRICS_CHUNK 64

void metrics_stats_init(struct metrics_stats *s, int d);
/* x (n,d) */
void metrics_stats_add(struct metrics_stats *s, const float *x, int64_t n);
/* mu (d), sigma (d,d). Needs n >= 2. */
int metrics_stats_get(struct metrics_stats *s, double *mu, double *sigma, char *msg,
                      size_t msglen);
void metrics_stats_free(struct metrics_stats *s);

/* pytorch-fid statistics files: np.savez_compressed(path, mu=mu, sigma=sigma), float64.
   Loading accepts stored or deflated archives, float32 or float64, extra members; *mu and
   *sigma are malloc'd. */
int metrics_stats_save(const char *path, const double *mu, const double *sigma, int d,
                       char *msg, size_t msglen);
int metrics_stats_load(const char *path, double **mu, double **sigma, int *d, char *msg,
                       size_t msglen);

/* ---- FID ----
   |mu1-mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), in float64, with LAPACK dsyevd:
   S1 = U L U^T (eigenvalues below d*eps*max count as 0), tr sqrt(S1 S2) = sum of the square
   roots of the eigenvalues of the symmetric PSD K = L^(1/2) U^T S2 U L^(1/2), which are the
   nonzero eigenvalues of S1 S2 (the basis is taken from whichever covariance has the lower
   rank). Equals scipy's sqrtm route up to round-off and stays exact for singular covariances
   (N < d; FID(X,X) = 0), where square roots of round-off eigenvalues would add a bias. */
int metrics_frechet(double *fid, const double *mu1, const double *sigma1, const double *mu2,
                    const double *sigma2, int d, char *msg, size_t msglen);

/* ---- Inception Score (torch-fidelity isc_features_to_metric) ----
   logits (N,C): pool3 @ fc.weight^T without bias ("logits_unbiased"). Rows are permuted by
   np.random.RandomState(seed).permutation(N) when shuffle; float64 softmax; split i holds rows
   [i*N/splits, (i+1)*N/splits); IS_i = exp(mean_rows KL(p || mean p)); mean and std (ddof 0)
   over splits. Needs N >= splits. */
int metrics_inception_score(double *mean, double *std, const float *logits, int64_t N, int C,
                            int splits, int shuffle, uint32_t seed, char *msg, size_t msglen);

/* ---- KID (torch-fidelity kid_features_to_metric) ----
   f1 (n1,d), f2 (n2,d); k(x,y) = (x.y/d + 1)^3; per subset of m rows drawn from one
   RandomState(seed) (first from f1, then from f2, each permutation(n)[:m]): unbiased MMD^2;
   mean and std (ddof 0) over subsets. Needs n1, n2 >= m >= 2. Gram matrices in float32 GEMMs
   like numpy's, the rest in float64. */
int metrics_kid(double *mean, double *std, const float *f1, int64_t n1, const float *f2,
                int64_t n2, int d, int subsets, int m, uint32_t seed, char *msg, size_t msglen);

/* Python's repr() of a float (shortest string that reads back the same; '.0' added to
   integral values), as pytorch-fid prints FID and json.dumps writes numbers. */
void metrics_repr(char *buf, size_t len, double v);
#endif
