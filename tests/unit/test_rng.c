/* rng: xoshiro256** determinism and moments; MT19937 and permutation against numpy
   (fixtures from tests/fixtures/gen_ckpt.py). */
#include "util/rng.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/ckpt/"

static size_t read_raw(const char *path, void *buf, size_t max)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (f == NULL)
        return 0;
    n = fread(buf, 1, max, f);
    fclose(f);
    return n;
}

static void test_mt_stream(void)
{
    static uint32_t want[700];
    struct mt19937 m;
    size_t n = read_raw(FIX "mt_u32_5489.u32", want, sizeof want);
    int bad = -1;
    CHECK(n == sizeof want, "mt_u32_5489.u32 fixture readable");
    mt_seed(&m, 5489);
    for (int i = 0; i < 700; i++)
        if (mt_u32(&m) != want[i] && bad < 0)
            bad = i;
    CHECK(bad < 0, "mt_u32 seed 5489 matches numpy for 700 draws (first mismatch %d)", bad);
}

static void test_mt_perm(uint32_t seed, int64_t n)
{
    char path[128];
    int64_t *want = malloc((size_t)n * 8), *got = malloc((size_t)n * 8);
    struct mt19937 m;
    snprintf(path, sizeof path, FIX "mt_perm_%u_%ld.i64", (unsigned)seed, (long)n);
    CHECK(read_raw(path, want, (size_t)n * 8) == (size_t)n * 8, "%s readable", path);
    mt_seed(&m, seed);
    mt_permutation(&m, got, n);
    CHECK(memcmp(got, want, (size_t)n * 8) == 0,
          "mt_permutation(seed %u, n %ld) equals RandomState.permutation", (unsigned)seed, (long)n);
    free(want);
    free(got);
}

/* legacy RandomState.choice(n, m, replace=False) = permutation(n)[:m], twice from one state */
static void test_mt_choice(void)
{
    int64_t want[14], a[50], b[30];
    struct mt19937 m;
    CHECK(read_raw(FIX "mt_choice_2020.i64", want, sizeof want) == sizeof want,
          "mt_choice fixture readable");
    mt_seed(&m, 2020);
    mt_permutation(&m, a, 50);
    mt_permutation(&m, b, 30);
    CHECK(memcmp(a, want, 7 * 8) == 0 && memcmp(b, want + 7, 7 * 8) == 0,
          "two consecutive permutations reproduce numpy's choice(replace=False) draws");
}

static void test_xoshiro(void)
{
    struct rng a, b;
    /* reference: xoshiro256** with s = {1,2,3,4} gives 11520, 0, 1509978240, 1215971899390074240 */
    a.s[0] = 1, a.s[1] = 2, a.s[2] = 3, a.s[3] = 4;
    uint64_t w[4] = {11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL};
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= rng_u64(&a) == w[i];
    CHECK(ok, "xoshiro256** reference outputs for state {1,2,3,4}");

    rng_seed(&a, 42);
    rng_seed(&b, 42);
    ok = 1;
    for (int i = 0; i < 1000; i++)
        ok &= rng_u64(&a) == rng_u64(&b);
    CHECK(ok, "same seed, same stream");
    rng_seed(&b, 43);
    CHECK(rng_u64(&a) != rng_u64(&b), "different seed, different stream");

    /* splitmix64(0) first output is 0xe220a8397b1dcdaf */
    rng_seed(&a, 0);
    CHECK(a.s[0] == 0xe220a8397b1dcdafULL, "splitmix64 seeding");
}

