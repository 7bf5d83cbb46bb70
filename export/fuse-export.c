/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The FUSE export: engine volumes as files, for loop devices (see fuse-export.h).
 *
 * The tree is fixed: the root (inode 1) holds volumes/ (2) and shadows/ (3), and every exported
 * file is a node with its own inode number, never reused while mounted. A node lives while it is
 * listed in its directory, looked up by the kernel (nlookup) or open (n_open); removing a file
 * only unlists it and refuses while it is open, so a file handle (fi->fh points to the node) is
 * always backed by a live eng_volume and the I/O path takes no lock of ours. The kernel forgets
 * a removed name at once (notify_inval_entry), so an added file appears and a removed one
 * vanishes without waiting for the entry timeouts, which can therefore be long: attributes never
 * change (sizes are fixed).
 *
 * Locking: LOCK guards the node list and every field marked (L). Request handlers for I/O
 * (read, write, fsync, flush, fallocate) touch only the node behind their file handle. Kernel
 * notifications are sent without LOCK, since the kernel may wait on a lookup that needs it.
 *
 * Workers: a fixed pool of N threads, each receiving and processing requests in a loop on the
 * one session descriptor (as libfuse's multi-threaded loop does, but without growing or
 * shrinking). They are the only FUSE threads: FIFREEZE of a filesystem on a loop device over an
 * export waits for its flush to pass through them, so callers freeze from another thread and
 * hold the engine's writes only once frozen (a worker waiting on a hold serves nothing, and a
 * flush that needs it would never end). Each worker marks itself an I/O flusher
 * (PR_SET_IO_FLUSHER), so that its allocations do not recurse into writeback through the very
 * loop device it serves. Stopping cancels workers only while they wait for a request.
 *
 * FUSE settings, chosen by measurement: bench/bench-fuse.sh (fio libaio, direct, QD16, through
 * losetup --direct-io=on; 1 GiB volume, host page cache dropped before each case), 2 vCPUs shared
 * with other work, so throughput varied by 30% between identical runs: medians of 3 interleaved
 * rounds, with the exporter's CPU per I/O as the steadier figure.
 *   - FOPEN_DIRECT_IO (page_cache off). The loop device opens the file O_DIRECT, so the FUSE page
 *     cache is bypassed either way: 4 KiB random writes 126 MiB/s direct vs 128 page cache
 *     (16.3 vs 15.9 us/io in the exporter), 1 MiB sequential 1746 vs 2063 MiB/s (465 vs 448
 *     us/io): no difference beyond the noise. Direct I/O wins on what the figures do not show:
 *     other readers of a file (cp of a shadow) do not keep a second copy of data the host caches
 *     below the engine, the kernel does no flush-and-invalidate of the range around every
 *     direct request, and engine_revert() needs no cache invalidation. Writeback cache (which
 *     only acts with the page cache) off: 132 vs 126 MiB/s, within the noise.
 *   - max_write = max_read = 1 MiB (the kernel's 256-page maximum), against 128 KiB: sequential
 *     1 MiB writes 1746 vs 1114 MiB/s and 465 vs 570 us of exporter CPU per MiB (one request and
 *     one engine batch instead of eight); 4 KiB writes unchanged.
 *   - No splice: the engine needs the data in memory, so a spliced write is read from a pipe
 *     instead of from /dev/fuse: 1 MiB writes 1420 vs 1746 MiB/s, 4 KiB writes 144 vs 126 (noise).
 *   - max_background 128 (kernel default 12): the loop device's direct I/O is asynchronous,
 *     which FUSE counts as background requests, so 12 capped a QD16 queue: 4 KiB writes 111 vs 126
 *     MiB/s, 18.3 vs 16.3 us/io.
 *   - 16 workers. Writes into the host page cache are CPU-bound here and 1 to 16 workers gave
 *     the same throughput; but a copy-on-write blocks its worker on a read of the old data and,
 *     for a persistent snapshot, on a journal commit that concurrent writers share. First writes
 *     after a snapshot, 4 KiB (one per chunk): 1 worker 14 MiB/s, 2: 22, 8: 26-39, 16: 30-38;
 *     with a persistent snapshot 1: 3.3, 8: 6-13, 16: 10-16; 1 MiB first writes 1: 234-282,
 *     8: 390-531, 16: 366-616 MiB/s. Idle workers cost nothing, so one per request at QD16.
 *   - No AUTO_INVAL_DATA (it would send a GETATTR before reads), entry and attribute timeouts of
 *     an hour (attributes never change; removals are pushed to the kernel).
 */

#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "export/fuse-export.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define INO_VOLUMES 2u
#define INO_SHADOWS 3u
#define INO_FIRST_FILE 4u

#define TIMEOUT_S 3600.0
#define BLOCK 4096u
#define MAX_BACKGROUND_DEFAULT 128u
#define RELEASE_WAIT_MS 1000u

enum node_kind { NODE_VOLUME, NODE_SHADOW };

struct node {
        struct node *next; /* (L) every node, listed or not */
        fuse_ino_t ino;
        enum node_kind kind;
        char *name;
        eng_volume *vol;
        uint32_t snap_id;
        uint64_t size;
        struct timespec ctime;
        uint64_t nlookup; /* (L) references held by the kernel */
        unsigned n_open; /* (L) open file handles */
        bool listed; /* (L) visible in its directory */
};

struct fuse_export {
        struct fuse_session *se;
        struct fuse_export_params p;
        bool mounted, started;
        pthread_t *workers;
        unsigned n_workers;
        bool stopping; /* atomic */
        bool exit_reported; /* atomic */
        struct timespec birth;
        uid_t uid;
        gid_t gid;

        pthread_mutex_t lock;
        pthread_cond_t released; /* signalled when a file handle is released */
        struct node *nodes; /* (L) */
        fuse_ino_t next_ino; /* (L) */
        struct dirbuf *dirs; /* listings of open directories (L) */
        uint64_t next_dir_id; /* (L) */

        struct fuse_export_stats stats; /* atomic counters */
};

/* A per-worker buffer for reads and for spliced writes, of max_io bytes. */
static __thread void *tls_io_buf;

static void stat_add(uint64_t *counter, uint64_t n) {
        __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static fuse_export *req_export(fuse_req_t req) {
        return fuse_req_userdata(req);
}

static struct node *fh_node(const struct fuse_file_info *fi) {
        return (struct node *) (uintptr_t) fi->fh;
}

/* (L held) The node with inode number INO, or NULL. */
static struct node *node_find(fuse_export *e, fuse_ino_t ino) {
        for (struct node *n = e->nodes; n; n = n->next)
                if (n->ino == ino)
                        return n;
        return NULL;
}

/* (L held) The listed node of KIND named NAME, or NULL. */
static struct node *node_find_name(fuse_export *e, enum node_kind kind, const char *name) {
        for (struct node *n = e->nodes; n; n = n->next)
                if (n->listed && n->kind == kind && strcmp(n->name, name) == 0)
                        return n;
        return NULL;
}

/* (L held) Frees N if nothing refers to it any more. */
static void node_maybe_free(fuse_export *e, struct node *n) {
        if (n->listed || n->nlookup > 0 || n->n_open > 0)
                return;
        for (struct node **pp = &e->nodes; *pp; pp = &(*pp)->next)
                if (*pp == n) {
                        *pp = n->next;
                        break;
                }
        free(n->name);
        free(n);
}

static fuse_ino_t dir_of(enum node_kind kind) {
        return kind == NODE_VOLUME ? INO_VOLUMES : INO_SHADOWS;
}

static void fill_dir_attr(const fuse_export *e, fuse_ino_t ino, struct stat *st) {
        *st = (struct stat){
                .st_ino = ino,
                .st_mode = S_IFDIR | 0755,
                .st_nlink = ino == FUSE_ROOT_ID ? 4 : 2,
                .st_uid = e->uid,
                .st_gid = e->gid,
                .st_blksize = BLOCK,
                .st_atim = e->birth,
                .st_mtim = e->birth,
                .st_ctim = e->birth,
        };
}

static void fill_node_attr(const fuse_export *e, const struct node *n, struct stat *st) {
        *st = (struct stat){
                .st_ino = n->ino,
                .st_mode = S_IFREG | (n->kind == NODE_VOLUME ? 0600 : 0400),
                .st_nlink = 1,
                .st_uid = e->uid,
                .st_gid = e->gid,
                .st_size = (off_t) n->size,
                .st_blksize = BLOCK,
                .st_blocks = (blkcnt_t) DIV_ROUND_UP(n->size, 512),
                .st_atim = n->ctime,
                .st_mtim = n->ctime,
                .st_ctim = n->ctime,
        };
}

/* (L held) Fills the attributes of INO; -ENOENT if there is no such inode. */
static int fill_attr_locked(fuse_export *e, fuse_ino_t ino, struct stat *st) {
        if (ino == FUSE_ROOT_ID || ino == INO_VOLUMES || ino == INO_SHADOWS) {
                fill_dir_attr(e, ino, st);
                return 0;
        }
        struct node *n = node_find(e, ino);
        if (!n)
                return -ENOENT;
        fill_node_attr(e, n, st);
        return 0;
}

/* ---- requests on the tree ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
        fuse_export *e = userdata;

        conn->max_write = e->p.max_io;
        conn->max_read = e->p.max_io;
        conn->max_background = e->p.max_background;
        conn->congestion_threshold = e->p.max_background * 3 / 4;
        conn->want &= ~(unsigned) (FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                                   FUSE_CAP_SPLICE_MOVE | FUSE_CAP_WRITEBACK_CACHE);
        conn->want |= conn->capable & FUSE_CAP_ASYNC_DIO;
        if (e->p.splice)
                conn->want |= conn->capable &
                              (FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
        if (e->p.page_cache && e->p.writeback_cache)
                conn->want |= conn->capable & FUSE_CAP_WRITEBACK_CACHE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        fuse_export *e = req_export(req);
        struct fuse_entry_param ep = { .attr_timeout = TIMEOUT_S, .entry_timeout = TIMEOUT_S };

        if (parent == FUSE_ROOT_ID) {
                if (strcmp(name, "volumes") == 0)
                        ep.ino = INO_VOLUMES;
                else if (strcmp(name, "shadows") == 0)
                        ep.ino = INO_SHADOWS;
                else {
                        fuse_reply_err(req, ENOENT);
                        return;
                }
                fill_dir_attr(e, ep.ino, &ep.attr);
                fuse_reply_entry(req, &ep);
                return;
        }
        if (parent != INO_VOLUMES && parent != INO_SHADOWS) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        pthread_mutex_lock(&e->lock);
        struct node *n = node_find_name(e, parent == INO_VOLUMES ? NODE_VOLUME : NODE_SHADOW, name);
        if (n) {
                n->nlookup++;
                ep.ino = n->ino;
                fill_node_attr(e, n, &ep.attr);
        }
        pthread_mutex_unlock(&e->lock);
        if (!n) {
                /* Not cached as a negative entry: a file added later appears at once. */
                fuse_reply_err(req, ENOENT);
                return;
        }
        fuse_reply_entry(req, &ep);
}

