/* Unit tests for vault/audit: the exact line format and hash, one write per
 * batch, month files (and a clock that goes back), verify naming the file,
 * the line and the kind of damage, the repair of a crash's leftovers at
 * open, two processes appending at once, scan, and expiry over three years
 * from the anchor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "proto/encoding.h"
#include "vault/audit.h"
#include "test_util.h"

#define HASH_TAIL 75 /* ,"hash":"<64 hex>"} */

/* root: a temp dir; dir: "<root>/audit", made by the module itself. */
typedef bc_test_scratch fixture;

static int setup(void **state)
{
    return bc_test_scratch_setup(state, "audit", "audit");
}

static int teardown(void **state)
{
    return bc_test_scratch_teardown(state);
}

/* ---- helpers ---- */

static int64_t utc_ms(int year, int month, int day)
{
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day, .tm_hour = 12};
    return (int64_t)timegm(&tm) * 1000;
}

static char *path_of(const fixture *f, const char *name)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    return path;
}

static bc_audit *open_log(const fixture *f)
{
    bc_audit *a = NULL;
    bc_error err;
    bc_status rc = bc_audit_open(f->dir, &a, &err);
    if (rc != BC_OK)
        fail_msg("open failed: %s", err.text);
    return a;
}

/* Appends n entries one by one, subject "rec-<i % 2>", detail "note". */
static void append_n(bc_audit *a, int n, int64_t ts)
{
    for (int i = 0; i < n; i++) {
        cJSON *d = cJSON_CreateObject();
        char note[32], subject[16];
        snprintf(note, sizeof(note), "value-%d", i);
        snprintf(subject, sizeof(subject), "rec-%d", i % 2);
        assert_non_null(cJSON_AddStringToObject(d, "note", note));
        bc_error err;
        bc_status rc = bc_audit_append1(a, "tester", "commit", subject, d, ts, NULL, &err);
        cJSON_Delete(d);
        if (rc != BC_OK)
            fail_msg("append failed: %s", err.text);
    }
}

static void make_log(const fixture *f, int n, int64_t ts)
{
    bc_audit *a = open_log(f);
    append_n(a, n, ts);
    bc_audit_close(a);
}

static void verify_ok(const fixture *f, bc_audit_verify_result *res)
{
    bc_error err;
    bc_status rc = bc_audit_verify(f->dir, res, &err);
    if (rc != BC_OK)
        fail_msg("verify failed: %s", err.text);
}

/* verify must fail with status, and its text name every one of the words. */
static void verify_fails(const fixture *f, bc_status status, const char *w1, const char *w2)
{
    bc_error err;
    bc_status rc = bc_audit_verify(f->dir, NULL, &err);
    if (rc != status)
        fail_msg("verify returned %s, not %s: %s", bc_strerror(rc), bc_strerror(status), err.text);
    if (strstr(err.text, w1) == NULL || (w2 != NULL && strstr(err.text, w2) == NULL))
        fail_msg("verify said '%s', without '%s' and '%s'", err.text, w1, w2 ? w2 : "");
}

/* The lines of a file, split in place (the caller frees lines[0]'s buffer
 * through *buf). */
static size_t split_lines(char *buf, char **lines, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l != NULL && n < max;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

/* Rewrites a file from lines (each gets its '\n' back). */
static void join_lines(const char *path, char **lines, size_t n)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s\n", lines[i]);
    assert_int_equal(fclose(fp), 0);
}

