/*
 * cmd_requests.c - bodycamctl requests: access requests (inzage) of people
 * who were filmed, to be answered within one calendar month (GDPR),
 * extendable once by two months with a reason.
 *
 * Registering a request holds every recording in its window (and cameras /
 * officer) at once, in the same catalog script, and the vault holds later
 * commits that match while it is open; closing it releases those holds.
 * When a matching recording was already purged, the answer is the proof:
 * the purge's audit entry, shown verbatim by 'requests show'.
 *
 * Audited: request_registered (subject "request:<id>", with the counts)
 * and one hold_placed per hold it placed (subject the recording's ref), in
 * one batch; request_extended; request_closed and one hold_released per
 * hold it released.
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "ctl.h"
#include "proto/topic.h"

#define SUBJECT_PREFIX "request:"
#define EXTEND_MONTHS 2

typedef struct match_vec {
    bc_request_match *items;
    size_t count, cap;
    bool oom;
} match_vec;

typedef struct hold_vec {
    bc_hold *items;
    size_t count, cap;
    bool oom;
} hold_vec;

/* Appends the item (size bytes) to *items, doubling *cap when full. False
 * with *oom set when out of memory: the catalog's listing stops there. */
static bool push(void **items, size_t *count, size_t *cap, bool *oom, const void *item, size_t size)
{
    if (*count == *cap) {
        size_t next = *cap ? *cap * 2 : 16;
        void *p = realloc(*items, next * size);
        if (p == NULL) {
            *oom = true;
            return false;
        }
        *items = p;
        *cap = next;
    }
    memcpy((char *)*items + *count * size, item, size);
    (*count)++;
    return true;
}

static bool collect_match(const bc_request_match *m, void *userdata)
{
    match_vec *v = userdata;
    return push((void **)&v->items, &v->count, &v->cap, &v->oom, m, sizeof(*m));
}

static bool collect_hold(const bc_hold *h, void *userdata)
{
    hold_vec *v = userdata;
    return push((void **)&v->items, &v->count, &v->cap, &v->oom, h, sizeof(*h));
}

static void subject_of(const char *id, char *out, size_t size)
{
    snprintf(out, size, SUBJECT_PREFIX "%s", id);
}

static int check_request_id(ctl *c, const char *id)
{
    if (strlen(id) > BC_CATALOG_ID_MAX || !bc_id_valid(id))
        return ctl_usage(c, "'%.40s' is not a request id (R<n>)", id);
    return CTL_EXIT_OK;
}

/* ---- list ---- */

static bool list_one(const bc_access_request *q, void *userdata)
{
    cJSON *arr = userdata;
    if (arr == NULL) {
        ctl_print_request_line(stdout, q, bc_clock_now_ms());
        return true;
    }
    cJSON *j = ctl_request_json(q);
    if (j == NULL)
        return false;
    cJSON_AddItemToArray(arr, j);
    return true;
}

static int requests_list(ctl *c, const ctl_args *a)
{
    bc_error err = {{0}};
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    cJSON *arr = c->json ? cJSON_AddArrayToObject(doc, "requests") : NULL;
    if (c->json && arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "requests: out of memory");
    }
    bc_status rc = bc_catalog_requests_list(&c->redis, !ctl_flag(a, "all"), list_one, arr, &err);
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "requests: %s", err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

/* ---- register ---- */

static int optional_text(ctl *c, const char *option, const char *value, char *out, size_t size)
{
    if (value == NULL)
        return CTL_EXIT_OK;
    if (!bc_catalog_text_valid(value))
        return ctl_usage(c, "--%s is 1..%d bytes of text without control characters", option,
                         BC_CATALOG_TEXT_MAX);
    snprintf(out, size, "%s", value);
    return CTL_EXIT_OK;
}