static void forget_one(fuse_export *e, fuse_ino_t ino, uint64_t nlookup) {
        struct node *n = node_find(e, ino);
        if (!n)
                return; /* the directories are never freed */
        n->nlookup -= MIN(nlookup, n->nlookup);
        node_maybe_free(e, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
        fuse_export *e = req_export(req);
        pthread_mutex_lock(&e->lock);
        forget_one(e, ino, nlookup);
        pthread_mutex_unlock(&e->lock);
        fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
        fuse_export *e = req_export(req);
        pthread_mutex_lock(&e->lock);
        for (size_t i = 0; i < count; i++)
                forget_one(e, forgets[i].ino, forgets[i].nlookup);
        pthread_mutex_unlock(&e->lock);
        fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct stat st;

        pthread_mutex_lock(&e->lock);
        int r = fill_attr_locked(e, ino, &st);
        pthread_mutex_unlock(&e->lock);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_attr(req, &st, TIMEOUT_S);
}

/* Sizes, modes and owners are fixed; times are accepted and ignored (touch works). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct stat st;

        pthread_mutex_lock(&e->lock);
        int r = fill_attr_locked(e, ino, &st);
        pthread_mutex_unlock(&e->lock);
        if (r >= 0 && (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size)
                r = S_ISREG(st.st_mode) && (st.st_mode & 0200) ? -EPERM : -EROFS;
        if (r >= 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
                r = -EPERM;
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_attr(req, &st, TIMEOUT_S);
}

/* The listing of one open directory. The kernel may send RELEASEDIR while a READDIR of the same
 * handle is still being answered by another worker (its caller was interrupted), so a handle is
 * an id looked up under the export's lock, and a listing is freed by whoever lets go of it last. */
struct dirbuf {
        char *p;
        size_t size;
        uint64_t id;
        unsigned refs; /* (L) the open handle, and each READDIR being answered */
        struct dirbuf *next; /* (L) */
};

static void dirbuf_free(struct dirbuf *b) {
        if (b) {
                free(b->p);
                free(b);
        }
}

/* Takes a reference on the listing of handle ID; NULL if it has been released. */
static struct dirbuf *dirbuf_get(fuse_export *e, uint64_t id) {
        pthread_mutex_lock(&e->lock);
        struct dirbuf *b = e->dirs;
        while (b && b->id != id)
                b = b->next;
        if (b)
                b->refs++;
        pthread_mutex_unlock(&e->lock);
        return b;
}

/* Drops a reference; UNLINK also takes the listing out of the table (RELEASEDIR). */
static void dirbuf_put(fuse_export *e, struct dirbuf *b, bool unlink) {
        pthread_mutex_lock(&e->lock);
        if (unlink)
                for (struct dirbuf **pp = &e->dirs; *pp; pp = &(*pp)->next)
                        if (*pp == b) {
                                *pp = b->next;
                                break;
                        }
        bool last = --b->refs == 0;
        pthread_mutex_unlock(&e->lock);
        if (last)
                dirbuf_free(b);
}

static int dirbuf_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t mode) {
        struct stat st = { .st_ino = ino, .st_mode = mode };
        size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
        char *p = realloc(b->p, b->size + need);
        if (!p)
                return -ENOMEM;
        b->p = p;
        fuse_add_direntry(req, b->p + b->size, need, name, &st, (off_t) (b->size + need));
        b->size += need;
        return 0;
}

