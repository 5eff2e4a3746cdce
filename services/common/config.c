#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Required options (no default) must be told apart from options set to ""
 * or 0, so the addresses of the fields that were set are remembered here.
 * A process has one configuration, so one table per process is enough. */
#define CONFIG_MAX_OPTIONS 128
static const void *set_fields[CONFIG_MAX_OPTIONS];
static size_t set_count;

static void mark_set(const bc_config_option *opt)
{
    for (size_t i = 0; i < set_count; i++) {
        if (set_fields[i] == opt->field)
            return;
    }
    if (set_count < CONFIG_MAX_OPTIONS)
        set_fields[set_count++] = opt->field;
}

static int is_set(const bc_config_option *opt)
{
    for (size_t i = 0; i < set_count; i++) {
        if (set_fields[i] == opt->field)
            return 1;
    }
    return 0;
}

static const bc_config_option *find_option(const bc_config_option *table, size_t count,
                                           const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    }
    return NULL;
}

static bc_status parse_bool(const char *value, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = 1;
            return BC_OK;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = 0;
            return BC_OK;
        }
    }
    return BC_ERR_INVAL;
}

static bc_status apply(const bc_config_option *opt, const char *value, bc_error *err)
{
    switch (opt->type) {
    case BC_CFG_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0')
            return bc_fail(err, BC_ERR_INVAL, "option '%s': '%s' is not an integer", opt->name,
                           value);
        if (v < opt->min || v > opt->max)
            return bc_fail(err, BC_ERR_INVAL,
                           "option '%s': %lld is outside %" PRId64 "..%" PRId64, opt->name, v,
                           opt->min, opt->max);
        *(int64_t *)opt->field = (int64_t)v;
        break;
    }
    case BC_CFG_BOOL:
        if (parse_bool(value, (int *)opt->field) != BC_OK)
            return bc_fail(err, BC_ERR_INVAL, "option '%s': '%s' is not a boolean", opt->name,
                           value);
        break;
    case BC_CFG_STRING: {
        size_t len = strlen(value);
        if (len >= opt->field_size || (opt->max > 0 && (int64_t)len > opt->max))
            return bc_fail(err, BC_ERR_TOO_BIG, "option '%s': value is too long", opt->name);
        memcpy(opt->field, value, len + 1);
        break;
    }
    }
    mark_set(opt);
    return BC_OK;
}

bc_status bc_config_set(const bc_config_option *table, size_t count, const char *name,
                        const char *value, bc_error *err)
{
    const bc_config_option *opt = find_option(table, count, name);
    if (opt == NULL)
        return bc_fail(err, BC_ERR_NOT_FOUND, "unknown option '%s'", name);
    return apply(opt, value, err);
}

bc_status bc_config_defaults(const bc_config_option *table, size_t count, bc_error *err)
{
    for (size_t i = 0; i < count; i++) {
        const bc_config_option *opt = &table[i];
        if (opt->default_value == NULL) {
            if (opt->type == BC_CFG_STRING && opt->field_size > 0)
                ((char *)opt->field)[0] = '\0';
            continue;
        }
        bc_status rc = apply(opt, opt->default_value, err);
        if (rc != BC_OK)
            return rc;
    }
    return BC_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

bc_status bc_config_set_pair(const bc_config_option *table, size_t count, const char *pair,
                             bc_error *err)
{
    char buf[1024];
    if (strlen(pair) >= sizeof(buf))
        return bc_fail(err, BC_ERR_TOO_BIG, "setting is too long");
    strcpy(buf, pair);
    char *eq = strchr(buf, '=');
    if (eq == NULL)
        return bc_fail(err, BC_ERR_PARSE, "setting '%s' is not name=value", pair);
    *eq = '\0';
    char *name = trim(buf);
    char *value = trim(eq + 1);
    size_t vlen = strlen(value);
    if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
        value[vlen - 1] = '\0';
        value++;
    }
    return bc_config_set(table, count, name, value, err);
}

bc_status bc_config_load_file(const bc_config_option *table, size_t count, const char *path,
                              bc_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return bc_fail(err, BC_ERR_IO, "cannot open config file %s: %s", path, strerror(errno));
    bc_status rc = BC_OK;
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = bc_fail(err, BC_ERR_TOO_BIG, "%s:%d: line is too long", path, lineno);
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        bc_error detail = {{0}};
        rc = bc_config_set_pair(table, count, s, &detail);
        if (rc != BC_OK) {
            bc_fail(err, rc, "%s:%d: %s", path, lineno, detail.text);
            break;
        }
    }
    if (rc == BC_OK && ferror(f))
        rc = bc_fail(err, BC_ERR_IO, "error reading %s", path);
    fclose(f);
    return rc;
}

bc_status bc_config_check(const bc_config_option *table, size_t count, bc_error *err)
{
    for (size_t i = 0; i < count; i++) {
        if (table[i].default_value == NULL && !is_set(&table[i]))
            return bc_fail(err, BC_ERR_MISSING, "option '%s' is required", table[i].name);
    }
    return BC_OK;
}

void bc_config_print_reference(const bc_config_option *table, size_t count, FILE *out)
{
    for (size_t i = 0; i < count; i++) {
        const bc_config_option *opt = &table[i];
        fprintf(out, "  %-24s default: %s", opt->name,
                opt->default_value ? (opt->default_value[0] ? opt->default_value : "\"\"")
                                   : "(required)");
        if (opt->units != NULL)
            fprintf(out, " %s", opt->units);
        if (opt->type == BC_CFG_INT)
            fprintf(out, " [%" PRId64 "..%" PRId64 "]", opt->min, opt->max);
        fprintf(out, "\n      %s\n", opt->help);
    }
}
