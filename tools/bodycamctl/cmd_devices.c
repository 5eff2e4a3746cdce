/*
 * cmd_devices.c - bodycamctl devices: the device registry the broker
 * plugin reads (broker-plugins/README.md), changed through
 * tools/registry_admin (shared with bodycam-registry). A change reaches
 * the broker within its registry poll (200 ms): a lost or revoked camera
 * is kicked and refused from then on.
 *
 * Every change is audited with the subject "device:<id>"; a command that
 * changes nothing (the fingerprint is known, the status is already that)
 * writes no entry.
 */
#include <string.h>

#include "common/clock.h"
#include "ctl.h"
#include "proto/encoding.h"
#include "proto/topic.h"
#include "registry_admin.h"

#define SUBJECT_PREFIX "device:"
#define ASSIGNMENT_PREFIX "bodycam:assignment:"

static int check_id(ctl *c, const char *id)
{
    if (!bc_device_id_valid(id))
        return ctl_usage(c, "'%s' is not a device id ([a-z0-9][a-z0-9_-]{0,31})", id);
    return CTL_EXIT_OK;
}

static cJSON *fingerprints_json(const bc_registry_device *d)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t k = 0; arr != NULL && k < d->fingerprint_count; k++) {
        char hex[BC_REGISTRY_FP_HEX_LEN + 1];
        if (bc_hex_encode(d->fingerprints[k], BC_FINGERPRINT_LEN, hex, sizeof(hex)) == BC_OK)
            cJSON_AddItemToArray(arr, cJSON_CreateString(hex));
    }
    return arr;
}

static void print_fingerprints(const bc_registry_device *d)
{
    for (size_t k = 0; k < d->fingerprint_count; k++) {
        char hex[BC_REGISTRY_FP_HEX_LEN + 1];
        if (bc_hex_encode(d->fingerprints[k], BC_FINGERPRINT_LEN, hex, sizeof(hex)) == BC_OK)
            printf("%s%s", k ? "," : "", hex);
    }
    if (d->fingerprint_count == 0)
        printf("(none)");
}

/* ---- list ---- */

static int devices_list(ctl *c, const ctl_args *a)
{
    (void)a;
    bc_registry_snapshot *s = NULL;
    bc_error err = {{0}};
    bc_status rc = bc_registry_load(c->redis.ctx, &s, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "device registry: %s", err.text);
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(doc, "devices");
        cJSON_AddNumberToObject(doc, "version", (double)s->version);
        cJSON_AddNumberToObject(doc, "skipped", (double)s->skipped);
        for (size_t i = 0; arr != NULL && i < s->device_count; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", s->devices[i].id);
            cJSON_AddStringToObject(o, "status", bc_device_status_name(s->devices[i].status));
            cJSON_AddItemToObject(o, "fingerprints", fingerprints_json(&s->devices[i]));
            cJSON_AddItemToArray(arr, o);
        }
        bc_registry_snapshot_free(s);
        return ctl_print_json(c, doc);
    }
    for (size_t i = 0; i < s->device_count; i++) {
        printf("%-32s %-8s ", s->devices[i].id, bc_device_status_name(s->devices[i].status));
        print_fingerprints(&s->devices[i]);
        putchar('\n');
    }
    printf("# %zu devices (registry version %llu", s->device_count, (unsigned long long)s->version);
    if (s->skipped > 0)
        printf(", %zu malformed entries skipped: the broker refuses them", s->skipped);
    printf(")\n");
    bc_registry_snapshot_free(s);
    return CTL_EXIT_OK;
}

/* ---- show ---- */

/* The officer the camera is assigned to: bodycam:assignment:<id> is a
 * hash with field "officer" or a plain string (catalog.h). "" when none. */
