/* Shards: the images of a run split into N contiguous ranges by global index, so that N
   processes (a job array with --shard I/N, or MPI ranks) each make one range and the ranges
   concatenated in order are the 1-process output. Image i's noise depends only on the seed
   and i, so a shard is exactly its slice of the full run. */
#ifndef SHARD_H
#define SHARD_H
#include <stddef.h>

/* "I/N" with 0 <= I < N <= 65536 (I counts from 0, as Slurm's --array=0-N-1): 0, or -1
   (the tool says "--shard: bad value: ..." with opt_bad(p, SHARD_WANT)) */
#define SHARD_WANT "want I/N with 0 <= I < N <= 65536"
int shard_parse(const char *s, int *i, int *n);
/* The items [*lo, *hi) of shard i of n over n_items: sizes differ by at most one, the
   larger first (numpy.array_split's split points) */
void shard_range(long n_items, int i, int n, long *lo, long *hi);
/* The images [*lo, *hi) of n_items that this process makes (the samplers): shard i of n, and
   under mpirun rank r of K the r-th of K ranges of that; *n_out is the shard's size, what
   rank 0 gathers and writes. -1 with msg when there are more shards than images ("--shard
   I/N: more shards than the M images") or more processes than the shard has images. */
int shard_rank_range(long n_items, int i, int n, long *lo, long *hi, long *n_out, char *msg,
                     size_t msglen);
#endif
