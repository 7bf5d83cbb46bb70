/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The fault-injecting I/O layer of the engine tests (see faultio.h).
 *
 * Invariant: for every regular file the engine has opened through the shim,
 * file->changes lists, oldest first, every mutation since the last successful
 * sync of that inode, each with the bytes and the file size it replaced, so
 * that undoing them newest first gives back the synced content exactly.
 * Undo goes through the shim's own descriptor of the inode (reopened through
 * /proc/self/fd, so it shares no open file description, hence no flock, with
 * the engine's), which keeps working after the engine closed or renamed the file.
 *
 * Locking: one mutex covers the tables, and is held across every mutating
 * call and every sync, so that recording the old bytes and making the change
 * are one step as seen by other threads, and a sync's effect on the log is
 * exact. Reads only look at the crashed flag.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "tests/faultio.h"

#define SECTOR 512u

struct fio_change {
        uint64_t off, len; /* the range the call could modify */
        uint64_t old_size; /* file size before the call */
        uint8_t *old; /* old bytes of [off, min(off + len, old_size)) */
};

struct fio_file {
        dev_t dev;
        ino_t ino;
        int fd; /* the shim's own descriptor, -1 if it could not be opened */
        int fd_errno;
        char name[64]; /* base name when first opened */
        uint64_t syncs; /* sync calls on it */
        struct fio_change *changes;
        size_t n_changes, cap_changes;
};

struct fio_fdent {
        int file; /* index in files[], -1: not tracked (directory, device, ...) */
        bool append;
};

struct faultio {
        struct eng_io io;
        pthread_mutex_t lock;
        uint64_t rng;

        struct fio_file *files;
        size_t n_files, cap_files;
        struct fio_fdent *fds; /* indexed by the engine's descriptor */
        size_t n_fds;

        unsigned sector; /* tearing granularity */
        uint64_t syncs;
        uint64_t crash_at; /* absolute sync number that crashes; 0: none */
        char prefix[64]; /* with crash_at: count only syncs of files named so ("": all) */
        uint64_t prefix_syncs; /* syncs of such files */
        bool crashed; /* read without the lock with __atomic */
};

static faultio *fio_of(const struct eng_io *io) {
        return io->userdata;
}

static bool fio_is_crashed(faultio *f) {
        return __atomic_load_n(&f->crashed, __ATOMIC_ACQUIRE);
}

static void fio_set_crashed(faultio *f) {
        __atomic_store_n(&f->crashed, true, __ATOMIC_RELEASE);
}

/* The real I/O, short transfers finished (bypassing the recording). */
static int fio_pread_full(int fd, void *buf, size_t len, uint64_t off) {
        return eng_io_posix.pread(&eng_io_posix, fd, buf, len, off);
}

static int fio_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
        return eng_io_posix.pwrite(&eng_io_posix, fd, buf, len, off);
}

static struct fio_fdent *fio_fdent(faultio *f, int fd) {
        if (fd < 0 || (size_t) fd >= f->n_fds)
                return NULL;
        return &f->fds[fd];
}

static struct fio_file *fio_file_of_fd(faultio *f, int fd) {
        struct fio_fdent *e = fio_fdent(f, fd);

        if (!e || e->file < 0)
                return NULL;
        return &f->files[e->file];
}

static bool fio_name_matches(const char *name, const char *prefix) {
        return strncmp(name, prefix, strlen(prefix)) == 0;
}

