/*
 * identity.c - BASIC_AUTH, principals, and revocation by kick.
 *
 * BASIC_AUTH decision order for a client with a certificate (the TLS
 * listener verified it against the fleet CA before we get here):
 *
 *   1. exactly one CN, convertible to UTF-8, no NUL        -> bad_identity
 *   2. CN is a configured service name                     -> service, 5.
 *   3. CN is a device id ([a-z0-9][a-z0-9_-]{0,31})        -> else bad_identity
 *   4. the registry is loaded and knows the device         -> else unknown
 *      its status is active                                -> else not_active
 *      the SHA-256 of the certificate (DER) is one of its
 *      fingerprints                                        -> else fingerprint
 *   5. client id: a camera's must equal its device id (so nobody can take
 *      over a camera's session, or a camera another's); a service's must
 *      not be a registered device id                       -> else client_id
 *   6. set the broker username ("camera:<id>" / "service:<name>"),
 *      remember the camera's fingerprint
 *
 * and for a client without one (the dashboards' WebSockets listener):
 *
 *   1. a username at all                                   -> no_credentials
 *   2. username in [A-Za-z0-9_-]{1,64} (refuses + # / NUL, non-UTF-8, ':')
 *                                                          -> bad_identity
 *   3. client id not a registered device id, not starting with a
 *      service name                                        -> client_id
 *   4. the same password as an earlier login of this run
 *      (keyed MAC, stored hash unchanged)                  -> accepted
 *   5. slow-hash budget left                               -> else throttled
 *   6. user known: PBKDF2 check against its hash; unknown: the same check
 *      against a dummy hash, so timing does not tell users apart
 *                                                          -> else password
 *   7. set the broker username "dashboard:<user>", remember the MAC
 *
 * The identity never becomes part of a topic pattern: acl.c builds the
 * camera's own topics with proto's builders, which refuse any id outside
 * the device alphabet, and checks step 3 above again.
 */
#include "broker-plugins/bodycam-auth/identity.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_plugin.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "proto/encoding.h"
#include "proto/topic.h"

