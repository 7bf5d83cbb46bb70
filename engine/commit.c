/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The journal at run time: the group commit (one leader syncs the diff area
 * and appends one frame for everything queued, the others wait for it),
 * checkpoints (the whole durable state rewritten as a fresh meta file and
 * renamed into place: at open, at close, and when the journal has grown),
 * and the last resort of dropping every snapshot when the state directory's
 * filesystem is full.
 *
 * All entry points are called with the volume lock held; the leader drops it
 * for its I/O, with COMMITTING set so that no second leader starts.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/volume-internal.h"

#define CHECKPOINT_FRAME (1024u * 1024u)
#define COMPACT_MIN (64u * 1024u * 1024u)

/* ---- checkpoint: a fresh meta file holding the whole durable state ---- */

static int frame_flush(eng_volume *v, int fd, struct jr_frame *f, uint64_t *seq, uint64_t *off) {
        if (f->n_records == 0)
                return 0;
        journal_frame_seal(f, *seq);
        int r = v->io->pwrite(v->io, fd, f->buf, f->len, *off);
        if (r < 0)
                return r;
        *off += f->len;
        (*seq)++;
        journal_frame_reset(f);
        return 0;
}

static int frame_put(eng_volume *v, int fd, struct jr_frame *f, const struct jr_record *rec, uint64_t *seq,
                     uint64_t *off) {
        int r = journal_frame_add(f, rec);
        if (r < 0)
                return r;
        return f->len >= CHECKPOINT_FRAME ? frame_flush(v, fd, f, seq, off) : 0;
}

struct ckpt_ctx {
        eng_volume *v;
        int fd;
        struct jr_frame *f;
        uint64_t *seq, *off;
};

static int ckpt_exception(void *ud, const struct cm_exc *e) {
        struct ckpt_ctx *c = ud;
        if (!e->persistent)
                return 0;
        struct jr_record r = {
                .type = JR_EXCEPTION, .chunk = e->chunk, .lo = e->lo, .hi = e->hi, .slot = e->slot
        };
        return frame_put(c->v, c->fd, c->f, &r, c->seq, c->off);
}

/*
 * Writes DIR/meta.new with the superblock and every persistent
 * snapshot and exception, syncs the data it depends on, and renames it over DIR/meta.
 * Everything queued in the pending batch becomes durable with it.
 */
