/* Mutation fuzzing of every file parser: small valid seeds from tests/fixtures are corrupted
   by seeded, deterministic mutations (byte flips, runs of 0x00/0xff, truncation, inserted and
   deleted bytes, spliced chunks, and targeted values in the length and offset fields of each
   format: the npy header length, the safetensors header length and data_offsets, zip
   local/central/end records, .mat tags, pickle opcode arguments, PNG/JPEG chunk lengths and
   sizes, numbers and tokens in JSON/YAML text), and each loader must either succeed with a
   usable result or return -1 with a one-line message. A crash, a sanitizer report, a hang
   (SIGALRM after FUZZ_TIMEOUT seconds per case, default 20) or an allocation past 4 GiB fails
   the binary, naming the parser and case.
   FUZZ_ROUNDS=N multiplies the number of cases (a long campaign), FUZZ_SEED=N draws other
   cases; FUZZ_ONLY=parser[:case] runs one parser (or one case, leaving the mutated bytes in
   FUZZ_DUMP, default /tmp/fuzz_case.bin). */
#include "io/img.h"
#include "io/json.h"
#include "io/mat.h"
#include "io/npy.h"
#include "io/pickle.h"
#include "pipeline/pipeline.h"
#include "io/pth.h"
#include "util/rng.h"
#include "io/st.h"
#include "test.h"
#include "util/util.h"
#include "io/zip.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#define FIX "tests/fixtures/"
#define MAXF 2048

/* a place in the seed holding a length, offset, count or code: width bytes, big-endian or not */
struct field {
    size_t off;
    int width, be;
};

struct seed {
    unsigned char *b;
    size_t len;
    struct field f[MAXF];
    int nf;
    size_t text_lo, text_hi; /* where numbers and tokens are mutated (JSON, YAML, npy dict) */
    const char *const *tokens;
};

static const char *cur_parser = "", *cur_seed = "";
static long cur_case = -1;
static char tmp_path[64];
static const char *only_parser;
static long only_case = -1;