uint64_t bc_auth_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *bc_identity_printable(const char *s, char *out, size_t size)
{
    if (size == 0)
        return "";
    if (s == NULL) {
        snprintf(out, size, "(none)");
        return out;
    }
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < size; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/* ---- helpers ------------------------------------------------------------ */

static int service_index(const bc_auth *a, const char *name)
{
    for (size_t i = 0; i < a->cfg.service_count; i++) {
        if (strcmp(a->cfg.services[i], name) == 0)
            return (int)i;
    }
    return -1;
}

static int starts_with_service(const bc_auth *a, const char *s)
{
    for (size_t i = 0; i < a->cfg.service_count; i++) {
        if (strncmp(s, a->cfg.services[i], strlen(a->cfg.services[i])) == 0)
            return 1;
    }
    return 0;
}

static int refuse(bc_auth *a, struct mosquitto *client, bc_metric reason, const char *who,
                  const char *detail)
{
    char id[80], name[80], address[64];
    bc_metrics_inc(&a->metrics, reason);
    mosquitto_log_printf(
        MOSQ_LOG_NOTICE,
        BC_AUTH_LOG_PREFIX " | auth | refused reason=%s identity=%s client=%s "
                           "address=%s: %s",
        bc_metric_name(reason), bc_identity_printable(who, name, sizeof(name)),
        bc_identity_printable(mosquitto_client_id(client), id, sizeof(id)),
        bc_identity_printable(mosquitto_client_address(client), address, sizeof(address)), detail);
    return MOSQ_ERR_AUTH;
}

static void broker_username(char *out, size_t size, const char *prefix, const char *name)
{
    snprintf(out, size, "%s%s", prefix, name);
}

static int admit(bc_auth *a, struct mosquitto *client, bc_metric what, const char *prefix,
                 const char *name)
{
    char id[80], username[BC_AUTH_USERNAME_MAX];
    broker_username(username, sizeof(username), prefix, name);
    if (mosquitto_set_username(client, username) != MOSQ_ERR_SUCCESS)
        return refuse(a, client, BC_M_AUTH_UNKNOWN, username, "cannot set the username");
    bc_metrics_inc(&a->metrics, what);
    mosquitto_log_printf(MOSQ_LOG_INFO, BC_AUTH_LOG_PREFIX " | auth | accepted %s client=%s",
                         username,
                         bc_identity_printable(mosquitto_client_id(client), id, sizeof(id)));
    return MOSQ_ERR_SUCCESS;
}

/* ---- certificates ------------------------------------------------------- */

/* The single CN of the certificate as UTF-8 without NUL, into out. */
static bc_status certificate_cn(X509 *cert, char *out, size_t size, bc_error *err)
{
    X509_NAME *subject = X509_get_subject_name(cert);
    if (subject == NULL)
        return bc_fail(err, BC_ERR_MISSING, "certificate has no subject");
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at < 0)
        return bc_fail(err, BC_ERR_MISSING, "certificate subject has no CN");
    if (X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
        return bc_fail(err, BC_ERR_INVAL, "certificate subject has more than one CN");
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0)
        return bc_fail(err, BC_ERR_PARSE, "certificate CN is not valid text (non-UTF-8)");
    bc_status rc = BC_OK;
    if (len == 0 || (size_t)len >= size)
        rc = bc_fail(err, BC_ERR_INVAL, "certificate CN is empty or too long");
    else if (memchr(utf8, '\0', (size_t)len) != NULL)
        rc = bc_fail(err, BC_ERR_INVAL, "certificate CN contains a NUL byte");
    else {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(utf8);
    return rc;
}

static int auth_service(bc_auth *a, struct mosquitto *client, int index)
{
    const char *name = a->cfg.services[index];
    const char *client_id = mosquitto_client_id(client);
    if (client_id == NULL || bc_registry_find_device(a->snapshot, client_id) != NULL)
        return refuse(a, client, BC_M_AUTH_CLIENT_ID, name,
                      "a service's client id must not be a device id");
    return admit(a, client, BC_M_AUTH_SERVICE, BC_AUTH_SERVICE_PREFIX, name);
}

static int auth_camera(bc_auth *a, struct mosquitto *client, X509 *cert, const char *id)
{
    if (a->snapshot == NULL)
        return refuse(a, client, BC_M_AUTH_UNKNOWN, id, "no device registry loaded yet");
    const bc_registry_device *d = bc_registry_find_device(a->snapshot, id);
    if (d == NULL)
        return refuse(a, client, BC_M_AUTH_UNKNOWN, id, "device is not in the registry");
    if (d->status != BC_DEVICE_ACTIVE)
        return refuse(a, client, BC_M_AUTH_NOT_ACTIVE, id, bc_device_status_name(d->status));

    uint8_t fp[EVP_MAX_MD_SIZE];
    unsigned fp_len = 0;
    if (X509_digest(cert, EVP_sha256(), fp, &fp_len) != 1 || fp_len != BC_FINGERPRINT_LEN)
        return refuse(a, client, BC_M_AUTH_FINGERPRINT, id, "cannot hash the certificate");
    if (!bc_registry_device_allows(d, fp))
        return refuse(a, client, BC_M_AUTH_FINGERPRINT, id,
                      "certificate is not among the device's fingerprints");

    const char *client_id = mosquitto_client_id(client);
    if (a->cfg.camera_client_id_match && (client_id == NULL || strcmp(client_id, id) != 0))
        return refuse(a, client, BC_M_AUTH_CLIENT_ID, id,
                      "a camera's client id must equal its device id");

    bc_camera *cam = NULL;
    if (bc_cameras_get(&a->cameras, id, &cam) != BC_OK)
        return refuse(a, client, BC_M_AUTH_UNKNOWN, id, "out of memory");
    int rc = admit(a, client, BC_M_AUTH_CAMERA, BC_AUTH_CAMERA_PREFIX, id);
    if (rc == MOSQ_ERR_SUCCESS) {
        memcpy(cam->fingerprint, fp, BC_FINGERPRINT_LEN);
        cam->authenticated = 1;
    }
    return rc;
}

static int auth_certificate(bc_auth *a, struct mosquitto *client, X509 *cert)
{
    char cn[BC_DEVICE_ID_MAX + 64];
    bc_error err = {{0}};
    if (certificate_cn(cert, cn, sizeof(cn), &err) != BC_OK)
        return refuse(a, client, BC_M_AUTH_BAD_IDENTITY, NULL, err.text);
    int service = service_index(a, cn);
    if (service >= 0)
        return auth_service(a, client, service);
    if (!bc_device_id_valid(cn))
        return refuse(a, client, BC_M_AUTH_BAD_IDENTITY, cn,
                      "certificate CN is neither a service nor a device id");
    return auth_camera(a, client, cert, cn);
}

/* ---- dashboards --------------------------------------------------------- */

static bc_dashboard_session *find_session(bc_auth *a, const char *name)
{
    for (size_t i = 0; i < a->dashboard_count; i++) {
        if (strcmp(a->dashboards[i].name, name) == 0)
            return &a->dashboards[i];
    }
    return NULL;
}

static int password_mac(const bc_auth *a, const char *password, uint8_t out[32])
{
    size_t len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, a->mac_key, sizeof(a->mac_key),
                  (const unsigned char *)password, strlen(password), out, 32, &len) == NULL ||
        len != 32)
        return -1;
    return 0;
}

