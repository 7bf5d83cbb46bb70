/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * test-diffarea-full: what the engine does when the diff area reaches its
 * maximum, under both policies, and when the maximum is lowered below use.
 *
 * PROTECT_VOLUME: every live write succeeds, the oldest snapshots go first
 * (the survivors are always the newest ones, and snapshots_reclaimed counts
 * the others), the live volume and every survivor match the model byte for
 * byte, and diff_used never exceeds diff_max.
 * PROTECT_SNAPSHOTS: a write, write_zeroes or discard that needs a slot fails
 * with -ENOSPC and changes nothing (the whole live volume is compared), every
 * snapshot survives byte-exact; once deleting a snapshot frees slots the
 * write succeeds (and deleting one that frees none does not help).
 * engine_set_limit below use reclaims the oldest snapshots under
 * PROTECT_VOLUME and fails with -ENOSPC under PROTECT_SNAPSHOTS, and the
 * limit survives a reopen. Two writes racing for the last free slots under
 * PROTECT_SNAPSHOTS (lined up behind a hold, then released together) must
 * each succeed whole or fail whole. Reverting to the oldest snapshot on a full
 * diff area under PROTECT_VOLUME completes (or fails changing nothing): it
 * must not reclaim its own source midway. A write that needs room while a
 * commit punches freed slots (slowed down) must wait and succeed, not spin.
 *
 * The model also counts the preserved chunks an ideal engine needs (one per
 * chunk and run of snapshots between two writes to it), which must not exceed
 * the engine's exception count, and notes reclaims a smaller one would have avoided.
 *
 * Options: --seed=N / LVSS_TEST_SEED, --iterations=N / LVSS_TEST_ITERATIONS
 * (steps of the random PROTECT_VOLUME phase, default 60).
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

#define CHUNK 4096u
#define N_CHUNKS 256u
#define SIZE ((uint64_t) N_CHUNKS * CHUNK)
#define CAP 8u /* diff area slots */
#define MAX_SNAPS 64

struct fsnap {
        uint32_t id;
        bool persistent;
        bool gone;
        uint8_t *data;
        uint32_t gen[N_CHUNKS]; /* writes to each chunk before it was taken */
};

struct fmodel {
        eng_volume *v;
        const char *phase;
        uint8_t live[SIZE];
        uint32_t gen[N_CHUNKS];
        struct fsnap snaps[MAX_SNAPS];
        size_t n_snaps;
        uint64_t over_reclaimed;
};

static struct {
        uint64_t seed;
        char *dir;
        const char *phase;
} G;

__attribute__((format(printf, 1, 2))) _Noreturn static void fail(const char *fmt, ...) {
        va_list ap;

        fflush(stdout);

        fprintf(stderr, "\nFAIL seed=%" PRIu64 " phase=%s: ", G.seed, G.phase ? G.phase : "-");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nrerun with LVSS_TEST_SEED=%" PRIu64 "\n", G.seed);
        if (G.dir && tst_env_u64("LVSS_TEST_KEEP", 0) == 0)
                tst_rm_rf(G.dir);
        else if (G.dir)
                fprintf(stderr, "volume kept in %s\n", G.dir);
        fflush(stderr);
        _exit(1);
}

