/*
 * cmd_recordings.c - bodycamctl recordings: what the vault holds (the
 * catalog in Redis) and, for one recording, its holds and its chain of
 * custody (every audit entry whose subject is its ref, from the log on
 * disk: the catalog says what is, the log what happened).
 *
 * Read only: nothing here is audited.
 */
#include <string.h>

#include "common/cli.h"
#include "ctl.h"

/* ---- list ---- */

typedef struct list_out {
    ctl *c;
    cJSON *arr; /* --json */
    size_t count;
    bool oom;
} list_out;

static bool list_one(const bc_recording_meta *m, void *userdata)
{
    list_out *o = userdata;
    o->count++;
    if (o->arr == NULL) {
        ctl_print_recording_line(stdout, m);
        return true;
    }
    cJSON *j = ctl_recording_json(m);
    if (j == NULL || !cJSON_AddItemToArray(o->arr, j)) {
        cJSON_Delete(j);
        o->oom = true;
        return false;
    }
    return true;
}

static int parse_status(ctl *c, const char *text, int *out)
{
    *out = -1;
    if (text == NULL)
        return CTL_EXIT_OK;
    for (int s = BC_REC_COMMITTED; s <= BC_REC_PURGED; s++) {
        if (strcmp(text, bc_recording_status_name(s)) == 0) {
            *out = s;
            return CTL_EXIT_OK;
        }
    }
    return ctl_usage(c, "--status is committed, purging or purged, not '%s'", text);
}

static int parse_filter(ctl *c, const ctl_args *a, bc_recording_filter *f)
{
    const char *from = ctl_arg(a, "from"), *to = ctl_arg(a, "to"), *limit = ctl_arg(a, "limit");
    memset(f, 0, sizeof(*f));
    f->device = ctl_arg(a, "device");
    f->officer = ctl_arg(a, "officer");
    f->held_only = ctl_flag(a, "held");
    if (from != NULL && ctl_parse_time(from, &f->from) != BC_OK)
        return ctl_usage(c, "--from '%s' is not a time (2026-11-28T14:00:00Z)", from);
    if (to != NULL && ctl_parse_time(to, &f->to) != BC_OK)
        return ctl_usage(c, "--to '%s' is not a time (2026-11-28T14:00:00Z)", to);
    if (f->to != 0 && f->to < f->from)
        return ctl_usage(c, "--to is before --from");
    long n = 0;
    if (limit != NULL && bc_cli_parse_long(limit, 1, 1000000, &n) != BC_OK)
        return ctl_usage(c, "--limit wants a number from 1 to 1000000");
    f->limit = (size_t)n;
    return parse_status(c, ctl_arg(a, "status"), &f->status);
}

static int recordings_list(ctl *c, const ctl_args *a)
{
    bc_recording_filter f;
    bc_error err = {{0}};
    int code = parse_filter(c, a, &f);
    if (code != CTL_EXIT_OK)
        return code;
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    list_out o = {.c = c, .arr = c->json ? cJSON_AddArrayToObject(doc, "recordings") : NULL};
    if (c->json && o.arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "recordings: out of memory");
    }
    bc_status rc = bc_catalog_recordings_list(&c->redis, &f, list_one, &o, &err);
    if (rc == BC_OK && o.oom)
        rc = bc_fail(&err, BC_ERR_NOMEM, "out of memory");
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "recordings: %s", err.text);
    }
    if (!c->json) {
        printf("# %zu recording%s\n", o.count, o.count == 1 ? "" : "s");
        return CTL_EXIT_OK;
    }
    cJSON_AddNumberToObject(doc, "count", (double)o.count);
    return ctl_print_json(c, doc);
}

/* ---- show ---- */

typedef struct show_out {
    cJSON *holds, *audit; /* --json */
    bool oom;
} show_out;

static bool show_hold(const bc_hold *h, void *userdata)
{
    show_out *o = userdata;
    if (o->holds == NULL) {
        printf("  ");
        ctl_print_hold_line(stdout, h);
        return true;
    }
    cJSON *j = ctl_hold_json(h);
    if (j == NULL || !cJSON_AddItemToArray(o->holds, j)) {
        cJSON_Delete(j);
        o->oom = true;
        return false;
    }
    return true;
}

