/* zip: a PyTorch zip checkpoint (stored, 64-byte aligned data), numpy's deflated ZIP64-local
   archives, a ZIP64 central directory, write/read round trips, CRC and corruption checks,
   and every prefix plus single-byte damage of a real archive rejected without overreads. */
#include "util/rng.h"
#include "test.h"
#include "util/util.h"
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/io/"

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *b;
    char msg[128];
    if (util_read_file(path, &b, len, msg, sizeof msg) == -1) {
        printf("# %s: %s\n", path, msg);
        exit(1);
    }
    return b;
}

static void test_torch(void)
{
    size_t len;
    unsigned char *buf = slurp(FIX "tiny.pt", &len);
    struct zip z;
    char msg[128];
    int rc = zip_open(&z, buf, len, msg, sizeof msg);
    CHECK(rc == 0 && z.n == 4, "torch.save zip opens with 4 entries (%s)", rc ? msg : "ok");
    if (rc) {
        free(buf);
        return;
    }
    int pkl = zip_find(&z, "tiny/data.pkl"), d0 = zip_find(&z, "tiny/data/0"),
        d1 = zip_find(&z, "tiny/data/1");
    CHECK(pkl >= 0 && d0 >= 0 && d1 >= 0 && zip_find(&z, "nope") == -1, "entries by name");
    const unsigned char *p0 = zip_data(&z, d0), *p1 = zip_data(&z, d1);
    CHECK(p0 && p1 && (p0 - buf) % 64 == 0 && (p1 - buf) % 64 == 0,
          "stored data is 64-byte aligned in the file (%td, %td)", p0 - buf, p1 - buf);
    /* w = arange(6) float32 and b = full(3, 7) int64, in either storage order */
    float w[6];
    int64_t b[3];
    const unsigned char *pw = z.e[d0].usize == 24 && memcmp(p0, "\0\0\0\0\0\0\x80\x3f", 8) == 0
                                  ? p0 : p1;
    const unsigned char *pb = pw == p0 ? p1 : p0;
    memcpy(w, pw, sizeof w);
    memcpy(b, pb, sizeof b);
    CHECK(w[0] == 0 && w[5] == 5 && b[0] == 7 && b[2] == 7, "tensor bytes");
    unsigned char *out;
    size_t olen;
    CHECK(zip_extract(&z, pkl, &out, &olen, msg, sizeof msg) == 0 && olen == z.e[pkl].usize &&
              out[0] == 0x80,
          "data.pkl extracts with a good CRC (pickle protocol byte)");
    free(out);
    zip_close(&z);
    free(buf);
}

static void test_roundtrip(void)
{
    const char *names[3] = {"x.bin", "dir/empty", "z.txt"};
    unsigned char big[70000];
    const unsigned char *data[3] = {big, (const unsigned char *)"", (const unsigned char *)"hi\n"};
    size_t lens[3] = {sizeof big, 0, 3};
    char msg[128];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * i % 251);
    for (int c = 0; c < 2; c++) {
        char *mem = NULL;
        size_t mlen = 0;
        FILE *m = open_memstream(&mem, &mlen);
        int rc = zip_write(m, names, data, lens, 3, c, msg, sizeof msg);
        fclose(m);
        struct zip z;
        rc |= zip_open(&z, (unsigned char *)mem, mlen, msg, sizeof msg);
        CHECK(rc == 0 && z.n == 3 && z.e[0].method == (c ? 8 : 0), "write/open compress=%d", c);
        int ok = rc == 0;
        for (int i = 0; ok && i < 3; i++) {
            unsigned char *o;
            size_t ol;
            ok = zip_extract(&z, i, &o, &ol, msg, sizeof msg) == 0 && ol == lens[i] &&
                 memcmp(o, data[i], ol) == 0 && strcmp(z.e[i].name, names[i]) == 0;
            free(o);
        }
        CHECK(ok, "members round trip compress=%d (%zu bytes)", c, mlen);
        CHECK(c ? zip_data(&z, 0) == NULL : zip_data(&z, 0) == (unsigned char *)mem + 30 + 5,
              "zip_data pointer only for stored members");
        if (rc == 0)
            zip_close(&z);
        free(mem);
    }
}

