/* The front door of every tool: what main does once its options are read (or, for a tool that
   starts MPI before its options, first), in one order, and the one usage convention.

   tool_init_blas, for the tools that run the nn core (ddpm-*, vae-*, the metric tools):
     1. the OpenBLAS kernel check (nn_blas_setup), which may re-execute the tool: first, so
        that nothing before it is done twice;
     2. then as tool_init: MPI under mpirun (t->mpi), the signal handlers and the removal of
        temporary outputs at exit;
     3. the threads (t->threads > 0; 0: the tool sets them once its options are read).
   tool_init, for the others: 2 alone, without linking OpenBLAS (tool.c needs util/ only, so
   that dsplit, npyinfo ... do not load OpenBLAS and its threads at every start).

   Temporary outputs (outfile_open's path.XXXXXX) are removed at a signal and at exit, by
   the process that made them: a tool's error path is errx, with no outfile_abort before it.
   Messages name the tool through err(3) (glibc's program_invocation_short_name). Like the
   rest of common/, nothing here exits; tool_usage prints the tool's usage. */
#ifndef TOOL_H
#define TOOL_H
#include <stddef.h>

/* The tools' message buffer: one line from common/ (or the tool), which may hold a path
   (PATH_MAX, 4096) and a sentence. */
#define TOOL_MSG 4400

struct tool {
    int mpi;         /* par_init when mpirun started the tool (util/par.h) */
    int own_signals; /* the tool handles SIGINT ... itself (pipe forwards them to its stages) */
    int verbose;     /* tool_init_blas: say on stderr which kernel runs and why */
    long threads;    /* tool_init_blas: nn_set_threads(threads) when > 0 */
};

/* 0, or -1 with msg when MPI does not start. Under mpirun ranks > 0 return once rank 0 has
   made its checks (par_go): a tool that calls this before its options says a usage error
   once, not once per rank. */
int tool_init(int *argc, char ***argv, const struct tool *t, char *msg, size_t msglen);
int tool_init_blas(int *argc, char ***argv, const struct tool *t, char *msg, size_t msglen);

/* Every tool's usage(status, problem), which exits with status after this. Status 0 (--help):
   usage_line and help on stdout. Otherwise, on stderr, "tool: problem" (unless problem is
   NULL or "") and usage_line. */
void tool_usage(int status, const char *problem, const char *usage_line, const char *help);
#endif
