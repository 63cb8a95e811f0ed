/* Small helpers every tool shares: checked allocation, strict number parsing, atomic output
   files, whole-file reads, timing. Like the rest of common/, nothing here prints or exits,
   except xmalloc/xcalloc (out of memory is not recoverable for these tools). */
#ifndef UTIL_H
#define UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* For buffers of megabytes (weights, Winograd caches, activations): aligned to 2 MiB and
   marked for transparent huge pages (madvise; Debian's default THP mode is "madvise"). With
   4 KiB pages, first touching a 572 MB weight cache is ~146,000 page faults, which were most
   of ddpm-sample's start-up (and cost more on a virtual machine); 2 MiB pages make it ~300.
   Contents as malloc's / calloc's; free with free(). */
void *xmalloc_big(size_t n);
void *xcalloc_big(size_t n, size_t size);

/* Strict parsing for argv and config values: the whole string must be a number within
   [lo, hi]. Return 0 on success, -1 otherwise (out untouched). */
int util_parse_long(const char *s, long lo, long hi, long *out);
/* The tools' default --threads: $OMP_NUM_THREADS (its first entry, as libgomp reads it) when
   it is a count 1..1024, else 2. Batch schedulers and `pipe run -j N` set it to share a
   machine's cores between processes. */
long util_threads_default(void);
int util_parse_float(const char *s, double lo, double hi, double *out);
/* "32" -> 32x32, "48x32" -> W=48, H=32 */
int util_parse_size(const char *s, int *w, int *h);

/* Atomic output. outfile_open("-") writes to stdout; any other path writes to a temporary
   file path.PID.XXXXXX in the same directory that outfile_commit renames into place, and
   outfile_abort (or a SIGINT/SIGTERM/SIGPIPE/SIGHUP through util_cleanup_signals, or the
   exit of a tool that called tool_init, nn/tool.h) deletes.
   A path that is a device or a pipe (/dev/null) is written in place (tmp NULL).
   A killed or failed run never leaves a half-written file under the real name. Messages do
   not name the path (the caller does): "No such file or directory", "write error: ...". */
struct outfile {
    FILE *f;
    char *path; /* NULL for stdout */
    char *tmp;  /* NULL for stdout, a device or a pipe */
};
int outfile_open(struct outfile *o, const char *path, char *msg, size_t msglen);
/* What a tool checks before it starts working, so that a bad output path fails at once
   rather than after the work: that outfile_open(path) and its commit will work. "-" passes;
   otherwise path must not be a directory and its folder must take a new file (tried by
   creating and removing path.XXXXXX: access(2) says yes to root on /proc and read-only
   mounts). -1 with msg: "is a directory", "cannot create a file in DIR: reason". */
int util_check_output(const char *path, char *msg, size_t msglen);
/* 1 when path is "-" and stdout is a terminal: binary data (.npy, PNG) is not written there
   (tools refuse before any work, as gzip does; UTIL_TTY_MSG says what to do instead). */
int util_binary_to_tty(const char *path);
#define UTIL_TTY_MSG "not writing binary data to a terminal: use -o FILE or a pipe"
/* The same for an output folder: path must be a folder that takes a new file, or not exist
   with a parent that takes a new folder. */
int util_check_output_dir(const char *path, char *msg, size_t msglen);
int outfile_commit(struct outfile *o, char *msg, size_t msglen);
/* Removes what a killed run (kill -9, power loss) left of its outfile_open(path): the files
   path.PID.XXXXXX whose process PID no longer runs. A run that writes the same outputs again
   (a resumed trainer) calls it first; the number removed. */
int outfile_sweep(const char *path);
/* 1 when name is base.PID.XXXXXX (*pid = PID) or an older build's base.XXXXXX (*pid = 0) */
int outfile_temp_name(const char *name, const char *base, long *pid);
void outfile_abort(struct outfile *o);
/* Installs handlers that unlink open temporary files and exit with 128+signal. Tools that
   catch SIGINT themselves (trainers saving a checkpoint) call util_remove_temps() instead.
   Also ignores SIGXFSZ, so that a file size limit (ulimit -f) is a write error (EFBIG) the
   tool reports, not a kill that leaves the temporary file behind. */
void util_cleanup_signals(void);
void util_remove_temps(void);

/* Reads a whole file ("-" = stdin) into a malloc'd buffer, with a trailing NUL not counted
   in *len. */
int util_read_file(const char *path, unsigned char **buf, size_t *len, char *msg, size_t msglen);
/* Replaces control characters in msg by '?': a message quoting a name or key from a file
   (which may hold a newline) stays one line. msg may be NULL. */
void util_msg_oneline(char *msg);

/* A growable array of malloc'd strings: (*v, *n) start as (NULL, 0). */
void strv_add(char ***v, int *n, const char *s);
void strv_free(char **v, int n);
int strv_find(char **v, int n, const char *s); /* index, or -1 */

double util_now(void); /* monotonic seconds */
/* seconds since this process started (exec keeps the start: a tool's re-exec counts from the
   first), from /proc/self/stat in clock ticks (10 ms here); -1 where that is unreadable */
double util_process_age(void);
int util_is_dir(const char *path);
int util_exists(const char *path);
/* Where `make weights` puts FILE: weights/FILE next to the executable's folder (bin/../weights)
   or inside it, then weights/FILE or FILE in the current folder. 1 with the path found in
   path, else 0. argv0 stands in for /proc/self/exe where that cannot be read. */
int util_find_weights(char *path, size_t pathlen, const char *file, const char *argv0);
/* mkdir -p; returns -1 with msg on failure: the caller names path, msg the folder on the
   way that could not be made ("cannot create directory a/b: Permission denied") */
int util_mkdirs(const char *path, char *msg, size_t msglen);

/* A progress line on stderr, rewritten in place when stderr is a terminal, one line per call
   (at most every `every` seconds) otherwise: "tool: what 12/100 (3.4 it/s, ETA 0:25)". */
struct progress {
    const char *tool, *what;
    long total;
    double start, last, every;
};
void progress_init(struct progress *p, const char *tool, const char *what, long total);
void progress_update(struct progress *p, long done, const char *extra);
void progress_done(struct progress *p);
#endif
