/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * test-model: the engine against a reference model.
 *
 * The model keeps the live volume and a full copy of every snapshot, taken at
 * its creation, in memory. Each round, four threads write (and zero) random
 * unaligned ranges of disjoint regions whose boundaries are not chunk-aligned,
 * so neighbours share the chunks at region edges, and read their own regions
 * back; a fifth thread reads random snapshots meanwhile. Between rounds the
 * main thread does one admin operation: snapshot create/delete, write_zeroes,
 * discard, revert, flush, close+open, abandon+open (a process crash),
 * changed-block tracking; and it checks the snapshot list, random reads and,
 * periodically, every snapshot and the live volume byte for byte. One round in
 * four also takes a snapshot while the writers run: read right away and again
 * after the round, it must not have changed, and each of its bytes must hold
 * the value from before the round or one written during it. Two of the three
 * configurations put random microsecond delays into pwrite to widen races.
 *
 * Changed-block tracking: every chunk whose bytes differ in the model must be
 * flagged; extras are counted, except that a chunk not written since FROM
 * must never be flagged.
 *
 * A separate small case fills a tiny volume with ENG_MAX_SNAPSHOTS snapshots
 * and expects -EMLINK for one more, and checks argument errors.
 *
 * Options: --seed=N / LVSS_TEST_SEED, --iterations=N / LVSS_TEST_ITERATIONS
 * (rounds of the first configuration; default 120), LVSS_TEST_KEEP=1 keeps the
 * directory on failure.
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
#include "tests/faultio.h"

#define N_WRITERS 4
#define MAX_MODEL_SNAPS 10
#define MAX_WRITE (200u * 1024u)
#define LOG_LINES 24

struct msnap {
        uint32_t id;
        bool persistent;
        char label[ENG_LABEL_MAX + 1];
        uint8_t *data; /* the live volume when it was taken */
        uint64_t *dirty; /* chunks written since it was taken */
};

struct model {
        uint64_t size;
        uint32_t chunk;
        uint64_t n_chunks;
        uint8_t *live;
        struct msnap snaps[MAX_MODEL_SNAPS];
        size_t n_snaps;
        uint32_t max_id; /* highest id ever returned */
        uint32_t max_persistent_id; /* highest id ever given to a persistent snapshot */
};

struct stats {
        uint64_t writes, write_bytes, zeroes, reads, snap_reads;
        uint64_t creates, creates_during, deletes, reverts, flushes, reopens, crashes;
        uint64_t cbt, cbt_flagged, cbt_extra, sweeps, admin_zeroes, discards;
};

/* Failure context, shared with fail(). */
static struct {
        pthread_mutex_t lock;
        uint64_t seed;
        const char *config;
        unsigned round;
        char *dir;
        char log[LOG_LINES][160];
        unsigned n_log;
} T = { .lock = PTHREAD_MUTEX_INITIALIZER };

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...) {
        va_list ap;

        pthread_mutex_lock(&T.lock);
        va_start(ap, fmt);
        vsnprintf(T.log[T.n_log % LOG_LINES], sizeof T.log[0], fmt, ap);
        va_end(ap);
        T.n_log++;
        pthread_mutex_unlock(&T.lock);
}

__attribute__((format(printf, 1, 2))) _Noreturn static void fail(const char *fmt, ...) {
        va_list ap;

        fflush(stdout);

        pthread_mutex_lock(&T.lock);
        fprintf(stderr, "\nFAIL seed=%" PRIu64 " config=%s round=%u: ", T.seed, T.config ? T.config : "-",
                T.round);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nlast operations (oldest first):\n");
        for (unsigned i = T.n_log > LOG_LINES ? T.n_log - LOG_LINES : 0; i < T.n_log; i++)
                fprintf(stderr, "  %s\n", T.log[i % LOG_LINES]);
        fprintf(stderr, "rerun with LVSS_TEST_SEED=%" PRIu64 "\n", T.seed);
        if (T.dir && tst_env_u64("LVSS_TEST_KEEP", 0) == 0)
                tst_rm_rf(T.dir);
        else if (T.dir)
                fprintf(stderr, "volume kept in %s\n", T.dir);
        fflush(stderr);
        _exit(1);
}

