/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Helpers of the command-line tools that know nothing of the engine: size and
 * id parsing, human and JSON formatting, full-length I/O on descriptors.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Parses a decimal byte count with an optional K, M, G or T suffix (powers of 1024; "KiB" and "k"
 * also accepted): -EINVAL for anything else (signs, spaces, hex, fractions), -ERANGE on overflow. */
int tool_parse_size(const char *s, uint64_t *ret);

/* Parses a snapshot id: a plain decimal number in [1, UINT32_MAX]; -EINVAL otherwise. */
int tool_parse_id(const char *s, uint32_t *ret);

/* Parses a size or "unbounded" (returned as UINT64_MAX). */
int tool_parse_limit(const char *s, uint64_t *ret);

/* Formats BYTES as "512B", "64K", "1.5G" into BUF; returns BUF. */
const char *tool_format_bytes(char *buf, size_t len, uint64_t bytes);
#define FORMAT_BYTES(b) tool_format_bytes((char[32]){}, 32, (b))

/* Formats a CLOCK_REALTIME time in ns as RFC 3339, local time with a numeric offset; returns BUF. */
const char *tool_format_rfc3339(char *buf, size_t len, uint64_t ns);
#define FORMAT_RFC3339(ns) tool_format_rfc3339((char[48]){}, 48, (ns))

/* Writes S as a JSON string literal, escaped. */
void tool_json_string(FILE *f, const char *s);

/* Reads up to LEN bytes, stopping early only at end of file or when a signal interrupts a read
 * after some bytes arrived; returns the count, or a negative errno (-EINTR if interrupted before
 * any byte). */
ssize_t tool_read_full(int fd, void *buf, size_t len);

/* Writes all of BUF, sequentially or at OFF; negative errno on failure. */
int tool_write_full(int fd, const void *buf, size_t len);
int tool_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Size of a regular file or block device open as FD; -ENOTSUP for pipes, terminals and the like. */
int tool_input_size(int fd, uint64_t *ret);

/* True if all LEN bytes of BUF are zero. */
bool tool_is_zero(const void *buf, size_t len);