static bc_status read_assignment(bc_redis *r, const char *id, char *out, size_t size, bc_error *err)
{
    char key[sizeof(ASSIGNMENT_PREFIX) + BC_DEVICE_ID_MAX];
    redisReply *reply = NULL;
    snprintf(key, sizeof(key), ASSIGNMENT_PREFIX "%s", id);
    const char *type_argv[] = {"TYPE", key};
    bc_status rc = bc_redis_command(r, 2, type_argv, NULL, &reply, err);
    if (rc != BC_OK)
        return rc;
    bool is_hash = reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "hash") == 0;
    bool is_string = reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "string") == 0;
    freeReplyObject(reply);
    out[0] = '\0';
    if (!is_hash && !is_string)
        return BC_OK;
    const char *hget[] = {"HGET", key, "officer"};
    const char *get[] = {"GET", key};
    rc = is_hash ? bc_redis_command(r, 3, hget, NULL, &reply, err)
                 : bc_redis_command(r, 2, get, NULL, &reply, err);
    if (rc != BC_OK)
        return rc;
    if (reply->type == REDIS_REPLY_STRING)
        snprintf(out, size, "%s", reply->str);
    freeReplyObject(reply);
    return BC_OK;
}

typedef struct rec_counts {
    long long by_status[3];
    long long held;
} rec_counts;

static bool count_recording(const bc_recording_meta *m, void *userdata)
{
    rec_counts *n = userdata;
    if (m->status <= BC_REC_PURGED)
        n->by_status[m->status]++;
    n->held += m->active_holds > 0;
    return true;
}

static int devices_show(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0];
    bc_registry_device d;
    char officer[BC_ID_MAX + 1];
    rec_counts n = {{0}, 0};
    bc_error err = {{0}};
    if (check_id(c, id) != CTL_EXIT_OK)
        return CTL_EXIT_USAGE;
    bc_status rc = bc_registry_admin_device_get(&c->redis, id, &d, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    rc = read_assignment(&c->redis, id, officer, sizeof(officer), &err);
    bc_recording_filter f = {.device = id, .status = -1};
    if (rc == BC_OK)
        rc = bc_catalog_recordings_list(&c->redis, &f, count_recording, &n, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "status", bc_device_status_name(d.status));
        cJSON_AddItemToObject(doc, "fingerprints", fingerprints_json(&d));
        cJSON_AddStringToObject(doc, "officer", officer);
        cJSON *recs = cJSON_AddObjectToObject(doc, "recordings");
        for (int s = BC_REC_COMMITTED; recs != NULL && s <= BC_REC_PURGED; s++)
            cJSON_AddNumberToObject(recs, bc_recording_status_name(s), (double)n.by_status[s]);
        cJSON_AddNumberToObject(recs, "held", (double)n.held);
        return ctl_print_json(c, doc);
    }
    printf("device:       %s\nstatus:       %s\nfingerprints: ", id,
           bc_device_status_name(d.status));
    print_fingerprints(&d);
    printf("\nofficer:      %s\nrecordings:   %lld committed (%lld held), %lld purging, %lld "
           "purged\n",
           officer[0] ? officer : "-", n.by_status[BC_REC_COMMITTED], n.held,
           n.by_status[BC_REC_PURGING], n.by_status[BC_REC_PURGED]);
    return CTL_EXIT_OK;
}

/* ---- changes ---- */

static int print_change(ctl *c, const char *id, const bc_registry_change *ch, uint64_t seq)
{
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "status", bc_device_status_name(ch->status));
        if (ch->existed)
            cJSON_AddStringToObject(doc, "previous", bc_device_status_name(ch->previous));
        cJSON_AddBoolToObject(doc, "changed", ch->changed);
        cJSON_AddStringToObject(doc, "fingerprints", ch->fingerprints);
        if (seq > 0)
            cJSON_AddNumberToObject(doc, "audit_seq", (double)seq);
        return ctl_print_json(c, doc);
    }
    if (!ch->changed)
        printf("%s: unchanged (%s)\n", id, bc_device_status_name(ch->status));
    else
        printf("%s: %s, fingerprints %s\n", id, bc_device_status_name(ch->status),
               ch->fingerprints[0] ? ch->fingerprints : "(none)");
    return CTL_EXIT_OK;
}

static int audit_change(ctl *c, const char *action, const char *id, cJSON *details, uint64_t *seq)
{
    char subject[sizeof(SUBJECT_PREFIX) + BC_DEVICE_ID_MAX];
    snprintf(subject, sizeof(subject), SUBJECT_PREFIX "%s", id);
    int code = ctl_audit1(c, action, subject, details, bc_clock_now_ms(), seq);
    cJSON_Delete(details);
    return code;
}

