#include "io/json.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64
#define JSON_MAX_LEN ((size_t)1 << 30)

struct parser {
    const char *p, *end;
    int line, depth;
    char *msg;
    size_t msglen;
};

static int fail(struct parser *ps, const char *fmt, ...)
{
    char buf[112];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (ps->msglen > 0)
        snprintf(ps->msg, ps->msglen, "json: line %d: %s", ps->line, buf);
    return -1;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n')
            ps->line++;
        else if (c != ' ' && c != '\t' && c != '\r')
            return;
        ps->p++;
    }
}

static int unexpected(struct parser *ps, const char *want)
{
    if (ps->p >= ps->end)
        return fail(ps, "expected %s, got end of input", want);
    unsigned char c = (unsigned char)*ps->p;
    if (c >= 0x20 && c < 0x7f)
        return fail(ps, "expected %s, got '%c'", want, c);
    return fail(ps, "expected %s, got byte 0x%02x", want, c);
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (no overlongs, no surrogates, <= U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0], cp, n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - s) < n)
        return 0;
    for (unsigned i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* ps->p is at the opening quote. The decoded string is never longer than the literal. */
static int parse_string(struct parser *ps, char **out)
{
    const char *s = ps->p + 1;
    size_t cap = 0;
    const char *q = s;
    while (q < ps->end && *q != '"') {
        if (*q == '\\' && ++q == ps->end)
            break;
        q++;
    }
    if (q >= ps->end)
        return fail(ps, "unterminated string");
    cap = (size_t)(q - s) + 1;
    char *o = xmalloc(cap), *w = o;
    const char *p = s;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) {
            free(o);
            return fail(ps, "control character 0x%02x in string", c);
        }
        if (c != '\\') {
            size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)q);
            if (n == 0) {
                free(o);
                return fail(ps, "invalid UTF-8 in string");
            }
            memcpy(w, p, n);
            w += n;
            p += n;
            continue;
        }
        p++;
        switch (*p) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (q - p < 5 || hex4(p + 1, &cp) == -1) {
                free(o);
                return fail(ps, "bad \\u escape");
            }
            p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                free(o);
                return fail(ps, "unpaired surrogate \\u%04x", cp);
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (q - p < 7 || p[1] != '\\' || p[2] != 'u' || hex4(p + 3, &lo) == -1 ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    free(o);
                    return fail(ps, "unpaired surrogate \\u%04x", cp);
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) {
                free(o);
                return fail(ps, "\\u0000 in string not supported");
            }
            w += put_utf8(w, cp);
            break;
        }
        default:
            free(o);
            return fail(ps, "bad escape in string");
        }
        p++;
    }
    *w = '\0';
    ps->p = q + 1;
    *out = o;
    return 0;
}

static int parse_number(struct parser *ps, double *out)
{
    const char *p = ps->p, *start = p;
    char buf[64];
    if (p < ps->end && *p == '-')
        p++;
    if (p >= ps->end || !(*p >= '0' && *p <= '9'))
        return fail(ps, "bad number");
    if (*p == '0')
        p++;
    else
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    if (p < ps->end && *p == '.') {
        p++;
        if (p >= ps->end || !(*p >= '0' && *p <= '9'))
            return fail(ps, "bad number");
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < ps->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= ps->end || !(*p >= '0' && *p <= '9'))
            return fail(ps, "bad number");
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    }
    if ((size_t)(p - start) >= sizeof buf)
        return fail(ps, "number too long");
    memcpy(buf, start, (size_t)(p - start));
    buf[p - start] = '\0';
    errno = 0;
    *out = strtod(buf, NULL);
    if (!isfinite(*out))
        return fail(ps, "number out of range");
    ps->p = p;
    return 0;
}

static int parse_value(struct parser *ps, struct json *j);

