/* Unit tests for device-agent/boot_slots: the A/B boot record on real
 * files in a scratch directory - a fresh camera, an install into the
 * inactive slot, the trial boot, a crash during the trial (the next boot
 * goes back), confirm, revert, and a damaged boot.json (a safe slot and an
 * error). A crash is simulated by loading the record again from disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "device-agent/boot_slots.h"
#include "test_util.h"

#define SHA_B "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_A "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

static int setup(void **state)
{
    if (bc_test_scratch_setup(state, "boot", "data") != 0)
        return -1;
    bc_test_scratch *s = *state;
    bc_error err;
    if (mkdir(s->dir, 0700) != 0 || bc_boot_dir_make(s->dir, &err) != BC_OK)
        return -1;
    return 0;
}

static void fw_path(const bc_test_scratch *s, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/firmware/%s", s->dir, name);
}

static void write_image(const char *path, const char *version, const char *selftest)
{
    char text[256];
    snprintf(text, sizeof(text), "BODYCAM-FW 1\n{\"version\":\"%s\",\"selftest\":\"%s\"}\nrest",
             version, selftest);
    bc_test_write_file(path, text);
}

static bc_boot_record load(const bc_test_scratch *s)
{
    bc_boot_record rec;
    bool found = false;
    bc_error err;
    assert_int_equal(bc_boot_load(s->dir, "1.0.0", &rec, &found, &err), BC_OK);
    assert_true(found);
    return rec;
}

/* A factory camera updated to 1.1.0 in slot b (installed, not booted yet). */
static bc_boot_record installed(const bc_test_scratch *s)
{
    bc_boot_record rec;
    bool found = true;
    bc_error err;
    char image[512];
    fw_path(s, "download.img", image, sizeof(image));
    write_image(image, "1.1.0", "pass");
    assert_int_equal(bc_boot_load(s->dir, "1.0.0", &rec, &found, &err), BC_OK);
    assert_int_equal(bc_boot_install(s->dir, &rec, image, "1.1.0", SHA_B, true, &err), BC_OK);
    return rec;
}

static void test_fresh_is_factory(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec;
    bool found = true;
    bc_boot_outcome out;
    bc_error err;
    assert_int_equal(bc_boot_load(s->dir, "1.0.0", &rec, &found, &err), BC_OK);
    assert_false(found);
    assert_int_equal(rec.active, BC_BOOT_SLOT_A);
    assert_string_equal(bc_boot_active_version(&rec), "1.0.0");
    assert_string_equal(rec.slots[0].sha256, "");
    assert_false(rec.trial);
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    assert_int_equal(out, BC_BOOT_NORMAL);
    assert_false(bc_test_exists(s->dir, "firmware/boot.json")); /* nothing to write */
}

static void test_install_switches_to_inactive_slot(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec = installed(s);
    assert_int_equal(rec.active, BC_BOOT_SLOT_B);
    assert_int_equal(rec.previous, BC_BOOT_SLOT_A);
    assert_true(rec.trial);
    assert_int_equal(rec.tries, 0);
    assert_true(bc_test_exists(s->dir, "firmware/slot-b.img"));
    assert_false(bc_test_exists(s->dir, "firmware/download.img"));
    bc_boot_record disk = load(s);
    assert_int_equal(disk.active, BC_BOOT_SLOT_B);
    assert_true(disk.trial);
    assert_true(disk.resume_docked);
    assert_string_equal(disk.slots[1].version, "1.1.0");
    assert_string_equal(disk.slots[1].sha256, SHA_B);
    assert_string_equal(disk.slots[0].version, "1.0.0");
    bc_boot_header h;
    char slot[512];
    bc_error err;
    assert_int_equal(bc_boot_slot_path(s->dir, BC_BOOT_SLOT_B, slot, sizeof(slot), &err), BC_OK);
    assert_int_equal(bc_boot_header_read(slot, &h, &err), BC_OK);
    assert_string_equal(h.version, "1.1.0");
    /* Another install while on trial would overwrite the only good slot. */
    assert_int_equal(bc_boot_install(s->dir, &rec, NULL, "1.2.0", SHA_A, false, &err),
                     BC_ERR_STATE);
}

