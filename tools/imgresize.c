/* imgresize: images (a directory, image files, a list file, or the Flowers102 / Oxford-IIIT Pet
   layouts) to a uint8 (N,H,W,3) .npy, resized exactly as torchvision Resize((H,W)) on PIL
   images (PIL resize BILINEAR, antialiased), with int64 (N,) labels when the input has them.
   Images are decoded and resized in parallel (OpenMP); the output order is the input order. */
#include "io/img.h"
#include "io/mat.h"
#include "io/npy.h"
#include "util/opt.h"
#include "util/util.h"
#include "nn/tool.h"

#include <dirent.h>
#include <err.h>
#include <getopt.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage_line[] =
    "usage: imgresize [-s SIZE] [-m squash|center-crop] [-o OUT.npy] [--labels-out L.npy]\n"
    "                 [--skip-bad] [-t THREADS] [-v]\n"
    "                 (DIR|IMAGE|- ... | -l LIST | -r DIR | --flowers102 DIR | --pets DIR)\n"
    "                 [--split S]\n";

static const char help[] =
    "\n"
    "Decodes images (BMP, JPEG, PGM/PPM, PNG, TIFF, WebP, told apart by their content) to\n"
    "RGB like PIL's Image.open(p).convert('RGB') and resizes them like torchvision's\n"
    "Resize((H,W)), i.e. PIL's BILINEAR resize with antialiasing; writes uint8 (N,H,W,3)\n"
    ".npy, and with --labels-out int64 (N,) labels for inputs that have them.\n"
    "\n"
    "  DIR                 every file in DIR (not recursive, no dotfiles), by name\n"
    "  IMAGE, -            one image file; - reads it from stdin\n"
    "  -l, --list LIST     one path a line, optionally followed by whitespace and an\n"
    "                      integer label; relative paths are relative to LIST's folder;\n"
    "                      blank lines and lines starting with # are skipped\n"
    "  -r, --image-folder DIR\n"
    "                      a torchvision ImageFolder: DIR/CLASS/.../IMAGE, the classes\n"
    "                      sorted by name, label = the class's index; the image files\n"
    "                      (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp, any case)\n"
    "                      of each class folder and its subfolders in torchvision's\n"
    "                      order\n"
    "  --flowers102 DIR    DIR/jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat;\n"
    "                      --split trn (default, the official 1020) | val | tst | all\n"
    "  --pets DIR          DIR/images/NAME.jpg, DIR/annotations/trainval.txt;\n"
    "                      --split trainval (default) | test | all (list.txt)\n"
    "                      Data-set labels are 0-based (label - 1), as torchvision's.\n"
    "  -s, --size SIZE     output size, N or WxH (default 32)\n"
    "  -m, --mode MODE     squash (default): resize the whole image to WxH;\n"
    "                      center-crop: crop the largest centred box of aspect W:H,\n"
    "                      then resize\n"
    "  -o, --output FILE   output .npy (default -: stdout)\n"
    "  --labels-out FILE   int64 (N,) labels (-l with labels, -r, --flowers102, --pets)\n"
    "  --skip-bad          skip files that cannot be decoded (each named on stderr)\n"
    "                      instead of failing\n"
    "  -t, --threads N     threads (default: $OMP_NUM_THREADS, else 2)\n"
    "  -v, --verbose       progress on stderr\n"
    "  -h, --help          this text\n"
    "\n"
    "Example:\n"
    "  imgresize -s 32 -r photos/train --labels-out train-labels.npy -o train.npy\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

struct item {
    char *path;
    long label;
};

struct items {
    struct item *v;
    int n, cap;
    int n_labeled;
};