static int fio_track_fd(faultio *f, int fd, int flags, const char *path) {
        struct stat st;

        if ((size_t) fd >= f->n_fds) {
                size_t n = MAX((size_t) fd + 1, f->n_fds * 2);
                struct fio_fdent *t = realloc(f->fds, n * sizeof *t);
                if (!t)
                        return -ENOMEM;
                for (size_t i = f->n_fds; i < n; i++)
                        t[i] = (struct fio_fdent){ .file = -1 };
                f->fds = t;
                f->n_fds = n;
        }
        f->fds[fd] = (struct fio_fdent){ .file = -1, .append = flags & O_APPEND };

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return 0;

        for (size_t i = 0; i < f->n_files; i++)
                if (f->files[i].dev == st.st_dev && f->files[i].ino == st.st_ino) {
                        f->fds[fd].file = (int) i;
                        return 0;
                }

        if (f->n_files == f->cap_files) {
                size_t n = MAX((size_t) 8, f->cap_files * 2);
                struct fio_file *t = realloc(f->files, n * sizeof *t);
                if (!t)
                        return -ENOMEM;
                f->files = t;
                f->cap_files = n;
        }

        struct fio_file *file = &f->files[f->n_files];
        char p[64];
        *file = (struct fio_file){ .dev = st.st_dev, .ino = st.st_ino, .fd = -1 };
        const char *base = strrchr(path, '/');
        snprintf(file->name, sizeof file->name, "%s", base ? base + 1 : path);
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        file->fd = open(p, O_RDWR | O_CLOEXEC);
        if (file->fd < 0)
                file->fd_errno = errno;
        f->fds[fd].file = (int) f->n_files++;
        return 0;
}

/* Records that [off, off + len) of FILE is about to change. */
static int fio_record(struct fio_file *file, uint64_t off, uint64_t len) {
        struct stat st;

        if (file->fd < 0)
                return -file->fd_errno;
        if (fstat(file->fd, &st) < 0)
                return negative_errno();

        if (file->n_changes == file->cap_changes) {
                size_t n = MAX((size_t) 16, file->cap_changes * 2);
                struct fio_change *t = realloc(file->changes, n * sizeof *t);
                if (!t)
                        return -ENOMEM;
                file->changes = t;
                file->cap_changes = n;
        }

        uint64_t size = (uint64_t) st.st_size;
        uint64_t n_old = off < size ? MIN(len, size - off) : 0;
        _cleanup_free_ uint8_t *old = NULL;
        if (n_old > 0) {
                old = malloc(n_old);
                if (!old)
                        return -ENOMEM;
                int r = fio_pread_full(file->fd, old, n_old, off);
                if (r < 0)
                        return r;
        }

        file->changes[file->n_changes++] = (struct fio_change){
                .off = off,
                .len = len,
                .old_size = size,
                .old = TAKE_PTR(old),
        };
        return 0;
}

static void fio_forget(struct fio_file *file) {
        for (size_t i = 0; i < file->n_changes; i++)
                free(file->changes[i].old);
        file->n_changes = 0;
}

