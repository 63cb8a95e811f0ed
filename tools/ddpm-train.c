/* Over 600 lines: 130 of them are the --help text, and the rest is one run's life in one
   place (options, setup on every rank, the step loop, checkpoints and resume, evaluation,
   signals under mpirun). The training step, the checkpoint format and the evaluation live in
   models/ddpm_train.c, models/ddpm_ckpt.c and eval/ddpm_eval.c.

   ddpm-train: train or fine-tune the diffusers UNet2DModel as diffusers'
   examples/unconditional_image_generation/train_unconditional.py does (epsilon MSE at
   uniformly drawn timesteps, AdamW, warmup + cosine/linear/constant schedule, clip, EMA).

   Data order: epoch e is a permutation drawn from an rng seeded by (seed, e); an optimizer
   step takes the next --train-batch-size x --gradient-accumulation-steps images of it (the
   last step of an epoch keeps the remainder, drop_last=False). Sample j of step s draws its
   flip, noise and timestep from an rng seeded by (seed, s, j) (trainer_sample_rng), so a
   resumed run is bit for bit the uninterrupted one (same --threads and processes) with no rng
   state to save, and K processes draw what 1 process draws.

   Under mpirun -np K (util/par.h): rank 0 reads the model (--init, --config or the
   checkpoint) and sends it with its optimizer state to the others; every rank reads --data
   (checked against rank 0's by its hash). Each micro-batch of the global --train-batch-size
   is split over the ranks as numpy.array_split (shard.h); each rank accumulates the
   gradient of its share weighted by share / images of the step, MPI_Iallreduce sums them in
   buckets while the backward runs (ddpm_train.h), and every rank takes the same clip + AdamW
   step (rank 0 alone keeps the EMA). The step's loss and a stop flag per rank (a signal)
   travel in a second, small allreduce, so that every rank stops after the same step. Rank 0
   alone writes OUTDIR, checkpoints and --log. An evaluation is sharded: each rank samples its
   share and runs it through the Inception network, rank 0 scores them all (ddpm_eval.h).

   OUTDIR: the final model as a diffusers folder (EMA weights with --use-ema), and
   checkpoint-STEP/ folders (a model folder of the raw weights + training_state.safetensors:
   Adam moments, EMA, step, data hash), written atomically every --checkpointing-steps, on
   SIGINT/SIGTERM (exit 130/143) and kept --checkpoints-total-limit deep. */
#include <err.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/ckpt_dir.h"
#include "eval/ddpm_eval.h"
#include "eval/metrics_cli.h"
#include "nn/nn.h"
#include "io/npy.h"
#include "util/opt.h"
#include "util/par.h"
#include "util/rng.h"
#include "util/shard.h"
#include "nn/sched.h"
#include "io/st.h"
#include "models/trainer.h"
#include "models/unet.h"
#include "models/ddpm_ckpt.h"
#include "models/ddpm_train.h"
#include "models/unet_init.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: ddpm-train --data TRAIN.npy (--init DIR | --config config.json) -o OUTDIR\n"
    "         [--train-batch-size 16] [--gradient-accumulation-steps 1]\n"
    "         [--num-epochs 100 | --max-steps N] [--learning-rate 1e-4]\n"
    "         [--lr-scheduler cosine|linear|constant] [--lr-warmup-steps 500]\n"
    "         [--adam-beta1 0.95] [--adam-beta2 0.999] [--adam-weight-decay 1e-6]\n"
    "         [--adam-epsilon 1e-8] [--max-grad-norm 1] [--use-ema] [--ema-inv-gamma 1]\n"
    "         [--ema-power 0.75] [--ema-max-decay 0.9999] [--random-flip]\n"
    "         [--checkpointing-steps 500] [--checkpoints-total-limit 3]\n"
    "         [--resume-from-checkpoint latest|DIR] [--seed 0] [--threads 2] [--log F.csv]\n"
    "         [--eval-every N] [--eval-samples 100] [--eval-steps 50] [--eval-ref REF]\n"
    "         [--eval-weights PATH] [--final-eval-json F.json] [-q] [-v]\n";

