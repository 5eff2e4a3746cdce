/*
 * json.c - bounded JSON parsing in front of cJSON, and typed field readers.
 *
 * Input comes from cameras and the network, so nothing reaches cJSON before
 * one linear pre-scan of the raw bytes has checked what cJSON is lax about:
 *
 *   outside strings  only JSON whitespace (space, tab, LF, CR) among control
 *                    bytes, only ASCII, numbers in the strict JSON grammar
 *                    (cJSON takes "01" and "1." but a browser does not, and
 *                    the broker must not pass on what a dashboard rejects);
 *   inside strings   strict UTF-8 (OpenSSL's UTF8_getc refuses overlong
 *                    forms, surrogates and anything above U+10FFFF), no raw
 *                    control byte, and no \u0000 escape (cJSON would cut the
 *                    string short at the NUL and hide what followed);
 *   structure        '{' and '[' outside strings counted against the depth
 *                    limit, so a deep document never recurses inside cJSON.
 *
 * After cJSON has built the tree: the value must be followed only by
 * whitespace, must be an object, and no object may repeat a key - cJSON
 * returns the first duplicate, a browser the last, and a message must mean
 * the same thing to the broker plugin that validated it and to every reader.
 *
 * bc_json_scan_flat is a shortcut for the one message that is large and
 * frequent - an upload chunk, ~44 KB of base64 in one string, read by the
 * broker plugin, the gateway and the vault. It recognises only the plain
 * form every producer prints: one object, nothing nested, names and string
 * values of bytes the pre-scan passes without a closer look (0x20..0x7f
 * but '"' and '\\': no escape, no multi-byte UTF-8), integers of at most
 * 15 digits, true/false/null, no name twice. Every such text is one that
 * bc_json_parse accepts with the same values (cJSON keeps those bytes as
 * they are and reads such an integer exactly), so a reader may use the
 * members directly; for anything else it answers "not flat" and never a
 * reason, and the reader goes through bc_json_parse, which accepts or
 * refuses it and says why. It costs one pass over the text and no
 * allocation, where cJSON copies every string into the tree.
 */
#include "proto/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>

typedef struct scanner {
    const unsigned char *p;
    size_t len;
    size_t pos;
    int depth;
    bc_error *err;
} scanner;

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static size_t skip_digits(const scanner *s, size_t i)
{
    while (i < s->len && is_digit(s->p[i]))
        i++;
    return i;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? starting at s->pos. cJSON
 * reads a number as the longest run of [0-9+-.eE], so the grammar must
 * cover exactly that run: whatever follows must not be one of those. */
static bc_status scan_number(scanner *s)
{
    size_t i = s->pos;
    if (s->p[i] == '-')
        i++;
    if (i >= s->len || !is_digit(s->p[i]))
        goto bad;
    if (s->p[i] == '0')
        i++;
    else
        i = skip_digits(s, i);
    if (i < s->len && s->p[i] == '.') {
        size_t start = ++i;
        i = skip_digits(s, i);
        if (i == start)
            goto bad;
    }
    if (i < s->len && (s->p[i] == 'e' || s->p[i] == 'E')) {
        i++;
        if (i < s->len && (s->p[i] == '+' || s->p[i] == '-'))
            i++;
        size_t start = i;
        i = skip_digits(s, i);
        if (i == start)
            goto bad;
    }
    if (i < s->len && strchr("0123456789+-.eE", s->p[i]) != NULL)
        goto bad;
    s->pos = i;
    return BC_OK;
bad:
    return bc_fail(s->err, BC_ERR_PARSE, "malformed number at byte %zu", s->pos);
}

/* A backslash escape at s->pos (pointing at the backslash). */
static bc_status scan_escape(scanner *s)
{
    size_t i = s->pos + 1;
    if (i >= s->len)
        return bc_fail(s->err, BC_ERR_PARSE, "unterminated string");
    unsigned char c = s->p[i];
    if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
        s->pos = i + 1;
        return BC_OK;
    }
    if (c != 'u' || s->len - i < 5)
        return bc_fail(s->err, BC_ERR_PARSE, "bad escape in string at byte %zu", s->pos);
    for (size_t k = 1; k <= 4; k++) {
        if (!is_hex(s->p[i + k]))
            return bc_fail(s->err, BC_ERR_PARSE, "bad \\u escape at byte %zu", s->pos);
    }
    if (memcmp(s->p + i + 1, "0000", 4) == 0)
        return bc_fail(s->err, BC_ERR_PARSE, "string contains \\u0000 at byte %zu", s->pos);
    s->pos = i + 5;
    return BC_OK;
}

