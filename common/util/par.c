/* MPI for the samplers, the Inception passes of fid, kid and is-score, and ddpm-train;
   see par.h. Open MPI is loaded with dlopen, and only under mpirun:
   linked, libmpi and its dependencies (hwloc, libevent, PMIx ...) would cost every plain run
   some 12 ms of loading (measured: vae-sample -n 2, 52.7 -> 64.5 ms). <mpi.h> gives the
   types; the handles MPI_COMM_WORLD, MPI_INT ... are addresses of Open MPI's globals
   (ompi_mpi_comm_world ...), looked up like the functions. RTLD_GLOBAL: Open MPI's own
   plugins need libmpi's symbols. Messages are sent in pieces of at most 1 GiB: MPI counts
   are int. Ranks > 0 send their whole output at the end, in one go per rank, rather than
   batch by batch: rank 0 writes its own range first and a large blocking send would wait
   for it (rendezvous), so streaming would idle the ranks behind it. */
#include "util/par.h"

#include <dlfcn.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int rank, size = 1, started;

/* Debian 12's Open MPI 4.1 (libopenmpi3) */
#define PAR_LIBMPI "libmpi.so.40"

static struct {
    __typeof__(MPI_Init_thread) *init_thread;
    __typeof__(MPI_Comm_rank) *comm_rank;
    __typeof__(MPI_Comm_size) *comm_size;
    __typeof__(MPI_Bcast) *bcast;
    __typeof__(MPI_Send) *send;
    __typeof__(MPI_Recv) *recv;
    __typeof__(MPI_Finalize) *finalize;
    __typeof__(MPI_Allreduce) *allreduce;
    __typeof__(MPI_Barrier) *barrier;
    __typeof__(MPI_Iallreduce) *iallreduce;
    __typeof__(MPI_Testall) *testall;
    __typeof__(MPI_Waitall) *waitall;
    MPI_Comm world;
    MPI_Datatype t_int, t_byte, t_u64, t_float;
    MPI_Op op_sum;
} mpi;

