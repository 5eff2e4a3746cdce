/*
 * json.h - bounded JSON parsing and typed field readers over cJSON.
 *
 * Every message, command and manifest enters through bc_json_parse(), which
 * checks the raw bytes before cJSON sees them: the size limit, strict UTF-8,
 * no control characters, the JSON number grammar, the nesting depth. It then
 * lets cJSON build the tree, requires the whole buffer to be consumed, the top
 * level to be an object and no object to repeat a key (two parsers that pick
 * different duplicates would see two different messages).
 *
 * The readers look a field up by its exact (case-sensitive) name, check its
 * JSON type and range, and name the field in the bc_error. With
 * BC_JSON_OPTIONAL an absent field is BC_OK and leaves the output unchanged,
 * so the caller presets the default. JSON null is a wrong type, never
 * "absent". Statuses: absent required field BC_ERR_MISSING, wrong JSON type
 * BC_ERR_TYPE, value out of range (including a string longer than its
 * buffer) BC_ERR_INVAL.
 *
 * Pointers returned into a tree (bc_json_get_object, _array, _string_ref)
 * are borrowed: they die with the tree (cJSON_Delete of the root).
 *
 * Threads: trees are independent, but cJSON 1.7 stores its last parse error
 * in one global; parsing from several threads races on that global only
 * (this module never reads it).
 */
#ifndef BC_PROTO_JSON_H
#define BC_PROTO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "proto/status.h"

#define BC_JSON_MAX_DEPTH 8                /* the top-level object is depth 1 */
#define BC_JSON_INT_MAX 9007199254740991LL /* 2^53 - 1: exact in a double */
#define BC_JSON_INT_MIN (-BC_JSON_INT_MAX)
#define BC_JSON_SCHEMA_VERSION 1

typedef enum bc_json_need { BC_JSON_OPTIONAL = 0, BC_JSON_REQUIRED = 1 } bc_json_need;

/* Parses len bytes (not necessarily NUL-terminated) into a tree the caller
 * frees with cJSON_Delete(). Checks in this order: len <= max_len
 * (BC_ERR_TOO_BIG); strict UTF-8 with no NUL, no control character outside
 * JSON whitespace, no raw control character or \u0000 inside a string, no
 * overlong form, no surrogate, nothing above U+10FFFF, strict number grammar
 * (BC_ERR_PARSE); depth <= BC_JSON_MAX_DEPTH (BC_ERR_TOO_BIG); cJSON parses
 * the whole buffer, only whitespace may follow the value (BC_ERR_PARSE); the
 * top level is an object (BC_ERR_TYPE); no object repeats a key
 * (BC_ERR_PARSE). On failure *out is NULL. */
bc_status bc_json_parse(const char *buf, size_t len, size_t max_len, cJSON **out, bc_error *err);

/* One member of a flat object (bc_json_scan_flat), pointing into the text. */
typedef enum bc_json_flat_type {
    BC_JSON_FLAT_STRING, /* text, text_len: the bytes between the quotes */
    BC_JSON_FLAT_INT,    /* number */
    BC_JSON_FLAT_TRUE,
    BC_JSON_FLAT_FALSE,
    BC_JSON_FLAT_NULL
} bc_json_flat_type;

typedef struct bc_json_flat_member {
    const char *name; /* the bytes between the quotes, not NUL-terminated */
    size_t name_len;
    bc_json_flat_type type;
    const char *text;
    size_t text_len;
    int64_t number;
} bc_json_flat_member;

/* A shortcut past cJSON for the plain form of a message (json.c, top):
 * true when buf (len bytes, len <= max_len) is one JSON object of at most
 * cap members, none an object or array, every name and string value made
 * of bytes 0x20..0x7f other than '"' and '\\' (no escapes), every number an
 * integer of at most 15 digits, and no name twice; members[0..*count) are
 * then its members in order. Such a text is accepted by bc_json_parse with
 * the same names and values. false for any other text, without a reason:
 * read it with bc_json_parse, which accepts or refuses it and says why. */
