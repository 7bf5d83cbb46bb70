/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The first pass of bkp_write over one target: what the tree holds, as the list will say it.
 *
 * The tree is walked breadth-first from a descriptor of its root, one directory open at a time
 * (opened by its path relative to the root, without following a final symlink, and checked to be
 * the directory the scan saw), every entry statx()ed without following symlinks or triggering
 * automounts; mount points of other file systems are recorded as directories and not entered, other
 * mounted non-directories left out, sockets left out. Symlink targets are read and extended
 * attributes hashed (through /proc/self/fd). The entries are then sorted as the list is, the paths
 * of one inode grouped (the first in order stays a file, the others become hard links to it, with
 * its metadata), and each compared with the base's line of the same path: unchanged ones take the
 * base's checksum and id, the others are marked to be stored, and a hard link group is stored whole
 * if any of its paths changed. No state beyond the tree; nothing is written.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

static int item_push(struct bkp_tree *t, struct bkp_item *it) {
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 256;
                struct bkp_item *n = reallocarray(t->items, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                t->items = n;
                t->cap = cap;
        }
        t->items[t->n++] = *it;
        return 0;
}

static char type_of(mode_t m) {
        switch (m & S_IFMT) {
        case S_IFREG:
                return BKP_ENTRY_FILE;
        case S_IFDIR:
                return BKP_ENTRY_DIR;
        case S_IFLNK:
                return BKP_ENTRY_SYMLINK;
        case S_IFCHR:
                return BKP_ENTRY_CHAR;
        case S_IFBLK:
                return BKP_ENTRY_BLOCK;
        case S_IFIFO:
                return BKP_ENTRY_FIFO;
        default:
                return 0; /* sockets */
        }
}

static void fill_from_statx(struct bkp_item *it, const struct statx *sx) {
        it->e.type = type_of(sx->stx_mode);
        it->e.mode = sx->stx_mode & 07777;
        it->e.uid = sx->stx_uid;
        it->e.gid = sx->stx_gid;
        it->e.size = it->e.type == BKP_ENTRY_FILE ? sx->stx_size : 0;
        it->e.mtime_sec = sx->stx_mtime.tv_sec;
        it->e.mtime_nsec = sx->stx_mtime.tv_nsec;
        it->e.ctime_sec = sx->stx_ctime.tv_sec;
        it->e.ctime_nsec = sx->stx_ctime.tv_nsec;
        if (it->e.type == BKP_ENTRY_CHAR || it->e.type == BKP_ENTRY_BLOCK) {
                it->e.rdev_major = sx->stx_rdev_major;
                it->e.rdev_minor = sx->stx_rdev_minor;
        }
        it->dev = makedev(sx->stx_dev_major, sx->stx_dev_minor);
        it->ino = sx->stx_ino;
        it->nlink = sx->stx_nlink;
}

static int hash_xattrs(int dfd, const char *name, struct bkp_entry *e) {
        struct bkp_xattrs x = {};
        int r = bkp_xattrs_read(dfd, name, &x);
        if (r < 0)
                return r;
        e->has_xattrs = x.n > 0;
        if (e->has_xattrs)
                r = bkp_xattrs_hash(&x, e->xattrs);
        bkp_xattrs_release(&x);
        return r;
}

static char *join(const char *parent, const char *name) {
        if (strcmp(parent, ".") == 0)
                return strdup(name);
        size_t n = strlen(parent) + strlen(name) + 2;
        char *s = malloc(n);
        if (s)
                snprintf(s, n, "%s/%s", parent, name);
        return s;
}

