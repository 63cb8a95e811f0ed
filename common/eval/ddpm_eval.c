/* Evaluation of a training run in process; see ddpm_eval.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/ddpm_eval.h"
#include "eval/metrics.h"
#include "eval/metrics_cli.h"
#include "eval/metrics_input.h"
#include "models/trainer.h"
#include "models/unet_sampling.h"
#include "nn/nn_image.h"
#include "nn/sampler.h"
#include "util/par.h"
#include "util/shard.h"
#include "util/util.h"

/* the tools' defaults: ddpm-sample's batch, kid's subsets and seed */
#define EVAL_SAMPLE_BATCH 16
#define EVAL_KID_SUBSETS 100
#define EVAL_KID_SEED 2020
#define EVAL_KID_SUBSET_MAX 1000

void ddpm_eval_init(struct ddpm_eval *e, const char *ref, const char *weights, long samples,
                    long steps, long seed)
{
    memset(e, 0, sizeof *e);
    e->ref = ref;
    e->weights = weights;
    e->samples = samples;
    e->steps = steps;
    e->seed = seed;
    e->rank = par_rank();
    e->K = par_size();
}

/* fid's and kid's options as their defaults set them (batch 50, no shard, quiet) */
static void tool_opts(struct metrics_cli *fid, struct metrics_cli *kid)
{
    metrics_cli_init(fid, INCEPTION_RESIZE_PYTORCH_FID);
    metrics_cli_init(kid, INCEPTION_RESIZE_TORCH_FIDELITY);
}

/* Collective: 1 when some rank's status st is not 0. A rank that is fine gets msg "" then
   (the failed one says why). Without MPI: st != 0. */
static int any_failed(const struct ddpm_eval *e, int st, char *msg, size_t msglen)
{
    int any = st != 0;
    if (e->K > 1) {
        float *f = xcalloc((size_t)e->K, sizeof *f);
        f[e->rank] = (float)(st != 0);
        par_allreduce_sum(f, (size_t)e->K);
        for (int r = 0; r < e->K; r++)
            any = any || f[r] != 0;
        free(f);
    }
    if (any && st == 0 && msglen > 0)
        msg[0] = '\0';
    return any;
}

/* Collective: rank 0's status rc (and its msg stays rank 0's alone) to every rank */
static int rank0_says(const struct ddpm_eval *e, int rc, char *msg, size_t msglen)
{
    par_bcast(&rc, sizeof rc);
    if (rc != 0 && e->rank > 0 && msglen > 0)
        msg[0] = '\0';
    return rc;
}

/* "evaluation: what", with the process under mpirun; what is not msg */
static void fail_msg(const struct ddpm_eval *e, char *msg, size_t msglen, const char *what)
{
    if (e->K > 1)
        snprintf(msg, msglen, "evaluation: %s (process %d of %d)", what, e->rank, e->K);
    else
        snprintf(msg, msglen, "evaluation: %s", what);
}

/* the reference as fid and kid open an input (this rank's rows of an .npy under mpirun) */
static int open_ref(const struct ddpm_eval *e, struct metrics_input *in,
                    const struct metrics_cli *o, char *msg, size_t msglen)
{
    if (metrics_cli_open_input(in, e->ref, o, "ddpm-train", msg, msglen) == -1)
        return -1;
    if (in->kind == METRICS_STATS) {
        snprintf(msg, msglen, "is statistics (mu, sigma): KID needs images or features");
        return -1;
    }
    return metrics_cli_check_split(o, in, msg, msglen);
}

