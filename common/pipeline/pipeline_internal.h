/* What pipeline.c and pipeline_graph.c share besides pipeline.h. Internal to them. */
#ifndef PIPELINE_INTERNAL_H
#define PIPELINE_INTERNAL_H
#include <stdarg.h>
#include <stddef.h>

#include "pipeline/pipeline.h"

/* msg = "PATH:LINE: " fmt ("PATH: " fmt when line <= 0); returns -1 */
int pipeline_vfail(char *msg, size_t msglen, const char *path, int line, const char *fmt,
                   va_list ap);
/* The graph checks of pipeline_load on parsed stages: outs made by two stages or nested,
   deps linked to the stages making them (up) or existing, cycles; then p->stages in a stable
   dependency order. -1 with msg "FILE:LINE: problem". */
int pipeline_order(struct pipeline *p, char *msg, size_t msglen);
#endif
