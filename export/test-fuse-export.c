/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * test-fuse-export: the contract of fuse-export.h, through real file system calls on a real
 * mount served by this process's own workers (the calling thread is not one of them).
 *
 *  - the tree: volumes/ and shadows/, exact sizes and modes, readdir listing exactly what was
 *    added, a removed file gone at once (no stale kernel entry), an added one visible at once;
 *  - I/O: bytes written through the file are the engine's and the reverse; writes past the end
 *    are short or ENOSPC; fsync reaches engine_flush (the counter); PUNCH_HOLE and ZERO_RANGE
 *    read back as zeros in the live volume and leave the shadow unchanged;
 *  - shadows: opening one for writing fails with EROFS, its content is the snapshot's while the
 *    live volume changes; truncating a volume fails with EPERM;
 *  - removal is refused (-EBUSY) while the file is open; names are checked;
 *  - fsync means durable: under the engine's fault-injecting I/O layer, a power cut right after
 *    an fsync through the file keeps the fsynced bytes and loses a later unsynced write.
 *
 * Needs root and /dev/fuse: exits 77 (skipped) without them.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/engine.h"
#include "export/fuse-export.h"
#include "tests/faultio.h"

#define SIZE (8u * 1024u * 1024u)
#define MIB (1024u * 1024u)

static char tmpdir[] = "/tmp/test-fuse-export.XXXXXX";
static char mnt[256], voldir[256], crashdir[256];
static fuse_export *exp_;
static eng_volume *vol;

__attribute__((format(printf, 1, 2))) _Noreturn static void fail(const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "FAIL: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        /* Unmount even on failure, so that nothing stays behind. */
        fuse_export_free(exp_);
        engine_volume_close(vol);
        exit(1);
}

#define CHECK(cond, ...)                                                                                    \
        do {                                                                                                \
                if (!(cond))                                                                                \
                        fail(__VA_ARGS__);                                                                  \
        } while (0)

static void path_of(char *buf, size_t n, const char *sub) {
        snprintf(buf, n, "%s/%s", mnt, sub);
}

static void fill(uint8_t *buf, size_t len, unsigned seed) {
        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t) (seed * 131u + i * 7u + (i >> 12));
}

static bool is_zero(const uint8_t *buf, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (buf[i])
                        return false;
        return true;
}

/* The sorted names in DIR, joined by ','. */
static void listing(const char *sub, char *out, size_t n) {
        char p[512];
        path_of(p, sizeof p, sub);
        struct dirent **ents;
        int k = scandir(p, &ents, NULL, alphasort);
        CHECK(k >= 0, "scandir %s: %m", p);
        out[0] = '\0';
        for (int i = 0; i < k; i++) {
                if (strcmp(ents[i]->d_name, ".") != 0 && strcmp(ents[i]->d_name, "..") != 0) {
                        if (out[0])
                                strncat(out, ",", n - strlen(out) - 1);
                        strncat(out, ents[i]->d_name, n - strlen(out) - 1);
                }
                free(ents[i]);
        }
        free(ents);
}

static uint64_t flushes(void) {
        struct fuse_export_stats st;
        CHECK(fuse_export_get_stats(exp_, &st) == 0, "stats");
        return st.flushes;
}

