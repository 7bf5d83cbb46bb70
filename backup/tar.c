/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Reading the tar of a target, for verify and restore: libarchive with only the tar formats enabled,
 * reading through our callback so that the whole file's SHA-256 is computed on the way (and checked
 * against the manifest at the end, after the rest of the file was read too); entries are turned into
 * the list's terms (normalized path and type, extended attributes sorted, merged and hashed), and a
 * file's content is handed out piece by piece at its offsets with its SHA-256 (holes as zeros).
 * Everything read is untrusted: names are checked as list paths, offsets against the size.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

#define READ_BUF_SIZE (1u << 20)

struct bkp_tar {
        struct bkp_backup *b;
        const struct bkp_manifest_item *item;
        int fd;
        struct archive *a;
        bkp_sha *sha; /* of the file */
        uint64_t bytes;
        char *buf;
        struct bkp_tar_entry cur;
        bool has_cur, data_read, at_end;
        char prev[BKP_PRETTY_MAX]; /* the last entry's path, for messages */
};

static void entry_release(struct bkp_tar_entry *e) {
        free(e->path);
        free(e->target);
        bkp_xattrs_release(&e->xattrs);
        *e = (struct bkp_tar_entry){};
}

void bkp_tar_free(struct bkp_tar *t) {
        if (!t)
                return;
        if (t->a)
                archive_read_free(t->a);
        entry_release(&t->cur);
        bkp_sha_free(t->sha);
        if (t->fd >= 0)
                close(t->fd);
        free(t->buf);
        free(t);
}

static la_ssize_t read_cb(struct archive *a, void *userdata, const void **ret) {
        struct bkp_tar *t = userdata;
        ssize_t n;
        do
                n = read(t->fd, t->buf, READ_BUF_SIZE);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                archive_set_error(a, errno, "read error");
                return -1;
        }
        if (bkp_sha_update(t->sha, t->buf, (size_t) n) < 0) {
                archive_set_error(a, EIO, "checksum error");
                return -1;
        }
        t->bytes += (uint64_t) n;
        *ret = t->buf;
        return n;
}

int bkp_tar_open(struct bkp_backup *b, const char *name, struct bkp_tar **ret, char *err) {
        _cleanup_(bkp_tar_freep) struct bkp_tar *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->fd = -1;
        t->b = b;
        t->item = bkp_manifest_find(&b->manifest, name);
        if (!t->item)
                return bkp_errorf(
                        err, -EBADMSG,
                        "%s is not in the manifest of backup %s: the backup is damaged; use another one",
                        name, b->path);
        t->fd = bkp_backup_openat(b, name, err);
        if (t->fd < 0)
                return t->fd;
        struct stat st;
        if (fstat(t->fd, &st) < 0)
                return bkp_errorf(err, negative_errno(), "cannot read %s of backup %s: %m", name, b->path);
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != t->item->size)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s has %" PRIu64 " bytes where its manifest says %" PRIu64
                                  ": it is damaged; use another backup",
                                  name, b->path, (uint64_t) st.st_size, t->item->size);
        t->sha = bkp_sha_new();
        t->buf = malloc(READ_BUF_SIZE);
        t->a = archive_read_new();
        if (!t->sha || !t->buf || !t->a)
                return -ENOMEM;
        if (archive_read_support_format_tar(t->a) != ARCHIVE_OK ||
            archive_read_open(t->a, t, NULL, read_cb, NULL) != ARCHIVE_OK)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s is not a tar: it is damaged; use another backup", name,
                                  b->path);
        strcpy(t->prev, "(its start)");
        *ret = TAKE_PTR(t);
        return 0;
}

/* A name from the tar as a list path: "./" is ".", directories lose their '/'. */
static int normalize(const char *name, bool dir, char **ret) {
        if (!name)
                return -EBADMSG;
        size_t n = strlen(name);
        if (n > 1 && name[n - 1] == '/' && dir)
                n--;
        char *s = strndup(name, n);
        if (!s)
                return -ENOMEM;
        if (!bkp_path_valid(s)) {
                free(s);
                return -EBADMSG;
        }
        *ret = s;
        return 0;
}

