/* The training checkpoints of ddpm-train (ddpm_train.h): saving the model, the optimizer state
   and the run's metadata as one folder, and loading the optimizer state back. */
#ifndef DDPM_CKPT_H
#define DDPM_CKPT_H
#include <stddef.h>

struct ddpm_train;
struct sched_config;
struct st_file;

/* A training checkpoint folder, written as dir.tmp-PID then renamed (never half there): a
   diffusers model folder of the current weights (config.json, scheduler_config.json,
   diffusion_pytorch_model.safetensors) plus training_state.safetensors holding adam_m,
   adam_v and, with EMA, ema (flat, n_params each, the params' layout) and n_meta string
   metadata pairs. An existing dir is replaced. */
int ddpm_ckpt_save(const char *dir, const struct ddpm_train *tr, const struct sched_config *sc,
                   const char *const *keys, const char *const *vals, int n_meta, char *msg,
                   size_t msglen);
/* Fills tr's moments and EMA from dir/training_state.safetensors (tr initialised on the
   model loaded from dir) and leaves the file open in f for its metadata (st_close it). */
int ddpm_ckpt_load_state(const char *dir, struct ddpm_train *tr, struct st_file *f, char *msg,
                         size_t msglen);
#endif