int eng_checkpoint_locked(eng_volume *v) {
        char path[PATH_MAX], tmp[PATH_MAX];
        struct jr_frame f = {};
        int fd = -1, r;

        eng_path_join(path, sizeof path, v->dir, "meta");
        eng_path_join(tmp, sizeof tmp, v->dir, "meta.new");

        /* What the new records point at must be durable before they are. */
        r = v->io->sync(v->io, v->image_fd);
        if (r < 0)
                return r;
        r = v->io->sync(v->io, v->diff_fd);
        if (r < 0)
                return r;

        fd = v->io->open(v->io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                return fd;

        struct jr_super s = {
                .version = JR_VERSION,
                .size = v->size,
                .chunk_size = v->chunk_size,
                .first_seq = v->next_seq + 1,
        };
        memcpy(s.image, v->image_path, sizeof s.image);

        uint64_t seq = s.first_seq, off = JR_SUPER_SIZE;
        struct jr_record rec = { .type = JR_LIMIT, .diff_max = v->diff_max, .policy = (uint32_t) v->policy };
        r = frame_put(v, fd, &f, &rec, &seq, &off);
        if (r < 0)
                goto fail;
        rec = (struct jr_record){ .type = JR_NEXT_ID, .id = v->next_id };
        r = frame_put(v, fd, &f, &rec, &seq, &off);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < v->n_snaps; i++) {
                const struct eng_snap *sn = &v->snaps[i];
                /* A snapshot being deleted has its delete record in the batch this makes durable. */
                if (!sn->persistent || sn->deleting)
                        continue;
                rec = (struct jr_record){ .type = JR_SNAP_CREATE,
                                          .id = sn->id,
                                          .flags = JR_SNAP_F_PERSISTENT,
                                          .created_ns = sn->created_ns };
                memcpy(rec.label, sn->label, MIN(sizeof rec.label, sizeof sn->label));
                rec.label[JR_LABEL_SIZE - 1] = 0;
                r = frame_put(v, fd, &f, &rec, &seq, &off);
                if (r < 0)
                        goto fail;
                if (sn->state == ENG_SNAP_INVALID) {
                        rec = (struct jr_record){ .type = JR_SNAP_INVALID, .id = sn->id };
                        r = frame_put(v, fd, &f, &rec, &seq, &off);
                        if (r < 0)
                                goto fail;
                }
        }
        struct ckpt_ctx c = { .v = v, .fd = fd, .f = &f, .seq = &seq, .off = &off };
        r = chunkmap_foreach(&v->map, ckpt_exception, &c);
        if (r < 0)
                goto fail;
        r = frame_flush(v, fd, &f, &seq, &off);
        if (r < 0)
                goto fail;

        /* The superblock last: it records where the checkpoint's frames end. */
        s.checkpoint_end = off;
        uint8_t *sb = calloc(1, JR_SUPER_SIZE);
        if (!sb) {
                r = -ENOMEM;
                goto fail;
        }
        journal_encode_super(&s, sb);
        r = v->io->pwrite(v->io, fd, sb, JR_SUPER_SIZE, 0);
        free(sb);
        if (r < 0)
                goto fail;
        r = v->io->sync(v->io, fd);
        if (r < 0)
                goto fail;
        r = v->io->rename(v->io, tmp, path);
        if (r < 0 && access(tmp, F_OK) == 0)
                goto fail;
        /* Renamed (even if making the rename durable failed): DIR/meta is the new file now. */
        int renamed = r;

        if (v->meta_fd >= 0)
                v->io->close(v->io, v->meta_fd);
        v->meta_fd = fd;
        v->first_seq = s.first_seq;
        v->next_seq = seq;
        v->meta_end = off;
        journal_frame_release(&f);

        /* The pending batch is now durable too. */
        journal_frame_reset(&v->pending);
        v->pending_image_sync = false;
        v->committed_gen = v->pending_gen;
        v->pending_gen++;
        diffarea_commit(&v->da, v->committed_gen, NULL, NULL);
        pthread_cond_broadcast(&v->commit_cond);
        return renamed < 0 ? renamed : 0;

fail:
        journal_frame_release(&f);
        if (fd >= 0)
                v->io->close(v->io, fd);
        unlink(tmp);
        return r;
}

/* ---- the journal's group commit ---- */

int eng_journal_add(eng_volume *v, const struct jr_record *r, uint64_t *ret_gen) {
        int k = journal_frame_add(&v->pending, r);
        if (k < 0)
                return k;
        if (r->type == JR_SNAP_CREATE)
                v->pending_image_sync = true;
        *ret_gen = v->pending_gen;
        return 0;
}