static int parse_cameras(ctl *c, const ctl_args *a, bc_access_request *q)
{
    const char *cams[BC_REQUEST_CAMERAS_MAX];
    size_t n = ctl_arg_all(a, "camera", cams, BC_REQUEST_CAMERAS_MAX);
    if (n > BC_REQUEST_CAMERAS_MAX)
        return ctl_usage(c, "at most %d --camera", BC_REQUEST_CAMERAS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!bc_device_id_valid(cams[i]))
            return ctl_usage(c, "--camera '%s' is not a device id", cams[i]);
        snprintf(q->cameras[i], sizeof(q->cameras[i]), "%s", cams[i]);
    }
    q->camera_count = n;
    return CTL_EXIT_OK;
}

static int parse_request(ctl *c, const ctl_args *a, bc_access_request *q)
{
    const char *from = ctl_arg(a, "from"), *to = ctl_arg(a, "to");
    const char *officer = ctl_arg(a, "officer");
    memset(q, 0, sizeof(*q));
    int code =
        optional_text(c, "requester", ctl_arg(a, "requester"), q->requester, sizeof(q->requester));
    if (code == CTL_EXIT_OK)
        code = optional_text(c, "contact", ctl_arg(a, "contact"), q->contact, sizeof(q->contact));
    if (code == CTL_EXIT_OK)
        code = optional_text(c, "place", ctl_arg(a, "place"), q->place, sizeof(q->place));
    if (code == CTL_EXIT_OK)
        code = parse_cameras(c, a, q);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl_parse_time(from, &q->window_from) != BC_OK)
        return ctl_usage(c, "--from '%s' is not a time (2026-11-28T14:00:00Z)", from);
    if (ctl_parse_time(to, &q->window_to) != BC_OK)
        return ctl_usage(c, "--to '%s' is not a time (2026-11-28T14:00:00Z)", to);
    if (q->window_to <= q->window_from)
        return ctl_usage(c, "--to must be after --from");
    if (officer != NULL && (!bc_id_valid(officer) || strlen(officer) > BC_ID_MAX))
        return ctl_usage(c, "--officer '%s' is not an officer id", officer);
    if (officer != NULL)
        snprintf(q->officer, sizeof(q->officer), "%s", officer);
    return CTL_EXIT_OK;
}

static cJSON *registered_entry(const bc_access_request *q)
{
    char subject[sizeof(SUBJECT_PREFIX) + BC_CATALOG_ID_MAX];
    subject_of(q->id, subject, sizeof(subject));
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "action", "request_registered");
    cJSON_AddStringToObject(e, "subject", subject);
    cJSON_AddStringToObject(e, "requester", q->requester);
    cJSON_AddNumberToObject(e, "window_from", (double)q->window_from);
    cJSON_AddNumberToObject(e, "window_to", (double)q->window_to);
    if (q->place[0] != '\0')
        cJSON_AddStringToObject(e, "place", q->place);
    cJSON *cams = cJSON_AddArrayToObject(e, "cameras");
    for (size_t i = 0; cams != NULL && i < q->camera_count; i++)
        cJSON_AddItemToArray(cams, cJSON_CreateString(q->cameras[i]));
    if (q->officer[0] != '\0')
        cJSON_AddStringToObject(e, "officer", q->officer);
    cJSON_AddNumberToObject(e, "deadline", (double)q->deadline);
    cJSON_AddNumberToObject(e, "held", (double)q->held);
    cJSON_AddNumberToObject(e, "purged", (double)q->purged);
    return e;
}

static cJSON *hold_entry(const char *action, const char *ref, const char *hold_id,
                         const char *request_id)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "action", action);
    cJSON_AddStringToObject(e, "subject", ref);
    cJSON_AddStringToObject(e, "request_id", request_id);
    cJSON_AddStringToObject(e, "hold_id", hold_id);
    cJSON_AddStringToObject(e, "reason", bc_hold_reason_name(BC_HOLD_INZAGE));
    cJSON_AddStringToObject(e, "case_ref", request_id);
    return e;
}

/* Appends entries[0..n) as one batch, unless one of them could not be
 * built (NULL: out of memory); frees them and the array either way. */
