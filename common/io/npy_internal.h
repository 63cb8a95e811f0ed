/* What npz.c needs of npy.c besides npy.h: reading one .npy from a stream whose first bytes
   were already read to tell .npy from .npz, and the header bytes of an array for building
   .npz members in memory. Internal to npy.c and npz.c. */
#ifndef NPY_INTERNAL_H
#define NPY_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/npy.h"

/* A stream whose first npre bytes were already consumed (sniffing) and are replayed. */
struct npy_stream {
    FILE *f;
    const unsigned char *pre;
    size_t npre;
};
/* The header of one .npy from r into t (dtype, ndim, shape; data NULL), r left at the
   payload; -1 with msg as npy_read. */
int npy_stream_header(struct npy_stream *r, struct npy *t, char *msg, size_t msglen);
/* One .npy (header and exactly its payload) from r; -1 with msg as npy_read. */
int npy_stream_read(struct npy_stream *r, struct npy *t, char *msg, size_t msglen);
/* The full prefix (magic, version, length, dict, padding, '\n') exactly as numpy 1.24 writes
   it; returns its length. buf must hold 512 bytes (4 dims need < 256). */
size_t npy_header_bytes(unsigned char *buf, enum npy_dtype dtype, int ndim,
                        const int64_t *shape);
#endif