static void punch_slots(eng_volume *v, uint64_t *slots, size_t n) {
        /* Coalesce runs of neighbouring slots into one punch each. Failure only costs space. */
        for (size_t i = 0; i < n;) {
                size_t j = i + 1;
                while (j < n && slots[j] == slots[j - 1] + 1)
                        j++;
                v->io->punch(v->io, v->diff_fd, slots[i] * v->chunk_size,
                             (uint64_t) (j - i) * v->chunk_size);
                i = j;
        }
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* (L held, leading) Punches the slots freed up to BATCH, then makes them reusable. */
static void release_slots_locked(eng_volume *v, uint64_t batch) {
        size_t k = 0;
        while (k < v->da.n_pending && v->da.pending[k].gen <= batch)
                k++;
        if (k == 0)
                return;
        uint64_t *slots = malloc(k * sizeof *slots);
        if (slots) {
                for (size_t i = 0; i < k; i++)
                        slots[i] = v->da.pending[i].slot;
                pthread_mutex_unlock(&v->lock);
                qsort(slots, k, sizeof *slots, cmp_u64);
                punch_slots(v, slots, k);
                pthread_mutex_lock(&v->lock);
                free(slots);
        }
        diffarea_commit(&v->da, batch, NULL, NULL);
}

int eng_commit_wait(eng_volume *v, uint64_t gen) {
        while (v->committed_gen < gen) {
                if (v->journal_error < 0)
                        return v->journal_error;
                if (v->committing) {
                        pthread_cond_wait(&v->commit_cond, &v->lock);
                        continue;
                }

                /* Lead this batch: take the pending records, let others queue the next. */
                v->committing = true;
                uint64_t batch = v->pending_gen++;
                struct jr_frame f = v->pending;
                v->pending = v->spare;
                journal_frame_reset(&v->pending);
                bool image_sync = v->pending_image_sync;
                v->pending_image_sync = false;
                uint64_t seq = v->next_seq, off = v->meta_end;
                pthread_mutex_unlock(&v->lock);

                int r = 0;
                if (image_sync)
                        r = v->io->sync(v->io, v->image_fd);
                if (r >= 0 && f.n_records > 0) {
                        r = v->io->sync(v->io, v->diff_fd);
                        if (r >= 0) {
                                journal_frame_seal(&f, seq);
                                r = v->io->pwrite(v->io, v->meta_fd, f.buf, f.len, off);
                        }
                        if (r >= 0)
                                r = v->io->sync(v->io, v->meta_fd);
                }

                pthread_mutex_lock(&v->lock);
                if (r < 0)
                        v->journal_error = r;
                else {
                        if (f.n_records > 0) {
                                v->next_seq++;
                                v->meta_end += f.len;
                        }
                        v->committed_gen = batch;
                        release_slots_locked(v, batch);
                }
                journal_frame_reset(&f);
                v->spare = f;

                /* Keep the journal short: rewrite it whole once it has grown well past its size. */
                uint64_t compact_at =
                        MAX(MAX((uint64_t) COMPACT_MIN, (uint64_t) v->map.n * 64 * 2), v->compact_after);
                if (r >= 0 && v->meta_end > compact_at && eng_checkpoint_locked(v) < 0)
                        /* No room for a new file, say: appending still works; try again later. */
                        v->compact_after = v->meta_end + COMPACT_MIN;
                v->committing = false;
                pthread_cond_broadcast(&v->commit_cond);
        }
        return 0;
}

int eng_pending_release_wait(eng_volume *v) {
        if (v->da.n_pending == 0)
                return 0;
        uint64_t newest = v->da.pending[v->da.n_pending - 1].gen;
        if (newest > v->committed_gen)
                return eng_commit_wait(v, newest);
        /* Durable already: the leader is punching them and will make them free; wait for it. */
        while (v->committing && v->da.n_pending > 0 && v->da.pending[0].gen <= v->committed_gen)
                pthread_cond_wait(&v->commit_cond, &v->lock);
        if (!v->committing)
                diffarea_commit(&v->da, v->committed_gen, NULL, NULL);
        return 0;
}

/* ---- the last resort when the state filesystem is full ---- */

static bool exc_all_dead(void *ud, const struct cm_exc *e) {
        return true;
}

int eng_drop_all_locked(eng_volume *v) {
        while (v->committing)
                pthread_cond_wait(&v->commit_cond, &v->lock);

        /* Forget every snapshot in memory first: no writer can act on them again, since writers
         * plan under the lock we hold until the journal says the same. */
        journal_frame_reset(&v->pending);
        v->pending_image_sync = false;
        v->reclaimed += v->n_snaps;
        v->n_snaps = 0;
        eng_snaps_changed(v);
        chunkmap_remove_if(&v->map, exc_all_dead, NULL, NULL);
        for (size_t i = 0; i < v->map.n_pages; i++) {
                free(v->map.pages[i]);
                v->map.pages[i] = NULL;
        }
        v->map.pages_used = 0;
        uint64_t max_slots = v->da.max_slots;
        diffarea_release(&v->da);
        diffarea_init(&v->da, 0, max_slots);
        v->drop_epoch++;

        /* An empty checkpoint keeps the limit and the next id; when even that has no room,
         * truncating the journal to the superblock needs none (recovery reads a file that ends
         * inside the checkpoint as emptied on purpose; the limit and the next id are then lost). */
        int r = eng_checkpoint_locked(v);
        if (r < 0) {
                r = v->io->truncate(v->io, v->meta_fd, JR_SUPER_SIZE);
                if (r >= 0)
                        r = v->io->sync(v->io, v->meta_fd);
                if (r < 0) {
                        v->journal_error = r;
                        return r;
                }
                v->next_seq = v->first_seq;
                v->meta_end = JR_SUPER_SIZE;
                v->committed_gen = v->pending_gen;
                v->pending_gen++;
        }
        v->journal_error = 0;
        v->io->truncate(v->io, v->diff_fd, 0);
        pthread_cond_broadcast(&v->commit_cond);
        return 0;
}
