/* A model's parameters with their checkpoint names: the one name-table mechanism of the UNet,
   the VAE and the Inception network.

   A model's layout function calls param_add once per tensor, in state-dict order, and runs
   twice (llm.c's malloc_and_point_parameters, with the size table computed by the same code
   that points into the block): after param_table_init the calls only count; param_table_alloc
   then allocates the block (zeroed) and the entries, and the second run of the same calls
   returns each tensor's pointer into the block and names its entry prefix + leaf
   (param_prefix sets the prefix). param_table_done checks the two runs agreed.

   An entry may carry a second name (param_alias, e.g. the UNet's legacy attention names):
   loading takes it when the file lacks the first, saving writes it when asked. Another block
   of the same layout (gradients, optimizer moments) is named through param_entries. */
#ifndef PARAM_TABLE_H
#define PARAM_TABLE_H
#include <stddef.h>
#include <stdint.h>

#include "io/st.h"

struct param_table {
    float *base;            /* (n_floats) the block, owned; NULL while counting */
    size_t n_floats;
    struct st_entry *e;     /* n entries in layout order: name (owned), shape, ptr into base */
    char **alias;           /* n: a second name (owned) or NULL */
    int n;
    /* the builder's state */
    int at;                 /* entries added in this run */
    size_t off;             /* floats added in this run */
    char prefix[128];
};

/* An empty table, for the counting run. */
void param_table_init(struct param_table *t);
/* The next tensor, named prefix + leaf, of shape (d0..d{ndim-1}): its pointer into the block,
   or NULL in the counting run. */
float *param_add(struct param_table *t, const char *leaf, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, int64_t d3);
/* The last added tensor's second name, prefix + leaf. */
void param_alias(struct param_table *t, const char *leaf);
void param_prefix(struct param_table *t, const char *fmt, ...);
/* After the counting run: allocates the block and the entries; the naming run follows. */
void param_table_alloc(struct param_table *t);
/* After the naming run: asserts it added what the counting run did. */
void param_table_done(struct param_table *t);
void param_table_free(struct param_table *t);

size_t param_numel(const struct st_entry *e);
/* where entry i starts in the block */
size_t param_offset(const struct param_table *t, int i);
/* index of the entry that starts at p, which must be one */
int param_find_ptr(const struct param_table *t, const float *p);

/* The entries over base, a block of the same layout: names prefix + each entry's name (or its
   alias where alias and it has one), stored in *names (caller frees it and the array). */
struct st_entry *param_entries(const struct param_table *t, const float *base,
                               const char *prefix, int alias, char **names);
/* Fills the block from f, per tensor by its name, or its alias when f lacks the name and has
   the alias. Missing, mis-shaped or (unless allow_extra) unexpected tensors are errors naming
   the tensor. */
int param_table_load(const struct param_table *t, const struct st_file *f, int allow_extra,
                     char *msg, size_t msglen);
/* Writes the block as F32 safetensors (the aliases as names where alias), with metadata. */
int param_table_save(const struct param_table *t, int alias, const char *path,
                     const char *const *keys, const char *const *vals, int n_meta, char *msg,
                     size_t msglen);
#endif
