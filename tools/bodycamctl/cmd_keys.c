/*
 * cmd_keys.c - bodycamctl keys: the vault's recording keys and the key
 * rotation campaigns (services/key-rotation/README.md).
 *
 * A campaign is made and changed by one script of the campaign library
 * (bc_keyrot): creating a recording-key campaign also asks the vault for
 * the new key (bodycam:stream:vault-control) in the same script, so a
 * campaign never waits for a request that was not made. The service
 * bodycam-key-rotation does the rest, at the campaign's pace.
 *
 * Audited (when the vault's audit log is configured and there; the vault
 * audits the keys it makes and destroys itself): campaign_created,
 * campaign_paused, campaign_resumed, campaign_aborted, subject
 * "campaign:<id>". An act that changes nothing (pause of a paused
 * campaign) writes no entry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/clock.h"
#include "ctl.h"
#include "key-rotation/campaign.h"
#include "key-rotation/recording_keys.h"

#define SUBJECT_PREFIX "campaign:"
#define PACE_DEFAULT 10
#define CAMERAS_MAX (CTL_VALUES_MAX - 4)

/* ---- rendering ---- */

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms > 0)
        cJSON_AddNumberToObject(o, name, (double)ms);
    else
        cJSON_AddNullToObject(o, name);
}

static cJSON *campaign_json(const bc_campaign *k)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", k->id);
    cJSON_AddStringToObject(o, "kind", bc_campaign_kind_name(k->kind));
    cJSON_AddStringToObject(o, "state", bc_campaign_state_name(k->state));
    cJSON_AddNumberToObject(o, "pace_per_s", (double)k->pace_per_s);
    cJSON_AddNumberToObject(o, "created_at", (double)k->created_at);
    cJSON_AddStringToObject(o, "created_by", k->created_by);
    if (k->kind == BC_CAMPAIGN_RECORDING_KEY)
        cJSON_AddStringToObject(o, "key_id", k->key_id);
    cJSON_AddNumberToObject(o, "total", (double)k->total);
    cJSON_AddNumberToObject(o, "done", (double)k->done);
    cJSON_AddNumberToObject(o, "failed", (double)k->failed);
    cJSON_AddNumberToObject(o, "pending", (double)k->pending);
    cJSON_AddNumberToObject(o, "in_flight", (double)k->in_flight);
    add_time(o, "started_at", k->started_at);
    add_time(o, "finished_at", k->finished_at);
    return o;
}

static cJSON *device_json(const bc_campaign_device *d)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "device", d->device);
    cJSON_AddStringToObject(o, "state", bc_campaign_device_state_name(d->state));
    cJSON_AddNumberToObject(o, "attempts", (double)d->attempts);
    cJSON_AddStringToObject(o, "cmd_id", d->cmd_id);
    add_time(o, "sent_at", d->sent_at);
    add_time(o, "not_before", d->not_before);
    cJSON_AddStringToObject(o, "detail", d->detail);
    return o;
}

static void print_campaign_line(const bc_campaign *k)
{
    char created[40];
    ctl_format_time(k->created_at, created, sizeof(created));
    printf("%-6s %-13s %-12s done %" PRId64 "/%" PRId64 ", failed %" PRId64 ", pending %" PRId64
           ", in flight %" PRId64 "  pace %" PRId64 "/s  created %s by %s",
           k->id, bc_campaign_kind_name(k->kind), bc_campaign_state_name(k->state), k->done,
           k->total, k->failed, k->pending, k->in_flight, k->pace_per_s, created, k->created_by);
    if (k->kind == BC_CAMPAIGN_RECORDING_KEY)
        printf("  key %s", k->key_id[0] ? k->key_id : "(awaiting the vault)");
    printf("\n");
}

static void print_device_line(const bc_campaign_device *d)
{
    char when[40];
    printf("  %-20s %-10s attempts %" PRId64, d->device, bc_campaign_device_state_name(d->state),
           d->attempts);
    if (d->state == BC_CDEV_PENDING && d->not_before > 0) {
        ctl_format_time(d->not_before, when, sizeof(when));
        printf("  not before %s", when);
    } else if (d->sent_at > 0) {
        ctl_format_time(d->sent_at, when, sizeof(when));
        printf("  cmd %s at %s", d->cmd_id, when);
    }
    if (d->detail[0] != '\0')
        printf("  (%s)", d->detail);
    printf("\n");
}

/* ---- keys list ---- */

typedef struct key_listing {
    cJSON *arr; /* --json: the array; NULL for text */
    size_t count;
} key_listing;

