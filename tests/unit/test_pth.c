/* pth: torch.save files (zip, legacy, protocol 4, a module state_dict, a nested checkpoint)
   against the same tensors written contiguously as safetensors by gen_ckpt.py; hostile and
   broken pickles in tests/fixtures/bad/ckpt_pth_* refused with a clear message. */
#include "io/pth.h"
#include "io/st.h"
#include "test.h"

#include <string.h>

#define FIX "tests/fixtures/ckpt/"
#define BAD "tests/fixtures/bad/"

/* every tensor of want is in got with the same dtype, shape and bytes, and nothing else */
static void same_tensors(const char *what, const char *path, const char *expect)
{
    struct st_file f, w;
    char msg[160] = "";
    int rc = pth_open(&f, path, msg, sizeof msg);
    CHECK(rc == 0, "%s: pth_open (%s)", what, msg);
    if (rc)
        return;
    if (st_open(&w, expect, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", expect, msg);
        st_close(&f);
        return;
    }
    int bad = 0;
    for (int i = 0; i < w.n; i++) {
        const struct st_tensor *a = st_find(&f, w.t[i].name), *b = &w.t[i];
        int ok = a && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes &&
                 memcmp(a->shape, b->shape, (size_t)b->ndim * sizeof b->shape[0]) == 0 &&
                 (b->nbytes == 0 || memcmp(a->data, b->data, b->nbytes) == 0);
        if (!ok) {
            if (!bad)
                printf("# %s: tensor %s differs%s\n", what, b->name, a ? "" : " (missing)");
            bad++;
        }
    }
    CHECK(bad == 0 && f.n == w.n, "%s: %d tensors equal torch's values, dtypes and shapes",
          what, w.n);
    st_close(&w);
    st_close(&f);
}

static void test_good(void)
{
    same_tensors("zip", FIX "pth_zip.pth", FIX "pth_expect.safetensors");
    same_tensors("legacy", FIX "pth_legacy.pth", FIX "pth_expect.safetensors");
    same_tensors("protocol 4", FIX "pth_proto4.pth", FIX "pth_expect.safetensors");
    same_tensors("diffusers .bin", FIX "diffusers/diffusion_pytorch_model.bin",
                 FIX "diffusers_expect.safetensors");

    struct st_file f;
    char msg[160];
    if (pth_open(&f, FIX "pth_legacy.pth", msg, sizeof msg) == 0) {
        const struct st_tensor *t = st_find(&f, "conv.weight");
        float w[108];
        CHECK(t && t->dtype == ST_F32 && t->ndim == 4 && t->shape[0] == 4 && t->shape[3] == 3,
              "HWIO-strided conv weight keeps its (O,I,kH,kW) shape");
        t = st_find(&f, "bn.num_batches_tracked");
        CHECK(t && t->dtype == ST_I64 && t->ndim == 0 && *(const int64_t *)t->data == 3,
              "int64 num_batches_tracked = 3");
        /* st_load_entries sees the pth table like a safetensors one */
        struct st_entry e = {"conv.weight", 4, {4, 3, 3, 3}, w};
        CHECK(st_load_entries(&f, &e, 1, 1, msg, sizeof msg) == 0, "st_load_entries on a .pth");
        struct st_file w2;
        if (st_open(&w2, FIX "pth_expect.safetensors", msg, sizeof msg) == 0) {
            test_close("strided conv.weight made contiguous", w,
                       st_find(&w2, "conv.weight")->data, 108, 0, 0);
            st_close(&w2);
        }
        CHECK(strcmp(f.t[0].name, "bf.weight") == 0, "tensors sorted by name");
        st_close(&f);
    }
    if (pth_open(&f, FIX "pth_nested.pth", msg, sizeof msg) == 0) {
        CHECK(f.n == 3 && st_find(&f, "model.w") && st_find(&f, "opt.state.0.exp_avg") &&
                  st_find(&f, "opt.state.0.step"),
              "nested checkpoint flattened to model.w, opt.state.0.* (%d tensors)", f.n);
        st_close(&f);
    } else
        CHECK(0, "nested: %s", msg);
}

static void test_bad(void)
{
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"os_system_legacy.pth", "pickle: refusing global posix.system"},
        {"os_system_zip.pth", "pickle: refusing global posix.system"},
        {"eval.pth", "pickle: refusing global builtins.eval"},
        {"trunc_zip.pth", "zip"},
        {"trunc_data.pth", "truncated: storage"},
        {"trunc_pickle.pth", "pickle: truncated at offset"},
        {"opcode.pth", "pickle: unsupported opcode 0x49"},
        {"memo.pth", "pickle: memo index 2147483647 too large"},
        {"binget.pth", "pickle: memo index 5 not set"},
        {"underflow.pth", "pickle: stack underflow"},
        {"notdict.pth", "not a dict"},
        {"cycle.pth", "nested deeper than"},
        {"text.pth", "not a PyTorch checkpoint"},
        {"oob_size.pth", "tensor \"w\": view past the end of its storage"},
        {"oob_stride.pth", "view past the end"},
        {"oob_offset.pth", "view past the end"},
        {"huge_stride.pth", "view past the end"},
        {"neg_stride.pth", "bad size or stride"},
        {"numel_mismatch.pth", "storage 0 has 16 bytes, not 1000 elements"},
        {"int8.pth", "refusing global torch.CharStorage"},
        {"missing_storage.pth", "storage 0 missing"},
        {"no_datapkl.pth", "without <archive>/data.pkl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128], msg[160] = "";
        struct st_file f;
        snprintf(path, sizeof path, BAD "ckpt_pth_%s", cases[i].file);
        int rc = pth_open(&f, path, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, cases[i].want) != NULL && f.n == 0 && f.owned == NULL,
              "rejects %s: %s", cases[i].file, msg);
    }
    char msg[160];
    struct st_file f;
    CHECK(pth_open(&f, FIX "missing.pth", msg, sizeof msg) == -1 && strstr(msg, "No such file"),
          "missing file: %s", msg);
}

int main(void)
{
    test_good();
    test_bad();
    return test_done();
}