/* 1 when this password already logged this user in during this run and the
 * stored hash has not changed since. */
static int session_matches(bc_auth *a, const bc_registry_user *u, const char *password)
{
    bc_dashboard_session *s = find_session(a, u->name);
    uint8_t mac[32];
    if (s == NULL || strcmp(s->hash, u->hash) != 0 || password_mac(a, password, mac) != 0)
        return 0;
    int same = CRYPTO_memcmp(mac, s->mac, sizeof(mac)) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return same;
}

static void remember_session(bc_auth *a, const bc_registry_user *u, const char *password)
{
    bc_dashboard_session *s = find_session(a, u->name);
    if (s == NULL) {
        if (a->dashboard_count == BC_AUTH_MAX_DASHBOARD_SESSIONS)
            return; /* not cached: the next login pays the slow hash again */
        s = &a->dashboards[a->dashboard_count++];
    }
    snprintf(s->name, sizeof(s->name), "%s", u->name);
    snprintf(s->hash, sizeof(s->hash), "%s", u->hash);
    if (password_mac(a, password, s->mac) != 0)
        memset(s, 0, sizeof(*s)); /* an empty name never matches */
}

static int auth_password(bc_auth *a, struct mosquitto *client, const char *username,
                         const char *password)
{
    if (username == NULL)
        return refuse(a, client, BC_M_AUTH_NO_CERT, NULL, "no certificate and no username");
    if (!bc_id_valid(username) || strlen(username) > BC_DASHBOARD_USER_MAX)
        return refuse(a, client, BC_M_AUTH_BAD_IDENTITY, username,
                      "username is outside [A-Za-z0-9_-]{1,64}");
    const char *client_id = mosquitto_client_id(client);
    if (client_id == NULL || bc_registry_find_device(a->snapshot, client_id) != NULL ||
        starts_with_service(a, client_id))
        return refuse(a, client, BC_M_AUTH_CLIENT_ID, username,
                      "a dashboard's client id must not be a device id or a service's");
    if (a->snapshot == NULL)
        return refuse(a, client, BC_M_AUTH_UNKNOWN, username, "no user registry loaded yet");

    const bc_registry_user *u = bc_registry_find_user(a->snapshot, username);
    const char *pw = password ? password : "";
    if (u != NULL && session_matches(a, u, pw))
        return admit(a, client, BC_M_AUTH_DASHBOARD, BC_AUTH_DASHBOARD_PREFIX, u->name);

    if (bc_ratelimit_take(&a->auth_budget, a->auth_limits, BC_RATE_MESSAGES, bc_auth_now_ns(), 0) !=
        BC_RATE_PASS)
        return refuse(a, client, BC_M_AUTH_THROTTLED, username,
                      "too many password checks per second; try again");
    bc_error err = {{0}};
    bc_status rc = bc_password_verify(u ? u->hash : a->dummy_hash, pw, &err);
    if (u == NULL)
        return refuse(a, client, BC_M_AUTH_UNKNOWN, username, "no such dashboard user");
    if (rc != BC_OK)
        return refuse(a, client, BC_M_AUTH_PASSWORD, username, err.text);
    remember_session(a, u, pw);
    return admit(a, client, BC_M_AUTH_DASHBOARD, BC_AUTH_DASHBOARD_PREFIX, u->name);
}

/* ---- callbacks and lookups --------------------------------------------- */

int bc_identity_on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    bc_auth *a = userdata;
    (void)event;
    X509 *cert = mosquitto_client_certificate(ed->client);
    int rc;
    /* Both paths may replace the client's username, which frees
     * ed->username: neither reads it after mosquitto_set_username(). */
    if (cert != NULL)
        rc = auth_certificate(a, ed->client, cert);
    else
        rc = auth_password(a, ed->client, ed->username, ed->password);
    X509_free(cert);
    return rc;
}

/* The name after prefix when username starts with it, else NULL. */
static const char *after(const char *username, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(username, prefix, n) == 0 ? username + n : NULL;
}

