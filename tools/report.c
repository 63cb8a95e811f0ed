/* report: a Markdown report from score files, like the study's table (model, FID, IS, KID,
   precision, recall, N, seconds), with each model's sample grid and extra figures (loss
   curves) linked:
     report --title T --model vae fid=F.json,is=I.json,kid=K.json,prc=P.json,time=T.txt,grid=G.png \
            --model "VAE (study)" fid=318.14,is=2.36,n=100 --figure "Training loss=L.png" -o R.md
   fid/is/kid/prc name the --json output of fid, is-score, kid, score --prc (keys read
   leniently: a missing score is "-"); fid/is/kid/precision/recall also take the number
   itself; time is a file holding seconds (pipe time -o); n sets N (else the "n1" of the fid
   file). fdd names a score --fd-dinov2 --json output (or the number): with it on any model
   the table gains an FD-DINOv2 column, "-" for the models without one (as when the DINOv2
   weights were absent), and reports without it are unchanged. Image links are relative to
   the report's directory. */
#include "io/json.h"
#include "util/opt.h"
#include "util/util.h"
#include "nn/tool.h"

#include <err.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS 64
#define MAX_FIGS 16

enum { FID, IS, IS_STD, KID, KID_STD, PREC, REC, N, SECONDS, FDD, N_COLS };

struct model {
    char *name;
    char *grid;        /* path, or NULL */
    char *link;        /* grid relative to the report's directory */
    double v[N_COLS];  /* NAN: unknown */
    int has_fdd;       /* an fdd= key was given */
};

static const char usage_line[] =
    "usage: report [--title TEXT] [--note TEXT]\n"
    "              --model NAME fid=F,is=I,kid=K,prc=P,fdd=D,time=T,grid=G,n=N\n"
    "              [--model NAME SPEC...] ... [--figure CAPTION=PNG] [-o REPORT.md]\n";

static const char help[] =
    "\n"
    "Writes a Markdown report: a table with a row per --model (model, FID, IS, KID,\n"
    "precision, recall, N, seconds), each model's sample grid and the --figure images,\n"
    "linked relative to the report's folder (every linked file must exist). A model's\n"
    "SPEC is KEY=VALUE items, comma-separated, in one or more arguments after its --model:\n"
    "  fid=, is=, kid=    the --json output of fid, is-score or kid (a missing score\n"
    "                     shows as -), or the score itself (fid=318.14)\n"
    "  prc=               the --json output of score --prc (precision and recall)\n"
    "  fdd=               the --json output of score --fd-dinov2, or the number: adds\n"
    "                     an FD-DINOv2 column (- where a model has none)\n"
    "  precision=, recall=\n"
    "                     the score itself\n"
    "  time=              a file holding seconds (pipe time -o), or the seconds\n"
    "  grid=              a PNG of samples (imgrid)\n"
    "  n=                 N (default: the n1 of the fid file)\n"
    "\n"
    "  --title TEXT       the heading (default Results)\n"
    "  --note TEXT        a paragraph under the heading (repeatable)\n"
    "  --model NAME       a row of the table (at least one)\n"
    "  --figure CAPTION=PNG\n"
    "                     a figure at the end (repeatable)\n"
    "  -o, --output FILE  the report (default -: stdout)\n"
    "  -h, --help         this text\n"
    "\n"
    "Example:\n"
    "  report --model VAE fid=fid.json,is=is.json,kid=kid.json,prc=prc.json,grid=vae.png \\\n"
    "      --model 'VAE (study)' fid=318.14,is=2.36,n=100 --figure 'Loss=loss.png' -o report.md\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

/* first of keys present as a number in j, or NAN */
static double pick(const struct json *j, const char *const *keys)
{
    for (; j != NULL && *keys != NULL; keys++) {
        const struct json *v = json_get(j, *keys);
        if (v != NULL && v->type == JSON_NUMBER)
            return v->number;
    }
    return NAN;
}

