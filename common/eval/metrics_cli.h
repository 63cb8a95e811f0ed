/* What the metric tools (fid, is-score, kid) share: the Inception options and their parsing,
   opening the network, and streaming the features of one input to where the tool wants them.
   Errors: -1 and one line in msg. Nothing here exits, and nothing prints but the tools' usage
   text, the -v lines (settings, progress), the synthetic-weights warning and the note that
   pytorch-fid's --device and --num-workers are ignored. The feature passes split by image
   index, over --shard I/N and over the ranks of mpirun (util/par.h), and rank 0 gathers
   the features in index order: the outputs of one process. */
#ifndef METRICS_CLI_H
#define METRICS_CLI_H
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "models/inception.h"
#include "eval/metrics.h"
#include "eval/metrics_input.h"
#include "util/opt.h"

/* the options of every metric tool (the tool keeps -h/--help) */
struct metrics_cli {
    int batch, threads, verbose, json;   /* defaults 50, 2, 0, 0 */
    int skip_bad;                        /* --skip-bad */
    enum inception_resize mode;          /* the tool's default */
    const char *weights;                 /* NULL: inception_default_weights' search */
    int ignored;                         /* --device or --num-workers was given */
    int shard, n_shards;                 /* --shard I/N of the tools that take it; 0/1 */
    int shard_given;                     /* --shard was given (even 0/1) */
    struct opt op;                       /* metrics_cli_getopt's state */
};
/* getopt_long entries for them; the values are those metrics_cli_opt takes */
#define METRICS_CLI_LONGOPTS                                  \
    { "batch-size", required_argument, NULL, 'b' },           \
    { "threads", required_argument, NULL, 't' },              \
    { "weights", required_argument, NULL, 'w' },              \
    { "resize", required_argument, NULL, 'r' },               \
    { "json", no_argument, NULL, 'j' },                       \
    { "skip-bad", no_argument, NULL, METRICS_CLI_SKIP_BAD },  \
    { "verbose", no_argument, NULL, 'v' },                    \
    { "device", required_argument, NULL, 'D' },               \
    { "num-workers", required_argument, NULL, 'W' }
/* getopt value of --skip-bad, past every character a tool uses */
#define METRICS_CLI_SKIP_BAD 0x100
/* getopt_long entry of --shard, for the tools that take it; the tool's case calls
   metrics_cli_shard (is-score lists it only to refuse it) */
#define METRICS_CLI_SHARD (METRICS_CLI_SKIP_BAD + 1)
#define METRICS_CLI_SHARD_LONGOPT { "shard", required_argument, NULL, METRICS_CLI_SHARD }

/* --help lines of the shared options where --resize defaults to torch-fidelity (is-score, kid) */
#define METRICS_CLI_HELP_TORCH_FIDELITY \
    "  --json                print a JSON object instead\n" \
    "  -b, --batch-size N    images per batch (default 50)\n" \
    "  -t, --threads N       threads (default 2)\n" \
    "  --weights PATH        FID Inception weights (.pth or .safetensors), or synthetic\n" \
    "                        (scores NOT comparable with published ones). Default:\n" \
    "                        $FID_WEIGHTS, else weights/" INCEPTION_WEIGHTS_FILE "\n" \
    "                        next to bin/ or in the current directory (make weights)\n" \
    "  --resize MODE         torch-fidelity (default: TF1 bilinear on 0..255,\n" \
    "                        (x-128)/128), pytorch-fid (u8/255, half-pixel, 2x-1)\n" \
    "                        or clean (clean-fid: PIL bicubic with antialias)\n" \
    "  --skip-bad            skip the files of a folder that do not decode, each named\n" \
    "                        on stderr (default: the first one is an error)\n" \
    "  -v, --verbose         settings and progress on stderr\n" \
    METRICS_CLI_HELP_IGNORED("  ", "                        ") \
    "  -h, --help            this text\n"

/* --device and --num-workers, aligned by the two indents */
#define METRICS_CLI_HELP_IGNORED(opt, cont) \
    opt "--device D, --num-workers N\n" \
    cont "accepted and ignored, so that pytorch-fid command lines\n" \
    cont "run (this runs on the CPU: --threads)\n"

#define METRICS_CLI_SYNTHETIC_WARNING \
    "warning: synthetic Inception weights: scores are NOT comparable with published ones"
/* the JSON member a tool appends when the weights are synthetic */
#define METRICS_CLI_JSON_SYNTHETIC ",\n    \"synthetic_weights\": true"

void metrics_cli_init(struct metrics_cli *o, enum inception_resize mode);
/* getopt_long's c and optarg: 1 if c is one of the shared options (applied), 0 if it is not,
   -1 if the value is bad (msg: "--batch-size: bad value: x (want ...)") */
int metrics_cli_opt(struct metrics_cli *o, int c, const char *arg, char *msg, size_t msglen);
/* opt_next(argc, argv, "vhb:t:", longopts) applying the shared options to o: returns the
   next other option ('h', the tool's own, '?' for an unknown one or a missing value), -1 at
   the end. A bad
   value of a shared option returns '?' too, with msg "--batch-size: bad value: x (want
   ...)"; otherwise msg is "" (getopt_long has printed its own message). */
int metrics_cli_getopt(struct metrics_cli *o, int argc, char **argv,
                       const struct option *longopts, char *msg, size_t msglen);
