/* Rows of a .npy file without the rest (npy.h): the header says where row i starts, so a
   process that needs rows [lo, hi) (an MPI rank's share of a data set) seeks there and reads
   only them. The file is checked against its header as npy_load checks it (exact size), so
   a truncated file is an error whichever rows are asked for. */
#include "io/npy.h"
#include "io/npy_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int npy_rows_open(struct npy_rows *r, const char *path, char *msg, size_t msglen)
{
    struct npy_stream s;
    struct stat st;
    off_t off;
    size_t nb;
    memset(r, 0, sizeof *r);
    if ((r->f = fopen(path, "rb")) == NULL) {
        snprintf(msg, msglen, "%s", strerror(errno));
        return -1;
    }
    if (fstat(fileno(r->f), &st) == -1 || !S_ISREG(st.st_mode)) {
        snprintf(msg, msglen, "not a regular file");
        goto fail;
    }
    s = (struct npy_stream){r->f, NULL, 0};
    if (npy_stream_header(&s, &r->hdr, msg, msglen) == -1)
        goto fail;
    if (r->hdr.ndim < 1) {
        snprintf(msg, msglen, "a scalar has no rows");
        goto fail;
    }
    off = ftello(r->f);
    nb = npy_nbytes(&r->hdr);
    if (off < 0 || (uint64_t)(st.st_size - off) != nb) {
        snprintf(msg, msglen, (uint64_t)(st.st_size - off) < nb
                                  ? "truncated: want %zu bytes, got %jd"
                                  : "%zu bytes of payload, %jd in the file",
                 nb, (intmax_t)(st.st_size - off));
        goto fail;
    }
    r->off = off;
    return 0;
fail:
    fclose(r->f);
    r->f = NULL;
    return -1;
}

int npy_rows_read(struct npy_rows *r, int64_t lo, int64_t hi, struct npy *t, char *msg,
                  size_t msglen)
{
    assert(0 <= lo && lo <= hi && hi <= r->hdr.shape[0]);
    struct npy row = r->hdr;
    row.shape[0] = 1;
    size_t rb = npy_nbytes(&row), nb = (size_t)(hi - lo) * rb;
    *t = r->hdr;
    t->shape[0] = hi - lo;
    t->data = malloc(nb ? nb : 1);
    if (t->data == NULL) {
        snprintf(msg, msglen, "out of memory (%zu bytes)", nb);
        return -1;
    }
    if (fseeko(r->f, r->off + (off_t)((size_t)lo * rb), SEEK_SET) == -1 ||
        fread(t->data, 1, nb, r->f) != nb) {
        snprintf(msg, msglen, "read error: %s", ferror(r->f) ? strerror(errno) : "file shrank");
        npy_free(t);
        return -1;
    }
    return 0;
}

void npy_rows_close(struct npy_rows *r)
{
    if (r->f != NULL)
        fclose(r->f);
    r->f = NULL;
}
