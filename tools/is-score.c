/* is-score: Inception Score as torch-fidelity computes it: logits_unbiased = pool3 @
   fc.weight^T (no bias, all 1008 classes) of pytorch-fid's FID Inception v3, rows shuffled by
   numpy's RandomState(2020).permutation, float64 softmax, 10 splits, mean and std (ddof 0).
   Input: uint8 images (.npy/.npz or - for stdin), an image folder, or pool3 features (N,2048)
   (fid --save-features). Under mpirun the ranks split the images and rank 0 scores (par.h);
   --shard is refused: the score needs every image. */
#include <err.h>
#include <getopt.h>
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
    "usage: is-score [-v] [--json] [--splits N] [--no-samples-shuffle] [--seed S]\n"
    "                [-b N] [-t N] [--weights PATH|synthetic]\n"
    "                [--resize torch-fidelity|pytorch-fid|clean] INPUT\n";

static const char help[] =
    "\n"
    "Prints 'inception_score_mean: M' and 'inception_score_std: S' (torch-fidelity).\n"
    "INPUT: uint8 images (N,H,W,3) .npy/.npz or - (stdin), a folder of images, or\n"
    "pool3 features float (N,2048) .npy from fid --save-features.\n"
    "\n"
    "  --splits N            splits (default 10)\n"
    "  --no-samples-shuffle  keep the input order (default: shuffle the rows with\n"
    "                        numpy RandomState(seed).permutation, as torch-fidelity)\n"
    "  --seed S              shuffle seed (default 2020, torch-fidelity's rng_seed)\n"
    "  --shard I/N           refused: the score needs all the images at once; for shards\n"
    "                        write their pool3 features with kid --save-features --shard\n"
    "                        I/N (is-score's preprocessing), join them with npycat and\n"
    "                        give is-score the joined file: the score of the images\n"
    METRICS_CLI_HELP_TORCH_FIDELITY
    "\n"
    "Under mpirun -np K, rank r runs the r-th of K contiguous ranges of the images and\n"
    "rank 0 gathers the features in image order and prints the score: that of a\n"
    "1-process run. Every rank reads the input (not stdin).\n"
    "\n"
    "Example:\n"
    "  is-score --json samples.npy > is.json\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "splits", required_argument, NULL, 's' },
        { "no-samples-shuffle", no_argument, NULL, 'n' },
        { "seed", required_argument, NULL, 'S' },
        METRICS_CLI_SHARD_LONGOPT,
        METRICS_CLI_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct metrics_cli o;
    long splits = 10, seed = 2020;
    int shuffle = 1, shard_given = 0, c;
    char msg[TOOL_MSG], settings[64];

    metrics_cli_init(&o, INCEPTION_RESIZE_TORCH_FIDELITY);
    while ((c = metrics_cli_getopt(&o, argc, argv, longopts, msg, sizeof msg)) != -1) {
        switch (c) {
        case 's':
            if (metrics_cli_long(optarg, 1, 1000000, &splits, "--splits", msg, sizeof msg) == -1)
                usage(2, msg);
            break;
        case 'n':
            shuffle = 0;
            break;
        case METRICS_CLI_SHARD:
            shard_given = 1;
            break;
        case 'S':
            if (metrics_cli_long(optarg, 0, 4294967295L, &seed, "--seed", msg, sizeof msg) == -1)
                usage(2, msg);
            break;
        case 'h':
            usage(0, NULL);
            break;
        default:
            usage(2, msg);
        }
    }
    if (argc - optind != 1)
        usage(2, argc - optind == 0 ? "INPUT is required" : "one INPUT only");
    const char *path = argv[optind];
    if (metrics_cli_start_par(&o, &argc, &argv, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (shard_given)
        errx(2, "--shard: the Inception Score needs all the images at once; write the shards' "
             "features with kid --save-features --shard I/N, join them with npycat and give "
             "is-score the joined file");

    struct metrics_input in;
    struct inception net;
    if (metrics_cli_open_input(&in, path, &o, "is-score", msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (in.kind == METRICS_STATS)
        errx(1, "%s: statistics (mu, sigma) carry no class predictions; give images or "
             "features", path);
    if (metrics_cli_check_split(&o, &in, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    /* features inputs need the network too: its fc layer gives the logits */
    snprintf(settings, sizeof settings, "%ld splits; %s", splits,
             shuffle ? "rows shuffled" : "rows in input order");
    if (metrics_cli_load_net(&net, &o, argv[0], "is-score", settings, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    par_go();

    struct metrics_cli_sink sk;
    memset(&sk, 0, sizeof sk);
    sk.d = INCEPTION_DIMS;
    sk.fc_w = net.fc_w;
    if (metrics_cli_features(&sk, &in, path, &net, &o, "is-score", msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (par_rank() > 0) /* its features went to rank 0, which scores */
        goto done;
    double mean, std;
    if (metrics_inception_score(&mean, &std, sk.rows, sk.n, INCEPTION_CLASSES, (int)splits,
                                shuffle, (uint32_t)seed, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (o.json) {
        char m[64], s[64];
        metrics_repr(m, sizeof m, mean);
        metrics_repr(s, sizeof s, std);
        printf("{\n    \"inception_score_mean\": %s,\n    \"inception_score_std\": %s,\n"
               "    \"n\": %lld,\n    \"splits\": %ld,\n    \"resize\": \"%s\"%s\n}\n", m, s,
               (long long)sk.n, splits, metrics_cli_resize_name(o.mode),
               net.synthetic ? METRICS_CLI_JSON_SYNTHETIC : "");
    } else
        printf("inception_score_mean: %.7g\ninception_score_std: %.7g\n", mean, std);
done:
    free(sk.rows);
    metrics_input_free(&in);
    inception_free(&net);
    par_finalize();
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
