/* A small strict JSON parser (RFC 8259) for safetensors headers and diffusers config.json,
   plus an escaping helper for writers. Depth and size are bounded; numbers are doubles. */
#ifndef JSON_H
#define JSON_H
#include <stddef.h>
#include <stdio.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    int boolean;
    double number;
    char *string;         /* JSON_STRING, NUL-terminated, UTF-8 */
    int n;                /* items in an array or object */
    char **keys;          /* JSON_OBJECT: n keys */
    struct json *items;   /* JSON_ARRAY/OBJECT: n values */
};

/* Parses exactly one value (surrounding white space allowed). Returns NULL and fills msg
   ("json: line 3: expected ':'") on error. Duplicate object keys are an error. */
struct json *json_parse(const char *text, size_t len, char *msg, size_t msglen);
/* Reads and parses a whole file ("-" = stdin); NULL and msg on a read or parse error. */
struct json *json_load(const char *path, char *msg, size_t msglen);
void json_free(struct json *j);
/* object member by key, or NULL */
const struct json *json_get(const struct json *obj, const char *key);
/* typed look-ups with a default when the key is absent or null; return -1 (msg) when present
   with the wrong type */
int json_get_number(const struct json *obj, const char *key, double def, double *out,
                    char *msg, size_t msglen);
int json_get_bool(const struct json *obj, const char *key, int def, int *out, char *msg,
                  size_t msglen);
/* *out points into the tree (or def) */
int json_get_string(const struct json *obj, const char *key, const char *def,
                    const char **out, char *msg, size_t msglen);
/* writes s as a JSON string literal with quotes and escapes */
void json_write_string(FILE *f, const char *s);
#endif
