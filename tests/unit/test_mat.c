/* mat: scipy.io.savemat files (compressed and not) shaped like Flowers102 imagelabels.mat and
   setid.mat, hand-made MATLAB-style files (double class holding uint8/uint16/int8/single
   data, small elements) in both byte orders, and broken files. Fixtures: gen_io.py. */
#include "io/mat.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/io/"
#define BAD "tests/fixtures/bad/"

static int is_vec(const struct mat_var *v, int64_t n)
{
    return v != NULL && v->ndim == 2 && v->dims[0] == 1 && v->dims[1] == n && v->numel == n;
}

static int labels_ok(const struct mat_var *v)
{
    if (!is_vec(v, 30))
        return 0;
    for (int i = 0; i < 30; i++)
        if (v->data[i] != i * 37 % 102 + 1)
            return 0;
    return 1;
}

static int range_ok(const struct mat_var *v, int first)
{
    if (!is_vec(v, 10))
        return 0;
    for (int i = 0; i < 10; i++)
        if (v->data[i] != first + i)
            return 0;
    return 1;
}

static void test_scipy(void)
{
    static const char *const lab[2] = {FIX "labels_z.mat", FIX "labels_plain.mat"};
    static const char *const set[2] = {FIX "setid_z.mat", FIX "setid_plain.mat"};
    char msg[128];
    struct mat_file m;
    for (int i = 0; i < 2; i++) {
        int rc = mat_read(lab[i], &m, msg, sizeof msg);
        CHECK(rc == 0 && m.n == 1 && labels_ok(mat_find(&m, "labels")), "%s labels 1x30 (%s)",
              lab[i], rc ? msg : "ok");
        if (rc == 0)
            mat_free(&m);
        rc = mat_read(set[i], &m, msg, sizeof msg);
        CHECK(rc == 0 && range_ok(mat_find(&m, "trnid"), 1) &&
                  range_ok(mat_find(&m, "valid"), 11) && range_ok(mat_find(&m, "tstid"), 21) &&
                  mat_find(&m, "nope") == NULL,
              "%s trnid, valid (uint16), tstid (int32) (%s)", set[i], rc ? msg : "ok");
        if (rc == 0)
            mat_free(&m);
    }
}

static void test_matlab_style(void)
{
    static const char *const f[4] = {FIX "ml_le.mat", FIX "ml_le_z.mat", FIX "ml_be.mat",
                                     FIX "ml_be_z.mat"};
    char msg[128];
    for (int i = 0; i < 4; i++) {
        struct mat_file m;
        int rc = mat_read(f[i], &m, msg, sizeof msg);
        CHECK(rc == 0 && m.n == 5, "%s opens (%s)", f[i], rc ? msg : "ok");
        if (rc)
            continue;
        CHECK(labels_ok(mat_find(&m, "labels")), "%s: double class, uint8 data", f[i]);
        const struct mat_var *s = mat_find(&m, "setid"), *a = mat_find(&m, "m23"),
                             *n = mat_find(&m, "neg"), *g = mat_find(&m, "sgl");
        int ok = is_vec(s, 30);
        for (int k = 0; ok && k < 30; k++)
            ok = s->data[k] == 1000 + 3 * k;
        CHECK(ok, "%s: uint16 data", f[i]);
        static const double cm[6] = {0, 3, 1, 4, 2, 5}; /* arange(6).reshape(2,3), column-major */
        CHECK(a && a->ndim == 2 && a->dims[0] == 2 && a->dims[1] == 3 &&
                  memcmp(a->data, cm, sizeof cm) == 0,
              "%s: 2x3 double, column-major", f[i]);
        CHECK(is_vec(n, 3) && n->data[0] == -5 && n->data[1] == 3 && n->data[2] == -1,
              "%s: int8 data, small element", f[i]);
        CHECK(is_vec(g, 2) && g->data[0] == 0.5 && g->data[1] == -2.25, "%s: single class",
              f[i]);
        mat_free(&m);
    }
}

static void test_bad(void)
{
    static const struct { const char *file, *want; } bad[] = {
        {"io_trunc.mat", "truncated: element of 67 bytes, 27 left"},
        {"io_bad_zlib.mat", "corrupt compressed element: "},
        {"io_not_mat.mat", "not a MATLAB 5 .mat file (bad endian indicator)"},
        {"io_v73.mat", "unsupported .mat version 0x0200 (v7.3/HDF5)"},
        {"io_bad_dims.mat", "corrupt matrix: 1000 elements but 80 data bytes of type 9"},
        {"io_empty.npy", "not a MATLAB 5 .mat file (0 bytes)"},
        {"nonexistent.mat", "No such file or directory"},
    };
    char path[256], msg[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mat_file m;
        snprintf(path, sizeof path, BAD "%s", bad[i].file);
        msg[0] = '\0';
        int rc = mat_read(path, &m, msg, sizeof msg);
        if (rc == 0)
            mat_free(&m);
        CHECK(rc == -1 && strncmp(msg, bad[i].want, strlen(bad[i].want)) == 0,
              "reject %s: %s", bad[i].file, msg);
    }
}

/* every prefix and every single-byte change of a file: a result or an error, never a crash */
static void test_damage(void)
{
    static const char *const f[3] = {FIX "ml_be.mat", FIX "setid_plain.mat", FIX "ml_le_z.mat"};
    char msg[128];
    for (int i = 0; i < 3; i++) {
        unsigned char *buf;
        size_t len;
        int ok = 0;
        if (util_read_file(f[i], &buf, &len, msg, sizeof msg) == -1)
            continue;
        for (size_t n = 0; n < len; n++) {
            unsigned char *c = xmalloc(n + 1);
            struct mat_file m;
            memcpy(c, buf, n);
            if (mat_read_mem(c, n, &m, msg, sizeof msg) == 0)
                mat_free(&m);
            else
                ok++;
            free(c);
        }
        for (size_t k = 128; k < len; k++) {
            struct mat_file m;
            buf[k] ^= 0x5a;
            if (mat_read_mem(buf, len, &m, msg, sizeof msg) == 0)
                mat_free(&m);
            buf[k] ^= 0x5a;
        }
        CHECK(ok > 0, "%s: prefixes and byte flips (%d of %zu prefixes rejected)", f[i], ok, len);
        free(buf);
    }
}

int main(void)
{
    test_scipy();
    test_matlab_style();
    test_bad();
    test_damage();
    (void)test_close;
    return test_done();
}
