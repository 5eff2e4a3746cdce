/*
 * bench_publish - the baseline of bench_vault.py: mosquitto's delivered
 * throughput of upload chunks, camera -> broker -> one subscriber, with
 * nothing behind the subscriber.
 *
 *   bench_publish STACK_DIR --devices cam-001,... --bytes N [--chunk B]
 *                 [--window W] [--subscriber SERVICE] [--subscriber-id ID]
 *                 [--timeout S]
 *
 * STACK_DIR is a running `bodycam-stack up` stack; its stack.json names
 * the TLS listener, the CA and every identity. Each device of --devices
 * connects with its own certificate and client id (the plugin wants the
 * device id) over MQTT v5 + TLS 1.3, as bodycam-agent does, and publishes
 * N bytes as upload chunk messages on bodycam/v1/devices/<id>/upload, QoS 1:
 *
 *   {"v":1,"device","kind":"chunk","recording_id","sha256","offset","data"}
 *
 * (valid for the plugin's payload check: data is canonical base64 of B
 * bytes, sha256 that of the decoded bytes), at most W unacknowledged at a
 * time (the agent's window, 8). A refused PUBACK (reason >= 0x80, e.g. the
 * plugin's upload rate limit) is handled as the agent's uploader does: the
 * in-flight rest is forgotten, sending resumes from the end of the
 * acknowledged prefix after a pause of 250 ms doubling per consecutive
 * refusal (cap 30 s). So the figure under the default limits is the best an
 * agent-like client gets through them, and without limits the broker's own.
 *
 * One subscriber with a service certificate (default "gateway": stop the
 * stack's gateway first, or it takes messages off the same broker) holds
 * bodycam/v1/devices/+/upload at QoS 1 and counts what arrives. It
 * connects with a clean start as --subscriber-id (default
 * bench-publish-sub); bench_vault.py gives the stopped gateway's client id
 * (gateway-1), so the broker drops that gateway's persistent session and
 * its place in the $share group - otherwise every chunk would also be
 * queued for the absent gateway, and the baseline would carry a second
 * delivery the vault path does not have. The clock
 * runs from the moment every client is connected to the moment every chunk
 * is acknowledged and the subscriber received as many messages as the
 * broker accepted. Output: one JSON object on stdout
 *
 *   {"publishers","chunk","window","data_bytes","accepted","received",
 *    "refused","payload_bytes","seconds","mb_s"}
 *
 * mb_s = 1e6 bytes of recording data (not of base64) per second, the unit
 * bench_vault.py uses for the vault path. Exit codes: 0 done, 1 failure
 * (reason on stderr), 2 usage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define PROGRAM "bench_publish"
#define MAX_PUBS 16
#define WINDOW_MAX 256
#define CHUNK_MAX 65536
#define HOLD_MIN_MS 250
#define HOLD_MAX_MS 30000
#define PUBACK_FAILURE 0x80
#define PUBACK_NO_SUBSCRIBERS 0x10
#define PATH_LEN 512

typedef struct flight {
    int mid;
    uint64_t offset;
    bool acked;
} flight;

/* One camera: the window over its bytes, as device-agent/uploader.c keeps it. */
typedef struct publisher {
    char device[40], cert[PATH_LEN], key[PATH_LEN], topic[128];
    struct mosquitto *mosq;
    pthread_mutex_t lock;
    bool connected, started, done, failed;
    uint64_t size, next_offset, acked; /* acked: end of the contiguous acknowledged prefix */
    flight fl[WINDOW_MAX];
    size_t nfl;
    int64_t hold_until_ms;
    unsigned refusals;
    long accepted, refused;
    char *buf; /* one payload being built */
} publisher;

typedef struct subscriber {
    struct mosquitto *mosq;
    atomic_bool connected, subscribed;
    atomic_long received, payload_bytes;
} subscriber;

typedef struct options {
    const char *dir;
    char devices[1024];
    char service[40];
    char subscriber_id[64];
    uint64_t bytes;
    size_t chunk, window;
    int timeout_s;
} options;

typedef struct shared {
    options opt;
    char ca[PATH_LEN], sub_cert[PATH_LEN], sub_key[PATH_LEN];
    int port;
    char sha_full[65], sha_tail[65]; /* of one chunk, of the last (shorter) chunk */
    char *b64_full, *b64_tail;
    size_t tail; /* bytes in the last chunk */
} shared;

static shared g;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROGRAM ": error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- stack.json ---------------------------------------------------------- */

