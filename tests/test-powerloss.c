/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * test-powerloss: the engine's crash rules under simulated power loss.
 *
 * Each trial runs a seeded, single-threaded workload (writes, zeroes,
 * persistent and non-persistent snapshots, deletes, flushes, reverts) on a
 * volume whose I/O goes through faultio. A dry run of the same workload counts
 * its sync calls; the real run crashes at a sync chosen at random among them,
 * every other trial among the journal's only. Trial kinds aim at one operation:
 * "delete" and "revert" at the syncs of one snapshot delete or revert, "group"
 * at the journal commits of four threads writing at once (sharing frames),
 * "close" at the syncs of engine_volume_close. The unsynced changes are then
 * dropped, torn, or torn with the grown file sizes kept (faultio's three modes
 * in turn; the last leaves torn journal appends, every other time torn at 16
 * bytes instead of 512 so that records are torn often). Two trials in eight
 * have a 48 KiB diff area under PROTECT_VOLUME, so that snapshots are reclaimed
 * and their slots reused. The volume is abandoned and reopened with real I/O,
 * and:
 *
 *  (a) every persistent snapshot whose creation returned and whose delete was
 *      never called is listed and VALID (with a small diff area the engine's
 *      reclaims count as deletes, and the write that crashed may have
 *      reclaimed the oldest);
 *  (b) every listed snapshot is a persistent one the model created (or the one
 *      whose creation the crash interrupted); VALID ones read byte-exact, an
 *      INVALID one fails reads with -EIO, and any INVALID one fails the trial
 *      (a correct engine recognises torn commits as torn);
 *  (c) every live byte holds its value at the last successful flush or
 *      persistent snapshot creation (or clean close), or a value written to it
 *      since; no non-persistent snapshot survives.
 * After a crash inside a revert, a second revert must give the snapshot's
 * content exactly. Every trial ends by checking the volume is usable.
 *
 * Last, two deterministic cases: a snapshot reclaimed to make room (or
 * deleted), whose deletion the power cuts, must come back with its own data
 * even though another writer overwrote one of its chunks meanwhile.
 *
 * Options: --seed=N / LVSS_TEST_SEED, --iterations=N / LVSS_TEST_ITERATIONS
 * (trials, default 48), --trial=N / LVSS_TEST_TRIAL (run only trial N),
 * LVSS_TEST_KEEP=1 keeps the failing trial's directory.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "engine/engine.h"
#include "engine/journal.h"
#include "tests/faultio.h"

#define MAX_SNAPS 48
#define MAX_LIVE_SNAPS 12
#define LOG_LINES 40
#define DIFF_BOUNDED (48u * 4096u)
#define CHUNK_RR 4096u

enum kind { KIND_GENERIC, KIND_DELETE, KIND_REVERT, KIND_GROUP, KIND_CLOSE };
static const char *const kind_name[] = { "generic", "delete", "revert", "group", "close" };

struct wrec {
        uint64_t off, len;
        uint8_t *data; /* NULL: zeros */
};

struct psnap {
        uint32_t id;
        bool persistent;
        bool delete_called, deleted;
        bool reclaimed; /* deleted by the engine to make room (bounded trials) */
        uint8_t *data;
};

struct trial {
        unsigned idx;
        uint64_t seed, rng;
        enum kind kind;
        faultio_mode mode;
        bool dry;
        unsigned n_ops, special_at;
        uint64_t crash_at; /* absolute sync number (journal_only: of DIR/meta* syncs); 0: at the end */
        bool journal_only; /* the crash hits a sync of the journal */

        /* sync counts found by the dry run */
        uint64_t s_setup, s_end, s_special_begin, s_special_end;
        uint64_t m_setup, m_end, m_special_begin, m_special_end; /* the same for the journal's syncs */

        char *dir;
        faultio *fio;
        eng_volume *v;
        uint64_t size;
        uint32_t chunk;
        unsigned sector; /* faultio's tearing granularity */
        bool bounded; /* a small diff area under PROTECT_VOLUME: the engine reclaims snapshots */
        uint64_t reclaims;

        /* model */
        uint8_t *live, *durable;
        struct wrec *recs;
        size_t n_recs, cap_recs;
        struct psnap snaps[MAX_SNAPS];
        size_t n_snaps;
        struct psnap pending; /* a creation the crash interrupted */
        bool have_pending;
        uint32_t max_id; /* highest id handed out */
        uint32_t max_pid; /* highest persistent id that may exist */
        const char *crash_op;
        bool crashed_in_special;
        uint32_t revert_target;

        char log[LOG_LINES][128];
        unsigned n_log;
};

static struct {
        uint64_t seed;
        struct trial *t;
} G;

__attribute__((format(printf, 2, 3))) static void note(struct trial *t, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(t->log[t->n_log % LOG_LINES], sizeof t->log[0], fmt, ap);
        va_end(ap);
        t->n_log++;
}

__attribute__((format(printf, 1, 2))) _Noreturn static void fail(const char *fmt, ...) {
        struct trial *t = G.t;
        va_list ap;

        fflush(stdout);

        fprintf(stderr, "\nFAIL seed=%" PRIu64, G.seed);
        if (t && t->idx == UINT32_MAX)
                fprintf(stderr, " (the race case: %s)", t->crash_op);
        else if (t)
                fprintf(stderr, " trial=%u (kind %s, %s, crash at sync %" PRIu64 " during %s)", t->idx,
                        kind_name[t->kind], faultio_mode_name(t->mode), t->crash_at,
                        t->crash_op ? t->crash_op : "-");
        fprintf(stderr, ": ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (t) {
                fprintf(stderr, "\nlast operations of the trial (oldest first):\n");
                for (unsigned i = t->n_log > LOG_LINES ? t->n_log - LOG_LINES : 0; i < t->n_log; i++)
                        fprintf(stderr, "  %s\n", t->log[i % LOG_LINES]);
                if (t->idx == UINT32_MAX)
                        fprintf(stderr, "rerun with LVSS_TEST_SEED=%" PRIu64 " LVSS_TEST_ITERATIONS=0\n",
                                G.seed);
                else
                        fprintf(stderr, "rerun with LVSS_TEST_SEED=%" PRIu64 " LVSS_TEST_TRIAL=%u\n", G.seed,
                                t->idx);
                if (t->dir && tst_env_u64("LVSS_TEST_KEEP", 0) == 0)
                        tst_rm_rf(t->dir);
                else if (t->dir)
                        fprintf(stderr, "volume kept in %s\n", t->dir);
        }
        fflush(stderr);
        _exit(1);
}

