/*
 * encoding.c - hex and base64 through OpenSSL, with canonical-input checks;
 * big-endian integers.
 *
 * OpenSSL's decoders are lenient where a wire format must not be: the
 * base64 block decoder skips surrounding whitespace, accepts '=' in the
 * middle ("Q=Q=") and ignores the unused low bits of the last symbol ("QR=="
 * and "QQ==" both decode to "A"). Two texts for one value would let a
 * signed or hashed field be re-encoded unnoticed, so decoding first checks
 * the alphabet and the padding, lets OpenSSL decode, and then re-encodes the
 * last group and requires it to equal the input.
 *
 * Hex digits are checked with OPENSSL_hexchar2int before the buffer decoder
 * runs, so a bad digit never leaves an entry on OpenSSL's error queue (a
 * stale entry there can make a later, unrelated TLS call look failed).
 */
#include "proto/encoding.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

bc_status bc_hex_encode(const uint8_t *in, size_t len, char *out, size_t out_size)
{
    if (out == NULL || (in == NULL && len > 0) || len > (SIZE_MAX - 1) / 2 ||
        out_size < 2 * len + 1)
        return BC_ERR_INVAL;
    if (len == 0) {
        out[0] = '\0';
        return BC_OK;
    }
    size_t written = 0;
    if (!OPENSSL_buf2hexstr_ex(out, out_size, &written, in, len, '\0'))
        return BC_ERR_INVAL;
    /* OpenSSL writes upper case; the wire format is lower case. */
    for (size_t i = 0; i < 2 * len; i++) {
        if (out[i] >= 'A' && out[i] <= 'F')
            out[i] = (char)(out[i] - 'A' + 'a');
    }
    return BC_OK;
}

bc_status bc_hex_decode(const char *in, uint8_t *out, size_t out_len)
{
    if (in == NULL || (out == NULL && out_len > 0) || out_len > (SIZE_MAX - 1) / 2)
        return BC_ERR_PARSE;
    if (strnlen(in, 2 * out_len + 1) != 2 * out_len)
        return BC_ERR_PARSE;
    for (size_t i = 0; i < 2 * out_len; i++) {
        if (OPENSSL_hexchar2int((unsigned char)in[i]) < 0)
            return BC_ERR_PARSE;
    }
    if (out_len == 0)
        return BC_OK;
    size_t written = 0;
    if (!OPENSSL_hexstr2buf_ex(out, out_len, &written, in, '\0') || written != out_len)
        return BC_ERR_PARSE;
    return BC_OK;
}

size_t bc_base64_encoded_len(size_t len)
{
    if (len > SIZE_MAX / 4 * 3 - 3)
        return SIZE_MAX;
    return (len / 3 + (len % 3 != 0)) * 4;
}

bc_status bc_base64_encode(const uint8_t *in, size_t len, char *out, size_t out_size)
{
    if (out == NULL || (in == NULL && len > 0))
        return BC_ERR_INVAL;
    if (len > (size_t)INT_MAX / 4 * 3)
        return BC_ERR_TOO_BIG;
    size_t need = bc_base64_encoded_len(len);
    if (out_size < need + 1)
        return BC_ERR_INVAL;
    if (len == 0) {
        out[0] = '\0';
        return BC_OK;
    }
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    if (n < 0 || (size_t)n != need)
        return BC_ERR_CRYPTO;
    return BC_OK;
}

/* 1 when c is outside the alphabet (A-Z a-z 0-9 + /), without branches. */
static unsigned not_base64_char(unsigned char c)
{
    unsigned ok = ((unsigned char)(c - 'A') < 26u) | ((unsigned char)(c - 'a') < 26u) |
                  ((unsigned char)(c - '0') < 10u) | (c == '+') | (c == '/');
    return ok ^ 1u;
}

/* 1 when all n bytes are in the alphabet. The check runs on every chunk of
 * every upload (broker plugin, vault): an early exit per byte costs a
 * mispredicted branch on random data, so bytes are OR-ed in fixed blocks,
 * which the compiler turns into vector code, and tested once per block. */
static int base64_alphabet_only(const char *in, size_t n)
{
    enum { BLOCK = 64 };
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        unsigned bad = 0;
        for (size_t k = 0; k < BLOCK; k++)
            bad |= not_base64_char(p[i + k]);
        if (bad != 0)
            return 0;
    }
    unsigned bad = 0;
    for (; i < n; i++)
        bad |= not_base64_char(p[i]);
    return bad == 0;
}

/* Decodes the final group into out (3 - pad bytes) and checks that it is
 * the one canonical spelling of those bytes. */
static bc_status decode_last_group(const char *group, size_t pad, uint8_t *out)
{
    unsigned char bytes[3];
    if (EVP_DecodeBlock(bytes, (const unsigned char *)group, 4) != 3)
        return BC_ERR_PARSE;
    char again[5];
    if (EVP_EncodeBlock((unsigned char *)again, bytes, (int)(3 - pad)) != 4 ||
        memcmp(again, group, 4) != 0)
        return BC_ERR_PARSE;
    memcpy(out, bytes, 3 - pad);
    return BC_OK;
}

bc_status bc_base64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                           size_t *out_len)
{
    if (out_len == NULL || (in == NULL && in_len > 0) || (out == NULL && out_size > 0))
        return BC_ERR_INVAL;
    *out_len = 0;
    if (in_len == 0)
        return BC_OK;
    if (in_len % 4 != 0)
        return BC_ERR_PARSE;
    if (in_len > (size_t)INT_MAX)
        return BC_ERR_TOO_BIG;
    size_t pad = (in[in_len - 1] == '=') + (in[in_len - 1] == '=' && in[in_len - 2] == '=');
    if (!base64_alphabet_only(in, in_len - pad))
        return BC_ERR_PARSE;
    size_t decoded = in_len / 4 * 3 - pad;
    if (decoded > out_size)
        return BC_ERR_TOO_BIG;
    size_t body = in_len - 4;
    if (body > 0 &&
        EVP_DecodeBlock(out, (const unsigned char *)in, (int)body) != (int)(body / 4 * 3))
        return BC_ERR_PARSE;
    bc_status rc = decode_last_group(in + body, pad, out + body / 4 * 3);
    if (rc != BC_OK)
        return rc;
    *out_len = decoded;
    return BC_OK;
}

int bc_equal_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void bc_be32_store(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

void bc_be64_store(uint8_t out[8], uint64_t v)
{
    bc_be32_store(out, (uint32_t)(v >> 32));
    bc_be32_store(out + 4, (uint32_t)v);
}

uint32_t bc_be32_load(const uint8_t in[4])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

uint64_t bc_be64_load(const uint8_t in[8])
{
    return (uint64_t)bc_be32_load(in) << 32 | bc_be32_load(in + 4);
}
