/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The FUSE export of engine volumes: one FUSE mount whose tree is
 *
 *     MOUNTPOINT/volumes/NAME   a live volume, a read-write regular file of the volume's size
 *     MOUNTPOINT/shadows/ID     a snapshot, a read-only regular file of the volume's size
 *
 * over which a loop device (losetup --direct-io=on) carries a real filesystem. Requests are
 * served by a fixed pool of worker threads through libfuse's low-level API. Reads and writes go
 * to the engine; fsync and flush become engine_flush() and are durable before their reply;
 * fallocate(PUNCH_HOLE) becomes engine_discard() and fallocate(ZERO_RANGE) engine_write_zeroes();
 * anything that would change a shadow, a file's size or the tree fails (EROFS, EPERM).
 *
 * The export never opens, closes or snapshots volumes: the caller owns every eng_volume and must
 * keep it open while it is exported (remove it, or free the export, before closing it).
 * All functions may be called from any thread, except that fuse_export_free() must not run
 * concurrently with the others. None of them may be called from a FUSE request (none are: the
 * export calls nothing back but the on_exit hook).
 *
 * Every function returns a negative errno on failure and >= 0 on success; ret_* parameters are
 * untouched on failure.
 */

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct fuse_export fuse_export;

#define FUSE_EXPORT_WORKERS_DEFAULT 16u
#define FUSE_EXPORT_WORKERS_MAX 256u
#define FUSE_EXPORT_MAX_IO_DEFAULT (1024u * 1024u)

/* Zero-initialised means the defaults chosen by measurement (see fuse-export.c). */
struct fuse_export_params {
        unsigned n_workers; /* threads serving requests; 0: FUSE_EXPORT_WORKERS_DEFAULT */
        bool page_cache; /* cache file data in the FUSE page cache (default: FOPEN_DIRECT_IO) */
        bool writeback_cache; /* with page_cache: let the kernel gather buffered writes */
        bool splice; /* move request data through pipes (splice) instead of read/writev */
        uint32_t max_io; /* largest read/write request, 4 KiB..1 MiB; 0: 1 MiB */
        unsigned max_background; /* asynchronous direct I/O requests in flight; 0: 128 */
        /* Called once, from a worker thread, if serving ends by itself (the mount went away or the
         * device failed) rather than through fuse_export_free(); ERROR is 0 or a negative errno. */
        void (*on_exit)(void *userdata, int error);
        void *userdata;
};

/* Counters since fuse_export_new(), for tests and benchmarks. */
struct fuse_export_stats {
        uint64_t reads, writes, flushes, discards, zeroes;
        uint64_t read_bytes, write_bytes;
        uint64_t errors; /* requests answered with an error by the engine */
};

/* Mounts an empty export (volumes/ and shadows/) on the existing directory MOUNTPOINT; requests
 * wait in the kernel until fuse_export_start(). -ENODEV if /dev/fuse is missing, -EACCES if it may
 * not be opened, -ENOENT or -ENOTDIR for a bad mount point, -EINVAL for bad parameters, -EIO if the
 * mount itself failed (libfuse logs why). P may be NULL (defaults). */
int fuse_export_new(const char *mountpoint, const struct fuse_export_params *p, fuse_export **ret);

/* Starts the worker threads; -EALREADY if started. */
int fuse_export_start(fuse_export *e);

/* Adds volumes/NAME serving V read-write; -EEXIST if the name is taken, -EINVAL for a name that
 * is empty, longer than 255 bytes, "." or "..", or holds a '/'. */
int fuse_export_add_volume(fuse_export *e, const char *name, eng_volume *v);

/* Removes volumes/NAME; -ENOENT if absent, -EBUSY if the file stays open (e.g. by a loop device)
 * for a second (the kernel releases a closed file asynchronously). Once it returns, the export no
 * longer touches the volume. */
int fuse_export_remove_volume(fuse_export *e, const char *name);

/* Adds shadows/ID serving snapshot SNAP_ID of V read-only; names as fuse_export_add_volume(),
 * -ENOENT if V has no such snapshot. */
int fuse_export_add_shadow(fuse_export *e, const char *id, eng_volume *v, uint32_t snap_id);

/* Removes shadows/ID; -ENOENT if absent, -EBUSY if the file stays open for a second. */
int fuse_export_remove_shadow(fuse_export *e, const char *id);

/* Number of exported files currently held open (by loop devices or other programs). */
unsigned fuse_export_open_files(fuse_export *e);

/* Copies the request counters into RET. */
int fuse_export_get_stats(fuse_export *e, struct fuse_export_stats *ret);

/* Stops the workers (each finishes the request it is serving), unmounts and frees; accepts NULL.
 * Files still open (loop devices) fail their I/O from then on. Volumes stay open. */
void fuse_export_free(fuse_export *e);