/* After the options: tool_init_blas (nn/tool.h: the kernel check, which may re-execute the
   tool, par_init (without mpirun nothing; under it ranks > 0 wait for rank 0's par_go), the
   threads, the removal of temporary files at a signal or exit), and on rank 0 only -v and the note on stderr that
   --device and --num-workers are ignored when they were given. -1 with msg when MPI does
   not start. */
int metrics_cli_start_par(struct metrics_cli *o, int *argc, char ***argv, char *msg,
                          size_t msglen);
/* How the images of in split: -1 with msg when --shard has more shards than in has rows, or
   mpirun more processes than the shard has images. Under mpirun the images (and folders) of
   shard --shard split again over the ranks, rank r taking the r-th of par_size() contiguous
   ranges (shard.h); a feature cache is rank 0's alone. */
int metrics_cli_check_split(const struct metrics_cli *o, const struct metrics_input *in,
                            char *msg, size_t msglen);
/* the rows [*lo, *hi) of in that this process runs: shard --shard, and under mpirun the
   rank's range of that when the input goes through the network (rank 0 alone reads feature
   caches whole: nothing to share out; a rank > 0 gets none of them) */
void metrics_cli_range(const struct metrics_cli *o, const struct metrics_input *in,
                       int64_t *lo, int64_t *hi);
/* the rows of in in shard --shard (all of them without it) */
int64_t metrics_cli_rows(const struct metrics_cli *o, const struct metrics_input *in);
/* --shard I/N (shard.h) into o->shard, o->n_shards, and o->shard_given: -1 with msg
   "--shard: bad value: arg (want I/N ...)" */
int metrics_cli_shard(struct metrics_cli *o, const char *arg, char *msg, size_t msglen);
/* A score or statistics need every image in one process, so --shard goes only with
   --save-features (save): -1 without it, with msg "--shard needs --save-features: <needs>
   all the images; join the shards' features with npycat, then give <tool> the joined file" */
int metrics_cli_shard_needs_save(const struct metrics_cli *o, int save, const char *needs,
                                 const char *tool, char *msg, size_t msglen);
/* util_parse_long for a tool's own option: -1 with msg "what: bad value: arg (want ...)" */
int metrics_cli_long(const char *arg, long lo, long hi, long *v, const char *what, char *msg,
                     size_t msglen);
/* "pytorch-fid" or "torch-fidelity" */
const char *metrics_cli_resize_name(enum inception_resize mode);
/* metrics_input_open, then with --skip-bad metrics_input_drop_bad, naming each skipped file
   on stderr: "tool: path: problem (skipped)", then "tool: dir: skipped K of N images". */
int metrics_cli_open_input(struct metrics_input *in, const char *path,
                           const struct metrics_cli *o, const char *tool, char *msg,
                           size_t msglen);
/* images and folders go through the network; features and statistics do not */
int metrics_cli_needs_net(const struct metrics_input *in);
/* inception_open with o->weights; desc gets "weights W; preprocessing P; batch B" for -v */
int metrics_cli_open_net(struct inception *net, const struct metrics_cli *o, const char *argv0,
                         char *desc, size_t desclen, char *msg, size_t msglen);

/* metrics_cli_open_net, then on stderr: with -v "tool: <desc>[; settings]; N threads", and
   for synthetic weights "tool: " METRICS_CLI_SYNTHETIC_WARNING. settings may be NULL. */
int metrics_cli_load_net(struct inception *net, const struct metrics_cli *o, const char *argv0,
                         const char *tool, const char *settings, char *msg, size_t msglen);

/* Where the feature rows of one input go: streamed to out (float32), else added to st, else
   collected in rows (n, d), or with fc_w as logits_unbiased rows (n, INCEPTION_CLASSES). */
struct metrics_cli_sink {
    int d;                     /* feature width */
    FILE *out;                 /* --save-features */
    struct metrics_stats *st;  /* fid */
    const float *fc_w;         /* (1008, 2048) is-score */
    float *rows;               /* collected (kid, is-score); free() it */
    int64_t n, cap;            /* rows seen */
    struct metrics_cli_sink *spatial; /* sFID's features of the same pass go here (its d is
                                         INCEPTION_SPATIAL_DIMS), or NULL */
};
/* torch-fidelity's logits_unbiased (pool3 @ fc.weight^T, no bias) of n pool3 rows into
   logits (n, INCEPTION_CLASSES): one serial GEMM a row, so that a row's bits depend on
   nothing else (is-score's and score's Inception Scores agree under every BLAS kernel). */
void metrics_cli_logits(float *logits, const float *pool3, int64_t n, const float *fc_w);
/* Streams the features of in (path for messages) into s; -v shows "tool: path" progress.
   Only the rows of shard --shard. Under mpirun (collective: every rank calls it for the same
   inputs in the same order) each rank runs its range of an image input and rank 0's s gets
   every rank's rows in index order, the rows of one process (and so does s->spatial, which
   then must take rows or statistics, not a file); a rank > 0's s gets none. On -1 msg is
   complete: "path: problem", or "writing features: write error". */
int metrics_cli_features(struct metrics_cli_sink *s, struct metrics_input *in,
                         const char *path, const struct inception *net,
                         const struct metrics_cli *o, const char *tool, char *msg,
                         size_t msglen);
/* --save-features: the features of in (of shard --shard) as float32 (n, d) .npy written
   atomically to out (- is stdout); under mpirun rank 0 writes every rank's. On -1 msg is
   complete and no file is left. */
int metrics_cli_save_features(const char *out, struct metrics_input *in, const char *path,
                              int d, const struct inception *net, const struct metrics_cli *o,
                              const char *tool, char *msg, size_t msglen);
#endif
