/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bkp_restore: makes a directory hold exactly the tree of one target at a backup's moment.
 *
 * The newest backup's list says what exists and which backup of the chain stores each entry. In
 * order: the marker O->root/.lvss-restore-incomplete is created and synced; what is in the root but
 * not in the list (or not of the same kind: directory or not) is removed, depth first; missing
 * directories are created (0700 until the end); each tar of the chain that the list names is read
 * once, sequentially, and the entries the list takes from it are created in their order (files
 * written at their offsets, holes left unwritten, checked against their SHA-256; then owner, mode,
 * extended attributes, mtime); then hard links, linked to their files; then directories get their
 * owner, mode and mtime, deepest first; the file system is synced, the marker removed, and the
 * root's mtime set last (removing the marker changed it).
 *
 * The root is opened once; everything below it is reached from that descriptor one component at a
 * time with O_NOFOLLOW (O_PATH directories, *at() calls, AT_SYMLINK_NOFOLLOW; extended attributes
 * of non-directories through /proc/self/fd/N/NAME), so a symlink planted in the root is removed or
 * replaced, never followed. Non-directories are always unlinked and created anew, never written in
 * place (an existing file may be a hard link to something outside). Other file systems mounted
 * inside the root are left alone where the tree has a directory, and refused (-EXDEV) where
 * something would have to be removed from them or created through them.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

struct restorer {
        const struct bkp_restore_opts *o;
        struct bkp_chain chain;
        struct bkp_list list;
        bool *done; /* per line: created from its tar */
        bool *mount; /* per line: a directory where another file system is mounted, left alone */
        int rootfd;
        dev_t root_dev;
        bool root_user;
        struct bkp_ticker tick;
        char *err;
        char *parent_path; /* the cached parent directory */
        int parent_fd;
};

static const char *pretty(const char *path, char buf[BKP_PRETTY_MAX]) {
        return bkp_pretty(path, buf);
}

static int fail_errno(struct restorer *x, int r, const char *what, const char *path) {
        char p[BKP_PRETTY_MAX];
        return bkp_errorf(x->err, r, "cannot %s %s in %s: %s", what, pretty(path, p), x->o->root,
                          strerror(-r));
}

/* ---- walking from the root ---- */

