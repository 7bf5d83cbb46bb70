/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * File-level backups (backup.h): the formats, and what every operation shares: errors, SHA-256,
 * extended attributes, the manifest, opening a backup directory, finding its chain of bases, and
 * progress. Writing is in write.c, verifying in verify.c, restoring in restore.c; the list's text
 * form in list.c, the BCD's XML in bcd.c, reading tars in tar.c.
 *
 * THE LIST (T.list). Text, one entry per line, '\n'-terminated, fields separated by one space:
 *
 *   lvss-list 2                                           the first line, exactly
 *   PATH TYPE MODE UID GID SIZE MTIME CTIME RDEV XATTRS SHA256 TARGET ID
 *
 *   PATH    relative to the tree's root, "." for the root itself (always the first entry); no empty,
 *           "." or ".." component, at most 4095 bytes, components at most 255
 *   TYPE    f file, d directory, l symlink, h hard link (a second or later path of a file's inode),
 *           c character device, b block device, p fifo (sockets are not backed up)
 *   MODE    the permission bits (07777) as four octal digits: 0644, 4755
 *   UID GID decimal
 *   SIZE    decimal: the content's size for f and h, 0 for every other type
 *   MTIME   SEC.NNNNNNNNN, as a struct timespec: SEC a signed decimal, NNNNNNNNN nine digits
 *   CTIME   the inode's change time when it was scanned, spelled as MTIME; never restored (the kernel
 *           sets it): only compared by the next incremental or differential
 *   RDEV    MAJOR:MINOR (decimal) for c and b; '-' otherwise
 *   XATTRS  '-' without extended attributes; else the lower-case hex SHA-256 of all of them sorted by
 *           name, each as: name, a NUL byte, the value's size (64-bit big-endian), the value
 *   SHA256  lower-case hex SHA-256 of the content (holes read as zeros) for f and h; '-' otherwise
 *   TARGET  the symlink's target (l), or the path of the inode's first entry (h, an f line before
 *           it); '-' otherwise
 *   ID      the id of the backup of the chain whose T.tar holds the entry (for h: the file's)
 *
 * PATH and TARGET are escaped so that any byte but NUL can appear: bytes 0x00-0x20, '\' and
 * 0x7f-0xff are written \ooo (three octal digits), all others as themselves; a field that would be
 * exactly "-" is written \055 (so '-' alone means "none"). Numbers have no sign (but MTIME's and
 * CTIME's '-'), no leading zeros. Lines are sorted by PATH, the root first, then bytewise (so a
 * directory comes before what it holds), without duplicates. Every entry's parent is a d line; a hard
 * link's f line has the same MODE, UID, GID, SIZE, MTIME, CTIME, XATTRS, SHA256 and ID. The format is
 * canonical: the parser (list.c) refuses any other spelling, so a list parsed and written again gives
 * the same bytes; a malformed list is refused whole (-EBADMSG, with the line number). Lists of version
 * 1 (without CTIME) are refused too: make a new full backup.
 *
 * THE TAR (T.tar). pax (libarchive, hdrcharset=BINARY: names are the tree's bytes, whatever the
 * locale), one entry per line whose ID is this backup's, in the list's order: names as PATH ("./"
 * for the root, "D/" for directories), hard links as tar hard links to the first path (stored in the
 * same tar: when any path of an inode changed, all of them are stored again), sparse files as GNU
 * pax sparse 1.0 (only data is stored), extended attributes as SCHILY.xattr (and LIBARCHIVE.xattr).
 *
 * Incremental and differential backups compare each entry with the base's line of the same path
 * (TYPE, MODE, UID, GID, SIZE, MTIME, CTIME, RDEV, XATTRS, TARGET): equal, the base's line is copied
 * (its SHA256 and ID, and so its CTIME) and the file is not read; otherwise it is stored here. CTIME
 * catches what MTIME misses: a same-size rewrite whose mtime was set back, or two writes within one
 * timestamp tick. Checks of a tar's entry against its line, or of a line against the base's line it
 * names, leave CTIME aside. Deletions are the base's lines missing. A tree is one file system: mount
 * points of others inside it are recorded as directories, without their content; a non-directory mount
 * point is left out.
 *
 * THE BCD (backup.xml), namespace urn:lvss:bcd:1, data in attributes ([optional]):
 *
 *   <backup version="1">
 *     <identity id type created [set-id]/>        exactly one; created: CLOCK_REALTIME in usec
 *     <base id path/>                             iff type is incremental, differential or log
 *     <target name [origin]/>                     per target, names [A-Za-z0-9._-]+, unique
 *     <component writer writer-class-id [logical-path] name succeeded [backup-metadata]/>
 *     <writer-document file/>                     file="writers/N.xml", N = 0, 1, ... in order
 *   </backup>
 *
 * Ids are lower-case UUIDs; paths (base path, origin) are escaped as in the list; names and logical
 * paths are UTF-8 without control characters, backup metadata may hold '\t', '\n' and '\r'.
 *
 * THE MANIFEST (manifest): one line per file, "HEX SIZE NAME", sorted by NAME (backup.xml,
 * writers/N.xml, T.list, T.tar, exactly the files the BCD implies), then "manifest-sha256 HEX" over
 * the bytes before it. It is written last (as manifest.tmp, fsync'd, renamed, directory fsync'd),
 * after every other file was fsync'd: a directory without a valid manifest is an incomplete backup.
 *
 * Chains: a base is looked for at its recorded path (made absolute at backup), then in the parent
 * directories of the backup naming it and of the backup asked for, by id.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

/* ---- errors ---- */

int bkp_errorf(char *err, int r, const char *fmt, ...) {
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, BKP_ERR_MAX, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* ---- SHA-256 ---- */

bkp_sha *bkp_sha_new(void) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(c);
                return NULL;
        }
        return c;
}