static int read_symlink(int dfd, const char *name, uint64_t size_hint, char **ret) {
        size_t n = (size_t) MIN(MAX(size_hint + 1, (uint64_t) 64), (uint64_t) BKP_PATH_MAX + 1);
        for (;;) {
                char *s = malloc(n + 1);
                if (!s)
                        return -ENOMEM;
                ssize_t k = readlinkat(dfd, name, s, n);
                if (k < 0) {
                        free(s);
                        return negative_errno();
                }
                if ((size_t) k < n) {
                        s[k] = '\0';
                        if (k == 0) {
                                free(s);
                                return -EINVAL;
                        }
                        *ret = s;
                        return 0;
                }
                free(s);
                if (n > BKP_PATH_MAX)
                        return -ENAMETOOLONG;
                n = BKP_PATH_MAX + 1;
        }
}

struct name_vec {
        char **names;
        size_t n, cap;
};

static void name_vec_release(struct name_vec *v) {
        for (size_t i = 0; i < v->n; i++)
                free(v->names[i]);
        free(v->names);
        *v = (struct name_vec){};
}

static int read_names(int dfd, struct name_vec *ret) {
        int fd = dup(dfd);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return negative_errno();
        }
        struct name_vec v = {};
        int r = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno)
                                r = negative_errno();
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (v.n == v.cap) {
                        size_t cap = v.cap ? v.cap * 2 : 32;
                        char **n = reallocarray(v.names, cap, sizeof(char *));
                        if (!n) {
                                r = -ENOMEM;
                                break;
                        }
                        v.names = n;
                        v.cap = cap;
                }
                if (!(v.names[v.n] = strdup(de->d_name))) {
                        r = -ENOMEM;
                        break;
                }
                v.n++;
        }
        closedir(d);
        if (r < 0) {
                name_vec_release(&v);
                return r;
        }
        *ret = v;
        return 0;
}

/* Whether NAME, a non-directory in the directory PATH of T's tree, is left out. */
static bool excluded(const struct bkp_target *t, const char *path, const char *name) {
        for (size_t i = 0; i < t->n_excludes; i++) {
                const struct bkp_exclude *x = &t->excludes[i];
                size_t l = strlen(x->dir);
                bool here = strcmp(path, x->dir) == 0 ||
                            (x->recursive && (strcmp(x->dir, ".") == 0 ||
                                              (strncmp(path, x->dir, l) == 0 && path[l] == '/')));
                if (here && fnmatch(x->filespec, name, 0) == 0)
                        return true;
        }
        return false;
}

