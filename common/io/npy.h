/* NumPy .npy and .npz: the tensor format every tool reads and writes.
   Reading distrusts the header (magic, version, dtype, fortran_order, dims, overflow, exact
   payload length). Writing makes v1.0 files (v2.0 when the header needs it) that numpy loads.
   Errors: functions return -1 and put a one-line reason in msg. */
#ifndef NPY_H
#define NPY_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum npy_dtype { NPY_U8, NPY_I32, NPY_I64, NPY_F32, NPY_F64 };
#define NPY_MAXDIM 4

struct npy {
    enum npy_dtype dtype;
    int ndim;                  /* 0..4; 0 is a scalar */
    int64_t shape[NPY_MAXDIM];
    void *data;                /* malloc'd, C order, little-endian */
};

size_t npy_dtype_size(enum npy_dtype t);
const char *npy_dtype_name(enum npy_dtype t); /* "uint8", "float32", ... */
int64_t npy_count(const struct npy *t);       /* product of shape */
size_t npy_nbytes(const struct npy *t);
/* Allocates data for the given dtype and shape (zeroed). */
void npy_alloc(struct npy *t, enum npy_dtype dtype, int ndim, const int64_t *shape);
void npy_free(struct npy *t);

/* One array from a stream (file or pipe); reads exactly the header and payload. */
int npy_read(FILE *f, struct npy *t, char *msg, size_t msglen);
int npy_read_mem(const unsigned char *buf, size_t len, struct npy *t, char *msg, size_t msglen);
int npy_write(FILE *f, const struct npy *t, char *msg, size_t msglen);
/* Just the header, for writers that stream the payload afterwards (samplers writing N images
   batch by batch to a pipe). */
int npy_write_header(FILE *f, enum npy_dtype dtype, int ndim, const int64_t *shape,
                     char *msg, size_t msglen);

/* Loads a .npy, or one member of a .npz (sniffed by magic bytes, not by name), from a path or
   "-" (stdin). member: NULL means the .npz's "arr_0" if present, else its only member.
   A path may also name a member as "file.npz:name". */
int npy_load(const char *path, const char *member, struct npy *t, char *msg, size_t msglen);
/* Writes atomically (temp + rename); "-" writes to stdout. */
int npy_save(const char *path, const struct npy *t, char *msg, size_t msglen);

/* Rows (the first axis) of a .npy file, read without the others: npy_rows_open reads and
   checks the header and the file's size (regular files only: no pipe, no .npz), hdr is
   the whole array's dtype and shape (data NULL); npy_rows_read puts rows [lo, hi)
   (0 <= lo <= hi <= hdr.shape[0]) in t, shape[0] = hi - lo. */
struct npy_rows {
    FILE *f;
    struct npy hdr;
    int64_t off; /* where the payload starts */
};
int npy_rows_open(struct npy_rows *r, const char *path, char *msg, size_t msglen);
int npy_rows_read(struct npy_rows *r, int64_t lo, int64_t hi, struct npy *t, char *msg,
                  size_t msglen);
void npy_rows_close(struct npy_rows *r);

/* .npz: a ZIP of NAME.npy members, stored or deflated; ZIP64 as numpy writes it.
   npz_names fills a malloc'd array of malloc'd names (without .npy). */
int npz_names(const char *path, char ***names, int *n, char *msg, size_t msglen);
int npz_read(const char *path, const char *name, struct npy *t, char *msg, size_t msglen);
/* Writes n arrays atomically; compress: deflate like np.savez_compressed. */
int npz_write(const char *path, const char *const *names, const struct npy *arrays, int n,
              int compress, char *msg, size_t msglen);

/* Every array of a .npy (n = 1, (*names)[0] = NULL) or of an .npz (n members, names without
   .npy; "file.npz:name" selects one), from a path or "-". Free with npy_free_all. */
int npy_load_all(const char *path, struct npy **arrays, char ***names, int *n, char *msg,
                 size_t msglen);
void npy_free_all(struct npy *arrays, char **names, int n);

/* Image batches: uint8 (N,H,W,3) from a .npy/.npz path or "-", checked. */
int npy_load_images(const char *path, struct npy *t, char *msg, size_t msglen);
/* For a message about an array that should be (N,H,W,3) images: ": looks like PyTorch's
   (N,C,H,W); np.transpose(x, (0,2,3,1)) gives (N,H,W,C)" when t is channels-first (4-D,
   1 or 3 in dim 1 but not in dim 3), else "". */
const char *npy_nchw_hint(const struct npy *t);
#endif
