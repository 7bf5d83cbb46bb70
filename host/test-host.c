/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Drives host/ against the real kernel: real loop devices, real ext4 and xfs images made by
 * mkfs, real mounts. A shadow copy is stood in for by `cp --sparse=always` of an image whose
 * filesystem is mounted, taken after sync and without freezing, exposed beside the original.
 * Needs root and /dev/loop-control (exit 77 otherwise), except for the mountinfo parser checks,
 * which run first. Every mount, loop device and file made is registered and undone by
 * test_cleanup(), which runs whatever happened (a failed check returns to main, a signal
 * handler calls it too).
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/macro.h"
#include "host/expose.h"
#include "host/loopdev.h"
#include "host/mounts.h"

#define CHECK(expr)                                                                                         \
        do {                                                                                                \
                if (!(expr)) {                                                                              \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);            \
                        return -1;                                                                          \
                }                                                                                           \
        } while (0)

/* CALL must return exactly WANT (a negative errno or a non-negative value). */
#define CHECK_R(call, want)                                                                                 \
        do {                                                                                                \
                int _r = (call), _w = (want);                                                               \
                if (_r != _w) {                                                                             \
                        fprintf(stderr, "%s:%d: %s = %d (%s), expected %d (%s)\n", __FILE__, __LINE__,      \
                                #call, _r, _r < 0 ? strerror(-_r) : "ok", _w,                               \
                                _w < 0 ? strerror(-_w) : "ok");                                             \
                        return -1;                                                                          \
                }                                                                                           \
        } while (0)

#define CHECK_STR(a, b)                                                                                     \
        do {                                                                                                \
                const char *_a = (a), *_b = (b);                                                            \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                                    \
                        fprintf(stderr, "%s:%d: %s = \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,    \
                                _a ? _a : "(null)", _b ? _b : "(null)");                                    \
                        return -1;                                                                          \
                }                                                                                           \
        } while (0)

/* What test_cleanup() undoes, in reverse order of registration. */
static char tmpdir[] = "/tmp/test-host-XXXXXX";
static bool have_tmpdir;
static char *reg_mounts[16];
static size_t n_mounts;
static char *reg_images[16];
static size_t n_images;
static int reg_fds[16];
static size_t n_fds;

static void reg_mount(const char *path) {
        if (n_mounts < ELEMENTSOF(reg_mounts))
                reg_mounts[n_mounts++] = strdup(path);
}

static void reg_image(const char *path) {
        if (n_images < ELEMENTSOF(reg_images))
                reg_images[n_images++] = strdup(path);
}

static void reg_fd(int fd) {
        if (n_fds < ELEMENTSOF(reg_fds))
                reg_fds[n_fds++] = fd;
}

static void unreg_fd(int fd) {
        for (size_t i = 0; i < n_fds; i++)
                if (reg_fds[i] == fd)
                        reg_fds[i] = -1;
        close(fd);
}

static void test_cleanup(void) {
        while (n_mounts > 0) {
                char *m = reg_mounts[--n_mounts];
                if (m) {
                        struct mount_entry *e = NULL;
                        if (mounts_find(m, &e) == 0) {
                                /* A check failed between FIFREEZE and FITHAW? Never leave it frozen. */
                                int fd = open(m, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                                if (fd >= 0) {
                                        (void) ioctl(fd, FITHAW, 0);
                                        close(fd);
                                }
                                (void) umount2(m, MNT_DETACH);
                        }
                        mount_entry_free(e);
                        free(m);
                }
        }
        while (n_fds > 0) {
                int fd = reg_fds[--n_fds];
                if (fd >= 0)
                        close(fd);
        }
        while (n_images > 0) {
                char *img = reg_images[--n_images];
                char **devs = NULL;
                if (img && loopdev_list_for_backing(img, &devs, NULL) >= 0)
                        for (char **d = devs; *d; d++)
                                (void) loopdev_detach(*d);
                strv_free(devs);
                free(img);
        }
        if (have_tmpdir) {
                char cmd[64];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", tmpdir);
                have_tmpdir = false;
        }
}

static void on_signal(int sig) {
        /* Not async-signal-safe, but leaving mounts behind on a timeout is worse. */
        test_cleanup();
        _exit(128 + sig);
}

static char *path_in(const char *name) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s", tmpdir, name) < 0)
                abort();
        return p;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
        char cmd[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        int r = system(cmd);
        if (r != 0)
                fprintf(stderr, "command failed (%d): %s\n", r, cmd);
        return r;
}

static int make_image(const char *path, uint64_t size) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t) size) < 0)
                return -1;
        return 0;
}