int ddpm_eval_ref(struct ddpm_eval *e, char *msg, size_t msglen)
{
    struct metrics_cli of, ok;
    struct metrics_input in;
    struct metrics_stats st;
    struct metrics_cli_sink fs, ks;
    char used[4096], m[1024], m2[1280];
    int rc = 0;

    if (e->ready)
        return 0;
    tool_opts(&of, &ok);
    memset(&in, 0, sizeof in);
    /* every rank loads the network and opens its share of the reference before any feature
       pass, so that one that cannot ends the job before a collective starts */
    if (inception_open(&e->net, e->weights, NULL, used, sizeof used, m, sizeof m) == -1) {
        fail_msg(e, msg, msglen, m);
        rc = -1;
    } else if (open_ref(e, &in, &of, m, sizeof m) == -1) {
        snprintf(m2, sizeof m2, "%s: %s", e->ref, m);
        fail_msg(e, msg, msglen, m2);
        rc = -1;
    }
    if (any_failed(e, rc, msg, msglen)) {
        metrics_input_free(&in);
        inception_free(&e->net);
        return -1;
    }
    /* fid --save-stats, then kid --save-features of the reference; rank 0 gets every row */
    memset(&fs, 0, sizeof fs);
    memset(&ks, 0, sizeof ks);
    metrics_stats_init(&st, INCEPTION_DIMS);
    fs.d = ks.d = INCEPTION_DIMS;
    fs.st = &st;
    /* a pass fails only on a folder's image that does not decode, mid-gather: no collective
       can follow, the caller exits with the message and mpirun ends the job */
    if (metrics_cli_features(&fs, &in, e->ref, &e->net, &of, "ddpm-train", m, sizeof m) == -1 ||
        metrics_cli_features(&ks, &in, e->ref, &e->net, &ok, "ddpm-train", m, sizeof m) == -1) {
        fail_msg(e, msg, msglen, m);
        metrics_stats_free(&st);
        free(ks.rows);
        metrics_input_free(&in);
        ddpm_eval_free(e);
        return -1;
    }
    if (e->rank == 0) {
        e->n_ref = ks.n;
        e->mu = xmalloc(INCEPTION_DIMS * sizeof(double));
        e->sigma = xmalloc((size_t)INCEPTION_DIMS * INCEPTION_DIMS * sizeof(double));
        if (metrics_stats_get(&st, e->mu, e->sigma, m, sizeof m) == -1) {
            snprintf(m2, sizeof m2, "%s: %s", e->ref, m);
            fail_msg(e, msg, msglen, m2);
            rc = -1;
        }
        e->ref_kid = ks.rows;
        ks.rows = NULL;
    }
    metrics_stats_free(&st);
    free(ks.rows);
    metrics_input_free(&in);
    rc = rank0_says(e, rc, msg, msglen); /* the statistics' verdict */
    par_bcast(&e->n_ref, sizeof e->n_ref);
    if (rc != 0) {
        ddpm_eval_free(e);
        return -1;
    }
    e->ready = 1;
    return 0;
}

/* rank 0: FID and KID of the samples' features against the reference's into sc */
static int scores(const struct ddpm_eval *e, struct metrics_stats *st,
                  const struct metrics_cli_sink *ks, struct ddpm_scores *sc, char *msg,
                  size_t msglen)
{
    double *mu = xmalloc(INCEPTION_DIMS * sizeof(double));
    double *sigma = xmalloc((size_t)INCEPTION_DIMS * INCEPTION_DIMS * sizeof(double));
    int64_t nmin = ks->n < e->n_ref ? ks->n : e->n_ref;
    int m = nmin < EVAL_KID_SUBSET_MAX ? (int)nmin : EVAL_KID_SUBSET_MAX, rc = -1;
    char buf[64], what[320];

    if (metrics_stats_get(st, mu, sigma, what, sizeof what) == -1 ||
        metrics_frechet(&sc->fid, mu, sigma, e->mu, e->sigma, INCEPTION_DIMS, what,
                        sizeof what) == -1)
        goto done;
    /* a squared distance: below 0 is round-off, as fid says */
    if (sc->fid < 0)
        sc->fid = 0;
    if (nmin < 2) {
        snprintf(what, sizeof what, "%lld reference images: KID needs at least 2",
                 (long long)nmin);
        goto done;
    }
    if (metrics_kid(&sc->kid, &sc->kid_std, ks->rows, ks->n, e->ref_kid, e->n_ref,
                    INCEPTION_DIMS, EVAL_KID_SUBSETS, m, EVAL_KID_SEED, what,
                    sizeof what) == -1)
        goto done;
    /* kid prints 7 significant digits, and those were the logged scores: keep them */
    snprintf(buf, sizeof buf, "%.7g", sc->kid);
    sc->kid = strtod(buf, NULL);
    snprintf(buf, sizeof buf, "%.7g", sc->kid_std);
    sc->kid_std = strtod(buf, NULL);
    rc = 0;
done:
    if (rc == -1)
        fail_msg(e, msg, msglen, what);
    free(mu);
    free(sigma);
    return rc;
}

/* this rank's images [from, to) of the evaluation, uint8 (N,S,S,C) into img: 0, 1 when a
   signal asks to stop (1 process), -1 with msg */
