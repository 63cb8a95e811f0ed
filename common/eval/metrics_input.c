/* The inputs of fid, is-score and kid: what a path names (images in an .npy, a folder of
   image files, a zip of them, features, statistics) and the Inception features of images,
   a batch at a time. The metrics themselves are in metrics.c. */
#include <assert.h>
#include <limits.h>

#include "eval/metrics_input.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/metrics.h"
#include "io/img.h"
#include "util/util.h"

const char *metrics_kind_name(enum metrics_kind k)
{
    static const char *const names[] = { "images", "image folder", "features", "statistics" };
    return names[k];
}

/* pytorch-fid's IMAGE_EXTENSIONS, case-sensitive */
static int image_ext(const char *name)
{
    static const char *const ext[] = { "bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff",
                                       "webp" };
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcmp(dot + 1, ext[i]) == 0)
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int open_folder(struct metrics_input *in, const char *path, char *msg, size_t msglen)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    size_t cap = 0;
    int n_sub = 0;
    if (dir == NULL) {
        snprintf(msg, msglen, "cannot open folder");
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (!image_ext(de->d_name)) {
            size_t l = strlen(path) + strlen(de->d_name) + 2;
            char *full = xmalloc(l);
            snprintf(full, l, "%s/%s", path, de->d_name);
            n_sub += util_is_dir(full);
            free(full);
            continue;
        }
        size_t l = strlen(path) + strlen(de->d_name) + 2;
        char *full = xmalloc(l);
        snprintf(full, l, "%s/%s", path, de->d_name);
        if (util_is_dir(full)) {
            free(full);
            continue;
        }
        if ((size_t)in->n == cap) {
            cap = cap ? 2 * cap : 64;
            in->files = xrealloc(in->files, cap * sizeof(char *));
        }
        in->files[in->n++] = full;
    }
    closedir(dir);
    if (in->n == 0 && n_sub > 0) {
        snprintf(msg, msglen, "no images in folder, only %d subfolder%s: images are read "
                 "from the folder itself, not its subfolders (as pytorch-fid)", n_sub,
                 n_sub > 1 ? "s" : "");
        return -1;
    }
    if (in->n == 0) {
        snprintf(msg, msglen, "no images in folder (bmp jpg jpeg pgm png ppm tif tiff webp)");
        return -1;
    }
    qsort(in->files, in->n, sizeof(char *), cmp_str);
    in->kind = METRICS_FOLDER;
    return 0;
}

static int has_name(char **names, int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0)
            return 1;
    return 0;
}

static int is_zip(const char *path)
{
    unsigned char m[4] = { 0 };
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
}

/* in->kind, n and d from the array's dtype and shape (data not needed) */
static int classify(struct metrics_input *in, char *msg, size_t msglen)
{
    struct npy *t = &in->arr;
    if (t->dtype == NPY_U8 && t->ndim == 4 && t->shape[3] == 3 && t->shape[0] >= 1 &&
        t->shape[1] >= 1 && t->shape[2] >= 1 && t->shape[1] <= 16384 && t->shape[2] <= 16384) {
        in->kind = METRICS_IMAGES;
        in->n = t->shape[0];
        return 0;
    }
    if ((t->dtype == NPY_F32 || t->dtype == NPY_F64) && t->ndim == 2 && t->shape[0] >= 1 &&
        t->shape[1] >= 1 && t->shape[1] <= 65536) {
        in->kind = METRICS_FEATURES;
        in->n = t->shape[0];
        in->d = (int)t->shape[1];
        return 0;
    }
    char s[96];
    int k = 0;
    s[0] = '\0';
    for (int i = 0; i < t->ndim && k < (int)sizeof s - 24; i++)
        k += snprintf(s + k, sizeof s - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    snprintf(msg, msglen, "expected uint8 images (N,H,W,3), float features (N,D) or an .npz "
             "with mu and sigma, got %s (%s)%s", npy_dtype_name(t->dtype), s,
             npy_nchw_hint(t));
    return -1;
}

/* features are float32 inside */
static void to_f32(struct npy *t)
{
    if (t->dtype != NPY_F64)
        return;
    int64_t n = npy_count(t);
    float *f = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)((double *)t->data)[i];
    free(t->data);
    t->data = f;
    t->dtype = NPY_F32;
}