static void test_uniform_normal(void)
{
    struct rng r, saved;
    const int n = 1000000;
    double s = 0, s2 = 0, s3 = 0, s4 = 0;
    float lo = 1, hi = 0;
    rng_seed(&r, 7);
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        s += u;
        s2 += (double)u * u;
    }
    CHECK(lo >= 0 && hi < 1, "uniform in [0,1): min %g max %g", lo, hi);
    CHECK(fabs(s / n - 0.5) < 0.002 && fabs(s2 / n - s / n * (s / n) - 1.0 / 12) < 0.001,
          "uniform mean %.5f var %.5f", s / n, s2 / n - s / n * (s / n));

    s = s2 = 0;
    for (int i = 0; i < n; i++) {
        double z = rng_normal(&r);
        s += z;
        s2 += z * z;
        s3 += z * z * z;
        s4 += z * z * z * z;
    }
    /* standard errors: mean 1e-3, var 1.4e-3, skew 2.4e-3, kurt ~5e-3: 5 sigma bounds */
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK(fabs(mean) < 0.005 && fabs(var - 1) < 0.007, "normal mean %.5f var %.5f", mean, var);
    CHECK(fabs(s3 / n) < 0.015 && fabs(s4 / n - 3) < 0.05, "normal 3rd %.4f 4th %.4f moments",
          s3 / n, s4 / n);

    /* the spare lives in the state: a copied state continues identically */
    rng_normal(&r);
    saved = r;
    float x1 = rng_normal(&r), x2 = rng_normal(&r);
    CHECK(saved.has_spare && rng_normal(&saved) == x1 && rng_normal(&saved) == x2,
          "saved state (with spare) replays the normal stream");

    float buf[5], buf2[5];
    rng_seed(&r, 3);
    rng_normal_fill(&r, buf, 5);
    rng_seed(&r, 3);
    for (int i = 0; i < 5; i++)
        buf2[i] = rng_normal(&r);
    test_close("rng_normal_fill equals repeated rng_normal", buf, buf2, 5, 0, 0);
}

static void test_below_shuffle(void)
{
    struct rng r;
    int count[7] = {0};
    const int n = 700000;
    rng_seed(&r, 11);
    int inrange = 1;
    for (int i = 0; i < n; i++) {
        uint64_t x = rng_below(&r, 7);
        inrange &= x < 7;
        if (x < 7)
            count[x]++;
    }
    double chi2 = 0;
    for (int i = 0; i < 7; i++)
        chi2 += (count[i] - n / 7.0) * (count[i] - n / 7.0) / (n / 7.0);
    /* 6 dof: P(chi2 > 30) ~ 4e-5 */
    CHECK(inrange && chi2 < 30, "rng_below(7) uniform (chi2 %.2f)", chi2);
    CHECK(rng_below(&r, 1) == 0 && rng_below(&r, 0) == 0, "rng_below(1) and (0) are 0");
    uint64_t big = (1ULL << 63) + 12345;
    int ok = 1;
    for (int i = 0; i < 1000; i++)
        ok &= rng_below(&r, big) < big;
    CHECK(ok, "rng_below(2^63+12345) in range");

    /* shuffle: a permutation, and each position sees every value equally often */
    int64_t a[5];
    int pos[5][5] = {{0}};
    ok = 1;
    for (int t = 0; t < 50000; t++) {
        int seen[5] = {0};
        for (int i = 0; i < 5; i++)
            a[i] = i;
        rng_shuffle(&r, a, 5);
        for (int i = 0; i < 5; i++) {
            ok &= a[i] >= 0 && a[i] < 5 && !seen[a[i]];
            if (a[i] >= 0 && a[i] < 5) {
                seen[a[i]] = 1;
                pos[i][a[i]]++;
            }
        }
    }
    CHECK(ok, "rng_shuffle yields permutations");
    chi2 = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            chi2 += (pos[i][j] - 10000.0) * (pos[i][j] - 10000.0) / 10000.0;
    /* 16 dof: P(chi2 > 50) ~ 2e-5 */
    CHECK(chi2 < 50, "rng_shuffle position/value table uniform (chi2 %.2f)", chi2);
    a[0] = 42;
    rng_shuffle(&r, a, 0);
    rng_shuffle(&r, a, 1);
    CHECK(a[0] == 42, "rng_shuffle of 0 and 1 elements leaves them alone");
}

int main(void)
{
    test_mt_stream();
    test_mt_perm(2020, 10);
    test_mt_perm(2020, 1000);
    test_mt_perm(0, 1);
    test_mt_perm(1, 2);
    test_mt_perm(12345, 257);
    test_mt_perm(4294967295u, 64);
    test_mt_choice();
    test_xoshiro();
    test_uniform_normal();
    test_below_shuffle();
    return test_done();
}
