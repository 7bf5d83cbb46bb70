/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the files of backup/ share: the .list model and its text form (list.c), the BCD's XML form
 * (bcd.c), the manifest, opened backups and their chains (backup.c), and the tar reader (tar.c). The
 * formats are described at the top of backup.c. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/backup.h"

#define BKP_SHA256_LEN 32
#define BKP_HEX_LEN (2 * BKP_SHA256_LEN)
#define BKP_PATH_MAX 4095 /* bytes of a path in a tree or of a link target, without the NUL */
#define BKP_NAME_MAX 255 /* bytes of one path component */
#define BKP_LIST_HEADER "lvss-list 2\n"
/* The first line of lists of an earlier format (without CTIME), which are refused. */
#define BKP_LIST_HEADER_V1 "lvss-list 1\n"
#define BKP_MARKER ".lvss-restore-incomplete"
#define BKP_XML_MAX (16u << 20) /* backup.xml and each writer's document */
#define BKP_MANIFEST_MAX (4u << 20)
#define BKP_MAX_TARGETS 256
#define BKP_MAX_COMPONENTS 4096
#define BKP_MAX_WRITER_DOCUMENTS 1024
#define BKP_TEXT_MAX 1024 /* writer and component names, logical paths */
#define BKP_METADATA_MAX (1u << 20) /* a component's backup metadata */
#define BKP_TARGET_NAME_MAX 128
#define BKP_CHAIN_MAX 4096

/* ---- growable byte buffer ---- */

struct bkp_buf {
        char *data; /* NUL-terminated when not NULL */
        size_t len, cap;
};