static struct json *load_json(const char *path)
{
    unsigned char *buf;
    size_t len;
    char msg[TOOL_MSG];
    struct json *j;
    if (util_read_file(path, &buf, &len, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if ((j = json_parse((char *)buf, len, msg, sizeof msg)) == NULL)
        errx(1, "%s: %s", path, msg);
    free(buf);
    if (j->type != JSON_OBJECT)
        errx(1, "%s: want a JSON object", path);
    return j;
}

static int is_number(const char *s, double *v)
{
    return util_parse_float(s, -HUGE_VAL, HUGE_VAL, v) == 0;
}

/* one "key=value,key=value" spec into m */
static void parse_spec(struct model *m, char *spec)
{
    static const char *const fid_k[] = {"fid", "frechet_inception_distance", NULL};
    static const char *const is_k[] = {"inception_score_mean", "is_mean", "is", NULL};
    static const char *const is_s[] = {"inception_score_std", "is_std", NULL};
    static const char *const kid_k[] = {"kernel_inception_distance_mean", "kid_mean", "kid", NULL};
    static const char *const kid_s[] = {"kernel_inception_distance_std", "kid_std", NULL};
    static const char *const n_k[] = {"n1", "n_gen", "n", "num_samples", "n_samples", NULL};
    static const char *const prec_k[] = {"precision", NULL};
    static const char *const rec_k[] = {"recall", NULL};
    static const char *const fdd_k[] = {"fd_dinov2", NULL};
    char *item, *save = NULL;
    for (item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        const char *key = item, *val;
        double d;
        if (eq == NULL || eq == item || eq[1] == '\0')
            errx(2, "model %s: '%s': want KEY=VALUE", m->name, item);
        *eq = '\0';
        val = eq + 1;
        if (strcmp(key, "grid") == 0) {
            m->grid = xstrdup(val);
        } else if (strcmp(key, "n") == 0 || strcmp(key, "precision") == 0 ||
                   strcmp(key, "recall") == 0) {
            if (!is_number(val, &d))
                errx(2, "model %s: %s=%s: want a number", m->name, key, val);
            m->v[key[0] == 'n' ? N : key[0] == 'p' ? PREC : REC] = d;
        } else if (strcmp(key, "fdd") == 0) {
            m->has_fdd = 1;
            if (!is_number(val, &d)) {
                struct json *j = load_json(val);
                d = pick(j, fdd_k);
                json_free(j);
            }
            m->v[FDD] = d;
        } else if (strcmp(key, "time") == 0) {
            unsigned char *buf;
            size_t len;
            char msg[TOOL_MSG], *end;
            if (is_number(val, &d)) {
                m->v[SECONDS] = d;
                continue;
            }
            if (util_read_file(val, &buf, &len, msg, sizeof msg) == -1)
                errx(1, "%s: %s", val, msg);
            d = strtod((char *)buf, &end);
            if (end == (char *)buf || !isfinite(d))
                errx(1, "%s: want a number of seconds", val);
            m->v[SECONDS] = d;
            free(buf);
        } else if (strcmp(key, "fid") == 0 || strcmp(key, "is") == 0 ||
                   strcmp(key, "kid") == 0 || strcmp(key, "prc") == 0) {
            int fid = key[0] == 'f', is = key[0] == 'i', prc = key[0] == 'p';
            struct json *j;
            if (!prc && is_number(val, &d)) {
                m->v[fid ? FID : is ? IS : KID] = d;
                continue;
            }
            j = load_json(val);
            if (fid) {
                m->v[FID] = pick(j, fid_k);
            } else if (prc) {
                m->v[PREC] = pick(j, prec_k);
                m->v[REC] = pick(j, rec_k);
            } else if (is) {
                m->v[IS] = pick(j, is_k);
                m->v[IS_STD] = pick(j, is_s);
            } else {
                m->v[KID] = pick(j, kid_k);
                m->v[KID_STD] = pick(j, kid_s);
            }
            if (isnan(m->v[N]))
                m->v[N] = pick(j, n_k);
            json_free(j);
        } else {
            errx(2, "model %s: unknown key '%s' (want fid, is, kid, prc, fdd, precision, "
                 "recall, time, grid, n)", m->name, key);
        }
    }
}

/* path of target relative to directory dir (both resolved through realpath) */
static char *rel_link(const char *dir, const char *target)
{
    char d[PATH_MAX], t[PATH_MAX], *out;
    size_t dl, i, common = 0, ups = 0;
    if (realpath(dir, d) == NULL)
        err(1, "%s", dir);
    if (realpath(target, t) == NULL)
        err(1, "%s", target);
    dl = strlen(d);
    for (i = 0; d[i] != '\0' && d[i] == t[i]; i++)
        if (d[i] == '/')
            common = i + 1;
    if (i == dl && t[i] == '/')
        common = dl + 1;
    if (common < dl) { /* one "../" per component of dir below the common part */
        ups = 1;
        for (i = common; i < dl; i++)
            ups += d[i] == '/';
    }
    out = xmalloc(ups * 3 + strlen(t) + 1);
    out[0] = '\0';
    for (i = 0; i < ups; i++)
        strcat(out, "../");
    strcat(out, t + (common < strlen(t) ? common : strlen(t)));
    return out;
}

static void cell(FILE *f, double v, double sd, int prec)
{
    if (isnan(v))
        fprintf(f, " - |");
    else if (!isnan(sd))
        fprintf(f, " %.*f ± %.*f |", prec, v, prec, sd);
    else
        fprintf(f, " %.*f |", prec, v);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"title", required_argument, NULL, 't'}, {"note", required_argument, NULL, 'N'},
        {"model", required_argument, NULL, 'm'}, {"figure", required_argument, NULL, 'F'},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct model models[MAX_MODELS];
    char *figs[MAX_FIGS], *flinks[MAX_FIGS], *notes[MAX_FIGS], msg[TOOL_MSG], *dir, *slash;
    const char *title = "Results", *out = "-";
    int c, nm = 0, nf = 0, nn = 0, any_grid = 0, any_fdd = 0;
    struct outfile of;
    FILE *f;
    struct opt op;

    /* '-': a model's SPEC comes as c == 1, in place */
    opt_init(&op, "-o:h", longs);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case 't': title = optarg; break;
        case 'o': out = optarg; break;
        case 'N':
            if (nn == MAX_FIGS)
                errx(2, "at most %d notes", MAX_FIGS);
            notes[nn++] = optarg;
            break;
        case 'm':
            if (nm == MAX_MODELS)
                errx(2, "at most %d models", MAX_MODELS);
            models[nm] = (struct model){.name = optarg};
            for (int k = 0; k < N_COLS; k++)
                models[nm].v[k] = NAN;
            nm++;
            break;
        case 1: /* a spec belongs to the --model before it */
            if (nm == 0) {
                snprintf(msg, sizeof msg, "'%.100s' before any --model", optarg);
                usage(2, msg);
            }
            parse_spec(&models[nm - 1], optarg);
            break;
        case 'F':
            if (nf == MAX_FIGS)
                errx(2, "at most %d figures", MAX_FIGS);
            if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
                opt_bad(&op, "want CAPTION=FILE.png");
                usage(2, op.msg);
            }
            figs[nf++] = optarg;
            break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (nm == 0)
        usage(2, "--model NAME is required");
    /* links are relative to the report's directory */
    dir = xstrdup(strcmp(out, "-") == 0 ? "." : out);
    if ((slash = strrchr(dir, '/')) != NULL)
        slash == dir ? (void)(slash[1] = '\0') : (void)(*slash = '\0');
    else
        strcpy(dir, ".");
    /* every link resolves (every file exists) before a byte is written */
    for (int i = 0; i < nm; i++) {
        any_grid |= models[i].grid != NULL;
        any_fdd |= models[i].has_fdd;
        if (models[i].grid != NULL)
            models[i].link = rel_link(dir, models[i].grid);
    }
    for (int i = 0; i < nf; i++) {
        char *eq = strchr(figs[i], '=');
        *eq = '\0';
        flinks[i] = rel_link(dir, eq + 1);
    }
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    f = of.f;
    fprintf(f, "# %s\n\n", title);
    for (int i = 0; i < nn; i++)
        fprintf(f, "%s\n\n", notes[i]);
    fprintf(f, "| model | FID |%s IS | KID | precision | recall | N | seconds |\n",
            any_fdd ? " FD-DINOv2 |" : "");
    fprintf(f, "| --- | ---: |%s ---: | ---: | ---: | ---: | ---: | ---: |\n",
            any_fdd ? " ---: |" : "");
    for (int i = 0; i < nm; i++) {
        const struct model *m = &models[i];
        fprintf(f, "| %s |", m->name);
        cell(f, m->v[FID], NAN, 2);
        if (any_fdd)
            cell(f, m->v[FDD], NAN, 2);
        cell(f, m->v[IS], m->v[IS_STD], 2);
        cell(f, m->v[KID], m->v[KID_STD], 4);
        cell(f, m->v[PREC], NAN, 3);
        cell(f, m->v[REC], NAN, 3);
        cell(f, m->v[N], NAN, 0);
        cell(f, m->v[SECONDS], NAN, 2);
        fputc('\n', f);
    }
    if (any_grid) {
        fprintf(f, "\n## Samples\n");
        for (int i = 0; i < nm; i++) {
            if (models[i].grid != NULL)
                fprintf(f, "\n### %s\n\n![%s samples](%s)\n", models[i].name, models[i].name,
                        models[i].link);
        }
    }
    if (nf > 0)
        fprintf(f, "\n## Figures\n");
    for (int i = 0; i < nf; i++) {
        fprintf(f, "\n### %s\n\n![%s](%s)\n", figs[i], figs[i], flinks[i]);
        free(flinks[i]);
    }
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    for (int i = 0; i < nm; i++) {
        free(models[i].grid);
        free(models[i].link);
    }
    free(dir);
    if (strcmp(out, "-") != 0 && fclose(stdout) == EOF)
        err(1, "stdout");
    return 0;
}