static int fio_open(const struct eng_io *io, const char *path, int flags, mode_t mode) {
        faultio *f = fio_of(io);
        int fd, r;

        pthread_mutex_lock(&f->lock);
        if (fio_is_crashed(f)) {
                r = -EIO;
                goto out;
        }

        /* O_TRUNC is done as a recorded truncate, so that it can be undone. */
        fd = eng_io_posix.open(&eng_io_posix, path, flags & ~O_TRUNC, mode);
        if (fd < 0) {
                r = fd;
                goto out;
        }
        r = fio_track_fd(f, fd, flags, path);
        if (r >= 0 && (flags & O_TRUNC)) {
                struct fio_file *file = fio_file_of_fd(f, fd);
                if (file) {
                        struct stat st;
                        r = fstat(fd, &st) < 0 ? negative_errno() : 0;
                        if (r >= 0)
                                r = fio_record(file, 0, (uint64_t) st.st_size);
                }
                if (r >= 0)
                        r = eng_io_posix.truncate(&eng_io_posix, fd, 0);
        }
        if (r < 0) {
                if ((size_t) fd < f->n_fds)
                        f->fds[fd].file = -1;
                eng_io_posix.close(&eng_io_posix, fd);
                goto out;
        }
        r = fd;
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_close(const struct eng_io *io, int fd) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        struct fio_fdent *e = fio_fdent(f, fd);
        if (e)
                *e = (struct fio_fdent){ .file = -1 };
        /* Even crashed, the descriptor is released (as close(2) does when it reports EIO). */
        r = eng_io_posix.close(&eng_io_posix, fd);
        if (fio_is_crashed(f))
                r = -EIO;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_pread(const struct eng_io *io, int fd, void *buf, size_t len, uint64_t off) {
        faultio *f = fio_of(io);

        if (fio_is_crashed(f))
                return -EIO;
        return eng_io_posix.pread(&eng_io_posix, fd, buf, len, off);
}

static int fio_pwrite(const struct eng_io *io, int fd, const void *buf, size_t len, uint64_t off) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        if (fio_is_crashed(f)) {
                r = -EIO;
                goto out;
        }
        struct fio_file *file = fio_file_of_fd(f, fd);
        if (file && len > 0) {
                uint64_t at = off;
                if (fio_fdent(f, fd)->append) {
                        struct stat st;
                        if (fstat(fd, &st) < 0) {
                                r = negative_errno();
                                goto out;
                        }
                        at = (uint64_t) st.st_size;
                }
                r = fio_record(file, at, len);
                if (r < 0)
                        goto out;
        }
        r = eng_io_posix.pwrite(&eng_io_posix, fd, buf, len, off);
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_sync(const struct eng_io *io, int fd) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        if (fio_is_crashed(f)) {
                r = -EIO;
                goto out;
        }
        struct fio_file *sfile = fio_file_of_fd(f, fd);
        f->syncs++;
        if (sfile) {
                sfile->syncs++;
                if (fio_name_matches(sfile->name, f->prefix))
                        f->prefix_syncs++;
        }
        if (f->crash_at != 0 && (f->prefix[0] ? f->prefix_syncs : f->syncs) == f->crash_at) {
                fio_set_crashed(f);
                r = -EIO;
                goto out;
        }
        r = eng_io_posix.sync(&eng_io_posix, fd);
        if (r >= 0) {
                struct fio_file *file = fio_file_of_fd(f, fd);
                if (file)
                        fio_forget(file);
        }
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_truncate(const struct eng_io *io, int fd, uint64_t size) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        if (fio_is_crashed(f)) {
                r = -EIO;
                goto out;
        }
        struct fio_file *file = fio_file_of_fd(f, fd);
        if (file) {
                struct stat st;
                if (fstat(fd, &st) < 0) {
                        r = negative_errno();
                        goto out;
                }
                uint64_t cur = (uint64_t) st.st_size;
                uint64_t lo = MIN(cur, size), hi = MAX(cur, size);
                if (hi > lo) {
                        r = fio_record(file, lo, hi - lo);
                        if (r < 0)
                                goto out;
                }
        }
        r = eng_io_posix.truncate(&eng_io_posix, fd, size);
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_punch(const struct eng_io *io, int fd, uint64_t off, uint64_t len) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        if (fio_is_crashed(f)) {
                r = -EIO;
                goto out;
        }
        struct fio_file *file = fio_file_of_fd(f, fd);
        if (file && len > 0) {
                r = fio_record(file, off, len);
                if (r < 0)
                        goto out;
        }
        r = eng_io_posix.punch(&eng_io_posix, fd, off, len);
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_clone(const struct eng_io *io, int src, uint64_t soff, int dst, uint64_t doff, uint64_t len) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        if (fio_is_crashed(f)) {
                r = -EIO;
                goto out;
        }
        struct fio_file *file = fio_file_of_fd(f, dst);
        if (file) {
                uint64_t n = len;
                if (n == 0) { /* FICLONERANGE: 0 means "to the end of SRC" */
                        struct stat st;
                        if (fstat(src, &st) < 0) {
                                r = negative_errno();
                                goto out;
                        }
                        n = (uint64_t) st.st_size > soff ? (uint64_t) st.st_size - soff : 0;
                }
                if (n > 0) {
                        r = fio_record(file, doff, n);
                        if (r < 0)
                                goto out;
                }
        }
        r = eng_io_posix.clone(&eng_io_posix, src, soff, dst, doff, len);
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_rename(const struct eng_io *io, const char *from, const char *to) {
        faultio *f = fio_of(io);
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_is_crashed(f) ? -EIO : eng_io_posix.rename(&eng_io_posix, from, to);
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_size(const struct eng_io *io, int fd, uint64_t *ret_size) {
        faultio *f = fio_of(io);

        if (fio_is_crashed(f))
                return -EIO;
        return eng_io_posix.size(&eng_io_posix, fd, ret_size);
}

int faultio_new(uint64_t seed, faultio **ret) {
        faultio *f = calloc(1, sizeof *f);

        if (!f)
                return -ENOMEM;
        f->io = (struct eng_io){
                .userdata = f,
                .open = fio_open,
                .close = fio_close,
                .pread = fio_pread,
                .pwrite = fio_pwrite,
                .sync = fio_sync,
                .truncate = fio_truncate,
                .punch = fio_punch,
                .clone = fio_clone,
                .rename = fio_rename,
                .size = fio_size,
        };
        pthread_mutex_init(&f->lock, NULL);
        f->rng = seed ^ 0x6a09e667f3bcc908ull;
        f->sector = SECTOR;
        *ret = f;
        return 0;
}

void faultio_free(faultio *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n_files; i++) {
                fio_forget(&f->files[i]);
                free(f->files[i].changes);
                if (f->files[i].fd >= 0)
                        close(f->files[i].fd);
        }
        free(f->files);
        free(f->fds);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

const struct eng_io *faultio_io(faultio *f) {
        return &f->io;
}

int faultio_set_sector_size(faultio *f, unsigned bytes) {
        if (bytes < 8 || bytes > 4096 || !IS_POWER_OF_2(bytes))
                return -EINVAL;
        pthread_mutex_lock(&f->lock);
        f->sector = bytes;
        pthread_mutex_unlock(&f->lock);
        return 0;
}

void faultio_arm(faultio *f, uint64_t n) {
        pthread_mutex_lock(&f->lock);
        f->prefix[0] = 0;
        f->crash_at = n == 0 ? 0 : f->syncs + n;
        pthread_mutex_unlock(&f->lock);
}

void faultio_arm_of(faultio *f, uint64_t n, const char *prefix) {
        pthread_mutex_lock(&f->lock);
        snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
        f->prefix_syncs = 0;
        f->crash_at = n;
        pthread_mutex_unlock(&f->lock);
}

uint64_t faultio_syncs_of(faultio *f, const char *prefix) {
        uint64_t n = 0;

        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->n_files; i++)
                if (fio_name_matches(f->files[i].name, prefix))
                        n += f->files[i].syncs;
        pthread_mutex_unlock(&f->lock);
        return n;
}

void faultio_crash_now(faultio *f) {
        pthread_mutex_lock(&f->lock);
        fio_set_crashed(f);
        pthread_mutex_unlock(&f->lock);
}

bool faultio_crashed(faultio *f) {
        return fio_is_crashed(f);
}

uint64_t faultio_syncs(faultio *f) {
        pthread_mutex_lock(&f->lock);
        uint64_t n = f->syncs;
        pthread_mutex_unlock(&f->lock);
        return n;
}

uint64_t faultio_pending(faultio *f) {
        uint64_t n = 0;

        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->n_files; i++)
                n += f->files[i].n_changes;
        pthread_mutex_unlock(&f->lock);
        return n;
}