enum { PLAIN_BLOCK = 32 };

/* 1 when c inside a string needs a closer look: the quote, the backslash,
 * a control byte or a byte of a multi-byte UTF-8 sequence. */
static unsigned string_special(unsigned char c)
{
    return (unsigned)(c < 0x20) | (unsigned)(c >= 0x80) | (unsigned)(c == '"') |
           (unsigned)(c == '\\');
}

/* From i, skips whole blocks of plain bytes (printable ASCII but '"' and
 * '\\'); returns the start of the first block that holds another byte or
 * is cut by the end. Upload chunks are ~44 KB of base64 in one string: a
 * branch-free test per block (vectorised by the compiler) instead of four
 * branches per byte. */
static size_t skip_plain(const unsigned char *p, size_t i, size_t len)
{
    while (len - i >= PLAIN_BLOCK) {
        unsigned special = 0;
        for (size_t k = 0; k < PLAIN_BLOCK; k++)
            special |= string_special(p[i + k]);
        if (special != 0)
            break;
        i += PLAIN_BLOCK;
    }
    return i;
}

/* A string from its opening quote at s->pos to just past its closing quote. */
static bc_status scan_string(scanner *s)
{
    s->pos++;
    size_t resume = s->pos; /* the next block skip is tried from here */
    while (s->pos < s->len) {
        if (s->pos >= resume) {
            s->pos = skip_plain(s->p, s->pos, s->len);
            resume = s->pos + PLAIN_BLOCK; /* this block goes byte by byte */
            if (s->pos >= s->len)
                break;
        }
        unsigned char c = s->p[s->pos];
        if (c == '"') {
            s->pos++;
            return BC_OK;
        }
        if (c == '\\') {
            bc_status rc = scan_escape(s);
            if (rc != BC_OK)
                return rc;
            continue;
        }
        if (c < 0x20)
            return bc_fail(s->err, BC_ERR_PARSE, "control byte 0x%02x in string at byte %zu", c,
                           s->pos);
        if (c < 0x80) {
            s->pos++;
            continue;
        }
        size_t avail = s->len - s->pos;
        unsigned long cp = 0;
        int n = UTF8_getc(s->p + s->pos, avail > 4 ? 4 : (int)avail, &cp);
        if (n <= 0)
            return bc_fail(s->err, BC_ERR_PARSE, "invalid UTF-8 at byte %zu", s->pos);
        s->pos += (size_t)n;
    }
    return bc_fail(s->err, BC_ERR_PARSE, "unterminated string");
}

/* One byte outside any string. Structure and literals are left to cJSON. */
static bc_status scan_token(scanner *s)
{
    unsigned char c = s->p[s->pos];
    if (c == '"')
        return scan_string(s);
    if (c == '-' || is_digit(c))
        return scan_number(s);
    if (c == '{' || c == '[') {
        if (++s->depth > BC_JSON_MAX_DEPTH)
            return bc_fail(s->err, BC_ERR_TOO_BIG, "nesting deeper than %d levels",
                           BC_JSON_MAX_DEPTH);
    } else if (c == '}' || c == ']') {
        s->depth--;
    } else if (c >= 0x80 || (c < 0x20 && !is_json_space(c))) {
        return bc_fail(s->err, BC_ERR_PARSE, "byte 0x%02x outside a string at byte %zu", c, s->pos);
    }
    s->pos++;
    return BC_OK;
}

