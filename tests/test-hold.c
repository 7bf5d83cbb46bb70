/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * test-hold: engine_hold() and engine_release().
 *
 *  - writes in flight drain before the hold returns: a write is stopped inside
 *    the engine (an I/O layer that delays the image pwrite) and the hold must
 *    not return before that pwrite has finished; a hold whose timeout is
 *    shorter than the drain fails with -ETIMEDOUT and leaves no hold;
 *  - a write (and write_zeroes) started during the hold does not complete
 *    until engine_release: the writer sets a flag after engine_write returns,
 *    which must still be unset while held (and the data not readable), and set
 *    afterwards, no earlier than the release;
 *  - the hold lifts by itself at its deadline: the blocked write completes
 *    without release, not before the deadline, and engine_release then says
 *    -ETIMEDOUT; a second hold gives -EBUSY, a release without hold -ENOENT;
 *    a hold that lapsed with no write waiting no longer blocks a new hold;
 *  - a snapshot taken while held has exactly the pre-hold data, the writes
 *    queued during the hold land after it (also across a reopen);
 *  - under four busy writers, repeated hold + snapshot + release give
 *    snapshots in which no write is half applied and each writer's data is no
 *    older than its last completed write before the hold.
 *
 * A watchdog (alarm) turns a deadlock into a failure naming the step.
 * Options: --seed=N / LVSS_TEST_SEED, --iterations=N / LVSS_TEST_ITERATIONS
 * (hold cycles of the stress part, default 40).
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/engine.h"
#include "tests/faultio.h"

#define CHUNK 4096u
#define SIZE (1024u * 1024u)
#define MS 1000000ull

static struct {
        uint64_t seed;
        char *dir;
        const char *volatile step;
} G;

__attribute__((format(printf, 1, 2))) _Noreturn static void fail(const char *fmt, ...) {
        va_list ap;

        fflush(stdout);

        fprintf(stderr, "\nFAIL seed=%" PRIu64 " step=\"%s\": ", G.seed, G.step ? G.step : "-");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        if (G.dir)
                tst_rm_rf(G.dir);
        fflush(stderr);
        _exit(1);
}

