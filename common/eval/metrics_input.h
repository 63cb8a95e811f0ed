/* The inputs of the metric tools (fid, kid, is-score, score), implemented in
   metrics_input.c: what a path names (image arrays, image folders, a zip of them, feature
   caches, statistics .npz) and the batch loop that turns images into Inception features.
   The metrics themselves are in metrics.h.

   Errors: functions return -1 and fill msg with one line. Nothing here prints. */
#ifndef METRICS_INPUT_H
#define METRICS_INPUT_H
#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"
#include "models/inception.h"

/* A path is one of: a folder of images (pytorch-fid's extensions, case-sensitive, sorted, not
   recursive); a uint8 image array (N,H,W,3) .npy/.npz (arr_0 or only member) or "-" (stdin);
   a float32/float64 feature array (N,D) .npy (a feature cache); a statistics .npz holding
   mu and sigma. */
enum metrics_kind { METRICS_IMAGES, METRICS_FOLDER, METRICS_FEATURES, METRICS_STATS };

struct metrics_input {
    enum metrics_kind kind;
    int64_t n;           /* images or feature rows (0 for stats) */
    int d;               /* feature width (features, stats) */
    struct npy arr;      /* METRICS_IMAGES (u8) / METRICS_FEATURES (converted to f32) */
    char **files;        /* METRICS_FOLDER: n paths */
    double *mu, *sigma;  /* METRICS_STATS */
    int64_t row0;        /* the index in the whole input of arr's first row: 0, but for
                            metrics_input_open_rows, whose arr holds some rows only */
};

int metrics_input_open(struct metrics_input *in, const char *path, char *msg, size_t msglen);
/* Picks the rows [*lo, *hi) of in (kind, n and d set, no data yet) to read */
typedef void (*metrics_input_range)(const void *ctx, const struct metrics_input *in,
                                    int64_t *lo, int64_t *hi);
/* metrics_input_open, but of a .npy file's images or features only the rows range picks
   are read (npy_rows: memory and reading in proportion to them, as an MPI rank's share);
   in->n stays the whole count, and only those rows may be used. Other inputs (folders,
   .npz, stdin, files that npy_rows refuses) open whole, as metrics_input_open, with its
   messages. */
int metrics_input_open_rows(struct metrics_input *in, const char *path,
                            metrics_input_range range, const void *ctx, char *msg,
                            size_t msglen);
/* For --skip-bad: decodes every file of a folder input once and drops those that fail;
   each dropped one becomes a malloc'd "path: problem" in (*bad, *n_bad) (strv_add). Other
   inputs are left alone. -1 (msg) when no file of the folder decodes. */
int metrics_input_drop_bad(struct metrics_input *in, char ***bad, int *n_bad, char *msg,
                           size_t msglen);
void metrics_input_free(struct metrics_input *in);
/* image i (H,W,3) of an METRICS_IMAGES input, i its index in the whole input */
const uint8_t *metrics_input_image(const struct metrics_input *in, int64_t i);
const char *metrics_kind_name(enum metrics_kind k);

/* Called with every batch of features, in input order: f (n, dims) and, when asked for,
   s (n, INCEPTION_SPATIAL_DIMS): sFID's features of the same images, else NULL. Returns 0 to
   go on. */
typedef int (*metrics_sink)(void *ctx, const float *f, const float *s, int n);

/* Runs the images (or feature rows) of in through net in batches of `batch` and hands the
   features of width dims (64, 192, 768, 2048 = pool3, or INCEPTION_SPATIAL_DIMS = sFID's) to
   sink; with spatial, sFID's features of the same pass too (images and folders only: a
   feature cache holds one kind). Image folders are decoded per batch, so memory is flat in
   N. For features input net may be NULL and dims must equal the rows' width. Stats inputs
   are an error. msg names the failing file of a folder. */
int metrics_input_features(struct metrics_input *in, const struct inception *net, int batch,
                           enum inception_resize mode, int dims, int spatial, metrics_sink sink,
                           void *ctx, char *msg, size_t msglen);
/* The same for the images (or rows) [lo, hi) of in only, 0 <= lo <= hi <= in->n: each
   image keeps its slot by its index in the whole input, so the features are bit for bit
   that slice of the whole input's (shards, MPI ranks) */
int metrics_input_features_range(struct metrics_input *in, int64_t lo, int64_t hi,
                                 const struct inception *net, int batch,
                                 enum inception_resize mode, int dims, int spatial,
                                 metrics_sink sink, void *ctx, char *msg, size_t msglen);
#endif
