/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Volume lifecycle (create, open with recovery, close), live I/O with
 * copy-on-write, the group commit of the journal, and write holds.
 *
 * The write path, for each chunk a write touches (stripe lock held):
 *   1. under the lock, decide: a CoW is needed iff a valid snapshot is newer
 *      than the chunk's WRITTEN id; if so take a diff slot (making room by
 *      the volume's policy when the maximum is reached);
 *   2. without the lock, clone or copy the chunk's current data to the slot;
 *   3. under the lock, publish the exception for the valid snapshots it now
 *      serves; if one of them is persistent, queue its journal record and
 *      wait for the commit (diff synced, frame written, meta synced);
 *   4. write the live data.
 * So a chunk is copied at most once per write, whatever the number of
 * snapshots, and on disk the live write never precedes the record that
 * protects the data it overwrites.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/volume-internal.h"

uint64_t eng_now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int image_open_path(const eng_volume *v, char *buf, size_t n) {
        if (v->image_path[0])
                snprintf(buf, n, "%s", v->image_path);
        else
                eng_path_join(buf, n, v->dir, "image");
        return 0;
}

static uint64_t slots_for(uint64_t bytes, uint32_t chunk_size) {
        if (bytes == 0 || bytes == ENG_DIFF_UNBOUNDED)
                return UINT64_MAX;
        return bytes / chunk_size;
}

/* ---- limits and information ---- */

int engine_set_limit(eng_volume *v, uint64_t diff_max, eng_policy policy) {
        if (!v || (policy != ENG_POLICY_PROTECT_VOLUME && policy != ENG_POLICY_PROTECT_SNAPSHOTS))
                return -EINVAL;
        if (diff_max == 0)
                diff_max = ENG_DIFF_UNBOUNDED;
        uint64_t max_slots = slots_for(diff_max, v->chunk_size);
        int r = 0;

        pthread_mutex_lock(&v->lock);
        while (diffarea_charged(&v->da) > max_slots) {
                if (v->da.n_pending > 0) {
                        r = eng_pending_release_wait(v);
                        if (r < 0)
                                goto out;
                        continue;
                }
                if (policy == ENG_POLICY_PROTECT_SNAPSHOTS) {
                        r = -ENOSPC;
                        goto out;
                }
                uint64_t gen;
                r = eng_snap_reclaim_oldest_locked(v, &gen);
                if (r < 0)
                        goto out;
        }
        v->diff_max = diff_max;
        v->policy = policy;
        v->da.max_slots = max_slots;
        uint64_t gen;
        struct jr_record rec = { .type = JR_LIMIT, .diff_max = diff_max, .policy = (uint32_t) policy };
        r = eng_journal_add(v, &rec, &gen);
        if (r >= 0)
                r = eng_commit_wait(v, gen);
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}

int engine_set_reflink(eng_volume *v, bool enable) {
        if (!v)
                return -EINVAL;
        if (enable && !v->reflink_ok)
                return -EOPNOTSUPP;
        __atomic_store_n(&v->reflink_on, enable, __ATOMIC_RELAXED);
        return 0;
}

int engine_volume_info(eng_volume *v, struct eng_volume_info *ret_info) {
        if (!v || !ret_info)
                return -EINVAL;
        struct eng_volume_info i = {};
        pthread_mutex_lock(&v->lock);
        i.size = v->size;
        i.chunk_size = v->chunk_size;
        i.n_snapshots = (uint32_t) v->n_snaps;
        i.diff_used = diffarea_charged(&v->da) * v->chunk_size;
        i.diff_max = v->diff_max;
        i.policy = v->policy;
        i.reflink = v->reflink_on;
        i.cow_copies = v->cow_copies;
        i.snapshots_reclaimed = v->reclaimed;
        i.exceptions = v->map.n;
        i.mem_bytes = chunkmap_mem(&v->map);
        image_open_path(v, i.image, sizeof i.image);
        pthread_mutex_unlock(&v->lock);
        *ret_info = i;
        return 0;
}

/* ---- open, recovery, create, close ---- */