static int cmp_keyp(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

static int check_dups(struct parser *ps, struct json *j, int line)
{
    if (j->n < 2)
        return 0;
    char ***k = xmalloc((size_t)j->n * sizeof *k);
    for (int i = 0; i < j->n; i++)
        k[i] = &j->keys[i];
    qsort(k, (size_t)j->n, sizeof *k, cmp_keyp);
    for (int i = 1; i < j->n; i++)
        if (strcmp(*k[i], *k[i - 1]) == 0) {
            ps->line = line;
            fail(ps, "duplicate key \"%.60s\"", *k[i]);
            free(k);
            return -1;
        }
    free(k);
    return 0;
}

/* array or object; ps->p is at '[' or '{' */
static int parse_container(struct parser *ps, struct json *j, int obj)
{
    int cap = 0, line = ps->line;
    char close = obj ? '}' : ']';
    j->type = obj ? JSON_OBJECT : JSON_ARRAY;
    if (++ps->depth > JSON_MAX_DEPTH)
        return fail(ps, "nested deeper than %d", JSON_MAX_DEPTH);
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    for (;;) {
        if (j->n == cap) {
            cap = cap ? 2 * cap : 4;
            j->items = xrealloc(j->items, (size_t)cap * sizeof *j->items);
            if (obj)
                j->keys = xrealloc(j->keys, (size_t)cap * sizeof *j->keys);
        }
        skip_ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"')
                return unexpected(ps, "a string key");
            if (parse_string(ps, &j->keys[j->n]) == -1)
                return -1;
            memset(&j->items[j->n], 0, sizeof *j->items);
            j->n++;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return unexpected(ps, "':'");
            ps->p++;
            if (parse_value(ps, &j->items[j->n - 1]) == -1)
                return -1;
        } else {
            memset(&j->items[j->n], 0, sizeof *j->items);
            j->n++;
            if (parse_value(ps, &j->items[j->n - 1]) == -1)
                return -1;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        return unexpected(ps, obj ? "',' or '}'" : "',' or ']'");
    }
    ps->depth--;
    return obj ? check_dups(ps, j, line) : 0;
}

static int literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return unexpected(ps, "a value");
    ps->p += n;
    return 0;
}

static int parse_value(struct parser *ps, struct json *j)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return unexpected(ps, "a value");
    switch (*ps->p) {
    case '{':
        return parse_container(ps, j, 1);
    case '[':
        return parse_container(ps, j, 0);
    case '"':
        j->type = JSON_STRING;
        return parse_string(ps, &j->string);
    case 't':
        j->type = JSON_BOOL;
        j->boolean = 1;
        return literal(ps, "true");
    case 'f':
        j->type = JSON_BOOL;
        return literal(ps, "false");
    case 'n':
        j->type = JSON_NULL;
        return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
            j->type = JSON_NUMBER;
            return parse_number(ps, &j->number);
        }
        return unexpected(ps, "a value");
    }
}

static void json_free_inner(struct json *j)
{
    for (int i = 0; i < j->n; i++) {
        if (j->keys)
            free(j->keys[i]);
        json_free_inner(&j->items[i]);
    }
    free(j->keys);
    free(j->items);
    free(j->string);
}

struct json *json_parse(const char *text, size_t len, char *msg, size_t msglen)
{
    struct parser ps = {text, text + len, 1, 0, msg, msglen};
    struct json *j = xcalloc(1, sizeof *j);
    if (len > JSON_MAX_LEN) {
        fail(&ps, "text of %zu bytes is too large", len);
        goto bad;
    }
    if (parse_value(&ps, j) == -1)
        goto bad;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        unexpected(&ps, "end of input");
        goto bad;
    }
    return j;
bad:
    json_free(j);
    return NULL;
}

void json_free(struct json *j)
{
    if (j == NULL)
        return;
    json_free_inner(j);
    free(j);
}

const struct json *json_get(const struct json *obj, const char *key)
{
    if (obj == NULL || obj->type != JSON_OBJECT)
        return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

static int wrong_type(const char *key, const char *want, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "json: \"%.60s\": expected %s", key, want);
    return -1;
}

int json_get_number(const struct json *obj, const char *key, double def, double *out,
                    char *msg, size_t msglen)
{
    const struct json *v = json_get(obj, key);
    if (v == NULL || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_NUMBER)
        return wrong_type(key, "a number", msg, msglen);
    *out = v->number;
    return 0;
}

int json_get_bool(const struct json *obj, const char *key, int def, int *out, char *msg,
                  size_t msglen)
{
    const struct json *v = json_get(obj, key);
    if (v == NULL || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_BOOL)
        return wrong_type(key, "true or false", msg, msglen);
    *out = v->boolean;
    return 0;
}

int json_get_string(const struct json *obj, const char *key, const char *def,
                    const char **out, char *msg, size_t msglen)
{
    const struct json *v = json_get(obj, key);
    if (v == NULL || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_STRING)
        return wrong_type(key, "a string", msg, msglen);
    *out = v->string;
    return 0;
}

void json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

struct json *json_load(const char *path, char *msg, size_t msglen)
{
    unsigned char *buf;
    size_t len;
    struct json *j;
    if (util_read_file(path, &buf, &len, msg, msglen) == -1)
        return NULL;
    j = json_parse((const char *)buf, len, msg, msglen);
    free(buf);
    return j;
}