#define CHECK_R(expr, what, ...)                                                                            \
        do {                                                                                                \
                int _r = (expr);                                                                            \
                if (_r < 0)                                                                                 \
                        fail("%s: " what ": %s", #expr, ##__VA_ARGS__, strerror(-_r));                      \
        } while (0)

static void compare(const char *what, uint32_t id, const uint8_t *buf, const uint8_t *expect, size_t len,
                    uint64_t off) {
        if (memcmp(buf, expect, len) == 0)
                return;
        size_t i = 0, n = 0;
        while (buf[i] == expect[i])
                i++;
        for (size_t j = i; j < len; j++)
                n += buf[j] != expect[j];
        fail("%s (snapshot id %u) [%" PRIu64 ", +%zu): first difference at byte %" PRIu64 " (chunk %" PRIu64
             ", +%" PRIu64 "): read 0x%02x, expected 0x%02x; %zu bytes differ",
             what, id, off, len, off + i, (off + i) / CHUNK, (off + i) % CHUNK, buf[i], expect[i], n);
}

static struct fmodel *model_new(const char *phase) {
        struct fmodel *m = calloc(1, sizeof *m);
        if (!m)
                fail("out of memory");
        m->phase = phase;
        G.phase = phase;
        tst_watchdog(120,
                     "phase %s ran for 120 s (deadlock or livelock in the engine?); rerun with "
                     "LVSS_TEST_SEED=%" PRIu64,
                     phase, G.seed);
        return m;
}

static void model_free(struct fmodel *m) {
        for (size_t i = 0; i < m->n_snaps; i++)
                free(m->snaps[i].data);
        free(m);
}

static struct fsnap *model_find(struct fmodel *m, uint32_t id) {
        for (size_t i = 0; i < m->n_snaps; i++)
                if (m->snaps[i].id == id && !m->snaps[i].gone)
                        return &m->snaps[i];
        return NULL;
}

/* Preserved chunks an ideal engine needs for the snapshots that are not gone, plus EXTRA if >= 0. */
static unsigned model_needed(struct fmodel *m, ssize_t extra) {
        unsigned n = 0;

        for (unsigned c = 0; c < N_CHUNKS; c++) {
                uint32_t seen[MAX_SNAPS];
                unsigned n_seen = 0;
                for (size_t i = 0; i < m->n_snaps; i++) {
                        const struct fsnap *s = &m->snaps[i];
                        if ((s->gone && (ssize_t) i != extra) || s->gen[c] == m->gen[c])
                                continue;
                        bool dup = false;
                        for (unsigned k = 0; k < n_seen; k++)
                                dup = dup || seen[k] == s->gen[c];
                        if (!dup)
                                seen[n_seen++] = s->gen[c];
                }
                n += n_seen;
        }
        return n;
}

static void model_written(struct fmodel *m, uint64_t off, uint64_t len) {
        for (uint64_t c = off / CHUNK; c <= (off + len - 1) / CHUNK; c++)
                m->gen[c]++;
}

static uint32_t take(struct fmodel *m, bool persistent) {
        struct fsnap *s = &m->snaps[m->n_snaps];

        if (m->n_snaps == MAX_SNAPS)
                fail("too many snapshots in the model");
        *s = (struct fsnap){ .persistent = persistent, .data = malloc(SIZE) };
        if (!s->data)
                fail("out of memory");
        memcpy(s->data, m->live, SIZE);
        memcpy(s->gen, m->gen, sizeof s->gen);
        CHECK_R(engine_snapshot_create(m->v, &(struct eng_snap_params){ .persistent = persistent }, &s->id),
                "creating snapshot number %zu", m->n_snaps + 1);
        m->n_snaps++;
        return s->id;
}

static void drop(struct fmodel *m, uint32_t id) {
        struct fsnap *s = model_find(m, id);
        if (!s)
                fail("deleting snapshot %u unknown to the model", id);
        CHECK_R(engine_snapshot_delete(m->v, id), "deleting snapshot %u", id);
        s->gone = true;
}

/* Checks the list against the model and marks snapshots the engine reclaimed; returns how many. */
static unsigned sync_list(struct fmodel *m, bool may_reclaim) {
        _cleanup_free_ struct eng_snap_info *l = NULL;
        size_t n, j = 0;
        unsigned reclaimed = 0;

        CHECK_R(engine_snapshot_list(m->v, &l, &n), "listing snapshots");
        for (size_t i = 0; i < m->n_snaps; i++) {
                struct fsnap *s = &m->snaps[i];
                if (s->gone)
                        continue;
                if (j < n && l[j].id == s->id) {
                        if (l[j].state != ENG_SNAP_VALID)
                                fail("snapshot %u is not VALID", s->id);
                        j++;
                        continue;
                }
                if (!may_reclaim)
                        fail("snapshot %u disappeared (policy or phase does not allow reclaiming)", s->id);
                s->gone = true;
                reclaimed++;
        }
        if (j != n)
                fail("the engine lists snapshot %u that the model does not have (or out of order)", l[j].id);

        return reclaimed;
}

static void check_oldest_first(struct fmodel *m, size_t first_auto) {
        /* Among snapshots created since FIRST_AUTO (none deleted by the test), the gone ones are a prefix.
         */
        bool survivor = false;
        for (size_t i = first_auto; i < m->n_snaps; i++) {
                if (!m->snaps[i].gone)
                        survivor = true;
                else if (survivor)
                        fail("snapshot %u was reclaimed although older snapshot(s) survive (oldest must go "
                             "first)",
                             m->snaps[i].id);
        }
}

static void check_all(struct fmodel *m, const char *when) {
        static uint8_t buf[SIZE];
        struct eng_volume_info info;

        CHECK_R(engine_read(m->v, buf, SIZE, 0), "reading live (%s)", when);
        compare(when, 0, buf, m->live, SIZE, 0);
        for (size_t i = 0; i < m->n_snaps; i++) {
                if (m->snaps[i].gone)
                        continue;
                CHECK_R(engine_snapshot_read(m->v, m->snaps[i].id, buf, SIZE, 0), "reading snapshot %u (%s)",
                        m->snaps[i].id, when);
                compare(when, m->snaps[i].id, buf, m->snaps[i].data, SIZE, 0);
        }
        CHECK_R(engine_volume_info(m->v, &info), "volume info");
        if (info.diff_max != ENG_DIFF_UNBOUNDED && info.diff_used > info.diff_max)
                fail("%s: diff_used %" PRIu64 " exceeds diff_max %" PRIu64, when, info.diff_used,
                     info.diff_max);
        unsigned need = model_needed(m, -1);
        if (info.exceptions < need)
                fail("%s: the engine maps %" PRIu64
                     " preserved chunks, the surviving snapshots need at least %u",
                     when, info.exceptions, need);
}

static int write_range(struct fmodel *m, uint64_t *rng, int kind, uint64_t off, uint64_t len) {
        _cleanup_free_ uint8_t *buf = malloc(len);
        int r;

        if (!buf)
                fail("out of memory");
        if (kind == 0) {
                tst_rand_fill(rng, buf, len);
                r = engine_write(m->v, buf, len, off);
        } else {
                memset(buf, 0, len);
                r = kind == 1 ? engine_write_zeroes(m->v, len, off) : engine_discard(m->v, len, off);
        }
        if (r >= 0) {
                memcpy(m->live + off, buf, len);
                model_written(m, off, len);
        }
        return r;
}

/* An unaligned write inside chunk C (or starting in it and ending in C+1 when SPAN). */
static int write_chunk(struct fmodel *m, uint64_t *rng, unsigned c, bool span) {
        uint64_t off = (uint64_t) c * CHUNK + tst_rand_between(rng, 1, CHUNK - 2);
        uint64_t end = span ? (uint64_t) (c + 1) * CHUNK + tst_rand_between(rng, 1, CHUNK - 1)
                            : tst_rand_between(rng, off + 1, (uint64_t) (c + 1) * CHUNK);
        return write_range(m, rng, 0, off, end - off);
}

static eng_volume *make_volume(const char *sub, uint64_t diff_max, eng_policy policy) {
        _cleanup_free_ char *d = NULL;
        eng_volume *v;

        if (asprintf(&d, "%s/%s", G.dir, sub) < 0)
                fail("out of memory");
        CHECK_R(engine_volume_create(
                        d,
                        &(struct eng_create_params){
                                .size = SIZE, .chunk_size = CHUNK, .diff_max = diff_max, .policy = policy },
                        &v),
                "creating volume %s", d);
        return v;
}

static void fill(struct fmodel *m, uint64_t *rng) {
        tst_rand_fill(rng, m->live, SIZE);
        CHECK_R(engine_write(m->v, m->live, SIZE, 0), "initial fill");
}

static void expect_info(struct fmodel *m, uint64_t diff_max, eng_policy policy, const char *when) {
        struct eng_volume_info info;

        CHECK_R(engine_volume_info(m->v, &info), "volume info");
        if (info.diff_max != diff_max || info.policy != policy)
                fail("%s: diff_max %" PRIu64 " policy %d, expected %" PRIu64 " policy %d", when,
                     info.diff_max, info.policy, diff_max, policy);
}

static uint64_t reclaimed_count(struct fmodel *m) {
        struct eng_volume_info info;
        CHECK_R(engine_volume_info(m->v, &info), "volume info");
        return info.snapshots_reclaimed;
}

/* ---- PROTECT_VOLUME ---- */

static void run_protect_volume(uint64_t *rng, unsigned steps) {
        struct fmodel *m = model_new("protect-volume");
        uint64_t reclaimed = 0;

        m->v = make_volume("pv", CAP * CHUNK, ENG_POLICY_PROTECT_VOLUME);
        fill(m, rng);
        expect_info(m, CAP * CHUNK, ENG_POLICY_PROTECT_VOLUME, "new volume");

        /* Exactly full: nothing is reclaimed. */
        take(m, true);
        for (unsigned c = 0; c < CAP; c++)
                CHECK_R(write_chunk(m, rng, c * 3, false), "writing chunk %u", c * 3);
        if (sync_list(m, false) != 0 || reclaimed_count(m) != 0)
                fail("a snapshot was reclaimed although the diff area was not over its maximum");
        check_all(m, "diff area exactly full");

        /* One more chunk: the only snapshot goes, the write succeeds. */
        CHECK_R(write_chunk(m, rng, 100, false), "writing one chunk past the maximum");
        if (sync_list(m, true) != 1 || reclaimed_count(m) != 1)
                fail("writing past the maximum with one snapshot: expected it reclaimed (count %" PRIu64 ")",
                     reclaimed_count(m));
        reclaimed = 1;
        check_all(m, "after the first reclaim");

        /* Random steps: snapshots and writes to distinct chunks, over and over the maximum. */
        size_t first_auto = m->n_snaps;
        for (unsigned step = 0; step < steps; step++) {
                take(m, tst_rand_below(rng, 2));
                unsigned n = (unsigned) tst_rand_between(rng, 1, 4);
                for (unsigned k = 0; k < n; k++) {
                        unsigned c = (unsigned) tst_rand_below(rng, N_CHUNKS - 1);
                        int kind = (int) tst_rand_below(rng, 8);
                        int r;
                        if (kind < 6)
                                r = write_chunk(m, rng, c, kind == 5);
                        else
                                r = write_range(m, rng, kind - 5, (uint64_t) c * CHUNK + 7, CHUNK);
                        if (r < 0)
                                fail("step %u: a live write failed under PROTECT_VOLUME: %s", step,
                                     strerror(-r));

                        unsigned got = sync_list(m, true);
                        reclaimed += got;
                        if (reclaimed_count(m) != reclaimed)
                                fail("step %u: snapshots_reclaimed is %" PRIu64 ", %" PRIu64
                                     " snapshots are gone",
                                     step, reclaimed_count(m), reclaimed);
                        check_oldest_first(m, first_auto);
                        if (got > 0) {
                                /* Would keeping the youngest reclaimed one have fitted? */
                                ssize_t youngest = -1;
                                for (size_t i = 0; i < m->n_snaps; i++)
                                        if (m->snaps[i].gone)
                                                youngest = (ssize_t) i;
                                if (model_needed(m, youngest) <= CAP)
                                        m->over_reclaimed++;
                        }
                }
                check_all(m, "PROTECT_VOLUME step");
        }
        if (reclaimed < 3)
                fail("only %" PRIu64
                     " snapshots reclaimed over %u steps: the diff area maximum is not enforced",
                     reclaimed, steps);

        /* Reopen: the limit and the surviving persistent snapshots stay. */
        engine_volume_close(m->v);
        for (size_t i = 0; i < m->n_snaps; i++)
                if (!m->snaps[i].persistent)
                        m->snaps[i].gone = true;
        _cleanup_free_ char *d = NULL;
        if (asprintf(&d, "%s/pv", G.dir) < 0)
                fail("out of memory");
        CHECK_R(engine_volume_open(d, &m->v), "reopening");
        expect_info(m, CAP * CHUNK, ENG_POLICY_PROTECT_VOLUME, "after reopen");
        sync_list(m, false);
        check_all(m, "PROTECT_VOLUME after reopen");

        size_t left = 0;
        for (size_t i = 0; i < m->n_snaps; i++)
                left += !m->snaps[i].gone;
        printf("protect-volume: %u steps, %zu snapshots taken, %" PRIu64
               " reclaimed by the engine, %zu left; "
               "%" PRIu64 " reclaims took more than an ideal engine needs\n",
               steps, m->n_snaps, reclaimed, left, m->over_reclaimed);
        engine_volume_close(m->v);
        model_free(m);
}

/* ---- PROTECT_SNAPSHOTS ---- */

static void expect_enospc(struct fmodel *m, uint64_t *rng, int kind, uint64_t off, uint64_t len,
                          const char *what) {
        static uint8_t before[SIZE];
        int r;

        memcpy(before, m->live, SIZE);
        uint32_t gen[N_CHUNKS];
        memcpy(gen, m->gen, sizeof gen);
        r = write_range(m, rng, kind, off, len);
        if (r != -ENOSPC)
                fail("%s [%" PRIu64 ", +%" PRIu64 "): returned %d (%s), expected -ENOSPC", what, off, len, r,
                     r < 0 ? strerror(-r) : "success");
        /* write_range left the model alone: the engine must have changed nothing either. */
        if (memcmp(before, m->live, SIZE) != 0 || memcmp(gen, m->gen, sizeof gen) != 0)
                fail("internal: the model changed on a failed write");
        check_all(m, what);
        sync_list(m, false);
}

static void run_protect_snapshots(uint64_t *rng) {
        struct fmodel *m = model_new("protect-snapshots");

        m->v = make_volume("ps", CAP * CHUNK, ENG_POLICY_PROTECT_SNAPSHOTS);
        fill(m, rng);

        uint32_t s1 = take(m, true);
        for (unsigned c = 0; c < CAP / 2; c++)
                CHECK_R(write_chunk(m, rng, c, false), "writing chunk %u", c);
        uint32_t s2 = take(m, true);
        for (unsigned c = CAP / 2; c < CAP; c++)
                CHECK_R(write_chunk(m, rng, c, false), "writing chunk %u", c);
        check_all(m, "PROTECT_SNAPSHOTS full");
        sync_list(m, false);

        /* A new chunk needs a slot: -ENOSPC, nothing changes; zeroes and discards alike. */
        expect_enospc(m, rng, 0, 20 * CHUNK + 100, 1000, "write to a new chunk on a full diff area");
        expect_enospc(m, rng, 1, 21 * CHUNK + 5, 3 * CHUNK, "write_zeroes on a full diff area");
        expect_enospc(m, rng, 2, 30 * CHUNK, CHUNK, "discard of a whole chunk on a full diff area");
        /* A write spanning a chunk that needs no slot (7: written since the last snapshot) and one that
         * does. */
        expect_enospc(m, rng, 0, 7 * CHUNK + 1000, CHUNK + 500,
                      "write over chunks 7 (no CoW needed) and 8 (CoW)");
        if (reclaimed_count(m) != 0)
                fail("a snapshot was reclaimed under PROTECT_SNAPSHOTS");

        /* Chunks already preserved for every snapshot take writes. */
        CHECK_R(write_chunk(m, rng, 5, false), "rewriting chunk 5 (no CoW needed) on a full diff area");
        CHECK_R(write_chunk(m, rng, 6, true), "rewriting chunks 6-7 (no CoW needed) on a full diff area");
        check_all(m, "PROTECT_SNAPSHOTS rewrites");

        /* Deleting S2 frees nothing (its chunks are S1's too). */
        drop(m, s2);
        expect_enospc(m, rng, 0, 20 * CHUNK + 100, 1000,
                      "write to a new chunk after deleting a snapshot that freed "
                      "no slot");

        /* A new snapshot, then deleting S1 frees every slot: the write goes through. */
        uint32_t s3 = take(m, false);
        drop(m, s1);
        CHECK_R(write_chunk(m, rng, 20, false),
                "writing a new chunk after deleting the snapshot holding the slots");
        check_all(m, "after freeing slots");

        /* Fill again for S3 (one slot used by chunk 20), then -ENOSPC again. */
        for (unsigned c = 40; c < 40 + CAP - 1; c++)
                CHECK_R(write_chunk(m, rng, c, false), "refilling: chunk %u", c);
        expect_enospc(m, rng, 0, 60 * CHUNK + 4000, 200, "write to a new chunk on a refilled diff area");
        sync_list(m, false);
        if (!model_find(m, s3))
                fail("snapshot %u is gone under PROTECT_SNAPSHOTS", s3);

        /* Raising the limit lets the write through. */
        CHECK_R(engine_set_limit(m->v, (CAP + 1) * CHUNK, ENG_POLICY_PROTECT_SNAPSHOTS),
                "raising the limit");
        CHECK_R(write_chunk(m, rng, 60, false), "writing after raising the limit");
        check_all(m, "after raising the limit");

        printf("protect-snapshots: -ENOSPC with nothing changed for writes, zeroes, discards and a partly "
               "CoW-free write; delete of a slot-sharing snapshot freed nothing, then slots freed; "
               "snapshots "
               "intact\n");
        engine_volume_close(m->v);
        model_free(m);
}

/* ---- shrinking the limit ---- */

static struct fmodel *three_snapshots(const char *sub, eng_policy policy, uint64_t *rng) {
        struct fmodel *m = model_new(policy == ENG_POLICY_PROTECT_VOLUME ? "shrink-protect-volume"
                                                                         : "shrink-protect-snapshots");

        m->v = make_volume(sub, 16 * CHUNK, policy);
        fill(m, rng);
        for (unsigned k = 0; k < 3; k++) {
                take(m, true);
                for (unsigned c = 0; c < 4; c++)
                        CHECK_R(write_chunk(m, rng, 10 * k + c, false), "writing chunk %u", 10 * k + c);
        }
        /* Needs 12 slots: 4 for S1 alone, 4 for S1-S2, 4 for S1-S3. */
        if (model_needed(m, -1) != 12)
                fail("internal: the model needs %u slots", model_needed(m, -1));
        check_all(m, "three snapshots");
        sync_list(m, false);
        return m;
}

static void run_shrink(uint64_t *rng) {
        /* PROTECT_VOLUME: down to 6 slots, S1 (frees 4, 8 left) and S2 (frees 4) go. */
        struct fmodel *m = three_snapshots("shrink-pv", ENG_POLICY_PROTECT_VOLUME, rng);
        CHECK_R(engine_set_limit(m->v, 6 * CHUNK, ENG_POLICY_PROTECT_VOLUME),
                "shrinking the limit below use");
        if (sync_list(m, true) != 2 || !m->snaps[0].gone || !m->snaps[1].gone || m->snaps[2].gone)
                fail("shrinking to 6 slots under PROTECT_VOLUME: expected exactly the two oldest snapshots "
                     "reclaimed (gone: %d %d %d)",
                     m->snaps[0].gone, m->snaps[1].gone, m->snaps[2].gone);
        if (reclaimed_count(m) != 2)
                fail("snapshots_reclaimed is %" PRIu64 " after the shrink, expected 2", reclaimed_count(m));
        expect_info(m, 6 * CHUNK, ENG_POLICY_PROTECT_VOLUME, "after the shrink");
        check_all(m, "after shrinking under PROTECT_VOLUME");

        engine_volume_close(m->v);
        _cleanup_free_ char *d = NULL;
        if (asprintf(&d, "%s/shrink-pv", G.dir) < 0)
                fail("out of memory");
        CHECK_R(engine_volume_open(d, &m->v), "reopening");
        expect_info(m, 6 * CHUNK, ENG_POLICY_PROTECT_VOLUME, "after the shrink and a reopen");
        sync_list(m, false);
        check_all(m, "after the shrink and a reopen");
        engine_volume_close(m->v);
        model_free(m);

        /* PROTECT_SNAPSHOTS: the shrink fails, nothing changes; at exactly the use it works. */
        m = three_snapshots("shrink-ps", ENG_POLICY_PROTECT_SNAPSHOTS, rng);
        int r = engine_set_limit(m->v, 6 * CHUNK, ENG_POLICY_PROTECT_SNAPSHOTS);
        if (r != -ENOSPC)
                fail("shrinking below use under PROTECT_SNAPSHOTS returned %d, expected -ENOSPC", r);
        expect_info(m, 16 * CHUNK, ENG_POLICY_PROTECT_SNAPSHOTS, "after a refused shrink");
        sync_list(m, false);
        check_all(m, "after a refused shrink");
        CHECK_R(engine_set_limit(m->v, 12 * CHUNK, ENG_POLICY_PROTECT_SNAPSHOTS),
                "shrinking to exactly the use");
        expect_enospc(m, rng, 0, 100 * CHUNK + 9, 10, "write to a new chunk after shrinking to the use");
        CHECK_R(engine_set_limit(m->v, ENG_DIFF_UNBOUNDED, ENG_POLICY_PROTECT_SNAPSHOTS),
                "removing the limit");
        expect_info(m, ENG_DIFF_UNBOUNDED, ENG_POLICY_PROTECT_SNAPSHOTS, "unbounded");
        CHECK_R(write_chunk(m, rng, 100, false), "writing after removing the limit");
        sync_list(m, false);
        check_all(m, "after removing the limit");
        engine_volume_close(m->v);
        model_free(m);

        printf("shrink: PROTECT_VOLUME reclaimed exactly the 2 oldest of 3 snapshots and kept the limit "
               "over a "
               "reopen; PROTECT_SNAPSHOTS refused with -ENOSPC and changed nothing\n");
}

/* ---- PROTECT_SNAPSHOTS with two writers racing for the last slots ---- */

struct racer {
        pthread_t thread;
        eng_volume *v;
        uint64_t off, len;
        uint8_t *buf;
        int r;
};

static void *racer_main(void *p) {
        struct racer *rc = p;
        rc->r = engine_write(rc->v, rc->buf, rc->len, rc->off);
        return NULL;
}

/* Two writes that each need the two free slots are lined up behind a hold (as writes arriving
 * during a snapshot's flush-and-hold are), then let go together: each must succeed whole or fail
 * whole, and at least one must fail. */
static void run_racing_enospc(uint64_t *rng, unsigned attempts) {
        static uint8_t live[SIZE], buf[SIZE];
        unsigned both_failed = 0, one_failed = 0;
        _cleanup_free_ char *d = NULL;
        eng_volume *v;

        G.phase = "protect-snapshots-racing";
        tst_watchdog(120,
                     "phase %s ran for 120 s (deadlock or livelock in the engine?); rerun with "
                     "LVSS_TEST_SEED=%" PRIu64,
                     G.phase, G.seed);
        if (asprintf(&d, "%s/race", G.dir) < 0)
                fail("out of memory");
        CHECK_R(engine_volume_create(d,
                                     &(struct eng_create_params){ .size = SIZE,
                                                                  .chunk_size = CHUNK,
                                                                  .diff_max = 4 * CHUNK,
                                                                  .policy = ENG_POLICY_PROTECT_SNAPSHOTS },
                                     &v),
                "creating %s", d);
        tst_rand_fill(rng, live, SIZE);
        CHECK_R(engine_write(v, live, SIZE, 0), "filling");

        for (unsigned a = 0; a < attempts; a++) {
                struct racer rc[2];
                uint32_t id;

                CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = a % 2 }, &id),
                        "snapshot");
                /* Two slots used, two free; each racer needs two (its range spans two fresh chunks). */
                for (unsigned c = 0; c < 2; c++) {
                        live[c * CHUNK] ^= 0xff;
                        CHECK_R(engine_write(v, live + c * CHUNK, 1, c * CHUNK), "using slot %u", c);
                }
                CHECK_R(engine_hold(v, 10000), "holding");
                for (unsigned t = 0; t < 2; t++) {
                        rc[t] = (struct racer){ .v = v,
                                                .len = 300,
                                                .off = (uint64_t) (10 + 10 * t + (a % 10) * 20) * CHUNK +
                                                       CHUNK - 100 };
                        rc[t].buf = malloc(rc[t].len);
                        if (!rc[t].buf)
                                fail("out of memory");
                        tst_rand_fill(rng, rc[t].buf, rc[t].len);
                        if (pthread_create(&rc[t].thread, NULL, racer_main, &rc[t]) != 0)
                                fail("pthread_create failed");
                }
                struct timespec ts = { 0, 30 * 1000 * 1000 };
                nanosleep(&ts, NULL);
                CHECK_R(engine_release(v), "releasing");
                for (unsigned t = 0; t < 2; t++)
                        pthread_join(rc[t].thread, NULL);

                unsigned failed = 0;
                for (unsigned t = 0; t < 2; t++) {
                        if (rc[t].r == 0)
                                memcpy(live + rc[t].off, rc[t].buf, rc[t].len);
                        else if (rc[t].r == -ENOSPC)
                                failed++;
                        else
                                fail("attempt %u: racing write %u returned %d (%s)", a, t, rc[t].r,
                                     strerror(-rc[t].r));
                }
                CHECK_R(engine_read(v, buf, SIZE, 0), "reading live");
                for (unsigned t = 0; t < 2; t++)
                        if (rc[t].r == -ENOSPC &&
                            memcmp(buf + rc[t].off, live + rc[t].off, rc[t].len) != 0) {
                                uint64_t i = 0;
                                while (buf[rc[t].off + i] == live[rc[t].off + i])
                                        i++;
                                fail("attempt %u: two writes held, then released together, raced for the "
                                     "last two "
                                     "slots; write %u [%" PRIu64 ", +%" PRIu64
                                     ") failed with -ENOSPC (the other %s) "
                                     "but changed the live volume at byte %" PRIu64 " (chunk %" PRIu64
                                     "): a refused "
                                     "write must change nothing",
                                     a, t, rc[t].off, rc[t].len,
                                     rc[1 - t].r == 0 ? "succeeded" : "was refused too", rc[t].off + i,
                                     (rc[t].off + i) / CHUNK);
                        }
                compare("live after racing writes", 0, buf, live, SIZE, 0);
                if (failed == 0)
                        fail("attempt %u: both racing writes succeeded, needing 4 slots with 2 free", a);
                both_failed += failed == 2;
                one_failed += failed == 1;
                for (unsigned t = 0; t < 2; t++)
                        free(rc[t].buf);
                CHECK_R(engine_snapshot_delete(v, id), "deleting snapshot %u", id);
        }
        engine_volume_close(v);
        printf("protect-snapshots-racing: %u attempts: %u with one write refused, %u with both refused; no "
               "refused write changed anything\n",
               attempts, one_failed, both_failed);
}