void bkp_sha_free(bkp_sha *s) {
        EVP_MD_CTX_free(s);
}

int bkp_sha_update(bkp_sha *s, const void *p, size_t n) {
        return EVP_DigestUpdate(s, p, n) == 1 ? 0 : -EIO;
}

static const uint8_t zeros[64 * 1024];

int bkp_sha_zeros(bkp_sha *s, uint64_t n) {
        while (n > 0) {
                size_t k = (size_t) MIN(n, (uint64_t) sizeof(zeros));
                int r = bkp_sha_update(s, zeros, k);
                if (r < 0)
                        return r;
                n -= k;
        }
        return 0;
}

int bkp_sha_final(bkp_sha *s, uint8_t ret[BKP_SHA256_LEN]) {
        unsigned n = 0;
        if (EVP_DigestFinal_ex(s, ret, &n) != 1 || n != BKP_SHA256_LEN ||
            EVP_DigestInit_ex(s, EVP_sha256(), NULL) != 1)
                return -EIO;
        return 0;
}

int bkp_sha256(const void *p, size_t n, uint8_t ret[BKP_SHA256_LEN]) {
        unsigned len = 0;
        return EVP_Digest(p, n, ret, &len, EVP_sha256(), NULL) == 1 && len == BKP_SHA256_LEN ? 0 : -EIO;
}

/* ---- extended attributes ---- */

int bkp_xattrs_add(struct bkp_xattrs *x, const char *name, const void *value, size_t size) {
        if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 4;
                struct bkp_xattr *n = reallocarray(x->items, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                x->items = n;
                x->cap = cap;
        }
        char *nm = strdup(name);
        void *v = malloc(MAX(size, (size_t) 1));
        if (!nm || !v) {
                free(nm);
                free(v);
                return -ENOMEM;
        }
        if (size > 0)
                memcpy(v, value, size);
        x->items[x->n++] = (struct bkp_xattr){ nm, v, size };
        return 0;
}

static int xattr_cmp(const void *a, const void *b) {
        const struct bkp_xattr *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c != 0)
                return c;
        if (x->size != y->size)
                return x->size < y->size ? -1 : 1;
        return x->size ? memcmp(x->value, y->value, x->size) : 0;
}

int bkp_xattrs_normalize(struct bkp_xattrs *x) {
        if (x->n == 0)
                return 0;
        qsort(x->items, x->n, sizeof(*x->items), xattr_cmp);
        size_t k = 1;
        for (size_t i = 1; i < x->n; i++) {
                struct bkp_xattr *prev = &x->items[k - 1], *cur = &x->items[i];
                if (strcmp(prev->name, cur->name) != 0) {
                        x->items[k++] = *cur;
                        continue;
                }
                bool same = xattr_cmp(prev, cur) == 0;
                free(cur->name);
                free(cur->value);
                if (!same) {
                        for (size_t j = i + 1; j < x->n; j++) {
                                free(x->items[j].name);
                                free(x->items[j].value);
                        }
                        x->n = k;
                        return -EBADMSG;
                }
        }
        x->n = k;
        return 0;
}