static int audit_batch(ctl *c, cJSON **entries, size_t n, int64_t now, uint64_t *seq)
{
    int code = CTL_EXIT_OK;
    for (size_t i = 0; i < n && code == CTL_EXIT_OK; i++) {
        if (entries[i] == NULL)
            code = ctl_fail(c, BC_ERR_NOMEM, "audit: out of memory");
    }
    if (code == CTL_EXIT_OK)
        code = ctl_audit(c, entries, n, now, seq);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(entries[i]);
    free(entries);
    return code;
}

/* request_registered and one hold_placed per hold, as one batch. */
static int audit_registered(ctl *c, const bc_access_request *q, const match_vec *m, int64_t now,
                            uint64_t *seq)
{
    cJSON **entries = calloc(m->count + 1, sizeof(*entries));
    size_t n = 0;
    if (entries == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "audit: out of memory");
    entries[n++] = registered_entry(q);
    for (size_t i = 0; i < m->count; i++) {
        if (m->items[i].hold_id[0] != '\0')
            entries[n++] = hold_entry("hold_placed", m->items[i].ref, m->items[i].hold_id, q->id);
    }
    return audit_batch(c, entries, n, now, seq);
}

static void print_match(const bc_request_match *m)
{
    char t[40];
    ctl_format_time(m->recorded_at, t, sizeof(t));
    if (m->status == BC_REC_COMMITTED) {
        printf("  %-40s recorded %s  held (hold %s)\n", m->ref, t,
               m->hold_id[0] ? m->hold_id : "-");
        return;
    }
    char purged[40];
    ctl_format_time(m->purged_at, purged, sizeof(purged));
    if (m->status == BC_REC_PURGING)
        printf("  %-40s recorded %s  being purged", m->ref, t);
    else
        printf("  %-40s recorded %s  purged at %s", m->ref, t, purged);
    if (m->purge_audit_seq > 0)
        printf(", audit entry #%llu", (unsigned long long)m->purge_audit_seq);
    putchar('\n');
}

static cJSON *matches_json(const match_vec *m)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr != NULL && i < m->count; i++)
        cJSON_AddItemToArray(arr, ctl_match_json(&m->items[i]));
    return arr;
}

static int requests_register(ctl *c, const ctl_args *a)
{
    bc_access_request q;
    match_vec m = {0};
    bc_error err = {{0}};
    uint64_t seq = 0;
    int code = parse_request(c, a, &q);
    if (code != CTL_EXIT_OK)
        return code;
    int64_t now = bc_clock_now_ms();
    q.registered_at = now;
    snprintf(q.registered_by, sizeof(q.registered_by), "%s", c->actor);
    q.deadline = bc_catalog_add_months(now, 1);
    bc_status rc = bc_catalog_request_register(&c->redis, &q, now, collect_match, &m, &err);
    if (rc == BC_OK && m.oom)
        rc = bc_fail(&err, BC_ERR_NOMEM, "out of memory for its matches");
    if (rc != BC_OK) {
        free(m.items);
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    }
    code = audit_registered(c, &q, &m, now, &seq);
    if (code == CTL_EXIT_OK && c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "request", ctl_request_json(&q));
        cJSON_AddItemToObject(doc, "matches", matches_json(&m));
        cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        code = ctl_print_json(c, doc);
    } else if (code == CTL_EXIT_OK) {
        char deadline[40];
        ctl_format_time(q.deadline, deadline, sizeof(deadline));
        printf("registered %s: answer by %s; %lld recording%s held, %lld already purged\n", q.id,
               deadline, (long long)q.held, q.held == 1 ? "" : "s", (long long)q.purged);
        for (size_t i = 0; i < m.count; i++)
            print_match(&m.items[i]);
    }
    free(m.items);
    return code;
}

/* ---- show ---- */

typedef struct proof_search {
    uint64_t *seqs; /* sorted */
    size_t count, found;
    char **lines; /* per seq, malloc'd */
    bool oom;
} proof_search;

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool proof_line(const char *line, size_t len, const cJSON *entry, void *userdata)
{
    proof_search *p = userdata;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(entry, "seq");
    if (!cJSON_IsNumber(seq))
        return true;
    uint64_t want = (uint64_t)seq->valuedouble;
    uint64_t *hit = bsearch(&want, p->seqs, p->count, sizeof(*p->seqs), seq_cmp);
    if (hit == NULL)
        return true;
    size_t i = (size_t)(hit - p->seqs);
    if (p->lines[i] == NULL) {
        p->lines[i] = strndup(line, len);
        p->oom |= p->lines[i] == NULL;
        p->found++;
    }
    return p->found < p->count; /* all found: stop reading */
}

