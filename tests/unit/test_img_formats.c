/* img_decode on BMP, PBM/PGM/PPM, TIFF and WebP against PIL 9.4 (tests/fixtures/
   gen_img_formats.py): every file of tests/fixtures/img/fmt/ decodes to the pixels of its
   NAME.npy exactly, and the broken ones of tests/fixtures/bad/img_fmt_* are refused. */
#include "io/img.h"
#include "io/npy.h"
#include "test.h"
#include "util/util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define FMT "tests/fixtures/img/fmt/"
#define BAD "tests/fixtures/bad/"

static void check_file(const char *name)
{
    char path[512], ref[512], msg[160];
    struct img im;
    struct npy t;
    snprintf(path, sizeof path, FMT "%s", name);
    snprintf(ref, sizeof ref, FMT "%.*s.npy", (int)(strrchr(name, '.') - name), name);
    if (img_load(path, &im, msg, sizeof msg) == -1) {
        CHECK(0, "%s decodes: %s", name, msg);
        return;
    }
    if (npy_load(ref, NULL, &t, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", ref, msg);
        img_free(&im);
        return;
    }
    if (t.dtype != NPY_U8 || t.ndim != 3 || t.shape[0] != im.h || t.shape[1] != im.w ||
        t.shape[2] != 3) {
        CHECK(0, "%s: %dx%d, PIL has %lldx%lld", name, im.w, im.h, (long long)t.shape[1],
              (long long)t.shape[0]);
    } else {
        const uint8_t *want = t.data;
        size_t n = (size_t)im.w * im.h * 3, bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (im.rgb[i] != want[i] && bad++ == 0)
                first = i;
        CHECK(bad == 0, "%s matches PIL (%zu values)", name, n);
        if (bad)
            printf("# %s: %zu differ, first at [%zu] (pixel %zu): got %d want %d\n", name, bad,
                   first, first / 3, im.rgb[first], want[first]);
    }
    npy_free(&t);
    img_free(&im);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the names in dir that start with prefix and do not end in .npy, sorted */
static char **names(const char *dir, const char *prefix, int *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    *n = 0;
    if (d == NULL)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && e->d_name[0] != '.' &&
            !(l > 4 && strcmp(e->d_name + l - 4, ".npy") == 0))
            strv_add(&v, n, e->d_name);
    }
    closedir(d);
    if (*n > 0)
        qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

int main(void)
{
    int n, kinds[4] = {0, 0, 0, 0};
    char **v = names(FMT, "", &n);
    for (int i = 0; i < n; i++) {
        check_file(v[i]);
        kinds[0] += strncmp(v[i], "bmp_", 4) == 0;
        kinds[1] += strncmp(v[i], "pnm_", 4) == 0;
        kinds[2] += strncmp(v[i], "tif_", 4) == 0;
        kinds[3] += strncmp(v[i], "webp_", 5) == 0;
    }
    CHECK(kinds[0] >= 10 && kinds[1] >= 8 && kinds[2] >= 10 && kinds[3] >= 4,
          "fixtures found: %d BMP, %d PNM, %d TIFF, %d WebP", kinds[0], kinds[1], kinds[2],
          kinds[3]);
    strv_free(v, n);

    v = names(BAD, "img_fmt_", &n);
    for (int i = 0; i < n; i++) {
        char path[512], msg[160] = "";
        struct img im;
        snprintf(path, sizeof path, BAD "%s", v[i]);
        int rc = img_load(path, &im, msg, sizeof msg);
        CHECK(rc == -1 && msg[0] != '\0' && strchr(msg, '\n') == NULL,
              "%s is refused: %s", v[i], msg);
        if (rc == 0)
            img_free(&im);
    }
    CHECK(n >= 6, "%d broken files", n);
    strv_free(v, n);
    (void)test_close;
    return test_done();
}