static void test_trial_boot_counts_before_running(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec = installed(s);
    bc_boot_outcome out;
    bc_error err;
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    assert_int_equal(out, BC_BOOT_TRIAL);
    bc_boot_record disk = load(s);
    assert_int_equal(disk.tries, 1); /* on disk before the new version runs */
    assert_true(disk.trial);
    assert_int_equal(disk.active, BC_BOOT_SLOT_B);
}

static void test_crash_in_trial_reverts(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec = installed(s);
    bc_boot_outcome out;
    bc_error err;
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    /* crash: the next start reads what is on disk */
    rec = load(s);
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    assert_int_equal(out, BC_BOOT_REVERTED);
    assert_int_equal(rec.active, BC_BOOT_SLOT_A);
    assert_string_equal(bc_boot_active_version(&rec), "1.0.0");
    bc_boot_record disk = load(s);
    assert_int_equal(disk.active, BC_BOOT_SLOT_A);
    assert_false(disk.trial);
    assert_int_equal(disk.report, BC_BOOT_REPORT_ROLLED_BACK);
    assert_string_equal(disk.report_version, "1.1.0");
    assert_non_null(strstr(disk.report_detail, "did not confirm"));
    /* the report stays until the event is queued */
    assert_int_equal(bc_boot_start(s->dir, &disk, &out, &err), BC_OK);
    assert_int_equal(out, BC_BOOT_NORMAL);
    assert_int_equal(bc_boot_report_done(s->dir, &disk, &err), BC_OK);
    assert_int_equal(load(s).report, BC_BOOT_REPORT_NONE);
}

static void test_confirm(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec = installed(s);
    bc_boot_outcome out;
    bc_error err;
    assert_int_equal(bc_boot_confirm(s->dir, &rec, &err), BC_OK);
    rec = load(s);
    assert_false(rec.trial);
    assert_int_equal(rec.report, BC_BOOT_REPORT_CONFIRMED);
    assert_string_equal(rec.report_version, "1.1.0");
    /* a confirmed slot survives restarts */
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    assert_int_equal(out, BC_BOOT_NORMAL);
    rec = load(s);
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    assert_int_equal(out, BC_BOOT_NORMAL);
    assert_int_equal(rec.active, BC_BOOT_SLOT_B);
    assert_int_equal(bc_boot_confirm(s->dir, &rec, &err), BC_ERR_STATE);
    /* the next update goes into slot a, the one not running */
    char image[512];
    fw_path(s, "download.img", image, sizeof(image));
    write_image(image, "1.2.0", "pass");
    assert_int_equal(bc_boot_install(s->dir, &rec, image, "1.2.0", SHA_A, false, &err), BC_OK);
    assert_int_equal(rec.active, BC_BOOT_SLOT_A);
    assert_int_equal(rec.previous, BC_BOOT_SLOT_B);
}

static void test_revert(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec = installed(s);
    bc_boot_outcome out;
    bc_error err;
    assert_int_equal(bc_boot_start(s->dir, &rec, &out, &err), BC_OK);
    assert_int_equal(bc_boot_revert(s->dir, &rec, "health check failed: selftest", &err), BC_OK);
    bc_boot_record disk = load(s);
    assert_int_equal(disk.active, BC_BOOT_SLOT_A);
    assert_false(disk.trial);
    assert_int_equal(disk.report, BC_BOOT_REPORT_ROLLED_BACK);
    assert_string_equal(disk.report_detail, "health check failed: selftest");
    assert_int_equal(bc_boot_revert(s->dir, &disk, "again", &err), BC_ERR_STATE);
}

