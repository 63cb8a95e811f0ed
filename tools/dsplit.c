/* dsplit: shuffles the rows (first dimension) of an array and splits them into train/val/test
   files, optionally stratified by a label array and after dropping rare classes.

   Sizes, for N rows and ratios r (sum S): train = floor(N*r0/S), val = floor(N*r1/S) (three
   ratios only), test = the rest, so they always add up to N. With --stratify the totals are
   the same, and each class's count in each part is its share rounded up or down
   (split_stratify); each part is then shuffled once more so classes are mixed. All
   randomness is one xoshiro stream from --seed. */
#include "io/npy.h"
#include "util/opt.h"
#include "util/rng.h"
#include "util/split.h"
#include "util/util.h"
#include "nn/tool.h"

#include <err.h>
#include <limits.h>
#include <unistd.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage_line[] =
    "usage: dsplit IN.npy|- [--labels L.npy] --ratios A,B[,C] [--seed 0] [--stratify]\n"
    "              [--min-class-count K] -o PREFIX\n";

static const char help[] =
        "\n"
        "Shuffles the rows of IN (any .npy/.npz array with a leading N dimension, e.g. uint8\n"
        "images (N,H,W,3)) and writes PREFIX-train.npy, PREFIX-val.npy, PREFIX-test.npy\n"
        "(two ratios: train and test only), plus PREFIX-train-labels.npy etc. (int64) with\n"
        "--labels (int32 or int64, shape (N,)). All outputs appear together or not at all.\n"
        "\n"
        "  IN                     the array to split (- reads stdin)\n"
        "  -l, --labels FILE      int32/int64 (N,) labels, split along with the rows\n"
        "  -r, --ratios A,B[,C]   relative sizes, each > 0, e.g. 70,15,15 or 0.8,0.2\n"
        "                         (required); train = floor(N*A/sum), val = floor(N*B/sum),\n"
        "                         test = the rest\n"
        "  -S, --seed S           shuffle seed (default 0); same seed, same bytes (-s is an\n"
        "                         old spelling)\n"
        "  --stratify             apply the ratios within each class (needs --labels; -t\n"
        "                         is an old spelling)\n"
        "  -m, --min-class-count K\n"
        "                         drop classes with fewer than K rows (needs --labels);\n"
        "                         label values are kept as they are\n"
        "  -o, --output PREFIX    output file prefix (required)\n"
        "  -h, --help             this text\n"
        "\n"
        "Example:\n"
        "  dsplit data/pets-32.npy --labels data/pets-32-labels.npy --ratios 70,15,15 \\\n"
        "      --stratify -o data/pets-32\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

static const char *const split_name[3] = {"train", "val", "test"};

static int parse_ratios(const char *s, double *r)
{
    char buf[256], *tok, *save;
    int n = 0;
    double sum = 0;
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        /* a ratio of 0 would write an empty split */
        if (n == 3 || util_parse_float(tok, 0, 1e12, &r[n]) == -1 || r[n] <= 0)
            return -1;
        sum += r[n++];
    }
    return (n == 2 || n == 3) && sum > 0 ? n : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* labels as int64 (N,) */
static int64_t *load_labels(const char *path, int64_t n)
{
    struct npy t;
    char msg[TOOL_MSG];
    int64_t *lab;
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if ((t.dtype != NPY_I64 && t.dtype != NPY_I32) || t.ndim != 1)
        errx(1, "%s: expected int32 or int64 labels (N,), got %s with %d dimensions", path,
             npy_dtype_name(t.dtype), t.ndim);
    if (t.shape[0] != n)
        errx(1, "%s: %jd labels for %jd rows", path, (intmax_t)t.shape[0], (intmax_t)n);
    lab = xmalloc(sizeof *lab * (n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        lab[i] = t.dtype == NPY_I64 ? ((int64_t *)t.data)[i] : ((int32_t *)t.data)[i];
    npy_free(&t);
    return lab;
}

/* Drops rows of classes with fewer than k rows; fills keep[] (row indices, ascending) and
   returns how many remain. Reports dropped classes on stderr. */
static int64_t drop_rare(const int64_t *lab, int64_t n, long k, int64_t *keep)
{
    int64_t *sorted = xmalloc(sizeof *sorted * (n ? n : 1)), m = 0, dropped = 0;
    int ndrop = 0;
    char list[1024] = "";
    size_t len = 0;
    memcpy(sorted, lab, sizeof *sorted * n);
    qsort(sorted, n, sizeof *sorted, cmp_i64);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && sorted[j] == sorted[i])
            j++;
        if (j - i < k) {
            ndrop++;
            dropped += j - i;
            if (len < sizeof list - 64)
                len += snprintf(list + len, sizeof list - len, "%s%jd (%jd)", ndrop > 1 ? ", " : "",
                                (intmax_t)sorted[i], (intmax_t)(j - i));
        }
        i = j;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t *p = bsearch(&lab[i], sorted, n, sizeof *sorted, cmp_i64);
        int64_t lo = p - sorted, hi = lo;
        while (lo > 0 && sorted[lo - 1] == lab[i])
            lo--;
        while (hi < n && sorted[hi] == lab[i])
            hi++;
        if (hi - lo >= k)
            keep[m++] = i;
    }
    if (ndrop > 0)
        warnx("dropped %d class%s with fewer than %ld rows: %s; %jd rows removed, %jd left",
              ndrop, ndrop > 1 ? "es" : "", k, list, (intmax_t)dropped, (intmax_t)m);
    free(sorted);
    return m;
}