#define CHECK_R(expr, what, ...)                                                                            \
        do {                                                                                                \
                int _r = (expr);                                                                            \
                if (_r < 0)                                                                                 \
                        fail("%s: " what ": %s", #expr, ##__VA_ARGS__, strerror(-_r));                      \
        } while (0)

static void *xmemdup(const void *p, size_t n) {
        void *q = malloc(n);
        if (!q)
                fail("out of memory");
        return memcpy(q, p, n);
}

static void compare(const char *what, uint32_t id, const uint8_t *buf, const uint8_t *expect, size_t len,
                    uint64_t off, uint32_t chunk) {
        if (memcmp(buf, expect, len) == 0)
                return;
        size_t i = 0, n = 0;
        while (buf[i] == expect[i])
                i++;
        for (size_t j = i; j < len; j++)
                n += buf[j] != expect[j];
        fail("%s (snapshot id %u) [%" PRIu64 ", +%zu): first difference at byte %" PRIu64 " (chunk %" PRIu64
             ", +%" PRIu64 "): read 0x%02x, expected 0x%02x; %zu bytes differ",
             what, id, off, len, off + i, (off + i) / chunk, (off + i) % chunk, buf[i], expect[i], n);
}

/* ---- model of durability ---- */

static void recs_clear(struct trial *t) {
        for (size_t i = 0; i < t->n_recs; i++)
                free(t->recs[i].data);
        t->n_recs = 0;
}

/* The live content is now durable. */
static void model_durable(struct trial *t) {
        memcpy(t->durable, t->live, t->size);
        recs_clear(t);
}

/* Bytes [off, off+len) may now hold DATA (NULL: zeros). */
static void model_rec(struct trial *t, uint64_t off, uint64_t len, const uint8_t *data) {
        if (t->n_recs == t->cap_recs) {
                size_t n = MAX((size_t) 16, t->cap_recs * 2);
                struct wrec *r = realloc(t->recs, n * sizeof *r);
                if (!r)
                        fail("out of memory");
                t->recs = r;
                t->cap_recs = n;
        }
        t->recs[t->n_recs++] = (struct wrec){ off, len, data ? xmemdup(data, len) : NULL };
}

static struct psnap *model_find(struct trial *t, uint32_t id) {
        for (size_t i = 0; i < t->n_snaps; i++)
                if (t->snaps[i].id == id)
                        return &t->snaps[i];
        return NULL;
}

static void sync_reclaims(struct trial *t);

/* The snapshots not deleted (nor reclaimed: looked up first in bounded trials), optionally only
 * persistent ones; their indexes go to IDX. */
static size_t live_snaps(struct trial *t, bool persistent_only, size_t *idx) {
        size_t n = 0;

        if (t->bounded && !faultio_crashed(t->fio))
                sync_reclaims(t);
        for (size_t i = 0; i < t->n_snaps; i++)
                if (!t->snaps[i].delete_called && (!persistent_only || t->snaps[i].persistent))
                        idx[n++] = i;
        return n;
}

/* ---- the workload ---- */

/* An operation failed: it must be the crash. Returns true when the workload must stop. */
static bool op_failed(struct trial *t, int r, const char *op) {
        if (r == -EIO && faultio_crashed(t->fio)) {
                t->crash_op = op;
                note(t, "  -> -EIO: crashed at sync %" PRIu64, faultio_syncs(t->fio));
                return true;
        }
        fail("%s failed with %s (%d) without a crash (shim crashed: %d)", op, strerror(-r), r,
             faultio_crashed(t->fio));
}

/* An operation that promises durability returned success: no sync it made may have failed. */
static void op_durable_ok(struct trial *t, const char *op) {
        if (faultio_crashed(t->fio))
                fail("%s returned success although the sync at which the crash was injected failed with "
                     "-EIO",
                     op);
}

static bool do_write(struct trial *t) {
        uint64_t max = tst_rand_below(&t->rng, 4) == 0 ? 256 * 1024 : 32 * 1024;
        size_t len = tst_rand_between(&t->rng, 1, MIN(max, t->size));
        uint64_t off = tst_rand_below(&t->rng, t->size - len + 1);
        unsigned k = (unsigned) tst_rand_below(&t->rng, 12);
        _cleanup_free_ uint8_t *buf = NULL;
        int r;

        if (k == 0) {
                note(t, "write_zeroes [%" PRIu64 ", +%zu)", off, len);
                model_rec(t, off, len, NULL);
                r = engine_write_zeroes(t->v, len, off);
        } else if (k == 1) {
                note(t, "discard [%" PRIu64 ", +%zu)", off, len);
                model_rec(t, off, len, NULL);
                r = engine_discard(t->v, len, off);
        } else {
                buf = malloc(len);
                if (!buf)
                        fail("out of memory");
                tst_rand_fill(&t->rng, buf, len);
                note(t, "write [%" PRIu64 ", +%zu)", off, len);
                model_rec(t, off, len, buf);
                r = engine_write(t->v, buf, len, off);
        }
        if (r < 0)
                return op_failed(t, r, k == 0 ? "write_zeroes" : k == 1 ? "discard" : "write");
        if (buf)
                memcpy(t->live + off, buf, len);
        else
                memset(t->live + off, 0, len);
        return false;
}

static bool do_create(struct trial *t, bool persistent) {
        uint32_t id;

        if (t->n_snaps == MAX_SNAPS)
                return false;
        note(t, "create %s snapshot", persistent ? "persistent" : "non-persistent");
        t->pending = (struct psnap){ .persistent = persistent, .data = xmemdup(t->live, t->size) };
        int r = engine_snapshot_create(
                t->v, &(struct eng_snap_params){ .persistent = persistent, .label = "pl" }, &id);
        if (r < 0) {
                t->have_pending = true;
                return op_failed(
                        t, r, persistent ? "create persistent snapshot" : "create non-persistent snapshot");
        }
        note(t, "  -> id %u", id);
        if (persistent) {
                op_durable_ok(t, "creating a persistent snapshot");
                model_durable(t);
        }
        if (id <= t->max_id)
                fail("snapshot id %u is not above earlier id %u", id, t->max_id);
        t->max_id = id;
        if (persistent)
                t->max_pid = id;
        t->pending.id = id;
        t->snaps[t->n_snaps++] = t->pending;
        t->pending = (struct psnap){};
        return false;
}

static bool do_delete(struct trial *t, bool persistent_only) {
        size_t idx[MAX_SNAPS], n = live_snaps(t, persistent_only, idx);

        if (n == 0)
                return false;
        struct psnap *s = &t->snaps[idx[tst_rand_below(&t->rng, n)]];
        note(t, "delete snapshot %u (%s)", s->id, s->persistent ? "persistent" : "non-persistent");
        s->delete_called = true;
        int r = engine_snapshot_delete(t->v, s->id);
        if (r < 0)
                return op_failed(t, r, "snapshot delete");
        s->deleted = true;
        return false;
}

static bool do_revert(struct trial *t) {
        /* Not with a bounded diff area: a revert there can reclaim its own source (test-diffarea-full
         * covers that), which is no matter of power loss. */
        if (t->bounded)
                return do_write(t);
        size_t idx[MAX_SNAPS], n = live_snaps(t, true, idx);

        if (n == 0)
                return false;
        struct psnap *s = &t->snaps[idx[tst_rand_below(&t->rng, n)]];
        note(t, "revert to snapshot %u", s->id);
        t->revert_target = s->id;
        model_rec(t, 0, t->size, s->data);
        int r = engine_revert(t->v, s->id);
        if (r < 0)
                return op_failed(t, r, "revert");
        memcpy(t->live, s->data, t->size);
        return false;
}

static bool do_flush(struct trial *t) {
        note(t, "flush");
        int r = engine_flush(t->v);
        if (r < 0)
                return op_failed(t, r, "flush");
        op_durable_ok(t, "flush");
        model_durable(t);
        return false;
}

static bool do_verify(struct trial *t) {
        size_t idx[MAX_SNAPS], n = live_snaps(t, false, idx);
        size_t len = tst_rand_between(&t->rng, 1, MIN(t->size, (uint64_t) 128 * 1024));
        uint64_t off = tst_rand_below(&t->rng, t->size - len + 1);
        _cleanup_free_ uint8_t *buf = malloc(len);
        int r;

        if (!buf)
                fail("out of memory");
        if (n > 0 && tst_rand_below(&t->rng, 2)) {
                struct psnap *s = &t->snaps[idx[tst_rand_below(&t->rng, n)]];
                r = engine_snapshot_read(t->v, s->id, buf, len, off);
                if (r < 0)
                        fail("reading snapshot %u before the crash: %s", s->id, strerror(-r));
                compare("snapshot before the crash", s->id, buf, s->data + off, len, off, t->chunk);
        } else {
                r = engine_read(t->v, buf, len, off);
                if (r < 0)
                        fail("reading the live volume before the crash: %s", strerror(-r));
                compare("live volume before the crash", 0, buf, t->live + off, len, off, t->chunk);
        }
        return false;
}

/* ---- concurrent writes sharing journal commits ---- */

#define GROUP_THREADS 4
#define GROUP_WRITES 6

struct gwriter {
        pthread_t thread;
        struct trial *t;
        struct wrec w[GROUP_WRITES];
        unsigned n_done; /* writes that returned success */
        int r; /* the first failure */
};

static void *gwriter_main(void *p) {
        struct gwriter *g = p;

        for (unsigned k = 0; k < GROUP_WRITES; k++) {
                int r = engine_write(g->t->v, g->w[k].data, g->w[k].len, g->w[k].off);
                if (r < 0) {
                        g->r = r;
                        return NULL;
                }
                g->n_done++;
        }
        return NULL;
}

/* Four threads write to disjoint regions (sharing the chunks at their unaligned edges) right after
 * a persistent snapshot, so that their copy-on-write records share journal frames. */
static bool do_group(struct trial *t) {
        struct gwriter g[GROUP_THREADS] = {};
        uint64_t bounds[GROUP_THREADS + 1];
        bool crashed = false;

        bounds[0] = 0;
        bounds[GROUP_THREADS] = t->size;
        for (unsigned i = 1; i < GROUP_THREADS; i++)
                bounds[i] = t->size / GROUP_THREADS * i + tst_rand_between(&t->rng, 1, t->chunk - 1);
        note(t, "%u threads x %u concurrent writes", GROUP_THREADS, GROUP_WRITES);
        for (unsigned i = 0; i < GROUP_THREADS; i++) {
                uint64_t rlen = bounds[i + 1] - bounds[i];
                g[i].t = t;
                for (unsigned k = 0; k < GROUP_WRITES; k++) {
                        size_t len = tst_rand_between(&t->rng, 1, MIN(rlen, (uint64_t) 48 * 1024));
                        uint64_t off = bounds[i] + tst_rand_below(&t->rng, rlen - len + 1);
                        uint8_t *data = malloc(len);
                        if (!data)
                                fail("out of memory");
                        tst_rand_fill(&t->rng, data, len);
                        model_rec(t, off, len, data); /* any of them may land */
                        g[i].w[k] = (struct wrec){ off, len, data };
                }
        }
        for (unsigned i = 0; i < GROUP_THREADS; i++)
                if (pthread_create(&g[i].thread, NULL, gwriter_main, &g[i]) != 0)
                        fail("pthread_create failed");
        for (unsigned i = 0; i < GROUP_THREADS; i++)
                pthread_join(g[i].thread, NULL);
        for (unsigned i = 0; i < GROUP_THREADS; i++) {
                for (unsigned k = 0; k < g[i].n_done; k++)
                        memcpy(t->live + g[i].w[k].off, g[i].w[k].data, g[i].w[k].len);
                if (g[i].r < 0) {
                        if (g[i].r != -EIO || !faultio_crashed(t->fio))
                                fail("concurrent write failed with %s without a crash", strerror(-g[i].r));
                        crashed = true;
                }
                for (unsigned k = 0; k < GROUP_WRITES; k++)
                        free(g[i].w[k].data);
        }
        if (crashed) {
                t->crash_op = "concurrent writes";
                note(t, "  -> -EIO: crashed at sync %" PRIu64, faultio_syncs(t->fio));
        }
        return crashed;
}

/* engine_volume_close, whose checkpoint the power may cut; the workload ends with it. */
static bool do_close(struct trial *t) {
        note(t, "close");
        engine_volume_close(t->v);
        t->v = NULL;
        if (faultio_crashed(t->fio)) {
                t->crash_op = "close";
                note(t, "  -> crashed at sync %" PRIu64, faultio_syncs(t->fio));
        } else
                model_durable(t); /* a close flushes */
        return true;
}

/* The special operation of the delete, revert, group and close kinds; makes sure it has a target. */
static bool do_special(struct trial *t) {
        size_t idx[MAX_SNAPS];
        bool stop;

        if (t->kind != KIND_GROUP && live_snaps(t, true, idx) == 0) {
                if (do_create(t, true))
                        return true;
                /* Give the snapshot exceptions to free or restore. */
                for (int i = 0; i < 4; i++)
                        if (do_write(t))
                                return true;
        }
        if (t->kind == KIND_GROUP && do_create(t, true))
                return true;
        if (t->bounded)
                sync_reclaims(t); /* the writes above may have reclaimed snapshots */
        if (t->dry) {
                t->s_special_begin = faultio_syncs(t->fio);
                t->m_special_begin = faultio_syncs_of(t->fio, "meta");
        }
        switch (t->kind) {
        case KIND_DELETE:
                stop = do_delete(t, true);
                break;
        case KIND_REVERT:
                stop = do_revert(t);
                break;
        case KIND_GROUP:
                stop = do_group(t);
                break;
        default:
                stop = do_close(t);
                break;
        }
        if (t->dry) {
                t->s_special_end = faultio_syncs(t->fio);
                t->m_special_end = faultio_syncs_of(t->fio, "meta");
        }
        if (stop && faultio_crashed(t->fio))
                t->crashed_in_special = true;
        return stop;
}

/* Bounded trials: marks the snapshots the engine reclaimed, which must be the oldest ones. */
static void sync_reclaims(struct trial *t) {
        _cleanup_free_ struct eng_snap_info *l = NULL;
        size_t n;
        bool survivor = false;

        CHECK_R(engine_snapshot_list(t->v, &l, &n), "listing snapshots");
        for (size_t i = 0; i < t->n_snaps; i++) {
                struct psnap *s = &t->snaps[i];
                bool found = false;
                if (s->delete_called)
                        continue;
                for (size_t j = 0; j < n && !found; j++)
                        found = l[j].id == s->id;
                if (found) {
                        survivor = true;
                        continue;
                }
                if (survivor)
                        fail("snapshot %u was reclaimed while an older one survives", s->id);
                note(t, "  (snapshot %u reclaimed by the engine)", s->id);
                s->delete_called = s->deleted = s->reclaimed = true;
                t->reclaims++;
        }
}

static void workload(struct trial *t) {
        /* Random content everywhere, made durable, before anything is armed. */
        {
                _cleanup_free_ uint8_t *buf = malloc(t->size);
                if (!buf)
                        fail("out of memory");
                tst_rand_fill(&t->rng, buf, t->size);
                CHECK_R(engine_write(t->v, buf, t->size, 0), "initial fill");
                CHECK_R(engine_flush(t->v), "initial flush");
                memcpy(t->live, buf, t->size);
                model_durable(t);
        }
        if (t->dry) {
                t->s_setup = faultio_syncs(t->fio);
                t->m_setup = faultio_syncs_of(t->fio, "meta");
        } else if (t->crash_at > 0 && t->journal_only)
                faultio_arm_of(t->fio, t->crash_at - faultio_syncs_of(t->fio, "meta"), "meta");
        else if (t->crash_at > 0)
                faultio_arm(t->fio, t->crash_at - faultio_syncs(t->fio));

        for (unsigned i = 0; i < t->n_ops; i++) {
                size_t idx[MAX_SNAPS];
                uint64_t k = tst_rand_below(&t->rng, 100);
                bool stop;

                if (t->kind != KIND_GENERIC && i == t->special_at)
                        stop = do_special(t);
                else if (k < 48)
                        stop = do_write(t);
                else if (k < 60)
                        stop = live_snaps(t, false, idx) < MAX_LIVE_SNAPS ? do_create(t, true)
                                                                          : do_delete(t, false);
                else if (k < 64)
                        stop = live_snaps(t, false, idx) < MAX_LIVE_SNAPS ? do_create(t, false) : false;
                else if (k < 74)
                        stop = do_delete(t, false);
                else if (k < 83)
                        stop = do_flush(t);
                else if (k < 86)
                        stop = t->kind == KIND_GENERIC ? do_revert(t) : do_write(t);
                else
                        stop = do_verify(t);
                if (stop)
                        return;
                if (t->bounded)
                        sync_reclaims(t); /* the op's writes may have reclaimed snapshots */
        }
        if (t->dry) {
                t->s_end = faultio_syncs(t->fio);
                t->m_end = faultio_syncs_of(t->fio, "meta");
        }
}

/* ---- the checks after recovery ---- */

static void check_live(struct trial *t, const uint8_t *img) {
        for (uint64_t i = 0; i < t->size; i++) {
                if (img[i] == t->durable[i])
                        continue;
                bool ok = false;
                for (size_t k = 0; k < t->n_recs && !ok; k++) {
                        const struct wrec *w = &t->recs[k];
                        if (i >= w->off && i < w->off + w->len)
                                ok = img[i] == (w->data ? w->data[i - w->off] : 0);
                }
                if (ok)
                        continue;
                char cands[256] = "";
                unsigned nc = 0;
                for (size_t k = 0; k < t->n_recs && nc < 12; k++) {
                        const struct wrec *w = &t->recs[k];
                        if (i >= w->off && i < w->off + w->len) {
                                snprintf(cands + strlen(cands), sizeof cands - strlen(cands), " 0x%02x",
                                         w->data ? w->data[i - w->off] : 0);
                                nc++;
                        }
                }
                fail("live byte %" PRIu64 " (chunk %" PRIu64 ", +%" PRIu64 ") reads 0x%02x after recovery: "
                     "not its durable value 0x%02x nor any value written since (%s ); %zu writes since the "
                     "last "
                     "durable point",
                     i, i / t->chunk, i % t->chunk, img[i], t->durable[i], nc ? cands : " none", t->n_recs);
        }
}

struct counts {
        uint64_t trials, crashes_in_special, listed, verified, invalid, resurrected, pending_seen, modes[3];
        uint64_t reverted, kept, changes, torn_tails, damaged, bounded, reclaims, reclaimed_at_crash;
};

static void check_recovered(struct trial *t, struct counts *c) {
        _cleanup_free_ struct eng_snap_info *l = NULL;
        _cleanup_free_ uint8_t *buf = malloc(t->size);
        size_t n;
        unsigned invalid = 0;
        int r;

        if (!buf)
                fail("out of memory");
        CHECK_R(engine_snapshot_list(t->v, &l, &n), "listing snapshots after recovery");

        /* (b) everything listed is known, persistent, and exact (or invalid and unreadable). */
        for (size_t i = 0; i < n; i++) {
                struct psnap *s = model_find(t, l[i].id);
                const uint8_t *expect;

                if (!s) {
                        if (t->have_pending && t->pending.persistent && l[i].id > t->max_id) {
                                expect = t->pending.data;
                                c->pending_seen++;
                        } else
                                fail("snapshot %u is listed after recovery but was never created (or its "
                                     "creation "
                                     "failed before the crash)",
                                     l[i].id);
                } else {
                        if (!s->persistent)
                                fail("non-persistent snapshot %u survived the crash", s->id);
                        if (s->deleted)
                                c->resurrected++;
                        expect = s->data;
                }
                if (!l[i].persistent)
                        fail("snapshot %u is listed as non-persistent after recovery", l[i].id);
                if (i > 0 && l[i].id <= l[i - 1].id)
                        fail("snapshot list is not sorted by id: %u after %u", l[i].id, l[i - 1].id);
                c->listed++;
                t->max_pid = MAX(t->max_pid, l[i].id);
                if (l[i].state == ENG_SNAP_INVALID) {
                        invalid++;
                        r = engine_snapshot_read(t->v, l[i].id, buf, 1, 0);
                        if (r != -EIO)
                                fail("reading INVALID snapshot %u returned %d, expected -EIO", l[i].id, r);
                        continue;
                }
                if (l[i].state != ENG_SNAP_VALID)
                        fail("snapshot %u has unknown state %d", l[i].id, l[i].state);
                CHECK_R(engine_snapshot_read(t->v, l[i].id, buf, t->size, 0),
                        "reading snapshot %u after recovery", l[i].id);
                compare("snapshot after recovery", l[i].id, buf, expect, t->size, 0, t->chunk);
                c->verified++;
        }

        /* (a) nothing that must survive is missing; in bounded trials, the write that crashed may have
         * reclaimed the oldest ones first. */
        bool writing = t->crash_op &&
                       (strncmp(t->crash_op, "write", 5) == 0 || strcmp(t->crash_op, "discard") == 0 ||
                        strcmp(t->crash_op, "revert") == 0 || strcmp(t->crash_op, "concurrent writes") == 0);
        bool may_reclaim = t->bounded && writing;
        for (size_t i = 0; i < t->n_snaps; i++) {
                struct psnap *s = &t->snaps[i];
                const struct eng_snap_info *e = NULL;

                if (!s->persistent || s->delete_called)
                        continue;
                for (size_t j = 0; j < n; j++)
                        if (l[j].id == s->id)
                                e = &l[j];
                if (!e && may_reclaim) {
                        c->reclaimed_at_crash++;
                        continue;
                }
                may_reclaim = false;
                if (!e)
                        fail("persistent snapshot %u (created successfully, never deleted) is missing after "
                             "recovery",
                             s->id);
                if (e->state != ENG_SNAP_VALID)
                        fail("persistent snapshot %u is INVALID after a %s crash", s->id,
                             faultio_mode_name(t->mode));
        }
        c->invalid += invalid;
        if (invalid > 0)
                fail("%u snapshot(s) INVALID after recovery: a torn last commit must be recognised as torn",
                     invalid);

        /* (c) the live volume. */
        struct eng_volume_info info;
        CHECK_R(engine_volume_info(t->v, &info), "volume info after recovery");
        if (info.size != t->size || info.chunk_size != t->chunk || info.n_snapshots != n)
                fail("volume info after recovery: size %" PRIu64 " chunk %u snapshots %u, expected %" PRIu64
                     " %u %zu",
                     info.size, info.chunk_size, info.n_snapshots, t->size, t->chunk, n);
        if (info.diff_max != (t->bounded ? DIFF_BOUNDED : ENG_DIFF_UNBOUNDED) ||
            info.policy != ENG_POLICY_PROTECT_VOLUME || (t->bounded && info.diff_used > info.diff_max))
                fail("volume info after recovery: diff_max %" PRIu64 " diff_used %" PRIu64 " policy %d",
                     info.diff_max, info.diff_used, info.policy);
        CHECK_R(engine_read(t->v, buf, t->size, 0), "reading the live volume after recovery");
        check_live(t, buf);
        memcpy(t->live, buf, t->size);

        /* After a crash inside a revert, reverting again completes it. */
        if (t->kind == KIND_REVERT && t->crashed_in_special && t->revert_target != 0) {
                struct psnap *s = model_find(t, t->revert_target);
                if (!s)
                        fail("internal: revert target %u unknown", t->revert_target);
                CHECK_R(engine_revert(t->v, s->id), "reverting again to snapshot %u after the crash", s->id);
                CHECK_R(engine_read(t->v, buf, t->size, 0),
                        "reading the live volume after the second revert");
                compare("live volume after a second revert", s->id, buf, s->data, t->size, 0, t->chunk);
                memcpy(t->live, buf, t->size);
        }
}

/* The recovered volume keeps working: write, snapshot, reopen, read. */
static void check_usable(struct trial *t) {
        size_t len = tst_rand_between(&t->rng, 1, 20000);
        uint64_t off = tst_rand_below(&t->rng, t->size - len + 1);
        _cleanup_free_ uint8_t *buf = malloc(t->size);
        uint32_t id;

        if (!buf)
                fail("out of memory");
        tst_rand_fill(&t->rng, t->live + off, len);
        CHECK_R(engine_write(t->v, t->live + off, len, off), "writing after recovery");
        CHECK_R(engine_snapshot_create(t->v, &(struct eng_snap_params){ .persistent = true }, &id),
                "creating a snapshot after recovery");
        if (id <= t->max_pid)
                fail("snapshot id %u after recovery is not above the persistent ids before (%u)", id,
                     t->max_pid);
        tst_rand_fill(&t->rng, buf, len);
        CHECK_R(engine_write(t->v, buf, len, off), "writing after the post-recovery snapshot");
        engine_volume_close(t->v);
        t->v = NULL;
        CHECK_R(engine_volume_open(t->dir, &t->v), "reopening after recovery");
        CHECK_R(engine_snapshot_read(t->v, id, buf, t->size, 0), "reading snapshot %u after reopen", id);
        compare("post-recovery snapshot after reopen", id, buf, t->live, t->size, 0, t->chunk);
        engine_volume_close(t->v);
        t->v = NULL;
}

static void trial_free_model(struct trial *t) {
        for (size_t i = 0; i < t->n_snaps; i++)
                free(t->snaps[i].data);
        free(t->pending.data);
        recs_clear(t);
        free(t->recs);
        free(t->live);
        free(t->durable);
}

/* One pass of trial IDX: a dry run (DRY) or the real one. */
static void trial_pass(struct trial *t) {
        t->rng = t->seed;
        t->live = calloc(1, t->size);
        t->durable = calloc(1, t->size);
        if (!t->live || !t->durable)
                fail("out of memory");
        CHECK_R(tst_mkdtemp(t->dry ? "powerloss-dry" : "powerloss", &t->dir),
                "creating a temporary directory");
        tst_watchdog_cleanup(t->dir);
        CHECK_R(faultio_new(t->seed, &t->fio), "creating the fault injector");
        CHECK_R(faultio_set_sector_size(t->fio, t->sector), "setting the sector size");
        CHECK_R(engine_volume_create_io(
                        t->dir,
                        &(struct eng_create_params){ .size = t->size,
                                                     .chunk_size = t->chunk,
                                                     .diff_max = t->bounded ? DIFF_BOUNDED : 0,
                                                     .policy = ENG_POLICY_PROTECT_VOLUME },
                        faultio_io(t->fio), &t->v),
                "creating a volume on the fault injector");
        workload(t);
}

static int journal_nop(void *userdata, const struct jr_record *r) {
        return 0;
}

/* What the engine will find in its journal: a torn tail (harmless), or damage. */
static struct jr_scan journal_look(struct trial *t) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        struct jr_scan js = {};
        struct jr_super sb;
        FILE *f;
        long n;

        if (asprintf(&path, "%s/meta", t->dir) < 0)
                fail("out of memory");
        f = fopen(path, "re");
        if (!f)
                fail("cannot open %s after the crash: %m", path);
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
                fail("cannot size %s: %m", path);
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n)
                fail("cannot read %s", path);
        fclose(f);
        CHECK_R(journal_parse_super(buf, (size_t) n, &sb), "parsing the superblock of %s after the crash",
                path);
        CHECK_R(journal_scan(buf, (size_t) n, sb.first_seq, journal_nop, NULL, &js), "scanning %s", path);
        return js;
}

