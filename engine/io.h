/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The engine's file I/O, behind a table of functions so that tests can put a
 * fault-injecting layer (dropped or torn unsynced writes, failing syncs) under
 * a real volume. eng_io_posix is the real thing: plain system calls.
 *
 * Every function returns a negative errno on failure. Short reads and writes
 * are finished by the layer itself: pread/pwrite return 0 or an error, except
 * that pread past end of file fills zeros.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct eng_io {
        void *userdata;
        /* Opens PATH with open(2) FLAGS and MODE; returns a descriptor (>= 0). */
        int (*open)(const struct eng_io *io, const char *path, int flags, mode_t mode);
        int (*close)(const struct eng_io *io, int fd);
        int (*pread)(const struct eng_io *io, int fd, void *buf, size_t len, uint64_t off);
        int (*pwrite)(const struct eng_io *io, int fd, const void *buf, size_t len, uint64_t off);
        /* Makes the file's data (and the metadata needed to read it) durable. */
        int (*sync)(const struct eng_io *io, int fd);
        int (*truncate)(const struct eng_io *io, int fd, uint64_t size);
        /* Makes [off, off+len) read as zeros, deallocating where it can. */
        int (*punch)(const struct eng_io *io, int fd, uint64_t off, uint64_t len);
        /* Shares SRC's extents [soff, soff+len) at DST's doff (FICLONERANGE); -EOPNOTSUPP if not possible.
         */
        int (*clone)(const struct eng_io *io, int src, uint64_t soff, int dst, uint64_t doff, uint64_t len);
        /* Atomically replaces TO by FROM and makes the rename durable. */
        int (*rename)(const struct eng_io *io, const char *from, const char *to);
        /* Size of a regular file or block device. */
        int (*size)(const struct eng_io *io, int fd, uint64_t *ret_size);
};

extern const struct eng_io eng_io_posix;