static void sha256_hex(const void *a, size_t alen, const void *b, size_t blen, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, a, alen), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, b, blen), 1);
    assert_int_equal(EVP_DigestFinal_ex(ctx, md, &n), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(bc_hex_encode(md, 32, hex, 65), BC_OK);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* ---- format ---- */

static void test_format_and_hash(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    uint64_t seq = 0;
    char hash[BC_AUDIT_HASH_HEX + 1];
    bc_error err;
    assert_int_equal(bc_audit_head(a, &seq, hash, &err), BC_OK);
    assert_int_equal(seq, 0);
    assert_string_equal(hash, "0000000000000000000000000000000000000000000000000000000000000000");

    cJSON *d = cJSON_Parse("{\"case_ref\":\"K-1\",\"bytes\":1234567890123,\"held\":true,"
                           "\"refs\":[\"a\",2,false]}");
    assert_non_null(d);
    int64_t ts = 1700000000000; /* 2023-11-14 */
    assert_int_equal(bc_audit_append1(a, "op:alice", "hold", "rec-1", d, ts, &seq, &err), BC_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(bc_audit_append1(a, "vault", "release", "rec-1", NULL, ts + 5, &seq, &err),
                     BC_OK);
    assert_int_equal(seq, 2);
    cJSON_Delete(d);

    size_t len = 0;
    char *text = (char *)bc_test_read_file(path_of(f, "audit-2023-11.log"), &len);
    char *lines[4];
    assert_int_equal(split_lines(text, lines, 4), 2);
    const char *want1 =
        "{\"seq\":1,\"ts\":1700000000000,\"actor\":\"op:alice\",\"action\":\"hold\","
        "\"subject\":\"rec-1\",\"case_ref\":\"K-1\",\"bytes\":1234567890123,"
        "\"held\":true,\"refs\":[\"a\",2,false],\"prev\":\"00000000000000000000"
        "00000000000000000000000000000000000000000000\",\"hash\":\"";
    assert_memory_equal(lines[0], want1, strlen(want1));
    /* The hash is of the line without its hash member. */
    char h1[65], h2[65];
    size_t l1 = strlen(lines[0]);
    assert_int_equal(l1, strlen(want1) + 64 + 2);
    sha256_hex(lines[0], l1 - HASH_TAIL, "}", 1, h1);
    assert_memory_equal(lines[0] + strlen(want1), h1, 64);
    /* The second names the first as prev. */
    char want2[256];
    snprintf(want2, sizeof(want2),
             "{\"seq\":2,\"ts\":1700000000005,\"actor\":\"vault\",\"action\":\"release\","
             "\"subject\":\"rec-1\",\"prev\":\"%s\",\"hash\":\"",
             h1);
    assert_memory_equal(lines[1], want2, strlen(want2));
    sha256_hex(lines[1], strlen(lines[1]) - HASH_TAIL, "}", 1, h2);
    assert_memory_equal(lines[1] + strlen(want2), h2, 64);
    free(text);

    /* The head names the last entry, on disk and through the API. */
    char head_want[128];
    snprintf(head_want, sizeof(head_want), "{\"seq\":2,\"hash\":\"%s\"}", h2);
    text = (char *)bc_test_read_file(path_of(f, "head"), &len);
    assert_string_equal(text, head_want);
    free(text);
    assert_int_equal(bc_audit_head(a, &seq, hash, &err), BC_OK);
    assert_int_equal(seq, 2);
    assert_string_equal(hash, h2);
    bc_audit_close(a);

    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.entries, 2);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, 2);
    assert_int_equal(res.files, 1);
    assert_string_equal(res.last_hash, h2);
}

static void test_any_utf8_is_one_line(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    const char *odd = "line1\nline2\r\t\"quoted\" back\\slash \x01\x1f caf\xc3\xa9 \xe6\x97\xa5";
    cJSON *d = cJSON_CreateObject();
    assert_non_null(cJSON_AddStringToObject(d, "why", odd));
    bc_error err;
    assert_int_equal(bc_audit_append1(a, "op:bob", "inzage", odd, d, 1700000000000, NULL, &err),
                     BC_OK);
    append_n(a, 2, 1700000000001);
    cJSON_Delete(d);
    bc_audit_close(a);

    size_t len = 0;
    char *text = (char *)bc_test_read_file(path_of(f, "audit-2023-11.log"), &len);
    size_t newlines = 0;
    for (size_t i = 0; i < len; i++)
        newlines += text[i] == '\n';
    assert_int_equal(newlines, 3);
    free(text);
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.entries, 3);
}

/* ---- refusals ---- */