static void items_add(struct items *it, char *path, int has_label, long label)
{
    if (it->n == it->cap) {
        it->cap = it->cap ? it->cap * 2 : 256;
        it->v = xrealloc(it->v, (size_t)it->cap * sizeof *it->v);
    }
    it->v[it->n].path = path;
    it->v[it->n].label = label;
    it->n++;
    it->n_labeled += has_label;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_dir(struct items *it, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    int n = 0, cap = 0, n_sub = 0;
    if (d == NULL)
        err(1, "%s", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = join(dir, e->d_name);
        if (util_is_dir(p)) {
            n_sub++;
            free(p);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = xrealloc(names, (size_t)cap * sizeof *names);
        }
        names[n++] = p;
    }
    closedir(d);
    if (n == 0 && n_sub > 0)
        errx(1, "%s: no files, only %d subfolder%s: for a torchvision ImageFolder (a folder "
             "per class) use -r %s", dir, n_sub, n_sub > 1 ? "s" : "", dir);
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++)
        items_add(it, names[i], 0, 0);
    free(names);
}

/* The entries of dir (all of them, '.' and '..' aside), sorted; *n_out of them. */
static char **list_sorted(const char *dir, int *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    int n = 0;
    if (d == NULL)
        err(1, "%s", dir);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            strv_add(&v, &n, e->d_name);
    closedir(d);
    if (n > 0)
        qsort(v, n, sizeof *v, cmp_str);
    *n_out = n;
    return v;
}

/* torchvision's IMG_EXTENSIONS, compared as has_file_allowed_extension does (lower case) */
static int image_folder_ext(const char *name)
{
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm",
                                      ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t k = strlen(ext[i]);
        if (n >= k && strcasecmp(name + n - k, ext[i]) == 0)
            return 1;
    }
    return 0;
}

/* every folder under root (root included, symbolic links followed as os.walk(followlinks=
   True) does), appended to *dirs */
static void walk_dirs(const char *root, char ***dirs, int *n, int depth)
{
    char **names;
    int k;
    if (depth > 64)
        errx(1, "%s: folders nested too deep (a symbolic link loop?)", root);
    strv_add(dirs, n, root);
    names = list_sorted(root, &k);
    for (int i = 0; i < k; i++) {
        char *p = join(root, names[i]);
        if (util_is_dir(p))
            walk_dirs(p, dirs, n, depth + 1);
        free(p);
    }
    strv_free(names, k);
}

/* torchvision.datasets.ImageFolder(dir): classes are the subfolders of dir in sorted order
   (hidden ones too, as os.scandir lists them), label = class index; each class's samples
   are, for every folder under it in sorted(os.walk()) order (sorted by path), its image
   files in sorted order. As torchvision, a class without images is an error. */
static void add_image_folder(struct items *it, const char *dir, int verbose)
{
    char **names;
    int k, n_cls = 0;
    names = list_sorted(dir, &k);
    for (int i = 0; i < k; i++) {
        char *cls = join(dir, names[i]), **dirs = NULL;
        int nd = 0, n0 = it->n;
        if (!util_is_dir(cls)) {
            free(cls);
            continue;
        }
        walk_dirs(cls, &dirs, &nd, 0);
        qsort(dirs, nd, sizeof *dirs, cmp_str);
        for (int j = 0; j < nd; j++) {
            char **files;
            int nf;
            files = list_sorted(dirs[j], &nf);
            for (int f = 0; f < nf; f++) {
                char *p = join(dirs[j], files[f]);
                if (image_folder_ext(files[f]) && !util_is_dir(p))
                    items_add(it, p, 1, n_cls);
                else
                    free(p);
            }
            strv_free(files, nf);
        }
        if (it->n == n0)
            errx(1, "%s: class %d has no image files (.jpg .jpeg .png .ppm .bmp .pgm .tif "
                 ".tiff .webp)", cls, n_cls);
        if (verbose)
            fprintf(stderr, "imgresize: class %d: %s (%d images)\n", n_cls, names[i],
                    it->n - n0);
        strv_free(dirs, nd);
        free(cls);
        n_cls++;
    }
    strv_free(names, k);
    if (n_cls == 0)
        errx(1, "%s: no class folders (-r reads DIR/CLASS/IMAGE)", dir);
}

