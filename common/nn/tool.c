/* The tools' front door without the nn core (tool.h); tool_blas.c adds the OpenBLAS check. */
#include "nn/tool.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/par.h"
#include "util/util.h"

/* The process whose temporary outputs these are: a forked child that exits (a failed exec)
   must not remove its parent's files. */
static pid_t temps_owner;

static void remove_temps_at_exit(void)
{
    if (getpid() == temps_owner)
        util_remove_temps();
}

int tool_init(int *argc, char ***argv, const struct tool *t, char *msg, size_t msglen)
{
    if (t->mpi && par_init(argc, argv, msg, msglen) == -1)
        return -1;
    if (!t->own_signals)
        util_cleanup_signals();
    if (temps_owner == 0) {
        temps_owner = getpid();
        atexit(remove_temps_at_exit);
    }
    return 0;
}

void tool_usage(int status, const char *problem, const char *usage_line, const char *help)
{
    if (status != 0 && problem != NULL && problem[0] != '\0')
        warnx("%s", problem);
    fprintf(status == 0 ? stdout : stderr, "%s%s", usage_line, status == 0 ? help : "");
}