static void test_damaged_record_falls_back(void **state)
{
    bc_test_scratch *s = *state;
    bc_boot_record rec = installed(s);
    (void)rec;
    char path[512], slot_a[512];
    fw_path(s, "boot.json", path, sizeof(path));
    fw_path(s, "slot-a.img", slot_a, sizeof(slot_a));
    write_image(slot_a, "1.3.0", "pass"); /* slot a once received an update */
    bc_test_write_file(path, "{\"v\":1,\"active\":\"b\",\"previ");
    bool found = true;
    bc_error err;
    assert_int_not_equal(bc_boot_load(s->dir, "1.0.0", &rec, &found, &err), BC_OK);
    assert_false(found);
    assert_non_null(strstr(err.text, "damaged"));
    assert_int_equal(rec.active, BC_BOOT_SLOT_A);
    assert_false(rec.trial);
    assert_string_equal(bc_boot_active_version(&rec), "1.3.0");
    /* the caller repairs it with the safe record */
    assert_int_equal(bc_boot_save(s->dir, &rec, &err), BC_OK);
    bc_boot_record disk = load(s);
    assert_int_equal(disk.active, BC_BOOT_SLOT_A);
    /* a record that names an empty active slot is damaged too */
    bc_test_write_file(path,
                       "{\"v\":1,\"active\":\"b\",\"previous\":\"a\",\"trial\":false,"
                       "\"tries\":0,\"resume\":\"standby\",\"slots\":{\"a\":{\"version\":"
                       "\"1.0.0\",\"sha256\":\"\"},\"b\":{\"version\":\"\",\"sha256\":\"\"}}}");
    assert_int_equal(bc_boot_load(s->dir, "1.0.0", &rec, &found, &err), BC_ERR_INVAL);
    assert_int_equal(rec.active, BC_BOOT_SLOT_A);
}

static void test_header_parse(void **state)
{
    (void)state;
    bc_boot_header h;
    bc_error err;
    const char *ok = "BODYCAM-FW 1\n{\"version\":\"2.0\"}\n\x01\x02";
    assert_int_equal(bc_boot_header_parse(ok, strlen(ok), &h, &err), BC_OK);
    assert_string_equal(h.version, "2.0");
    assert_int_equal(h.selftest, BC_BOOT_SELFTEST_PASS);
    const char *crash = "BODYCAM-FW 1\n{\"version\":\"2.0\",\"selftest\":\"crash\"}\n";
    assert_int_equal(bc_boot_header_parse(crash, strlen(crash), &h, &err), BC_OK);
    assert_int_equal(h.selftest, BC_BOOT_SELFTEST_CRASH);
    const char *bad[] = {
        "BODYCAM-FW 2\n{\"version\":\"2.0\"}\n",
        "BODYCAM-FW 1\n{\"version\":\"2.0\"}",
        "BODYCAM-FW 1\n{\"version\":\"x\"}\n",
        "BODYCAM-FW 1\n{\"version\":\"2.0\",\"selftest\":\"maybe\"}\n",
        "garbage",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(bc_boot_header_parse(bad[i], strlen(bad[i]), &h, &err), BC_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_is_factory, setup, bc_test_scratch_teardown),
        cmocka_unit_test_setup_teardown(test_install_switches_to_inactive_slot, setup,
                                        bc_test_scratch_teardown),
        cmocka_unit_test_setup_teardown(test_trial_boot_counts_before_running, setup,
                                        bc_test_scratch_teardown),
        cmocka_unit_test_setup_teardown(test_crash_in_trial_reverts, setup,
                                        bc_test_scratch_teardown),
        cmocka_unit_test_setup_teardown(test_confirm, setup, bc_test_scratch_teardown),
        cmocka_unit_test_setup_teardown(test_revert, setup, bc_test_scratch_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_falls_back, setup,
                                        bc_test_scratch_teardown),
        cmocka_unit_test(test_header_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
