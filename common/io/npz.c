/* NumPy .npz (a ZIP of NAME.npy members, through zip.c) and loading by path: npy_load and
   npy_load_all sniff the first bytes of a file or pipe to read a .npy (npy.c) or an .npz,
   and accept "file.npz:name" to pick a member. */
#include "io/npy.h"
#include "io/npy_internal.h"
#include "util/util.h"
#include "io/zip.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int npz_member(const struct zip *z, const char *name, char *msg, size_t msglen)
{
    size_t n = strlen(name);
    char *full = xmalloc(n + 5);
    int i;
    memcpy(full, name, n);
    memcpy(full + n, ".npy", 5);
    i = zip_find(z, full);
    free(full);
    if (i == -1)
        i = zip_find(z, name);
    if (i == -1)
        snprintf(msg, msglen, "no member '%s' in the .npz", name);
    return i;
}

/* member NULL: arr_0, else the only member */
static int npz_load_mem(const unsigned char *buf, size_t len, const char *member,
                        struct npy *t, char *msg, size_t msglen)
{
    struct zip z;
    unsigned char *data;
    size_t dlen;
    int i, rc;
    memset(t, 0, sizeof *t);
    if (zip_open(&z, buf, len, msg, msglen) == -1)
        return -1;
    if (member != NULL) {
        i = npz_member(&z, member, msg, msglen);
    } else if ((i = zip_find(&z, "arr_0.npy")) == -1) {
        if (z.n == 1) {
            i = 0;
        } else {
            snprintf(msg, msglen, "the .npz has %d members; name one as FILE.npz:NAME", z.n);
            i = -1;
        }
    }
    if (i == -1) {
        zip_close(&z);
        return -1;
    }
    if (zip_extract(&z, i, &data, &dlen, msg, msglen) == -1) {
        zip_close(&z);
        return -1;
    }
    rc = npy_read_mem(data, dlen, t, msg, msglen);
    if (rc == -1) {
        char m2[128];
        snprintf(m2, sizeof m2, "%s", msg);
        snprintf(msg, msglen, "%s: %s", z.e[i].name, m2);
        util_msg_oneline(msg); /* the member name comes from the file */
    }
    free(data);
    zip_close(&z);
    return rc;
}

static int is_zip(const unsigned char *b)
{
    return memcmp(b, "PK\x03\x04", 4) == 0 || memcmp(b, "PK\x05\x06", 4) == 0;
}

