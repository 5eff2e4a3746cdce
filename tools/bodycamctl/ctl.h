/*
 * ctl.h - bodycamctl, the operators' command-line tool: how it is put
 * together (the user's view is README.md).
 *
 *   main.c            global options, the command tree, help at every level
 *   ctl.c             the run context: configuration, connections opened on
 *                     demand, the actor, errors and exit codes, JSON output,
 *                     times, leaf option parsing
 *   render.c          recordings, holds, requests and audit lines as JSON
 *                     and as text
 *   cmd_devices.c     devices: the registry the broker plugin reads
 *   cmd_recordings.c  recordings list | show
 *   cmd_holds.c       holds list | place | release
 *   cmd_requests.c    requests list | register | show | extend | close
 *   cmd_export.c      export (services/vault/export.c) and its progress bar
 *   cmd_audit.c       audit verify | show
 *   cmd_keys.c        keys list | rotate-recording | rotate-identity | campaigns |
 *                     show | pause | resume | abort (services/key-rotation)
 *   cmd_firmware.c    firmware publish | images | start | status | list | show |
 *                     pause | resume | approve | abort (services/firmware-rollout)
 *
 * The command tree is data: an area (devices, holds, ...) is a table of
 * leaves, each with its synopsis, help, options, how many positional
 * arguments it takes, what it needs opened, and its function. main.c parses
 * a leaf's options from the table, opens what the leaf needs, runs it and
 * turns its status into the exit code.
 *
 * Every mutating leaf makes its change through the vault's modules (one
 * atomic script or transaction) and then writes its audit entries with the
 * actor "operator:<name>"; the audit log is opened before the change (the
 * open checks its last entry against its head and repairs a torn line), so a
 * log that cannot be appended to stops the change instead of leaving it
 * unaudited. A whole-log check is 'audit verify'.
 *
 * Output: text on stdout for people; with --json exactly one JSON document
 * on stdout for every command, also on failure ({"error": ...}). Errors are
 * one line "bodycamctl: <what>: <why>" on stderr.
 */
#ifndef BC_CTL_H
#define BC_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "common/stream.h"
#include "proto/status.h"
#include "vault/audit.h"
#include "vault/catalog.h"
#include "vault/keystore.h"
#include "vault/store.h"

#define CTL_PROGRAM "bodycamctl"
#define CTL_DEFAULT_CONFIG "/etc/bodycam/bodycamctl.conf"
#define CTL_CONFIG_ENV "BODYCAM_CTL_CONFIG"
#define CTL_PATH_MAX 512
#define CTL_ACTOR_PREFIX "operator:"
#define CTL_NAME_MAX 64
#define CTL_ACTOR_MAX (sizeof(CTL_ACTOR_PREFIX) + CTL_NAME_MAX)

/* Exit codes (README.md). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILURE 1 /* runtime: Redis down, I/O */
#define CTL_EXIT_USAGE 2   /* command line or configuration */
#define CTL_EXIT_REFUSED 3 /* refused by policy: BC_ERR_DENIED, BC_ERR_STATE */
#define CTL_EXIT_NOT_FOUND 4
#define CTL_EXIT_TAMPERED 5 /* verification failed */

/* What a leaf needs before it runs. */
enum {
    CTL_NEED_REDIS = 1 << 0,
    CTL_NEED_AUDIT_DIR = 1 << 1, /* reads the audit log (scan, verify) */
    CTL_NEED_AUDIT = 1 << 2,     /* appends to it (opens it: checks it first) */
    CTL_NEED_STORE = 1 << 3,
    CTL_NEED_KEYS = 1 << 4,
    CTL_NEED_ACTOR = 1 << 5, /* the actor, without the audit log */
    CTL_WANT_AUDIT = 1 << 6, /* opens the audit log when one is configured and exists;
                              * without one the leaf runs unaudited (c->audit NULL) */
};

typedef struct ctl_config {
    char redis_host[256];
    int64_t redis_port;
    int64_t redis_timeout_ms;
    char vault_dir[CTL_PATH_MAX];
    char audit_dir[CTL_PATH_MAX]; /* "" = <vault_dir>/audit, like the vault's */
    char recording_key_dir[CTL_PATH_MAX];
    char master_key_file[CTL_PATH_MAX];
    char operator_name[CTL_NAME_MAX + 1];
    char firmware_key_file[CTL_PATH_MAX];    /* Ed25519 private key: signs manifests */
    char firmware_pubkey_file[CTL_PATH_MAX]; /* its public half: checks them */
} ctl_config;

/* The run context: one per process. */
typedef struct ctl {
    /* global options */
    const char *config_path; /* NULL: $BODYCAM_CTL_CONFIG, else the default */
    bool json;
    const char *as; /* --as NAME */
    bool progress;  /* export --progress sets it */
    /* loaded */
    ctl_config cfg;
    char config_used[CTL_PATH_MAX]; /* "" when no file was read */
    char actor[CTL_ACTOR_MAX + 1];
    char audit_dir[CTL_PATH_MAX];
    bc_redis redis;
    bool redis_open;
    bc_audit *audit;
    bc_store *store;
    bc_keystore *keys;
    /* what the running leaf is called, for messages: "holds place" */
    char what[64];
    /* the failure of the run, for --json */
    bool json_done; /* the run's JSON document was printed */
    int exit_code;
    char error[512];
} ctl;

