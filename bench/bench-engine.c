/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-engine: measures the CoW engine against a plain file, in one run.
 *
 * For each --dir (each may be on another filesystem) it prints:
 *   - live write throughput, 4 KiB random and 1 MiB sequential writes from
 *     --threads threads through engine_write, with no snapshot, one
 *     non-persistent snapshot, then 1, 64 and 512 persistent snapshots, in the
 *     first-write case (every I/O touches chunks not written since the latest
 *     snapshot: each needs a CoW) and the rewrite case (the same offsets
 *     again: no CoW), as a ratio to the same offsets written with pwrite into
 *     a plain file of the same size in the same directory, measured just
 *     before. Both are buffered; each case ends with engine_flush / fdatasync,
 *     counted in its time. Beside every figure: CPU time (user+sys of the
 *     whole process, getrusage) per I/O, steadier than throughput on a shared
 *     machine. Where the filesystem can share extents, a volume with the
 *     reflink path and one with copies only are measured side by side;
 *   - the same first-write and rewrite cases at one snapshot for several
 *     chunk sizes;
 *   - snapshot creation latency on a 64 MiB and a 64 GiB sparse volume;
 *   - heap bytes per preserved chunk (engine_volume_info mem_bytes);
 *   - the targets, PASS or MISS.
 *
 * Volumes are pre-filled with non-zero data (a real volume is full, and a
 * plain-file overwrite must not be compared with a hole's allocation), the
 * plain file and the volume alike, in chunk-sized writes (see prefill_plain).
 * The random writes pick distinct chunks in the first half of the volume,
 * one 4 KiB block at a random place in each; the sequential ones go from the
 * middle of the volume on. Between cases the filesystem is synced (not
 * timed) so that one case's writeback does not land in the next one's time.
 *
 * Everything lives in DIR/lvss-bench.XXXXXX, removed at the end.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/engine.h"

#define KIB UINT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define SEQ_LEN MIB
#define RAND_LEN (4 * KIB)
#define MAX_THREADS 256u
#define MAX_DIRS 8u
#define MAX_LEVELS 16u
#define MAX_CHUNKS 8u
#define MAX_RUNS 9u

enum pattern { PAT_RAND, PAT_SEQ, N_PAT };
enum wcase { CASE_FIRST, CASE_REWRITE, N_CASE };
enum mode { MODE_COPY, MODE_REFLINK, N_MODE };

static const char *const pattern_name[N_PAT] = { "4k-rand", "1M-seq" };
static const char *const case_name[N_CASE] = { "first", "rewrite" };
static const char *const mode_name[N_MODE] = { "copies", "reflinks" };

/* ---- options ---- */

struct level {
        unsigned n; /* persistent snapshots */
        bool np; /* plus one non-persistent snapshot, deleted after the level */
};

static struct {
        const char *dirs[MAX_DIRS];
        unsigned n_dirs;
        uint64_t size;
        unsigned threads;
        unsigned rand_ios;
        unsigned seq_ios;
        uint32_t chunk;
        uint32_t chunks[MAX_CHUNKS];
        unsigned n_chunks;
        struct level levels[MAX_LEVELS];
        unsigned n_levels;
        unsigned samples;
        unsigned runs;
        uint64_t seed;
        bool no_reflink;
        bool quick;
} arg = {
        .size = 1 * GIB,
        .threads = 16,
        .rand_ios = 2048,
        .seq_ios = 128,
        .chunk = ENG_CHUNK_DEFAULT,
        .samples = 50,
        .runs = 3,
        .seed = 0x6c767373,
};

/* ---- small helpers ---- */

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* User+system CPU time of the whole process (every thread), in ns. */
static uint64_t cpu_ns(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return ((uint64_t) ru.ru_utime.tv_sec + (uint64_t) ru.ru_stime.tv_sec) * 1000000000ull +
               ((uint64_t) ru.ru_utime.tv_usec + (uint64_t) ru.ru_stime.tv_usec) * 1000ull;
}

static uint64_t rng_next(uint64_t *s) {
        /* xorshift64* */
        uint64_t x = *s;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        return x * 0x2545f4914f6cdd1dull;
}

static __attribute__((format(printf, 1, 2))) void progress(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("# ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static int parse_size(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || end == s)
                return -EINVAL;
        uint64_t mul = 1;
        switch (*end) {
        case '\0':
                break;
        case 'k':
        case 'K':
                mul = KIB;
                end++;
                break;
        case 'm':
        case 'M':
                mul = MIB;
                end++;
                break;
        case 'g':
        case 'G':
                mul = GIB;
                end++;
                break;
        case 't':
        case 'T':
                mul = 1024 * GIB;
                end++;
                break;
        default:
                return -EINVAL;
        }
        if (*end == 'i' && end[1] == 'B')
                end += 2;
        else if (*end == 'B')
                end++;
        if (*end != '\0' || v > UINT64_MAX / mul)
                return -EINVAL;
        *ret = v * mul;
        return 0;
}

static const char *fmt_size(uint64_t v, char *buf, size_t len) {
        if (v >= GIB && v % GIB == 0)
                snprintf(buf, len, "%" PRIu64 "G", v / GIB);
        else if (v >= MIB && v % MIB == 0)
                snprintf(buf, len, "%" PRIu64 "M", v / MIB);
        else if (v >= KIB && v % KIB == 0)
                snprintf(buf, len, "%" PRIu64 "K", v / KIB);
        else
                snprintf(buf, len, "%" PRIu64, v);
        return buf;
}

static const char *fs_type_name(const char *path, char *buf, size_t len) {
        struct statfs sf;
        if (statfs(path, &sf) < 0) {
                snprintf(buf, len, "?");
                return buf;
        }
        switch ((unsigned long) sf.f_type) {
        case 0xEF53:
                snprintf(buf, len, "ext4");
                break;
        case 0x58465342:
                snprintf(buf, len, "xfs");
                break;
        case 0x9123683E:
                snprintf(buf, len, "btrfs");
                break;
        case 0x01021994:
                snprintf(buf, len, "tmpfs");
                break;
        case 0x2FC12FC1:
                snprintf(buf, len, "zfs");
                break;
        case 0x794c7630:
                snprintf(buf, len, "overlay");
                break;
        default:
                snprintf(buf, len, "0x%lx", (unsigned long) sf.f_type);
                break;
        }
        return buf;
}

/* The 1-minute load average: other work on the machine moves these figures (not CPU per I/O much). */
static double loadavg(void) {
        double l = -1;
        FILE *f = fopen("/proc/loadavg", "re");
        if (f) {
                if (fscanf(f, "%lf", &l) != 1)
                        l = -1;
                fclose(f);
        }
        return l;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        if (remove(path) < 0 && errno != ENOENT)
                fprintf(stderr, "cannot remove %s: %m\n", path);
        return 0;
}

static void rm_rf(const char *path) {
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n, len -= (size_t) n, off += (uint64_t) n;
        }
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* ---- the parallel writer ---- */

static uint8_t *thread_buf[MAX_THREADS];

struct job {
        eng_volume *v; /* NULL: the plain file FD */
        int fd;
        const uint64_t *offs;
        size_t n, len;
        atomic_size_t next;
        atomic_int err;
        uint64_t stamp;
};

struct worker {
        struct job *job;
        uint8_t *buf;
        pthread_t tid;
};

static void *worker_main(void *p) {
        struct worker *w = p;
        struct job *j = w->job;

        for (;;) {
                size_t i = atomic_fetch_add(&j->next, 1);
                if (i >= j->n)
                        break;
                /* Every write carries new bytes; the rest of the buffer is fixed random data. */
                uint64_t tag = j->stamp ^ ((uint64_t) i << 20);
                memcpy(w->buf, &tag, sizeof tag);
                int r = j->v ? engine_write(j->v, w->buf, j->len, j->offs[i])
                             : pwrite_full(j->fd, w->buf, j->len, j->offs[i]);
                if (r < 0) {
                        int zero = 0;
                        atomic_compare_exchange_strong(&j->err, &zero, r);
                        break;
                }
        }
        return NULL;
}

struct meas {
        bool done;
        int err;
        double mibs; /* MiB/s */
        double cpu_us; /* CPU µs per I/O */
        double secs;
        uint64_t cow; /* chunks preserved during the case (engine only) */
};

/* Writes LEN bytes at each of OFFS[0..N) from arg.threads threads, then flushes; timed. */
static int run_writes(eng_volume *v, int fd, const uint64_t *offs, size_t n, size_t len, struct meas *ret) {
        static uint64_t stamp;
        struct job j = { .v = v, .fd = fd, .offs = offs, .n = n, .len = len, .stamp = ++stamp };
        struct worker w[MAX_THREADS];
        unsigned nt = arg.threads, started = 0;
        int r = 0;

        atomic_init(&j.next, 0);
        atomic_init(&j.err, 0);

        uint64_t c0 = cpu_ns(), t0 = now_ns();
        for (unsigned i = 0; i < nt; i++) {
                w[i] = (struct worker){ .job = &j, .buf = thread_buf[i] };
                r = -pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
                if (r < 0)
                        break;
                started++;
        }
        for (unsigned i = 0; i < started; i++)
                pthread_join(w[i].tid, NULL);
        if (r >= 0)
                r = atomic_load(&j.err);
        if (r >= 0)
                r = v ? engine_flush(v) : (fdatasync(fd) < 0 ? negative_errno() : 0);
        uint64_t t1 = now_ns(), c1 = cpu_ns();

        *ret = (struct meas){ .done = true, .err = r };
        if (r >= 0) {
                ret->secs = (double) (t1 - t0) / 1e9;
                ret->mibs = (double) n * (double) len / (double) MIB / ret->secs;
                ret->cpu_us = (double) (c1 - c0) / 1e3 / (double) n;
        }
        return r;
}

/* ---- the volumes of one directory ---- */

struct row {
        char label[24]; /* snapshots ("0", "1+np", "64") or chunk size ("16K") */
        enum pattern pat;
        enum wcase wc;
        unsigned level; /* index in arg.levels, or chunk index */
        size_t n_ios; /* a run */
        unsigned runs;
        struct meas plain;
        struct meas eng[N_MODE];
};

struct memrow {
        char what[48];
        enum mode mode;
        uint32_t chunk;
        uint64_t exceptions, mem, mem_base, diff_used;
};

struct latency {
        uint64_t size;
        double med[2], p90[2], max[2]; /* [persistent] in ms */
        int err;
};

struct bulk {
        unsigned from, to; /* persistent snapshots before and after */
        double ms_avg[N_MODE];
};

struct dirctx {
        const char *dir;
        char fs[32];
        char work[PATH_MAX];
        int plain_fd;
        bool have[N_MODE];
        bool reflink_possible;
        eng_volume *vol[N_MODE];
        uint32_t np_id[N_MODE];
        unsigned n_persistent;
        uint64_t mem_base[N_MODE];

        struct row rows[MAX_LEVELS * N_PAT * N_CASE];
        size_t n_rows;
        struct row crows[MAX_CHUNKS * N_PAT * N_CASE];
        size_t n_crows;
        struct memrow mem[N_MODE * (MAX_CHUNKS + 1)];
        size_t n_mem;
        struct latency lat[2];
        struct bulk bulk[MAX_LEVELS];
        size_t n_bulk;
        double load;
        int err;
};

static void settle(struct dirctx *d) {
        /* Not timed: write back what the last case left dirty (the engine's diff area, if it did
         * not sync it) so that it does not land in the next case's time. */
        syncfs(d->plain_fd);
}

/* Offsets of the RUNS runs of one case, N a run (returned, capped to fit), run after run.
 * Random: distinct chunks of the first half (no two I/Os of any run share a chunk), one 4 KiB block
 * at a random place in each. Sequential: 1 MiB writes from the middle on, one run after the other. */
static size_t make_offsets(enum pattern pat, uint32_t chunk, uint64_t seed, unsigned runs, uint64_t **ret) {
        uint64_t half = arg.size / 2;
        uint64_t *offs;
        size_t n;

        if (pat == PAT_RAND) {
                uint64_t n_chunks = half / chunk;
                n = (size_t) MIN((uint64_t) arg.rand_ios, n_chunks / runs) * runs;
                uint64_t *perm = malloc(n_chunks * sizeof *perm);
                offs = malloc(n * sizeof *offs);
                if (!perm || !offs) {
                        free(perm), free(offs);
                        return 0;
                }
                for (uint64_t i = 0; i < n_chunks; i++)
                        perm[i] = i;
                uint64_t s = seed | 1;
                for (size_t i = 0; i < n; i++) {
                        uint64_t k = i + rng_next(&s) % (n_chunks - i);
                        uint64_t t = perm[i];
                        perm[i] = perm[k], perm[k] = t;
                        uint64_t blocks = chunk / RAND_LEN;
                        offs[i] = perm[i] * chunk + (rng_next(&s) % blocks) * RAND_LEN;
                }
                free(perm);
        } else {
                n = (size_t) MIN((uint64_t) arg.seq_ios, half / SEQ_LEN / runs) * runs;
                offs = malloc(n * sizeof *offs);
                if (!offs)
                        return 0;
                for (size_t i = 0; i < n; i++)
                        offs[i] = half + i * SEQ_LEN;
        }
        *ret = offs;
        return n / runs;
}

/* Fills a plain file in PIECE-sized writes. The plain file and the volume are both filled in writes
 * of the chunk size, each through its own API: the size of the writes that filled a file decides its
 * page cache's folio sizes, and a 4 KiB overwrite costs ~4x the CPU in a 1 MiB folio than in a 64 KiB
 * one (ext4, Linux 6.18), which must neither favour nor penalise either side. */
static int prefill_plain(int fd, uint32_t piece) {
        uint64_t n = arg.size / piece;
        _cleanup_free_ uint64_t *offs = malloc(n * sizeof *offs);
        struct meas m;
        if (!offs)
                return -ENOMEM;
        for (uint64_t i = 0; i < n; i++)
                offs[i] = i * piece;
        return run_writes(NULL, fd, offs, n, piece, &m);
}

/* Creates and fills plain file NAME in the work directory for volumes of chunk size CHUNK. */
static int plain_new(struct dirctx *d, const char *name, uint32_t chunk) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", d->work, name);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
                int r = negative_errno();
                fprintf(stderr, "cannot create %s: %m\n", path);
                return r;
        }
        int r = prefill_plain(fd, chunk);
        if (r < 0) {
                fprintf(stderr, "cannot fill %s: %s\n", path, strerror(-r));
                close(fd);
                unlink(path);
                return r;
        }
        return fd;
}

