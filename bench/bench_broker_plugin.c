/*
 * bench_broker_plugin - broker throughput and latency with the bodycam-auth
 * plugin loaded vs without it, same machine, same run.
 *
 *   bench_broker_plugin DIR [--messages N] [--runs R]
 *
 * DIR is a stack started with `bodycam-stack up DIR --plugin`: its PKI, its
 * Redis (with the registry) and its plugin path are reused. The program
 * starts two extra brokers on free ports, both with the same mutual-TLS 1.3
 * listener:
 *
 *   plain    no plugin, use_identity_as_username, no ACL (the ceiling)
 *   plugin   bodycam-auth with the stack's Redis; rate limits off, so the
 *            figure is the cost of identity, ACL and payload validation,
 *            not of throttling
 *
 * One camera (cam-001) publishes valid health reports (~260 bytes) on its
 * own topic; one service (gateway) subscribes to bodycam/v1/devices/+/+.
 * Per run and per broker, alternating: N messages at QoS 0 and N/5 at
 * QoS 1 as fast as a window of 500 unreceived messages allows (msg/s from
 * the first publish to the last delivery), then 2 s paced at 1,000 msg/s
 * QoS 1 for latency (p50, p99 of publish-to-delivery, CLOCK_MONOTONIC).
 * Also the broker's CPU time per message (utime + stime from /proc), the
 * figure that shows the plugin's cost even when the clients, sharing the
 * machine's cores, are what limits the message rate.
 * Figures are medians over the runs. Build without sanitizers
 * (RelWithDebInfo or Release) for meaningful numbers.
 *
 * Exit codes: 0 done, 1 failure (reason on stderr), 2 usage.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <netinet/in.h>

extern char **environ;

#define WINDOW 500
#define LATENCY_RATE 1000
#define LATENCY_SECONDS 2
#define MAX_RUNS 9
#define TOPIC_PUB "bodycam/v1/devices/cam-001/health"
#define TOPIC_SUB "bodycam/v1/devices/+/+"

typedef struct stack_info {
    char ca[512], cam_cert[512], cam_key[512], gw_cert[512], gw_key[512];
    char broker_cert[540], broker_key[540];
    char plugin[512], preload[512], redis_host[64];
    int redis_port;
} stack_info;

typedef struct broker {
    const char *name;
    int port;
    pid_t pid;
} broker;

typedef struct sink {
    atomic_long received;
    int64_t *latencies; /* ns, for the latency phase */
    atomic_long latency_count;
    long latency_cap;
} sink;

typedef struct result {
    double qos0, qos1, p50_us, p99_us;
    double cpu0_us, cpu1_us; /* broker CPU time per message, QoS 0 and QoS 1 */
} result;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_broker_plugin: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
    nanosleep(&ts, NULL);
}

/* ---- stack.json ---------------------------------------------------------- */

static int copy_string(const cJSON *obj, const char *path, char *out, size_t size)
{
    const cJSON *node = obj;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
        node = cJSON_GetObjectItemCaseSensitive(node, part);
    if (!cJSON_IsString(node) || strlen(node->valuestring) >= size)
        return fail("stack.json: no string at %s", path);
    snprintf(out, size, "%s", node->valuestring);
    return 0;
}

static int load_stack(const char *dir, stack_info *s)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/stack.json", dir);
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
    int rc = 0;
    char pki[512];
    rc |= copy_string(root, "ca_cert", s->ca, sizeof(s->ca));
    rc |= copy_string(root, "pki_dir", pki, sizeof(pki));
    rc |= copy_string(root, "devices.cam-001.cert", s->cam_cert, sizeof(s->cam_cert));
    rc |= copy_string(root, "devices.cam-001.key", s->cam_key, sizeof(s->cam_key));
    rc |= copy_string(root, "services.gateway.cert", s->gw_cert, sizeof(s->gw_cert));
    rc |= copy_string(root, "services.gateway.key", s->gw_key, sizeof(s->gw_key));
    rc |= copy_string(root, "plugin.path", s->plugin, sizeof(s->plugin));
    rc |= copy_string(root, "redis.host", s->redis_host, sizeof(s->redis_host));
    const cJSON *port =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "redis"), "port");
    s->redis_port = cJSON_IsNumber(port) ? port->valueint : 0;
    s->preload[0] = '\0';
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "plugin"), "env"),
        "LD_PRELOAD");
    if (cJSON_IsString(env) && strlen(env->valuestring) < sizeof(s->preload))
        snprintf(s->preload, sizeof(s->preload), "%s", env->valuestring); /* optional */
    cJSON_Delete(root);
    if (rc != 0 || s->redis_port == 0)
        return fail("%s lacks what a `bodycam-stack up --plugin` stack has", path);
    snprintf(s->broker_cert, sizeof(s->broker_cert), "%s/broker.crt", pki);
    snprintf(s->broker_key, sizeof(s->broker_key), "%s/broker.key", pki);
    return 0;
}