int bkp_xattrs_hash(const struct bkp_xattrs *x, uint8_t ret[BKP_SHA256_LEN]) {
        _cleanup_(bkp_sha_freep) bkp_sha *s = bkp_sha_new();
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < x->n; i++) {
                uint8_t len[8];
                for (size_t j = 0; j < 8; j++)
                        len[j] = (uint8_t) ((uint64_t) x->items[i].size >> (56 - 8 * j));
                int r = bkp_sha_update(s, x->items[i].name, strlen(x->items[i].name) + 1);
                if (r >= 0)
                        r = bkp_sha_update(s, len, sizeof(len));
                if (r >= 0)
                        r = bkp_sha_update(s, x->items[i].value, x->items[i].size);
                if (r < 0)
                        return r;
        }
        return bkp_sha_final(s, ret);
}

void bkp_xattrs_release(struct bkp_xattrs *x) {
        for (size_t i = 0; i < x->n; i++) {
                free(x->items[i].name);
                free(x->items[i].value);
        }
        free(x->items);
        *x = (struct bkp_xattrs){};
}

static bool xattr_unsupported(int e) {
        return e == ENOTSUP || e == EOPNOTSUPP;
}

int bkp_xattrs_read(int dirfd, const char *name, struct bkp_xattrs *ret) {
        /* Through /proc for NAME: no *xattrat() call exists, and the magic link of DIRFD is followed
         * while NAME is not. */
        char path[64 + BKP_NAME_MAX];
        if (name)
                snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);

        struct bkp_xattrs x = {};
        _cleanup_free_ char *names = NULL;
        ssize_t n;
        for (;;) {
                n = name ? llistxattr(path, NULL, 0) : flistxattr(dirfd, NULL, 0);
                if (n < 0)
                        return xattr_unsupported(errno) ? (*ret = x, 0) : negative_errno();
                if (n == 0) {
                        *ret = x;
                        return 0;
                }
                free(names);
                names = malloc((size_t) n);
                if (!names)
                        return -ENOMEM;
                ssize_t k =
                        name ? llistxattr(path, names, (size_t) n) : flistxattr(dirfd, names, (size_t) n);
                if (k >= 0) {
                        n = k;
                        break;
                }
                if (errno != ERANGE)
                        return negative_errno();
        }

        int r = 0;
        _cleanup_free_ void *value = NULL;
        for (char *p = names; r >= 0 && p < names + n; p += strlen(p) + 1) {
                ssize_t v;
                for (;;) {
                        v = name ? lgetxattr(path, p, NULL, 0) : fgetxattr(dirfd, p, NULL, 0);
                        if (v < 0)
                                break;
                        free(value);
                        value = malloc(MAX((size_t) v, (size_t) 1));
                        if (!value) {
                                r = -ENOMEM;
                                break;
                        }
                        ssize_t k = name ? lgetxattr(path, p, value, (size_t) v)
                                         : fgetxattr(dirfd, p, value, (size_t) v);
                        if (k >= 0 || errno != ERANGE) {
                                v = k;
                                break;
                        }
                }
                if (r < 0)
                        break;
                if (v < 0) {
                        if (errno == ENODATA)
                                continue; /* removed meanwhile */
                        r = negative_errno();
                        break;
                }
                r = bkp_xattrs_add(&x, p, value, (size_t) v);
        }
        if (r >= 0)
                r = bkp_xattrs_normalize(&x);
        if (r < 0) {
                bkp_xattrs_release(&x);
                return r;
        }
        *ret = x;
        return 0;
}

/* ---- the manifest ---- */