#define CHECK_R(expr, what, ...)                                                                            \
        do {                                                                                                \
                int _r = (expr);                                                                            \
                if (_r < 0)                                                                                 \
                        fail("%s: " what ": %s", #expr, ##__VA_ARGS__, strerror(-_r));                      \
        } while (0)

static void bitmap_set(uint64_t *b, uint64_t i) {
        b[i / 64] |= 1ull << (i % 64);
}

static bool bitmap_test(const uint64_t *b, uint64_t i) {
        return b[i / 64] & (1ull << (i % 64));
}

static void model_mark(struct model *m, uint64_t off, uint64_t len) {
        if (len == 0)
                return;
        for (uint64_t c = off / m->chunk; c <= (off + len - 1) / m->chunk; c++)
                for (size_t i = 0; i < m->n_snaps; i++)
                        bitmap_set(m->snaps[i].dirty, c);
}

/* Compares BUF (read from the engine at OFF) with EXPECT; fails with the first difference. */
static void compare(const char *what, uint32_t id, const uint8_t *buf, const uint8_t *expect, size_t len,
                    uint64_t off, uint32_t chunk) {
        if (memcmp(buf, expect, len) == 0)
                return;
        size_t i = 0, n = 0;
        while (buf[i] == expect[i])
                i++;
        for (size_t j = i; j < len; j++)
                n += buf[j] != expect[j];
        size_t last = len;
        while (buf[last - 1] == expect[last - 1])
                last--;
        fail("%s (snapshot id %u) read [%" PRIu64 ", +%zu): first difference at byte %" PRIu64
             " (chunk %" PRIu64 ", offset %" PRIu64 " in chunk): read 0x%02x, expected 0x%02x; "
             "%zu bytes differ, last at %" PRIu64,
             what, id, off, len, off + i, (off + i) / chunk, (off + i) % chunk, buf[i], expect[i], n,
             off + last - 1);
}

static void msnap_free(struct msnap *s) {
        free(s->data);
        free(s->dirty);
        *s = (struct msnap){};
}

static void model_remove(struct model *m, size_t i) {
        msnap_free(&m->snaps[i]);
        memmove(&m->snaps[i], &m->snaps[i + 1], (m->n_snaps - i - 1) * sizeof m->snaps[0]);
        m->n_snaps--;
}

static void model_drop_nonpersistent(struct model *m) {
        for (size_t i = m->n_snaps; i-- > 0;)
                if (!m->snaps[i].persistent)
                        model_remove(m, i);
}

/* ---- I/O: plain, or with random short delays in pwrite to widen race windows ---- */

static const struct eng_io *model_io; /* NULL: engine_volume_create/open */
static struct eng_io jitter_io;
static _Thread_local uint64_t jitter_rng;

static int jitter_pwrite(const struct eng_io *io, int fd, const void *buf, size_t len, uint64_t off) {
        if (jitter_rng == 0)
                jitter_rng = (uint64_t) pthread_self() | 1;
        if (tst_rand_below(&jitter_rng, 6) == 0) {
                struct timespec ts = { 0, (long) tst_rand_between(&jitter_rng, 20, 500) * 1000 };
                nanosleep(&ts, NULL);
        }
        return eng_io_posix.pwrite(&eng_io_posix, fd, buf, len, off);
}

static int vol_create(const char *dir, const struct eng_create_params *p, eng_volume **ret) {
        return model_io ? engine_volume_create_io(dir, p, model_io, ret) : engine_volume_create(dir, p, ret);
}

static int vol_open(const char *dir, eng_volume **ret) {
        return model_io ? engine_volume_open_io(dir, model_io, ret) : engine_volume_open(dir, ret);
}

/* ---- checks ---- */

static void check_list(eng_volume *v, struct model *m) {
        _cleanup_free_ struct eng_snap_info *l = NULL;
        struct eng_volume_info info;
        size_t n;

        CHECK_R(engine_snapshot_list(v, &l, &n), "listing snapshots");
        if (n != m->n_snaps) {
                char got[512] = "", want[512] = "";
                for (size_t i = 0; i < n; i++)
                        snprintf(got + strlen(got), sizeof got - strlen(got), " %u", l[i].id);
                for (size_t i = 0; i < m->n_snaps; i++)
                        snprintf(want + strlen(want), sizeof want - strlen(want), " %u", m->snaps[i].id);
                fail("snapshot list has %zu entries (%s ), model has %zu (%s )", n, got, m->n_snaps, want);
        }
        for (size_t i = 0; i < n; i++) {
                const struct msnap *s = &m->snaps[i];
                struct eng_snap_info g;

                if (l[i].id != s->id || l[i].persistent != s->persistent ||
                    strcmp(l[i].label, s->label) != 0 || l[i].state != ENG_SNAP_VALID)
                        fail("snapshot list entry %zu: id %u persistent %d label \"%s\" state %d; expected "
                             "id %u "
                             "persistent %d label \"%s\" VALID",
                             i, l[i].id, l[i].persistent, l[i].label, l[i].state, s->id, s->persistent,
                             s->label);
                CHECK_R(engine_snapshot_get(v, s->id, &g), "snapshot_get(%u)", s->id);
                if (g.id != s->id || g.persistent != s->persistent || strcmp(g.label, s->label) != 0 ||
                    g.created_ns != l[i].created_ns || g.state != ENG_SNAP_VALID)
                        fail("snapshot_get(%u) disagrees with the list (id %u persistent %d label \"%s\" "
                             "state %d)",
                             s->id, g.id, g.persistent, g.label, g.state);
                if (i > 0 && l[i].created_ns < l[i - 1].created_ns)
                        fail("snapshot %u created_ns %" PRIu64 " is before the older %u's %" PRIu64, l[i].id,
                             l[i].created_ns, l[i - 1].id, l[i - 1].created_ns);
        }

        CHECK_R(engine_volume_info(v, &info), "volume info");
        if (info.size != m->size || info.chunk_size != m->chunk || info.n_snapshots != m->n_snaps)
                fail("volume info: size %" PRIu64 " chunk %u snapshots %u; expected %" PRIu64 " %u %zu",
                     info.size, info.chunk_size, info.n_snapshots, m->size, m->chunk, m->n_snaps);
        if (info.diff_max != ENG_DIFF_UNBOUNDED)
                fail("volume info: diff_max %" PRIu64 ", expected unbounded", info.diff_max);
}

static void check_range(eng_volume *v, struct model *m, const struct msnap *s, uint64_t off, size_t len,
                        uint8_t *buf) {
        if (s) {
                CHECK_R(engine_snapshot_read(v, s->id, buf, len, off),
                        "reading snapshot %u [%" PRIu64 ", +%zu)", s->id, off, len);
                compare("snapshot", s->id, buf, s->data + off, len, off, m->chunk);
        } else {
                CHECK_R(engine_read(v, buf, len, off), "reading live [%" PRIu64 ", +%zu)", off, len);
                compare("live volume", 0, buf, m->live + off, len, off, m->chunk);
        }
}

static void check_random_reads(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        _cleanup_free_ uint8_t *buf = malloc(MAX_WRITE);

        if (!buf)
                fail("out of memory");
        for (size_t i = 0; i <= m->n_snaps; i++)
                for (int k = 0; k < 4; k++) {
                        size_t len = tst_rand_between(rng, 1, MIN((uint64_t) MAX_WRITE, m->size));
                        uint64_t off = tst_rand_below(rng, m->size - len + 1);
                        check_range(v, m, i < m->n_snaps ? &m->snaps[i] : NULL, off, len, buf);
                        st->reads++;
                }
}

static void check_sweep(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        size_t piece = 1024 * 1024 + 4096 + 17;
        _cleanup_free_ uint8_t *buf = malloc(piece);

        if (!buf)
                fail("out of memory");
        for (size_t i = 0; i <= m->n_snaps; i++) {
                /* Pieces of varying unaligned length, covering every byte. */
                for (uint64_t off = 0; off < m->size;) {
                        uint64_t want = tst_rand_between(rng, piece / 2, piece);
                        size_t len = MIN(want, m->size - off);
                        check_range(v, m, i < m->n_snaps ? &m->snaps[i] : NULL, off, len, buf);
                        off += len;
                }
        }
        /* The last byte alone, and reading past the end. */
        CHECK_R(engine_read(v, buf, 1, m->size - 1), "reading the last byte");
        if (buf[0] != m->live[m->size - 1])
                fail("last byte of the live volume is 0x%02x, expected 0x%02x", buf[0],
                     m->live[m->size - 1]);
        int r = engine_read(v, buf, 2, m->size - 1);
        if (r != -EINVAL)
                fail("reading across the end of the volume returned %d, expected -EINVAL", r);
        st->sweeps++;
}

/* ---- the concurrent round ---- */

struct region {
        uint64_t start, end;
};

struct worker {
        pthread_t thread;
        unsigned idx;
        eng_volume *v;
        struct model *m;
        const struct region *regions;
        size_t n_regions;
        uint64_t rng;
        /* ranges written and their data (NULL: zeros), for the dirty marks and the check of a
         * snapshot taken during the round (used by the main thread after the join) */
        struct region *done;
        uint8_t **done_data;
        size_t n_done;
        uint64_t writes, write_bytes, zeroes, reads;
};

struct reader {
        pthread_t thread;
        eng_volume *v;
        struct model *m;
        uint64_t rng;
        volatile bool stop;
        uint64_t reads;
};

static void *writer_main(void *p) {
        struct worker *w = p;
        struct model *m = w->m;
        size_t mine[64], n_mine = 0;
        _cleanup_free_ uint8_t *buf = malloc(MAX_WRITE), *rbuf = malloc(MAX_WRITE);

        if (!buf || !rbuf)
                fail("out of memory");
        for (size_t r = 0; r < w->n_regions; r++)
                if (r % N_WRITERS == w->idx && n_mine < ELEMENTSOF(mine))
                        mine[n_mine++] = r;
        if (n_mine == 0)
                return NULL;

        unsigned n_ops = (unsigned) tst_rand_between(&w->rng, 2, 8);
        w->done = calloc(n_ops, sizeof *w->done);
        w->done_data = calloc(n_ops, sizeof *w->done_data);
        if (!w->done || !w->done_data)
                fail("out of memory");
        for (unsigned k = 0; k < n_ops; k++) {
                const struct region *rg = &w->regions[mine[tst_rand_below(&w->rng, n_mine)]];
                uint64_t rlen = rg->end - rg->start, max;
                switch (tst_rand_below(&w->rng, 3)) {
                case 0:
                        max = 4096;
                        break;
                case 1:
                        max = 64 * 1024;
                        break;
                default:
                        max = MAX_WRITE;
                        break;
                }
                size_t len = tst_rand_between(&w->rng, 1, MIN(max, rlen));
                uint64_t off = rg->start + tst_rand_below(&w->rng, rlen - len + 1);
                unsigned kind = (unsigned) tst_rand_below(&w->rng, 10);

                if (kind == 0) {
                        CHECK_R(engine_write_zeroes(w->v, len, off),
                                "thread %u write_zeroes [%" PRIu64 ", +%zu)", w->idx, off, len);
                        memset(m->live + off, 0, len);
                        w->zeroes++;
                } else if (kind == 1) {
                        CHECK_R(engine_discard(w->v, len, off), "thread %u discard [%" PRIu64 ", +%zu)",
                                w->idx, off, len);
                        memset(m->live + off, 0, len);
                        w->zeroes++;
                } else {
                        tst_rand_fill(&w->rng, buf, len);
                        CHECK_R(engine_write(w->v, buf, len, off), "thread %u write [%" PRIu64 ", +%zu)",
                                w->idx, off, len);
                        memcpy(m->live + off, buf, len);
                        w->writes++;
                        w->write_bytes += len;
                        w->done_data[w->n_done] = malloc(len);
                        if (!w->done_data[w->n_done])
                                fail("out of memory");
                        memcpy(w->done_data[w->n_done], buf, len);
                }
                w->done[w->n_done++] = (struct region){ off, off + len };

                /* Read back a piece of one of this thread's regions. */
                rg = &w->regions[mine[tst_rand_below(&w->rng, n_mine)]];
                rlen = rg->end - rg->start;
                len = tst_rand_between(&w->rng, 1, MIN((uint64_t) MAX_WRITE, rlen));
                off = rg->start + tst_rand_below(&w->rng, rlen - len + 1);
                CHECK_R(engine_read(w->v, rbuf, len, off), "thread %u read [%" PRIu64 ", +%zu)", w->idx, off,
                        len);
                compare("live volume (concurrent read-back)", 0, rbuf, m->live + off, len, off, m->chunk);
                w->reads++;
        }
        return NULL;
}

static void *reader_main(void *p) {
        struct reader *rd = p;
        struct model *m = rd->m;
        _cleanup_free_ uint8_t *buf = malloc(MAX_WRITE);

        if (!buf)
                fail("out of memory");
        /* Bounded, so that it does not starve the writers of CPU on small machines. */
        while (!__atomic_load_n(&rd->stop, __ATOMIC_ACQUIRE) && m->n_snaps > 0 && rd->reads < 256) {
                const struct msnap *s = &m->snaps[tst_rand_below(&rd->rng, m->n_snaps)];
                size_t len = tst_rand_between(&rd->rng, 1, MIN((uint64_t) MAX_WRITE, m->size));
                uint64_t off = tst_rand_below(&rd->rng, m->size - len + 1);
                CHECK_R(engine_snapshot_read(rd->v, s->id, buf, len, off),
                        "concurrent read of snapshot %u [%" PRIu64 ", +%zu)", s->id, off, len);
                compare("snapshot (read during writes)", s->id, buf, s->data + off, len, off, m->chunk);
                rd->reads++;
        }
        return NULL;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* A snapshot taken while the writers run must not change once taken, and each of its bytes must
 * hold the value from before the round or one written during it. */
static void check_snapshot_during(eng_volume *v, struct model *m, struct msnap *s, const uint8_t *first,
                                  const uint8_t *pre, const struct worker *w) {
        _cleanup_free_ uint8_t *second = malloc(m->size);

        if (!second)
                fail("out of memory");
        CHECK_R(engine_snapshot_read(v, s->id, second, m->size, 0), "re-reading snapshot %u", s->id);
        if (memcmp(first, second, m->size) != 0) {
                uint64_t i = 0, n = 0;
                while (first[i] == second[i])
                        i++;
                for (uint64_t j = i; j < m->size; j++)
                        n += first[j] != second[j];
                fail("snapshot %u, taken while writes ran, changed after engine_snapshot_create returned: "
                     "byte %" PRIu64 " (chunk %" PRIu64
                     ") read 0x%02x right after creation and 0x%02x once the writes finished "
                     "(%" PRIu64 " bytes changed)",
                     s->id, i, i / m->chunk, first[i], second[i], n);
        }
        for (uint64_t i = 0; i < m->size; i++) {
                if (second[i] == pre[i])
                        continue;
                bool ok = false;
                for (unsigned t = 0; t < N_WRITERS && !ok; t++)
                        for (size_t k = 0; k < w[t].n_done && !ok; k++)
                                if (i >= w[t].done[k].start && i < w[t].done[k].end)
                                        ok = second[i] ==
                                             (w[t].done_data[k] ? w[t].done_data[k][i - w[t].done[k].start]
                                                                : 0);
                if (!ok)
                        fail("snapshot %u, taken while writes ran: byte %" PRIu64 " (chunk %" PRIu64
                             ") is 0x%02x, "
                             "neither its value before the round (0x%02x) nor one written during it",
                             s->id, i, i / m->chunk, second[i], pre[i]);
        }
        memcpy(s->data, second, m->size);
}

static void run_round(eng_volume *v, struct model *m, uint64_t seed, unsigned round, uint64_t *rng,
                      bool snap_during, struct stats *st) {
        struct region regions[16];
        _cleanup_free_ uint8_t *pre = NULL, *first = NULL;
        struct msnap s = {};
        uint64_t cuts[16];
        size_t n_regions = tst_rand_between(rng, 4, 12);
        struct worker w[N_WRITERS] = {};
        struct reader rd = { .v = v, .m = m, .rng = seed ^ (0xabcdull << 40) ^ round };

        /* Boundaries: distinct, never chunk-aligned, so neighbours share the edge chunks. */
        for (;;) {
                for (size_t i = 0; i + 1 < n_regions; i++) {
                        uint64_t c = tst_rand_between(rng, 1, m->size - 1);
                        if (c % m->chunk == 0)
                                c += tst_rand_between(rng, 1, m->chunk - 1);
                        cuts[i] = MIN(c, m->size - 1);
                }
                qsort(cuts, n_regions - 1, sizeof cuts[0], cmp_u64);
                bool ok = true;
                for (size_t i = 0; i + 1 < n_regions; i++)
                        if (cuts[i] % m->chunk == 0 || (i > 0 && cuts[i] == cuts[i - 1]))
                                ok = false;
                if (ok)
                        break;
        }
        for (size_t i = 0; i < n_regions; i++)
                regions[i] =
                        (struct region){ i == 0 ? 0 : cuts[i - 1], i + 1 == n_regions ? m->size : cuts[i] };

        if (snap_during) {
                pre = malloc(m->size);
                if (!pre)
                        fail("out of memory");
                memcpy(pre, m->live, m->size);
        }
        for (unsigned t = 0; t < N_WRITERS; t++) {
                w[t] = (struct worker){
                        .idx = t,
                        .v = v,
                        .m = m,
                        .regions = regions,
                        .n_regions = n_regions,
                        .rng = seed * 0x100000001b3ull + round * 131ull + t + 1,
                };
                if (pthread_create(&w[t].thread, NULL, writer_main, &w[t]) != 0)
                        fail("pthread_create failed");
        }
        if (pthread_create(&rd.thread, NULL, reader_main, &rd) != 0)
                fail("pthread_create failed");

        if (snap_during) {
                /* The model's live copy is being written by the threads: PRE was taken before they started.
                 */
                struct timespec ts = { 0, (long) tst_rand_below(rng, 3000) * 1000 };
                s.persistent = tst_rand_below(rng, 2);
                s.data = malloc(m->size);
                s.dirty = calloc(DIV_ROUND_UP(m->n_chunks, 64), sizeof(uint64_t));
                first = malloc(m->size);
                if (!s.data || !s.dirty || !first)
                        fail("out of memory");
                nanosleep(&ts, NULL);
                CHECK_R(engine_snapshot_create(
                                v,
                                &(struct eng_snap_params){ .persistent = s.persistent, .label = "during" },
                                &s.id),
                        "creating a snapshot while writes run");
                snprintf(s.label, sizeof s.label, "during");
                CHECK_R(engine_snapshot_read(v, s.id, first, m->size, 0),
                        "reading snapshot %u right after creation", s.id);
        }

        for (unsigned t = 0; t < N_WRITERS; t++)
                pthread_join(w[t].thread, NULL);
        __atomic_store_n(&rd.stop, true, __ATOMIC_RELEASE);
        pthread_join(rd.thread, NULL);

        if (snap_during) {
                note("round %u: snapshot %u (persistent=%d) taken while writing", round, s.id, s.persistent);
                check_snapshot_during(v, m, &s, first, pre, w);
                if (s.id <= m->max_id)
                        fail("new snapshot id %u is not above every earlier id (max %u)", s.id, m->max_id);
                m->max_id = s.id;
                if (s.persistent)
                        m->max_persistent_id = s.id;
                m->snaps[m->n_snaps++] = s;
                st->creates_during++;
        }

        for (unsigned t = 0; t < N_WRITERS; t++) {
                for (size_t i = 0; i < w[t].n_done; i++) {
                        model_mark(m, w[t].done[i].start, w[t].done[i].end - w[t].done[i].start);
                        free(w[t].done_data[i]);
                }
                st->writes += w[t].writes;
                st->write_bytes += w[t].write_bytes;
                st->zeroes += w[t].zeroes;
                st->reads += w[t].reads;
                free(w[t].done);
                free(w[t].done_data);
        }
        st->snap_reads += rd.reads;
}

/* ---- admin operations ---- */

static void op_delete(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        if (m->n_snaps == 0)
                return;
        size_t i;
        switch (tst_rand_below(rng, 4)) {
        case 0:
                i = 0;
                break;
        case 1:
                i = m->n_snaps - 1;
                break;
        case 2:
                i = m->n_snaps / 2;
                break;
        default:
                i = tst_rand_below(rng, m->n_snaps);
                break;
        }
        uint32_t id = m->snaps[i].id;
        uint8_t b;

        note("delete snapshot %u (index %zu of %zu)", id, i, m->n_snaps);
        CHECK_R(engine_snapshot_delete(v, id), "deleting snapshot %u", id);
        model_remove(m, i);
        int r = engine_snapshot_delete(v, id);
        if (r != -ENOENT)
                fail("deleting snapshot %u twice returned %d, expected -ENOENT", id, r);
        r = engine_snapshot_read(v, id, &b, 1, 0);
        if (r != -ENOENT)
                fail("reading deleted snapshot %u returned %d, expected -ENOENT", id, r);
        st->deletes++;
}

static void op_create(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        if (m->n_snaps == MAX_MODEL_SNAPS)
                op_delete(v, m, rng, st);

        struct msnap s = { .persistent = tst_rand_below(rng, 2) };
        char label[ENG_LABEL_MAX + 1];
        const char *lp = NULL;
        switch (tst_rand_below(rng, 4)) {
        case 0:
                break;
        case 1: /* the longest label */
                for (unsigned i = 0; i < ENG_LABEL_MAX; i++)
                        label[i] = (char) ('a' + tst_rand_below(rng, 26));
                label[ENG_LABEL_MAX] = 0;
                lp = label;
                break;
        default:
                snprintf(label, sizeof label, "{%08" PRIx64 "-shadow-%u}", tst_rand(rng) & 0xffffffffu,
                         T.round);
                lp = label;
                break;
        }
        if (lp)
                snprintf(s.label, sizeof s.label, "%s", lp);
        s.data = malloc(m->size);
        s.dirty = calloc(DIV_ROUND_UP(m->n_chunks, 64), sizeof(uint64_t));
        if (!s.data || !s.dirty)
                fail("out of memory");
        memcpy(s.data, m->live, m->size);

        CHECK_R(engine_snapshot_create(
                        v, &(struct eng_snap_params){ .persistent = s.persistent, .label = lp }, &s.id),
                "creating a snapshot");
        note("create snapshot %u persistent=%d label=\"%s\"", s.id, s.persistent, s.label);
        if (s.id == 0 || s.id <= m->max_persistent_id || s.id <= m->max_id)
                fail("new snapshot id %u is not above every earlier id (max %u, max persistent %u)", s.id,
                     m->max_id, m->max_persistent_id);
        m->max_id = s.id;
        if (s.persistent)
                m->max_persistent_id = s.id;
        m->snaps[m->n_snaps++] = s;
        st->creates++;
}

static void op_zero(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        size_t len = tst_rand_between(rng, 1, MIN(m->size, (uint64_t) 300 * 1024));
        uint64_t off = tst_rand_below(rng, m->size - len + 1);
        bool discard = tst_rand_below(rng, 2);

        note("%s [%" PRIu64 ", +%zu)", discard ? "discard" : "write_zeroes", off, len);
        if (discard) {
                CHECK_R(engine_discard(v, len, off), "discard [%" PRIu64 ", +%zu)", off, len);
                st->discards++;
        } else {
                CHECK_R(engine_write_zeroes(v, len, off), "write_zeroes [%" PRIu64 ", +%zu)", off, len);
                st->admin_zeroes++;
        }
        memset(m->live + off, 0, len);
        model_mark(m, off, len);
}

static void op_revert(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        if (m->n_snaps == 0)
                return;
        struct msnap *s = &m->snaps[tst_rand_below(rng, m->n_snaps)];

        note("revert to snapshot %u", s->id);
        CHECK_R(engine_revert(v, s->id), "reverting to snapshot %u", s->id);
        /* The revert may rewrite every chunk written since S, and those whose content differs. */
        for (uint64_t c = 0; c < m->n_chunks; c++) {
                uint64_t off = c * m->chunk, len = MIN((uint64_t) m->chunk, m->size - off);
                if (bitmap_test(s->dirty, c) || memcmp(m->live + off, s->data + off, len) != 0)
                        model_mark(m, off, len);
        }
        memcpy(m->live, s->data, m->size);
        st->reverts++;
}

static void op_reopen(const char *dir, eng_volume **v, struct model *m, bool crash, struct stats *st) {
        note("%s", crash ? "abandon + open (process crash)" : "close + open");
        if (crash)
                engine_volume_abandon(*v);
        else
                engine_volume_close(*v);
        *v = NULL;
        CHECK_R(vol_open(dir, v), "reopening %s after %s", dir, crash ? "abandon" : "close");
        model_drop_nonpersistent(m);
        if (crash) {
                /* A non-persistent id may be handed out again after a crash; a persistent one never. */
                m->max_id = m->max_persistent_id;
                st->crashes++;
        } else
                st->reopens++;
}

static void op_cbt(eng_volume *v, struct model *m, uint64_t *rng, struct stats *st) {
        if (m->n_snaps == 0)
                return;
        size_t fi = tst_rand_below(rng, m->n_snaps);
        size_t ti = tst_rand_between(rng, fi + 1, m->n_snaps); /* n_snaps: the live volume */
        const struct msnap *from = &m->snaps[fi];
        uint32_t to_id = ti < m->n_snaps ? m->snaps[ti].id : 0;
        const uint8_t *to = ti < m->n_snaps ? m->snaps[ti].data : m->live;
        _cleanup_free_ uint64_t *bm = NULL;
        uint64_t n = 0, flagged = 0, extra = 0;

        note("changed_chunks %u -> %u", from->id, to_id);
        CHECK_R(engine_changed_chunks(v, from->id, to_id, &bm, &n), "changed_chunks(%u, %u)", from->id,
                to_id);
        if (n != m->n_chunks)
                fail("changed_chunks(%u, %u) reports %" PRIu64 " chunks, the volume has %" PRIu64, from->id,
                     to_id, n, m->n_chunks);
        for (uint64_t c = 0; c < n; c++) {
                uint64_t off = c * m->chunk, len = MIN((uint64_t) m->chunk, m->size - off);
                bool differs = memcmp(from->data + off, to + off, len) != 0;
                bool bit = bitmap_test(bm, c);

                if (differs && !bit)
                        fail("changed_chunks(%u, %u): chunk %" PRIu64 " differs (first at byte %" PRIu64
                             ") but is not flagged",
                             from->id, to_id, c, off);
                if (bit && !bitmap_test(from->dirty, c))
                        fail("changed_chunks(%u, %u): chunk %" PRIu64
                             " is flagged but was never written since "
                             "snapshot %u",
                             from->id, to_id, c, from->id);
                flagged += bit;
                extra += bit && !differs;
        }
        st->cbt++;
        st->cbt_flagged += flagged;
        st->cbt_extra += extra;

        /* TO must be newer than FROM. */
        if (ti < m->n_snaps) {
                _cleanup_free_ uint64_t *bm2 = NULL;
                int r = engine_changed_chunks(v, to_id, from->id, &bm2, &n);
                if (r >= 0)
                        fail("changed_chunks(%u, %u) with FROM newer than TO succeeded", to_id, from->id);
        }
}

/* ---- one configuration ---- */

static void run_config(const char *name, uint64_t size, uint32_t chunk, unsigned rounds, uint64_t seed,
                       bool jitter) {
        struct model m = { .size = size, .chunk = chunk, .n_chunks = DIV_ROUND_UP(size, chunk) };
        struct stats st = {};
        uint64_t rng = seed ^ ((uint64_t) chunk << 20);
        eng_volume *v = NULL;
        _cleanup_free_ char *dir = NULL;
        uint64_t t0 = tst_now_ns();

        T.config = name;
        T.round = 0;
        model_io = jitter ? &jitter_io : NULL;
        CHECK_R(tst_mkdtemp("model", &dir), "creating a temporary directory");
        T.dir = dir;
        tst_watchdog_cleanup(dir);

        m.live = calloc(1, size);
        if (!m.live)
                fail("out of memory");
        CHECK_R(vol_create(dir, &(struct eng_create_params){ .size = size, .chunk_size = chunk }, &v),
                "creating a volume of %" PRIu64 " bytes, chunk %u in %s", size, chunk, dir);

        /* Start from random content, so that zeroes mean something. */
        {
                _cleanup_free_ uint8_t *buf = malloc(1024 * 1024);
                if (!buf)
                        fail("out of memory");
                for (uint64_t off = 0; off < size; off += 1024 * 1024) {
                        size_t len = MIN((uint64_t) 1024 * 1024, size - off);
                        tst_rand_fill(&rng, buf, len);
                        CHECK_R(engine_write(v, buf, len, off), "initial fill at %" PRIu64, off);
                        memcpy(m.live + off, buf, len);
                }
        }
        check_list(v, &m);

        for (unsigned round = 1; round <= rounds; round++) {
                T.round = round;
                tst_watchdog(180,
                             "config %s round %u ran for 180 s (deadlock or livelock in the engine?); rerun "
                             "with LVSS_TEST_SEED=%" PRIu64,
                             name, round, T.seed);
                bool snap_during = tst_rand_below(&rng, 4) == 0;
                if (snap_during && m.n_snaps == MAX_MODEL_SNAPS)
                        op_delete(v, &m, &rng, &st);
                run_round(v, &m, seed, round, &rng, snap_during, &st);

                uint64_t k = tst_rand_below(&rng, 100);
                if (k < 22)
                        op_create(v, &m, &rng, &st);
                else if (k < 32)
                        op_delete(v, &m, &rng, &st);
                else if (k < 42)
                        op_zero(v, &m, &rng, &st);
                else if (k < 48)
                        op_revert(v, &m, &rng, &st);
                else if (k < 54) {
                        note("flush");
                        CHECK_R(engine_flush(v), "flush");
                        st.flushes++;
                } else if (k < 60)
                        op_reopen(dir, &v, &m, false, &st);
                else if (k < 66)
                        op_reopen(dir, &v, &m, true, &st);
                else if (k < 84)
                        op_cbt(v, &m, &rng, &st);
                else
                        check_random_reads(v, &m, &rng, &st);

                check_list(v, &m);
                if (round % 25 == 0)
                        check_sweep(v, &m, &rng, &st);
        }
        T.round = rounds + 1;
        check_sweep(v, &m, &rng, &st);
        op_reopen(dir, &v, &m, false, &st);
        check_list(v, &m);
        check_sweep(v, &m, &rng, &st);

        struct eng_volume_info info;
        CHECK_R(engine_volume_info(v, &info), "volume info");
        engine_volume_close(v);

        printf("%s%s: %u rounds in %.1f s: %" PRIu64 " writes (%" PRIu64 " KiB), %" PRIu64
               " concurrent zeroes/discards, %" PRIu64 " read-backs, %" PRIu64 " concurrent snapshot reads\n"
               "  %" PRIu64 " creates (+%" PRIu64 " while writing), %" PRIu64 " deletes, %" PRIu64
               " reverts, %" PRIu64 " write_zeroes, %" PRIu64 " discards, %" PRIu64 " flushes, %" PRIu64
               " reopens, %" PRIu64 " crash-reopens, %" PRIu64 " full sweeps\n"
               "  %" PRIu64 " changed_chunks calls: %" PRIu64 " chunks flagged, %" PRIu64
               " of them unchanged (allowed extras)\n"
               "  at the end: %zu snapshots, %" PRIu64 " exceptions, diff_used %" PRIu64
               " KiB, reflink %d\n",
               name, jitter ? " (pwrite jitter)" : "", rounds, (tst_now_ns() - t0) / 1e9, st.writes,
               st.write_bytes / 1024, st.zeroes, st.reads, st.snap_reads, st.creates, st.creates_during,
               st.deletes, st.reverts, st.admin_zeroes, st.discards, st.flushes, st.reopens, st.crashes,
               st.sweeps, st.cbt, st.cbt_flagged, st.cbt_extra, m.n_snaps, info.exceptions,
               info.diff_used / 1024, info.reflink);
        fflush(stdout);

        for (size_t i = 0; i < m.n_snaps; i++)
                msnap_free(&m.snaps[i]);
        free(m.live);
        tst_rm_rf(dir);
        T.dir = NULL;
}

/* ---- the snapshot count limit and argument errors ---- */

static void run_limits(uint64_t seed) {
        tst_watchdog(300, "the ENG_MAX_SNAPSHOTS case ran for 300 s; rerun with LVSS_TEST_SEED=%" PRIu64,
                     seed);
        const uint64_t size = 64 * 1024 + 1536;
        const uint32_t chunk = 4096;
        uint64_t rng = seed ^ 0x5eed;
        eng_volume *v = NULL;
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ uint8_t *live = calloc(1, size), *buf = malloc(size);
        _cleanup_free_ uint8_t *copies = malloc((size_t) ENG_MAX_SNAPSHOTS * size);
        uint32_t ids[ENG_MAX_SNAPSHOTS];
        bool persistent[ENG_MAX_SNAPSHOTS];
        uint64_t t0 = tst_now_ns();
        uint32_t id;
        int r;

        T.config = "limits";
        T.round = 0;
        if (!live || !buf || !copies)
                fail("out of memory");
        CHECK_R(tst_mkdtemp("limits", &dir), "creating a temporary directory");
        T.dir = dir;
        tst_watchdog_cleanup(dir);
        CHECK_R(engine_volume_create(dir, &(struct eng_create_params){ .size = size, .chunk_size = chunk },
                                     &v),
                "creating a tiny volume");

        /* Argument errors. */
        if ((r = engine_read(v, buf, 1, size)) != -EINVAL)
                fail("reading at the end of the volume returned %d, expected -EINVAL", r);
        if ((r = engine_write(v, buf, 4096, size - 4095)) != -EINVAL)
                fail("writing across the end of the volume returned %d, expected -EINVAL", r);
        if ((r = engine_write_zeroes(v, 2, size - 1)) != -EINVAL)
                fail("write_zeroes across the end returned %d, expected -EINVAL", r);
        if ((r = engine_snapshot_read(v, 12345, buf, 1, 0)) != -ENOENT)
                fail("reading a snapshot that never existed returned %d, expected -ENOENT", r);
        if ((r = engine_snapshot_delete(v, 12345)) != -ENOENT)
                fail("deleting a snapshot that never existed returned %d, expected -ENOENT", r);
        struct eng_snap_info si;
        if ((r = engine_snapshot_get(v, 12345, &si)) != -ENOENT)
                fail("getting a snapshot that never existed returned %d, expected -ENOENT", r);
        if ((r = engine_revert(v, 12345)) != -ENOENT)
                fail("reverting to a snapshot that never existed returned %d, expected -ENOENT", r);

        for (unsigned i = 0; i < ENG_MAX_SNAPSHOTS; i++) {
                T.round = i;
                size_t len = tst_rand_between(&rng, 1, 6000);
                uint64_t off = tst_rand_below(&rng, size - len + 1);
                tst_rand_fill(&rng, live + off, len);
                CHECK_R(engine_write(v, live + off, len, off), "write before snapshot %u", i);
                persistent[i] = i % 2 == 0;
                CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = persistent[i] },
                                               &ids[i]),
                        "creating snapshot number %u of %u", i + 1, ENG_MAX_SNAPSHOTS);
                memcpy(copies + (size_t) i * size, live, size);
        }
        r = engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = true }, &id);
        if (r != -EMLINK)
                fail("snapshot number %u returned %d, expected -EMLINK", ENG_MAX_SNAPSHOTS + 1, r);

        struct eng_volume_info info;
        CHECK_R(engine_volume_info(v, &info), "volume info");
        if (info.n_snapshots != ENG_MAX_SNAPSHOTS)
                fail("%u snapshots listed in info, expected %u", info.n_snapshots, ENG_MAX_SNAPSHOTS);

        for (unsigned i = 0; i < ENG_MAX_SNAPSHOTS; i++) {
                CHECK_R(engine_snapshot_read(v, ids[i], buf, size, 0), "reading snapshot %u", ids[i]);
                compare("snapshot (of 512)", ids[i], buf, copies + (size_t) i * size, size, 0, chunk);
        }

        /* Deleting one makes room for exactly one. */
        CHECK_R(engine_snapshot_delete(v, ids[200]), "deleting snapshot %u", ids[200]);
        CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = false }, &id),
                "creating a snapshot after a delete at the limit");
        r = engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = false }, &id);
        if (r != -EMLINK)
                fail("snapshot past the limit after delete+create returned %d, expected -EMLINK", r);

        /* After reopening, the persistent half is left, intact. */
        engine_volume_close(v);
        v = NULL;
        CHECK_R(engine_volume_open(dir, &v), "reopening the tiny volume");
        _cleanup_free_ struct eng_snap_info *l = NULL;
        size_t n, j = 0;
        CHECK_R(engine_snapshot_list(v, &l, &n), "listing");
        for (unsigned i = 0; i < ENG_MAX_SNAPSHOTS; i++) {
                if (!persistent[i] || i == 200)
                        continue;
                if (j >= n || l[j].id != ids[i] || !l[j].persistent || l[j].state != ENG_SNAP_VALID)
                        fail("after reopen, list entry %zu is %u (of %zu), expected persistent valid %u", j,
                             j < n ? l[j].id : 0, n, ids[i]);
                CHECK_R(engine_snapshot_read(v, ids[i], buf, size, 0), "reading snapshot %u after reopen",
                        ids[i]);
                compare("snapshot (of 512, after reopen)", ids[i], buf, copies + (size_t) i * size, size, 0,
                        chunk);
                j++;
        }
        if (j != n)
                fail("after reopen %zu snapshots are listed, expected %zu", n, j);
        CHECK_R(engine_read(v, buf, size, 0), "reading live");
        compare("live volume (tiny)", 0, buf, live, size, 0, chunk);
        engine_volume_close(v);

        printf("limits: %u snapshots then -EMLINK, delete+create, reopen kept %zu persistent ones intact "
               "(%.1f s)\n",
               ENG_MAX_SNAPSHOTS, n, (tst_now_ns() - t0) / 1e9);
        fflush(stdout);
        tst_rm_rf(dir);
        T.dir = NULL;
}

int main(int argc, char **argv) {
        uint64_t seed = tst_seed(argc, argv);
        unsigned rounds = (unsigned) tst_iterations(argc, argv, 120);
        const uint64_t size = 4 * 1024 * 1024 + 12288 + 512; /* a partial last chunk for every chunk size */

        setvbuf(stdout, NULL, _IOLBF, 0); /* progress stays visible if a watchdog ends the run */

        T.seed = seed;
        printf("test-model: seed %" PRIu64 " (LVSS_TEST_SEED), %u rounds (LVSS_TEST_ITERATIONS)\n", seed,
               rounds);
        fflush(stdout);

        jitter_io = eng_io_posix;
        jitter_io.pwrite = jitter_pwrite;

        run_config("4k-chunks", size, 4096, rounds, seed, false);
        run_config("64k-chunks", size, 64 * 1024, MAX(1u, rounds * 2 / 3), seed + 1, true);
        run_config("16k-chunks", size, 16 * 1024, MAX(1u, rounds / 3), seed + 2, true);
        run_limits(seed);

        tst_watchdog(0, "-");
        printf("test-model: OK (seed %" PRIu64 ")\n", seed);
        return 0;
}