static int prefill_volume(eng_volume *v, uint32_t piece) {
        uint64_t n = arg.size / piece;
        _cleanup_free_ uint64_t *offs = malloc(n * sizeof *offs);
        struct meas m;
        if (!offs)
                return -ENOMEM;
        for (uint64_t i = 0; i < n; i++)
                offs[i] = i * piece;
        return run_writes(v, -1, offs, n, piece, &m);
}

/* Creates volume NAME in the work directory, in MODE; -EOPNOTSUPP if MODE cannot be had. */
static int volume_new(struct dirctx *d, const char *name, uint64_t size, uint32_t chunk, enum mode mode,
                      bool fill, eng_volume **ret) {
        char path[PATH_MAX + 64];
        struct eng_create_params p = { .size = size, .chunk_size = chunk };
        struct eng_volume_info info;
        eng_volume *v;
        int r;

        snprintf(path, sizeof path, "%s/%s", d->work, name);
        r = engine_volume_create(path, &p, &v);
        if (r < 0) {
                fprintf(stderr, "cannot create volume %s: %s\n", path, strerror(-r));
                return r;
        }
        r = engine_volume_info(v, &info);
        if (r >= 0 && mode == MODE_COPY && info.reflink)
                r = engine_set_reflink(v, false);
        if (r >= 0 && mode == MODE_REFLINK && !info.reflink)
                r = -EOPNOTSUPP;
        if (r >= 0 && fill)
                r = prefill_volume(v, chunk);
        if (r < 0) {
                if (r != -EOPNOTSUPP)
                        fprintf(stderr, "cannot set up volume %s: %s\n", path, strerror(-r));
                engine_volume_close(v);
                rm_rf(path);
                return r;
        }
        *ret = v;
        return 0;
}