/* ---- room needed while freed slots are being punched ---- */

static bool punch_slow, punch_entered;

static int slow_punch(const struct eng_io *io, int fd, uint64_t off, uint64_t len) {
        if (__atomic_load_n(&punch_slow, __ATOMIC_ACQUIRE)) {
                struct timespec ts = { 0, 300 * 1000 * 1000 };
                __atomic_store_n(&punch_entered, true, __ATOMIC_RELEASE);
                nanosleep(&ts, NULL);
        }
        return eng_io_posix.punch(&eng_io_posix, fd, off, len);
}

struct deleter {
        pthread_t thread;
        eng_volume *v;
        uint32_t id;
        int r;
};

static void *deleter_main(void *p) {
        struct deleter *d = p;
        d->r = engine_snapshot_delete(d->v, d->id);
        return NULL;
}

/* A snapshot delete frees its slots, and the commit that makes them reusable punches them in the
 * diff area (slowed down here); a write that needs a slot meanwhile must wait and succeed, not
 * spin (the watchdog turns a hang into a failure). */
static void run_room_while_punching(uint64_t *rng) {
        struct fmodel *m = model_new("room-while-punching");
        struct eng_io io = eng_io_posix;
        _cleanup_free_ char *d = NULL;
        struct deleter del = {};

        tst_watchdog(
                30,
                "phase %s: a write needing room while freed slots were punched made no progress for 30 s "
                "(a writer spinning on the volume lock?); rerun with LVSS_TEST_SEED=%" PRIu64,
                m->phase, G.seed);
        io.punch = slow_punch;
        if (asprintf(&d, "%s/punch", G.dir) < 0)
                fail("out of memory");
        CHECK_R(engine_volume_create_io(d,
                                        &(struct eng_create_params){ .size = SIZE,
                                                                     .chunk_size = CHUNK,
                                                                     .diff_max = 4 * CHUNK,
                                                                     .policy = ENG_POLICY_PROTECT_VOLUME },
                                        &io, &m->v),
                "creating %s", d);
        fill(m, rng);
        uint32_t s1 = take(m, false);
        for (unsigned c = 0; c < 4; c++)
                CHECK_R(write_chunk(m, rng, c, false), "writing chunk %u", c);
        take(m, false);

        __atomic_store_n(&punch_slow, true, __ATOMIC_RELEASE);
        del = (struct deleter){ .v = m->v, .id = s1 };
        if (pthread_create(&del.thread, NULL, deleter_main, &del) != 0)
                fail("pthread_create failed");
        for (int i = 0; i < 5000 && !__atomic_load_n(&punch_entered, __ATOMIC_ACQUIRE); i++) {
                struct timespec ts = { 0, 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        if (!__atomic_load_n(&punch_entered, __ATOMIC_ACQUIRE))
                fail("deleting snapshot %u punched nothing in the diff area within 5 s", s1);
        int r = write_chunk(m, rng, 10, false);
        pthread_join(del.thread, NULL);
        __atomic_store_n(&punch_slow, false, __ATOMIC_RELEASE);
        if (r < 0)
                fail("a write needing a slot while freed slots were punched failed: %s", strerror(-r));
        if (del.r < 0)
                fail("deleting snapshot %u failed: %s", s1, strerror(-del.r));
        model_find(m, s1)->gone = true;
        sync_list(m, false);
        check_all(m, "after a write during the punch of freed slots");
        engine_volume_close(m->v);
        model_free(m);
        printf("room-while-punching: a write needing a slot waited for the punch of freed slots and "
               "succeeded\n");
}

/* ---- revert on a full diff area ---- */

/* Reverting to the oldest snapshot needs copies for the newer ones; under PROTECT_VOLUME that may
 * reclaim snapshots, but not the revert's own source midway: the revert must complete, or fail
 * having changed nothing. */
static void run_revert_full(uint64_t *rng) {
        struct fmodel *m = model_new("revert-full");
        static uint8_t buf[SIZE];

        m->v = make_volume("revert", CAP * CHUNK, ENG_POLICY_PROTECT_VOLUME);
        fill(m, rng);
        uint32_t s1 = take(m, true);
        for (unsigned c = 0; c < 6; c++)
                CHECK_R(write_chunk(m, rng, 2 * c, false), "writing chunk %u", 2 * c);
        take(m, true);
        sync_list(m, false);

        int r = engine_revert(m->v, s1);
        CHECK_R(engine_read(m->v, buf, SIZE, 0), "reading live after the revert");
        const uint8_t *source = m->snaps[0].data;
        sync_list(m, true);
        if (r >= 0) {
                memcpy(m->live, source, SIZE);
                compare("live after reverting to the oldest snapshot on a full diff area", s1, buf, m->live,
                        SIZE, 0);
        } else {
                unsigned changed = 0;
                for (unsigned c = 0; c < N_CHUNKS; c++)
                        changed += memcmp(buf + c * CHUNK, m->live + c * CHUNK, CHUNK) != 0;
                if (changed > 0)
                        fail("revert to the oldest snapshot %u on a full diff area (PROTECT_VOLUME) failed "
                             "with %s "
                             "after changing %u chunk(s) of the live volume (snapshot %u %s): it must "
                             "complete, or "
                             "fail having changed nothing",
                             s1, strerror(-r), changed, s1,
                             model_find(m, s1) ? "still exists" : "was reclaimed meanwhile");
        }
        engine_volume_close(m->v);
        model_free(m);
        printf("revert-full: reverting to the oldest snapshot on a full diff area %s\n",
               r >= 0 ? "completed" : "was refused, nothing changed");
}

int main(int argc, char **argv) {
        uint64_t seed = tst_seed(argc, argv);
        unsigned steps = (unsigned) tst_iterations(argc, argv, 60);
        uint64_t rng = seed;
        uint64_t t0 = tst_now_ns();

        setvbuf(stdout, NULL, _IOLBF, 0); /* progress stays visible if a watchdog ends the run */

        G.seed = seed;
        printf("test-diffarea-full: seed %" PRIu64 " (LVSS_TEST_SEED), %u steps (LVSS_TEST_ITERATIONS)\n",
               seed, steps);
        fflush(stdout);
        CHECK_R(tst_mkdtemp("diffarea-full", &G.dir), "creating a temporary directory");
        tst_watchdog_cleanup(G.dir);

        run_protect_volume(&rng, steps);
        run_protect_snapshots(&rng);
        run_shrink(&rng);
        run_racing_enospc(&rng, 40);
        run_room_while_punching(&rng);
        run_revert_full(&rng);

        tst_rm_rf(G.dir);
        free(G.dir);
        tst_watchdog(0, "-");
        printf("test-diffarea-full: OK (seed %" PRIu64 ", %.1f s)\n", seed, (tst_now_ns() - t0) / 1e9);
        return 0;
}
