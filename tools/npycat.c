/* npycat: concatenates .npy arrays along the first axis, as numpy.concatenate(axis=0), so
   that the shards of a sampler run (--shard I/N, given in shard order) make the 1-process
   output. The arrays must share dtype and trailing shape; the output is written atomically.
   Every input is loaded before the first byte is written (the header needs the total), so
   memory holds them all: fine for sample files, which are uint8 images. --rows A:B keeps
   rows [A, B) of the joined array, as numpy's x[A:B] with A, B >= 0 (clamped to its length),
   e.g. to score the first images of a sample file. */
#include <err.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"
#include "util/opt.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] = "usage: npycat [-o OUT.npy] [-r A:B] FILE|- ...\n";

static const char help[] =
    "\n"
    "Concatenates .npy arrays (or .npz members, FILE.npz:NAME) along the first axis, in\n"
    "the order given, as numpy.concatenate(axis=0): the shards that ddpm-sample and\n"
    "vae-sample write with --shard I/N, given in shard order, make the same bytes as one\n"
    "run. The arrays must have the same dtype and the same shape after the first axis.\n"
    "- reads stdin (once).\n"
    "\n"
    "  -o, --output FILE   output .npy (default -: stdout)\n"
    "  -r, --rows A:B      only rows A to B-1 of the joined array, as numpy's x[A:B]\n"
    "                      (A, B >= 0, either may be left out, B past the end is the end)\n"
    "  -h, --help          this text\n"
    "\n"
    "Example:\n"
    "  npycat -o samples.npy shard-0.npy shard-1.npy shard-2.npy\n"
    "  npycat -r :16 samples.npy -o first16.npy\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

/* "(3,32,32,3)" */
static const char *shape_str(const struct npy *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int d = 0; d < t->ndim && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    if (k < len)
        snprintf(buf + k, len - k, ")");
    return buf;
}

/* "A:B", "A:", ":B" or ":" into [*lo, *hi) (hi INT64_MAX when left out); -1 if malformed */
static int parse_rows(const char *s, int64_t *lo, int64_t *hi)
{
    const char *colon = strchr(s, ':');
    char *end;
    if (colon == NULL)
        return -1;
    *lo = 0;
    *hi = INT64_MAX;
    if (colon > s) {
        if (*s < '0' || *s > '9')
            return -1;
        *lo = (int64_t)strtoll(s, &end, 10);
        if (end != colon)
            return -1;
    }
    if (colon[1] != '\0') {
        if (colon[1] < '0' || colon[1] > '9')
            return -1;
        *hi = (int64_t)strtoll(colon + 1, &end, 10);
        if (*end != '\0')
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"output", 1, 0, 'o'}, {"rows", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int64_t row_lo = 0, row_hi = INT64_MAX;
    const char *out = "-";
    struct opt op;
    struct outfile of;
    char msg[TOOL_MSG], a[96], b[96];
    int c, stdin_used = 0;

    opt_init(&op, "o:r:h", lo);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r':
            if (parse_rows(optarg, &row_lo, &row_hi) == -1) {
                snprintf(msg, sizeof msg, "--rows: bad value: %s (want A:B, e.g. 0:16 or :16)",
                         optarg);
                usage(2, msg);
            }
            break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (optind == argc)
        usage(2, "FILE is required");
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (util_binary_to_tty(out))
        errx(1, UTIL_TTY_MSG);
    if (util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);

    int n = argc - optind;
    for (int i = 0; i < n; i++)
        if (strcmp(argv[optind + i], "-") == 0 && stdin_used++)
            errx(1, "-: stdin given twice");
    struct npy *t = xcalloc((size_t)n, sizeof *t);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *path = argv[optind + i];
        if (npy_load(path, NULL, &t[i], msg, sizeof msg) == -1)
            errx(1, "%s: %s", path, msg);
        if (t[i].ndim == 0)
            errx(1, "%s: a scalar has no first axis to join along", path);
        if (i > 0 && (t[i].dtype != t[0].dtype || t[i].ndim != t[0].ndim ||
                      memcmp(t[i].shape + 1, t[0].shape + 1,
                             (size_t)(t[0].ndim - 1) * sizeof t[0].shape[0]) != 0))
            errx(1, "%s: %s %s does not join %s %s of %s", path, npy_dtype_name(t[i].dtype),
                 shape_str(&t[i], a, sizeof a), npy_dtype_name(t[0].dtype),
                 shape_str(&t[0], b, sizeof b), argv[optind]);
        total += t[i].shape[0];
    }
    /* the rows kept, [row_lo, row_hi) of the joined array */
    row_lo = row_lo < total ? row_lo : total;
    row_hi = row_hi < total ? row_hi : total;
    row_hi = row_hi > row_lo ? row_hi : row_lo;
    int64_t shape[NPY_MAXDIM];
    memcpy(shape, t[0].shape, sizeof shape);
    shape[0] = row_hi - row_lo;
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (npy_write_header(of.f, t[0].dtype, t[0].ndim, shape, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    int64_t first = 0; /* row of the joined array where t[i] starts */
    for (int i = 0; i < n; i++) {
        int64_t rows = t[i].shape[0];
        int64_t r0 = row_lo > first ? row_lo - first : 0; /* its rows [r0, r1) are kept */
        int64_t r1 = row_hi - first < rows ? row_hi - first : rows;
        if (r1 > r0) {
            size_t row = npy_nbytes(&t[i]) / (size_t)rows;
            size_t len = (size_t)(r1 - r0) * row;
            if (fwrite((const char *)t[i].data + (size_t)r0 * row, 1, len, of.f) != len)
                err(1, "%s", out);
        }
        first += rows;
        npy_free(&t[i]);
    }
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    free(t);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