static int devices_register(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0], *cert = a->pos[1];
    char hex[BC_REGISTRY_FP_HEX_LEN + 1];
    bc_registry_change ch;
    uint64_t seq = 0;
    bc_error err = {{0}};
    if (check_id(c, id) != CTL_EXIT_OK)
        return CTL_EXIT_USAGE;
    bc_status rc = bc_registry_admin_cert_fingerprint(cert, hex, &err);
    if (rc != BC_OK)
        return ctl_fail(c, BC_ERR_INVAL, "certificate %s: %s", cert, err.text);
    rc = bc_registry_admin_add_fingerprint(&c->redis, id, hex, &ch, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    if (ch.changed) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "fingerprint", hex);
        cJSON_AddStringToObject(d, "status", bc_device_status_name(ch.status));
        cJSON_AddBoolToObject(d, "new_device", !ch.existed);
        int code = audit_change(c, "device_registered", id, d, &seq);
        if (code != CTL_EXIT_OK)
            return code;
    }
    return print_change(c, id, &ch, seq);
}

static int set_status(ctl *c, const ctl_args *a, bc_device_status status, const char *action)
{
    const char *id = a->pos[0];
    bc_registry_change ch;
    uint64_t seq = 0;
    bc_error err = {{0}};
    if (check_id(c, id) != CTL_EXIT_OK)
        return CTL_EXIT_USAGE;
    bc_status rc = bc_registry_admin_set_status(&c->redis, id, status, &ch, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "%s: %s", c->what, err.text);
    if (ch.changed) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "previous", bc_device_status_name(ch.previous));
        cJSON_AddStringToObject(d, "status", bc_device_status_name(ch.status));
        int code = audit_change(c, action, id, d, &seq);
        if (code != CTL_EXIT_OK)
            return code;
    }
    return print_change(c, id, &ch, seq);
}

static int devices_lost(ctl *c, const ctl_args *a)
{
    return set_status(c, a, BC_DEVICE_LOST, "device_lost");
}

static int devices_revoke(ctl *c, const ctl_args *a)
{
    return set_status(c, a, BC_DEVICE_REVOKED, "device_revoked");
}

static int devices_activate(ctl *c, const ctl_args *a)
{
    return set_status(c, a, BC_DEVICE_ACTIVE, "device_activated");
}

static const ctl_leaf leaves[] = {
    {"list",
     "",
     "the registered cameras, their status and certificate fingerprints",
     NULL,
     0,
     0,
     {{0}},
     CTL_NEED_REDIS,
     devices_list},
    {"show",
     "ID",
     "one camera: status, fingerprints, assigned officer, its recordings",
     NULL,
     1,
     1,
     {{0}},
     CTL_NEED_REDIS,
     devices_show},
    {"register",
     "ID CERT.pem",
     "register a camera (status active) or add a certificate to it",
     "The registry keeps the SHA-256 fingerprint of the DER certificate (what\n"
     "bodycam-pki prints); a camera connects with any of its at most 8 certificates.\n"
     "Registering a known certificate changes nothing. Audited as device_registered.\n",
     2,
     2,
     {{0}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     devices_register},
    {"lost",
     "ID",
     "mark a camera lost: the broker kicks and refuses it",
     "The camera's recordings already in the vault are untouched. Use 'activate'\n"
     "when it is found. Audited as device_lost.\n",
     1,
     1,
     {{0}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     devices_lost},
    {"revoke",
     "ID",
     "revoke a camera for good: the broker kicks and refuses it",
     "Audited as device_revoked.\n",
     1,
     1,
     {{0}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     devices_revoke},
    {"activate",
     "ID",
     "allow a lost or revoked camera again",
     "Audited as device_activated.\n",
     1,
     1,
     {{0}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT,
     devices_activate},
};

const ctl_area ctl_area_devices = {"devices",
                                   "the device registry (list, show, register, lost, "
                                   "revoke, activate)",
                                   leaves, sizeof(leaves) / sizeof(leaves[0])};
