/*
 * log.h - one line per event, with a level, to stderr.
 *
 *   2026-11-28T11:50:00.123Z INFO  bodycam-agent: connected to 127.0.0.1:8883
 *
 * Newlines and control characters inside a message are replaced, so one
 * event is always one line whatever a peer sent us. log_warn/log_error add
 * strerror(errno); the x variants do not. fatal/fatalx are for startup
 * only: they log and exit with the given code.
 */
#ifndef BC_COMMON_LOG_H
#define BC_COMMON_LOG_H

typedef enum bc_log_level {
    BC_LOG_DEBUG,
    BC_LOG_INFO,
    BC_LOG_WARN,
    BC_LOG_ERROR,
} bc_log_level;

/* Sets the program name shown on every line and the lowest level printed. */
void bc_log_init(const char *program, bc_log_level min_level);

/* Parses "debug", "info", "warn", "error"; 0 on success, -1 otherwise. */
int bc_log_level_parse(const char *name, bc_log_level *out);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