static void test_numpy_archives(void)
{
    size_t len;
    char msg[128];
    struct zip z;
    unsigned char *buf = slurp(FIX "stats.npz", &len), *o;
    size_t ol;
    int rc = zip_open(&z, buf, len, msg, sizeof msg);
    int s = rc == 0 ? zip_find(&z, "sigma.npy") : -1;
    CHECK(s >= 0 && z.e[s].method == 8 && z.e[s].usize == 128 + 64 * 64 * 8,
          "savez_compressed: sizes from the central directory despite ZIP64 local headers");
    CHECK(s >= 0 && zip_extract(&z, s, &o, &ol, msg, sizeof msg) == 0 && ol == z.e[s].usize,
          "deflated member extracts");
    if (s >= 0) {
        free(o);
        /* a lying central directory size is caught by inflate, not trusted */
        z.e[s].usize -= 8;
        CHECK(zip_extract(&z, s, &o, &ol, msg, sizeof msg) == -1 &&
                  strcmp(msg, "sigma.npy: inflated data longer than 32888 bytes") == 0,
              "usize too small: %s", msg);
        z.e[s].usize += 16;
        CHECK(zip_extract(&z, s, &o, &ol, msg, sizeof msg) == -1 &&
                  strstr(msg, "inflated size 32896, want 32904") != NULL,
              "usize too large: %s", msg);
        z.e[s].usize -= 8;
        z.e[s].crc ^= 1;
        CHECK(zip_extract(&z, s, &o, &ol, msg, sizeof msg) == -1 &&
                  strstr(msg, "CRC mismatch") != NULL,
              "crc: %s", msg);
    }
    if (rc == 0)
        zip_close(&z);
    free(buf);
    buf = slurp(FIX "zip64.npz", &len);
    rc = zip_open(&z, buf, len, msg, sizeof msg);
    CHECK(rc == 0 && z.n == 2 && z.e[1].usize == 128 + 48 && z.e[1].offset > 0,
          "ZIP64 extras and end records");
    if (rc == 0)
        zip_close(&z);
    free(buf);
    CHECK(zip_open(&z, (const unsigned char *)"PK", 2, msg, sizeof msg) == -1 &&
              strcmp(msg, "not a zip file") == 0,
          "tiny buffer: %s", msg);
}

/* damage: every prefix, and 2000 random single-byte changes, of a deflated and a stored
   archive; each must open-and-extract or fail, never crash (run under ASan) */
static void test_damage(void)
{
    const char *files[2] = {FIX "stats.npz", FIX "pair.npz"};
    struct rng r;
    rng_seed(&r, 7);
    for (int f = 0; f < 2; f++) {
        size_t len;
        unsigned char *buf = slurp(files[f], &len);
        int opened = 0, fails = 0;
        char msg[128];
        for (size_t n = 0; n <= len; n += (f == 0 ? 7 : 1)) {
            unsigned char *c = xmalloc(n + 1);
            struct zip z;
            memcpy(c, buf, n);
            if (zip_open(&z, c, n, msg, sizeof msg) == 0) {
                opened++;
                zip_close(&z);
            }
            free(c);
        }
        CHECK(opened == 1, "%s: only the whole file opens among its prefixes", files[f]);
        for (int k = 0; k < 2000; k++) {
            unsigned char *c = xmalloc(len);
            struct zip z;
            memcpy(c, buf, len);
            c[rng_below(&r, len)] ^= (unsigned char)(1 + rng_below(&r, 255));
            if (zip_open(&z, c, len, msg, sizeof msg) == 0) {
                for (int i = 0; i < z.n; i++) {
                    unsigned char *o;
                    size_t ol;
                    if (zip_extract(&z, i, &o, &ol, msg, sizeof msg) == 0)
                        free(o);
                    else
                        fails++;
                }
                zip_close(&z);
            } else {
                fails++;
            }
            free(c);
        }
        CHECK(fails > 1000, "%s: random damage detected in %d of 2000", files[f], fails);
        free(buf);
    }
}

int main(void)
{
    test_torch();
    test_roundtrip();
    test_numpy_archives();
    test_damage();
    (void)test_close;
    return test_done();
}