static void test_refused_entries_write_nothing(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    bc_error err;
    int64_t ts = 1700000000000;
    const char *bad[][2] = {
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"seq\":5}", "reserved"},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"hash\":\"x\"}", "reserved"},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"prev\":\"x\"}", "reserved"},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"ts\":1}", "reserved"},
        {"{\"action\":\"b\",\"subject\":\"c\"}", "actor"},
        {"{\"actor\":7,\"action\":\"b\",\"subject\":\"c\"}", "actor"},
        {"{\"actor\":\"a\",\"action\":\"\",\"subject\":\"c\"}", "action"},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"o\":{\"x\":1}}", "\"o\""},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"f\":1.5}", "\"f\""},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"n\":null}", "\"n\""},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"l\":[[1]]}", "\"l\""},
        {"{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\",\"x\":1,\"x\":2}", "twice"},
    };
    const bc_status want[] = {BC_ERR_INVAL,   BC_ERR_INVAL, BC_ERR_INVAL, BC_ERR_INVAL,
                              BC_ERR_MISSING, BC_ERR_TYPE,  BC_ERR_TYPE,  BC_ERR_TYPE,
                              BC_ERR_TYPE,    BC_ERR_TYPE,  BC_ERR_TYPE,  BC_ERR_INVAL};
    cJSON *good = cJSON_Parse("{\"actor\":\"a\",\"action\":\"b\",\"subject\":\"c\"}");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cJSON *e = cJSON_Parse(bad[i][0]);
        assert_non_null(e);
        /* A bad entry second in a batch: the good first one is not written either. */
        cJSON *batch[2] = {good, e};
        bc_status rc = bc_audit_append(a, batch, 2, ts, NULL, &err);
        if (rc != want[i] || strstr(err.text, bad[i][1]) == NULL)
            fail_msg("entry %zu: %s (%s)", i, bc_strerror(rc), err.text);
        cJSON_Delete(e);
    }
    /* Details may not smuggle in the core members either. */
    cJSON *d = cJSON_Parse("{\"actor\":\"someone else\"}");
    assert_int_equal(bc_audit_append1(a, "a", "b", "c", d, ts, NULL, &err), BC_ERR_INVAL);
    cJSON_Delete(d);
    /* Over the line limit. */
    char *big = malloc(BC_AUDIT_LINE_MAX);
    memset(big, 'x', BC_AUDIT_LINE_MAX - 1);
    big[BC_AUDIT_LINE_MAX - 1] = '\0';
    d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "big", big);
    assert_int_equal(bc_audit_append1(a, "a", "b", "c", d, ts, NULL, &err), BC_ERR_TOO_BIG);
    cJSON_Delete(d);
    free(big);
    assert_int_equal(bc_audit_append1(a, "a", "b", "c", NULL, -1, NULL, &err), BC_ERR_INVAL);

    uint64_t seq = 99;
    assert_int_equal(bc_audit_head(a, &seq, NULL, &err), BC_OK);
    assert_int_equal(seq, 0);
    assert_false(bc_test_exists(f->dir, "audit-2023-11.log"));
    /* And the log still works. */
    assert_int_equal(bc_audit_append(a, &good, 1, ts, &seq, &err), BC_OK);
    assert_int_equal(seq, 1);
    cJSON_Delete(good);
    bc_audit_close(a);
    verify_ok(f, NULL);
}

/* ---- batches and files ---- */

/* write(2) calls this process made so far, or -1 without /proc/self/io. */
static long write_syscalls(void)
{
    FILE *fp = fopen("/proc/self/io", "r");
    if (fp == NULL)
        return -1;
    char key[32];
    long value = -1, found = -1;
    while (fscanf(fp, "%31s %ld", key, &value) == 2) {
        if (strcmp(key, "syscw:") == 0)
            found = value;
    }
    fclose(fp);
    return found;
}

static void test_batch_is_one_write(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    append_n(a, 3, 1700000000000);
    enum { N = 1000 };
    cJSON *entries[N];
    for (int i = 0; i < N; i++) {
        entries[i] = cJSON_CreateObject();
        cJSON_AddStringToObject(entries[i], "actor", "vault");
        cJSON_AddStringToObject(entries[i], "action", "purge");
        char subject[32];
        snprintf(subject, sizeof(subject), "rec-%04d", i);
        cJSON_AddStringToObject(entries[i], "subject", subject);
        cJSON_AddNumberToObject(entries[i], "bytes", 1000 + i);
    }
    uint64_t first = 0;
    bc_error err;
    long before = write_syscalls();
    assert_int_equal(bc_audit_append(a, entries, N, 1700000001000, &first, &err), BC_OK);
    long after = write_syscalls();
    assert_int_equal(first, 4);
    if (before >= 0 && after >= 0) {
        /* One write of the lines and one of the head, whatever the count. */
        if (after - before > 8)
            fail_msg("a batch of %d entries took %ld write(2) calls", N, after - before);
    }
    for (int i = 0; i < N; i++)
        cJSON_Delete(entries[i]);
    uint64_t seq = 0;
    assert_int_equal(bc_audit_head(a, &seq, NULL, &err), BC_OK);
    assert_int_equal(seq, N + 3);
    bc_audit_close(a);
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.entries, N + 3);
}

