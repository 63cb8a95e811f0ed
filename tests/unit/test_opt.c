/* opt: underscore spellings of long options, flag names in messages, strict values. */
#include "util/opt.h"
#include "test.h"

#include <string.h>

enum { O_WARMUP = 256, O_BATCH };
static const struct option lo[] = {
    {"lr-warmup-steps", 1, 0, O_WARMUP}, {"train-batch-size", 1, 0, O_BATCH},
    {"steps", 1, 0, 's'}, {"scheduler", 1, 0, 'k'}, {0, 0, 0, 0}};

static void test_underscores(void)
{
    char a0[] = "bin/tool", a1[] = "--lr_warmup_steps", a2[] = "5", a3[] = "--train_batch=7",
         a4[] = "--", a5[] = "--not_an_option";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    struct opt p;
    int c, warm = 0, batch = 0;
    optind = 1;
    opt_init(&p, "s:", lo);
    while ((c = opt_next(&p, 6, argv)) != -1) {
        if (c == O_WARMUP)
            warm = strcmp(optarg, "5") == 0;
        if (c == O_BATCH)
            batch = strcmp(optarg, "7") == 0;
    }
    CHECK(warm && batch, "--lr_warmup_steps and --train_batch=7 (a prefix) are the dashed options");
    CHECK(strcmp(argv[0], "bin/tool") == 0, "argv[0] is restored");
    CHECK(optind == 5 && strcmp(argv[5], "--not_an_option") == 0,
          "arguments after -- are left alone: %s", argv[5]);
}

static void test_values(void)
{
    char a0[] = "tool", a1[] = "--steps", a2[] = "0", a3[] = "--scheduler=x", a4[] = "-s",
         a5[] = "12";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    static const char *const names[] = {"ddpm", "ddim"};
    struct opt p;
    long v = -1;
    int k = -1;
    optind = 1;
    opt_init(&p, "s:", lo);
    CHECK(opt_next(&p, 6, argv) == 's' && opt_long(&p, 1, 100000, &v) == -1 && v == -1 &&
              strcmp(p.msg, "--steps: bad value: 0 (want an integer from 1 to 100000)") == 0,
          "a bad value names its flag: %s", p.msg);
    CHECK(opt_next(&p, 6, argv) == 'k' && opt_choice(&p, names, 2, &k) == -1 &&
              strcmp(p.msg, "--scheduler: bad value: x (want ddpm or ddim)") == 0,
          "a bad choice lists the good ones: %s", p.msg);
    CHECK(opt_next(&p, 6, argv) == 's' && opt_long(&p, 1, 100000, &v) == 0 && v == 12,
          "a short option parses");
    CHECK(opt_next(&p, 6, argv) == -1, "then the end");
    CHECK(strcmp(opt_flag(&p, 'q'), "-q") == 0, "an option without a long name is -q");
    double d;
    char msg[128];
    CHECK(opt_parse_double("--lr", "1e9", 0, 10, &d, msg, sizeof msg) == -1 &&
              strcmp(msg, "--lr: bad value: 1e9 (want a number from 0 to 10)") == 0,
          "a number out of range: %s", msg);
    CHECK(opt_parse_long("--seed", "-1", 0, 1L << 62, &v, msg, sizeof msg) == -1 &&
              strcmp(msg, "--seed: bad value: -1 (want an integer >= 0)") == 0,
          "an open range: %s", msg);
    CHECK(opt_bad_value(msg, sizeof msg, "--x", "a\nb", NULL) == -1 &&
              strcmp(msg, "--x: bad value: a?b") == 0,
          "a value stays on one line: %s", msg);
}

int main(void)
{
    test_underscores();
    test_values();
    (void)test_close; /* test.h helper unused here */
    return test_done();
}
