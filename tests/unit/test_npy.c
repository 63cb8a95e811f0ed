/* npy: every dtype and rank numpy writes (v1, v2, v3, old 16-byte headers), byte-exact writes
   against numpy's files, streams, .npz (savez, savez_compressed, ZIP64, member selection), the
   image loader, and the bad-input corpus. Fixtures: tests/fixtures/gen_io.py.
   IO_WRITE_DIR=D makes it also leave its writes in D for `gen_io.py --verify D`. */
#include "io/npy.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/io/"
#define BAD "tests/fixtures/bad/"

static const char *const dts[] = {"u1", "i4", "i8", "f4", "f8"};
static const int64_t shapes[5][4] = {{0}, {5}, {3, 4}, {2, 3, 4}, {2, 3, 4, 3}};

/* gen_io.py val(): the same closed formulas */
static double val(enum npy_dtype t, int64_t i)
{
    switch (t) {
    case NPY_U8: return (double)((i * 7 + 3) % 256);
    case NPY_I32: return (double)(5 - 3 * i);
    case NPY_I64: return (double)(i * 1000000000007LL - 42);
    case NPY_F32: return (double)((float)i * 0.25f - 1.0f);
    default: return (double)i / 3.0;
    }
}

static double get(const struct npy *t, int64_t i)
{
    switch (t->dtype) {
    case NPY_U8: return ((uint8_t *)t->data)[i];
    case NPY_I32: return ((int32_t *)t->data)[i];
    case NPY_I64: return (double)((int64_t *)t->data)[i];
    case NPY_F32: return ((float *)t->data)[i];
    default: return ((double *)t->data)[i];
    }
}

static void fill(struct npy *t)
{
    for (int64_t i = 0; i < npy_count(t); i++) {
        double v = val(t->dtype, i);
        switch (t->dtype) {
        case NPY_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
        case NPY_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
        case NPY_I64: ((int64_t *)t->data)[i] = i * 1000000000007LL - 42; break;
        case NPY_F32: ((float *)t->data)[i] = (float)v; break;
        case NPY_F64: ((double *)t->data)[i] = v; break;
        }
    }
}