static const char help[] =
    "\n"
    "Trains a diffusers UNet2DModel as diffusers' train_unconditional.py does: epsilon MSE\n"
    "at uniform timesteps, AdamW, warmup then the --lr-scheduler, gradient clipping, EMA.\n"
    "Reads uint8 (N,S,S,C) images (S: the model's sample_size); writes OUTDIR as a\n"
    "diffusers folder (config.json, diffusion_pytorch_model.safetensors, the EMA weights\n"
    "with --use-ema, scheduler_config.json) that ddpm-sample and\n"
    "UNet2DModel.from_pretrained load, and OUTDIR/checkpoint-STEP/ folders (raw weights,\n"
    "Adam moments, EMA, step) to resume from, bit for bit with the same --threads and\n"
    "number of processes. Ctrl-C (SIGINT) or SIGTERM saves a checkpoint and exits 130 or 143.\n"
    "diffusers' spellings with '_' work too (--lr_warmup_steps, --train_batch_size).\n"
    "\n"
    "Under mpirun -np K, data-parallel: --train-batch-size is the global batch, split over\n"
    "the K processes (sizes as numpy.array_split); their gradients are summed (MPI_Iallreduce,\n"
    "overlapped with the backward) into the gradient of the batch's mean loss and every\n"
    "process takes the same step. A sample's flip, noise and timestep depend on --seed, the\n"
    "step and its place in the step, not on K: K processes train the 1-process model (to\n"
    "float rounding). Rank 0 reads the model or checkpoint and writes OUTDIR, the checkpoints\n"
    "and --log; every process reads --data. A checkpoint resumes with any K. A process that\n"
    "fails ends them all.\n"
    "\n"
    "  -d, --data FILE                 training images (required)\n"
    "  --init DIR                      start from this model folder (fine-tuning)\n"
    "  --config FILE                   or a new model of this config.json, PyTorch's\n"
    "                                  default initialisation from --seed\n"
    "  -o, --output DIR                OUTDIR (required; --output-dir too)\n"
    "  --train-batch-size N            images per micro-batch, over all processes (the\n"
    "                                  global batch; default 16)\n"
    "  --gradient-accumulation-steps N an optimizer step every N micro-batches, on their\n"
    "                                  mean gradient: as one batch of N x --train-batch-size\n"
    "                                  in 1/N of the memory (default 1). Steps, --max-steps,\n"
    "                                  the warmup, checkpoints and the log count optimizer\n"
    "                                  steps\n"
    "  --num-epochs N                  epochs (default 100; the last batch of an epoch\n"
    "                                  keeps the remainder)\n"
    "  --max-steps N                   optimizer steps in all, instead of --num-epochs\n"
    "  --learning-rate LR              peak learning rate (default 1e-4)\n"
    "  --lr-scheduler S                cosine (default), linear or constant, after the\n"
    "                                  warmup\n"
    "  --lr-warmup-steps N             linear warmup steps (default 500; optimizer steps,\n"
    "                                  where diffusers counts N x as many)\n"
    "  --adam-beta1 B                  (default 0.95)\n"
    "  --adam-beta2 B                  (default 0.999)\n"
    "  --adam-weight-decay W           AdamW's decoupled weight decay (default 1e-6)\n"
    "  --adam-epsilon E                (default 1e-8)\n"
    "  --max-grad-norm N               clip the gradient's global norm (default 1)\n"
    "  --use-ema                       keep an EMA of the weights; OUTDIR gets it\n"
    "  --ema-inv-gamma G               EMA warmup (default 1)\n"
    "  --ema-power P                   EMA warmup (default 0.75)\n"
    "  --ema-max-decay D               (default 0.9999)\n"
    "  --random-flip                   flip images left-right with probability 0.5\n"
    "  --checkpointing-steps N         a checkpoint every N steps (default 500)\n"
    "  --checkpoints-total-limit N     keep the N newest checkpoints (default 3)\n"
    "  --resume-from-checkpoint C      latest (the newest in OUTDIR; none: start anew)\n"
    "                                  or a checkpoint folder\n"
    "  -S, --seed S                    seed of data order, noise and init (default 0)\n"
    "  -t, --threads N                 threads (of each process; default:\n"
    "                                  $OMP_NUM_THREADS, else 2)\n"
    "  --log FILE                      CSV, a row per step: step, epoch, loss, lr,\n"
    "                                  grad_norm, seconds, fid, kid (appended on resume)\n"
    "  --eval-every N                  every N steps sample --eval-samples images with\n"
    "                                  DDIM --eval-steps and log their FID and KID\n"
    "                                  against --eval-ref (default 0: never); under\n"
    "                                  mpirun each process samples and scores its share\n"
    "                                  (the scores of 1 process); --eval-ref must be on\n"
    "                                  every node\n"
    "  --eval-samples N                (default 100)\n"
    "  --eval-steps N                  (default 50)\n"
    "  --eval-ref REF                  reference images for the scores (.npy or folder)\n"
    "  --eval-weights PATH             Inception weights for fid and kid (default: fid's)\n"
    "  --final-eval-json FILE          score the final model too and write\n"
    "                                  {step, train_loss, fid, kid, kid_std} (pick-best)\n"
    "  -q, --quiet                     no progress on stderr\n"
    "  -v, --verbose                   the OpenBLAS kernel on stderr\n"
    "  -h, --help                      this text\n"
    "\n"
    "Example:\n"
    "  ddpm-train --data data/flowers102-32-train.npy --init weights/ddpm-cifar10-32 \\\n"
    "      -o runs/ft --learning-rate 3e-5 --max-steps 2000 --use-ema\n"
    "  mpirun -q -np 4 --hostfile hosts --bind-to none ddpm-train -t 8 --data train.npy \\\n"
    "      --config config.json -o runs/big --train-batch-size 128\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

struct opts {
    const char *data, *init, *config, *out, *resume, *log, *eval_ref, *eval_weights, *final_json;
    long batch, accum, epochs, max_steps, ckpt_steps, ckpt_limit, seed, threads;
    long eval_every, eval_samples, eval_steps;
    struct ddpm_hparams h;
    int flip, quiet, verbose;
};

struct run {
    struct unet u;
    struct sched_config sc;
    struct sched s;
    struct ddpm_train tr;
    struct npy data;
    float *x0, *noise;
    int *t;
    int64_t *perm;
    long n_img, spe, total;
    double seconds;
    uint64_t data_hash;
    struct ddpm_eval ev;
    int rank, K;            /* this process, of K (1 without mpirun) */
};

/* What rank 0 sends the other ranks before training (par_bcast): the model's shape, the
   noise schedule, where training stands and what it trains on. */
struct start {
    struct unet_config uc;
    struct sched_config sc;
    long step, n_img;
    uint64_t data_hash;
    int resumed;            /* Adam moments follow */
};

