/* imgrid: a uint8 image batch (.npy/.npz, (N,H,W,3) or gray (N,H,W) / (N,H,W,1)) to one PNG
   grid, laid out like torchvision.utils.make_grid (row-major, `pad` pixels around every cell). */
#include "io/img.h"
#include "io/npy.h"
#include "util/opt.h"
#include "util/util.h"
#include "nn/tool.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage_line[] =
    "usage: imgrid [-c COLS] [-p 2] [--pad-value 0] [--scale 1] [-n MAX] [-o OUT.png]\n"
    "              [IN.npy|-]\n";

static const char help[] =
    "\n"
    "Lays out the images of a uint8 (N,H,W,3) or gray (N,H,W) batch (.npy or .npz,\n"
    "default stdin) as one PNG grid, row by row, like torchvision.utils.make_grid.\n"
    "\n"
    "  -c, --cols COLS     images per row (default ceil(sqrt(N)))\n"
    "  -p, --pad PAD       pixels between and around images (default 2)\n"
    "  --pad-value V       grey level of the padding (default 0)\n"
    "  --scale SCALE       nearest-neighbour upscaling factor, 1..64 (default 1; -s is\n"
    "                      an old spelling: -s is --size in imgresize)\n"
    "  -n, --max N         at most the first N images (default all)\n"
    "  -o, --output FILE   output PNG (default -: stdout)\n"
    "  -h, --help          this text\n"
    "\n"
    "Example:\n"
    "  imgrid -c 10 -n 100 --scale 2 samples.npy -o samples.png\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

static long arg_long(struct opt *op, long lo, long hi)
{
    long v;
    if (opt_long(op, lo, hi, &v) == -1)
        usage(2, op->msg);
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
    char msg[TOOL_MSG];
    struct npy t;
    struct outfile of;
    struct opt op;

    /* -s (the scale) is an old spelling: -s is --size in imgresize */
    opt_init(&op, "c:p:s:n:o:h", opts);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 'c': cols = arg_long(&op, 1, 100000); break;
        case 'p': pad = arg_long(&op, 0, 1000); break;
        case 'V': padv = arg_long(&op, 0, 255); break;
        case 's': scale = arg_long(&op, 1, 64); break;
        case 'n': max = arg_long(&op, 1, 1L << 40); break;
        case 'o': out = optarg; break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (argc - optind > 1) {
        snprintf(msg, sizeof msg, "unexpected argument '%.80s'", argv[optind + 1]);
        usage(2, msg);
    }
    if (argc - optind == 1)
        in = argv[optind];
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (util_binary_to_tty(out))
        errx(1, UTIL_TTY_MSG);
    if (util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);

    if (npy_load(in, NULL, &t, msg, sizeof msg) == -1)
        errx(1, "%s: %s", in, msg);
    int ch = t.ndim == 4 ? (int)t.shape[3] : 1;
    if (t.dtype != NPY_U8 || !(t.ndim == 3 || (t.ndim == 4 && (ch == 1 || ch == 3))))
        errx(1, "%s: expected uint8 images (N,H,W,3) or (N,H,W), got %s with %d dims%s", in,
             npy_dtype_name(t.dtype), t.ndim, npy_nchw_hint(&t));
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
        outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    free(g);
    npy_free(&t);
    return 0;
}
