/* --resize clean against a transcription of clean-fid's "clean" resizer run on Pillow 9.4
   (tests/fixtures/gen_clean.py): upscaling (32x32, 40x24) and a slight antialiased
   downscale (311x300), every 7th row and column of the network input, bit for bit. */
#include <stdlib.h>

#include "models/inception.h"
#include "io/npy.h"
#include "test.h"

static struct npy load(const char *path)
{
    char msg[256];
    struct npy t;
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s (run tests/fixtures/gen_clean.py)\n", path, msg);
        exit(1);
    }
    return t;
}

static void check(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "tests/fixtures/inception/%s.npy", name);
    struct npy img = load(p);
    snprintf(p, sizeof p, "tests/fixtures/clean/%s_clean.npy", name);
    struct npy want = load(p);
    int H = (int)img.shape[1], W = (int)img.shape[2], S = INCEPTION_SIZE;
    float *x = malloc(sizeof(float) * 3 * S * S), got[3 * 43 * 43];
    inception_preprocess(x, img.data, H, W, INCEPTION_RESIZE_CLEAN);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 43; y++)
            for (int i = 0; i < 43; i++)
                got[(c * 43 + y) * 43 + i] = x[((size_t)c * S + y * 7) * S + i * 7];
    snprintf(p, sizeof p, "%s: clean resize vs PIL float bicubic", name);
    test_close(p, got, want.data, 3 * 43 * 43, 0, 0);
    free(x);
    npy_free(&img);
    npy_free(&want);
}

int main(void)
{
    check("img32");
    check("img40x24");
    check("img311x300");
    return test_done();
}
