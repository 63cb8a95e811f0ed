/* MPI for the samplers; see par.h. Messages are sent in pieces of at most 1 GiB: MPI counts
   are int. Ranks > 0 send their whole output at the end, in one go per rank, rather than
   batch by batch: rank 0 writes its own range first and a large blocking send would wait
   for it (rendezvous), so streaming would idle the ranks behind it. */
#include "util/par.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int rank, size = 1, started;

#define PIECE ((size_t)1 << 30)

int par_init(int *argc, char ***argv, char *msg, size_t msglen)
{
    if (getenv("OMPI_COMM_WORLD_SIZE") == NULL && getenv("PMIX_RANK") == NULL)
        return 0;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        snprintf(msg, msglen, "MPI_Init failed");
        return -1;
    }
    started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank > 0) {
        int go = 0;
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
    return 0;
}

int par_rank(void) { return rank; }
int par_size(void) { return size; }

void par_go(void)
{
    int go = 1;
    if (started && rank == 0)
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
}

int par_outfile_open(struct outfile *o, struct par_out *po, const char *path, char *msg,
                     size_t msglen)
{
    po->buf = NULL;
    po->len = 0;
    if (rank == 0)
        return outfile_open(o, path, msg, msglen);
    o->path = o->tmp = NULL;
    o->f = open_memstream(&po->buf, &po->len);
    if (o->f == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    return 0;
}

static void send_bytes(const char *p, size_t n)
{
    uint64_t len = n;
    MPI_Send(&len, 1, MPI_UINT64_T, 0, 0, MPI_COMM_WORLD);
    for (size_t k = 0; k < n; k += PIECE)
        MPI_Send(p + k, (int)(n - k < PIECE ? n - k : PIECE), MPI_BYTE, 0, 0, MPI_COMM_WORLD);
}

/* rank r's bytes onto f through *buf (*cap bytes, grown up to PIECE) */
static int recv_bytes(FILE *f, int r, char **buf, size_t *cap, char *msg, size_t msglen)
{
    uint64_t len;
    MPI_Recv(&len, 1, MPI_UINT64_T, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (uint64_t k = 0; k < len; k += PIECE) {
        size_t n = len - k < PIECE ? (size_t)(len - k) : PIECE;
        if (n > *cap) {
            char *p = realloc(*buf, n);
            if (p == NULL) {
                snprintf(msg, msglen, "out of memory");
                return -1;
            }
            *buf = p;
            *cap = n;
        }
        MPI_Recv(*buf, (int)n, MPI_BYTE, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (fwrite(*buf, 1, n, f) != n) {
            snprintf(msg, msglen, "write error");
            return -1;
        }
    }
    return 0;
}

int par_outfile_commit(struct outfile *o, struct par_out *po, char *msg, size_t msglen)
{
    if (rank > 0) {
        int bad = fclose(o->f) != 0;
        o->f = NULL;
        if (bad) {
            snprintf(msg, msglen, "out of memory");
            return -1;
        }
        send_bytes(po->buf, po->len);
        free(po->buf);
        po->buf = NULL;
        return 0;
    }
    char *buf = NULL;
    size_t cap = 0;
    int res = 0;
    for (int r = 1; r < size && res == 0; r++)
        res = recv_bytes(o->f, r, &buf, &cap, msg, msglen);
    free(buf);
    if (res == -1) {
        outfile_abort(o);
        return -1;
    }
    return outfile_commit(o, msg, msglen);
}

int par_check_output(const char *path)
{
    return started && strcmp(path, "-") == 0 ? -1 : 0;
}

void par_finalize(void)
{
    if (started)
        MPI_Finalize();
    started = 0;
}
