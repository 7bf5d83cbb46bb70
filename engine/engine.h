/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The lvss copy-on-write snapshot engine.
 *
 * A volume is a backing image (a regular file or a block device) written in
 * place, plus a diff area (chunk-sized slots holding preserved data) and a
 * metadata journal, all kept in one volume directory:
 *
 *     DIR/meta    superblock + append-only journal of framed, checksummed
 *                 records (see journal.h for the byte layout)
 *     DIR/diff    the diff area: slot N holds chunk_size bytes at N*chunk_size
 *     DIR/image   the live data, unless an existing file or device was adopted
 *
 * Snapshots are numbered by a per-volume sequence that only grows. A chunk's
 * old content is preserved at most once per live write, whatever the number
 * of snapshots: the preserved copy is shared by every snapshot taken since the
 * chunk last changed (an "exception" covering the range of snapshot ids
 * [lo, hi]).
 *
 * Crash rules. For a persistent snapshot, the preserved copy is made durable
 * (diff area synced, then its journal record synced) before the live write
 * that overwrites the original is issued; concurrent writers share one commit.
 * A snapshot's creation syncs the image first, so a persistent snapshot that
 * exists after recovery reads exactly its point in time. A journal whose
 * damage cannot be explained by a torn last commit marks every persistent
 * snapshot invalid: open refuses such a volume until engine_volume_repair, and
 * invalid snapshots are listed but never read.
 * Non-persistent snapshots are never journaled and are gone at the next open.
 *
 * Every function returns a negative errno on failure and >= 0 on success.
 * Output parameters (ret_*) are untouched on failure. All functions on one
 * volume may be called from many threads at once, except engine_volume_close.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct eng_volume eng_volume;
struct eng_io;

#define ENG_CHUNK_MIN 4096u
#define ENG_CHUNK_MAX (1024u * 1024u)
#define ENG_CHUNK_DEFAULT                                                                                   \
        (16u * 1024u) /* bench/RESULTS.md: best random first writes; ~4 MiB heap per GiB preserved */
#define ENG_MAX_SNAPSHOTS 512u
#define ENG_LABEL_MAX 63u
#define ENG_DIFF_UNBOUNDED UINT64_MAX

/* What a CoW does when the diff area has reached its maximum size. */
typedef enum eng_policy {
        ENG_POLICY_PROTECT_VOLUME = 0, /* delete the oldest snapshots; the live write succeeds */
        ENG_POLICY_PROTECT_SNAPSHOTS = 1 /* fail the live write with -ENOSPC; keep the snapshots */
} eng_policy;

typedef enum eng_snap_state {
        ENG_SNAP_VALID = 0,
        ENG_SNAP_INVALID = 1 /* could not be proven intact after a crash; reads fail with -EIO */
} eng_snap_state;

struct eng_create_params {
        uint64_t size; /* bytes, multiple of 512; 0 with an adopted image: the image's size */
        uint32_t chunk_size; /* power of two in [ENG_CHUNK_MIN, ENG_CHUNK_MAX]; 0: ENG_CHUNK_DEFAULT */
        const char *image; /* adopt this file or block device; NULL: create DIR/image (sparse) */
        uint64_t diff_max; /* maximum bytes of diff area; 0 or ENG_DIFF_UNBOUNDED: unbounded */
        eng_policy policy;
};

struct eng_volume_info {
        uint64_t size;
        uint32_t chunk_size;
        uint32_t n_snapshots;
        uint64_t diff_used; /* bytes of slots holding preserved data (and slots awaiting reuse) */
        uint64_t diff_max; /* ENG_DIFF_UNBOUNDED when unbounded */
        eng_policy policy;
        bool reflink; /* preserving a chunk clones extents instead of copying */
        uint64_t cow_copies; /* chunks preserved since open */
        uint64_t snapshots_reclaimed; /* snapshots deleted to make room since open */
        uint64_t exceptions; /* preserved chunks currently mapped */
        uint64_t mem_bytes; /* heap used by the chunk maps (exceptions and per-chunk table) */
        char image[4096];
};

struct eng_snap_info {
        uint32_t id;
        char label[ENG_LABEL_MAX + 1];
        uint64_t created_ns; /* CLOCK_REALTIME */
        bool persistent;
        eng_snap_state state;
};

struct eng_snap_params {
        bool persistent;
        const char *label; /* free text for the caller (e.g. a shadow GUID), may be NULL */
};

/* Creates a new volume in DIR (created if missing, must not hold a volume) and opens it. */
int engine_volume_create(const char *dir, const struct eng_create_params *p, eng_volume **ret);

/* Opens the volume in DIR, recovering its journal after a crash; takes an exclusive lock on it.
 * -EUCLEAN, changing nothing, if journal records are damaged beyond a torn last commit (see
 * engine_volume_repair); -EBADMSG if the superblock is not an lvss one or fails its checksum;
 * -EPROTONOSUPPORT for another format version; -EWOULDBLOCK if another opener holds it. */