bool bkp_manifest_name_valid(const char *name) {
        if (strcmp(name, "backup.xml") == 0)
                return true;
        if (strncmp(name, "writers/", 8) == 0) {
                const char *n = name + 8;
                size_t d = strspn(n, "0123456789");
                return d > 0 && d <= 4 && (d == 1 || n[0] != '0') && strcmp(n + d, ".xml") == 0;
        }
        const char *dot = strrchr(name, '.');
        if (!dot || (strcmp(dot, ".list") != 0 && strcmp(dot, ".tar") != 0 && strcmp(dot, ".img") != 0 &&
                     strcmp(dot, ".map") != 0))
                return false;
        char t[BKP_TARGET_NAME_MAX + 1];
        size_t len = (size_t) (dot - name);
        if (len == 0 || len > BKP_TARGET_NAME_MAX)
                return false;
        memcpy(t, name, len);
        t[len] = '\0';
        return bkp_target_name_valid(t);
}

int bkp_manifest_add(struct bkp_manifest *m, const char *name, uint64_t size,
                     const uint8_t sha[BKP_SHA256_LEN]) {
        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 8;
                struct bkp_manifest_item *n = reallocarray(m->items, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                m->items = n;
                m->cap = cap;
        }
        char *s = strdup(name);
        if (!s)
                return -ENOMEM;
        m->items[m->n] = (struct bkp_manifest_item){ .name = s, .size = size };
        memcpy(m->items[m->n].sha256, sha, BKP_SHA256_LEN);
        m->n++;
        return 0;
}

static int item_cmp(const void *a, const void *b) {
        return strcmp(((const struct bkp_manifest_item *) a)->name,
                      ((const struct bkp_manifest_item *) b)->name);
}

void bkp_manifest_sort(struct bkp_manifest *m) {
        if (m->n > 0)
                qsort(m->items, m->n, sizeof(*m->items), item_cmp);
}

int bkp_manifest_format(const struct bkp_manifest *m, struct bkp_buf *b) {
        char hex[BKP_HEX_LEN + 1];
        for (size_t i = 0; i < m->n; i++) {
                bkp_hex(m->items[i].sha256, hex);
                int r = bkp_buf_printf(b, "%s %" PRIu64 " %s\n", hex, m->items[i].size, m->items[i].name);
                if (r < 0)
                        return r;
        }
        uint8_t sha[BKP_SHA256_LEN];
        int r = bkp_sha256(b->data ? b->data : "", b->len, sha);
        if (r < 0)
                return r;
        bkp_hex(sha, hex);
        return bkp_buf_printf(b, "manifest-sha256 %s\n", hex);
}

int bkp_manifest_parse(const char *data, size_t len, struct bkp_manifest *ret, size_t *ret_line) {
        struct bkp_manifest m = {};
        size_t line = 0;
        int r = -EBADMSG;
        for (size_t pos = 0; pos < len;) {
                line++;
                const char *p = data + pos, *nl = memchr(p, '\n', len - pos);
                if (!nl)
                        goto fail;
                size_t n = (size_t) (nl - p);
                static const char last[] = "manifest-sha256 ";
                if (n == strlen(last) + BKP_HEX_LEN && memcmp(p, last, strlen(last)) == 0) {
                        uint8_t want[BKP_SHA256_LEN], have[BKP_SHA256_LEN];
                        if (pos + n + 1 != len || bkp_unhex(p + strlen(last), BKP_HEX_LEN, want) < 0)
                                goto fail;
                        r = bkp_sha256(data, pos, have);
                        if (r < 0)
                                goto fail;
                        r = -EBADMSG;
                        if (memcmp(want, have, BKP_SHA256_LEN) != 0)
                                goto fail;
                        *ret = m;
                        return 0;
                }
                uint8_t sha[BKP_SHA256_LEN];
                if (n < BKP_HEX_LEN + 4 || p[BKP_HEX_LEN] != ' ' || bkp_unhex(p, BKP_HEX_LEN, sha) < 0)
                        goto fail;
                const char *s = p + BKP_HEX_LEN + 1, *sp = memchr(s, ' ', (size_t) (nl - s));
                if (!sp)
                        goto fail;
                size_t ds = (size_t) (sp - s);
                if (ds == 0 || ds > 20 || strspn(s, "0123456789") < ds || (ds > 1 && s[0] == '0'))
                        goto fail;
                uint64_t size = 0;
                for (size_t i = 0; i < ds; i++) {
                        unsigned d = (unsigned) (s[i] - '0');
                        if (size > (UINT64_MAX - d) / 10)
                                goto fail;
                        size = size * 10 + d;
                }
                size_t nl_len = (size_t) (nl - sp - 1);
                char name[BKP_TARGET_NAME_MAX + 16];
                if (nl_len == 0 || nl_len >= sizeof(name) || memchr(sp + 1, '\0', nl_len))
                        goto fail;
                memcpy(name, sp + 1, nl_len);
                name[nl_len] = '\0';
                if (!bkp_manifest_name_valid(name) || (m.n > 0 && strcmp(m.items[m.n - 1].name, name) >= 0))
                        goto fail;
                r = bkp_manifest_add(&m, name, size, sha);
                if (r < 0)
                        goto fail;
                r = -EBADMSG;
                pos += n + 1;
        }
        line++; /* no last line */
fail:
        bkp_manifest_release(&m);
        if (ret_line)
                *ret_line = line;
        return r;
}