/* Puts back the old content of [from, to) of change C (zeros past its old size). */
static int fio_undo_range(int fd, const struct fio_change *c, uint64_t from, uint64_t to) {
        static const uint8_t zeros[SECTOR];
        uint64_t old_end = c->off + MIN(c->len, c->old_size > c->off ? c->old_size - c->off : 0);
        int r;

        if (from < old_end) {
                uint64_t e = MIN(to, old_end);
                r = fio_pwrite_full(fd, c->old + (from - c->off), e - from, from);
                if (r < 0)
                        return r;
                from = e;
        }
        while (from < to) {
                uint64_t n = MIN(to - from, (uint64_t) SECTOR);
                r = fio_pwrite_full(fd, zeros, n, from);
                if (r < 0)
                        return r;
                from += n;
        }
        return 0;
}

static int fio_apply_drop(faultio *f, struct fio_file *file, struct faultio_stats *st) {
        for (size_t i = file->n_changes; i-- > 0;) {
                const struct fio_change *c = &file->changes[i];
                uint64_t n_old = c->off < c->old_size ? MIN(c->len, c->old_size - c->off) : 0;

                if (ftruncate(file->fd, (off_t) c->old_size) < 0)
                        return negative_errno();
                if (n_old > 0) {
                        int r = fio_pwrite_full(file->fd, c->old, n_old, c->off);
                        if (r < 0)
                                return r;
                }
                st->sectors_reverted += DIV_ROUND_UP(c->len, f->sector);
        }
        return 0;
}