static eng_volume *volume_alloc(const char *dir, const struct eng_io *io) {
        eng_volume *v = calloc(1, sizeof *v);
        if (!v)
                return NULL;
        v->dir = strdup(dir);
        if (!v->dir) {
                free(v);
                return NULL;
        }
        v->io = io;
        v->image_fd = v->diff_fd = v->meta_fd = v->lock_fd = -1;
        v->next_id = 1;
        v->policy = ENG_POLICY_PROTECT_VOLUME;
        v->diff_max = ENG_DIFF_UNBOUNDED;
        pthread_mutex_init(&v->lock, NULL);
        for (size_t i = 0; i < ENG_STRIPES; i++)
                pthread_mutex_init(&v->stripe[i], NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&v->hold_cond, &ca);
        pthread_cond_init(&v->commit_cond, &ca);
        pthread_condattr_destroy(&ca);
        v->pending_gen = 1;
        return v;
}

static void volume_free(eng_volume *v) {
        if (!v)
                return;
        if (v->image_fd >= 0)
                v->io->close(v->io, v->image_fd);
        if (v->diff_fd >= 0)
                v->io->close(v->io, v->diff_fd);
        if (v->meta_fd >= 0)
                v->io->close(v->io, v->meta_fd);
        if (v->lock_fd >= 0)
                close(v->lock_fd);
        chunkmap_release(&v->map);
        diffarea_release(&v->da);
        journal_frame_release(&v->pending);
        journal_frame_release(&v->spare);
        free(v->snaps);
        free(v->n_persistent_before);
        pthread_mutex_destroy(&v->lock);
        for (size_t i = 0; i < ENG_STRIPES; i++)
                pthread_mutex_destroy(&v->stripe[i]);
        pthread_cond_destroy(&v->hold_cond);
        pthread_cond_destroy(&v->commit_cond);
        free(v->dir);
        free(v);
}

struct replay {
        eng_volume *v;
        bool bad;
        int error;
};

int eng_snaps_reserve(eng_volume *v, size_t n) {
        struct eng_snap *s = realloc(v->snaps, MAX(n, (size_t) 1) * sizeof *s);
        if (!s)
                return -ENOMEM;
        v->snaps = s;
        uint32_t *c = realloc(v->n_persistent_before, (MAX(n, (size_t) 1) + 1) * sizeof *c);
        if (!c)
                return -ENOMEM;
        v->n_persistent_before = c;
        return 0;
}

static int replay_record(void *ud, const struct jr_record *r) {
        struct replay *rp = ud;
        eng_volume *v = rp->v;
        struct eng_snap *s;
        int k;

        switch (r->type) {
        case JR_SNAP_CREATE: {
                if (r->id == 0 || eng_snap_find(v, r->id) || !(r->flags & JR_SNAP_F_PERSISTENT) ||
                    v->n_snaps >= ENG_MAX_SNAPSHOTS) {
                        rp->bad = true;
                        return 0;
                }
                k = eng_snaps_reserve(v, v->n_snaps + 1);
                if (k < 0)
                        return k;
                size_t i = eng_snap_lower(v, r->id);
                memmove(v->snaps + i + 1, v->snaps + i, (v->n_snaps - i) * sizeof *v->snaps);
                s = &v->snaps[i];
                *s = (struct eng_snap){ .id = r->id, .persistent = true, .created_ns = r->created_ns };
                memcpy(s->label, r->label, MIN(sizeof s->label, sizeof r->label));
                s->label[ENG_LABEL_MAX] = 0;
                v->n_snaps++;
                if (r->id >= v->next_id)
                        v->next_id = r->id == UINT32_MAX ? r->id : r->id + 1;
                break;
        }
        case JR_SNAP_DELETE: {
                s = eng_snap_find(v, r->id);
                if (!s) {
                        rp->bad = true;
                        return 0;
                }
                size_t i = (size_t) (s - v->snaps);
                memmove(v->snaps + i, v->snaps + i + 1, (v->n_snaps - i - 1) * sizeof *v->snaps);
                v->n_snaps--;
                break;
        }
        case JR_SNAP_INVALID:
                s = eng_snap_find(v, r->id);
                if (s)
                        s->state = ENG_SNAP_INVALID;
                break;
        case JR_EXCEPTION:
                if (r->chunk >= v->n_chunks || r->hi == UINT32_MAX) {
                        rp->bad = true;
                        return 0;
                }
                if (chunkmap_overlaps(&v->map, r->chunk, r->lo, r->hi)) {
                        /* Ranges of one chunk never overlap: two copies would claim one point. */
                        rp->bad = true;
                        return 0;
                }
                k = chunkmap_add(&v->map, r->chunk, r->lo, r->hi, r->slot, true);
                if (k < 0)
                        return k;
                if (r->hi >= v->next_id)
                        v->next_id = r->hi + 1;
                break;
        case JR_LIMIT:
                v->diff_max = r->diff_max == 0 ? ENG_DIFF_UNBOUNDED : r->diff_max;
                v->policy = (eng_policy) r->policy;
                break;
        case JR_NEXT_ID:
                if (r->id > v->next_id)
                        v->next_id = r->id;
                break;
        }
        return 0;
}