const struct bkp_manifest_item *bkp_manifest_find(const struct bkp_manifest *m, const char *name) {
        if (m->n == 0)
                return NULL;
        struct bkp_manifest_item key = { .name = (char *) name };
        return bsearch(&key, m->items, m->n, sizeof(key), item_cmp);
}

void bkp_manifest_release(struct bkp_manifest *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->items[i].name);
        free(m->items);
        *m = (struct bkp_manifest){};
}

/* ---- opened backups ---- */

void bkp_backup_free(struct bkp_backup *b) {
        if (!b)
                return;
        if (b->dirfd >= 0)
                close(b->dirfd);
        bkp_document_free(b->doc);
        bkp_manifest_release(&b->manifest);
        free(b->path);
        free(b);
}

int bkp_backup_openat(struct bkp_backup *b, const char *name, char *err) {
        const char *full = name;
        int dfd = b->dirfd;
        _cleanup_close_ int sub = -1;
        const char *slash = strchr(name, '/');
        if (slash) {
                char dir[64];
                size_t n = (size_t) (slash - name);
                if (n >= sizeof(dir))
                        return -EINVAL;
                memcpy(dir, name, n);
                dir[n] = '\0';
                sub = openat(b->dirfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        goto fail;
                dfd = sub;
                name = slash + 1;
        }
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0)
                return fd;
fail:;
        int r = negative_errno();
        if (r == -ENOENT || r == -ELOOP || r == -ENOTDIR)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s is missing: the backup is damaged; use another one", full,
                                  b->path);
        return bkp_errorf(err, r, "cannot open %s of backup %s: %s", full, b->path, strerror(-r));
}

/* Reads FD whole, knowing its size is SIZE. */
static int read_exactly(int fd, char *buf, size_t size) {
        for (size_t done = 0; done < size;) {
                ssize_t n = read(fd, buf + done, MIN(size - done, (size_t) 1 << 30));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EBADMSG; /* shrank */
                done += (size_t) n;
        }
        return 0;
}

int bkp_backup_read_file(struct bkp_backup *b, const char *name, char **ret, size_t *ret_len, char *err) {
        const struct bkp_manifest_item *it = bkp_manifest_find(&b->manifest, name);
        if (!it)
                return bkp_errorf(
                        err, -EBADMSG,
                        "%s is not in the manifest of backup %s: the backup is damaged; use another one",
                        name, b->path);
        _cleanup_close_ int fd = bkp_backup_openat(b, name, err);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return bkp_errorf(err, negative_errno(), "cannot read %s of backup %s: %m", name, b->path);
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != it->size)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s has %" PRIu64 " bytes where its manifest says %" PRIu64
                                  ": it is damaged; use another backup",
                                  name, b->path, (uint64_t) st.st_size, it->size);
        if (it->size >= SIZE_MAX)
                return bkp_errorf(err, -EFBIG, "%s of backup %s is too big to read", name, b->path);
        _cleanup_free_ char *buf = malloc((size_t) it->size + 1);
        if (!buf)
                return bkp_errorf(err, -ENOMEM, "out of memory reading %s of backup %s", name, b->path);
        int r = read_exactly(fd, buf, (size_t) it->size);
        if (r < 0)
                return bkp_errorf(err, r, "cannot read %s of backup %s: %s", name, b->path, strerror(-r));
        buf[it->size] = '\0';
        uint8_t sha[BKP_SHA256_LEN];
        r = bkp_sha256(buf, (size_t) it->size, sha);
        if (r < 0)
                return bkp_errorf(err, r, "cannot compute a checksum");
        if (memcmp(sha, it->sha256, BKP_SHA256_LEN) != 0)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s does not match its checksum in the manifest: it is "
                                  "damaged; use another backup",
                                  name, b->path);
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = (size_t) it->size;
        return 0;
}