static int write_file(const char *path, const void *buf, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, buf, len) != (ssize_t) len || fsync(fd) < 0)
                return -1;
        return 0;
}

/* Reads the sysfs attribute /sys/block/NAME/ATTR (NAME from a "/dev/NAME" node) as a number. */
static long sysfs_long(const char *device, const char *attr) {
        char path[PATH_MAX], buf[32] = "";
        snprintf(path, sizeof path, "/sys/block/%s/%s", strrchr(device, '/') + 1, attr);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof buf, f))
                buf[0] = 0;
        fclose(f);
        return buf[0] ? strtol(buf, NULL, 10) : -1;
}

static size_t count_backing(const char *image) {
        char **devs = NULL;
        size_t n = SIZE_MAX;
        if (loopdev_list_for_backing(image, &devs, &n) < 0)
                return SIZE_MAX;
        strv_free(devs);
        return n;
}

static int test_parse(void) {
        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
        CHECK_R(mounts_parse_line(
                        "36 35 98:0 /mnt1 /mnt/par\\040ent\\134x rw,noatime master:1 shared:7 - ext3 "
                        "/dev/root\\011t rw,errors=continue\n",
                        &e),
                0);
        CHECK(e->mount_id == 36 && e->parent_id == 35 && e->dev == makedev(98, 0));
        CHECK_STR(e->root, "/mnt1");
        CHECK_STR(e->mountpoint, "/mnt/par ent\\x");
        CHECK_STR(e->options, "rw,noatime");
        CHECK_STR(e->fstype, "ext3");
        CHECK_STR(e->source, "/dev/root\tt");
        mount_entry_free(TAKE_PTR(e));

        CHECK_R(mounts_parse_line("22 27 0:21 / /proc rw,relatime - proc proc rw", &e), 0);
        CHECK_STR(e->mountpoint, "/proc");
        CHECK_STR(e->source, "proc");
        CHECK(e->dev == makedev(0, 21));
        mount_entry_free(TAKE_PTR(e));

        /* A lone backslash or a short escape is kept as it is. */
        CHECK_R(mounts_parse_line("1 2 3:4 / /a\\b\\04 rw - t s o", &e), 0);
        CHECK_STR(e->mountpoint, "/a\\b\\04");
        mount_entry_free(TAKE_PTR(e));

        CHECK_R(mounts_parse_line("", &e), -EINVAL);
        CHECK_R(mounts_parse_line("36 35", &e), -EINVAL);
        CHECK_R(mounts_parse_line("36 35 98:0 / /mnt rw master:1 ext3 /dev/root rw", &e), -EINVAL);
        CHECK_R(mounts_parse_line("36 35 98:0 / /mnt rw -", &e), -EINVAL);
        CHECK_R(mounts_parse_line("36 35 98x0 / /mnt rw - ext3 /dev/root rw", &e), -EINVAL);
        CHECK(!e);

        /* The real table has "/" and mounts_find() finds it. */
        CHECK_R(mounts_find("/", &e), 0);
        CHECK_STR(e->mountpoint, "/");
        return 0;
}

/* A pattern no filesystem would make up: 1 MiB plus an odd tail. */
static char *make_pattern(size_t len) {
        char *p = malloc(len);
        if (!p)
                abort();
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < len; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                p[i] = (char) x;
        }
        return p;
}

/* Exposes COPY at EXP and checks the device, the mount, and (unless PATTERN is NULL) that "hello"
 * reads back as PATTERN; then unexposes it and checks nothing is left. */
