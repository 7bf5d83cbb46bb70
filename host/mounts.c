/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Reads /proc/self/mountinfo afresh on every call: the table changes under us and is small, so
 * nothing is cached. A line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
 * SOURCE SUPEROPTIONS", fields separated by single spaces, with spaces, tabs, newlines and
 * backslashes inside fields written as \040, \011, \012 and \134. No locking: nothing is shared.
 */

#include "host/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "common/macro.h"

void mount_entry_free(struct mount_entry *e) {
        if (!e)
                return;
        free(e->root);
        free(e->mountpoint);
        free(e->options);
        free(e->fstype);
        free(e->source);
        free(e);
}

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* Copies the LEN bytes at S, undoing \ooo escapes; a backslash not followed by three octal digits
 * is kept as it is. */
static char *mounts_unescape(const char *s, size_t len) {
        char *out = malloc(len + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
                    s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
                        *o++ = (char) (((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
                        i += 3;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return out;
}

/* Splits off the next space-separated field of *P: its start in *RET and its length; -EINVAL if
 * there is none. */
static int mounts_next_field(const char **p, const char **ret, size_t *ret_len) {
        const char *s = *p;
        if (*s == ' ')
                s++;
        size_t len = strcspn(s, " \n");
        if (len == 0)
                return -EINVAL;
        *ret = s;
        *ret_len = len;
        *p = s + len;
        return 0;
}

int mounts_parse_line(const char *line, struct mount_entry **ret) {
        if (!line || !ret)
                return -EINVAL;

        const char *p = line, *f[6];
        size_t n[6];
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                if (mounts_next_field(&p, &f[i], &n[i]) < 0)
                        return -EINVAL;

        /* Optional fields ("shared:1", "master:2") until the lone "-". */
        const char *sep;
        size_t sep_len;
        do {
                if (mounts_next_field(&p, &sep, &sep_len) < 0)
                        return -EINVAL;
        } while (sep_len != 1 || sep[0] != '-');

        const char *fstype, *source;
        size_t fstype_len, source_len;
        if (mounts_next_field(&p, &fstype, &fstype_len) < 0 ||
            mounts_next_field(&p, &source, &source_len) < 0)
                return -EINVAL;

        int id, parent, consumed = 0;
        unsigned maj, min;
        if (sscanf(f[0], "%d %d %u:%u%n", &id, &parent, &maj, &min, &consumed) != 4 ||
            f[2] + n[2] != f[0] + consumed)
                return -EINVAL;

        struct mount_entry *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->mount_id = id;
        e->parent_id = parent;
        e->dev = makedev(maj, min);
        e->root = mounts_unescape(f[3], n[3]);
        e->mountpoint = mounts_unescape(f[4], n[4]);
        e->options = mounts_unescape(f[5], n[5]);
        e->fstype = mounts_unescape(fstype, fstype_len);
        e->source = mounts_unescape(source, source_len);
        if (!e->root || !e->mountpoint || !e->options || !e->fstype || !e->source) {
                mount_entry_free(e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

/* Calls CB on every entry of the mount table in order until it returns non-zero, which is
 * returned; the entry is freed after CB unless CB took it (set it to NULL). */
static int mounts_foreach(int (*cb)(struct mount_entry **e, void *userdata), void *userdata) {
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();

        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        for (;;) {
                errno = 0;
                if (getline(&line, &cap, f) < 0)
                        return errno != 0 ? -errno : 0;

                _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
                int r = mounts_parse_line(line, &e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        continue; /* a kernel format we do not know: skip the line */
                r = cb(&e, userdata);
                if (r != 0)
                        return r;
        }
}

struct mounts_find_ctx {
        const char *path;
        struct mount_entry *found;
};

static int mounts_find_cb(struct mount_entry **e, void *userdata) {
        struct mounts_find_ctx *c = userdata;
        if (strcmp((*e)->mountpoint, c->path) != 0)
                return 0;
        /* Later lines are mounted on top of earlier ones: keep the last. */
        mount_entry_free(c->found);
        c->found = TAKE_PTR(*e);
        return 0;
}

int mounts_find(const char *path, struct mount_entry **ret) {
        if (!path || !ret)
                return -EINVAL;

        _cleanup_free_ char *canonical = realpath(path, NULL);
        if (!canonical)
                return negative_errno();

        struct mounts_find_ctx c = { .path = canonical };
        int r = mounts_foreach(mounts_find_cb, &c);
        if (r < 0) {
                mount_entry_free(c.found);
                return r;
        }
        if (!c.found)
                return -ENOENT;
        *ret = c.found;
        return 0;
}

struct mounts_all_ctx {
        struct mount_entry **all;
        size_t n, cap;
};

static int mounts_all_cb(struct mount_entry **e, void *userdata) {
        struct mounts_all_ctx *c = userdata;
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 64;
                struct mount_entry **a = realloc(c->all, cap * sizeof *a);
                if (!a)
                        return -ENOMEM;
                c->all = a;
                c->cap = cap;
        }
        c->all[c->n++] = TAKE_PTR(*e);
        return 0;
}

void mounts_free_all(struct mount_entry **all, size_t n) {
        for (size_t i = 0; all && i < n; i++)
                mount_entry_free(all[i]);
        free(all);
}

int mounts_read_all(struct mount_entry ***ret, size_t *ret_n) {
        if (!ret || !ret_n)
                return -EINVAL;
        struct mounts_all_ctx c = {};
        int r = mounts_foreach(mounts_all_cb, &c);
        if (r < 0) {
                mounts_free_all(c.all, c.n);
                return r;
        }
        *ret = c.all;
        *ret_n = c.n;
        return 0;
}

const struct mount_entry *mounts_holding(struct mount_entry *const *all, size_t n, const char *path) {
        const struct mount_entry *best = NULL;
        size_t best_len = 0;
        if (!path || path[0] != '/')
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const char *mp = all[i]->mountpoint;
                size_t l = strlen(mp);
                while (l > 1 && mp[l - 1] == '/')
                        l--;
                bool holds = l == 1 ? mp[0] == '/'
                                    : strncmp(path, mp, l) == 0 && (path[l] == '/' || path[l] == 0);
                if (holds && (!best || l >= best_len)) {
                        best = all[i];
                        best_len = l;
                }
        }
        return best;
}

struct mounts_id_ctx {
        int id;
        struct mount_entry *found;
};

static int mounts_id_cb(struct mount_entry **e, void *userdata) {
        struct mounts_id_ctx *c = userdata;
        if ((*e)->mount_id == c->id && !c->found)
                c->found = TAKE_PTR(*e);
        return 0;
}

int mounts_find_by_id(int mount_id, struct mount_entry **ret) {
        if (!ret)
                return -EINVAL;
        struct mounts_id_ctx c = { .id = mount_id };
        int r = mounts_foreach(mounts_id_cb, &c);
        if (r < 0) {
                mount_entry_free(c.found);
                return r;
        }
        if (!c.found)
                return -ENOENT;
        *ret = c.found;
        return 0;
}

int mounts_open_dir_nofollow(const char *path, int *ret_fd) {
        if (!path || path[0] != '/' || !ret_fd)
                return -EINVAL;
        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
        if (fd < 0)
                return negative_errno();
        *ret_fd = (int) fd;
        return 0;
}

int mounts_fd_mount_id(int fd, int *ret) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0)
                return negative_errno();
        if (!(sx.stx_mask & STATX_MNT_ID))
                return -EOPNOTSUPP;
        *ret = (int) sx.stx_mnt_id;
        return 0;
}

struct mounts_list_ctx {
        dev_t dev;
        char **list;
        size_t n;
};

static int mounts_list_cb(struct mount_entry **e, void *userdata) {
        struct mounts_list_ctx *c = userdata;
        bool match = (*e)->dev == c->dev;
        if (!match && strncmp((*e)->source, "/dev/", 5) == 0) {
                struct stat st;
                match = stat((*e)->source, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == c->dev;
        }
        if (!match)
                return 0;
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->list[i], (*e)->mountpoint) == 0)
                        return 0;

        char **l = realloc(c->list, (c->n + 2) * sizeof *l);
        if (!l)
                return -ENOMEM;
        c->list = l;
        l[c->n++] = TAKE_PTR((*e)->mountpoint);
        l[c->n] = NULL;
        return 0;
}

int mounts_list_for_device(dev_t dev, char ***ret_mountpoints, size_t *ret_n) {
        if (!ret_mountpoints)
                return -EINVAL;

        struct mounts_list_ctx c = { .dev = dev };
        int r = mounts_foreach(mounts_list_cb, &c);
        if (r >= 0 && !c.list) {
                c.list = calloc(1, sizeof *c.list);
                if (!c.list)
                        r = -ENOMEM;
        }
        if (r < 0) {
                strv_free(c.list);
                return r;
        }
        *ret_mountpoints = c.list;
        if (ret_n)
                *ret_n = c.n;
        return (int) MIN(c.n, (size_t) INT_MAX);
}

int mounts_resolve_loop_backing(const char *mountpoint, char **ret_backing, char **ret_device,
                                char **ret_fstype) {
        if (!mountpoint)
                return -EINVAL;

        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
        int r = mounts_find(mountpoint, &e);
        if (r < 0)
                return r;

        /* Most filesystems report their device in field 3; btrfs reports an anonymous one, so
         * fall back to the source node. */
        dev_t devnum = e->dev;
        _cleanup_free_ char *backing = NULL;
        r = loopdev_backing_file_by_devnum(devnum, &backing);
        if (r == -ENXIO && strncmp(e->source, "/dev/", 5) == 0) {
                struct stat st;
                if (stat(e->source, &st) == 0 && S_ISBLK(st.st_mode)) {
                        devnum = st.st_rdev;
                        r = loopdev_backing_file_by_devnum(devnum, &backing);
                }
        }
        if (r == -ENXIO)
                return -ENOTBLK;
        if (r < 0)
                return r;

        _cleanup_free_ char *device = NULL;
        if (ret_device) {
                r = loopdev_node_by_devnum(devnum, &device);
                if (r < 0)
                        return r;
        }

        if (ret_backing)
                *ret_backing = TAKE_PTR(backing);
        if (ret_device)
                *ret_device = TAKE_PTR(device);
        if (ret_fstype)
                *ret_fstype = TAKE_PTR(e->fstype);
        return 0;
}

int mounts_same_filesystem(const char *a, const char *b) {
        if (!a || !b)
                return -EINVAL;

        struct stat sa, sb;
        if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
                return negative_errno();
        return sa.st_dev == sb.st_dev;
}