static void test_month_files_and_clock_going_back(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    append_n(a, 2, utc_ms(2024, 1, 10));
    append_n(a, 1, utc_ms(2024, 2, 10));
    append_n(a, 3, utc_ms(2024, 3, 31) + 11 * 3600 * 1000); /* 23:00 UTC on the 31st */
    /* The clock goes back to February: the entry stays in the newest file. */
    append_n(a, 1, utc_ms(2024, 2, 20));
    bc_audit_close(a);
    assert_int_equal(bc_test_count_entries(f->dir), 3 + 2); /* + head and lock */
    const char *names[] = {"audit-2024-01.log", "audit-2024-02.log", "audit-2024-03.log"};
    const size_t counts[] = {2, 1, 4};
    for (size_t i = 0; i < 3; i++) {
        size_t len = 0;
        char *text = (char *)bc_test_read_file(path_of(f, names[i]), &len);
        char *lines[8];
        assert_int_equal(split_lines(text, lines, 8), counts[i]);
        free(text);
    }
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.files, 3);
    assert_int_equal(res.entries, 7);
    assert_int_equal(res.last_seq, 7);
}

/* ---- verify finds the damage ---- */

/* A log of 6 entries in one file; returns its lines (free *buf). */
static size_t damaged_setup(const fixture *f, char **buf, char **lines)
{
    make_log(f, 6, 1700000000000);
    size_t len = 0;
    *buf = (char *)bc_test_read_file(path_of(f, "audit-2023-11.log"), &len);
    return split_lines(*buf, lines, 8);
}

static void test_verify_edited_detail(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    verify_ok(f, NULL);
    char *p = strstr(lines[2], "value-2");
    assert_non_null(p);
    p[4] = 'X'; /* one byte of entry 3's detail */
    join_lines(path_of(f, "audit-2023-11.log"), lines, n);
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "audit-2023-11.log line 3", "entry 3 was edited");
}

static void test_verify_edited_hash_field(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    char *h = lines[1] + strlen(lines[1]) - 3; /* a hex digit of entry 2's hash */
    *h = *h == '0' ? '1' : '0';
    join_lines(path_of(f, "audit-2023-11.log"), lines, n);
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "line 2", "edited");
}

static void test_verify_deleted_line(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    memmove(&lines[3], &lines[4], (n - 4) * sizeof(lines[0])); /* entry 4 goes */
    join_lines(path_of(f, "audit-2023-11.log"), lines, n - 1);
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "line 4", "entry 4 is missing");
}

static void test_verify_swapped_lines(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    char *t = lines[2];
    lines[2] = lines[3];
    lines[3] = t;
    join_lines(path_of(f, "audit-2023-11.log"), lines, n);
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "line 3", "out of order");
}

static void test_verify_moved_back_line(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    lines[n] = lines[1]; /* entry 2 also at the end */
    join_lines(path_of(f, "audit-2023-11.log"), lines, n + 1);
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "line 7", "out of order");
}

static void test_verify_removed_tail(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    join_lines(path_of(f, "audit-2023-11.log"), lines, n - 1); /* the head still says 6 */
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "line 5", "ends at 5 but its head says 6");
    bc_audit *a = NULL;
    bc_error err;
    assert_int_equal(bc_audit_open(f->dir, &a, &err), BC_ERR_TAMPERED);
    assert_null(a);
    assert_non_null(strstr(err.text, "ends at entry 5"));
}

static void test_verify_rehashed_replacement(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    /* Entry 3 rewritten with a hash that matches its new bytes: only the
     * chain can tell, at entry 4. */
    char body[1024], hash[65], line[1200];
    size_t len = strlen(lines[2]) - HASH_TAIL;
    memcpy(body, lines[2], len);
    body[len] = '\0';
    char *p = strstr(body, "value-2");
    assert_non_null(p);
    p[0] = 'V';
    sha256_hex(body, len, "}", 1, hash);
    snprintf(line, sizeof(line), "%s,\"hash\":\"%s\"}", body, hash);
    lines[2] = line;
    join_lines(path_of(f, "audit-2023-11.log"), lines, n);
    free(buf);
    verify_fails(f, BC_ERR_TAMPERED, "line 4", "entry 4 does not chain to entry 3");
}