/* Opens directory PATH (relative, "." the root) as O_PATH, one component at a time. */
static int open_dir_path(struct restorer *x, const char *path) {
        char p[BKP_PRETTY_MAX];
        int fd = fcntl(x->rootfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        if (strcmp(path, ".") == 0)
                return fd;
        for (const char *seg = path; *seg;) {
                size_t len = strcspn(seg, "/");
                char comp[BKP_NAME_MAX + 1];
                memcpy(comp, seg, len);
                comp[len] = '\0';
                int nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int r = nfd < 0 ? negative_errno() : 0;
                close(fd);
                if (r < 0)
                        return r;
                fd = nfd;
                struct stat st;
                if (fstat(fd, &st) < 0) {
                        r = negative_errno();
                        close(fd);
                        return r;
                }
                if (st.st_dev != x->root_dev) {
                        close(fd);
                        return bkp_errorf(x->err, -EXDEV,
                                          "%s in %s is on another file system (a mount point) and the "
                                          "restore would write into it; unmount it and retry",
                                          pretty(path, p), x->o->root);
                }
                seg += len;
                if (*seg == '/')
                        seg++;
        }
        return fd;
}

/* The directory holding PATH (cached) and PATH's last component. */
static int parent_of(struct restorer *x, const char *path, const char **ret_name) {
        const char *slash = strrchr(path, '/');
        size_t n = slash ? (size_t) (slash - path) : 1;
        const char *pp = slash ? path : ".";
        *ret_name = slash ? slash + 1 : path;
        if (x->parent_path && strlen(x->parent_path) == n && memcmp(x->parent_path, pp, n) == 0)
                return x->parent_fd;
        free(x->parent_path);
        if (x->parent_fd >= 0)
                close(x->parent_fd);
        x->parent_fd = -1;
        x->parent_path = strndup(pp, n);
        if (!x->parent_path)
                return -ENOMEM;
        int fd = open_dir_path(x, x->parent_path);
        if (fd < 0) {
                free(x->parent_path);
                x->parent_path = NULL;
                return fd;
        }
        return x->parent_fd = fd;
}

static void parent_reset(struct restorer *x) {
        free(x->parent_path);
        x->parent_path = NULL;
        if (x->parent_fd >= 0)
                close(x->parent_fd);
        x->parent_fd = -1;
}

/* parent_of, with an error sentence. */
static int parent_or_fail(struct restorer *x, const char *path, const char **ret_name) {
        int fd = parent_of(x, path, ret_name);
        if (fd == -EXDEV)
                return fd; /* sentence already there */
        if (fd < 0)
                return fail_errno(x, fd, "reach the directory of", path);
        return fd;
}

/* ---- removing what the tree does not have ---- */

static ssize_t line_index(struct restorer *x, const char *path) {
        const struct bkp_entry *e = bkp_list_find(&x->list, path);
        return e ? e - x->list.entries : -1;
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

/* The names in directory DFD. */
static int list_names(int dfd, char ***ret, size_t *ret_n) {
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return negative_errno();
        }
        char **v = NULL;
        size_t n = 0;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char **nv = reallocarray(v, n + 1, sizeof(char *));
                if (!nv) {
                        r = -ENOMEM;
                        break;
                }
                v = nv;
                if (!(v[n] = strdup(de->d_name))) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(v[i]);
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static void names_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* Removes NAME in DFD, a directory with all it holds, on this file system only. */
static int remove_tree(struct restorer *x, int dfd, const char *name, const char *path) {
        char p[BKP_PRETTY_MAX];
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return fail_errno(x, negative_errno(), "open", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail_errno(x, negative_errno(), "stat", path);
        if (st.st_dev != x->root_dev)
                return bkp_errorf(x->err, -EXDEV,
                                  "%s in %s is a mount point of another file system, which the restore "
                                  "would have to remove; unmount it and retry",
                                  pretty(path, p), x->o->root);
        char **names;
        size_t n;
        int r = list_names(fd, &names, &n);
        if (r < 0)
                return fail_errno(x, r, "read directory", path);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *sub = join(path, names[i]);
                if (!sub) {
                        r = -ENOMEM;
                        break;
                }
                if (unlinkat(fd, names[i], 0) >= 0 || errno == ENOENT)
                        continue;
                if (errno != EISDIR && errno != EPERM) {
                        r = fail_errno(x, negative_errno(), "remove", sub);
                        break;
                }
                r = remove_tree(x, fd, names[i], sub);
        }
        names_free(names, n);
        if (r < 0)
                return r;
        if (unlinkat(dfd, name, AT_REMOVEDIR) < 0)
                return fail_errno(x, negative_errno(), "remove", path);
        return 0;
}

/* Removes from directory DFD (PATH) what the list does not have, or has as another kind. */
static int remove_extra(struct restorer *x, int dfd, const char *path) {
        char p[BKP_PRETTY_MAX];
        char **names;
        size_t n;
        int r = list_names(dfd, &names, &n);
        if (r < 0)
                return fail_errno(x, r, "read directory", path);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const char *name = names[i];
                if (strcmp(path, ".") == 0 && strcmp(name, BKP_MARKER) == 0)
                        continue;
                _cleanup_free_ char *sub = join(path, name);
                if (!sub) {
                        r = -ENOMEM;
                        break;
                }
                struct stat st;
                if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                r = fail_errno(x, negative_errno(), "stat", sub);
                        continue;
                }
                ssize_t k = strlen(sub) <= BKP_PATH_MAX ? line_index(x, sub) : -1;
                bool want_dir = k >= 0 && x->list.entries[k].type == BKP_ENTRY_DIR;
                if (S_ISDIR(st.st_mode)) {
                        if (st.st_dev != x->root_dev) {
                                if (want_dir) {
                                        x->mount[k] = true;
                                        continue;
                                }
                                r = bkp_errorf(x->err, -EXDEV,
                                               "%s in %s is a mount point of another file system, which the "
                                               "restore would have to remove; unmount it and retry",
                                               pretty(sub, p), x->o->root);
                                break;
                        }
                        if (!want_dir) {
                                r = remove_tree(x, dfd, name, sub);
                                continue;
                        }
                        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (fd < 0) {
                                r = fail_errno(x, negative_errno(), "open", sub);
                                break;
                        }
                        r = remove_extra(x, fd, sub);
                        close(fd);
                } else if (k < 0 || want_dir) {
                        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
                                r = fail_errno(x, negative_errno(), "remove", sub);
                }
                /* else: a non-directory the tree has too, replaced when it is restored */
        }
        names_free(names, n);
        return r;
}

