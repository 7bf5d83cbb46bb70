/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The mechanics of `lvss expose` and `lvss unexpose`: mount a shadow copy (an image file, such as
 * a snapshot's FUSE file) read-only through a loop device, and undo it. Every function returns a
 * negative errno on failure and >= 0 on success; ret_* parameters are untouched on failure.
 */

#include "host/loopdev.h"
#include "host/mounts.h"

/* The filesystem type libblkid finds on PATH ("ext4", "xfs"); -EMEDIUMTYPE if it finds none, more
 * than one, or something that is not a filesystem (swap, LUKS, a partition table). */
int expose_detect_fstype(const char *path, char **ret);

/* Mounts the filesystem on IMAGE read-only (MS_RDONLY|MS_NODEV|MS_NOSUID) at MOUNTPOINT through
 * a read-only, direct-I/O, autoclear loop device, with what a copy of a mounted filesystem needs:
 * xfs "nouuid,norecovery", ext3/ext4 "noload" (no journal replay), others (ext2 too) plain ro.
 * MOUNTPOINT must be an existing (-ENOTDIR), empty (-ENOTEMPTY) directory that is not a mount point
 * (-EBUSY). -EMEDIUMTYPE if IMAGE holds no filesystem; -EXDEV for btrfs, which this refuses: btrfs
 * cannot have two devices with the same fsid mounted at once, and the original is. On failure,
 * nothing is left behind (no loop device, no mount). Returns the loop node and the filesystem
 * type; either may be NULL. */
int expose_mount(const char *image, const char *mountpoint, char **ret_device, char **ret_fstype);

/* Unmounts what expose_mount() mounted at MOUNTPOINT and makes sure its loop device is detached
 * (autoclear normally does it; if it is still bound to the same file, LOOP_CLR_FD). -ENOENT if
 * MOUNTPOINT is not a mount point, -ENOTBLK if it is not mounted from a loop device, -EBUSY if
 * the filesystem is in use (nothing changed). If it is still mounted elsewhere too (a bind mount,
 * another namespace), the device detaches when that goes. Returns the loop node that was used
 * (RET_DEVICE may be NULL). */
int expose_unmount(const char *mountpoint, char **ret_device);

/* After an unmount: makes sure DEVICE no longer carries BACKING (autoclear normally did it; waits
 * a little, then LOOP_CLR_FD), leaving alone a device meanwhile reused for another file. */
int expose_ensure_detached(const char *device, const char *backing);