static int matches(const struct npy *t, enum npy_dtype dt, int ndim, const int64_t *shape)
{
    if (t->dtype != dt || t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return 0;
    for (int64_t i = 0; i < npy_count(t); i++)
        if (get(t, i) != val(dt, i))
            return 0;
    return 1;
}

static int file_eq_mem(const char *path, const unsigned char *b, size_t n)
{
    unsigned char *f;
    size_t len;
    char msg[128];
    int eq;
    if (util_read_file(path, &f, &len, msg, sizeof msg) == -1)
        return 0;
    eq = len == n && memcmp(f, b, n) == 0;
    free(f);
    return eq;
}

static void test_dtypes_ranks(const char *outdir)
{
    char path[256], msg[128];
    for (int d = 0; d < 5; d++)
        for (int r = 0; r <= 4; r++) {
            struct npy t;
            snprintf(path, sizeof path, FIX "%s_%dd.npy", dts[d], r);
            int rc = npy_load(path, NULL, &t, msg, sizeof msg);
            CHECK(rc == 0 && matches(&t, (enum npy_dtype)d, r, shapes[r]), "read %s (%s)", path,
                  rc ? msg : "ok");
            if (rc)
                continue;
            /* byte-exact: our writer reproduces numpy 1.24's file */
            char *mem = NULL;
            size_t mlen = 0;
            FILE *m = open_memstream(&mem, &mlen);
            rc = npy_write(m, &t, msg, sizeof msg);
            fclose(m);
            CHECK(rc == 0 && file_eq_mem(path, (unsigned char *)mem, mlen),
                  "write %s_%dd byte-equal to numpy", dts[d], r);
            /* and the copy through memory */
            struct npy u;
            CHECK(npy_read_mem((unsigned char *)mem, mlen, &u, msg, sizeof msg) == 0 &&
                      matches(&u, (enum npy_dtype)d, r, shapes[r]),
                  "npy_read_mem %s_%dd", dts[d], r);
            npy_free(&u);
            free(mem);
            if (outdir) {
                snprintf(path, sizeof path, "%s/%s_%dd.npy", outdir, dts[d], r);
                CHECK(npy_save(path, &t, msg, sizeof msg) == 0, "save %s", path);
            }
            npy_free(&t);
        }
}

static void test_variants(void)
{
    char msg[128];
    struct npy t;
    static const struct { const char *path; enum npy_dtype dt; int r; } v[] = {
        {FIX "v2.npy", NPY_F32, 3}, {FIX "v3.npy", NPY_I64, 2}, {FIX "old16.npy", NPY_F32, 3},
        {FIX "py2long.npy", NPY_I64, 2}, {FIX "keyorder.npy", NPY_U8, 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int rc = npy_load(v[i].path, NULL, &t, msg, sizeof msg);
        CHECK(rc == 0 && matches(&t, v[i].dt, v[i].r, shapes[v[i].r]), "read %s (%s)",
              v[i].path, rc ? msg : "ok");
        if (rc == 0)
            npy_free(&t);
    }
    int rc = npy_load(FIX "f4_empty.npy", NULL, &t, msg, sizeof msg);
    CHECK(rc == 0 && t.ndim == 2 && t.shape[0] == 0 && t.shape[1] == 3 && npy_nbytes(&t) == 0,
          "empty (0,3) array");
    if (rc == 0)
        npy_free(&t);
    CHECK(npy_load(FIX "nonexistent.npy", NULL, &t, msg, sizeof msg) == -1 &&
              strstr(msg, "No such file") != NULL,
          "missing file: %s", msg);
    CHECK(npy_load(FIX, NULL, &t, msg, sizeof msg) == -1 && strstr(msg, "directory") != NULL,
          "directory: %s", msg);
}

/* npy_rows: rows [lo, hi) of every rank's file and of a v2 header equal that slice of the
   whole array; a file cut short or padded, a scalar and a pipe are refused */
static void test_rows(void)
{
    char msg[128], path[64];
    struct npy_rows r;
    struct npy t, whole;
    snprintf(msg, sizeof msg, "ok");
    for (int k = 1; k <= 4; k++) {
        snprintf(path, sizeof path, FIX "%s_%dd.npy", dts[k % 5], k);
        if (npy_load(path, NULL, &whole, msg, sizeof msg) == -1) {
            CHECK(0, "%s: %s", path, msg);
            continue;
        }
        size_t row = npy_nbytes(&whole) / (size_t)whole.shape[0];
        for (int64_t lo = 0; lo <= whole.shape[0]; lo++)
            for (int64_t hi = lo; hi <= whole.shape[0]; hi++) {
                int ok = npy_rows_open(&r, path, msg, sizeof msg) == 0 &&
                         npy_rows_read(&r, lo, hi, &t, msg, sizeof msg) == 0;
                CHECK(ok && t.shape[0] == hi - lo && t.ndim == whole.ndim &&
                          memcmp(t.data, (char *)whole.data + lo * row, (hi - lo) * row) == 0,
                      "%s rows [%lld, %lld): %s", path, (long long)lo, (long long)hi,
                      ok ? "read" : msg);
                if (ok)
                    npy_free(&t);
                npy_rows_close(&r);
            }
        npy_free(&whole);
    }
    CHECK(npy_rows_open(&r, FIX "v2.npy", msg, sizeof msg) == 0 &&
              npy_rows_read(&r, 1, 2, &t, msg, sizeof msg) == 0 && t.dtype == NPY_F32 &&
              t.shape[0] == 1 && ((float *)t.data)[0] == (float)val(NPY_F32, 12),
          "v2 header, row 1: %s", msg);
    npy_free(&t);
    npy_rows_close(&r);
    CHECK(npy_rows_open(&r, BAD "io_trunc_data.npy", msg, sizeof msg) == -1 &&
              strcmp(msg, "truncated: want 96 bytes, got 86") == 0, "truncated: %s", msg);
    CHECK(npy_rows_open(&r, BAD "io_trailing.npy", msg, sizeof msg) == -1 &&
              strstr(msg, "bytes of payload") != NULL, "trailing data: %s", msg);
    CHECK(npy_rows_open(&r, FIX "f4_0d.npy", msg, sizeof msg) == -1 &&
              strcmp(msg, "a scalar has no rows") == 0, "scalar: %s", msg);
    CHECK(npy_rows_open(&r, "/dev/null", msg, sizeof msg) == -1 &&
              strcmp(msg, "not a regular file") == 0, "/dev/null: %s", msg);
}

/* two arrays back to back through a pipe: npy_read stops exactly at each array's end */
static void test_stream(void)
{
    char msg[128];
    struct npy a, b;
    FILE *p = popen("cat " FIX "f4_3d.npy " FIX "u1_4d.npy", "r");
    int ra = npy_read(p, &a, msg, sizeof msg);
    int rb = ra == 0 ? npy_read(p, &b, msg, sizeof msg) : -1;
    CHECK(ra == 0 && rb == 0 && matches(&a, NPY_F32, 3, shapes[3]) &&
              matches(&b, NPY_U8, 4, shapes[4]) && fgetc(p) == EOF,
          "two arrays from one pipe (%s)", ra || rb ? msg : "ok");
    pclose(p);
    if (ra == 0)
        npy_free(&a);
    if (rb == 0)
        npy_free(&b);
    p = popen("head -c 150 " FIX "f4_3d.npy", "r");
    CHECK(npy_read(p, &a, msg, sizeof msg) == -1 &&
              strcmp(msg, "truncated: want 96 bytes, got 22") == 0,
          "truncated pipe: %s", msg);
    pclose(p);
    p = fopen(BAD "io_trunc_data.npy", "rb");
    CHECK(npy_read(p, &a, msg, sizeof msg) == -1 &&
              strcmp(msg, "truncated: want 96 bytes, got 86") == 0,
          "truncated file: %s", msg);
    fclose(p);
    /* a header claiming 80 GB on a pipe with 64 bytes: no 80 GB allocation, just an error */
    p = popen("cat " BAD "io_huge_claim.npy", "r");
    CHECK(npy_read(p, &a, msg, sizeof msg) == -1 &&
              strcmp(msg, "truncated: want 80000000000 bytes, got 64") == 0,
          "huge claim on a pipe: %s", msg);
    pclose(p);
    /* a streamed writer: header first, payload in pieces */
    char *mem = NULL;
    size_t mlen = 0;
    FILE *m = open_memstream(&mem, &mlen);
    int rc = npy_write_header(m, NPY_F32, 3, shapes[3], msg, sizeof msg);
    for (int i = 0; i < 24; i++) {
        float x = (float)val(NPY_F32, i);
        fwrite(&x, 4, 1, m);
    }
    fclose(m);
    CHECK(rc == 0 && file_eq_mem(FIX "f4_3d.npy", (unsigned char *)mem, mlen),
          "npy_write_header + streamed payload equals numpy's file");
    free(mem);
}

static void test_npz(const char *outdir)
{
    char msg[128], **names;
    int n;
    struct npy t;
    int64_t s34[] = {3, 4};

    CHECK(npz_names(FIX "pair.npz", &names, &n, msg, sizeof msg) == 0 && n == 2 &&
              strcmp(names[0], "a") == 0 && strcmp(names[1], "b") == 0,
          "npz_names of np.savez");
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    CHECK(npz_read(FIX "pair.npz", "a", &t, msg, sizeof msg) == 0 &&
              matches(&t, NPY_I64, 1, shapes[1]),
          "npz_read stored member a");
    npy_free(&t);
    CHECK(npy_load(FIX "pair.npz:b", NULL, &t, msg, sizeof msg) == 0 &&
              matches(&t, NPY_F32, 2, s34),
          "npy_load file.npz:b");
    npy_free(&t);
    CHECK(npy_load(FIX "pair.npz", "b.npy", &t, msg, sizeof msg) == 0 &&
              matches(&t, NPY_F32, 2, s34),
          "member named with .npy");
    npy_free(&t);
    CHECK(npy_load(FIX "pair.npz", NULL, &t, msg, sizeof msg) == -1 &&
              strstr(msg, "2 members") != NULL,
          "ambiguous npz: %s", msg);
    CHECK(npy_load(FIX "pair.npz:zz", NULL, &t, msg, sizeof msg) == -1 &&
              strcmp(msg, "no member 'zz' in the .npz") == 0,
          "missing member: %s", msg);
    CHECK(npy_load(FIX "f4_3d.npy", "x", &t, msg, sizeof msg) == -1, "member of a .npy");

    /* pytorch-fid statistics: deflated, ZIP64 local headers */
    struct npy mu, sigma;
    int rc = npy_load(FIX "stats.npz", "mu", &mu, msg, sizeof msg);
    rc |= npy_load(FIX "stats.npz", "sigma", &sigma, msg, sizeof msg);
    int ok = rc == 0 && mu.dtype == NPY_F64 && mu.ndim == 1 && mu.shape[0] == 64 &&
             sigma.ndim == 2 && sigma.shape[0] == 64 && sigma.shape[1] == 64;
    for (int i = 0; ok && i < 64; i++) {
        ok &= ((double *)mu.data)[i] == i / 7.0;
        for (int j = 0; j < 64; j++)
            ok &= ((double *)sigma.data)[i * 64 + j] == 1.0 / (1.0 + abs(i - j));
    }
    CHECK(ok, "pytorch-fid stats.npz mu (64,), sigma (64,64) (%s)", rc ? msg : "ok");

    /* guided-diffusion samples: arr_0 by default */
    CHECK(npy_load_images(FIX "samples.npz", &t, msg, sizeof msg) == 0 && t.shape[0] == 3 &&
              t.shape[1] == 4,
          "samples.npz arr_0 as images");
    npy_free(&t);
    CHECK(npy_load(FIX "one.npz", NULL, &t, msg, sizeof msg) == 0 &&
              matches(&t, NPY_F64, 2, (int64_t[]){2, 3}),
          "single-member npz by default");
    npy_free(&t);
    rc = npy_load(FIX "zip64.npz:b", NULL, &t, msg, sizeof msg);
    CHECK(rc == 0 && t.dtype == NPY_F32 && t.ndim == 2 && t.shape[0] == 3 && t.shape[1] == 4,
          "ZIP64 central directory and end records (%s)", rc ? msg : "ok");
    if (rc == 0) {
        float want[12];
        for (int i = 0; i < 12; i++)
            want[i] = (float)val(NPY_F32, i);
        test_close("zip64.npz:b values", t.data, want, 12, 0, 0);
        npy_free(&t);
    }

    /* writing: stored and deflated, reread, deterministic */
    struct npy arr[3];
    const char *nm[3] = {"mu", "sigma", "img"};
    arr[0] = mu;
    arr[1] = sigma;
    npy_alloc(&arr[2], NPY_U8, 4, shapes[4]);
    fill(&arr[2]);
    for (int c = 0; c < 2; c++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/%s.npz", outdir, c ? "deflated" : "stored");
        snprintf(p2, sizeof p2, "%s/again.npz", outdir);
        rc = npz_write(p1, nm, arr, 3, c, msg, sizeof msg);
        rc |= npz_write(p2, nm, arr, 3, c, msg, sizeof msg);
        CHECK(rc == 0, "npz_write compress=%d", c);
        unsigned char *b1, *b2;
        size_t l1, l2;
        util_read_file(p1, &b1, &l1, msg, sizeof msg);
        util_read_file(p2, &b2, &l2, msg, sizeof msg);
        CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0, "npz_write is deterministic");
        CHECK(c == 0 ? l1 > 32768 + 8 * 64 : l1 < 16384, "size fits the method (%zu)", l1);
        free(b1);
        free(b2);
        unlink(p2);
        ok = npy_load(p1, "sigma", &t, msg, sizeof msg) == 0 &&
             memcmp(t.data, sigma.data, 64 * 64 * 8) == 0;
        npy_free(&t);
        ok &= npy_load(p1, "img", &t, msg, sizeof msg) == 0 &&
              matches(&t, NPY_U8, 4, shapes[4]);
        npy_free(&t);
        CHECK(ok, "npz round trip compress=%d", c);
    }
    npy_free(&arr[2]);
    npy_free(&mu);
    npy_free(&sigma);
}

static void test_images(void)
{
    char msg[128];
    struct npy t;
    CHECK(npy_load_images(FIX "img20.npy", &t, msg, sizeof msg) == 0 && t.shape[0] == 20,
          "images (20,4,4,3)");
    npy_free(&t);
    CHECK(npy_load_images(FIX "f4_2d.npy", &t, msg, sizeof msg) == -1 &&
              strcmp(msg, "expected uint8 images (N,H,W,3), got float32 (3,4)") == 0,
          "float (3,4) is not images: %s", msg);
    CHECK(npy_load_images(FIX "u1_3d.npy", &t, msg, sizeof msg) == -1 &&
              strcmp(msg, "expected uint8 images (N,H,W,3), got uint8 (2,3,4)") == 0,
          "rank 3 is not images: %s", msg);
}

static void test_bad(void)
{
    static const struct { const char *file, *want; } bad[] = {
        {"io_bad_magic.npy", "not a .npy file (bad magic)"},
        {"io_text.npy", "not a .npy or .npz file (bad magic)"},
        {"io_version9.npy", "unsupported .npy version 9.0"},
        {"io_trunc_header.npy", "truncated header: want 118 bytes, got 30"},
        {"io_trunc_data.npy", "truncated: want 96 bytes, got 86"},
        {"io_trailing.npy", "trailing data after the array"},
        {"io_empty.npy", "empty input"},
        {"io_big_endian.npy", "big-endian data not supported ('>f4')"},
        {"io_fortran.npy", "fortran_order arrays not supported"},
        {"io_object.npy", "object arrays not supported"},
        {"io_complex.npy", "unsupported dtype '<c8'"},
        {"io_structured.npy", "structured dtypes not supported"},
        {"io_huge_dims.npy", "array too large: byte count overflows"},
        {"io_huge_claim.npy", "truncated: want 80000000000 bytes, got 64"},
        {"io_neg_dim.npy", "negative dimension in shape"},
        {"io_five_dims.npy", "too many dimensions (max 4)"},
        {"io_garbage_header.npy", "bad header: trailing garbage after the dict"},
        {"io_bad_syntax.npy", "bad header: shape is not a tuple of integers"},
        {"io_extra_key.npy", "bad header: unexpected key 'x'"},
        {"io_no_shape.npy", "bad header: missing 'shape'"},
        {"io_hlen_past_end.npy", "truncated header: want 65535 bytes, got 90"},
        {"io_trunc.npz", "truncated or corrupt zip: no end of central directory"},
        {"io_corrupt.npz", "corrupt zip: central directory entry overruns"},
        {"io_bad_crc.npz:a", "a.npy: CRC mismatch"},
        {"io_bad_deflate.npz:mu", "mu.npy: corrupt deflate stream"},
        {"io_bad_member.npz", "arr_0.npy: "},
    };
    char path[256], msg[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct npy t;
        snprintf(path, sizeof path, BAD "%s", bad[i].file);
        msg[0] = '\0';
        int rc = npy_load(path, NULL, &t, msg, sizeof msg);
        if (rc == 0)
            npy_free(&t);
        CHECK(rc == -1 && t.data == NULL && strncmp(msg, bad[i].want, strlen(bad[i].want)) == 0,
              "reject %s: %s", bad[i].file, msg);
    }
}

/* every prefix of a valid file is rejected cleanly (ASan would catch an overread) */
static void test_prefixes(void)
{
    unsigned char *b;
    size_t len;
    char msg[128];
    int bad = 0;
    struct npy t;
    util_read_file(FIX "f8_2d.npy", &b, &len, msg, sizeof msg);
    for (size_t n = 0; n < len; n++) {
        unsigned char *c = xmalloc(n + 1);
        memcpy(c, b, n);
        if (npy_read_mem(c, n, &t, msg, sizeof msg) != -1) {
            bad++;
            npy_free(&t);
        }
        free(c);
    }
    CHECK(bad == 0, "all %zu prefixes of f8_2d.npy rejected", len);
    free(b);
}

int main(void)
{
    const char *keep = getenv("IO_WRITE_DIR");
    char tmpl[] = "/tmp/test_npy.XXXXXX";
    const char *dir = keep ? keep : mkdtemp(tmpl);
    test_dtypes_ranks(keep);
    test_variants();
    test_stream();
    test_rows();
    test_npz(dir);
    test_images();
    test_bad();
    test_prefixes();
    if (!keep) {
        char p[300];
        snprintf(p, sizeof p, "%s/stored.npz", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/deflated.npz", dir);
        unlink(p);
        rmdir(dir);
    }
    return test_done();
}