static void test_verify_bad_line(void **state)
{
    fixture *f = *state;
    char *buf, *lines[8];
    size_t n = damaged_setup(f, &buf, lines);
    memmove(&lines[3], &lines[2], (n - 2) * sizeof(lines[0]));
    lines[2] = "not an entry";
    join_lines(path_of(f, "audit-2023-11.log"), lines, n + 1);
    free(buf);
    verify_fails(f, BC_ERR_PARSE, "audit-2023-11.log line 3", "not an audit entry");
}

static void test_verify_missing_file(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    append_n(a, 2, utc_ms(2024, 1, 10));
    append_n(a, 2, utc_ms(2024, 2, 10));
    append_n(a, 2, utc_ms(2024, 3, 10));
    bc_audit_close(a);
    assert_int_equal(unlink(path_of(f, "audit-2024-02.log")), 0);
    verify_fails(f, BC_ERR_TAMPERED, "audit-2024-03.log line 1", "entries 3 to 4 are missing");
    /* Without the first file (and no anchor) the log starts too late. */
    assert_int_equal(unlink(path_of(f, "audit-2024-01.log")), 0);
    verify_fails(f, BC_ERR_TAMPERED, "line 1", "entries 1 to 4 are missing");
}

/* ---- crash leftovers ---- */

static void test_torn_line_is_cut_at_open(void **state)
{
    fixture *f = *state;
    make_log(f, 3, 1700000000000);
    const char *path = path_of(f, "audit-2023-11.log");
    off_t size = file_size(path);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("{\"seq\":4,\"ts\":1700000000000,\"actor\":\"tes", fp);
    assert_int_equal(fclose(fp), 0);
    verify_fails(f, BC_ERR_PARSE, "line 4", "incomplete");

    bc_audit *a = open_log(f);
    assert_int_equal(file_size(path_of(f, "audit-2023-11.log")), size);
    verify_ok(f, NULL);
    uint64_t seq = 0;
    bc_error err;
    assert_int_equal(bc_audit_append1(a, "t", "a", "s", NULL, 1700000000000, &seq, &err), BC_OK);
    assert_int_equal(seq, 4);
    bc_audit_close(a);
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.entries, 4);
}

static void test_entries_ahead_of_head_are_adopted(void **state)
{
    fixture *f = *state;
    make_log(f, 2, utc_ms(2024, 1, 10));
    size_t len = 0;
    char *old_head = (char *)bc_test_read_file(path_of(f, "head"), &len);

    /* A crash after the fsync of the file, before the head write: the
     * entries are whole, the head is the one before. */
    make_log(f, 2, utc_ms(2024, 1, 11));
    bc_test_write_file(path_of(f, "head"), old_head);
    verify_fails(f, BC_ERR_TAMPERED, "goes on to 4", "head says 2");
    bc_audit *a = open_log(f);
    uint64_t seq = 0;
    bc_error err;
    assert_int_equal(bc_audit_head(a, &seq, NULL, &err), BC_OK);
    assert_int_equal(seq, 4);
    bc_audit_close(a);
    verify_ok(f, NULL);
    free(old_head);

    /* The same when the batch had made a new month file. */
    old_head = (char *)bc_test_read_file(path_of(f, "head"), &len);
    make_log(f, 3, utc_ms(2024, 2, 1));
    bc_test_write_file(path_of(f, "head"), old_head);
    free(old_head);
    a = open_log(f);
    assert_int_equal(bc_audit_head(a, &seq, NULL, &err), BC_OK);
    assert_int_equal(seq, 7);

    /* And when another process left it while this handle was open: the
     * next append adopts, then follows on. */
    old_head = (char *)bc_test_read_file(path_of(f, "head"), &len);
    make_log(f, 1, utc_ms(2024, 2, 2));
    bc_test_write_file(path_of(f, "head"), old_head);
    free(old_head);
    assert_int_equal(bc_audit_append1(a, "t", "a", "s", NULL, utc_ms(2024, 2, 3), &seq, &err),
                     BC_OK);
    assert_int_equal(seq, 9);
    bc_audit_close(a);
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.entries, 9);
}