static bool exc_unserved(void *ud, const struct cm_exc *e) {
        return !eng_range_live(ud, e->lo, e->hi);
}

struct slot_check {
        eng_volume *v;
        uint8_t *seen;
        uint64_t max_used;
        bool bad;
};

static int check_slot(void *ud, const struct cm_exc *e) {
        struct slot_check *c = ud;
        if (diffarea_mark_used(&c->v->da, e->slot, c->seen) < 0)
                c->bad = true;
        else if (e->slot + 1 > c->max_used)
                c->max_used = e->slot + 1;
        return 0;
}

static int set_written(void *ud, const struct cm_exc *e) {
        eng_volume *v = ud;
        if (e->hi > chunkmap_written(&v->map, e->chunk))
                return chunkmap_set_written(&v->map, e->chunk, e->hi);
        return 0;
}

static void invalidate_all(eng_volume *v) {
        for (size_t i = 0; i < v->n_snaps; i++)
                v->snaps[i].state = ENG_SNAP_INVALID;
        eng_snaps_changed(v);
}

static int probe_reflink(eng_volume *v) {
        struct stat st;
        if (fstat(v->image_fd, &st) < 0 || !S_ISREG(st.st_mode) || v->size < 4096)
                return 0;
        uint64_t at = v->da.high * v->chunk_size;
        int r = v->io->clone(v->io, v->image_fd, 0, v->diff_fd, at, 4096);
        if (r == 0) {
                v->reflink_ok = v->reflink_on = true;
                v->io->truncate(v->io, v->diff_fd, at);
        }
        return 0;
}

static int save_copy(eng_volume *v, const char *path, const void *buf, size_t len);

