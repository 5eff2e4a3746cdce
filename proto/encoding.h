/*
 * encoding.h - hex, base64, big-endian integers and constant-time comparison.
 *
 * Base64 is standard (RFC 4648, with padding, no line breaks), done by
 * OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock; decoding refuses anything that
 * is not canonical base64 (bad characters, bad padding, wrong length).
 */
#ifndef BC_PROTO_ENCODING_H
#define BC_PROTO_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

/* Writes 2*len lowercase hex digits and a NUL into out (out_size >= 2*len+1).
 * BC_ERR_INVAL if out is too small. */
bc_status bc_hex_encode(const uint8_t *in, size_t len, char *out, size_t out_size);

/* Decodes exactly out_len bytes from a string of exactly 2*out_len hex digits
 * (either case). BC_ERR_PARSE on any other input. */
bc_status bc_hex_decode(const char *in, uint8_t *out, size_t out_len);

/* Size of the base64 text (without NUL) for len bytes. */
size_t bc_base64_encoded_len(size_t len);

/* Encodes into out (out_size >= bc_base64_encoded_len(len) + 1, NUL-terminated). */
bc_status bc_base64_encode(const uint8_t *in, size_t len, char *out, size_t out_size);

/* Decodes base64 text of in_len characters into out (up to out_size bytes);
 * *out_len receives the decoded length. BC_ERR_PARSE for malformed input,
 * BC_ERR_TOO_BIG when it does not fit. */
bc_status bc_base64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                           size_t *out_len);

/* Big-endian ("network order") fixed-size integers, as every binary format
 * of the project writes them (recordings, the outbox, signed canonical
 * bytes, synthetic frames): store writes exactly 4 or 8 bytes at out, load
 * reads exactly 4 or 8 bytes at in. No alignment is needed. */
void bc_be32_store(uint8_t out[4], uint32_t v);
void bc_be64_store(uint8_t out[8], uint64_t v);
uint32_t bc_be32_load(const uint8_t in[4]);
uint64_t bc_be64_load(const uint8_t in[8]);

/* 1 when the two buffers are equal, 0 otherwise; time depends on len only. */
int bc_equal_ct(const void *a, const void *b, size_t len);

#endif