static bc_status prescan(const char *buf, size_t len, bc_error *err)
{
    scanner s = {.p = (const unsigned char *)buf, .len = len, .pos = 0, .depth = 0, .err = err};
    while (s.pos < s.len) {
        bc_status rc = scan_token(&s);
        if (rc != BC_OK)
            return rc;
    }
    return BC_OK;
}

/* ---- the flat shortcut (see the top) ---- */

typedef struct flat {
    const unsigned char *p;
    size_t len;
    size_t pos;
} flat;

static void flat_space(flat *f)
{
    while (f->pos < f->len && is_json_space(f->p[f->pos]))
        f->pos++;
}

/* Skips whitespace, then takes c if it is next. */
static bool flat_take(flat *f, unsigned char c)
{
    flat_space(f);
    if (f->pos < f->len && f->p[f->pos] == c) {
        f->pos++;
        return true;
    }
    return false;
}

/* A string of plain bytes at f->pos (its opening quote). */
static bool flat_string(flat *f, const char **text, size_t *len)
{
    if (f->pos >= f->len || f->p[f->pos] != '"')
        return false;
    size_t start = f->pos + 1;
    size_t i = skip_plain(f->p, start, f->len);
    while (i < f->len && string_special(f->p[i]) == 0)
        i++;
    if (i >= f->len || f->p[i] != '"')
        return false; /* an escape, a control or non-ASCII byte, or no end */
    *text = (const char *)f->p + start;
    *len = i - start;
    f->pos = i + 1;
    return true;
}

/* -?(0|[1-9][0-9]{0,14}) not followed by a byte cJSON would read on. */
static bool flat_integer(flat *f, int64_t *out)
{
    enum { DIGITS_MAX = 15 }; /* < 2^53: exact as cJSON's double */
    size_t i = f->pos;
    bool negative = i < f->len && f->p[i] == '-';
    if (negative)
        i++;
    size_t start = i;
    while (i < f->len && is_digit(f->p[i]) && i - start <= DIGITS_MAX)
        i++;
    size_t digits = i - start;
    if (digits == 0 || digits > DIGITS_MAX || (digits > 1 && f->p[start] == '0'))
        return false;
    if (i < f->len && memchr("0123456789+-.eE", f->p[i], 15) != NULL)
        return false;
    int64_t v = 0;
    for (size_t k = start; k < i; k++)
        v = v * 10 + (f->p[k] - '0');
    *out = negative ? -v : v;
    f->pos = i;
    return true;
}

static bool flat_word(flat *f, const char *word)
{
    size_t n = strlen(word);
    if (f->len - f->pos < n || memcmp(f->p + f->pos, word, n) != 0)
        return false;
    f->pos += n;
    return true;
}

static bool flat_value(flat *f, bc_json_flat_member *m)
{
    flat_space(f);
    if (f->pos >= f->len)
        return false;
    unsigned char c = f->p[f->pos];
    if (c == '"') {
        m->type = BC_JSON_FLAT_STRING;
        return flat_string(f, &m->text, &m->text_len);
    }
    if (c == '-' || is_digit(c)) {
        m->type = BC_JSON_FLAT_INT;
        return flat_integer(f, &m->number);
    }
    if (flat_word(f, "true"))
        m->type = BC_JSON_FLAT_TRUE;
    else if (flat_word(f, "false"))
        m->type = BC_JSON_FLAT_FALSE;
    else if (flat_word(f, "null"))
        m->type = BC_JSON_FLAT_NULL;
    else
        return false; /* an object, an array, or not JSON */
    return true;
}