static bool list_key(const bc_recording_key *k, void *userdata)
{
    key_listing *l = userdata;
    cJSON *arr = l->arr;
    l->count++;
    if (arr == NULL) {
        char created[40], retired[40], destroyed[40];
        ctl_format_time(k->created_at, created, sizeof(created));
        ctl_format_time(k->retired_at, retired, sizeof(retired));
        ctl_format_time(k->destroyed_at, destroyed, sizeof(destroyed));
        printf("%-20s %-10s created %-24s retired %-24s destroyed %s\n", k->key_id,
               k->status[0] ? k->status : "?", created, retired, destroyed);
        return true;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return false;
    cJSON_AddStringToObject(o, "key_id", k->key_id);
    cJSON_AddStringToObject(o, "status", k->status);
    cJSON_AddBoolToObject(o, "current", k->current);
    add_time(o, "created_at", k->created_at);
    add_time(o, "retired_at", k->retired_at);
    add_time(o, "destroyed_at", k->destroyed_at);
    cJSON_AddItemToArray(arr, o);
    return true;
}

static int keys_list(ctl *c, const ctl_args *a)
{
    (void)a;
    bc_error err = {{0}};
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    cJSON *arr = c->json ? cJSON_AddArrayToObject(doc, "recording_keys") : NULL;
    if (c->json && arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "keys: out of memory");
    }
    key_listing l = {.arr = arr};
    bc_status rc = bc_recording_keys_list(&c->redis, list_key, &l, &err);
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    }
    if (!c->json && l.count == 0)
        printf("no recording keys in Redis\n");
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

/* ---- creating a campaign ---- */

static void subject_of(const char *id, char *out, size_t size)
{
    snprintf(out, size, SUBJECT_PREFIX "%s", id);
}

/* Audits a campaign act when the audit log is open (CTL_WANT_AUDIT). */
static int audit_campaign(ctl *c, const char *action, const bc_campaign *k, cJSON *details,
                          int64_t now, uint64_t *seq)
{
    if (c->audit == NULL) {
        cJSON_Delete(details);
        return CTL_EXIT_OK;
    }
    if (details == NULL)
        details = cJSON_CreateObject();
    if (details == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "audit: out of memory");
    cJSON_AddStringToObject(details, "kind", bc_campaign_kind_name(k->kind));
    cJSON_AddStringToObject(details, "state", bc_campaign_state_name(k->state));
    char subject[64];
    subject_of(k->id, subject, sizeof(subject));
    int code = ctl_audit1(c, action, subject, details, now, seq);
    cJSON_Delete(details);
    return code;
}

static int parse_pace(ctl *c, const ctl_args *a, int64_t *pace)
{
    const char *text = ctl_arg(a, "pace");
    long v = PACE_DEFAULT;
    if (text != NULL && bc_cli_parse_long(text, 1, BC_CAMPAIGN_PACE_MAX, &v) != BC_OK)
        return ctl_usage(c, "--pace is 1..%d cameras per second", BC_CAMPAIGN_PACE_MAX);
    *pace = v;
    return CTL_EXIT_OK;
}

/* --all or --camera ID...; *count 0 means all. */
static int parse_targets(ctl *c, const ctl_args *a, bool required, const char **cams, size_t *count)
{
    bool all = ctl_flag(a, "all");
    size_t n = ctl_arg_all(a, "camera", cams, CAMERAS_MAX);
    if (all && n > 0)
        return ctl_usage(c, "give --all or --camera, not both");
    if (required && !all && n == 0)
        return ctl_usage(c, "give --all or at least one --camera");
    if (n > CAMERAS_MAX)
        return ctl_usage(c, "at most %d --camera (use --all for the fleet)", CAMERAS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!bc_device_id_valid(cams[i]))
            return ctl_usage(c, "--camera '%s' is not a device id", cams[i]);
    }
    *count = n;
    return CTL_EXIT_OK;
}

static int print_created(ctl *c, const bc_campaign *k, uint64_t seq)
{
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "campaign", campaign_json(k));
        if (seq > 0)
            cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        return ctl_print_json(c, doc);
    }
    printf("campaign %s created: %s rotation of %" PRId64 " camera%s at %" PRId64 "/s, %s\n", k->id,
           bc_campaign_kind_name(k->kind), k->total, k->total == 1 ? "" : "s", k->pace_per_s,
           k->state == BC_CAMPAIGN_AWAITING_KEY ? "awaiting the vault's new key" : "running");
    return CTL_EXIT_OK;
}