/* The listing is taken whole at opendir, so that readdir's offsets stay stable while files come
 * and go. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        if (ino != FUSE_ROOT_ID && ino != INO_VOLUMES && ino != INO_SHADOWS) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        struct dirbuf *b = calloc(1, sizeof *b);
        int r = b ? 0 : -ENOMEM;
        if (r >= 0)
                r = dirbuf_add(req, b, ".", ino, S_IFDIR);
        if (r >= 0)
                r = dirbuf_add(req, b, "..", FUSE_ROOT_ID, S_IFDIR);
        if (r >= 0 && ino == FUSE_ROOT_ID) {
                r = dirbuf_add(req, b, "volumes", INO_VOLUMES, S_IFDIR);
                if (r >= 0)
                        r = dirbuf_add(req, b, "shadows", INO_SHADOWS, S_IFDIR);
        } else if (r >= 0) {
                enum node_kind kind = ino == INO_VOLUMES ? NODE_VOLUME : NODE_SHADOW;
                pthread_mutex_lock(&e->lock);
                for (struct node *n = e->nodes; n && r >= 0; n = n->next)
                        if (n->listed && n->kind == kind)
                                r = dirbuf_add(req, b, n->name, n->ino, S_IFREG);
                pthread_mutex_unlock(&e->lock);
        }
        if (r < 0) {
                dirbuf_free(b);
                fuse_reply_err(req, -r);
                return;
        }
        pthread_mutex_lock(&e->lock);
        b->id = ++e->next_dir_id;
        b->refs = 1;
        b->next = e->dirs;
        e->dirs = b;
        pthread_mutex_unlock(&e->lock);
        fi->fh = b->id;
        if (fuse_reply_open(req, fi) == -ENOENT) /* the opener is gone: no RELEASEDIR will come */
                dirbuf_put(e, b, true);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct dirbuf *b = dirbuf_get(e, fi->fh);
        if (!b)
                fuse_reply_err(req, EBADF);
        else if (off < 0 || (size_t) off >= b->size)
                fuse_reply_buf(req, NULL, 0);
        else
                fuse_reply_buf(req, b->p + off, MIN(size, b->size - (size_t) off));
        if (b)
                dirbuf_put(e, b, false);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct dirbuf *b = dirbuf_get(e, fi->fh);
        if (b) {
                dirbuf_put(e, b, false);
                dirbuf_put(e, b, true);
        }
        fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
        fuse_export *e = req_export(req);
        uint64_t bytes = 0, files = 0;

        pthread_mutex_lock(&e->lock);
        for (struct node *n = e->nodes; n; n = n->next)
                if (n->listed) {
                        bytes += n->size;
                        files++;
                }
        pthread_mutex_unlock(&e->lock);
        struct statvfs st = {
                .f_bsize = BLOCK,
                .f_frsize = BLOCK,
                .f_blocks = bytes / BLOCK,
                .f_files = files + 3,
                .f_namemax = 255,
        };
        fuse_reply_statfs(req, &st);
}

