/* mkdemo: the built-in demo data set, made offline: N procedural "flower" pictures (petals
   around a disc on a stem, over a leafy gradient), RGB PNG files of varied sizes from 64x48 to
   96x96, DIR/flower_NNNN.png. Image i depends only on (seed, i), so the same seed gives the
   same bytes.

   DIR appears whole or not at all: the images go to a temporary folder beside it, renamed to
   DIR at the end. An existing DIR is replaced only when it is empty or holds nothing but
   flower_NNNN.png files (an earlier mkdemo's); anything else there is refused, so old and new
   images never mix and no file of the user's is deleted. */
#include "io/img.h"
#include "util/opt.h"
#include "util/rng.h"
#include "util/util.h"
#include "nn/tool.h"

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SS 2 /* supersampling per axis */

static const char usage_line[] = "usage: mkdemo [-n 400] [--seed 1] -o DIR\n";

static const char help[] =
    "\n"
    "Draws the built-in demo data set offline: N pictures of flowers (petals around a\n"
    "disc on a stem, over a leafy background), RGB PNG files of sizes from 64x48 to\n"
    "96x96, written as DIR/flower_0000.png, ... (DIR is made if needed). Picture i\n"
    "depends only on the seed and i: the same seed gives the same bytes.\n"
    "\n"
    "  -n, --num N         pictures, 1..1000000 (default 400)\n"
    "  -S, --seed S        seed (default 1)\n"
    "  -o, --output DIR    the folder to write (required)\n"
    "  -h, --help          this text\n"
    "\n"
    "Example:\n"
    "  mkdemo -n 700 -o data/demo/images && imgresize -s 32 data/demo/images -o demo.npy\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

static void hsv(float h, float s, float v, float *rgb)
{
    float c = v * s, x = c * (1 - fabsf(fmodf(h * 6, 2) - 1)), m = v - c;
    int k = (int)(h * 6) % 6;
    float r[6] = {c, x, 0, 0, x, c}, g[6] = {x, c, c, x, 0, 0}, b[6] = {0, 0, x, c, c, x};
    rgb[0] = r[k] + m;
    rgb[1] = g[k] + m;
    rgb[2] = b[k] + m;
}

struct flower {
    float cx, cy, R, rc, phase, sharp;
    int k;
    float petal[3], disc[3];
};

static void flower_init(struct flower *f, struct rng *r, int w, int h, float scale)
{
    /* petal hues: red, orange, yellow, pink, purple, white-ish */
    static const float hues[6] = {0.0f, 0.07f, 0.14f, 0.92f, 0.78f, 0.6f};
    int c = (int)rng_below(r, 6);
    float m = (float)(w < h ? w : h);
    f->cx = w * (0.3f + 0.4f * rng_uniform(r));
    f->cy = h * (0.3f + 0.35f * rng_uniform(r));
    f->R = m * scale * (0.28f + 0.14f * rng_uniform(r));
    f->rc = f->R * (0.18f + 0.14f * rng_uniform(r));
    f->k = 4 + (int)rng_below(r, 6);
    f->phase = 6.2831853f * rng_uniform(r);
    f->sharp = 0.5f + rng_uniform(r);
    hsv(fmodf(hues[c] + 0.04f * (rng_uniform(r) - 0.5f) + 1, 1),
        c == 5 ? 0.1f + 0.2f * rng_uniform(r) : 0.6f + 0.4f * rng_uniform(r),
        0.75f + 0.25f * rng_uniform(r), f->petal);
    hsv(0.08f + 0.06f * rng_uniform(r), 0.7f + 0.3f * rng_uniform(r),
        0.35f + 0.6f * rng_uniform(r), f->disc);
}

