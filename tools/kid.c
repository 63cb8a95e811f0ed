/* kid: Kernel Inception Distance as torch-fidelity computes it: pool3 features of pytorch-fid's
   FID Inception v3, polynomial kernel (x.y/d + 1)^3, unbiased MMD^2 over 100 random subsets
   (numpy RandomState(2020): permutation(n)[:m] of A, then of B, per subset), mean and std
   (ddof 0). Each input is uint8 images (.npy/.npz or - for stdin), an image folder, or pool3
   features (N,2048) .npy, which --save-features writes. Under mpirun the ranks split each
   input's images and rank 0 gathers the features (par.h); --shard I/N with --save-features
   writes one shard's. */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/inception.h"
#include "eval/metrics.h"
#include "eval/metrics_input.h"
#include "eval/metrics_cli.h"
#include "eval/metrics_dinov2.h"
#include "nn/nn.h"
#include "util/par.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: kid [-v] [--json] [--subsets N] [--subset-size M] [--seed S] [-b N]\n"
    "           [-t N] [--weights PATH|synthetic]\n"
    "           [--resize torch-fidelity|pytorch-fid|clean]\n"
    "           (A B | --save-features [--shard I/N] A OUT.npy)\n";

static const char help[] =
    "\n"
    "Prints 'kernel_inception_distance_mean: M' and 'kernel_inception_distance_std: S'\n"
    "(torch-fidelity). A and B: uint8 images (N,H,W,3) .npy/.npz or - (stdin), a folder\n"
    "of images, or pool3 features float (N,2048) .npy.\n"
    "\n"
    "  --save-features       write the pool3 features of A to OUT.npy, float32 (N,2048)\n"
    "  --shard I/N           with --save-features: only shard I (from 0) of N, the images\n"
    "                        whose index falls in the I-th of N contiguous ranges (sizes\n"
    "                        differ by at most one); npycat joins the shards' features\n"
    "                        into the bytes of one run, and kid of them gives its score\n"
    "  --subsets N           subsets (default 100)\n"
    "  --subset-size M       samples per subset (default 1000, or the smaller N when\n"
    "                        that is less, with a note on stderr)\n"
    "  --seed S              subset seed (default 2020, torch-fidelity's rng_seed)\n"
    METRICS_CLI_HELP_TORCH_FIDELITY
    "\n"
    "Under mpirun -np K, rank r runs the r-th of K contiguous ranges of each input's\n"
    "images and rank 0 gathers the features in image order and writes the one output:\n"
    "the bytes of a 1-process run. Every rank reads the inputs (not stdin); save to a file.\n"
    "\n"
    "Example:\n"
    "  kid --subset-size 100 samples.npy data/flowers102-32-test.npy\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