/* ---- requests on files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        int r = 0;

        pthread_mutex_lock(&e->lock);
        struct node *n = node_find(e, ino);
        if (!n || !n->listed)
                r = ino == FUSE_ROOT_ID || ino == INO_VOLUMES || ino == INO_SHADOWS ? -EISDIR : -ENOENT;
        else if (n->kind == NODE_SHADOW && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)))
                r = -EROFS;
        else if (fi->flags & O_TRUNC)
                r = -EPERM;
        else if (n->kind == NODE_SHADOW) {
                /* A snapshot reclaimed by the diff area's policy, or invalid after a crash, is not
                 * opened at all, rather than failing every read. */
                struct eng_snap_info si;
                r = engine_snapshot_get(n->vol, n->snap_id, &si);
                if (r >= 0 && si.state != ENG_SNAP_VALID)
                        r = -EIO;
        }
        if (r >= 0)
                n->n_open++;
        pthread_mutex_unlock(&e->lock);
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }

        fi->fh = (uintptr_t) n;
        fi->direct_io = !e->p.page_cache;
        /* Shadows never change, and every change of a live volume goes through this mount. */
        fi->keep_cache = e->p.page_cache;
        if (fuse_reply_open(req, fi) == -ENOENT) {
                /* The opener went away: no release will come. */
                pthread_mutex_lock(&e->lock);
                n->n_open--;
                node_maybe_free(e, n);
                pthread_mutex_unlock(&e->lock);
        }
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct node *n = fh_node(fi);

        pthread_mutex_lock(&e->lock);
        n->n_open--;
        node_maybe_free(e, n);
        pthread_cond_broadcast(&e->released);
        pthread_mutex_unlock(&e->lock);
        fuse_reply_err(req, 0);
}