#define CHECK_R(expr, what, ...)                                                                            \
        do {                                                                                                \
                int _r = (expr);                                                                            \
                if (_r < 0)                                                                                 \
                        fail("%s: " what ": %s", #expr, ##__VA_ARGS__, strerror(-_r));                      \
        } while (0)

static void step(const char *s) {
        G.step = s;
        tst_watchdog(60, "no progress for 60 s (deadlock?) in step \"%s\"; seed %" PRIu64, s, G.seed);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- an I/O layer that can stop one image write inside the engine ---- */

static struct {
        bool armed; /* the next pwrite of the image is delayed */
        bool entered; /* that pwrite has started */
        bool passed; /* and finished */
        unsigned delay_ms;
        int image_fd;
} gate = { .image_fd = -1 };

static int gate_open(const struct eng_io *io, const char *path, int flags, mode_t mode) {
        int fd = eng_io_posix.open(&eng_io_posix, path, flags, mode);
        const char *base = strrchr(path, '/');
        if (fd >= 0 && strcmp(base ? base + 1 : path, "image") == 0)
                __atomic_store_n(&gate.image_fd, fd, __ATOMIC_RELEASE);
        return fd;
}

static int gate_close(const struct eng_io *io, int fd) {
        int expect = fd;
        __atomic_compare_exchange_n(&gate.image_fd, &expect, -1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return eng_io_posix.close(&eng_io_posix, fd);
}

static int gate_pwrite(const struct eng_io *io, int fd, const void *buf, size_t len, uint64_t off) {
        if (fd == __atomic_load_n(&gate.image_fd, __ATOMIC_ACQUIRE) &&
            __atomic_exchange_n(&gate.armed, false, __ATOMIC_ACQ_REL)) {
                __atomic_store_n(&gate.entered, true, __ATOMIC_RELEASE);
                sleep_ms(gate.delay_ms);
                int r = eng_io_posix.pwrite(&eng_io_posix, fd, buf, len, off);
                __atomic_store_n(&gate.passed, true, __ATOMIC_RELEASE);
                return r;
        }
        return eng_io_posix.pwrite(&eng_io_posix, fd, buf, len, off);
}

static struct eng_io gate_io;

static void gate_arm(unsigned delay_ms) {
        gate.delay_ms = delay_ms;
        __atomic_store_n(&gate.entered, false, __ATOMIC_RELEASE);
        __atomic_store_n(&gate.passed, false, __ATOMIC_RELEASE);
        __atomic_store_n(&gate.armed, true, __ATOMIC_RELEASE);
}

static void gate_wait_entered(void) {
        for (int i = 0; i < 5000 && !__atomic_load_n(&gate.entered, __ATOMIC_ACQUIRE); i++)
                sleep_ms(1);
        if (!__atomic_load_n(&gate.entered, __ATOMIC_ACQUIRE))
                fail("the write never reached a pwrite of DIR/image (does the engine write the image "
                     "through io?)");
}

/* ---- a writer thread ---- */

struct writer {
        pthread_t thread;
        eng_volume *v;
        bool zeroes;
        const uint8_t *buf;
        size_t len;
        uint64_t off;
        int r;
        bool done; /* set after engine_write returned */
        uint64_t done_ns;
};

static void *writer_main(void *p) {
        struct writer *w = p;

        w->r = w->zeroes ? engine_write_zeroes(w->v, w->len, w->off)
                         : engine_write(w->v, w->buf, w->len, w->off);
        w->done_ns = tst_now_ns();
        __atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
        return NULL;
}

static void writer_start(struct writer *w, eng_volume *v, const uint8_t *buf, size_t len, uint64_t off) {
        *w = (struct writer){ .v = v, .buf = buf, .zeroes = buf == NULL, .len = len, .off = off };
        if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
                fail("pthread_create failed");
}

static bool writer_done(struct writer *w) {
        return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

static void writer_join(struct writer *w, const char *what) {
        pthread_join(w->thread, NULL);
        if (w->r < 0)
                fail("%s failed: %s", what, strerror(-w->r));
}

static void expect_read(eng_volume *v, uint32_t id, const uint8_t *expect, size_t len, uint64_t off,
                        const char *what) {
        _cleanup_free_ uint8_t *buf = malloc(len);
        if (!buf)
                fail("out of memory");
        if (id)
                CHECK_R(engine_snapshot_read(v, id, buf, len, off), "reading snapshot %u (%s)", id, what);
        else
                CHECK_R(engine_read(v, buf, len, off), "reading live (%s)", what);
        if (memcmp(buf, expect, len) != 0) {
                size_t i = 0;
                while (buf[i] == expect[i])
                        i++;
                fail("%s: %s [%" PRIu64 ", +%zu) differs at byte %" PRIu64 ": read 0x%02x, expected 0x%02x",
                     what, id ? "snapshot" : "live volume", off, len, off + i, buf[i], expect[i]);
        }
}

/* ---- the cases ---- */

static void test_drain(eng_volume *v, uint64_t *rng) {
        static uint8_t a[3 * CHUNK];
        struct writer w;

        step("hold waits for a write in flight");
        tst_rand_fill(rng, a, sizeof a);
        gate_arm(400);
        writer_start(&w, v, a, sizeof a, 5 * CHUNK + 100);
        gate_wait_entered();
        uint64_t t0 = tst_now_ns();
        CHECK_R(engine_hold(v, 5000), "holding with a write in flight");
        uint64_t dt = tst_now_ns() - t0;
        if (!__atomic_load_n(&gate.passed, __ATOMIC_ACQUIRE))
                fail("engine_hold returned after %.0f ms while a write was still inside its image pwrite",
                     dt / 1e6);
        CHECK_R(engine_release(v), "releasing");
        writer_join(&w, "the write in flight");
        expect_read(v, 0, a, sizeof a, 5 * CHUNK + 100, "after a drained hold");
        printf("drain: hold returned after %.0f ms, once the write in flight had finished\n", dt / 1e6);

        step("hold times out draining a slow write");
        tst_rand_fill(rng, a, sizeof a);
        gate_arm(1500);
        writer_start(&w, v, a, sizeof a, 9 * CHUNK + 1);
        gate_wait_entered();
        t0 = tst_now_ns();
        int r = engine_hold(v, 100);
        dt = tst_now_ns() - t0;
        if (r != -ETIMEDOUT)
                fail("hold(100 ms) with a write stuck for 1.5 s returned %d, expected -ETIMEDOUT", r);
        if (dt < 90 * MS || __atomic_load_n(&gate.passed, __ATOMIC_ACQUIRE))
                fail("hold(100 ms) gave -ETIMEDOUT after %.0f ms (write passed: %d)", dt / 1e6,
                     __atomic_load_n(&gate.passed, __ATOMIC_ACQUIRE));
        r = engine_release(v);
        if (r != -ENOENT)
                fail("release after a hold that timed out draining returned %d, expected -ENOENT (no hold)",
                     r);
        writer_join(&w, "the slow write");
        /* No hold is left: a write goes straight through. */
        t0 = tst_now_ns();
        CHECK_R(engine_write(v, a, 10, 0), "writing after the failed hold");
        if (tst_now_ns() - t0 > 1000 * MS)
                fail("a write after a failed hold took %.0f ms", (tst_now_ns() - t0) / 1e6);
        expect_read(v, 0, a, 10, 0, "after the failed hold");
        expect_read(v, 0, a, sizeof a, 9 * CHUNK + 1, "the slow write");
        printf("drain timeout: -ETIMEDOUT after %.0f ms, no hold left behind\n", dt / 1e6);
}

static void test_block(eng_volume *v, uint64_t *rng) {
        static uint8_t old[2 * CHUNK + 300], b[2 * CHUNK + 300], zeros[CHUNK + 7];
        const uint64_t off = 20 * CHUNK + 2000, zoff = 40 * CHUNK + 3;
        struct writer w, wz;

        step("writes wait for the release");
        tst_rand_fill(rng, old, sizeof old);
        tst_rand_fill(rng, b, sizeof b);
        CHECK_R(engine_write(v, old, sizeof old, off), "writing the old data");
        _cleanup_free_ uint8_t *zold = malloc(sizeof zeros);
        if (!zold)
                fail("out of memory");
        CHECK_R(engine_read(v, zold, sizeof zeros, zoff), "reading");

        CHECK_R(engine_hold(v, 10000), "holding");
        writer_start(&w, v, b, sizeof b, off);
        writer_start(&wz, v, NULL, sizeof zeros, zoff);
        sleep_ms(300);
        if (writer_done(&w) || writer_done(&wz))
                fail("a write started during the hold returned before the release (write %d, write_zeroes "
                     "%d: %d %d)",
                     writer_done(&w), writer_done(&wz), w.r, wz.r);
        expect_read(v, 0, old, sizeof old, off,
                    "reading during the hold: the held write must not have landed");
        expect_read(v, 0, zold, sizeof zeros, zoff,
                    "reading during the hold: the held write_zeroes must not have "
                    "landed");
        uint64_t t_rel = tst_now_ns();
        CHECK_R(engine_release(v), "releasing");
        writer_join(&w, "the held write");
        writer_join(&wz, "the held write_zeroes");
        if (w.done_ns < t_rel || wz.done_ns < t_rel)
                fail("a held write finished before engine_release was called");
        expect_read(v, 0, b, sizeof b, off, "after the release");
        expect_read(v, 0, zeros, sizeof zeros, zoff, "after the release (zeroes)");
        printf("block: write and write_zeroes waited for the release (%.1f ms after it)\n",
               (MAX(w.done_ns, wz.done_ns) - t_rel) / 1e6);

        step("the hold lifts by itself at its deadline");
        tst_rand_fill(rng, b, sizeof b);
        uint64_t t0 = tst_now_ns();
        CHECK_R(engine_hold(v, 300), "holding for 300 ms");
        writer_start(&w, v, b, sizeof b, off);
        sleep_ms(100);
        if (tst_now_ns() - t0 < 280 * MS && writer_done(&w))
                fail("a write finished %.0f ms into a 300 ms hold", (w.done_ns - t0) / 1e6);
        for (int i = 0; i < 5000 && !writer_done(&w); i++)
                sleep_ms(1);
        if (!writer_done(&w))
                fail("the hold did not lift by itself at its 300 ms deadline (5 s later the write still "
                     "waits)");
        writer_join(&w, "the write held until the deadline");
        if (w.done_ns - t0 < 295 * MS)
                fail("the write held by a 300 ms hold finished after only %.0f ms", (w.done_ns - t0) / 1e6);
        expect_read(v, 0, b, sizeof b, off, "after the deadline");
        int r = engine_release(v);
        if (r != -ETIMEDOUT)
                fail("release after the deadline returned %d, expected -ETIMEDOUT", r);
        r = engine_release(v);
        if (r != -ENOENT)
                fail("a second release after the deadline returned %d, expected -ENOENT", r);
        printf("deadline: the held write went through %.0f ms after the hold began; release said "
               "-ETIMEDOUT\n",
               (w.done_ns - t0) / 1e6);

        step("a second hold, a release without a hold");
        r = engine_release(v);
        if (r != -ENOENT)
                fail("release without a hold returned %d, expected -ENOENT", r);
        CHECK_R(engine_hold(v, 5000), "holding");
        r = engine_hold(v, 5000);
        if (r != -EBUSY)
                fail("a second hold returned %d, expected -EBUSY", r);
        CHECK_R(engine_release(v), "releasing (after a refused second hold)");
        r = engine_release(v);
        if (r != -ENOENT)
                fail("a second release returned %d, expected -ENOENT", r);
        /* And a fresh hold works again. */
        CHECK_R(engine_hold(v, 5000), "holding again");
        CHECK_R(engine_release(v), "releasing again");
        printf("second hold: -EBUSY, release without hold -ENOENT\n");
}

static void test_snapshot(eng_volume **vp, const char *dir, uint64_t *rng) {
        static uint8_t a[3 * CHUNK + 77], b[3 * CHUNK + 77];
        const uint64_t off = 60 * CHUNK + 999;
        eng_volume *v = *vp;
        struct writer w, w2;
        uint32_t id, id2;

        step("a snapshot taken during the hold");
        tst_rand_fill(rng, a, sizeof a);
        tst_rand_fill(rng, b, sizeof b);
        CHECK_R(engine_write(v, a, sizeof a, off), "writing A");
        CHECK_R(engine_hold(v, 10000), "holding");
        writer_start(&w, v, b, sizeof b, off);
        writer_start(&w2, v, NULL, 100, off + 5);
        sleep_ms(100);
        CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = true, .label = "held" },
                                       &id),
                "creating a persistent snapshot while held");
        CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = false }, &id2),
                "creating a non-persistent snapshot while held");
        if (writer_done(&w) || writer_done(&w2))
                fail("a held write finished before the release");
        expect_read(v, id, a, sizeof a, off, "snapshot taken while held, before the release");
        CHECK_R(engine_release(v), "releasing");
        writer_join(&w, "the held write");
        writer_join(&w2, "the held write_zeroes");
        /* The two held writes overlap; either order is possible. */
        _cleanup_free_ uint8_t *live = malloc(sizeof b);
        if (!live)
                fail("out of memory");
        CHECK_R(engine_read(v, live, sizeof b, off), "reading live");
        uint8_t alt[sizeof b];
        memcpy(alt, b, sizeof b);
        memset(alt + 5, 0, 100);
        if (memcmp(live, b, sizeof b) != 0 && memcmp(live, alt, sizeof b) != 0)
                fail("after the release the live range holds neither B nor B with zeroes");
        memcpy(b, live, sizeof b);
        expect_read(v, id, a, sizeof a, off, "persistent snapshot taken while held");
        expect_read(v, id2, a, sizeof a, off, "non-persistent snapshot taken while held");

        engine_volume_close(v);
        *vp = v = NULL;
        CHECK_R(engine_volume_open_io(dir, &gate_io, &v), "reopening");
        *vp = v;
        expect_read(v, id, a, sizeof a, off, "snapshot taken while held, after a reopen");
        expect_read(v, 0, b, sizeof b, off, "live data written during the hold, after a reopen");
        CHECK_R(engine_snapshot_delete(v, id), "deleting");
        printf("snapshot: taken while held, it has the pre-hold data; the held writes landed after it\n");
}