/* One path a line, optional integer label after the last whitespace. */
static void add_list(struct items *it, const char *list)
{
    unsigned char *buf;
    size_t len;
    char msg[TOOL_MSG], *dir, *line, *save = NULL;
    int lineno = 0, n0 = it->n, l0 = it->n_labeled;
    if (util_read_file(list, &buf, &len, msg, sizeof msg) == -1)
        errx(1, "%s: %s", list, msg);
    if (strlen((char *)buf) != len)
        errx(1, "%s: not a text file", list);
    dir = xstrdup(list);
    char *slash = strrchr(dir, '/');
    if (strcmp(list, "-") == 0 || slash == NULL)
        strcpy(dir, ".");
    else
        *slash = '\0';
    for (char *s = (char *)buf;; s = NULL) {
        char *end, *sp;
        long label = 0;
        int has = 0;
        line = strtok_r(s, "\n", &save);
        if (line == NULL)
            break;
        lineno++;
        end = line + strlen(line);
        while (end > line && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == '\0' || *line == '#')
            continue;
        sp = strrchr(line, ' ');
        char *tab = strrchr(line, '\t');
        sp = tab > sp ? tab : sp;
        if (sp != NULL && util_parse_long(sp + 1, -(1L << 62), 1L << 62, &label) == 0) {
            has = 1;
            while (sp > line && (sp[-1] == ' ' || sp[-1] == '\t'))
                sp--;
            *sp = '\0';
        }
        items_add(it, line[0] == '/' ? xstrdup(line) : join(dir, line), has, label);
    }
    if (it->n_labeled - l0 != 0 && it->n_labeled - l0 != it->n - n0)
        errx(1, "%s: some lines have a label and some do not", list);
    free(dir);
    free(buf);
}

static const struct mat_var *mat_need(const struct mat_file *m, const char *path,
                                      const char *name)
{
    const struct mat_var *v = mat_find(m, name);
    if (v == NULL)
        errx(1, "%s: no variable '%s'", path, name);
    return v;
}

/* Flowers102: ids from setid.mat (file order, as torchvision), labels imagelabels.mat - 1. */
static void add_flowers(struct items *it, const char *dir, const char *split)
{
    struct mat_file lm, sm;
    char msg[TOOL_MSG], *lp = join(dir, "imagelabels.mat"), *sp = join(dir, "setid.mat");
    const struct mat_var *labels, *ids = NULL;
    const char *var = strcmp(split, "trn") == 0   ? "trnid"
                      : strcmp(split, "val") == 0 ? "valid"
                      : strcmp(split, "tst") == 0 ? "tstid"
                                                  : NULL;
    if (var == NULL && strcmp(split, "all") != 0) {
        snprintf(msg, sizeof msg, "--split: bad value: %s (want trn, val, tst or all for "
                 "--flowers102)", split);
        usage(2, msg);
    }
    if (mat_read(lp, &lm, msg, sizeof msg) == -1)
        errx(1, "%s: %s", lp, msg);
    labels = mat_need(&lm, lp, "labels");
    if (var != NULL) {
        if (mat_read(sp, &sm, msg, sizeof msg) == -1)
            errx(1, "%s: %s", sp, msg);
        ids = mat_need(&sm, sp, var);
    }
    int64_t n = ids ? ids->numel : labels->numel;
    for (int64_t i = 0; i < n; i++) {
        double id = ids ? ids->data[i] : (double)(i + 1);
        char name[64];
        if (!(id >= 1 && id <= labels->numel && id == (long)id))
            errx(1, "%s: %s[%jd] = %g is not an image number 1..%jd", sp, var, (intmax_t)i, id,
                 (intmax_t)labels->numel);
        double l = labels->data[(long)id - 1];
        if (!(l >= 1 && l <= 1e6 && l == (long)l))
            errx(1, "%s: labels[%ld] = %g is not a class 1..", lp, (long)id - 1, l);
        snprintf(name, sizeof name, "jpg/image_%05ld.jpg", (long)id);
        items_add(it, join(dir, name), 1, (long)l - 1);
    }
    mat_free(&lm);
    if (ids)
        mat_free(&sm);
    free(lp);
    free(sp);
}

