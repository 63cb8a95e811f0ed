/* Over 600 lines: 80 of them are the --help text, and the rest is each score's check of its
   inputs (widths, caches, N) with one clear message each; the statistics themselves live in
   eval/metrics.c, eval/prdc.c and eval/metrics_dinov2.c.

   score: every sample-quality score asked for from one pass of each input through the FID
   Inception network, like torch-fidelity's `fidelity --isc --fid --kid --prc`: FID (the
   Frechet distance of the features' statistics), Inception Score of GEN, KID, precision and
   recall (torch-fidelity, k=3), density and coverage (clovaai prdc, k=5) and sFID
   (guided-diffusion's evaluator: the Frechet distance of spatial features taken from the same
   pass). Each score equals what fid (with the same --resize; --dims 2023 for sFID), is-score
   and kid print on the same input. FD-DINOv2 (dgm-eval: the Frechet distance of DINOv2
   ViT-L/14 cls-token features) runs its own network, only when asked for. Under mpirun the
   ranks split each input's images for Inception and rank 0 gathers the features (and sFID's
   spatial features) in image order, then scores and prints: the output of one process
   (metrics_cli.h, par.h); the DINOv2 pass splits and gathers the same way.
   --save-dinov2-features writes the DINOv2 features of one input (of shard --shard), so
   that --fd-dinov2 reads a reference's features instead of running it again: the feature
   cache's width says whose features it holds (METRICS_DINOV2_DIM, metrics_dinov2.h). */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/dinov2.h"
#include "models/inception.h"
#include "eval/metrics.h"
#include "eval/metrics_input.h"
#include "eval/metrics_cli.h"
#include "eval/metrics_dinov2.h"
#include "nn/nn.h"
#include "eval/prdc.h"
#include "util/par.h"
#include "util/shard.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: score [-v] [--json] [--fid] [--is] [--kid] [--prc] [--dc] [--sfid]\n"
    "             [--fd-dinov2 | --fd-dinov2-if-weights] [--kid-subsets N] [--kid-subset-size M] [--is-splits N]\n"
    "             [--prc-k K] [--dc-k K] [--seed S] [-b N] [-t N] [--weights PATH|synthetic]\n"
    "             [--dinov2-weights PATH|synthetic]\n"
    "             [--resize torch-fidelity|pytorch-fid|clean] GEN REAL\n"
    "       score [-v] [-t N] [--dinov2-weights PATH|synthetic]\n"
    "             --save-dinov2-features [--shard I/N] A OUT.npy\n";

