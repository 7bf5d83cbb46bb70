/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The host's mount table as /proc/self/mountinfo describes it, and the link from a mounted
 * filesystem to the loop device under it and that device's backing file (host/loopdev.h).
 *
 * Paths are compared after realpath() on our side and as the kernel prints them on its side (in
 * our mount namespace and relative to our root). Every function returns a negative errno on
 * failure and >= 0 on success; ret_* parameters are untouched on failure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/types.h>

#include "host/loopdev.h"

/* One line of /proc/self/mountinfo, octal escapes (\040 for a space...) undone. */
struct mount_entry {
        int mount_id;
        int parent_id;
        dev_t dev; /* field 3, major:minor: st_dev of files in it (anonymous 0:N for btrfs) */
        char *root; /* the directory of the filesystem mounted here ("/" unless a bind mount) */
        char *mountpoint;
        char *options; /* per-mount options, "rw,relatime" */
        char *fstype;
        char *source; /* "/dev/loop3", or whatever the filesystem says ("tmpfs", "host:/path") */
};

/* Frees E and its strings; accepts NULL. */
void mount_entry_free(struct mount_entry *e);
static inline void mount_entry_freep(struct mount_entry **e) {
        mount_entry_free(*e);
}

/* Frees a NULL-terminated string vector and its strings; accepts NULL. */
static inline void strv_free(char **l) {
        if (!l)
                return;
        for (char **s = l; *s; s++)
                free(*s);
        free(l);
}
static inline void strv_freep(char ***l) {
        strv_free(*l);
}

/* Parses one mountinfo LINE (trailing newline allowed) into *RET; -EINVAL if malformed. */
int mounts_parse_line(const char *line, struct mount_entry **ret);

/* The mount whose mount point is exactly realpath(PATH), the topmost if several are stacked
 * there; -ENOENT if PATH is not a mount point, -errno if PATH cannot be resolved. */
int mounts_find(const char *path, struct mount_entry **ret);

/* The mount whose mount ID (mountinfo's first field, statx's stx_mnt_id) is MOUNT_ID; -ENOENT if
 * none. */
int mounts_find_by_id(int mount_id, struct mount_entry **ret);

/* Opens the directory PATH, which must be absolute and hold no symbolic link in any component
 * (-ELOOP otherwise), as an O_PATH descriptor: what it names cannot change afterwards, so checks
 * made on the descriptor hold for whatever is then done through /proc/self/fd/N. */
int mounts_open_dir_nofollow(const char *path, int *ret_fd);

/* Every line of /proc/self/mountinfo, in table order; free with mounts_free_all(). */
int mounts_read_all(struct mount_entry ***ret, size_t *ret_n);
void mounts_free_all(struct mount_entry **all, size_t n);

/* The mount of ALL that holds the absolute PATH by its text alone: the one with the longest mount
 * point that is PATH or a '/'-bounded prefix of it (the last in table order among equals: the
 * topmost). PATH itself is never looked at (no stat, no symlink followed: a path on a hung network
 * filesystem cannot block). NULL if PATH is not absolute or nothing holds it. */
const struct mount_entry *mounts_holding(struct mount_entry *const *all, size_t n, const char *path);

/* The mount ID of the mount that FD (any descriptor) is on (statx STATX_MNT_ID). */
int mounts_fd_mount_id(int fd, int *ret);

/* Every mount point mounted from block device DEV (by mountinfo's major:minor, or by its source
 * device node for filesystems such as btrfs that report an anonymous device), each once, in
 * mount table order, as a NULL-terminated vector to free with strv_free(). Returns the count;
 * RET_N may be NULL. */
int mounts_list_for_device(dev_t dev, char ***ret_mountpoints, size_t *ret_n);

/* For the filesystem mounted at MOUNTPOINT from a loop device: that device's backing file (as
 * loopdev_backing_file() reports it), its node ("/dev/loop3") and the filesystem type. -ENOENT
 * if MOUNTPOINT is not a mount point, -ENOTBLK if it is not mounted from a bound loop device.
 * Any ret_* may be NULL. */
int mounts_resolve_loop_backing(const char *mountpoint, char **ret_backing, char **ret_device,
                                char **ret_fstype);

/* 1 if A and B are on the same filesystem (same st_dev after stat(), so a btrfs subvolume counts
 * as a filesystem of its own), 0 if not, -errno if either cannot be stat()ed. */
int mounts_same_filesystem(const char *a, const char *b);
