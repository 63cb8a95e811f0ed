/* Option parsing shared by the tools; see opt.h. */
#include "util/opt.h"

#include <errno.h> /* program_invocation_short_name */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void opt_init(struct opt *p, const char *shortopts, const struct option *longopts)
{
    memset(p, 0, sizeof *p);
    p->shortopts = shortopts;
    p->longopts = longopts;
}

/* "--a_b[=v]" -> "--a-b[=v]" in place when "a-b" is (a prefix of) a long option's name */
static void dash_underscores(char *arg, const struct option *lo)
{
    char *name = arg + 2, *end = strchr(name, '=');
    size_t n = end != NULL ? (size_t)(end - name) : strlen(name);
    char dashed[128];
    if (n == 0 || n >= sizeof dashed || memchr(name, '_', n) == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        dashed[i] = name[i] == '_' ? '-' : name[i];
    for (; lo != NULL && lo->name != NULL; lo++)
        if (strncmp(lo->name, dashed, n) == 0) {
            memcpy(name, dashed, n);
            return;
        }
}

int opt_next(struct opt *p, int argc, char **argv)
{
    char *argv0 = argv[0];
    int c;
    /* every call: getopt_long permutes argv as it goes, and the rewrite is idempotent */
    for (int i = optind > 0 ? optind : 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], "--", 2) == 0)
            dash_underscores(argv[i], p->longopts);
    }
    /* getopt prints argv[0] in its messages: "fid: unrecognized option", as err() would */
    argv[0] = program_invocation_short_name;
    c = getopt_long(argc, argv, p->shortopts, p->longopts, NULL);
    argv[0] = argv0;
    p->c = c;
    p->msg[0] = '\0';
    return c;
}

int opt_seen(int argc, char *const *argv, const char *shortopts, const struct option *longopts,
             int c)
{
    /* getopt_long permutes the array it is given: run it on a copy of the pointers */
    char **copy = xmalloc(((size_t)argc + 1) * sizeof *copy);
    int seen = 0, r, err = opterr;
    memcpy(copy, argv, ((size_t)argc + 1) * sizeof *copy);
    opterr = 0;
    optind = 0; /* glibc: start afresh, whatever a parse before left */
    while ((r = getopt_long(argc, copy, shortopts, longopts, NULL)) != -1)
        seen |= r == c;
    optind = 0;
    opterr = err;
    free(copy);
    return seen;
}

const char *opt_flag(struct opt *p, int c)
{
    const struct option *lo = p->longopts;
    for (; lo != NULL && lo->name != NULL; lo++)
        if (lo->flag == NULL && lo->val == c) {
            snprintf(p->flag, sizeof p->flag, "--%s", lo->name);
            return p->flag;
        }
    snprintf(p->flag, sizeof p->flag, "-%c", c);
    return p->flag;
}

int opt_bad_value(char *msg, size_t len, const char *flag, const char *arg, const char *want)
{
    snprintf(msg, len, "%s: bad value: %s%s%s%s", flag, arg != NULL ? arg : "",
             want != NULL ? " (" : "", want != NULL ? want : "", want != NULL ? ")" : "");
    util_msg_oneline(msg);
    return -1;
}

int opt_parse_long(const char *flag, const char *arg, long lo, long hi, long *out, char *msg,
                   size_t len)
{
    char want[96];
    if (util_parse_long(arg, lo, hi, out) == 0)
        return 0;
    if (hi >= LONG_MAX / 4)
        snprintf(want, sizeof want, "want an integer >= %ld", lo);
    else
        snprintf(want, sizeof want, "want an integer from %ld to %ld", lo, hi);
    return opt_bad_value(msg, len, flag, arg, want);
}

int opt_parse_double(const char *flag, const char *arg, double lo, double hi, double *out,
                     char *msg, size_t len)
{
    char want[96];
    if (util_parse_float(arg, lo, hi, out) == 0)
        return 0;
    if (hi >= 1e29)
        snprintf(want, sizeof want, "want a number >= %g", lo);
    else
        snprintf(want, sizeof want, "want a number from %g to %g", lo, hi);
    return opt_bad_value(msg, len, flag, arg, want);
}

int opt_bad(struct opt *p, const char *want)
{
    return opt_bad_value(p->msg, sizeof p->msg, opt_flag(p, p->c), optarg, want);
}

int opt_long(struct opt *p, long lo, long hi, long *out)
{
    return opt_parse_long(opt_flag(p, p->c), optarg, lo, hi, out, p->msg, sizeof p->msg);
}

int opt_double(struct opt *p, double lo, double hi, double *out)
{
    return opt_parse_double(opt_flag(p, p->c), optarg, lo, hi, out, p->msg, sizeof p->msg);
}

int opt_choice(struct opt *p, const char *const *names, int n, int *out)
{
    char want[160];
    size_t k;
    for (int i = 0; i < n; i++)
        if (strcmp(optarg, names[i]) == 0) {
            *out = i;
            return 0;
        }
    k = (size_t)snprintf(want, sizeof want, "want");
    for (int i = 0; i < n && k < sizeof want; i++)
        k += (size_t)snprintf(want + k, sizeof want - k, "%s%s",
                              i == 0 ? " " : i == n - 1 ? " or " : ", ", names[i]);
    return opt_bad(p, want);
}
