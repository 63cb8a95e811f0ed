/* safetensors checkpoints: 8-byte little-endian header length, a JSON header
   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
   then the data. Reading mmaps the file and validates the header: offsets in range, sizes
   equal to shape x dtype size, no overlap, no duplicate names. F32, F16 and BF16 read as
   float32; I64/I32 are kept for integer tensors.

   The same in-memory table (struct st_file) is filled by the PyTorch .pth reader (pth.h), so
   models load either format through st_load_entries. */
#ifndef ST_H
#define ST_H
#include <stddef.h>
#include <stdint.h>

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_U8, ST_BOOL };
#define ST_MAXDIM 8

struct st_tensor {
    char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAXDIM];
    const void *data;   /* into the mapping (safetensors) or an owned block (pth) */
    size_t nbytes;
};

struct st_file {
    int n;
    struct st_tensor *t;
    int n_meta;
    char **meta_keys, **meta_vals; /* __metadata__ (string to string) */
    void *map;                     /* mmap'd file, or NULL */
    size_t map_len;
    void *owned;                   /* heap block holding tensor data, or NULL */
};

int st_open(struct st_file *f, const char *path, char *msg, size_t msglen);
void st_close(struct st_file *f);
const struct st_tensor *st_find(const struct st_file *f, const char *name);
const char *st_meta(const struct st_file *f, const char *key); /* NULL if absent */
/* converts any floating dtype to float32 into dst (count = product of shape) */
void st_to_f32(const struct st_tensor *t, float *dst);

/* A model's parameter table: a name, its shape and where its float32 values live. */
struct st_entry {
    const char *name;
    int ndim;
    int64_t shape[4];
    float *ptr;
};
/* Fills every entry from the file. A missing or mis-shaped tensor is an error naming it; so is
   a tensor in the file that no entry names, unless allow_extra. */
int st_load_entries(const struct st_file *f, const struct st_entry *e, int n, int allow_extra,
                    char *msg, size_t msglen);
/* Writes the entries as F32 safetensors (names sorted as safetensors does; the header is
   padded so the data section starts 8-byte aligned, tensors follow contiguously), with optional string metadata (n_meta key/value pairs), atomically. */
int st_save_entries(const char *path, const struct st_entry *e, int n, const char *const *meta_keys,
                    const char *const *meta_vals, int n_meta, char *msg, size_t msglen);

/* Additions. */
size_t st_dtype_size(enum st_dtype d);
const char *st_dtype_name(enum st_dtype d); /* "F32", "BF16", ... as in safetensors */
int64_t st_numel(const struct st_tensor *t);
/* Writes tensors of any dtype (t[i].data holds t[i].nbytes raw little-endian bytes) exactly as
   the Rust safetensors writer does: tensors ordered by dtype (U8/BOOL last ... I64/F64 first,
   the Rust Dtype order descending), then by name; compact header JSON ("__metadata__" first,
   keys sorted) padded with spaces to a multiple of 8; data contiguous. "-" is stdout.
   Atomic (temp + rename). Duplicate names are an error. */
int st_save_tensors(const char *path, const struct st_tensor *t, int n,
                    const char *const *meta_keys, const char *const *meta_vals, int n_meta,
                    char *msg, size_t msglen);
#endif