/* ---- creating entries ---- */

static int make_dirs(struct restorer *x) {
        for (size_t i = 1; i < x->list.n; i++) {
                const struct bkp_entry *e = &x->list.entries[i];
                if (e->type != BKP_ENTRY_DIR || x->mount[i])
                        continue;
                const char *name;
                int pfd = parent_or_fail(x, e->path, &name);
                if (pfd < 0)
                        return pfd;
                if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
                        return fail_errno(x, negative_errno(), "create directory", e->path);
        }
        return 0;
}

/* Sets exactly the extended attributes XS on FD, or on NAME in PFD if FD < 0. */
static int set_xattrs(struct restorer *x, int fd, int pfd, const char *name, const struct bkp_xattrs *xs,
                      bool remove_others, const char *path) {
        char proc[64 + BKP_NAME_MAX];
        if (fd < 0)
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", pfd, name);
        if (remove_others) {
                struct bkp_xattrs cur = {};
                int r = bkp_xattrs_read(fd, NULL, &cur);
                if (r < 0)
                        return fail_errno(x, r, "read the extended attributes of", path);
                for (size_t i = 0; i < cur.n; i++) {
                        bool keep = false;
                        for (size_t j = 0; j < xs->n && !keep; j++)
                                keep = strcmp(xs->items[j].name, cur.items[i].name) == 0;
                        if (!keep && fremovexattr(fd, cur.items[i].name) < 0 && errno != ENODATA) {
                                r = fail_errno(x, negative_errno(), "remove an extended attribute of", path);
                                break;
                        }
                }
                bkp_xattrs_release(&cur);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < xs->n; i++) {
                const struct bkp_xattr *a = &xs->items[i];
                int k = fd >= 0 ? fsetxattr(fd, a->name, a->value, a->size, 0)
                                : lsetxattr(proc, a->name, a->value, a->size, 0);
                if (k < 0) {
                        char p[BKP_PRETTY_MAX];
                        int r = negative_errno();
                        if (r == -EPERM && !x->root_user)
                                continue; /* trusted.* and the like: only root can */
                        return bkp_errorf(x->err, r,
                                          "cannot set extended attribute %s on %s in %s: %s; restore as "
                                          "root, onto a file system with extended attributes",
                                          a->name, pretty(path, p), x->o->root, strerror(-r));
                }
        }
        return 0;
}

static int chown_ok(struct restorer *x, int k) {
        return k >= 0 || (errno == EPERM && !x->root_user) ? 0 : negative_errno();
}

struct file_writer {
        struct restorer *x;
        int fd;
        const char *path;
};