/* The purge entries of the purged matches, from one pass over the log. */
static bc_status find_proofs(const char *audit_dir, const match_vec *m, proof_search *p,
                             bc_error *err)
{
    memset(p, 0, sizeof(*p));
    p->seqs = calloc(m->count + 1, sizeof(*p->seqs));
    p->lines = calloc(m->count + 1, sizeof(*p->lines));
    if (p->seqs == NULL || p->lines == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->count; i++) {
        if (m->items[i].status != BC_REC_COMMITTED && m->items[i].purge_audit_seq > 0)
            p->seqs[p->count++] = m->items[i].purge_audit_seq;
    }
    if (p->count == 0)
        return BC_OK;
    qsort(p->seqs, p->count, sizeof(*p->seqs), seq_cmp);
    bc_status rc = bc_audit_scan(audit_dir, NULL, proof_line, p, err);
    if (rc == BC_OK && p->oom)
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory");
    return rc;
}

static const char *proof_of(const proof_search *p, uint64_t seq)
{
    uint64_t *hit = bsearch(&seq, p->seqs, p->count, sizeof(*p->seqs), seq_cmp);
    return hit != NULL ? p->lines[hit - p->seqs] : NULL;
}

static void free_proofs(proof_search *p)
{
    for (size_t i = 0; p->lines != NULL && i < p->count; i++)
        free(p->lines[i]);
    free(p->lines);
    free(p->seqs);
}

static void print_request(const bc_access_request *q)
{
    char t[40], u[40];
    printf("request:      %s (%s)\n", q->id, bc_request_status_name(q->status));
    printf("requester:    %s%s%s\n", q->requester, q->contact[0] ? ", contact " : "", q->contact);
    ctl_format_time(q->window_from, t, sizeof(t));
    ctl_format_time(q->window_to, u, sizeof(u));
    printf("window:       %s .. %s\n", t, u);
    if (q->place[0] != '\0')
        printf("place:        %s\n", q->place);
    printf("cameras:      ");
    for (size_t i = 0; i < q->camera_count; i++)
        printf("%s%s", i ? ", " : "", q->cameras[i]);
    printf("%s\n", q->camera_count ? "" : "all");
    if (q->officer[0] != '\0')
        printf("officer:      %s\n", q->officer);
    ctl_format_time(q->registered_at, t, sizeof(t));
    printf("registered:   %s by %s\n", t, q->registered_by);
    ctl_format_time(q->deadline, t, sizeof(t));
    printf("deadline:     %s%s%s%s\n", t, q->extended ? " (extended: " : "", q->extension_reason,
           q->extended ? ")" : "");
    if (q->status == BC_REQ_CLOSED) {
        ctl_format_time(q->closed_at, t, sizeof(t));
        printf("closed:       %s, answer: %s\n", t, q->answer);
    }
}

static int show_text(const bc_access_request *q, const match_vec *m, const proof_search *p)
{
    print_request(q);
    printf("matches:\n");
    if (m->count == 0)
        printf("  no recordings in this window\n");
    for (size_t i = 0; i < m->count; i++) {
        print_match(&m->items[i]);
        const char *proof = proof_of(p, m->items[i].purge_audit_seq);
        if (m->items[i].status != BC_REC_COMMITTED && proof != NULL)
            printf("    %s\n", proof);
        else if (m->items[i].status != BC_REC_COMMITTED && m->items[i].purge_audit_seq > 0)
            printf("    (audit entry #%llu is no longer in the log)\n",
                   (unsigned long long)m->items[i].purge_audit_seq);
    }
    return CTL_EXIT_OK;
}