/* Assigns rows rows[0..n) to splits: order[] gets them grouped train, val, test and
   size[] the group sizes. */
static void assign(const int64_t *rows, int64_t n, const int64_t *lab, int stratify,
                   const double *r, int nr, struct rng *g, int64_t *order, int64_t *size)
{
    int64_t *tmp = xmalloc(sizeof *tmp * (n ? n : 1));
    memcpy(tmp, rows, sizeof *tmp * n);
    if (!stratify) {
        rng_shuffle(g, tmp, n);
        split_sizes(n, r, nr, size);
        memcpy(order, tmp, sizeof *tmp * n);
        free(tmp);
        return;
    }
    /* rows sorted by (label, index): classes in ascending label order, stable */
    int64_t *key = xmalloc(sizeof *key * 2 * (n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        key[2 * i] = lab[rows[i]];
        key[2 * i + 1] = rows[i];
    }
    qsort(key, n, 2 * sizeof *key, cmp_pair);
    int64_t *cls_n = xmalloc(sizeof *cls_n * (n ? n : 1)), *cnt;
    int n_cls = 0;
    for (int64_t i = 0; i < n; n_cls++) {
        int64_t j = i;
        while (j < n && key[2 * j] == key[2 * i])
            j++;
        cls_n[n_cls] = j - i;
        i = j;
    }
    if (n >= ((int64_t)1 << 32))
        errx(1, "%jd rows: too many to stratify", (intmax_t)n);
    split_sizes(n, r, nr, size);
    cnt = xmalloc(sizeof *cnt * (size_t)n_cls * nr);
    split_stratify(cnt, cls_n, n_cls, size, nr, g);
    int64_t fill[3] = {0, 0, 0}, i = 0;
    for (int c = 0; c < n_cls; c++) {
        int64_t *cls = tmp, off = 0, base = 0;
        for (int64_t q = 0; q < cls_n[c]; q++)
            cls[q] = key[2 * (i + q) + 1];
        rng_shuffle(g, cls, cls_n[c]);
        for (int s = 0; s < nr; s++) {
            int64_t k = cnt[(size_t)c * nr + s];
            memcpy(order + base + fill[s], cls + off, sizeof *cls * k);
            fill[s] += k;
            off += k;
            base += size[s];
        }
        i += cls_n[c];
    }
    free(cls_n);
    free(cnt);
    int64_t base = 0;
    for (int s = 0; s < nr; base += size[s], s++)
        rng_shuffle(g, order + base, size[s]);
    free(key);
    free(tmp);
}

/* PREFIX-SPLIT[-labels].npy */
static char *output_path(const char *prefix, int s, int l)
{
    size_t len = strlen(prefix) + 32;
    char *p = xmalloc(len);
    snprintf(p, len, "%s-%s%s.npy", prefix, split_name[s], l ? "-labels" : "");
    return p;
}

/* before the work: every output can be written */
static void check_outputs(const char *prefix, int nr, int labels)
{
    char msg[TOOL_MSG];
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < (labels ? 2 : 1) && !(nr == 2 && s == 1); l++) {
            char *p = output_path(prefix, s, l);
            if (util_check_output(p, msg, sizeof msg) == -1)
                errx(1, "%s: %s", p, msg);
            free(p);
        }
}

