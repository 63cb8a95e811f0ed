/* is-score: Inception Score as torch-fidelity computes it: logits_unbiased = pool3 @
   fc.weight^T (no bias, all 1008 classes) of pytorch-fid's FID Inception v3, rows shuffled by
   numpy's RandomState(2020).permutation, float64 softmax, 10 splits, mean and std (ddof 0).
   Input: uint8 images (.npy/.npz or - for stdin), an image folder, or pool3 features (N,2048)
   (fid --save-features). */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inception.h"
#include "metrics.h"
#include "nn.h"
#include "util.h"

static const char usage_line[] =
    "usage: is-score [-v] [--json] [--splits N] [--no-samples-shuffle] [--seed S]\n"
    "                [--batch-size N] [--threads N] [--weights PATH|synthetic]\n"
    "                [--resize torch-fidelity|pytorch-fid] INPUT\n";

static void usage(int status)
{
    FILE *f = status == 0 ? stdout : stderr;
    fputs(usage_line, f);
    if (status == 0)
        fputs("\n"
              "Prints 'inception_score_mean: M' and 'inception_score_std: S' (torch-fidelity).\n"
              "INPUT: uint8 images (N,H,W,3) .npy/.npz or - (stdin), a folder of images, or\n"
              "pool3 features float (N,2048) .npy from fid --save-features.\n"
              "\n"
              "  --splits N            splits (default 10)\n"
              "  --no-samples-shuffle  keep the input order (default: shuffle the rows with\n"
              "                        numpy RandomState(seed).permutation, as torch-fidelity)\n"
              "  --seed S              shuffle seed (default 2020, torch-fidelity's rng_seed)\n"
              "  --json                print a JSON object instead\n"
              "  --batch-size N        images per batch (default 50)\n"
              "  --threads N           threads (default 2)\n"
              "  --weights PATH        FID Inception weights (.pth or .safetensors), or synthetic\n"
              "                        (scores NOT comparable with published ones). Default:\n"
              "                        $FID_WEIGHTS, else weights/" INCEPTION_WEIGHTS_FILE "\n"
              "                        next to bin/ or in the current directory (make weights)\n"
              "  --resize MODE         torch-fidelity (default: TF1 bilinear on 0..255,\n"
              "                        (x-128)/128) or pytorch-fid (u8/255, half-pixel, 2x-1)\n"
              "  -v, --verbose         settings and progress on stderr\n",
              f);
    exit(status);
}

static void bad_usage(const char *what, const char *arg)
{
    warnx("%s: invalid value '%s'", what, arg);
    usage(2);
}

struct ctx {
    const struct inception *net;
    float *logits;   /* (n, 1008) */
    int64_t n, cap;
    struct progress pr;
    int verbose;
};

/* logits_unbiased row by row: independent of the batch and thread count */
static int sink(void *p, const float *f, int n)
{
    struct ctx *c = p;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->logits = xrealloc(c->logits, (size_t)c->cap * INCEPTION_CLASSES * sizeof(float));
    }
    for (int i = 0; i < n; i++)
        nn_sgemm_serial(0, 1, 1, INCEPTION_CLASSES, INCEPTION_DIMS, 1.0f,
                        f + (size_t)i * INCEPTION_DIMS, INCEPTION_DIMS, c->net->fc_w,
                        INCEPTION_DIMS, 0.0f, c->logits + (size_t)(c->n + i) * INCEPTION_CLASSES,
                        INCEPTION_CLASSES);
    c->n += n;
    if (c->verbose)
        progress_update(&c->pr, (long)c->n, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "splits", required_argument, NULL, 's' },
        { "no-samples-shuffle", no_argument, NULL, 'n' },
        { "seed", required_argument, NULL, 'S' },
        { "batch-size", required_argument, NULL, 'b' },
        { "threads", required_argument, NULL, 't' },
        { "weights", required_argument, NULL, 'w' },
        { "resize", required_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    enum inception_resize mode = INCEPTION_RESIZE_TORCH_FIDELITY;
    const char *weights = NULL;
    long splits = 10, seed = 2020, batch = 50, threads = 2;
    int shuffle = 1, json = 0, verbose = 0, c;
    char msg[1024], used[4096];

    while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (util_parse_long(optarg, 1, 1000000, &splits) == -1)
                bad_usage("--splits", optarg);
            break;
        case 'n':
            shuffle = 0;
            break;
        case 'S':
            if (util_parse_long(optarg, 0, 4294967295L, &seed) == -1)
                bad_usage("--seed", optarg);
            break;
        case 'b':
            if (util_parse_long(optarg, 1, 4096, &batch) == -1)
                bad_usage("--batch-size", optarg);
            break;
        case 't':
            if (util_parse_long(optarg, 1, 256, &threads) == -1)
                bad_usage("--threads", optarg);
            break;
        case 'w':
            weights = optarg;
            break;
        case 'r':
            if (strcmp(optarg, "pytorch-fid") == 0)
                mode = INCEPTION_RESIZE_PYTORCH_FID;
            else if (strcmp(optarg, "torch-fidelity") == 0)
                mode = INCEPTION_RESIZE_TORCH_FIDELITY;
            else
                bad_usage("--resize", optarg);
            break;
        case 'j':
            json = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(0);
            break;
        default:
            usage(2);
        }
    }
    if (argc - optind != 1)
        usage(2);
    const char *path = argv[optind];
    nn_blas_setup(argv, verbose);
    nn_set_threads((int)threads);

    struct metrics_input in;
    struct inception net;
    if (metrics_input_open(&in, path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (in.kind == METRICS_STATS)
        errx(1, "%s: statistics (mu, sigma) carry no class predictions; give images or "
             "features", path);
    if (inception_open(&net, weights, argv[0], used, sizeof used, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (verbose)
        fprintf(stderr, "is-score: weights %s; preprocessing %s; batch %ld; %ld splits; %s; "
                "%d threads\n", used, mode == INCEPTION_RESIZE_PYTORCH_FID
                ? "pytorch-fid (u8/255, bilinear half-pixel to 299, 2x-1)"
                : "torch-fidelity (0..255, TF1 bilinear to 299, (x-128)/128)", batch, splits,
                shuffle ? "rows shuffled" : "rows in input order", nn_get_threads());
    if (net.synthetic)
        warnx("warning: synthetic Inception weights: scores are NOT comparable with published "
              "ones");

    struct ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.net = &net;
    cx.verbose = verbose;
    progress_init(&cx.pr, "is-score", path, (long)in.n);
    if (metrics_input_features(&in, &net, (int)batch, mode, INCEPTION_DIMS, sink, &cx, msg,
                               sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (verbose)
        progress_done(&cx.pr);
    double mean, std;
    if (metrics_inception_score(&mean, &std, cx.logits, cx.n, INCEPTION_CLASSES, (int)splits,
                                shuffle, (uint32_t)seed, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (json) {
        char m[64], s[64];
        metrics_repr(m, sizeof m, mean);
        metrics_repr(s, sizeof s, std);
        printf("{\n    \"inception_score_mean\": %s,\n    \"inception_score_std\": %s,\n"
               "    \"n\": %lld,\n    \"splits\": %ld%s\n}\n", m,
               s, (long long)cx.n, splits, net.synthetic ? ",\n    \"synthetic_weights\": true" : "");
    } else
        printf("inception_score_mean: %.7g\ninception_score_std: %.7g\n", mean, std);
    free(cx.logits);
    metrics_input_free(&in);
    inception_free(&net);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