static void volume_drop(struct dirctx *d, const char *name, eng_volume *v) {
        char path[PATH_MAX + 64];
        engine_volume_close(v);
        snprintf(path, sizeof path, "%s/%s", d->work, name);
        rm_rf(path);
}

static void meas_median(struct meas *runs, unsigned n, struct meas *ret) {
        double a[16], b[16];
        unsigned k = 0;
        for (unsigned i = 0; i < n; i++)
                if (runs[i].err >= 0) {
                        a[k] = runs[i].mibs, b[k] = runs[i].cpu_us;
                        k++;
                }
        if (k == 0) {
                *ret = runs[0];
                return;
        }
        qsort(a, k, sizeof a[0], cmp_double);
        qsort(b, k, sizeof b[0], cmp_double);
        *ret = runs[0];
        ret->err = 0;
        ret->mibs = a[k / 2];
        ret->cpu_us = b[k / 2];
}

/* Measures one row: arg.runs runs, each on its own offsets (for first-writes, chunks that no other
 * run touches, so that each run is a genuine first write), the plain file then each volume, in
 * turn so that drift hits all alike; the medians go to ROW. */
static void measure_row(struct dirctx *d, int plain_fd, eng_volume *const vols[N_MODE], struct row *row,
                        uint32_t chunk, uint64_t seed) {
        _cleanup_free_ uint64_t *offs = NULL;
        size_t len = row->pat == PAT_RAND ? RAND_LEN : SEQ_LEN;
        struct meas plain[MAX_RUNS], eng[N_MODE][MAX_RUNS];
        unsigned runs = arg.runs;

        row->runs = runs;
        row->n_ios = make_offsets(row->pat, chunk, seed, runs, &offs);
        if (row->n_ios == 0) {
                row->plain = (struct meas){ .done = true, .err = -ENOMEM };
                return;
        }

        for (unsigned k = 0; k < runs; k++) {
                const uint64_t *o = offs + k * row->n_ios;
                run_writes(NULL, plain_fd, o, row->n_ios, len, &plain[k]);
                progress("[%s] %-5s %-7s %-7s run %u: plain file     %8.1f MiB/s %8.1f us/IO", d->fs,
                         row->label, pattern_name[row->pat], case_name[row->wc], k + 1, plain[k].mibs,
                         plain[k].cpu_us);
                settle(d);
                for (int m = 0; m < N_MODE; m++) {
                        struct eng_volume_info a, b;
                        if (!vols[m])
                                continue;
                        engine_volume_info(vols[m], &a);
                        run_writes(vols[m], -1, o, row->n_ios, len, &eng[m][k]);
                        progress("[%s] %-5s %-7s %-7s run %u: engine, %-8s %8.1f MiB/s %8.1f us/IO", d->fs,
                                 row->label, pattern_name[row->pat], case_name[row->wc], k + 1, mode_name[m],
                                 eng[m][k].mibs, eng[m][k].cpu_us);
                        if (engine_volume_info(vols[m], &b) >= 0)
                                row->eng[m].cow += b.cow_copies - a.cow_copies;
                        if (eng[m][k].err < 0)
                                fprintf(stderr, "[%s] engine write failed (%s): %s\n", d->fs, mode_name[m],
                                        strerror(-eng[m][k].err));
                        settle(d);
                }
        }
        meas_median(plain, runs, &row->plain);
        for (int m = 0; m < N_MODE; m++)
                if (vols[m]) {
                        uint64_t cow = row->eng[m].cow;
                        meas_median(eng[m], runs, &row->eng[m]);
                        row->eng[m].cow = cow;
                }
}

