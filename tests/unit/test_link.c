/* Unit tests for device-agent/link without a broker: the full-jitter
 * backoff, the configuration checks, and the attempt cycle against a port
 * where nobody listens (refused) and against one that accepts but never
 * answers the TLS handshake (connect timeout): every attempt first reserves
 * a new, larger session number, nothing is reported online, and stop ends
 * the cycle. (Against a real broker: tests/integration/test_agent_*.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/ca.h"
#include "common/clock.h"
#include "device-agent/link.h"

#define MAX_SESSIONS 64

typedef struct fixture {
    char dir[64];
    char ca[128], cert[128], key[128];
    bc_reactor *r;
    bc_outbox *ob;
    uint64_t sessions[MAX_SESSIONS];
    size_t session_count;
    int online_calls;
    bc_timer stop_timer;
} fixture;

static bc_status reserve(void *ud, uint64_t *session)
{
    fixture *f = ud;
    assert_true(f->session_count < MAX_SESSIONS);
    *session = 100 + f->session_count;
    f->sessions[f->session_count++] = *session;
    return BC_OK;
}

static void online(bc_link *l, void *ud)
{
    ((fixture *)ud)->online_calls++;
}

static void write_identity(fixture *f)
{
    bc_ca ca;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    bc_error err;
    assert_int_equal(bc_ca_create("test-ca", 1, &ca, &err), BC_OK);
    assert_int_equal(bc_ca_new_key(&key, &err), BC_OK);
    assert_int_equal(bc_ca_issue(&ca, key, "cam-001", BC_CERT_DEVICE, 1, NULL, &cert, &err), BC_OK);
    assert_int_equal(bc_ca_write_cert(f->ca, ca.cert, &err), BC_OK);
    assert_int_equal(bc_ca_write_cert(f->cert, cert, &err), BC_OK);
    assert_int_equal(bc_ca_write_key(f->key, key, &err), BC_OK);
    X509_free(cert);
    EVP_PKEY_free(key);
    bc_ca_free(&ca);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    bc_error err;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bc-link-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", f->dir);
    snprintf(f->cert, sizeof(f->cert), "%s/dev.crt", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/dev.key", f->dir);
    write_identity(f);
    char ob[128];
    snprintf(ob, sizeof(ob), "%s/outbox", f->dir);
    if (bc_link_lib_init(&err) != BC_OK || bc_reactor_new(&f->r, &err) != BC_OK ||
        bc_outbox_open(ob, NULL, &f->ob, NULL, &err) != BC_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[256];
    bc_outbox_close(f->ob);
    bc_reactor_free(f->r);
    bc_link_lib_cleanup();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static bc_link_config config(const fixture *f, int port)
{
    bc_link_config c;
    memset(&c, 0, sizeof(c));
    snprintf(c.device_id, sizeof(c.device_id), "cam-001");
    snprintf(c.host, sizeof(c.host), "127.0.0.1");
    c.port = port;
    snprintf(c.ca_file, sizeof(c.ca_file), "%s", f->ca);
    snprintf(c.cert_file, sizeof(c.cert_file), "%s", f->cert);
    snprintf(c.key_file, sizeof(c.key_file), "%s", f->key);
    c.keepalive_s = 10;
    c.backoff_min_ms = 5;
    c.backoff_max_ms = 40;
    c.connect_timeout_ms = 150;
    snprintf(c.fw_version, sizeof(c.fw_version), "1.0.0");
    return c;
}

/* A TCP port on 127.0.0.1: listening (fd returned) or, with listen_too 0,
 * bound and closed again so that nobody is there. */
