/* Pipelines: a YAML file of stages (cmd, deps, outs, params, foreach/do) close to DVC's
   dvc.yaml, loaded and checked before anything runs, plus the lock file that records content
   hashes so unchanged stages are skipped. The only user of libyaml. Running processes is the
   tool's job (tools/pipe.c); this module parses, checks, orders, hashes and explains.

   Format (see tests/fixtures/pipe/README-section.md for the full description):
     params:                 # named scalars, ${name} in cmd/deps/outs; -P name=value overrides
       epochs: 5
     stages:
       train:
         cmd: vae-train --epochs ${epochs} -o out/vae.st
         deps: [data/train.npy]
         outs: [out/vae.st]
         params: [epochs]     # optional: params the stage depends on besides those it names
       sample:
         foreach: [1, 2]      # or a mapping KEY: ITEM; stages sample@1, sample@2
         do:
           cmd: vae-sample --seed ${item} -o out/s${item}.npy
           deps: [out/vae.st]
           outs: [out/s${item}.npy]

   Every error message is "FILE:LINE: problem". */
#ifndef PIPELINE_H
#define PIPELINE_H
#include <stddef.h>
#include <stdint.h>

/* what the lock file remembers of a stage's last successful run */
struct pipe_lock {
    int present;
    uint64_t cmd;
    int n_deps, n_outs, n_params;
    char **deps, **outs, **params; /* paths / param names */
    uint64_t *dep_h, *out_h, *param_h;
};

struct pipe_stage {
    char *name;     /* "train", or "sample@1" for a foreach item */
    char *group;    /* "sample" for every item of a foreach; equals name otherwise */
    int line;       /* of the stage's key in the YAML */
    char *cmd;      /* after ${} interpolation */
    int always;     /* always_changed: true */
    int persist;    /* persist: true: outs are kept before a run and after a failure (resumable
                       downloads) */
    int n_deps, n_outs, n_params;
    char **deps, **outs;
    int *dep_line, *out_line;
    char **params;   /* names, sorted, unique */
    int n_up;
    int *up;         /* indices of the stages making this stage's deps */
    struct pipe_lock lock;
    uint64_t *dep_h; /* current dep hashes, filled by pipeline_stale */
};

struct pipeline {
    char *path;
    int n_params;
    char **param_name, **param_value;
    int *param_line;
    int n_stages;
    struct pipe_stage *stages; /* in a dependency order: every stage after its n_up stages */
};

/* Loads and checks path. over: n_over "name=value" strings overriding params. Checks: YAML
   syntax, types, unknown and duplicate keys, undefined ${params}, an out made by two stages
   (or nested in another stage's out), cycles, deps that no stage makes and that do not exist.
   -1 and msg "FILE:LINE: problem" on error; p is then empty. */
int pipeline_load(struct pipeline *p, const char *path, int n_over, char **over, char *msg,
                  size_t msglen);
void pipeline_free(struct pipeline *p);
/* index of the stage called name, or -1 */
int pipeline_find(const struct pipeline *p, const char *name);
/* Marks in sel[n_stages] the stages named by targets (a name, NAME@ITEM, or a foreach group
   NAME) and every stage they need; no targets selects everything. -1 (msg) on an unknown name. */
int pipeline_select(const struct pipeline *p, int n_targets, char **targets, char *sel,
                    char *msg, size_t msglen);

/* Lock file path for a pipeline file: ".pipe/NAME.lock" (NAME: file name without .yaml),
   relative to the current directory, where the stages run. malloc'd. */
char *pipeline_lock_path(const char *yaml_path);
/* One 'pipe run' of a pipeline at a time: an exclusive flock(2) on LOCKPATH.run (made, with
   its folder, if missing), holding the runner's pid. The kernel drops the lock when the
   process ends, even on kill -9, and the descriptor is close-on-exec, so stages do not hold
   it. Returns the descriptor, to keep open for the run, or -1 with msg: "another 'pipe run'
   of this pipeline is running (pid N)" when one holds it. */
int pipeline_run_lock(const char *lockpath, char *msg, size_t msglen);
/* Reads the lock (a missing file is an empty lock) into each stage's .lock. */
int pipeline_lock_read(struct pipeline *p, const char *lockpath, char *msg, size_t msglen);
/* Frees and zeroes a stage's lock record. */
void pipeline_lock_clear(struct pipe_lock *l);
/* Atomically rewrites the lock from each stage's .lock. */
int pipeline_lock_write(const struct pipeline *p, const char *lockpath, char *msg,
                        size_t msglen);
/* After stage i succeeded: hashes its outs and stores cmd, params, the dep hashes computed by
   pipeline_stale and the out hashes in its .lock. -1 (msg) when an out is missing. */
int pipeline_lock_update(struct pipeline *p, int i, char *msg, size_t msglen);

/* Is stage i stale against its lock? Hashes its deps (kept in dep_h for the lock). Returns 1
   with a reason in why ("never run", "dep data.npy changed", "param lr changed", "out x.npy
   missing", "command changed", ...), 0 when up to date, -1 on an I/O error (msg). */
int pipeline_stale(struct pipeline *p, int i, char *why, size_t whylen);

/* Deletes stage i's outs (files, or directories recursively). -1 (msg) on failure. */
int pipeline_remove_outs(const struct pipeline *p, int i, char *msg, size_t msglen);
/* Creates the parent directories of stage i's outs. */
int pipeline_make_out_dirs(const struct pipeline *p, int i, char *msg, size_t msglen);

/* XXH64 (Collet) of a buffer, and of a path's content: a file's bytes, or for a directory the
   sorted entry names with their content hashes, recursively. -1 (msg) if unreadable; 1 if
   the path does not exist. */
uint64_t pipe_hash(const void *buf, size_t len, uint64_t seed);
int pipe_hash_path(const char *path, uint64_t *h, char *msg, size_t msglen);
#endif