static bool flat_named_before(const bc_json_flat_member *members, size_t count,
                              const bc_json_flat_member *m)
{
    for (size_t i = 0; i < count; i++) {
        if (members[i].name_len == m->name_len &&
            memcmp(members[i].name, m->name, m->name_len) == 0)
            return true;
    }
    return false;
}

bool bc_json_scan_flat(const char *buf, size_t len, size_t max_len, bc_json_flat_member *members,
                       size_t cap, size_t *count)
{
    if (count == NULL || members == NULL || buf == NULL || len == 0 || len > max_len)
        return false;
    *count = 0;
    flat f = {.p = (const unsigned char *)buf, .len = len, .pos = 0};
    if (!flat_take(&f, '{'))
        return false;
    bool more = !flat_take(&f, '}');
    while (more) {
        if (*count == cap)
            return false;
        bc_json_flat_member *m = &members[*count];
        memset(m, 0, sizeof(*m));
        flat_space(&f);
        if (!flat_string(&f, &m->name, &m->name_len) || !flat_take(&f, ':') || !flat_value(&f, m) ||
            flat_named_before(members, *count, m))
            return false;
        (*count)++;
        if (flat_take(&f, '}'))
            more = false;
        else if (!flat_take(&f, ','))
            return false;
    }
    flat_space(&f);
    return f.pos == f.len;
}

const bc_json_flat_member *bc_json_flat_find(const bc_json_flat_member *members, size_t count,
                                             const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < count; i++) {
        if (members[i].name_len == n && memcmp(members[i].name, name, n) == 0)
            return &members[i];
    }
    return NULL;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts the member names of one object (at most a few thousand, bounded by
 * the input size) and looks for neighbours that are equal. */
static bc_status check_object_keys(const cJSON *obj, bc_error *err)
{
    size_t n = 0;
    for (const cJSON *it = obj->child; it != NULL; it = it->next)
        n++;
    if (n < 2)
        return BC_OK;
    const char **names = malloc(n * sizeof(*names));
    if (names == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory to check object keys");
    size_t i = 0;
    for (const cJSON *it = obj->child; it != NULL; it = it->next)
        names[i++] = it->string;
    qsort(names, n, sizeof(*names), compare_names);
    bc_status rc = BC_OK;
    for (i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = bc_fail(err, BC_ERR_PARSE, "field '%.64s' appears twice", names[i]);
            break;
        }
    }
    free(names);
    return rc;
}

/* Recursion is bounded by BC_JSON_MAX_DEPTH, checked before cJSON ran. */
static bc_status check_keys_unique(const cJSON *node, bc_error *err)
{
    if (cJSON_IsObject(node)) {
        bc_status rc = check_object_keys(node, err);
        if (rc != BC_OK)
            return rc;
    }
    for (const cJSON *it = node->child; it != NULL; it = it->next) {
        bc_status rc = check_keys_unique(it, err);
        if (rc != BC_OK)
            return rc;
    }
    return BC_OK;
}

bc_status bc_json_parse(const char *buf, size_t len, size_t max_len, cJSON **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the parsed JSON");
    *out = NULL;
    if (buf == NULL || len == 0)
        return bc_fail(err, BC_ERR_PARSE, "empty message");
    if (len > max_len)
        return bc_fail(err, BC_ERR_TOO_BIG, "message of %zu bytes is over the limit of %zu", len,
                       max_len);
    bc_status rc = prescan(buf, len, err);
    if (rc != BC_OK)
        return rc;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL)
        return bc_fail(err, BC_ERR_PARSE, "not valid JSON (at byte %td)",
                       end != NULL ? end - buf : (ptrdiff_t)0);
    size_t pos = (size_t)(end - buf);
    while (pos < len && is_json_space((unsigned char)buf[pos]))
        pos++;
    if (pos != len) {
        rc = bc_fail(err, BC_ERR_PARSE, "trailing data after the JSON value at byte %zu", pos);
        goto cleanup;
    }
    if (!cJSON_IsObject(root)) {
        rc = bc_fail(err, BC_ERR_TYPE, "message is not a JSON object");
        goto cleanup;
    }
    rc = check_keys_unique(root, err);
    if (rc != BC_OK)
        goto cleanup;
    *out = root;
    return BC_OK;