static int scan_dir(struct bkp_tree *t, size_t index, uint64_t root_dev, char *err) {
        char p[BKP_PRETTY_MAX];
        const char *path = t->items[index].e.path;
        _cleanup_close_ int dfd =
                strcmp(path, ".") == 0
                        ? openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                        : openat(t->rootfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (dfd < 0 || fstat(dfd, &st) < 0)
                return bkp_errorf(err, negative_errno(),
                                  "cannot read directory %s of %s: %m; check its permissions",
                                  bkp_pretty(path, p), t->t->root);
        if (st.st_ino != t->items[index].ino || st.st_dev != t->items[index].dev)
                return bkp_errorf(err, -EBUSY,
                                  "directory %s of %s changed during the backup; back up a shadow copy",
                                  bkp_pretty(path, p), t->t->root);

        struct name_vec names = {};
        int r = read_names(dfd, &names);
        if (r < 0)
                return bkp_errorf(err, r, "cannot read directory %s of %s: %s", bkp_pretty(path, p),
                                  t->t->root, strerror(-r));

        for (size_t i = 0; r >= 0 && i < names.n; i++) {
                const char *name = names.names[i];
                struct statx sx;
                if (statx(dfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &sx) < 0) {
                        if (errno == ENOENT)
                                continue;
                        r = bkp_errorf(err, negative_errno(), "cannot stat %s in %s of %s: %m", name,
                                       bkp_pretty(path, p), t->t->root);
                        break;
                }
                struct bkp_item it = { .first = SIZE_MAX };
                fill_from_statx(&it, &sx);
                if (!it.e.type)
                        continue; /* a socket */
                if (it.e.type != BKP_ENTRY_DIR && excluded(t->t, path, name)) {
                        t->excluded++;
                        continue;
                }
                bool mount = it.dev != root_dev || ((sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
                                                    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT));
                if (mount && it.e.type != BKP_ENTRY_DIR)
                        continue; /* a file mounted over another: not of this tree */
                it.descend = it.e.type == BKP_ENTRY_DIR && !mount;

                it.e.path = join(path, name);
                if (!it.e.path) {
                        r = -ENOMEM;
                        break;
                }
                if (strlen(it.e.path) > BKP_PATH_MAX) {
                        r = bkp_errorf(err, -ENAMETOOLONG,
                                       "%s in %s has a path longer than %d bytes; shorten it",
                                       bkp_pretty(it.e.path, p), t->t->root, BKP_PATH_MAX);
                        bkp_entry_release(&it.e);
                        break;
                }
                if (it.e.type == BKP_ENTRY_SYMLINK) {
                        r = read_symlink(dfd, name, sx.stx_size, &it.e.target);
                        if (r < 0) {
                                r = bkp_errorf(err, r, "cannot read symlink %s in %s: %s",
                                               bkp_pretty(it.e.path, p), t->t->root, strerror(-r));
                                bkp_entry_release(&it.e);
                                break;
                        }
                }
                r = hash_xattrs(dfd, name, &it.e);
                if (r < 0) {
                        r = bkp_errorf(err, r, "cannot read the extended attributes of %s in %s: %s",
                                       bkp_pretty(it.e.path, p), t->t->root, strerror(-r));
                        bkp_entry_release(&it.e);
                        break;
                }
                r = item_push(t, &it);
                if (r < 0)
                        bkp_entry_release(&it.e);
        }
        name_vec_release(&names);
        return r;
}

static int item_cmp(const void *a, const void *b) {
        return bkp_path_compare(((const struct bkp_item *) a)->e.path,
                                ((const struct bkp_item *) b)->e.path);
}

static int inode_cmp(const void *a, const void *b, void *userdata) {
        const struct bkp_tree *t = userdata;
        const struct bkp_item *x = &t->items[*(const size_t *) a], *y = &t->items[*(const size_t *) b];
        if (x->dev != y->dev)
                return x->dev < y->dev ? -1 : 1;
        if (x->ino != y->ino)
                return x->ino < y->ino ? -1 : 1;
        return *(const size_t *) a < *(const size_t *) b ? -1 : 1;
}

/* Groups the paths of one inode: the first in order stays a file, the others become hard links. */
static int group_hard_links(struct bkp_tree *t) {
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i].e.type != BKP_ENTRY_DIR && t->items[i].nlink > 1)
                        n++;
        if (n < 2)
                return 0;
        _cleanup_free_ size_t *idx = calloc(n, sizeof(size_t));
        if (!idx)
                return -ENOMEM;
        n = 0;
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i].e.type != BKP_ENTRY_DIR && t->items[i].nlink > 1)
                        idx[n++] = i;
        qsort_r(idx, n, sizeof(size_t), inode_cmp, t);
        for (size_t i = 0; i < n;) {
                size_t j = i + 1;
                struct bkp_item *f = &t->items[idx[i]];
                while (j < n && t->items[idx[j]].dev == f->dev && t->items[idx[j]].ino == f->ino)
                        j++;
                if (j - i > 1 && f->e.type == BKP_ENTRY_FILE) {
                        f->first = idx[i];
                        for (size_t k = i + 1; k < j; k++) {
                                struct bkp_item *h = &t->items[idx[k]];
                                char *path = h->e.path;
                                h->e.path = NULL;
                                bkp_entry_release(&h->e);
                                h->e = f->e; /* the inode's metadata */
                                h->e.path = path;
                                h->e.type = BKP_ENTRY_HARDLINK;
                                h->e.target = strdup(f->e.path);
                                if (!h->e.target)
                                        return -ENOMEM;
                                h->first = idx[i];
                        }
                }
                i = j;
        }
        return 0;
}

