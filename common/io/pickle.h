/* The pickle machine behind pth.c: it runs the subset of pickle opcodes that torch.save
   writes for a state dict and builds a tree of values (dicts, tuples, tensors, storages).
   Nothing is ever executed: GLOBAL names are matched against a short allow list
   (OrderedDict, _rebuild_tensor_v2, _rebuild_parameter, the typed storage classes) and
   anything else is refused. Internal to pth.c, which finds the storages' bytes (zip members
   or legacy trailing blobs) and turns the tree into an st_file.
   Errors: -1 with "pickle: problem" in k->msg. */
#ifndef PICKLE_H
#define PICKLE_H
#include <stddef.h>
#include <stdint.h>

#include "io/st.h"

#define PK_MAX_STACK (1 << 20)
#define PK_MAX_MEMO (1 << 20)
#define PK_MAX_DEPTH 16 /* dicts nested in the state dict */

enum pv_type {
    PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL,
    PV_STORAGE, PV_TENSOR
};

enum pv_global { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE };

/* One pickle value. Values live in an arena (struct pk.all) and are freed together, so the
   memo and containers can share them freely. */
struct pv {
    enum pv_type type;
    int64_t i;                 /* INT, BOOL; GLOBAL kind; STORAGE numel */
    double f;
    char *s;                   /* STR (NUL-terminated copy); STORAGE key */
    size_t slen;
    struct pv **items;         /* TUPLE, LIST; DICT: key, value pairs */
    int n, cap;
    enum st_dtype dt;          /* GLOBAL G_STORAGE, STORAGE */
    /* STORAGE: bytes once resolved */
    const unsigned char *data;
    size_t nbytes;
    /* TENSOR */
    struct pv *storage;
    int64_t offset;
    int ndim;
    int64_t size[ST_MAXDIM], stride[ST_MAXDIM];
};

/* The machine: the arena of every value made, the stack, MARKs, memo, and where errors go. */
struct pk {
    struct pv **all;
    size_t n_all, cap_all;
    struct pv **stack;
    int sp, cap_stack;
    int *marks;
    int n_marks, cap_marks;
    struct pv **memo;
    size_t cap_memo, n_memo;
    char *msg;
    size_t msglen;
    size_t pos; /* opcode offset, for messages */
};

/* Runs one pickle from buf (k zeroed but for msg and msglen, or used by earlier pickles of
   the same file); *used is its length through STOP, *out the result, which lives until
   pickle_free. */
int pickle_run(struct pk *k, const unsigned char *buf, size_t len, size_t *used,
               struct pv **out);
/* every value of every pickle run so far */
void pickle_free(struct pk *k);
/* all storages (reachable or not) referenced by persistent ids, in creation order: a
   malloc'd array of *n pointers into k's values */
void pickle_storages(struct pk *k, struct pv ***out, int *n);
/* "pickle: " fmt into k->msg; returns -1 */
int pickle_fail(struct pk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* n bytes little-endian */
uint64_t pickle_le(const unsigned char *p, int n);
#endif
