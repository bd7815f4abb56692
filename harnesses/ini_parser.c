/* ini_parser.c - a libFuzzer-style harness (LLVMFuzzerTestOneInput, no main: the
 * runtime supplies main) around a small but realistic INI parser, with one planted bug.
 *
 * Syntax accepted:
 *   [section name]        a section; the name is trimmed, 1-64 characters of
 *                         [A-Za-z0-9_.-] and inner spaces; a repeated name reopens the
 *                         earlier section
 *   key = value           also "key: value"; the key is trimmed, 1-64 characters of
 *                         [A-Za-z0-9_.-]; pairs before any section go to the section ""
 *                         and a repeated key replaces the earlier value
 *   ; comment, # comment  whole-line comments; after a value, ';' or '#' starts a
 *                         comment when it follows whitespace
 *   key = "quoted value"  escapes \n \t \r \\ \" \' \; \# and \xHH (not \x00)
 *   line ending in '\'    continues on the next line (the backslash is dropped)
 * Values are trimmed and at most 1024 bytes; a logical line is at most 4096 bytes; at
 * most 64 sections and 256 keys per section. CRLF line ends are accepted; a NUL byte,
 * a syntax error or a broken limit rejects the whole input (no crash).
 * The parser builds malloc'd sections and entries and frees them before returning.
 *
 * The planted bug: an input that parses cleanly and has key "boom" in section "crash"
 * (header "[crash]", case-sensitive, spaces inside the brackets trimmed) calls abort().
 * E.g. "[crash]\nboom = 1\n". Anything else returns 0.
 *
 * LLVMFuzzerInitialize builds the character tables once; the harness builds them itself
 * if the runtime does not call it.
 */
#include "forkserver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 4096
#define MAX_NAME 64
#define MAX_VALUE 1024
#define MAX_SECTIONS 64
#define MAX_KEYS 256

enum ini_error {
    INI_OK,
    INI_ERR_SYNTAX,
    INI_ERR_NAME,
    INI_ERR_ESCAPE,
    INI_ERR_TOO_LONG,
    INI_ERR_LIMIT,
    INI_ERR_NOMEM,
};

struct entry {
    char *key;
    char *value;
};

struct section {
    char *name;
    struct entry *entries;
    size_t count, cap;
    struct section *next;
};

struct ini {
    struct section *first, *last;
    size_t nsections;
};

struct reader {
    const uint8_t *data;
    size_t size, pos;
    char line[MAX_LINE + 1];
};

/* ---- character tables, built once ---- */

enum { CC_SPACE = 1, CC_NAME = 2 };

static unsigned char char_class[256];
static unsigned char escape_of[256]; /* 0: not a valid escape */
static signed char hex_of[256];      /* -1: not a hex digit */
static int tables_ready;

static void build_tables(void)
{
    for (int c = 0; c < 256; c++) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f')
            char_class[c] = CC_SPACE;
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-')
            char_class[c] = CC_NAME;
        hex_of[c] = (signed char)(c >= '0' && c <= '9'   ? c - '0'
                                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                         : -1);
    }
    escape_of['n'] = '\n';
    escape_of['t'] = '\t';
    escape_of['r'] = '\r';
    escape_of['\\'] = '\\';
    escape_of['"'] = '"';
    escape_of['\''] = '\'';
    escape_of[';'] = ';';
    escape_of['#'] = '#';
    tables_ready = 1;
}

static int is_space(char c)
{
    return char_class[(unsigned char)c] & CC_SPACE;
}

static char *skip_space(char *s)
{
    while (is_space(*s))
        s++;
    return s;
}

/* Only whitespace or a comment may follow a header or a quoted value. */
static int at_line_end(char *s)
{
    s = skip_space(s);
    return *s == '\0' || *s == ';' || *s == '#';
}

/* ---- the document ---- */

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void ini_free(struct ini *ini)
{
    struct section *sec = ini->first;
    while (sec) {
        struct section *next = sec->next;
        for (size_t i = 0; i < sec->count; i++) {
            free(sec->entries[i].key);
            free(sec->entries[i].value);
        }
        free(sec->entries);
        free(sec->name);
        free(sec);
        sec = next;
    }
    memset(ini, 0, sizeof *ini);
}

