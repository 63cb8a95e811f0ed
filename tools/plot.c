/* plot: CSV columns -> a PNG line chart (axes, numbered ticks in a built-in 5x7 font, one line
   per --y column, a legend). For training-loss curves in the reports:
     plot train.csv --x step --y loss,val_loss -o loss.png
   Empty or non-numeric cells are gaps that the line steps over (val_loss every epoch). */
#include "io/img.h"
#include "util/opt.h"
#include "util/util.h"
#include "nn/tool.h"

#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 10

static const char usage_line[] =
    "usage: plot FILE.csv [--x COL] --y COL[,COL...] -o OUT.png [--width 640]\n"
    "            [--height 400] [--title TEXT] [--logy]\n";

static const char help[] =
    "\n"
    "Draws columns of a CSV file with a header row (vae-train's and ddpm-train's --log) as\n"
    "a PNG line chart: axes, numbered ticks, one line per --y column and a legend. Empty\n"
    "or non-numeric cells are gaps that the line steps over (val_loss once per epoch).\n"
    "\n"
    "  -x, --x COL          the x column (default: the first)\n"
    "  -y, --y COL[,COL...] the columns to draw, at most 10 (required)\n"
    "  -o, --output FILE    the PNG to write (required)\n"
    "  --width W            pixels, 160..4096 (default 640)\n"
    "  --height H           pixels, 160..4096 (default 400)\n"
    "  --title TEXT         a title above the chart (default none; -t is an old\n"
    "                       spelling)\n"
    "  --logy               a log10 y axis (values <= 0 are left out)\n"
    "  -h, --help           this text\n"
    "\n"
    "Example:\n"
    "  plot runs/vae.csv --x step --y loss,val_loss --logy -o loss.png\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

/* ---- the font: 5x7 glyphs, '#' is ink; lower case is drawn as upper case ---------------- */

static const struct glyph {
    char c;
    const char *rows; /* 7 rows of 5 */
} font[] = {
    {' ', "....." "....." "....." "....." "....." "....." "....."},
    {'0', ".###." "#...#" "#..##" "#.#.#" "##..#" "#...#" ".###."},
    {'1', "..#.." ".##.." "..#.." "..#.." "..#.." "..#.." ".###."},
    {'2', ".###." "#...#" "....#" "...#." "..#.." ".#..." "#####"},
    {'3', "#####" "...#." "..#.." "...#." "....#" "#...#" ".###."},
    {'4', "...#." "..##." ".#.#." "#..#." "#####" "...#." "...#."},
    {'5', "#####" "#...." "####." "....#" "....#" "#...#" ".###."},
    {'6', "..##." ".#..." "#...." "####." "#...#" "#...#" ".###."},
    {'7', "#####" "....#" "...#." "..#.." ".#..." ".#..." ".#..."},
    {'8', ".###." "#...#" "#...#" ".###." "#...#" "#...#" ".###."},
    {'9', ".###." "#...#" "#...#" ".####" "....#" "...#." ".##.."},
    {'A', ".###." "#...#" "#...#" "#####" "#...#" "#...#" "#...#"},
    {'B', "####." "#...#" "#...#" "####." "#...#" "#...#" "####."},
    {'C', ".###." "#...#" "#...." "#...." "#...." "#...#" ".###."},
    {'D', "###.." "#..#." "#...#" "#...#" "#...#" "#..#." "###.."},
    {'E', "#####" "#...." "#...." "####." "#...." "#...." "#####"},
    {'F', "#####" "#...." "#...." "####." "#...." "#...." "#...."},
    {'G', ".###." "#...#" "#...." "#.###" "#...#" "#...#" ".####"},
    {'H', "#...#" "#...#" "#...#" "#####" "#...#" "#...#" "#...#"},
    {'I', ".###." "..#.." "..#.." "..#.." "..#.." "..#.." ".###."},
    {'J', "..###" "...#." "...#." "...#." "...#." "#..#." ".##.."},
    {'K', "#...#" "#..#." "#.#.." "##..." "#.#.." "#..#." "#...#"},
    {'L', "#...." "#...." "#...." "#...." "#...." "#...." "#####"},
    {'M', "#...#" "##.##" "#.#.#" "#.#.#" "#...#" "#...#" "#...#"},
    {'N', "#...#" "#...#" "##..#" "#.#.#" "#..##" "#...#" "#...#"},
    {'O', ".###." "#...#" "#...#" "#...#" "#...#" "#...#" ".###."},
    {'P', "####." "#...#" "#...#" "####." "#...." "#...." "#...."},
    {'Q', ".###." "#...#" "#...#" "#...#" "#.#.#" "#..#." ".##.#"},
    {'R', "####." "#...#" "#...#" "####." "#.#.." "#..#." "#...#"},
    {'S', ".####" "#...." "#...." ".###." "....#" "....#" "####."},
    {'T', "#####" "..#.." "..#.." "..#.." "..#.." "..#.." "..#.."},
    {'U', "#...#" "#...#" "#...#" "#...#" "#...#" "#...#" ".###."},
    {'V', "#...#" "#...#" "#...#" "#...#" "#...#" ".#.#." "..#.."},
    {'W', "#...#" "#...#" "#...#" "#.#.#" "#.#.#" "#.#.#" ".#.#."},
    {'X', "#...#" "#...#" ".#.#." "..#.." ".#.#." "#...#" "#...#"},
    {'Y', "#...#" "#...#" ".#.#." "..#.." "..#.." "..#.." "..#.."},
    {'Z', "#####" "....#" "...#." "..#.." ".#..." "#...." "#####"},
    {'.', "....." "....." "....." "....." "....." ".##.." ".##.."},
    {',', "....." "....." "....." "....." ".##.." "..#.." ".#..."},
    {'-', "....." "....." "....." "#####" "....." "....." "....."},
    {'+', "....." "..#.." "..#.." "#####" "..#.." "..#.." "....."},
    {'_', "....." "....." "....." "....." "....." "....." "#####"},
    {':', "....." ".##.." ".##.." "....." ".##.." ".##.." "....."},
    {'/', "....." "....#" "...#." "..#.." ".#..." "#...." "....."},
    {'(', "...#." "..#.." ".#..." ".#..." ".#..." "..#.." "...#."},
    {')', ".#..." "..#.." "...#." "...#." "...#." "..#.." ".#..."},
    {'%', "##..." "##..#" "...#." "..#.." ".#..." "#..##" "...##"},
    {'=', "....." "....." "#####" "....." "#####" "....." "....."},
    {'?', ".###." "#...#" "....#" "...#." "..#.." "....." "..#.."},
    {'@', ".###." "#...#" "....#" ".##.#" "#.#.#" "#.#.#" ".###."},
    {'#', ".#.#." ".#.#." "#####" ".#.#." "#####" ".#.#." ".#.#."},
    {'<', "...#." "..#.." ".#..." "#...." ".#..." "..#.." "...#."},
    {'>', ".#..." "..#.." "...#." "....#" "...#." "..#.." ".#..."},
    {'[', ".###." ".#..." ".#..." ".#..." ".#..." ".#..." ".###."},
    {']', ".###." "...#." "...#." "...#." "...#." "...#." ".###."},
    {'*', "....." "..#.." "#.#.#" ".###." "#.#.#" "..#.." "....."},
    {'\'', "..#.." "..#.." ".#..." "....." "....." "....." "....."},
};

