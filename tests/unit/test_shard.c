/* shard: --shard I/N parsing, and ranges that tile 0..n-1 in order with sizes within one of
   each other, larger first (numpy.array_split), for every n up to 200 and N up to n. */
#include <string.h>

#include "util/shard.h"
#include "test.h"

static void test_parse(void)
{
    static const char *const bad[] = {"", "1", "/2", "1/", "2/2", "-1/2", "1/0", "a/2",
                                      "1/2/3", "0/65537", "0/2 "};
    int i = -1, n = -1;
    CHECK(shard_parse("0/1", &i, &n) == 0 && i == 0 && n == 1, "0/1");
    CHECK(shard_parse("15/16", &i, &n) == 0 && i == 15 && n == 16, "15/16");
    CHECK(shard_parse("65535/65536", &i, &n) == 0 && n == 65536, "65535/65536");
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        i = n = -1;
        CHECK(shard_parse(bad[k], &i, &n) == -1 && i == -1 && n == -1, "'%s' refused", bad[k]);
    }
}

static void test_ranges(void)
{
    long bad = 0;
    for (long items = 1; items <= 200; items++)
        for (int n = 1; n <= items; n++) {
            long end = 0, lo, hi, first = 0;
            for (int i = 0; i < n; i++) {
                shard_range(items, i, n, &lo, &hi);
                if (i == 0)
                    first = hi - lo;
                /* contiguous, not empty, at most one shorter than the first, never longer */
                if (lo != end || hi <= lo || hi - lo > first || hi - lo < first - 1)
                    bad++;
                end = hi;
            }
            bad += end != items;
        }
    CHECK(bad == 0, "ranges tile 0..n-1 in order, sizes within one, larger first (%ld bad)",
          bad);
    long lo, hi;
    shard_range(10, 1, 3, &lo, &hi);
    CHECK(lo == 4 && hi == 7, "10 in 3: shard 1 is [4, 7) as numpy.array_split, got [%ld, %ld)",
          lo, hi);
}

/* without mpirun (one process) the process's range is the shard's */
static void test_rank_range(void)
{
    long lo = -1, hi = -1, n_out = -1;
    char msg[128] = "";
    CHECK(shard_rank_range(10, 1, 3, &lo, &hi, &n_out, msg, sizeof msg) == 0 && lo == 4 &&
              hi == 7 && n_out == 3, "10 in 3, one process: shard 1 is [4, 7), 3 to write");
    CHECK(shard_rank_range(2, 0, 3, &lo, &hi, &n_out, msg, sizeof msg) == -1 &&
              strcmp(msg, "--shard 0/3: more shards than the 2 images") == 0,
          "more shards than images refused: %s", msg);
}

int main(void)
{
    (void)test_close; /* test.h's float comparison: no floats here */
    test_parse();
    test_ranges();
    test_rank_range();
    return test_done();
}