int bkp_backup_load_list(struct bkp_backup *b, const char *target, struct bkp_list *ret, char *err) {
        char name[BKP_TARGET_NAME_MAX + 8];
        snprintf(name, sizeof(name), "%s.list", target);
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = bkp_backup_read_file(b, name, &data, &len, err);
        if (r < 0)
                return r;
        size_t line = 0;
        r = bkp_list_parse(data, len, ret, &line);
        if (r == -EBADMSG && len >= strlen(BKP_LIST_HEADER_V1) &&
            memcmp(data, BKP_LIST_HEADER_V1, strlen(BKP_LIST_HEADER_V1)) == 0)
                return bkp_errorf(err, r,
                                  "%s of backup %s is of list format 1, which this version no longer reads "
                                  "(it lacks the change times incrementals compare); make a new full backup",
                                  name, b->path);
        if (r == -EBADMSG)
                return bkp_errorf(
                        err, r,
                        "%s of backup %s is malformed at line %zu: the backup is damaged; use another one",
                        name, b->path, line);
        if (r < 0)
                return bkp_errorf(err, r, "cannot parse %s of backup %s: %s", name, b->path, strerror(-r));
        return 0;
}

bool bkp_document_has_target(const struct bkp_document *d, const char *name) {
        for (size_t i = 0; i < d->n_targets; i++)
                if (strcmp(d->targets[i].name, name) == 0)
                        return true;
        return false;
}

/* Whether the manifest names exactly the files the document implies. */
static bool manifest_matches(const struct bkp_manifest *m, const struct bkp_document *d) {
        if (m->n != 1 + 2 * d->n_targets + d->n_writer_documents || !bkp_manifest_find(m, "backup.xml"))
                return false;
        char name[BKP_TARGET_NAME_MAX + 16];
        for (size_t i = 0; i < d->n_targets; i++) {
                snprintf(name, sizeof(name), "%s.%s", d->targets[i].name, d->image ? "map" : "list");
                if (!bkp_manifest_find(m, name))
                        return false;
                snprintf(name, sizeof(name), "%s.%s", d->targets[i].name, d->image ? "img" : "tar");
                if (!bkp_manifest_find(m, name))
                        return false;
        }
        for (size_t i = 0; i < d->n_writer_documents; i++) {
                snprintf(name, sizeof(name), "writers/%zu.xml", i);
                if (!bkp_manifest_find(m, name))
                        return false;
        }
        return true;
}

