/* Precision and recall (Kynkaanniemi et al. 2019, as torch-fidelity's prc) and density and
   coverage (Naeem et al. 2020, as clovaai's prdc) of generated features against real ones.

   Radius of a point: the distance to its k-th nearest neighbour in its own set, self excluded
   (torch.kthvalue(k+1) / prdc's get_kth_value(k+1) with self included).
   precision = fraction of generated points within (<=) the k_pr-radius of some real point;
   recall    = fraction of real points within (<=) the k_pr-radius of some generated point;
   f_score   = 2PR / max(1e-5, P+R) (torch-fidelity);
   density   = #{(real i, gen j): d(i,j) < r_i} / (k_dc * n_gen), r at k_dc (strict, prdc);
   coverage  = fraction of real i whose nearest generated point is at d < r_i (k_dc).

   Distances: float32 GEMM tiles (|x|^2 + |y|^2 - 2 x.y) decide every pair whose margin to the
   radius exceeds a rigorous bound on the float32 error; the rest, and the radii, are the
   direct float64 sum of (x_k - y_k)^2 in k order, which is symmetric. So every decision is
   the one exact float64 distances give, whatever the tiling, threads or OpenBLAS kernel.
   Memory is O((n_real + n_gen) + tiles), never O(N^2).

   Errors: -1 with one line in msg. Nothing here prints. */
#ifndef PRDC_H
#define PRDC_H
#include <stddef.h>
#include <stdint.h>

struct prdc_result {
    double precision, recall, f_score;  /* with k_pr */
    double density, coverage;           /* with k_dc */
};

/* real (n_real, d), gen (n_gen, d). k_pr = 0 skips precision/recall, k_dc = 0 density and
   coverage. Needs finite features and n_real, n_gen >= k + 1 for each k asked for. */
int prdc_compute(struct prdc_result *r, const float *real, int64_t n_real, const float *gen,
                 int64_t n_gen, int d, int k_pr, int k_dc, char *msg, size_t msglen);

/* Exact float64 k-th nearest-neighbour distances of every row of x (n, d) within x, self
   excluded: radius (n). Exposed for the tests. */
int prdc_radii(double *radius, const float *x, int64_t n, int d, int k, char *msg,
               size_t msglen);
#endif
