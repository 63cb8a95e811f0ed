/* split: dsplit's sizes, and stratified counts that keep the unstratified totals with every
   class within 1 of its share, on many random class sizes and ratios. */
#include "util/rng.h"
#include "util/split.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_sizes(void)
{
    int64_t out[3];
    split_sizes(1020, (const double[]){70, 15, 15}, 3, out);
    CHECK(out[0] == 714 && out[1] == 153 && out[2] == 153, "1020 rows 70/15/15: %ld/%ld/%ld",
          (long)out[0], (long)out[1], (long)out[2]);
    split_sizes(24, (const double[]){0.7, 0.15, 0.15}, 3, out);
    CHECK(out[0] == 16 && out[1] == 3 && out[2] == 5, "24 rows .7/.15/.15: %ld/%ld/%ld",
          (long)out[0], (long)out[1], (long)out[2]);
    split_sizes(5, (const double[]){1, 0}, 2, out);
    CHECK(out[0] == 5 && out[1] == 0, "ratios 1,0 keep every row in the first part");
}

/* 0 when cnt has the row sums cls_n, the column sums tot and every entry within 1 of its
   share; else the first problem in why */
static int valid(const int64_t *cnt, const int64_t *cls_n, int nc, const int64_t *tot, int nr,
                 char *why, size_t whylen)
{
    int64_t N = 0, col[3] = {0, 0, 0};
    for (int c = 0; c < nc; c++)
        N += cls_n[c];
    for (int c = 0; c < nc; c++) {
        int64_t row = 0;
        for (int s = 0; s < nr; s++) {
            int64_t k = cnt[c * nr + s], num = cls_n[c] * tot[s]; /* share = num / N */
            row += k;
            col[s] += k;
            if (k < 0 || k * N <= num - N || k * N >= num + N) {
                snprintf(why, whylen, "class %d part %d: %ld rows, share %ld/%ld", c, s,
                         (long)k, (long)num, (long)N);
                return -1;
            }
        }
        if (row != cls_n[c]) {
            snprintf(why, whylen, "class %d: %ld rows, want %ld", c, (long)row, (long)cls_n[c]);
            return -1;
        }
    }
    for (int s = 0; s < nr; s++)
        if (col[s] != tot[s]) {
            snprintf(why, whylen, "part %d: %ld rows, want %ld", s, (long)col[s], (long)tot[s]);
            return -1;
        }
    return 0;
}

static void test_flowers(void)
{
    int64_t cls_n[102], tot[3], cnt[306], n_val2 = 0;
    struct rng g;
    char why[128] = "";
    for (int c = 0; c < 102; c++)
        cls_n[c] = 10;
    split_sizes(1020, (const double[]){70, 15, 15}, 3, tot);
    rng_seed(&g, 0);
    split_stratify(cnt, cls_n, 102, tot, 3, &g);
    CHECK(valid(cnt, cls_n, 102, tot, 3, why, sizeof why) == 0, "102 classes of 10: %s", why);
    for (int c = 0; c < 102; c++)
        n_val2 += cnt[c * 3 + 1] == 2;
    CHECK(n_val2 == 51, "half the classes get a second val row (%ld)", (long)n_val2);
}

static void test_random(void)
{
    struct rng g, h;
    char why[128] = "";
    int bad = 0;
    rng_seed(&g, 7);
    for (int t = 0; t < 3000 && !bad; t++) {
        int nc = 1 + (int)rng_below(&g, t % 3 ? 12 : 60), nr = 2 + (int)rng_below(&g, 2);
        int64_t cls_n[60], tot[3], cnt[180], N = 0;
        double r[3];
        for (int c = 0; c < nc; c++)
            N += cls_n[c] = (int64_t)rng_below(&g, t % 2 ? 8 : 120);
        for (int s = 0; s < nr; s++)
            r[s] = 1 + (double)rng_below(&g, 99);
        if (N == 0)
            continue;
        split_sizes(N, r, nr, tot);
        rng_seed(&h, (uint64_t)t);
        split_stratify(cnt, cls_n, nc, tot, nr, &h);
        if (valid(cnt, cls_n, nc, tot, nr, why, sizeof why) != 0)
            bad = t + 1;
    }
    CHECK(!bad, "3000 random class sizes and ratios (case %d: %s)", bad - 1, why);
}

static void test_seed(void)
{
    int64_t cls_n[20], tot[3], a[60], b[60], c2[60];
    struct rng g;
    for (int c = 0; c < 20; c++)
        cls_n[c] = 10;
    split_sizes(200, (const double[]){70, 15, 15}, 3, tot);
    rng_seed(&g, 1);
    split_stratify(a, cls_n, 20, tot, 3, &g);
    rng_seed(&g, 1);
    split_stratify(b, cls_n, 20, tot, 3, &g);
    rng_seed(&g, 2);
    split_stratify(c2, cls_n, 20, tot, 3, &g);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, same counts");
    CHECK(memcmp(a, c2, sizeof a) != 0, "another seed breaks the ties differently");
}

int main(void)
{
    (void)test_close; /* test.h's float comparison: no floats here */
    test_sizes();
    test_flowers();
    test_random();
    test_seed();
    return test_done();
}
