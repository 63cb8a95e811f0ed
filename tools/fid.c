/* fid: Frechet Inception Distance between two sets of images, as pytorch-fid computes it
   (its FID Inception v3, pool3 features, float64 mean and covariance, the Frechet distance),
   with the symmetric-eigenvalue form of tr sqrt(S1 S2) via LAPACK. Each side is a uint8 image
   array (.npy/.npz or - for stdin), an image folder, a pool3 feature cache (float (N,D) .npy)
   or a statistics .npz (mu, sigma). --save-stats and --save-features write the statistics or
   the features of one input so a reference is computed once. Under mpirun the ranks split
   each input's images and rank 0 gathers the features (par.h); --shard I/N with
   --save-features writes one shard's. */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/inception.h"
#include "eval/metrics.h"
#include "eval/metrics_input.h"
#include "eval/metrics_cli.h"
#include "nn/nn.h"
#include "util/par.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: fid [-v] [--json] [-b N] [--dims 64|192|768|2048|2023] [-t N]\n"
    "           [--weights PATH|synthetic] [--resize pytorch-fid|torch-fidelity|clean]\n"
    "           (A B | --save-stats A OUT.npz | --save-features [--shard I/N] A OUT.npy)\n";

static const char help[] =
    "\n"
    "Prints 'FID:  <value>' (pytorch-fid's output). A and B are each one of:\n"
    "  IMAGES.npy|.npz|-   uint8 images (N,H,W,3); - reads stdin\n"
    "  DIR                 a folder of images (bmp jpg jpeg pgm png ppm tif tiff webp,\n"
    "                      case-sensitive, sorted, not recursive)\n"
    "  FEATURES.npy        float32/float64 (N,D) features (from --save-features)\n"
    "  STATS.npz           mu and sigma (pytorch-fid --save-stats files)\n"
    "\n"
    "  --save-stats        write the statistics (mu, sigma) of A to OUT.npz\n"
    "  --save-features     write the features of A to OUT.npy, float32 (N,dims)\n"
    "  --shard I/N         with --save-features: only shard I (from 0) of N, the images\n"
    "                      whose index falls in the I-th of N contiguous ranges (sizes\n"
    "                      differ by at most one); npycat joins the shards' features into\n"
    "                      the bytes of one run, and fid of them gives its score\n"
    "  --json              print a JSON object instead\n"
    "  -b, --batch-size N  images per batch (default 50)\n"
    "  --dims D            feature layer: 64, 192, 768 or 2048 (pool3, default), or\n"
    "                      2023: sFID's spatial features (guided-diffusion: Mixed_6d's\n"
    "                      branch1x1, channels 0-6, 17x17; its FID is sFID, which\n"
    "                      guided-diffusion computes after --resize torch-fidelity)\n"
    "  -t, --threads N     threads (default: $OMP_NUM_THREADS, else 2)\n"
    "  --weights PATH      FID Inception weights (.pth or .safetensors), or synthetic\n"
    "                      (closed-form stand-in: scores are NOT comparable with\n"
    "                      published ones). Default: $FID_WEIGHTS, else\n"
    "                      weights/" INCEPTION_WEIGHTS_FILE "\n"
    "                      next to bin/ or in the current directory (make weights)\n"
    "  --resize MODE       pytorch-fid (default: u8/255, bilinear half-pixel to 299,\n"
    "                      2x-1), torch-fidelity (TF1 bilinear on 0..255, (x-128)/128)\n"
    "                      or clean (clean-fid: PIL bicubic with antialias, float)\n"
    "  --skip-bad          skip the files of a folder that do not decode, each named\n"
    "                      on stderr (default: the first one is an error)\n"
    "  -v, --verbose       settings and progress on stderr\n"
    METRICS_CLI_HELP_IGNORED("  ", "                      ")
    "  -h, --help          this text\n"
    "\n"
    "Under mpirun -np K, rank r runs the r-th of K contiguous ranges of each input's\n"
    "images and rank 0 gathers the features in image order and writes the one output:\n"
    "the bytes of a 1-process run. Every rank reads the inputs (not stdin); save to a file.\n"
    "\n"
    "Example (pytorch-fid's command line works too):\n"
    "  fid --save-stats data/flowers102-32-test.npy flowers-test.npz\n"
    "  ddpm-sample --model weights/ddpm-cifar10-32 -n 100 | fid - flowers-test.npz\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