static int fio_apply_tear(faultio *f, struct fio_file *file, bool keep_size, struct faultio_stats *st) {
        /* kept[s]: sector s already kept a newer change, so every older change of it stays too. */
        uint64_t end = 0;
        for (size_t i = 0; i < file->n_changes; i++)
                end = MAX(end, file->changes[i].off + file->changes[i].len);
        const uint64_t sector = f->sector;
        size_t n_sectors = DIV_ROUND_UP(end, sector);
        _cleanup_free_ uint8_t *kept = calloc(n_sectors + 1, 1);
        if (!kept)
                return -ENOMEM;
        struct stat cst;
        if (fstat(file->fd, &cst) < 0)
                return negative_errno();
        uint64_t crash_size = (uint64_t) cst.st_size;

        for (size_t i = file->n_changes; i-- > 0;) {
                const struct fio_change *c = &file->changes[i];
                for (uint64_t s = c->off / sector; s * sector < c->off + c->len; s++) {
                        uint64_t from = MAX(c->off, s * sector);
                        uint64_t to = MIN(c->off + c->len, (s + 1) * sector);

                        if (kept[s] || (tst_rand(&f->rng) & 1)) {
                                kept[s] = 1;
                                st->sectors_kept++;
                                continue;
                        }
                        int r = fio_undo_range(file->fd, c, from, to);
                        if (r < 0)
                                return r;
                        st->sectors_reverted++;
                }
        }
        /* The size goes back to the synced one (the oldest change's starting size), or stays at the
         * crash-time one (reverting sectors past the end may have grown the file meanwhile). */
        uint64_t size = keep_size ? crash_size : file->changes[0].old_size;
        if (ftruncate(file->fd, (off_t) size) < 0)
                return negative_errno();
        return 0;
}

int faultio_crash_apply(faultio *f, faultio_mode mode, struct faultio_stats *ret_stats) {
        struct faultio_stats st = {};
        int r = 0;

        pthread_mutex_lock(&f->lock);
        fio_set_crashed(f);
        for (size_t i = 0; i < f->n_files; i++) {
                struct fio_file *file = &f->files[i];
                if (file->n_changes == 0)
                        continue;
                if (file->fd < 0) {
                        r = -file->fd_errno;
                        break;
                }
                st.files++;
                st.changes += file->n_changes;
                r = mode == FAULTIO_DROP ? fio_apply_drop(f, file, &st)
                                         : fio_apply_tear(f, file, mode == FAULTIO_TEAR_KEEP_SIZE, &st);
                if (r < 0)
                        break;
                fio_forget(file);
        }
        pthread_mutex_unlock(&f->lock);
        if (r >= 0 && ret_stats)
                *ret_stats = st;
        return r;
}

const char *faultio_mode_name(faultio_mode mode) {
        switch (mode) {
        case FAULTIO_DROP:
                return "DROP";
        case FAULTIO_TEAR:
                return "TEAR";
        case FAULTIO_TEAR_KEEP_SIZE:
                return "TEAR_KEEP_SIZE";
        }
        return "?";
}

/* ---- test helpers ---- */

uint64_t tst_rand(uint64_t *state) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

uint64_t tst_rand_below(uint64_t *state, uint64_t n) {
        return n == 0 ? 0 : tst_rand(state) % n;
}

uint64_t tst_rand_between(uint64_t *state, uint64_t lo, uint64_t hi) {
        return lo + tst_rand_below(state, hi - lo + 1);
}

void tst_rand_fill(uint64_t *state, void *buf, size_t len) {
        uint8_t *p = buf;

        while (len >= 8) {
                uint64_t x = tst_rand(state);
                memcpy(p, &x, 8);
                p += 8;
                len -= 8;
        }
        if (len > 0) {
                uint64_t x = tst_rand(state);
                memcpy(p, &x, len);
        }
}

