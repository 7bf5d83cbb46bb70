/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Exposing a shadow copy: IMAGE → read-only direct-I/O loop device → read-only mount. The
 * filesystem on a shadow copy is a copy of one that is mounted right now, so it carries the same
 * UUID and a journal the original is still writing to: the mount options say "do not replay, do
 * not mind the duplicate". Invariant: expose_mount() either leaves a mount over an autoclear loop
 * device, which unmounting detaches, or nothing at all. No locking: nothing is shared.
 */

#include "host/expose.h"

#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include "common/macro.h"

/* How long to wait for autoclear to detach a loop device before doing it ourselves. */
#define EXPOSE_DETACH_WAIT_MS 2000

static void blkid_free_probep(blkid_probe *pr) {
        if (*pr)
                blkid_free_probe(*pr);
}

int expose_detect_fstype(const char *path, char **ret) {
        if (!path || !ret)
                return -EINVAL;

        errno = 0;
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe_from_filename(path);
        if (!pr)
                return negative_errno();

        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
        blkid_probe_enable_partitions(pr, 1);

        errno = 0;
        int r = blkid_do_safeprobe(pr);
        if (r == -1)
                return negative_errno();
        if (r != 0)
                return -EMEDIUMTYPE; /* 1: nothing found, -2: ambiguous signatures */

        const char *type = NULL, *usage = NULL;
        if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0 || !type)
                return -EMEDIUMTYPE; /* a partition table, not a filesystem */
        if (blkid_probe_lookup_value(pr, "USAGE", &usage, NULL) == 0 && usage &&
            strcmp(usage, "filesystem") != 0)
                return -EMEDIUMTYPE;

        char *t = strdup(type);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

/* The mount options for a copy of a mounted filesystem of type FSTYPE in *RET (NULL for none);
 * -EXDEV for filesystems such a copy of which cannot be mounted beside the original. */
static int expose_mount_options(const char *fstype, const char **ret) {
        if (strcmp(fstype, "btrfs") == 0)
                return -EXDEV;
        if (strcmp(fstype, "xfs") == 0)
                *ret = "nouuid,norecovery";
        else if (strcmp(fstype, "ext4") == 0 || strcmp(fstype, "ext3") == 0)
                *ret = "noload";
        else
                *ret = NULL;
        return 0;
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* 0 if PATH is an empty directory that is not a mount point. */
static int expose_check_mountpoint(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;

        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
        int r = mounts_find(path, &e);
        if (r == 0)
                return -EBUSY;
        if (r != -ENOENT)
                return r;

        _cleanup_(closedirp) DIR *d = opendir(path);
        if (!d)
                return negative_errno();
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de)
                        return errno != 0 ? -errno : 0;
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        return -ENOTEMPTY;
        }
}

/* Makes sure DEVICE no longer carries BACKING: waits a little for autoclear, then LOOP_CLR_FD.
 * Leaves alone a device that was meanwhile reused for another file. */
int expose_ensure_detached(const char *device, const char *backing) {
        for (unsigned waited = 0;; waited += 10) {
                _cleanup_free_ char *now = NULL;
                int r = loopdev_backing_file(device, &now);
                if (r == -ENXIO || r == -ENOENT)
                        return 0;
                if (r < 0)
                        return r;
                if (strcmp(now, backing) != 0)
                        return 0;
                if (waited >= EXPOSE_DETACH_WAIT_MS)
                        break;
                nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        int r = loopdev_detach(device);
        return r == -ENXIO ? 0 : r;
}

int expose_mount(const char *image, const char *mountpoint, char **ret_device, char **ret_fstype) {
        if (!image || !mountpoint)
                return -EINVAL;

        int r = expose_check_mountpoint(mountpoint);
        if (r < 0)
                return r;

        /* Probe the image itself: cheaper than a loop device, and nothing to undo on failure. */
        _cleanup_free_ char *fstype = NULL;
        r = expose_detect_fstype(image, &fstype);
        if (r < 0)
                return r;
        const char *options;
        r = expose_mount_options(fstype, &options);
        if (r < 0)
                return r;

        _cleanup_free_ char *device = NULL;
        _cleanup_close_ int fd = -1;
        r = loopdev_attach(image, /* read_only= */ true, /* direct_io= */ true, &device, &fd);
        if (r < 0)
                return r;
        _cleanup_free_ char *backing = NULL;
        r = loopdev_backing_file(device, &backing);
        if (r < 0)
                goto undo;

        const char *type = fstype;
        unsigned long flags = MS_RDONLY | MS_NODEV | MS_NOSUID;
        if (mount(device, mountpoint, type, flags, options) < 0) {
                r = negative_errno();
                /* ext2/ext3 may be served only by the ext4 driver. */
                if (r != -ENODEV || (strcmp(type, "ext2") != 0 && strcmp(type, "ext3") != 0))
                        goto undo;
                type = "ext4";
                if (mount(device, mountpoint, type, flags, options) < 0) {
                        r = negative_errno();
                        goto undo;
                }
        }

        /* The mount holds the device now; closing FD leaves autoclear to the unmount. */
        if (ret_device)
                *ret_device = TAKE_PTR(device);
        if (ret_fstype)
                *ret_fstype = TAKE_PTR(fstype);
        return 0;

undo:
        close(TAKE_FD(fd)); /* autoclear detaches the device: we were its only user */
        if (backing)
                (void) expose_ensure_detached(device, backing);
        return r;
}

int expose_unmount(const char *mountpoint, char **ret_device) {
        if (!mountpoint)
                return -EINVAL;

        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
        int r = mounts_find(mountpoint, &e);
        if (r < 0)
                return r;

        _cleanup_free_ char *backing = NULL, *device = NULL;
        r = mounts_resolve_loop_backing(e->mountpoint, &backing, &device, NULL);
        if (r < 0)
                return r;

        if (umount2(e->mountpoint, UMOUNT_NOFOLLOW) < 0)
                return negative_errno();

        r = expose_ensure_detached(device, backing);
        if (r < 0)
                return r;

        if (ret_device)
                *ret_device = TAKE_PTR(device);
        return 0;
}