static void *io_buffer(const fuse_export *e) {
        if (!tls_io_buf)
                tls_io_buf = malloc(e->p.max_io);
        return tls_io_buf;
}

/* Replies to a request the engine failed. */
static void reply_engine_error(fuse_export *e, fuse_req_t req, int r) {
        stat_add(&e->stats.errors, 1);
        if (r == -ENOENT)
                r = -EIO; /* the snapshot went away under an open shadow */
        fuse_reply_err(req, -r);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct node *n = fh_node(fi);

        if (off < 0) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        if ((uint64_t) off >= n->size || size == 0) {
                fuse_reply_buf(req, NULL, 0);
                return;
        }
        size_t len = (size_t) MIN((uint64_t) MIN(size, (size_t) e->p.max_io), n->size - (uint64_t) off);
        void *buf = io_buffer(e);
        if (!buf) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        int r = n->kind == NODE_VOLUME ? engine_read(n->vol, buf, len, (uint64_t) off)
                                       : engine_snapshot_read(n->vol, n->snap_id, buf, len, (uint64_t) off);
        if (r < 0) {
                reply_engine_error(e, req, r);
                return;
        }
        stat_add(&e->stats.reads, 1);
        stat_add(&e->stats.read_bytes, len);
        fuse_reply_buf(req, buf, len);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
                         struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct node *n = fh_node(fi);
        size_t size = fuse_buf_size(in);

        if (n->kind != NODE_VOLUME) {
                fuse_reply_err(req, EROFS);
                return;
        }
        if (off < 0) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        if (size == 0) {
                fuse_reply_write(req, 0);
                return;
        }
        if ((uint64_t) off >= n->size) {
                /* As at the end of a block device. */
                fuse_reply_err(req, ENOSPC);
                return;
        }
        size_t len = (size_t) MIN((uint64_t) size, n->size - (uint64_t) off);
        const struct fuse_buf *b = &in->buf[in->idx];
        const void *data;
        if (in->count - in->idx == 1 && !(b->flags & FUSE_BUF_IS_FD))
                data = (const char *) b->mem + in->off;
        else {
                /* Spliced: the engine wants the bytes in memory. */
                void *buf = io_buffer(e);
                if (!buf || len > e->p.max_io) {
                        fuse_reply_err(req, ENOMEM);
                        return;
                }
                struct fuse_bufvec dst = FUSE_BUFVEC_INIT(len);
                dst.buf[0].mem = buf;
                ssize_t got = fuse_buf_copy(&dst, in, 0);
                if (got < 0 || (size_t) got != len) {
                        fuse_reply_err(req, got < 0 ? (int) -got : EIO);
                        return;
                }
                data = buf;
        }
        int r = engine_write(n->vol, data, len, (uint64_t) off);
        if (r < 0) {
                reply_engine_error(e, req, r);
                return;
        }
        stat_add(&e->stats.writes, 1);
        stat_add(&e->stats.write_bytes, len);
        fuse_reply_write(req, len);
}

