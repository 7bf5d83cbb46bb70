/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bkp_write: a backup of the targets' trees into a new directory (formats at the top of backup.c).
 *
 * Per target, two passes: the scan (scan.c) says what the tree holds and what is to be stored;
 * then the tar and the list are written together, in list order. What is stored is read again:
 * files opened relative to the root without following symlinks, checked to be the inode scanned and
 * unchanged after reading, their SHA-256 computed as they are streamed, holes found with
 * SEEK_DATA/SEEK_HOLE and stored as pax sparse (holes are not read); extended attributes read again
 * and checked against the scan's hash. A tree that changes under the backup fails it (-EBUSY):
 * trees are meant to be shadow copies.
 *
 * Files are read ahead (POSIX_FADV_WILLNEED) a few MiB beyond each read, and each tar is hashed and
 * written by two threads of its own while this one reads and hashes the trees' files (struct out).
 *
 * Every file written is fsync'd; the manifest last (see backup.c). Any failure removes what was
 * written: the directory if this call made it, its content otherwise.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

#define IO_BUF_SIZE (1u << 20) /* a read from a tree; an output file's buffer */
#define READ_AHEAD (4u << 20) /* a tree's file is read ahead by 4 to 8 MiB */
#define OUT_BUF_SIZE (4u << 20) /* a buffer of a threaded output file */
#define OUT_BUFS 8
#define WRITEBACK_STEP (8u << 20) /* a threaded output file's writeback is started every 8 MiB */
#define WRITEBACK_LAG (64u << 20) /* and waited for when 64 MiB behind what was written */

enum {
        OUT_HASHER, /* computes the file's SHA-256 */
        OUT_WRITER, /* writes the file */
        _OUT_THREADS,
};

/* An output file. Written through one buffer of IO_BUF_SIZE on the calling thread; or, if threaded
 * (the tars: nearly all the bytes of a backup), through a ring of OUT_BUFS buffers of OUT_BUF_SIZE
 * that the caller fills in turn, and two threads go through: one hashes them, the other writes
 * them; a buffer is filled again once both are done with it. Reading and hashing the trees' files
 * (the caller), hashing the tar and writing it thus run side by side. The writer also starts the
 * writeback of what it wrote as it goes, and waits for it some way behind: the disk writes while the
 * trees are read, dirty pages stay few, and the final fsync has little left to do. */
struct out {
        int fd;
        char name[BKP_TARGET_NAME_MAX + 16];
        bkp_sha *sha; /* threaded: the hasher's, until out_join() */
        uint64_t size; /* bytes given */
        char *buf; /* threaded: the buffer being filled */
        size_t len;
        int error; /* the first write error, negative */

        bool threaded;
        size_t n_threads; /* running */
        pthread_t threads[_OUT_THREADS];
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *bufs[OUT_BUFS];
        size_t lens[OUT_BUFS];
        /* under LOCK: buffers queued, buffers each thread is done with, no more buffers to come,
         * give up (what is queued is left), the first error of a thread */
        uint64_t n_queued, n_done[_OUT_THREADS];
        bool closing, stop;
        int thread_error;
        uint64_t written, writeback_started, writeback_done; /* the writer's */
};

struct name_cache_item {
        uint32_t id;
        char *name; /* NULL: none */
};

struct name_cache {
        struct name_cache_item *items;
        size_t n;
};

struct writer {
        const struct bkp_write_opts *o;
        struct bkp_document *doc;
        int dirfd;
        struct bkp_tree *trees;
        size_t n_trees;
        struct bkp_manifest manifest;
        struct bkp_ticker tick;
        struct bkp_stats stats;
        struct name_cache users, groups;
        char *buf;
        char *err;
        /* the cached parent directory of pass 2 */
        char *parent_path;
        int parent_fd;
};

/* ---- output files ---- */

/* Writes the whole of P, N bytes, to FD. */
static int write_all(int fd, const char *p, size_t n) {
        for (size_t done = 0; done < n;) {
                ssize_t k = write(fd, p + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t) k;
        }
        return 0;
}

/* Starts the writeback of what the thread wrote since the last call, by steps of WRITEBACK_STEP,
 * and waits for the writeback that is more than WRITEBACK_LAG behind: the disk writes while the
 * trees are read, and dirty pages stay bounded. An error here is the file's (it would not be
 * reported by fsync again); a file system without sync_file_range() is left to the final fsync. */
static int out_writeback(struct out *o) {
        if (o->written - o->writeback_started < WRITEBACK_STEP)
                return 0;
        if (sync_file_range(o->fd, (off_t) o->writeback_started,
                            (off_t) (o->written - o->writeback_started), SYNC_FILE_RANGE_WRITE) < 0)
                goto fail;
        o->writeback_started = o->written;
        if (o->writeback_started - o->writeback_done <= WRITEBACK_LAG)
                return 0;
        uint64_t end = o->writeback_started - WRITEBACK_LAG;
        if (sync_file_range(o->fd, (off_t) o->writeback_done, (off_t) (end - o->writeback_done),
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER) < 0)
                goto fail;
        /* written: out of the page cache, whose pages the next writes take again */
        (void) posix_fadvise(o->fd, (off_t) o->writeback_done, (off_t) (end - o->writeback_done),
                             POSIX_FADV_DONTNEED);
        o->writeback_done = end;
        return 0;
fail:
        if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == ESPIPE) {
                o->writeback_started = o->writeback_done = UINT64_MAX; /* never again */
                return 0;
        }
        return negative_errno();
}

static int out_hash_step(struct out *o, const char *p, size_t n) {
        return bkp_sha_update(o->sha, p, n);
}

static int out_write_step(struct out *o, const char *p, size_t n) {
        int r = write_all(o->fd, p, n);
        if (r < 0)
                return r;
        o->written += n;
        return o->writeback_started != UINT64_MAX ? out_writeback(o) : 0;
}