int main(void) {
        _cleanup_free_ uint8_t *a = malloc(MIB), *b = malloc(MIB), *c = malloc(MIB);
        char p[512], list[1024];
        struct stat st;

        if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
                printf("SKIP: needs root and /dev/fuse\n");
                return 77;
        }
        CHECK(a && b && c, "out of memory");
        CHECK(mkdtemp(tmpdir), "mkdtemp: %m");
        snprintf(mnt, sizeof mnt, "%s/mnt", tmpdir);
        snprintf(voldir, sizeof voldir, "%s/vol", tmpdir);
        snprintf(crashdir, sizeof crashdir, "%s/crash", tmpdir);
        CHECK(mkdir(mnt, 0700) == 0, "mkdir: %m");

        struct eng_create_params cp = { .size = SIZE, .chunk_size = 65536 };
        CHECK(engine_volume_create(voldir, &cp, &vol) == 0, "engine_volume_create");

        CHECK(fuse_export_new("/nonexistent/lvss", NULL, &exp_) == -ENOENT, "missing mount point");
        CHECK(fuse_export_new(mnt, NULL, &exp_) == 0, "fuse_export_new");
        CHECK(fuse_export_add_volume(exp_, "v", vol) == 0, "add volume");
        CHECK(fuse_export_add_volume(exp_, "v", vol) == -EEXIST, "duplicate volume name");
        CHECK(fuse_export_add_volume(exp_, "a/b", vol) == -EINVAL, "name with '/'");
        CHECK(fuse_export_add_volume(exp_, "..", vol) == -EINVAL, "name '..'");
        CHECK(fuse_export_add_shadow(exp_, "nosuch", vol, 99) == -ENOENT, "shadow of a missing snapshot");
        CHECK(fuse_export_start(exp_) == 0, "start");
        CHECK(fuse_export_start(exp_) == -EALREADY, "second start");

        /* The tree. */
        listing(".", list, sizeof list);
        CHECK(strcmp(list, "shadows,volumes") == 0, "root lists '%s'", list);
        listing("volumes", list, sizeof list);
        CHECK(strcmp(list, "v") == 0, "volumes/ lists '%s'", list);
        path_of(p, sizeof p, "volumes/v");
        CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == SIZE, "volume size %lld",
              (long long) st.st_size);

        /* Writes through the file reach the engine, and the reverse. */
        int fd = open(p, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0, "open volume: %m");
        fill(a, MIB, 1);
        CHECK(pwrite(fd, a, MIB, MIB) == MIB, "pwrite: %m");
        CHECK(engine_read(vol, b, MIB, MIB) == 0 && memcmp(a, b, MIB) == 0, "engine sees the write");
        fill(c, 4096, 2);
        CHECK(engine_write(vol, c, 4096, 3 * MIB) == 0, "engine_write");
        CHECK(pread(fd, b, 4096, 3 * MIB) == 4096 && memcmp(b, c, 4096) == 0,
              "file sees the engine's write");

        uint64_t f0 = flushes();
        CHECK(fsync(fd) == 0, "fsync: %m");
        CHECK(flushes() == f0 + 1, "fsync did not reach engine_flush");

        /* The end of the volume, as a block device's. */
        CHECK(pwrite(fd, a, 4096, SIZE - 1024) == 1024, "write across the end is short");
        errno = 0;
        CHECK(pwrite(fd, a, 4096, SIZE) < 0 && errno == ENOSPC, "write at the end: %m");
        CHECK(pread(fd, b, 4096, SIZE - 512) == 512, "read across the end is short");
        CHECK(ftruncate(fd, SIZE / 2) < 0 && errno == EPERM, "truncate a volume: %m");

        /* A shadow. */
        uint32_t id;
        struct eng_snap_params sp = { .persistent = false };
        CHECK(engine_snapshot_create(vol, &sp, &id) == 0, "snapshot");
        CHECK(fuse_export_add_shadow(exp_, "v@1", vol, id) == 0, "add shadow");
        listing("shadows", list, sizeof list);
        CHECK(strcmp(list, "v@1") == 0, "shadows/ lists '%s'", list);
        char sp_path[512];
        path_of(sp_path, sizeof sp_path, "shadows/v@1");
        CHECK(stat(sp_path, &st) == 0 && st.st_size == SIZE && (st.st_mode & 0222) == 0,
              "shadow attributes");
        errno = 0;
        CHECK(open(sp_path, O_RDWR | O_CLOEXEC) < 0 && errno == EROFS, "open shadow rw: %m");
        errno = 0;
        CHECK(open(sp_path, O_WRONLY | O_CLOEXEC) < 0 && errno == EROFS, "open shadow wo: %m");
        int sfd = open(sp_path, O_RDONLY | O_CLOEXEC);
        CHECK(sfd >= 0, "open shadow ro: %m");

        fill(b, MIB, 3);
        CHECK(pwrite(fd, b, MIB, MIB) == MIB, "overwrite live: %m");
        CHECK(pread(sfd, c, MIB, MIB) == MIB && memcmp(c, a, MIB) == 0,
              "shadow changed with the live volume");
        CHECK(pread(fd, c, MIB, MIB) == MIB && memcmp(c, b, MIB) == 0, "live volume lost a write");

        /* Holes and zeroes: zeros live, old data in the shadow. */
        CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MIB, 256 * 1024) == 0, "punch: %m");
        CHECK(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, MIB + 512 * 1024, 256 * 1024) == 0,
              "zero range: %m");
        CHECK(pread(fd, c, MIB, MIB) == MIB, "read");
        CHECK(is_zero(c, 256 * 1024) && is_zero(c + 512 * 1024, 256 * 1024), "holes read as zeros");
        CHECK(memcmp(c + 256 * 1024, b + 256 * 1024, 256 * 1024) == 0, "punch went too far");
        CHECK(pread(sfd, c, MIB, MIB) == MIB && memcmp(c, a, MIB) == 0, "shadow changed by punch");
        CHECK(fallocate(fd, 0, 0, SIZE * 2) < 0 && errno == EFBIG, "growing fallocate: %m");

        /* Removal: refused while open; gone at once afterwards. */
        CHECK(fuse_export_remove_shadow(exp_, "v@1") == -EBUSY, "remove an open shadow");
        CHECK(fuse_export_remove_volume(exp_, "v") == -EBUSY, "remove an open volume");
        close(sfd);
        CHECK(fuse_export_remove_shadow(exp_, "v@1") == 0, "remove shadow");
        CHECK(fuse_export_remove_shadow(exp_, "v@1") == -ENOENT, "remove it twice");
        errno = 0;
        CHECK(stat(sp_path, &st) < 0 && errno == ENOENT, "removed shadow still there: %m");
        listing("shadows", list, sizeof list);
        CHECK(list[0] == '\0', "shadows/ lists '%s' after removal", list);
        /* The same name again, for another snapshot: the new content, not a cached inode. */
        CHECK(engine_snapshot_create(vol, &sp, &id) == 0, "second snapshot");
        CHECK(fuse_export_add_shadow(exp_, "v@1", vol, id) == 0, "re-add shadow");
        sfd = open(sp_path, O_RDONLY | O_CLOEXEC);
        CHECK(sfd >= 0 && pread(sfd, c, MIB, MIB) == MIB && is_zero(c, 256 * 1024),
              "re-added shadow content");
        close(sfd);

        /* close(2) returns before the kernel's RELEASE is served: give it a moment. */
        for (int i = 0; i < 100 && fuse_export_open_files(exp_) != 1; i++)
                usleep(10000);
        CHECK(fuse_export_open_files(exp_) == 1, "open files %u", fuse_export_open_files(exp_));
        close(fd);
        CHECK(flushes() >= f0 + 2, "close did not flush");
        CHECK(fuse_export_remove_volume(exp_, "v") == 0, "remove volume");
        errno = 0;
        CHECK(stat(p, &st) < 0 && errno == ENOENT, "removed volume still there: %m");

        /* Power loss: what fsync returned for survives, an unsynced write does not. */
        faultio *fio;
        eng_volume *cvol;
        CHECK(faultio_new(1, &fio) == 0, "faultio_new");
        CHECK(engine_volume_create_io(crashdir, &cp, faultio_io(fio), &cvol) == 0, "create under faultio");
        CHECK(fuse_export_add_volume(exp_, "d", cvol) == 0, "add volume d");
        path_of(p, sizeof p, "volumes/d");
        fd = open(p, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0, "open d: %m");
        fill(a, MIB, 4);
        fill(b, MIB, 5);
        CHECK(pwrite(fd, a, MIB, 0) == MIB, "pwrite d: %m");
        CHECK(fsync(fd) == 0, "fsync d: %m");
        CHECK(pwrite(fd, b, MIB, 2 * MIB) == MIB, "pwrite d: %m");
        CHECK(faultio_crash_apply(fio, FAULTIO_DROP, NULL) == 0, "crash");
        close(fd); /* its flush fails: the "disk" is gone */
        for (int i = 0; i < 100 && fuse_export_remove_volume(exp_, "d") == -EBUSY; i++)
                ;
        engine_volume_abandon(cvol);
        faultio_free(fio);
        CHECK(engine_volume_open(crashdir, &cvol) == 0, "reopen after the crash");
        CHECK(engine_read(cvol, c, MIB, 0) == 0 && memcmp(c, a, MIB) == 0,
              "fsynced write lost in the crash");
        CHECK(engine_read(cvol, c, MIB, 2 * MIB) == 0 && is_zero(c, MIB),
              "the unsynced write survived: the crash test proves nothing");
        engine_volume_close(cvol);

        fuse_export_free(exp_);
        exp_ = NULL;
        /* Unmounted: the directory is empty again. */
        listing(".", list, sizeof list);
        CHECK(list[0] == '\0', "mount point still lists '%s'", list);
        engine_volume_close(vol);
        vol = NULL;

        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        CHECK(system(cmd) == 0, "cleanup");
        printf("ok\n");
        return 0;
}
