/* Shard ranges; see shard.h. */
#include "util/par.h"
#include "util/shard.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

int shard_parse(const char *s, int *i, int *n)
{
    const char *slash = strchr(s, '/');
    char head[32];
    long a, b;
    if (slash == NULL || (size_t)(slash - s) >= sizeof head)
        return -1;
    memcpy(head, s, (size_t)(slash - s));
    head[slash - s] = '\0';
    if (util_parse_long(head, 0, 65535, &a) == -1 ||
        util_parse_long(slash + 1, 1, 65536, &b) == -1 || a >= b)
        return -1;
    *i = (int)a;
    *n = (int)b;
    return 0;
}

void shard_range(long n_items, int i, int n, long *lo, long *hi)
{
    long q = n_items / n, r = n_items % n;
    *lo = q * i + (i < r ? i : r);
    *hi = *lo + q + (i < r);
}

int shard_rank_range(long n_items, int i, int n, long *lo, long *hi, long *n_out, char *msg,
                     size_t msglen)
{
    long first;
    if (n > n_items) {
        snprintf(msg, msglen, "--shard %d/%d: more shards than the %ld images", i, n, n_items);
        return -1;
    }
    shard_range(n_items, i, n, &first, hi);
    *n_out = *hi - first;
    if (par_size() > *n_out) {
        snprintf(msg, msglen, "%d processes for %ld images: want at least one image each",
                 par_size(), *n_out);
        return -1;
    }
    shard_range(*n_out, par_rank(), par_size(), lo, hi);
    *lo += first;
    *hi += first;
    return 0;
}