static int rotate(ctl *c, const ctl_args *a, bc_campaign_kind kind)
{
    const char *cams[CAMERAS_MAX];
    size_t n = 0;
    int64_t pace = PACE_DEFAULT;
    int code = parse_targets(c, a, kind == BC_CAMPAIGN_IDENTITY, cams, &n);
    if (code == CTL_EXIT_OK)
        code = parse_pace(c, a, &pace);
    if (code != CTL_EXIT_OK)
        return code;
    bc_campaign_spec spec = {.kind = kind,
                             .devices = n > 0 ? cams : NULL,
                             .device_count = n,
                             .pace_per_s = pace,
                             .created_by = c->actor};
    int64_t now = bc_clock_now_ms();
    bc_campaign k;
    bc_error err = {{0}};
    bc_status rc = bc_campaign_create(&c->redis, &spec, now, &k, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "pace_per_s", (double)pace);
    cJSON_AddNumberToObject(d, "total", (double)k.total);
    cJSON *targets = n > 0 ? cJSON_AddArrayToObject(d, "cameras") : NULL;
    for (size_t i = 0; targets != NULL && i < n; i++)
        cJSON_AddItemToArray(targets, cJSON_CreateString(cams[i]));
    if (n == 0)
        cJSON_AddStringToObject(d, "cameras", "all");
    uint64_t seq = 0;
    code = audit_campaign(c, "campaign_created", &k, d, now, &seq);
    if (code != CTL_EXIT_OK)
        return code;
    return print_created(c, &k, seq);
}

static int keys_rotate_recording(ctl *c, const ctl_args *a)
{
    return rotate(c, a, BC_CAMPAIGN_RECORDING_KEY);
}

static int keys_rotate_identity(ctl *c, const ctl_args *a)
{
    return rotate(c, a, BC_CAMPAIGN_IDENTITY);
}

/* ---- reading campaigns ---- */

static bool list_campaign(const bc_campaign *k, void *userdata)
{
    cJSON *arr = userdata;
    if (arr == NULL) {
        print_campaign_line(k);
        return true;
    }
    cJSON *j = campaign_json(k);
    if (j == NULL)
        return false;
    cJSON_AddItemToArray(arr, j);
    return true;
}

static int keys_campaigns(ctl *c, const ctl_args *a)
{
    bc_error err = {{0}};
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    cJSON *arr = c->json ? cJSON_AddArrayToObject(doc, "campaigns") : NULL;
    if (c->json && arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "keys: out of memory");
    }
    bc_status rc = bc_campaign_list(&c->redis, !ctl_flag(a, "all"), list_campaign, arr, &err);
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

static int check_campaign_id(ctl *c, const char *id)
{
    if (!bc_campaign_id_valid(id))
        return ctl_usage(c, "'%.40s' is not a campaign id (C<n>)", id);
    return CTL_EXIT_OK;
}

static bool show_device(const bc_campaign_device *d, void *userdata)
{
    cJSON *arr = userdata;
    if (arr == NULL) {
        print_device_line(d);
        return true;
    }
    cJSON *j = device_json(d);
    if (j == NULL)
        return false;
    cJSON_AddItemToArray(arr, j);
    return true;
}

static int keys_show(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0];
    int code = check_campaign_id(c, id);
    if (code != CTL_EXIT_OK)
        return code;
    bc_campaign k;
    bc_error err = {{0}};
    bc_status rc = bc_campaign_get(&c->redis, id, &k, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    cJSON *doc = NULL, *arr = NULL;
    if (c->json) {
        doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "campaign", campaign_json(&k));
        arr = cJSON_AddArrayToObject(doc, "devices");
        if (arr == NULL) {
            cJSON_Delete(doc);
            return ctl_fail(c, BC_ERR_NOMEM, "keys: out of memory");
        }
    } else {
        print_campaign_line(&k);
    }
    rc = bc_campaign_devices(&c->redis, id, show_device, arr, &err);
    if (rc != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

/* ---- pause, resume, abort ---- */

typedef bc_status (*act_fn)(bc_redis *r, const char *id, int64_t now_ms, bc_campaign *out,
                            bool *changed, bc_error *err);

static int act(ctl *c, const ctl_args *a, act_fn fn, const char *action, const char *verb)
{
    const char *id = a->pos[0];
    int code = check_campaign_id(c, id);
    if (code != CTL_EXIT_OK)
        return code;
    int64_t now = bc_clock_now_ms();
    bc_campaign k;
    bool changed = false;
    bc_error err = {{0}};
    bc_status rc = fn(&c->redis, id, now, &k, &changed, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    uint64_t seq = 0;
    if (changed && (code = audit_campaign(c, action, &k, NULL, now, &seq)) != CTL_EXIT_OK)
        return code;
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "campaign", campaign_json(&k));
        cJSON_AddBoolToObject(doc, "changed", changed);
        if (seq > 0)
            cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        return ctl_print_json(c, doc);
    }
    printf("campaign %s %s%s (now %s)\n", k.id, changed ? "" : "already ", verb,
           bc_campaign_state_name(k.state));
    return CTL_EXIT_OK;
}