static int sample(const struct ddpm_eval *e, struct unet *u, const struct sched_config *sc,
                  long from, long to, unsigned char *img, char *msg, size_t msglen)
{
    int S = u->cfg.sample_size, C = u->cfg.in_channels;
    size_t chw = (size_t)C * S * S;
    long batch = EVAL_SAMPLE_BATCH;
    struct sampler_opts so = {(int)e->steps, 0.0f, 0, -1, 0, 0};
    struct sampler s;
    struct unet_sampling w;
    char m[256];
    int rc = 0;

    /* the training layout's activations as they are: an image's bits do not depend on its
       batch, and a bigger one would grow the trainer's memory for good */
    if (u->acts.max_batch > 0 && batch > u->acts.max_batch)
        batch = u->acts.max_batch;
    if (batch > to - from)
        batch = to - from;
    if (u->acts.max_batch == 0) /* a UNet that has not trained here: sampling's only */
        unet_alloc_acts(u, (int)batch);
    if (sampler_init(&s, sc, SAMPLER_DDIM, &so, (size_t)batch * chw, m, sizeof m) == -1) {
        fail_msg(e, msg, msglen, m);
        return -1;
    }
    float *x = xmalloc((size_t)batch * chw * sizeof(float));
    unet_sampling_init(&w, u, (int)batch);
    for (long i0 = from; i0 < to; i0 += batch) {
        int B = (int)(to - i0 < batch ? to - i0 : batch);
        if (e->K == 1 && trainer_stop()) {
            rc = 1;
            break;
        }
        unet_sampling_batch(&w, u, &s, x, NULL, (uint64_t)e->seed, i0, B, NULL, NULL);
        nn_image_from_nchw(img + (size_t)(i0 - from) * chw, x, B, C, S, S);
    }
    free(x);
    unet_sampling_free(&w);
    sampler_free(&s);
    return rc;
}

int ddpm_eval_score(struct ddpm_eval *e, struct unet *u, const struct sched_config *sc,
                    struct ddpm_scores *out, char *msg, size_t msglen)
{
    struct metrics_cli of, ok;
    struct metrics_input in;
    struct metrics_stats st;
    struct metrics_cli_sink fs, ks;
    struct ddpm_scores v = {0, 0, 0};
    int S = u->cfg.sample_size, C = u->cfg.in_channels, rc;
    long from, to;
    char m[1024];

    if (C != 3) { /* the same on every rank: rank 0 says it */
        snprintf(m, sizeof m, "the model makes %d-channel images; FID and KID take RGB", C);
        fail_msg(e, msg, msglen, m);
        return rank0_says(e, -1, msg, msglen);
    }
    shard_range(e->samples, e->rank, e->K, &from, &to);
    unsigned char *img = xmalloc((size_t)(to - from) * C * S * S);
    rc = sample(e, u, sc, from, to, img, msg, msglen);
    if (rc != 0) { /* the same on every rank (bad steps), or a signal in 1 process */
        free(img);
        return e->K > 1 ? rank0_says(e, rc, msg, msglen) : rc;
    }
    /* the samples as the image array fid and kid would read: rank r's rows of the whole */
    memset(&in, 0, sizeof in);
    in.kind = METRICS_IMAGES;
    in.n = e->samples;
    in.row0 = from;
    in.arr.dtype = NPY_U8;
    in.arr.ndim = 4;
    in.arr.shape[0] = to - from, in.arr.shape[1] = S, in.arr.shape[2] = S, in.arr.shape[3] = C;
    in.arr.data = img;
    tool_opts(&of, &ok);
    memset(&fs, 0, sizeof fs);
    memset(&ks, 0, sizeof ks);
    metrics_stats_init(&st, INCEPTION_DIMS);
    fs.d = ks.d = INCEPTION_DIMS;
    fs.st = &st;
    /* in-memory images: only a sink's write could fail, and these sinks do not write */
    if (metrics_cli_features(&fs, &in, "samples", &e->net, &of, "ddpm-train", m, sizeof m) ==
            -1 ||
        metrics_cli_features(&ks, &in, "samples", &e->net, &ok, "ddpm-train", m, sizeof m) ==
            -1) {
        fail_msg(e, msg, msglen, m);
        rc = -1;
    }
    free(img);
    if (rc == 0 && e->rank == 0)
        rc = scores(e, &st, &ks, &v, msg, msglen);
    metrics_stats_free(&st);
    free(ks.rows);
    rc = rank0_says(e, rc, msg, msglen);
    par_bcast(&v, sizeof v);
    if (rc == 0)
        *out = v;
    return rc;
}

void ddpm_eval_free(struct ddpm_eval *e)
{
    inception_free(&e->net);
    free(e->mu);
    free(e->sigma);
    free(e->ref_kid);
    e->mu = e->sigma = NULL;
    e->ref_kid = NULL;
    e->ready = 0;
}

int ddpm_eval_write_json(const char *path, long step, double loss, const struct ddpm_scores *sc,
                         char *msg, size_t msglen)
{
    struct outfile of;
    if (outfile_open(&of, path, msg, msglen) == -1)
        return -1;
    fprintf(of.f, "{\n    \"step\": %ld,\n    \"train_loss\": %.7g,\n    \"fid\": %.7g,\n"
                  "    \"kid\": %.7g,\n    \"kid_std\": %.7g\n}\n", step, loss, sc->fid,
            sc->kid, sc->kid_std);
    return outfile_commit(&of, msg, msglen);
}
