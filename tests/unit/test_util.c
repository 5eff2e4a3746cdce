/*
 * test_util.c - the unit tests' shared helpers (see test_util.h).
 *
 * The tree removal walks with lstat, not stat: a symbolic link planted in a
 * test directory (or left by a module under test) is unlinked as a link,
 * so the teardown never descends into, or deletes, what it points to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/sign.h"
#include "test_util.h"

bc_status bc_test_tempdir(char *out, size_t size, const char *tag)
{
    int n = snprintf(out, size, "/tmp/bc-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= size)
        return BC_ERR_TOO_BIG;
    if (mkdtemp(out) == NULL)
        return BC_ERR_IO;
    return BC_OK;
}

void bc_test_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[1024];
        struct stat st;
        int n = snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(p))
            continue;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            bc_test_remove_tree(p);
        else
            unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

bc_status bc_test_x25519_pair(EVP_PKEY **priv, EVP_PKEY **pub)
{
    uint8_t raw[BC_RAW_KEY_LEN];
    *priv = NULL;
    *pub = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (key == NULL || bc_key_raw_public(key, raw) != BC_OK ||
        bc_key_from_raw_public(EVP_PKEY_X25519, raw, pub) != BC_OK) {
        EVP_PKEY_free(key);
        *pub = NULL;
        return BC_ERR_CRYPTO;
    }
    *priv = key;
    return BC_OK;
}

void bc_test_write_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        fail_msg("cannot create '%s'", path);
    if (len > 0)
        assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

void bc_test_write_file(const char *path, const char *text)
{
    bc_test_write_bytes(path, text, strlen(text));
}

uint8_t *bc_test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open '%s'", path);
    struct stat st;
    assert_int_equal(fstat(fileno(fp), &st), 0);
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, size, fp), size);
    fclose(fp);
    buf[size] = '\0';
    *len = size;
    return buf;
}

bool bc_test_exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    if (dir == NULL)
        return lstat(name, &st) == 0;
    int n = snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(p));
    return lstat(p, &st) == 0;
}

size_t bc_test_count_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot open directory '%s'", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

uint8_t *bc_test_pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
    return p;
}
