/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The live write path: the hold gate, copy-on-write, and the live I/O.
 *
 * A write is cut into batches of neighbouring chunks (at most BATCH_BYTES).
 * For each batch, with the stripe locks of its chunks held (taken in
 * ascending stripe order, so two batches never wait on each other in a
 * circle):
 *   1. plan, under the volume lock: a chunk needs a copy iff a valid snapshot
 *      is newer than its WRITTEN id; each such chunk gets a diff slot (when
 *      the maximum is reached, the batch ends early, or room is made by the
 *      volume's policy when nothing was planned yet);
 *   2. copy, without the lock: runs of neighbouring chunks going to
 *      neighbouring slots are cloned (FICLONERANGE) or copied in one call;
 *   3. publish, under the lock: each exception serves the valid snapshots
 *      that still need it; if any of them is persistent its record is queued,
 *      and one commit (diff synced, frame appended, meta synced) covers the
 *      whole batch, shared with concurrent writers;
 *   4. write the batch's live data in one call.
 * So a chunk is copied at most once per write whatever the number of
 * snapshots, a multi-chunk write waits for one commit, not one per chunk, and
 * on disk no live write precedes the record protecting what it overwrites.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "engine/volume-internal.h"

#define BATCH_BYTES (8u * 1024u * 1024u)
#define BATCH_CHUNKS_MAX 256u

/* ---- the hold gate ---- */

static void gate_enter(eng_volume *v) {
        pthread_mutex_lock(&v->lock);
        while (v->held || v->quiesce > 0) {
                if (!v->held) {
                        pthread_cond_wait(&v->hold_cond, &v->lock);
                        continue;
                }
                uint64_t now = eng_now_mono();
                if (now >= v->hold_deadline) {
                        v->held = false;
                        v->hold_expired = true;
                        pthread_cond_broadcast(&v->hold_cond);
                        continue;
                }
                struct timespec ts = { .tv_sec = (time_t) (v->hold_deadline / 1000000000u),
                                       .tv_nsec = (long) (v->hold_deadline % 1000000000u) };
                pthread_cond_timedwait(&v->hold_cond, &v->lock, &ts);
        }
        v->inflight++;
        pthread_mutex_unlock(&v->lock);
}

void eng_quiesce_begin_locked(eng_volume *v) {
        v->quiesce++;
        while (v->inflight > 0)
                pthread_cond_wait(&v->hold_cond, &v->lock);
}

void eng_quiesce_end_locked(eng_volume *v) {
        v->quiesce--;
        pthread_cond_broadcast(&v->hold_cond);
}

static void gate_leave(eng_volume *v) {
        pthread_mutex_lock(&v->lock);
        if (--v->inflight == 0)
                pthread_cond_broadcast(&v->hold_cond);
        pthread_mutex_unlock(&v->lock);
}

int engine_hold(eng_volume *v, uint32_t timeout_ms) {
        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        if (v->held && eng_now_mono() >= v->hold_deadline)
                /* An earlier hold lapsed with nobody waiting at the gate to notice. */
                v->held = false;
        if (v->held) {
                pthread_mutex_unlock(&v->lock);
                return -EBUSY;
        }
        v->held = true;
        v->hold_expired = false;
        v->hold_deadline = eng_now_mono() + (uint64_t) timeout_ms * 1000000u;
        while (v->inflight > 0) {
                struct timespec ts = { .tv_sec = (time_t) (v->hold_deadline / 1000000000u),
                                       .tv_nsec = (long) (v->hold_deadline % 1000000000u) };
                if (pthread_cond_timedwait(&v->hold_cond, &v->lock, &ts) == ETIMEDOUT && v->inflight > 0) {
                        v->held = false;
                        pthread_cond_broadcast(&v->hold_cond);
                        pthread_mutex_unlock(&v->lock);
                        return -ETIMEDOUT;
                }
        }
        pthread_mutex_unlock(&v->lock);
        return 0;
}

int engine_release(eng_volume *v) {
        int r;
        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        if (v->held) {
                v->held = false;
                r = eng_now_mono() > v->hold_deadline ? -ETIMEDOUT : 0;
                pthread_cond_broadcast(&v->hold_cond);
        } else if (v->hold_expired) {
                v->hold_expired = false;
                r = -ETIMEDOUT;
        } else
                r = -ENOENT;
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* ---- copy-on-write ---- */

struct cow_plan {
        uint64_t chunk;
        uint64_t slot;
        uint32_t written; /* the chunk's WRITTEN id when planned */
        uint32_t hi; /* the newest valid snapshot then */
        bool whole; /* the write replaces the whole chunk */
};

/* (L held) Index of the first valid snapshot with id > AFTER, or n_snaps. */
static size_t first_valid_after(const eng_volume *v, uint32_t after) {
        size_t i = eng_snap_lower(v, after + 1);
        while (i < v->n_snaps && v->snaps[i].state != ENG_SNAP_VALID)
                i++;
        return i;
}

/* (L held) Index of the last valid snapshot with id <= UPTO, or SIZE_MAX. */
static size_t last_valid_upto(const eng_volume *v, uint32_t upto) {
        size_t i = upto == UINT32_MAX ? v->n_snaps : eng_snap_lower(v, upto + 1);
        while (i > 0) {
                i--;
                if (v->snaps[i].state == ENG_SNAP_VALID)
                        return i;
        }
        return SIZE_MAX;
}

static bool needs_cow(const eng_volume *v, uint64_t chunk) {
        return first_valid_after(v, chunkmap_written(&v->map, chunk)) < v->n_snaps;
}

/* (L held, may drop it) Makes room in a full diff area by the volume's policy. */
static int make_room_locked(eng_volume *v) {
        if (v->policy == ENG_POLICY_PROTECT_SNAPSHOTS)
                return -ENOSPC;
        if (v->da.n_pending > 0)
                /* Slots freed by earlier deletions become reusable with the next commit. */
                return eng_pending_release_wait(v);
        uint64_t gen;
        int r = eng_snap_reclaim_oldest_locked(v, &gen);
        if (r < 0 || gen == 0)
                return r;
        return eng_commit_wait(v, gen);
}

static bool is_no_space(int r) {
        return r == -ENOSPC || r == -EDQUOT;
}

static void unplan_locked(eng_volume *v, const struct cow_plan *plan, size_t n) {
        for (size_t i = 0; i < n; i++)
                diffarea_unalloc(&v->da, plan[i].slot);
}

/*
 * (L held, may drop it) Plans the copies of chunks FIRST..LAST into PLAN. Returns the last
 * chunk the batch covers (the batch ends early when the diff area is full) in *RET_LAST.
 */
static int plan_locked(eng_volume *v, uint64_t first, uint64_t last, uint64_t wstart, uint64_t wend,
                       struct cow_plan *plan, size_t *ret_n, uint64_t *ret_last, uint64_t *reserved) {
        size_t n = 0;
        int r;

        for (uint64_t c = first; c <= last; c++) {
                uint32_t w = chunkmap_written(&v->map, c);
                if (first_valid_after(v, w) == v->n_snaps)
                        continue;
                if (*reserved > 0 && v->da.reserved > 0) {
                        v->da.reserved--;
                        (*reserved)--;
                }
                uint64_t slot;
                r = diffarea_alloc(&v->da, &slot);
                if (r == -ENOSPC && n > 0) {
                        /* Finish what is planned; the rest is the next batch's. */
                        *ret_n = n;
                        *ret_last = c - 1;
                        return 0;
                }
                if (r == -ENOSPC) {
                        r = make_room_locked(v);
                        if (r < 0)
                                return r;
                        /* Snapshots may be gone: decide again from the start. */
                        c = first - 1;
                        continue;
                }
                if (r < 0) {
                        unplan_locked(v, plan, n);
                        return r;
                }
                plan[n++] = (struct cow_plan){
                        .chunk = c,
                        .slot = slot,
                        .written = w,
                        .hi = v->snaps[last_valid_upto(v, UINT32_MAX)].id,
                        .whole = wstart <= (c << v->chunk_shift) &&
                                 MIN(v->size, (c + 1) << v->chunk_shift) <= wend,
                };
        }
        *ret_n = n;
        *ret_last = last;
        return 0;
}

/* Copies the planned chunks to their slots, a run of neighbours at a time. */
static int copy_planned(eng_volume *v, const struct cow_plan *plan, size_t n) {
        void *buf = NULL;
        size_t buf_size = 0;
        int r = 0;

        for (size_t i = 0; i < n && r >= 0;) {
                size_t j = i + 1;
                while (j < n && plan[j].chunk == plan[j - 1].chunk + 1 &&
                       plan[j].slot == plan[j - 1].slot + 1 && plan[j].whole == plan[i].whole)
                        j++;
                uint64_t off = plan[i].chunk << v->chunk_shift;
                size_t len = (size_t) MIN((uint64_t) (j - i) << v->chunk_shift, v->size - off);
                uint64_t doff = plan[i].slot * v->chunk_size;
                bool whole = plan[i].whole;
                i = j;

                /* Clone only what the write replaces whole: a partial write into a shared extent
                 * makes the host filesystem copy the block again, costing more than our copy. */
                if (whole && __atomic_load_n(&v->reflink_on, __ATOMIC_RELAXED)) {
                        r = v->io->clone(v->io, v->image_fd, off, v->diff_fd, doff, len);
                        if (r != -EOPNOTSUPP)
                                continue;
                }
                if (len > buf_size) {
                        free(buf);
                        buf = malloc(len);
                        buf_size = buf ? len : 0;
                        if (!buf) {
                                r = -ENOMEM;
                                break;
                        }
                }
                r = v->io->pread(v->io, v->image_fd, buf, len, off);
                if (r >= 0)
                        r = v->io->pwrite(v->io, v->diff_fd, buf, len, doff);
        }
        free(buf);
        return r;
}

/*
 * (L held) Publishes the copied chunks as exceptions for the valid snapshots that existed when
 * they were planned (newer ones will read the live data about to be written). Returns in
 * *RET_GEN the commit generation to wait for (0: none, no persistent snapshot involved).
 */
static int publish_locked(eng_volume *v, const struct cow_plan *plan, size_t n, uint64_t *ret_gen) {
        uint64_t gen = 0;
        int r = 0;

        for (size_t k = 0; k < n; k++) {
                const struct cow_plan *p = &plan[k];
                if (r < 0) {
                        diffarea_unalloc(&v->da, p->slot);
                        continue;
                }
                size_t i = first_valid_after(v, p->written);
                size_t j = last_valid_upto(v, p->hi);
                if (i == v->n_snaps || j == SIZE_MAX || j < i) {
                        /* Every snapshot that needed it went away during the copy. */
                        diffarea_unalloc(&v->da, p->slot);
                        continue;
                }
                uint32_t lo = v->snaps[i].id, hi = v->snaps[j].id;
                bool persistent = v->n_persistent_before[j + 1] - v->n_persistent_before[i] > 0;
                r = chunkmap_prepare(&v->map, p->chunk);
                if (r >= 0)
                        r = chunkmap_add(&v->map, p->chunk, lo, hi, p->slot, persistent);
                if (r < 0) {
                        diffarea_unalloc(&v->da, p->slot);
                        continue;
                }
                chunkmap_set_written(&v->map, p->chunk, hi);
                v->cow_copies++;
                if (persistent) {
                        struct jr_record rec = {
                                .type = JR_EXCEPTION, .chunk = p->chunk, .lo = lo, .hi = hi, .slot = p->slot
                        };
                        r = eng_journal_add(v, &rec, &gen);
                        if (r < 0)
                                /* The exception is in memory only: no later write may trust it. */
                                v->journal_error = r;
                }
        }
        *ret_gen = gen;
        return r;
}

/*
 * (stripes of FIRST..LAST held) Preserves the chunks of the batch for the snapshots that still
 * read them. On success *RET_LAST is the last chunk the batch covers.
 */
static int cow_batch(eng_volume *v, uint64_t first, uint64_t last, uint64_t wstart, uint64_t wend,
                     struct cow_plan *plan, uint64_t *ret_last, uint64_t *reserved) {
        int r;

        pthread_mutex_lock(&v->lock);
        for (;;) {
                if (v->journal_error < 0) {
                        /* The journal cannot record new exceptions. */
                        if (v->policy == ENG_POLICY_PROTECT_SNAPSHOTS) {
                                r = v->journal_error;
                                break;
                        }
                        r = eng_drop_all_locked(v);
                        if (r < 0)
                                break;
                        continue;
                }
                size_t n;
                r = plan_locked(v, first, last, wstart, wend, plan, &n, ret_last, reserved);
                if (r < 0 || n == 0)
                        break;
                uint64_t epoch = v->drop_epoch;

                pthread_mutex_unlock(&v->lock);
                r = copy_planned(v, plan, n);
                pthread_mutex_lock(&v->lock);

                if (epoch != v->drop_epoch)
                        /* Every snapshot was dropped meanwhile, and the slots with them. */
                        continue;
                if (r < 0) {
                        unplan_locked(v, plan, n);
                        if (is_no_space(r) && v->policy == ENG_POLICY_PROTECT_VOLUME) {
                                /* The state directory is full: give up every snapshot, keep the volume. */
                                r = eng_drop_all_locked(v);
                                if (r < 0)
                                        break;
                                continue;
                        }
                        break;
                }
                uint64_t gen;
                r = publish_locked(v, plan, n, &gen);
                if (gen > 0) {
                        /* Even if a later chunk failed: what was published must be durable before
                         * anyone trusts it (a retried write would skip these copies). */
                        int k = eng_commit_wait(v, gen);
                        if (r >= 0)
                                r = k;
                }
                if (r < 0 && v->policy == ENG_POLICY_PROTECT_VOLUME &&
                    (v->journal_error < 0 || epoch != v->drop_epoch)) {
                        /* The journal failed (or another writer already gave up the snapshots
                         * over it): the volume comes first. */
                        if (v->journal_error < 0) {
                                r = eng_drop_all_locked(v);
                                if (r < 0)
                                        break;
                        }
                        continue;
                }
                break;
        }
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* Under PROTECT_SNAPSHOTS, refuses up front a write whose copies cannot all fit, and reserves the
 * slots it needs, so that it fails whole instead of half-written even when writers race. */
static int precheck_space(eng_volume *v, uint64_t first, uint64_t last, uint64_t *ret_reserved) {
        int r = 0;
        pthread_mutex_lock(&v->lock);
        if (v->policy != ENG_POLICY_PROTECT_SNAPSHOTS || v->da.max_slots == UINT64_MAX)
                goto out;
        for (int attempt = 0; attempt < 2; attempt++) {
                uint64_t need = 0;
                for (uint64_t c = first; c <= last; c++)
                        if (needs_cow(v, c))
                                need++;
                if (need == 0)
                        goto out;
                if (diffarea_charged(&v->da) + need <= v->da.max_slots) {
                        v->da.reserved += need;
                        *ret_reserved = need;
                        goto out;
                }
                if (v->da.n_pending == 0 || attempt == 1)
                        break;
                r = eng_pending_release_wait(v);
                if (r < 0)
                        goto out;
        }
        r = -ENOSPC;
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* Locks (or unlocks) the stripes of chunks FIRST..LAST, in ascending stripe order: [a, b], or
 * [0, b] then [a, end) when the range wraps around, or all of them. */
static void stripes_lock(eng_volume *v, uint64_t first, uint64_t last, bool lock) {
        size_t a = (size_t) (first % ENG_STRIPES), b = (size_t) (last % ENG_STRIPES);
        size_t runs[2][2];
        size_t n = 0;
        if (last - first + 1 >= ENG_STRIPES) {
                runs[n][0] = 0;
                runs[n++][1] = ENG_STRIPES - 1;
        } else if (a <= b) {
                runs[n][0] = a;
                runs[n++][1] = b;
        } else {
                runs[n][0] = 0;
                runs[n++][1] = b;
                runs[n][0] = a;
                runs[n++][1] = ENG_STRIPES - 1;
        }
        for (size_t k = 0; k < n; k++)
                for (size_t i = runs[k][0]; i <= runs[k][1]; i++) {
                        if (lock)
                                pthread_mutex_lock(&v->stripe[i]);
                        else
                                pthread_mutex_unlock(&v->stripe[i]);
                }
}

enum wkind { W_DATA, W_ZERO };

static int write_range(eng_volume *v, enum wkind kind, const void *buf, size_t len, uint64_t off) {
        if (!v || (kind == W_DATA && !buf && len > 0))
                return -EINVAL;
        if (off > v->size || len > v->size - off)
                return -EINVAL;
        if (len == 0)
                return 0;

        uint64_t end = off + len;
        uint64_t reserved = 0;
        uint64_t batch = MAX(MIN((uint64_t) BATCH_CHUNKS_MAX, BATCH_BYTES >> v->chunk_shift), (uint64_t) 1);
        struct cow_plan plan[BATCH_CHUNKS_MAX]; /* 8 KiB: no allocation on the write path */

        /* Inside the gate, no snapshot can be created (creation waits for writes in flight), so
         * the space check counts exactly the copies this write will make. */
        gate_enter(v);
        int r = precheck_space(v, off >> v->chunk_shift, (end - 1) >> v->chunk_shift, &reserved);
        for (uint64_t pos = off; pos < end && r >= 0;) {
                uint64_t first = pos >> v->chunk_shift;
                uint64_t last = MIN((end - 1) >> v->chunk_shift, first + batch - 1);
                uint64_t covered;

                stripes_lock(v, first, last, true);
                r = cow_batch(v, first, last, off, end, plan, &covered, &reserved);
                if (r >= 0) {
                        uint64_t stop = MIN(end, (covered + 1) << v->chunk_shift);
                        if (kind == W_DATA)
                                r = v->io->pwrite(v->io, v->image_fd, (const uint8_t *) buf + (pos - off),
                                                  (size_t) (stop - pos), pos);
                        else
                                r = v->io->punch(v->io, v->image_fd, pos, stop - pos);
                        pos = stop;
                }
                stripes_lock(v, first, last, false);
        }
        gate_leave(v);

        if (reserved > 0) {
                /* Snapshots deleted meanwhile needed fewer copies than reserved. */
                pthread_mutex_lock(&v->lock);
                v->da.reserved -= MIN(reserved, v->da.reserved);
                pthread_mutex_unlock(&v->lock);
        }
        return r < 0 ? r : 0;
}

int engine_write(eng_volume *v, const void *buf, size_t len, uint64_t off) {
        return write_range(v, W_DATA, buf, len, off);
}

int engine_write_zeroes(eng_volume *v, size_t len, uint64_t off) {
        return write_range(v, W_ZERO, NULL, len, off);
}

int engine_discard(eng_volume *v, size_t len, uint64_t off) {
        /* Discarded ranges read as zeros: the image is deallocated where the host allows it. */
        return write_range(v, W_ZERO, NULL, len, off);
}

int engine_read(eng_volume *v, void *buf, size_t len, uint64_t off) {
        if (!v || (!buf && len > 0) || off > v->size || len > v->size - off)
                return -EINVAL;
        return v->io->pread(v->io, v->image_fd, buf, len, off);
}

int engine_flush(eng_volume *v) {
        if (!v)
                return -EINVAL;
        return v->io->sync(v->io, v->image_fd);
}
