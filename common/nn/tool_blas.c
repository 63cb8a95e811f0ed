/* tool_init for the tools that run the nn core (tool.h): apart from tool.c, so that the
   other tools do not link OpenBLAS. */
#include "nn/tool.h"

#include "nn/nn.h"

int tool_init_blas(int *argc, char ***argv, const struct tool *t, char *msg, size_t msglen)
{
    /* first: it may re-execute the tool */
    nn_blas_setup(*argv, t->verbose);
    if (tool_init(argc, argv, t, msg, msglen) == -1)
        return -1;
    if (t->threads > 0)
        nn_set_threads((int)t->threads);
    return 0;
}
