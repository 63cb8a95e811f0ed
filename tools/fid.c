/* fid: Frechet Inception Distance between two sets of images, as pytorch-fid computes it
   (its FID Inception v3, pool3 features, float64 mean and covariance, the Frechet distance),
   with the symmetric-eigenvalue form of tr sqrt(S1 S2) via LAPACK. Each side is a uint8 image
   array (.npy/.npz or - for stdin), an image folder, a pool3 feature cache (float (N,D) .npy)
   or a statistics .npz (mu, sigma). --save-stats and --save-features write the statistics or
   the features of one input so a reference is computed once. */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inception.h"
#include "metrics.h"
#include "nn.h"
#include "npy.h"
#include "util.h"

static const char usage_line[] =
    "usage: fid [-v] [--json] [--batch-size N] [--dims 64|192|768|2048] [--threads N]\n"
    "           [--weights PATH|synthetic] [--resize pytorch-fid|torch-fidelity]\n"
    "           (A B | --save-stats A OUT.npz | --save-features A OUT.npy)\n";

static void usage(int status)
{
    FILE *f = status == 0 ? stdout : stderr;
    fputs(usage_line, f);
    if (status == 0)
        fputs("\n"
              "Prints 'FID:  <value>' (pytorch-fid's output). A and B are each one of:\n"
              "  IMAGES.npy|.npz|-   uint8 images (N,H,W,3); - reads stdin\n"
              "  DIR                 a folder of images (bmp jpg jpeg pgm png ppm tif tiff webp,\n"
              "                      case-sensitive, sorted, not recursive)\n"
              "  FEATURES.npy        float32/float64 (N,D) features (from --save-features)\n"
              "  STATS.npz           mu and sigma (pytorch-fid --save-stats files)\n"
              "\n"
              "  --save-stats        write the statistics (mu, sigma) of A to OUT.npz\n"
              "  --save-features     write the features of A to OUT.npy, float32 (N,dims)\n"
              "  --json              print a JSON object instead\n"
              "  --batch-size N      images per batch (default 50)\n"
              "  --dims D            feature layer: 64, 192, 768 or 2048 (pool3, default)\n"
              "  --threads N         threads (default 2)\n"
              "  --weights PATH      FID Inception weights (.pth or .safetensors), or synthetic\n"
              "                      (closed-form stand-in: scores are NOT comparable with\n"
              "                      published ones). Default: $FID_WEIGHTS, else\n"
              "                      weights/" INCEPTION_WEIGHTS_FILE "\n"
              "                      next to bin/ or in the current directory (make weights)\n"
              "  --resize MODE       pytorch-fid (default: u8/255, bilinear half-pixel to 299,\n"
              "                      2x-1) or torch-fidelity (TF1 bilinear on 0..255, (x-128)/128)\n"
              "  -v, --verbose       settings and progress on stderr\n",
              f);
    exit(status);
}

static void bad_usage(const char *what, const char *arg)
{
    warnx("%s: invalid value '%s'", what, arg);
    usage(2);
}

struct side {
    const char *path;
    struct metrics_input in;
    double *mu, *sigma;
    int64_t n;
};

struct sink_ctx {
    struct metrics_stats st;
    struct progress pr;
    int verbose;
    long done;
    FILE *feat;     /* --save-features */
};

static int sink(void *p, const float *f, int n)
{
    struct sink_ctx *c = p;
    if (c->feat != NULL) {
        if (fwrite(f, sizeof(float) * c->st.d, n, c->feat) != (size_t)n)
            return -1;
    } else
        metrics_stats_add(&c->st, f, n);
    c->done += n;
    if (c->verbose)
        progress_update(&c->pr, c->done, NULL);
    return 0;
}

struct opts {
    int batch, dims, verbose, json;
    enum inception_resize mode;
    const char *weights;
};

static int needs_net(const struct side *s)
{
    return s->in.kind == METRICS_IMAGES || s->in.kind == METRICS_FOLDER;
}