static int show_json(ctl *c, const bc_access_request *q, const match_vec *m, const proof_search *p)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToObject(doc, "request", ctl_request_json(q));
    for (size_t i = 0; arr != NULL && i < m->count; i++) {
        cJSON *j = ctl_match_json(&m->items[i]);
        const char *proof = proof_of(p, m->items[i].purge_audit_seq);
        if (j != NULL && m->items[i].status != BC_REC_COMMITTED && proof != NULL) {
            cJSON_AddStringToObject(j, "proof", proof); /* verbatim: checkable */
            cJSON_AddItemToObject(j, "proof_entry", cJSON_Parse(proof));
        }
        cJSON_AddItemToArray(arr, j);
    }
    cJSON_AddItemToObject(doc, "matches", arr);
    return ctl_print_json(c, doc);
}

static int requests_show(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0];
    bc_access_request q;
    match_vec m = {0};
    proof_search p = {0};
    bc_error err = {{0}};
    if (check_request_id(c, id) != CTL_EXIT_OK)
        return CTL_EXIT_USAGE;
    bc_status rc = bc_catalog_request_get(&c->redis, id, &q, &err);
    if (rc == BC_OK)
        rc = bc_catalog_request_matches(&c->redis, id, collect_match, &m, &err);
    if (rc == BC_OK && m.oom)
        rc = bc_fail(&err, BC_ERR_NOMEM, "out of memory");
    if (rc == BC_OK)
        rc = find_proofs(c->audit_dir, &m, &p, &err);
    int code = rc != BC_OK ? ctl_fail(c, rc, "%s: %s", c->what, err.text)
               : c->json   ? show_json(c, &q, &m, &p)
                           : show_text(&q, &m, &p);
    free_proofs(&p);
    free(m.items);
    return code;
}

/* ---- extend, close ---- */

static int requests_extend(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0], *reason = ctl_arg(a, "reason");
    bc_access_request q;
    bc_error err = {{0}};
    if (check_request_id(c, id) != CTL_EXIT_OK)
        return CTL_EXIT_USAGE;
    if (!bc_catalog_text_valid(reason))
        return ctl_usage(c, "--reason is 1..%d bytes of text without control characters",
                         BC_CATALOG_TEXT_MAX);
    int64_t now = bc_clock_now_ms();
    bc_status rc = bc_catalog_request_get(&c->redis, id, &q, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    int64_t previous = q.deadline;
    int64_t deadline = bc_catalog_add_months(previous, EXTEND_MONTHS);
    rc = bc_catalog_request_extend(&c->redis, id, deadline, reason, c->actor, now, &q, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    char subject[sizeof(SUBJECT_PREFIX) + BC_CATALOG_ID_MAX];
    subject_of(id, subject, sizeof(subject));
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "reason", reason);
    cJSON_AddNumberToObject(d, "previous_deadline", (double)previous);
    cJSON_AddNumberToObject(d, "deadline", (double)q.deadline);
    uint64_t seq = 0;
    int code = ctl_audit1(c, "request_extended", subject, d, now, &seq);
    cJSON_Delete(d);
    if (code != CTL_EXIT_OK)
        return code;
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "request", ctl_request_json(&q));
        cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        return ctl_print_json(c, doc);
    }
    char t[40];
    ctl_format_time(q.deadline, t, sizeof(t));
    printf("extended %s: answer by %s\n", id, t);
    return CTL_EXIT_OK;
}

/* request_closed and one hold_released per released hold, as one batch. */
static int audit_closed(ctl *c, const char *id, const char *answer, const hold_vec *h, int64_t now,
                        uint64_t *seq)
{
    char subject[sizeof(SUBJECT_PREFIX) + BC_CATALOG_ID_MAX];
    cJSON **entries = calloc(h->count + 1, sizeof(*entries));
    size_t n = 0;
    if (entries == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "audit: out of memory");
    subject_of(id, subject, sizeof(subject));
    cJSON *e = cJSON_CreateObject();
    entries[n++] = e;
    cJSON_AddStringToObject(e, "action", "request_closed");
    cJSON_AddStringToObject(e, "subject", subject);
    cJSON_AddStringToObject(e, "answer", answer);
    cJSON_AddNumberToObject(e, "holds_released", (double)h->count);
    for (size_t i = 0; i < h->count; i++)
        entries[n++] = hold_entry("hold_released", h->items[i].ref, h->items[i].id, id);
    return audit_batch(c, entries, n, now, seq);
}