int engine_volume_open(const char *dir, eng_volume **ret);

/* Makes a volume whose open gave -EUCLEAN (damaged records) openable again: keeps the meta file
 * as DIR/meta.damaged, keeps listing every snapshot it can still read about but marks them
 * invalid, forgets the others, and writes clean metadata. The live data is not touched. A
 * superblock that fails its checksum cannot be repaired (-EBADMSG). */
int engine_volume_repair(const char *dir);

/* Like the two above, with all file I/O through IO (for fault injection); IO must outlive the volume. */
int engine_volume_create_io(const char *dir, const struct eng_create_params *p, const struct eng_io *io,
                            eng_volume **ret);
int engine_volume_open_io(const char *dir, const struct eng_io *io, eng_volume **ret);

/* Flushes and closes; accepts NULL. Non-persistent snapshots are dropped. */
void engine_volume_close(eng_volume *v);

/* Closes without flushing anything, as if the process had died (for tests); accepts NULL. */
void engine_volume_abandon(eng_volume *v);

/* Fills INFO with the volume's current figures. */
int engine_volume_info(eng_volume *v, struct eng_volume_info *ret_info);

/* Sets the diff area's maximum (ENG_DIFF_UNBOUNDED: none) and policy; shrinking below use reclaims
 * the oldest snapshots under PROTECT_VOLUME and fails with -ENOSPC under PROTECT_SNAPSHOTS. */
int engine_set_limit(eng_volume *v, uint64_t diff_max, eng_policy policy);

/* Turns the reflink path off (copies only) or back on; -EOPNOTSUPP to enable where the diff area
 * cannot share extents with the image. */
int engine_set_reflink(eng_volume *v, bool enable);

/* Live volume I/O at any byte offset and length inside the volume; -EINVAL outside it.
 * A write returns once the data is in the image (not necessarily durable). */
int engine_read(eng_volume *v, void *buf, size_t len, uint64_t off);
int engine_write(eng_volume *v, const void *buf, size_t len, uint64_t off);
/* Makes every write that returned before this call durable. */
int engine_flush(eng_volume *v);
/* Both make the range read as zeros; discard may deallocate it in the image. */
int engine_write_zeroes(eng_volume *v, size_t len, uint64_t off);
int engine_discard(eng_volume *v, size_t len, uint64_t off);

/* Takes a snapshot of the live volume as it is now; its id goes to RET_ID. -EMLINK past
 * ENG_MAX_SNAPSHOTS. Time does not depend on the volume's size. */
int engine_snapshot_create(eng_volume *v, const struct eng_snap_params *p, uint32_t *ret_id);

/* Deletes a snapshot (any of them); -ENOENT if there is none with that id, -EBUSY while a revert
 * to it runs. */
int engine_snapshot_delete(eng_volume *v, uint32_t id);

/* Reads a snapshot; -ENOENT if it does not exist (or is deleted during the read), -EIO if invalid. */
int engine_snapshot_read(eng_volume *v, uint32_t id, void *buf, size_t len, uint64_t off);

/* Lists the snapshots, oldest first, in a new array the caller frees. */
int engine_snapshot_list(eng_volume *v, struct eng_snap_info **ret, size_t *ret_n);

/* Snapshot metadata by id; -ENOENT if none. */
int engine_snapshot_get(eng_volume *v, uint32_t id, struct eng_snap_info *ret_info);

/* Changed-block tracking: sets bit N of a new bitmap (caller frees; ceil(n_chunks/64) words) for
 * every chunk N that may differ between snapshot FROM and snapshot TO (TO == 0: the live volume).
 * FROM must be older than TO. Cost grows with preserved chunks, not with the volume's size. */
int engine_changed_chunks(eng_volume *v, uint32_t from, uint32_t to, uint64_t **ret_bitmap,
                          uint64_t *ret_n_chunks);

/* Makes the live volume's content equal to snapshot ID's (other snapshots keep theirs; ID itself is
 * never reclaimed for room meanwhile). The caller keeps other writers away; a crash midway leaves
 * a mix, which a second revert completes. */
int engine_revert(eng_volume *v, uint32_t id);

/* Holds writes: waits up to TIMEOUT_MS for writes in flight to drain (-ETIMEDOUT, no hold, if they
 * do not); new writes then wait until engine_release or until TIMEOUT_MS after the hold began,
 * when the hold lifts by itself. -EBUSY if already held. */
int engine_hold(eng_volume *v, uint32_t timeout_ms);

/* Releases a hold; -ETIMEDOUT if it had already lifted by its deadline (the point in time may have
 * been broken), -ENOENT if there was none. */
int engine_release(eng_volume *v);