/* Thread WHICH: STEP on each buffer queued, in order. After an error, it only counts them. */
static void out_loop(struct out *o, size_t which, int (*step)(struct out *o, const char *p, size_t n)) {
        uint64_t *done = &o->n_done[which];
        int r = 0;
        pthread_mutex_lock(&o->lock);
        for (;;) {
                while (*done == o->n_queued && !o->closing && !o->stop)
                        pthread_cond_wait(&o->cond, &o->lock);
                if (o->stop || *done == o->n_queued)
                        break;
                size_t i = (size_t) (*done % OUT_BUFS);
                pthread_mutex_unlock(&o->lock);

                if (r >= 0)
                        r = step(o, o->bufs[i], o->lens[i]);

                pthread_mutex_lock(&o->lock);
                if (r < 0 && o->thread_error == 0)
                        o->thread_error = r;
                (*done)++;
                pthread_cond_broadcast(&o->cond);
        }
        pthread_mutex_unlock(&o->lock);
}

static void *out_hasher(void *userdata) {
        out_loop(userdata, OUT_HASHER, out_hash_step);
        return NULL;
}

static void *out_writer(void *userdata) {
        out_loop(userdata, OUT_WRITER, out_write_step);
        return NULL;
}

/* Stops O's threads: once they are done with every buffer queued (at once if STOP). */
static void out_join(struct out *o, bool stop) {
        if (o->n_threads == 0)
                return;
        pthread_mutex_lock(&o->lock);
        o->closing = true;
        o->stop = o->stop || stop;
        pthread_cond_broadcast(&o->cond);
        pthread_mutex_unlock(&o->lock);
        for (size_t i = 0; i < o->n_threads; i++)
                pthread_join(o->threads[i], NULL);
        o->n_threads = 0;
        if (o->error == 0)
                o->error = o->thread_error;
}

static void out_release(struct out *o) {
        out_join(o, true);
        if (o->threaded) {
                pthread_mutex_destroy(&o->lock);
                pthread_cond_destroy(&o->cond);
                for (size_t i = 0; i < OUT_BUFS; i++)
                        free(o->bufs[i]);
                o->buf = NULL; /* one of them */
                o->threaded = false;
        }
        if (o->fd >= 0)
                close(o->fd);
        o->fd = -1;
        bkp_sha_free(o->sha);
        o->sha = NULL;
        free(o->buf);
        o->buf = NULL;
}

static int out_start_threads(struct out *o) {
        for (size_t i = 0; i < OUT_BUFS; i++)
                if (!(o->bufs[i] = malloc(OUT_BUF_SIZE)))
                        return -ENOMEM;
        o->buf = o->bufs[0];

        /* the threads take no signals: they are the caller's (e.g. Ctrl-C, seen by its callback) */
        sigset_t all, saved;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        int r = -pthread_create(&o->threads[0], NULL, out_hasher, o);
        if (r >= 0) {
                o->n_threads++;
                r = -pthread_create(&o->threads[1], NULL, out_writer, o);
                if (r >= 0)
                        o->n_threads++;
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        return r;
}

static int out_open(struct writer *w, int dfd, const char *name, bool threaded, struct out *o) {
        *o = (struct out){ .fd = -1 };
        snprintf(o->name, sizeof(o->name), "%s", name);
        const char *base = strrchr(name, '/');
        o->fd = openat(dfd, base ? base + 1 : name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (o->fd < 0)
                return bkp_errorf(w->err, negative_errno(), "cannot create %s in %s: %m", name, w->o->dir);
        o->sha = bkp_sha_new();
        if (!o->sha)
                return bkp_errorf(w->err, -ENOMEM, "out of memory");
        int r = 0;
        if (threaded) {
                o->threaded = true;
                pthread_mutex_init(&o->lock, NULL);
                pthread_cond_init(&o->cond, NULL);
                r = out_start_threads(o);
        } else if (!(o->buf = malloc(IO_BUF_SIZE)))
                r = -ENOMEM;
        if (r < 0)
                return bkp_errorf(w->err, r, "cannot start writing %s: %s", name, strerror(-r));
        return 0;
}

/* Threaded: gives the current buffer to the threads, and takes the next one when it is free. */
static int out_queue(struct out *o) {
        pthread_mutex_lock(&o->lock);
        o->lens[o->n_queued % OUT_BUFS] = o->len;
        o->n_queued++;
        pthread_cond_broadcast(&o->cond);
        while (o->n_queued - MIN(o->n_done[OUT_HASHER], o->n_done[OUT_WRITER]) == OUT_BUFS &&
               o->thread_error == 0)
                pthread_cond_wait(&o->cond, &o->lock);
        int r = o->thread_error;
        pthread_mutex_unlock(&o->lock);
        o->buf = o->bufs[o->n_queued % OUT_BUFS];
        o->len = 0;
        return r < 0 ? (o->error = r) : 0;
}

/* Writes out what is buffered (synchronous only). */
static int out_flush(struct out *o) {
        int r = write_all(o->fd, o->buf, o->len);
        if (r < 0)
                return o->error = r;
        o->len = 0;
        return 0;
}

static int out_write(struct out *o, const void *p, size_t n) {
        if (o->error < 0)
                return o->error;
        int r;
        if (!o->threaded && (r = bkp_sha_update(o->sha, p, n)) < 0)
                return o->error = r;
        o->size += n;
        size_t cap = o->threaded ? OUT_BUF_SIZE : IO_BUF_SIZE;
        while (n > 0) {
                size_t k = MIN(n, cap - o->len);
                memcpy(o->buf + o->len, p, k);
                o->len += k;
                p = (const char *) p + k;
                n -= k;
                if (o->len == cap && (r = o->threaded ? out_queue(o) : out_flush(o)) < 0)
                        return r;
        }
        return 0;
}

/* Flushes, fsyncs and closes O, and records it in the manifest. */
static int out_close(struct writer *w, struct out *o) {
        int r = o->error;
        if (r >= 0 && o->threaded) {
                if (o->len > 0)
                        r = out_queue(o);
                out_join(o, r < 0);
                r = o->error;
        } else if (r >= 0)
                r = out_flush(o);
        if (r >= 0 && fsync(o->fd) < 0)
                r = negative_errno();
        if (r < 0)
                return bkp_errorf(w->err, r, "cannot write %s in %s: %s", o->name, w->o->dir, strerror(-r));
        uint8_t sha[BKP_SHA256_LEN];
        r = bkp_sha_final(o->sha, sha);
        if (r >= 0)
                r = bkp_manifest_add(&w->manifest, o->name, o->size, sha);
        if (r < 0)
                return bkp_errorf(w->err, r, "cannot record %s in the manifest: %s", o->name, strerror(-r));
        w->stats.bytes_written += o->size;
        out_release(o);
        return 0;
}

static int write_whole(struct writer *w, int dfd, const char *name, const char *data, size_t len) {
        struct out o;
        int r = out_open(w, dfd, name, false, &o);
        if (r >= 0) {
                r = out_write(&o, data, len);
                if (r < 0)
                        r = bkp_errorf(w->err, r, "cannot write %s in %s: %s", name, w->o->dir,
                                       strerror(-r));
        }
        if (r >= 0)
                r = out_close(w, &o);
        out_release(&o);
        return r;
}

/* ---- user and group names ---- */

static const char *name_lookup(struct name_cache *c, uint32_t id, bool group) {
        for (size_t i = 0; i < c->n; i++)
                if (c->items[i].id == id)
                        return c->items[i].name;
        struct name_cache_item *n = reallocarray(c->items, c->n + 1, sizeof(*n));
        if (!n)
                return NULL;
        c->items = n;
        char buf[4096];
        char *name = NULL;
        if (group) {
                struct group g, *res = NULL;
                if (getgrgid_r(id, &g, buf, sizeof(buf), &res) == 0 && res)
                        name = strdup(res->gr_name);
        } else {
                struct passwd p, *res = NULL;
                if (getpwuid_r(id, &p, buf, sizeof(buf), &res) == 0 && res)
                        name = strdup(res->pw_name);
        }
        c->items[c->n++] = (struct name_cache_item){ id, name };
        return name;
}

static void name_cache_release(struct name_cache *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->items[i].name);
        free(c->items);
        *c = (struct name_cache){};
}

/* ---- removing what was written ---- */

static int rm_rf_children(int dfd) {
        int fd = dup(dfd);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return negative_errno();
        }
        rewinddir(d);
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dfd, de->d_name, 0) >= 0)
                        continue;
                if (errno != EISDIR && errno != EPERM) {
                        r = negative_errno();
                        continue;
                }
                int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        r = negative_errno();
                        continue;
                }
                int k = rm_rf_children(sub);
                close(sub);
                if (k < 0)
                        r = k;
                else if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0)
                        r = negative_errno();
        }
        closedir(d);
        return r;
}