static void run_trial(unsigned idx, struct counts *c) {
        static const enum kind kind_of[] = { KIND_GENERIC, KIND_GENERIC, KIND_DELETE, KIND_GENERIC,
                                             KIND_REVERT,  KIND_GROUP,   KIND_CLOSE };
        struct trial dry = {}, *t;
        uint64_t seed = G.seed * 1000003ull + idx;
        uint64_t sel = seed ^ 0xc0ffee;
        uint64_t t0 = tst_now_ns();

        /* The dry run: same workload, no crash, to count its syncs. */
        dry = (struct trial){
                .idx = idx,
                .seed = seed,
                .kind = kind_of[idx % ELEMENTSOF(kind_of)],
                .mode = (faultio_mode) ((idx + idx / 6) % 3),
                .dry = true,
                .n_ops = 60,
                .size = 1024 * 1024 + 3584,
                .chunk = (idx / 3) % 3 == 2 ? 16384 : 4096,
        };
        /* Every other TEAR_KEEP_SIZE trial tears at 16 bytes, so that torn journal records are common. */
        dry.sector = dry.mode == FAULTIO_TEAR_KEEP_SIZE && (idx / 3) % 2 == 0 ? 16 : 512;
        /* One trial in four has a diff area of 48 KiB under PROTECT_VOLUME: snapshots get reclaimed and
         * their slots reused while the power may go. */
        dry.bounded = idx % 8 == 3 || idx % 8 == 6;
        dry.special_at = (unsigned) tst_rand_between(&sel, dry.n_ops / 3, dry.n_ops - 1);
        tst_watchdog(
                180,
                "trial %u (kind %s, %s) ran for 180 s (deadlock or livelock in the engine?); rerun with "
                "LVSS_TEST_SEED=%" PRIu64 " LVSS_TEST_TRIAL=%u",
                idx, kind_name[dry.kind], faultio_mode_name(dry.mode), G.seed, idx);
        G.t = &dry;
        trial_pass(&dry);
        engine_volume_close(dry.v);
        faultio_free(dry.fio);
        tst_rm_rf(dry.dir);
        free(dry.dir);

        t = calloc(1, sizeof *t);
        if (!t)
                fail("out of memory");
        *t = (struct trial){
                .idx = idx,
                .seed = seed,
                .kind = dry.kind,
                .mode = dry.mode,
                .n_ops = dry.n_ops,
                .special_at = dry.special_at,
                .size = dry.size,
                .chunk = dry.chunk,
                .sector = dry.sector,
                .bounded = dry.bounded,
        };
        trial_free_model(&dry);

        if (t->kind == KIND_GROUP && dry.m_special_end > dry.m_special_begin) {
                /* The group's syncs vary from run to run: aim at one of its journal commits. */
                t->journal_only = true;
                t->crash_at = dry.m_special_begin + 1 +
                              tst_rand_below(&sel, dry.m_special_end - dry.m_special_begin);
        } else if (t->kind != KIND_GENERIC && dry.s_special_end > dry.s_special_begin)
                t->crash_at = dry.s_special_begin + 1 +
                              tst_rand_below(&sel, dry.s_special_end - dry.s_special_begin);
        else if (idx % 2 == 1 && dry.m_end > dry.m_setup) {
                /* Every other trial crashes at a commit of the journal, where torn records can be. */
                t->journal_only = true;
                t->crash_at = dry.m_setup + 1 + tst_rand_below(&sel, dry.m_end - dry.m_setup);
        } else if (dry.s_end > dry.s_setup)
                t->crash_at = dry.s_setup + 1 + tst_rand_below(&sel, dry.s_end - dry.s_setup);
        G.t = t;
        trial_pass(t);

        if (!faultio_crashed(t->fio)) {
                /* Not reached (the workload made fewer syncs than the dry run): cut the power now. */
                note(t, "power cut after the workload");
                t->crash_op = "(after the workload)";
                faultio_crash_now(t->fio);
        }
        struct faultio_stats fs;
        CHECK_R(faultio_crash_apply(t->fio, t->mode, &fs), "applying the crash");
        struct jr_scan js = journal_look(t);
        c->torn_tails += js.torn;
        c->damaged += js.damaged;
        engine_volume_abandon(t->v);
        t->v = NULL;
        faultio_free(t->fio);
        t->fio = NULL;

        CHECK_R(engine_volume_open(t->dir, &t->v), "opening the volume after the crash");
        check_recovered(t, c);
        check_usable(t);

        c->trials++;
        c->bounded += t->bounded;
        c->reclaims += t->reclaims;
        c->crashes_in_special += t->crashed_in_special;
        c->changes += fs.changes;
        c->reverted += fs.sectors_reverted;
        c->kept += fs.sectors_kept;
        c->modes[t->mode]++;
        printf("trial %3u %-7s %-14s/%-3u chunk %5u%s: crash at %s sync %4" PRIu64 "/%4" PRIu64
               " during %-30s "
               "%3" PRIu64 " unsynced changes undone (%" PRIu64 " sectors reverted, %" PRIu64
               " kept)%s, %.2f s\n",
               idx, kind_name[t->kind], faultio_mode_name(t->mode), t->sector, t->chunk,
               t->bounded ? " bounded" : "", t->journal_only ? "journal" : "any", t->crash_at,
               t->journal_only ? dry.m_end : MAX(dry.s_end, dry.s_special_end),
               t->crash_op ? t->crash_op : "-", fs.changes, fs.sectors_reverted, fs.sectors_kept,
               js.torn      ? ", torn journal tail"
               : js.damaged ? ", DAMAGED journal"
                            : "",
               (tst_now_ns() - t0) / 1e9);
        fflush(stdout);

        tst_rm_rf(t->dir);
        free(t->dir);
        trial_free_model(t);
        free(t);
        G.t = NULL;
}