/* Under mpirun, rank 0's line when the launcher ends the job with SIGTERM: one process was
   killed (kill -9, the OOM killer: with -q mpirun says nothing) or failed, or mpirun itself
   was interrupted. Written (async-signal-safe) at the first SIGTERM that comes from the
   launcher (the parent: mpirun or its orted), not at a user's kill of this rank, and not
   when this rank knows already that another failed and said why (term_quiet). */
static char term_note[4400];
static size_t term_len;
static volatile sig_atomic_t term_quiet, term_seen;

static void on_term(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (!term_seen && !term_quiet && term_len > 0 && si != NULL && si->si_pid == getppid()) {
        ssize_t k = write(2, term_note, term_len);
        (void)k;
    }
    term_seen = 1;
    trainer_on_signal(sig);
}

/* rank 0 under mpirun, after trainer_catch_signals */
static void catch_launcher_term(const char *outdir)
{
    struct sigaction sa;
    int n = snprintf(term_note, sizeof term_note, "ddpm-train: ended by mpirun: a process "
                     "was killed or failed, or mpirun was interrupted; the newest checkpoint "
                     "in %s resumes (--resume-from-checkpoint latest)\n", outdir);
    term_len = n > 0 && (size_t)n < sizeof term_note ? (size_t)n : 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_term;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
}

/* a rank that must stop because another stops with an error (rank 0, or a rank whose
   evaluation failed): that one says why, this rank waits to be ended with the job (mpirun
   ends the ranks once one exits with status 1) */
static void follow_rank0(void)
{
    term_quiet = 1;
    par_barrier();
    exit(1);
}

/* ---- checkpoints ---- */

/* deletes all but the n_keep newest checkpoints, oldest first */
static void prune_ckpts(const char *outdir, long n_keep)
{
    long *steps, n = ckpt_dir_steps(outdir, &steps);
    char msg[TOOL_MSG];
    for (long i = 0; i + n_keep < n; i++)
        if (ckpt_dir_remove(outdir, steps[i], msg, sizeof msg) == -1)
            warnx("%s", msg);
    free(steps);
}

/* rank 0 */
static void save_ckpt(struct run *r, const struct opts *o)
{
    char dir[4096], msg[TOOL_MSG], step[32], seed[32], batch[32], accum[32], secs[32], nimg[32];
    char hash[32], thr[32];
    const char *k[] = {"step", "seed", "train_batch_size", "gradient_accumulation_steps",
                       "seconds", "data_n", "data_hash", "threads"};
    const char *v[] = {step, seed, batch, accum, secs, nimg, hash, thr};

    snprintf(step, sizeof step, "%ld", r->tr.step);
    snprintf(seed, sizeof seed, "%ld", o->seed);
    snprintf(batch, sizeof batch, "%ld", o->batch);
    snprintf(accum, sizeof accum, "%ld", o->accum);
    snprintf(secs, sizeof secs, "%.3f", r->seconds);
    snprintf(nimg, sizeof nimg, "%ld", r->n_img);
    trainer_hash_format(hash, sizeof hash, r->data_hash);
    snprintf(thr, sizeof thr, "%ld", o->threads);
    if (ckpt_dir_path(dir, sizeof dir, o->out, r->tr.step) == -1)
        errx(1, "%s: path too long", o->out);
    if (ddpm_ckpt_save(dir, &r->tr, &r->sc, k, v, 8, msg, sizeof msg) == -1)
        errx(1, "%s: %s", dir, msg);
    prune_ckpts(o->out, o->ckpt_limit);
}

static const char *need_meta(const struct st_file *f, const char *dir, const char *key)
{
    const char *s = st_meta(f, key);
    if (s == NULL)
        errx(1, "%s: training_state.safetensors: no %s in metadata", dir, key);
    return s;
}

