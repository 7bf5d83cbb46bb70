/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Test support for the engine's correctness tests.
 *
 * faultio: a fault-injecting struct eng_io, in the manner of SQLite's crash
 * shim (src/test6.c). It passes every call to eng_io_posix and remembers, per
 * file (by inode), every write, punch, clone and truncate that no io->sync on
 * that file has made durable yet, with the bytes and the file size they
 * replaced. Armed with "crash at the Nth sync call", that sync does not happen:
 * the shim enters the crashed state, in which every later call fails with
 * -EIO. faultio_crash_apply() then undoes the unsynced changes on the real
 * files, as a power cut would have lost them:
 *
 *   FAULTIO_DROP  every unsynced change is reverted;
 *   FAULTIO_TEAR  each 512-byte sector (see faultio_set_sector_size) keeps a random prefix of the unsynced
 *                 changes that touched it (seeded), as a disk that persisted
 *                 that sector at some moment of the write sequence; file sizes
 *                 go back to their last synced values;
 *   FAULTIO_TEAR_KEEP_SIZE  as TEAR, but files keep the size they had at the
 *                 crash (the filesystem committed the size, not all the data):
 *                 reverted sectors past the synced size read as zeros. This
 *                 is the mode that leaves torn appended records in a file.
 *
 * io->rename is atomic and durable; creating a file is durable (its content
 * is not). All state is behind one mutex; calls may come from many threads.
 *
 * tst_*: small helpers shared by the tests (seeded random numbers, options
 * from the environment, temporary directories).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/io.h"

typedef enum faultio_mode {
        FAULTIO_DROP = 0,
        FAULTIO_TEAR = 1,
        FAULTIO_TEAR_KEEP_SIZE = 2,
} faultio_mode;

/* "DROP", "TEAR", "TEAR_KEEP_SIZE". */
const char *faultio_mode_name(faultio_mode mode);

typedef struct faultio faultio;

struct faultio_stats {
        uint64_t files; /* files that had unsynced changes */
        uint64_t changes; /* unsynced changes found */
        uint64_t sectors_reverted; /* sector-sized pieces put back to an older content */
        uint64_t sectors_kept; /* (TEAR) sector-sized pieces whose newer content survived */
};

/* Creates a shim; SEED drives the tearing. */
int faultio_new(uint64_t seed, faultio **ret);
/* Frees the shim (accepts NULL); the volume using it must be closed or abandoned first. */
void faultio_free(faultio *f);
/* The table to pass to engine_volume_create_io()/engine_volume_open_io(); owned by F. */
const struct eng_io *faultio_io(faultio *f);

/* Sets the tearing granularity (a power of two in [8, 4096]; 512 by default). Below 512 it tears
 * records more finely than disks do, a superset of real tearing that a correct engine survives too. */
int faultio_set_sector_size(faultio *f, unsigned bytes);

/* Crashes at the Nth sync call counted from now (N >= 1); N == 0 disarms. */
void faultio_arm(faultio *f, uint64_t n);
/* Enters the crashed state at once, as a power cut between two calls. */
void faultio_crash_now(faultio *f);
bool faultio_crashed(faultio *f);
/* Sync calls seen so far (the crashing one included). */
uint64_t faultio_syncs(faultio *f);
/* The same, counting only syncs of files whose name (when opened) starts with PREFIX, e.g. "meta". */
uint64_t faultio_syncs_of(faultio *f, const char *prefix);
/* Crashes at the Nth sync, counted from now, of a file whose name starts with PREFIX (N >= 1). */
void faultio_arm_of(faultio *f, uint64_t n, const char *prefix);
/* Unsynced changes currently recorded, over all files. */
uint64_t faultio_pending(faultio *f);

/* Enters the crashed state if not yet, and undoes every unsynced change on the real files as MODE
 * says. Statistics go to RET_STATS (may be NULL). Later calls still fail with -EIO. */
int faultio_crash_apply(faultio *f, faultio_mode mode, struct faultio_stats *ret_stats);

/* ---- test helpers ---- */

/* splitmix64: the next number of the sequence in *STATE. */
uint64_t tst_rand(uint64_t *state);
/* A number in [0, n); 0 if N is 0. */
uint64_t tst_rand_below(uint64_t *state, uint64_t n);
/* A number in [lo, hi]. */
uint64_t tst_rand_between(uint64_t *state, uint64_t lo, uint64_t hi);
/* Fills BUF with random bytes. */
void tst_rand_fill(uint64_t *state, void *buf, size_t len);

/* The value of environment variable NAME as an unsigned number (any base strtoull takes), or DEF. */
uint64_t tst_env_u64(const char *name, uint64_t def);
/* The seed: "--seed=N" or "-s N" in ARGV, else $LVSS_TEST_SEED, else from the clock. */
uint64_t tst_seed(int argc, char **argv);
/* The iteration scale: "--iterations=N" in ARGV, else $LVSS_TEST_ITERATIONS, else DEF. */
uint64_t tst_iterations(int argc, char **argv, uint64_t def);

/* Creates a fresh directory under $TMPDIR (or /var/tmp) named lvss-TAG-XXXXXX; *RET is malloc'ed. */
int tst_mkdtemp(const char *tag, char **ret);
/* Removes PATH and everything below it; 0 if it did not exist. */
int tst_rm_rf(const char *path);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tst_now_ns(void);

/* (Re)arms a watchdog: if it is not re-armed or stopped (SECONDS == 0) within SECONDS, the process
 * prints "FAIL: watchdog: " and the formatted message (say what ran, with the seed) and exits 1,
 * turning a deadlock or livelock into a failure that names its step. */
void tst_watchdog(unsigned seconds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The directory the watchdog removes when it fires (NULL: none); kept if $LVSS_TEST_KEEP is set. */
void tst_watchdog_cleanup(const char *dir);