/* ---- pass 2: the tar and the list ---- */

static la_ssize_t tar_write_cb(struct archive *a, void *userdata, const void *p, size_t n) {
        struct out *o = userdata;
        int r = out_write(o, p, n);
        if (r < 0) {
                archive_set_error(a, -r, "%s", strerror(-r));
                return -1;
        }
        return (la_ssize_t) n;
}

/* The directory holding PATH (O_PATH, cached), and PATH's last component. */
static int parent_of(struct writer *w, struct bkp_tree *t, const char *path, const char **ret_name) {
        const char *slash = strrchr(path, '/');
        size_t n = slash ? (size_t) (slash - path) : 1;
        const char *pp = slash ? path : ".";
        *ret_name = slash ? slash + 1 : path;
        if (w->parent_path && strlen(w->parent_path) == n && memcmp(w->parent_path, pp, n) == 0)
                return w->parent_fd;
        free(w->parent_path);
        w->parent_path = strndup(pp, n);
        if (w->parent_fd >= 0)
                close(w->parent_fd);
        w->parent_fd = -1;
        if (!w->parent_path)
                return -ENOMEM;
        w->parent_fd = openat(t->rootfd, w->parent_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (w->parent_fd < 0) {
                int r = negative_errno();
                free(w->parent_path);
                w->parent_path = NULL;
                return r;
        }
        return w->parent_fd;
}

static void parent_reset(struct writer *w) {
        free(w->parent_path);
        w->parent_path = NULL;
        if (w->parent_fd >= 0)
                close(w->parent_fd);
        w->parent_fd = -1;
}

static int changed(struct writer *w, struct bkp_tree *t, const char *path) {
        char p[BKP_PRETTY_MAX];
        return bkp_errorf(w->err, -EBUSY,
                          "%s in %s changed while it was backed up; back up a shadow copy (a frozen tree)",
                          bkp_pretty(path, p), t->t->root);
}

/* Reads the extended attributes again into AE, checking they are those the scan hashed. */
static int add_xattrs(struct writer *w, struct bkp_tree *t, struct bkp_item *it, int dfd, const char *name,
                      struct archive_entry *ae) {
        if (!it->e.has_xattrs)
                return 0;
        struct bkp_xattrs x = {};
        int r = bkp_xattrs_read(dfd, name, &x);
        uint8_t h[BKP_SHA256_LEN];
        if (r >= 0 && x.n > 0)
                r = bkp_xattrs_hash(&x, h);
        if (r >= 0 && (x.n == 0 || memcmp(h, it->e.xattrs, BKP_SHA256_LEN) != 0))
                r = -EBUSY;
        for (size_t i = 0; r >= 0 && i < x.n; i++)
                archive_entry_xattr_add_entry(ae, x.items[i].name, x.items[i].value, x.items[i].size);
        bkp_xattrs_release(&x);
        if (r == -EBUSY)
                return changed(w, t, it->e.path);
        if (r < 0) {
                char p[BKP_PRETTY_MAX];
                return bkp_errorf(w->err, r, "cannot read the extended attributes of %s in %s: %s",
                                  bkp_pretty(it->e.path, p), t->t->root, strerror(-r));
        }
        return 0;
}

struct region {
        uint64_t off, len;
};

/* The data regions of FD (SIZE bytes), by SEEK_DATA/SEEK_HOLE; NULL and 0 if the whole file. */
static int find_regions(int fd, uint64_t size, struct region **ret, size_t *ret_n) {
        struct region *v = NULL;
        size_t n = 0, cap = 0;
        for (uint64_t off = 0; off < size;) {
                off_t data = lseek(fd, (off_t) off, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break;
                if (data < 0) {
                        free(v);
                        if (errno == EINVAL || errno == EOPNOTSUPP) {
                                *ret = NULL;
                                *ret_n = 0;
                                return 0;
                        }
                        return negative_errno();
                }
                off_t hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0) {
                        free(v);
                        return negative_errno();
                }
                if ((uint64_t) data >= size)
                        break;
                uint64_t end = MIN((uint64_t) hole, size);
                if (n == cap) {
                        cap = cap ? cap * 2 : 8;
                        struct region *nv = reallocarray(v, cap, sizeof(*nv));
                        if (!nv) {
                                free(v);
                                return -ENOMEM;
                        }
                        v = nv;
                }
                v[n++] = (struct region){ (uint64_t) data, end - (uint64_t) data };
                off = end;
        }
        if (n == 1 && v[0].off == 0 && v[0].len == size) {
                free(v);
                v = NULL;
                n = 0;
        } else if (n == 0) {
                /* all a hole: one empty region at the end, which makes it sparse */
                v = malloc(sizeof(*v));
                if (!v)
                        return -ENOMEM;
                v[n++] = (struct region){ size, 0 };
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static int feed(struct writer *w, struct archive *a, bkp_sha *sha, const void *p, size_t n) {
        int r = bkp_sha_update(sha, p, n);
        if (r < 0)
                return r;
        la_ssize_t k = archive_write_data(a, p, n);
        if (k < 0 || (size_t) k != n)
                return -EIO;
        w->tick.p.bytes_done += n;
        return bkp_tick(&w->tick, false, w->err);
}

static int feed_zeros(struct writer *w, struct archive *a, bkp_sha *sha, uint64_t n) {
        static const char zeros[64 * 1024];
        while (n > 0) {
                size_t k = (size_t) MIN(n, (uint64_t) sizeof(zeros));
                int r = feed(w, a, sha, zeros, k);
                if (r < 0)
                        return r;
                n -= k;
        }
        return 0;
}

/* The error of a failed libarchive call while writing PATH into TAR. */
static int archive_failed(struct writer *w, struct archive *a, struct out *tar, const char *path) {
        char p[BKP_PRETTY_MAX];
        if (tar->error < 0)
                return bkp_errorf(w->err, tar->error, "cannot write %s in %s: %s", tar->name, w->o->dir,
                                  strerror(-tar->error));
        return bkp_errorf(w->err, -EIO, "cannot write %s into %s: %s", bkp_pretty(path, p), tar->name,
                          archive_error_string(a) ?: "libarchive failed");
}

/* Streams the content of the file IT (NAME in PFD) into the tar, computing its checksum. */
static int write_file(struct writer *w, struct bkp_tree *t, struct bkp_item *it, int pfd, const char *name,
                      struct archive *a, struct archive_entry *ae, struct out *tar) {
        char p[BKP_PRETTY_MAX];
        _cleanup_(bkp_sha_freep) bkp_sha *sha = bkp_sha_new();
        _cleanup_free_ struct region *regions = NULL;
        if (!sha)
                return -ENOMEM;
        _cleanup_close_ int fd =
                openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
        if (fd < 0 && errno == EPERM)
                fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return bkp_errorf(w->err, negative_errno(), "cannot open %s in %s: %m",
                                  bkp_pretty(it->e.path, p), t->t->root);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return bkp_errorf(w->err, negative_errno(), "cannot stat %s in %s: %m",
                                  bkp_pretty(it->e.path, p), t->t->root);
        if (st.st_ino != it->ino || st.st_dev != it->dev || (uint64_t) st.st_size != it->e.size ||
            st.st_mtim.tv_sec != it->e.mtime_sec || (uint64_t) st.st_mtim.tv_nsec != it->e.mtime_nsec)
                return changed(w, t, it->e.path);

        int r = add_xattrs(w, t, it, fd, NULL, ae);
        if (r < 0)
                return r;

        size_t n_regions = 0;
        if ((uint64_t) st.st_blocks * 512 < it->e.size) {
                r = find_regions(fd, it->e.size, &regions, &n_regions);
                if (r < 0)
                        return bkp_errorf(w->err, r, "cannot find the holes of %s in %s: %s",
                                          bkp_pretty(it->e.path, p), t->t->root, strerror(-r));
        }
        for (size_t i = 0; i < n_regions; i++)
                archive_entry_sparse_add_entry(ae, (la_int64_t) regions[i].off, (la_int64_t) regions[i].len);
        if (n_regions > 0 && regions[n_regions - 1].off + regions[n_regions - 1].len < it->e.size)
                archive_entry_sparse_add_entry(ae, (la_int64_t) it->e.size, 0);

        if (archive_write_header(a, ae) < ARCHIVE_WARN)
                return archive_failed(w, a, tar, it->e.path);

        struct region whole = { 0, it->e.size };
        const struct region *v = n_regions > 0 ? regions : &whole;
        size_t nv = n_regions > 0 ? n_regions : 1;
        uint64_t pos = 0;
        for (size_t i = 0; r >= 0 && i < nv; i++) {
                r = feed_zeros(w, a, sha, v[i].off - pos);
                uint64_t end = v[i].off + v[i].len, ahead = v[i].off;
                for (uint64_t off = v[i].off; r >= 0 && off < end;) {
                        /* keep READ_AHEAD to 2 * READ_AHEAD bytes asked for ahead of the reads */
                        if (ahead < end && ahead < off + READ_AHEAD) {
                                uint64_t n = MIN(end, off + 2 * READ_AHEAD) - ahead;
                                (void) posix_fadvise(fd, (off_t) ahead, (off_t) n, POSIX_FADV_WILLNEED);
                                ahead += n;
                        }
                        size_t want = (size_t) MIN((uint64_t) IO_BUF_SIZE, end - off);
                        ssize_t k = pread(fd, w->buf, want, (off_t) off);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return bkp_errorf(w->err, negative_errno(), "cannot read %s in %s: %m",
                                                  bkp_pretty(it->e.path, p), t->t->root);
                        if (k == 0)
                                return changed(w, t, it->e.path);
                        w->stats.bytes_read += (uint64_t) k;
                        r = feed(w, a, sha, w->buf, (size_t) k);
                        off += (uint64_t) k;
                }
                pos = v[i].off + v[i].len;
        }
        if (r >= 0)
                r = feed_zeros(w, a, sha, it->e.size - pos);
        if (r == -EIO)
                return archive_failed(w, a, tar, it->e.path);
        if (r < 0)
                return r;
        r = bkp_sha_final(sha, it->e.sha256);
        if (r < 0)
                return r;
        it->e.has_sha = true;

        if (fstat(fd, &st) < 0 || (uint64_t) st.st_size != it->e.size ||
            st.st_mtim.tv_sec != it->e.mtime_sec || (uint64_t) st.st_mtim.tv_nsec != it->e.mtime_nsec)
                return changed(w, t, it->e.path);
        return 0;
}

static int write_entry(struct writer *w, struct bkp_tree *t, struct bkp_item *it, struct archive *a,
                       struct archive_entry *ae, struct out *tar) {
        char p[BKP_PRETTY_MAX];
        const struct bkp_entry *e = &it->e;
        archive_entry_clear(ae);
        archive_entry_copy_pathname(ae, e->path);
        archive_entry_set_perm(ae, e->mode);
        archive_entry_set_uid(ae, e->uid);
        archive_entry_set_gid(ae, e->gid);
        const char *un = name_lookup(&w->users, e->uid, false), *gn = name_lookup(&w->groups, e->gid, true);
        if (un)
                archive_entry_copy_uname(ae, un);
        if (gn)
                archive_entry_copy_gname(ae, gn);
        archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);

        const char *name = NULL;
        int pfd = -1;
        if (strcmp(e->path, ".") != 0) {
                pfd = parent_of(w, t, e->path, &name);
                if (pfd < 0)
                        return bkp_errorf(w->err, pfd, "cannot open the directory of %s in %s: %s",
                                          bkp_pretty(e->path, p), t->t->root, strerror(-pfd));
        }

        int r = 0;
        switch (e->type) {
        case BKP_ENTRY_FILE:
                archive_entry_set_filetype(ae, AE_IFREG);
                archive_entry_set_size(ae, (la_int64_t) e->size);
                return write_file(w, t, it, pfd, name, a, ae, tar);
        case BKP_ENTRY_HARDLINK:
                archive_entry_set_filetype(ae, AE_IFREG);
                archive_entry_copy_hardlink(ae, e->target);
                archive_entry_set_size(ae, 0);
                it->e.has_sha = true;
                memcpy(it->e.sha256, t->items[it->first].e.sha256, BKP_SHA256_LEN);
                break;
        case BKP_ENTRY_DIR: {
                archive_entry_set_filetype(ae, AE_IFDIR);
                if (!e->has_xattrs)
                        break;
                _cleanup_close_ int dfd =
                        pfd < 0 ? openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                                : openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0)
                        return bkp_errorf(w->err, negative_errno(), "cannot open directory %s in %s: %m",
                                          bkp_pretty(e->path, p), t->t->root);
                r = add_xattrs(w, t, it, dfd, NULL, ae);
                break;
        }
        case BKP_ENTRY_SYMLINK:
                archive_entry_set_filetype(ae, AE_IFLNK);
                archive_entry_copy_symlink(ae, e->target);
                r = add_xattrs(w, t, it, pfd, name, ae);
                break;
        case BKP_ENTRY_CHAR:
        case BKP_ENTRY_BLOCK:
                archive_entry_set_filetype(ae, e->type == BKP_ENTRY_CHAR ? AE_IFCHR : AE_IFBLK);
                archive_entry_set_rdevmajor(ae, e->rdev_major);
                archive_entry_set_rdevminor(ae, e->rdev_minor);
                r = add_xattrs(w, t, it, pfd, name, ae);
                break;
        case BKP_ENTRY_FIFO:
                archive_entry_set_filetype(ae, AE_IFIFO);
                r = add_xattrs(w, t, it, pfd, name, ae);
                break;
        }
        if (r < 0)
                return r;
        if (archive_write_header(a, ae) < ARCHIVE_WARN)
                return archive_failed(w, a, tar, e->path);
        return 0;
}

static int write_tree(struct writer *w, struct bkp_tree *t) {
        char name[BKP_TARGET_NAME_MAX + 16];
        struct out tar = { .fd = -1 }, list = { .fd = -1 };
        struct archive *a = NULL;
        struct archive_entry *ae = NULL;
        struct bkp_buf line = {};

        snprintf(name, sizeof(name), "%s.tar", t->t->name);
        int r = out_open(w, w->dirfd, name, true, &tar);
        if (r < 0)
                goto finish;
        snprintf(name, sizeof(name), "%s.list", t->t->name);
        r = out_open(w, w->dirfd, name, false, &list);
        if (r < 0)
                goto finish;
        r = out_write(&list, BKP_LIST_HEADER, strlen(BKP_LIST_HEADER));
        if (r < 0) {
                r = bkp_errorf(w->err, r, "cannot write %s in %s: %s", list.name, w->o->dir, strerror(-r));
                goto finish;
        }

        a = archive_write_new();
        ae = archive_entry_new();
        if (!a || !ae) {
                r = -ENOMEM;
                goto finish;
        }
        if (archive_write_set_format_pax(a) != ARCHIVE_OK ||
            archive_write_set_options(a, "hdrcharset=BINARY") != ARCHIVE_OK ||
            archive_write_open(a, &tar, NULL, tar_write_cb, NULL) != ARCHIVE_OK) {
                r = bkp_errorf(w->err, -EIO, "cannot start %s: %s", tar.name,
                               archive_error_string(a) ?: "libarchive failed");
                goto finish;
        }

        for (size_t i = 0; r >= 0 && i < t->n; i++) {
                struct bkp_item *it = &t->items[i];
                if (it->stored)
                        r = write_entry(w, t, it, a, ae, &tar);
                if (r < 0)
                        break;
                line.len = 0;
                r = bkp_list_format_entry(&line, &it->e);
                if (r >= 0)
                        r = out_write(&list, line.data, line.len);
                if (r < 0) {
                        r = bkp_errorf(w->err, r, "cannot write %s in %s: %s", list.name, w->o->dir,
                                       strerror(-r));
                        break;
                }
                w->tick.p.files_done++;
                r = bkp_tick(&w->tick, false, w->err);
        }
        if (r < 0)
                goto finish;
        if (archive_write_close(a) != ARCHIVE_OK) {
                r = archive_failed(w, a, &tar, ".");
                goto finish;
        }
        r = out_close(w, &tar);
        if (r >= 0)
                r = out_close(w, &list);
finish:
        parent_reset(w);
        if (ae)
                archive_entry_free(ae);
        if (a)
                archive_write_free(a);
        bkp_buf_release(&line);
        out_release(&tar);
        out_release(&list);
        return r;
}

/* ---- the document ---- */

static int make_id(char ret[BKP_ID_LEN + 1]) {
        uint8_t b[16];
        for (size_t done = 0; done < sizeof(b);) {
                ssize_t n = getrandom(b + done, sizeof(b) - done, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t) n;
        }
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
        snprintf(ret, BKP_ID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                 b[14], b[15]);
        return 0;
}

/* A UUID of any case, in lower case; -EINVAL otherwise. */
static int uuid_lower(const char *s, char ret[BKP_ID_LEN + 1]) {
        if (strnlen(s, BKP_ID_LEN + 1) != BKP_ID_LEN)
                return -EINVAL;
        char buf[BKP_ID_LEN + 1];
        for (size_t i = 0; i <= BKP_ID_LEN; i++)
                buf[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char) (s[i] - 'A' + 'a') : s[i];
        if (!bkp_uuid_valid(buf))
                return -EINVAL;
        memcpy(ret, buf, sizeof(buf));
        return 0;
}

static bool strdup_opt(const char *s, const char **ret) {
        *ret = s ? strdup(s) : NULL;
        return !s || *ret;
}

static uint64_t realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* The document of O, without its base (checked: -EINVAL with a sentence). */
static int build_document(const struct bkp_write_opts *o, struct bkp_document **ret, char *err) {
        _cleanup_(bkp_document_freep) struct bkp_document *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        int r = make_id(d->id);
        if (r < 0)
                return bkp_errorf(err, r, "cannot make a backup id: %s", strerror(-r));
        d->type = o->type;
        d->image = o->image;
        if (o->image && o->type == BKP_LOG)
                return bkp_errorf(err, -EINVAL,
                                  "a log backup is of a writer's log files, not of block images; give "
                                  "--type incremental");
        d->created_usec = o->created_usec ? o->created_usec : realtime_usec();
        if (o->set_id && uuid_lower(o->set_id, d->set_id) < 0)
                return bkp_errorf(err, -EINVAL,
                                  "the set id %s is not a UUID; give one as 8-4-4-4-12 hex digits",
                                  o->set_id);

        if (o->n_targets > BKP_MAX_TARGETS || (o->n_targets > 0 && !o->targets))
                return bkp_errorf(err, -EINVAL, "too many targets (at most %d)", BKP_MAX_TARGETS);
        d->targets = calloc(MAX(o->n_targets, (size_t) 1), sizeof(*d->targets));
        if (!d->targets)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_targets; i++) {
                const struct bkp_target *t = &o->targets[i];
                if (!t->name || !bkp_target_name_valid(t->name))
                        return bkp_errorf(err, -EINVAL,
                                          "target name \"%s\" is not valid; use 1 to %d letters, digits, "
                                          "'.', '_' and '-'",
                                          t->name ?: "", BKP_TARGET_NAME_MAX);
                if (!t->root)
                        return bkp_errorf(err, -EINVAL, "target %s has no root directory; give one",
                                          t->name);
                if (t->origin && (!*t->origin || strlen(t->origin) > BKP_PATH_MAX))
                        return bkp_errorf(err, -EINVAL, "the origin of target %s is empty or too long",
                                          t->name);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(o->targets[j].name, t->name) == 0)
                                return bkp_errorf(err, -EINVAL,
                                                  "target name %s is given twice; names must be unique",
                                                  t->name);
                if (o->image && t->shadow_id && !bkp_uuid_valid(t->shadow_id))
                        return bkp_errorf(err, -EINVAL, "the shadow id of target %s is not a UUID", t->name);
                d->n_targets++;
                if (!strdup_opt(t->name, &d->targets[i].name) ||
                    !strdup_opt(t->origin, &d->targets[i].origin) ||
                    !strdup_opt(o->image ? t->shadow_id : NULL, &d->targets[i].shadow_id))
                        return -ENOMEM;
                if (o->image) {
                        d->targets[i].size = t->size;
                        d->targets[i].chunk_size = t->chunk_size;
                }
        }

        if (o->n_components > BKP_MAX_COMPONENTS || (o->n_components > 0 && !o->components))
                return bkp_errorf(err, -EINVAL, "too many components (at most %d)", BKP_MAX_COMPONENTS);
        d->components = calloc(MAX(o->n_components, (size_t) 1), sizeof(*d->components));
        if (!d->components)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_components; i++) {
                const struct bkp_component *c = &o->components[i];
                struct bkp_component *dc = &d->components[d->n_components++];
                char class_id[BKP_ID_LEN + 1];
                if (!bkp_text_valid(c->writer, BKP_TEXT_MAX, false) ||
                    !bkp_text_valid(c->name, BKP_TEXT_MAX, false) ||
                    (c->logical_path && !bkp_text_valid(c->logical_path, BKP_TEXT_MAX, false)) ||
                    !c->writer_class_id || uuid_lower(c->writer_class_id, class_id) < 0 ||
                    (c->backup_metadata && !bkp_text_valid(c->backup_metadata, BKP_METADATA_MAX, true)))
                        return bkp_errorf(err, -EINVAL,
                                          "component %zu is not valid: it needs a writer, a writer class id "
                                          "(a UUID) and a name, "
                                          "as UTF-8 text without control characters",
                                          i);
                if (!strdup_opt(c->writer, &dc->writer) || !strdup_opt(class_id, &dc->writer_class_id) ||
                    !strdup_opt(c->logical_path, &dc->logical_path) || !strdup_opt(c->name, &dc->name) ||
                    !strdup_opt(c->backup_metadata, &dc->backup_metadata))
                        return -ENOMEM;
                dc->succeeded = c->succeeded;
        }

        size_t n_docs = 0;
        while (o->writer_documents && o->writer_documents[n_docs])
                if (++n_docs > BKP_MAX_WRITER_DOCUMENTS)
                        return bkp_errorf(err, -EINVAL, "too many writer documents (at most %d)",
                                          BKP_MAX_WRITER_DOCUMENTS);
        d->writer_documents = calloc(MAX(n_docs, (size_t) 1), sizeof(char *));
        if (!d->writer_documents)
                return -ENOMEM;
        for (size_t i = 0; i < n_docs; i++) {
                if (strlen(o->writer_documents[i]) > BKP_XML_MAX)
                        return bkp_errorf(err, -EINVAL, "writer document %zu is bigger than %u bytes", i,
                                          BKP_XML_MAX);
                d->writer_documents[i] = strdup(o->writer_documents[i]);
                if (!d->writer_documents[i])
                        return -ENOMEM;
                d->n_writer_documents++;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

static int set_base(struct writer *w, struct bkp_backup **ret_base) {
        const struct bkp_write_opts *o = w->o;
        struct bkp_document *d = w->doc;
        bool chained = o->type == BKP_INCREMENTAL || o->type == BKP_DIFFERENTIAL || o->type == BKP_LOG;
        if (!chained) {
                if (o->base_dir)
                        return bkp_errorf(w->err, -EINVAL, "a %s backup has no base; do not give one",
                                          bkp_type_to_string(o->type));
                *ret_base = NULL;
                return 0;
        }
        if (!o->base_dir)
                return bkp_errorf(w->err, -EINVAL, "a %s backup needs a base backup; give one",
                                  bkp_type_to_string(o->type));
        struct bkp_backup *b;
        int r = bkp_backup_open(o->base_dir, &b, w->err);
        if (r < 0)
                return r;
        r = bkp_check_base(d, b->doc, o->base_dir, w->err);
        if (r >= 0) {
                d->base_path = realpath(o->base_dir, NULL);
                if (!d->base_path)
                        r = bkp_errorf(w->err, negative_errno(), "cannot resolve %s: %m", o->base_dir);
                else if (strlen(d->base_path) > BKP_PATH_MAX)
                        r = bkp_errorf(w->err, -ENAMETOOLONG, "the path of base %s is too long",
                                       o->base_dir);
        }
        if (r < 0) {
                bkp_backup_free(b);
                return r;
        }
        memcpy(d->base_id, b->doc->id, sizeof(d->base_id));
        *ret_base = b;
        return 0;
}

/* 1 if the directory DFD is empty, 0 if not. */
static int dir_is_empty(int dfd) {
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return negative_errno();
        }
        int r = 1;
        struct dirent *de;
        while (r > 0 && (de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        r = 0;
        closedir(d);
        return r;
}

/* Creates O->dir (or checks it is an empty directory) and opens it. */
static int prepare_dir(struct writer *w, bool *ret_created) {
        const char *dir = w->o->dir;
        bool created = mkdir(dir, 0700) >= 0;
        if (!created && errno != EEXIST)
                return bkp_errorf(w->err, negative_errno(), "cannot create backup directory %s: %m", dir);
        w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (w->dirfd < 0) {
                int r = negative_errno();
                if (created)
                        rmdir(dir);
                return bkp_errorf(w->err, r,
                                  "cannot open backup directory %s: %s; give a new or an empty directory",
                                  dir, strerror(-r));
        }
        if (!created) {
                int r = dir_is_empty(w->dirfd);
                if (r < 0)
                        return bkp_errorf(w->err, r, "cannot read %s: %s", dir, strerror(-r));
                if (r == 0)
                        return bkp_errorf(w->err, -EEXIST,
                                          "%s is not empty; give a new or an empty directory", dir);
        }
        *ret_created = created;
        return 0;
}

static int write_documents(struct writer *w) {
        int r;
        const struct bkp_document *d = w->doc;
        if (d->n_writer_documents > 0) {
                if (mkdirat(w->dirfd, "writers", 0700) < 0)
                        return bkp_errorf(w->err, negative_errno(), "cannot create %s/writers: %m",
                                          w->o->dir);
                _cleanup_close_ int wfd =
                        openat(w->dirfd, "writers", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (wfd < 0)
                        return bkp_errorf(w->err, negative_errno(), "cannot open %s/writers: %m", w->o->dir);
                for (size_t i = 0; i < d->n_writer_documents; i++) {
                        char name[48];
                        snprintf(name, sizeof(name), "writers/%zu.xml", i);
                        r = write_whole(w, wfd, name, d->writer_documents[i],
                                        strlen(d->writer_documents[i]));
                        if (r < 0)
                                return r;
                }
                if (fsync(wfd) < 0)
                        return bkp_errorf(w->err, negative_errno(), "cannot sync %s/writers: %m", w->o->dir);
        }
        _cleanup_free_ char *xml = NULL;
        size_t len;
        r = bkp_document_to_xml(d, &xml, &len);
        if (r < 0)
                return bkp_errorf(w->err, r, "cannot make backup.xml: %s", strerror(-r));
        return write_whole(w, w->dirfd, "backup.xml", xml, len);
}

static int write_manifest(struct writer *w) {
        struct bkp_buf b = {};
        bkp_manifest_sort(&w->manifest);
        int r = bkp_manifest_format(&w->manifest, &b);
        if (r < 0) {
                bkp_buf_release(&b);
                return r;
        }
        struct out o;
        r = out_open(w, w->dirfd, "manifest.tmp", false, &o);
        if (r >= 0) {
                r = out_write(&o, b.data, b.len);
                if (r >= 0)
                        r = out_flush(&o);
                if (r >= 0 && fsync(o.fd) < 0)
                        r = negative_errno();
                if (r < 0)
                        r = bkp_errorf(w->err, r, "cannot write the manifest in %s: %s", w->o->dir,
                                       strerror(-r));
        }
        out_release(&o);
        w->stats.bytes_written += b.len;
        bkp_buf_release(&b);
        if (r < 0)
                return r;
        if (renameat(w->dirfd, "manifest.tmp", w->dirfd, "manifest") < 0 || fsync(w->dirfd) < 0)
                return bkp_errorf(w->err, negative_errno(), "cannot finish the manifest in %s: %m",
                                  w->o->dir);
        return 0;
}

int bkp_write(const struct bkp_write_opts *o, struct bkp_stats *ret_stats, struct bkp_document **ret_doc,
              char err[BKP_ERR_MAX]) {
        if (!o || !o->dir || !bkp_type_to_string(o->type))
                return bkp_errorf(err, -EINVAL, "no backup directory or no valid backup type given");

        struct writer w = { .o = o, .dirfd = -1, .parent_fd = -1, .err = err };
        w.tick = (struct bkp_ticker){ .fn = o->progress, .userdata = o->userdata };
        struct bkp_backup *base = NULL;
        bool created = false, dir_ready = false;

        int r = build_document(o, &w.doc, err);
        if (r < 0)
                goto finish;
        r = set_base(&w, &base);
        if (r < 0)
                goto finish;
        if (bkp_document_validate(w.doc) < 0) {
                r = bkp_errorf(err, -EINVAL, "the backup's description is not valid");
                goto finish;
        }
        w.buf = malloc(IO_BUF_SIZE);
        w.trees = calloc(MAX(o->n_targets, (size_t) 1), sizeof(*w.trees));
        if (!w.buf || !w.trees) {
                r = bkp_errorf(err, -ENOMEM, "out of memory");
                goto finish;
        }
        r = prepare_dir(&w, &created);
        if (r < 0)
                goto finish;
        dir_ready = true;

        /* Images are read and written in one pass; trees are scanned whole, then written. */
        if (o->image) {
                r = bkp_image_write(w.dirfd, o, base, &w.manifest, &w.stats, &w.tick, err);
                if (r < 0)
                        goto finish;
        }
        for (size_t i = 0; !o->image && i < o->n_targets; i++) {
                struct bkp_tree *t = &w.trees[w.n_trees++];
                t->t = &o->targets[i];
                t->rootfd = -1;
                if (base) {
                        r = bkp_backup_load_list(base, t->t->name, &t->base, err);
                        if (r < 0)
                                goto finish;
                }
                r = bkp_tree_scan(t, w.doc->id, &w.stats, &w.tick.p, err);
                bkp_list_release(&t->base);
                if (r < 0)
                        goto finish;
        }
        r = bkp_tick(&w.tick, true, err);
        if (r < 0)
                goto finish;

        for (size_t i = 0; i < w.n_trees; i++) {
                r = write_tree(&w, &w.trees[i]);
                if (r < 0)
                        goto finish;
        }
        r = write_documents(&w);
        if (r < 0)
                goto finish;
        r = bkp_tick(&w.tick, true, err);
        if (r < 0)
                goto finish;
        r = write_manifest(&w);
        if (r < 0)
                goto finish;

        if (ret_stats)
                *ret_stats = w.stats;
        if (ret_doc)
                *ret_doc = TAKE_PTR(w.doc);
        r = 0;
finish:
        if (r < 0 && dir_ready) {
                (void) rm_rf_children(w.dirfd);
                if (created)
                        (void) rmdir(o->dir);
        }
        for (size_t i = 0; i < w.n_trees; i++)
                bkp_tree_release(&w.trees[i]);
        free(w.trees);
        if (w.dirfd >= 0)
                close(w.dirfd);
        bkp_backup_free(base);
        bkp_document_free(w.doc);
        bkp_manifest_release(&w.manifest);
        name_cache_release(&w.users);
        name_cache_release(&w.groups);
        free(w.buf);
        parent_reset(&w);
        return r;
}