/* ---- brokers ------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int write_config(const char *dir, const stack_info *s, broker *b, int with_plugin)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/bench-%s.conf", dir, b->name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return fail("cannot write %s: %s", path, strerror(errno));
    fprintf(f,
            "per_listener_settings false\nallow_anonymous false\nlog_dest none\n"
            "user %s\n",
            getenv("USER") ? getenv("USER") : "root");
    if (with_plugin)
        fprintf(f,
                "check_retain_source true\nplugin %s\nplugin_opt_redis_host %s\n"
                "plugin_opt_redis_port %d\nplugin_opt_services gateway\n"
                "plugin_opt_rate_msgs_per_s 0\nplugin_opt_rate_bytes_per_s 0\n",
                s->plugin, s->redis_host, s->redis_port);
    fprintf(f,
            "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
            "require_certificate true\ntls_version tlsv1.3\n%s",
            b->port, s->ca, s->broker_cert, s->broker_key,
            with_plugin ? "" : "use_identity_as_username true\n");
    fclose(f);
    return 0;
}

static int start_broker(const char *dir, const stack_info *s, broker *b, int with_plugin)
{
    char conf[1024], preload[600];
    b->port = free_port();
    if (b->port < 0 || write_config(dir, s, b, with_plugin) != 0)
        return fail("cannot prepare the %s broker", b->name);
    snprintf(conf, sizeof(conf), "%s/bench-%s.conf", dir, b->name);
    char *argv[] = {"mosquitto", "-c", conf, NULL};
    char **env = environ;
    char *env_preload[512];
    if (with_plugin && s->preload[0] != '\0') { /* an ASan plugin: numbers are not meaningful */
        size_t n = 0;
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", s->preload);
        env_preload[n++] = preload;
        env_preload[n++] = "ASAN_OPTIONS=detect_leaks=0";
        for (char **e = environ; *e != NULL && n < 510; e++)
            env_preload[n++] = *e;
        env_preload[n] = NULL;
        env = env_preload;
    }
    if (posix_spawnp(&b->pid, "mosquitto", NULL, NULL, argv, env) != 0)
        return fail("cannot start mosquitto: %s", strerror(errno));
    for (int i = 0; i < 200; i++) {
        if (port_open(b->port)) {
            sleep_ns(200000000LL); /* the plugin's first registry load */
            return 0;
        }
        sleep_ns(50000000LL);
    }
    return fail("the %s broker did not open port %d", b->name, b->port);
}

static void stop_broker(broker *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGTERM);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

/* ---- clients ------------------------------------------------------------- */

static void on_message(struct mosquitto *m, void *userdata, const struct mosquitto_message *msg)
{
    sink *s = userdata;
    (void)m;
    if (s->latencies != NULL && msg->payload != NULL) {
        const char *t = strstr(msg->payload, "\"t_ns\":");
        long i = atomic_fetch_add(&s->latency_count, 1);
        if (t != NULL && i < s->latency_cap)
            s->latencies[i] = now_ns() - strtoll(t + 7, NULL, 10);
    }
    atomic_fetch_add(&s->received, 1);
}

