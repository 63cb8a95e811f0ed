/* Command-line options as every tool parses them: getopt_long plus the project's conventions.
   - getopt's own messages ("unrecognized option") name the tool as err() does
     (program_invocation_short_name: "fid", not "bin/fid");
   - a long option may be spelled with '_' for '-', as diffusers' scripts spell them
     (--lr_warmup_steps, --train_batch_size): such an argument is rewritten in argv to the
     dashed name when that name is (a prefix of) one of longopts;
   - a bad value names its flag: "--steps: bad value: 0 (want an integer from 1 to 100000)".
   Like the rest of common/, nothing here prints (but getopt's messages) or exits: the tool
   prints p->msg and its usage. */
#ifndef OPT_H
#define OPT_H
#include <getopt.h>
#include <stddef.h>

struct opt {
    const char *shortopts;
    const struct option *longopts;
    int c;         /* the option opt_next returned last */
    char msg[256]; /* the last problem, without the tool's name */
    char flag[80]; /* opt_flag's answer */
};

void opt_init(struct opt *p, const char *shortopts, const struct option *longopts);
/* getopt_long(argc, argv, shortopts, longopts) with the rules above: the next option's
   value (optarg set as by getopt_long), '?' for an unknown option or a missing value (getopt
   has printed why), -1 after the last option */
int opt_next(struct opt *p, int argc, char **argv);

/* 1 when option c is among argv as getopt_long(shortopts, longopts) would parse it, else 0;
   clusters (-qv), abbreviations (--verb) and values that look like options (-o -v) count as
   the real parse counts them. Prints nothing and leaves argv and getopt's state as a fresh
   parse wants them (optind 0): for what a tool must know before it parses, such as -v for
   tool_init's messages under mpirun. */
int opt_seen(int argc, char *const *argv, const char *shortopts, const struct option *longopts,
             int c);

/* "--steps" for option value c: its first long name in longopts, else "-c" */
const char *opt_flag(struct opt *p, int c);

/* optarg as a number in [lo, hi]: 0, or -1 with msg "--steps: bad value: 0 (want ...)" */
int opt_long(struct opt *p, long lo, long hi, long *out);
int opt_double(struct opt *p, double lo, double hi, double *out);
/* optarg as the index of one of the n names: 0, or -1 with msg "--scheduler: bad value: x
   (want ddpm or ddim)" */
int opt_choice(struct opt *p, const char *const *names, int n, int *out);
/* -1 with msg "--NAME: bad value: ARG (want)" for the last option: the tool's own checks */
int opt_bad(struct opt *p, const char *want);
/* The same for a value not parsed through struct opt (metrics_cli): -1 with msg
   "FLAG: bad value: ARG (want ...)"; want may be NULL. */
int opt_bad_value(char *msg, size_t len, const char *flag, const char *arg, const char *want);
int opt_parse_long(const char *flag, const char *arg, long lo, long hi, long *out, char *msg,
                   size_t len);
int opt_parse_double(const char *flag, const char *arg, double lo, double hi, double *out,
                     char *msg, size_t len);
#endif