static const char help[] =
    "\n"
    "Prints one 'name: value' line per score asked for (torch-fidelity's key names), then\n"
    "'resize: MODE'. GEN and REAL: uint8 images (N,H,W,3) .npy/.npz or - (stdin, one of\n"
    "them), a folder of images, or float features (N,D) .npy (fid/kid --save-features\n"
    "writes them; any D for all but --is); REAL may be statistics .npz (mu, sigma) for --fid\n"
    "alone; for --fd-dinov2, DINOv2 features (N,1024) from --save-dinov2-features.\n"
    "Images go through the network once, whatever the scores.\n"
    "\n"
    "  --fid                 frechet_inception_distance (as fid --resize MODE)\n"
    "  --is                  inception_score_mean, _std of GEN (as is-score)\n"
    "  --kid                 kernel_inception_distance_mean, _std (as kid)\n"
    "  --prc                 precision, recall, f_score (torch-fidelity prc: radius =\n"
    "                        distance to the k-th neighbour, inside means <=)\n"
    "  --dc                  density, coverage (clovaai prdc: inside means <)\n"
    "  --sfid                spatial_frechet_inception_distance (guided-diffusion's\n"
    "                        sFID: Mixed_6d's branch1x1, channels 0-6 of 17x17, as\n"
    "                        fid --dims 2023); needs images on both sides\n"
    "                        With none of the six: all that the inputs allow.\n"
    "  --fd-dinov2           fd_dinov2: dgm-eval's FD-DINOv2 (DINOv2 ViT-L/14 cls token,\n"
    "                        images resized to 224 by PIL bicubic, ImageNet mean/std);\n"
    "                        only when asked for. Each side: images, or the 1024-d\n"
    "                        features --save-dinov2-features wrote (two caches: 1024-d\n"
    "                        both; against images: the network's width). --fid, --kid,\n"
    "                        --is and --sfid refuse 1024-d features, --fd-dinov2 others\n"
    "  --save-dinov2-features\n"
    "                        write the DINOv2 features of A to OUT.npy, float32\n"
    "                        (N,1024); no score is computed\n"
    "  --shard I/N           with --save-dinov2-features: only shard I (from 0) of N\n"
    "                        contiguous ranges of A's images; npycat of the shards'\n"
    "                        files is the file of one run\n"
    "  --dinov2-weights PATH dinov2_vitl14_pretrain.pth (official names), or synthetic\n"
    "                        (NOT comparable). Default: $DINOV2_WEIGHTS, else\n"
    "                        weights/" DINOV2_WEIGHTS_FILE " (make weights)\n"
    "  --fd-dinov2-if-weights\n"
    "                        --fd-dinov2 when the weights are found; else a warning\n"
    "                        and fd_dinov2 '-' (null in --json; report shows -)\n"
    "  --kid-subsets N       KID subsets (default 100)\n"
    "  --kid-subset-size M   KID subset size (default 1000, or the smaller N, with a note)\n"
    "  --is-splits N         Inception Score splits (default 10)\n"
    "  --prc-k K             precision/recall neighbourhood (default 3)\n"
    "  --dc-k K              density/coverage neighbourhood (default 5)\n"
    "  --seed S              KID subsets and IS shuffle seed (default 2020)\n"
    METRICS_CLI_HELP_TORCH_FIDELITY
    "\n"
    "Distances for --prc and --dc are exact in float64 wherever float32 could change a\n"
    "decision; memory stays linear in N.\n"
    "\n"
    "Under mpirun -np K, rank r runs the r-th of K contiguous ranges of each input's\n"
    "images and rank 0 gathers the features in image order, scores and prints: the output\n"
    "of a 1-process run (--save-dinov2-features: the bytes of one). Every rank reads\n"
    "the inputs (not stdin).\n"
    "\n"
    "Example:\n"
    "  score --fid --kid --prc --dc --json samples.npy data/flowers102-32-test.npy\n"
    "  score --save-dinov2-features data/flowers102-32-test.npy real-dinov2.npy\n"
    "  score --fd-dinov2 samples.npy real-dinov2.npy\n";

enum { S_FID = 1, S_IS = 2, S_KID = 4, S_PRC = 8, S_DC = 16, S_SFID = 32, S_FD_DINOV2 = 64 };
/* the Inception scores (the default set); FD-DINOv2 runs only when asked for: its weights
   are a separate 1.2 GB download */
#define S_INCEPTION (S_FID | S_IS | S_KID | S_PRC | S_DC | S_SFID)
enum { OPT_FD_DINOV2 = 0x200, OPT_DINOV2_WEIGHTS, OPT_FD_DINOV2_IF, OPT_SAVE_DINOV2,
       OPT_SHARD };

struct opts {
    long kid_subsets, kid_m, is_splits, prc_k, dc_k, seed;
    const char *dinov2_weights; /* NULL: dinov2_default_weights' search */
    int fdd_if_weights;         /* no weights found: fd_dinov2 is '-', not an error */
    int save_dinov2, shard_given;
};

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

struct side {
    const char *path;
    struct metrics_input in;
    struct metrics_cli_sink sk;  /* the feature rows */
    struct metrics_cli_sink ssk; /* sFID's spatial features, into sst (--sfid) */
    struct metrics_stats sst;
};

static void open_side(struct side *s, const char *path, const struct metrics_cli *o)
{
    char msg[TOOL_MSG];
    memset(s, 0, sizeof *s);
    s->path = path;
    if (metrics_cli_open_input(&s->in, path, o, "score", msg, sizeof msg) == -1 ||
        (metrics_cli_needs_net(&s->in) && metrics_cli_check_split(o, &s->in, msg, sizeof msg)))
        errx(1, "%s: %s", path, msg);
}

/* (mu, sigma) of s's statistics st, as fid computes them */
static void side_moments(const struct side *s, struct metrics_stats *st, double **mu,
                         double **sigma)
{
    char msg[TOOL_MSG];
    *mu = xmalloc((size_t)st->d * sizeof(double));
    *sigma = xmalloc((size_t)st->d * st->d * sizeof(double));
    if (metrics_stats_get(st, *mu, *sigma, msg, sizeof msg) == -1)
        errx(1, "%s: %s", s->path, msg);
}

