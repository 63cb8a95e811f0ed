/* Processes of one run under mpirun (Open MPI). The samplers: rank r of K makes the r-th of K
   contiguous ranges of the images (shard.h), and rank 0 gathers the others' bytes in rank
   order into the one output, so the file is the 1-process file for any K. ddpm-train: rank 0
   sends the model and its state to the others (par_bcast), every rank computes the gradient
   of its share of each batch, and par_iallreduce_sum adds them up on every rank.
   Without mpirun nothing here touches MPI: par_init loads Open MPI (dlopen) and starts it
   only when the launcher's variables (OMPI_COMM_WORLD_SIZE, PMIX_RANK) are set, so a plain
   run has no MPI start-up, no library to load, no warnings: rank 0 of 1. Like the rest of common/, nothing here prints or exits. */
#ifndef PAR_H
#define PAR_H
#include <stddef.h>
#include <stdio.h>

#include "util/util.h"

/* Starts MPI when launched by mpirun. Ranks > 0 then wait until rank 0 calls par_go: the
   checks every rank makes (options, model, output path) fail first and once on rank 0,
   whose one line ends the job (mpirun kills the waiting ranks), not K copies of it.
   -1 with msg when MPI does not start. */
int par_init(int *argc, char ***argv, char *msg, size_t msglen);
int par_rank(void); /* 0 without mpirun */
/* 1 when mpirun started this process (par_init will start MPI), else 0; before par_init
   too, so that a plain run can check its arguments before the work starts, as always */
int par_launched(void);
int par_size(void); /* 1 without mpirun */
/* rank 0, after its checks: lets the other ranks start (a no-op for them and without MPI) */
void par_go(void);
/* Collective, before the run's output exists: par_go, then par_barrier, so that every rank
   has made its own checks (loaded its model, opened its inputs) before rank 0 makes a
   temporary output. A rank whose node lacks a file then ends the job while no temporary file
   exists: mpirun's SIGKILL, 1 s after its SIGTERM, can come before a loaded rank 0's
   clean-up. */
void par_go_all_checked(void);
/* The output of a run: on rank 0 (and without MPI) outfile_open(path); on a rank > 0 o->f
   is a memory stream (o->path NULL, so outfile_abort leaves it) whose bytes
   par_outfile_commit sends to rank 0. Rank 0 alone writes a header. */
struct par_out {
    char *buf;
    size_t len;
};
int par_outfile_open(struct outfile *o, struct par_out *po, const char *path, char *msg,
                     size_t msglen);
/* Collective, in the same order on every rank: rank 0 appends every other rank's bytes to
   o, in rank order, and commits it; a rank > 0 sends its bytes and frees them. -1 with msg
   as outfile_commit's (rank 0), or "out of memory". */
int par_outfile_commit(struct outfile *o, struct par_out *po, char *msg, size_t msglen);
/* Collective pair, for results rank 0 uses rather than writes as they come (the features
   fid, kid and is-score gather): a rank > 0 sends its n bytes at p to rank 0 with par_send
   (a no-op on rank 0 and without MPI); rank 0 takes rank r's with par_recv(r), a malloc'd
   buffer of *n bytes (free() it), once for each r in 1 .. par_size() - 1, in rank order. */
void par_send(const void *p, size_t n);
void *par_recv(int r, size_t *n);
/* Under mpirun, stdout ("-") is not for binary data: mpirun forwards the ranks' output
   through a terminal, line by line. -1 with PAR_STDOUT_MSG for "-" then, else 0. */
int par_check_output(const char *path);
#define PAR_STDOUT_MSG "under mpirun, write with -o FILE: mpirun passes stdout on as text"
/* Collective, every rank with the same n: x (n floats) becomes the sum over the ranks of
   their x (MPI_Allreduce, MPI_SUM, in place), in pieces of at most 2^28 floats (MPI counts
   are int). Every rank gets the same floats; the order of the additions is Open MPI's (it
   depends on K, not on the run). A no-op without MPI. */
void par_allreduce_sum(float *x, size_t n);
/* Non-blocking sums, to overlap the gradient's with the backward (ddpm_train.h). Collective
   like par_allreduce_sum, started in the same order on every rank: par_iallreduce_sum starts
   the sum over the ranks of x (n floats, in place: MPI_Iallreduce, MPI_SUM, in pieces of at
   most 2^28 floats), and x is neither read nor written until par_wait_all, which returns
   once every started sum is done. Open MPI moves a started sum on only inside an MPI call:
   a thread of par.c does so every 0.5 ms while sums are pending (MPI runs
   MPI_THREAD_SERIALIZED; the thread starts with the first sum, under mpirun only). The order
   of the additions is Open MPI's for that size and K, as par_allreduce_sum's. Both are
   no-ops without MPI. */
void par_iallreduce_sum(float *x, size_t n);
void par_wait_all(void);
/* Collective: rank 0's n bytes at p are copied to p on every other rank (MPI_Bcast, in
   pieces of at most 1 GiB); a no-op without MPI. */
void par_bcast(void *p, size_t n);
/* Collective: returns once every rank has called it (MPI_Barrier); a no-op without MPI */
void par_barrier(void);
/* Ends MPI (a no-op without it); every rank calls it before exiting 0. */
void par_finalize(void);
#endif