/* ---- a snapshot reclaimed while another writer goes on ---- */

/* An I/O layer over faultio that slows down the syncs of DIR/diff, to hold a commit open. */
static const struct eng_io *rr_inner;
static int rr_diff_fd = -1;
static bool rr_slow, rr_entered;

static int rr_open(const struct eng_io *io, const char *path, int flags, mode_t mode) {
        int fd = rr_inner->open(rr_inner, path, flags, mode);
        size_t n = strlen(path);
        if (fd >= 0 && n >= 5 && strcmp(path + n - 5, "/diff") == 0)
                __atomic_store_n(&rr_diff_fd, fd, __ATOMIC_RELEASE);
        return fd;
}
static int rr_close(const struct eng_io *io, int fd) {
        int expect = fd;
        __atomic_compare_exchange_n(&rr_diff_fd, &expect, -1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return rr_inner->close(rr_inner, fd);
}
static int rr_sync(const struct eng_io *io, int fd) {
        if (__atomic_load_n(&rr_slow, __ATOMIC_ACQUIRE) &&
            fd == __atomic_load_n(&rr_diff_fd, __ATOMIC_ACQUIRE)) {
                struct timespec ts = { 0, 500 * 1000 * 1000 };
                __atomic_store_n(&rr_entered, true, __ATOMIC_RELEASE);
                nanosleep(&ts, NULL);
        }
        return rr_inner->sync(rr_inner, fd);
}
static int rr_pread(const struct eng_io *io, int fd, void *buf, size_t len, uint64_t off) {
        return rr_inner->pread(rr_inner, fd, buf, len, off);
}
static int rr_pwrite(const struct eng_io *io, int fd, const void *buf, size_t len, uint64_t off) {
        return rr_inner->pwrite(rr_inner, fd, buf, len, off);
}
static int rr_truncate(const struct eng_io *io, int fd, uint64_t size) {
        return rr_inner->truncate(rr_inner, fd, size);
}
static int rr_punch(const struct eng_io *io, int fd, uint64_t off, uint64_t len) {
        return rr_inner->punch(rr_inner, fd, off, len);
}
static int rr_clone(const struct eng_io *io, int src, uint64_t soff, int dst, uint64_t doff, uint64_t len) {
        return rr_inner->clone(rr_inner, src, soff, dst, doff, len);
}
static int rr_rename(const struct eng_io *io, const char *from, const char *to) {
        return rr_inner->rename(rr_inner, from, to);
}
static int rr_size(const struct eng_io *io, int fd, uint64_t *ret_size) {
        return rr_inner->size(rr_inner, fd, ret_size);
}

struct rr_writer {
        pthread_t thread;
        eng_volume *v;
        const uint8_t *buf; /* NULL: delete snapshot ID instead of writing */
        uint64_t off;
        uint32_t id;
        int r;
};

static void *rr_writer_main(void *p) {
        struct rr_writer *w = p;
        w->r = w->buf ? engine_write(w->v, w->buf, CHUNK_RR, w->off) : engine_snapshot_delete(w->v, w->id);
        return NULL;
}

/*
 * Deterministic: on a full diff area under PROTECT_VOLUME, writer A's write makes the engine
 * reclaim persistent snapshot S (or, with EXPLICIT, A deletes S), whose deletion is then committed
 * (held open by a slow diff sync; the power fails at its journal sync). Meanwhile writer B
 * overwrites a chunk S still reads from the image, and flushes. After recovery S's deletion is
 * lost, so S is back: it must still read its own data, i.e. B must not have skipped the
 * copy-on-write for S before S's deletion was durable.
 */
static void run_reclaim_race(uint64_t seed, bool explicit) {
        static uint8_t orig[64 * CHUNK_RR], a[CHUNK_RR], b[CHUNK_RR], buf[64 * CHUNK_RR];
        struct eng_io io = { .open = rr_open,
                             .close = rr_close,
                             .pread = rr_pread,
                             .pwrite = rr_pwrite,
                             .sync = rr_sync,
                             .truncate = rr_truncate,
                             .punch = rr_punch,
                             .clone = rr_clone,
                             .rename = rr_rename,
                             .size = rr_size };
        struct trial t = { .idx = UINT32_MAX,
                           .kind = KIND_GENERIC,
                           .mode = FAULTIO_DROP,
                           .size = sizeof orig,
                           .chunk = CHUNK_RR,
                           .crash_op = explicit ? "the commit of a snapshot delete"
                                                : "the commit of a reclaim" };
        struct rr_writer wa = {};
        uint64_t rng = seed ^ 0x7ec1a1;
        eng_volume *v = NULL;
        uint32_t id;
        int r;

        G.t = &t;
        tst_watchdog(60, "the reclaim race case ran for 60 s; rerun with LVSS_TEST_SEED=%" PRIu64, seed);
        CHECK_R(tst_mkdtemp("powerloss-reclaim", &t.dir), "creating a temporary directory");
        tst_watchdog_cleanup(t.dir);
        CHECK_R(faultio_new(seed, &t.fio), "creating the fault injector");
        rr_inner = faultio_io(t.fio);
        rr_slow = rr_entered = false;
        CHECK_R(engine_volume_create_io(t.dir,
                                        &(struct eng_create_params){ .size = sizeof orig,
                                                                     .chunk_size = CHUNK_RR,
                                                                     .diff_max = 4 * CHUNK_RR,
                                                                     .policy = ENG_POLICY_PROTECT_VOLUME },
                                        &io, &v),
                "creating a volume");
        tst_rand_fill(&rng, orig, sizeof orig);
        CHECK_R(engine_write(v, orig, sizeof orig, 0), "filling");
        CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = true }, &id), "snapshot");
        note(&t, "snapshot %u, then chunks 0-3 written: the diff area (4 slots) is full", id);
        for (unsigned c = 0; c < 4; c++) {
                tst_rand_fill(&rng, buf, CHUNK_RR);
                CHECK_R(engine_write(v, buf, CHUNK_RR, (uint64_t) c * CHUNK_RR), "writing chunk %u", c);
        }
        CHECK_R(engine_flush(v), "flushing");

        tst_rand_fill(&rng, a, sizeof a);
        tst_rand_fill(&rng, b, sizeof b);
        faultio_arm_of(t.fio, 1, "meta");
        __atomic_store_n(&rr_slow, true, __ATOMIC_RELEASE);
        if (explicit)
                note(&t, "thread A: deletes snapshot %u", id);
        else
                note(&t, "writer A: chunk 10 (needs room: the engine reclaims snapshot %u)", id);
        wa = (struct rr_writer){ .v = v, .buf = explicit ? NULL : a, .off = 10 * CHUNK_RR, .id = id };
        if (pthread_create(&wa.thread, NULL, rr_writer_main, &wa) != 0)
                fail("pthread_create failed");
        for (int i = 0; i < 5000 && !__atomic_load_n(&rr_entered, __ATOMIC_ACQUIRE); i++) {
                struct timespec ts = { 0, 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        if (!__atomic_load_n(&rr_entered, __ATOMIC_ACQUIRE))
                fail("writer A's write never reached a commit (no sync of the diff area within 5 s)");
        note(&t, "writer B, during A's commit: chunk 20, then flush");
        r = engine_write(v, b, CHUNK_RR, 20 * CHUNK_RR);
        int rf = r >= 0 ? engine_flush(v) : r;
        note(&t, "  -> write %d, flush %d", r, rf);
        pthread_join(wa.thread, NULL);
        note(&t, "writer A -> %d", wa.r);
        __atomic_store_n(&rr_slow, false, __ATOMIC_RELEASE);
        if (!faultio_crashed(t.fio))
                faultio_crash_now(t.fio);
        CHECK_R(faultio_crash_apply(t.fio, FAULTIO_DROP, NULL), "applying the crash");
        engine_volume_abandon(v);
        faultio_free(t.fio);
        t.fio = NULL;

        CHECK_R(engine_volume_open(t.dir, &v), "opening after the crash");
        struct eng_snap_info info;
        r = engine_snapshot_get(v, id, &info);
        if (r >= 0 && info.state == ENG_SNAP_VALID) {
                CHECK_R(engine_snapshot_read(v, id, buf, sizeof orig, 0), "reading snapshot %u", id);
                compare(explicit ? "snapshot whose delete was not durable, after the crash"
                                 : "snapshot whose reclaim was not durable, after the crash",
                        id, buf, orig, sizeof orig, 0, CHUNK_RR);
        } else if (r >= 0)
                fail("snapshot %u is INVALID after the crash", id);
        engine_volume_close(v);
        tst_rm_rf(t.dir);
        free(t.dir);
        G.t = NULL;
        printf("%s race: snapshot %u %s after a crash in the commit of its deletion%s\n",
               explicit ? "delete" : "reclaim", id, r >= 0 ? "came back" : "stayed deleted",
               r >= 0 ? ", with its own data" : "");
}

int main(int argc, char **argv) {
        uint64_t seed = tst_seed(argc, argv);
        unsigned trials = (unsigned) tst_iterations(argc, argv, 48);
        struct counts c = {};
        uint64_t only = UINT64_MAX;
        uint64_t t0 = tst_now_ns();

        setvbuf(stdout, NULL, _IOLBF, 0); /* progress stays visible if a watchdog ends the run */

        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], "--trial=", 8) == 0)
                        only = strtoull(argv[i] + 8, NULL, 0);
        if (only == UINT64_MAX && getenv("LVSS_TEST_TRIAL"))
                only = tst_env_u64("LVSS_TEST_TRIAL", 0);

        G.seed = seed;
        printf("test-powerloss: seed %" PRIu64 " (LVSS_TEST_SEED), %u trials (LVSS_TEST_ITERATIONS)\n", seed,
               trials);
        fflush(stdout);
        for (unsigned i = 0; i < trials; i++)
                if (only == UINT64_MAX || only == i)
                        run_trial(i, &c);
        if (only == UINT64_MAX) {
                run_reclaim_race(seed, false);
                run_reclaim_race(seed, true);
        }

        tst_watchdog(0, "-");
        printf("test-powerloss: OK (seed %" PRIu64 "): %" PRIu64 " trials (%" PRIu64 " DROP, %" PRIu64
               " TEAR, %" PRIu64 " TEAR_KEEP_SIZE), %" PRIu64
               " crashes inside the targeted delete, revert, group or close, %" PRIu64
               " snapshots listed after recovery, %" PRIu64 " verified byte-exact, %" PRIu64
               " invalid, %" PRIu64 " deleted ones back after the crash, %" PRIu64
               " interrupted creations present; %" PRIu64 " unsynced changes undone, %" PRIu64
               " torn journal tails, %" PRIu64 " damaged journals; %" PRIu64 " bounded trials: %" PRIu64
               " snapshots reclaimed, %" PRIu64 " more by the crashing write; %.1f s\n",
               seed, c.trials, c.modes[0], c.modes[1], c.modes[2], c.crashes_in_special, c.listed,
               c.verified, c.invalid, c.resurrected, c.pending_seen, c.changes, c.torn_tails, c.damaged,
               c.bounded, c.reclaims, c.reclaimed_at_crash, (tst_now_ns() - t0) / 1e9);
        return 0;
}
