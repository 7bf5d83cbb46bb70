/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The volume object shared by volume.c (open, recovery, live I/O, CoW,
 * commits, holds) and snapshot.c (snapshot lifecycle and reads).
 *
 * Locking, outermost first:
 *   stripe[chunk % ENG_STRIPES]  serialises writers of one chunk, across its
 *                                CoW, commit wait and live write
 *   lock                         every field below marked (L); held briefly,
 *                                never across I/O except where noted
 * Snapshot reads take no stripe: they look up under LOCK, read, and look up
 * again (see snapshot.c). The commit leader does its I/O without LOCK.
 */

#include <pthread.h>
#include <stdio.h>

#include "engine/chunkmap.h"
#include "engine/diffarea.h"
#include "engine/engine.h"
#include "engine/io.h"
#include "engine/journal.h"

#define ENG_STRIPES 1024u

struct eng_snap {
        uint32_t id;
        bool persistent;
        bool deleting; /* its delete record is being committed: still served */
        unsigned pins; /* reverts reading it: never reclaimed meanwhile */
        eng_snap_state state;
        uint64_t created_ns;
        char label[ENG_LABEL_MAX + 1];
};

struct eng_volume {
        const struct eng_io *io;
        char *dir;
        char image_path[JR_PATH_MAX]; /* as stored: empty means DIR/image */
        int image_fd, diff_fd, meta_fd, lock_fd;
        uint64_t size;
        uint32_t chunk_size;
        unsigned chunk_shift;
        uint64_t n_chunks;
        bool reflink_ok; /* the probe at open succeeded */

        pthread_mutex_t lock;
        pthread_mutex_t stripe[ENG_STRIPES];

        /* (L) snapshots, sorted by id; n_persistent_before[i]: persistent valid ones in [0, i) */
        struct eng_snap *snaps;
        size_t n_snaps;
        uint32_t *n_persistent_before;
        uint32_t next_id;
        bool reflink_on;
        struct chunkmap map;
        struct diffarea da;
        uint64_t diff_max;
        eng_policy policy;

        /* (L) journal: records wait in PENDING as batch PENDING_GEN; COMMITTED_GEN is durable */
        struct jr_frame pending, spare;
        uint64_t pending_gen, committed_gen;
        bool pending_image_sync; /* the batch holds a snapshot creation */
        bool committing;
        pthread_cond_t commit_cond;
        uint64_t first_seq, next_seq; /* frame sequence numbers */
        uint64_t meta_end; /* where the next frame goes */
        int journal_error; /* sticky: a commit failed */
        uint64_t drop_epoch; /* bumped when every snapshot is dropped at once */
        uint64_t compact_after; /* no compaction before the journal reaches this size */

        /* (L) hold */
        bool held, hold_expired;
        uint64_t hold_deadline; /* CLOCK_MONOTONIC ns */
        unsigned inflight;
        unsigned quiesce; /* snapshot creations waiting for writes in flight */
        pthread_cond_t hold_cond;

        /* (L) statistics */
        uint64_t cow_copies, reclaimed;
};

uint64_t eng_now_mono(void);

static inline void eng_path_join(char *buf, size_t n, const char *dir, const char *name) {
        snprintf(buf, n, "%s/%s", dir, name);
}

/* (L held, no commit running) Rewrites DIR/meta as one checkpoint of the durable state; the
 * pending batch becomes durable with it. */
int eng_checkpoint_locked(eng_volume *v);

/* (L held) Index of the first snapshot with id >= ID. */
size_t eng_snap_lower(const eng_volume *v, uint32_t id);
/* (L held) The snapshot with this id, or NULL. */
struct eng_snap *eng_snap_find(eng_volume *v, uint32_t id);
/* (L held) Makes room for N snapshots in the list. */
int eng_snaps_reserve(eng_volume *v, size_t n);
/* (L held) Recomputes n_persistent_before after a change to the list. */
void eng_snaps_changed(eng_volume *v);
/* (L held) Whether a valid snapshot has an id in [lo, hi]. */
bool eng_range_live(const eng_volume *v, uint32_t lo, uint32_t hi);

/* (L held) Stops new writes at the gate and waits for those in flight to finish, so that a
 * snapshot taken meanwhile cannot change afterwards; end lets writes in again. */
void eng_quiesce_begin_locked(eng_volume *v);
void eng_quiesce_end_locked(eng_volume *v);

/* (L held) Queues a journal record in the pending batch; returns its generation. */
int eng_journal_add(eng_volume *v, const struct jr_record *r, uint64_t *ret_gen);
/* (L held, may drop and retake L) Waits until generation GEN is durable, leading the commit if
 * nobody is. Then moves freed slots to the free list and punches them. */
int eng_commit_wait(eng_volume *v, uint64_t gen);

/* (L held, may drop and retake L) Returns once the slots pending reuse are free (commits them
 * if their generation is not durable yet). */
int eng_pending_release_wait(eng_volume *v);

/* (L held, may drop and retake L) Deletes snapshot ID: for a persistent one, its delete record is
 * made durable first, and until then writers keep preserving its chunks (else a power loss could
 * bring it back with overwritten data). Its exceptions' slots are then pending until generation
 * *RET_GEN is durable. -ENOENT if none (or already being deleted), -EBUSY if pinned. */
int eng_snap_remove_locked(eng_volume *v, uint32_t id, uint64_t *ret_gen);

/* (L held, may drop and retake L) Deletes the oldest snapshot that is neither pinned nor being
 * deleted, to make room. Returns 0 having waited instead if only deletions in progress stand in
 * the way (the caller looks again), -ENOSPC if nothing can be reclaimed. */
int eng_snap_reclaim_oldest_locked(eng_volume *v, uint64_t *ret_gen);

/* (L held) Deletes every snapshot and exception and empties the journal and the diff area
 * (the last resort when the state directory's filesystem is full). */
int eng_drop_all_locked(eng_volume *v);