static int expose_check(const char *copy, const char *exp, const char *orig_dev, const char *fstype,
                        const char *pattern, size_t len) {
        _cleanup_free_ char *edev = NULL, *etype = NULL, *udev = NULL;
        CHECK_R(expose_mount(copy, exp, &edev, &etype), 0);
        reg_mount(exp);
        CHECK_STR(etype, fstype);
        CHECK(strcmp(edev, orig_dev) != 0);
        CHECK(sysfs_long(edev, "ro") == 1);
        CHECK(sysfs_long(edev, "loop/autoclear") == 1);
        CHECK(sysfs_long(edev, "loop/dio") == 1);
        CHECK(count_backing(copy) == 1);

        struct statvfs sv;
        CHECK(statvfs(exp, &sv) == 0);
        CHECK((sv.f_flag & (ST_RDONLY | ST_NOSUID | ST_NODEV)) == (ST_RDONLY | ST_NOSUID | ST_NODEV));

        /* Read-only, and busy while a file is open. */
        _cleanup_close_ int rfd = open(exp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(rfd >= 0);
        if (pattern) {
                _cleanup_free_ char *efile = NULL, *back = malloc(len + 1);
                if (asprintf(&efile, "%s/hello", exp) < 0 || !back)
                        abort();
                close(rfd);
                rfd = open(efile, O_RDONLY | O_CLOEXEC);
                if (rfd < 0)
                        fprintf(stderr, "open %s: %m\n", efile);
                CHECK(rfd >= 0);
                CHECK(read(rfd, back, len + 1) == (ssize_t) len);
                CHECK(memcmp(back, pattern, len) == 0);
                CHECK(write_file(efile, "x", 1) < 0 && errno == EROFS);
        }
        CHECK_R(expose_unmount(exp, &udev), -EBUSY);
        CHECK(count_backing(copy) == 1);
        close(TAKE_FD(rfd));

        CHECK_R(expose_unmount(exp, &udev), 0);
        CHECK_STR(udev, edev);
        struct mount_entry *e = NULL;
        CHECK_R(mounts_find(exp, &e), -ENOENT);
        CHECK(count_backing(copy) == 0);
        return 0;
}

/* Makes a FSTYPE filesystem of SIZE_MIB, mounts it over a read-write loop device, writes a file,
 * copies the image while mounted and exposes the copy. */
static int test_fs(const char *fstype, unsigned size_mib, const char *mkfs) {
        const size_t len = (1u << 20) + 12345;
        _cleanup_free_ char *pattern = make_pattern(len);
        char name[64];

        snprintf(name, sizeof name, "%s.img", fstype);
        _cleanup_free_ char *image = path_in(name);
        snprintf(name, sizeof name, "%s copy.img", fstype);
        _cleanup_free_ char *copy = path_in(name);
        snprintf(name, sizeof name, "%s orig mnt", fstype); /* spaces: \040 in mountinfo */
        _cleanup_free_ char *mnt = path_in(name);
        snprintf(name, sizeof name, "%s exposed", fstype);
        _cleanup_free_ char *exp = path_in(name);
        reg_image(image);
        reg_image(copy);

        CHECK(make_image(image, (uint64_t) size_mib << 20) == 0);
        CHECK(run("%s '%s'", mkfs, image) == 0);
        CHECK(mkdir(mnt, 0755) == 0 && mkdir(exp, 0755) == 0);

        _cleanup_free_ char *dev = NULL;
        int fd = -1;
        CHECK_R(loopdev_attach(image, false, true, &dev, &fd), 0);
        reg_fd(fd);
        CHECK(strncmp(dev, "/dev/loop", 9) == 0 && fd >= 0);
        CHECK(sysfs_long(dev, "ro") == 0);
        CHECK(sysfs_long(dev, "loop/autoclear") == 1);

        _cleanup_free_ char *canon_image = realpath(image, NULL), *canon_mnt = realpath(mnt, NULL);
        CHECK(canon_image && canon_mnt);
        _cleanup_free_ char *backing = NULL, *backing2 = NULL, *backing3 = NULL;
        CHECK_R(loopdev_backing_file(dev, &backing), 0);
        CHECK_STR(backing, canon_image);
        CHECK_R(loopdev_backing_file(dev + 5, &backing2), 0);
        CHECK_STR(backing2, canon_image);
        struct stat st;
        CHECK(stat(dev, &st) == 0);
        CHECK_R(loopdev_backing_file_by_devnum(st.st_rdev, &backing3), 0);
        CHECK_STR(backing3, canon_image);

        CHECK(mount(dev, mnt, fstype, 0, NULL) == 0);
        reg_mount(mnt);
        /* The mount holds the device now; autoclear will detach it at unmount. */
        unreg_fd(fd);
        CHECK(count_backing(image) == 1);

        _cleanup_free_ char *file = NULL;
        if (asprintf(&file, "%s/hello", mnt) < 0)
                abort();
        CHECK(write_file(file, pattern, len) == 0);

        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
        CHECK_R(mounts_find(mnt, &e), 0);
        CHECK_STR(e->mountpoint, canon_mnt);
        CHECK_STR(e->source, dev);
        CHECK_STR(e->fstype, fstype);
        CHECK(e->dev == st.st_rdev);
        mount_entry_free(TAKE_PTR(e));
        CHECK_R(mounts_find(file, &e), -ENOENT);
        CHECK_R(mounts_find(tmpdir, &e), -ENOENT);

        _cleanup_free_ char *rb = NULL, *rd = NULL, *rf = NULL;
        CHECK_R(mounts_resolve_loop_backing(mnt, &rb, &rd, &rf), 0);
        CHECK_STR(rb, canon_image);
        CHECK_STR(rd, dev);
        CHECK_STR(rf, fstype);

        _cleanup_(strv_freep) char **devs = NULL, **mps = NULL;
        size_t n = 0;
        CHECK_R(loopdev_list_for_backing(image, &devs, &n), 1);
        CHECK(n == 1 && !devs[1]);
        CHECK_STR(devs[0], dev);
        CHECK_R(mounts_list_for_device(st.st_rdev, &mps, &n), 1);
        CHECK(n == 1 && !mps[1]);
        CHECK_STR(mps[0], canon_mnt);

        CHECK_R(mounts_same_filesystem(mnt, file), 1);
        CHECK_R(mounts_same_filesystem(mnt, tmpdir), 0);
        CHECK_R(mounts_same_filesystem(mnt, "/nonexistent/x"), -ENOENT);

        /* A copy taken after sync without freezing: ext4's sync writes its committed metadata in
         * place, xfs's only forces its log, which norecovery then ignores. Both must mount. */
        sync();
        CHECK(run("cp --sparse=always '%s' '%s'", image, copy) == 0);
        CHECK(expose_check(copy, exp, dev, fstype, strcmp(fstype, "xfs") == 0 ? NULL : pattern, len) == 0);

        /* A copy taken as lvssd takes a snapshot: sync, freeze, copy, thaw. Both show the file. */
        CHECK(unlink(copy) == 0);
        sync();
        _cleanup_close_ int mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(mfd >= 0);
        CHECK(ioctl(mfd, FIFREEZE, 0) == 0);
        int cp = run("cp --sparse=always '%s' '%s'", image, copy);
        CHECK(ioctl(mfd, FITHAW, 0) == 0);
        CHECK(cp == 0);
        close(TAKE_FD(mfd));
        CHECK(expose_check(copy, exp, dev, fstype, pattern, len) == 0);

        /* The original: autoclear detaches its device at unmount too. */
        CHECK(umount2(mnt, 0) == 0);
        CHECK(count_backing(image) == 0);
        return 0;
}

/* Exposing what cannot be exposed leaves nothing behind. */
static int test_errors(void) {
        _cleanup_free_ char *image = path_in("ext4 copy.img"), *zeros = path_in("zeros.img");
        _cleanup_free_ char *full = path_in("full"), *target = path_in("target"), *file = path_in("full/f");
        _cleanup_free_ char *dev = NULL, *s = NULL;
        struct mount_entry *e = NULL;
        reg_image(zeros);

        CHECK(mkdir(full, 0755) == 0 && mkdir(target, 0755) == 0);
        CHECK(write_file(file, "x", 1) == 0);

        CHECK_R(expose_mount(image, full, &dev, NULL), -ENOTEMPTY);
        CHECK_R(expose_mount(image, file, &dev, NULL), -ENOTDIR);
        CHECK_R(expose_mount(image, "/nonexistent/dir", &dev, NULL), -ENOENT);
        CHECK(count_backing(image) == 0);

        CHECK(make_image(zeros, 16u << 20) == 0);
        CHECK_R(expose_detect_fstype(zeros, &s), -EMEDIUMTYPE);
        CHECK_R(expose_mount(zeros, target, &dev, NULL), -EMEDIUMTYPE);
        CHECK(count_backing(zeros) == 0);
        CHECK_R(mounts_find(target, &e), -ENOENT);

        CHECK_R(expose_detect_fstype(image, &s), 0);
        CHECK_STR(s, "ext4");

        CHECK_R(expose_unmount(target, &dev), -ENOENT);
        CHECK_R(expose_unmount("/nonexistent/dir", &dev), -ENOENT);
        CHECK(!dev);

        /* A mount point already in use; and a mount not on a loop device is not ours to undo. */
        CHECK(mount("tmpfs", target, "tmpfs", 0, "size=1m") == 0);
        reg_mount(target);
        CHECK_R(expose_mount(image, target, &dev, NULL), -EBUSY);
        CHECK(count_backing(image) == 0);
        CHECK_R(expose_unmount(target, &dev), -ENOTBLK);
        CHECK_R(mounts_resolve_loop_backing(target, NULL, NULL, NULL), -ENOTBLK);
        CHECK_R(mounts_find(target, &e), 0);
        mount_entry_free(e);
        CHECK(umount2(target, 0) == 0);

        CHECK_R(loopdev_backing_file("/dev/null", &s), -ENOTBLK);
        CHECK_R(loopdev_backing_file("/nonexistent", &s), -ENOENT);
        CHECK_R(loopdev_backing_file("nonexistent0", &s), -ENOENT);
        CHECK_R(loopdev_backing_file("../x", &s), -EINVAL);
        CHECK_R(loopdev_attach("/nonexistent", true, true, &dev, &(int){ -1 }), -ENOENT);
        CHECK(!dev);

        /* A device we detach ourselves, with its fd still open: gone at close. */
        int fd = -1;
        CHECK_R(loopdev_attach(zeros, true, false, &dev, &fd), 0);
        reg_fd(fd);
        CHECK(sysfs_long(dev, "ro") == 1);
        CHECK_R(loopdev_detach(dev), 0);
        unreg_fd(fd);
        CHECK(count_backing(zeros) == 0);

        /* btrfs is refused, if we can make one. */
        if (system("command -v mkfs.btrfs >/dev/null 2>&1") == 0) {
                _cleanup_free_ char *btrfs = path_in("btrfs.img");
                CHECK(make_image(btrfs, 128u << 20) == 0);
                CHECK(run("mkfs.btrfs -q -f '%s'", btrfs) == 0);
                CHECK_R(expose_mount(btrfs, target, &dev, NULL), -EXDEV);
                CHECK(count_backing(btrfs) == 0);
        }
        return 0;
}

static int test_holding(void) {
        static const char *const lines[] = {
                "1 0 8:1 / / rw - ext4 /dev/sda1 rw",         "2 1 7:0 / /srv rw - ext4 /dev/loop0 rw",
                "3 2 7:1 / /srv/data rw - xfs /dev/loop1 rw", "4 1 0:5 / /srv/data2 rw - tmpfs tmpfs rw",
                "5 2 7:2 / /srv rw - ext4 /dev/loop2 rw", /* mounted over /srv */
        };
        struct mount_entry *all[ELEMENTSOF(lines)];
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                CHECK_R(mounts_parse_line(lines[i], &all[i]), 0);
        size_t n = ELEMENTSOF(lines);
        CHECK(mounts_holding(all, n, "/etc/passwd")->mount_id == 1);
        CHECK(mounts_holding(all, n, "/")->mount_id == 1);
        CHECK(mounts_holding(all, n, "/srv")->mount_id == 5); /* the topmost */
        CHECK(mounts_holding(all, n, "/srv/x/y")->mount_id == 5);
        CHECK(mounts_holding(all, n, "/srv/data")->mount_id == 3);
        CHECK(mounts_holding(all, n, "/srv/data/db/main.db")->mount_id == 3);
        CHECK(mounts_holding(all, n, "/srv/data2/f")->mount_id == 4); /* not /srv/data's */
        CHECK(mounts_holding(all, n, "/srv/datafile")->mount_id == 5);
        CHECK(!mounts_holding(all, n, "relative/path"));
        CHECK(!mounts_holding(all, n, NULL));
        CHECK(!mounts_holding(all, 1, "x"));
        for (size_t i = 0; i < n; i++)
                mount_entry_free(all[i]);
        struct mount_entry **real = NULL;
        size_t n_real = 0;
        CHECK_R(mounts_read_all(&real, &n_real), 0);
        CHECK(n_real > 0 && mounts_holding(real, n_real, "/proc/self") != NULL);
        mounts_free_all(real, n_real);
        return 0;
}

int main(void) {
        if (test_parse() < 0)
                return EXIT_FAILURE;
        printf("mountinfo parser ok\n");
        if (test_holding() < 0)
                return EXIT_FAILURE;
        printf("mounts_holding ok\n");

        if (geteuid() != 0 || access("/dev/loop-control", F_OK) < 0) {
                printf("skipped: needs root and /dev/loop-control\n");
                return 77;
        }

        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return EXIT_FAILURE;
        }
        have_tmpdir = true;

        int r = test_fs("ext4", 64, "mkfs.ext4 -q -F");
        if (r == 0)
                printf("ext4 ok\n");
        if (r == 0) {
                if (system("command -v mkfs.xfs >/dev/null 2>&1") == 0) {
                        r = test_fs("xfs", 320, "mkfs.xfs -f -q");
                        if (r == 0)
                                printf("xfs ok\n");
                } else
                        printf("xfs skipped: no mkfs.xfs\n");
        }
        if (r == 0) {
                r = test_errors();
                if (r == 0)
                        printf("errors ok\n");
        }

        test_cleanup();
        return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
