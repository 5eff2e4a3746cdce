/*
 * cmd_holds.c - bodycamctl holds: stopping the purge of a recording for an
 * aangifte or a klacht (design.md "Vault, retention and access").
 *
 * The catalog places and releases a hold in one script, so a hold placed
 * while the purge runs either lands first (the purge skips the recording)
 * or is refused because the recording is purging or purged (exit 3).
 * Inzage holds are not placed here: an access request places them
 * (requests register) and closing it releases them.
 *
 * Audited: hold_placed and hold_released, subject the recording's ref.
 */
#include <string.h>

#include "common/clock.h"
#include "ctl.h"

static bool list_one(const bc_hold *h, void *userdata)
{
    cJSON *arr = userdata;
    if (arr == NULL) {
        ctl_print_hold_line(stdout, h);
        return true;
    }
    cJSON *j = ctl_hold_json(h);
    if (j == NULL)
        return false;
    cJSON_AddItemToArray(arr, j);
    return true;
}

static int holds_list(ctl *c, const ctl_args *a)
{
    bc_hold_filter f = {.ref = ctl_arg(a, "ref"),
                        .case_ref = ctl_arg(a, "case"),
                        .active_only = !ctl_flag(a, "all")};
    bc_error err = {{0}};
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    cJSON *arr = c->json ? cJSON_AddArrayToObject(doc, "holds") : NULL;
    if (c->json && arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "holds: out of memory");
    }
    bc_status rc = bc_catalog_holds_list(&c->redis, &f, list_one, arr, &err);
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "holds: %s", err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

static int print_hold(ctl *c, const char *verb, const bc_hold *h, bool changed, uint64_t seq)
{
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "hold", ctl_hold_json(h));
        cJSON_AddBoolToObject(doc, "changed", changed);
        if (seq > 0)
            cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        return ctl_print_json(c, doc);
    }
    printf("%s %s (%s, case %s) on %s\n", changed ? verb : "already", h->id,
           bc_hold_reason_name(h->reason), h->case_ref, h->ref);
    return CTL_EXIT_OK;
}

/* Audits a hold placed or released; the subject is its recording's ref. */
static int audit_hold(ctl *c, const char *action, const char *ref, const bc_hold *h,
                      const char *note, int64_t now, uint64_t *seq)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "hold_id", h->id);
    cJSON_AddStringToObject(d, "reason", bc_hold_reason_name(h->reason));
    cJSON_AddStringToObject(d, "case_ref", h->case_ref);
    if (note != NULL)
        cJSON_AddStringToObject(d, "note", note);
    int code = ctl_audit1(c, action, ref, d, now, seq);
    cJSON_Delete(d);
    return code;
}

static int holds_place(ctl *c, const ctl_args *a)
{
    const char *ref = a->pos[0], *reason_text = ctl_arg(a, "reason");
    const char *case_ref = ctl_arg(a, "case"), *note = ctl_arg(a, "note");
    char device[BC_DEVICE_ID_MAX + 1], id[BC_ID_MAX + 1];
    bc_hold_reason reason;
    bc_error err = {{0}};
    if (bc_ref_split(ref, device, id) != BC_OK)
        return ctl_usage(c, "'%s' is not a recording (<device>/<recording id>)", ref);
    if (bc_hold_reason_parse(reason_text, &reason, NULL) != BC_OK || reason == BC_HOLD_INZAGE)
        return ctl_usage(c, "--reason is aangifte or klacht (inzage holds come from "
                            "'requests register')");
    if (!bc_catalog_case_valid(case_ref))
        return ctl_usage(c, "--case '%s' is not a case reference ([A-Za-z0-9_./:-]{1,64})",
                         case_ref);
    if (note != NULL && !bc_catalog_text_valid(note))
        return ctl_usage(c, "--note is 1..%d bytes of text without control characters",
                         BC_CATALOG_TEXT_MAX);
    int64_t now = bc_clock_now_ms();
    bc_hold h;
    bool created = false;
    bc_status rc = bc_catalog_hold_place(&c->redis, ref, reason, case_ref, c->actor, note, now, &h,
                                         &created, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    uint64_t seq = 0;
    if (created) {
        int code = audit_hold(c, "hold_placed", ref, &h, note, now, &seq);
        if (code != CTL_EXIT_OK)
            return code;
    }
    return print_hold(c, "placed", &h, created, seq);
}

static int holds_release(ctl *c, const ctl_args *a)
{
    const char *hold_id = a->pos[0], *note = ctl_arg(a, "note");
    bc_error err = {{0}};
    if (strlen(hold_id) > BC_CATALOG_ID_MAX)
        return ctl_usage(c, "'%.40s...' is not a hold id", hold_id);
    if (note != NULL && !bc_catalog_text_valid(note))
        return ctl_usage(c, "--note is 1..%d bytes of text without control characters",
                         BC_CATALOG_TEXT_MAX);
    int64_t now = bc_clock_now_ms();
    bc_hold h;
    bc_status rc = bc_catalog_hold_release(&c->redis, hold_id, c->actor, note, now, &h, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    uint64_t seq = 0;
    int code = audit_hold(c, "hold_released", h.ref, &h, note, now, &seq);
    if (code != CTL_EXIT_OK)
        return code;
    return print_hold(c, "released", &h, true, seq);
}

static const ctl_leaf leaves[] = {
    {"list",
     "[--ref REF] [--case C] [--all]",
     "active holds (--all: released ones too)",
     NULL,
     0,
     0,
     {{"ref", true, false, false}, {"case", true, false, false}, {"all", false, false, false}},
     CTL_NEED_REDIS,
     holds_list},
    {"place",
     "REF --reason aangifte|klacht --case C [--note TEXT]",
     "hold a recording for a police report (aangifte) or a complaint (klacht)",
     "While a recording has an active hold it is not purged. The same reason and\n"
     "case on the same recording is the same hold (nothing changes). A recording that\n"
     "is purging or purged cannot be held (exit 3). Audited as hold_placed.\n",
     1,
     1,
     {{"reason", true, false, true}, {"case", true, false, true}, {"note", true, false, false}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     holds_place},
    {"release",
     "HOLD_ID [--note TEXT]",
     "release a hold",
     "When it was the recording's last active hold, the recording is purged at its\n"
     "delete_after again (at once, if that has passed). Already released: exit 3.\n"
     "Audited as hold_released.\n",
     1,
     1,
     {{"note", true, false, false}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     holds_release},
};

const ctl_area ctl_area_holds = {"holds", "holds on recordings (list, place, release)", leaves,
                                 sizeof(leaves) / sizeof(leaves[0])};