static int convert(struct archive_entry *ae, struct bkp_tar_entry *e) {
        int r;
        const char *hl = archive_entry_hardlink(ae);
        mode_t ft = archive_entry_filetype(ae);
        r = normalize(archive_entry_pathname(ae), ft == AE_IFDIR && !hl, &e->path);
        if (r < 0)
                return r;
        if (hl) {
                e->type = BKP_ENTRY_HARDLINK;
                r = normalize(hl, false, &e->target);
                if (r < 0)
                        return r;
        } else
                switch (ft) {
                case AE_IFREG:
                        e->type = BKP_ENTRY_FILE;
                        break;
                case AE_IFDIR:
                        e->type = BKP_ENTRY_DIR;
                        break;
                case AE_IFLNK: {
                        e->type = BKP_ENTRY_SYMLINK;
                        const char *s = archive_entry_symlink(ae);
                        if (!s || !*s || strlen(s) > BKP_PATH_MAX)
                                return -EBADMSG;
                        e->target = strdup(s);
                        if (!e->target)
                                return -ENOMEM;
                        break;
                }
                case AE_IFCHR:
                        e->type = BKP_ENTRY_CHAR;
                        break;
                case AE_IFBLK:
                        e->type = BKP_ENTRY_BLOCK;
                        break;
                case AE_IFIFO:
                        e->type = BKP_ENTRY_FIFO;
                        break;
                default:
                        return -EBADMSG;
                }
        la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae), size = archive_entry_size(ae);
        if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX || size < 0)
                return -EBADMSG;
        e->mode = archive_entry_perm(ae) & 07777;
        e->uid = (uint32_t) uid;
        e->gid = (uint32_t) gid;
        e->size = e->type == BKP_ENTRY_FILE ? (uint64_t) size : 0;
        e->mtime_sec = archive_entry_mtime(ae);
        long ns = archive_entry_mtime_nsec(ae);
        if (ns < 0 || ns > 999999999)
                return -EBADMSG;
        e->mtime_nsec = (uint32_t) ns;
        e->rdev_major = (uint32_t) archive_entry_rdevmajor(ae);
        e->rdev_minor = (uint32_t) archive_entry_rdevminor(ae);

        archive_entry_xattr_reset(ae);
        const char *name;
        const void *value;
        size_t vsize;
        while (archive_entry_xattr_next(ae, &name, &value, &vsize) == ARCHIVE_OK) {
                if (!name || !*name)
                        return -EBADMSG;
                r = bkp_xattrs_add(&e->xattrs, name, value, vsize);
                if (r < 0)
                        return r;
        }
        r = bkp_xattrs_normalize(&e->xattrs);
        if (r < 0)
                return r;
        e->has_xattrs = e->xattrs.n > 0;
        if (e->has_xattrs)
                return bkp_xattrs_hash(&e->xattrs, e->xattrs_hash);
        return 0;
}

int bkp_tar_next(struct bkp_tar *t, const struct bkp_tar_entry **ret, char *err) {
        if (t->at_end)
                return 0;
        if (t->has_cur) {
                bkp_pretty(t->cur.path, t->prev);
                entry_release(&t->cur);
                t->has_cur = false;
        }
        struct archive_entry *ae;
        int r = archive_read_next_header(t->a, &ae);
        if (r == ARCHIVE_EOF) {
                t->at_end = true;
                return 0;
        }
        if (r < ARCHIVE_WARN)
                return bkp_errorf(
                        err, -EBADMSG, "%s of backup %s is damaged after entry %s (%s); use another backup",
                        t->item->name, t->b->path, t->prev, archive_error_string(t->a) ?: "unreadable");
        r = convert(ae, &t->cur);
        if (r < 0) {
                entry_release(&t->cur);
                if (r == -ENOMEM)
                        return r;
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s holds a malformed entry after %s: it is damaged; use "
                                  "another backup",
                                  t->item->name, t->b->path, t->prev);
        }
        t->has_cur = true;
        t->data_read = false;
        *ret = &t->cur;
        return 1;
}