int bkp_backup_open(const char *path, struct bkp_backup **ret, char *err) {
        _cleanup_(bkp_backup_freep) struct bkp_backup *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->dirfd = -1;
        b->path = strdup(path);
        if (!b->path)
                return -ENOMEM;
        b->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (b->dirfd < 0) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return bkp_errorf(err, r,
                                          "backup directory %s does not exist; give the path of a backup",
                                          path);
                return bkp_errorf(err, r, "cannot open backup directory %s: %s", path, strerror(-r));
        }

        _cleanup_close_ int fd = openat(b->dirfd, "manifest", O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();
                if (r == -ENOENT || r == -ELOOP)
                        return bkp_errorf(err, -EBADMSG,
                                          "%s has no manifest: the backup is incomplete (interrupted, or "
                                          "still being written); make a new one",
                                          path);
                return bkp_errorf(err, r, "cannot open the manifest of backup %s: %s", path, strerror(-r));
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return bkp_errorf(err, negative_errno(), "cannot read the manifest of backup %s: %m", path);
        if (!S_ISREG(st.st_mode) || st.st_size > BKP_MANIFEST_MAX)
                return bkp_errorf(
                        err, -EBADMSG,
                        "the manifest of backup %s is damaged (not a small file); use another backup", path);
        _cleanup_free_ char *data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        int r = read_exactly(fd, data, (size_t) st.st_size);
        if (r < 0)
                return bkp_errorf(err, r, "cannot read the manifest of backup %s: %s", path, strerror(-r));
        size_t line = 0;
        r = bkp_manifest_parse(data, (size_t) st.st_size, &b->manifest, &line);
        if (r < 0)
                return bkp_errorf(err, r == -ENOMEM ? r : -EBADMSG,
                                  "the manifest of backup %s is damaged at line %zu (or its own checksum "
                                  "does not match); use another backup",
                                  path, line);

        _cleanup_free_ char *xml = NULL;
        size_t len;
        r = bkp_backup_read_file(b, "backup.xml", &xml, &len, err);
        if (r < 0)
                return r;
        r = bkp_document_from_xml(xml, len, &b->doc);
        if (r < 0)
                return bkp_errorf(err, r == -ENOMEM ? r : -EBADMSG,
                                  "backup.xml of backup %s is not a valid Backup Components Document; use "
                                  "another backup",
                                  path);
        if (!manifest_matches(&b->manifest, b->doc))
                return bkp_errorf(err, -EBADMSG,
                                  "the manifest of backup %s does not list exactly the files its backup.xml "
                                  "names; use another backup",
                                  path);
        for (size_t i = 0; i < b->doc->n_writer_documents; i++) {
                char name[48];
                snprintf(name, sizeof(name), "writers/%zu.xml", i);
                char *doc;
                r = bkp_backup_read_file(b, name, &doc, &len, err);
                if (r < 0)
                        return r;
                b->doc->writer_documents[i] = doc;
                if (strlen(doc) != len)
                        return bkp_errorf(err, -EBADMSG,
                                          "%s of backup %s holds a NUL byte; use another backup", name,
                                          path);
        }
        *ret = TAKE_PTR(b);
        return 0;
}

int bkp_read_document(const char *dir, struct bkp_document **ret, char err[BKP_ERR_MAX]) {
        if (!dir || !ret)
                return bkp_errorf(err, -EINVAL, "no backup directory given");
        _cleanup_(bkp_backup_freep) struct bkp_backup *b = NULL;
        int r = bkp_backup_open(dir, &b, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b->doc);
        return 0;
}

/* ---- chains ---- */

int bkp_check_base(const struct bkp_document *d, const struct bkp_document *base, const char *base_path,
                   char *err) {
        bool ok;
        switch (d->type) {
        case BKP_DIFFERENTIAL:
                ok = base->type == BKP_FULL;
                break;
        case BKP_INCREMENTAL:
        case BKP_LOG:
                ok = base->type == BKP_FULL || base->type == BKP_INCREMENTAL || base->type == BKP_LOG;
                break;
        default:
                ok = false;
        }
        if (!ok)
                return bkp_errorf(
                        err, -EINVAL,
                        "backup %s is a %s backup, which cannot be the base of a %s backup; give a %s base",
                        base_path, bkp_type_to_string(base->type), bkp_type_to_string(d->type),
                        d->type == BKP_DIFFERENTIAL ? "full" : "full or incremental");
        if (d->image != base->image)
                return bkp_errorf(err, -EINVAL,
                                  "backup %s is %s backup, and this one %s: give a base of the same kind, or "
                                  "make a full backup",
                                  base_path, base->image ? "an image" : "a file", d->image ? "an image" : "files");
        bool same = d->n_targets == base->n_targets;
        for (size_t i = 0; same && i < d->n_targets; i++)
                same = bkp_document_has_target(base, d->targets[i].name);
        if (!same)
                return bkp_errorf(err, -EINVAL,
                                  "base backup %s has other targets than this backup; back up the same "
                                  "targets, or make a full backup",
                                  base_path);
        return 0;
}

static char *parent_dir(const char *path) {
        char *s = strdup(path);
        if (!s)
                return NULL;
        size_t n = strlen(s);
        while (n > 1 && s[n - 1] == '/')
                s[--n] = '\0';
        char *slash = strrchr(s, '/');
        if (!slash)
                strcpy(s, ".");
        else if (slash == s)
                s[1] = '\0';
        else
                *slash = '\0';
        return s;
}

