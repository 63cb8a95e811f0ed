/* json: values, escapes to UTF-8, strictness (RFC 8259 rejects), line numbers, getters and
   the string writer round trip. */
#include "io/json.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static struct json *parse(const char *s, char *msg)
{
    return json_parse(s, strlen(s), msg, 128);
}

static void test_values(void)
{
    char msg[128] = "";
    const char *doc = " {\"a\": [1, -2.5e2, 0, -0, 3.25E-1], \"b\": {\"c\": true, \"d\": false,"
                      " \"e\": null}, \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\ty\", \"\": \"\"}\n";
    struct json *j = parse(doc, msg);
    CHECK(j != NULL, "valid document parses (%s)", msg);
    if (j == NULL)
        return;
    const struct json *a = json_get(j, "a"), *b = json_get(j, "b");
    CHECK(j->type == JSON_OBJECT && j->n == 4, "object with 4 members");
    CHECK(a && a->type == JSON_ARRAY && a->n == 5 && a->items[0].number == 1 &&
              a->items[1].number == -250 && a->items[2].number == 0 &&
              a->items[4].number == 0.325,
          "numbers");
    CHECK(b && b->type == JSON_OBJECT && json_get(b, "c")->boolean == 1 &&
              json_get(b, "c")->type == JSON_BOOL && json_get(b, "d")->boolean == 0 &&
              json_get(b, "e")->type == JSON_NULL,
          "true, false, null");
    CHECK(strcmp(json_get(j, "s")->string, "x\"\\/\b\f\n\r\ty") == 0, "simple escapes");
    CHECK(json_get(j, "") != NULL && json_get(j, "")->string[0] == '\0', "empty key and value");
    CHECK(json_get(j, "zz") == NULL && json_get(a, "a") == NULL && json_get(NULL, "a") == NULL,
          "json_get misses return NULL");

    double x;
    int bo;
    const char *str;
    CHECK(json_get_number(b, "missing", 7, &x, msg, sizeof msg) == 0 && x == 7,
          "number default when absent");
    CHECK(json_get_number(b, "e", 8, &x, msg, sizeof msg) == 0 && x == 8,
          "number default when null");
    CHECK(json_get_number(b, "c", 8, &x, msg, sizeof msg) == -1 &&
              strcmp(msg, "json: \"c\": expected a number") == 0,
          "number of the wrong type: %s", msg);
    CHECK(json_get_bool(b, "c", 0, &bo, msg, sizeof msg) == 0 && bo == 1, "bool getter");
    CHECK(json_get_bool(j, "s", 0, &bo, msg, sizeof msg) == -1, "bool of the wrong type");
    CHECK(json_get_string(j, "s", NULL, &str, msg, sizeof msg) == 0 && str[0] == 'x',
          "string getter");
    CHECK(json_get_string(j, "nope", "dflt", &str, msg, sizeof msg) == 0 &&
              strcmp(str, "dflt") == 0,
          "string default");
    CHECK(json_get_string(j, "a", NULL, &str, msg, sizeof msg) == -1 &&
              strstr(msg, "\"a\"") != NULL,
          "string of the wrong type: %s", msg);
    json_free(j);

    j = parse("\"\\u00e9\\u20AC\\ud83d\\ude00 caf\xc3\xa9\"", msg);
    CHECK(j && strcmp(j->string, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 caf\xc3\xa9") == 0,
          "\\u escapes and surrogate pairs become UTF-8");
    json_free(j);
    j = parse("  42 ", msg);
    CHECK(j && j->type == JSON_NUMBER && j->number == 42, "scalar top-level value");
    json_free(j);
    j = parse("[[[]],{}]", msg);
    CHECK(j && j->n == 2 && j->items[0].n == 1 && j->items[1].type == JSON_OBJECT,
          "empty containers");
    json_free(j);
    j = parse("[0.1, 1e-7, -3.5, 6.02214076e23]", msg);
    float got[4] = {0}, want[4] = {0.1f, 1e-7f, -3.5f, 6.02214076e23f};
    for (int i = 0; j && i < j->n && i < 4; i++)
        got[i] = (float)j->items[i].number;
    test_close("decimal numbers", got, want, 4, 0, 0);
    json_free(j);
    j = parse("123456789012345678", msg);
    CHECK(j && j->number == 123456789012345678.0, "large integer as double");
    json_free(j);
}

static void reject(const char *doc, const char *want)
{
    char msg[128] = "";
    struct json *j = parse(doc, msg);
    CHECK(j == NULL && strstr(msg, want) != NULL, "rejects %s: %s", want, msg);
    json_free(j);
}

static void test_errors(void)
{
    reject("{\"a\": 1,}", "json: line 1: expected a string key");
    reject("[1, 2,]", "expected a value");
    reject("{\n\"a\"\n  1}", "json: line 3: expected ':', got '1'");
    reject("{\"a\": 1, \"b\": 2, \"a\": 3}", "duplicate key \"a\"");
    reject("[{\"x\":1},\n{\"y\":1,\n\"y\":2}]", "line 2: duplicate key \"y\"");
    reject("\"\\ud83d\"", "unpaired surrogate");
    reject("\"\\ude00x\"", "unpaired surrogate");
    reject("\"\\ud83d\\u0041\"", "unpaired surrogate");
    reject("\"\\u12\"", "bad \\u escape");
    reject("\"\\u0000\"", "\\u0000");
    reject("\"\\x\"", "bad escape");
    reject("\"a\tb\"", "control character 0x09");
    reject("\"abc", "unterminated string");
    reject("\"abc\\", "unterminated string");
    reject("\"\xc3\x28\"", "invalid UTF-8");
    reject("\"\xc0\xaf\"", "invalid UTF-8");
    reject("\"\xed\xa0\x80\"", "invalid UTF-8");
    reject("01", "expected end of input");
    reject("1.", "bad number");
    reject(".5", "expected a value");
    reject("+1", "expected a value");
    reject("-", "bad number");
    reject("1e", "bad number");
    reject("1e400", "out of range");
    reject("NaN", "expected a value");
    reject("tru", "expected a value");
    reject("nulll", "expected end of input");
    reject("", "expected a value, got end of input");
    reject("   ", "got end of input");
    reject("{} {}", "expected end of input");
    reject("[1 2]", "expected ',' or ']'");
    reject("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    reject("[\x01]", "got byte 0x01");

    char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    reject(deep, "nested deeper than 64");
    char msg[128];
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    struct json *j = parse(deep, msg);
    CHECK(j != NULL, "64 levels of nesting are fine");
    json_free(j);

    /* the length bound is the caller's len, not NUL */
    j = json_parse("[1]xyz", 3, msg, sizeof msg);
    CHECK(j && j->n == 1, "parses exactly len bytes");
    json_free(j);
    j = json_parse("[1]", 2, msg, sizeof msg);
    CHECK(j == NULL, "a value cut by len is an error: %s", msg);
}

static void test_write(void)
{
    const char *s = "q\"b\\n\n t\t c\x01 \x1f \xc3\xa9 /";
    char buf[256], msg[128];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    json_write_string(f, s);
    fclose(f);
    CHECK(strcmp(buf, "\"q\\\"b\\\\n\\n t\\t c\\u0001 \\u001f \xc3\xa9 /\"") == 0,
          "json_write_string escapes: %s", buf);
    struct json *j = parse(buf, msg);
    CHECK(j && strcmp(j->string, s) == 0, "written string parses back to the original");
    json_free(j);
}

int main(void)
{
    test_values();
    test_errors();
    test_write();
    return test_done();
}