int bkp_tar_read_data(struct bkp_tar *t, bkp_tar_data_fn fn, void *userdata, uint8_t ret[BKP_SHA256_LEN],
                      char *err) {
        char p[BKP_PRETTY_MAX];
        _cleanup_(bkp_sha_freep) bkp_sha *sha = bkp_sha_new();
        if (!sha)
                return -ENOMEM;
        uint64_t pos = 0, size = t->cur.size;
        int r;
        t->data_read = true;
        for (;;) {
                const void *buf;
                size_t n;
                la_int64_t off;
                r = archive_read_data_block(t->a, &buf, &n, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r != ARCHIVE_OK || off < 0 || (uint64_t) off < pos || n > size ||
                    (uint64_t) off > size - n)
                        return bkp_errorf(
                                err, -EBADMSG,
                                "the content of %s in %s of backup %s is damaged (%s); use another backup",
                                bkp_pretty(t->cur.path, p), t->item->name, t->b->path,
                                r != ARCHIVE_OK ? archive_error_string(t->a) ?: "unreadable" : "bad offset");
                r = bkp_sha_zeros(sha, (uint64_t) off - pos);
                if (r >= 0)
                        r = bkp_sha_update(sha, buf, n);
                if (r < 0)
                        return r;
                if (fn && n > 0) {
                        r = fn(buf, n, (uint64_t) off, userdata);
                        if (r < 0)
                                return r;
                }
                pos = (uint64_t) off + n;
        }
        r = bkp_sha_zeros(sha, size - pos);
        if (r >= 0)
                r = bkp_sha_final(sha, ret);
        return r;
}

int bkp_tar_finish(struct bkp_tar *t, char *err) {
        for (;;) {
                ssize_t n = read(t->fd, t->buf, READ_BUF_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return bkp_errorf(err, negative_errno(), "cannot read %s of backup %s: %m",
                                          t->item->name, t->b->path);
                if (n == 0)
                        break;
                int r = bkp_sha_update(t->sha, t->buf, (size_t) n);
                if (r < 0)
                        return r;
                t->bytes += (uint64_t) n;
        }
        uint8_t sha[BKP_SHA256_LEN];
        int r = bkp_sha_final(t->sha, sha);
        if (r < 0)
                return r;
        if (t->bytes != t->item->size || memcmp(sha, t->item->sha256, BKP_SHA256_LEN) != 0)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s does not match its checksum in the manifest: it is "
                                  "damaged; use another backup",
                                  t->item->name, t->b->path);
        return 0;
}

int bkp_tar_entry_check(const struct bkp_tar_entry *te, const struct bkp_entry *e, const char *dir,
                        const char *tar, char *err) {
        const char *what = NULL;
        if (te->type != e->type)
                what = "type";
        else if (te->type == BKP_ENTRY_FILE && te->size != e->size)
                what = "size";
        else if (te->mode != e->mode || te->uid != e->uid || te->gid != e->gid)
                what = "mode or owner";
        else if (te->mtime_sec != e->mtime_sec || te->mtime_nsec != e->mtime_nsec)
                what = "modification time";
        else if ((te->type == BKP_ENTRY_SYMLINK || te->type == BKP_ENTRY_HARDLINK) &&
                 strcmp(te->target, e->target) != 0)
                what = "link target";
        else if ((te->type == BKP_ENTRY_CHAR || te->type == BKP_ENTRY_BLOCK) &&
                 (te->rdev_major != e->rdev_major || te->rdev_minor != e->rdev_minor))
                what = "device number";
        else if (te->has_xattrs != e->has_xattrs ||
                 (te->has_xattrs && memcmp(te->xattrs_hash, e->xattrs, BKP_SHA256_LEN) != 0))
                what = "extended attributes";
        if (!what)
                return 0;
        char p[BKP_PRETTY_MAX];
        return bkp_errorf(err, -EBADMSG,
                          "entry %s in %s of backup %s does not match its line in the list (%s): the backup "
                          "is damaged; use another one",
                          bkp_pretty(e->path, p), tar, dir, what);
}
