/* What the two trainers (vae-train, ddpm-train) share so that a run can be stopped and resumed
   bit for bit: stopping on a signal between steps, the order of each epoch and its batches of
   images, the strings they record in checkpoint metadata (rng state, data fingerprint) and the
   CSV log a resumed run appends to. The model, the optimizer and the checkpoint files themselves stay with each
   trainer (vae.h, ddpm_train.h, ddpm_ckpt.h). */
#ifndef TRAINER_H
#define TRAINER_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/npy.h"
#include "util/rng.h"

/* SIGINT, SIGTERM and SIGHUP ask the run to stop: trainer_stop() returns the signal from then
   on, and the trainer saves a checkpoint between steps and exits 128+signal. A second signal
   removes util's temporary files and exits 128+signal at once. */
void trainer_catch_signals(void);
/* the handler trainer_catch_signals installs, for a tool's own handler to end with */
void trainer_on_signal(int sig);
int trainer_stop(void); /* 0, or the signal that asked to stop */

/* perm (n) = epoch's order of the n images: a permutation from an rng seeded by (seed,
   epoch), so a resumed run draws the same orders */
void trainer_epoch_perm(int64_t *perm, long n, long seed, long epoch);

/* The rng of one training sample: seeded from a hash of (seed, step, j), j the sample's index
   among the images of optimizer step `step` (from 0). What a sample draws (flip, noise,
   timestep) then depends on neither the process that trains it nor the batch it shares, so
   any number of processes, and a resumed run, draw the same numbers for it. */
void trainer_sample_rng(struct rng *r, long seed, long step, long j);

/* x (n,C,H,W) = the uint8 images perm[i0..i0+n) of data (N,H,W,C) as torchvision's ToTensor
   then Normalize(0.5, 0.5) in float32 (so in [-1, 1]); each flipped left-right with
   probability 0.5 (one rng_uniform per image, in order) when flip_rng is not NULL */
void trainer_gather_images(float *x, const struct npy *data, const int64_t *perm, long i0,
                           int n, struct rng *flip_rng);

/* FNV-1a (64 bit) of the training images' bytes: a resumed run must see the same data */
uint64_t trainer_data_hash(const struct npy *data);
/* the metadata strings: "data_hash" as 16 hex digits (buf 17+ bytes), "rng" as the four
   state words, has_spare and the spare float's bits in hex (buf 80+ bytes) */
void trainer_hash_format(char *buf, size_t len, uint64_t hash);
void trainer_rng_format(char *buf, size_t len, const struct rng *r);
/* -1 (r untouched) unless s is what trainer_rng_format writes */
int trainer_rng_parse(struct rng *r, const char *s);

/* The state file that goes with a model file (vae-train): OUT without .safetensors, then
   ".state.safetensors". -1 if that could not fit in len with room to spare. */
int trainer_state_path(char *buf, size_t len, const char *model_path);

/* The CSV log: appended to when resuming, truncated otherwise; header goes into an empty
   file. Resuming from step, the rows of later steps (written after that checkpoint by a run
   that was then killed) and a cut last line are dropped first, so the log reads as one
   uninterrupted run's. NULL (errno set) if it cannot be opened. */
FILE *trainer_log_open(const char *path, int resume, long step, const char *header);

#endif
