/* vae-train: train the study's convolutional VAE on uint8 (N,32,32,3) images.

   Data order: every epoch is a fresh permutation drawn from an rng seeded by (seed, epoch);
   the last batch of an epoch keeps the remainder (DataLoader's drop_last=False), so an epoch
   is ceil(N/batch) steps. The reparameterisation noise comes from one rng seeded by --seed
   whose state is saved with the checkpoint, so --resume continues bit for bit (with any
   --threads: results do not depend on the thread count).

   Files: OUT (safetensors, state_dict names, loads into PyTorch) and OUT's companion
   OUT.state.safetensors (without .safetensors: OUT.state.safetensors too) holding the
   parameters again, the Adam moments, the rng and the step. Both are written atomically
   every --save-every steps, at the end, and on SIGINT/SIGTERM (checked between steps; exit
   status 130/143). The state goes first and is a whole checkpoint by itself, so a run killed
   at any moment (kill -9, between the two renames) resumes from the last complete state.
   --resume-from-checkpoint PATH continues the run saved in PATH and its state file, writing
   OUT: the names are diffusers' (--learning-rate, --train-batch-size too). */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "nn/nn_image.h"
#include "io/npy.h"
#include "util/opt.h"
#include "nn/optim.h"
#include "util/rng.h"
#include "io/st.h"
#include "models/trainer.h"
#include "util/util.h"
#include "models/vae.h"
#include "models/vae_cli.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: vae-train --data TRAIN.npy -o VAE.safetensors [--val VAL.npy] [--epochs 10]\n"
    "                 [--batch-size 64] [--lr 1e-3] [--latent 128] [--beta 1] [--seed 0]\n"
    "                 [--threads 2] [--log TRAIN.csv] [--save-every 500]\n"
    "                 [--resume | --resume-from-checkpoint latest|PATH] [-q] [-v]\n";

static const char help[] =
    "\n"
    "Trains the study's convolutional VAE (Adam; loss = reconstruction + beta * KL per\n"
    "image) on uint8 (N,32,32,3) images scaled to [-1, 1] (x/127.5 - 1). Writes -o, a\n"
    "safetensors file with PyTorch state_dict names (hyper-parameters in its metadata),\n"
    "and OUT.state.safetensors beside it (Adam moments, rng, step) to resume from. Both\n"
    "are written atomically every --save-every steps, at the end, and on Ctrl-C (SIGINT:\n"
    "exit status 130) or SIGTERM (exit status 143). Each epoch shuffles the images with\n"
    "the seed; its last batch keeps the remainder.\n"
    "\n"
    "  -d, --data FILE              training images (required)\n"
    "  --val FILE                   validation images: val_loss in the log at epoch ends\n"
    "  -o, --output FILE            the model, .safetensors (required)\n"
    "  -e, --epochs N               epochs in all, a resumed run's included (default 10;\n"
    "                               also --num-epochs)\n"
    "  -b, --batch-size N           images per step (default 64; also --train-batch-size)\n"
    "  --lr LR                      Adam's learning rate (default 1e-3; also\n"
    "                               --learning-rate)\n"
    "  -L, --latent N               latent size (default 128)\n"
    "  --beta B                     weight of the KL term (default 1)\n"
    "  -S, --seed S                 seed of the init, the data order and the noise\n"
    "                               (default 0)\n"
    "  -t, --threads N              threads (default: $OMP_NUM_THREADS, else 2; the\n"
    "                               result does not depend on it)\n"
    "  --log FILE                   CSV, a row per step: step, epoch, loss, recon, kl,\n"
    "                               val_loss, lr, seconds (appended to when resuming)\n"
    "  --save-every N               save both files every N steps (default 500; 0: only\n"
    "                               at the end)\n"
    "  --resume                     continue the run saved in -o and its state file to\n"
    "                               --epochs, bit for bit\n"
    "  --resume-from-checkpoint C   latest: as --resume when -o exists, else start anew;\n"
    "                               PATH: continue the run saved in PATH (and its state\n"
    "                               file), writing -o\n"
    "  -q, --quiet                  no progress on stderr\n"
    "  -v, --verbose                the OpenBLAS kernel on stderr\n"
    "  -h, --help                   this text\n"
    "Hyper-parameters given with a resume must equal the checkpoint's. diffusers'\n"
    "spellings with '_' work too (--train_batch_size).\n"
    "\n"
    "Example:\n"
    "  vae-train --data data/flowers102-32-train.npy --val data/flowers102-32-val.npy \\\n"
    "      -o runs/vae.safetensors --epochs 100 --log runs/vae.csv\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

