/* FD-DINOv2 as dgm-eval computes it: the DINOv2 features (models/dinov2.h: dgm-eval's
   preprocessing, the cls token after the final norm) of every image of an input, gathered
   into Frechet statistics (mean and covariance in float64, as metrics_stats does for FID);
   the distance is metrics_frechet's, the FID formula. */
#ifndef METRICS_DINOV2_H
#define METRICS_DINOV2_H
#include <stddef.h>

#include "eval/metrics.h"
#include "models/dinov2.h"

/* st (initialised with net's dim) gets the features of the images [lo, hi) of in (an image
   array or a folder, each file decoded and preprocessed alone; lo, hi from
   metrics_cli_range); other inputs are an error ("a feature cache has no DINOv2
   features"). -1 with msg naming the failing file of a folder.
   Collective under mpirun (util/par.h), every rank with its own range of the same input, as
   the Inception pass splits it: a rank > 0 sends its features to rank 0, whose st gets
   every rank's in rank order, i.e. index order: the statistics of one process. */
int metrics_dinov2_stats(struct metrics_stats *st, struct metrics_input *in, int64_t lo,
                         int64_t hi, const struct dinov2 *net, char *msg, size_t msglen);
#endif