static void report_case(void)
{
    char line[256];
    int n = snprintf(line, sizeof line, "# test_fuzz: died in parser %s, seed %s, case %ld "
                     "(rerun: FUZZ_ONLY=%s:%ld)\n", cur_parser, cur_seed, cur_case, cur_parser,
                     cur_case);
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

static void on_signal(int sig)
{
    report_case();
    if (sig == SIGALRM) {
        static const char s[] = "# test_fuzz: case timed out (hang)\n";
        if (write(2, s, sizeof s - 1) < 0)
            _exit(3);
        _exit(3);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* set by ASan/UBSan builds; called before a sanitizer ends the process */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static unsigned timeout_s = 20;

static void case_begin(const char *parser, const char *seed, long c)
{
    cur_parser = parser;
    cur_seed = seed;
    cur_case = c;
    alarm(timeout_s);
}

/* Does this case run? (FUZZ_ONLY) */
static int selected(const char *parser, long c)
{
    if (only_parser == NULL)
        return 1;
    return strcmp(only_parser, parser) == 0 && (only_case < 0 || only_case == c);
}

static void dump(const unsigned char *b, size_t n)
{
    if (only_case < 0)
        return;
    const char *p = getenv("FUZZ_DUMP") ? getenv("FUZZ_DUMP") : "/tmp/fuzz_case.bin";
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static void write_tmp(const unsigned char *b, size_t n)
{
    FILE *f = fopen(tmp_path, "wb");
    if (f == NULL || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test_fuzz: %s: cannot write\n", tmp_path);
        exit(1);
    }
    dump(b, n);
}

/* -1 with a non-empty one-line message */
static int clean_fail(const char *msg)
{
    return msg[0] != '\0' && strchr(msg, '\n') == NULL;
}

/* a load that did not return 0: clean when it returned -1 with a one-line message; else
   says what it returned */
static int refused(const char *tag, int rc, const char *msg)
{
    int clean = rc == -1 && clean_fail(msg);
    if (!clean)
        printf("# %s: rc %d msg '%s'\n", tag, rc, msg);
    return clean;
}

/* ---- field discovery ---- */

static void add_field(struct seed *s, size_t off, int width, int be)
{
    if (s->nf < MAXF && off + (size_t)width <= s->len)
        s->f[s->nf++] = (struct field){off, width, be};
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void fields_npy(struct seed *s)
{
    if (s->len < 10)
        return;
    int v2 = s->b[6] >= 2;
    add_field(s, 6, 1, 0);
    add_field(s, 8, v2 ? 4 : 2, 0);
    s->text_lo = v2 ? 12 : 10;
    s->text_hi = s->text_lo + (size_t)get_le(s->b + 8, v2 ? 4 : 2);
}

static void fields_zip(struct seed *s)
{
    static const int loc[][2] = {{4, 2}, {6, 2}, {8, 2}, {14, 4}, {18, 4}, {22, 4}, {26, 2},
                                 {28, 2}};
    static const int cen[][2] = {{10, 2}, {16, 4}, {20, 4}, {24, 4}, {28, 2}, {30, 2}, {32, 2},
                                 {34, 2}, {42, 4}};
    static const int end[][2] = {{4, 2}, {6, 2}, {8, 2}, {10, 2}, {12, 4}, {16, 4}, {20, 2}};
    static const int end64[][2] = {{4, 8}, {16, 4}, {20, 4}, {24, 8}, {32, 8}, {40, 8},
                                   {48, 8}};
    const unsigned char *b = s->b;
    for (size_t i = 0; i + 4 <= s->len; i++) {
        if (b[i] == 'P' && b[i + 1] == 'K') {
            unsigned k = (unsigned)b[i + 2] << 8 | b[i + 3];
            if (k == 0x0304)
                for (size_t j = 0; j < sizeof loc / sizeof loc[0]; j++)
                    add_field(s, i + loc[j][0], loc[j][1], 0);
            if (k == 0x0102)
                for (size_t j = 0; j < sizeof cen / sizeof cen[0]; j++)
                    add_field(s, i + cen[j][0], cen[j][1], 0);
            if (k == 0x0506)
                for (size_t j = 0; j < sizeof end / sizeof end[0]; j++)
                    add_field(s, i + end[j][0], end[j][1], 0);
            if (k == 0x0606)
                for (size_t j = 0; j < sizeof end64 / sizeof end64[0]; j++)
                    add_field(s, i + end64[j][0], end64[j][1], 0);
            if (k == 0x0607)
                add_field(s, i + 8, 8, 0);
        }
        /* a ZIP64 extra field (id 1) of 8..28 bytes */
        if (b[i] == 1 && b[i + 1] == 0 && b[i + 3] == 0 && b[i + 2] >= 8 && b[i + 2] <= 28) {
            add_field(s, i + 2, 2, 0);
            for (int j = 0; j < b[i + 2] / 8; j++)
                add_field(s, i + 4 + 8 * (size_t)j, 8, 0);
        }
    }
}

static void fields_mat(struct seed *s)
{
    int be = s->len >= 128 && s->b[126] == 'M';
    add_field(s, 124, 2, be);
    add_field(s, 126, 2, 0);
    for (size_t i = 128; i + 4 <= s->len; i += 4) {
        add_field(s, i, 4, be);
        add_field(s, i + (be ? 2 : 0), 2, be);
    }
}

/* arguments of pickle opcodes that carry lengths, memo indices or integers */
static void fields_pickle(struct seed *s)
{
    for (size_t i = 0; i < s->len; i++) {
        switch (s->b[i]) {
        case 'X': case 'B': case 'T': case 'r': case 'j': case 'J': case 0x8b:
            add_field(s, i + 1, 4, 0);
            break;
        case 0x8c: case 'C': case 'U': case 'q': case 'h': case 'K': case 0x8a: case 0x80:
            add_field(s, i + 1, 1, 0);
            break;
        case 'M':
            add_field(s, i + 1, 2, 0);
            break;
        case 0x95: case 0x8d: case 0x8e:
            add_field(s, i + 1, 8, 0);
            break;
        }
    }
}

static void fields_png(struct seed *s)
{
    for (size_t i = 8; i + 12 <= s->len;) {
        uint32_t n = (uint32_t)s->b[i] << 24 | (uint32_t)s->b[i + 1] << 16 |
                     (uint32_t)s->b[i + 2] << 8 | s->b[i + 3];
        add_field(s, i, 4, 1);
        if (memcmp(s->b + i + 4, "IHDR", 4) == 0) {
            add_field(s, i + 8, 4, 1);
            add_field(s, i + 12, 4, 1);
            for (int j = 16; j < 21; j++)
                add_field(s, i + (size_t)j, 1, 0);
        }
        if (n > s->len - i - 12)
            break;
        i += 12 + n;
    }
}

static void fields_jpeg(struct seed *s)
{
    for (size_t i = 2; i + 4 <= s->len; i++) {
        unsigned m = s->b[i + 1];
        if (s->b[i] != 0xff || m == 0 || m == 0xff || m == 1 || (m >= 0xd0 && m <= 0xd9))
            continue;
        add_field(s, i + 2, 2, 1);
        for (int j = 4; j < 16; j++)
            add_field(s, i + (size_t)j, 1, 0);
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            add_field(s, i + 5, 2, 1);
            add_field(s, i + 7, 2, 1);
        }
    }
}

/* PNG chunks carry CRCs; recomputing them lets mutations reach the decoder proper */
static void png_fix_crc(unsigned char *b, size_t len)
{
    for (size_t i = 8; i + 12 <= len;) {
        uint32_t n = (uint32_t)b[i] << 24 | (uint32_t)b[i + 1] << 16 | (uint32_t)b[i + 2] << 8 |
                     b[i + 3];
        if (n > len - i - 12)
            break;
        uint32_t c = (uint32_t)crc32(0, b + i + 4, n + 4);
        b[i + 8 + n] = (unsigned char)(c >> 24);
        b[i + 9 + n] = (unsigned char)(c >> 16);
        b[i + 10 + n] = (unsigned char)(c >> 8);
        b[i + 11 + n] = (unsigned char)c;
        i += 12 + n;
    }
}

/* ---- mutations ---- */

static const char *const json_tokens[] = {"{", "}", "[", "]", "\"", ",", ":", "\\", "\\u0000",
    "\\ud800", "\\u12", "\\n", "\\u000a", "\\u007f", "null", "true", "-", "1e", "0.",
    "\xff", "\xc3", " ", "\"x\":", NULL};
static const char *const yaml_tokens[] = {"{", "}", "[", "]", "\"", "'", ",", ": ", "- ", "\n",
    "\n  ", "\t", "${", "${item", "${key}", "}", "&a ", "*a", "<<: ", "? ", "|", ">", "!!str ",
    "%YAML 1.1\n", "---\n", "...\n", "#", "@", "\xff", "foreach: ", "do:\n", "cmd: ",
    "deps: [", "outs: [", "\"a\\nb\"", NULL};
static const char *const npy_tokens[] = {"(", ")", ",", "'", "{", "}", ":", "<f4", "|u1",
    "<i8", ">f8", "True", "False", "'shape'", "'descr'", "'fortran_order'", " ", "\n", "-",
    "L", NULL};
static const char *const numbers[] = {"0", "-1", "1", "65536", "4294967295", "4294967296",
    "2147483647", "2147483648", "9223372036854775807", "9223372036854775808",
    "18446744073709551615", "18446744073709551616", "99999999999999999999999", "1e999",
    "-0", "1.5", "", "0x10", "1e3", "007", "-9223372036854775808"};

static uint64_t interesting(struct rng *r, uint64_t orig, size_t len)
{
    static const uint64_t v[] = {0, 1, 2, 3, 4, 7, 8, 16, 0x7f, 0x80, 0xff, 0x100, 0x7fff,
        0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
        0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff};
    switch (rng_below(r, 6)) {
    case 0: return orig + 1;
    case 1: return orig - 1;
    case 2: return len - rng_below(r, 3) + rng_below(r, 3);
    case 3: return rng_u64(r);
    case 4: return orig + (rng_below(r, 2) ? 1 : -1) * (uint64_t)rng_below(r, 64);
    default: return v[rng_below(r, sizeof v / sizeof v[0])];
    }
}

static void put_field(unsigned char *b, const struct field *f, uint64_t v)
{
    for (int i = 0; i < f->width; i++)
        b[f->be ? f->width - 1 - i : i] = (unsigned char)(v >> 8 * i);
}

static size_t ins(unsigned char *b, size_t len, size_t at, const void *src, size_t n)
{
    memmove(b + at + n, b + at, len - at);
    memcpy(b + at, src, n);
    return len + n;
}

/* Applies mutations of seed s into out (capacity s->len + 256); returns the new length. */
static size_t mutate(struct rng *r, const struct seed *s, unsigned char *out)
{
    size_t len = s->len, thi = s->text_hi;
    memcpy(out, s->b, len);
    /* mostly 1..3 mutations; one case in eight piles up to 12 */
    int nm = 1 + (int)rng_below(r, rng_below(r, 8) == 0 ? 12 : 3);
    for (int m = 0; m < nm; m++) {
        unsigned op = (unsigned)rng_below(r, 16);
        size_t pos = len ? rng_below(r, len) : 0;
        if (len == 0)
            op = 4;
        if (op <= 2) { /* a bit or a byte */
            if (rng_below(r, 2))
                out[pos] ^= (unsigned char)(1u << rng_below(r, 8));
            else
                out[pos] = (unsigned char)rng_u64(r);
        } else if (op == 3) { /* a run of 0x00, 0xff or one value */
            size_t n = 1 + rng_below(r, 32);
            int v = (int)rng_below(r, 3);
            unsigned char c = v == 0 ? 0 : v == 1 ? 0xff : (unsigned char)rng_u64(r);
            if (n > len - pos)
                n = len - pos;
            memset(out + pos, c, n);
        } else if (op == 4) { /* insert random or copied bytes */
            unsigned char tmp[16];
            size_t n = 1 + rng_below(r, 16);
            for (size_t i = 0; i < n; i++)
                tmp[i] = len && rng_below(r, 2) ? out[rng_below(r, len)] : (unsigned char)rng_u64(r);
            if (len + n <= s->len + 200)
                len = ins(out, len, len ? rng_below(r, len + 1) : 0, tmp, n);
        } else if (op == 5) { /* delete */
            size_t n = 1 + rng_below(r, 16);
            if (n > len - pos)
                n = len - pos;
            memmove(out + pos, out + pos + n, len - pos - n);
            len -= n;
        } else if (op == 6) { /* truncate */
            len = rng_below(r, len + 1);
        } else if (op == 7) { /* splice: copy a chunk over another place */
            size_t from = rng_below(r, len), n = 1 + rng_below(r, 64);
            if (n > len - from)
                n = len - from;
            if (n > len - pos)
                n = len - pos;
            memmove(out + pos, out + from, n);
        } else if (op <= 11 && s->nf > 0) { /* a length, offset or count field */
            const struct field *f = &s->f[rng_below(r, (uint64_t)s->nf)];
            if (f->off + (size_t)f->width <= len) {
                uint64_t orig = 0;
                for (int i = 0; i < f->width; i++)
                    orig |= (uint64_t)out[f->off + (f->be ? (size_t)(f->width - 1 - i) : (size_t)i)]
                            << 8 * i;
                put_field(out + f->off, f, interesting(r, orig, len));
            }
        } else if (op <= 15 && thi > s->text_lo && thi <= len) {
            size_t at = s->text_lo + rng_below(r, thi - s->text_lo);
            if (op <= 13) { /* replace a number by an extreme one */
                size_t a = at, e;
                while (a < thi && !(out[a] >= '0' && out[a] <= '9'))
                    a++;
                if (a == thi)
                    continue;
                e = a;
                while (e < thi && (out[e] == '.' || (out[e] >= '0' && out[e] <= '9')))
                    e++;
                const char *nb = numbers[rng_below(r, sizeof numbers / sizeof numbers[0])];
                size_t nl = strlen(nb);
                if (len - (e - a) + nl > s->len + 200)
                    continue;
                memmove(out + a + nl, out + e, len - e);
                memcpy(out + a, nb, nl);
                len = len - (e - a) + nl;
                thi = thi - (e - a) + nl;
            } else if (s->tokens) { /* insert a syntax token */
                int nt = 0;
                while (s->tokens[nt])
                    nt++;
                const char *t = s->tokens[rng_below(r, (uint64_t)nt)];
                size_t tl = strlen(t);
                if (len + tl > s->len + 200)
                    continue;
                len = ins(out, len, at, t, tl);
                thi += tl;
            }
        }
    }
    return len;
}

/* ---- seeds ---- */

static int load_seed(struct seed *s, const char *path, void (*fields)(struct seed *),
                     const char *const *tokens)
{
    char msg[128];
    memset(s, 0, sizeof *s);
    if (util_read_file(path, &s->b, &s->len, msg, sizeof msg) == -1) {
        CHECK(0, "seed %s: %s", path, msg);
        return -1;
    }
    s->tokens = tokens;
    if (tokens) {
        s->text_lo = 0;
        s->text_hi = s->len;
    }
    if (fields)
        fields(s);
    return 0;
}

static void seed_from(struct seed *s, const unsigned char *b, size_t len,
                      void (*fields)(struct seed *), const char *const *tokens)
{
    memset(s, 0, sizeof *s);
    s->b = xmalloc(len ? len : 1);
    memcpy(s->b, b, len);
    s->len = len;
    s->tokens = tokens;
    s->text_hi = tokens ? len : 0;
    if (fields)
        fields(s);
}

static long rounds = 1;
static uint64_t seed_base; /* FUZZ_SEED: another campaign of the same size */

static uint64_t case_seed(const char *parser, long c)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = parser; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ^ (uint64_t)c * 0x9e3779b97f4a7c15ull ^ seed_base * 0xbf58476d1ce4e5b9ull;
}

/* A parser under test: one case on mutated bytes; returns 1 when the outcome is clean. */
typedef int (*run_fn)(const unsigned char *b, size_t len, long c, int *ok);

/* Runs n cases of run over the seeds; prints one TAP line with the counts. */
static void campaign(const char *parser, struct seed *seeds, const char *const *names, int ns,
                     long n, run_fn run, void (*post)(struct rng *, unsigned char *, size_t *))
{
    unsigned char *m = NULL;
    size_t cap = 0;
    long bad = 0, ok = 0, done = 0;
    n *= rounds;
    for (int i = 0; i < ns; i++)
        if (seeds[i].len + 256 > cap)
            cap = seeds[i].len + 256;
    m = xmalloc(cap);
    for (long c = 0; c < n; c++) {
        if (!selected(parser, c))
            continue;
        struct rng r;
        rng_seed(&r, case_seed(parser, c));
        int si = (int)(c % ns);
        size_t len = mutate(&r, &seeds[si], m);
        if (post)
            post(&r, m, &len);
        case_begin(parser, names[si], c);
        int good = 0;
        if (!run(m, len, c, &good)) {
            if (bad < 5)
                printf("# %s: case %ld (seed %s) not clean (rerun: FUZZ_ONLY=%s:%ld)\n", parser,
                       c, names[si], parser, c);
            bad++;
        }
        ok += good;
        done++;
    }
    alarm(0);
    free(m);
    if (only_parser && strcmp(only_parser, parser) != 0)
        return;
    CHECK(bad == 0, "%s: %ld mutated inputs loaded or refused cleanly (%ld loaded)", parser,
          done, ok);
}

/* ---- the parsers ---- */

static void touch(const void *p, size_t n, volatile unsigned *sink)
{
    const unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    *sink += s;
}

static volatile unsigned sink;

static int npy_usable(struct npy *t)
{
    int good = t->data != NULL && t->ndim >= 0 && t->ndim <= NPY_MAXDIM;
    for (int i = 0; good && i < t->ndim; i++)
        good = t->shape[i] >= 0;
    if (good)
        touch(t->data, npy_nbytes(t), &sink);
    return good;
}

static int run_npy(const unsigned char *b, size_t len, long c, int *ok)
{
    struct npy t;
    char msg[128] = "";
    int rc, clean;
    dump(b, len);
    memset(&t, 0, sizeof t);
    if (c % 3 == 0) {
        rc = npy_read_mem(b, len, &t, msg, sizeof msg);
    } else if (c % 3 == 1) { /* a stream that is not a regular file */
        FILE *f = fmemopen((void *)b, len ? len : 1, "rb");
        if (f == NULL)
            return 1;
        if (len == 0)
            fgetc(f);
        rc = npy_read(f, &t, msg, sizeof msg);
        fclose(f);
    } else {
        write_tmp(b, len);
        rc = npy_load(tmp_path, NULL, &t, msg, sizeof msg);
    }
    clean = rc == 0 ? npy_usable(&t) : rc == -1 && clean_fail(msg);
    if (rc == 0) {
        *ok = 1;
        npy_free(&t);
    }
    if (!clean)
        printf("# npy: rc %d msg '%s'\n", rc, msg);
    return clean;
}

static int run_npz(const unsigned char *b, size_t len, long c, int *ok)
{
    struct npy *a;
    char **names, msg[128] = "";
    int n, clean = 1;
    (void)c;
    write_tmp(b, len);
    int rc = npy_load_all(tmp_path, &a, &names, &n, msg, sizeof msg);
    if (rc == 0) {
        for (int i = 0; i < n; i++)
            clean &= npy_usable(&a[i]);
        npy_free_all(a, names, n);
        *ok = 1;
    } else {
        clean = rc == -1 && clean_fail(msg);
    }
    if (!clean)
        printf("# npz: rc %d msg '%s'\n", rc, msg);
    return clean;
}

static int run_zip(const unsigned char *b, size_t len, long c, int *ok)
{
    struct zip z;
    char msg[128] = "";
    (void)c;
    dump(b, len);
    int rc = zip_open(&z, b, len, msg, sizeof msg);
    if (rc != 0)
        return refused("zip", rc, msg);
    *ok = 1;
    int clean = 1;
    for (int i = 0; i < z.n; i++) {
        unsigned char *out;
        size_t n;
        msg[0] = '\0';
        (void)zip_find(&z, z.e[i].name);
        if (zip_extract(&z, i, &out, &n, msg, sizeof msg) == 0) {
            clean &= n == z.e[i].usize;
            touch(out, n, &sink);
            const unsigned char *d = zip_data(&z, i);
            if (d)
                touch(d, n, &sink);
            free(out);
        } else if (!clean_fail(msg)) {
            printf("# zip: extract %d: msg '%s'\n", i, msg);
            clean = 0;
        }
    }
    zip_close(&z);
    return clean;
}

/* every tensor's bytes match its shape and dtype and lie in the mapping or owned block */
static int st_usable(const struct st_file *f)
{
    for (int i = 0; i < f->n; i++) {
        const struct st_tensor *t = &f->t[i];
        int64_t numel = st_numel(t);
        if (t->name == NULL || t->ndim < 0 || t->ndim > ST_MAXDIM || numel < 0 ||
            (uint64_t)numel * st_dtype_size(t->dtype) != t->nbytes)
            return 0;
        if (f->map && t->nbytes &&
            ((const char *)t->data < (const char *)f->map ||
             (const char *)t->data + t->nbytes > (const char *)f->map + f->map_len))
            return 0;
        touch(t->data, t->nbytes, &sink);
        if (t->dtype <= ST_F64 && numel > 0 && numel < (1 << 20)) {
            float *d = xmalloc((size_t)numel * sizeof *d);
            st_to_f32(t, d);
            free(d);
        }
        (void)st_find(f, t->name);
    }
    for (int i = 0; i < f->n_meta; i++)
        if (f->meta_keys[i] == NULL || f->meta_vals[i] == NULL)
            return 0;
    return 1;
}

/* a checkpoint opened by op (st_open or pth_open) from the mutated bytes */
static int run_ckpt(int (*op)(struct st_file *, const char *, char *, size_t), const char *tag,
                    const unsigned char *b, size_t len, int *ok)
{
    struct st_file f;
    char msg[128] = "";
    write_tmp(b, len);
    int rc = op(&f, tmp_path, msg, sizeof msg);
    if (rc != 0)
        return refused(tag, rc, msg);
    *ok = 1;
    int clean = st_usable(&f);
    st_close(&f);
    return clean;
}

static int run_st(const unsigned char *b, size_t len, long c, int *ok)
{
    (void)c;
    return run_ckpt(st_open, "st", b, len, ok);
}

static int run_pth(const unsigned char *b, size_t len, long c, int *ok)
{
    (void)c;
    return run_ckpt(pth_open, "pth", b, len, ok);
}

static int run_pickle(const unsigned char *b, size_t len, long c, int *ok)
{
    struct pk k;
    char msg[128] = "";
    size_t off = 0;
    int clean = 1;
    (void)c;
    dump(b, len);
    memset(&k, 0, sizeof k);
    k.msg = msg;
    k.msglen = sizeof msg;
    /* consecutive pickles, as in a legacy .pth */
    for (int i = 0; i < 8 && off < len; i++) {
        size_t used = 0;
        struct pv *out = NULL;
        if (pickle_run(&k, b + off, len - off, &used, &out) != 0) {
            clean = clean_fail(msg);
            break;
        }
        *ok = 1;
        if (used == 0 || used > len - off || out == NULL) {
            clean = 0;
            break;
        }
        off += used;
    }
    struct pv **ss;
    int ns;
    pickle_storages(&k, &ss, &ns);
    free(ss);
    pickle_free(&k);
    return clean;
}

static int run_mat(const unsigned char *b, size_t len, long c, int *ok)
{
    struct mat_file m;
    char msg[128] = "";
    (void)c;
    dump(b, len);
    int rc = mat_read_mem(b, len, &m, msg, sizeof msg);
    if (rc != 0)
        return refused("mat", rc, msg);
    *ok = 1;
    int clean = 1;
    for (int i = 0; i < m.n; i++) {
        const struct mat_var *v = &m.v[i];
        int64_t numel = 1;
        for (int d = 0; d < v->ndim; d++)
            numel *= v->dims[d];
        clean &= v->name != NULL && v->ndim >= 0 && v->ndim <= 8 && numel == v->numel;
        if (clean)
            touch(v->data, (size_t)v->numel * sizeof *v->data, &sink);
        (void)mat_find(&m, v->name);
    }
    mat_free(&m);
    return clean;
}

static int json_walk(const struct json *j, int depth)
{
    if (depth > 1000)
        return 0;
    if (j->type == JSON_STRING)
        return j->string != NULL && (touch(j->string, strlen(j->string), &sink), 1);
    if (j->type == JSON_ARRAY || j->type == JSON_OBJECT) {
        for (int i = 0; i < j->n; i++) {
            if (j->type == JSON_OBJECT && (j->keys[i] == NULL || json_get(j, j->keys[i]) == NULL))
                return 0;
            if (!json_walk(&j->items[i], depth + 1))
                return 0;
        }
    }
    return 1;
}

static int run_json(const unsigned char *b, size_t len, long c, int *ok)
{
    char msg[128] = "";
    (void)c;
    dump(b, len);
    /* an exact-size copy, so reading past len is caught */
    char *t = xmalloc(len ? len : 1);
    memcpy(t, b, len);
    struct json *j = json_parse(t, len, msg, sizeof msg);
    free(t);
    if (j == NULL)
        return clean_fail(msg);
    *ok = 1;
    int clean = json_walk(j, 0);
    json_free(j);
    return clean;
}

static int run_img(const unsigned char *b, size_t len, long c, int *ok)
{
    struct img im;
    char msg[128] = "";
    (void)c;
    dump(b, len);
    int rc = img_decode(b, len, &im, msg, sizeof msg);
    if (rc != 0)
        return refused("img", rc, msg);
    *ok = 1;
    int clean = im.rgb != NULL && im.w > 0 && im.h > 0;
    if (clean)
        touch(im.rgb, (size_t)im.w * im.h * 3, &sink);
    img_free(&im);
    return clean;
}

static int run_yaml(const unsigned char *b, size_t len, long c, int *ok)
{
    struct pipeline p;
    char msg[256] = "";
    char *over[] = {"epochs=3"};
    write_tmp(b, len);
    int rc = pipeline_load(&p, tmp_path, c % 4 == 0, over, msg, sizeof msg);
    if (rc != 0)
        return refused("yaml", rc, msg);
    *ok = 1;
    int clean = 1;
    for (int i = 0; i < p.n_stages; i++) {
        const struct pipe_stage *s = &p.stages[i];
        clean &= s->name != NULL && s->cmd != NULL && pipeline_find(&p, s->name) == i;
        for (int u = 0; u < s->n_up; u++)
            clean &= s->up[u] >= 0 && s->up[u] < i;
    }
    pipeline_free(&p);
    return clean;
}

/* ---- rebuilding archives around a mutated member (their CRCs would refuse it early) ---- */

/* n members of a zip, rewritten with member `which` replaced */
static size_t rezip(const struct zip *z, int which, const unsigned char *mb, size_t mlen,
                    int compress, unsigned char **out)
{
    const char **names = xcalloc((size_t)z->n + 1, sizeof *names);
    const unsigned char **data = xcalloc((size_t)z->n + 1, sizeof *data);
    unsigned char **own = xcalloc((size_t)z->n + 1, sizeof *own);
    size_t *lens = xcalloc((size_t)z->n + 1, sizeof *lens), size = 0;
    char msg[128];
    char *buf = NULL;
    for (int i = 0; i < z->n; i++) {
        names[i] = z->e[i].name;
        if (i == which) {
            data[i] = mb;
            lens[i] = mlen;
        } else if (zip_extract(z, i, &own[i], &lens[i], msg, sizeof msg) == 0) {
            data[i] = own[i];
        }
    }
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL || zip_write(f, names, data, lens, z->n, compress, msg, sizeof msg) == -1) {
        fprintf(stderr, "test_fuzz: zip_write: %s\n", msg);
        exit(1);
    }
    fclose(f);
    for (int i = 0; i < z->n; i++)
        free(own[i]);
    free(own);
    free(names);
    free(data);
    free(lens);
    *out = (unsigned char *)buf;
    return size;
}

/* Cases that mutate one member of an archive (data.pkl, a storage, an .npy) and rebuild it. */
static void member_campaign(const char *parser, const char *const *paths, int np, long n,
                            void (*fields)(struct seed *), const char *const *tokens,
                            run_fn run)
{
    long bad = 0, ok = 0, done = 0;
    n *= rounds;
    for (int p = 0; p < np; p++) {
        unsigned char *ab;
        size_t alen;
        char msg[128];
        struct zip z;
        if (util_read_file(paths[p], &ab, &alen, msg, sizeof msg) == -1 ||
            zip_open(&z, ab, alen, msg, sizeof msg) == -1) {
            CHECK(0, "%s: %s", paths[p], msg);
            continue;
        }
        struct seed *ms = xcalloc((size_t)z.n, sizeof *ms);
        size_t cap = 0;
        for (int i = 0; i < z.n; i++) {
            unsigned char *mb;
            size_t ml;
            if (zip_extract(&z, i, &mb, &ml, msg, sizeof msg) == 0) {
                seed_from(&ms[i], mb, ml, fields, tokens);
                free(mb);
            }
            if (ms[i].len + 256 > cap)
                cap = ms[i].len + 256;
        }
        unsigned char *m = xmalloc(cap);
        for (long c = p; c < n; c += np) {
            if (!selected(parser, c))
                continue;
            struct rng r;
            rng_seed(&r, case_seed(parser, c));
            /* mostly the pickle or the .npy (the member with fields), else any member */
            int which = (int)rng_below(&r, (uint64_t)z.n);
            if (rng_below(&r, 4) != 0)
                for (int i = 0; i < z.n; i++)
                    if (ms[i].nf > 0 && strstr(z.e[i].name, "data/") == NULL)
                        which = i;
            size_t ml = mutate(&r, &ms[which], m);
            unsigned char *zb;
            size_t zl = rezip(&z, which, m, ml, (int)rng_below(&r, 2), &zb);
            case_begin(parser, paths[p], c);
            int good = 0;
            if (!run(zb, zl, c, &good)) {
                if (bad < 5)
                    printf("# %s: case %ld (%s, member %s) not clean (rerun: FUZZ_ONLY=%s:%ld)\n",
                           parser, c, paths[p], z.e[which].name, parser, c);
                bad++;
            }
            ok += good;
            done++;
            free(zb);
        }
        alarm(0);
        free(m);
        for (int i = 0; i < z.n; i++)
            free(ms[i].b);
        free(ms);
        zip_close(&z);
        free(ab);
    }
    if (only_parser && strcmp(only_parser, parser) != 0)
        return;
    CHECK(bad == 0, "%s: %ld inputs with a mutated member loaded or refused cleanly (%ld loaded)",
          parser, done, ok);
}

static void png_post(struct rng *r, unsigned char *b, size_t *len)
{
    if (*len > 8 && memcmp(b + 1, "PNG", 3) == 0 && rng_below(r, 8) != 0)
        png_fix_crc(b, *len);
}

/* ---- seeds per parser ---- */

#define NS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void fuzz_files(const char *parser, const char *const *paths, int np, long n,
                       void (*fields)(struct seed *), const char *const *tokens, run_fn run,
                       void (*post)(struct rng *, unsigned char *, size_t *))
{
    struct seed *s = xcalloc((size_t)np, sizeof *s);
    int ok = 1;
    if (only_parser && strcmp(only_parser, parser) != 0) {
        free(s);
        return;
    }
    for (int i = 0; i < np; i++)
        ok &= load_seed(&s[i], paths[i], fields, tokens) == 0;
    if (ok)
        campaign(parser, s, paths, np, n, run, post);
    for (int i = 0; i < np; i++)
        free(s[i].b);
    free(s);
}

static void fields_img(struct seed *s)
{
    if (s->len > 8 && memcmp(s->b + 1, "PNG", 3) == 0)
        fields_png(s);
    else
        fields_jpeg(s);
}

static void fields_st(struct seed *s)
{
    add_field(s, 0, 8, 0);
    add_field(s, 0, 4, 0);
    s->text_lo = 8;
    s->text_hi = s->len >= 8 ? 8 + (size_t)get_le(s->b, 8) : 0;
    if (s->text_hi > s->len)
        s->text_hi = s->len;
}

static void fields_pth(struct seed *s)
{
    if (s->len > 2 && s->b[0] == 'P' && s->b[1] == 'K')
        fields_zip(s);
    else
        fields_pickle(s);
}

/* the safetensors header text of st_mixed, as a JSON seed */
static void json_seeds(void)
{
    char st_json[64];
    snprintf(st_json, sizeof st_json, "/tmp/test_fuzz.%d.json", (int)getpid());
    const char *const paths[] = {FIX "unet/tiny_st_modern/config.json",
                                 FIX "unet/sched_cos_off1.json", st_json};
    unsigned char *b = NULL;
    size_t len;
    char msg[128];
    if (util_read_file(FIX "ckpt/st_mixed.safetensors", &b, &len, msg, sizeof msg) == 0 &&
        len > 8 && get_le(b, 8) <= len - 8) {
        FILE *f = fopen(st_json, "wb");
        if (f) {
            fwrite(b + 8, 1, (size_t)get_le(b, 8), f);
            fclose(f);
        }
    }
    free(b);
    fuzz_files("json", paths, NS(paths), 3000, NULL, json_tokens, run_json, NULL);
    unlink(st_json);
}

/* The reproducers of what this test found (tests/fixtures/bad/fuzz_*, gen_fuzz.py): each
   refused with a one-line message, and not for lack of memory (a huge allocation). */
static void test_reproducers(void)
{
    struct pipeline p;
    char ymsg[256] = "";
    int yrc = pipeline_load(&p, FIX "bad/fuzz_pipe_deep.yaml", 0, NULL, ymsg, sizeof ymsg);
    if (yrc == 0)
        pipeline_free(&p);
    CHECK(yrc == -1 && strstr(ymsg, "nested deeper") != NULL, "fuzz_pipe_deep.yaml refused (%s)",
          ymsg);
    struct img im;
    char imsg[128] = "";
    case_begin("reproducers", "fuzz_img_scans.jpg", 0);
    int irc = img_load(FIX "bad/fuzz_img_scans.jpg", &im, imsg, sizeof imsg);
    if (irc == 0)
        img_free(&im);
    alarm(0);
    CHECK(irc == -1 && strstr(imsg, "scans") != NULL, "fuzz_img_scans.jpg refused (%s)", imsg);
    struct npy *za;
    char **zn, zmsg[128] = "";
    int nz, zrc = npy_load_all(FIX "bad/fuzz_zip_overlap.npz", &za, &zn, &nz, zmsg, sizeof zmsg);
    if (zrc == 0)
        npy_free_all(za, zn, nz);
    CHECK(zrc == -1 && strstr(zmsg, "overlap") != NULL, "fuzz_zip_overlap.npz refused (%s)",
          zmsg);
    static const char *const pth[] = {"fuzz_pth_expand.pth", "fuzz_pth_expand_legacy.pth"};
    for (int i = 0; i < NS(pth); i++) {
        char path[256], msg[128] = "";
        struct st_file f;
        snprintf(path, sizeof path, FIX "bad/%s", pth[i]);
        int rc = pth_open(&f, path, msg, sizeof msg);
        if (rc == 0)
            st_close(&f);
        CHECK(rc == -1 && clean_fail(msg) && strstr(msg, "memory") == NULL, "%s refused (%s)",
              pth[i], msg);
    }
}

/* Shapes byte mutations do not reach: deep nesting, alias bombs. Each must end quickly with
   0 or a clean -1. */
static void test_structures(void)
{
    enum { DEEP = 200000 };
    char *b = xmalloc(2 * DEEP + 64), msg[256];
    struct json *j;
    size_t n;
    /* JSON: [[[[...]]]] and {"a":{"a":...}} */
    memset(b, '[', DEEP);
    memset(b + DEEP, ']', DEEP);
    case_begin("structures", "json [[[", 0);
    msg[0] = '\0';
    j = json_parse(b, 2 * DEEP, msg, sizeof msg);
    CHECK(j == NULL ? clean_fail(msg) : 1, "json: %d nested arrays (%s)", DEEP, j ? "parsed" : msg);
    json_free(j);
    n = 0;
    for (int i = 0; i < DEEP / 8; i++)
        n += (size_t)sprintf(b + n, "{\"a\":");
    msg[0] = '\0';
    j = json_parse(b, n, msg, sizeof msg);
    CHECK(j == NULL && clean_fail(msg), "json: %d unclosed nested objects (%s)", DEEP / 8, msg);
    json_free(j);

    /* YAML: nested flow sequences and block mappings, as a stage's deps */
    static const char *const heads[] = {"stages:\n  a:\n    cmd: x\n    deps: ",
                                        "params:\n  p: "};
    for (int h = 0; h < 2; h++) {
        FILE *f = fopen(tmp_path, "wb");
        if (f == NULL)
            break;
        fputs(heads[h], f);
        /* libyaml alone took ~90 s to refuse this (quadratic in the depth): the alarm fires */
        for (int i = 0; i < DEEP; i++)
            fputc('[', f);
        for (int i = 0; i < DEEP; i++)
            fputc(']', f);
        fputc('\n', f);
        fclose(f);
        struct pipeline p;
        msg[0] = '\0';
        case_begin("structures", "yaml [[[", h);
        int rc = pipeline_load(&p, tmp_path, 0, NULL, msg, sizeof msg);
        if (rc == 0)
            pipeline_free(&p);
        CHECK(rc == -1 && clean_fail(msg), "yaml: %d nested sequences refused (%s)", DEEP, msg);
    }
    /* YAML: an alias bomb (each level 9 aliases of the one below; the document loader keeps
       aliases as references, a walker following them would visit 9^8 nodes) as foreach
       items and as deps */
    static const char *const uses[] = {"    foreach: ", "    cmd: x\n    deps: "};
    for (int u = 0; u < 2; u++) {
        FILE *f = fopen(tmp_path, "wb");
        if (f == NULL)
            break;
        fprintf(f, "stages:\n  a:\n%s[&l0 [a, a, a, a, a, a, a, a, a]", uses[u]);
        for (int l = 1; l <= 8; l++) {
            fprintf(f, ", &l%d [", l);
            for (int i = 0; i < 9; i++)
                fprintf(f, "%s*l%d", i ? ", " : "", l - 1);
            fputs("]", f);
        }
        fputs(u == 0 ? "]\n    do:\n      cmd: x ${item}\n" : "]\n", f);
        fclose(f);
        struct pipeline p;
        msg[0] = '\0';
        case_begin("structures", "yaml alias bomb", u);
        int rc = pipeline_load(&p, tmp_path, 0, NULL, msg, sizeof msg);
        if (rc == 0)
            pipeline_free(&p);
        CHECK(rc == -1 && clean_fail(msg), "yaml: alias bomb refused (%s)", msg);
    }
    /* pickle: a dict given the same item over and over (BININT1 1, BININT1 1, SETITEM): each
       int is a value that lives until pickle_free */
    enum { NV = (1 << 20) + 16 };
    size_t pl = 3 + 5 * (size_t)NV + 1;
    unsigned char *pk = xmalloc(pl);
    memcpy(pk, "\x80\x02}", 3);
    for (size_t i = 0; i < NV; i++)
        memcpy(pk + 3 + 5 * i, "K\x01K\x01s", 5);
    pk[pl - 1] = '.';
    struct pk k;
    struct pv *out;
    size_t used;
    memset(&k, 0, sizeof k);
    msg[0] = '\0';
    k.msg = msg;
    k.msglen = sizeof msg;
    case_begin("structures", "pickle dict items", 0);
    int rc = pickle_run(&k, pk, pl, &used, &out);
    pickle_free(&k);
    free(pk);
    CHECK(rc == -1 && strstr(msg, "values") != NULL, "pickle: %d dict items refused (%s)", NV,
          msg);
    alarm(0);
    free(b);
}

int main(void)
{
    const char *e;
    (void)test_close;
    if ((e = getenv("FUZZ_ROUNDS")) != NULL)
        rounds = strtol(e, NULL, 10) > 0 ? strtol(e, NULL, 10) : 1;
    if ((e = getenv("FUZZ_SEED")) != NULL)
        seed_base = strtoull(e, NULL, 10);
    if ((e = getenv("FUZZ_TIMEOUT")) != NULL)
        timeout_s = (unsigned)(strtol(e, NULL, 10) > 0 ? strtol(e, NULL, 10) : 20);
    static char only[64];
    if ((e = getenv("FUZZ_ONLY")) != NULL) {
        snprintf(only, sizeof only, "%s", e);
        char *colon = strchr(only, ':');
        if (colon) {
            *colon = '\0';
            only_case = strtol(colon + 1, NULL, 10);
        }
        only_parser = only;
    }
    snprintf(tmp_path, sizeof tmp_path, "/tmp/test_fuzz.%d.bin", (int)getpid());
#if !defined(__SANITIZE_ADDRESS__)
    /* a runaway allocation fails (xmalloc exits) instead of swapping; ASan builds rely on
       ASAN_OPTIONS=max_allocation_size_mb instead (their shadow needs the address space) */
    struct rlimit rl = {(rlim_t)4 << 30, (rlim_t)4 << 30};
    setrlimit(RLIMIT_AS, &rl);
#endif
    signal(SIGALRM, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    signal(SIGABRT, on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(report_case);

    static const char *const npy[] = {FIX "io/f4_2d.npy", FIX "io/u1_3d.npy", FIX "io/v2.npy",
                                      FIX "io/i8_0d.npy"};
    fuzz_files("npy", npy, NS(npy), 4000, fields_npy, npy_tokens, run_npy, NULL);

    static const char *const npz[] = {FIX "io/pair.npz", FIX "io/zip64.npz", FIX "io/stats.npz"};
    fuzz_files("npz", npz, NS(npz), 1500, fields_zip, NULL, run_npz, NULL);
    if (only_parser == NULL || strcmp(only_parser, "npz-member") == 0)
        member_campaign("npz-member", npz, NS(npz), 1500, fields_npy, npy_tokens, run_npz);

    static const char *const zip[] = {FIX "io/pair.npz", FIX "io/zip64.npz", FIX "io/stats.npz",
                                      FIX "ckpt/pth_nested.pth"};
    fuzz_files("zip", zip, NS(zip), 4000, fields_zip, NULL, run_zip, NULL);

    static const char *const st[] = {FIX "ckpt/st_model.safetensors",
                                     FIX "ckpt/st_mixed.safetensors"};
    fuzz_files("st", st, NS(st), 4000, fields_st, json_tokens, run_st, NULL);

    json_seeds();

    static const char *const pth[] = {FIX "ckpt/pth_legacy.pth", FIX "ckpt/pth_nested.pth",
                                      FIX "ckpt/pth_zip.pth"};
    fuzz_files("pth", pth, NS(pth), 2000, fields_pth, NULL, run_pth, NULL);
    static const char *const pthz[] = {FIX "ckpt/pth_zip.pth", FIX "ckpt/pth_nested.pth",
                                       FIX "ckpt/pth_proto4.pth"};
    if (only_parser == NULL || strcmp(only_parser, "pth-member") == 0)
        member_campaign("pth-member", pthz, NS(pthz), 2000, fields_pickle, NULL, run_pth);

    static const char *const pkl[] = {FIX "ckpt/pth_legacy.pth"};
    fuzz_files("pickle", pkl, NS(pkl), 3000, fields_pickle, NULL, run_pickle, NULL);

    static const char *const mat[] = {FIX "io/labels_plain.mat", FIX "io/ml_be.mat",
                                      FIX "io/labels_z.mat", FIX "io/setid_plain.mat"};
    fuzz_files("mat", mat, NS(mat), 4000, fields_mat, NULL, run_mat, NULL);

    static const char *const img[] = {FIX "img/dec_pal4.png", FIX "img/dec_gray16.png",
                                      FIX "img/dec_rgb_adam7.png", FIX "img/dec_rgb420.jpg",
                                      FIX "img/dec_progressive.jpg"};
    fuzz_files("img", img, NS(img), 3000, fields_img, NULL, run_img, png_post);

    static const char *const yaml[] = {FIX "pipe/foreach.yaml", FIX "pipe/always.yaml",
                                       FIX "pipe/foreach-params.yaml"};
    fuzz_files("yaml", yaml, NS(yaml), 3000, NULL, yaml_tokens, run_yaml, NULL);

    if (only_parser == NULL) {
        test_reproducers();
        test_structures();
    }
    if (only_case < 0)
        unlink(tmp_path);
    return test_done();
}
