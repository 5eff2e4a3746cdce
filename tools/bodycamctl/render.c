/*
 * render.c - the vault's records as bodycamctl shows them: JSON objects
 * (field names as in the catalog, times in milliseconds plus an ISO 8601
 * copy for people) and one-line text forms.
 *
 * cJSON_Add* calls that fail (out of memory) leave a member out; the
 * caller's cJSON_Print then fails as a whole, which ctl_print_json reports.
 */
#include "ctl.h"

#include <inttypes.h>
#include <string.h>

/* ms and its ISO form as name and name + "_iso" (only when set). */
static void add_time(cJSON *o, const char *name, int64_t ms)
{
    char iso[40], key[64];
    cJSON_AddNumberToObject(o, name, (double)ms);
    if (ms <= 0)
        return;
    ctl_format_time(ms, iso, sizeof(iso));
    snprintf(key, sizeof(key), "%s_iso", name);
    cJSON_AddStringToObject(o, key, iso);
}

static void add_text(cJSON *o, const char *name, const char *value)
{
    if (value != NULL && value[0] != '\0')
        cJSON_AddStringToObject(o, name, value);
}

cJSON *ctl_recording_json(const bc_recording_meta *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "ref", m->ref);
    cJSON_AddStringToObject(o, "device", m->device);
    cJSON_AddStringToObject(o, "recording_id", m->recording_id);
    cJSON_AddStringToObject(o, "status", bc_recording_status_name(m->status));
    cJSON_AddStringToObject(o, "officer", m->officer);
    add_time(o, "recorded_at", m->recorded_at);
    cJSON_AddNumberToObject(o, "duration_ms", (double)m->duration_ms);
    cJSON_AddNumberToObject(o, "warnings", (double)m->warnings);
    cJSON_AddBoolToObject(o, "emergency", m->emergency);
    cJSON_AddStringToObject(o, "key_id", m->key_id);
    cJSON_AddStringToObject(o, "sha256", m->sha256);
    cJSON_AddNumberToObject(o, "size", (double)m->size);
    add_time(o, "committed_at", m->committed_at);
    add_time(o, "delete_after", m->delete_after);
    if (m->status == BC_REC_PURGED)
        add_time(o, "purged_at", m->purged_at);
    cJSON_AddNumberToObject(o, "commit_audit_seq", (double)m->commit_audit_seq);
    if (m->purge_audit_seq > 0)
        cJSON_AddNumberToObject(o, "purge_audit_seq", (double)m->purge_audit_seq);
    cJSON_AddNumberToObject(o, "active_holds", (double)m->active_holds);
    return o;
}

cJSON *ctl_hold_json(const bc_hold *h)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", h->id);
    cJSON_AddStringToObject(o, "ref", h->ref);
    cJSON_AddStringToObject(o, "reason", bc_hold_reason_name(h->reason));
    cJSON_AddStringToObject(o, "case_ref", h->case_ref);
    cJSON_AddBoolToObject(o, "active", h->active);
    cJSON_AddStringToObject(o, "placed_by", h->placed_by);
    add_time(o, "placed_at", h->placed_at);
    add_text(o, "note", h->note);
    add_text(o, "request_id", h->request_id);
    if (!h->active) {
        add_time(o, "released_at", h->released_at);
        add_text(o, "released_by", h->released_by);
        add_text(o, "release_note", h->release_note);
    }
    return o;
}