bc_role bc_identity_principal(bc_auth *a, const char *username, bc_principal *out)
{
    const char *name;
    out->role = BC_ROLE_NONE;
    out->name = NULL;
    if (username == NULL)
        return BC_ROLE_NONE;
    if ((name = after(username, BC_AUTH_CAMERA_PREFIX)) != NULL) {
        const bc_registry_device *d = bc_registry_find_device(a->snapshot, name);
        if (d != NULL && d->status == BC_DEVICE_ACTIVE) {
            out->role = BC_ROLE_CAMERA;
            out->name = d->id;
        }
    } else if ((name = after(username, BC_AUTH_SERVICE_PREFIX)) != NULL) {
        int service = service_index(a, name);
        if (service >= 0) {
            out->role = BC_ROLE_SERVICE;
            out->name = a->cfg.services[service];
        }
    } else if ((name = after(username, BC_AUTH_DASHBOARD_PREFIX)) != NULL) {
        const bc_registry_user *u = bc_registry_find_user(a->snapshot, name);
        const bc_dashboard_session *s = u ? find_session(a, name) : NULL;
        if (s != NULL && strcmp(s->hash, u->hash) == 0) {
            out->role = BC_ROLE_DASHBOARD;
            out->name = s->name;
        }
    }
    return out->role;
}

/* Why a camera that authenticated must go, or NULL when it may stay. */
static const char *camera_kick_reason(const bc_registry_snapshot *s, const bc_camera *cam)
{
    const bc_registry_device *d = bc_registry_find_device(s, cam->id);
    if (d == NULL)
        return "removed from the registry";
    if (d->status != BC_DEVICE_ACTIVE)
        return bc_device_status_name(d->status);
    if (!bc_registry_device_allows(d, cam->fingerprint))
        return "its certificate fingerprint was removed";
    return NULL;
}

static void kick(bc_auth *a, const char *prefix, const char *name, const char *reason)
{
    char username[BC_AUTH_USERNAME_MAX];
    broker_username(username, sizeof(username), prefix, name);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, BC_AUTH_LOG_PREFIX " | revoke | kick %s: %s", username,
                         reason);
    bc_metrics_inc(&a->metrics, BC_M_KICK);
    mosquitto_kick_client_by_username(username, false);
}

void bc_identity_apply_registry(bc_auth *a, bc_registry_snapshot *next)
{
    bc_registry_snapshot *old = a->snapshot;
    a->snapshot = next;
    for (size_t i = 0; i < a->cameras.count; i++) {
        bc_camera *cam = &a->cameras.items[i];
        const char *reason = cam->authenticated ? camera_kick_reason(next, cam) : NULL;
        if (reason == NULL)
            continue;
        cam->authenticated = 0; /* before the kick: nothing it does from now on passes */
        kick(a, BC_AUTH_CAMERA_PREFIX, cam->id, reason);
    }
    for (size_t i = a->dashboard_count; i-- > 0;) {
        bc_dashboard_session *s = &a->dashboards[i];
        const bc_registry_user *u = bc_registry_find_user(next, s->name);
        if (u != NULL && strcmp(u->hash, s->hash) == 0)
            continue;
        char name[BC_DASHBOARD_USER_MAX + 1];
        snprintf(name, sizeof(name), "%s", s->name);
        *s = a->dashboards[--a->dashboard_count]; /* forget first, then kick */
        OPENSSL_cleanse(&a->dashboards[a->dashboard_count], sizeof(*s));
        kick(a, BC_AUTH_DASHBOARD_PREFIX, name, u ? "password changed" : "user removed");
    }
    bc_cameras_prune(&a->cameras, next);
    bc_registry_snapshot_free(old);
}

bc_status bc_identity_init(bc_auth *a, bc_error *err)
{
    a->dashboards = OPENSSL_zalloc(BC_AUTH_MAX_DASHBOARD_SESSIONS * sizeof(*a->dashboards));
    if (a->dashboards == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for dashboard sessions");
    if (RAND_bytes(a->mac_key, sizeof(a->mac_key)) != 1)
        return bc_fail(err, BC_ERR_CRYPTO, "no random bytes for the session key");
    char dummy[33];
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1 ||
        bc_hex_encode(raw, sizeof(raw), dummy, sizeof(dummy)) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "no random bytes for the dummy password");
    return bc_password_hash(dummy, BC_PASSWORD_DEFAULT_ITERATIONS, a->dummy_hash,
                            sizeof(a->dummy_hash), err);
}

void bc_identity_cleanup(bc_auth *a)
{
    if (a->dashboards != NULL)
        OPENSSL_clear_free(a->dashboards, BC_AUTH_MAX_DASHBOARD_SESSIONS * sizeof(*a->dashboards));
    a->dashboards = NULL;
    a->dashboard_count = 0;
    OPENSSL_cleanse(a->mac_key, sizeof(a->mac_key));
}