static int keys_pause(ctl *c, const ctl_args *a)
{
    return act(c, a, bc_campaign_pause, "campaign_paused", "paused");
}

static int keys_resume(ctl *c, const ctl_args *a)
{
    return act(c, a, bc_campaign_resume, "campaign_resumed", "resumed");
}

static int keys_abort(ctl *c, const ctl_args *a)
{
    return act(c, a, bc_campaign_abort, "campaign_aborted", "aborted");
}

#define CHANGE (CTL_NEED_REDIS | CTL_NEED_ACTOR | CTL_WANT_AUDIT)

static const ctl_leaf leaves[] = {
    {"list",
     "",
     "the vault's recording keys: id, status, created, retired, destroyed",
     "The keys the cameras seal recordings for. 'current' is the one cameras get;\n"
     "'retired' ones still open older recordings; 'destroyed' ones are crypto-shredded\n"
     "(every recording sealed for them is purged). The private halves never leave the\n"
     "vault's keystore.\n",
     0,
     0,
     {{NULL, false, false, false}},
     CTL_NEED_REDIS,
     keys_list},
    {"rotate-recording",
     "[--all | --camera ID...] [--pace N]",
     "rotate the recording key: the vault makes a new one, cameras get it at N/s",
     "Creates a campaign (awaiting the key) for every active registered camera (the\n"
     "default, --all) or the cameras named, and asks the vault for a new X25519 key. Once\n"
     "the vault made it, bodycam-key-rotation sends it to each camera that is online, N\n"
     "per second (default 10); offline cameras get it when they are back. A camera that\n"
     "is in another active recording-key campaign is refused (exit 3); an unknown camera\n"
     "is exit 4. Audited as campaign_created when the audit log is configured.\n",
     0,
     0,
     {{"all", false, false, false}, {"camera", true, true, false}, {"pace", true, false, false}},
     CHANGE,
     keys_rotate_recording},
    {"rotate-identity",
     "(--all | --camera ID...) [--pace N]",
     "rotate camera identities: new key and certificate per camera, N per second",
     "Creates a running campaign: each camera is asked, N per second (default 10), to\n"
     "make a new key and send a CSR; the CA signs it, the new certificate is added to the\n"
     "registry, the camera reconnects with it and then its old certificate is removed\n"
     "from the registry. A refused CSR (another camera's name, a revoked camera) raises\n"
     "identity_refused and fails that camera. Refusals and exit codes as rotate-recording.\n",
     0,
     0,
     {{"all", false, false, false}, {"camera", true, true, false}, {"pace", true, false, false}},
     CHANGE,
     keys_rotate_identity},
    {"campaigns",
     "[--all]",
     "the active rotation campaigns (--all: finished ones too)",
     NULL,
     0,
     0,
     {{"all", false, false, false}},
     CTL_NEED_REDIS,
     keys_campaigns},
    {"show",
     "ID",
     "one campaign and the state of each of its cameras",
     "Each camera is pending (with the earliest next send), sent, installing (identity:\n"
     "certificate issued), done or failed, with its attempts and its last error.\n",
     1,
     1,
     {{NULL, false, false, false}},
     CTL_NEED_REDIS,
     keys_show},
    {"pause",
     "ID",
     "stop sending (commands already out are still answered)",
     NULL,
     1,
     1,
     {{NULL, false, false, false}},
     CHANGE,
     keys_pause},
    {"resume",
     "ID",
     "send again, at the campaign's pace",
     NULL,
     1,
     1,
     {{NULL, false, false, false}},
     CHANGE,
     keys_resume},
    {"abort",
     "ID",
     "end a campaign: nothing more is sent; what is out may still complete",
     "Cameras already done keep what they got. A recording key the vault made stays the\n"
     "current key. Aborted campaigns cannot be resumed; start a new one.\n",
     1,
     1,
     {{NULL, false, false, false}},
     CHANGE,
     keys_abort},
};

const ctl_area ctl_area_keys = {"keys",
                                "recording keys and key rotation campaigns (list, "
                                "rotate-recording, rotate-identity, campaigns, show, pause, "
                                "resume, abort)",
                                leaves, sizeof(leaves) / sizeof(leaves[0])};
