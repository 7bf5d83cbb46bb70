/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Snapshots: create, delete, list, read, changed-block tracking, revert.
 *
 * Reads take no stripe lock. A snapshot read of a chunk looks up, under the
 * volume lock, where the snapshot's copy of the chunk is (a diff slot, or the
 * live image when the chunk has not changed since), reads it without the lock,
 * then looks again: a writer publishes an exception before it overwrites the
 * live chunk, so if none appeared meanwhile the live bytes read were the
 * snapshot's; and a slot is reused only after the snapshot that read it is
 * deleted, which the second look sees.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "engine/volume-internal.h"

size_t eng_snap_lower(const eng_volume *v, uint32_t id) {
        size_t lo = 0, hi = v->n_snaps;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v->snaps[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

struct eng_snap *eng_snap_find(eng_volume *v, uint32_t id) {
        size_t i = eng_snap_lower(v, id);
        return i < v->n_snaps && v->snaps[i].id == id ? &v->snaps[i] : NULL;
}

void eng_snaps_changed(eng_volume *v) {
        if (!v->n_persistent_before)
                return;
        uint32_t n = 0;
        for (size_t i = 0; i < v->n_snaps; i++) {
                v->n_persistent_before[i] = n;
                if (v->snaps[i].persistent && v->snaps[i].state == ENG_SNAP_VALID)
                        n++;
        }
        v->n_persistent_before[v->n_snaps] = n;
}

bool eng_range_live(const eng_volume *v, uint32_t lo, uint32_t hi) {
        for (size_t i = eng_snap_lower(v, lo); i < v->n_snaps && v->snaps[i].id <= hi; i++)
                if (v->snaps[i].state == ENG_SNAP_VALID)
                        return true;
        return false;
}

struct remove_ctx {
        eng_volume *v;
        uint32_t id;
        uint64_t gen;
};

static bool exc_dead_after(void *ud, const struct cm_exc *e) {
        struct remove_ctx *c = ud;
        return e->lo <= c->id && c->id <= e->hi && !eng_range_live(c->v, e->lo, e->hi);
}

static void exc_freed(void *ud, const struct cm_exc *e) {
        struct remove_ctx *c = ud;
        diffarea_free(&c->v->da, e->slot, c->gen);
}

int eng_snap_remove_locked(eng_volume *v, uint32_t id, uint64_t *ret_gen) {
        *ret_gen = 0;
        struct eng_snap *s = eng_snap_find(v, id);
        if (!s || s->deleting)
                return -ENOENT;
        if (s->pins > 0)
                return -EBUSY;
        if (s->persistent) {
                /* Valid or invalid, a persistent snapshot is in the journal: its end must be durable
                 * before any writer may stop preserving its chunks. */
                uint64_t gen;
                struct jr_record rec = { .type = JR_SNAP_DELETE, .id = id };
                int r = eng_journal_add(v, &rec, &gen);
                if (r < 0)
                        return r;
                s->deleting = true;
                r = eng_commit_wait(v, gen);
                s = eng_snap_find(v, id);
                if (r < 0) {
                        if (s)
                                s->deleting = false;
                        return r;
                }
                if (!s)
                        return -ENOENT; /* every snapshot was dropped meanwhile */
        }
        size_t i = (size_t) (s - v->snaps);
        memmove(v->snaps + i, v->snaps + i + 1, (v->n_snaps - i - 1) * sizeof *v->snaps);
        v->n_snaps--;
        eng_snaps_changed(v);

        struct remove_ctx c = { .v = v, .id = id, .gen = v->pending_gen };
        chunkmap_remove_if(&v->map, exc_dead_after, exc_freed, &c);
        *ret_gen = c.gen;
        return 0;
}

int eng_snap_reclaim_oldest_locked(eng_volume *v, uint64_t *ret_gen) {
        bool waiting = false;
        for (size_t i = 0; i < v->n_snaps; i++) {
                if (v->snaps[i].deleting) {
                        waiting = true;
                        continue;
                }
                if (v->snaps[i].pins > 0)
                        continue;
                int r = eng_snap_remove_locked(v, v->snaps[i].id, ret_gen);
                if (r >= 0)
                        v->reclaimed++;
                return r == -ENOENT ? 0 : r;
        }
        if (!waiting)
                return -ENOSPC;
        pthread_cond_wait(&v->commit_cond, &v->lock);
        *ret_gen = 0;
        return 0;
}

int engine_snapshot_create(eng_volume *v, const struct eng_snap_params *p, uint32_t *ret_id) {
        if (!v || !p || !ret_id)
                return -EINVAL;
        if (p->label && strlen(p->label) > ENG_LABEL_MAX)
                return -EINVAL;

        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int r = 0;

        pthread_mutex_lock(&v->lock);
        if (v->journal_error < 0 && p->persistent) {
                r = v->journal_error;
                goto out;
        }
        if (v->n_snaps >= ENG_MAX_SNAPSHOTS) {
                r = -EMLINK;
                goto out;
        }
        if (v->next_id == UINT32_MAX) {
                r = -EOVERFLOW;
                goto out;
        }

        /* Writes already past their copy-on-write decision would land in the new snapshot after
         * it exists: let them finish first. */
        eng_quiesce_begin_locked(v);
        if (v->n_snaps >= ENG_MAX_SNAPSHOTS)
                r = -EMLINK;
        else
                /* After the quiesce, which may drop the lock: no other creator can come between
                 * this and the insertion. */
                r = eng_snaps_reserve(v, v->n_snaps + 1);
        if (r < 0) {
                eng_quiesce_end_locked(v);
                goto out;
        }
        uint32_t id = v->next_id++;
        struct eng_snap *s = &v->snaps[v->n_snaps++];
        *s = (struct eng_snap){
                .id = id,
                .persistent = p->persistent,
                .created_ns = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec,
        };
        if (p->label)
                snprintf(s->label, sizeof s->label, "%s", p->label);
        eng_snaps_changed(v);
        eng_quiesce_end_locked(v);

        if (p->persistent) {
                /* The commit syncs the image before the record: every chunk the snapshot reads
                 * from the live image is durable before the snapshot is. */
                uint64_t gen;
                struct jr_record rec = { .type = JR_SNAP_CREATE,
                                         .id = id,
                                         .flags = JR_SNAP_F_PERSISTENT,
                                         .created_ns = s->created_ns };
                memcpy(rec.label, s->label, sizeof rec.label);
                r = eng_journal_add(v, &rec, &gen);
                if (r >= 0)
                        r = eng_commit_wait(v, gen);
                if (r >= 0 && !eng_snap_find(v, id))
                        /* Every snapshot was dropped (the state filesystem filled up) meanwhile. */
                        r = -ENOSPC;
                if (r < 0) {
                        struct eng_snap *gone = eng_snap_find(v, id);
                        if (gone) {
                                size_t i = (size_t) (gone - v->snaps);
                                memmove(v->snaps + i, v->snaps + i + 1,
                                        (v->n_snaps - i - 1) * sizeof *v->snaps);
                                v->n_snaps--;
                                eng_snaps_changed(v);
                        }
                        goto out;
                }
        }
        *ret_id = id;
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}

int engine_snapshot_delete(eng_volume *v, uint32_t id) {
        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        uint64_t gen;
        int r = eng_snap_remove_locked(v, id, &gen);
        if (r >= 0)
                r = eng_commit_wait(v, gen);
        pthread_mutex_unlock(&v->lock);
        return r;
}

static void snap_info(const struct eng_snap *s, struct eng_snap_info *i) {
        *i = (struct eng_snap_info){
                .id = s->id,
                .created_ns = s->created_ns,
                .persistent = s->persistent,
                .state = s->state,
        };
        memcpy(i->label, s->label, sizeof i->label);
}

int engine_snapshot_list(eng_volume *v, struct eng_snap_info **ret, size_t *ret_n) {
        if (!v || !ret || !ret_n)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        struct eng_snap_info *a = calloc(MAX(v->n_snaps, (size_t) 1), sizeof *a);
        size_t n = v->n_snaps;
        if (a)
                for (size_t i = 0; i < n; i++)
                        snap_info(&v->snaps[i], &a[i]);
        pthread_mutex_unlock(&v->lock);
        if (!a)
                return -ENOMEM;
        *ret = a;
        *ret_n = n;
        return 0;
}

int engine_snapshot_get(eng_volume *v, uint32_t id, struct eng_snap_info *ret_info) {
        if (!v || !ret_info)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        struct eng_snap *s = eng_snap_find(v, id);
        if (s)
                snap_info(s, ret_info);
        pthread_mutex_unlock(&v->lock);
        return s ? 0 : -ENOENT;
}

/* (L held) -ENOENT if snapshot ID does not exist, -EIO if it is invalid. */
static int snap_readable(eng_volume *v, uint32_t id) {
        struct eng_snap *s = eng_snap_find(v, id);
        if (!s)
                return -ENOENT;
        return s->state == ENG_SNAP_VALID ? 0 : -EIO;
}

#define SLOT_LIVE UINT64_MAX

static int read_piece(eng_volume *v, uint32_t id, uint64_t chunk, uint8_t *buf, size_t len, uint64_t off) {
        uint64_t within = off - (chunk << v->chunk_shift);
        int r;

        pthread_mutex_lock(&v->lock);
        r = snap_readable(v, id);
        const struct cm_exc *e = r < 0 ? NULL : chunkmap_find(&v->map, chunk, id);
        uint64_t slot = e ? e->slot : SLOT_LIVE;
        pthread_mutex_unlock(&v->lock);
        if (r < 0)
                return r;

        for (;;) {
                if (slot == SLOT_LIVE)
                        r = v->io->pread(v->io, v->image_fd, buf, len, off);
                else
                        r = v->io->pread(v->io, v->diff_fd, buf, len, slot * v->chunk_size + within);
                if (r < 0)
                        return r;

                pthread_mutex_lock(&v->lock);
                r = snap_readable(v, id);
                if (r >= 0 && slot == SLOT_LIVE) {
                        e = chunkmap_find(&v->map, chunk, id);
                        if (e) {
                                /* A writer preserved the chunk while we read it: read its copy. */
                                slot = e->slot;
                                pthread_mutex_unlock(&v->lock);
                                continue;
                        }
                }
                pthread_mutex_unlock(&v->lock);
                return r;
        }
}

int engine_snapshot_read(eng_volume *v, uint32_t id, void *buf, size_t len, uint64_t off) {
        if (!v || (!buf && len > 0) || off > v->size || len > v->size - off)
                return -EINVAL;
        if (len == 0) {
                pthread_mutex_lock(&v->lock);
                int r = snap_readable(v, id);
                pthread_mutex_unlock(&v->lock);
                return r;
        }
        uint8_t *p = buf;
        uint64_t end = off + len;
        while (off < end) {
                uint64_t chunk = off >> v->chunk_shift;
                uint64_t cend = MIN(end, (chunk + 1) << v->chunk_shift);
                int r = read_piece(v, id, chunk, p, (size_t) (cend - off), off);
                if (r < 0)
                        return r;
                p += cend - off;
                off = cend;
        }
        return 0;
}

struct changed_ctx {
        uint32_t from, to;
        uint64_t *bitmap;
};

static int mark_changed(void *ud, const struct cm_exc *e) {
        struct changed_ctx *c = ud;
        if (e->lo <= c->from && c->from <= e->hi && (c->to == 0 || e->hi < c->to))
                c->bitmap[e->chunk / 64] |= UINT64_C(1) << (e->chunk % 64);
        return 0;
}

int engine_changed_chunks(eng_volume *v, uint32_t from, uint32_t to, uint64_t **ret_bitmap,
                          uint64_t *ret_n_chunks) {
        if (!v || !ret_bitmap || !ret_n_chunks || (to != 0 && to <= from))
                return -EINVAL;
        uint64_t *bm = calloc(MAX(DIV_ROUND_UP(v->n_chunks, 64), (uint64_t) 1), sizeof *bm);
        if (!bm)
                return -ENOMEM;

        pthread_mutex_lock(&v->lock);
        int r = snap_readable(v, from);
        if (r >= 0 && to != 0)
                r = snap_readable(v, to);
        if (r >= 0) {
                /* The exception that holds FROM's copy of a chunk ends (HI) at the last snapshot
                 * taken before the chunk was overwritten: TO differs iff it came after that. */
                struct changed_ctx c = { .from = from, .to = to, .bitmap = bm };
                chunkmap_foreach(&v->map, mark_changed, &c);
        }
        pthread_mutex_unlock(&v->lock);
        if (r < 0) {
                free(bm);
                return r;
        }
        *ret_bitmap = bm;
        *ret_n_chunks = v->n_chunks;
        return 0;
}

static void pin(eng_volume *v, uint32_t id, bool on) {
        pthread_mutex_lock(&v->lock);
        struct eng_snap *s = eng_snap_find(v, id);
        if (s && on)
                s->pins++;
        else if (s && s->pins > 0)
                s->pins--;
        pthread_mutex_unlock(&v->lock);
}

int engine_revert(eng_volume *v, uint32_t id) {
        uint64_t *bm = NULL, n;
        if (!v)
                return -EINVAL;
        /* The revert's own writes may need room in a full diff area: its source is not to be
         * reclaimed for them. */
        pin(v, id, true);
        int r = engine_changed_chunks(v, id, 0, &bm, &n);
        if (r < 0) {
                pin(v, id, false);
                return r;
        }
        uint8_t *buf = malloc(v->chunk_size);
        if (!buf) {
                free(bm);
                pin(v, id, false);
                return -ENOMEM;
        }
        /* Each changed chunk is written back through the normal path, so newer snapshots keep
         * their own content by the usual copy-on-write. */
        for (uint64_t c = 0; c < n && r >= 0; c++) {
                if (!(bm[c / 64] & (UINT64_C(1) << (c % 64))))
                        continue;
                uint64_t off = c << v->chunk_shift;
                size_t len = (size_t) MIN((uint64_t) v->chunk_size, v->size - off);
                r = engine_snapshot_read(v, id, buf, len, off);
                if (r >= 0)
                        r = engine_write(v, buf, len, off);
        }
        free(buf);
        free(bm);
        pin(v, id, false);
        return r < 0 ? r : 0;
}