int bkp_buf_append(struct bkp_buf *b, const void *p, size_t n);
int bkp_buf_printf(struct bkp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bkp_buf_release(struct bkp_buf *b);

/* ---- errors ---- */

/* Fills ERR (when not NULL) and returns R. */
int bkp_errorf(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* S escaped as in the list, cut to fit BUF (with "..."), for messages. */
#define BKP_PRETTY_MAX 200
const char *bkp_pretty(const char *s, char buf[BKP_PRETTY_MAX]);

/* ---- escaping (list fields, paths in the BCD) ---- */

bool bkp_byte_needs_escape(unsigned char c);
/* Appends S escaped: bytes <= 0x20, '\\' and >= 0x7f as \ooo, and a whole field "-" as \055. */
int bkp_escape(struct bkp_buf *b, const char *s);
/* The reverse, refusing anything bkp_escape would not write (-EBADMSG), and NUL bytes. */
int bkp_unescape(const char *f, size_t n, char **ret);

bool bkp_path_valid(const char *p); /* a relative path of a tree: "." or a/b/c without "", ".", ".." */
bool bkp_target_name_valid(const char *s);
bool bkp_uuid_valid(const char *s); /* lower-case 8-4-4-4-12 */
int bkp_path_compare(const char *a, const char *b); /* "." first, then bytewise */

void bkp_hex(const uint8_t sha[BKP_SHA256_LEN], char out[BKP_HEX_LEN + 1]);
int bkp_unhex(const char *s, size_t n, uint8_t sha[BKP_SHA256_LEN]); /* lower-case only */

/* ---- the list ---- */

enum {
        BKP_ENTRY_FILE = 'f',
        BKP_ENTRY_DIR = 'd',
        BKP_ENTRY_SYMLINK = 'l',
        BKP_ENTRY_HARDLINK = 'h',
        BKP_ENTRY_CHAR = 'c',
        BKP_ENTRY_BLOCK = 'b',
        BKP_ENTRY_FIFO = 'p',
};

struct bkp_entry {
        char *path; /* relative to the tree's root, "." for the root */
        char *target; /* symlink's target, hard link's first path; NULL otherwise */
        char type; /* BKP_ENTRY_* */
        bool has_xattrs, has_sha;
        uint32_t mode; /* permission bits, 07777 */
        uint32_t uid, gid;
        uint32_t rdev_major, rdev_minor;
        uint64_t size; /* content size of files and hard links, 0 otherwise */
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        int64_t ctime_sec; /* when scanned; compared by incrementals, never restored */
        uint32_t ctime_nsec;
        uint8_t xattrs[BKP_SHA256_LEN]; /* bkp_xattrs_hash() of its extended attributes */
        uint8_t sha256[BKP_SHA256_LEN]; /* of the content (files, hard links) */
        char id[BKP_ID_LEN + 1]; /* the backup whose tar stores it */
};

struct bkp_list {
        struct bkp_entry *entries; /* sorted by bkp_path_compare */
        size_t n, cap;
};

void bkp_entry_release(struct bkp_entry *e);
void bkp_list_release(struct bkp_list *l);
/* Moves *E into L (E is zeroed). */
int bkp_list_push(struct bkp_list *l, struct bkp_entry *e);
/* Whether A and B describe the same entry apart from ctime, sha256 and id (an incremental also compares
 * the ctime: bkp_entry_unchanged). */
bool bkp_entry_same_metadata(const struct bkp_entry *a, const struct bkp_entry *b);
/* Whether A and B are the same entry with the same content (ctime aside: it is not stored content). */
/* Whether A (as scanned) is unchanged from B (the base's line): same metadata and ctime. */
bool bkp_entry_unchanged(const struct bkp_entry *a, const struct bkp_entry *b);
bool bkp_entry_equal(const struct bkp_entry *a, const struct bkp_entry *b);
const struct bkp_entry *bkp_list_find(const struct bkp_list *l, const char *path);

int bkp_list_format_entry(struct bkp_buf *b, const struct bkp_entry *e);
int bkp_list_format(const struct bkp_list *l, struct bkp_buf *b);
/* Parses a whole list; on -EBADMSG, *RET_LINE is the first bad line (1-based). */
int bkp_list_parse(const char *data, size_t len, struct bkp_list *ret, size_t *ret_line);

/* ---- extended attributes ---- */

struct bkp_xattr {
        char *name;
        void *value;
        size_t size;
};

struct bkp_xattrs {
        struct bkp_xattr *items;
        size_t n, cap;
};

int bkp_xattrs_add(struct bkp_xattrs *x, const char *name, const void *value, size_t size);
/* Sorts by name; equal duplicates are merged, differing ones refused (-EBADMSG). */
int bkp_xattrs_normalize(struct bkp_xattrs *x);
/* SHA-256 of the sorted list (name, NUL, 64-bit big-endian size, value, for each). */
int bkp_xattrs_hash(const struct bkp_xattrs *x, uint8_t ret[BKP_SHA256_LEN]);
void bkp_xattrs_release(struct bkp_xattrs *x);
/* Reads the extended attributes of NAME in the directory DIRFD (of DIRFD itself if NAME is NULL),
 * without following symlinks. */
int bkp_xattrs_read(int dirfd, const char *name, struct bkp_xattrs *ret);

/* ---- SHA-256 ---- */

typedef struct evp_md_ctx_st bkp_sha;
bkp_sha *bkp_sha_new(void);
void bkp_sha_free(bkp_sha *s);
int bkp_sha_update(bkp_sha *s, const void *p, size_t n);
int bkp_sha_zeros(bkp_sha *s, uint64_t n); /* N zero bytes */
int bkp_sha_final(bkp_sha *s, uint8_t ret[BKP_SHA256_LEN]); /* and starts over */
int bkp_sha256(const void *p, size_t n, uint8_t ret[BKP_SHA256_LEN]);
static inline void bkp_sha_freep(bkp_sha **s) {
        bkp_sha_free(*s);
}

/* ---- the BCD (bcd.c) ---- */

const char *bkp_type_to_string(bkp_type t);
bool bkp_text_valid(const char *s, size_t max, bool multiline);
/* Checks every rule of the document (top of backup.c): -EINVAL with no message. */
int bkp_document_validate(const struct bkp_document *d);
int bkp_document_to_xml(const struct bkp_document *d, char **ret, size_t *ret_len);
/* The document; its writer_documents are n_writer_documents NULL pointers, for the caller to fill. */
int bkp_document_from_xml(const char *xml, size_t len, struct bkp_document **ret);

/* ---- the manifest ---- */

struct bkp_manifest_item {
        char *name;
        uint64_t size;
        uint8_t sha256[BKP_SHA256_LEN];
};

struct bkp_manifest {
        struct bkp_manifest_item *items; /* sorted by name */
        size_t n, cap;
};

bool bkp_manifest_name_valid(const char *name);
int bkp_manifest_add(struct bkp_manifest *m, const char *name, uint64_t size,
                     const uint8_t sha[BKP_SHA256_LEN]);
void bkp_manifest_sort(struct bkp_manifest *m);
int bkp_manifest_format(const struct bkp_manifest *m, struct bkp_buf *b);
int bkp_manifest_parse(const char *data, size_t len, struct bkp_manifest *ret, size_t *ret_line);
const struct bkp_manifest_item *bkp_manifest_find(const struct bkp_manifest *m, const char *name);
void bkp_manifest_release(struct bkp_manifest *m);

/* ---- opened backups and chains ---- */

struct bkp_backup {
        char *path;
        int dirfd;
        struct bkp_document *doc; /* writer_documents filled */
        struct bkp_manifest manifest;
};

/* Opens the backup at PATH: its manifest (its own checksum), backup.xml and the writers' documents
 * checked against it, and the manifest naming exactly the files the document implies. -ENOENT if
 * PATH does not exist; -EBADMSG if anything does not match. */
int bkp_backup_open(const char *path, struct bkp_backup **ret, char *err);
void bkp_backup_free(struct bkp_backup *b);
static inline void bkp_backup_freep(struct bkp_backup **b) {
        bkp_backup_free(*b);
}
/* Opens NAME of B (a manifest name, "writers/N.xml" included) without following symlinks. */
int bkp_backup_openat(struct bkp_backup *b, const char *name, char *err);
/* Reads NAME of B whole, checked against the manifest. */
int bkp_backup_read_file(struct bkp_backup *b, const char *name, char **ret, size_t *ret_len, char *err);
/* Reads and parses the list of TARGET in B. */
int bkp_backup_load_list(struct bkp_backup *b, const char *target, struct bkp_list *ret, char *err);
bool bkp_document_has_target(const struct bkp_document *d, const char *name);

/* Whether BASE may be the base of D (types; same target names): -EINVAL with a sentence. */
int bkp_check_base(const struct bkp_document *d, const struct bkp_document *base, const char *base_path,
                   char *err);

struct bkp_chain {
        struct bkp_backup **items; /* [0]: the backup named, then its base, ..., a full one last */
        size_t n;
};

/* Opens DIR and its bases (bkp_backup_open each; the recorded path first, then beside DIR). */
int bkp_chain_open(const char *dir, struct bkp_chain *ret, char *err);
void bkp_chain_release(struct bkp_chain *c);
struct bkp_backup *bkp_chain_find(const struct bkp_chain *c, const char *id);

/* ---- progress ---- */

struct bkp_ticker {
        bkp_progress_fn fn;
        void *userdata;
        struct bkp_progress p;
        uint64_t last_usec;
};

/* Calls the callback if ~100 ms passed since the last call (always if FORCE); its refusal is returned
 * with a sentence. */
int bkp_tick(struct bkp_ticker *t, bool force, char *err);

/* ---- scanning a tree (scan.c) ---- */

struct bkp_item {
        struct bkp_entry e; /* the line being built */
        uint64_t dev, ino;
        uint32_t nlink;
        bool descend; /* a directory of this file system, to scan */
        bool stored; /* the entry goes into this backup's tar */
        size_t first; /* hard links: the index of the inode's first path */
};

struct bkp_tree {
        const struct bkp_target *t;
        int rootfd;
        struct bkp_item *items; /* sorted as the list */
        size_t n, cap;
        struct bkp_list base; /* the base's list (none for a full backup) */
        uint64_t excluded; /* entries left out (struct bkp_exclude) */
};

/* Scans T's tree, compares it with T->base, and marks what is to be stored (its lines get id ID);
 * counts entries, entries_stored and entries_deleted into STATS, and the totals into P. */
int bkp_tree_scan(struct bkp_tree *t, const char *id, struct bkp_stats *stats, struct bkp_progress *p,
                  char *err);
void bkp_tree_release(struct bkp_tree *t);

/* ---- reading tars (tar.c) ---- */

struct bkp_tar;

/* One entry as read: path and target normalized as in the list. */
struct bkp_tar_entry {
        char *path;
        char *target;
        char type;
        uint32_t mode, uid, gid, rdev_major, rdev_minor;
        uint64_t size;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        struct bkp_xattrs xattrs; /* normalized */
        bool has_xattrs;
        uint8_t xattrs_hash[BKP_SHA256_LEN];
};

/* Opens NAME of B (checked against the manifest as it is read, by bkp_tar_finish). */
int bkp_tar_open(struct bkp_backup *b, const char *name, struct bkp_tar **ret, char *err);
/* The next entry: 1, or 0 at the end. The entry is valid until the next call. */
int bkp_tar_next(struct bkp_tar *t, const struct bkp_tar_entry **ret, char *err);
/* Reads the current entry's content (a file), passing each piece of data to FN (may be NULL) at its
 * offset (holes are not passed), and its SHA-256 (holes as zeros) to RET. */
typedef int (*bkp_tar_data_fn)(const void *p, size_t n, uint64_t offset, void *userdata);
int bkp_tar_read_data(struct bkp_tar *t, bkp_tar_data_fn fn, void *userdata, uint8_t ret[BKP_SHA256_LEN],
                      char *err);
/* Reads the rest of the file and checks it against the manifest. */
int bkp_tar_finish(struct bkp_tar *t, char *err);
void bkp_tar_free(struct bkp_tar *t);
static inline void bkp_tar_freep(struct bkp_tar **t) {
        bkp_tar_free(*t);
}
/* Checks a stored entry against its line: -EBADMSG with a sentence naming TAR and the entry. */
int bkp_tar_entry_check(const struct bkp_tar_entry *te, const struct bkp_entry *e, const char *dir,
                        const char *tar, char *err);

/* ---- image backups (image.c; the map in imagemap.c) ---- */

#define BKP_IMAGE_SIZE_MAX (UINT64_C(1) << 50)

bool bkp_image_geometry_valid(uint64_t size, uint32_t chunk_size);

/* A T.map: the chunks a backup's T.img stores, ascending, with their checksums. */
struct bkp_image_map {
        uint64_t size;
        uint32_t chunk_size;
        uint64_t *index;
        uint8_t (*sha)[BKP_SHA256_LEN];
        size_t n, cap;
};

void bkp_image_map_release(struct bkp_image_map *m);
int bkp_image_map_push(struct bkp_image_map *m, uint64_t index, const uint8_t sha[BKP_SHA256_LEN]);
int bkp_image_map_format(const struct bkp_image_map *m, struct bkp_buf *b);
/* Parses a whole map; on -EBADMSG, *RET_LINE is the first bad line (1-based). */
int bkp_image_map_parse(const char *data, size_t len, struct bkp_image_map *ret, size_t *ret_line);
/* Reads and parses T's map in B, checked against the manifest and T's size and chunk size. */
int bkp_image_load_map(struct bkp_backup *b, const struct bkp_target *t, struct bkp_image_map *ret, char *err);
/* Writes T.img and T.map of each of O's targets into DIRFD, adding them to MANIFEST; BASE is NULL for a
 * full or copy backup (O's targets then need no CHANGED bitmap). */
int bkp_image_write(int dirfd, const struct bkp_write_opts *o, const struct bkp_backup *base,
                    struct bkp_manifest *manifest, struct bkp_stats *stats, struct bkp_ticker *tick, char *err);
/* Checks every stored chunk of every backup of C against its map. */
int bkp_image_verify(const struct bkp_chain *c, struct bkp_ticker *tick, char *err);