/* the Frechet distance of two (mu, sigma), as fid prints it; frees them */
static double frechet(double **mu, double **sg, int d)
{
    char msg[TOOL_MSG];
    double fd;
    if (metrics_frechet(&fd, mu[0], sg[0], mu[1], sg[1], d, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    for (int k = 0; k < 2; k++) {
        free(mu[k]);
        free(sg[k]);
    }
    return fd < 0 ? 0 : fd;  /* a squared distance: below 0 is round-off */
}

/* sFID from the spatial statistics both sides gathered in their one pass */
static double score_sfid(struct side *g, struct side *r)
{
    double *mu[2], *sg[2];
    side_moments(g, &g->sst, &mu[0], &sg[0]);
    side_moments(r, &r->sst, &mu[1], &sg[1]);
    return frechet(mu, sg, INCEPTION_SPATIAL_DIMS);
}

/* FID from rows (or REAL's stored statistics), as fid computes it */
static double score_fid(struct side *g, struct side *r)
{
    int d = g->sk.d;
    double *mu[2], *sg[2];
    struct side *s[2] = {g, r};
    for (int k = 0; k < 2; k++) {
        if (s[k]->in.kind == METRICS_STATS) {  /* taken over: frechet() frees them */
            mu[k] = s[k]->in.mu;
            sg[k] = s[k]->in.sigma;
            s[k]->in.mu = s[k]->in.sigma = NULL;
            continue;
        }
        struct metrics_stats st;
        metrics_stats_init(&st, d);
        metrics_stats_add(&st, s[k]->sk.rows, s[k]->sk.n);
        side_moments(s[k], &st, &mu[k], &sg[k]);
        metrics_stats_free(&st);
    }
    return frechet(mu, sg, d);
}

/* logits_unbiased row by row, as is-score's sink does */
static void score_is(double *v, const struct side *g, const struct inception *net, long splits,
                     long seed)
{
    char msg[TOOL_MSG];
    float *logits = xmalloc((size_t)g->sk.n * INCEPTION_CLASSES * sizeof(float));
    metrics_cli_logits(logits, g->sk.rows, g->sk.n, net->fc_w); /* as is-score's */
    if (metrics_inception_score(&v[0], &v[1], logits, g->sk.n, INCEPTION_CLASSES, (int)splits,
                                1, (uint32_t)seed, msg, sizeof msg) == -1)
        errx(1, "%s: %s", g->path, msg);
    free(logits);
}

static void score_kid(double *v, const struct side *g, const struct side *r,
                      const struct opts *p)
{
    char msg[TOOL_MSG];
    int64_t nmin = g->sk.n < r->sk.n ? g->sk.n : r->sk.n;
    long m = p->kid_m;
    if (nmin < 2)
        errx(1, "%s: %lld sample: KID needs at least 2 on each side",
             g->sk.n < 2 ? g->path : r->path, (long long)nmin);
    if (m == 0) {
        m = 1000;
        if (nmin < m) {
            m = nmin;
            warnx("note: %lld samples < 1000: KID subset size %ld", (long long)nmin, m);
        }
    }
    if (metrics_kid(&v[0], &v[1], g->sk.rows, g->sk.n, r->sk.rows, r->sk.n, g->sk.d,
                    (int)p->kid_subsets, (int)m, (uint32_t)p->seed, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
}

/* prdc_compute's messages say "real features" or "generated features": name the path */
static void score_prdc(struct prdc_result *res, const struct side *g, const struct side *r,
                       int k_pr, int k_dc)
{
    char msg[TOOL_MSG];
    if (prdc_compute(res, r->sk.rows, r->sk.n, g->sk.rows, g->sk.n, g->sk.d, k_pr, k_dc, msg,
                     sizeof msg) == -1) {
        const char *rest = msg;
        const char *path = NULL;
        if (strncmp(msg, "real features: ", 15) == 0)
            path = r->path, rest = msg + 15;
        else if (strncmp(msg, "generated features: ", 20) == 0)
            path = g->path, rest = msg + 20;
        if (path != NULL)
            errx(1, "%s: %s", path, rest);
        errx(1, "%s", msg);
    }
}

struct out {
    int json, n;
};

static void put(struct out *o, const char *key, double v)
{
    char r[64];
    if (o->json) {
        if (isnan(v)) /* a score not computed (fd_dinov2 without its weights) */
            snprintf(r, sizeof r, "null");
        else
            metrics_repr(r, sizeof r, v);
        printf("%s    \"%s\": %s", o->n++ ? ",\n" : "{\n", key, r);
    } else if (isnan(v))
        printf("%s: -\n", key);
    else
        printf("%s: %.7g\n", key, v);
}

/* the feature width both sides share: a feature cache's, else pool3's */
static int side_width(const struct side *g, const struct side *r)
{
    const struct side *s[2] = {g, r};
    int d = 0;
    for (int k = 0; k < 2; k++) {
        int w = s[k]->in.kind == METRICS_FEATURES || s[k]->in.kind == METRICS_STATS
                    ? s[k]->in.d : INCEPTION_DIMS;
        if (d != 0 && w != d)
            errx(1, "%s: %d-d features; %s gives %d-d", r->path, w, g->path, d);
        d = w;
    }
    return d;
}

/* a feature cache of DINOv2 ViT-L/14's width: no Inception layer gives 1024 columns */
static int is_dinov2_cache(const struct side *s)
{
    return s->in.kind == METRICS_FEATURES && s->in.d == METRICS_DINOV2_DIM;
}

/* a feature cache (s) against the DINOv2 network's width dim: one line naming it */
static void check_dinov2_cache(const struct side *s, int dim)
{
    char msg[TOOL_MSG];
    if (metrics_dinov2_check_cache(&s->in, dim, msg, sizeof msg) == -1)
        errx(1, "%s: %s", s->path, msg);
}

/* --fd-dinov2's sides: images, or a cache of DINOv2 features. A cache holds one network's
   features, so it serves FD-DINOv2 alone. Its rows are checked here, before any network
   runs; its width against ViT-L/14's when both sides are caches (no network runs), else
   against the network's once loaded (score_fd_dinov2), so the small test ViT works too. */
static void check_fd_dinov2(int want, const struct side *g, const struct side *r)
{
    if (!(want & S_FD_DINOV2))
        return;
    int caches = (g->in.kind == METRICS_FEATURES) + (r->in.kind == METRICS_FEATURES);
    for (int k = 0; k < 2; k++) {
        const struct side *s = k == 0 ? g : r;
        if (s->in.kind == METRICS_STATS)
            errx(1, "%s: --fd-dinov2 needs images or DINOv2 features: statistics hold "
                 "neither", s->path);
        if (s->in.kind != METRICS_FEATURES)
            continue;
        if (want & S_INCEPTION)
            errx(1, "%s: a feature cache holds one network's features: --fd-dinov2 with "
                 "Inception scores needs images here", s->path);
        check_dinov2_cache(s, caches == 2 ? METRICS_DINOV2_DIM : s->in.d);
    }
}

/* DINOv2 features (score --save-dinov2-features) do not serve FID, KID, IS or sFID, whose
   numbers would look like Inception ones; precision/recall and density/coverage take any
   width. With no score asked: those two. */
static int check_inception_widths(int want, const struct side *g, const struct side *r)
{
    const struct side *dino = is_dinov2_cache(g) ? g : is_dinov2_cache(r) ? r : NULL;
    int inception = S_FID | S_KID | S_IS | S_SFID;
    if (dino == NULL)
        return want;
    if (want == 0)
        return S_PRC | S_DC;
    if (want & inception)
        errx(1, "%s: %d-d features are DINOv2's (score --save-dinov2-features): %s needs "
             "Inception features", dino->path, METRICS_DINOV2_DIM,
             want & S_FID ? "--fid" : want & S_KID ? "--kid" : want & S_IS ? "--is" : "--sfid");
    return want;
}

/* the scores the inputs allow; an asked-for one they do not is an error */
static int check_scores(int want, const struct side *g, const struct side *r, int d)
{
    int stats = g->in.kind == METRICS_STATS || r->in.kind == METRICS_STATS;
    int all = want == 0;
    if (all)
        want = S_INCEPTION;
    if (stats && (want & ~S_FID & S_INCEPTION)) {
        if (!all)
            errx(1, "%s: statistics (mu, sigma) serve --fid only; give images or features",
                 g->in.kind == METRICS_STATS ? g->path : r->path);
        want = S_FID;
    }
    if ((want & S_IS) && d != INCEPTION_DIMS) {
        if (!all)
            errx(1, "%s: --is needs pool3 features (2048-d), not %d-d", g->path, d);
        want &= ~S_IS;
    }
    /* sFID's spatial features come from the network only: no feature cache holds them */
    const struct side *cache = g->in.kind == METRICS_FEATURES ? g
                               : r->in.kind == METRICS_FEATURES ? r : NULL;
    if ((want & S_SFID) && cache != NULL) {
        if (!all)
            errx(1, "%s: --sfid needs images: a feature cache has no spatial features",
                 cache->path);
        want &= ~S_SFID;
    }
    return want;
}

/* st (initialised) gets the rows of a DINOv2 feature cache: rank 0 holds them all */
static void cache_stats(struct metrics_stats *st, const struct side *s)
{
    if (par_rank() == 0) /* in one call, as the images' chunks: metrics_stats_add's sums */
        metrics_stats_add(st, s->in.arr.data, s->in.n);
}

/* FD-DINOv2 of two DINOv2 feature caches: no network; rank 0's alone */
static double fd_dinov2_caches(struct side *g, struct side *r)
{
    double *mu[2], *sg[2];
    struct side *s[2] = {g, r};
    if (par_rank() > 0)
        return NAN;
    for (int k = 0; k < 2; k++) {
        struct metrics_stats st;
        metrics_stats_init(&st, METRICS_DINOV2_DIM);
        cache_stats(&st, s[k]);
        side_moments(s[k], &st, &mu[k], &sg[k]);
        metrics_stats_free(&st);
    }
    return frechet(mu, sg, METRICS_DINOV2_DIM);
}

/* FD-DINOv2: both sides through the DINOv2 network (or read from a feature cache),
   Frechet distance as FID's. Collective under mpirun: every rank loads the network and runs
   its range of each side's images, as the Inception pass splits them, and rank 0 gathers
   the features (metrics_dinov2.h) and returns the distance; the others return NAN. */
static double score_fd_dinov2(struct side *g, struct side *r, const struct opts *p,
                              const char *argv0, const struct metrics_cli *o, int *synthetic)
{
    char msg[TOOL_MSG], used[4096];
    struct dinov2 net;
    if (g->in.kind == METRICS_FEATURES && r->in.kind == METRICS_FEATURES)
        return fd_dinov2_caches(g, r); /* no weights needed, not even with -if-weights */
    if (p->fdd_if_weights) { /* only a missing file is excused: a bad one is still an error */
        const char *w = p->dinov2_weights;
        int found = w != NULL ? strcmp(w, "synthetic") == 0 || util_exists(w)
                              : dinov2_default_weights(used, sizeof used, argv0, msg,
                                                       sizeof msg) == 0;
        /* rank 0's finding stands for all: a rank whose node lacks the file fails below */
        par_bcast(&found, sizeof found);
        if (!found) {
            if (w != NULL)
                snprintf(msg, sizeof msg, "%s: No such file", w);
            if (par_rank() == 0)
                warnx("warning: fd_dinov2 not computed: %s", msg);
            return NAN;
        }
    }
    if (dinov2_open(&net, p->dinov2_weights, argv0, used, sizeof used, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    *synthetic = net.synthetic;
    if (net.synthetic && par_rank() == 0)
        warnx("warning: synthetic DINOv2 weights: FD-DINOv2 is NOT comparable with published "
              "values");
    if (o->verbose)
        warnx("DINOv2 weights %s: patch %d, dim %d, depth %d, heads %d", used, net.cfg.patch,
              net.cfg.dim, net.cfg.depth, net.cfg.heads);
    double *mu[2], *sg[2];
    struct side *s[2] = {g, r};
    for (int k = 0; k < 2; k++) /* before the other side's pass: fail before the work */
        if (s[k]->in.kind == METRICS_FEATURES)
            check_dinov2_cache(s[k], net.cfg.dim);
    for (int k = 0; k < 2; k++) {
        struct metrics_stats st;
        int64_t lo, hi;
        metrics_stats_init(&st, net.cfg.dim);
        metrics_cli_range(o, &s[k]->in, &lo, &hi);
        if (s[k]->in.kind == METRICS_FEATURES)
            cache_stats(&st, s[k]);
        else if (metrics_dinov2_stats(&st, &s[k]->in, lo, hi, &net, msg, sizeof msg) == -1)
            errx(1, "%s: %s", s[k]->path, msg);
        if (par_rank() == 0)
            side_moments(s[k], &st, &mu[k], &sg[k]);
        metrics_stats_free(&st);
    }
    int d = net.cfg.dim;
    dinov2_free(&net);
    return par_rank() == 0 ? frechet(mu, sg, d) : NAN;
}

/* s's feature rows of width d, and with sfid its spatial statistics, from one pass */
static void gather(struct side *s, int d, int sfid, const struct inception *net,
                   const struct metrics_cli *o)
{
    char msg[TOOL_MSG];
    s->sk.d = d;
    if (sfid) {
        metrics_stats_init(&s->sst, INCEPTION_SPATIAL_DIMS);
        s->ssk.d = INCEPTION_SPATIAL_DIMS;
        s->ssk.st = &s->sst;
        s->sk.spatial = &s->ssk;
    }
    if (metrics_cli_features(&s->sk, &s->in, s->path, net, o, "score", msg, sizeof msg) == -1)
        errx(1, "%s", msg);
}

static void parse(int argc, char **argv, struct metrics_cli *o, struct opts *p, int *want)
{
    static const struct option longopts[] = {
        { "fid", no_argument, NULL, 'F' },
        { "is", no_argument, NULL, 'I' },
        { "kid", no_argument, NULL, 'K' },
        { "prc", no_argument, NULL, 'P' },
        { "dc", no_argument, NULL, 'C' },
        { "sfid", no_argument, NULL, 'Z' }, /* not 'D': METRICS_CLI_LONGOPTS' --device */
        { "fd-dinov2", no_argument, NULL, OPT_FD_DINOV2 },
        { "dinov2-weights", required_argument, NULL, OPT_DINOV2_WEIGHTS },
        { "fd-dinov2-if-weights", no_argument, NULL, OPT_FD_DINOV2_IF },
        { "save-dinov2-features", no_argument, NULL, OPT_SAVE_DINOV2 },
        { "shard", required_argument, NULL, OPT_SHARD },
        { "kid-subsets", required_argument, NULL, 'n' },
        { "kid-subset-size", required_argument, NULL, 'm' },
        { "is-splits", required_argument, NULL, 's' },
        { "prc-k", required_argument, NULL, 'k' },
        { "dc-k", required_argument, NULL, 'c' },
        { "seed", required_argument, NULL, 'S' },
        METRICS_CLI_LONGOPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char msg[TOOL_MSG];
    int c;
    while ((c = metrics_cli_getopt(o, argc, argv, longopts, msg, sizeof msg)) != -1) {
        int rc = 0;
        switch (c) {
        case 'F': *want |= S_FID; break;
        case 'I': *want |= S_IS; break;
        case 'K': *want |= S_KID; break;
        case 'P': *want |= S_PRC; break;
        case 'C': *want |= S_DC; break;
        case 'Z': *want |= S_SFID; break;
        case OPT_FD_DINOV2: *want |= S_FD_DINOV2; break;
        case OPT_DINOV2_WEIGHTS: p->dinov2_weights = optarg; break;
        case OPT_FD_DINOV2_IF: *want |= S_FD_DINOV2; p->fdd_if_weights = 1; break;
        case OPT_SAVE_DINOV2: p->save_dinov2 = 1; break;
        case OPT_SHARD:
            if (shard_parse(optarg, &o->shard, &o->n_shards) == -1) {
                opt_bad_value(msg, sizeof msg, "--shard", optarg, SHARD_WANT);
                usage(2, msg);
            }
            p->shard_given = 1;
            break;
        case 'n':
            rc = metrics_cli_long(optarg, 1, 1000000, &p->kid_subsets, "--kid-subsets", msg,
                                  sizeof msg);
            break;
        case 'm':
            rc = metrics_cli_long(optarg, 2, 1000000, &p->kid_m, "--kid-subset-size", msg,
                                  sizeof msg);
            break;
        case 's':
            rc = metrics_cli_long(optarg, 1, 1000000, &p->is_splits, "--is-splits", msg,
                                  sizeof msg);
            break;
        case 'k':
            rc = metrics_cli_long(optarg, 1, 1000, &p->prc_k, "--prc-k", msg, sizeof msg);
            break;
        case 'c':
            rc = metrics_cli_long(optarg, 1, 1000, &p->dc_k, "--dc-k", msg, sizeof msg);
            break;
        case 'S':
            rc = metrics_cli_long(optarg, 0, 4294967295L, &p->seed, "--seed", msg, sizeof msg);
            break;
        case 'h':
            usage(0, NULL);
            break;
        default:
            usage(2, msg);
        }
        if (rc == -1)
            usage(2, msg);
    }
    if (p->save_dinov2 && *want != 0)
        usage(2, "--save-dinov2-features computes no score: give no score option");
    if (argc - optind != 2)
        usage(2, p->save_dinov2 ? "A and OUT are required" : "GEN and REAL are required");
    if (!p->save_dinov2 && strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-") == 0)
        usage(2, "only one input can be stdin"); /* saving: A is stdin, OUT stdout */
}

/* --save-dinov2-features A OUT: the DINOv2 features of A (of shard --shard) into OUT, as
   fid --save-features writes Inception's; under mpirun the ranks split the images and rank 0
   writes (metrics_dinov2_save). */
static int save_dinov2(const char *a, const char *out, const struct opts *p,
                       const char *argv0, const struct metrics_cli *o)
{
    char msg[TOOL_MSG], used[4096];
    struct side s;
    struct dinov2 net;
    int64_t lo, hi;
    if (par_check_output(out) == -1)
        errx(1, PAR_STDOUT_MSG);
    if (par_launched() && par_rank() == 0 && /* its node */
        util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    open_side(&s, a, o);
    if (!metrics_cli_needs_net(&s.in))
        errx(1, "%s: --save-dinov2-features needs images: %s", a,
             s.in.kind == METRICS_STATS ? "statistics hold no features"
                                        : "this is a feature cache already");
    if (dinov2_open(&net, p->dinov2_weights, argv0, used, sizeof used, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (net.synthetic && par_rank() == 0)
        warnx("warning: synthetic DINOv2 weights: the features are NOT DINOv2's");
    if (o->verbose)
        warnx("DINOv2 weights %s: dim %d; %s", used, net.cfg.dim, a);
    par_go();
    metrics_cli_range(o, &s.in, &lo, &hi);
    if (metrics_dinov2_save(out, &s.in, lo, hi, metrics_cli_rows(o, &s.in), &net, msg,
                            sizeof msg) == -1)
        errx(1, "%s", msg);
    dinov2_free(&net);
    metrics_input_free(&s.in);
    par_finalize();
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}

int main(int argc, char **argv)
{
    struct metrics_cli o;
    struct opts p = {100, 0, 10, 3, 5, 2020, NULL, 0, 0, 0};
    int want = 0;
    char msg[TOOL_MSG];

    /* one network pass for every score: torch-fidelity's resize, as its fidelity command */
    metrics_cli_init(&o, INCEPTION_RESIZE_TORCH_FIDELITY);
    parse(argc, argv, &o, &p, &want);
    /* plain runs check the output before any work, under mpirun rank 0 does (save_dinov2) */
    if (p.save_dinov2 && !par_launched() &&
        util_check_output(argv[optind + 1], msg, sizeof msg) == -1)
        errx(1, "%s: %s", argv[optind + 1], msg);
    /* under mpirun ranks > 0 wait in here until rank 0 has made its checks (par_go) */
    if (metrics_cli_start_par(&o, &argc, &argv, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    /* a score needs every image in one process: the shards' features first */
    if (p.shard_given && !p.save_dinov2)
        errx(2, "--shard needs --save-dinov2-features: the scores need all the images; join "
             "the shards' features with npycat, then give score the joined file");
    if (p.save_dinov2)
        return save_dinov2(argv[optind], argv[optind + 1], &p, argv[0], &o);

    struct side g, r;
    struct inception net;
    memset(&net, 0, sizeof net);
    open_side(&g, argv[optind], &o);
    open_side(&r, argv[optind + 1], &o);
    check_fd_dinov2(want, &g, &r);
    want = check_inception_widths(want, &g, &r);
    /* --fd-dinov2 alone reads no Inception features: a DINOv2 cache has no width to agree on */
    int d = want == S_FD_DINOV2 ? INCEPTION_DIMS : side_width(&g, &r);
    want = check_scores(want, &g, &r, d);
    int inc = want & S_INCEPTION;
    int needs_net = inc && (metrics_cli_needs_net(&g.in) || metrics_cli_needs_net(&r.in) ||
                            (want & S_IS));
    if (d != INCEPTION_DIMS && needs_net)
        errx(1, "%s: %d-d features; images give %d-d pool3 features",
             g.in.kind == METRICS_FEATURES ? g.path : r.path, d, INCEPTION_DIMS);
    if (needs_net && metrics_cli_load_net(&net, &o, argv[0], "score", NULL, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    par_go();
    struct side *s[2] = {&g, &r};
    for (int k = 0; k < 2; k++)
        if (inc && s[k]->in.kind != METRICS_STATS)
            gather(s[k], d, want & S_SFID, &net, &o);

    /* compute everything before printing, so an error leaves stdout empty; a rank > 0 sent
       its Inception features to rank 0, which scores, and waits for the DINOv2 pass */
    double fid = 0, is[2] = {0, 0}, kid[2] = {0, 0}, sfid = 0, fdd = 0;
    int dsynth = 0;
    struct prdc_result pr;
    memset(&pr, 0, sizeof pr);
    if (par_rank() == 0 && (want & S_FID))
        fid = score_fid(&g, &r);
    if (par_rank() == 0 && (want & S_IS))
        score_is(is, &g, &net, p.is_splits, p.seed);
    if (par_rank() == 0 && (want & S_KID))
        score_kid(kid, &g, &r, &p);
    if (par_rank() == 0 && (want & (S_PRC | S_DC)))
        score_prdc(&pr, &g, &r, want & S_PRC ? (int)p.prc_k : 0, want & S_DC ? (int)p.dc_k : 0);
    if (par_rank() == 0 && (want & S_SFID))
        sfid = score_sfid(&g, &r);
    if (want & S_FD_DINOV2)
        fdd = score_fd_dinov2(&g, &r, &p, argv[0], &o, &dsynth);
    if (par_rank() > 0)
        goto done;

    struct out out = {o.json, 0};
    if (want & S_FID)
        put(&out, "frechet_inception_distance", fid);
    if (want & S_IS) {
        put(&out, "inception_score_mean", is[0]);
        put(&out, "inception_score_std", is[1]);
    }
    if (want & S_KID) {
        put(&out, "kernel_inception_distance_mean", kid[0]);
        put(&out, "kernel_inception_distance_std", kid[1]);
    }
    if (want & S_PRC) {
        put(&out, "precision", pr.precision);
        put(&out, "recall", pr.recall);
        put(&out, "f_score", pr.f_score);
    }
    if (want & S_DC) {
        put(&out, "density", pr.density);
        put(&out, "coverage", pr.coverage);
    }
    if (want & S_SFID)
        put(&out, "spatial_frechet_inception_distance", sfid);
    if (want & S_FD_DINOV2)
        put(&out, "fd_dinov2", fdd);
    const char *mode = needs_net ? metrics_cli_resize_name(o.mode) : "none (features)";
    static const char dpre[] = "dgm-eval (PIL bicubic to 224, ImageNet mean/std)";
    int64_t ng = inc ? g.sk.n : g.in.n, nr = inc ? r.sk.n : r.in.n;
    if (o.json) {
        printf(",\n    \"n_gen\": %lld,\n    \"n_real\": %lld", (long long)ng, (long long)nr);
        if (inc)
            printf(",\n    \"dims\": %d,\n    \"resize\": \"%s\"%s", d, mode,
                   net.synthetic ? METRICS_CLI_JSON_SYNTHETIC : "");
        if (want & S_FD_DINOV2)
            printf(",\n    \"dinov2_preprocessing\": \"%s\"%s", dpre,
                   dsynth ? ",\n    \"dinov2_synthetic_weights\": true" : "");
        printf("\n}\n");
    } else {
        if (inc)
            printf("resize: %s\n", mode);
        if (want & S_FD_DINOV2)
            printf("dinov2_preprocessing: %s\n", dpre);
    }
done:
    for (int k = 0; k < 2; k++) {
        free(s[k]->sk.rows);
        if (want & S_SFID)
            metrics_stats_free(&s[k]->sst);
        metrics_input_free(&s[k]->in);
    }
    inception_free(&net);
    par_finalize();
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