/* ---- hold + snapshot + release under busy writers ---- */

#define N_BUSY 4

struct busy {
        pthread_t thread;
        eng_volume *v;
        unsigned idx;
        uint64_t off, len;
        uint32_t started, completed; /* counters, atomics */
        bool stop;
        int r;
};

static void pattern(uint8_t *buf, uint64_t len, unsigned idx, uint32_t counter) {
        for (uint64_t i = 0; i < len; i += 4) {
                uint32_t x = counter * 8u + idx;
                memcpy(buf + i, &x, MIN((uint64_t) 4, len - i));
        }
}

static void *busy_main(void *p) {
        struct busy *b = p;
        _cleanup_free_ uint8_t *buf = malloc(b->len);

        if (!buf) {
                b->r = -ENOMEM;
                return NULL;
        }
        for (uint32_t c = 1; !__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE); c++) {
                pattern(buf, b->len, b->idx, c);
                __atomic_store_n(&b->started, c, __ATOMIC_RELEASE);
                int r = engine_write(b->v, buf, b->len, b->off);
                if (r < 0) {
                        b->r = r;
                        return NULL;
                }
                __atomic_store_n(&b->completed, c, __ATOMIC_RELEASE);
        }
        return NULL;
}

static void test_busy(eng_volume *v, unsigned cycles) {
        struct busy b[N_BUSY];
        _cleanup_free_ uint8_t *buf = malloc(4 * CHUNK), *expect = malloc(4 * CHUNK);
        uint64_t min_c[N_BUSY], max_c[N_BUSY];
        unsigned busy_holds = 0;

        step("hold + snapshot + release under busy writers");
        if (!buf || !expect)
                fail("out of memory");
        for (unsigned t = 0; t < N_BUSY; t++) {
                /* Regions of 3 chunks and a bit, 4-byte aligned but not chunk-aligned; neighbours share a
                 * chunk. */
                b[t] = (struct busy){ .v = v,
                                      .idx = t,
                                      .off = 100 * CHUNK + t * (3 * CHUNK + 1024),
                                      .len = 3 * CHUNK + 1024 };
                if (pthread_create(&b[t].thread, NULL, busy_main, &b[t]) != 0)
                        fail("pthread_create failed");
        }
        for (unsigned k = 0; k < cycles; k++) {
                uint32_t id;
                sleep_ms(5);
                for (unsigned t = 0; t < N_BUSY; t++)
                        min_c[t] = __atomic_load_n(&b[t].completed, __ATOMIC_ACQUIRE);
                CHECK_R(engine_hold(v, 5000), "hold %u under busy writers", k);
                for (unsigned t = 0; t < N_BUSY; t++)
                        max_c[t] = __atomic_load_n(&b[t].started, __ATOMIC_ACQUIRE);
                CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = k % 2 }, &id),
                        "snapshot %u under hold", k);
                CHECK_R(engine_release(v), "release %u", k);
                for (unsigned t = 0; t < N_BUSY; t++) {
                        CHECK_R(engine_snapshot_read(v, id, buf, b[t].len, b[t].off), "reading snapshot %u",
                                id);
                        uint32_t x;
                        memcpy(&x, buf, 4);
                        uint32_t c = x / 8u;
                        pattern(expect, b[t].len, t, c);
                        if (x % 8u != t || memcmp(buf, expect, b[t].len) != 0) {
                                size_t i = 0;
                                while (buf[i] == expect[i])
                                        i++;
                                fail("snapshot %u (cycle %u): writer %u's region is torn: it starts with "
                                     "write #%u "
                                     "but byte %zu (chunk %" PRIu64
                                     ") differs: a write was half applied when the "
                                     "hold returned",
                                     id, k, t, c, i, (b[t].off + i) / CHUNK);
                        }
                        if (c < min_c[t] || c > max_c[t])
                                fail("snapshot %u (cycle %u): writer %u's region holds write #%u; before "
                                     "the hold "
                                     "#%" PRIu64 " had completed, at the hold #%" PRIu64
                                     " was the newest started",
                                     id, k, t, c, min_c[t], max_c[t]);
                        busy_holds += c != max_c[t];
                }
                CHECK_R(engine_snapshot_delete(v, id), "deleting snapshot %u", id);
        }
        for (unsigned t = 0; t < N_BUSY; t++)
                __atomic_store_n(&b[t].stop, true, __ATOMIC_RELEASE);
        for (unsigned t = 0; t < N_BUSY; t++) {
                pthread_join(b[t].thread, NULL);
                if (b[t].r < 0)
                        fail("busy writer %u failed: %s", t, strerror(-b[t].r));
        }
        printf("busy: %u hold/snapshot/release cycles with %d writers, no torn write in any snapshot "
               "(%u regions caught a write waiting on the hold)\n",
               cycles, N_BUSY, busy_holds);
}