static int loopback_port(int listen_too, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    if (!listen_too) {
        close(fd);
        return -1;
    }
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static void on_stop(bc_reactor *r, bc_timer *t, void *ud)
{
    bc_reactor_stop(r);
}

static void run_for(fixture *f, int64_t ms)
{
    bc_error err;
    bc_timer_init(&f->stop_timer, on_stop, f);
    assert_int_equal(bc_reactor_timer_start(f->r, &f->stop_timer, ms, 0), BC_OK);
    assert_int_equal(bc_reactor_run(f->r, &err), BC_OK);
}

static void test_backoff(void **state)
{
    assert_int_equal(bc_link_backoff_ms(100, 1000, 0, 0.0), 0);
    assert_true(bc_link_backoff_ms(100, 1000, 0, 0.9999) <= 100);
    assert_true(bc_link_backoff_ms(100, 1000, 0, 0.9999) >= 99);
    assert_true(bc_link_backoff_ms(100, 1000, 2, 0.9999) >= 399);
    assert_true(bc_link_backoff_ms(100, 1000, 2, 0.9999) <= 400);
    assert_true(bc_link_backoff_ms(100, 1000, 50, 0.9999) <= 1000); /* capped, no overflow */
    assert_true(bc_link_backoff_ms(100, 1000, 50, 0.9999) >= 999);
    assert_true(bc_link_backoff_ms(100, 1000, 3, 0.5) == 400);
    assert_true(bc_link_backoff_ms(0, 0, 5, 2.0) <= 1); /* nonsense input stays sane */
}

static void test_config_checks(void **state)
{
    fixture *f = *state;
    bc_link_callbacks cb = {.reserve_session = reserve};
    bc_link *l = NULL;
    bc_error err;
    bc_link_config c = config(f, 0);
    assert_int_equal(bc_link_new(f->r, &c, f->ob, &cb, f, &l, &err), BC_ERR_INVAL);
    c = config(f, 1883);
    snprintf(c.device_id, sizeof(c.device_id), "CAM-1");
    assert_int_equal(bc_link_new(f->r, &c, f->ob, &cb, f, &l, &err), BC_ERR_INVAL);
    c = config(f, 1883);
    c.backoff_max_ms = 1;
    assert_int_equal(bc_link_new(f->r, &c, f->ob, &cb, f, &l, &err), BC_ERR_INVAL);
    c = config(f, 1883);
    cb.reserve_session = NULL;
    assert_int_equal(bc_link_new(f->r, &c, f->ob, &cb, f, &l, &err), BC_ERR_INVAL);
    assert_null(l);
}

static void check_cycle(fixture *f, int port, int64_t run_ms, size_t min_attempts)
{
    bc_link_callbacks cb = {.reserve_session = reserve, .on_online = online};
    bc_link *l = NULL;
    bc_error err;
    bc_link_config c = config(f, port);
    assert_int_equal(bc_link_new(f->r, &c, f->ob, &cb, f, &l, &err), BC_OK);
    assert_int_equal(bc_link_start(l, 0, &err), BC_OK);
    assert_int_equal(bc_link_start(l, 0, &err), BC_ERR_STATE);
    run_for(f, run_ms);
    assert_false(bc_link_online(l));
    assert_int_equal(f->online_calls, 0);
    if (f->session_count < min_attempts)
        fail_msg("only %zu attempts in %lld ms", f->session_count, (long long)run_ms);
    for (size_t i = 1; i < f->session_count; i++)
        assert_true(f->sessions[i] > f->sessions[i - 1]);
    bc_link_stats st;
    bc_link_stats_get(l, &st);
    assert_int_equal(st.attempts, f->session_count);
    assert_int_equal(st.session, f->sessions[f->session_count - 1]);
    assert_int_equal(bc_link_publish(l, "t", "x", 1, 0, false, NULL, &err), BC_ERR_UNAVAILABLE);
    bc_link_stop(l);
    assert_true(bc_link_closed(l));
    size_t after_stop = f->session_count;
    run_for(f, 100);
    assert_int_equal(f->session_count, after_stop); /* no attempt after stop */
    assert_int_equal(bc_reactor_fd_count(f->r), 0); /* the socket is gone */
    bc_link_free(l);
}

static void test_refused_attempts_back_off(void **state)
{
    int port = 0;
    loopback_port(0, &port);
    check_cycle(*state, port, 400, 3);
}

static void test_handshake_timeout(void **state)
{
    int port = 0;
    int fd = loopback_port(1, &port); /* accepts (backlog), never answers */
    check_cycle(*state, port, 700, 2);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup_teardown(test_config_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_attempts_back_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