static bool show_audit(const char *line, size_t len, const cJSON *entry, void *userdata)
{
    show_out *o = userdata;
    if (o->audit == NULL) {
        printf("  %.*s\n", (int)len, line);
        return true;
    }
    cJSON *j = ctl_audit_entry_json(entry);
    if (j == NULL || !cJSON_AddItemToArray(o->audit, j)) {
        cJSON_Delete(j);
        o->oom = true;
        return false;
    }
    return true;
}

static void print_meta(const bc_recording_meta *m)
{
    char t[40], dur[32];
    printf("recording:     %s\nstatus:        %s\n", m->ref, bc_recording_status_name(m->status));
    ctl_format_time(m->recorded_at, t, sizeof(t));
    ctl_format_duration(m->duration_ms, dur, sizeof(dur));
    printf("recorded at:   %s (%s)\nofficer:       %s\n", t, dur, m->officer[0] ? m->officer : "-");
    printf("warnings:      %lld%s\n", (long long)m->warnings,
           m->emergency ? " (emergency recording)" : "");
    printf("object:        sha256 %s, %lld bytes, key %s\n", m->sha256, (long long)m->size,
           m->key_id);
    ctl_format_time(m->committed_at, t, sizeof(t));
    printf("committed at:  %s (audit entry #%llu)\n", t, (unsigned long long)m->commit_audit_seq);
    ctl_format_time(m->delete_after, t, sizeof(t));
    printf("delete after:  %s%s\n", t,
           m->active_holds > 0 ? " (held: not while a hold is active)" : "");
    if (m->status == BC_REC_PURGED) {
        ctl_format_time(m->purged_at, t, sizeof(t));
        printf("purged at:     %s (audit entry #%llu)\n", t,
               (unsigned long long)m->purge_audit_seq);
    }
}

static int recordings_show(ctl *c, const ctl_args *a)
{
    const char *ref = a->pos[0];
    char device[BC_DEVICE_ID_MAX + 1], id[BC_ID_MAX + 1];
    bc_recording_meta m;
    bc_error err = {{0}};
    if (bc_ref_split(ref, device, id) != BC_OK)
        return ctl_usage(c, "'%s' is not a recording (<device>/<recording id>)", ref);
    bc_status rc = bc_catalog_recording_get(&c->redis, ref, &m, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    cJSON *doc = NULL;
    show_out o = {0};
    if (c->json) {
        doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "recording", ctl_recording_json(&m));
        o.holds = cJSON_AddArrayToObject(doc, "holds");
        o.audit = cJSON_AddArrayToObject(doc, "audit");
        if (o.holds == NULL || o.audit == NULL) {
            cJSON_Delete(doc);
            return ctl_fail(c, BC_ERR_NOMEM, "recording %s: out of memory", ref);
        }
    } else {
        print_meta(&m);
        printf("holds:\n");
    }
    bc_hold_filter hf = {.ref = ref};
    rc = bc_catalog_holds_list(&c->redis, &hf, show_hold, &o, &err);
    if (rc == BC_OK && !c->json)
        printf("audit trail (%s):\n", c->audit_dir);
    if (rc == BC_OK)
        rc = bc_audit_scan(c->audit_dir, ref, show_audit, &o, &err);
    if (rc == BC_OK && o.oom)
        rc = bc_fail(&err, BC_ERR_NOMEM, "out of memory");
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

static const ctl_leaf leaves[] = {
    {"list",
     "[--device ID] [--officer X] [--from T] [--to T] [--status committed|purged|purging] "
     "[--held] [--limit N]",
     "recordings in the vault, oldest first",
     "--from and --to bound the time a recording was made (recorded_at), both\n"
     "inclusive; --held lists only recordings with an active hold. Purged ones stay\n"
     "listed as tombstones (status purged) for the vault's tombstone_days.\n",
     0,
     0,
     {{"device", true, false, false},
      {"officer", true, false, false},
      {"from", true, false, false},
      {"to", true, false, false},
      {"status", true, false, false},
      {"held", false, false, false},
      {"limit", true, false, false}},
     CTL_NEED_REDIS,
     recordings_list},
    {"show",
     "REF",
     "one recording (REF = <device>/<recording id>), its holds and audit trail",
     "The audit trail is every entry of the audit log whose subject is REF, verbatim:\n"
     "its commit, holds, releases, exports, refusals and its purge.\n",
     1,
     1,
     {{0}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT_DIR,
     recordings_show},
};

const ctl_area ctl_area_recordings = {"recordings", "the vault's recordings (list, show)", leaves,
                                      sizeof(leaves) / sizeof(leaves[0])};