/* fsync, and flush on close: the loop device's flush arrives as fsync, and its reply promises
 * that every write answered before it is durable. */
static void do_flush(fuse_req_t req, struct node *n) {
        fuse_export *e = req_export(req);
        if (n->kind == NODE_VOLUME) {
                int r = engine_flush(n->vol);
                if (r < 0) {
                        reply_engine_error(e, req, r);
                        return;
                }
                stat_add(&e->stats.flushes, 1);
        }
        fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        do_flush(req, fh_node(fi));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
        do_flush(req, fh_node(fi));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length,
                         struct fuse_file_info *fi) {
        fuse_export *e = req_export(req);
        struct node *n = fh_node(fi);
        bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
        int r;

        mode &= ~FALLOC_FL_KEEP_SIZE;
        if (n->kind != NODE_VOLUME) {
                fuse_reply_err(req, EROFS);
                return;
        }
        if (off < 0 || length <= 0) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        uint64_t start = (uint64_t) off, end = start + (uint64_t) length;
        if (end > n->size && !keep_size && mode != FALLOC_FL_PUNCH_HOLE) {
                fuse_reply_err(req, EFBIG); /* the size is fixed */
                return;
        }
        end = MIN(end, n->size);
        if (start >= end || mode == 0) {
                /* Nothing to do: the image allocates when written. */
                fuse_reply_err(req, 0);
                return;
        }
        if (mode == FALLOC_FL_PUNCH_HOLE) {
                r = engine_discard(n->vol, (size_t) (end - start), start);
                if (r >= 0)
                        stat_add(&e->stats.discards, 1);
        } else if (mode == FALLOC_FL_ZERO_RANGE) {
                r = engine_write_zeroes(n->vol, (size_t) (end - start), start);
                if (r >= 0)
                        stat_add(&e->stats.zeroes, 1);
        } else {
                fuse_reply_err(req, EOPNOTSUPP);
                return;
        }
        if (r < 0)
                reply_engine_error(e, req, r);
        else
                fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops export_ops = {
        .init = op_init,
        .lookup = op_lookup,
        .forget = op_forget,
        .forget_multi = op_forget_multi,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .opendir = op_opendir,
        .readdir = op_readdir,
        .releasedir = op_releasedir,
        .statfs = op_statfs,
        .open = op_open,
        .release = op_release,
        .read = op_read,
        .write_buf = op_write_buf,
        .flush = op_flush,
        .fsync = op_fsync,
        .fallocate = op_fallocate,
};

/* ---- workers ---- */

static void worker_cleanup(void *arg) {
        struct fuse_buf *buf = arg;
        free(buf->mem);
        buf->mem = NULL;
        free(tls_io_buf);
        tls_io_buf = NULL;
}

/* Receives and processes requests until the session ends; returns 0 or a negative errno. */
static int worker_loop(fuse_export *e, struct fuse_buf *buf) {
        while (!fuse_session_exited(e->se)) {
                pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
                int r = fuse_session_receive_buf(e->se, buf);
                pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
                if (r == -EINTR || r == -EAGAIN)
                        continue;
                if (r <= 0) {
                        /* 0: unmounted (libfuse has marked the session exited). */
                        fuse_session_exit(e->se);
                        return r;
                }
                fuse_session_process_buf(e->se, buf);
        }
        return 0;
}

static void *worker_main(void *arg) {
        fuse_export *e = arg;
        struct fuse_buf buf = {};
        int error;

        /* May fail without CAP_SYS_RESOURCE; serving still works, with less protection. */
        (void) prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);

        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        pthread_cleanup_push(worker_cleanup, &buf);
        error = worker_loop(e, &buf);
        pthread_cleanup_pop(1);

        if (!__atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE) &&
            !__atomic_exchange_n(&e->exit_reported, true, __ATOMIC_ACQ_REL) && e->p.on_exit)
                e->p.on_exit(e->p.userdata, error);
        return NULL;
}