cleanup:
    cJSON_Delete(root);
    return rc;
}

/* The member called name, or NULL; fills err for an absent required one. */
static const cJSON *find_field(const cJSON *obj, const char *name, bc_json_need need, bc_status *rc,
                               bc_error *err)
{
    *rc = BC_OK;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL && need == BC_JSON_REQUIRED)
        *rc = bc_fail(err, BC_ERR_MISSING, "field '%s' is missing", name);
    return item;
}

int bc_json_has(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

bc_status bc_json_check_version(const cJSON *obj, bc_error *err)
{
    int64_t v = 0;
    bc_status rc =
        bc_json_get_int(obj, "v", BC_JSON_REQUIRED, BC_JSON_INT_MIN, BC_JSON_INT_MAX, &v, err);
    if (rc == BC_ERR_INVAL)
        return bc_fail(err, BC_ERR_VERSION, "field 'v' is not an integer version");
    if (rc != BC_OK)
        return rc;
    if (v != BC_JSON_SCHEMA_VERSION)
        return bc_fail(err, BC_ERR_VERSION, "field 'v': version %" PRId64 " is not supported", v);
    return BC_OK;
}

bc_status bc_json_get_string_ref(const cJSON *obj, const char *name, bc_json_need need,
                                 size_t max_len, const char **out, size_t *len, bc_error *err)
{
    bc_status rc;
    const cJSON *item = find_field(obj, name, need, &rc, err);
    if (item == NULL)
        return rc;
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return bc_fail(err, BC_ERR_TYPE, "field '%s' is not a string", name);
    size_t n = strlen(item->valuestring);
    if (n > max_len)
        return bc_fail(err, BC_ERR_INVAL, "field '%s' is longer than %zu bytes", name, max_len);
    *out = item->valuestring;
    *len = n;
    return BC_OK;
}

bc_status bc_json_get_string(const cJSON *obj, const char *name, bc_json_need need, char *out,
                             size_t size, bc_error *err)
{
    if (size == 0)
        return bc_fail(err, BC_ERR_INVAL, "no room for field '%s'", name);
    const char *s = NULL;
    size_t n = 0;
    bc_status rc = bc_json_get_string_ref(obj, name, need, size - 1, &s, &n, err);
    if (rc != BC_OK || s == NULL)
        return rc;
    memcpy(out, s, n + 1);
    return BC_OK;
}

bc_status bc_json_get_int(const cJSON *obj, const char *name, bc_json_need need, int64_t min,
                          int64_t max, int64_t *out, bc_error *err)
{
    bc_status rc;
    const cJSON *item = find_field(obj, name, need, &rc, err);
    if (item == NULL)
        return rc;
    if (!cJSON_IsNumber(item))
        return bc_fail(err, BC_ERR_TYPE, "field '%s' is not a number", name);
    /* In range first (this also refuses NaN and infinities), so that the
     * conversion is defined; then integral if converting back is exact. */
    double d = item->valuedouble;
    if (!(d >= (double)BC_JSON_INT_MIN && d <= (double)BC_JSON_INT_MAX) || (double)(int64_t)d != d)
        return bc_fail(err, BC_ERR_INVAL, "field '%s' is not an integer within +-2^53", name);
    int64_t v = (int64_t)d;
    if (v < min || v > max)
        return bc_fail(err, BC_ERR_INVAL,
                       "field '%s': %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]", name, v,
                       min, max);
    *out = v;
    return BC_OK;
}

bc_status bc_json_get_bool(const cJSON *obj, const char *name, bc_json_need need, bool *out,
                           bc_error *err)
{
    bc_status rc;
    const cJSON *item = find_field(obj, name, need, &rc, err);
    if (item == NULL)
        return rc;
    if (!cJSON_IsBool(item))
        return bc_fail(err, BC_ERR_TYPE, "field '%s' is not true or false", name);
    *out = cJSON_IsTrue(item) ? true : false;
    return BC_OK;
}

bc_status bc_json_get_object(const cJSON *obj, const char *name, bc_json_need need,
                             const cJSON **out, bc_error *err)
{
    bc_status rc;
    const cJSON *item = find_field(obj, name, need, &rc, err);
    if (item == NULL)
        return rc;
    if (!cJSON_IsObject(item))
        return bc_fail(err, BC_ERR_TYPE, "field '%s' is not an object", name);
    *out = item;
    return BC_OK;
}

bc_status bc_json_get_array(const cJSON *obj, const char *name, bc_json_need need, size_t max_items,
                            const cJSON **out, bc_error *err)
{
    bc_status rc;
    const cJSON *item = find_field(obj, name, need, &rc, err);
    if (item == NULL)
        return rc;
    if (!cJSON_IsArray(item))
        return bc_fail(err, BC_ERR_TYPE, "field '%s' is not an array", name);
    size_t n = 0;
    for (const cJSON *it = item->child; it != NULL; it = it->next)
        n++;
    if (n > max_items)
        return bc_fail(err, BC_ERR_INVAL, "field '%s' has more than %zu items", name, max_items);
    *out = item;
    return BC_OK;
}

int bc_json_hex_valid(const char *s, size_t digits)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < digits; i++) {
        if (!is_digit((unsigned char)s[i]) && (s[i] < 'a' || s[i] > 'f'))
            return 0;
    }
    return s[digits] == '\0';
}

