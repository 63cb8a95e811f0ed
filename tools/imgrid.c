/* imgrid: a uint8 image batch (.npy/.npz, (N,H,W,3) or gray (N,H,W) / (N,H,W,1)) to one PNG
   grid, laid out like torchvision.utils.make_grid (row-major, `pad` pixels around every cell). */
#include "img.h"
#include "npy.h"
#include "util.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(int status)
{
    FILE *f = status == 0 ? stdout : stderr;
    fputs("usage: imgrid [-c COLS] [-p PAD] [--pad-value V] [-s SCALE] [-n MAX] [-o OUT.png]"
          " [IN.npy|-]\n",
          f);
    if (status == 0)
        fputs("\n"
              "Lays out the images of a uint8 (N,H,W,3) or gray (N,H,W) batch (.npy or .npz,\n"
              "default stdin) as a PNG grid, row by row.\n"
              "\n"
              "  -c, --cols COLS     images per row (default ceil(sqrt(N)))\n"
              "  -p, --pad PAD       pixels between and around images (default 2)\n"
              "  --pad-value V       grey level of the padding (default 0)\n"
              "  -s, --scale SCALE   nearest-neighbour upscaling factor (default 1)\n"
              "  -n, --max N         at most the first N images\n"
              "  -o, --output FILE   output PNG (default - : stdout)\n",
              f);
    exit(status);
}

static long arg_long(const char *name, const char *s, long lo, long hi)
{
    long v;
    if (util_parse_long(s, lo, hi, &v) == -1) {
        warnx("%s: want %ld..%ld, not '%s'", name, lo, hi, s);
        usage(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cols", required_argument, NULL, 'c'},  {"pad", required_argument, NULL, 'p'},
        {"pad-value", required_argument, NULL, 'V'}, {"scale", required_argument, NULL, 's'},
        {"max", required_argument, NULL, 'n'},   {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *in = "-", *out = "-";
    long cols = 0, pad = 2, padv = 0, scale = 1, max = 0;
    int c;
    char msg[128];
    struct npy t;
    struct outfile of;

    while ((c = getopt_long(argc, argv, "c:p:s:n:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cols = arg_long("--cols", optarg, 1, 100000); break;
        case 'p': pad = arg_long("--pad", optarg, 0, 1000); break;
        case 'V': padv = arg_long("--pad-value", optarg, 0, 255); break;
        case 's': scale = arg_long("--scale", optarg, 1, 64); break;
        case 'n': max = arg_long("--max", optarg, 1, 1L << 40); break;
        case 'o': out = optarg; break;
        case 'h': usage(0); break;
        default: usage(2);
        }
    }
    if (argc - optind > 1)
        usage(2);
    if (argc - optind == 1)
        in = argv[optind];
    util_cleanup_signals();
    if (util_binary_to_tty(out))
        errx(1, UTIL_TTY_MSG);
    if (util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);

    if (npy_load(in, NULL, &t, msg, sizeof msg) == -1)
        errx(1, "%s: %s", in, msg);
    int ch = t.ndim == 4 ? (int)t.shape[3] : 1;
    if (t.dtype != NPY_U8 || !(t.ndim == 3 || (t.ndim == 4 && (ch == 1 || ch == 3))))
        errx(1, "%s: expected uint8 images (N,H,W,3) or (N,H,W), got %s with %d dims", in,
             npy_dtype_name(t.dtype), t.ndim);
    int64_t n = t.shape[0], H = t.shape[1], W = t.shape[2];
    if (n < 1 || H < 1 || W < 1)
        errx(1, "%s: no images", in);
    if (max > 0 && n > max)
        n = max;
    if (cols == 0)
        cols = (long)ceil(sqrt((double)n));
    if (cols > n)
        cols = n;
    int64_t rows = (n + cols - 1) / cols, cw = W * scale, chh = H * scale;
    int64_t gw = cols * (cw + pad) + pad, gh = rows * (chh + pad) + pad;
    if (gw > 1 << 20 || gh > 1 << 20 || gw * gh > 1LL << 30)
        errx(1, "%s: grid of %jdx%jd pixels is too large", in, (intmax_t)gw, (intmax_t)gh);
    uint8_t *g = xmalloc((size_t)gw * gh * ch);
    memset(g, (int)padv, (size_t)gw * gh * ch);
    const uint8_t *src = t.data;
    for (int64_t i = 0; i < n; i++) {
        int64_t x0 = pad + (i % cols) * (cw + pad), y0 = pad + (i / cols) * (chh + pad);
        const uint8_t *im = src + (size_t)i * H * W * ch;
        for (int64_t y = 0; y < chh; y++) {
            uint8_t *o = g + ((size_t)(y0 + y) * gw + x0) * ch;
            const uint8_t *r = im + (size_t)(y / scale) * W * ch;
            for (int64_t x = 0; x < cw; x++)
                memcpy(o + x * ch, r + (x / scale) * ch, ch);
        }
    }
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (img_png_write(of.f, g, (int)gw, (int)gh, ch, msg, sizeof msg) == -1 ||
        outfile_commit(&of, msg, sizeof msg) == -1) {
        outfile_abort(&of);
        errx(1, "%s: %s", out, msg);
    }
    if (fclose(stdout) != 0)
        err(1, "stdout");
    free(g);
    npy_free(&t);
    return 0;
}
