/* common/io/img.c against PIL 9.4 goldens (tests/fixtures/gen_img.py): decoding of every PNG and
   JPEG kind to Image.open().convert('RGB') pixels, resize((W,H), BILINEAR), the centre crop,
   PNG round trips, and clean rejection of broken files. Exact matches are required. */
#include "io/img.h"
#include "io/npy.h"
#include "util/rng.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/img/"

/* Compares an (h,w,3) result with a uint8 .npy reference; prints the first difference. */
static void check_pixels(const char *name, const uint8_t *got, int w, int h, const char *ref)
{
    struct npy t;
    char msg[128];
    if (npy_load(ref, NULL, &t, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s: %s", name, ref, msg);
        return;
    }
    if (t.dtype != NPY_U8 || t.ndim != 3 || t.shape[0] != h || t.shape[1] != w ||
        t.shape[2] != 3) {
        CHECK(0, "%s: shape %dx%d vs reference %lldx%lld", name, w, h, (long long)t.shape[1],
              (long long)t.shape[0]);
        npy_free(&t);
        return;
    }
    const uint8_t *want = t.data;
    size_t n = (size_t)w * h * 3, bad = 0, first = 0;
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs(got[i] - want[i]);
        if (d != 0 && bad++ == 0)
            first = i;
        worst = d > worst ? d : worst;
    }
    CHECK(bad == 0, "%s matches PIL (%zu values)", name, n);
    if (bad)
        printf("# %s: %zu differ (max %d), first at [%zu]: got %d want %d\n", name, bad, worst,
               first, got[first], want[first]);
    npy_free(&t);
}

static void test_decode(void)
{
    static const char *cases[] = {
        "dec_rgb.png", "dec_rgb_adam7.png", "dec_rgba.png", "dec_gray.png", "dec_gray_trns.png",
        "dec_gray1.png", "dec_gray2.png", "dec_gray4.png", "dec_gray4_adam7.png",
        "dec_gray16.png", "dec_graya.png", "dec_graya16.png", "dec_rgb16.png", "dec_rgba16.png",
        "dec_rgba16_adam7.png", "dec_pal.png", "dec_pal_trns.png", "dec_pal4.png",
        "dec_pal1.png", "dec_pal2.png", "dec_pal_short.png", "dec_rgb_trns.png",
        "dec_rgb420.jpg", "dec_rgb444.jpg", "dec_rgb422.jpg", "dec_progressive.jpg",
        "dec_gray_jpeg.jpg", "dec_cmyk_adobe.jpg", "dec_cmyk_plain.jpg", "dec_ycck.jpg",
        "dec_png_named.jpg",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256], ref[256], msg[128];
        struct img im;
        snprintf(path, sizeof path, FIX "%s", cases[i]);
        snprintf(ref, sizeof ref, FIX "%.*s.npy", (int)(strrchr(cases[i], '.') - cases[i]),
                 cases[i]);
        if (img_load(path, &im, msg, sizeof msg) == -1) {
            CHECK(0, "decode %s: %s", cases[i], msg);
            continue;
        }
        check_pixels(cases[i], im.rgb, im.w, im.h, ref);
        img_free(&im);
    }
}

