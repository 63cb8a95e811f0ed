/* Split sizes for dsplit: how many rows go to each part (train, val, test), overall and per
   class when stratifying. */
#ifndef SPLIT_H
#define SPLIT_H
#include <stdint.h>

#include "util/rng.h"

/* n rows, ratios r[0..nr) (sum S > 0): part i < nr-1 gets floor(n*r[i]/S), the last part the
   rest, so out[] adds up to n. */
void split_sizes(int64_t n, const double *r, int nr, int64_t *out);

/* Stratified counts. cls_n[c] rows of class c (n_cls classes, sum N), tot[s] rows of part s
   (nr parts, sum N, e.g. split_sizes of N). Fills cnt (n_cls, nr) row-major so that every
   row adds up to cls_n[c], every column to tot[s], and each cnt[c][s] is the floor or the
   ceiling of class c's proportional share cls_n[c]*tot[s]/N (largest remainders first, ties
   in an order drawn from g). Needs N < 2^32 (the shares are computed exactly in 64 bits). */
void split_stratify(int64_t *cnt, const int64_t *cls_n, int n_cls, const int64_t *tot, int nr,
                    struct rng *g);
#endif