int fuse_export_start(fuse_export *e) {
        if (!e)
                return -EINVAL;
        if (e->started)
                return -EALREADY;
        e->workers = calloc(e->p.n_workers, sizeof *e->workers);
        if (!e->workers)
                return -ENOMEM;
        e->started = true;
        for (unsigned i = 0; i < e->p.n_workers; i++) {
                int r = pthread_create(&e->workers[i], NULL, worker_main, e);
                if (r != 0) {
                        /* Those already running serve; fuse_export_free() stops them. */
                        return e->n_workers > 0 ? 0 : -r;
                }
                e->n_workers++;
        }
        return 0;
}

/* ---- the export ---- */

static bool name_ok(const char *name) {
        size_t len = name ? strlen(name) : 0;
        return len > 0 && len <= 255 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
               strcmp(name, "..") != 0;
}

int fuse_export_new(const char *mountpoint, const struct fuse_export_params *p, fuse_export **ret) {
        struct stat st;

        if (!mountpoint || !ret)
                return -EINVAL;
        struct fuse_export_params params = p ? *p : (struct fuse_export_params){};
        if (params.n_workers == 0)
                params.n_workers = FUSE_EXPORT_WORKERS_DEFAULT;
        if (params.max_io == 0)
                params.max_io = FUSE_EXPORT_MAX_IO_DEFAULT;
        if (params.max_background == 0)
                params.max_background = MAX_BACKGROUND_DEFAULT;
        if (params.n_workers > FUSE_EXPORT_WORKERS_MAX || params.max_io < BLOCK ||
            params.max_io > FUSE_EXPORT_MAX_IO_DEFAULT || params.max_background > 65535)
                return -EINVAL;

        if (stat(mountpoint, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* libfuse only logs why a mount failed: look at the device first. */
        int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return errno == EACCES || errno == EPERM ? -EACCES : -ENODEV;
        close(fd);

        fuse_export *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->p = params;
        e->next_ino = INO_FIRST_FILE;
        e->uid = geteuid();
        e->gid = getegid();
        clock_gettime(CLOCK_REALTIME, &e->birth);
        pthread_mutex_init(&e->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->released, &ca);
        pthread_condattr_destroy(&ca);

        char opts[256];
        snprintf(opts, sizeof opts, "fsname=lvss,subtype=lvss,default_permissions,max_read=%u%s",
                 params.max_io, geteuid() == 0 ? ",allow_other" : "");
        char *argv[] = { (char *) "lvss-fuse-export", (char *) "-o", opts, NULL };
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        e->se = fuse_session_new(&args, &export_ops, sizeof export_ops, e);
        fuse_opt_free_args(&args);
        if (!e->se) {
                fuse_export_free(e);
                return -EIO;
        }
        if (fuse_session_mount(e->se, mountpoint) != 0) {
                fuse_export_free(e);
                return -EIO;
        }
        e->mounted = true;
        *ret = e;
        return 0;
}

static int add_node(fuse_export *e, enum node_kind kind, const char *name, eng_volume *v, uint32_t snap_id) {
        struct eng_volume_info info;
        int r;

        if (!e || !v || !name_ok(name))
                return -EINVAL;
        if (kind == NODE_SHADOW) {
                struct eng_snap_info si;
                r = engine_snapshot_get(v, snap_id, &si);
                if (r < 0)
                        return r;
        }
        r = engine_volume_info(v, &info);
        if (r < 0)
                return r;

        struct node *n = calloc(1, sizeof *n);
        if (!n || !(n->name = strdup(name))) {
                free(n);
                return -ENOMEM;
        }
        n->kind = kind;
        n->vol = v;
        n->snap_id = snap_id;
        n->size = info.size;
        n->listed = true;
        clock_gettime(CLOCK_REALTIME, &n->ctime);

        pthread_mutex_lock(&e->lock);
        if (node_find_name(e, kind, name)) {
                pthread_mutex_unlock(&e->lock);
                free(n->name);
                free(n);
                return -EEXIST;
        }
        n->ino = e->next_ino++;
        n->next = e->nodes;
        e->nodes = n;
        pthread_mutex_unlock(&e->lock);
        return 0;
}

static int remove_node(fuse_export *e, enum node_kind kind, const char *name) {
        if (!e || !name)
                return -EINVAL;
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += (long) RELEASE_WAIT_MS * 1000000L;
        deadline.tv_sec += deadline.tv_nsec / 1000000000L;
        deadline.tv_nsec %= 1000000000L;

        pthread_mutex_lock(&e->lock);
        struct node *n = node_find_name(e, kind, name);
        /* close(2) and losetup -d return before the kernel's RELEASE reaches us: wait for it. */
        while (n && n->n_open > 0 && pthread_cond_timedwait(&e->released, &e->lock, &deadline) != ETIMEDOUT)
                ;
        int r = !n ? -ENOENT : n->n_open > 0 ? -EBUSY : 0;
        if (r >= 0) {
                n->listed = false;
                node_maybe_free(e, n);
        }
        pthread_mutex_unlock(&e->lock);
        if (r >= 0 && e->started)
                /* Make the kernel drop its cached entry now (it may hold none: ignore errors). */
                (void) fuse_lowlevel_notify_inval_entry(e->se, dir_of(kind), name, strlen(name));
        return r;
}

int fuse_export_add_volume(fuse_export *e, const char *name, eng_volume *v) {
        return add_node(e, NODE_VOLUME, name, v, 0);
}

int fuse_export_remove_volume(fuse_export *e, const char *name) {
        return remove_node(e, NODE_VOLUME, name);
}

int fuse_export_add_shadow(fuse_export *e, const char *id, eng_volume *v, uint32_t snap_id) {
        return add_node(e, NODE_SHADOW, id, v, snap_id);
}

int fuse_export_remove_shadow(fuse_export *e, const char *id) {
        return remove_node(e, NODE_SHADOW, id);
}

unsigned fuse_export_open_files(fuse_export *e) {
        unsigned n_open = 0;
        if (!e)
                return 0;
        pthread_mutex_lock(&e->lock);
        for (struct node *n = e->nodes; n; n = n->next)
                n_open += n->n_open > 0;
        pthread_mutex_unlock(&e->lock);
        return n_open;
}

int fuse_export_get_stats(fuse_export *e, struct fuse_export_stats *ret) {
        if (!e || !ret)
                return -EINVAL;
        const uint64_t *src = (const uint64_t *) &e->stats;
        uint64_t *dst = (uint64_t *) ret;
        for (size_t i = 0; i < sizeof *ret / sizeof(uint64_t); i++)
                dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
        return 0;
}

void fuse_export_free(fuse_export *e) {
        if (!e)
                return;
        __atomic_store_n(&e->stopping, true, __ATOMIC_RELEASE);
        if (e->se)
                fuse_session_exit(e->se);
        /* A worker serving a request finishes it; one waiting for a request is cancelled there. */
        for (unsigned i = 0; i < e->n_workers; i++)
                pthread_cancel(e->workers[i]);
        for (unsigned i = 0; i < e->n_workers; i++)
                pthread_join(e->workers[i], NULL);
        free(e->workers);
        if (e->mounted)
                fuse_session_unmount(e->se);
        if (e->se)
                fuse_session_destroy(e->se);
        while (e->nodes) {
                struct node *n = e->nodes;
                e->nodes = n->next;
                free(n->name);
                free(n);
        }
        while (e->dirs) {
                struct dirbuf *b = e->dirs;
                e->dirs = b->next;
                dirbuf_free(b);
        }
        pthread_cond_destroy(&e->released);
        pthread_mutex_destroy(&e->lock);
        free(e);
}