static void test_head_that_does_not_match_is_refused(void **state)
{
    fixture *f = *state;
    make_log(f, 3, 1700000000000);
    size_t len = 0;
    char *good = (char *)bc_test_read_file(path_of(f, "head"), &len);
    const char *bad[] = {
        /* same seq, another hash */
        "{\"seq\":3,\"hash\":\"1111111111111111111111111111111111111111111111111111111111111111\"}",
        /* behind, with a hash that is no entry's */
        "{\"seq\":2,\"hash\":\"1111111111111111111111111111111111111111111111111111111111111111\"}",
        /* ahead of the log */
        "{\"seq\":9,\"hash\":\"1111111111111111111111111111111111111111111111111111111111111111\"}",
        /* not a head */
        "{\"seq\":\"3\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bc_test_write_file(path_of(f, "head"), bad[i]);
        bc_audit *a = NULL;
        bc_error err;
        bc_status rc = bc_audit_open(f->dir, &a, &err);
        if (rc != BC_ERR_TAMPERED)
            fail_msg("head %zu: open returned %s (%s)", i, bc_strerror(rc), err.text);
        assert_int_equal(bc_audit_verify(f->dir, NULL, &err), BC_ERR_TAMPERED);
    }
    /* An open handle refuses to append after the head was changed under it. */
    bc_test_write_file(path_of(f, "head"), good);
    bc_audit *a = open_log(f);
    bc_test_write_file(path_of(f, "head"), bad[0]);
    bc_error err;
    assert_int_equal(bc_audit_append1(a, "t", "a", "s", NULL, 1700000000000, NULL, &err),
                     BC_ERR_TAMPERED);
    bc_audit_close(a);
    bc_test_write_file(path_of(f, "head"), good);
    verify_ok(f, NULL);
    free(good);
}

/* ---- several processes ---- */

static void test_two_processes_append_at_once(void **state)
{
    fixture *f = *state;
    make_log(f, 1, 1700000000000);
    enum { PER_CHILD = 200 };
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0) {
            /* Each process has its own handle (its own lock descriptor). */
            bc_audit *a = NULL;
            bc_error err;
            int ok = bc_audit_open(f->dir, &a, &err) == BC_OK;
            char actor[16];
            snprintf(actor, sizeof(actor), "child-%d", c);
            for (int i = 0; ok && i < PER_CHILD; i++) {
                cJSON *d = cJSON_CreateObject();
                cJSON_AddNumberToObject(d, "i", i);
                ok = bc_audit_append1(a, actor, "test", "rec-1", d, 1700000000000 + i, NULL,
                                      &err) == BC_OK;
                cJSON_Delete(d);
            }
            if (!ok)
                fprintf(stderr, "child %d: %s\n", c, err.text);
            bc_audit_close(a);
            _exit(ok ? 0 : 1);
        }
    }
    for (int c = 0; c < 2; c++) {
        int status = 0;
        assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.entries, 2 * PER_CHILD + 1);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, 2 * PER_CHILD + 1);
}

/* ---- scan ---- */

typedef struct visit_log {
    uint64_t seqs[64];
    size_t count, stop_after;
} visit_log;

static bool visit(const char *line, size_t len, const cJSON *entry, void *userdata)
{
    visit_log *v = userdata;
    assert_int_equal(strlen(line), len);
    assert_true(line[0] == '{' && line[len - 1] == '}');
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(entry, "seq");
    assert_true(cJSON_IsNumber(seq));
    if (v->count < 64)
        v->seqs[v->count++] = (uint64_t)seq->valuedouble;
    return v->stop_after == 0 || v->count < v->stop_after;
}