static int volume_load(eng_volume *v, bool repair) {
        char path[PATH_MAX];
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t meta_size;
        struct jr_super s;
        int r;

        eng_path_join(path, sizeof path, v->dir, "lock");
        v->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (v->lock_fd < 0)
                return negative_errno();
        if (flock(v->lock_fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EWOULDBLOCK : negative_errno();

        eng_path_join(path, sizeof path, v->dir, "meta");
        v->meta_fd = v->io->open(v->io, path, O_RDWR, 0);
        if (v->meta_fd < 0)
                return v->meta_fd;
        r = v->io->size(v->io, v->meta_fd, &meta_size);
        if (r < 0)
                return r;
        if (meta_size < JR_SUPER_SIZE)
                return -EBADMSG;
        if (meta_size > (UINT64_C(1) << 34))
                return -EFBIG;
        buf = malloc((size_t) meta_size);
        if (!buf)
                return -ENOMEM;
        r = v->io->pread(v->io, v->meta_fd, buf, (size_t) meta_size, 0);
        if (r < 0)
                return r;
        r = journal_parse_super(buf, (size_t) meta_size, &s);
        if (r < 0)
                return r;

        v->size = s.size;
        v->chunk_size = s.chunk_size;
        v->chunk_shift = (unsigned) __builtin_ctz(s.chunk_size);
        v->n_chunks = DIV_ROUND_UP(s.size, s.chunk_size);
        memcpy(v->image_path, s.image, sizeof v->image_path);
        v->first_seq = s.first_seq;

        image_open_path(v, path, sizeof path);
        v->image_fd = v->io->open(v->io, path, O_RDWR, 0);
        if (v->image_fd < 0)
                return v->image_fd;
        uint64_t image_size;
        r = v->io->size(v->io, v->image_fd, &image_size);
        if (r < 0)
                return r;
        if (image_size < v->size)
                return -ERANGE;

        eng_path_join(path, sizeof path, v->dir, "diff");
        v->diff_fd = v->io->open(v->io, path, O_RDWR | O_CREAT, 0600);
        if (v->diff_fd < 0)
                return v->diff_fd;
        uint64_t diff_size;
        r = v->io->size(v->io, v->diff_fd, &diff_size);
        if (r < 0)
                return r;

        r = chunkmap_init(&v->map, v->n_chunks);
        if (r < 0)
                return r;

        struct replay rp = { .v = v };
        struct jr_scan scan;
        r = journal_scan(buf, (size_t) meta_size, s.first_seq, replay_record, &rp, &scan);
        if (r < 0)
                return r;
        v->next_seq = scan.next_seq;
        v->meta_end = scan.end;
        eng_snaps_changed(v);
        /* Records were lost (a damaged frame with valid ones after it, or a bad frame inside the
         * checkpoint, which is never torn) or contradict each other: nothing persistent can be
         * proven. A file that simply ends inside the checkpoint is the engine's own emptying of
         * the journal (eng_drop_all_locked truncates it to the superblock). */
        bool damaged = scan.damaged || rp.bad || (scan.end < s.checkpoint_end && meta_size > scan.end);
        if (damaged)
                invalidate_all(v);

        /* Exceptions no valid snapshot reads any more (deleted, invalid, or non-persistent ids). */
        chunkmap_remove_if(&v->map, exc_unserved, NULL, v);

        /* Every remaining exception must own a distinct slot inside the diff area. */
        uint64_t high = DIV_ROUND_UP(diff_size, v->chunk_size); /* the last slot may be partial */
        diffarea_init(&v->da, high, slots_for(v->diff_max, v->chunk_size));
        _cleanup_free_ uint8_t *seen = calloc(1, (size_t) (high / 8 + 1));
        if (!seen)
                return -ENOMEM;
        struct slot_check sc = { .v = v, .seen = seen };
        chunkmap_foreach(&v->map, check_slot, &sc);
        if (sc.bad)
                damaged = true;
        if (damaged && !repair)
                /* Change nothing: the caller decides (engine_volume_repair). */
                return -EUCLEAN;
        if (damaged) {
                char keep[PATH_MAX];
                eng_path_join(keep, sizeof keep, v->dir, "meta.damaged");
                r = save_copy(v, keep, buf, (size_t) meta_size);
                if (r < 0)
                        return r;
        }
        if (sc.bad) {
                invalidate_all(v);
                chunkmap_remove_if(&v->map, exc_unserved, NULL, v);
                v->da.used = 0;
                memset(seen, 0, (size_t) (high / 8 + 1));
                sc.max_used = 0;
        }
        /* Slots past the last one in use are dropped from the file. */
        v->da.high = sc.max_used;
        r = diffarea_rebuild_free(&v->da, seen);
        if (r < 0)
                return r;
        r = v->io->truncate(v->io, v->diff_fd, v->da.high * v->chunk_size);
        if (r < 0)
                return r;
        r = chunkmap_foreach(&v->map, set_written, v);
        if (r < 0)
                return r;

        probe_reflink(v);

        /* Start from a compact journal: this also drops a torn tail and records invalid states. */
        pthread_mutex_lock(&v->lock);
        r = eng_checkpoint_locked(v);
        pthread_mutex_unlock(&v->lock);
        if ((r == -ENOSPC || r == -EDQUOT) && !damaged) {
                /* No room for a new meta file: go on appending to this one, without its torn tail
                 * (truncating needs no space), so that a full disk does not lock the volume. */
                r = v->io->truncate(v->io, v->meta_fd, scan.end);
                if (r >= 0)
                        r = v->io->sync(v->io, v->meta_fd);
        }
        return r;
}

static int save_copy(eng_volume *v, const char *path, const void *buf, size_t len) {
        int fd = v->io->open(v->io, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                return fd;
        int r = v->io->pwrite(v->io, fd, buf, len, 0);
        if (r >= 0)
                r = v->io->sync(v->io, fd);
        v->io->close(v->io, fd);
        return r;
}

static int volume_open(const char *dir, const struct eng_io *io, bool repair, eng_volume **ret) {
        if (!dir || !io || !ret)
                return -EINVAL;
        eng_volume *v = volume_alloc(dir, io);
        if (!v)
                return -ENOMEM;
        int r = volume_load(v, repair);
        if (r < 0) {
                volume_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

int engine_volume_open_io(const char *dir, const struct eng_io *io, eng_volume **ret) {
        return volume_open(dir, io, false, ret);
}

int engine_volume_repair(const char *dir) {
        eng_volume *v = NULL;
        int r = volume_open(dir, &eng_io_posix, true, &v);
        if (r < 0)
                return r;
        engine_volume_close(v);
        return 0;
}

int engine_volume_open(const char *dir, eng_volume **ret) {
        return engine_volume_open_io(dir, &eng_io_posix, ret);
}

int engine_volume_create_io(const char *dir, const struct eng_create_params *p, const struct eng_io *io,
                            eng_volume **ret) {
        char path[PATH_MAX], tmp[PATH_MAX];
        struct jr_super s = { .version = JR_VERSION, .first_seq = 1 };
        int fd = -1, r;

        if (!dir || !p || !io || !ret)
                return -EINVAL;
        uint32_t chunk = p->chunk_size ? p->chunk_size : ENG_CHUNK_DEFAULT;
        if (chunk < ENG_CHUNK_MIN || chunk > ENG_CHUNK_MAX || !IS_POWER_OF_2(chunk))
                return -EINVAL;
        if (p->policy != ENG_POLICY_PROTECT_VOLUME && p->policy != ENG_POLICY_PROTECT_SNAPSHOTS)
                return -EINVAL;
        if (strlen(dir) + 16 >= PATH_MAX)
                return -ENAMETOOLONG;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        eng_path_join(path, sizeof path, dir, "meta");
        if (access(path, F_OK) == 0)
                return -EEXIST;

        uint64_t size = p->size;
        if (p->image) {
                if (!realpath(p->image, s.image))
                        return negative_errno();
                fd = io->open(io, s.image, O_RDWR, 0);
                if (fd < 0)
                        return fd;
                uint64_t isz;
                r = io->size(io, fd, &isz);
                io->close(io, fd);
                if (r < 0)
                        return r;
                if (size == 0)
                        size = isz & ~(uint64_t) 511;
                if (size > isz)
                        return -ERANGE;
        }
        if (size == 0 || size % 512 != 0 || size > (UINT64_C(1) << 60) || size / chunk >= UINT32_MAX)
                return -EINVAL;
        s.size = size;
        s.chunk_size = chunk;

        if (!p->image) {
                eng_path_join(path, sizeof path, dir, "image");
                fd = io->open(io, path, O_RDWR | O_CREAT | O_EXCL, 0600);
                if (fd < 0)
                        return fd;
                r = io->truncate(io, fd, size);
                if (r >= 0)
                        r = io->sync(io, fd);
                io->close(io, fd);
                if (r < 0)
                        return r;
        }
        eng_path_join(path, sizeof path, dir, "diff");
        fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                return fd;
        io->close(io, fd);

        /* The superblock and the limit, written aside and renamed into place: a volume exists
         * once DIR/meta does, and then it is whole. */
        eng_path_join(tmp, sizeof tmp, dir, "meta.new");
        fd = io->open(io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                return fd;
        _cleanup_free_ uint8_t *sb = calloc(1, JR_SUPER_SIZE);
        struct jr_frame f = {};
        r = sb ? 0 : -ENOMEM;
        uint64_t diff_max = p->diff_max ? p->diff_max : ENG_DIFF_UNBOUNDED;
        struct jr_record rec = { .type = JR_LIMIT, .diff_max = diff_max, .policy = (uint32_t) p->policy };
        if (r >= 0)
                r = journal_frame_add(&f, &rec);
        if (r >= 0) {
                journal_frame_seal(&f, s.first_seq);
                r = io->pwrite(io, fd, f.buf, f.len, JR_SUPER_SIZE);
        }
        if (r >= 0) {
                s.checkpoint_end = JR_SUPER_SIZE + f.len;
                journal_encode_super(&s, sb);
                r = io->pwrite(io, fd, sb, JR_SUPER_SIZE, 0);
        }
        journal_frame_release(&f);
        if (r >= 0)
                r = io->sync(io, fd);
        io->close(io, fd);
        eng_path_join(path, sizeof path, dir, "meta");
        if (r >= 0)
                r = io->rename(io, tmp, path);
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return engine_volume_open_io(dir, io, ret);
}

int engine_volume_create(const char *dir, const struct eng_create_params *p, eng_volume **ret) {
        return engine_volume_create_io(dir, p, &eng_io_posix, ret);
}

void engine_volume_close(eng_volume *v) {
        if (!v)
                return;
        pthread_mutex_lock(&v->lock);
        while (v->committing)
                pthread_cond_wait(&v->commit_cond, &v->lock);
        /* Non-persistent snapshots end here; the checkpoint keeps the rest and syncs the image. */
        if (v->journal_error < 0 || eng_checkpoint_locked(v) < 0)
                v->io->sync(v->io, v->image_fd);
        pthread_mutex_unlock(&v->lock);
        volume_free(v);
}

void engine_volume_abandon(eng_volume *v) {
        volume_free(v);
}