struct side {
    const char *path;
    struct metrics_input in;
    double *mu, *sigma;
    int64_t n;
};

static void load_net(struct inception *net, const struct metrics_cli *o, int dims, char **argv)
{
    char settings[32], msg[TOOL_MSG];
    snprintf(settings, sizeof settings, "dims %d", dims);
    if (metrics_cli_load_net(net, o, argv[0], "fid", settings, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
}

/* side -> mu, sigma */
static void side_stats(struct side *s, const struct inception *net, const struct metrics_cli *o,
                       int dims)
{
    char msg[TOOL_MSG];
    if (s->in.kind == METRICS_STATS) {
        if (s->in.d != dims)
            errx(1, "%s: statistics have %d dims, --dims is %d", s->path, s->in.d, dims);
        s->mu = s->in.mu;
        s->sigma = s->in.sigma;
        s->in.mu = s->in.sigma = NULL;
        return;
    }
    struct metrics_stats st;
    struct metrics_cli_sink sk;
    memset(&sk, 0, sizeof sk);
    metrics_stats_init(&st, dims);
    sk.d = dims;
    sk.st = &st;
    if (metrics_cli_features(&sk, &s->in, s->path, net, o, "fid", msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (par_rank() > 0) { /* its features went to rank 0 */
        metrics_stats_free(&st);
        return;
    }
    s->n = sk.n;
    s->mu = xmalloc((size_t)dims * sizeof(double));
    s->sigma = xmalloc((size_t)dims * dims * sizeof(double));
    if (metrics_stats_get(&st, s->mu, s->sigma, msg, sizeof msg) == -1)
        errx(1, "%s: %s", s->path, msg);
    if (s->n < dims)
        warnx("warning: %s: %lld samples < %d dims: the covariance is singular and FID is "
              "strongly biased at this size; consider kid", s->path, (long long)s->n, dims);
    metrics_stats_free(&st);
}

/* metrics_frechet refuses non-finite statistics without knowing whose they are */
static void check_finite(const struct side *s, int dims)
{
    for (size_t i = 0; i < (size_t)dims; i++)
        if (!isfinite(s->mu[i]))
            errx(1, "%s: statistics are not finite", s->path);
    for (size_t i = 0; i < (size_t)dims * dims; i++)
        if (!isfinite(s->sigma[i]))
            errx(1, "%s: statistics are not finite", s->path);
}

static void open_side(struct side *s, const char *path, const struct metrics_cli *o)
{
    char msg[TOOL_MSG];
    memset(s, 0, sizeof *s);
    s->path = path;
    if (metrics_cli_open_input(&s->in, path, o, "fid", msg, sizeof msg) == -1 ||
        (s->in.kind != METRICS_STATS && metrics_cli_check_split(o, &s->in, msg, sizeof msg)))
        errx(1, "%s: %s", path, msg);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "dims", required_argument, NULL, 'd' },
        { "save-stats", no_argument, NULL, 'S' },
        { "save-features", no_argument, NULL, 'F' },
        METRICS_CLI_SHARD_LONGOPT,
        METRICS_CLI_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct metrics_cli o;
    int dims = 2048, save_stats = 0, save_features = 0, c;
    long v;
    char msg[TOOL_MSG];

    metrics_cli_init(&o, INCEPTION_RESIZE_PYTORCH_FID);
    while ((c = metrics_cli_getopt(&o, argc, argv, longopts, msg, sizeof msg)) != -1) {
        switch (c) {
        case 'd':
            if (util_parse_long(optarg, 1, 2048, &v) == -1 ||
                (v != 64 && v != 192 && v != 768 && v != 2048 &&
                 v != INCEPTION_SPATIAL_DIMS)) {
                opt_bad_value(msg, sizeof msg, "--dims", optarg,
                              "want 64, 192, 768, 2048 or 2023");
                usage(2, msg);
            }
            dims = (int)v;
            break;
        case 'S':
            save_stats = 1;
            break;
        case 'F':
            save_features = 1;
            break;
        case METRICS_CLI_SHARD:
            if (metrics_cli_shard(&o, optarg, msg, sizeof msg) == -1)
                usage(2, msg);
            break;
        case 'h':
            usage(0, NULL);
            break;
        default:
            usage(2, msg);
        }
    }
    if (save_stats && save_features)
        usage(2, "--save-stats and --save-features exclude each other");
    if (argc - optind != 2)
        usage(2, save_stats || save_features ? "A and OUT are required" : "A and B are required");
    if (strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-") == 0)
        usage(2, "only one input can be stdin");
    /* plain runs check the output before any work (-v prints), under mpirun rank 0 does */
    if ((save_stats || save_features) && !par_launched() &&
        util_check_output(argv[optind + 1], msg, sizeof msg) == -1)
        errx(1, "%s: %s", argv[optind + 1], msg);
    if (metrics_cli_start_par(&o, &argc, &argv, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (metrics_cli_shard_needs_save(&o, save_features,
                                     save_stats ? "the statistics need" : "FID needs", "fid",
                                     msg, sizeof msg) == -1)
        errx(2, "%s", msg);
    if ((save_stats || save_features) && par_check_output(argv[optind + 1]) == -1)
        errx(1, PAR_STDOUT_MSG);
    if ((save_stats || save_features) && par_launched() && par_rank() == 0 && /* its node */
        util_check_output(argv[optind + 1], msg, sizeof msg) == -1)
        errx(1, "%s: %s", argv[optind + 1], msg);

    struct inception net;
    struct side a, b;
    memset(&net, 0, sizeof net);
    open_side(&a, argv[optind], &o);
    if (save_stats || save_features) {
        const char *out = argv[optind + 1];
        if (a.in.kind == METRICS_STATS)
            errx(1, "%s: is statistics already", a.path);
        if (metrics_cli_needs_net(&a.in))
            load_net(&net, &o, dims, argv);
        par_go();
        if (save_stats) {
            side_stats(&a, &net, &o, dims);
            if (par_rank() == 0 && metrics_stats_save(out, a.mu, a.sigma, dims, msg, sizeof msg) == -1)
                errx(1, "%s: %s", out, msg);
        } else if (metrics_cli_save_features(out, &a.in, a.path, dims, &net, &o, "fid", msg,
                                             sizeof msg) == -1)
            errx(1, "%s", msg);
    } else {
        open_side(&b, argv[optind + 1], &o);
        if (metrics_cli_needs_net(&a.in) || metrics_cli_needs_net(&b.in))
            load_net(&net, &o, dims, argv);
        par_go();
        side_stats(&a, &net, &o, dims);
        side_stats(&b, &net, &o, dims);
        if (par_rank() > 0) /* rank 0 scores */
            goto done;
        double fid;
        check_finite(&a, dims);
        check_finite(&b, dims);
        if (metrics_frechet(&fid, a.mu, a.sigma, b.mu, b.sigma, dims, msg, sizeof msg) == -1)
            errx(1, "%s", msg);
        /* a squared distance: below 0 is round-off (-5.7e-13 for a set and itself) */
        if (fid < 0)
            fid = 0;
        char r[64];
        metrics_repr(r, sizeof r, fid);
        if (o.json)
            printf("{\n    \"frechet_inception_distance\": %s,\n    \"n1\": %lld,\n"
                   "    \"n2\": %lld,\n    \"dims\": %d,\n    \"resize\": \"%s\"%s\n}\n", r,
                   (long long)a.n, (long long)b.n, dims, metrics_cli_resize_name(o.mode),
                   net.synthetic ? METRICS_CLI_JSON_SYNTHETIC : "");
        else
            printf("FID:  %s\n", r);
    done:
        free(b.mu);
        free(b.sigma);
        metrics_input_free(&b.in);
    }
    free(a.mu);
    free(a.sigma);
    metrics_input_free(&a.in);
    inception_free(&net);
    par_finalize();
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
