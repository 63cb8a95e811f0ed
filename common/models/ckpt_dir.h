/* Training checkpoints kept as folders OUTDIR/checkpoint-STEP, as diffusers' training scripts
   (accelerate) lay them out: listing them, finding the latest to resume from, and removing
   old ones so only the newest few stay. What a folder holds is written by ddpm_ckpt_save
   (ddpm_ckpt.h); ckpt_dir_remove deletes exactly those files. */
#ifndef CKPT_DIR_H
#define CKPT_DIR_H
#include <stddef.h>

/* OUTDIR/checkpoint-STEP into buf; -1 if it does not fit */
int ckpt_dir_path(char *buf, size_t len, const char *outdir, long step);
/* The STEPs of outdir's checkpoint-STEP folders in ascending order (*steps malloc'd, free it;
   NULL when there are none); returns how many. An unreadable outdir has none. */
long ckpt_dir_steps(const char *outdir, long **steps);
/* the highest STEP, -1 if there is no checkpoint */
long ckpt_dir_latest(const char *outdir);
/* Deletes OUTDIR/checkpoint-STEP (its checkpoint files, then the folder); -1 with msg
   "OUTDIR/checkpoint-STEP: reason" if the folder stays. */
int ckpt_dir_remove(const char *outdir, long step, char *msg, size_t msglen);
/* What a run killed while saving a checkpoint left (ddpm_ckpt_save's checkpoint-STEP.tmp-PID
   and checkpoint-STEP.old-PID, PID no longer running): an .old folder whose checkpoint-STEP is
   missing (killed between the two renames) is put back, the others are deleted. Returns how
   many it handled. */
int ckpt_dir_sweep(const char *outdir);
#endif