/* Looks in PARENT for a backup with id ID. */
static int find_beside(const char *parent, const char *id, struct bkp_backup **ret) {
        DIR *d = opendir(parent);
        if (!d)
                return -ENOENT;
        int r = -ENOENT;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                size_t n = strlen(parent) + strlen(de->d_name) + 2;
                _cleanup_free_ char *p = malloc(n);
                if (!p) {
                        r = -ENOMEM;
                        break;
                }
                snprintf(p, n, "%s/%s", parent, de->d_name);
                struct bkp_backup *b;
                if (bkp_backup_open(p, &b, NULL) < 0)
                        continue;
                if (strcmp(b->doc->id, id) == 0) {
                        *ret = b;
                        r = 0;
                        break;
                }
                bkp_backup_free(b);
        }
        closedir(d);
        return r;
}

static int find_base(const struct bkp_backup *b, const char *newest, struct bkp_backup **ret, char *err) {
        const struct bkp_document *d = b->doc;
        char first_err[BKP_ERR_MAX] = "";
        struct bkp_backup *base = NULL;
        int r0 = bkp_backup_open(d->base_path, &base, first_err);
        if (r0 >= 0) {
                if (strcmp(base->doc->id, d->base_id) == 0) {
                        *ret = base;
                        return 0;
                }
                bkp_backup_free(base);
                r0 = -ENOENT;
        }

        _cleanup_free_ char *p1 = parent_dir(b->path), *p2 = parent_dir(newest);
        if (!p1 || !p2)
                return -ENOMEM;
        int r = find_beside(p1, d->base_id, ret);
        if (r == -ENOENT && strcmp(p1, p2) != 0)
                r = find_beside(p2, d->base_id, ret);
        if (r != -ENOENT)
                return r;
        if (r0 != -ENOENT) {
                if (err)
                        memcpy(err, first_err, BKP_ERR_MAX);
                return r0;
        }
        return bkp_errorf(err, -ENOENT,
                          "base backup %s of %s is neither at %s nor beside %s; put it back, or use a "
                          "backup whose chain is complete",
                          d->base_id, b->path, d->base_path, newest);
}

void bkp_chain_release(struct bkp_chain *c) {
        for (size_t i = 0; i < c->n; i++)
                bkp_backup_free(c->items[i]);
        free(c->items);
        *c = (struct bkp_chain){};
}

struct bkp_backup *bkp_chain_find(const struct bkp_chain *c, const char *id) {
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->items[i]->doc->id, id) == 0)
                        return c->items[i];
        return NULL;
}

static int chain_push(struct bkp_chain *c, struct bkp_backup *b) {
        struct bkp_backup **n = reallocarray(c->items, c->n + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        c->items = n;
        c->items[c->n++] = b;
        return 0;
}

int bkp_chain_open(const char *dir, struct bkp_chain *ret, char *err) {
        struct bkp_chain c = {};
        struct bkp_backup *b;
        int r = bkp_backup_open(dir, &b, err);
        if (r < 0)
                return r;
        r = chain_push(&c, b);
        if (r < 0) {
                bkp_backup_free(b);
                return r;
        }
        while (b->doc->base_id[0]) {
                struct bkp_backup *base;
                r = find_base(b, dir, &base, err);
                if (r < 0)
                        goto fail;
                if (bkp_chain_find(&c, base->doc->id) || c.n >= BKP_CHAIN_MAX) {
                        r = bkp_errorf(err, -EBADMSG,
                                       "the chain of bases of backup %s loops; the backups are damaged",
                                       dir);
                        bkp_backup_free(base);
                        goto fail;
                }
                char e[BKP_ERR_MAX];
                r = bkp_check_base(b->doc, base->doc, base->path, e);
                if (r < 0) {
                        r = bkp_errorf(err, -EBADMSG, "backup %s has a base that does not fit: %s", b->path,
                                       e);
                        bkp_backup_free(base);
                        goto fail;
                }
                r = chain_push(&c, base);
                if (r < 0) {
                        bkp_backup_free(base);
                        goto fail;
                }
                b = base;
        }
        *ret = c;
        return 0;
fail:
        bkp_chain_release(&c);
        return r;
}

/* ---- progress ---- */

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

int bkp_tick(struct bkp_ticker *t, bool force, char *err) {
        if (!t->fn)
                return 0;
        uint64_t now = now_usec();
        if (!force && now - t->last_usec < 100000)
                return 0;
        t->last_usec = now;
        int r = t->fn(&t->p, t->userdata);
        if (r < 0)
                return bkp_errorf(err, r, "stopped by the progress callback (%s)", strerror(-r));
        return 0;
}
