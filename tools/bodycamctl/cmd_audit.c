/*
 * cmd_audit.c - bodycamctl audit: checking and reading the vault's
 * hash-chained audit log (services/vault/audit.h). Read only: it takes no
 * lock and never repairs anything, so it can run beside a live vault.
 *
 * verify exits 5 when the log fails verification (an edited, missing or
 * reordered entry, a cut tail, a line that is not an entry), printing
 * where; 1 when it cannot be read at all.
 */
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "ctl.h"

#define TAIL_MAX 100000

static int audit_verify(ctl *c, const ctl_args *a)
{
    (void)a;
    bc_audit_verify_result res;
    bc_error err = {{0}};
    memset(&res, 0, sizeof(res));
    bc_status rc = bc_audit_verify(c->audit_dir, &res, &err);
    bool failed = rc == BC_ERR_TAMPERED || rc == BC_ERR_PARSE;
    if (rc != BC_OK && !failed)
        return ctl_fail(c, rc, "audit log %s: %s", c->audit_dir, err.text);
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "audit_dir", c->audit_dir);
        cJSON_AddBoolToObject(doc, "ok", !failed);
        if (failed) {
            cJSON_AddStringToObject(doc, "problem", err.text);
        } else {
            cJSON_AddNumberToObject(doc, "entries", (double)res.entries);
            cJSON_AddNumberToObject(doc, "first_seq", (double)res.first_seq);
            cJSON_AddNumberToObject(doc, "last_seq", (double)res.last_seq);
            cJSON_AddNumberToObject(doc, "files", (double)res.files);
            cJSON_AddStringToObject(doc, "last_hash", res.last_hash);
        }
        int code = ctl_print_json(c, doc);
        if (code != CTL_EXIT_OK)
            return code;
    } else if (!failed) {
        printf("audit log %s: ok, %llu entries (#%llu..#%llu) in %zu file%s, head %s\n",
               c->audit_dir, (unsigned long long)res.entries, (unsigned long long)res.first_seq,
               (unsigned long long)res.last_seq, res.files, res.files == 1 ? "" : "s",
               res.last_hash);
    }
    if (failed)
        return ctl_fail(c, BC_ERR_TAMPERED, "audit log %s fails verification: %s", c->audit_dir,
                        err.text);
    return CTL_EXIT_OK;
}

/* --tail keeps the last N lines in a ring; without it lines go straight out. */
typedef struct show_state {
    bool json;
    cJSON *arr;
    char **ring;
    size_t tail, next, count;
    bool oom;
} show_state;

static bool show_line(const char *line, size_t len, const cJSON *entry, void *userdata)
{
    show_state *s = userdata;
    if (s->tail > 0) {
        char *copy = strndup(line, len);
        if (copy == NULL) {
            s->oom = true;
            return false;
        }
        free(s->ring[s->next]);
        s->ring[s->next] = copy;
        s->next = (s->next + 1) % s->tail;
        s->count++;
        return true;
    }
    if (!s->json) {
        printf("%.*s\n", (int)len, line);
        return true;
    }
    cJSON *j = ctl_audit_entry_json(entry);
    if (j == NULL || !cJSON_AddItemToArray(s->arr, j)) {
        cJSON_Delete(j);
        s->oom = true;
        return false;
    }
    return true;
}

/* Emits the ring's lines, oldest first. */
static void flush_ring(show_state *s)
{
    size_t n = s->count < s->tail ? s->count : s->tail;
    size_t start = s->count < s->tail ? 0 : s->next;
    for (size_t i = 0; i < n; i++) {
        const char *line = s->ring[(start + i) % s->tail];
        if (!s->json) {
            printf("%s\n", line);
            continue;
        }
        cJSON *j = cJSON_Parse(line);
        if (j != NULL)
            cJSON_AddItemToArray(s->arr, j);
    }
}

static int audit_show(ctl *c, const ctl_args *a)
{
    const char *subject = ctl_arg(a, "subject"), *tail = ctl_arg(a, "tail");
    long n = 0;
    bc_error err = {{0}};
    if (tail != NULL && bc_cli_parse_long(tail, 1, TAIL_MAX, &n) != BC_OK)
        return ctl_usage(c, "--tail wants a number from 1 to %d", TAIL_MAX);
    show_state s = {.json = c->json, .tail = (size_t)n};
    cJSON *doc = NULL;
    if (c->json) {
        doc = cJSON_CreateObject();
        s.arr = cJSON_AddArrayToObject(doc, "entries");
    }
    if (s.tail > 0)
        s.ring = calloc(s.tail, sizeof(*s.ring));
    int code = CTL_EXIT_OK;
    if ((c->json && s.arr == NULL) || (s.tail > 0 && s.ring == NULL)) {
        code = ctl_fail(c, BC_ERR_NOMEM, "audit: out of memory");
        goto cleanup;
    }
    bc_status rc = bc_audit_scan(c->audit_dir, subject, show_line, &s, &err);
    if (rc == BC_OK && s.oom)
        rc = bc_fail(&err, BC_ERR_NOMEM, "out of memory");
    if (rc != BC_OK) {
        code = ctl_fail(c, rc, "audit log %s: %s", c->audit_dir, err.text);
        goto cleanup;
    }
    if (s.tail > 0)
        flush_ring(&s);
    if (c->json) {
        code = ctl_print_json(c, doc);
        doc = NULL;
    }
cleanup:
    for (size_t i = 0; s.ring != NULL && i < s.tail; i++)
        free(s.ring[i]);
    free(s.ring);
    cJSON_Delete(doc);
    return code;
}

static const ctl_leaf leaves[] = {
    {"verify",
     "",
     "check the whole audit log: every hash, no gap, the head",
     "Exit 0 when the log verifies; 5 when it does not, naming the file, the entry\n"
     "and what is wrong (edited, missing, out of order, cut off).\n",
     0,
     0,
     {{0}},
     CTL_NEED_AUDIT_DIR,
     audit_verify},
    {"show",
     "[--subject S] [--tail N]",
     "print audit entries, verbatim, oldest first",
     "--subject keeps entries about one thing: a recording's ref (cam-001/rec-7),\n"
     "device:<id> or request:<id>. --tail keeps the last N of them.\n",
     0,
     0,
     {{"subject", true, false, false}, {"tail", true, false, false}},
     CTL_NEED_AUDIT_DIR,
     audit_show},
};

const ctl_area ctl_area_audit = {"audit", "the vault's audit log (verify, show)", leaves,
                                 sizeof(leaves) / sizeof(leaves[0])};