static int on_data(const void *p, size_t n, uint64_t offset, void *userdata) {
        struct file_writer *fw = userdata;
        for (size_t done = 0; done < n;) {
                ssize_t k = pwrite(fw->fd, (const char *) p + done, n - done, (off_t) (offset + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return fail_errno(fw->x, negative_errno(), "write", fw->path);
                done += (size_t) k;
        }
        fw->x->tick.p.bytes_done += n;
        return bkp_tick(&fw->x->tick, false, fw->x->err);
}

static int restore_file(struct restorer *x, struct bkp_tar *t, const struct bkp_tar_entry *te,
                        const struct bkp_entry *e, int pfd, const char *name, const char *tar) {
        char p[BKP_PRETTY_MAX];
        _cleanup_close_ int fd =
                openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
        if (fd < 0)
                return fail_errno(x, negative_errno(), "create", e->path);
        struct file_writer fw = { x, fd, e->path };
        uint8_t sha[BKP_SHA256_LEN];
        int r = bkp_tar_read_data(t, on_data, &fw, sha, x->err);
        if (r < 0)
                return r;
        if (memcmp(sha, e->sha256, BKP_SHA256_LEN) != 0)
                return bkp_errorf(x->err, -EBADMSG,
                                  "the content of %s in %s of backup %s does not match its checksum: the "
                                  "backup is damaged; use another one",
                                  pretty(e->path, p), tar, bkp_chain_find(&x->chain, e->id)->path);
        if (ftruncate(fd, (off_t) e->size) < 0)
                return fail_errno(x, negative_errno(), "set the size of", e->path);
        if ((r = chown_ok(x, fchown(fd, e->uid, e->gid))) < 0)
                return fail_errno(x, r, "set the owner of", e->path);
        if (fchmod(fd, e->mode) < 0)
                return fail_errno(x, negative_errno(), "set the mode of", e->path);
        /* Exactly the backup's attributes: a new file inherits an ACL from its directory's default
         * ACL (restored first), which the file may not have had. */
        r = set_xattrs(x, fd, -1, NULL, &te->xattrs, true, e->path);
        if (r < 0)
                return r;
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { e->mtime_sec, e->mtime_nsec } };
        if (futimens(fd, ts) < 0)
                return fail_errno(x, negative_errno(), "set the time of", e->path);
        return 0;
}

/* A symlink, device or fifo. */
static int restore_special(struct restorer *x, const struct bkp_tar_entry *te, const struct bkp_entry *e,
                           int pfd, const char *name) {
        int k;
        if (e->type == BKP_ENTRY_SYMLINK)
                k = symlinkat(e->target, pfd, name);
        else {
                mode_t ft = e->type == BKP_ENTRY_CHAR    ? S_IFCHR
                            : e->type == BKP_ENTRY_BLOCK ? S_IFBLK
                                                         : S_IFIFO;
                k = mknodat(pfd, name, ft | 0600, makedev(e->rdev_major, e->rdev_minor));
        }
        if (k < 0)
                return fail_errno(x, negative_errno(), "create", e->path);
        int r = chown_ok(x, fchownat(pfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW));
        if (r < 0)
                return fail_errno(x, r, "set the owner of", e->path);
        if (e->type != BKP_ENTRY_SYMLINK && fchmodat(pfd, name, e->mode, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_errno(x, negative_errno(), "set the mode of", e->path);
        r = set_xattrs(x, -1, pfd, name, &te->xattrs, false, e->path);
        if (r < 0)
                return r;
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { e->mtime_sec, e->mtime_nsec } };
        if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_errno(x, negative_errno(), "set the time of", e->path);
        return 0;
}

static int restore_entry(struct restorer *x, struct bkp_tar *t, const struct bkp_tar_entry *te, size_t k,
                         const char *tar) {
        const struct bkp_entry *e = &x->list.entries[k];
        if (e->type == BKP_ENTRY_HARDLINK)
                return 0; /* linked once every file is there */
        if (e->type == BKP_ENTRY_DIR) {
                if (x->mount[k])
                        return 0;
                int fd;
                if (k == 0)
                        fd = fcntl(x->rootfd, F_DUPFD_CLOEXEC, 3);
                else {
                        const char *name;
                        int pfd = parent_or_fail(x, e->path, &name);
                        if (pfd < 0)
                                return pfd;
                        fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (fd < 0)
                        return fail_errno(x, negative_errno(), "open directory", e->path);
                int r = set_xattrs(x, fd, -1, NULL, &te->xattrs, true, e->path);
                close(fd);
                return r;
        }

        const char *name;
        int pfd = parent_or_fail(x, e->path, &name);
        if (pfd < 0)
                return pfd;
        if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
                return fail_errno(x, negative_errno(), "replace", e->path);
        if (e->type == BKP_ENTRY_FILE)
                return restore_file(x, t, te, e, pfd, name, tar);
        return restore_special(x, te, e, pfd, name);
}

/* Reads the tar of backup B, creating the entries the list takes from it. */
static int restore_from(struct restorer *x, struct bkp_backup *b) {
        char tar[BKP_TARGET_NAME_MAX + 8];
        snprintf(tar, sizeof(tar), "%s.tar", x->o->target);
        _cleanup_(bkp_tar_freep) struct bkp_tar *t = NULL;
        int r = bkp_tar_open(b, tar, &t, x->err);
        if (r < 0)
                return r;
        const struct bkp_list *l = &x->list;
        size_t k = 0;
        for (;;) {
                const struct bkp_tar_entry *te;
                r = bkp_tar_next(t, &te, x->err);
                if (r <= 0)
                        break;
                while (k < l->n && bkp_path_compare(l->entries[k].path, te->path) < 0)
                        k++;
                if (k == l->n || bkp_path_compare(l->entries[k].path, te->path) != 0 ||
                    strcmp(l->entries[k].id, b->doc->id) != 0 || x->done[k])
                        continue; /* changed or deleted since: not of this tree */
                r = bkp_tar_entry_check(te, &l->entries[k], b->path, tar, x->err);
                if (r < 0)
                        return r;
                r = restore_entry(x, t, te, k, tar);
                if (r < 0)
                        return r;
                x->done[k] = true;
                x->tick.p.files_done++;
                r = bkp_tick(&x->tick, false, x->err);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return bkp_tar_finish(t, x->err);
}

static int link_hard_links(struct restorer *x) {
        for (size_t i = 0; i < x->list.n; i++) {
                const struct bkp_entry *e = &x->list.entries[i];
                if (e->type != BKP_ENTRY_HARDLINK)
                        continue;
                const char *tname;
                int tpfd = parent_or_fail(x, e->target, &tname);
                if (tpfd < 0)
                        return tpfd;
                _cleanup_close_ int tfd = fcntl(tpfd, F_DUPFD_CLOEXEC, 3);
                if (tfd < 0)
                        return negative_errno();
                const char *name;
                int pfd = parent_or_fail(x, e->path, &name);
                if (pfd < 0)
                        return pfd;
                if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
                        return fail_errno(x, negative_errno(), "replace", e->path);
                if (linkat(tfd, tname, pfd, name, 0) < 0)
                        return fail_errno(x, negative_errno(), "link", e->path);
                int r = bkp_tick(&x->tick, false, x->err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Owners, modes and times of directories, deepest first (the root's time is set at the very end). */
static int finish_dirs(struct restorer *x) {
        for (size_t i = x->list.n; i-- > 0;) {
                const struct bkp_entry *e = &x->list.entries[i];
                if (e->type != BKP_ENTRY_DIR || x->mount[i])
                        continue;
                _cleanup_close_ int fd = -1;
                if (i == 0)
                        fd = fcntl(x->rootfd, F_DUPFD_CLOEXEC, 3);
                else {
                        const char *name;
                        int pfd = parent_or_fail(x, e->path, &name);
                        if (pfd < 0)
                                return pfd;
                        fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (fd < 0)
                        return fail_errno(x, negative_errno(), "open directory", e->path);
                int r = chown_ok(x, fchown(fd, e->uid, e->gid));
                if (r < 0)
                        return fail_errno(x, r, "set the owner of", e->path);
                if (fchmod(fd, e->mode) < 0)
                        return fail_errno(x, negative_errno(), "set the mode of", e->path);
                struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { e->mtime_sec, e->mtime_nsec } };
                if (i > 0 && futimens(fd, ts) < 0)
                        return fail_errno(x, negative_errno(), "set the time of", e->path);
        }
        return 0;
}

static int create_marker(struct restorer *x, const char *id) {
        (void) unlinkat(x->rootfd, BKP_MARKER, 0);
        _cleanup_close_ int fd =
                openat(x->rootfd, BKP_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot create %s/%s: %m", x->o->root,
                                  BKP_MARKER);
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "restore of target %s from backup %s\n", x->o->target, id);
        if (write(fd, buf, (size_t) n) != n || fsync(fd) < 0 || fsync(x->rootfd) < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot write %s/%s: %m", x->o->root,
                                  BKP_MARKER);
        return 0;
}

static int open_root(struct restorer *x) {
        const char *root = x->o->root;
        if (mkdir(root, 0700) < 0 && errno != EEXIST)
                return bkp_errorf(x->err, negative_errno(),
                                  "cannot create %s: %m; give a directory whose parent exists", root);
        x->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (x->rootfd < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot open %s: %m; give a directory", root);
        struct stat st;
        if (fstat(x->rootfd, &st) < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot stat %s: %m", root);
        x->root_dev = st.st_dev;
        return 0;
}

static int run(struct restorer *x) {
        const struct bkp_restore_opts *o = x->o;
        char p[BKP_PRETTY_MAX];
        int r = bkp_chain_open(o->dir, &x->chain, x->err);
        if (r < 0)
                return r;
        struct bkp_backup *newest = x->chain.items[0];
        if (!bkp_document_has_target(newest->doc, o->target))
                return bkp_errorf(x->err, -ENOENT, "backup %s has no target %s; give one of its targets",
                                  o->dir, o->target);
        r = bkp_backup_load_list(newest, o->target, &x->list, x->err);
        if (r < 0)
                return r;
        if (bkp_list_find(&x->list, BKP_MARKER))
                return bkp_errorf(x->err, -EEXIST,
                                  "the tree holds %s at its root, the name of the restore marker; restore "
                                  "it with another tool",
                                  BKP_MARKER);
        x->done = calloc(x->list.n, sizeof(bool));
        x->mount = calloc(x->list.n, sizeof(bool));
        if (!x->done || !x->mount)
                return -ENOMEM;
        for (size_t i = 0; i < x->list.n; i++) {
                const struct bkp_entry *e = &x->list.entries[i];
                if (!bkp_chain_find(&x->chain, e->id))
                        return bkp_errorf(x->err, -EBADMSG,
                                          "%s.list of backup %s names backup %s for %s, which is not one of "
                                          "its bases: the backup is damaged; use another one",
                                          o->target, o->dir, e->id, pretty(e->path, p));
                x->tick.p.files_total++;
                if (e->type == BKP_ENTRY_FILE)
                        x->tick.p.bytes_total += e->size;
        }

        r = open_root(x);
        if (r < 0)
                return r;
        r = create_marker(x, newest->doc->id);
        if (r < 0)
                return r;
        r = bkp_tick(&x->tick, true, x->err);
        if (r < 0)
                return r;

        r = remove_extra(x, x->rootfd, ".");
        if (r < 0)
                return r;
        r = make_dirs(x);
        if (r < 0)
                return r;
        for (size_t i = 0; i < x->chain.n; i++) {
                struct bkp_backup *b = x->chain.items[i];
                bool used = false;
                for (size_t k = 0; k < x->list.n && !used; k++)
                        used = strcmp(x->list.entries[k].id, b->doc->id) == 0;
                if (used && (r = restore_from(x, b)) < 0)
                        return r;
        }
        for (size_t k = 0; k < x->list.n; k++)
                if (!x->done[k])
                        return bkp_errorf(x->err, -EBADMSG,
                                          "entry %s is missing from %s.tar of backup %s, though the list "
                                          "says it is stored there: the backup is damaged; use another one",
                                          pretty(x->list.entries[k].path, p), o->target,
                                          bkp_chain_find(&x->chain, x->list.entries[k].id)->path);
        r = link_hard_links(x);
        if (r < 0)
                return r;
        r = finish_dirs(x);
        if (r < 0)
                return r;
        r = bkp_tick(&x->tick, true, x->err);
        if (r < 0)
                return r;

        if (syncfs(x->rootfd) < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot sync %s: %m", o->root);
        if (unlinkat(x->rootfd, BKP_MARKER, 0) < 0 || fsync(x->rootfd) < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot remove %s/%s: %m", o->root, BKP_MARKER);
        const struct bkp_entry *root = &x->list.entries[0];
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { root->mtime_sec, root->mtime_nsec } };
        if (futimens(x->rootfd, ts) < 0 || fsync(x->rootfd) < 0)
                return bkp_errorf(x->err, negative_errno(), "cannot set the time of %s: %m", o->root);
        return 0;
}

int bkp_restore(const struct bkp_restore_opts *o, char err[BKP_ERR_MAX]) {
        if (!o || !o->dir || !o->target || !o->root || !bkp_target_name_valid(o->target))
                return bkp_errorf(err, -EINVAL,
                                  "give a backup directory, a valid target name and a root directory");
        struct restorer x = {
                .o = o,
                .rootfd = -1,
                .parent_fd = -1,
                .err = err,
                .root_user = geteuid() == 0,
                .tick = { .fn = o->progress, .userdata = o->userdata },
        };
        int r = run(&x);
        parent_reset(&x);
        if (x.rootfd >= 0)
                close(x.rootfd);
        free(x.done);
        free(x.mount);
        bkp_list_release(&x.list);
        bkp_chain_release(&x.chain);
        return r < 0 ? r : 0;
}
