/* FD-DINOv2 as dgm-eval computes it: the DINOv2 features (models/dinov2.h: dgm-eval's
   preprocessing, the cls token after the final norm) of every image of an input, gathered
   into Frechet statistics (mean and covariance in float64, as metrics_stats does for FID);
   the distance is metrics_frechet's, the FID formula. The features can be saved as a float32
   (N, dim) .npy and read back as a feature cache: the statistics of a cache are those of the
   images it was made from, bit for bit. */
#ifndef METRICS_DINOV2_H
#define METRICS_DINOV2_H
#include <stddef.h>

#include "eval/metrics.h"
#include "eval/metrics_input.h"
#include "models/dinov2.h"

/* ViT-L/14's cls-token width, the features FD-DINOv2 is defined on. No Inception layer
   gives it (pool3 2048, fid --dims 64, 192, 768, sFID's 2023), which is what lets a bare
   (N, D) feature cache say whose features it holds. */
#define METRICS_DINOV2_DIM 1024

/* st (initialised with net's dim) gets the features of the images [lo, hi) of in (an image
   array or a folder, each file decoded and preprocessed alone; lo, hi from
   metrics_cli_range); other inputs are an error ("a feature cache has no DINOv2
   features"). -1 with msg naming the failing file of a folder.
   Collective under mpirun (util/par.h), every rank with its own range of the same input, as
   the Inception pass splits it: a rank > 0 sends its features to rank 0, whose st gets
   every rank's in rank order, i.e. index order: the statistics of one process. */
int metrics_dinov2_stats(struct metrics_stats *st, struct metrics_input *in, int64_t lo,
                         int64_t hi, const struct dinov2 *net, char *msg, size_t msglen);

/* The same pass, written instead as a float32 (n_rows, dim) .npy to out (atomically; - is
   stdout): n_rows is the rows of the whole pass (every rank's [lo, hi) together, i.e.
   metrics_cli_rows). Rank 0 writes every rank's rows in index order, so the bytes do not
   depend on the number of processes, and npycat of --shard runs is the file of one run.
   On -1 msg is complete ("out: problem" or "file: problem") and no file is left. */
int metrics_dinov2_save(const char *out, struct metrics_input *in, int64_t lo, int64_t hi,
                        int64_t n_rows, const struct dinov2 *net, char *msg, size_t msglen);

/* A DINOv2 feature cache (in: METRICS_FEATURES) fit for FD-DINOv2 against features of
   width dim: -1 with msg (no path) when its width is not dim, it has fewer than 2 rows
   (no covariance) or a row holds a NaN or an infinity. Checks the rows this process holds
   (under mpirun rank 0 holds them all). */
int metrics_dinov2_check_cache(const struct metrics_input *in, int dim, char *msg,
                               size_t msglen);
#endif
