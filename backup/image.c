/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Image backups (backup.h's top comment): a target is a block image read in chunks; a backup stores
 * some of its chunks in T.img (a sparse file of the image's size, each chunk at its own offset) and
 * says which in T.map.
 *
 * THE MAP (T.map; parsed and formatted in imagemap.c). Text, '\n'-terminated lines:
 *
 *   lvss-image-map 1                 the first line, exactly
 *   SIZE CHUNK_SIZE                  the image's bytes and the chunk size, decimal (as the BCD's)
 *   INDEX SHA256                     per chunk stored in T.img: its number (decimal, ascending, below
 *                                    ceil(SIZE / CHUNK_SIZE)) and the lower-case hex SHA-256 of its
 *                                    bytes (the last chunk may be shorter than CHUNK_SIZE)
 *
 * Numbers have no sign and no leading zeros; anything else is refused (-EBADMSG). The manifest's line
 * for T.img gives SIZE as its size and, as its checksum, the SHA-256 of the map's binary checksums
 * one after the other: checking T.img is checking each stored chunk against its line (the holes
 * between them hold nothing a restore reads).
 *
 * A full image backup stores every chunk with a non-zero byte (zero chunks are holes, and no line);
 * an incremental or differential one stores every chunk the caller marks as changed, zero or not
 * (a zero chunk is then a hole with a line). A restore takes each chunk from the newest backup of
 * the chain that has a line for it, and zeros where none has.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

#define READ_MAX (1u << 20) /* bytes asked of the image at once */

static uint64_t n_chunks_of(uint64_t size, uint32_t chunk_size) {
        return size / chunk_size + (size % chunk_size != 0);
}

static size_t chunk_len(uint64_t size, uint32_t chunk_size, uint64_t c) {
        return (size_t) MIN((uint64_t) chunk_size, size - c * chunk_size);
}

static bool all_zero(const uint8_t *p, size_t n) {
        if (n == 0)
                return true;
        if (n < 16) {
                for (size_t i = 0; i < n; i++)
                        if (p[i])
                                return false;
                return true;
        }
        for (size_t i = 0; i < 16; i++)
                if (p[i])
                        return false;
        return memcmp(p, p + 16, n - 16) == 0;
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
        for (size_t done = 0; done < n;) {
                ssize_t k = pread(fd, (uint8_t *) buf + done, n - done, (off_t) (off + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -ENODATA; /* shorter than it should be */
                done += (size_t) k;
        }
        return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off) {
        for (size_t done = 0; done < n;) {
                ssize_t k = pwrite(fd, (const uint8_t *) buf + done, n - done, (off_t) (off + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                done += (size_t) k;
        }
        return 0;
}

/* ---- the map ---- */

/* The manifest checksum of T.img: SHA-256 of the map's checksums in order. */
static int map_digest(const struct bkp_image_map *m, uint8_t ret[BKP_SHA256_LEN]) {
        _cleanup_(bkp_sha_freep) bkp_sha *s = bkp_sha_new();
        if (!s)
                return -ENOMEM;
        int r = m->n ? bkp_sha_update(s, m->sha, m->n * BKP_SHA256_LEN) : 0;
        return r < 0 ? r : bkp_sha_final(s, ret);
}

int bkp_image_load_map(struct bkp_backup *b, const struct bkp_target *t, struct bkp_image_map *ret,
                       char *err) {
        char name[BKP_TARGET_NAME_MAX + 8];
        snprintf(name, sizeof(name), "%s.map", t->name);
        _cleanup_free_ char *data = NULL;
        size_t len, line = 0;
        int r = bkp_backup_read_file(b, name, &data, &len, err);
        if (r < 0)
                return r;
        struct bkp_image_map m;
        r = bkp_image_map_parse(data, len, &m, &line);
        if (r == -EBADMSG)
                return bkp_errorf(err, r,
                                  "%s of backup %s is malformed at line %zu: the backup is damaged; use "
                                  "another one",
                                  name, b->path, line);
        if (r < 0)
                return bkp_errorf(err, r, "cannot parse %s of backup %s: %s", name, b->path, strerror(-r));
        if (m.size != t->size || m.chunk_size != t->chunk_size) {
                bkp_image_map_release(&m);
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s describes another image than backup.xml: the backup is "
                                  "damaged; use another one",
                                  name, b->path);
        }
        *ret = m;
        return 0;
}

/* ---- writing ---- */

static bool changed_bit(const uint8_t *changed, uint64_t c) {
        return changed[c / 8] & (1u << (c % 8));
}

/* The next chunk at or after C to read (all of them in a full backup), or N. */
static uint64_t next_wanted(const struct bkp_target *t, uint64_t c, uint64_t n) {
        if (!t->changed)
                return c;
        while (c < n && !changed_bit(t->changed, c)) {
                if (c % 8 == 0 && c + 8 <= n && t->changed[c / 8] == 0)
                        c += 8;
                else
                        c++;
        }
        return c;
}

static int write_target(int dirfd, const struct bkp_target *t, bool chained, uint8_t *buf,
                        struct bkp_manifest *manifest, struct bkp_stats *stats, struct bkp_ticker *tick,
                        char *err) {
        char img_name[BKP_TARGET_NAME_MAX + 8], map_name[BKP_TARGET_NAME_MAX + 8];
        snprintf(img_name, sizeof(img_name), "%s.img", t->name);
        snprintf(map_name, sizeof(map_name), "%s.map", t->name);
        struct bkp_image_map m = { .size = t->size, .chunk_size = t->chunk_size };
        struct bkp_buf text = {};
        uint64_t n = n_chunks_of(t->size, t->chunk_size);
        _cleanup_close_ int mfd = -1;
        int r;

        _cleanup_close_ int in = open(t->root, O_RDONLY | O_NOCTTY | O_CLOEXEC);
        if (in < 0)
                return bkp_errorf(err, negative_errno(), "cannot open the image of target %s (%s): %m",
                                  t->name, t->root);
        (void) posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
        _cleanup_close_ int out = openat(dirfd, img_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                         0600);
        if (out < 0)
                return bkp_errorf(err, negative_errno(), "cannot create %s: %m", img_name);
        if (ftruncate(out, (off_t) t->size) < 0)
                return bkp_errorf(err, negative_errno(), "cannot size %s to %" PRIu64 " bytes: %m", img_name,
                                  t->size);

        uint64_t c = next_wanted(t, 0, n);
        while (c < n) {
                /* A run of wanted chunks, up to READ_MAX bytes. */
                uint64_t last = c;
                while (last + 1 < n && (last + 2 - c) * t->chunk_size <= READ_MAX &&
                       (!t->changed || changed_bit(t->changed, last + 1)))
                        last++;
                uint64_t off = c * t->chunk_size;
                size_t len = (size_t) (MIN(t->size, (last + 1) * t->chunk_size) - off);
                r = pread_all(in, buf, len, off);
                if (r == -ENODATA)
                        r = bkp_errorf(err, -EIO, "the image of target %s (%s) ends before %" PRIu64 " bytes",
                                       t->name, t->root, t->size);
                else if (r < 0)
                        r = bkp_errorf(err, r, "cannot read the image of target %s at %" PRIu64 ": %s", t->name,
                                       off, strerror(-r));
                if (r < 0)
                        goto fail;
                stats->bytes_read += len;
                for (uint64_t k = c; k <= last; k++) {
                        const uint8_t *p = buf + (k - c) * t->chunk_size;
                        size_t kl = chunk_len(t->size, t->chunk_size, k);
                        bool zero = all_zero(p, kl);
                        if (zero && !chained)
                                continue;
                        uint8_t sha[BKP_SHA256_LEN];
                        r = bkp_sha256(p, kl, sha);
                        if (r >= 0)
                                r = bkp_image_map_push(&m, k, sha);
                        if (r < 0) {
                                r = bkp_errorf(err, r, "out of memory");
                                goto fail;
                        }
                        stats->entries_stored++;
                        if (zero)
                                continue;
                        r = pwrite_all(out, p, kl, k * t->chunk_size);
                        if (r < 0) {
                                r = bkp_errorf(err, r, "cannot write %s: %s", img_name, strerror(-r));
                                goto fail;
                        }
                        stats->bytes_written += kl;
                }
                tick->p.bytes_done += len;
                r = bkp_tick(tick, false, err);
                if (r < 0)
                        goto fail;
                c = next_wanted(t, last + 1, n);
        }
        stats->entries += n;
        if (fsync(out) < 0) {
                r = bkp_errorf(err, negative_errno(), "cannot sync %s: %m", img_name);
                goto fail;
        }

        uint8_t digest[BKP_SHA256_LEN], map_sha[BKP_SHA256_LEN];
        r = bkp_image_map_format(&m, &text);
        if (r >= 0)
                r = map_digest(&m, digest);
        if (r >= 0)
                r = bkp_sha256(text.data, text.len, map_sha);
        if (r < 0) {
                r = bkp_errorf(err, r, "cannot make %s: %s", map_name, strerror(-r));
                goto fail;
        }
        mfd = openat(dirfd, map_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                         0600);
        if (mfd < 0 || pwrite_all(mfd, text.data, text.len, 0) < 0 || fsync(mfd) < 0) {
                r = bkp_errorf(err, negative_errno(), "cannot write %s: %m", map_name);
                goto fail;
        }
        stats->bytes_written += text.len;
        r = bkp_manifest_add(manifest, img_name, t->size, digest);
        if (r >= 0)
                r = bkp_manifest_add(manifest, map_name, text.len, map_sha);
        if (r < 0)
                r = bkp_errorf(err, r, "out of memory");
fail:
        bkp_buf_release(&text);
        bkp_image_map_release(&m);
        return r;
}

int bkp_image_write(int dirfd, const struct bkp_write_opts *o, const struct bkp_backup *base,
                    struct bkp_manifest *manifest, struct bkp_stats *stats, struct bkp_ticker *tick, char *err) {
        for (size_t i = 0; i < o->n_targets; i++) {
                const struct bkp_target *t = &o->targets[i];
                if (!bkp_image_geometry_valid(t->size, t->chunk_size))
                        return bkp_errorf(err, -EINVAL,
                                          "target %s: an image of %" PRIu64 " bytes in chunks of %" PRIu32
                                          " is not valid; give a size up to 2^50 and a chunk size a power "
                                          "of two from 4 KiB to 1 MiB",
                                          t->name, t->size, t->chunk_size);
                if (base && !t->changed)
                        return bkp_errorf(err, -EINVAL,
                                          "target %s: a %s image backup needs the chunks changed since its "
                                          "base",
                                          t->name, bkp_type_to_string(o->type));
                if (base) {
                        for (size_t k = 0; k < base->doc->n_targets; k++) {
                                const struct bkp_target *bt = &base->doc->targets[k];
                                if (strcmp(bt->name, t->name) == 0 &&
                                    (bt->size != t->size || bt->chunk_size != t->chunk_size))
                                        return bkp_errorf(err, -EINVAL,
                                                          "target %s is %" PRIu64 " bytes in chunks of %" PRIu32
                                                          " but was %" PRIu64 " in chunks of %" PRIu32
                                                          " in base %s: make a full image backup",
                                                          t->name, t->size, t->chunk_size, bt->size,
                                                          bt->chunk_size, base->path);
                        }
                }
                uint64_t n = n_chunks_of(t->size, t->chunk_size);
                for (uint64_t c = 0; c < n; c++)
                        if (!t->changed || changed_bit(t->changed, c))
                                tick->p.bytes_total += chunk_len(t->size, t->chunk_size, c);
        }
        _cleanup_free_ uint8_t *buf = malloc(READ_MAX);
        if (!buf)
                return bkp_errorf(err, -ENOMEM, "out of memory");
        int r = bkp_tick(tick, true, err);
        for (size_t i = 0; r >= 0 && i < o->n_targets; i++)
                r = write_target(dirfd, &o->targets[i], base != NULL, buf, manifest, stats, tick, err);
        return r;
}

/* ---- verifying ---- */

/* Checks T.img of B against its map M. */
static int verify_image(struct bkp_backup *b, const struct bkp_target *t, const struct bkp_image_map *m,
                        uint8_t *buf, struct bkp_ticker *tick, char *err) {
        char img_name[BKP_TARGET_NAME_MAX + 8];
        snprintf(img_name, sizeof(img_name), "%s.img", t->name);
        const struct bkp_manifest_item *it = bkp_manifest_find(&b->manifest, img_name);
        uint8_t digest[BKP_SHA256_LEN];
        int r = map_digest(m, digest);
        if (r < 0)
                return bkp_errorf(err, r, "out of memory");
        if (!it || it->size != t->size || memcmp(digest, it->sha256, BKP_SHA256_LEN) != 0)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s does not match its manifest: the backup is damaged; use "
                                  "another one",
                                  img_name, b->path);
        _cleanup_close_ int fd = bkp_backup_openat(b, img_name, err);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return bkp_errorf(err, negative_errno(), "cannot read %s of backup %s: %m", img_name, b->path);
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != t->size)
                return bkp_errorf(err, -EBADMSG,
                                  "%s of backup %s has %" PRIu64 " bytes where its manifest says %" PRIu64
                                  ": it is damaged; use another backup",
                                  img_name, b->path, (uint64_t) st.st_size, t->size);
        for (size_t i = 0; i < m->n; i++) {
                size_t len = chunk_len(t->size, t->chunk_size, m->index[i]);
                uint8_t sha[BKP_SHA256_LEN];
                r = pread_all(fd, buf, len, m->index[i] * t->chunk_size);
                if (r < 0)
                        return bkp_errorf(err, r == -ENODATA ? -EBADMSG : r, "cannot read %s of backup %s: %s",
                                          img_name, b->path, strerror(r == -ENODATA ? EIO : -r));
                r = bkp_sha256(buf, len, sha);
                if (r < 0)
                        return bkp_errorf(err, r, "cannot compute a checksum");
                if (memcmp(sha, m->sha[i], BKP_SHA256_LEN) != 0)
                        return bkp_errorf(err, -EBADMSG,
                                          "chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64 ") of %s of backup %s "
                                          "does not match its checksum: the backup is damaged; use another one",
                                          m->index[i], m->index[i] * t->chunk_size,
                                          m->index[i] * t->chunk_size + len - 1, img_name, b->path);
                tick->p.bytes_done += len;
                tick->p.files_done++;
                r = bkp_tick(tick, false, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int bkp_image_verify(const struct bkp_chain *c, struct bkp_ticker *tick, char *err) {
        const struct bkp_document *top = c->items[0]->doc;
        _cleanup_free_ uint8_t *buf = malloc(1u << 20);
        if (!buf)
                return bkp_errorf(err, -ENOMEM, "out of memory");
        int r = 0;
        for (size_t t = 0; r >= 0 && t < top->n_targets; t++)
                for (size_t i = 0; r >= 0 && i < c->n; i++) {
                        struct bkp_backup *b = c->items[i];
                        const struct bkp_target *bt = NULL;
                        for (size_t k = 0; k < b->doc->n_targets; k++)
                                if (strcmp(b->doc->targets[k].name, top->targets[t].name) == 0)
                                        bt = &b->doc->targets[k];
                        if (!bt) /* bkp_chain_open checked the names */
                                return bkp_errorf(err, -EBADMSG, "backup %s lacks target %s", b->path,
                                                  top->targets[t].name);
                        struct bkp_image_map m;
                        r = bkp_image_load_map(b, bt, &m, err);
                        if (r < 0)
                                return r;
                        r = verify_image(b, bt, &m, buf, tick, err);
                        bkp_image_map_release(&m);
                }
        return r;
}

/* ---- restoring ---- */

static int open_output(const char *path, uint64_t size, char *err) {
        int fd = open(path, O_RDWR | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
        bool created = false;
        if (fd < 0 && errno == ENOENT) {
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                created = fd >= 0;
        }
        if (fd < 0)
                return bkp_errorf(err, negative_errno(), "cannot open %s: %m", path);
        struct stat st;
        uint64_t have = 0;
        int r = 0;
        if (fstat(fd, &st) < 0)
                r = negative_errno();
        else if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, &have) < 0)
                        r = negative_errno();
        } else if (S_ISREG(st.st_mode)) {
                if (created && ftruncate(fd, (off_t) size) < 0)
                        r = negative_errno();
                have = created ? size : (uint64_t) st.st_size;
        } else
                r = -EINVAL;
        if (r >= 0 && have != size)
                r = -EINVAL;
        if (r < 0) {
                close(fd);
                if (created)
                        (void) unlink(path);
                if (r == -EINVAL)
                        return bkp_errorf(err, r,
                                          "%s is not a block device or regular file of %" PRIu64
                                          " bytes (the image's size): give one of that size (a volume made "
                                          "with --size %" PRIu64 "), or a new file",
                                          path, size, size);
                return bkp_errorf(err, r, "cannot use %s: %s", path, strerror(-r));
        }
        return fd;
}

int bkp_restore_image(const struct bkp_restore_opts *o, char err[BKP_ERR_MAX]) {
        if (!o || !o->dir || !o->target || !o->root)
                return bkp_errorf(err, -EINVAL, "no backup, target or output given");
        struct bkp_chain c = {};
        struct bkp_image_map *maps = NULL;
        uint32_t *owner = NULL, *pos = NULL;
        int *fds = NULL, out = -1;
        uint8_t *want = NULL, *have = NULL;
        struct bkp_ticker tick = { .fn = o->progress, .userdata = o->userdata };
        int r = bkp_chain_open(o->dir, &c, err);
        if (r < 0)
                return r;
        const struct bkp_target *t = NULL;
        const struct bkp_document *top = c.items[0]->doc;
        for (size_t k = 0; k < top->n_targets; k++)
                if (strcmp(top->targets[k].name, o->target) == 0)
                        t = &top->targets[k];
        if (!top->image || !t) {
                r = bkp_errorf(err, -EINVAL,
                               !top->image ? "backup %s is not an image backup; restore its trees with a root "
                                             "directory"
                                           : "backup %s has no target %s; see its backup.xml",
                               o->dir, o->target);
                goto finish;
        }
        uint64_t n = n_chunks_of(t->size, t->chunk_size);
        maps = calloc(c.n, sizeof(*maps));
        fds = calloc(c.n, sizeof(*fds));
        for (size_t i = 0; fds && i < c.n; i++)
                fds[i] = -1;
        owner = calloc(n, sizeof(*owner)); /* 1 + the chain's index of the backup holding chunk N, 0: none */
        pos = calloc(n, sizeof(*pos)); /* its line in that backup's map */
        want = malloc(t->chunk_size);
        have = malloc(t->chunk_size);
        if (!maps || !fds || !owner || !pos || !want || !have || c.n > UINT32_MAX - 1) {
                r = bkp_errorf(err, -ENOMEM, "out of memory");
                goto finish;
        }
        for (size_t i = 0; i < c.n; i++) {
                struct bkp_backup *b = c.items[i];
                const struct bkp_target *bt = NULL;
                for (size_t k = 0; k < b->doc->n_targets; k++)
                        if (strcmp(b->doc->targets[k].name, o->target) == 0)
                                bt = &b->doc->targets[k];
                if (!bt) {
                        r = bkp_errorf(err, -EBADMSG, "backup %s lacks target %s", b->path, o->target);
                        goto finish;
                }
                r = bkp_image_load_map(b, bt, &maps[i], err);
                if (r < 0)
                        goto finish;
                if (maps[i].size != t->size || maps[i].chunk_size != t->chunk_size) {
                        r = bkp_errorf(err, -EBADMSG,
                                       "backup %s holds another image of %s than backup %s: the chain is "
                                       "damaged",
                                       b->path, o->target, o->dir);
                        goto finish;
                }
                if (maps[i].n > UINT32_MAX) {
                        r = bkp_errorf(err, -EFBIG, "%s of backup %s has too many chunks", o->target, b->path);
                        goto finish;
                }
                for (size_t k = 0; k < maps[i].n; k++)
                        if (!owner[maps[i].index[k]]) {
                                owner[maps[i].index[k]] = (uint32_t) i + 1;
                                pos[maps[i].index[k]] = (uint32_t) k;
                        }
                char img_name[BKP_TARGET_NAME_MAX + 8];
                snprintf(img_name, sizeof(img_name), "%s.img", o->target);
                fds[i] = bkp_backup_openat(b, img_name, err);
                if (fds[i] < 0) {
                        r = fds[i];
                        goto finish;
                }
        }

        out = open_output(o->root, t->size, err);
        if (out < 0) {
                r = out;
                goto finish;
        }
        tick.p.bytes_total = t->size;
        tick.p.files_total = n;
        r = bkp_tick(&tick, true, err);
        if (r < 0)
                goto finish;

        /* Chunk 0 zeroed first and written last: until the end, no file system is found there. */
        memset(want, 0, t->chunk_size);
        r = pwrite_all(out, want, chunk_len(t->size, t->chunk_size, 0), 0);
        if (r >= 0 && fdatasync(out) < 0)
                r = negative_errno();
        if (r < 0) {
                r = bkp_errorf(err, r, "cannot write %s: %s", o->root, strerror(-r));
                goto finish;
        }
        for (uint64_t k = 1; k <= n; k++) {
                uint64_t ch = k % n; /* 1, 2, ..., n - 1, then 0 */
                size_t len = chunk_len(t->size, t->chunk_size, ch);
                uint64_t off = ch * t->chunk_size;
                if (owner[ch]) {
                        size_t i = owner[ch] - 1;
                        uint8_t sha[BKP_SHA256_LEN];
                        r = pread_all(fds[i], want, len, off);
                        if (r >= 0)
                                r = bkp_sha256(want, len, sha);
                        if (r >= 0 && memcmp(sha, maps[i].sha[pos[ch]], BKP_SHA256_LEN) != 0)
                                r = -EBADMSG;
                        if (r < 0) {
                                r = bkp_errorf(err, r == -ENODATA ? -EBADMSG : r,
                                               "chunk %" PRIu64 " of %s.img of backup %s %s: the restore "
                                               "stopped; use another backup",
                                               ch, o->target, c.items[i]->path,
                                               r == -EBADMSG || r == -ENODATA ? "does not match its checksum"
                                                                              : strerror(-r));
                                goto finish;
                        }
                } else
                        memset(want, 0, len);
                /* Already right (an unchanged volume, or zeros on a new file): not written again. */
                r = ch == 0 ? -ENODATA : pread_all(out, have, len, off);
                if (r < 0 || memcmp(have, want, len) != 0) {
                        r = pwrite_all(out, want, len, off);
                        if (r < 0) {
                                r = bkp_errorf(err, r, "cannot write %s at %" PRIu64 ": %s", o->root, off,
                                               strerror(-r));
                                goto finish;
                        }
                }
                tick.p.bytes_done += len;
                tick.p.files_done++;
                r = bkp_tick(&tick, false, err);
                if (r < 0)
                        goto finish;
                if (ch == n - 1 && n > 1 && fdatasync(out) < 0) {
                        r = bkp_errorf(err, negative_errno(), "cannot sync %s: %m", o->root);
                        goto finish;
                }
        }
        if (fsync(out) < 0) {
                r = bkp_errorf(err, negative_errno(), "cannot sync %s: %m", o->root);
                goto finish;
        }
        r = bkp_tick(&tick, true, err);
finish:
        if (out >= 0)
                close(out);
        for (size_t i = 0; fds && i < c.n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        for (size_t i = 0; maps && i < c.n; i++)
                bkp_image_map_release(&maps[i]);
        free(maps);
        free(fds);
        free(owner);
        free(pos);
        free(want);
        free(have);
        bkp_chain_release(&c);
        return r < 0 ? r : 0;
}