static struct section *find_section(const struct ini *ini, const char *name, size_t n)
{
    for (struct section *sec = ini->first; sec; sec = sec->next)
        if (strlen(sec->name) == n && memcmp(sec->name, name, n) == 0)
            return sec;
    return NULL;
}

static enum ini_error open_section(struct ini *ini, const char *name, size_t n,
                                   struct section **out)
{
    struct section *sec = find_section(ini, name, n);
    if (!sec) {
        if (ini->nsections == MAX_SECTIONS)
            return INI_ERR_LIMIT;
        sec = calloc(1, sizeof *sec);
        if (!sec)
            return INI_ERR_NOMEM;
        sec->name = dup_range(name, n);
        if (!sec->name) {
            free(sec);
            return INI_ERR_NOMEM;
        }
        if (ini->last)
            ini->last->next = sec;
        else
            ini->first = sec;
        ini->last = sec;
        ini->nsections++;
    }
    *out = sec;
    return INI_OK;
}

static enum ini_error set_value(struct section *sec, const char *key, size_t klen,
                                const char *value, size_t vlen)
{
    char *v = dup_range(value, vlen);
    if (!v)
        return INI_ERR_NOMEM;
    for (size_t i = 0; i < sec->count; i++) {
        if (strlen(sec->entries[i].key) == klen && memcmp(sec->entries[i].key, key, klen) == 0) {
            free(sec->entries[i].value);
            sec->entries[i].value = v;
            return INI_OK;
        }
    }
    if (sec->count == MAX_KEYS) {
        free(v);
        return INI_ERR_LIMIT;
    }
    if (sec->count == sec->cap) {
        size_t cap = sec->cap ? sec->cap * 2 : 4;
        struct entry *grown = realloc(sec->entries, cap * sizeof *grown);
        if (!grown) {
            free(v);
            return INI_ERR_NOMEM;
        }
        sec->entries = grown;
        sec->cap = cap;
    }
    char *k = dup_range(key, klen);
    if (!k) {
        free(v);
        return INI_ERR_NOMEM;
    }
    sec->entries[sec->count++] = (struct entry){ .key = k, .value = v };
    return INI_OK;
}

static const char *ini_get(const struct ini *ini, const char *section, const char *key)
{
    const struct section *sec = find_section(ini, section, strlen(section));
    if (!sec)
        return NULL;
    for (size_t i = 0; i < sec->count; i++)
        if (strcmp(sec->entries[i].key, key) == 0)
            return sec->entries[i].value;
    return NULL;
}

/* ---- the parser ---- */

/* Reads the next logical line into r->line, joining lines that end in a backslash.
 * Returns 1 with a line, 0 at the end of the input, or -(an ini_error). */
static int next_line(struct reader *r)
{
    if (r->pos >= r->size)
        return 0;
    size_t len = 0;
    for (;;) {
        const uint8_t *start = r->data + r->pos;
        const uint8_t *nl = memchr(start, '\n', r->size - r->pos);
        size_t n = nl ? (size_t)(nl - start) : r->size - r->pos;
        r->pos += nl ? n + 1 : n;

        if (n > 0 && start[n - 1] == '\r')
            n--;
        int more = n > 0 && start[n - 1] == '\\';
        if (more)
            n--;
        if (memchr(start, '\0', n))
            return -INI_ERR_SYNTAX;
        if (n > MAX_LINE - len)
            return -INI_ERR_TOO_LONG;
        memcpy(r->line + len, start, n);
        len += n;
        if (!more || r->pos >= r->size)
            break;
    }
    r->line[len] = '\0';
    return 1;
}

/* s points just past '['. */
static enum ini_error parse_section(struct ini *ini, struct section **cur, char *s)
{
    char *close = strchr(s, ']');
    if (!close || !at_line_end(close + 1))
        return INI_ERR_SYNTAX;
    char *name = skip_space(s);
    char *end = close;
    while (end > name && is_space(end[-1]))
        end--;
    size_t n = (size_t)(end - name);
    if (n == 0 || n > MAX_NAME)
        return INI_ERR_NAME;
    for (size_t i = 0; i < n; i++)
        if (!(char_class[(unsigned char)name[i]] & (CC_NAME | CC_SPACE)))
            return INI_ERR_NAME;
    return open_section(ini, name, n, cur);
}

