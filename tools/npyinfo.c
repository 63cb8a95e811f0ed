/* npyinfo: dtype, shape and value statistics of .npy files and .npz members.
   One line per array; --json makes it one JSON object per line; --shape prints only the
   shape ("1,32,32,3"), which scripts and the bats helper npy_shape use. A 1-D shape keeps
   numpy's trailing comma ("600,", as numpy's (600,)) so it cannot be read as a scalar's
   "" or another rank. */
#include "io/npy.h"
#include "util/opt.h"
#include "util/util.h"
#include "nn/tool.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage_line[] = "usage: npyinfo [--shape] [--json] FILE|- ...\n";

static const char help[] =
    "\n"
    "Prints, one line per array, the dtype, shape, min, max and mean of each .npy (or of\n"
    "each member of an .npz; FILE.npz:NAME picks one; - reads stdin). When the last\n"
    "dimension is 3 (images (N,H,W,3)), also per-channel min, max and mean. Non-finite\n"
    "values are counted and left out.\n"
    "\n"
    "  -s, --shape   print only the shape, comma-separated: 1,32,32,3; a 1-D array as\n"
    "                600, (numpy's (600,)); a scalar as an empty line\n"
    "  -j, --json    one JSON object per array\n"
    "  -h, --help    this text\n"
    "\n"
    "Example:\n"
    "  npyinfo data/flowers102-32-train.npy; n=$(npyinfo --shape x.npy | cut -d, -f1)\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

struct stats {
    double min[4], max[4], sum[4]; /* [0] overall, [1..3] per channel */
    int64_t n[4], nonfinite;
};

/* i: flat index; channel = i % 3 when per-channel */
#define ACCUM(T)                                                                              \
    do {                                                                                      \
        const T *x = t->data;                                                                 \
        for (int64_t i = 0; i < cnt; i++) {                                                   \
            double v = (double)x[i];                                                          \
            int c = ch ? 1 + (int)(i % 3) : 0;                                                \
            if (!isfinite(v)) {                                                               \
                s->nonfinite++;                                                               \
                continue;                                                                     \
            }                                                                                 \
            if (v < s->min[c])                                                                \
                s->min[c] = v;                                                                \
            if (v > s->max[c])                                                                \
                s->max[c] = v;                                                                \
            s->sum[c] += v;                                                                   \
            s->n[c]++;                                                                        \
        }                                                                                     \
    } while (0)

/* uint8 (image batches, the common case): a histogram per channel, no per-value branches */
static void u8_stats(const uint8_t *x, int64_t cnt, int ch, struct stats *s)
{
    static int64_t h[4][256];
    int64_t i = 0;
    memset(h, 0, sizeof h);
    if (ch)
        for (; i + 3 <= cnt; i += 3) {
            h[1][x[i]]++;
            h[2][x[i + 1]]++;
            h[3][x[i + 2]]++;
        }
    for (; i < cnt; i++)
        h[ch ? 1 + i % 3 : 0][x[i]]++;
    for (int c = 0; c < 4; c++)
        for (int v = 0; v < 256; v++)
            if (h[c][v]) {
                s->min[c] = fmin(s->min[c], v);
                s->max[c] = fmax(s->max[c], v);
                s->sum[c] += (double)v * h[c][v];
                s->n[c] += h[c][v];
            }
}

static void compute(const struct npy *t, int ch, struct stats *s)
{
    int64_t cnt = npy_count(t);
    for (int c = 0; c < 4; c++) {
        s->min[c] = INFINITY;
        s->max[c] = -INFINITY;
        s->sum[c] = 0;
        s->n[c] = 0;
    }
    s->nonfinite = 0;
    switch (t->dtype) {
    case NPY_U8: u8_stats(t->data, cnt, ch, s); break;
    case NPY_I32: ACCUM(int32_t); break;
    case NPY_I64: ACCUM(int64_t); break;
    case NPY_F32: ACCUM(float); break;
    case NPY_F64: ACCUM(double); break;
    }
    if (ch)
        for (int c = 1; c < 4; c++) {
            s->min[0] = fmin(s->min[0], s->min[c]);
            s->max[0] = fmax(s->max[0], s->max[c]);
            s->sum[0] += s->sum[c];
            s->n[0] += s->n[c];
        }
}

static void num(double v, int json)
{
    if (!isfinite(v))
        fputs(json ? "null" : "-", stdout);
    else
        printf("%.9g", v);
}