int metrics_input_open(struct metrics_input *in, const char *path, char *msg, size_t msglen)
{
    memset(in, 0, sizeof *in);
    if (strcmp(path, "-") != 0 && util_is_dir(path)) {
        if (open_folder(in, path, msg, msglen) == -1) {
            metrics_input_free(in);
            return -1;
        }
        return 0;
    }
    if (strcmp(path, "-") != 0 && is_zip(path)) {
        char **names;
        int n, stats;
        if (npz_names(path, &names, &n, msg, msglen) == -1)
            return -1;
        stats = has_name(names, n, "mu") && has_name(names, n, "sigma");
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        if (stats) {
            in->kind = METRICS_STATS;
            return metrics_stats_load(path, &in->mu, &in->sigma, &in->d, msg, msglen);
        }
    }
    if (npy_load(path, NULL, &in->arr, msg, msglen) == -1)
        return -1;
    if (classify(in, msg, msglen) == -1) {
        npy_free(&in->arr);
        return -1;
    }
    to_f32(&in->arr);
    return 0;
}

int metrics_input_open_rows(struct metrics_input *in, const char *path,
                            metrics_input_range range, const void *ctx, char *msg,
                            size_t msglen)
{
    struct npy_rows r;
    int64_t lo, hi;
    char m[256];
    memset(in, 0, sizeof *in);
    /* anything but a sound .npy file (a folder, an .npz, stdin, a file that does not open
       or is cut short) opens whole, as before, with the same messages */
    if (strcmp(path, "-") == 0 || util_is_dir(path) || is_zip(path) ||
        npy_rows_open(&r, path, m, sizeof m) == -1)
        return metrics_input_open(in, path, msg, msglen);
    in->arr = r.hdr;
    if (classify(in, m, sizeof m) == -1) {
        npy_rows_close(&r);
        return metrics_input_open(in, path, msg, msglen);
    }
    range(ctx, in, &lo, &hi);
    if (npy_rows_read(&r, lo, hi, &in->arr, msg, msglen) == -1) {
        npy_rows_close(&r);
        memset(in, 0, sizeof *in);
        return -1;
    }
    npy_rows_close(&r);
    in->row0 = lo;
    to_f32(&in->arr);
    return 0;
}

int metrics_input_drop_bad(struct metrics_input *in, char ***bad, int *n_bad, char *msg,
                           size_t msglen)
{
    int64_t kept = 0;
    if (in->kind != METRICS_FOLDER)
        return 0;
    for (int64_t i = 0; i < in->n; i++) {
        struct img im;
        char m[160], line[4096 + 160];
        if (img_load(in->files[i], &im, m, sizeof m) == 0) {
            img_free(&im);
            in->files[kept++] = in->files[i];
            continue;
        }
        snprintf(line, sizeof line, "%s: %s", in->files[i], m);
        strv_add(bad, n_bad, line);
        free(in->files[i]);
    }
    in->n = kept;
    if (kept == 0) {
        snprintf(msg, msglen, "no image in the folder could be read");
        return -1;
    }
    return 0;
}

void metrics_input_free(struct metrics_input *in)
{
    for (int64_t i = 0; i < in->n && in->files != NULL; i++)
        free(in->files[i]);
    free(in->files);
    if (in->arr.data != NULL)
        npy_free(&in->arr);
    free(in->mu);
    free(in->sigma);
    memset(in, 0, sizeof *in);
}

const uint8_t *metrics_input_image(const struct metrics_input *in, int64_t i)
{
    size_t row = (size_t)in->arr.shape[1] * in->arr.shape[2] * 3;
    assert(in->row0 <= i && i < in->row0 + in->arr.shape[0]);
    return (const uint8_t *)in->arr.data + (size_t)(i - in->row0) * row;
}

/* the network's outputs: f for the requested width, sp (or NULL) for sFID's features */
static struct inception_outputs pick(float *f, int dims, float *sp)
{
    struct inception_outputs o = { NULL, NULL, NULL, NULL, NULL, sp };
    if (dims == INCEPTION_DIMS)
        o.pool3 = f;
    else if (dims == 64)
        o.dims64 = f;
    else if (dims == 192)
        o.dims192 = f;
    else if (dims == 768)
        o.dims768 = f;
    else
        o.spatial = f;
    return o;
}

int metrics_input_features(struct metrics_input *in, const struct inception *net, int batch,
                           enum inception_resize mode, int dims, int spatial, metrics_sink sink,
                           void *ctx, char *msg, size_t msglen)
{
    return metrics_input_features_range(in, 0, in->n, net, batch, mode, dims, spatial, sink,
                                        ctx, msg, msglen);
}