static void open_input(struct metrics_input *in, const char *path, const struct metrics_cli *o)
{
    char msg[TOOL_MSG];
    if (metrics_cli_open_input(in, path, o, "kid", msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (in->kind == METRICS_STATS)
        errx(1, "%s: KID needs features or images, not statistics (mu, sigma)", path);
    if (metrics_cli_check_split(o, in, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "subsets", required_argument, NULL, 'n' },
        { "subset-size", required_argument, NULL, 'm' },
        { "seed", required_argument, NULL, 'S' },
        { "save-features", no_argument, NULL, 'F' },
        METRICS_CLI_SHARD_LONGOPT,
        METRICS_CLI_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct metrics_cli o;
    long subsets = 100, m = 0, seed = 2020;
    int save = 0, c;
    char msg[TOOL_MSG];

    metrics_cli_init(&o, INCEPTION_RESIZE_TORCH_FIDELITY);
    while ((c = metrics_cli_getopt(&o, argc, argv, longopts, msg, sizeof msg)) != -1) {
        switch (c) {
        case 'n':
            if (metrics_cli_long(optarg, 1, 1000000, &subsets, "--subsets", msg, sizeof msg) == -1)
                usage(2, msg);
            break;
        case 'm':
            if (metrics_cli_long(optarg, 2, 1000000, &m, "--subset-size", msg, sizeof msg) == -1)
                usage(2, msg);
            break;
        case 'S':
            if (metrics_cli_long(optarg, 0, 4294967295L, &seed, "--seed", msg, sizeof msg) == -1)
                usage(2, msg);
            break;
        case 'F':
            save = 1;
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
    if (argc - optind != 2)
        usage(2, save ? "A and OUT are required" : "A and B are required");
    const char *pa = argv[optind], *pb = argv[optind + 1];
    if (!save && strcmp(pa, "-") == 0 && strcmp(pb, "-") == 0)
        usage(2, "only one input can be stdin");
    /* plain runs check the output before any work (-v prints), under mpirun rank 0 does */
    if (save && !par_launched() && util_check_output(pb, msg, sizeof msg) == -1)
        errx(1, "%s: %s", pb, msg);
    if (metrics_cli_start_par(&o, &argc, &argv, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    /* the subsets draw from all the images: the shards' features first */
    if (metrics_cli_shard_needs_save(&o, save, "KID needs", "kid", msg, sizeof msg) == -1)
        errx(2, "%s", msg);
    if (save && par_check_output(pb) == -1)
        errx(1, PAR_STDOUT_MSG);
    if (save && par_launched() && par_rank() == 0 && /* its node */
        util_check_output(pb, msg, sizeof msg) == -1)
        errx(1, "%s: %s", pb, msg);

    struct metrics_input ia, ib;
    struct inception net;
    struct metrics_cli_sink ca, cb;
    memset(&net, 0, sizeof net);
    memset(&ib, 0, sizeof ib);
    memset(&ca, 0, sizeof ca);
    memset(&cb, 0, sizeof cb);
    open_input(&ia, pa, &o);
    if (!save)
        open_input(&ib, pb, &o);
    /* pool3, or the width of feature caches (both sides must agree) */
    ca.d = cb.d = ia.kind == METRICS_FEATURES ? ia.d
                  : !save && ib.kind == METRICS_FEATURES ? ib.d : INCEPTION_DIMS;
    /* 1024-d rows are DINOv2 ViT-L/14's (score --save-dinov2-features), which no Inception
       layer gives: their KID would pass for an Inception one */
    const char *dino = ia.kind == METRICS_FEATURES && ia.d == METRICS_DINOV2_DIM ? pa
                       : !save && ib.kind == METRICS_FEATURES && ib.d == METRICS_DINOV2_DIM
                           ? pb : NULL;
    if (dino != NULL)
        errx(1, "%s: %d-d features are DINOv2's (score --save-dinov2-features): KID needs "
             "Inception features", dino, METRICS_DINOV2_DIM);
    int needs_net = metrics_cli_needs_net(&ia) || (!save && metrics_cli_needs_net(&ib));
    if (ca.d != INCEPTION_DIMS && needs_net)
        errx(1, "%s: features have %d columns; images give %d-d pool3 features",
             ia.kind == METRICS_FEATURES ? pa : pb, ca.d, INCEPTION_DIMS);
    if (needs_net && metrics_cli_load_net(&net, &o, argv[0], "kid", NULL, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    par_go();
    if (save) {
        if (metrics_cli_save_features(pb, &ia, pa, ca.d, &net, &o, "kid", msg, sizeof msg) == -1)
            errx(1, "%s", msg);
    } else {
        if (metrics_cli_features(&ca, &ia, pa, &net, &o, "kid", msg, sizeof msg) == -1 ||
            metrics_cli_features(&cb, &ib, pb, &net, &o, "kid", msg, sizeof msg) == -1)
            errx(1, "%s", msg);
        if (par_rank() > 0) /* its features went to rank 0, which scores */
            goto done;
        int64_t nmin = ca.n < cb.n ? ca.n : cb.n;
        if (nmin < 2)
            errx(1, "%s: %lld sample: KID needs at least 2 on each side", ca.n < 2 ? pa : pb,
                 (long long)nmin);
        if (m == 0) {
            m = 1000;
            if (nmin < m) {
                m = nmin;
                warnx("note: %lld samples < 1000: subset size %ld", (long long)nmin, m);
            }
        }
        double mean, std;
        if (metrics_kid(&mean, &std, ca.rows, ca.n, cb.rows, cb.n, ca.d, (int)subsets,
                        (int)m, (uint32_t)seed, msg, sizeof msg) == -1)
            errx(1, "%s", msg);
        if (o.json) {
            char a[64], b[64];
            metrics_repr(a, sizeof a, mean);
            metrics_repr(b, sizeof b, std);
            printf("{\n    \"kernel_inception_distance_mean\": %s,\n"
                   "    \"kernel_inception_distance_std\": %s,\n    \"n1\": %lld,\n"
                   "    \"n2\": %lld,\n    \"subsets\": %ld,\n    \"subset_size\": %ld,\n"
                   "    \"resize\": \"%s\"%s\n}\n",
                   a, b, (long long)ca.n, (long long)cb.n, subsets, m,
                   metrics_cli_resize_name(o.mode),
                   net.synthetic ? METRICS_CLI_JSON_SYNTHETIC : "");
        } else
            printf("kernel_inception_distance_mean: %.7g\nkernel_inception_distance_std: %.7g\n",
                   mean, std);
    }
done:
    free(ca.rows);
    free(cb.rows);
    metrics_input_free(&ia);
    metrics_input_free(&ib);
    inception_free(&net);
    par_finalize();
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