struct canvas {
    int w, h;
    uint8_t *rgb;
};

static void put(struct canvas *c, int x, int y, const uint8_t *col)
{
    if (x >= 0 && y >= 0 && x < c->w && y < c->h)
        memcpy(c->rgb + ((size_t)y * c->w + x) * 3, col, 3);
}

static void fill(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t *col)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, col);
}

static const char *glyph_rows(char ch)
{
    char u = ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch;
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == u)
            return font[i].rows;
    return glyph_rows('?');
}

/* each glyph cell is 6x8 pixels (1 pixel of spacing) times scale */
static int text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale - scale; }

static void text(struct canvas *c, int x, int y, const char *s, int scale, const uint8_t *col)
{
    for (; *s; s++, x += 6 * scale) {
        const char *r = glyph_rows(*s);
        for (int i = 0; i < 35 && r[i]; i++)
            if (r[i] == '#')
                fill(c, x + (i % 5) * scale, y + (i / 5) * scale, x + (i % 5 + 1) * scale - 1,
                     y + (i / 5 + 1) * scale - 1, col);
    }
}

/* Bresenham, 2 pixels thick */
static void line(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t *col)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        fill(c, x0, y0, x0 + 1, y0 + 1, col);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

/* ---- the data -------------------------------------------------------------------------- */

struct table {
    int n_cols, n_rows;
    char **names;
    double *v; /* n_rows * n_cols, NAN for empty or non-numeric cells */
};

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t' || *s == '"')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '"' || e[-1] == '\r' ||
                     e[-1] == '\n'))
        *--e = '\0';
    return s;
}