int metrics_input_features_range(struct metrics_input *in, int64_t lo, int64_t hi,
                                 const struct inception *net, int batch,
                                 enum inception_resize mode, int dims, int spatial,
                                 metrics_sink sink, void *ctx, char *msg, size_t msglen)
{
    assert(0 <= lo && lo <= hi && hi <= in->n);
    if (in->kind == METRICS_STATS) {
        snprintf(msg, msglen, "statistics have no features");
        return -1;
    }
    if (in->kind == METRICS_FEATURES) {
        if (spatial) {
            snprintf(msg, msglen, "a feature cache has no sFID features; give the images");
            return -1;
        }
        if (in->d != dims) {
            snprintf(msg, msglen, "features have %d columns, expected %d (--dims)", in->d, dims);
            return -1;
        }
        const float *f = in->arr.data;
        assert(in->row0 <= lo && hi <= in->row0 + in->arr.shape[0]);
        for (int64_t i = lo; i < hi; i += batch) {
            int b = hi - i < batch ? (int)(hi - i) : batch;
            if (sink(ctx, f + (i - in->row0) * dims, NULL, b) != 0) {
                snprintf(msg, msglen, "stopped");
                return -1;
            }
        }
        return 0;
    }
    if (dims != 64 && dims != 192 && dims != 768 && dims != 2048 &&
        dims != INCEPTION_SPATIAL_DIMS) {
        snprintf(msg, msglen, "dims must be 64, 192, 768, 2048 or %d, got %d",
                 INCEPTION_SPATIAL_DIMS, dims);
        return -1;
    }
    /* whole groups of the network (inception.h): the features are the same either way, the
       work is not (a batch starting inside a group recomputes it) */
    if (batch > INT_MAX - INCEPTION_GROUP)
        batch = INT_MAX - INCEPTION_GROUP;
    batch = (batch + INCEPTION_GROUP - 1) / INCEPTION_GROUP * INCEPTION_GROUP;
    float *feat = xmalloc((size_t)batch * dims * sizeof(float)), *sp = NULL, *x = NULL;
    int rc = 0;
    if (spatial)
        sp = xmalloc((size_t)batch * INCEPTION_SPATIAL_DIMS * sizeof(float));
    struct inception_outputs o = pick(feat, dims, sp);
    if (in->kind == METRICS_FOLDER)
        x = xmalloc((size_t)batch * 3 * INCEPTION_SIZE * INCEPTION_SIZE * sizeof(float));
    /* the network's workspace, once for the largest batch of the range (u8 arrays: their
       size's preprocessing too; folders are preprocessed here, into x) */
    struct inception_ws ws = { 0 };
    if (lo < hi)
        inception_ws_init(&ws, net, hi - lo < batch ? (int)(hi - lo) : batch,
                          in->kind == METRICS_IMAGES ? (int)in->arr.shape[1] : 0,
                          in->kind == METRICS_IMAGES ? (int)in->arr.shape[2] : 0);
    /* i is the image's index in the whole input: its slot, so a range's features are that
       slice of the whole input's */
    for (int64_t i = lo; i < hi && rc == 0; i += batch) {
        int b = hi - i < batch ? (int)(hi - i) : batch;
        if (in->kind == METRICS_IMAGES) {
            int H = (int)in->arr.shape[1], W = (int)in->arr.shape[2];
            assert(hi <= in->row0 + in->arr.shape[0]);
            inception_run_u8(net, &ws, &o, metrics_input_image(in, i), b, (int)i, H, W, mode);
        } else {
            for (int k = 0; k < b; k++) {
                struct img im;
                const char *path = in->files[i + k];
                if (img_load(path, &im, msg, msglen) == -1) {
                    char m2[256];
                    snprintf(m2, sizeof m2, "%s: %s", path, msg);
                    snprintf(msg, msglen, "%s", m2);
                    rc = -1;
                    break;
                }
                inception_preprocess(x + (size_t)k * 3 * INCEPTION_SIZE * INCEPTION_SIZE,
                                     im.rgb, im.h, im.w, mode);
                img_free(&im);
            }
            if (rc == -1)
                break;
            inception_run(net, &ws, &o, x, b, (int)i);
        }
        if (sink(ctx, feat, sp, b) != 0) {
            snprintf(msg, msglen, "stopped");
            rc = -1;
        }
    }
    inception_ws_free(&ws);
    free(feat);
    free(sp);
    free(x);
    return rc;
}