cJSON *ctl_request_json(const bc_access_request *q)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *cams = cJSON_CreateArray();
    if (o == NULL || cams == NULL) {
        cJSON_Delete(o);
        cJSON_Delete(cams);
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", q->id);
    cJSON_AddStringToObject(o, "status", bc_request_status_name(q->status));
    cJSON_AddStringToObject(o, "requester", q->requester);
    add_text(o, "contact", q->contact);
    add_time(o, "window_from", q->window_from);
    add_time(o, "window_to", q->window_to);
    add_text(o, "place", q->place);
    for (size_t i = 0; i < q->camera_count; i++)
        cJSON_AddItemToArray(cams, cJSON_CreateString(q->cameras[i]));
    cJSON_AddItemToObject(o, "cameras", cams); /* takes ownership */
    add_text(o, "officer", q->officer);
    add_time(o, "registered_at", q->registered_at);
    cJSON_AddStringToObject(o, "registered_by", q->registered_by);
    add_time(o, "deadline", q->deadline);
    cJSON_AddBoolToObject(o, "extended", q->extended);
    add_text(o, "extension_reason", q->extension_reason);
    if (q->status == BC_REQ_CLOSED) {
        add_time(o, "closed_at", q->closed_at);
        add_text(o, "answer", q->answer);
    }
    cJSON_AddBoolToObject(o, "overdue_alerted", q->overdue_alerted);
    cJSON_AddNumberToObject(o, "held", (double)q->held);
    cJSON_AddNumberToObject(o, "purged", (double)q->purged);
    return o;
}

cJSON *ctl_match_json(const bc_request_match *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "ref", m->ref);
    cJSON_AddStringToObject(o, "status", bc_recording_status_name(m->status));
    add_time(o, "recorded_at", m->recorded_at);
    add_text(o, "hold_id", m->hold_id);
    if (m->status != BC_REC_COMMITTED) {
        add_time(o, "purged_at", m->purged_at);
        cJSON_AddNumberToObject(o, "purge_audit_seq", (double)m->purge_audit_seq);
    }
    return o;
}

cJSON *ctl_audit_entry_json(const cJSON *entry)
{
    return cJSON_Duplicate(entry, 1);
}

void ctl_print_recording_line(FILE *out, const bc_recording_meta *m)
{
    char at[40], dur[32];
    ctl_format_time(m->recorded_at, at, sizeof(at));
    ctl_format_duration(m->duration_ms, dur, sizeof(dur));
    fprintf(out, "%-40s %-9s %s %9s officer=%s warnings=%" PRId64 "%s holds=%" PRId64 "\n", m->ref,
            bc_recording_status_name(m->status), at, dur, m->officer[0] ? m->officer : "-",
            m->warnings, m->emergency ? " EMERGENCY" : "", m->active_holds);
}

void ctl_print_hold_line(FILE *out, const bc_hold *h)
{
    char at[40];
    ctl_format_time(h->placed_at, at, sizeof(at));
    fprintf(out, "%-6s %-8s %-8s case=%s %s placed %s by %s", h->id,
            h->active ? "active" : "released", bc_hold_reason_name(h->reason), h->case_ref, h->ref,
            at, h->placed_by);
    if (h->note[0] != '\0')
        fprintf(out, " note=\"%s\"", h->note);
    if (!h->active) {
        ctl_format_time(h->released_at, at, sizeof(at));
        fprintf(out, "; released %s by %s", at, h->released_by);
        if (h->release_note[0] != '\0')
            fprintf(out, " note=\"%s\"", h->release_note);
    }
    fputc('\n', out);
}

void ctl_print_request_line(FILE *out, const bc_access_request *q, int64_t now_ms)
{
    char from[40], to[40], deadline[40];
    ctl_format_time(q->window_from, from, sizeof(from));
    ctl_format_time(q->window_to, to, sizeof(to));
    ctl_format_time(q->deadline, deadline, sizeof(deadline));
    bool overdue = q->status == BC_REQ_OPEN && now_ms > q->deadline;
    fprintf(out,
            "%-6s %-6s %s..%s requester=\"%s\" held=%" PRId64 " purged=%" PRId64
            " deadline=%s%s%s\n",
            q->id, bc_request_status_name(q->status), from, to, q->requester, q->held, q->purged,
            deadline, q->extended ? " (extended)" : "", overdue ? " OVERDUE" : "");
}