static const cJSON *at(const cJSON *node, const char *a, const char *b, const char *c)
{
    node = cJSON_GetObjectItemCaseSensitive(node, a);
    if (b != NULL)
        node = cJSON_GetObjectItemCaseSensitive(node, b);
    if (c != NULL)
        node = cJSON_GetObjectItemCaseSensitive(node, c);
    return node;
}

static int copy_str(const cJSON *node, char *out, size_t size, const char *what)
{
    if (!cJSON_IsString(node) || strlen(node->valuestring) >= size)
        return fail("stack.json has no %s", what);
    snprintf(out, size, "%s", node->valuestring);
    return 0;
}

static int load_stack(publisher *pubs, size_t npubs)
{
    char path[PATH_LEN + 16];
    snprintf(path, sizeof(path), "%s/stack.json", g.opt.dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return fail("cannot open %s: %s", path, strerror(errno));
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *root = cJSON_Parse(text);
    if (root == NULL)
        return fail("%s is not JSON", path);
    int rc = copy_str(at(root, "ca_cert", NULL, NULL), g.ca, sizeof(g.ca), "ca_cert");
    rc |= copy_str(at(root, "services", g.opt.service, "cert"), g.sub_cert, sizeof(g.sub_cert),
                   "the subscriber's service certificate");
    rc |= copy_str(at(root, "services", g.opt.service, "key"), g.sub_key, sizeof(g.sub_key),
                   "the subscriber's service key");
    const cJSON *port = at(root, "mqtt", "tls_port", NULL);
    g.port = cJSON_IsNumber(port) ? port->valueint : 0;
    for (size_t i = 0; rc == 0 && i < npubs; i++) {
        rc |= copy_str(at(root, "devices", pubs[i].device, "cert"), pubs[i].cert,
                       sizeof(pubs[i].cert), "a device certificate (--devices)");
        rc |= copy_str(at(root, "devices", pubs[i].device, "key"), pubs[i].key, sizeof(pubs[i].key),
                       "a device key (--devices)");
    }
    cJSON_Delete(root);
    if (rc == 0 && g.port <= 0)
        rc = fail("stack.json has no mqtt.tls_port");
    return rc;
}

/* ---- payloads ------------------------------------------------------------ */

static int encode(const unsigned char *data, size_t len, char **b64, char sha[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        return fail("SHA-256 failed");
    for (unsigned i = 0; i < 32; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (*b64 == NULL)
        return fail("no memory for a chunk");
    EVP_EncodeBlock((unsigned char *)*b64, data, (int)len);
    return 0;
}

/* One random chunk (incompressible, as ciphertext is); every chunk of every
 * publisher carries it, at its own offset. */
static int make_chunks(void)
{
    unsigned char *data = malloc(g.opt.chunk);
    if (data == NULL)
        return fail("no memory for a chunk");
    int rc = RAND_bytes(data, (int)g.opt.chunk) == 1 ? 0 : fail("RAND_bytes failed");
    g.tail = (size_t)(g.opt.bytes % g.opt.chunk);
    if (rc == 0)
        rc = encode(data, g.opt.chunk, &g.b64_full, g.sha_full);
    if (rc == 0 && g.tail > 0)
        rc = encode(data, g.tail, &g.b64_tail, g.sha_tail);
    free(data);
    return rc;
}

/* ---- publishing (the caller holds p->lock) -------------------------------- */

static int publish_one(publisher *p)
{
    uint64_t left = p->size - p->next_offset;
    bool last = left < g.opt.chunk;
    int n = snprintf(p->buf, 256 + 4 * (CHUNK_MAX / 3 + 1),
                     "{\"v\":1,\"device\":\"%s\",\"kind\":\"chunk\",\"recording_id\":\"bench-1\","
                     "\"sha256\":\"%s\",\"offset\":%llu,\"data\":\"%s\"}",
                     p->device, last ? g.sha_tail : g.sha_full, (unsigned long long)p->next_offset,
                     last ? g.b64_tail : g.b64_full);
    int mid = 0;
    int rc = mosquitto_publish_v5(p->mosq, &mid, p->topic, n, p->buf, 1, false, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        p->failed = true;
        return fail("%s: publish: %s", p->device, mosquitto_strerror(rc));
    }
    p->fl[p->nfl++] = (flight){.mid = mid, .offset = p->next_offset, .acked = false};
    p->next_offset += last ? left : g.opt.chunk;
    return 0;
}

static void pump(publisher *p)
{
    if (!p->started || p->done || p->failed || now_ms() < p->hold_until_ms)
        return;
    while (p->nfl < g.opt.window && p->next_offset < p->size)
        if (publish_one(p) != 0)
            return;
}

static uint64_t flight_end(const publisher *p, const flight *f)
{
    uint64_t end = f->offset + g.opt.chunk;
    return end < p->size ? end : p->size;
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
    publisher *p = ud;
    (void)m;
    (void)props;
    pthread_mutex_lock(&p->lock);
    size_t i = 0;
    while (i < p->nfl && (p->fl[i].mid != mid || p->fl[i].acked))
        i++;
    bool refused = reason >= PUBACK_FAILURE || reason == PUBACK_NO_SUBSCRIBERS;
    if (!refused)
        p->accepted++; /* the broker passed it on, even if we forgot the flight */
    if (i == p->nfl)
        goto cleanup; /* forgotten after a refusal */
    if (refused) {
        unsigned shift = p->refusals < 7 ? p->refusals : 7;
        int64_t delay = (int64_t)HOLD_MIN_MS << shift;
        p->hold_until_ms = now_ms() + (delay > HOLD_MAX_MS ? HOLD_MAX_MS : delay);
        p->refusals++;
        p->refused++;
        p->nfl = 0;
        p->next_offset = p->acked;
        goto cleanup;
    }
    p->refusals = 0;
    p->fl[i].acked = true;
    size_t pop = 0;
    while (pop < p->nfl && p->fl[pop].acked) {
        uint64_t end = flight_end(p, &p->fl[pop]);
        if (end > p->acked)
            p->acked = end;
        pop++;
    }
    memmove(p->fl, p->fl + pop, (p->nfl - pop) * sizeof(*p->fl));
    p->nfl -= pop;
    if (p->acked >= p->size)
        p->done = true;
    pump(p);
cleanup:
    pthread_mutex_unlock(&p->lock);
}

static void on_pub_connect(struct mosquitto *m, void *ud, int rc, int flags,
                           const mosquitto_property *props)
{
    publisher *p = ud;
    (void)m;
    (void)flags;
    (void)props;
    pthread_mutex_lock(&p->lock);
    if (rc == 0)
        p->connected = true;
    else
        p->failed = true;
    pthread_mutex_unlock(&p->lock);
}

static void on_pub_disconnect(struct mosquitto *m, void *ud, int rc,
                              const mosquitto_property *props)
{
    publisher *p = ud;
    (void)m;
    (void)props;
    pthread_mutex_lock(&p->lock);
    if (!p->done) {
        p->failed = true;
        fail("%s: disconnected (%d) before all was sent", p->device, rc);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- the subscriber ------------------------------------------------------ */

static void on_sub_connect(struct mosquitto *m, void *ud, int rc, int flags,
                           const mosquitto_property *props)
{
    subscriber *s = ud;
    (void)flags;
    (void)props;
    if (rc != 0) {
        fail("subscriber: CONNECT refused (%d)", rc);
        return;
    }
    atomic_store(&s->connected, true);
    if (mosquitto_subscribe_v5(m, NULL, "bodycam/v1/devices/+/upload", 1, 0, NULL) !=
        MOSQ_ERR_SUCCESS)
        fail("subscriber: SUBSCRIBE failed");
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
    subscriber *s = ud;
    (void)m;
    (void)mid;
    (void)props;
    if (count == 1 && granted[0] <= 2)
        atomic_store(&s->subscribed, true);
    else
        fail("subscriber: SUBACK refused the filter");
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    subscriber *s = ud;
    (void)m;
    (void)props;
    atomic_fetch_add(&s->payload_bytes, msg->payloadlen);
    atomic_fetch_add(&s->received, 1);
}

/* ---- clients ------------------------------------------------------------- */

static struct mosquitto *client_new(const char *id, void *ud, const char *cert, const char *key)
{
    struct mosquitto *m = mosquitto_new(id, true, ud);
    if (m == NULL)
        return NULL;
    if (mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) != MOSQ_ERR_SUCCESS ||
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_set(m, g.ca, NULL, cert, key, NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_opts_set(m, 1, "tlsv1.3", NULL) != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}

static int client_start(struct mosquitto *m, const char *who)
{
    int rc = mosquitto_connect_bind_v5(m, "127.0.0.1", g.port, 60, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_start(m);
    return rc == MOSQ_ERR_SUCCESS ? 0 : fail("%s: connect: %s", who, mosquitto_strerror(rc));
}

static void client_stop(struct mosquitto *m)
{
    if (m == NULL)
        return;
    mosquitto_disconnect_v5(m, 0, NULL);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
}

static int wait_flag(bool (*ready)(void *), void *arg, const char *what)
{
    int64_t deadline = now_ms() + 20000;
    while (!ready(arg)) {
        if (now_ms() > deadline)
            return fail("timed out waiting for %s", what);
        sleep_ms(5);
    }
    return 0;
}

static bool sub_ready(void *arg)
{
    return atomic_load(&((subscriber *)arg)->subscribed);
}

static bool pubs_connected(void *arg)
{
    publisher *pubs = arg; /* up to the zeroed sentinel */
    bool all = true;
    for (size_t i = 0; pubs[i].device[0] != '\0'; i++) {
        pthread_mutex_lock(&pubs[i].lock);
        all = all && (pubs[i].connected || pubs[i].failed);
        pthread_mutex_unlock(&pubs[i].lock);
    }
    return all;
}

/* ---- the run ------------------------------------------------------------- */

typedef struct tally {
    long accepted, refused;
    bool all_done, any_failed;
} tally;

static tally count(publisher *pubs, size_t npubs)
{
    tally t = {0, 0, true, false};
    for (size_t i = 0; i < npubs; i++) {
        publisher *p = &pubs[i];
        pthread_mutex_lock(&p->lock);
        pump(p); /* a hold that ended: nothing else wakes the publisher */
        t.accepted += p->accepted;
        t.refused += p->refused;
        t.all_done = t.all_done && p->done;
        t.any_failed = t.any_failed || p->failed;
        pthread_mutex_unlock(&p->lock);
    }
    return t;
}

static int run(publisher *pubs, size_t npubs, subscriber *sub)
{
    for (size_t i = 0; i < npubs; i++)
        if (pubs[i].failed)
            return fail("%s: CONNECT refused", pubs[i].device);
    double t0 = now_s();
    for (size_t i = 0; i < npubs; i++) {
        pthread_mutex_lock(&pubs[i].lock);
        pubs[i].started = true;
        pump(&pubs[i]);
        pthread_mutex_unlock(&pubs[i].lock);
    }
    double deadline = t0 + g.opt.timeout_s, last_change = t0;
    long last_received = -1;
    tally t;
    for (;;) {
        t = count(pubs, npubs);
        long received = atomic_load(&sub->received);
        double now = now_s();
        if (t.any_failed)
            return fail("a publisher failed");
        if (t.all_done && received >= t.accepted)
            break;
        if (received != last_received) {
            last_received = received;
            last_change = now;
        }
        if (now > deadline || (t.all_done && now - last_change > 5.0))
            return fail("%ld of %ld accepted messages reached the subscriber after %.0f s",
                        received, t.accepted, now - t0);
        sleep_ms(1);
    }
    double seconds = now_s() - t0;
    uint64_t data = g.opt.bytes * (uint64_t)npubs;
    printf("{\"publishers\":%zu,\"chunk\":%zu,\"window\":%zu,\"data_bytes\":%llu,"
           "\"accepted\":%ld,\"received\":%ld,\"refused\":%ld,\"payload_bytes\":%ld,"
           "\"seconds\":%.3f,\"mb_s\":%.2f}\n",
           npubs, g.opt.chunk, g.opt.window, (unsigned long long)data, t.accepted,
           atomic_load(&sub->received), t.refused, atomic_load(&sub->payload_bytes), seconds,
           (double)data / 1e6 / seconds);
    return 0;
}

/* ---- arguments ----------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " STACK_DIR --devices ID[,ID...] --bytes N [--chunk B] "
                    "[--window W] [--subscriber SERVICE] [--subscriber-id ID] [--timeout S]\n");
    return 2;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.chunk = 32768, .window = 8, .timeout_s = 300};
    snprintf(o->service, sizeof(o->service), "gateway");
    snprintf(o->subscriber_id, sizeof(o->subscriber_id), "bench-publish-sub");
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    o->dir = argv[1];
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage();
        const char *name = argv[i], *v = argv[i + 1];
        char *end = NULL;
        unsigned long long n = strtoull(v, &end, 10);
        bool num = end != v && *end == '\0';
        if (strcmp(name, "--devices") == 0 && strlen(v) < sizeof(o->devices))
            snprintf(o->devices, sizeof(o->devices), "%s", v);
        else if (strcmp(name, "--subscriber") == 0 && strlen(v) < sizeof(o->service))
            snprintf(o->service, sizeof(o->service), "%s", v);
        else if (strcmp(name, "--subscriber-id") == 0 && v[0] != '\0' &&
                 strlen(v) < sizeof(o->subscriber_id))
            snprintf(o->subscriber_id, sizeof(o->subscriber_id), "%s", v);
        else if (strcmp(name, "--bytes") == 0 && num && n > 0)
            o->bytes = n;
        else if (strcmp(name, "--chunk") == 0 && num && n > 0 && n <= CHUNK_MAX)
            o->chunk = (size_t)n;
        else if (strcmp(name, "--window") == 0 && num && n > 0 && n <= WINDOW_MAX)
            o->window = (size_t)n;
        else if (strcmp(name, "--timeout") == 0 && num && n > 0 && n <= 3600)
            o->timeout_s = (int)n;
        else
            return usage();
    }
    return o->devices[0] == '\0' || o->bytes == 0 ? usage() : 0;
}

static size_t split_devices(publisher *pubs)
{
    size_t n = 0;
    char list[1024];
    snprintf(list, sizeof(list), "%s", g.opt.devices);
    char *save = NULL;
    for (char *d = strtok_r(list, ",", &save); d != NULL && n < MAX_PUBS;
         d = strtok_r(NULL, ",", &save)) {
        if (strlen(d) >= sizeof(pubs[n].device))
            return 0;
        snprintf(pubs[n].device, sizeof(pubs[n].device), "%s", d);
        snprintf(pubs[n].topic, sizeof(pubs[n].topic), "bodycam/v1/devices/%s/upload", d);
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    static publisher pubs[MAX_PUBS + 1]; /* a zeroed sentinel after the last */
    subscriber sub = {0};
    int rc = parse_args(argc, argv, &g.opt);
    if (rc != 0)
        return rc;
    size_t npubs = split_devices(pubs);
    if (npubs == 0)
        return usage();
    if (load_stack(pubs, npubs) != 0 || make_chunks() != 0)
        return 1;
    mosquitto_lib_init();
    rc = 1;
    for (size_t i = 0; i < npubs; i++) {
        pthread_mutex_init(&pubs[i].lock, NULL);
        pubs[i].size = g.opt.bytes;
        pubs[i].buf = malloc(256 + 4 * (CHUNK_MAX / 3 + 1));
        if (pubs[i].buf == NULL) {
            fail("no memory");
            goto cleanup;
        }
    }
    sub.mosq = client_new(g.opt.subscriber_id, &sub, g.sub_cert, g.sub_key);
    if (sub.mosq == NULL) {
        fail("subscriber: cannot set up the client (TLS files?)");
        goto cleanup;
    }
    mosquitto_connect_v5_callback_set(sub.mosq, on_sub_connect);
    mosquitto_subscribe_v5_callback_set(sub.mosq, on_subscribe);
    mosquitto_message_v5_callback_set(sub.mosq, on_message);
    if (client_start(sub.mosq, "subscriber") != 0 ||
        wait_flag(sub_ready, &sub, "the subscriber's SUBACK") != 0)
        goto cleanup;
    for (size_t i = 0; i < npubs; i++) {
        pubs[i].mosq = client_new(pubs[i].device, &pubs[i], pubs[i].cert, pubs[i].key);
        if (pubs[i].mosq == NULL) {
            fail("%s: cannot set up the client (TLS files?)", pubs[i].device);
            goto cleanup;
        }
        mosquitto_connect_v5_callback_set(pubs[i].mosq, on_pub_connect);
        mosquitto_disconnect_v5_callback_set(pubs[i].mosq, on_pub_disconnect);
        mosquitto_publish_v5_callback_set(pubs[i].mosq, on_publish);
        if (client_start(pubs[i].mosq, pubs[i].device) != 0)
            goto cleanup;
    }
    if (wait_flag(pubs_connected, pubs, "the publishers' CONNACKs") != 0)
        goto cleanup;
    rc = run(pubs, npubs, &sub);
cleanup:
    for (size_t i = 0; i < npubs; i++) {
        pthread_mutex_lock(&pubs[i].lock);
        pubs[i].done = true; /* the disconnect below is ours */
        pthread_mutex_unlock(&pubs[i].lock);
        client_stop(pubs[i].mosq);
        free(pubs[i].buf);
    }
    client_stop(sub.mosq);
    mosquitto_lib_cleanup();
    free(g.b64_full);
    free(g.b64_tail);
    return rc;
}