/* ---- the command tree (main.c reads it) ---- */

#define CTL_OPTS_MAX 12
#define CTL_VALUES_MAX 64

typedef struct ctl_opt {
    const char *name; /* long option, without "--" */
    bool has_value;
    bool repeatable; /* may be given more than once (--camera) */
    bool required;
} ctl_opt;

/* A leaf's parsed command line. Values are borrowed from argv. */
typedef struct ctl_args {
    char **pos;
    int npos;
    struct {
        const char *name;
        const char *value; /* "" for a flag */
    } set[CTL_VALUES_MAX];
    size_t nset;
} ctl_args;

typedef struct ctl_leaf {
    const char *name;     /* NULL: the area itself is the command (export) */
    const char *synopsis; /* after "bodycamctl <area> " */
    const char *summary;  /* one line */
    const char *help;     /* the full text, may be NULL */
    int min_pos, max_pos; /* positional arguments; max -1 = unbounded */
    ctl_opt opts[CTL_OPTS_MAX];
    unsigned needs;
    int (*run)(ctl *c, const ctl_args *a);
} ctl_leaf;

typedef struct ctl_area {
    const char *name;
    const char *summary;
    const ctl_leaf *leaves;
    size_t count;
} ctl_area;

/* cmd_*.c */
extern const ctl_area ctl_area_devices;
extern const ctl_area ctl_area_recordings;
extern const ctl_area ctl_area_holds;
extern const ctl_area ctl_area_requests;
extern const ctl_area ctl_area_export;
extern const ctl_area ctl_area_audit;
extern const ctl_area ctl_area_keys;
extern const ctl_area ctl_area_firmware;

/* ---- ctl.c ---- */

/* The value of an option (the last one given), NULL when absent. */
const char *ctl_arg(const ctl_args *a, const char *name);
bool ctl_flag(const ctl_args *a, const char *name);
/* Every value of a repeatable option, in order; returns how many (<= cap). */
size_t ctl_arg_all(const ctl_args *a, const char *name, const char **out, size_t cap);

/* Loads the configuration and the actor, and opens what needs asks for.
 * Returns an exit code (0: ready), the error already reported. */
int ctl_open(ctl *c, unsigned needs);
void ctl_close(ctl *c);

/* The configuration options, as a reference (--help). */
void ctl_print_config_reference(FILE *out);

/* Maps a status to an exit code (the table in README.md). */
int ctl_exit_code(bc_status status);

/* Reports "bodycamctl: <what>: <why>" on stderr (and keeps it for --json)
 * and returns the exit code of status. */
int ctl_fail(ctl *c, bc_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A usage error of the running leaf: the message and a hint; returns 2. */
int ctl_usage(ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints doc as the run's one JSON document on stdout and frees it
 * (takes ownership; NULL is an out-of-memory failure). Returns 0 or 1. */
int ctl_print_json(ctl *c, cJSON *doc);

/* After a failed run in --json mode: {"error": {...}} on stdout. */
void ctl_print_json_error(const ctl *c);

/* Appends one audit entry as the actor. Returns an exit code. */
int ctl_audit1(ctl *c, const char *action, const char *subject, const cJSON *details,
               int64_t now_ms, uint64_t *seq);
/* Appends entries (objects with action and subject; the actor is added). */
int ctl_audit(ctl *c, cJSON *const *entries, size_t count, int64_t now_ms, uint64_t *first_seq);

/* Times: "2026-11-28T14:00:00Z", "2026-11-28T14:00:00.250Z", "2026-11-28"
 * (midnight UTC) or integer milliseconds. BC_ERR_INVAL otherwise. */
bc_status ctl_parse_time(const char *text, int64_t *ms);
/* "2026-11-28T14:00:00Z" (".250" added when the milliseconds are not 0). */
void ctl_format_time(int64_t ms, char *out, size_t size);
/* A duration as "1h02m03s", "4m05s" or "6.5s". */
void ctl_format_duration(int64_t ms, char *out, size_t size);

/* ---- render.c ---- */

cJSON *ctl_recording_json(const bc_recording_meta *m);
cJSON *ctl_hold_json(const bc_hold *h);
cJSON *ctl_request_json(const bc_access_request *q);
cJSON *ctl_match_json(const bc_request_match *m);
void ctl_print_recording_line(FILE *out, const bc_recording_meta *m);
void ctl_print_hold_line(FILE *out, const bc_hold *h);
void ctl_print_request_line(FILE *out, const bc_access_request *q, int64_t now_ms);
/* An audit line as JSON: the parsed entry (NULL when out of memory). */
cJSON *ctl_audit_entry_json(const cJSON *entry);

#endif
