/*
 * cli.c - the command-line tools' messages and number arguments.
 *
 * The program name and the usage hint are process-wide, set once by
 * main() before anything can fail, like the log module's program name: a
 * tool is one thread and prints its messages from many small functions
 * that should not all carry a context argument.
 */
#include "common/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h> /* optind */

static const char *cli_program = "bodycam";
static const char *cli_usage_hint = "";

void bc_cli_init(const char *program, const char *usage_hint)
{
    if (program != NULL)
        cli_program = program;
    cli_usage_hint = usage_hint != NULL ? usage_hint : "";
}

/* "<program>: <infix><message><suffix>\n" on stderr. */
static void report(const char *infix, const char *suffix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void report(const char *infix, const char *suffix, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", cli_program, infix);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "%s\n", suffix);
}

int bc_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("error: ", "", fmt, ap);
    va_end(ap);
    return BC_CLI_EXIT_FAILURE;
}

int bc_cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("", cli_usage_hint, fmt, ap);
    va_end(ap);
    return BC_CLI_EXIT_USAGE;
}

int bc_cli_option_error(int c, char *const *argv)
{
    if (c == ':')
        return bc_cli_usage_error("option '%s' needs a value", argv[optind - 1]);
    return bc_cli_usage_error("unknown option '%s'", argv[optind - 1]);
}

bc_status bc_cli_parse_long(const char *text, long min, long max, long *out)
{
    if (text == NULL || out == NULL)
        return BC_ERR_INVAL;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return BC_ERR_INVAL;
    *out = v;
    return BC_OK;
}