static int requests_close(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0], *answer = ctl_arg(a, "answer");
    hold_vec h = {0};
    bc_error err = {{0}};
    uint64_t seq = 0;
    if (check_request_id(c, id) != CTL_EXIT_OK)
        return CTL_EXIT_USAGE;
    if (!bc_catalog_text_valid(answer))
        return ctl_usage(c, "--answer is 1..%d bytes of text without control characters",
                         BC_CATALOG_TEXT_MAX);
    int64_t now = bc_clock_now_ms();
    bc_status rc =
        bc_catalog_request_close(&c->redis, id, answer, c->actor, now, collect_hold, &h, &err);
    if (rc == BC_OK && h.oom)
        rc = bc_fail(&err, BC_ERR_NOMEM, "closed, but out of memory listing its holds");
    if (rc != BC_OK) {
        free(h.items);
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    }
    int code = audit_closed(c, id, answer, &h, now, &seq);
    if (code == CTL_EXIT_OK && c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON *arr = cJSON_AddArrayToObject(doc, "released");
        for (size_t i = 0; arr != NULL && i < h.count; i++)
            cJSON_AddItemToArray(arr, ctl_hold_json(&h.items[i]));
        cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        code = ctl_print_json(c, doc);
    } else if (code == CTL_EXIT_OK) {
        printf("closed %s: %zu hold%s released\n", id, h.count, h.count == 1 ? "" : "s");
        for (size_t i = 0; i < h.count; i++)
            printf("  %s on %s\n", h.items[i].id, h.items[i].ref);
    }
    free(h.items);
    return code;
}

static const ctl_leaf leaves[] = {
    {"list",
     "[--all]",
     "open access requests (--all: closed ones too)",
     NULL,
     0,
     0,
     {{"all", false, false, false}},
     CTL_NEED_REDIS,
     requests_list},
    {"register",
     "--requester NAME --from T --to T [--place TEXT] [--camera ID]... [--officer X] "
     "[--contact TEXT]",
     "register an access request and hold its recordings",
     "Every recording made in [--from, --to] (by the --camera cameras, all when none\n"
     "is given; by --officer when given) is held at once with an inzage hold whose\n"
     "case reference is the request id, and so are later uploads that match while\n"
     "the request is open. The deadline is one calendar month from now. Audited as\n"
     "request_registered and one hold_placed per recording held.\n",
     0,
     0,
     {{"requester", true, false, true},
      {"from", true, false, true},
      {"to", true, false, true},
      {"place", true, false, false},
      {"camera", true, true, false},
      {"officer", true, false, false},
      {"contact", true, false, false}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     requests_register},
    {"show",
     "ID",
     "a request and its recordings: held, or purged with the proof",
     "A recording purged before the request came is shown with the time of its\n"
     "purge, its audit entry number and that entry verbatim (check it with\n"
     "'bodycamctl audit verify').\n",
     1,
     1,
     {{0}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT_DIR,
     requests_show},
    {"extend",
     "ID --reason TEXT",
     "move the deadline two months on (once)",
     "Allowed once per request, while it is open (else exit 3). Audited as\n"
     "request_extended.\n",
     1,
     1,
     {{"reason", true, false, true}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     requests_extend},
    {"close",
     "ID --answer TEXT",
     "close a request with its answer and release its holds",
     "Each released recording is purged at its own delete_after again unless another\n"
     "hold keeps it. Audited as request_closed and one hold_released per hold.\n",
     1,
     1,
     {{"answer", true, false, true}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     requests_close},
};

const ctl_area ctl_area_requests = {"requests",
                                    "access requests, inzage (list, register, show, extend, "
                                    "close)",
                                    leaves, sizeof(leaves) / sizeof(leaves[0])};