/* -1 with msg when libmpi or one of its names is missing */
static int mpi_load(char *msg, size_t msglen)
{
    static const char *const names[] = {"MPI_Init_thread", "MPI_Comm_rank", "MPI_Comm_size",
                                        "MPI_Bcast", "MPI_Send", "MPI_Recv", "MPI_Finalize",
                                        "ompi_mpi_comm_world", "ompi_mpi_int",
                                        "ompi_mpi_byte", "ompi_mpi_uint64_t",
                                        "MPI_Allreduce", "MPI_Barrier", "ompi_mpi_float",
                                        "ompi_mpi_op_sum", "MPI_Iallreduce", "MPI_Testall",
                                        "MPI_Waitall"};
    void *p[sizeof names / sizeof names[0]];
    void *h = dlopen(PAR_LIBMPI, RTLD_NOW | RTLD_GLOBAL);
    if (h == NULL) {
        snprintf(msg, msglen, "cannot load Open MPI: %s", dlerror());
        return -1;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((p[i] = dlsym(h, names[i])) == NULL) {
            snprintf(msg, msglen, "%s: no %s", PAR_LIBMPI, names[i]);
            return -1;
        }
    mpi.init_thread = (__typeof__(mpi.init_thread))p[0];
    mpi.comm_rank = (__typeof__(mpi.comm_rank))p[1];
    mpi.comm_size = (__typeof__(mpi.comm_size))p[2];
    mpi.bcast = (__typeof__(mpi.bcast))p[3];
    mpi.send = (__typeof__(mpi.send))p[4];
    mpi.recv = (__typeof__(mpi.recv))p[5];
    mpi.finalize = (__typeof__(mpi.finalize))p[6];
    mpi.world = (MPI_Comm)p[7];
    mpi.t_int = (MPI_Datatype)p[8];
    mpi.t_byte = (MPI_Datatype)p[9];
    mpi.t_u64 = (MPI_Datatype)p[10];
    mpi.allreduce = (__typeof__(mpi.allreduce))p[11];
    mpi.barrier = (__typeof__(mpi.barrier))p[12];
    mpi.t_float = (MPI_Datatype)p[13];
    mpi.op_sum = (MPI_Op)p[14];
    mpi.iallreduce = (__typeof__(mpi.iallreduce))p[15];
    mpi.testall = (__typeof__(mpi.testall))p[16];
    mpi.waitall = (__typeof__(mpi.waitall))p[17];
    return 0;
}

#define PIECE ((size_t)1 << 30)

int par_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

int par_init(int *argc, char ***argv, char *msg, size_t msglen)
{
    int provided;
    if (!par_launched())
        return 0;
    if (mpi_load(msg, msglen) == -1)
        return -1;
    /* A rank waiting for another (rank 0's checks, a checkpoint it writes, an evaluation, the
       output it gathers) polls in a loop; yielding there gives the core to the processes
       that work when ranks share a node (Open MPI does so itself only when oversubscribed).
       The user's setting, if any, stands. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    /* SERIALIZED: the progress thread of par_iallreduce_sum calls MPI too, never at the same
       time as the main thread */
    if (mpi.init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS ||
        provided < MPI_THREAD_SERIALIZED) {
        snprintf(msg, msglen, "MPI_Init failed");
        return -1;
    }
    started = 1;
    mpi.comm_rank(mpi.world, &rank);
    mpi.comm_size(mpi.world, &size);
    if (rank > 0) {
        int go = 0;
        mpi.bcast(&go, 1, mpi.t_int, 0, mpi.world);
    }
    return 0;
}

int par_rank(void) { return rank; }
int par_size(void) { return size; }

void par_go(void)
{
    int go = 1;
    if (started && rank == 0)
        mpi.bcast(&go, 1, mpi.t_int, 0, mpi.world);
}

void par_go_all_checked(void)
{
    par_go();
    par_barrier();
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
    mpi.send(&len, 1, mpi.t_u64, 0, 0, mpi.world);
    for (size_t k = 0; k < n; k += PIECE)
        mpi.send(p + k, (int)(n - k < PIECE ? n - k : PIECE), mpi.t_byte, 0, 0, mpi.world);
}

/* rank r's bytes onto f through *buf (*cap bytes, grown up to PIECE) */
static int recv_bytes(FILE *f, int r, char **buf, size_t *cap, char *msg, size_t msglen)
{
    uint64_t len;
    mpi.recv(&len, 1, mpi.t_u64, r, 0, mpi.world, MPI_STATUS_IGNORE);
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
        mpi.recv(*buf, (int)n, mpi.t_byte, r, 0, mpi.world, MPI_STATUS_IGNORE);
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

void par_send(const void *p, size_t n)
{
    if (started && rank > 0)
        send_bytes(p, n);
}

void *par_recv(int r, size_t *n)
{
    uint64_t len;
    mpi.recv(&len, 1, mpi.t_u64, r, 0, mpi.world, MPI_STATUS_IGNORE);
    char *p = xmalloc(len > 0 ? (size_t)len : 1);
    for (uint64_t k = 0; k < len; k += PIECE)
        mpi.recv(p + k, (int)(len - k < PIECE ? len - k : PIECE), mpi.t_byte, r, 0, mpi.world,
                 MPI_STATUS_IGNORE);
    *n = (size_t)len;
    return p;
}

int par_check_output(const char *path)
{
    return started && strcmp(path, "-") == 0 ? -1 : 0;
}

void par_allreduce_sum(float *x, size_t n)
{
    const size_t piece = PIECE / sizeof(float);
    if (!started || size == 1)
        return;
    for (size_t k = 0; k < n; k += piece)
        mpi.allreduce(MPI_IN_PLACE, x + k, (int)(n - k < piece ? n - k : piece), mpi.t_float,
                      mpi.op_sum, mpi.world);
}

/* The started non-blocking sums, until par_wait_all, and the thread that moves them on.
   Open MPI progresses a non-blocking collective only inside an MPI call: MPI_Testall from
   the main thread between the backward's layers (31 calls a step on the cifar10 UNet) moved
   a quarter of the gradient's sum by the backward's end (shared memory, 2 ranks), so the
   rest still waited. The thread calls MPI_Testall every PROGRESS_NS while sums are pending and
   sleeps on cv otherwise; mu serialises its MPI calls with the main thread's (MPI is started
   MPI_THREAD_SERIALIZED). It takes no signals: they stay the main thread's. */
static MPI_Request *reqs;
static int n_reqs, cap_reqs, pending, stop, have_thread;
static pthread_t thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
#define PROGRESS_NS 500000L

static void *progress(void *arg)
{
    const struct timespec ts = {0, PROGRESS_NS};
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stop) {
        int done = 0;
        if (!pending) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        mpi.testall(n_reqs, reqs, &done, MPI_STATUSES_IGNORE);
        if (done)
            pending = 0;
        pthread_mutex_unlock(&mu);
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void start_thread(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* without the thread the sums still finish, in par_wait_all */
    have_thread = pthread_create(&thread, NULL, progress, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void par_iallreduce_sum(float *x, size_t n)
{
    const size_t piece = PIECE / sizeof(float);
    if (!started || size == 1)
        return;
    if (!have_thread)
        start_thread();
    pthread_mutex_lock(&mu);
    for (size_t k = 0; k < n; k += piece) {
        if (n_reqs == cap_reqs) {
            cap_reqs = cap_reqs ? 2 * cap_reqs : 64;
            reqs = xrealloc(reqs, (size_t)cap_reqs * sizeof *reqs);
        }
        mpi.iallreduce(MPI_IN_PLACE, x + k, (int)(n - k < piece ? n - k : piece), mpi.t_float,
                       mpi.op_sum, mpi.world, &reqs[n_reqs++]);
    }
    pending = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

void par_wait_all(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&mu);
    if (n_reqs > 0)
        mpi.waitall(n_reqs, reqs, MPI_STATUSES_IGNORE);
    n_reqs = 0;
    pending = 0;
    pthread_mutex_unlock(&mu);
}

void par_bcast(void *p, size_t n)
{
    if (!started || size == 1)
        return;
    for (size_t k = 0; k < n; k += PIECE)
        mpi.bcast((char *)p + k, (int)(n - k < PIECE ? n - k : PIECE), mpi.t_byte, 0,
                  mpi.world);
}

void par_barrier(void)
{
    if (started)
        mpi.barrier(mpi.world);
}

void par_finalize(void)
{
    if (have_thread) {
        pthread_mutex_lock(&mu);
        stop = 1;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        pthread_join(thread, NULL);
        have_thread = 0;
    }
    if (started)
        mpi.finalize();
    started = 0;
}