/* colour of the flower at (x, y), or 0 when (x, y) is outside it */
static int flower_at(const struct flower *f, float x, float y, float *rgb)
{
    float dx = x - f->cx, dy = y - f->cy, r = sqrtf(dx * dx + dy * dy);
    float t = atan2f(dy, dx), edge;
    if (r < f->rc) {
        float dots = 0.85f + 0.15f * sinf(dx * 2.1f) * sinf(dy * 2.3f);
        for (int c = 0; c < 3; c++)
            rgb[c] = f->disc[c] * dots;
        return 1;
    }
    edge = f->R * (0.3f + 0.7f * powf(fabsf(cosf(f->k * t * 0.5f + f->phase)), f->sharp));
    if (r > edge)
        return 0;
    float shade = 0.7f + 0.3f * (r / f->R), vein = 1 - 0.12f * powf(1 - r / edge, 4);
    for (int c = 0; c < 3; c++)
        rgb[c] = f->petal[c] * shade * vein;
    return 1;
}

static void make_image(uint8_t *pix, int w, int h, struct rng *r)
{
    float top[3], bot[3], stem[3], noise_amp = 6 + 6 * rng_uniform(r);
    struct flower fl[2];
    int n_fl = rng_uniform(r) < 0.3f ? 2 : 1;
    hsv(0.2f + 0.2f * rng_uniform(r), 0.3f + 0.5f * rng_uniform(r),
        0.5f + 0.4f * rng_uniform(r), top);
    hsv(0.25f + 0.1f * rng_uniform(r), 0.5f + 0.4f * rng_uniform(r),
        0.15f + 0.3f * rng_uniform(r), bot);
    hsv(0.28f + 0.06f * rng_uniform(r), 0.6f + 0.3f * rng_uniform(r),
        0.3f + 0.3f * rng_uniform(r), stem);
    for (int i = 0; i < n_fl; i++)
        flower_init(&fl[i], r, w, h, i == 0 ? 1.0f : 0.6f);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc[3] = {0, 0, 0};
            for (int sy = 0; sy < SS; sy++)
                for (int sx = 0; sx < SS; sx++) {
                    float px = x + (sx + 0.5f) / SS, py = y + (sy + 0.5f) / SS, c[3];
                    float t = py / h;
                    for (int k = 0; k < 3; k++)
                        c[k] = top[k] * (1 - t) + bot[k] * t;
                    /* stems first, so petals cover them; the second flower sits behind */
                    for (int i = n_fl - 1; i >= 0; i--) {
                        float sw = 0.6f + fl[i].R * 0.06f;
                        if (py > fl[i].cy && fabsf(px - fl[i].cx - 3 * sinf(py * 0.1f)) < sw)
                            memcpy(c, stem, sizeof c);
                    }
                    for (int i = n_fl - 1; i >= 0; i--) {
                        float f[3];
                        if (flower_at(&fl[i], px, py, f))
                            memcpy(c, f, sizeof c);
                    }
                    for (int k = 0; k < 3; k++)
                        acc[k] += c[k];
                }
            for (int k = 0; k < 3; k++) {
                float v = acc[k] / (SS * SS) * 255 + noise_amp * (rng_uniform(r) - 0.5f);
                pix[((size_t)y * w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
            }
        }
}

/* what mkdemo writes: flower_ and four or more digits, .png */
static int is_ours(const char *name)
{
    size_t n = strlen(name), d = 0;
    if (n < 15 || strncmp(name, "flower_", 7) != 0 || strcmp(name + n - 4, ".png") != 0)
        return 0;
    for (const char *p = name + 7; p < name + n - 4; p++, d++)
        if (*p < '0' || *p > '9')
            return 0;
    return d >= 4;
}

/* 0 when dir is missing or holds only our files; else -1 with the first other name */
static int foreign_file(const char *dir, char *name, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;
    if (d == NULL)
        return 0;
    while (rc == 0 && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && !is_ours(e->d_name)) {
            snprintf(name, len, "%s", e->d_name);
            rc = -1;
        }
    closedir(d);
    return rc;
}

/* deletes our files in dir, then dir if that leaves it empty */
static void remove_ours(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *p = xmalloc(strlen(dir) + 300);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL)
            if (is_ours(e->d_name)) {
                sprintf(p, "%s/%.255s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
    free(p);
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"num", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 'S'},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    long n = 400, seed = 1;
    char msg[TOOL_MSG], *path, *tmp, *old, *parent, name[256];
    int c;
    uint8_t *pix;
    struct opt op;

    opt_init(&op, "n:o:S:h", longs);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 'n':
            if (opt_long(&op, 1, 1000000, &n) == -1)
                usage(2, op.msg);
            break;
        case 'S':
            if (opt_long(&op, 0, 0x7fffffffL, &seed) == -1)
                usage(2, op.msg);
            break;
        case 'o': dir = optarg; break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (optind != argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind]);
        usage(2, msg);
    }
    if (dir == NULL)
        usage(2, "-o DIR is required");
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (util_exists(dir) && !util_is_dir(dir))
        errx(1, "%s: exists and is not a directory", dir);
    if (foreign_file(dir, name, sizeof name) == -1)
        errx(1, "%s: holds %s, which mkdemo did not make: give an empty or new folder", dir,
             name);
    parent = xstrdup(dir);
    while (strlen(parent) > 1 && parent[strlen(parent) - 1] == '/')
        parent[strlen(parent) - 1] = '\0';
    tmp = xmalloc(strlen(parent) + 16);
    old = xmalloc(strlen(parent) + 16);
    sprintf(tmp, "%s.XXXXXX", parent);
    sprintf(old, "%s.old-XXXXXX", parent);
    if (strrchr(parent, '/') != NULL) {
        *strrchr(parent, '/') = '\0';
        if (*parent && util_mkdirs(parent, msg, sizeof msg) == -1)
            errx(1, "%s", msg);
    }
    if (mkdtemp(tmp) == NULL)
        err(1, "%s: cannot create a folder beside it", dir);
    mode_t mask = umask(0); /* mkdtemp makes it 0700: give DIR the mode mkdir(1) would */
    umask(mask);
    chmod(tmp, 0777 & ~mask);
    /* an interrupt stops between images and removes the temporary folder */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    pix = xmalloc(96 * 96 * 3);
    path = xmalloc(strlen(tmp) + 32);
    for (long i = 0; i < n && !got_signal; i++) {
        struct rng r;
        struct outfile of;
        int w, h;
        rng_seed(&r, (uint64_t)seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i);
        w = 64 + 8 * (int)rng_below(&r, 5);
        h = 48 + 8 * (int)rng_below(&r, 7);
        make_image(pix, w, h, &r);
        sprintf(path, "%s/flower_%04ld.png", tmp, i);
        if (outfile_open(&of, path, msg, sizeof msg) == -1) {
            remove_ours(tmp);
            errx(1, "%s: %s", path, msg);
        }
        if (img_png_write(of.f, pix, w, h, 3, msg, sizeof msg) == -1 ||
            outfile_commit(&of, msg, sizeof msg) == -1) {
            outfile_abort(&of);
            remove_ours(tmp);
            errx(1, "%s: %s", dir, msg);
        }
    }
    if (got_signal) {
        remove_ours(tmp);
        signal(got_signal, SIG_DFL);
        raise(got_signal);
    }
    /* an earlier output (checked above: only our files) goes aside, then is deleted */
    if (util_is_dir(dir)) {
        if (mkdtemp(old) == NULL || rmdir(old) == -1 || rename(dir, old) == -1) {
            remove_ours(tmp);
            err(1, "%s: cannot move the earlier images aside", dir);
        }
    }
    if (rename(tmp, dir) == -1) {
        int e = errno;
        remove_ours(tmp);
        if (util_is_dir(old))
            rename(old, dir);
        errx(1, "%s: %s", dir, strerror(e));
    }
    if (util_is_dir(old))
        remove_ours(old);
    free(path);
    free(pix);
    free(tmp);
    free(old);
    free(parent);
    return 0;
}