/* Last, as it fails on an engine that leaves a lapsed hold in place. */
static void test_lapsed(eng_volume *v) {
        int r;

        step("a hold that lapsed with no write waiting");
        CHECK_R(engine_hold(v, 100), "holding for 100 ms");
        sleep_ms(250);
        r = engine_release(v);
        if (r != -ETIMEDOUT)
                fail("release 250 ms into a 100 ms hold (no write came) returned %d, expected -ETIMEDOUT",
                     r);
        CHECK_R(engine_hold(v, 100), "holding for 100 ms");
        sleep_ms(250);
        r = engine_hold(v, 5000);
        if (r < 0)
                fail("a new hold 250 ms into a 100 ms hold that lifted by itself (no write came, no "
                     "release) "
                     "returned %d (%s), expected success: the earlier hold is no longer held",
                     r, strerror(-r));
        CHECK_R(engine_release(v), "releasing the new hold");
        r = engine_release(v);
        if (r != -ENOENT)
                fail("a second release returned %d, expected -ENOENT", r);
        printf("lapsed: release after the deadline -ETIMEDOUT; a new hold after a lapsed one succeeds\n");
}

int main(int argc, char **argv) {
        uint64_t seed = tst_seed(argc, argv);
        unsigned cycles = (unsigned) tst_iterations(argc, argv, 40);
        uint64_t rng = seed;
        eng_volume *v = NULL;
        uint64_t t0 = tst_now_ns();

        setvbuf(stdout, NULL, _IOLBF, 0); /* progress stays visible if a watchdog ends the run */

        G.seed = seed;
        printf("test-hold: seed %" PRIu64 " (LVSS_TEST_SEED), %u busy cycles (LVSS_TEST_ITERATIONS)\n", seed,
               cycles);
        fflush(stdout);

        gate_io = eng_io_posix;
        gate_io.open = gate_open;
        gate_io.close = gate_close;
        gate_io.pwrite = gate_pwrite;

        step("setup");
        CHECK_R(tst_mkdtemp("hold", &G.dir), "creating a temporary directory");
        tst_watchdog_cleanup(G.dir);
        CHECK_R(engine_volume_create_io(G.dir,
                                        &(struct eng_create_params){ .size = SIZE, .chunk_size = CHUNK },
                                        &gate_io, &v),
                "creating a volume");
        {
                _cleanup_free_ uint8_t *buf = malloc(SIZE);
                if (!buf)
                        fail("out of memory");
                tst_rand_fill(&rng, buf, SIZE);
                CHECK_R(engine_write(v, buf, SIZE, 0), "filling");
        }

        test_drain(v, &rng);
        test_block(v, &rng);
        test_snapshot(&v, G.dir, &rng);

        /* The same with a snapshot present, so that writes copy on write while held. */
        uint32_t keep;
        CHECK_R(engine_snapshot_create(v, &(struct eng_snap_params){ .persistent = true }, &keep),
                "snapshot");
        test_drain(v, &rng);
        test_block(v, &rng);
        test_busy(v, cycles);
        test_lapsed(v);

        step("teardown");
        engine_volume_close(v);
        tst_watchdog(0, "-");
        tst_rm_rf(G.dir);
        free(G.dir);
        printf("test-hold: OK (seed %" PRIu64 ", %.1f s)\n", seed, (tst_now_ns() - t0) / 1e9);
        return 0;
}