struct opts {
    const char *data, *val, *out, *log, *resume_from;
    long epochs, batch, latent, seed, threads, save_every;
    double lr, beta;
    int resume, quiet, verbose, set_batch, set_latent, set_seed, set_lr, set_beta;
};

struct run {
    struct vae m;
    float *am, *av, *x, *eps;
    struct rng noise;
    long step, spe, n_img;
    double seconds; /* training time of earlier runs (resume) */
    struct npy data, val;
    uint64_t data_hash;
    char state_path[4096];
};

static void load_images(const char *path, struct npy *t)
{
    char msg[TOOL_MSG];
    if (vae_load_images(path, t, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (t->shape[0] > INT32_MAX)
        errx(1, "%s: too many images", path);
}

/* images perm[i0..i0+n) of t -> r->x */
static void gather(struct run *r, const struct npy *t, const int64_t *perm, long i0, int n)
{
    const uint8_t *src = t->data;
    for (int i = 0; i < n; i++) {
        int64_t k = perm != NULL ? perm[i0 + i] : i0 + i;
        nn_image_to_nchw(r->x + (size_t)i * VAE_D, src + (size_t)k * VAE_D, 1, 3, 32, 32);
    }
}

/* mean loss per image over the validation set, noise from a fixed seed */
static double val_loss(struct run *r, int B)
{
    struct rng vr;
    double sum = 0;
    long n = (long)r->val.shape[0];
    rng_seed(&vr, 12345);
    for (long i = 0; i < n; i += B) {
        int b = (int)(n - i < B ? n - i : B);
        gather(r, &r->val, NULL, i, b);
        rng_normal_fill(&vr, r->eps, (size_t)b * r->m.latent);
        sum += (double)vae_forward(&r->m, r->x, r->eps, b, 0, NULL, NULL) * b;
    }
    return sum / n;
}

static void save(struct run *r, const struct opts *o)
{
    char msg[TOOL_MSG], step[32], epoch[32], batch[32], lr[32], seed[32], rng[128], secs[32];
    char nimg[32], hash[32], thr[32], latent[32], beta[32];
    const char *mk[] = {"step", "epoch", "batch_size", "lr", "seed"};
    const char *mv[] = {step, epoch, batch, lr, seed};
    const char *sk[] = {"step", "batch_size", "lr", "seed", "rng", "seconds", "data_n",
                        "data_hash", "threads", "latent", "beta"};
    const char *sv[] = {step, batch, lr, seed, rng, secs, nimg, hash, thr, latent, beta};

    snprintf(step, sizeof step, "%ld", r->step);
    snprintf(epoch, sizeof epoch, "%ld", r->step / r->spe);
    snprintf(batch, sizeof batch, "%ld", o->batch);
    snprintf(lr, sizeof lr, "%.9g", o->lr);
    snprintf(seed, sizeof seed, "%ld", o->seed);
    trainer_rng_format(rng, sizeof rng, &r->noise);
    snprintf(secs, sizeof secs, "%.3f", r->seconds);
    snprintf(nimg, sizeof nimg, "%ld", r->n_img);
    trainer_hash_format(hash, sizeof hash, r->data_hash);
    snprintf(thr, sizeof thr, "%ld", o->threads);
    snprintf(latent, sizeof latent, "%d", r->m.latent);
    snprintf(beta, sizeof beta, "%.9g", r->m.beta);
    /* state first: it is the checkpoint --resume reads; the model may lag behind it */
    if (vae_state_save(&r->m, r->am, r->av, r->state_path, sk, sv, 11, msg, sizeof msg) == -1)
        errx(1, "%s: %s", r->state_path, msg);
    if (vae_save(&r->m, o->out, mk, mv, 5, msg, sizeof msg) == -1) {
        /* a new run's outputs appear together or not at all */
        if (!o->resume && !util_exists(o->out))
            unlink(r->state_path);
        errx(1, "%s: %s", o->out, msg);
    }
}

static const char *need_meta(const struct st_file *f, const char *path, const char *key)
{
    const char *s = st_meta(f, key);
    if (s == NULL)
        errx(1, "%s: not a vae-train state file: no %s in metadata", path, key);
    return s;
}

/* checks a flag given with --resume against the checkpoint's value */
static void same(int set, double given, double saved, const char *flag)
{
    if (set && given != saved)
        errx(1, "--%s %g differs from the checkpoint's %g (resume takes it from there)", flag,
             given, saved);
}

/* the "step" of a checkpoint's metadata */
static long meta_step(const struct st_file *f, const char *path)
{
    long step;
    if (util_parse_long(need_meta(f, path, "step"), 0, LONG_MAX, &step) == -1)
        errx(1, "%s: bad step in metadata", path);
    return step;
}

/* The state file is the checkpoint (it holds the parameters); the model file, when there is
   one, must be a VAE and may lag behind it (killed between the two renames) but not lead it.
   State files of earlier versions hold no parameters: those come from the model file, which
   must then be at the same step. */
/* the run saved in from (a model file, which may be missing) and its state file; -o gets
   the continuation */
static void resume(struct run *r, struct opts *o, const char *from)
{
    struct st_file f;
    char msg[TOOL_MSG], hash[32], sp[4096];
    long step = -1, batch, seed, n, latent;
    double lr, beta;
    int have_model = util_exists(from);

    if (trainer_state_path(sp, sizeof sp, from) == -1)
        errx(1, "%s: path too long", from);

    if (have_model) {
        if (st_open(&f, from, msg, sizeof msg) == -1 ||
            vae_load_st(&r->m, &f, msg, sizeof msg))
            errx(1, "%s: %s", from, msg);
        step = meta_step(&f, from);
        st_close(&f);
    }
    if (st_open(&f, sp, msg, sizeof msg) == -1)
        errx(1, "%s: %s", sp, msg);
    r->step = meta_step(&f, sp);
    if (util_parse_long(need_meta(&f, sp, "batch_size"), 1, 1 << 20, &batch) == -1 ||
        util_parse_long(need_meta(&f, sp, "seed"), LONG_MIN, LONG_MAX, &seed) == -1 ||
        util_parse_float(need_meta(&f, sp, "lr"), 0, 1e9, &lr) == -1 ||
        util_parse_float(need_meta(&f, sp, "seconds"), 0, 1e12, &r->seconds) == -1 ||
        util_parse_long(need_meta(&f, sp, "data_n"), 0, LONG_MAX, &n) == -1 ||
        trainer_rng_parse(&r->noise, need_meta(&f, sp, "rng")) == -1)
        errx(1, "%s: bad metadata", sp);
    if (vae_state_has_params(&f)) {
        if (util_parse_long(need_meta(&f, sp, "latent"), 1, 1 << 20, &latent) == -1 ||
            util_parse_float(need_meta(&f, sp, "beta"), 0, 1e30, &beta) == -1)
            errx(1, "%s: bad metadata", sp);
        if (!have_model)
            vae_init(&r->m, (int)latent, (float)beta);
        else if (latent != r->m.latent || (float)beta != r->m.beta || step > r->step)
            errx(1, "%s: state is at step %ld but %s at step %ld%s", sp, r->step,
                 from, step, step > r->step ? "" : " of another run");
    } else if (!have_model) {
        errx(1, "%s: %s", from, strerror(ENOENT));
    } else if (r->step != step) {
        errx(1, "%s: state is at step %ld but %s at step %ld", sp, r->step, from,
             step);
    }
    if (n != r->n_img)
        errx(1, "%s: trained on %ld images, --data has %ld", from, n, r->n_img);
    trainer_hash_format(hash, sizeof hash, r->data_hash);
    if (strcmp(need_meta(&f, sp, "data_hash"), hash) != 0)
        errx(1, "%s: --data differs from the data this checkpoint was trained on", from);
    same(o->set_batch, o->batch, batch, "batch-size");
    same(o->set_seed, o->seed, seed, "seed");
    same(o->set_lr, (float)o->lr, (float)lr, "lr");
    same(o->set_latent, o->latent, r->m.latent, "latent");
    same(o->set_beta, (float)o->beta, r->m.beta, "beta");
    o->batch = batch, o->seed = seed, o->lr = lr, o->latent = r->m.latent, o->beta = r->m.beta;
    r->am = xcalloc(r->m.n_params, sizeof(float));
    r->av = xcalloc(r->m.n_params, sizeof(float));
    if (vae_state_load(&r->m, r->am, r->av, &f, msg, sizeof msg) == -1)
        errx(1, "%s: %s", sp, msg);
    st_close(&f);
}

static void parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"data", 1, 0, 'd'}, {"val", 1, 0, 'V'}, {"output", 1, 0, 'o'}, {"epochs", 1, 0, 'e'},
        {"num-epochs", 1, 0, 'e'}, {"batch-size", 1, 0, 'b'}, {"train-batch-size", 1, 0, 'b'},
        {"lr", 1, 0, 'l'}, {"learning-rate", 1, 0, 'l'}, {"latent", 1, 0, 'L'},
        {"beta", 1, 0, 'B'}, {"seed", 1, 0, 'S'}, {"threads", 1, 0, 't'}, {"log", 1, 0, 'g'},
        {"save-every", 1, 0, 's'}, {"resume", 0, 0, 'r'}, {"resume-from-checkpoint", 1, 0, 'R'},
        {"quiet", 0, 0, 'q'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct opt op;
    int c;
    *o = (struct opts){.epochs = 10, .batch = 64, .latent = 128, .threads = util_threads_default(),
                       .save_every = 500, .lr = 1e-3, .beta = 1.0};
    opt_init(&op, "d:o:e:b:L:S:t:qvh", lo);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'V': o->val = optarg; break;
        case 'o': o->out = optarg; break;
        case 'g': o->log = optarg; break;
        case 'e': bad = opt_long(&op, 1, 1000000, &o->epochs); break;
        case 'b': bad = opt_long(&op, 1, 65536, &o->batch), o->set_batch = 1; break;
        case 'L': bad = opt_long(&op, 1, 65536, &o->latent), o->set_latent = 1; break;
        case 'S': bad = opt_long(&op, 0, LONG_MAX, &o->seed), o->set_seed = 1; break;
        case 't': bad = opt_long(&op, 1, 1024, &o->threads); break;
        case 's': bad = opt_long(&op, 0, LONG_MAX, &o->save_every); break;
        case 'l': /* a rate of 0 would train nothing */
            bad = opt_double(&op, 0, 10, &o->lr) || (o->lr == 0 && opt_bad(&op, "want > 0"));
            o->set_lr = 1;
            break;
        case 'B': bad = opt_double(&op, 0, 1e6, &o->beta), o->set_beta = 1; break;
        case 'r': o->resume = 1; break;
        case 'R': o->resume_from = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'v': o->verbose = 1; break;
        case 'h': usage(0, NULL); break;
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
        usage(2, "-o VAE.safetensors is required");
    if (strcmp(o->out, "-") == 0)
        usage(2, "-o: the model and its state file are files, not - (stdout)");
    if (o->resume && o->resume_from != NULL)
        usage(2, "--resume and --resume-from-checkpoint exclude each other");
}

/* the run to continue: -o with --resume, or --resume-from-checkpoint's; NULL: a new run */
static const char *resume_source(const struct opts *o)
{
    if (o->resume)
        return o->out;
    if (o->resume_from == NULL)
        return NULL;
    if (strcmp(o->resume_from, "latest") != 0)
        return o->resume_from;
    /* the state file alone is a checkpoint (killed before the model file's first rename) */
    char sp[4096];
    if (util_exists(o->out) ||
        (trainer_state_path(sp, sizeof sp, o->out) == 0 && util_exists(sp)))
        return o->out;
    if (!o->quiet)
        warnx("no checkpoint at %s: starting a new training run", o->out);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct run r = {0};
    struct progress pg;
    FILE *log = NULL;
    const char *from;
    int64_t *perm;
    long total, perm_epoch = -1, done = 0;
    double t0;
    char msg[TOOL_MSG];

    parse(argc, argv, &o);
    tool_init_blas(&argc, &argv, &(struct tool){.verbose = o.verbose, .threads = o.threads}, msg,
                   sizeof msg);
    from = resume_source(&o);
    if (trainer_state_path(r.state_path, sizeof r.state_path, o.out) == -1)
        errx(1, "%s: path too long", o.out);
    /* fail now, not after the training, when a checkpoint cannot be written */
    if (util_check_output(o.out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.out, msg);
    if (util_check_output(r.state_path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", r.state_path, msg);
    if (o.log != NULL && util_check_output(o.log, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.log, msg);
    /* what a run killed inside a save (kill -9) left beside the two files */
    outfile_sweep(o.out);
    outfile_sweep(r.state_path);
    load_images(o.data, &r.data);
    if (o.val != NULL)
        load_images(o.val, &r.val);
    r.n_img = (long)r.data.shape[0];
    r.data_hash = trainer_data_hash(&r.data);
    if (from != NULL) {
        resume(&r, &o, from);
    } else {
        struct rng init;
        vae_init(&r.m, (int)o.latent, (float)o.beta);
        rng_seed(&init, (uint64_t)o.seed);
        vae_init_params(&r.m, &init);
        rng_seed(&r.noise, (uint64_t)o.seed ^ 0x6E6F697365ull); /* "noise": not seed+1's init */
        r.am = xcalloc(r.m.n_params, sizeof(float));
        r.av = xcalloc(r.m.n_params, sizeof(float));
    }
    vae_batch_alloc(&r.m, (int)o.batch);
    r.x = xmalloc((size_t)o.batch * VAE_D * sizeof(float));
    r.eps = xmalloc((size_t)o.batch * r.m.latent * sizeof(float));
    perm = xmalloc((size_t)r.n_img * sizeof *perm);
    r.spe = (r.n_img + o.batch - 1) / o.batch;
    total = o.epochs * r.spe;
    if (o.log != NULL) {
        log = trainer_log_open(o.log, from != NULL, r.step,
                               "step,epoch,loss,recon,kl,val_loss,lr,seconds\n");
        if (log == NULL)
            err(1, "%s", o.log);
    }
    trainer_catch_signals();

    struct adam opt = {(float)o.lr, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
    progress_init(&pg, "vae-train", "step", total);
    t0 = util_now();
    while (r.step < total && !trainer_stop()) {
        long epoch = r.step / r.spe, pos = r.step % r.spe;
        int n = (int)(r.n_img - pos * o.batch < o.batch ? r.n_img - pos * o.batch : o.batch);
        float recon, kl, loss;
        char extra[160], vl[32] = "";

        if (perm_epoch != epoch)
            trainer_epoch_perm(perm, r.n_img, o.seed, perm_epoch = epoch);
        gather(&r, &r.data, perm, pos * o.batch, n);
        rng_normal_fill(&r.noise, r.eps, (size_t)n * r.m.latent);
        vae_zero_grad(&r.m);
        loss = vae_forward(&r.m, r.x, r.eps, n, 0, &recon, &kl);
        if (!isfinite(loss))
            errx(1, "loss is %g at step %ld; stopping (last checkpoint kept)", loss, r.step + 1);
        vae_backward(&r.m, n);
        adam_step(&opt, r.m.params, r.m.grads, r.am, r.av, r.m.n_params, r.step + 1);
        r.step++;
        done += n;
        if (r.step % r.spe == 0 && o.val != NULL)
            snprintf(vl, sizeof vl, "%.6g", val_loss(&r, (int)o.batch));
        if (log != NULL)
            fprintf(log, "%ld,%ld,%.6g,%.6g,%.6g,%s,%.6g,%.3f\n", r.step, epoch + 1, loss, recon,
                    kl, vl, o.lr, r.seconds + util_now() - t0);
        if (log != NULL && fflush(log) != 0)
            err(1, "%s", o.log);
        if (o.save_every > 0 && r.step % o.save_every == 0 && r.step < total) {
            double now = util_now();
            r.seconds += now - t0, t0 = now;
            save(&r, &o);
        }
        if (!o.quiet) {
            double el = util_now() - pg.start;
            snprintf(extra, sizeof extra, "epoch %ld/%ld loss %.2f (recon %.2f kl %.2f)%s%s "
                     "%.0f img/s", epoch + 1, o.epochs, loss, recon, kl, vl[0] ? " val " : "",
                     vl, el > 0 ? done / el : 0.0);
            progress_update(&pg, r.step, extra);
        }
    }
    r.seconds += util_now() - t0;
    save(&r, &o);
    if (log != NULL && fclose(log) != 0)
        err(1, "%s", o.log);
    free(perm), free(r.x), free(r.eps), free(r.am), free(r.av);
    vae_free(&r.m);
    npy_free(&r.data);
    if (o.val != NULL)
        npy_free(&r.val);
    if (trainer_stop()) {
        warnx("interrupted at step %ld of %ld; saved %s (continue with --resume)", r.step, total,
              o.out);
        return 128 + trainer_stop();
    }
    if (!o.quiet)
        progress_done(&pg);
    return 0;
}