static struct mosquitto *client(const char *id, const stack_info *s, const char *cert,
                                const char *key, int port, sink *userdata)
{
    struct mosquitto *m = mosquitto_new(id, true, userdata);
    if (m == NULL)
        return NULL;
    mosquitto_message_callback_set(m, on_message);
    if (mosquitto_tls_set(m, s->ca, NULL, cert, key, NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_opts_set(m, 1, "tlsv1.3", NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_connect(m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}

static int publish_one(struct mosquitto *pub, long seq, int qos)
{
    char payload[512];
    int n = snprintf(payload, sizeof(payload),
                     "{\"v\":1,\"device\":\"cam-001\",\"ts\":1700000000000,\"battery_pct\":80,"
                     "\"charging\":false,\"storage_free\":1000,\"storage_total\":2000,"
                     "\"temperature_c\":30,\"signal_dbm\":-60,\"uptime_s\":%ld,\"fw\":\"1.0.0\","
                     "\"pending_uploads\":0,\"t_ns\":%lld}",
                     seq, (long long)now_ns());
    int rc;
    while ((rc = mosquitto_publish(pub, NULL, TOPIC_PUB, n, payload, qos, false)) == MOSQ_ERR_NOMEM)
        sleep_ns(100000);
    return rc;
}

/* utime + stime of a process in microseconds, from /proc/PID/stat; -1 on error. */
static double cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* msg/s for count messages at qos, window-limited; *cpu gets the broker's
 * CPU time per message in microseconds. */
static double throughput(struct mosquitto *pub, sink *s, long count, int qos, pid_t broker_pid,
                         double *cpu)
{
    double cpu_before = cpu_us(broker_pid);
    long base = atomic_load(&s->received);
    int64_t start = now_ns();
    for (long i = 0; i < count; i++) {
        while (i - (atomic_load(&s->received) - base) >= WINDOW)
            sleep_ns(20000);
        if (publish_one(pub, i, qos) != MOSQ_ERR_SUCCESS)
            return -1;
    }
    int64_t deadline = now_ns() + 30000000000LL;
    while (atomic_load(&s->received) - base < count && now_ns() < deadline)
        sleep_ns(100000);
    if (atomic_load(&s->received) - base < count)
        return -1;
    double rate = (double)count * 1e9 / (double)(now_ns() - start);
    *cpu = (cpu_us(broker_pid) - cpu_before) / (double)count;
    return rate;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int latency(struct mosquitto *pub, sink *s, double *p50_us, double *p99_us)
{
    long total = LATENCY_RATE * LATENCY_SECONDS;
    long base = atomic_load(&s->received);
    s->latency_cap = total;
    s->latencies = calloc((size_t)total, sizeof(int64_t));
    atomic_store(&s->latency_count, 0);
    if (s->latencies == NULL)
        return -1;
    int64_t start = now_ns(), step = 1000000000LL / LATENCY_RATE;
    for (long i = 0; i < total; i++) {
        int64_t due = start + i * step, t = now_ns();
        if (due > t)
            sleep_ns(due - t);
        publish_one(pub, i, 1);
    }
    int64_t deadline = now_ns() + 10000000000LL;
    while (atomic_load(&s->received) - base < total && now_ns() < deadline)
        sleep_ns(1000000);
    long got = atomic_load(&s->latency_count);
    got = got < total ? got : total;
    int64_t *lat = s->latencies;
    s->latencies = NULL;
    if (got < total / 2) {
        free(lat);
        return -1;
    }
    qsort(lat, (size_t)got, sizeof(*lat), cmp_i64);
    *p50_us = (double)lat[got / 2] / 1000.0;
    *p99_us = (double)lat[got * 99 / 100] / 1000.0;
    free(lat);
    return 0;
}

static int measure(const stack_info *s, const broker *b, long count, result *r)
{
    sink sk;
    memset(&sk, 0, sizeof(sk));
    struct mosquitto *sub = client("gateway-bench", s, s->gw_cert, s->gw_key, b->port, &sk);
    struct mosquitto *pub = client("cam-001", s, s->cam_cert, s->cam_key, b->port, NULL);
    int rc = -1;
    if (sub == NULL || pub == NULL) {
        fail("cannot connect to the %s broker", b->name);
        goto cleanup;
    }
    sleep_ns(300000000LL); /* CONNACKs */
    if (mosquitto_subscribe(sub, NULL, TOPIC_SUB, 1) != MOSQ_ERR_SUCCESS)
        goto cleanup;
    sleep_ns(200000000LL); /* SUBACK */
    r->qos0 = throughput(pub, &sk, count, 0, b->pid, &r->cpu0_us);
    r->qos1 = throughput(pub, &sk, count / 5, 1, b->pid, &r->cpu1_us);
    if (r->qos0 < 0 || r->qos1 < 0 || latency(pub, &sk, &r->p50_us, &r->p99_us) != 0) {
        fail("the %s broker did not deliver everything (plugin refusing? registry loaded?)",
             b->name);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (pub != NULL) {
        mosquitto_disconnect(pub);
        mosquitto_loop_stop(pub, false);
        mosquitto_destroy(pub);
    }
    if (sub != NULL) {
        mosquitto_disconnect(sub);
        mosquitto_loop_stop(sub, false);
        mosquitto_destroy(sub);
    }
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    long count = 100000;
    int runs = 3;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc)
            count = atol(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (argv[i][0] != '-' && dir == NULL)
            dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_broker_plugin DIR [--messages N] [--runs R]\n");
            return 2;
        }
    }
    if (dir == NULL || count < 1000 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_broker_plugin DIR [--messages N>=1000] [--runs 1..%d]\n",
                MAX_RUNS);
        return 2;
    }
    stack_info s;
    if (load_stack(dir, &s) != 0)
        return 1;
    if (s.preload[0] != '\0')
        fprintf(stderr, "warning: the plugin is an ASan build; the figures are not meaningful\n");
    mosquitto_lib_init();
    broker brokers[2] = {{"plain", 0, 0}, {"plugin", 0, 0}};
    result res[2][MAX_RUNS];
    int rc = 0;
    for (int b = 0; b < 2 && rc == 0; b++)
        rc = start_broker(dir, &s, &brokers[b], b == 1);
    for (int r = 0; r < runs && rc == 0; r++) {
        for (int b = 0; b < 2 && rc == 0; b++) {
            rc = measure(&s, &brokers[b], count, &res[b][r]);
            if (rc == 0)
                fprintf(stderr,
                        "run %d %-6s qos0 %8.0f msg/s %5.1f us cpu/msg  qos1 %8.0f msg/s "
                        "%5.1f us cpu/msg  p50 %6.0f us  p99 %6.0f us\n",
                        r + 1, brokers[b].name, res[b][r].qos0, res[b][r].cpu0_us, res[b][r].qos1,
                        res[b][r].cpu1_us, res[b][r].p50_us, res[b][r].p99_us);
        }
    }
    stop_broker(&brokers[0]);
    stop_broker(&brokers[1]);
    mosquitto_lib_cleanup();
    if (rc != 0)
        return 1;
    double med[2][6];
    for (int b = 0; b < 2; b++) {
        double v[6][MAX_RUNS];
        for (int r = 0; r < runs; r++) {
            v[0][r] = res[b][r].qos0;
            v[1][r] = res[b][r].qos1;
            v[2][r] = res[b][r].p50_us;
            v[3][r] = res[b][r].p99_us;
            v[4][r] = res[b][r].cpu0_us;
            v[5][r] = res[b][r].cpu1_us;
        }
        for (int k = 0; k < 6; k++)
            med[b][k] = median(v[k], runs);
    }
    printf("broker  %11s %9s %11s %9s %8s %8s   (median of %d runs; %ld msgs QoS 0, %ld QoS 1)\n",
           "QoS0 msg/s", "cpu us", "QoS1 msg/s", "cpu us", "p50 us", "p99 us", runs, count,
           count / 5);
    for (int b = 0; b < 2; b++)
        printf("%-7s %11.0f %9.1f %11.0f %9.1f %8.0f %8.0f\n", brokers[b].name, med[b][0],
               med[b][4], med[b][1], med[b][5], med[b][2], med[b][3]);
    printf("plugin/plain throughput: QoS 0 %.1f %%, QoS 1 %.1f %% (target >= 90 %%)\n",
           100.0 * med[1][0] / med[0][0], 100.0 * med[1][1] / med[0][1]);
    printf("broker CPU per message:  QoS 0 %+.1f us (%.0f %%), QoS 1 %+.1f us (%.0f %%) with the "
           "plugin\n",
           med[1][4] - med[0][4], 100.0 * med[1][4] / med[0][4], med[1][5] - med[0][5],
           100.0 * med[1][5] / med[0][5]);
    return 0;
}
