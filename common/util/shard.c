/* Shard ranges; see shard.h. */
#include "util/shard.h"
#include "util/util.h"

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
