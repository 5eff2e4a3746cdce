/*
 * control.h - the camera's control socket: the buttons and the dock.
 *
 * A UNIX stream socket (mode 0600) taking one command per line and giving
 * one answer line per command, "ok ..." or "error: reason":
 *
 *   warn | record | emergency | stop | dock | undock | status
 *   survey N      (N = 1..5, the officer's feeling-of-safety score)
 *   view ID | delete ID   (refused by design; the handler says so)
 *   quit          (answered "ok bye" by this module; the connection closes)
 *
 * Lines are at most BC_CONTROL_LINE_MAX bytes (without the newline; a
 * trailing CR is ignored). A longer line is answered "error: line too
 * long" and the connection is closed. A malformed command gets "error:
 * ..." from the parser and the connection stays open. Several clients may
 * be connected at once; all I/O is non-blocking through the reactor; a
 * client that goes away mid-line or before reading its answer is harmless.
 */
#ifndef BC_AGENT_CONTROL_H
#define BC_AGENT_CONTROL_H

#include <stddef.h>

#include "device-agent/reactor.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_CONTROL_LINE_MAX 256
#define BC_CONTROL_ANSWER_MAX 512 /* answer text, without the newline */
#define BC_CONTROL_MAX_CLIENTS 32

typedef enum bc_control_verb {
    BC_CONTROL_WARN,
    BC_CONTROL_RECORD,
    BC_CONTROL_EMERGENCY,
    BC_CONTROL_STOP,
    BC_CONTROL_DOCK,
    BC_CONTROL_UNDOCK,
    BC_CONTROL_STATUS,
    BC_CONTROL_SURVEY, /* score */
    BC_CONTROL_VIEW,   /* id */
    BC_CONTROL_DELETE, /* id */
    BC_CONTROL_QUIT,
    BC_CONTROL_VERB_COUNT
} bc_control_verb;

typedef struct bc_control_command {
    bc_control_verb verb;
    int score;              /* SURVEY: 1..5 */
    char id[BC_ID_MAX + 1]; /* VIEW, DELETE: [A-Za-z0-9_-]{1,64} */
} bc_control_command;

/* Parses one line (without its newline; surrounding spaces and tabs are
 * ignored, words are separated by spaces/tabs). BC_ERR_PARSE with the
 * answer text after "error: " in err, e.g. "unknown command 'x'",
 * "'survey' needs a score from 1 to 5", "'warn' takes no argument",
 * "empty command". The unknown word is quoted printable-only and cut to
 * 32 characters. */
bc_status bc_control_parse(const char *line, bc_control_command *out, bc_error *err);

/* The verb as typed ("warn", "survey", ...); "unknown" if out of range. */
const char *bc_control_verb_name(bc_control_verb verb);

/* Answers a parsed command (never QUIT): writes the answer line, without a
 * newline, "ok ..." or "error: reason", into answer (size
 * BC_CONTROL_ANSWER_MAX + 1, NUL-terminated). An empty answer is sent as
 * "error: no answer"; control characters are replaced with spaces. */
typedef void (*bc_control_handler)(const bc_control_command *cmd, char *answer, size_t size,
                                   void *userdata);

typedef struct bc_control bc_control;

/* Listens on path: a stale socket file there is removed first (a live one,
 * where another process still accepts, is BC_ERR_EXISTS; so is anything
 * that is not a socket), the new socket gets mode 0600. BC_ERR_TOO_BIG for
 * a path longer than a socket address allows, BC_ERR_IO (errno preserved)
 * for socket/bind/listen failures, BC_ERR_NOMEM. The caller keeps the
 * reactor alive until bc_control_close(). */
bc_status bc_control_open(bc_reactor *r, const char *path, bc_control_handler handler,
                          void *userdata, bc_control **out, bc_error *err);

/* Number of connected clients. */
size_t bc_control_client_count(const bc_control *c);

/* Disconnects every client, stops listening and removes the socket file.
 * NULL is a no-op. Not from the handler. */
void bc_control_close(bc_control *c);

#endif