uint64_t tst_env_u64(const char *name, uint64_t def) {
        const char *s = getenv(name);
        char *end;

        if (!s || !*s)
                return def;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno != 0 || *end) {
                fprintf(stderr, "ignoring %s=%s: not a number\n", name, s);
                return def;
        }
        return v;
}

static const char *tst_arg(int argc, char **argv, const char *long_name, const char *short_name) {
        size_t n = strlen(long_name);

        for (int i = 1; i < argc; i++) {
                if (strncmp(argv[i], long_name, n) == 0 && argv[i][n] == '=')
                        return argv[i] + n + 1;
                if (short_name && strcmp(argv[i], short_name) == 0 && i + 1 < argc)
                        return argv[i + 1];
        }
        return NULL;
}

uint64_t tst_seed(int argc, char **argv) {
        const char *s = tst_arg(argc, argv, "--seed", "-s");

        if (s)
                return strtoull(s, NULL, 0);
        uint64_t v = tst_env_u64("LVSS_TEST_SEED", 0);
        if (v != 0)
                return v;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x =
                (uint64_t) ts.tv_sec * 1000000007ull ^ (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid() << 32);
        return (tst_rand(&x) & 0xffffffffffull) | 1; /* short enough to type back */
}

uint64_t tst_iterations(int argc, char **argv, uint64_t def) {
        const char *s = tst_arg(argc, argv, "--iterations", "-n");

        if (s)
                return strtoull(s, NULL, 0);
        return tst_env_u64("LVSS_TEST_ITERATIONS", def);
}

int tst_mkdtemp(const char *tag, char **ret) {
        const char *base = getenv("TMPDIR");
        char *p;

        if (!base || !*base)
                base = "/var/tmp";
        if (asprintf(&p, "%s/lvss-%s-XXXXXX", base, tag) < 0)
                return -ENOMEM;
        if (!mkdtemp(p)) {
                int r = negative_errno();
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

static int tst_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        if (type == FTW_DP)
                return rmdir(path) < 0 ? -1 : 0;
        return unlink(path) < 0 ? -1 : 0;
}

int tst_rm_rf(const char *path) {
        if (!path)
                return 0;
        if (access(path, F_OK) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (nftw(path, tst_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
                return negative_errno();
        return 0;
}

uint64_t tst_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static char tst_watchdog_msg[512];
static char tst_watchdog_dir[4096];

static void tst_watchdog_fire(int sig) {
        static const char head[] = "\nFAIL: watchdog: no progress, ";
        (void) !write(STDERR_FILENO, head, sizeof head - 1);
        (void) !write(STDERR_FILENO, tst_watchdog_msg, strlen(tst_watchdog_msg));
        (void) !write(STDERR_FILENO, "\n", 1);
        if (tst_watchdog_dir[0]) {
                /* Only async-signal-safe calls here: the stuck threads may hold any lock. */
                pid_t pid = fork();
                if (pid == 0) {
                        char *const argv[] = { (char *) "rm", (char *) "-rf", tst_watchdog_dir, NULL };
                        execv("/bin/rm", argv);
                        _exit(127);
                }
                if (pid > 0)
                        (void) waitpid(pid, NULL, 0);
        }
        _exit(1);
}

void tst_watchdog_cleanup(const char *dir) {
        sigset_t set, old;

        sigemptyset(&set);
        sigaddset(&set, SIGALRM);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        if (dir && tst_env_u64("LVSS_TEST_KEEP", 0) == 0)
                snprintf(tst_watchdog_dir, sizeof tst_watchdog_dir, "%s", dir);
        else
                tst_watchdog_dir[0] = 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void tst_watchdog(unsigned seconds, const char *fmt, ...) {
        static bool installed;
        char msg[sizeof tst_watchdog_msg];
        va_list ap;

        alarm(0);
        if (seconds == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        memcpy(tst_watchdog_msg, msg, sizeof msg);
        if (!installed) {
                signal(SIGALRM, tst_watchdog_fire);
                installed = true;
        }
        alarm(seconds);
}