/* Writes every output to a temporary file, then renames them all; on failure none remain. */
static void write_outputs(const char *prefix, const struct npy *x, const int64_t *lab,
                          const int64_t *order, const int64_t *size, int nr)
{
    struct outfile o[6];
    char *paths[6], msg[TOOL_MSG];
    const char *cur = prefix;
    int n = 0;
    size_t rowb = npy_nbytes(x) / (size_t)x->shape[0];
    int64_t base = 0;
    for (int s = 0; s < 3; s++) {
        if (nr == 2 && s == 1)
            continue;
        int64_t shape[NPY_MAXDIM];
        memcpy(shape, x->shape, sizeof shape);
        shape[0] = size[s == 2 ? nr - 1 : s];
        for (int l = 0; l < (lab ? 2 : 1); l++) {
            paths[n] = output_path(prefix, s, l);
            cur = paths[n];
            if (outfile_open(&o[n], paths[n], msg, sizeof msg) == -1)
                goto fail;
            n++;
            FILE *f = o[n - 1].f;
            if (l == 0) {
                if (npy_write_header(f, x->dtype, x->ndim, shape, msg, sizeof msg) == -1)
                    goto fail;
                for (int64_t i = 0; i < shape[0]; i++)
                    fwrite((const char *)x->data + (size_t)order[base + i] * rowb, 1, rowb, f);
            } else {
                if (npy_write_header(f, NPY_I64, 1, shape, msg, sizeof msg) == -1)
                    goto fail;
                for (int64_t i = 0; i < shape[0]; i++)
                    fwrite(&lab[order[base + i]], sizeof *lab, 1, f);
            }
            if (ferror(f)) {
                snprintf(msg, sizeof msg, "write error");
                goto fail;
            }
        }
        base += shape[0];
    }
    for (int i = 0; i < n; i++)
        if (outfile_commit(&o[i], msg, sizeof msg) == -1) {
            for (int j = 0; j < i; j++) /* the rest are temporary: they go at exit */
                unlink(paths[j]);
            errx(1, "%s: %s", paths[i], msg);
        }
    for (int i = 0; i < n; i++)
        free(paths[i]);
    return;
fail: /* the temporary outputs go at exit (nn/tool.h) */
    errx(1, "%s: %s", cur, msg);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"labels", required_argument, NULL, 'l'},
        {"ratios", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 'S'},
        {"stratify", no_argument, NULL, 't'},
        {"min-class-count", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *labels = NULL, *prefix = NULL, *in;
    double r[3];
    int nr = 0, stratify = 0, c;
    long seed = 0, mincount = 0;
    char msg[TOOL_MSG];
    struct opt op;
    /* -s (seed) and -t (stratify) are old spellings: -s is --size and -t --threads elsewhere */
    opt_init(&op, "l:r:s:S:tm:o:h", opts);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 'l': labels = optarg; break;
        case 'r':
            if ((nr = parse_ratios(optarg, r)) == -1) {
                opt_bad(&op, "want 2 or 3 numbers > 0, e.g. 70,15,15");
                usage(2, op.msg);
            }
            break;
        case 's':
        case 'S':
            if (opt_long(&op, 0, LONG_MAX, &seed) == -1)
                usage(2, op.msg);
            break;
        case 't': stratify = 1; break;
        case 'm':
            if (opt_long(&op, 1, LONG_MAX, &mincount) == -1)
                usage(2, op.msg);
            break;
        case 'o': prefix = optarg; break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (optind == argc)
        usage(2, "IN.npy is required");
    if (optind < argc - 1) {
        snprintf(msg, sizeof msg, "unexpected argument '%.80s'", argv[optind + 1]);
        usage(2, msg);
    }
    if (nr == 0)
        usage(2, "--ratios A,B[,C] is required");
    if (prefix == NULL || *prefix == '\0')
        usage(2, "-o PREFIX is required");
    if ((stratify || mincount) && labels == NULL)
        usage(2, "--stratify and --min-class-count need --labels");
    if (strcmp(prefix, "-") == 0)
        usage(2, "-o -: the outputs are several files; give a file name prefix");
    in = argv[optind];
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    check_outputs(prefix, nr, labels != NULL);

    struct npy x;
    if (npy_load(in, NULL, &x, msg, sizeof msg) == -1)
        errx(1, "%s: %s", in, msg);
    if (x.ndim < 1)
        errx(1, "%s: a scalar has no rows to split", in);
    int64_t n = x.shape[0];
    int64_t *lab = labels ? load_labels(labels, n) : NULL;
    int64_t *rows = xmalloc(sizeof *rows * (n ? n : 1)), m = n;
    if (mincount > 0)
        m = drop_rare(lab, n, mincount, rows);
    else
        for (int64_t i = 0; i < n; i++)
            rows[i] = i;
    if (m == 0)
        errx(1, "%s: no rows to split", in);

    struct rng g;
    int64_t size[3], *order = xmalloc(sizeof *order * m);
    rng_seed(&g, (uint64_t)seed);
    assign(rows, m, lab, stratify, r, nr, &g, order, size);
    write_outputs(prefix, &x, lab, order, size, nr);
    free(order);
    free(rows);
    free(lab);
    npy_free(&x);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
