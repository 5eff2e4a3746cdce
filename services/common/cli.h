/*
 * cli.h - what the command-line tools share: messages that name the
 * program, the usage-error exit, and strict number arguments.
 *
 *   bodycam-pki: error: no CA in 'pki' (expected ...)    bc_cli_fail: exit 1
 *   bodycam-pki: unknown option '--colour'                bc_cli_usage_error: exit 2
 *   Try 'bodycam-pki --help'.                             (the tool's usage hint)
 *
 * A tool calls bc_cli_init once at the top of main(); the daemons use
 * common/daemon and common/log instead.
 */
#ifndef BC_COMMON_CLI_H
#define BC_COMMON_CLI_H

#include "proto/status.h"

#define BC_CLI_EXIT_OK 0
#define BC_CLI_EXIT_FAILURE 1 /* the work failed; the reason is on stderr */
#define BC_CLI_EXIT_USAGE 2   /* the command line is wrong; nothing was done */

/* Sets the program name that starts every message and the hint that ends a
 * usage error (e.g. "\nTry 'bodycam-pki --help'." or " (see --help)").
 * Both are borrowed for the life of the process: pass string literals.
 * Before the call the name is "bodycam" and there is no hint. */
void bc_cli_init(const char *program, const char *usage_hint);

/* Prints "<program>: error: <message>" and a newline to stderr; returns
 * BC_CLI_EXIT_FAILURE, so that "return bc_cli_fail(...)" ends a command. */
int bc_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "<program>: <message><usage hint>" and a newline to stderr;
 * returns BC_CLI_EXIT_USAGE. */
int bc_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The usage error for what getopt_long returned as c after a bad option:
 * ':' is an option missing its value, anything else an unknown option;
 * either names argv[optind - 1]. Returns BC_CLI_EXIT_USAGE. */
int bc_cli_option_error(int c, char *const *argv);

/* Parses text as a whole decimal integer in [min, max]: no trailing
 * characters, no overflow. BC_ERR_INVAL otherwise, with *out untouched. */
bc_status bc_cli_parse_long(const char *text, long min, long max, long *out);

#endif