static void test_resize(const char *src, const char *tag, const int (*sizes)[2], int n)
{
    struct img im;
    char msg[128], name[64], ref[256];
    if (img_load(src, &im, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", src, msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        uint8_t *out = xmalloc((size_t)w * h * 3);
        img_resize_bilinear(out, w, h, im.rgb, im.w, im.h);
        snprintf(name, sizeof name, "resize %s %dx%d -> %dx%d", tag, im.w, im.h, w, h);
        snprintf(ref, sizeof ref, FIX "rs_%s_%dx%d.npy", tag, w, h);
        check_pixels(name, out, w, h, ref);
        free(out);
    }
    static const int crops[][2] = {{32, 32}, {48, 20}, {20, 48}};
    for (int i = 0; i < 3; i++) {
        int w = crops[i][0], h = crops[i][1];
        uint8_t *out = xmalloc((size_t)w * h * 3);
        img_resize_center_crop(out, w, h, im.rgb, im.w, im.h);
        snprintf(name, sizeof name, "center-crop %s %dx%d -> %dx%d", tag, im.w, im.h, w, h);
        snprintf(ref, sizeof ref, FIX "cc_%s_%dx%d.npy", tag, w, h);
        check_pixels(name, out, w, h, ref);
        free(out);
    }
    img_free(&im);
}

static void test_center_box(void)
{
    int x0, y0, cw, ch;
    img_center_box(500, 375, 32, 32, &x0, &y0, &cw, &ch);
    CHECK(x0 == 62 && y0 == 0 && cw == 375 && ch == 375, "center box 500x375 -> 1:1");
    img_center_box(375, 500, 32, 32, &x0, &y0, &cw, &ch);
    CHECK(x0 == 0 && y0 == 62 && cw == 375 && ch == 375, "center box 375x500 -> 1:1");
    img_center_box(100, 100, 48, 20, &x0, &y0, &cw, &ch);
    CHECK(x0 == 0 && y0 == 29 && cw == 100 && ch == 41, "center box 100x100 -> 48:20");
}

static int round_trip(int w, int h, int channels)
{
    uint8_t *pix = xmalloc((size_t)w * h * channels);
    unsigned char *buf = NULL;
    size_t len = 0;
    char msg[128];
    struct img im;
    int ok = 1;
    for (int i = 0; i < w * h * channels; i++)
        pix[i] = (uint8_t)(i * 7 + i / 13);
    FILE *f = open_memstream((char **)&buf, &len);
    if (img_png_write(f, pix, w, h, channels, msg, sizeof msg) == -1) {
        printf("# png write: %s\n", msg);
        ok = 0;
    }
    fclose(f);
    if (ok && img_decode(buf, len, &im, msg, sizeof msg) == -1) {
        printf("# png read back: %s\n", msg);
        ok = 0;
    }
    if (ok) {
        ok = im.w == w && im.h == h;
        for (int i = 0; ok && i < w * h; i++)
            for (int k = 0; k < 3; k++)
                ok &= im.rgb[i * 3 + k] == pix[i * channels + (channels == 3 ? k : 0)];
        img_free(&im);
    }
    free(buf);
    free(pix);
    return ok;
}

static void test_bad(void)
{
    static const char *bad[] = {"img_trunc.png", "img_trunc.jpg", "img_header_only.jpg",
                                "img_text.jpg", "img_empty.png", "img_badcrc.png",
                                "img_huge.png", "img_corrupt.jpg",
                                "img_huge_progressive.jpg", "img_corrupt_data.jpg",
                                "img_bad_huffman.jpg"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[256], msg[128] = "";
        struct img im;
        snprintf(path, sizeof path, "tests/fixtures/bad/%s", bad[i]);
        int r = img_load(path, &im, msg, sizeof msg);
        CHECK(r == -1 && msg[0] != '\0' && im.rgb == NULL, "%s rejected (%s)", bad[i], msg);
        if (r == 0)
            img_free(&im);
    }
    /* libjpeg's corrupt-data warnings are errors, said in libjpeg's words */
    static const char *corrupt[][2] = {
        {"img_corrupt_data.jpg", "corrupt JPEG: premature end of data segment"},
        {"img_bad_huffman.jpg", "corrupt JPEG: bad Huffman code"}};
    for (int i = 0; i < 2; i++) {
        char path[256], msg[128] = "";
        struct img im;
        snprintf(path, sizeof path, "tests/fixtures/bad/%s", corrupt[i][0]);
        if (img_load(path, &im, msg, sizeof msg) == 0)
            img_free(&im);
        CHECK(strcmp(msg, corrupt[i][1]) == 0, "%s: \"%s\"", corrupt[i][0], msg);
    }
    /* every prefix of a PNG and a JPEG: a clean error, never a crash or a partial image */
    static const char *whole[] = {FIX "dec_rgb.png", FIX "dec_rgb420.jpg", FIX "dec_ycck.jpg"};
    for (int j = 0; j < 3; j++) {
        unsigned char *buf;
        size_t len;
        char msg[128];
        int fails = 0;
        if (util_read_file(whole[j], &buf, &len, msg, sizeof msg) == -1) {
            CHECK(0, "%s: %s", whole[j], msg);
            continue;
        }
        /* the last 2 bytes are the EOI marker of a JPEG, after every pixel */
        size_t need = strstr(whole[j], ".jpg") ? len - 2 : len;
        for (size_t n = 0; n < need; n++) {
            struct img im;
            msg[0] = '\0';
            if (img_decode(buf, n, &im, msg, sizeof msg) == 0) {
                fails++;
                img_free(&im);
            } else if (msg[0] == '\0') {
                fails++;
            }
        }
        CHECK(fails == 0, "%s: all %zu truncations rejected with a message", whole[j], need);
        free(buf);
    }
}

/* Random byte corruptions: every outcome is a clean success or an error with a message (run
   under make sanitize, this is where a decoder bug would show). */
static void test_mutations(void)
{
    static const char *files[] = {FIX "dec_rgb_adam7.png", FIX "dec_pal4.png",
                                  FIX "dec_rgb420.jpg", FIX "dec_progressive.jpg",
                                  FIX "dec_ycck.jpg"};
    struct rng r;
    rng_seed(&r, 1);
    for (int j = 0; j < 5; j++) {
        unsigned char *buf, *m;
        size_t len;
        char msg[128];
        int bad = 0, ok = 0;
        if (util_read_file(files[j], &buf, &len, msg, sizeof msg) == -1) {
            CHECK(0, "%s: %s", files[j], msg);
            continue;
        }
        m = xmalloc(len);
        for (int t = 0; t < 300; t++) {
            struct img im;
            memcpy(m, buf, len);
            for (int k = 0, n = 1 + (int)rng_below(&r, 4); k < n; k++)
                m[8 + rng_below(&r, len - 8)] = (unsigned char)rng_u64(&r);
            msg[0] = '\0';
            if (img_decode(m, len, &im, msg, sizeof msg) == 0) {
                ok++;
                bad += im.rgb == NULL || im.w < 1 || im.h < 1;
                img_free(&im);
            } else {
                bad += msg[0] == '\0';
            }
        }
        CHECK(bad == 0, "%s: 300 corruptions decoded or rejected cleanly (%d decoded)",
              files[j], ok);
        free(m);
        free(buf);
    }
}

int main(void)
{
    static const int src_sizes[][2] = {{32, 32}, {7, 5}, {1, 1}, {200, 150}, {48, 20},
                                       {123, 40}, {60, 97}, {123, 97}, {250, 30}};
    static const int photo_sizes[][2] = {{32, 32}, {64, 48}};
    (void)test_close;
    test_decode();
    test_resize(FIX "src.png", "src", src_sizes, 9);
    test_resize(FIX "photo.jpg", "photo", photo_sizes, 2);
    test_center_box();
    CHECK(round_trip(17, 5, 3), "PNG round trip RGB 17x5");
    CHECK(round_trip(3, 11, 1), "PNG round trip gray 3x11");
    test_bad();
    test_mutations();
    return test_done();
}
