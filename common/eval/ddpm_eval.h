/* Scores of a diffusion model during training, by the sibling tools rather than in process:
   ddpm-sample draws DDIM samples from a saved model folder, fid and kid score them against a
   reference whose statistics and features are computed once per run and cached in OUTDIR.
   The tools run from the trainer's own bin/ folder with their stdout captured; a tool that
   fails is an error, unless a signal asked the run to stop (trainer_stop(): the children got
   the Ctrl-C too), which skips the evaluation. Errors: -1 and msg (the child's own message
   is on stderr).
   Under mpirun -np K (util/par.h) every call but ddpm_eval_write_json is collective: each
   rank makes its shard of the samples and of the features (in e->dir, its own folder: rank
   0's in OUTDIR, the others' in $TMPDIR, /tmp by default), rank 0 gathers the features in
   rank order, scores them and sends the result to every rank: the scores of one process,
   on every rank. When a rank fails, every rank cleans up and returns -1: the failed one with
   its msg, the others with msg "" (they should exit quietly once it has said why: a barrier
   it never joins, then mpirun ends them). --eval-ref must be readable on every rank. */
#ifndef DDPM_EVAL_H
#define DDPM_EVAL_H
#include <stddef.h>

struct ddpm_eval {
    char bindir[4096];                 /* where ddpm-sample, fid and kid are */
    char outdir[4096];                 /* the training run's OUTDIR */
    const char *ref, *weights;         /* --eval-ref, --eval-weights (NULL: fid's default) */
    long samples, steps, seed, threads;
    char dir[4096];                    /* OUTDIR/.eval-PID: the model folder to score (a rank
                                          > 0's: $TMPDIR/ddpm-train-eval-PID) */
    int rank, K;                       /* this process of K (par.h) */
    char fid_ref[4200], kid_ref[4200]; /* the cached reference statistics / features */
};

struct ddpm_scores {
    double fid, kid, kid_std;
};

/* outdir is copied; ref and weights must outlive e */
void ddpm_eval_init(struct ddpm_eval *e, const char *outdir, const char *ref,
                    const char *weights, long samples, long steps, long seed, long threads);
/* fid --save-stats and kid --save-features of the reference, once (then cached in rank 0's
   OUTDIR); 0, 1 when interrupted (nothing cached), -1 with msg when a tool fails. */
int ddpm_eval_ref(struct ddpm_eval *e, char *msg, size_t msglen);
/* With the model saved in e->dir (under mpirun by every rank, the same weights): ddpm-sample (--scheduler ddim), fid and kid of the samples
   into sc, then e->dir and its files are removed. 0, 1 if interrupted (the scores that were
   read are in sc), -1 with msg when a tool fails or prints something unexpected (e->dir is
   then left as it is). */
int ddpm_eval_score(struct ddpm_eval *e, struct ddpm_scores *sc, char *msg, size_t msglen);
/* deletes the cached reference files (rank 0's) */
void ddpm_eval_remove_ref(struct ddpm_eval *e);
/* --final-eval-json: {"step", "train_loss", "fid", "kid", "kid_std"} written atomically;
   -1 with msg (without the path) */
int ddpm_eval_write_json(const char *path, long step, double loss, const struct ddpm_scores *sc,
                         char *msg, size_t msglen);
#endif