/* s points just past the opening quote; the unescaped text goes to out. */
static enum ini_error parse_quoted(char *s, char *out, size_t *len)
{
    size_t n = 0;
    for (;;) {
        unsigned char c = (unsigned char)*s++;
        if (c == '\0')
            return INI_ERR_SYNTAX; /* unterminated */
        if (c == '"')
            break;
        if (c == '\\') {
            unsigned char e = (unsigned char)*s++;
            if (e == 'x') {
                /* hex_of['\0'] is -1, so this never reads past the terminator */
                int hi = hex_of[(unsigned char)s[0]];
                int lo = hi < 0 ? -1 : hex_of[(unsigned char)s[1]];
                if (lo < 0 || (hi | lo) == 0)
                    return INI_ERR_ESCAPE;
                c = (unsigned char)(hi << 4 | lo);
                s += 2;
            } else if (escape_of[e]) {
                c = escape_of[e];
            } else {
                return INI_ERR_ESCAPE;
            }
        }
        if (n == MAX_VALUE)
            return INI_ERR_TOO_LONG;
        out[n++] = (char)c;
    }
    if (!at_line_end(s))
        return INI_ERR_SYNTAX;
    *len = n;
    return INI_OK;
}

/* s points at the first non-blank character of an unquoted value. */
static enum ini_error parse_plain(char *s, char *out, size_t *len)
{
    char *end = s;
    while (*end && !((*end == ';' || *end == '#') && (end == s || is_space(end[-1]))))
        end++;
    while (end > s && is_space(end[-1]))
        end--;
    size_t n = (size_t)(end - s);
    if (n > MAX_VALUE)
        return INI_ERR_TOO_LONG;
    memcpy(out, s, n);
    *len = n;
    return INI_OK;
}

static enum ini_error parse_pair(struct ini *ini, struct section **cur, char *s)
{
    size_t klen = strcspn(s, "=:");
    if (s[klen] == '\0')
        return INI_ERR_SYNTAX;
    char *vstart = skip_space(s + klen + 1);
    while (klen > 0 && is_space(s[klen - 1]))
        klen--;
    if (klen == 0 || klen > MAX_NAME)
        return INI_ERR_NAME;
    for (size_t i = 0; i < klen; i++)
        if (!(char_class[(unsigned char)s[i]] & CC_NAME))
            return INI_ERR_NAME;

    char value[MAX_VALUE];
    size_t vlen = 0;
    enum ini_error err = *vstart == '"' ? parse_quoted(vstart + 1, value, &vlen)
                                        : parse_plain(vstart, value, &vlen);
    if (err)
        return err;
    if (!*cur && (err = open_section(ini, "", 0, cur)))
        return err;
    return set_value(*cur, s, klen, value, vlen);
}

static enum ini_error ini_parse(struct ini *ini, const uint8_t *data, size_t size)
{
    struct reader r = { .data = data, .size = size };
    struct section *cur = NULL;
    int got;

    while ((got = next_line(&r)) > 0) {
        char *s = skip_space(r.line);
        enum ini_error err = INI_OK;
        if (*s == '\0' || *s == ';' || *s == '#')
            continue;
        if (*s == '[')
            err = parse_section(ini, &cur, s + 1);
        else
            err = parse_pair(ini, &cur, s);
        if (err)
            return err;
    }
    return got < 0 ? (enum ini_error)-got : INI_OK;
}

/* ---- a consumer of the parsed document ---- */

static volatile size_t sink;

static int is_true(const char *v)
{
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
           strcmp(v, "on") == 0;
}

static void use_config(const struct ini *ini)
{
    size_t flags = 0;
    for (const struct section *sec = ini->first; sec; sec = sec->next)
        for (size_t i = 0; i < sec->count; i++)
            flags += is_true(sec->entries[i].value);
    sink = flags;

    const char *port = ini_get(ini, "server", "port");
    if (port && strtol(port, NULL, 10) > 65535)
        sink = 0;

    if (ini_get(ini, "crash", "boom"))
        abort(); /* the planted bug */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    build_tables();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tables_ready)
        build_tables();

    struct ini ini = { 0 };
    if (ini_parse(&ini, data, size) == INI_OK)
        use_config(&ini);
    ini_free(&ini);
    return 0;
}