/* Compares with the base: unchanged entries keep its checksum and id; a hard link group is stored
 * whole if any of its paths changed. */
static void compare_with_base(struct bkp_tree *t, struct bkp_stats *stats) {
        const struct bkp_list *b = &t->base;
        size_t j = 0;
        for (size_t i = 0; i < t->n; i++) {
                struct bkp_item *it = &t->items[i];
                while (j < b->n && bkp_path_compare(b->entries[j].path, it->e.path) < 0) {
                        j++;
                        stats->entries_deleted++;
                }
                const struct bkp_entry *m = NULL;
                if (j < b->n && bkp_path_compare(b->entries[j].path, it->e.path) == 0)
                        m = &b->entries[j++];
                if (m && bkp_entry_unchanged(&it->e, m)) {
                        it->e.has_sha = m->has_sha;
                        memcpy(it->e.sha256, m->sha256, BKP_SHA256_LEN);
                        memcpy(it->e.id, m->id, sizeof(it->e.id));
                } else
                        it->stored = true;
        }
        stats->entries_deleted += b->n - j;

        for (size_t i = 0; i < t->n; i++) {
                struct bkp_item *it = &t->items[i];
                if (it->e.type == BKP_ENTRY_HARDLINK && it->stored)
                        t->items[it->first].stored = true;
        }
        for (size_t i = 0; i < t->n; i++) {
                struct bkp_item *it = &t->items[i];
                if (it->e.type == BKP_ENTRY_HARDLINK && t->items[it->first].stored)
                        it->stored = true;
        }
}

int bkp_tree_scan(struct bkp_tree *t, const char *id, struct bkp_stats *stats, struct bkp_progress *p,
                  char *err) {
        const char *root = t->t->root;
        t->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (t->rootfd < 0)
                return bkp_errorf(err, negative_errno(),
                                  "cannot open the root %s of target %s: %m; give a directory", root,
                                  t->t->name);
        struct statx sx;
        if (statx(t->rootfd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) < 0)
                return bkp_errorf(err, negative_errno(), "cannot stat %s: %m", root);
        struct bkp_item it = { .first = SIZE_MAX, .descend = true };
        fill_from_statx(&it, &sx);
        uint64_t root_dev = it.dev;
        it.e.path = strdup(".");
        if (!it.e.path)
                return -ENOMEM;
        int r = hash_xattrs(t->rootfd, NULL, &it.e);
        if (r < 0) {
                bkp_entry_release(&it.e);
                return bkp_errorf(err, r, "cannot read the extended attributes of %s: %s", root,
                                  strerror(-r));
        }
        r = item_push(t, &it);
        if (r < 0) {
                bkp_entry_release(&it.e);
                return r;
        }
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i].descend) {
                        r = scan_dir(t, i, root_dev, err);
                        if (r < 0)
                                return r;
                }
        qsort(t->items, t->n, sizeof(*t->items), item_cmp);
        r = group_hard_links(t);
        if (r < 0)
                return r;
        compare_with_base(t, stats);
        for (size_t i = 0; i < t->n; i++) {
                struct bkp_item *x = &t->items[i];
                if (x->stored) {
                        memcpy(x->e.id, id, sizeof(x->e.id));
                        stats->entries_stored++;
                        if (x->e.type == BKP_ENTRY_FILE)
                                p->bytes_total += x->e.size;
                }
        }
        stats->entries += t->n;
        stats->entries_excluded += t->excluded;
        p->files_total += t->n;
        return 0;
}

void bkp_tree_release(struct bkp_tree *t) {
        for (size_t i = 0; i < t->n; i++)
                bkp_entry_release(&t->items[i].e);
        free(t->items);
        bkp_list_release(&t->base);
        if (t->rootfd >= 0)
                close(t->rootfd);
        *t = (struct bkp_tree){ .rootfd = -1 };
}