/* Oxford-IIIT Pet: 'IMAGE CLASS_ID SPECIES BREED_ID' lines, '#' comments; label CLASS_ID - 1. */
static void add_pets(struct items *it, const char *dir, const char *split)
{
    const char *file = strcmp(split, "trainval") == 0 ? "annotations/trainval.txt"
                       : strcmp(split, "test") == 0   ? "annotations/test.txt"
                       : strcmp(split, "all") == 0    ? "annotations/list.txt"
                                                      : NULL;
    unsigned char *buf;
    size_t len;
    char msg[TOOL_MSG], *save = NULL, *path;
    int lineno = 0;
    if (file == NULL) {
        snprintf(msg, sizeof msg, "--split: bad value: %s (want trainval, test or all for --pets)",
                 split);
        usage(2, msg);
    }
    path = join(dir, file);
    if (util_read_file(path, &buf, &len, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    for (char *s = (char *)buf;; s = NULL) {
        char *line = strtok_r(s, "\n", &save), *f[4], *save2 = NULL, name[1024];
        int k = 0;
        long cls;
        if (line == NULL)
            break;
        lineno++;
        if (line[0] == '#')
            continue;
        for (char *t = line; k < 4 && (f[k] = strtok_r(t, " \t\r", &save2)) != NULL; t = NULL)
            k++;
        if (k == 0)
            continue;
        if (k < 4 || util_parse_long(f[1], 1, 1000000, &cls) == -1)
            errx(1, "%s: line %d: want 'IMAGE CLASS_ID SPECIES BREED_ID'", path, lineno);
        if (snprintf(name, sizeof name, "images/%s.jpg", f[0]) >= (int)sizeof name)
            errx(1, "%s: line %d: name too long", path, lineno);
        items_add(it, join(dir, name), 1, cls - 1);
    }
    free(buf);
    free(path);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"size", required_argument, NULL, 's'},     {"mode", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},   {"labels-out", required_argument, NULL, 'L'},
        {"list", required_argument, NULL, 'l'},     {"flowers102", required_argument, NULL, 'F'},
        {"pets", required_argument, NULL, 'P'},     {"split", required_argument, NULL, 'S'},
        {"skip-bad", no_argument, NULL, 'k'},       {"threads", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {"image-folder", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    static const char *const modes[] = {"squash", "center-crop"};
    const char *out_path = "-", *labels_path = NULL, *list = NULL, *flowers = NULL,
               *pets = NULL, *split = NULL, *folder = NULL;
    int ow = 32, oh = 32, crop = 0, skip_bad = 0, verbose = 0, c, n_stdin = 0;
    long threads = util_threads_default();
    struct items it = {0};
    char msg[TOOL_MSG];
    struct opt op;

    opt_init(&op, "s:m:o:l:r:t:vh", opts);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 's':
            if (util_parse_size(optarg, &ow, &oh) == -1 || ow > 4096 || oh > 4096) {
                opt_bad(&op, "want N or WxH, 1..4096");
                usage(2, op.msg);
            }
            break;
        case 'm':
            if (opt_choice(&op, modes, 2, &crop) == -1)
                usage(2, op.msg);
            break;
        case 'o': out_path = optarg; break;
        case 'L': labels_path = optarg; break;
        case 'l': list = optarg; break;
        case 'r': folder = optarg; break;
        case 'F': flowers = optarg; break;
        case 'P': pets = optarg; break;
        case 'S': split = optarg; break;
        case 'k': skip_bad = 1; break;
        case 't':
            if (opt_long(&op, 1, 1024, &threads) == -1)
                usage(2, op.msg);
            break;
        case 'v': verbose = 1; break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    argc -= optind;
    argv += optind;
    if ((flowers != NULL) + (pets != NULL) + (folder != NULL) > 1 ||
        ((flowers || pets || folder) && (argc > 0 || list)))
        usage(2, "-r, --flowers102 and --pets go alone");
    if (split != NULL && !flowers && !pets)
        usage(2, "--split needs --flowers102 or --pets");
    if (argc == 0 && !list && !flowers && !pets && !folder)
        usage(2, "no input: give DIR, IMAGE, -, -l LIST, -r DIR, --flowers102 or --pets");
    for (int i = 0; i < argc; i++)
        n_stdin += strcmp(argv[i], "-") == 0;
    if (n_stdin + (list && strcmp(list, "-") == 0) > 1)
        usage(2, "stdin can be read only once");
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (util_binary_to_tty(out_path))
        errx(1, UTIL_TTY_MSG);
    if (util_check_output(out_path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out_path, msg);
    if (labels_path && util_check_output(labels_path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", labels_path, msg);

    if (flowers)
        add_flowers(&it, flowers, split ? split : "trn");
    if (pets)
        add_pets(&it, pets, split ? split : "trainval");
    if (folder)
        add_image_folder(&it, folder, verbose);
    for (int i = 0; i < argc; i++) {
        if (util_is_dir(argv[i]))
            add_dir(&it, argv[i]);
        else
            items_add(&it, xstrdup(argv[i]), 0, 0);
    }
    if (list)
        add_list(&it, list);
    if (it.n == 0)
        errx(1, "%s: no images", list ? list : argc ? argv[0] : flowers ? flowers : pets);
    if (labels_path && it.n_labeled != it.n)
        errx(1, "--labels-out: %s", it.n_labeled ? "some inputs have no label"
                                                  : "the inputs have no labels");

    /* decode + resize in parallel; the first failure (in input order) stops the rest early */
    size_t per = (size_t)ow * oh * 3;
    uint8_t *pix = xmalloc((size_t)it.n * per);
    char **errs = xcalloc(it.n, sizeof *errs);
    int stop = 0;
    long done = 0;
    struct progress pr;
    progress_init(&pr, "imgresize", "images", it.n);
    omp_set_num_threads((int)threads);
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < it.n; i++) {
        struct img im;
        char m[128];
        int s;
#pragma omp atomic read
        s = stop;
        if (s)
            continue;
        if (img_load(it.v[i].path, &im, m, sizeof m) == -1) {
            errs[i] = xstrdup(m);
            if (!skip_bad) {
#pragma omp atomic write
                stop = 1;
            }
            continue;
        }
        if (crop)
            img_resize_center_crop(pix + i * per, ow, oh, im.rgb, im.w, im.h);
        else
            img_resize_bilinear(pix + i * per, ow, oh, im.rgb, im.w, im.h);
        img_free(&im);
        if (verbose) {
#pragma omp critical
            progress_update(&pr, ++done, NULL);
        }
    }
    int kept = 0;
    for (int i = 0; i < it.n; i++) {
        if (errs[i] != NULL) {
            if (!skip_bad)
                errx(1, "%s: %s", it.v[i].path, errs[i]);
            warnx("%s: %s (skipped)", it.v[i].path, errs[i]);
            continue;
        }
        if (kept != i) {
            memcpy(pix + kept * per, pix + i * per, per);
            it.v[kept].label = it.v[i].label;
        }
        kept++;
    }
    if (verbose)
        progress_done(&pr);
    if (kept < it.n)
        warnx("skipped %d of %d images", it.n - kept, it.n);
    if (kept == 0)
        errx(1, "no image could be read");

    /* both outputs through temporary files, committed together at the end */
    struct outfile of, lf = {0};
    struct npy t = {.dtype = NPY_U8, .ndim = 4, .shape = {kept, oh, ow, 3}, .data = pix};
    if (outfile_open(&of, out_path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out_path, msg);
    /* on an error, the temporary outputs go at exit (nn/tool.h) */
    if (labels_path && outfile_open(&lf, labels_path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", labels_path, msg);
    if (labels_path) {
        struct npy l = {.dtype = NPY_I64, .ndim = 1, .shape = {kept}};
        int64_t *lab = xmalloc((size_t)kept * sizeof *lab);
        for (int i = 0; i < kept; i++)
            lab[i] = it.v[i].label;
        l.data = lab;
        if (npy_write(lf.f, &l, msg, sizeof msg) == -1)
            errx(1, "%s: %s", labels_path, msg);
        free(lab);
    }
    if (npy_write(of.f, &t, msg, sizeof msg) == -1 || outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out_path, msg);
    if (labels_path && outfile_commit(&lf, msg, sizeof msg) == -1)
        errx(1, "%s: %s", labels_path, msg);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    for (int i = 0; i < it.n; i++) {
        free(it.v[i].path);
        free(errs[i]);
    }
    free(it.v);
    free(errs);
    free(pix);
    return 0;
}