static void read_csv(const char *path, struct table *t)
{
    unsigned char *buf;
    size_t len;
    char msg[TOOL_MSG], *line, *next;
    int cap = 0;
    memset(t, 0, sizeof *t);
    if (util_read_file(path, &buf, &len, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    for (line = (char *)buf; line != NULL; line = next) {
        char *f, *save;
        int k = 0;
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        if (*trim(line) == '\0' || line[0] == '#')
            continue;
        if (t->names == NULL) {
            for (f = strtok_r(line, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
                t->names = xrealloc(t->names, (t->n_cols + 1) * sizeof *t->names);
                t->names[t->n_cols++] = xstrdup(trim(f));
            }
            continue;
        }
        if (t->n_rows == cap) {
            cap = cap ? 2 * cap : 256;
            t->v = xrealloc(t->v, (size_t)cap * t->n_cols * sizeof *t->v);
        }
        double *row = t->v + (size_t)t->n_rows++ * t->n_cols;
        for (int i = 0; i < t->n_cols; i++)
            row[i] = NAN;
        /* strsep keeps empty fields in their column */
        for (char *p = line; (f = strsep(&p, ",")) != NULL && k < t->n_cols; k++) {
            char *e, *s = trim(f);
            double d = strtod(s, &e);
            if (*s != '\0' && *e == '\0' && isfinite(d))
                row[k] = d;
        }
    }
    free(buf);
    if (t->names == NULL)
        errx(1, "%s: empty CSV file (want a header line)", path);
}

static int column(const struct table *t, const char *name, const char *path)
{
    for (int i = 0; i < t->n_cols; i++)
        if (strcmp(t->names[i], name) == 0)
            return i;
    errx(1, "%s: no column '%s'", path, name);
}

/* tick step: 1, 2 or 5 times a power of ten, about n ticks over range */
static double nice_step(double range, int n)
{
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void label(char *buf, size_t n, double v, double step, int logy)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (logy)
        snprintf(buf, n, "%g", pow(10, v));
    else if (fabs(v) >= 1e6 || (v != 0 && fabs(v) < 1e-4) || dec > 6)
        snprintf(buf, n, "%.2g", v);
    else
        snprintf(buf, n, "%.*f", dec, fabs(v) < step * 1e-6 ? 0.0 : v);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"x", required_argument, NULL, 'x'}, {"y", required_argument, NULL, 'y'},
        {"width", required_argument, NULL, 'W'}, {"height", required_argument, NULL, 'H'},
        {"title", required_argument, NULL, 't'}, {"logy", no_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0},
                         grid[3] = {225, 225, 225}, pal[MAX_SERIES][3] = {
                             {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                             {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                             {188, 189, 34}, {23, 190, 207}};
    const char *xname = NULL, *out = NULL, *title = NULL, *path;
    char *ycols = NULL, *ynames[MAX_SERIES], msg[TOOL_MSG], buf[64];
    int c, logy = 0, ny = 0, xc, yc[MAX_SERIES];
    long W = 640, H = 400;
    struct table t;
    struct canvas cv;
    struct outfile of;
    struct opt op;

    /* -t (the title) is an old spelling: -t means --threads in the other tools */
    opt_init(&op, "x:y:o:t:h", longs);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 'x': xname = optarg; break;
        case 'y': ycols = optarg; break;
        case 'o': out = optarg; break;
        case 't': title = optarg; break;
        case 'l': logy = 1; break;
        case 'W':
        case 'H':
            if (opt_long(&op, 160, 4096, c == 'W' ? &W : &H) == -1)
                usage(2, op.msg);
            break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (optind == argc)
        usage(2, "FILE.csv is required");
    if (optind < argc - 1) {
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind + 1]);
        usage(2, msg);
    }
    if (ycols == NULL)
        usage(2, "--y COL is required");
    if (out == NULL)
        usage(2, "-o OUT.png is required");
    path = argv[optind];
    for (char *s, *save = NULL, *p = ycols; (s = strtok_r(p, ",", &save)) != NULL; p = NULL) {
        if (ny == MAX_SERIES) {
            snprintf(msg, sizeof msg, "--y: at most %d columns", MAX_SERIES);
            usage(2, msg);
        }
        ynames[ny++] = s;
    }
    if (ny == 0)
        usage(2, "--y: no column named");
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    read_csv(path, &t);
    xc = xname ? column(&t, xname, path) : 0;
    for (int i = 0; i < ny; i++)
        yc[i] = column(&t, ynames[i], path);

    /* data ranges over rows where x and y are both numbers (and y > 0 on a log axis) */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int n_pts = 0;
    for (int r = 0; r < t.n_rows; r++)
        for (int i = 0; i < ny; i++) {
            double x = t.v[(size_t)r * t.n_cols + xc], y = t.v[(size_t)r * t.n_cols + yc[i]];
            if (isnan(x) || isnan(y) || (logy && y <= 0))
                continue;
            if (logy)
                y = log10(y);
            x0 = fmin(x0, x);
            x1 = fmax(x1, x);
            y0 = fmin(y0, y);
            y1 = fmax(y1, y);
            n_pts++;
        }
    if (n_pts == 0)
        errx(1, "%s: no numeric rows in the columns to plot", path);
    if (x1 == x0) {
        x0 -= 1;
        x1 += 1;
    }
    if (y1 == y0) {
        y0 -= fabs(y0) > 0 ? fabs(y0) * 0.1 : 1;
        y1 += fabs(y1) > 0 ? fabs(y1) * 0.1 : 1;
    }
    double ys = nice_step(y1 - y0, 5), xs = nice_step(x1 - x0, 6);
    if (logy && ys < 1)
        ys = 1;
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;

    /* plot area: room for tick labels left and below, the title above */
    int yl = 0;
    for (double v = y0; v <= y1 + ys * 1e-6; v += ys) {
        label(buf, sizeof buf, v, ys, logy);
        yl = yl > text_width(buf, 1) ? yl : text_width(buf, 1);
    }
    int L = yl + 14, R = (int)W - 16, T = title ? 34 : 16, B = (int)H - 34;
    cv.w = (int)W;
    cv.h = (int)H;
    cv.rgb = xmalloc((size_t)W * H * 3);
    memset(cv.rgb, 255, (size_t)W * H * 3);
#define PX(x) (L + (int)lround(((x) - x0) / (x1 - x0) * (R - L)))
#define PY(y) (B - (int)lround(((y) - y0) / (y1 - y0) * (B - T)))
    for (double v = y0; v <= y1 + ys * 1e-6; v += ys) {
        int py = PY(v);
        fill(&cv, L, py, R, py, grid);
        fill(&cv, L - 4, py, L - 1, py, black);
        label(buf, sizeof buf, v, ys, logy);
        text(&cv, L - 7 - text_width(buf, 1), py - 3, buf, 1, black);
    }
    for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-6; v += xs) {
        int px = PX(v);
        fill(&cv, px, T, px, B, grid);
        fill(&cv, px, B + 1, px, B + 4, black);
        label(buf, sizeof buf, v, xs, 0);
        text(&cv, px - text_width(buf, 1) / 2, B + 8, buf, 1, black);
    }
    fill(&cv, L, T, L, B, black);
    fill(&cv, L, B, R, B, black);
    fill(&cv, L, T, R, T, black);
    fill(&cv, R, T, R, B, black);
    const char *xl = t.names[xc];
    text(&cv, (L + R) / 2 - text_width(xl, 1) / 2, B + 20, xl, 1, black);
    if (title != NULL) {
        int s = text_width(title, 2) <= R - L ? 2 : 1;
        text(&cv, (L + R) / 2 - text_width(title, s) / 2, 16 - 4 * s + 2, title, s, black);
    }
    for (int i = 0; i < ny; i++) {
        int have = 0, px = 0, py = 0, count = 0;
        for (int r = 0; r < t.n_rows; r++) {
            double x = t.v[(size_t)r * t.n_cols + xc], y = t.v[(size_t)r * t.n_cols + yc[i]];
            count += !isnan(x) && !isnan(y);
        }
        for (int r = 0; r < t.n_rows; r++) {
            double x = t.v[(size_t)r * t.n_cols + xc], y = t.v[(size_t)r * t.n_cols + yc[i]];
            if (isnan(x) || isnan(y) || (logy && y <= 0))
                continue;
            int qx = PX(x), qy = PY(logy ? log10(y) : y);
            if (have)
                line(&cv, px, py, qx, qy, pal[i]);
            if (count <= 60) /* few points: mark them */
                fill(&cv, qx - 2, qy - 2, qx + 3, qy + 3, pal[i]);
            px = qx;
            py = qy;
            have = 1;
        }
    }
    /* legend, top right inside the plot */
    int lw = 0;
    for (int i = 0; i < ny; i++)
        lw = lw > text_width(ynames[i], 1) ? lw : text_width(ynames[i], 1);
    int lx = R - lw - 34, ly = T + 6;
    fill(&cv, lx - 4, ly - 4, R - 6, ly + 12 * ny, white);
    for (int i = 0; i < ny; i++) {
        fill(&cv, lx, ly + 12 * i + 3, lx + 16, ly + 12 * i + 4, pal[i]);
        text(&cv, lx + 22, ly + 12 * i, ynames[i], 1, black);
    }
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (img_png_write(of.f, cv.rgb, cv.w, cv.h, 3, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    free(cv.rgb);
    for (int i = 0; i < t.n_cols; i++)
        free(t.names[i]);
    free(t.names);
    free(t.v);
    if (fclose(stdout) == EOF)
        err(1, "stdout");
    return 0;
}
