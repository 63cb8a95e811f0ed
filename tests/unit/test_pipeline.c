/* Pipeline loading, checks, hashing and the lock file. Run from the repo root: the YAML
   fixtures are in tests/fixtures/pipe/. Hash references: the XXH64 test vectors of the
   reference implementation (xxhsum) and the python-xxhash README. */
#include "pipeline/pipeline.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/pipe/"

static void test_hash(void)
{
    const char *s = "Nobody inspects the spammish repetition";
    unsigned char big[1000];
    uint64_t h;
    char msg[256];
    FILE *f;
    CHECK(pipe_hash("", 0, 0) == 0xEF46DB3751D8E999ULL, "xxh64 empty");
    CHECK(pipe_hash("a", 1, 0) == 0xD24EC4F1A98C6E5BULL, "xxh64 'a'");
    CHECK(pipe_hash("abc", 3, 0) == 0x44BC2CF5AD770999ULL, "xxh64 'abc'");
    CHECK(pipe_hash(s, strlen(s), 0) == 0xFBCEA83C8A378BF1ULL, "xxh64 39 bytes (4 lanes)");
    /* a file hashes like its bytes, whatever the read chunking */
    for (int i = 0; i < 1000; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    f = fopen("/tmp/test_pipeline.bin", "wb");
    fwrite(big, 1, sizeof big, f);
    fclose(f);
    CHECK(pipe_hash_path("/tmp/test_pipeline.bin", &h, msg, sizeof msg) == 0 &&
              h == pipe_hash(big, sizeof big, 0), "file hash equals buffer hash");
    remove("/tmp/test_pipeline.bin");
    CHECK(pipe_hash_path("/tmp/no/such/file", &h, msg, sizeof msg) == 1, "missing path -> 1");
}

static void test_load(void)
{
    struct pipeline p;
    char msg[512];
    char *over[] = {"epochs=7"};
    int rc = pipeline_load(&p, FIX "foreach.yaml", 1, over, msg, sizeof msg);
    CHECK(rc == 0, "foreach.yaml loads (%s)", rc ? msg : "");
    if (rc != 0)
        return;
    CHECK(p.n_stages == 4, "foreach expands to 4 stages");
    CHECK(pipeline_find(&p, "train@0.1") >= 0 && pipeline_find(&p, "train@0.01") >= 0,
          "list items name the stages NAME@ITEM");
    int i = pipeline_find(&p, "eval@big");
    CHECK(i >= 0 && strcmp(p.stages[i].group, "eval") == 0, "mapping keys name the stages");
    CHECK(i >= 0 && strstr(p.stages[i].cmd, "big n=2 $(cat lr-0.01.txt)") != NULL,
          "${key} and ${item.F} interpolate");
    CHECK(i >= 0 && p.stages[i].n_up == 1 &&
              strcmp(p.stages[p.stages[i].up[0]].name, "train@0.01") == 0,
          "a dep links to the stage making it");
    int t = pipeline_find(&p, "train@0.1");
    CHECK(t >= 0 && strstr(p.stages[t].cmd, "epochs=7") != NULL, "-P overrides a param");
    CHECK(t >= 0 && p.stages[t].n_params == 1 && strcmp(p.stages[t].params[0], "epochs") == 0,
          "a stage depends on the params it names");
    for (int k = 0; k < p.n_stages; k++)
        for (int u = 0; u < p.stages[k].n_up; u++)
            if (p.stages[k].up[u] >= k)
                CHECK(0, "stage %s comes after its ups", p.stages[k].name);
    char sel[4], *targets[] = {"eval@small"};
    CHECK(pipeline_select(&p, 1, targets, sel, msg, sizeof msg) == 0 &&
              sel[pipeline_find(&p, "train@0.1")] && !sel[pipeline_find(&p, "train@0.01")] &&
              sel[pipeline_find(&p, "eval@small")] && !sel[pipeline_find(&p, "eval@big")],
          "a target selects itself and what it needs");
    char *bad[] = {"nope"};
    CHECK(pipeline_select(&p, 1, bad, sel, msg, sizeof msg) == -1 &&
              strstr(msg, "no stage 'nope'") != NULL, "unknown target is an error");
    pipeline_free(&p);
    char *undef[] = {"lr=1"};
    CHECK(pipeline_load(&p, FIX "foreach.yaml", 1, undef, msg, sizeof msg) == -1 &&
              strstr(msg, "no param 'lr'") != NULL, "-P of an unknown param is an error");
}

/* interpolation corners: escapes, shell variables, params inside foreach values */
static void test_interp(void)
{
    struct pipeline p;
    char msg[512];
    int rc = pipeline_load(&p, FIX "foreach-params.yaml", 0, NULL, msg, sizeof msg);
    CHECK(rc == 0, "foreach-params.yaml loads (%s)", rc ? msg : "");
    if (rc != 0)
        return;
    int i = pipeline_find(&p, "score@big");
    CHECK(i >= 0 && strcmp(p.stages[i].cmd, "{ echo big 10 > res/big.txt\n} && "
                                            "{ cat res/big.txt\n}") == 0,
          "an item value naming a param, a cmd list");
    CHECK(i >= 0 && p.stages[i].n_params == 2 && strcmp(p.stages[i].params[0], "epochs") == 0 &&
              strcmp(p.stages[i].params[1], "out") == 0, "params named through items count");
    pipeline_free(&p);
    FILE *f = fopen("/tmp/test_pipeline_interp.yaml", "w");
    fputs("params:\n  x: 1\nstages:\n  a:\n    cmd: echo \\${x} $HOME ${x}$x\n"
          "    outs:\n      - ./o//${x}/\n", f);
    fclose(f);
    rc = pipeline_load(&p, "/tmp/test_pipeline_interp.yaml", 0, NULL, msg, sizeof msg);
    CHECK(rc == 0 && strcmp(p.stages[0].cmd, "echo ${x} $HOME 1$x") == 0,
          "\\${ is a literal ${, $VAR is left alone: %s", rc ? msg : p.stages[0].cmd);
    CHECK(rc == 0 && strcmp(p.stages[0].outs[0], "o/1") == 0, "out paths are normalised");
    if (rc == 0)
        pipeline_free(&p);
    remove("/tmp/test_pipeline_interp.yaml");
}

/* each bad fixture fails with FILE:LINE and the problem */
static void test_errors(void)
{
    static const struct { const char *file; const char *want; } cases[] = {
        {"bad-syntax.yaml", "bad-syntax.yaml:5: bad YAML"},
        {"bad-cycle.yaml", "bad-cycle.yaml:2: cycle: a needs b needs c needs a"},
        {"bad-two-makers.yaml", ":7: out 'x.txt' of stage 'b' is also an out of stage 'a'"},
        {"bad-param.yaml", ":5: undefined param 'lr'"},
        {"bad-key.yaml", ":5: unknown key 'dependencies' in stage 'a'"},
        {"bad-missing-dep.yaml", ":5: dep 'no-such-input.txt' of stage 'a' does not exist"},
        {"bad-dup-key.yaml", ":5: duplicate key 'cmd'"},
        {"bad-no-cmd.yaml", ":2: stage 'a' has no 'cmd'"},
        {"bad-top-key.yaml", ":1: unknown key 'vars'"},
        {"bad-overlap.yaml", ":7: out 'd/b.txt' of stage 'b' overlaps out 'd' of stage 'a'"},
        {"bad-empty.yaml", "empty pipeline"},
        {"bad-self.yaml", ":4: cycle: stage 'a' depends on its own out 'a.txt'"},
        {"bad-foreach.yaml", ":4: unknown key 'cmd' in foreach stage 'train'"},
        {"bad-item.yaml", ":3: '${item}' outside foreach"},
        {"no-such-file.yaml", "No such file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pipeline p;
        char path[256], msg[512] = "";
        snprintf(path, sizeof path, FIX "%s", cases[i].file);
        int rc = pipeline_load(&p, path, 0, NULL, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, cases[i].want) != NULL, "%s: %s", cases[i].file, msg);
        CHECK(p.n_stages == 0 && p.stages == NULL, "%s leaves an empty pipeline", cases[i].file);
    }
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

/* stale reasons and the lock round trip, in a scratch directory */
static void test_lock(void)
{
    struct pipeline p;
    char dir[] = "/tmp/test_pipeline.XXXXXX", old[4096], msg[512], why[512], *lock;
    if (getcwd(old, sizeof old) == NULL || mkdtemp(dir) == NULL || chdir(dir) == -1) {
        CHECK(0, "scratch directory");
        return;
    }
    write_text("p.yaml", "params:\n  n: 1\nstages:\n  a:\n    cmd: echo ${n} > a.txt\n"
                         "    deps: [in.txt]\n    outs: [a.txt]\n");
    write_text("in.txt", "one\n");
    CHECK(pipeline_load(&p, "p.yaml", 0, NULL, msg, sizeof msg) == 0, "load p.yaml");
    lock = pipeline_lock_path("p.yaml");
    CHECK(strcmp(lock, ".pipe/p.lock") == 0, "lock path is .pipe/NAME.lock");
    CHECK(pipeline_lock_read(&p, lock, msg, sizeof msg) == 0, "a missing lock is empty");
    CHECK(pipeline_stale(&p, 0, why, sizeof why) == 1 && strcmp(why, "never run") == 0,
          "never run");
    write_text("a.txt", "1\n");
    CHECK(pipeline_lock_update(&p, 0, msg, sizeof msg) == 0 &&
              pipeline_lock_write(&p, lock, msg, sizeof msg) == 0, "lock written");
    pipeline_free(&p);
    pipeline_load(&p, "p.yaml", 0, NULL, msg, sizeof msg);
    CHECK(pipeline_lock_read(&p, lock, msg, sizeof msg) == 0 && p.stages[0].lock.present,
          "lock read back");
    CHECK(pipeline_stale(&p, 0, why, sizeof why) == 0, "up to date after the run");
    write_text("in.txt", "two\n");
    CHECK(pipeline_stale(&p, 0, why, sizeof why) == 1 && strcmp(why, "dep in.txt changed") == 0,
          "dep change: %s", why);
    write_text("in.txt", "one\n");
    remove("a.txt");
    CHECK(pipeline_stale(&p, 0, why, sizeof why) == 1 && strcmp(why, "out a.txt missing") == 0,
          "missing out: %s", why);
    write_text("a.txt", "1\n");
    pipeline_free(&p);
    char *over[] = {"n=2"};
    pipeline_load(&p, "p.yaml", 1, over, msg, sizeof msg);
    pipeline_lock_read(&p, lock, msg, sizeof msg);
    CHECK(pipeline_stale(&p, 0, why, sizeof why) == 1 && strcmp(why, "param n changed") == 0,
          "param change: %s", why);
    CHECK(pipeline_remove_outs(&p, 0, msg, sizeof msg) == 0 && !util_exists("a.txt"),
          "outs removed");
    CHECK(pipeline_lock_update(&p, 0, msg, sizeof msg) == -1 &&
              strstr(msg, "did not make its out 'a.txt'") != NULL, "a missing out fails the run");
    pipeline_free(&p);
    write_text(lock, "pipe-lock 1\nstage a\ncmd zz\nend\n");
    pipeline_load(&p, "p.yaml", 0, NULL, msg, sizeof msg);
    CHECK(pipeline_lock_read(&p, lock, msg, sizeof msg) == -1 &&
              strstr(msg, ".pipe/p.lock:3: malformed") != NULL, "bad lock: %s", msg);
    pipeline_free(&p);
    free(lock);
    remove(".pipe/p.lock");
    rmdir(".pipe");
    remove("in.txt");
    remove("p.yaml");
    if (chdir(old) == -1 || rmdir(dir) == -1)
        CHECK(0, "clean up %s", dir);
}

int main(void)
{
    (void)test_close; /* test.h helper unused here */
    test_hash();
    test_load();
    test_interp();
    test_errors();
    test_lock();
    return test_done();
}