/* Brings every volume to N persistent snapshots; the average time per creation goes to B. */
static int snapshots_to(struct dirctx *d, unsigned n, struct bulk *b) {
        struct eng_snap_params p = { .persistent = true, .label = "bench" };
        b->from = d->n_persistent, b->to = n;
        for (int m = 0; m < N_MODE; m++) {
                if (!d->vol[m] || n <= d->n_persistent)
                        continue;
                progress("[%s] %s: taking %u persistent snapshots", d->fs, mode_name[m],
                         n - d->n_persistent);
                uint64_t t0 = now_ns();
                for (unsigned i = d->n_persistent; i < n; i++) {
                        uint32_t id;
                        int r = engine_snapshot_create(d->vol[m], &p, &id);
                        if (r < 0) {
                                fprintf(stderr, "[%s] snapshot %u failed: %s\n", d->fs, i + 1, strerror(-r));
                                return r;
                        }
                }
                b->ms_avg[m] = (double) (now_ns() - t0) / 1e6 / (double) (n - d->n_persistent);
                settle(d);
        }
        d->n_persistent = MAX(d->n_persistent, n);
        return 0;
}

static void level_label(const struct level *l, char *buf, size_t len) {
        if (l->np)
                snprintf(buf, len, l->n ? "%u+np" : "np", l->n);
        else
                snprintf(buf, len, "%u", l->n);
}

static int run_levels(struct dirctx *d) {
        for (unsigned li = 0; li < arg.n_levels; li++) {
                const struct level *l = &arg.levels[li];
                int r;

                if (l->n > d->n_persistent) {
                        r = snapshots_to(d, l->n, &d->bulk[d->n_bulk]);
                        if (r < 0)
                                return r;
                        d->n_bulk++;
                }
                if (l->np)
                        for (int m = 0; m < N_MODE; m++) {
                                struct eng_snap_params p = { .persistent = false, .label = "bench-np" };
                                if (!d->vol[m])
                                        continue;
                                r = engine_snapshot_create(d->vol[m], &p, &d->np_id[m]);
                                if (r < 0) {
                                        fprintf(stderr, "[%s] non-persistent snapshot failed: %s\n", d->fs,
                                                strerror(-r));
                                        return r;
                                }
                        }

                for (int pat = 0; pat < N_PAT; pat++) {
                        uint64_t seed = arg.seed + li * 7919u + (uint64_t) pat * 104729u;
                        for (int wc = 0; wc < N_CASE; wc++) {
                                struct row *row = &d->rows[d->n_rows++];
                                *row = (struct row){ .pat = pat, .wc = wc, .level = li };
                                level_label(l, row->label, sizeof row->label);
                                measure_row(d, d->plain_fd, d->vol, row, arg.chunk, seed);
                        }
                }

                if (l->np)
                        for (int m = 0; m < N_MODE; m++) {
                                if (!d->vol[m])
                                        continue;
                                r = engine_snapshot_delete(d->vol[m], d->np_id[m]);
                                if (r < 0) {
                                        fprintf(stderr,
                                                "[%s] deleting the non-persistent snapshot failed: %s\n",
                                                d->fs, strerror(-r));
                                        return r;
                                }
                        }
        }
        return 0;
}

static void record_mem(struct dirctx *d, eng_volume *v, enum mode m, uint32_t chunk, uint64_t base,
                       const char *what) {
        struct eng_volume_info info;
        struct memrow *mr = &d->mem[d->n_mem];
        if (engine_volume_info(v, &info) < 0 || d->n_mem >= ELEMENTSOF(d->mem))
                return;
        *mr = (struct memrow){ .mode = m,
                               .chunk = chunk,
                               .exceptions = info.exceptions,
                               .mem = info.mem_bytes,
                               .mem_base = base,
                               .diff_used = info.diff_used };
        snprintf(mr->what, sizeof mr->what, "%s", what);
        d->n_mem++;
}