static void load_net(struct inception *net, const struct opts *o, char **argv)
{
    char w[4096], msg[1024];
    if (inception_open(net, o->weights, argv[0], w, sizeof w, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (o->verbose)
        fprintf(stderr, "fid: weights %s; preprocessing %s; batch %d; dims %d; %d threads\n", w,
                o->mode == INCEPTION_RESIZE_PYTORCH_FID
                    ? "pytorch-fid (u8/255, bilinear half-pixel to 299, 2x-1)"
                    : "torch-fidelity (0..255, TF1 bilinear to 299, (x-128)/128)",
                o->batch, o->dims, nn_get_threads());
    if (net->synthetic)
        warnx("warning: synthetic Inception weights: scores are NOT comparable with published "
              "ones");
}

/* side -> mu, sigma (or streamed to feat) */
static void side_stats(struct side *s, const struct inception *net, const struct opts *o,
                       FILE *feat)
{
    char msg[512];
    if (s->in.kind == METRICS_STATS) {
        if (s->in.d != o->dims)
            errx(1, "%s: statistics have %d dims, --dims is %d", s->path, s->in.d, o->dims);
        s->mu = s->in.mu;
        s->sigma = s->in.sigma;
        s->in.mu = s->in.sigma = NULL;
        return;
    }
    struct sink_ctx c;
    memset(&c, 0, sizeof c);
    metrics_stats_init(&c.st, o->dims);
    c.verbose = o->verbose;
    c.feat = feat;
    progress_init(&c.pr, "fid", s->path, (long)s->in.n);
    if (metrics_input_features(&s->in, net, o->batch, o->mode, o->dims, sink, &c, msg,
                               sizeof msg) == -1) {
        if (feat != NULL && ferror(feat))
            errx(1, "writing features: write error");
        errx(1, "%s: %s", s->path, msg);
    }
    if (o->verbose)
        progress_done(&c.pr);
    s->n = c.done;
    if (feat == NULL) {
        s->mu = xmalloc((size_t)o->dims * sizeof(double));
        s->sigma = xmalloc((size_t)o->dims * o->dims * sizeof(double));
        if (metrics_stats_get(&c.st, s->mu, s->sigma, msg, sizeof msg) == -1)
            errx(1, "%s: %s", s->path, msg);
        if (s->n < o->dims)
            warnx("warning: %s: %lld samples < %d dims: the covariance is singular and FID is "
                  "strongly biased at this size; consider kid", s->path, (long long)s->n,
                  o->dims);
    }
    metrics_stats_free(&c.st);
}

static void open_side(struct side *s, const char *path)
{
    char msg[512];
    memset(s, 0, sizeof *s);
    s->path = path;
    if (metrics_input_open(&s->in, path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "batch-size", required_argument, NULL, 'b' },
        { "dims", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' },
        { "weights", required_argument, NULL, 'w' },
        { "resize", required_argument, NULL, 'r' },
        { "save-stats", no_argument, NULL, 'S' },
        { "save-features", no_argument, NULL, 'F' },
        { "json", no_argument, NULL, 'j' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct opts o = { 50, 2048, 0, 0, INCEPTION_RESIZE_PYTORCH_FID, NULL };
    int save_stats = 0, save_features = 0, c;
    long v, threads = 2;
    char msg[512];

    while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (util_parse_long(optarg, 1, 4096, &v) == -1)
                bad_usage("--batch-size", optarg);
            o.batch = (int)v;
            break;
        case 'd':
            if (util_parse_long(optarg, 1, 2048, &v) == -1 ||
                (v != 64 && v != 192 && v != 768 && v != 2048))
                bad_usage("--dims", optarg);
            o.dims = (int)v;
            break;
        case 't':
            if (util_parse_long(optarg, 1, 256, &threads) == -1)
                bad_usage("--threads", optarg);
            break;
        case 'w':
            o.weights = optarg;
            break;
        case 'r':
            if (strcmp(optarg, "pytorch-fid") == 0)
                o.mode = INCEPTION_RESIZE_PYTORCH_FID;
            else if (strcmp(optarg, "torch-fidelity") == 0)
                o.mode = INCEPTION_RESIZE_TORCH_FIDELITY;
            else
                bad_usage("--resize", optarg);
            break;
        case 'S':
            save_stats = 1;
            break;
        case 'F':
            save_features = 1;
            break;
        case 'j':
            o.json = 1;
            break;
        case 'v':
            o.verbose = 1;
            break;
        case 'h':
            usage(0);
            break;
        default:
            usage(2);
        }
    }
    if (argc - optind != 2 || (save_stats && save_features))
        usage(2);
    if (strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-") == 0) {
        warnx("only one input can be stdin");
        usage(2);
    }
    nn_blas_setup(argv, o.verbose);
    nn_set_threads((int)threads);
    util_cleanup_signals();

    struct inception net;
    struct side a, b;
    memset(&net, 0, sizeof net);
    open_side(&a, argv[optind]);
    if (save_stats || save_features) {
        const char *out = argv[optind + 1];
        struct outfile of;
        if (a.in.kind == METRICS_STATS)
            errx(1, "%s: is statistics already", a.path);
        if (needs_net(&a))
            load_net(&net, &o, argv);
        if (save_stats) {
            side_stats(&a, &net, &o, NULL);
            if (metrics_stats_save(out, a.mu, a.sigma, o.dims, msg, sizeof msg) == -1)
                errx(1, "%s: %s", out, msg);
        } else {
            int64_t shape[2] = { a.in.n, o.dims };
            if (outfile_open(&of, out, msg, sizeof msg) == -1)
                errx(1, "%s: %s", out, msg);
            if (npy_write_header(of.f, NPY_F32, 2, shape, msg, sizeof msg) == -1) {
                outfile_abort(&of);
                errx(1, "%s: %s", out, msg);
            }
            side_stats(&a, &net, &o, of.f);
            if (outfile_commit(&of, msg, sizeof msg) == -1)
                errx(1, "%s: %s", out, msg);
        }
    } else {
        open_side(&b, argv[optind + 1]);
        if (needs_net(&a) || needs_net(&b))
            load_net(&net, &o, argv);
        side_stats(&a, &net, &o, NULL);
        side_stats(&b, &net, &o, NULL);
        double fid;
        if (metrics_frechet(&fid, a.mu, a.sigma, b.mu, b.sigma, o.dims, msg, sizeof msg) == -1)
            errx(1, "%s", msg);
        char r[64];
        metrics_repr(r, sizeof r, fid);
        if (o.json)
            printf("{\n    \"frechet_inception_distance\": %s,\n    \"n1\": %lld,\n"
                   "    \"n2\": %lld,\n    \"dims\": %d,\n    \"resize\": \"%s\"%s\n}\n", r, (long long)a.n, (long long)b.n,
                   o.dims, o.mode == INCEPTION_RESIZE_PYTORCH_FID ? "pytorch-fid"
                                                                  : "torch-fidelity",
                   net.synthetic ? ",\n    \"synthetic_weights\": true" : "");
        else
            printf("FID:  %s\n", r);
        free(b.mu);
        free(b.sigma);
        metrics_input_free(&b.in);
    }
    free(a.mu);
    free(a.sigma);
    metrics_input_free(&a.in);
    inception_free(&net);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
