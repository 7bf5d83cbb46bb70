/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Loop devices, through their ioctls and sysfs (no losetup): attach a file, detach a device, and
 * find which file a device carries or which devices carry a file. Every function returns a
 * negative errno on failure and >= 0 on success; ret_* parameters are untouched on failure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Binds PATH to a free loop device (LOOP_CTL_GET_FREE, then LOOP_CONFIGURE, or LOOP_SET_FD plus
 * LOOP_SET_STATUS64 on kernels without it) with LO_FLAGS_AUTOCLEAR, read-only if asked, and with
 * direct I/O if asked and the backing file allows it (otherwise silently without). Retries when
 * another process takes the free device first. Returns the node ("/dev/loop3", RET_DEVICE may be
 * NULL) and an fd open on it (read-only if READ_ONLY) that holds it: the caller closes it, and
 * the device detaches by itself once that fd and every later user (a mount) are gone. */
int loopdev_attach(const char *path, bool read_only, bool direct_io, char **ret_device, int *ret_fd);

/* Clears LO_FLAGS_AUTOCLEAR on the device open as FD (from loopdev_attach): it then stays bound
 * after its last user lets go, until loopdev_detach (what `losetup` does by default). */
int loopdev_keep(int fd);

/* LOOP_CLR_FD on DEVICE ("/dev/loop3"): detaches it now if nobody else has it open, else as soon
 * as its last user (a mount) lets go. -ENXIO if it is not bound. */
int loopdev_detach(const char *device);

/* The backing file of a bound loop device given as a node ("/dev/loop3") or a sysfs name
 * ("loop3"), read from /sys/block/loopN/loop/backing_file and returned exactly as the kernel
 * prints it: an unlinked backing file reads "PATH (deleted)", and nothing is stripped, so a
 * caller can tell. -ENXIO if the device is not a loop device or is not bound, -ENOTBLK if a node
 * is not a block device, -ENOENT if it does not exist. */
int loopdev_backing_file(const char *loopdev_or_sysname, char **ret);

/* The same, for the block device numbered DEVNUM (-ENXIO also if there is no such device). */
int loopdev_backing_file_by_devnum(dev_t devnum, char **ret);

/* The node ("/dev/loop3") of the block device numbered DEVNUM, from sysfs; -ENODEV if none. */
int loopdev_node_by_devnum(dev_t devnum, char **ret);

/* Every loop device whose backing file is BACKING (after realpath() if it resolves, since the
 * kernel reports canonical paths), as "/dev/loopN" nodes in ascending N, in a NULL-terminated
 * vector to free with strv_free() (host/mounts.h). Returns the count; RET_N may be NULL. */
int loopdev_list_for_backing(const char *backing, char ***ret_devices, size_t *ret_n);