int bc_json_text_valid(const char *s)
{
    if (s == NULL)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    }
    return 1;
}

bc_status bc_json_new_message(cJSON **out)
{
    if (out == NULL)
        return BC_ERR_INVAL;
    *out = cJSON_CreateObject();
    if (*out == NULL)
        return BC_ERR_NOMEM;
    bc_status rc = bc_json_add_int(*out, "v", BC_JSON_SCHEMA_VERSION);
    if (rc != BC_OK) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return rc;
}

bc_status bc_json_add_string(cJSON *obj, const char *name, const char *value)
{
    if (obj == NULL || name == NULL || value == NULL)
        return BC_ERR_INVAL;
    return cJSON_AddStringToObject(obj, name, value) != NULL ? BC_OK : BC_ERR_NOMEM;
}

bc_status bc_json_add_int(cJSON *obj, const char *name, int64_t value)
{
    if (obj == NULL || name == NULL || value < BC_JSON_INT_MIN || value > BC_JSON_INT_MAX)
        return BC_ERR_INVAL;
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, value);
    return cJSON_AddRawToObject(obj, name, text) != NULL ? BC_OK : BC_ERR_NOMEM;
}

bc_status bc_json_add_bool(cJSON *obj, const char *name, bool value)
{
    if (obj == NULL || name == NULL)
        return BC_ERR_INVAL;
    return cJSON_AddBoolToObject(obj, name, value) != NULL ? BC_OK : BC_ERR_NOMEM;
}

bc_status bc_json_add_item(cJSON *obj, const char *name, cJSON *item)
{
    if (obj == NULL || name == NULL || item == NULL)
        return BC_ERR_INVAL;
    return cJSON_AddItemToObject(obj, name, item) ? BC_OK : BC_ERR_NOMEM;
}

bc_status bc_json_print(const cJSON *obj, char **out)
{
    if (obj == NULL || out == NULL)
        return BC_ERR_INVAL;
    /* cJSON allocates with its default hooks (malloc); nobody in this
     * project installs other hooks, so the caller's free() matches. */
    *out = cJSON_PrintUnformatted(obj);
    return *out != NULL ? BC_OK : BC_ERR_NOMEM;
}