bool bc_json_scan_flat(const char *buf, size_t len, size_t max_len, bc_json_flat_member *members,
                       size_t cap, size_t *count);

/* The member called name (exact, case-sensitive), or NULL. */
const bc_json_flat_member *bc_json_flat_find(const bc_json_flat_member *members, size_t count,
                                             const char *name);

/* Checks the "v" field: BC_ERR_MISSING, BC_ERR_TYPE when not a number,
 * BC_ERR_VERSION when it is not BC_JSON_SCHEMA_VERSION. */
bc_status bc_json_check_version(const cJSON *obj, bc_error *err);

/* 1 when obj has a member called name (of any type), else 0. */
int bc_json_has(const cJSON *obj, const char *name);

/* Copies a string field into out (size bytes, NUL-terminated). A string of
 * size or more bytes is BC_ERR_INVAL (never truncated). */
bc_status bc_json_get_string(const cJSON *obj, const char *name, bc_json_need need, char *out,
                             size_t size, bc_error *err);

/* Borrows a string field: *out points into the tree and *len is its length
 * in bytes (no NUL inside, guaranteed by bc_json_parse). Longer than max_len
 * bytes is BC_ERR_INVAL. Absent and optional: *out and *len unchanged. */
bc_status bc_json_get_string_ref(const cJSON *obj, const char *name, bc_json_need need,
                                 size_t max_len, const char **out, size_t *len, bc_error *err);

/* An integer field: a JSON number that is integral, within +-(2^53 - 1) and
 * within [min, max]; otherwise BC_ERR_INVAL ("1e3" is 1000, "1.5" is
 * refused). */
bc_status bc_json_get_int(const cJSON *obj, const char *name, bc_json_need need, int64_t min,
                          int64_t max, int64_t *out, bc_error *err);

/* A JSON true/false field. */
bc_status bc_json_get_bool(const cJSON *obj, const char *name, bc_json_need need, bool *out,
                           bc_error *err);

/* A JSON object field; *out is borrowed from the tree. */
bc_status bc_json_get_object(const cJSON *obj, const char *name, bc_json_need need,
                             const cJSON **out, bc_error *err);

/* A JSON array field of at most max_items elements (more is BC_ERR_INVAL);
 * *out is borrowed from the tree. */
bc_status bc_json_get_array(const cJSON *obj, const char *name, bc_json_need need, size_t max_items,
                            const cJSON **out, bc_error *err);

/* Checks for string values after they were read. */

/* 1 when s is exactly digits lowercase hex digits (e.g. 64 for a SHA-256). */
int bc_json_hex_valid(const char *s, size_t digits);

/* 1 when s holds no control character (below 0x20, or 0x7f), so that free
 * text from a camera cannot forge a line in a log or a terminal. */
int bc_json_text_valid(const char *s);

/* Output builders. Each returns BC_ERR_NOMEM when cJSON cannot allocate and
 * BC_ERR_INVAL for a NULL argument; cJSON_AddItemTo* takes ownership of the
 * new member, so on failure nothing leaks and obj is unchanged. */

/* A new object holding "v": BC_JSON_SCHEMA_VERSION; free with cJSON_Delete(). */
bc_status bc_json_new_message(cJSON **out);

bc_status bc_json_add_string(cJSON *obj, const char *name, const char *value);

/* Written as exact decimal text (cJSON's own printer rounds past 15 digits);
 * a value outside +-(2^53 - 1) is BC_ERR_INVAL. */
bc_status bc_json_add_int(cJSON *obj, const char *name, int64_t value);

bc_status bc_json_add_bool(cJSON *obj, const char *name, bool value);

/* Moves item into obj under name. On success obj owns item; on failure the
 * caller still owns it (BC_ERR_NOMEM). */
bc_status bc_json_add_item(cJSON *obj, const char *name, cJSON *item);

/* Prints obj without whitespace into a malloc'd NUL-terminated string the
 * caller frees with free(). BC_ERR_NOMEM on failure, *out is then NULL. */
bc_status bc_json_print(const cJSON *obj, char **out);

#endif
