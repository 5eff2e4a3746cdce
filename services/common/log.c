#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_program = "bodycam";
static bc_log_level log_min = BC_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void bc_log_init(const char *program, bc_log_level min_level)
{
    log_program = program;
    log_min = min_level;
}

int bc_log_level_parse(const char *name, bc_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (bc_log_level)i;
            return 0;
        }
    }
    return -1;
}

/* Composes the whole line first and writes it with one call, so lines from
 * threads or processes sharing stderr do not interleave mid-line. */
static void log_vline(bc_log_level level, int errnum, const char *fmt, va_list ap)
{
    if (level < log_min)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[1400];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], log_program, msg);
    if (n < 0)
        return;
    if (errnum != 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(errnum));
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
}

#define LOG_FUNCTION(name, level, with_errno)                                                      \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        int saved = errno;                                                                         \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_vline(level, (with_errno) ? saved : 0, fmt, ap);                                       \
        va_end(ap);                                                                                \
        errno = saved;                                                                             \
    }

LOG_FUNCTION(log_debug, BC_LOG_DEBUG, 0)
LOG_FUNCTION(log_info, BC_LOG_INFO, 0)
LOG_FUNCTION(log_warnx, BC_LOG_WARN, 0)
LOG_FUNCTION(log_warn, BC_LOG_WARN, 1)
LOG_FUNCTION(log_errorx, BC_LOG_ERROR, 0)
LOG_FUNCTION(log_error, BC_LOG_ERROR, 1)

void fatalx(int exit_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vline(BC_LOG_ERROR, 0, fmt, ap);
    va_end(ap);
    exit(exit_code);
}