/* Reads the rest of f after the first 4 bytes into one buffer. */
static int slurp(FILE *f, const unsigned char *first, unsigned char **buf, size_t *len,
                 char *msg, size_t msglen)
{
    size_t cap = 1 << 16, n = 4, got;
    unsigned char *b = xmalloc(cap);
    memcpy(b, first, 4);
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            b = xrealloc(b, cap);
        }
    }
    if (ferror(f)) {
        snprintf(msg, msglen, "read error: %s", strerror(errno));
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static int load_stream(FILE *f, const char *member, struct npy *t, char *msg, size_t msglen)
{
    unsigned char first[4];
    struct npy_stream r = {f, first, 4};
    size_t got = fread(first, 1, 4, f);
    if (got < 4) {
        if (ferror(f))
            snprintf(msg, msglen, "read error: %s", strerror(errno));
        else if (got == 0)
            snprintf(msg, msglen, "empty input");
        else
            snprintf(msg, msglen, "truncated: want 8 bytes, got %zu", got);
        return -1;
    }
    if (is_zip(first)) {
        unsigned char *buf;
        size_t len;
        int rc;
        if (slurp(f, first, &buf, &len, msg, msglen) == -1)
            return -1;
        rc = npz_load_mem(buf, len, member, t, msg, msglen);
        free(buf);
        return rc;
    }
    if (memcmp(first, "\x93NUM", 4) != 0) {
        snprintf(msg, msglen, "not a .npy or .npz file (bad magic)");
        return -1;
    }
    if (member != NULL) {
        snprintf(msg, msglen, "a .npy file has no member '%s'", member);
        return -1;
    }
    if (npy_stream_read(&r, t, msg, msglen) == -1)
        return -1;
    if (fgetc(f) != EOF) {
        snprintf(msg, msglen, "trailing data after the array");
        npy_free(t);
        return -1;
    }
    return 0;
}

/* Opens path for reading; "file.npz:name" is split when the whole path does not exist. */
static FILE *open_path(const char *path, const char **member, char **split, char *msg,
                       size_t msglen)
{
    FILE *f;
    const char *colon;
    *split = NULL;
    if (strcmp(path, "-") == 0)
        return stdin;
    if (util_is_dir(path)) {
        snprintf(msg, msglen, "is a directory");
        return NULL;
    }
    f = fopen(path, "rb");
    if (f != NULL)
        return f;
    int e = errno;
    colon = strrchr(path, ':');
    if (e == ENOENT && colon != NULL && colon[1] != '\0') {
        *split = xstrdup(path);
        (*split)[colon - path] = '\0';
        f = strcmp(*split, "-") == 0 ? stdin : fopen(*split, "rb");
        if (f != NULL) {
            if (*member == NULL)
                *member = colon + 1;
            return f;
        }
        e = errno;
        free(*split);
        *split = NULL;
    }
    snprintf(msg, msglen, "%s", strerror(e));
    return NULL;
}

int npy_load(const char *path, const char *member, struct npy *t, char *msg, size_t msglen)
{
    char *split;
    FILE *f;
    int rc;
    memset(t, 0, sizeof *t);
    f = open_path(path, &member, &split, msg, msglen);
    if (f == NULL)
        return -1;
    rc = load_stream(f, member, t, msg, msglen);
    if (f != stdin)
        fclose(f);
    free(split);
    return rc;
}

/* All members of an .npz in memory, or just `member`. */
static int npz_all_mem(const unsigned char *buf, size_t len, const char *member,
                       struct npy **arrays, char ***names, int *n, char *msg, size_t msglen)
{
    struct zip z;
    int lo = 0, hi;
    if (zip_open(&z, buf, len, msg, msglen) == -1)
        return -1;
    hi = z.n;
    if (member != NULL) {
        if ((lo = npz_member(&z, member, msg, msglen)) == -1) {
            zip_close(&z);
            return -1;
        }
        hi = lo + 1;
    }
    *n = 0;
    *arrays = xcalloc(hi - lo ? hi - lo : 1, sizeof **arrays);
    *names = xcalloc(hi - lo ? hi - lo : 1, sizeof **names);
    for (int i = lo; i < hi; i++) {
        unsigned char *data;
        size_t dlen, l = strlen(z.e[i].name);
        char m2[128];
        int rc = zip_extract(&z, i, &data, &dlen, msg, msglen);
        if (rc == 0) {
            rc = npy_read_mem(data, dlen, &(*arrays)[*n], m2, sizeof m2);
            if (rc == -1) {
                snprintf(msg, msglen, "%s: %s", z.e[i].name, m2);
                util_msg_oneline(msg); /* the member name comes from the file */
            }
            free(data);
        }
        if (rc == -1) {
            npy_free_all(*arrays, *names, *n);
            zip_close(&z);
            return -1;
        }
        (*names)[*n] = xstrdup(z.e[i].name);
        if (l >= 4 && strcmp(z.e[i].name + l - 4, ".npy") == 0)
            (*names)[*n][l - 4] = '\0';
        (*n)++;
    }
    zip_close(&z);
    return 0;
}

int npy_load_all(const char *path, struct npy **arrays, char ***names, int *n, char *msg,
                 size_t msglen)
{
    const char *member = NULL;
    char *split;
    unsigned char first[4];
    FILE *f = open_path(path, &member, &split, msg, msglen);
    int rc = -1;
    *n = 0;
    *arrays = NULL;
    *names = NULL;
    if (f == NULL)
        return -1;
    size_t got = fread(first, 1, 4, f);
    if (got == 4 && is_zip(first)) {
        unsigned char *buf;
        size_t len;
        if (slurp(f, first, &buf, &len, msg, msglen) == 0) {
            rc = npz_all_mem(buf, len, member, arrays, names, n, msg, msglen);
            free(buf);
        }
    } else {
        struct npy_stream r = {f, first, got};
        *arrays = xcalloc(1, sizeof **arrays);
        *names = xcalloc(1, sizeof **names);
        if (got == 4 && memcmp(first, "\x93NUM", 4) != 0)
            snprintf(msg, msglen, "not a .npy or .npz file (bad magic)");
        else if (member != NULL)
            snprintf(msg, msglen, "a .npy file has no member '%s'", member);
        else if (npy_stream_read(&r, *arrays, msg, msglen) == 0) {
            if (fgetc(f) != EOF) {
                snprintf(msg, msglen, "trailing data after the array");
                npy_free(*arrays);
            } else {
                *n = 1;
                rc = 0;
            }
        }
        if (rc == -1) {
            free(*arrays);
            free(*names);
            *arrays = NULL;
            *names = NULL;
        }
    }
    if (f != stdin)
        fclose(f);
    free(split);
    return rc;
}

void npy_free_all(struct npy *arrays, char **names, int n)
{
    for (int i = 0; i < n; i++) {
        npy_free(&arrays[i]);
        if (names)
            free(names[i]);
    }
    free(arrays);
    free(names);
}

const char *npy_nchw_hint(const struct npy *t)
{
    if (t->ndim == 4 && (t->shape[1] == 3 || t->shape[1] == 1) && t->shape[3] != 3 &&
        t->shape[3] != 1)
        return ": looks like PyTorch's (N,C,H,W); np.transpose(x, (0,2,3,1)) gives (N,H,W,C)";
    return "";
}

int npy_load_images(const char *path, struct npy *t, char *msg, size_t msglen)
{
    if (npy_load(path, NULL, t, msg, msglen) == -1)
        return -1;
    if (t->dtype != NPY_U8 || t->ndim != 4 || t->shape[3] != 3 || t->shape[0] < 1 ||
        t->shape[1] < 1 || t->shape[2] < 1) {
        char s[128];
        int k = 0;
        s[0] = '\0';
        for (int i = 0; i < t->ndim; i++)
            k += snprintf(s + k, sizeof s - k, "%s%jd", i ? "," : "", (intmax_t)t->shape[i]);
        if (t->dtype == NPY_U8 && t->ndim == 4 && t->shape[3] == 3)
            snprintf(msg, msglen, "no images: shape (%s)", s);
        else
            snprintf(msg, msglen, "expected uint8 images (N,H,W,3), got %s (%s)%s",
                     npy_dtype_name(t->dtype), s, npy_nchw_hint(t));
        npy_free(t);
        return -1;
    }
    return 0;
}

int npz_names(const char *path, char ***names, int *n, char *msg, size_t msglen)
{
    unsigned char *buf;
    size_t len;
    struct zip z;
    if (util_read_file(path, &buf, &len, msg, msglen) == -1)
        return -1;
    if (zip_open(&z, buf, len, msg, msglen) == -1) {
        free(buf);
        return -1;
    }
    *names = xmalloc(sizeof **names * (z.n ? z.n : 1));
    *n = z.n;
    for (int i = 0; i < z.n; i++) {
        size_t l = strlen(z.e[i].name);
        (*names)[i] = xstrdup(z.e[i].name);
        if (l >= 4 && strcmp(z.e[i].name + l - 4, ".npy") == 0)
            (*names)[i][l - 4] = '\0';
    }
    zip_close(&z);
    free(buf);
    return 0;
}

int npz_read(const char *path, const char *name, struct npy *t, char *msg, size_t msglen)
{
    unsigned char *buf;
    size_t len;
    int rc;
    memset(t, 0, sizeof *t);
    if (util_read_file(path, &buf, &len, msg, msglen) == -1)
        return -1;
    rc = npz_load_mem(buf, len, name, t, msg, msglen);
    free(buf);
    return rc;
}

int npz_write(const char *path, const char *const *names, const struct npy *arrays, int n,
              int compress, char *msg, size_t msglen)
{
    struct outfile o;
    unsigned char **data = xcalloc(n ? n : 1, sizeof *data);
    size_t *lens = xcalloc(n ? n : 1, sizeof *lens);
    char **full = xcalloc(n ? n : 1, sizeof *full);
    int rc = -1;
    for (int i = 0; i < n; i++) {
        unsigned char h[512];
        size_t hl = npy_header_bytes(h, arrays[i].dtype, arrays[i].ndim, arrays[i].shape);
        size_t nb = npy_nbytes(&arrays[i]);
        size_t l = strlen(names[i]);
        data[i] = xmalloc(hl + nb);
        memcpy(data[i], h, hl);
        memcpy(data[i] + hl, arrays[i].data, nb);
        lens[i] = hl + nb;
        full[i] = xmalloc(l + 5);
        memcpy(full[i], names[i], l);
        memcpy(full[i] + l, ".npy", 5);
    }
    if (outfile_open(&o, path, msg, msglen) == 0) {
        if (zip_write(o.f, (const char *const *)full, (const unsigned char *const *)data, lens, n,
                      compress, msg, msglen) == -1)
            outfile_abort(&o);
        else
            rc = outfile_commit(&o, msg, msglen);
    }
    for (int i = 0; i < n; i++) {
        free(data[i]);
        free(full[i]);
    }
    free(data);
    free(lens);
    free(full);
    return rc;
}