static void test_scan(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    append_n(a, 5, utc_ms(2024, 1, 10)); /* subjects rec-0, rec-1, rec-0, ... */
    append_n(a, 4, utc_ms(2024, 2, 10));
    bc_error err;
    /* A subject that looks like another one's prefix is not a match. */
    assert_int_equal(bc_audit_append1(a, "t", "a", "rec-10", NULL, utc_ms(2024, 2, 11), NULL, &err),
                     BC_OK);
    bc_audit_close(a);

    visit_log v = {0};
    assert_int_equal(bc_audit_scan(f->dir, "rec-1", visit, &v, &err), BC_OK);
    const uint64_t want[] = {2, 4, 7, 9};
    assert_int_equal(v.count, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(v.seqs[i], want[i]);

    memset(&v, 0, sizeof(v));
    assert_int_equal(bc_audit_scan(f->dir, NULL, visit, &v, &err), BC_OK);
    assert_int_equal(v.count, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(v.seqs[i], i + 1);

    memset(&v, 0, sizeof(v));
    v.stop_after = 3;
    assert_int_equal(bc_audit_scan(f->dir, "rec-0", visit, &v, &err), BC_OK);
    assert_int_equal(v.count, 3);

    memset(&v, 0, sizeof(v));
    assert_int_equal(bc_audit_scan(f->dir, "nobody", visit, &v, &err), BC_OK);
    assert_int_equal(v.count, 0);

    /* The subject member decides, not the bytes: a hand-made line naming
     * "rec-1" deeper down is not an entry of rec-1. */
    FILE *fp = fopen(path_of(f, "audit-2024-02.log"), "a");
    assert_non_null(fp);
    fputs("{\"seq\":11,\"subject\":\"other\",\"x\":{\"subject\":\"rec-1\"}}\n", fp);
    assert_int_equal(fclose(fp), 0);
    memset(&v, 0, sizeof(v));
    assert_int_equal(bc_audit_scan(f->dir, "rec-1", visit, &v, &err), BC_OK);
    assert_int_equal(v.count, 4);

    /* A line longer than the limit is refused, not read whole. */
    char *big = malloc(2 * BC_AUDIT_LINE_MAX + 2);
    memset(big, 'x', 2 * BC_AUDIT_LINE_MAX);
    big[2 * BC_AUDIT_LINE_MAX] = '\n';
    big[2 * BC_AUDIT_LINE_MAX + 1] = '\0';
    fp = fopen(path_of(f, "audit-2024-01.log"), "a");
    assert_non_null(fp);
    fputs(big, fp);
    assert_int_equal(fclose(fp), 0);
    free(big);
    memset(&v, 0, sizeof(v));
    assert_int_equal(bc_audit_scan(f->dir, NULL, visit, &v, &err), BC_ERR_PARSE);
    assert_non_null(strstr(err.text, "audit-2024-01.log line 6"));
    assert_int_equal(v.count, 5);
    verify_fails(f, BC_ERR_PARSE, "audit-2024-01.log line 6", "over");
}

/* ---- expiry ---- */

static void test_expire_three_years(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    /* One entry on the 15th of every month, 2021 to 2023: 36 files. */
    for (int y = 2021; y <= 2023; y++) {
        for (int m = 1; m <= 12; m++)
            append_n(a, 1, utc_ms(y, m, 15));
    }
    size_t len = 0;
    char *first_file = (char *)bc_test_read_file(path_of(f, "audit-2021-01.log"), &len);

    size_t removed = 99;
    bc_error err;
    int64_t now = utc_ms(2024, 1, 20);
    assert_int_equal(bc_audit_expire(a, 364, now, &removed, &err), BC_ERR_INVAL);
    assert_int_equal(removed, 0);
    assert_int_equal(bc_audit_expire(a, 365, utc_ms(2021, 6, 1), &removed, &err), BC_OK);
    assert_int_equal(removed, 0);
    assert_false(bc_test_exists(f->dir, "anchor"));

    /* 365 days before 2024-01-20 is 2023-01-20: 2021-01 to 2023-01 go. */
    assert_int_equal(bc_audit_expire(a, 365, now, &removed, &err), BC_OK);
    assert_int_equal(removed, 25);
    assert_false(bc_test_exists(f->dir, "audit-2021-01.log"));
    assert_false(bc_test_exists(f->dir, "audit-2023-01.log"));
    assert_true(bc_test_exists(f->dir, "audit-2023-02.log"));
    assert_true(bc_test_exists(f->dir, "audit-2024-01.log")); /* the audit_expired entry */

    char *anchor = (char *)bc_test_read_file(path_of(f, "anchor"), &len);
    cJSON *aj = cJSON_Parse(anchor);
    assert_non_null(aj);
    assert_int_equal(cJSON_GetObjectItem(aj, "seq")->valuedouble, 25);
    assert_string_equal(cJSON_GetObjectItem(aj, "file")->valuestring, "audit-2023-01.log");
    assert_true(cJSON_GetObjectItem(aj, "removed_at")->valuedouble == (double)now);
    cJSON_Delete(aj);
    free(anchor);

    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.first_seq, 26);
    assert_int_equal(res.last_seq, 37);
    assert_int_equal(res.entries, 12);
    assert_int_equal(res.files, 12);

    visit_log v = {0};
    assert_int_equal(bc_audit_scan(f->dir, "audit", visit, &v, &err), BC_OK);
    assert_int_equal(v.count, 1);
    assert_int_equal(v.seqs[0], 37);

    /* An expiry that stopped after its anchor write left a file behind:
     * readers skip it, the next expiry removes it. */
    bc_test_write_file(path_of(f, "audit-2021-01.log"), first_file);
    free(first_file);
    verify_ok(f, &res);
    assert_int_equal(res.first_seq, 26);
    memset(&v, 0, sizeof(v));
    assert_int_equal(bc_audit_scan(f->dir, NULL, visit, &v, &err), BC_OK);
    assert_int_equal(v.seqs[0], 26);
    assert_int_equal(bc_audit_expire(a, 365, now, &removed, &err), BC_OK);
    assert_int_equal(removed, 0);
    assert_false(bc_test_exists(f->dir, "audit-2021-01.log"));

    /* A year on, all of 2023 goes (and the first audit_expired file stays,
     * as it holds an entry of 2024-01-20). */
    assert_int_equal(bc_audit_expire(a, 365, utc_ms(2025, 1, 10), &removed, &err), BC_OK);
    assert_int_equal(removed, 11);
    bc_audit_close(a);
    verify_ok(f, &res);
    assert_int_equal(res.first_seq, 37);
    assert_int_equal(res.last_seq, 38);

    /* Editing what is left is still found, from the anchor on. */
    char *text = (char *)bc_test_read_file(path_of(f, "audit-2024-01.log"), &len);
    char *p = strstr(text, "audit-2023-01.log");
    assert_non_null(p);
    p[6] = '1';
    bc_test_write_file(path_of(f, "audit-2024-01.log"), text);
    free(text);
    verify_fails(f, BC_ERR_TAMPERED, "audit-2024-01.log line 1", "edited");
}

static void test_expire_keeps_the_head_file(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    append_n(a, 2, utc_ms(2019, 5, 1));
    append_n(a, 2, utc_ms(2019, 6, 1));
    size_t removed = 0;
    bc_error err;
    /* Everything is old, but the file with the head entry stays. */
    assert_int_equal(bc_audit_expire(a, 365, utc_ms(2024, 1, 1), &removed, &err), BC_OK);
    assert_int_equal(removed, 1);
    assert_true(bc_test_exists(f->dir, "audit-2019-06.log"));
    bc_audit_close(a);
    bc_audit_verify_result res;
    verify_ok(f, &res);
    assert_int_equal(res.first_seq, 3);
    assert_int_equal(res.last_seq, 5);
}

static void test_expire_refuses_a_damaged_log(void **state)
{
    fixture *f = *state;
    bc_audit *a = open_log(f);
    append_n(a, 3, utc_ms(2020, 1, 1));
    append_n(a, 1, utc_ms(2023, 6, 1));
    size_t len = 0;
    char *text = (char *)bc_test_read_file(path_of(f, "audit-2020-01.log"), &len);
    char *p = strstr(text, "value-1");
    assert_non_null(p);
    p[0] = 'V';
    bc_test_write_file(path_of(f, "audit-2020-01.log"), text);
    free(text);
    size_t removed = 0;
    bc_error err;
    assert_int_equal(bc_audit_expire(a, 365, utc_ms(2024, 1, 1), &removed, &err), BC_ERR_TAMPERED);
    assert_int_equal(removed, 0);
    assert_true(bc_test_exists(f->dir, "audit-2020-01.log"));
    assert_false(bc_test_exists(f->dir, "anchor"));
    bc_audit_close(a);
}

static void test_open_failures(void **state)
{
    fixture *f = *state;
    bc_audit *a = NULL;
    bc_error err;
    assert_int_equal(bc_audit_open(NULL, &a, &err), BC_ERR_INVAL);
    bc_test_write_file(f->dir, "a file, not a directory");
    assert_int_equal(bc_audit_open(f->dir, &a, &err), BC_ERR_IO);
    assert_null(a);
    char deep[256];
    snprintf(deep, sizeof(deep), "%s/missing/audit", f->root);
    assert_int_equal(bc_audit_open(deep, &a, &err), BC_ERR_IO);
    assert_int_equal(bc_audit_verify(deep, NULL, &err), BC_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format_and_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_utf8_is_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_entries_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_month_files_and_clock_going_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_edited_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_edited_hash_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_deleted_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_swapped_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_moved_back_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_removed_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_rehashed_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_bad_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_line_is_cut_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_ahead_of_head_are_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_that_does_not_match_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_append_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_three_years, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_keeps_the_head_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_refuses_a_damaged_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
