/* Split sizes. The stratified counts are a matrix rounding: the shares q[c][s] =
   cls_n[c]*tot[s]/N have integer row sums (cls_n) and column sums (tot), and such a matrix
   can always be rounded entry by entry to floor or ceiling keeping every row and column sum
   (Bacharach 1966; it is an integral flow). We take the floors, hand out the missing +1s by
   largest remainder, and when that greedy order strands a class or a part, move +1s along an
   augmenting path (class -> part it has no +1 in -> class giving up its +1 there -> ...). */
#include "util/split.h"
#include "util/util.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

void split_sizes(int64_t n, const double *r, int nr, int64_t *out)
{
    double sum = 0;
    int64_t used = 0;
    for (int i = 0; i < nr; i++)
        sum += r[i];
    for (int i = 0; i < nr - 1; i++) {
        /* 1e-9: 1020*70/100 must be 714, not 713.99999 */
        out[i] = (int64_t)floor((double)n * r[i] / sum + 1e-9);
        if (out[i] > n - used)
            out[i] = n - used;
        used += out[i];
    }
    out[nr - 1] = n - used;
}

struct split_cand {
    uint64_t rem, key; /* remainder of cls_n*tot mod N; seeded tie-break */
    int c, s;
};

static int split_cmp_cand(const void *a, const void *b)
{
    const struct split_cand *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem < y->rem ? 1 : -1; /* larger remainder first */
    return (x->key > y->key) - (x->key < y->key);
}

struct split_state {
    int64_t *cnt, *need_c, *need_s;
    unsigned char *frac, *took; /* (n_cls, nr): share not an integer; got its +1 */
    int n_cls, nr;
    int *prev, *queue;          /* BFS over classes 0..n_cls-1 and parts n_cls.. */
};

static void split_take(struct split_state *st, int c, int s, int d)
{
    st->cnt[(size_t)c * st->nr + s] += d;
    st->took[(size_t)c * st->nr + s] = d > 0;
}

/* one more +1 placed: a shortest path from any class still short of rows to a part still
   short of rows; 0 when there is none (cannot happen while rows are missing) */
static int split_augment(struct split_state *st)
{
    int nc = st->n_cls, nr = st->nr, head = 0, tail = 0, end = -1;
    for (int v = 0; v < nc + nr; v++)
        st->prev[v] = -2;
    for (int c = 0; c < nc; c++)
        if (st->need_c[c] > 0) {
            st->prev[c] = -1;
            st->queue[tail++] = c;
        }
    while (head < tail && end < 0) {
        int u = st->queue[head++];
        if (u < nc) {
            for (int s = 0; s < nr && end < 0; s++) {
                size_t k = (size_t)u * nr + s;
                if (!st->frac[k] || st->took[k] || st->prev[nc + s] != -2)
                    continue;
                st->prev[nc + s] = u;
                st->queue[tail++] = nc + s;
                if (st->need_s[s] > 0)
                    end = s;
            }
        } else {
            for (int c = 0; c < nc; c++)
                if (st->took[(size_t)c * nr + (u - nc)] && st->prev[c] == -2) {
                    st->prev[c] = u;
                    st->queue[tail++] = c;
                }
        }
    }
    if (end < 0)
        return 0;
    st->need_s[end]--;
    for (int v = nc + end;;) {
        int c = st->prev[v];
        split_take(st, c, v - nc, 1);
        if (st->prev[c] == -1) {
            st->need_c[c]--;
            break;
        }
        v = st->prev[c];
        split_take(st, c, v - nc, -1);
    }
    return 1;
}

void split_stratify(int64_t *cnt, const int64_t *cls_n, int n_cls, const int64_t *tot, int nr,
                    struct rng *g)
{
    struct split_state st = {.cnt = cnt, .n_cls = n_cls, .nr = nr};
    size_t ncell = (size_t)n_cls * nr;
    struct split_cand *v = xmalloc(ncell * sizeof *v);
    int64_t N = 0, missing = 0;
    size_t nv = 0;
    for (int c = 0; c < n_cls; c++)
        N += cls_n[c];
    assert(N < ((int64_t)1 << 32));
    st.need_c = xcalloc(n_cls, sizeof *st.need_c);
    st.need_s = xcalloc(nr, sizeof *st.need_s);
    st.frac = xcalloc(ncell, 1);
    st.took = xcalloc(ncell, 1);
    st.prev = xmalloc((size_t)(n_cls + nr) * sizeof *st.prev);
    st.queue = xmalloc((size_t)(n_cls + nr) * sizeof *st.queue);
    for (int s = 0; s < nr; s++)
        st.need_s[s] = tot[s];
    for (int c = 0; c < n_cls; c++) {
        st.need_c[c] = cls_n[c];
        for (int s = 0; s < nr; s++) {
            uint64_t p = (uint64_t)cls_n[c] * (uint64_t)tot[s]; /* < 2^64 as N < 2^32 */
            size_t k = (size_t)c * nr + s;
            cnt[k] = N > 0 ? (int64_t)(p / (uint64_t)N) : 0;
            st.need_c[c] -= cnt[k];
            st.need_s[s] -= cnt[k];
            if (N > 0 && p % (uint64_t)N != 0) {
                st.frac[k] = 1;
                v[nv++] = (struct split_cand){p % (uint64_t)N, rng_u64(g), c, s};
            }
        }
        missing += st.need_c[c];
    }
    qsort(v, nv, sizeof *v, split_cmp_cand);
    for (size_t i = 0; i < nv; i++)
        if (st.need_c[v[i].c] > 0 && st.need_s[v[i].s] > 0) {
            split_take(&st, v[i].c, v[i].s, 1);
            st.need_c[v[i].c]--;
            st.need_s[v[i].s]--;
            missing--;
        }
    for (; missing > 0; missing--) {
        int found = split_augment(&st);
        assert(found);
        (void)found;
    }
    free(v);
    free(st.need_c);
    free(st.need_s);
    free(st.frac);
    free(st.took);
    free(st.prev);
    free(st.queue);
}