/* loads the model of dir into r->u; the state comes after ddpm_train_init (resume_state) */
static void resume_model(struct run *r, const char *dir)
{
    char msg[TOOL_MSG], path[4200];
    if (unet_load_dir(&r->u, dir, msg, sizeof msg) == -1)
        errx(1, "%s: %s", dir, msg);
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    if (sched_config_load(&r->sc, path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
}

/* rank 0. Checkpoints of before issue 17 also hold the state of one rng ("rng"): randomness
   is keyed by step now, so it is not needed, and such a checkpoint resumes (with the new
   draws). Their accumulation is 1. */
static void resume_state(struct run *r, struct opts *o, const char *dir)
{
    struct st_file f;
    char msg[TOOL_MSG], hash[32];
    const char *s;
    long seed, batch, accum = 1, n, thr;

    if (ddpm_ckpt_load_state(dir, &r->tr, &f, msg, sizeof msg) == -1)
        errx(1, "%s: %s", dir, msg);
    if (util_parse_long(need_meta(&f, dir, "step"), 0, LONG_MAX, &r->tr.step) == -1 ||
        util_parse_long(need_meta(&f, dir, "seed"), 0, LONG_MAX, &seed) == -1 ||
        util_parse_long(need_meta(&f, dir, "train_batch_size"), 1, 65536, &batch) == -1 ||
        util_parse_long(need_meta(&f, dir, "data_n"), 0, LONG_MAX, &n) == -1 ||
        util_parse_float(need_meta(&f, dir, "seconds"), 0, 1e12, &r->seconds) == -1 ||
        ((s = st_meta(&f, "gradient_accumulation_steps")) != NULL &&
         util_parse_long(s, 1, 65536, &accum) == -1))
        errx(1, "%s: training_state.safetensors: bad metadata", dir);
    if (n != r->n_img)
        errx(1, "%s: trained on %ld images, --data has %ld", dir, n, r->n_img);
    trainer_hash_format(hash, sizeof hash, r->data_hash);
    if (strcmp(need_meta(&f, dir, "data_hash"), hash) != 0)
        errx(1, "%s: --data differs from the data this checkpoint was trained on", dir);
    if (seed != o->seed || batch != o->batch || accum != o->accum)
        errx(1, "%s: trained with --seed %ld --train-batch-size %ld "
             "--gradient-accumulation-steps %ld; resume with the same", dir, seed, batch, accum);
    if (!o->quiet && util_parse_long(need_meta(&f, dir, "threads"), 1, 1024, &thr) == 0 &&
        thr != o->threads)
        warnx("warning: %s was trained with --threads %ld; floats will differ slightly", dir,
              thr);
    st_close(&f);
}

/* The weights the model folder and the evaluation get: the EMA with --use-ema; with bcast
   (collective, under mpirun) rank 0's on every rank, since rank 0 alone keeps an EMA. The
   raw weights wait in the gradients, free between steps, until use_raw_weights(r, bcast). */
static int parked(const struct run *r, int bcast)
{
    return r->tr.ema != NULL || bcast;
}

static void use_ema_weights(struct run *r, int bcast)
{
    size_t n = r->u.n_params * sizeof(float);
    if (!parked(r, bcast))
        return;
    memcpy(r->tr.grads, r->u.params, n);
    if (r->tr.ema != NULL)
        memcpy(r->u.params, r->tr.ema, n);
    if (bcast)
        par_bcast(r->u.params, n);
    unet_weights_changed(&r->u);
}

static void use_raw_weights(struct run *r, int bcast)
{
    if (!parked(r, bcast))
        return;
    memcpy(r->u.params, r->tr.grads, r->u.n_params * sizeof(float));
    unet_weights_changed(&r->u);
}

/* OUTDIR as a diffusers folder: the EMA weights with --use-ema (rank 0) */
static void save_model(struct run *r, const char *dir)
{
    char msg[TOOL_MSG], path[4200];
    int rc;
    use_ema_weights(r, 0);
    rc = unet_save_dir(&r->u, dir, msg, sizeof msg);
    use_raw_weights(r, 0);
    if (rc == -1)
        errx(1, "%s: %s", dir, msg);
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    if (sched_config_save(&r->sc, path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
}

/* ---- evaluation in process: DDIM samples of the model, FID and KID (ddpm_eval.h) ----
   Under mpirun every rank calls evaluate() at the same step (collective): each samples and
   runs its share of the samples through the network, rank 0 scores them all and every rank
   gets the scores. */

/* rank 0, once: what fid and kid warned of at every evaluation */
static void eval_warnings(const struct run *r)
{
    if (r->ev.net.synthetic)
        warnx(METRICS_CLI_SYNTHETIC_WARNING);
    if (r->ev.n_ref < INCEPTION_DIMS)
        warnx("warning: %s: %lld samples < %d dims: the covariance is singular and FID is "
              "strongly biased at this size; consider kid", r->ev.ref, (long long)r->ev.n_ref,
              INCEPTION_DIMS);
    if (r->ev.samples < INCEPTION_DIMS)
        warnx("warning: --eval-samples %ld < %d dims: the covariance is singular and FID is "
              "strongly biased at this size; consider kid", r->ev.samples, INCEPTION_DIMS);
}

/* 0, or -1 when interrupted by a signal (under mpirun: on any rank) */
static int evaluate(struct run *r, struct ddpm_scores *sc)
{
    char msg[TOOL_MSG];
    int rc, first = !r->ev.ready;
    /* -1 with msg "": another rank failed, and says why */
    if ((rc = ddpm_eval_ref(&r->ev, msg, sizeof msg)) == -1 && msg[0] == '\0')
        follow_rank0();
    if (rc == -1)
        errx(1, "%s", msg);
    if (first && r->rank == 0)
        eval_warnings(r);
    /* under mpirun a signal is every rank's business at the next step, not one rank's now */
    if (r->K == 1 && trainer_stop())
        return -1;
    use_ema_weights(r, r->K > 1);
    rc = ddpm_eval_score(&r->ev, &r->u, &r->sc, sc, msg, sizeof msg);
    use_raw_weights(r, r->K > 1);
    if (rc == -1 && msg[0] == '\0')
        follow_rank0();
    if (rc == -1)
        errx(1, "%s", msg);
    return rc == 0 ? 0 : -1;
}

/* ---- options ---- */

/* main needs them before parse, for -v (opt_seen) */
#define TRAIN_SHORTOPTS "d:o:S:t:qvh"
static const struct option train_longopts[] = {
    {"data", 1, 0, 'd'}, {"init", 1, 0, 'i'}, {"config", 1, 0, 'c'}, {"output", 1, 0, 'o'},
    {"output-dir", 1, 0, 'o'}, {"train-batch-size", 1, 0, 'b'},
    {"gradient-accumulation-steps", 1, 0, 'A'}, {"num-epochs", 1, 0, 'e'},
    {"max-steps", 1, 0, 'M'}, {"learning-rate", 1, 0, 'l'}, {"lr-scheduler", 1, 0, 'L'},
    {"lr-warmup-steps", 1, 0, 'w'}, {"adam-beta1", 1, 0, '1'}, {"adam-beta2", 1, 0, '2'},
    {"adam-weight-decay", 1, 0, 'W'}, {"adam-epsilon", 1, 0, 'E'},
    {"max-grad-norm", 1, 0, 'g'}, {"use-ema", 0, 0, 'U'}, {"ema-inv-gamma", 1, 0, 'G'},
    {"ema-power", 1, 0, 'P'}, {"ema-max-decay", 1, 0, 'D'}, {"random-flip", 0, 0, 'f'},
    {"checkpointing-steps", 1, 0, 'k'}, {"checkpoints-total-limit", 1, 0, 'K'},
    {"resume-from-checkpoint", 1, 0, 'r'}, {"seed", 1, 0, 'S'}, {"threads", 1, 0, 't'},
    {"log", 1, 0, 'C'}, {"eval-every", 1, 0, 'Y'}, {"eval-samples", 1, 0, 'n'},
    {"eval-steps", 1, 0, 's'}, {"eval-ref", 1, 0, 'R'}, {"eval-weights", 1, 0, 'x'},
    {"final-eval-json", 1, 0, 'j'}, {"quiet", 0, 0, 'q'}, {"verbose", 0, 0, 'v'},
    {"help", 0, 0, 'h'},
    {0, 0, 0, 0}};

static void parse(int argc, char **argv, struct opts *o)
{
    static const char *const scheds[] = {"cosine", "linear", "constant"};
    static const enum ddpm_lr_sched sched_val[] = {DDPM_LR_COSINE, DDPM_LR_LINEAR,
                                                   DDPM_LR_CONSTANT};
    struct opt op;
    int c, k;

    memset(o, 0, sizeof *o);
    o->batch = 16, o->accum = 1, o->epochs = 100, o->max_steps = -1, o->ckpt_steps = 500;
    o->ckpt_limit = 3, o->threads = util_threads_default(), o->eval_samples = 100, o->eval_steps = 50;
    ddpm_hparams_default(&o->h);
    opt_init(&op, TRAIN_SHORTOPTS, train_longopts);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'i': o->init = optarg; break;
        case 'c': o->config = optarg; break;
        case 'o': o->out = optarg; break;
        case 'r': o->resume = optarg; break;
        case 'C': o->log = optarg; break;
        case 'R': o->eval_ref = optarg; break;
        case 'x': o->eval_weights = optarg; break;
        case 'j': o->final_json = optarg; break;
        case 'U': o->h.use_ema = 1; break;
        case 'f': o->flip = 1; break;
        case 'q': o->quiet = 1; break;
        case 'v': o->verbose = 1; break;
        case 'h': usage(0, NULL); break;
        case 'b': bad = opt_long(&op, 1, 65536, &o->batch); break;
        case 'A': bad = opt_long(&op, 1, 65536, &o->accum); break;
        case 'e': bad = opt_long(&op, 1, 100000000, &o->epochs); break;
        case 'M': bad = opt_long(&op, 1, LONG_MAX / 2, &o->max_steps); break;
        case 'w': bad = opt_long(&op, 0, LONG_MAX / 2, &o->h.warmup); break;
        case 'k': bad = opt_long(&op, 1, LONG_MAX, &o->ckpt_steps); break;
        case 'K': bad = opt_long(&op, 1, 1000000, &o->ckpt_limit); break;
        case 'S': bad = opt_long(&op, 0, LONG_MAX / 2, &o->seed); break;
        case 't': bad = opt_long(&op, 1, 1024, &o->threads); break;
        case 'Y': bad = opt_long(&op, 0, LONG_MAX, &o->eval_every); break;
        case 'n': bad = opt_long(&op, 2, 10000000, &o->eval_samples); break;
        case 's': bad = opt_long(&op, 1, 100000, &o->eval_steps); break;
        case 'l': /* a rate of 0 would train nothing */
            bad = opt_double(&op, 0, 10, &o->h.lr) || (o->h.lr == 0 && opt_bad(&op, "want > 0"));
            break;
        case '1': bad = opt_double(&op, 0, 0.999999999, &o->h.beta1); break;
        case '2': bad = opt_double(&op, 0, 0.999999999, &o->h.beta2); break;
        case 'W': bad = opt_double(&op, 0, 10, &o->h.weight_decay); break;
        case 'E': bad = opt_double(&op, 0, 1, &o->h.eps); break;
        case 'g': bad = opt_double(&op, 0, 1e30, &o->h.max_grad_norm); break;
        case 'G': bad = opt_double(&op, 1e-9, 1e30, &o->h.ema_inv_gamma); break;
        case 'P': bad = opt_double(&op, 1e-9, 100, &o->h.ema_power); break;
        case 'D': bad = opt_double(&op, 0, 1, &o->h.ema_max_decay); break;
        case 'L':
            if ((bad = opt_choice(&op, scheds, 3, &k)) == 0)
                o->h.lr_sched = sched_val[k];
            break;
        default: usage(2, NULL);
        }
        if (bad)
            usage(2, op.msg);
    }
    if (optind != argc) {
        snprintf(op.msg, sizeof op.msg, "unexpected argument '%.200s'", argv[optind]);
        usage(2, op.msg);
    }
    if (o->data == NULL)
        usage(2, "--data TRAIN.npy is required");
    if (o->out == NULL)
        usage(2, "-o OUTDIR is required");
    if (strcmp(o->out, "-") == 0)
        usage(2, "-o: OUTDIR is a folder, not - (stdout)");
    if (o->init != NULL && o->config != NULL)
        usage(2, "--init and --config exclude each other");
    if (o->init == NULL && o->config == NULL && o->resume == NULL)
        usage(2, "--init DIR, --config FILE or --resume-from-checkpoint is required");
    if ((o->eval_every > 0 || o->final_json != NULL) && o->eval_ref == NULL)
        usage(2, "--eval-every and --final-eval-json need --eval-ref");
}

/* ---- main ---- */

static void load_data(struct run *r, const struct opts *o)
{
    char msg[TOOL_MSG];
    int S = r->u.cfg.sample_size;
    if (npy_load_images(o->data, &r->data, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o->data, msg);
    if (r->data.shape[1] != S || r->data.shape[2] != S)
        errx(1, "%s: want %dx%d images (the model's sample_size), got %" PRId64 "x%" PRId64,
             o->data, S, S, r->data.shape[2], r->data.shape[1]);
    if (r->data.shape[3] != r->u.cfg.in_channels)
        errx(1, "%s: %" PRId64 " channels, the model takes %d", o->data, r->data.shape[3],
             r->u.cfg.in_channels);
    if (r->data.shape[0] < 1 || r->data.shape[0] > INT32_MAX)
        errx(1, "%s: no images", o->data);
    r->n_img = (long)r->data.shape[0];
    r->data_hash = trainer_data_hash(&r->data);
}

/* the model: from a checkpoint, a diffusers folder, or a config.json with torch's init */
static const char *setup_model(struct run *r, struct opts *o, char *ckpt, size_t len)
{
    char msg[TOOL_MSG], path[4200];
    if (o->resume != NULL) {
        if (strcmp(o->resume, "latest") == 0) {
            long s = ckpt_dir_latest(o->out);
            if (s >= 0)
                ckpt_dir_path(ckpt, len, o->out, s);
            else if (!o->quiet)
                warnx("no checkpoint in %s: starting a new training run", o->out);
        } else {
            snprintf(ckpt, len, "%s", o->resume);
        }
        if (ckpt[0]) {
            resume_model(r, ckpt);
            return ckpt;
        }
        if (o->init == NULL && o->config == NULL)
            errx(1, "%s: nothing to resume and neither --init nor --config", o->out);
    }
    if (o->init != NULL) {
        if (unet_load_dir(&r->u, o->init, msg, sizeof msg) == -1)
            errx(1, "%s: %s", o->init, msg);
        snprintf(path, sizeof path, "%s/scheduler_config.json", o->init);
        if (!util_exists(path))
            sched_config_default(&r->sc);
        else if (sched_config_load(&r->sc, path, msg, sizeof msg) == -1)
            errx(1, "%s: %s", path, msg);
    } else {
        struct unet_config c;
        struct rng ir;
        if (unet_config_load(&c, o->config, msg, sizeof msg) == -1 ||
            unet_init(&r->u, &c, msg, sizeof msg) == -1)
            errx(1, "%s: %s", o->config, msg);
        rng_seed(&ir, (uint64_t)o->seed);
        unet_init_torch_default(&r->u, &ir);
        sched_config_default(&r->sc);
    }
    return NULL;
}

/* the largest share of a micro-batch one rank trains */
static long max_share(const struct opts *o, int K)
{
    long lo, hi;
    shard_range(o->batch, 0, K, &lo, &hi);
    return hi - lo;
}

/* Rank 0 (and a plain run): checks, the model and its state, the data. Then lets the other
   ranks start and sends them what they need. Returns the checkpoint resumed from or NULL. */
static const char *setup_rank0(struct run *r, struct opts *o, char *ckpt, size_t len)
{
    char msg[TOOL_MSG];
    const char *from;
    struct start st;

    /* fail now, not after the training, when an output cannot be written */
    if (util_check_output_dir(o->out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o->out, msg);
    if (o->log != NULL && util_check_output(o->log, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o->log, msg);
    if (o->final_json != NULL && util_check_output(o->final_json, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o->final_json, msg);
    if (r->K > o->batch)
        errx(1, "%d processes for --train-batch-size %ld: want at least one image each", r->K,
             o->batch);
    if (r->K > o->eval_samples && (o->eval_every > 0 || o->final_json != NULL))
        errx(1, "%d processes for --eval-samples %ld: want at least one sample each", r->K,
             o->eval_samples);
    /* a run killed while writing a checkpoint left its temporary folders: the last complete
       checkpoint is what counts (and is what --resume-from-checkpoint latest finds) */
    if (ckpt_dir_sweep(o->out) > 0)
        warnx("%s: removed what a killed run left of an unfinished checkpoint", o->out);
    from = setup_model(r, o, ckpt, len);
    load_data(r, o);
    if (sched_init(&r->s, &r->sc, SCHED_DDPM, r->sc.num_train_timesteps, 0, msg, sizeof msg) ==
        -1)
        errx(1, "scheduler: %s", msg);
    ddpm_train_init(&r->tr, &r->u, (int)max_share(o, r->K), o->h.use_ema);
    if (from != NULL)
        resume_state(r, o, from);
    par_go();
    if (r->K > 1) {
        memset(&st, 0, sizeof st);
        st.uc = r->u.cfg;
        st.sc = r->sc;
        st.step = r->tr.step;
        st.n_img = r->n_img;
        st.data_hash = r->data_hash;
        st.resumed = from != NULL;
        par_bcast(&st, sizeof st);
        par_bcast(r->u.params, r->u.n_params * sizeof(float));
        if (from != NULL) {
            par_bcast(r->tr.m, r->u.n_params * sizeof(float));
            par_bcast(r->tr.v, r->u.n_params * sizeof(float));
        }
    }
    return from;
}

/* A rank > 0: the model and its state from rank 0, the data from its own --data (which must
   be rank 0's). Rank 0 keeps the only EMA. */
static void setup_other(struct run *r, struct opts *o)
{
    char msg[TOOL_MSG], hash[32];
    struct start st;

    par_bcast(&st, sizeof st);
    if (unet_init(&r->u, &st.uc, msg, sizeof msg) == -1) /* rank 0 made it: cannot fail */
        errx(1, "%s", msg);
    r->sc = st.sc;
    par_bcast(r->u.params, r->u.n_params * sizeof(float));
    unet_weights_changed(&r->u);
    ddpm_train_init(&r->tr, &r->u, (int)max_share(o, r->K), 0);
    r->tr.step = st.step;
    if (st.resumed) {
        par_bcast(r->tr.m, r->u.n_params * sizeof(float));
        par_bcast(r->tr.v, r->u.n_params * sizeof(float));
    }
    load_data(r, o);
    trainer_hash_format(hash, sizeof hash, r->data_hash);
    if (r->n_img != st.n_img || r->data_hash != st.data_hash)
        errx(1, "%s: not the --data of rank 0 (rank %d: %ld images, hash %s)", o->data, r->rank,
             r->n_img, hash);
    if (sched_init(&r->s, &r->sc, SCHED_DDPM, r->sc.num_train_timesteps, 0, msg, sizeof msg) ==
        -1)
        errx(1, "scheduler: %s", msg);
}

/* The gradient of optimizer step r->tr.step into r->tr.grads, this rank's share of its
   images, weighted so that the sum over ranks is the gradient of the step's mean loss.
   Returns this rank's part of that loss (the sum over ranks is the step's loss); *G the
   images of the step. Under mpirun the backward of this rank's last part starts the sum of
   the gradient over the ranks (ddpm_train_reduce_arm), which ddpm_train_reduce_finish ends. */
static double step_grad(struct run *r, const struct opts *o, long *G)
{
    long step = r->tr.step, NB = o->batch * o->accum;
    long pos = step % r->spe, i0 = pos * NB;
    long n_step = r->n_img - i0 < NB ? r->n_img - i0 : NB;
    long last = -1; /* where this rank's last part of the step starts */
    double loss = 0;

    memset(r->tr.grads, 0, r->u.n_params * sizeof(float));
    for (long m0 = 0; m0 < n_step; m0 += o->batch) {
        long n_m = n_step - m0 < o->batch ? n_step - m0 : o->batch, lo, hi;
        shard_range(n_m, r->rank, r->K, &lo, &hi);
        if (hi > lo)
            last = m0;
    }
    for (long m0 = 0; m0 < n_step; m0 += o->batch) {
        long n_m = n_step - m0 < o->batch ? n_step - m0 : o->batch, lo, hi;
        int n;
        float w, l;
        shard_range(n_m, r->rank, r->K, &lo, &hi);
        if ((n = (int)(hi - lo)) == 0)
            continue;
        ddpm_train_draw(r->x0, r->noise, r->t, &r->data, r->perm, i0, m0 + lo, n, o->seed,
                        step, o->flip, r->s.T);
        w = (float)n / (float)n_step;
        if (m0 == last && r->K > 1)
            ddpm_train_reduce_arm(&r->tr);
        l = ddpm_train_accumulate(&r->tr, &r->s, r->x0, r->noise, r->t, n, w);
        loss += (double)l * n / n_step;
    }
    *G = n_step;
    return loss;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct run r;
    struct progress pg;
    struct ddpm_scores sc = {NAN, NAN, NAN};
    FILE *log = NULL;
    char msg[TOOL_MSG], ckpt[4096] = "";
    const char *from = NULL;
    long perm_epoch = -1, done = 0, start_step;
    double t0, loss_sum = 0;
    long loss_n = 0;
    int sig = 0, rc = 0, eval_now;
    float *tail;

    /* before the options: under mpirun, ranks > 0 wait for rank 0's checks (usage errors once) */
    struct tool t = {.mpi = 1,
                     .verbose = opt_seen(argc, argv, TRAIN_SHORTOPTS, train_longopts, 'v')};
    if (tool_init_blas(&argc, &argv, &t, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    parse(argc, argv, &o);
    nn_set_threads((int)o.threads);
    memset(&r, 0, sizeof r);
    r.rank = par_rank();
    r.K = par_size();
    ddpm_eval_init(&r.ev, o.eval_ref, o.eval_weights, o.eval_samples, o.eval_steps, o.seed);
    if (r.rank == 0)
        from = setup_rank0(&r, &o, ckpt, sizeof ckpt);
    else
        setup_other(&r, &o);
    /* every rank has what it needs: only now does rank 0 make outputs */
    par_barrier();
    if (r.rank == 0 && util_mkdirs(o.out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.out, msg);
    {
        long NB = o.batch * o.accum;
        r.spe = (r.n_img + NB - 1) / NB;
    }
    r.total = o.max_steps > 0 ? o.max_steps : o.epochs * r.spe;
    o.h.total = r.total;
    {
        size_t per = (size_t)r.u.cfg.in_channels * r.u.cfg.sample_size * r.u.cfg.sample_size;
        size_t nb = (size_t)max_share(&o, r.K);
        r.x0 = xmalloc(nb * per * sizeof(float));
        r.noise = xmalloc(nb * per * sizeof(float));
        r.t = xmalloc(nb * sizeof(int));
        r.perm = xmalloc((size_t)r.n_img * sizeof *r.perm);
        tail = xmalloc((size_t)(1 + r.K) * sizeof *tail);
    }
    if (o.log != NULL && r.rank == 0) {
        log = trainer_log_open(o.log, from != NULL, r.tr.step,
                               "step,epoch,loss,lr,grad_norm,seconds,fid,kid\n");
        if (log == NULL)
            err(1, "%s", o.log);
    }
    trainer_catch_signals();
    if (r.rank == 0 && r.K > 1)
        catch_launcher_term(o.out);
    if (!o.quiet && r.rank == 0 && r.K > 1)
        fprintf(stderr, "ddpm-train: %ld images a step (global batch): %ld micro-batch%s of "
                "%ld, each split over %d processes (%ld images or fewer each)\n",
                o.batch * o.accum, o.accum, o.accum > 1 ? "es" : "", o.batch, r.K,
                max_share(&o, r.K));
    else if (!o.quiet && r.K == 1 && o.accum > 1)
        fprintf(stderr, "ddpm-train: %ld images a step: %ld micro-batches of %ld\n",
                o.batch * o.accum, o.accum, o.batch);

    start_step = r.tr.step;
    if (r.rank == 0)
        progress_init(&pg, "ddpm-train", "step", r.total);
    t0 = util_now();
    while (r.tr.step < r.total) {
        long epoch = r.tr.step / r.spe, G;
        float loss, gn, lr;
        char fid[32] = "", kid[32] = "";

        if (r.K == 1 && (sig = trainer_stop()) != 0)
            break;
        if (perm_epoch != epoch)
            trainer_epoch_perm(r.perm, r.n_img, o.seed, perm_epoch = epoch);
        loss = (float)step_grad(&r, &o, &G);
        if (r.K > 1) {
            /* the gradients (their sum started in the backward), then the step's loss and
               who was asked to stop */
            ddpm_train_reduce_finish(&r.tr);
            memset(tail, 0, (size_t)(1 + r.K) * sizeof *tail);
            tail[0] = loss;
            tail[1 + r.rank] = (float)trainer_stop();
            par_allreduce_sum(tail, (size_t)(1 + r.K));
            loss = tail[0];
            for (int k = 0; k < r.K && sig == 0; k++)
                sig = (int)tail[1 + k];
        }
        ddpm_train_apply(&r.tr, &o.h, &gn, &lr);
        if (!isfinite(loss)) {
            if (r.rank > 0)
                follow_rank0();
            errx(1, "loss is %g at step %ld; stopping (last checkpoint kept)", loss, r.tr.step);
        }
        done += G;
        loss_sum += loss, loss_n++;
        /* every rank evaluates (its shard), unless the step's allreduce says stop */
        eval_now = o.eval_every > 0 && r.tr.step % o.eval_every == 0 && sig == 0;
        if (r.rank > 0) {
            if (eval_now)
                evaluate(&r, &sc);
            if (sig != 0)
                break;
            continue;
        }
        if (eval_now && evaluate(&r, &sc) == 0) {
            snprintf(fid, sizeof fid, "%.6g", sc.fid);
            snprintf(kid, sizeof kid, "%.6g", sc.kid);
        }
        if (log != NULL) {
            fprintf(log, "%ld,%ld,%.7g,%.7g,%.7g,%.3f,%s,%s\n", r.tr.step, epoch + 1, loss, lr,
                    gn, r.seconds + util_now() - t0, fid, kid);
            if (fflush(log) != 0)
                err(1, "%s", o.log);
        }
        if (o.ckpt_steps > 0 && r.tr.step % o.ckpt_steps == 0) {
            double now = util_now();
            r.seconds += now - t0, t0 = now;
            save_ckpt(&r, &o);
        }
        if (!o.quiet) {
            char extra[200];
            double el = util_now() - pg.start;
            snprintf(extra, sizeof extra, "epoch %ld loss %.4f lr %.3g %.2f img/s%s%s", epoch + 1,
                     loss, lr, el > 0 ? done / el : 0.0, fid[0] ? " fid " : "", fid);
            progress_update(&pg, r.tr.step - start_step, extra);
        }
        if (sig != 0)
            break;
    }
    r.seconds += util_now() - t0;
    if (r.K == 1)
        sig = trainer_stop();
    if (sig != 0)
        rc = 128 + sig;
    if (r.rank == 0) {
        if (sig != 0 && (o.ckpt_steps == 0 || r.tr.step % o.ckpt_steps != 0))
            save_ckpt(&r, &o);
        save_model(&r, o.out);
    }
    /* the final scores, unless the last step's were taken (every rank, under mpirun) */
    if (sig == 0 && o.final_json != NULL &&
        !(o.eval_every > 0 && r.tr.step % o.eval_every == 0 && r.tr.step > start_step))
        evaluate(&r, &sc);
    ddpm_eval_free(&r.ev);
    if (r.rank == 0) {
        if (sig == 0 && o.final_json != NULL &&
            ddpm_eval_write_json(o.final_json, r.tr.step, loss_n ? loss_sum / loss_n : NAN,
                                 &sc, msg, sizeof msg) == -1)
            errx(1, "%s: %s", o.final_json, msg);
        if (log != NULL && fclose(log) != 0)
            err(1, "%s", o.log);
        if (rc != 0)
            warnx("interrupted at step %ld of %ld; saved %s/checkpoint-%ld (continue with "
                  "--resume-from-checkpoint latest)", r.tr.step, r.total, o.out, r.tr.step);
        else if (!o.quiet)
            progress_done(&pg);
    }
    /* the other ranks end once rank 0's files are written: a rank's exit status other than 0
       makes mpirun end the job */
    par_barrier();
    par_finalize();
    /* freed on the interrupt path too, so leak checkers see a clean exit */
    free(r.x0), free(r.noise), free(r.t), free(r.perm), free(tail);
    ddpm_train_free(&r.tr);
    sched_free(&r.s);
    unet_free(&r.u);
    npy_free(&r.data);
    return rc;
}
