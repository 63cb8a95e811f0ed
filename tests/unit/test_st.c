/* safetensors: files laid out exactly as the Rust writer does (gen_ckpt.py), every F16 value,
   st_load_entries errors, the writer reproducing the reference bytes, and the corrupt corpus
   in tests/fixtures/bad/ckpt_st_*. */
#include "io/st.h"
#include "test.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/ckpt/"
#define BAD "tests/fixtures/bad/"

static float *to_f32(const struct st_tensor *t)
{
    float *x = xmalloc((size_t)st_numel(t) * 4 + 4);
    st_to_f32(t, x);
    return x;
}

static void test_mixed(void)
{
    struct st_file f, g;
    char msg[128] = "";
    int rc = st_open(&f, FIX "st_mixed.safetensors", msg, sizeof msg);
    CHECK(rc == 0, "open st_mixed.safetensors (%s)", msg);
    if (rc)
        return;
    rc = st_open(&g, FIX "st_mixed_f32.safetensors", msg, sizeof msg);
    CHECK(rc == 0 && f.n == 10 && g.n == 10, "10 tensors in each file");
    CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "pt") == 0 &&
              strcmp(st_meta(&f, "note"), "caf\xc3\xa9 \"q\"") == 0 && st_meta(&f, "x") == NULL &&
              f.n_meta == 2,
          "__metadata__");
    const struct st_tensor *t = st_find(&f, "c");
    CHECK(t && t->dtype == ST_BF16 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
              t->nbytes == 12,
          "BF16 tensor c is (2,3)");
    t = st_find(&f, "d.num_batches_tracked");
    CHECK(t && t->dtype == ST_I64 && t->ndim == 0 && *(const int64_t *)t->data == 7,
          "I64 scalar num_batches_tracked = 7");
    t = st_find(&f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0 && st_numel(t) == 0,
          "empty (0,3) tensor");
    CHECK(st_find(&f, "nope") == NULL, "st_find miss");
    for (int i = 0; rc == 0 && i < f.n; i++) {
        const struct st_tensor *a = &f.t[i], *b = st_find(&g, a->name);
        char name[96];
        if (b == NULL || b->dtype != ST_F32 || st_numel(a) != st_numel(b)) {
            CHECK(0, "%s in the f32 file", a->name);
            continue;
        }
        float *x = to_f32(a);
        snprintf(name, sizeof name, "st_to_f32 %s (%s)", a->name, st_dtype_name(a->dtype));
        test_close(name, x, b->data, (size_t)st_numel(a), 0, 0);
        free(x);
    }
    if (rc == 0)
        st_close(&g);

    /* the writer reproduces the reference bytes */
    char tmp[] = "/tmp/test_st_XXXXXX";
    int fd = mkstemp(tmp);
    close(fd);
    const char *mk[] = {"note", "format"}, *mv[] = {st_meta(&f, "note"), "pt"};
    rc = st_save_tensors(tmp, f.t, f.n, mk, mv, 2, msg, sizeof msg);
    unsigned char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    util_read_file(tmp, &a, &na, msg, sizeof msg);
    util_read_file(FIX "st_mixed.safetensors", &b, &nb, msg, sizeof msg);
    CHECK(rc == 0 && na == nb && memcmp(a, b, na) == 0,
          "st_save_tensors writes the same bytes as the safetensors layout (%zu vs %zu)", na, nb);
    free(a);
    free(b);
    unlink(tmp);
    st_close(&f);
    CHECK(f.n == 0 && f.t == NULL && f.map == NULL, "st_close resets the struct");
}

static void test_f16_all(void)
{
    struct st_file f;
    char msg[128] = "";
    if (st_open(&f, FIX "st_f16_all.safetensors", msg, sizeof msg) == -1) {
        CHECK(0, "open st_f16_all: %s", msg);
        return;
    }
    const struct st_tensor *h = st_find(&f, "h"), *w = st_find(&f, "f"), *bh = st_find(&f, "bh"),
                           *bw = st_find(&f, "bf");
    float *x = to_f32(h);
    int bad = -1;
    for (int i = 0; i < 65536; i++) {
        uint32_t u, v;
        memcpy(&u, &x[i], 4);
        memcpy(&v, (const char *)w->data + 4 * i, 4);
        if (u != v && bad < 0)
            bad = i;
    }
    CHECK(bad < 0, "all 65536 F16 bit patterns convert bit-exactly as numpy (first bad %d)", bad);
    free(x);
    x = to_f32(bh);
    CHECK(memcmp(x, bw->data, 4096 * 4) == 0, "BF16 patterns convert as torch");
    free(x);
    st_close(&f);
}

