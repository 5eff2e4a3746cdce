/*
 * config.h - table-driven configuration files.
 *
 * A daemon describes its options once, as a table of {name, type, min, max,
 * default, &field, help}; the same table loads the file, applies command
 * line overrides, checks ranges and prints the reference (`--help`, and the
 * configuration reference of the docs), so the three cannot drift apart.
 *
 * File format: one `name = value` per line; blank lines and lines starting
 * with '#' are ignored; values may be quoted with "..." to keep spaces.
 * An unknown name, a bad value or a value out of range is an error that
 * names the file, the line and the option.
 */
#ifndef BC_COMMON_CONFIG_H
#define BC_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/status.h"

typedef enum bc_config_type {
    BC_CFG_INT,    /* int64_t field; min/max apply */
    BC_CFG_BOOL,   /* int field; true/false/yes/no/on/off/1/0 */
    BC_CFG_STRING, /* char[field_size] field; max = 0 or a length limit */
} bc_config_type;

typedef struct bc_config_option {
    const char *name;
    bc_config_type type;
    int64_t min, max;
    const char *default_value; /* NULL: required (no default) */
    void *field;
    size_t field_size; /* BC_CFG_STRING: size of the char array */
    const char *units; /* "s", "ms", "bytes", "%" or NULL */
    const char *help;
} bc_config_option;

/* Sets every option to its default. Options without a default are left
 * empty/zero and reported by bc_config_check() unless set later. */
bc_status bc_config_defaults(const bc_config_option *table, size_t count, bc_error *err);

/* Reads a file over the current values. BC_ERR_IO if unreadable,
 * BC_ERR_PARSE/BC_ERR_INVAL with file:line in err otherwise. */
bc_status bc_config_load_file(const bc_config_option *table, size_t count, const char *path,
                              bc_error *err);

/* Applies one "name=value" (a command-line --set). */
bc_status bc_config_set_pair(const bc_config_option *table, size_t count, const char *pair,
                             bc_error *err);

/* Sets one option by name. BC_ERR_NOT_FOUND for an unknown name. */
bc_status bc_config_set(const bc_config_option *table, size_t count, const char *name,
                        const char *value, bc_error *err);

/* Fails with BC_ERR_MISSING naming the first required option still unset. */
bc_status bc_config_check(const bc_config_option *table, size_t count, bc_error *err);

/* Prints "name = default  # units; range; help" for every option. */
void bc_config_print_reference(const bc_config_option *table, size_t count, FILE *out);

#endif
