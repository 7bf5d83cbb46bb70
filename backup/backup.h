/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * File-level backups of directory trees (issue 5): what `lvss backup` writes from the mounted
 * shadows of a set, and what `lvss backup verify` and `lvss restore` read. No D-Bus and no lvssd
 * here: the caller gives trees to read and directories to write; this module only reads and
 * writes files, so it is tested on plain directories.
 *
 * A backup is one directory, DIR, holding (every name fixed):
 *
 *   DIR/backup.xml        the Backup Components Document (BCD): what the caller gives as
 *                         struct bkp_document (backup id, type, time, set id, base, targets,
 *                         components with their writers and backup metadata), in XML made with
 *                         libxml2 (namespace urn:lvss:bcd:1); parsed back by bkp_read_document()
 *   DIR/writers/N.xml     each writer's metadata document as given (N = 0, 1, ...)
 *   DIR/T.tar             one pax tar per target T (T: the target's name, [A-Za-z0-9._-]+),
 *                         written with libarchive, readable by GNU tar and bsdtar: the entries of
 *                         the tree stored by THIS backup (all of them in a full or copy backup;
 *                         only new and changed ones in an incremental or differential one), with
 *                         names relative to the tree's root, modes, owners (numeric and names),
 *                         mtimes (ns), symlinks, hard links (as tar hard links, within one tar),
 *                         sparse files (pax sparse), extended attributes (pax SCHILY.xattr)
 *   DIR/T.list            the whole tree of target T at the backup's moment, one line per entry,
 *                         sorted by path (the root "." first, then bytewise): everything a restore
 *                         needs to know which entries exist (deletions since the base are the
 *                         base's lines missing here), and, for each, the id of the backup of the
 *                         chain whose tar holds its content; format in backup.c's top comment
 *   DIR/manifest          one line per file above: "sha256 size name", then a last line
 *                         "manifest-sha256 HEX" over the bytes before it; written last, so a
 *                         backup without a valid manifest is incomplete
 *
 * What a tree is: its root and everything below it on the same file system. Mount points of
 * other file systems are recorded as empty directories; sockets, and non-directories mounted over
 * others, are left out; hard links of files are kept (those of other types, e.g. two names of one
 * fifo, come back as separate entries).
 *
 * Chains: an incremental or differential backup names its base (a backup directory, by path,
 * made absolute, and by id) in its BCD; its lists refer to entries stored in earlier backups of
 * the chain by those backups' ids. Restoring or verifying follows the chain from the newest backup
 * to a full one; the base directories are looked for at the recorded path, then beside DIR (same
 * parent directory, any name; also beside the backup that names the base) by id.
 *
 * Image backups (struct bkp_write_opts's image): each target is a block image (a shadow's file, read
 * as bytes) instead of a tree, and the backup holds, instead of T.tar and T.list:
 *
 *   DIR/T.img             a sparse file of the image's size holding the chunks this backup stores at
 *                         their offsets, holes elsewhere: a full image backup's T.img is the whole
 *                         image (a file system in it mounts read-only through a loop device)
 *   DIR/T.map             which chunks T.img stores, each with its SHA-256 (format in image.c)
 *
 * A full image backup stores every chunk that holds a non-zero byte; an incremental or differential
 * one, the chunks the caller says may have changed since the base (changed-block tracking: read
 * nothing else), zero or not. The BCD records each image's size, chunk size and the id of the shadow
 * it was read from, which the next backup of the chain compares with.
 *
 * Every int function returns a negative errno on failure and >= 0 on success, and on failure
 * fills ERR (a sentence naming the problem and what to do) when ERR is not NULL; ret_* parameters
 * are untouched on failure. Nothing here is thread-safe; distinct calls may run on distinct
 * threads.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BKP_ID_LEN 36 /* 8-4-4-4-12, as set and shadow ids */
#define BKP_ERR_MAX 512

typedef enum bkp_type {
        BKP_FULL,
        BKP_INCREMENTAL, /* changes since the base, which is full, incremental or log */
        BKP_DIFFERENTIAL, /* changes since the base, which is full */
        BKP_COPY, /* as full, but not part of any chain or history */
        BKP_LOG, /* as incremental (a writer's log only; for file trees the same as incremental) */
        _BKP_TYPE_MAX
} bkp_type;

const char *bkp_type_to_string(bkp_type t); /* "full", ... */
int bkp_type_from_string(const char *s); /* -EINVAL if unknown */

/* Files left out of a tree (a writer's exclude file set): the non-directories whose name matches
 * FILESPEC (fnmatch(3) without flags) in the directory DIR (relative to the tree's root, "." for the
 * root), and with RECURSIVE in every directory below it too. Directories are kept (emptied of what is
 * left out). */
struct bkp_exclude {
        const char *dir;
        const char *filespec;
        bool recursive;
};

/* One target: a tree to back up (at backup) or to restore into (at restore). */
struct bkp_target {
        const char *name; /* e.g. the volume's name */
        const char *root; /* the directory: a shadow's mount point at backup */
        const char *origin; /* where the tree lives normally (e.g. the volume's mount point), recorded */
        const struct bkp_exclude *excludes; /* at write of a file backup: left out; not recorded */
        size_t n_excludes;
        /* Image backups only (ROOT is then the image to read: a regular file or a block device). */
        uint64_t size; /* the image's bytes, recorded */
        uint32_t chunk_size; /* a power of two in [4 KiB, 1 MiB], recorded */
        const char *shadow_id; /* the shadow ROOT belongs to (a UUID), recorded; NULL if none */
        const uint8_t *changed; /* at write of a chained backup: bit N%8 of byte N/8 is set for each
                                   chunk N that may differ from the base's image; NULL at read */
};

/* A component of the backup, as the BCD records it. */
struct bkp_component {
        const char *writer; /* writer name */
        const char *writer_class_id;
        const char *logical_path; /* "Databases" */
        const char *name; /* "main" */
        const char *backup_metadata; /* the writer's private data, NULL if none */
        bool succeeded; /* SetBackupSucceeded */
};

/* The Backup Components Document. At write, given by the caller (the id, time and base fields are
 * filled by bkp_write); at read, owned by the document (bkp_document_free). */
struct bkp_document {
        char id[BKP_ID_LEN + 1];
        bkp_type type;
        uint64_t created_usec; /* CLOCK_REALTIME of the set (the point in time) */
        char set_id[BKP_ID_LEN + 1]; /* the shadow copy set read from ("" if none) */
        char base_id[BKP_ID_LEN + 1]; /* "" for full and copy */
        char *base_path; /* the base directory as given at backup, made absolute (NULL if none) */
        bool image; /* the targets are block images (see the top comment) */
        struct bkp_target *targets; /* name and origin only; root NULL */
        size_t n_targets;
        struct bkp_component *components;
        size_t n_components;
        char **writer_documents; /* writers' metadata documents, XML */
        size_t n_writer_documents;
};

void bkp_document_free(struct bkp_document *d);
static inline void bkp_document_freep(struct bkp_document **d) {
        bkp_document_free(*d);
}

/* Progress: called once when the totals are known (nothing done yet), then every ~100 ms, and once
 * at the end, with what has been done so far and the total expected (0 if unknown). Returning a
 * negative errno stops the operation with it (e.g. -EINTR on Ctrl-C): bkp_write removes what it
 * wrote; bkp_restore stops where it is and leaves the root marked incomplete (see there). */
struct bkp_progress {
        uint64_t bytes_done, bytes_total;
        uint64_t files_done, files_total;
};
typedef int (*bkp_progress_fn)(const struct bkp_progress *p, void *userdata);

struct bkp_write_opts {
        const char *dir; /* must not exist, or be an empty directory; created 0700 */
        bkp_type type;
        bool image; /* back up the targets' roots as block images (log backups are refused) */
        const char *base_dir; /* required for incremental, differential, log; NULL otherwise */
        const struct bkp_target *targets; /* names unique; each root read as it is */
        size_t n_targets;
        const char *set_id; /* recorded; may be NULL */
        uint64_t created_usec; /* recorded; 0: now */
        const struct bkp_component *components; /* recorded */
        size_t n_components;
        const char *const *writer_documents; /* recorded, NULL-terminated (may be NULL) */
        bkp_progress_fn progress;
        void *userdata;
};

struct bkp_stats {
        uint64_t entries; /* entries in the trees (image backups: chunks in the images) */
        uint64_t entries_stored; /* entries whose content this backup stores */
        uint64_t entries_deleted; /* entries of the base gone since */
        uint64_t entries_excluded; /* entries left out by the targets' exclude file sets */
        uint64_t bytes_read; /* file content read from the trees */
        uint64_t bytes_written; /* total size of DIR's files */
};

/* Writes a backup of the targets' trees into O->dir (see the top comment). An incremental or
 * differential backup compares each entry with the base's list by type, mode, owner, size, mtime, ctime,
 * device number, extended attributes and link target, and stores only what differs, whole (a file
 * whose metadata did not change is not read; one whose mode alone changed is stored again). The
 * base must hold the same target names; a differential needs a full base, an incremental (or log)
 * a full, incremental or log one: -EINVAL with a sentence otherwise. A tree changing while it is
 * read fails the backup (-EBUSY): back up shadow copies. On any failure (or a progress callback's
 * refusal) O->dir is removed if this call created it, emptied otherwise (-EEXIST, and nothing
 * touched, if it was not empty). RET_DOC (may be NULL) gets the document written (with
 * writer_documents; targets without root). */
int bkp_write(const struct bkp_write_opts *o, struct bkp_stats *ret_stats, struct bkp_document **ret_doc,
              char err[BKP_ERR_MAX]);

/* Reads DIR/backup.xml (checked against the manifest first: -EBADMSG if it does not match, or if
 * DIR has no manifest, i.e. is incomplete; -ENOENT if DIR does not exist), with the writers'
 * documents. */
int bkp_read_document(const char *dir, struct bkp_document **ret, char err[BKP_ERR_MAX]);

/* Checks every file of DIR and of its chain of bases against their manifests, and every stored
 * entry of every tar against its list (content checksum, size, type, and the rest of its line),
 * and that each line naming a base is that base's line: -EBADMSG naming the first damaged or
 * missing piece (file and entry), -ENOENT if a base cannot be found. PROGRESS may be NULL. */
int bkp_verify(const char *dir, bkp_progress_fn progress, void *userdata, char err[BKP_ERR_MAX]);

struct bkp_restore_opts {
        const char *dir; /* the backup to restore (the newest of its chain) */
        const char *target; /* the target name to restore */
        const char *root; /* where to: a directory, created if missing */
        bkp_progress_fn progress;
        void *userdata;
};

/* Makes O->root hold exactly the tree of O->target at O's backup's moment: entries taken from the
 * tars of the chain, entries in O->root that the tree did not have removed (deletions), modes,
 * owners, times (mtime; atime is left), xattrs, links and holes as backed up. Verifies what it
 * reads (checksums) as it goes. While it runs, O->root/.lvss-restore-incomplete exists (removed
 * last; only the root's mtime is set after it): an interrupted or failed restore is marked, and
 * restoring again completes it. Symlinks found in O->root are never followed (they are replaced);
 * a file system mounted inside O->root where the tree has a directory is left alone, anywhere else
 * -EXDEV. Meant to run as root: without, owners and trusted.* attributes are left as they come. */
int bkp_restore(const struct bkp_restore_opts *o, char err[BKP_ERR_MAX]);

/* Writes the image of O->target at O's image backup's moment into the file O->root: an existing block
 * device or regular file of the image's size (refused otherwise: -EINVAL), or a new regular file. Each
 * chunk is taken from the newest backup of the chain that stores it (zeros if none does) and checked
 * against its checksum as it is read. The first chunk is zeroed first and written last: a restore that
 * did not finish leaves no recognisable file system there. Chunks of O->root that already hold the
 * right bytes are not written again. Nothing here checks whether O->root is in use (mounted): the
 * caller does. */
int bkp_restore_image(const struct bkp_restore_opts *o, char err[BKP_ERR_MAX]);