/* First-write and rewrite at one persistent snapshot, per chunk size. */
static int run_chunk_sizes(struct dirctx *d) {
        for (unsigned ci = 0; ci < arg.n_chunks; ci++) {
                uint32_t cs = arg.chunks[ci];
                eng_volume *vols[N_MODE] = {};
                uint64_t base[N_MODE] = {};
                char name[48], csz[24];
                int r = 0, plain_fd = -1;

                fmt_size(cs, csz, sizeof csz);
                /* The main run already measured the default chunk size at one snapshot. */
                const struct row *reuse = NULL;
                if (cs == arg.chunk)
                        for (size_t i = 0; i < d->n_rows && !reuse; i++)
                                if (arg.levels[d->rows[i].level].n == 1 && !arg.levels[d->rows[i].level].np)
                                        reuse = &d->rows[i];
                if (reuse) {
                        for (int k = 0; k < N_PAT * N_CASE; k++) {
                                struct row *row = &d->crows[d->n_crows++];
                                *row = reuse[k];
                                snprintf(row->label, sizeof row->label, "%s", csz);
                                row->level = ci;
                        }
                        continue;
                }

                snprintf(name, sizeof name, "plain-%s", csz);
                progress("[%s] chunk %s: creating and filling a plain file", d->fs, csz);
                r = plain_fd = plain_new(d, name, cs);
                if (r < 0)
                        goto out;
                for (int m = 0; m < N_MODE; m++) {
                        struct eng_volume_info info;
                        if (!d->have[m])
                                continue;
                        snprintf(name, sizeof name, "chunk-%s-%d", csz, m);
                        progress("[%s] chunk %s, %s: creating and filling a volume", d->fs, csz,
                                 mode_name[m]);
                        r = volume_new(d, name, arg.size, cs, m, true, &vols[m]);
                        if (r < 0)
                                goto out;
                        if (engine_volume_info(vols[m], &info) >= 0)
                                base[m] = info.mem_bytes;
                        struct eng_snap_params p = { .persistent = true, .label = "bench" };
                        uint32_t id;
                        r = engine_snapshot_create(vols[m], &p, &id);
                        if (r < 0) {
                                fprintf(stderr, "[%s] snapshot failed: %s\n", d->fs, strerror(-r));
                                goto out;
                        }
                }
                settle(d);
                for (int pat = 0; pat < N_PAT; pat++)
                        for (int wc = 0; wc < N_CASE; wc++) {
                                struct row *row = &d->crows[d->n_crows++];
                                *row = (struct row){ .pat = pat, .wc = wc, .level = ci };
                                snprintf(row->label, sizeof row->label, "%s", csz);
                                measure_row(d, plain_fd, vols, row, cs,
                                            arg.seed + 31337u * (ci + 1) + (uint64_t) pat);
                        }
out:
                if (plain_fd >= 0) {
                        char path[PATH_MAX + 64];
                        close(plain_fd);
                        snprintf(path, sizeof path, "%s/plain-%s", d->work, csz);
                        unlink(path);
                }
                for (int m = 0; m < N_MODE; m++) {
                        char what[48];
                        if (!vols[m])
                                continue;
                        snprintf(what, sizeof what, "chunk %s, 1 snapshot", csz);
                        record_mem(d, vols[m], m, cs, base[m], what);
                        snprintf(name, sizeof name, "chunk-%s-%d", csz, m);
                        volume_drop(d, name, vols[m]);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Snapshot creation latency on a small and a large sparse volume, persistent and not: both volumes
 * open at once and the four kinds of creation taken in turn, so that drift hits all alike. */
static void run_latency(struct dirctx *d) {
        const uint64_t sizes[2] = { 64 * MIB, 64 * GIB };
        unsigned n = MIN(arg.samples, ENG_MAX_SNAPSHOTS / 2);
        _cleanup_free_ uint64_t *t = calloc(4 * (size_t) n, sizeof *t); /* [size][persistent][i] */
        eng_volume *v[2] = {};
        char name[2][48], sz[24];
        int r = t ? 0 : -ENOMEM;

        for (int s = 0; s < 2 && r >= 0; s++) {
                d->lat[s].size = sizes[s];
                snprintf(name[s], sizeof name[s], "latency-%s", fmt_size(sizes[s], sz, sizeof sz));
                r = volume_new(d, name[s], sizes[s], arg.chunk, MODE_COPY, false, &v[s]);
                /* Something written, as on a volume in use (one block per 64 MiB, not timed). */
                for (uint64_t off = 0; off < sizes[s] && r >= 0; off += 64 * MIB)
                        r = engine_write(v[s], thread_buf[0], RAND_LEN, off);
                if (r >= 0)
                        r = engine_flush(v[s]);
        }
        progress("[%s] snapshot creation latency, 64M and 64G sparse volumes", d->fs);
        for (unsigned i = 0; i < n && r >= 0; i++)
                for (int k = 1; k >= 0 && r >= 0; k--)
                        for (int s = 0; s < 2 && r >= 0; s++) {
                                struct eng_snap_params p = { .persistent = k, .label = "bench" };
                                uint32_t id;
                                uint64_t t0 = now_ns();
                                r = engine_snapshot_create(v[s], &p, &id);
                                t[((size_t) s * 2 + (size_t) k) * n + i] = now_ns() - t0;
                        }
        for (int s = 0; s < 2; s++) {
                struct latency *lat = &d->lat[s];
                lat->err = r;
                if (r >= 0)
                        for (int k = 0; k < 2; k++) {
                                uint64_t *a = t + ((size_t) s * 2 + (size_t) k) * n;
                                qsort(a, n, sizeof *a, cmp_u64);
                                lat->med[k] = (double) a[n / 2] / 1e6;
                                lat->p90[k] = (double) a[MIN((n * 9) / 10, n - 1)] / 1e6;
                                lat->max[k] = (double) a[n - 1] / 1e6;
                        }
                if (v[s])
                        volume_drop(d, name[s], v[s]);
        }
        if (r < 0)
                fprintf(stderr, "[%s] latency run failed: %s\n", d->fs, strerror(-r));
}

/* ---- output ---- */

/* One measurement: MiB/s, ratio to the plain file (when RATIO), CPU per I/O. */
static void print_meas_cell(const struct meas *m, double plain_mibs, bool ratio) {
        if (!m->done)
                printf(ratio ? "  %7s %6s %7s" : "  %7s%.0s %7s", "-", "-", "-");
        else if (m->err < 0)
                printf(ratio ? "  %7s %-14.14s" : "  %7s %-7.7s", "ERR", strerror(-m->err));
        else if (ratio)
                printf("  %7.1f %6.2f %7.1f", m->mibs, plain_mibs > 0 ? m->mibs / plain_mibs : 0.0,
                       m->cpu_us);
        else
                printf("  %7.1f %7.1f", m->mibs, m->cpu_us);
}

static void print_rows(const struct dirctx *d, const struct row *rows, size_t n, const char *label_name) {
        printf("%-8s %-6s %-7s %5s | %-16s |", "", "", "", "", "plain file");
        for (int m = 0; m < N_MODE; m++)
                if (d->have[m])
                        printf(" engine, %-15s |", mode_name[m]);
        printf("\n%-8s %-6s %-7s %5s |", "pattern", label_name, "case", "I/Os");
        printf("  %7s %7s |", "MiB/s", "cpu us");
        for (int m = 0; m < N_MODE; m++)
                if (d->have[m])
                        printf("  %7s %6s %7s |", "MiB/s", "ratio", "cpu us");
        printf(" %6s\n", "CoW/IO");
        for (size_t i = 0; i < n; i++) {
                const struct row *r = &rows[i];
                if (i > 0 && (rows[i - 1].level != r->level || rows[i - 1].pat != r->pat))
                        printf("\n");
                printf("%-8s %-6s %-7s %5zu |", pattern_name[r->pat], r->label, case_name[r->wc], r->n_ios);
                print_meas_cell(&r->plain, 0, false);
                printf(" |");
                uint64_t cow = 0;
                bool have_cow = false;
                for (int m = 0; m < N_MODE; m++)
                        if (d->have[m]) {
                                print_meas_cell(&r->eng[m], r->plain.err >= 0 ? r->plain.mibs : 0, true);
                                printf(" |");
                                if (r->eng[m].done && r->eng[m].err >= 0 && !have_cow)
                                        cow = r->eng[m].cow, have_cow = true;
                        }
                if (have_cow && r->n_ios > 0)
                        printf(" %6.2f", (double) cow / (double) (r->n_ios * r->runs));
                printf("\n");
        }
}

static const struct row *find_row(const struct dirctx *d, unsigned n, bool np, enum pattern pat,
                                  enum wcase wc) {
        for (size_t i = 0; i < d->n_rows; i++) {
                const struct row *r = &d->rows[i];
                const struct level *l = &arg.levels[r->level];
                if (l->n == n && l->np == np && r->pat == pat && r->wc == wc)
                        return r;
        }
        return NULL;
}

static bool ratio_of(const struct row *r, enum mode m, double *ret_ratio, double *ret_cpu) {
        if (!r || !r->eng[m].done || r->eng[m].err < 0 || r->plain.err < 0 || r->plain.mibs <= 0)
                return false;
        *ret_ratio = r->eng[m].mibs / r->plain.mibs;
        *ret_cpu = r->eng[m].cpu_us;
        return true;
}

static void print_target(const char *what, double v, double limit, bool at_least, const char *extra) {
        bool pass = at_least ? v >= limit : v <= limit;
        printf("  %-58s %6.2fx  (%s %.2f)  %s%s\n", what, v, at_least ? ">=" : "<=", limit,
               pass ? "PASS" : "MISS", extra ? extra : "");
}

static unsigned max_persistent_level(void) {
        unsigned mx = 0;
        for (unsigned i = 0; i < arg.n_levels; i++)
                mx = MAX(mx, arg.levels[i].n);
        return mx;
}

static void print_targets(const struct dirctx *d) {
        unsigned top = max_persistent_level();
        char what[128], extra[96];

        printf("\nTargets (ratios of the engine/plain ratios above; cpu = engine CPU per I/O, same "
               "comparison)\n");
        for (int m = 0; m < N_MODE; m++) {
                if (!d->have[m])
                        continue;
                printf(" %s:\n", mode_name[m]);
                for (int pat = 0; pat < N_PAT; pat++) {
                        double r1, c1, rt, ct, r0, c0, rn, cn;
                        /* 512 snapshots within 10% of 1 snapshot. */
                        if (top > 1)
                                for (int wc = 0; wc < N_CASE; wc++)
                                        if (ratio_of(find_row(d, 1, false, pat, wc), m, &r1, &c1) &&
                                            ratio_of(find_row(d, top, false, pat, wc), m, &rt, &ct)) {
                                                snprintf(what, sizeof what, "%s %s: %u snapshots vs 1",
                                                         pattern_name[pat], case_name[wc], top);
                                                snprintf(extra, sizeof extra, "   cpu %.2fx %s", ct / c1,
                                                         ct / c1 <= 1.10 ? "PASS" : "MISS");
                                                print_target(what, rt / r1, 0.90, true, extra);
                                        }
                        /* Rewrite within 10% of no snapshot: the worst snapshot count. */
                        if (ratio_of(find_row(d, 0, false, pat, CASE_REWRITE), m, &r0, &c0)) {
                                double worst = 1e9, worst_cpu = 0;
                                char wl[16] = "";
                                for (unsigned li = 0; li < arg.n_levels; li++) {
                                        const struct level *l = &arg.levels[li];
                                        if (l->n == 0 && !l->np)
                                                continue;
                                        if (ratio_of(find_row(d, l->n, l->np, pat, CASE_REWRITE), m, &rn,
                                                     &cn) &&
                                            rn / r0 < worst) {
                                                worst = rn / r0, worst_cpu = cn / c0;
                                                level_label(l, wl, sizeof wl);
                                        }
                                }
                                if (worst < 1e9) {
                                        snprintf(what, sizeof what,
                                                 "%s rewrite: snapshots vs none (worst at %s)",
                                                 pattern_name[pat], wl);
                                        snprintf(extra, sizeof extra, "   cpu %.2fx %s", worst_cpu,
                                                 worst_cpu <= 1.10 ? "PASS" : "MISS");
                                        print_target(what, worst, 0.90, true, extra);
                                }
                        }
                        /* First-write against the plain file: worst persistent snapshot count. */
                        {
                                double worst = 1e9, at1 = -1;
                                unsigned wn = 0;
                                for (unsigned li = 0; li < arg.n_levels; li++) {
                                        const struct level *l = &arg.levels[li];
                                        if (l->n == 0 || l->np)
                                                continue;
                                        if (ratio_of(find_row(d, l->n, false, pat, CASE_FIRST), m, &rn,
                                                     &cn)) {
                                                if (rn < worst)
                                                        worst = rn, wn = l->n;
                                                if (l->n == 1)
                                                        at1 = rn;
                                        }
                                }
                                if (worst < 1e9) {
                                        snprintf(what, sizeof what,
                                                 "%s first-write vs plain file (worst at %u snapshots)",
                                                 pattern_name[pat], wn);
                                        extra[0] = '\0';
                                        if (at1 >= 0)
                                                snprintf(extra, sizeof extra, "   (1 snapshot: %.2fx)", at1);
                                        print_target(what, worst, m == MODE_REFLINK ? 0.80 : 0.50, true,
                                                     extra);
                                }
                        }
                }
        }
        if (d->lat[0].err >= 0 && d->lat[1].err >= 0 && d->lat[0].med[1] > 0) {
                printf(" snapshot creation:\n");
                for (int k = 1; k >= 0; k--) {
                        double a = d->lat[0].med[k], b = d->lat[1].med[k];
                        snprintf(what, sizeof what, "%s: 64 GiB median vs 64 MiB median",
                                 k ? "persistent" : "non-persistent");
                        /* Size-independent: within 50%, or within 0.2 ms (one device flush varies more). */
                        bool pass = b <= a * 1.5 || b - a < 0.2;
                        printf("  %-58s %6.2fx  (<= 1.50 or +0.2 ms)  %s\n", what, a > 0 ? b / a : 0.0,
                               pass ? "PASS" : "MISS");
                }
        }
}

static void print_dir(const struct dirctx *d) {
        char sz[24], csz[24];

        printf("\n==== %s (%s)%s; load average %.2f after it ====\n", d->dir, d->fs,
               d->reflink_possible ? ", reflink possible" : ", no reflink (copies only)", d->load);
        if (d->err < 0)
                printf("(run stopped early: %s)\n", strerror(-d->err));
        printf("\nLive writes: %s volume, chunk %s, %u threads, buffered, flush/fdatasync timed; median of "
               "%u run%s "
               "of I/Os each\n(every run on chunks of its own); ratio = engine MiB/s / plain-file MiB/s; "
               "cpu us = "
               "user+sys CPU per I/O;\nCoW/IO = chunks preserved per I/O; snaps = persistent snapshots, np "
               "= one "
               "non-persistent snapshot\n\n",
               fmt_size(arg.size, sz, sizeof sz), fmt_size(arg.chunk, csz, sizeof csz), arg.threads,
               arg.runs, arg.runs == 1 ? "" : "s");
        print_rows(d, d->rows, d->n_rows, "snaps");

        if (d->n_bulk > 0) {
                printf("\nPersistent snapshot creation while filling up (average per snapshot, %s volume, "
                       "after the writes above):\n",
                       sz);
                for (size_t i = 0; i < d->n_bulk; i++) {
                        printf("  %3u -> %3u:", d->bulk[i].from, d->bulk[i].to);
                        for (int m = 0; m < N_MODE; m++)
                                if (d->have[m])
                                        printf("   %s %7.2f ms", mode_name[m], d->bulk[i].ms_avg[m]);
                        printf("\n");
                }
        }

        if (d->n_crows > 0) {
                printf("\nChunk size: one persistent snapshot, same I/O as above (plain file and volume "
                       "filled in "
                       "writes of the chunk size)\n\n");
                print_rows(d, d->crows, d->n_crows, "chunk");
        }

        printf("\nSnapshot creation latency (ms; %u of each, the four kinds in turn; sparse volumes, chunk "
               "%s)\n",
               MIN(arg.samples, ENG_MAX_SNAPSHOTS / 2), csz);
        printf("  %-8s | %-27s | %-27s\n", "volume", "persistent", "non-persistent");
        printf("  %-8s | %8s %8s %9s | %8s %8s %9s\n", "", "median", "p90", "max", "median", "p90", "max");
        for (int s = 0; s < 2; s++) {
                const struct latency *l = &d->lat[s];
                if (l->size == 0)
                        continue;
                printf("  %-8s |", fmt_size(l->size, sz, sizeof sz));
                if (l->err < 0) {
                        printf(" ERR %s\n", strerror(-l->err));
                        continue;
                }
                printf(" %8.3f %8.3f %9.3f | %8.3f %8.3f %9.3f\n", l->med[1], l->p90[1], l->max[1],
                       l->med[0], l->p90[0], l->max[0]);
        }

        if (d->n_mem > 0) {
                printf("\nMemory per preserved chunk (engine_volume_info: mem_bytes, exceptions; base = "
                       "mem_bytes of "
                       "the filled volume before any snapshot)\n");
                printf("  %-24s %-8s %6s %11s %11s %10s %10s %10s\n", "volume", "mode", "chunk",
                       "exceptions", "mem bytes", "base", "B/chunk", "diff MiB");
                for (size_t i = 0; i < d->n_mem; i++) {
                        const struct memrow *mr = &d->mem[i];
                        printf("  %-24s %-8s %6s %11" PRIu64 " %11" PRIu64 " %10" PRIu64 " %10.1f %10.1f\n",
                               mr->what, mode_name[mr->mode], fmt_size(mr->chunk, csz, sizeof csz),
                               mr->exceptions, mr->mem, mr->mem_base,
                               mr->exceptions ? (double) (mr->mem - mr->mem_base) / (double) mr->exceptions
                                              : 0.0,
                               (double) mr->diff_used / (double) MIB);
                }
        }

        print_targets(d);
        fflush(stdout);
}

/* ---- one directory ---- */

static int run_dir(struct dirctx *d) {
        int r;

        fs_type_name(d->dir, d->fs, sizeof d->fs);
        snprintf(d->work, sizeof d->work, "%s/lvss-bench.XXXXXX", d->dir);
        if (!mkdtemp(d->work)) {
                r = negative_errno();
                fprintf(stderr, "cannot create a directory in %s: %m\n", d->dir);
                return r;
        }

        progress("[%s] filling the plain file and the volumes (%" PRIu64 " MiB each)", d->fs,
                 arg.size / MIB);
        r = d->plain_fd = plain_new(d, "plain", arg.chunk);
        if (r < 0)
                goto out;

        for (int m = N_MODE - 1; m >= 0; m--) {
                if (m == MODE_REFLINK && arg.no_reflink)
                        continue;
                r = volume_new(d, m == MODE_REFLINK ? "vol-reflink" : "vol-copy", arg.size, arg.chunk, m,
                               true, &d->vol[m]);
                if (r == -EOPNOTSUPP && m == MODE_REFLINK)
                        continue;
                if (r < 0)
                        goto out;
                d->have[m] = true;
                struct eng_volume_info info;
                if (engine_volume_info(d->vol[m], &info) >= 0)
                        d->mem_base[m] = info.mem_bytes;
        }
        d->reflink_possible = d->have[MODE_REFLINK];
        settle(d);

        r = run_levels(d);
        for (int m = 0; m < N_MODE; m++)
                if (d->vol[m]) {
                        char what[48];
                        snprintf(what, sizeof what, "main, %u snapshots", d->n_persistent);
                        record_mem(d, d->vol[m], m, arg.chunk, d->mem_base[m], what);
                        progress("[%s] closing the %s volume", d->fs, mode_name[m]);
                        volume_drop(d, m == MODE_REFLINK ? "vol-reflink" : "vol-copy", d->vol[m]);
                        d->vol[m] = NULL;
                }
        if (r < 0)
                goto out;

        r = run_chunk_sizes(d);
        if (r < 0)
                goto out;
        run_latency(d);
        r = 0;
out:
        d->err = r;
        if (d->plain_fd >= 0)
                close(d->plain_fd);
        for (int m = 0; m < N_MODE; m++)
                engine_volume_close(d->vol[m]);
        rm_rf(d->work);
        return r;
}

/* ---- main ---- */

static void help(void) {
        printf("Usage: bench-engine [OPTIONS]\n\n"
               "Measures the lvss CoW engine's live writes against a plain file, snapshot creation\n"
               "latency and memory per preserved chunk, and checks the targets of the engine's issue.\n\n"
               "  --dir DIR            where volumes go (repeatable: one table per directory; default "
               "/var/tmp)\n"
               "  --size SIZE          volume and plain file size (default 1G)\n"
               "  --threads N          writer threads (default 16)\n"
               "  --ios N              4 KiB random writes per run (default 2048)\n"
               "  --seq-ios N          1 MiB sequential writes per run (default 128)\n"
               "  --chunk-size SIZE    chunk size of the main volumes (default %uK)\n"
               "  --chunk-sizes LIST   chunk sizes compared at one snapshot (default 4K,16K,64K,256K; "
               "'none')\n"
               "  --snapshots LIST     snapshot counts, rising (default 0,np,1,64,512; 'np': one "
               "non-persistent)\n"
               "  --samples N          snapshot creations timed per kind (default 50)\n"
               "  --runs N             runs per case, each on its own chunks; medians shown (default 3)\n"
               "  --no-reflink         copies only, even where reflinks work\n"
               "  --seed N             random offsets' seed\n"
               "  --quick              a smoke run of a few seconds (32M, 4 threads, few I/Os and "
               "samples)\n",
               ENG_CHUNK_DEFAULT / 1024);
}

static int parse_list(const char *s, bool chunks) {
        _cleanup_free_ char *copy = strdup(s);
        char *save = NULL;
        if (!copy)
                return -ENOMEM;
        if (chunks)
                arg.n_chunks = 0;
        else
                arg.n_levels = 0;
        if (chunks && strcmp(s, "none") == 0)
                return 0;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (chunks) {
                        uint64_t v;
                        if (arg.n_chunks >= MAX_CHUNKS || parse_size(t, &v) < 0 || v < ENG_CHUNK_MIN ||
                            v > ENG_CHUNK_MAX || !IS_POWER_OF_2(v))
                                return -EINVAL;
                        arg.chunks[arg.n_chunks++] = (uint32_t) v;
                } else {
                        struct level l = {};
                        char *end;
                        if (arg.n_levels >= MAX_LEVELS)
                                return -EINVAL;
                        if (strcmp(t, "np") == 0)
                                l.np = true, l.n = arg.n_levels ? arg.levels[arg.n_levels - 1].n : 0;
                        else {
                                unsigned long v = strtoul(t, &end, 10);
                                if (end == t || v > ENG_MAX_SNAPSHOTS - 1 + (*end == '\0'))
                                        return -EINVAL;
                                l.n = (unsigned) v;
                                if (strcmp(end, "+np") == 0)
                                        l.np = true;
                                else if (*end != '\0')
                                        return -EINVAL;
                        }
                        if (arg.n_levels > 0 && l.n < arg.levels[arg.n_levels - 1].n)
                                return -EINVAL;
                        arg.levels[arg.n_levels++] = l;
                }
        }
        return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int parse_argv(int argc, char **argv) {
        enum { O_SEQ = 0x100, O_CHUNKS, O_SNAPS, O_SAMPLES, O_REPEAT, O_NOREF, O_SEED, O_QUICK };
        static const struct option opts[] = { { "dir", required_argument, NULL, 'd' },
                                              { "size", required_argument, NULL, 's' },
                                              { "threads", required_argument, NULL, 't' },
                                              { "ios", required_argument, NULL, 'n' },
                                              { "seq-ios", required_argument, NULL, O_SEQ },
                                              { "chunk-size", required_argument, NULL, 'c' },
                                              { "chunk-sizes", required_argument, NULL, O_CHUNKS },
                                              { "snapshots", required_argument, NULL, O_SNAPS },
                                              { "samples", required_argument, NULL, O_SAMPLES },
                                              { "runs", required_argument, NULL, O_REPEAT },
                                              { "no-reflink", no_argument, NULL, O_NOREF },
                                              { "seed", required_argument, NULL, O_SEED },
                                              { "quick", no_argument, NULL, O_QUICK },
                                              { "help", no_argument, NULL, 'h' },
                                              {} };
        /* Options given explicitly win over --quick's defaults, whatever their order. */
        bool set_size = false, set_ios = false, set_seq = false, set_samples = false, set_repeat = false,
             set_chunks = false, set_threads = false;
        uint64_t v;
        int c;

        parse_list("4K,16K,64K,256K", true);
        parse_list("0,np,1,64,512", false);
        while ((c = getopt_long(argc, argv, "d:s:t:n:c:h", opts, NULL)) >= 0) {
                int r = 0;
                switch (c) {
                case 'd':
                        if (arg.n_dirs >= MAX_DIRS)
                                r = -E2BIG;
                        else
                                arg.dirs[arg.n_dirs++] = optarg;
                        break;
                case 's':
                        r = parse_size(optarg, &v);
                        if (r >= 0 && (v < 8 * MIB || v % MIB != 0))
                                r = -EINVAL;
                        arg.size = v, set_size = true;
                        break;
                case 't':
                        r = parse_uint(optarg, 1, MAX_THREADS, &arg.threads), set_threads = true;
                        break;
                case 'n':
                        r = parse_uint(optarg, 1, 1u << 24, &arg.rand_ios), set_ios = true;
                        break;
                case O_SEQ:
                        r = parse_uint(optarg, 1, 1u << 20, &arg.seq_ios), set_seq = true;
                        break;
                case 'c':
                        r = parse_size(optarg, &v);
                        if (r >= 0 && (v < ENG_CHUNK_MIN || v > ENG_CHUNK_MAX || !IS_POWER_OF_2(v)))
                                r = -EINVAL;
                        arg.chunk = (uint32_t) v;
                        break;
                case O_CHUNKS:
                        r = parse_list(optarg, true), set_chunks = true;
                        break;
                case O_SNAPS:
                        r = parse_list(optarg, false);
                        break;
                case O_SAMPLES:
                        r = parse_uint(optarg, 1, ENG_MAX_SNAPSHOTS / 2, &arg.samples), set_samples = true;
                        break;
                case O_REPEAT:
                        r = parse_uint(optarg, 1, MAX_RUNS, &arg.runs), set_repeat = true;
                        break;
                case O_NOREF:
                        arg.no_reflink = true;
                        break;
                case O_SEED:
                        r = parse_size(optarg, &arg.seed);
                        break;
                case O_QUICK:
                        arg.quick = true;
                        break;
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                default:
                        return -EINVAL;
                }
                if (r < 0) {
                        fprintf(stderr, "invalid value: %s\n", optarg ? optarg : "");
                        return r;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
                return -EINVAL;
        }
        if (arg.quick) {
                if (!set_size)
                        arg.size = 32 * MIB;
                if (!set_ios)
                        arg.rand_ios = 128;
                if (!set_seq)
                        arg.seq_ios = 4;
                if (!set_samples)
                        arg.samples = 5;
                if (!set_repeat)
                        arg.runs = 1;
                if (!set_threads)
                        arg.threads = 4;
                if (!set_chunks)
                        parse_list("4K,256K", true);
        }
        if (arg.n_dirs == 0)
                arg.dirs[arg.n_dirs++] = "/var/tmp";
        if (arg.size / 2 < arg.chunk || arg.size / 2 < ENG_CHUNK_MAX) {
                fprintf(stderr, "--size too small for the chunk size\n");
                return -EINVAL;
        }
        return 0;
}

int main(int argc, char **argv) {
        static struct dirctx dirs[MAX_DIRS];
        struct utsname un;
        char date[64], sz[24], csz[24];
        time_t now = time(NULL);
        int ret = EXIT_SUCCESS;

        if (parse_argv(argc, argv) < 0) {
                fprintf(stderr, "Try --help.\n");
                return 2;
        }

        /* Per-thread buffers, touched now so that page faults stay out of the timings. */
        uint64_t s = arg.seed | 1;
        for (unsigned i = 0; i < arg.threads; i++) {
                thread_buf[i] = aligned_alloc(4096, SEQ_LEN);
                if (!thread_buf[i]) {
                        fprintf(stderr, "out of memory\n");
                        return EXIT_FAILURE;
                }
                for (size_t k = 0; k < SEQ_LEN / 8; k++) {
                        uint64_t x = rng_next(&s);
                        memcpy(thread_buf[i] + k * 8, &x, 8);
                }
        }

        uname(&un);
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
        printf("lvss engine benchmark, %s\n", date);
        printf("host: %ld CPUs, %s %s %s; load average %.2f at start\n", sysconf(_SC_NPROCESSORS_ONLN),
               un.sysname, un.release, un.machine, loadavg());
        printf("volume %s, chunk %s (ENG_CHUNK_DEFAULT %uK), %u threads, %u x 4 KiB random and %u x 1 MiB "
               "sequential writes a run, %u run%s a case%s\n",
               fmt_size(arg.size, sz, sizeof sz), fmt_size(arg.chunk, csz, sizeof csz),
               ENG_CHUNK_DEFAULT / 1024, arg.threads, arg.rand_ios, arg.seq_ios, arg.runs,
               arg.runs == 1 ? "" : "s",
               arg.quick ? "\n(--quick: a smoke run; its figures are too small to mean anything)" : "");
        fflush(stdout);

        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < arg.n_dirs; i++) {
                dirs[i] = (struct dirctx){ .dir = arg.dirs[i], .plain_fd = -1 };
                if (run_dir(&dirs[i]) < 0)
                        ret = EXIT_FAILURE;
                dirs[i].load = loadavg();
                if (dirs[i].fs[0])
                        print_dir(&dirs[i]);
        }
        printf("\ntotal time %.0f s; load average %.2f at the end\n", (double) (now_ns() - t0) / 1e9,
               loadavg());
        for (unsigned i = 0; i < arg.threads; i++)
                free(thread_buf[i]);
        return ret;
}