static void test_entries(void)
{
    struct st_file f;
    char msg[160] = "";
    float w[4 * 27], b[4], fw[8], fb[2], want[8];
    struct st_entry e[] = {
        {"enc.0.weight", 4, {4, 3, 3, 3}, w},
        {"enc.0.bias", 1, {4}, b},
        {"fc.weight", 2, {2, 4}, fw},
        {"fc.bias", 1, {2}, fb},
    };
    if (st_open(&f, FIX "st_model.safetensors", msg, sizeof msg) == -1) {
        CHECK(0, "open st_model: %s", msg);
        return;
    }
    CHECK(st_load_entries(&f, e, 4, 0, msg, sizeof msg) == 0, "all entries load (%s)", msg);
    memcpy(want, st_find(&f, "fc.weight")->data, sizeof want);
    test_close("fc.weight loaded", fw, want, 8, 0, 0);
    CHECK(strcmp(st_meta(&f, "step"), "12") == 0, "metadata step");

    CHECK(st_load_entries(&f, e, 3, 0, msg, sizeof msg) == -1 &&
              strcmp(msg, "unexpected tensor \"fc.bias\" in the file") == 0,
          "extra tensor refused: %s", msg);
    CHECK(st_load_entries(&f, e, 3, 1, msg, sizeof msg) == 0, "extra tensor allowed");
    struct st_entry m = {"fc.weightx", 2, {2, 4}, fw};
    CHECK(st_load_entries(&f, &m, 1, 1, msg, sizeof msg) == -1 &&
              strcmp(msg, "missing tensor \"fc.weightx\"") == 0,
          "missing tensor: %s", msg);
    struct st_entry s = {"fc.weight", 2, {4, 2}, fw};
    CHECK(st_load_entries(&f, &s, 1, 1, msg, sizeof msg) == -1 &&
              strcmp(msg, "tensor \"fc.weight\": shape [2, 4] in the file, the model wants [4, 2]") ==
                  0,
          "mis-shaped tensor: %s", msg);
    struct st_entry s2 = {"enc.0.bias", 2, {4, 1}, b};
    CHECK(st_load_entries(&f, &s2, 1, 1, msg, sizeof msg) == -1 && strstr(msg, "[4]") &&
              strstr(msg, "[4, 1]"),
          "rank mismatch: %s", msg);

    /* save and reload the entries */
    char tmp[] = "/tmp/test_st_XXXXXX";
    int fd = mkstemp(tmp);
    close(fd);
    const char *mk[] = {"k"}, *mv[] = {"v\n"};
    CHECK(st_save_entries(tmp, e, 4, mk, mv, 1, msg, sizeof msg) == 0, "st_save_entries");
    struct st_file g;
    float w2[4 * 27], b2[4], fw2[8], fb2[2];
    struct st_entry e2[] = {
        {"enc.0.weight", 4, {4, 3, 3, 3}, w2},
        {"enc.0.bias", 1, {4}, b2},
        {"fc.weight", 2, {2, 4}, fw2},
        {"fc.bias", 1, {2}, fb2},
    };
    if (st_open(&g, tmp, msg, sizeof msg) == 0) {
        CHECK(st_load_entries(&g, e2, 4, 0, msg, sizeof msg) == 0, "round trip loads");
        test_close("round trip enc.0.weight", w2, w, 108, 0, 0);
        test_close("round trip fc.bias", fb2, fb, 2, 0, 0);
        CHECK(strcmp(g.t[0].name, "enc.0.bias") == 0 && strcmp(g.t[3].name, "fc.weight") == 0,
              "written in name order");
        CHECK(strcmp(st_meta(&g, "k"), "v\n") == 0, "metadata round trip");
        CHECK(((const unsigned char *)g.map)[0] % 8 == 0, "header length multiple of 8");
        st_close(&g);
    } else
        CHECK(0, "reopen: %s", msg);
    /* byte-identical to the python writer's file */
    unsigned char *a = NULL, *bb = NULL;
    size_t na = 0, nb = 0;
    const char *mk2[] = {"step"}, *mv2[] = {"12"};
    st_save_entries(tmp, e, 4, mk2, mv2, 1, msg, sizeof msg);
    util_read_file(tmp, &a, &na, msg, sizeof msg);
    util_read_file(FIX "st_model.safetensors", &bb, &nb, msg, sizeof msg);
    CHECK(na == nb && memcmp(a, bb, na) == 0, "st_save_entries bytes equal the reference file");
    free(a);
    free(bb);

    struct st_entry dup[] = {e[0], e[0]};
    CHECK(st_save_entries(tmp, dup, 2, NULL, NULL, 0, msg, sizeof msg) == -1 &&
              strstr(msg, "duplicate"),
          "duplicate names refused: %s", msg);
    unlink(tmp);
    CHECK(st_save_entries("/nonexistent-dir/x.safetensors", e, 4, NULL, NULL, 0, msg,
                          sizeof msg) == -1,
          "unwritable path: %s", msg);
    st_close(&f);
}

static void test_bad(void)
{
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"badjson", "header: json: line 1: expected a string key, got end of input"},
        {"notobject", "not a JSON object"},
        {"nul_padding", "expected end of input, got byte 0x00"},
        {"past_end", "data_offsets [0, 32] outside the 24 data bytes"},
        {"wrong_size", "20 bytes for 6 F32 values"},
        {"reversed", "data_offsets [8, 4] outside"},
        {"overlap", "overlap"},
        {"dtype", "unsupported dtype \"F8_E4M3\""},
        {"negdim", "shape[0] is not an integer >= 0"},
        {"floatdim", "shape[0] is not an integer >= 0"},
        {"huge_numel", "shape too large"},
        {"toomanydims", "at most 8 dims"},
        {"dup", "duplicate key \"w\""},
        {"meta_int", "__metadata__ \"a\" is not a string"},
        {"missing_field", "need dtype, shape and data_offsets"},
        {"hdrlen_huge", "truncated: header length 5000"},
        {"hdrlen_2g", "larger than 100 MB"},
        {"truncated", "outside the 19 data bytes"},
        {"short", "truncated: 5 bytes"},
        {"empty", "truncated: 0 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128], msg[128] = "";
        struct st_file f;
        snprintf(path, sizeof path, BAD "ckpt_st_%s.safetensors", cases[i].file);
        int rc = st_open(&f, path, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, cases[i].want) != NULL && f.n == 0 && f.map == NULL,
              "rejects %s: %s", cases[i].file, msg);
    }
    char msg[128];
    struct st_file f;
    CHECK(st_open(&f, "tests/fixtures/ckpt/nonexistent", msg, sizeof msg) == -1 &&
              strstr(msg, "No such file") != NULL,
          "missing file: %s", msg);
}

int main(void)
{
    test_mixed();
    test_f16_all();
    test_entries();
    test_bad();
    return test_done();
}
