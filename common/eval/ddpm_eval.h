/* Scores of a diffusion model during training, in process: DDIM samples of the UNet the
   trainer holds (models/unet_sampling.h, the loop of ddpm-sample), their Inception features
   (the network loaded once and kept), FID against the reference's statistics and KID against
   its features (both computed once and kept), by the functions and with the settings of the
   fid and kid tools: FID on pytorch-fid's preprocessing, KID on torch-fidelity's with 100
   subsets of min(1000, N) rows and seed 2020. The scores are those fid and kid print for
   `ddpm-sample --scheduler ddim --steps STEPS --seed SEED -n SAMPLES` of the same weights
   and scheduler config against REF (KID, as kid prints it, to 7 significant digits).

   Under mpirun -np K (util/par.h) every call but ddpm_eval_write_json is collective: rank r
   samples the r-th of K contiguous ranges of the images and runs its range of them and of
   the reference through the network; rank 0 gathers the features in rank order
   (metrics_cli_features), scores them and sends the result to every rank: the scores of one
   process, on every rank. When a rank fails, every rank returns -1: the failed one with its
   msg, the others with msg "" (they should exit quietly once it has said why: a barrier it
   never joins, then mpirun ends them). --eval-ref must be readable on every rank. */
#ifndef DDPM_EVAL_H
#define DDPM_EVAL_H
#include <stddef.h>
#include <stdint.h>

#include "models/inception.h"
#include "models/unet.h"
#include "nn/sched.h"

struct ddpm_eval {
    const char *ref, *weights;         /* --eval-ref, --eval-weights (NULL: fid's default) */
    long samples, steps, seed;
    int rank, K;                       /* this process of K (par.h) */
    int ready;                         /* net and the reference's scores are loaded */
    struct inception net;
    int64_t n_ref;                     /* the reference's images */
    double *mu, *sigma;                /* rank 0: the reference's FID statistics (2048),
                                          (2048,2048) */
    float *ref_kid;                    /* rank 0: its KID features (n_ref, 2048) */
};

struct ddpm_scores {
    double fid, kid, kid_std;
};

/* ref and weights must outlive e */
void ddpm_eval_init(struct ddpm_eval *e, const char *ref, const char *weights, long samples,
                    long steps, long seed);
/* Loads the Inception network and computes the reference's FID statistics and KID features,
   once (later calls return 0 at once): 0, or -1 with msg. */
int ddpm_eval_ref(struct ddpm_eval *e, char *msg, size_t msglen);
/* The scores of u's current weights (every rank must hold the same) sampled with sc's
   scheduler into out: 0; 1 if a signal asked the run to stop (trainer_stop(), checked
   between batches in a 1-process run only: under mpirun a signal is every rank's business
   at the next step); -1 with msg. Batches are at most u->acts.max_batch images (16, allocated
   here, when u has no activations yet), so the training layout is sampled as it is, without
   a second model. */
int ddpm_eval_score(struct ddpm_eval *e, struct unet *u, const struct sched_config *sc,
                    struct ddpm_scores *out, char *msg, size_t msglen);
void ddpm_eval_free(struct ddpm_eval *e);
/* --final-eval-json: {"step", "train_loss", "fid", "kid", "kid_std"} written atomically;
   -1 with msg (without the path) */
int ddpm_eval_write_json(const char *path, long step, double loss, const struct ddpm_scores *sc,
                         char *msg, size_t msglen);
#endif
