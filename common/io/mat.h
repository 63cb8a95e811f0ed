/* MATLAB level-5 .mat reading, enough for the Flowers102 imagelabels.mat and setid.mat:
   header, little- and big-endian files, small-element tags, miCOMPRESSED (zlib) elements,
   miMATRIX numeric arrays of any numeric class whose data element type may differ from the
   class (converted on read). Data is column-major; for vectors this does not matter. */
#ifndef MAT_H
#define MAT_H
#include <stddef.h>
#include <stdint.h>

struct mat_var {
    char *name;
    int ndim;
    int64_t dims[8];
    double *data; /* numel values, column-major, converted to double */
    int64_t numel;
};

struct mat_file {
    int n;
    struct mat_var *v;
};

int mat_read(const char *path, struct mat_file *m, char *msg, size_t msglen);
int mat_read_mem(const unsigned char *buf, size_t len, struct mat_file *m, char *msg,
                 size_t msglen);
const struct mat_var *mat_find(const struct mat_file *m, const char *name);
void mat_free(struct mat_file *m);
#endif