static void shape_str(const struct npy *t, char *buf, size_t n)
{
    int k = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->ndim; i++)
        k += snprintf(buf + k, n - k, "%s%jd", i ? "," : "", (intmax_t)t->shape[i]);
    if (t->ndim == 1)
        snprintf(buf + k, n - k, ",");
}

/* text: "name: float32 (2,3) min -1 max 2 mean 0.5" */
static void print_text(const char *name, const struct npy *t, const struct stats *s, int ch)
{
    char sh[128];
    shape_str(t, sh, sizeof sh);
    printf("%s: %s (%s) min ", name, npy_dtype_name(t->dtype), sh);
    num(s->n[0] ? s->min[0] : NAN, 0);
    printf(" max ");
    num(s->n[0] ? s->max[0] : NAN, 0);
    printf(" mean ");
    num(s->n[0] ? s->sum[0] / s->n[0] : NAN, 0);
    if (ch) {
        static const char *const what[3] = {" channel min ", " max ", " mean "};
        for (int w = 0; w < 3; w++) {
            fputs(what[w], stdout);
            for (int c = 1; c < 4; c++) {
                double v = !s->n[c] ? NAN : w == 0 ? s->min[c] : w == 1 ? s->max[c]
                                                                     : s->sum[c] / s->n[c];
                if (c > 1)
                    putchar(',');
                num(v, 0);
            }
        }
    }
    if (s->nonfinite)
        printf(" nonfinite %jd", (intmax_t)s->nonfinite);
    putchar('\n');
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const char *name, const struct npy *t, const struct stats *s, int ch)
{
    printf("{\"name\": ");
    json_str(name);
    printf(", \"dtype\": \"%s\", \"shape\": [", npy_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim; i++)
        printf("%s%jd", i ? ", " : "", (intmax_t)t->shape[i]);
    printf("], \"min\": ");
    num(s->n[0] ? s->min[0] : NAN, 1);
    printf(", \"max\": ");
    num(s->n[0] ? s->max[0] : NAN, 1);
    printf(", \"mean\": ");
    num(s->n[0] ? s->sum[0] / s->n[0] : NAN, 1);
    if (ch) {
        static const char *const key[3] = {"channel_min", "channel_max", "channel_mean"};
        for (int w = 0; w < 3; w++) {
            printf(", \"%s\": [", key[w]);
            for (int c = 1; c < 4; c++) {
                double v = !s->n[c] ? NAN : w == 0 ? s->min[c] : w == 1 ? s->max[c]
                                                                     : s->sum[c] / s->n[c];
                if (c > 1)
                    printf(", ");
                num(v, 1);
            }
            putchar(']');
        }
    }
    printf(", \"nonfinite\": %jd}\n", (intmax_t)s->nonfinite);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shape", no_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int shape_only = 0, json = 0, c;
    struct opt op;
    char msg[TOOL_MSG];
    opt_init(&op, "sjh", opts);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 's': shape_only = 1; break;
        case 'j': json = 1; break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (optind == argc)
        usage(2, "FILE is required");
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    for (int a = optind; a < argc; a++) {
        struct npy *arr;
        char **names;
        int n;
        if (npy_load_all(argv[a], &arr, &names, &n, msg, sizeof msg) == -1)
            errx(1, "%s: %s", argv[a], msg);
        for (int i = 0; i < n; i++) {
            char label[1024], sh[128];
            const struct npy *t = &arr[i];
            size_t la = strlen(argv[a]), ln = names[i] ? strlen(names[i]) : 0;
            int named = names[i] == NULL || (la > ln && argv[a][la - ln - 1] == ':' &&
                                             strcmp(argv[a] + la - ln, names[i]) == 0);
            snprintf(label, sizeof label, "%s%s%s", argv[a], named ? "" : ":",
                     named ? "" : names[i]);
            if (shape_only) {
                shape_str(t, sh, sizeof sh);
                if (n > 1)
                    printf("%s: ", names[i]);
                printf("%s\n", sh);
                continue;
            }
            struct stats s;
            int ch = t->ndim >= 2 && t->shape[t->ndim - 1] == 3;
            compute(t, ch, &s);
            if (json)
                print_json(label, t, &s, ch);
            else
                print_text(label, t, &s, ch);
        }
        npy_free_all(arr, names, n);
    }
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
