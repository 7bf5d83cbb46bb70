/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * File-level backups, end to end on real directories (under /var/tmp: a disk file system, so that
 * user.* extended attributes and holes work). A tree with every kind of entry (files empty, small
 * and over 1 MiB, sparse files, symlinks, a hard link pair, a fifo, a device, odd names, modes,
 * owners, nanosecond and pre-1970 mtimes, extended attributes in several namespaces) is snapshotted
 * in memory (every byte of content), backed up in full, restored, and compared entry by entry; GNU
 * tar and bsdtar read the tar. Then changes, an incremental, more changes, another incremental and
 * a differential; each restored (into new and into dirty directories) and compared with the
 * snapshot of its moment. Then damage: a byte flipped in each kind of file (-EBADMSG naming it),
 * a base moved away (-ENOENT) or beside (found), a progress callback refusing mid-way (the backup
 * directory removed; the restore marker left), a symlink planted in a restore root (not followed),
 * and the list parser and the BCD on their own. Some parts need root (owners, trusted.*, devices)
 * and are left out without it.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup-internal.h"
#include "backup/backup.h"
#include "common/macro.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define CHECK_OK(call)                                                                                      \
        do {                                                                                                \
                char err_[BKP_ERR_MAX] = "";                                                                \
                int r_ = (call);                                                                            \
                if (r_ < 0) {                                                                               \
                        fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,           \
                                strerror(-r_), err_);                                                       \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define SET_ID "6a1e2f3d-4c5b-4a69-8877-665544332211"
#define CLASS_ID "5C6F0D2E-9B1A-4C3D-8E2F-1A2B3C4D5E6F"

static char base[256];
static bool is_root;

static char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *P(const char *fmt, ...) {
        static char bufs[8][4096];
        static int k;
        char *b = bufs[k++ % 8];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b, sizeof(bufs[0]), fmt, ap);
        va_end(ap);
        return b;
}

/* ---- building trees ---- */

static void write_file(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, data, len) == (ssize_t) len);
        CHECK(close(fd) == 0);
}

static void write_str(const char *path, const char *s) {
        write_file(path, s, strlen(s));
}

static void fill_random(char *p, size_t n, uint32_t seed) {
        for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245 + 12345;
                p[i] = (char) (seed >> 16);
        }
}

static void set_mtime(const char *path, int64_t sec, long nsec) {
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { sec, nsec } };
        CHECK(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) == 0);
}

static void set_xattr(const char *path, const char *name, const void *v, size_t n) {
        if (lsetxattr(path, name, v, n, 0) < 0) {
                fprintf(stderr, "lsetxattr %s %s: %m\n", path, name);
                abort();
        }
}

static uint64_t file_size(const char *path) {
        struct stat st;
        CHECK(stat(path, &st) == 0);
        return (uint64_t) st.st_size;
}

#define SPARSE_SIZE (16u << 20)
#define BIG_SIZE (3u << 20)

/* State 1. */
static void build_tree(const char *s) {
        CHECK(mkdir(s, 0755) == 0);
        CHECK(chmod(s, 0755) == 0);
        write_file(P("%s/empty", s), "", 0);
        write_str(P("%s/small.txt", s), "hello\n");
        static char big[BIG_SIZE];
        fill_random(big, sizeof(big), 1);
        write_file(P("%s/big.bin", s), big, sizeof(big));

        /* 16 MiB with 4 KiB of data at 0 and at 8 MiB, and a hole at the end */
        int fd = open(P("%s/sparse.img", s), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        CHECK(fd >= 0);
        char blk[4096];
        memset(blk, 'A', sizeof(blk));
        CHECK(pwrite(fd, blk, sizeof(blk), 0) == sizeof(blk));
        memset(blk, 'B', sizeof(blk));
        CHECK(pwrite(fd, blk, sizeof(blk), 8 << 20) == sizeof(blk));
        CHECK(ftruncate(fd, SPARSE_SIZE) == 0);
        CHECK(close(fd) == 0);
        /* all a hole */
        fd = open(P("%s/hole.img", s), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(ftruncate(fd, 1 << 20) == 0);
        CHECK(close(fd) == 0);

        CHECK(mkdir(P("%s/dir", s), 0750) == 0);
        CHECK(mkdir(P("%s/dir/sub", s), 0700) == 0);
        write_str(P("%s/dir/sub/deep.txt", s), "deep\n");
        CHECK(symlink("../small.txt", P("%s/dir/link", s)) == 0);
        CHECK(symlink("/nonexistent/target", P("%s/dangling", s)) == 0);
        CHECK(symlink("-", P("%s/dash-link", s)) == 0);
        write_str(P("%s/hl-a", s), "linked\n");
        CHECK(link(P("%s/hl-a", s), P("%s/dir/hl-b", s)) == 0);
        CHECK(mkfifo(P("%s/fifo", s), 0620) == 0);
        if (is_root)
                CHECK(mknod(P("%s/null", s), S_IFCHR | 0666, makedev(1, 3)) == 0);

        write_str(P("%s/with space", s), "space\n");
        write_str(P("%s/new\nline", s), "newline\n");
        write_str(P("%s/bad\xff\xfe", s), "not utf-8\n");
        write_str(P("%s/-", s), "dash\n");
        write_str(P("%s/back\\slash", s), "backslash\n");
        write_str(P("%s/utf8-\xc3\xa9", s), "utf-8\n");

        write_str(P("%s/setuid", s), "#!/bin/sh\n");
        CHECK(chmod(P("%s/setuid", s), 04755) == 0);
        write_str(P("%s/ro", s), "read only\n");
        CHECK(chmod(P("%s/ro", s), 0400) == 0);
        if (is_root) {
                CHECK(mkdir(P("%s/locked", s), 0700) == 0);
                write_str(P("%s/locked/inner", s), "inner\n");
                CHECK(chmod(P("%s/locked", s), 0500) == 0);
                write_str(P("%s/owned", s), "owned\n");
                CHECK(lchown(P("%s/owned", s), 1234, 5678) == 0);
                CHECK(lchown(P("%s/dir/sub", s), 1234, 5678) == 0);
                CHECK(lchown(P("%s/dangling", s), 1234, 5678) == 0);
                set_xattr(P("%s/owned", s), "trusted.t", "trusted value", 13);
                set_xattr(P("%s/dangling", s), "trusted.on-symlink", "x", 1);
        }

        set_xattr(s, "user.root", "1", 1);
        set_xattr(P("%s/small.txt", s), "user.test", "value", 5);
        set_xattr(P("%s/big.bin", s), "user.bin", "a\0b\xff\n", 5);
        set_xattr(P("%s/big.bin", s), "user.empty", "", 0);
        set_xattr(P("%s/dir", s), "user.d", "dir attr", 8);
        set_xattr(P("%s/bad\xff\xfe", s), "user.odd", "odd", 3);

        set_mtime(P("%s/small.txt", s), 1700000000, 123456789);
        set_mtime(P("%s/big.bin", s), 1600000000, 1);
        set_mtime(P("%s/empty", s), 631152000, 999999999); /* 1990 */
        set_mtime(P("%s/-", s), -2, 500000000); /* 1969-12-31 23:59:58.5 */
        set_mtime(P("%s/dir/link", s), 1650000000, 42);
        set_mtime(P("%s/dir/sub", s), 1500000000, 5);
        set_mtime(P("%s/dir", s), 1500000001, 6);
        set_mtime(s, 1500000002, 7);
}

/* ---- snapshots ---- */

struct snap_entry {
        char *path;
        struct stat st;
        char *content; /* files */
        size_t len;
        char *target; /* symlinks */
        char *xattrs; /* sorted, serialized */
        size_t xattrs_len;
        char *first_link; /* the first path (in order) of a multiply linked inode */
};

struct snap {
        struct snap_entry *v;
        size_t n;
};

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void read_xattrs(const char *path, struct snap_entry *e) {
        char names[65536];
        ssize_t n = llistxattr(path, names, sizeof(names));
        CHECK(n >= 0);
        char *sorted[256];
        size_t k = 0;
        for (char *p = names; p < names + n; p += strlen(p) + 1) {
                CHECK(k < 256);
                sorted[k++] = p;
        }
        qsort(sorted, k, sizeof(char *), name_cmp);
        struct bkp_buf b = {};
        for (size_t i = 0; i < k; i++) {
                char v[65536];
                ssize_t vn = lgetxattr(path, sorted[i], v, sizeof(v));
                CHECK(vn >= 0);
                CHECK(bkp_buf_printf(&b, "%s=%zd:", sorted[i], vn) == 0);
                CHECK(bkp_buf_append(&b, v, (size_t) vn) == 0);
                CHECK(bkp_buf_append(&b, "\n", 1) == 0);
        }
        e->xattrs = b.data;
        e->xattrs_len = b.len;
}

static void snap_add(struct snap *s, const char *root, const char *rel) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", root, rel);
        struct snap_entry e = { .path = strdup(rel) };
        CHECK(e.path);
        CHECK(lstat(full, &e.st) == 0);
        if (S_ISREG(e.st.st_mode)) {
                e.len = (size_t) e.st.st_size;
                e.content = malloc(e.len + 1);
                CHECK(e.content);
                int fd = open(full, O_RDONLY | O_CLOEXEC);
                CHECK(fd >= 0);
                size_t done = 0;
                while (done < e.len) {
                        ssize_t k = read(fd, e.content + done, e.len - done);
                        CHECK(k > 0);
                        done += (size_t) k;
                }
                close(fd);
        } else if (S_ISLNK(e.st.st_mode)) {
                char t[4096];
                ssize_t k = readlink(full, t, sizeof(t) - 1);
                CHECK(k > 0);
                t[k] = '\0';
                e.target = strdup(t);
        }
        read_xattrs(full, &e);
        s->v = reallocarray(s->v, s->n + 1, sizeof(*s->v));
        CHECK(s->v);
        s->v[s->n++] = e;

        if (S_ISDIR(e.st.st_mode)) {
                DIR *d = opendir(full);
                CHECK(d);
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        char sub[4096];
                        if (strcmp(rel, ".") == 0)
                                snprintf(sub, sizeof(sub), "%s", de->d_name);
                        else
                                snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
                        snap_add(s, root, sub);
                }
                closedir(d);
        }
}

static int snap_cmp(const void *a, const void *b) {
        return bkp_path_compare(((const struct snap_entry *) a)->path,
                                ((const struct snap_entry *) b)->path);
}

static struct snap snap_take(const char *root) {
        struct snap s = {};
        snap_add(&s, root, ".");
        qsort(s.v, s.n, sizeof(*s.v), snap_cmp);
        for (size_t i = 0; i < s.n; i++) {
                struct snap_entry *e = &s.v[i];
                if (S_ISDIR(e->st.st_mode) || e->st.st_nlink < 2)
                        continue;
                for (size_t j = 0; j <= i; j++)
                        if (s.v[j].st.st_ino == e->st.st_ino && s.v[j].st.st_dev == e->st.st_dev) {
                                e->first_link = s.v[j].path;
                                break;
                        }
        }
        return s;
}

static void snap_free(struct snap *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->v[i].path);
                free(s->v[i].content);
                free(s->v[i].target);
                free(s->v[i].xattrs);
        }
        free(s->v);
        *s = (struct snap){};
}

/* Every entry the same: type, mode, owner, size, mtime (ns), device, content (bytes), link target,
 * extended attributes, hard link sharing; and holes kept. */
static void snap_compare(const struct snap *want, const struct snap *have, const char *what) {
        if (want->n != have->n) {
                fprintf(stderr, "%s: %zu entries, expected %zu\n", what, have->n, want->n);
                for (size_t i = 0; i < MAX(want->n, have->n); i++)
                        fprintf(stderr, "  %s | %s\n", i < want->n ? want->v[i].path : "",
                                i < have->n ? have->v[i].path : "");
                abort();
        }
        for (size_t i = 0; i < want->n; i++) {
                const struct snap_entry *a = &want->v[i], *b = &have->v[i];
                const char *bad = NULL;
                if (strcmp(a->path, b->path) != 0)
                        bad = "path";
                else if (a->st.st_mode != b->st.st_mode)
                        bad = "mode";
                else if (a->st.st_uid != b->st.st_uid || a->st.st_gid != b->st.st_gid)
                        bad = "owner";
                else if (!S_ISDIR(a->st.st_mode) && a->st.st_size != b->st.st_size)
                        bad = "size";
                else if (a->st.st_mtim.tv_sec != b->st.st_mtim.tv_sec ||
                         a->st.st_mtim.tv_nsec != b->st.st_mtim.tv_nsec)
                        bad = "mtime";
                else if ((S_ISCHR(a->st.st_mode) || S_ISBLK(a->st.st_mode)) &&
                         a->st.st_rdev != b->st.st_rdev)
                        bad = "rdev";
                else if (a->len != b->len || (a->len && memcmp(a->content, b->content, a->len) != 0))
                        bad = "content";
                else if ((a->target || b->target) &&
                         (!a->target || !b->target || strcmp(a->target, b->target) != 0))
                        bad = "symlink target";
                else if (a->xattrs_len != b->xattrs_len ||
                         (a->xattrs_len && memcmp(a->xattrs, b->xattrs, a->xattrs_len) != 0))
                        bad = "xattrs";
                else if (a->st.st_nlink != b->st.st_nlink && !S_ISDIR(a->st.st_mode))
                        bad = "link count";
                else if ((a->first_link || b->first_link) &&
                         (!a->first_link || !b->first_link || strcmp(a->first_link, b->first_link) != 0))
                        bad = "hard link sharing";
                else if (S_ISREG(a->st.st_mode) && b->st.st_blocks > a->st.st_blocks + 64)
                        bad = "holes (blocks)";
                if (bad) {
                        char p[BKP_PRETTY_MAX];
                        fprintf(stderr, "%s: %s differs in %s\n", what, bkp_pretty(a->path, p), bad);
                        abort();
                }
        }
}

/* ---- helpers ---- */

static int rm_rf(const char *path) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                execlp("rm", "rm", "-rf", "--one-file-system", path, (char *) NULL);
                _exit(127);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_shell(const char *cmd) {
        int status = system(cmd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_all(const char *path, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        struct stat st;
        CHECK(fstat(fd, &st) == 0);
        char *b = malloc((size_t) st.st_size + 1);
        CHECK(b);
        CHECK(read(fd, b, (size_t) st.st_size) == st.st_size);
        b[st.st_size] = '\0';
        close(fd);
        if (ret_len)
                *ret_len = (size_t) st.st_size;
        return b;
}

static void flip_byte(const char *path, off_t off) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0);
        unsigned char c;
        CHECK(pread(fd, &c, 1, off) == 1);
        c ^= 0x20;
        CHECK(pwrite(fd, &c, 1, off) == 1);
        close(fd);
}

static bool exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}

static const struct bkp_target *targets_for(const char *root) {
        static struct bkp_target t[1];
        t[0] = (struct bkp_target){ .name = "main", .root = root, .origin = "/srv/data with space" };
        return t;
}

static const struct bkp_component components[] = {
        { .writer = "SqliteWriter",
          .writer_class_id = CLASS_ID,
          .logical_path = "Databases",
          .name = "main",
          .backup_metadata = "lsn=42\n\t<wal> & \"done\"",
          .succeeded = true },
        { .writer = "Files", .writer_class_id = CLASS_ID, .name = "etc", .succeeded = false },
};

static const char *const writer_docs[] = { "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"1\"/>\n",
                                           "<doc>two</doc>", NULL };

static int do_backup(const char *dir, bkp_type type, const char *base_dir, const char *root,
                     struct bkp_stats *st, char *err) {
        struct bkp_write_opts o = {
                .dir = dir,
                .type = type,
                .base_dir = base_dir,
                .targets = targets_for(root),
                .n_targets = 1,
                .set_id = SET_ID,
                .created_usec = 1700000000123456,
                .components = components,
                .n_components = ELEMENTSOF(components),
                .writer_documents = writer_docs,
        };
        return bkp_write(&o, st, NULL, err);
}

static int do_restore(const char *dir, const char *root, char *err) {
        struct bkp_restore_opts o = { .dir = dir, .target = "main", .root = root };
        return bkp_restore(&o, err);
}

static void restore_and_compare(const char *dir, const char *root, const struct snap *want,
                                const char *what) {
        CHECK_OK(do_restore(dir, root, err_));
        CHECK(!exists(P("%s/%s", root, BKP_MARKER)));
        struct snap s = snap_take(root);
        snap_compare(want, &s, what);
        snap_free(&s);
}

static void check_verify_fails(const char *dir, int want, const char *needle) {
        char err[BKP_ERR_MAX] = "";
        int r = bkp_verify(dir, NULL, NULL, err);
        if (r != want || !strstr(err, needle)) {
                fprintf(stderr, "verify %s: %d (%s), expected %d naming %s\n", dir, r, err, want, needle);
                abort();
        }
        printf("  verify refused as expected: %s\n", err);
}

/* ---- the list parser and the BCD on their own ---- */

#define ID1 "11111111-2222-4333-8444-555555555555"
#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_list_parser(void) {
        const char *good = "lvss-list 2\n"
                           ". d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                           "\\055 l 0777 0 0 0 -2.500000000 7.000000008 - - - \\055 " ID1 "\n"
                           "a\\040b f 0644 1 2 3 5.000000001 7.000000008 - " H64 " " H64 " - " ID1 "\n"
                           "d d 0700 0 0 0 5.000000000 7.000000008 - - - - " ID1 "\n"
                           "d/c c 0600 0 0 0 5.000000000 7.000000008 1:3 - - - " ID1 "\n"
                           "d/h h 0644 1 2 3 5.000000001 7.000000008 - " H64 " " H64 " a\\040b " ID1 "\n"
                           "nl\\012\\377 p 0600 0 0 0 5.000000000 7.000000008 - - - - " ID1 "\n";
        struct bkp_list l = {};
        size_t line = 0;
        CHECK(bkp_list_parse(good, strlen(good), &l, &line) == 0);
        CHECK(l.n == 7);
        CHECK(strcmp(l.entries[1].path, "-") == 0 && strcmp(l.entries[1].target, "-") == 0);
        CHECK(l.entries[1].mtime_sec == -2 && l.entries[1].mtime_nsec == 500000000);
        CHECK(l.entries[1].ctime_sec == 7 && l.entries[1].ctime_nsec == 8);
        CHECK(strcmp(l.entries[2].path, "a b") == 0 && l.entries[2].has_xattrs && l.entries[2].size == 3);
        CHECK(l.entries[4].rdev_major == 1 && l.entries[4].rdev_minor == 3);
        CHECK(strcmp(l.entries[6].path, "nl\n\xff") == 0);
        struct bkp_buf b = {};
        CHECK(bkp_list_format(&l, &b) == 0);
        CHECK(b.len == strlen(good) && memcmp(b.data, good, b.len) == 0);
        bkp_buf_release(&b);
        bkp_list_release(&l);

        /* Each: a bad line, and the line number the parser must name. */
        static const struct {
                const char *text;
                size_t line;
        } bad[] = {
                { "lvss-list 1\n. d 0755 0 0 0 1.000000000 - - - - " ID1 "\n", 1 }, /* version 1: no CTIME */
                { "lvss-list 3\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n", 1 },
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 - - - - " ID1 "\n", 2 }, /* no CTIME */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.00000008 - - - - " ID1 "\n",
                  2 }, /* CTIME 8 digits */
                { "lvss-list 2\n", 2 },
                { "lvss-list 2\na d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n", 2 }, /* no root */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1, 2 }, /* no \n */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "b d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n",
                  4 }, /* unsorted */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "\\141 d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n",
                  3 }, /* \141 = a */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a\tb d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n",
                  3 }, /* raw tab */
                { "lvss-list 2\n. d 0755 0 0 0 01.000000000 7.000000008 - - - - " ID1 "\n", 2 }, /* 01 */
                { "lvss-list 2\n. d 0755 0 0 0 -0.500000000 7.000000008 - - - - " ID1 "\n", 2 }, /* -0 */
                { "lvss-list 2\n. d 0755 0 0 0 1.00000000 7.000000008 - - - - " ID1 "\n", 2 }, /* 8 digits */
                { "lvss-list 2\n. d 0855 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n", 2 }, /* mode */
                { "lvss-list 2\n. d 0755 0 0 0  1.000000000 7.000000008 - - - - " ID1 "\n",
                  2 }, /* 2 spaces */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 " \n",
                  2 }, /* trailing */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - "
                  "11111111-2222-4333-8444-55555555555A\n",
                  2 },
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a/b f 0644 0 0 0 1.000000000 7.000000008 - - " H64 " - " ID1 "\n",
                  3 }, /* no parent */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a f 0644 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n",
                  3 }, /* no sha */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a d 0755 0 0 7 1.000000000 7.000000008 - - - - " ID1 "\n",
                  3 }, /* dir size */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a f 0644 0 0 0 1.000000000 7.000000008 - - " H64 " - " ID1 "\n"
                  "b h 0644 0 0 1 1.000000000 7.000000008 - - " H64 " a " ID1 "\n",
                  4 }, /* size differs */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a f 0644 0 0 0 1.000000000 7.000000008 - - " H64 " - " ID1 "\n"
                  "b h 0644 0 0 0 1.000000000 7.000000009 - - " H64 " a " ID1 "\n",
                  4 }, /* ctime differs */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a h 0644 0 0 0 1.000000000 7.000000008 - - " H64 " b " ID1 "\n",
                  3 }, /* forward link */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a/../b f 0644 0 0 0 1.000000000 7.000000008 - - " H64 " - " ID1 "\n",
                  3 },
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a c 0644 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n",
                  3 }, /* no rdev */
                { "lvss-list 2\n. d 0755 0 0 0 1.000000000 7.000000008 - - - - " ID1 "\n"
                  "a\\000 f 0644 0 0 0 1.000000000 7.000000008 - - " H64 " - " ID1 "\n",
                  3 }, /* NUL */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                line = 0;
                int r = bkp_list_parse(bad[i].text, strlen(bad[i].text), &l, &line);
                if (r != -EBADMSG || line != bad[i].line) {
                        fprintf(stderr, "bad list %zu: %d at line %zu, expected line %zu\n", i, r, line,
                                bad[i].line);
                        abort();
                }
        }
        printf("list parser: 1 good list round-trips byte for byte, %zu bad ones refused at the right "
               "line\n",
               ELEMENTSOF(bad));
}

static void test_bcd_parser(void) {
        static const char *const bad[] = {
                "<?xml version=\"1.0\"?><!DOCTYPE backup [<!ENTITY x \"y\">]><backup "
                "xmlns=\"urn:lvss:bcd:1\" version=\"1\"/>",
                "<backup xmlns=\"urn:lvss:bcd:1\" version=\"1\"/>", /* no identity */
                "<backup xmlns=\"urn:lvss:bcd:1\" version=\"1\"><identity id=\"" ID1
                "\" type=\"incremental\" created=\"1\"/></backup>", /* no base */
                "<backup xmlns=\"urn:lvss:bcd:1\" version=\"1\"><identity id=\"" ID1
                "\" type=\"full\" created=\"1\"/><other/></backup>",
                "<backup xmlns=\"urn:lvss:bcd:1\" version=\"1\"><identity id=\"" ID1
                "\" type=\"full\" created=\"1\"/><writer-document file=\"writers/1.xml\"/></backup>",
                "<backup xmlns=\"urn:lvss:bcd:2\" version=\"1\"><identity id=\"" ID1
                "\" type=\"full\" created=\"1\"/></backup>",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct bkp_document *d = NULL;
                CHECK(bkp_document_from_xml(bad[i], strlen(bad[i]), &d) == -EBADMSG);
        }
        const char *good =
                "<backup xmlns=\"urn:lvss:bcd:1\" version=\"1\"><identity id=\"" ID1
                "\" type=\"full\" created=\"1\"/><target name=\"a\" origin=\"/x\\040y\"/></backup>";
        struct bkp_document *d = NULL;
        CHECK(bkp_document_from_xml(good, strlen(good), &d) == 0);
        CHECK(d->n_targets == 1 && strcmp(d->targets[0].origin, "/x y") == 0);
        bkp_document_free(d);
        printf("BCD parser: %zu bad documents refused\n", ELEMENTSOF(bad));
}

/* ---- progress ---- */

struct stopper {
        int calls, mid_calls;
        const char *marker; /* restore: a path that must exist during the restore */
        bool marker_seen;
};

/* A same-size rewrite whose mtime is set back (as os.utime, touch -r, rsync -t, or two writes
 * within one timestamp tick leave it) is seen by its ctime: stored again, and restored new. */
/* Exclude file sets: a writer's lock and temporary files are left out, directories kept. */
static void test_excludes(void) {
        char dir[256], src[512], out[512], restored[512];
        snprintf(dir, sizeof(dir), "%s", P("%s/excl", base));
        snprintf(src, sizeof(src), "%s/src", dir);
        snprintf(out, sizeof(out), "%s/b", dir);
        snprintf(restored, sizeof(restored), "%s/r", dir);
        CHECK(mkdir(dir, 0700) == 0 && mkdir(src, 0755) == 0);
        CHECK(mkdir(P("%s/pg", src), 0700) == 0 && mkdir(P("%s/pg/stat", src), 0700) == 0);
        CHECK(mkdir(P("%s/pg/stat/deep", src), 0700) == 0);
        write_str(P("%s/pg/postmaster.pid", src), "1234\n");
        write_str(P("%s/pg/base.db", src), "data\n");
        write_str(P("%s/pg/stat/a.tmp", src), "tmp\n");
        write_str(P("%s/pg/stat/deep/b.tmp", src), "tmp\n");
        write_str(P("%s/pg/stat/keep.txt", src), "keep\n");
        write_str(P("%s/top.tmp", src), "top\n");
        CHECK(mkdir(P("%s/x.pid", src), 0755) == 0); /* a directory matching: kept */
        static const struct bkp_exclude ex[] = {
                { .dir = "pg", .filespec = "postmaster.pid", .recursive = false },
                { .dir = "pg/stat", .filespec = "*.tmp", .recursive = true },
                { .dir = ".", .filespec = "*.pid", .recursive = false },
        };
        struct bkp_target t = { .name = "main", .root = src, .excludes = ex, .n_excludes = ELEMENTSOF(ex) };
        struct bkp_write_opts o = { .dir = out, .type = BKP_FULL, .targets = &t, .n_targets = 1 };
        struct bkp_stats st;
        CHECK_OK(bkp_write(&o, &st, NULL, err_));
        CHECK(st.entries_excluded == 3); /* postmaster.pid, a.tmp, deep/b.tmp */
        CHECK_OK(bkp_verify(out, NULL, NULL, err_));
        CHECK_OK(do_restore(out, restored, err_));
        CHECK(!exists(P("%s/pg/postmaster.pid", restored)) && exists(P("%s/pg/base.db", restored)));
        CHECK(!exists(P("%s/pg/stat/a.tmp", restored)) && !exists(P("%s/pg/stat/deep/b.tmp", restored)));
        CHECK(exists(P("%s/pg/stat/keep.txt", restored)) && exists(P("%s/pg/stat/deep", restored)));
        CHECK(exists(P("%s/top.tmp", restored)) && exists(P("%s/x.pid", restored)));
        printf("exclude file sets: left out as given, directories kept\n");
}

static void test_mtime_reset(void) {
        const char *d = P("%s/reset", base);
        char dir[256], src[512], full[512], inc[512], out[512];
        snprintf(dir, sizeof(dir), "%s", d);
        snprintf(src, sizeof(src), "%s/src", dir);
        snprintf(full, sizeof(full), "%s/full", dir);
        snprintf(inc, sizeof(inc), "%s/inc", dir);
        snprintf(out, sizeof(out), "%s/out", dir);
        CHECK(mkdir(dir, 0700) == 0);
        CHECK(mkdir(src, 0755) == 0);
        write_str(P("%s/f", src), "old bytes\n");
        set_mtime(P("%s/f", src), 1700000000, 1);
        struct stat before, after;
        CHECK(stat(P("%s/f", src), &before) == 0);
        struct bkp_stats st;
        CHECK_OK(do_backup(full, BKP_FULL, NULL, src, &st, err_));
        CHECK(st.entries == 2 && st.entries_stored == 2);

        write_str(P("%s/f", src), "new bytes\n"); /* the same size */
        set_mtime(P("%s/f", src), 1700000000, 1); /* the mtime set back */
        CHECK(stat(P("%s/f", src), &after) == 0);
        CHECK(after.st_size == before.st_size && after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
              after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
        CHECK_OK(do_backup(inc, BKP_INCREMENTAL, full, src, &st, err_));
        CHECK(st.entries == 2 && st.entries_stored == 1 && st.bytes_read == strlen("new bytes\n"));
        CHECK_OK(bkp_verify(inc, NULL, NULL, err_));

        CHECK_OK(do_restore(inc, out, err_));
        size_t n;
        char *c = read_all(P("%s/f", out), &n);
        CHECK(n == strlen("new bytes\n") && memcmp(c, "new bytes\n", n) == 0);
        free(c);

        /* unchanged since: nothing stored, the line (and its ctime) copied from the base */
        char inc2[512];
        snprintf(inc2, sizeof(inc2), "%s/inc2", dir);
        CHECK_OK(do_backup(inc2, BKP_INCREMENTAL, inc, src, &st, err_));
        CHECK(st.entries_stored == 0);
        CHECK_OK(bkp_verify(inc2, NULL, NULL, err_));
        CHECK(rm_rf(dir) == 0);
        printf("a same-size rewrite with its mtime set back: stored by the incremental, restored new\n");
}

static int stop_mid_way(const struct bkp_progress *p, void *userdata) {
        struct stopper *s = userdata;
        s->calls++;
        if (s->marker && exists(s->marker))
                s->marker_seen = true;
        if (p->files_done == 0) {
                usleep(150 * 1000); /* so that the next entry is ~100 ms later: a call mid-way */
                return 0;
        }
        if (p->files_done < p->files_total) {
                s->mid_calls++;
                return -EINTR;
        }
        return 0;
}

static int count_calls(const struct bkp_progress *p, void *userdata) {
        struct stopper *s = userdata;
        s->calls++;
        if (s->marker && exists(s->marker))
                s->marker_seen = true;
        CHECK(p->files_done <= p->files_total && p->bytes_done <= p->bytes_total);
        return 0;
}

/* ---- the test ---- */

int main(void) {
        setvbuf(stdout, NULL, _IONBF, 0);
        is_root = geteuid() == 0;
        snprintf(base, sizeof(base), "/var/tmp/lvss-test-backup.XXXXXX");
        CHECK(mkdtemp(base));
        printf("working in %s%s\n", base, is_root ? "" : " (not root: no owners, trusted.* or devices)");

        test_list_parser();
        test_bcd_parser();
        test_mtime_reset();
        test_excludes();

        const char *src = P("%s/src", base);
        char src_buf[512];
        snprintf(src_buf, sizeof(src_buf), "%s", src);
        src = src_buf;
        build_tree(src);
        struct snap s1 = snap_take(src);

        /* ---- full ---- */
        char full[512], inc1[512], inc2[512], diff[512];
        snprintf(full, sizeof(full), "%s/full", base);
        snprintf(inc1, sizeof(inc1), "%s/inc1", base);
        snprintf(inc2, sizeof(inc2), "%s/inc2", base);
        snprintf(diff, sizeof(diff), "%s/diff", base);
        struct bkp_stats st;
        struct stopper counter = {};
        {
                struct bkp_write_opts o = {
                        .dir = full,
                        .type = BKP_FULL,
                        .targets = targets_for(src),
                        .n_targets = 1,
                        .set_id = SET_ID,
                        .created_usec = 1700000000123456,
                        .components = components,
                        .n_components = ELEMENTSOF(components),
                        .writer_documents = writer_docs,
                        .progress = count_calls,
                        .userdata = &counter,
                };
                struct bkp_document *doc = NULL;
                CHECK_OK(bkp_write(&o, &st, &doc, err_));
                CHECK(doc && doc->type == BKP_FULL && bkp_uuid_valid(doc->id) && !doc->base_path);
                bkp_document_free(doc);
        }
        CHECK(counter.calls >= 2); /* at the start and at the end */
        CHECK(st.entries == s1.n && st.entries_stored == s1.n && st.entries_deleted == 0);
        {
                /* every file read once (hard links once), holes not read */
                uint64_t want = 0;
                for (size_t i = 0; i < s1.n; i++)
                        if (S_ISREG(s1.v[i].st.st_mode) &&
                            (!s1.v[i].first_link || s1.v[i].first_link == s1.v[i].path))
                                want += strcmp(s1.v[i].path, "sparse.img") == 0 ? 8192
                                        : strcmp(s1.v[i].path, "hole.img") == 0
                                                ? 0
                                                : (uint64_t) s1.v[i].st.st_size;
                CHECK(st.bytes_read == want);
        }
        uint64_t full_tar = file_size(P("%s/main.tar", full));
        uint64_t apparent = 0;
        for (size_t i = 0; i < s1.n; i++)
                if (S_ISREG(s1.v[i].st.st_mode))
                        apparent += (uint64_t) s1.v[i].st.st_size;
        printf("full: %" PRIu64 " entries, tar %" PRIu64 " bytes for %" PRIu64
               " bytes of apparent content, dir %" PRIu64 " bytes\n",
               st.entries, full_tar, apparent, st.bytes_written);
        CHECK(apparent > 20u << 20);
        CHECK(full_tar < BIG_SIZE + (512u << 10)); /* the 17 MiB of holes are not stored */
        CHECK(file_size(P("%s/writers/1.xml", full)) == strlen(writer_docs[1]));

        /* the document reads back as given */
        {
                struct bkp_document *d = NULL;
                CHECK_OK(bkp_read_document(full, &d, err_));
                CHECK(d->type == BKP_FULL && strcmp(d->set_id, "6a1e2f3d-4c5b-4a69-8877-665544332211") == 0);
                CHECK(d->created_usec == 1700000000123456 && d->base_id[0] == '\0' && !d->base_path);
                CHECK(d->n_targets == 1 && strcmp(d->targets[0].name, "main") == 0 &&
                      strcmp(d->targets[0].origin, "/srv/data with space") == 0 && !d->targets[0].root);
                CHECK(d->n_components == 2);
                CHECK(strcmp(d->components[0].writer_class_id, "5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f") == 0);
                CHECK(strcmp(d->components[0].backup_metadata, components[0].backup_metadata) == 0);
                CHECK(strcmp(d->components[0].logical_path, "Databases") == 0 && d->components[0].succeeded);
                CHECK(!d->components[1].logical_path && !d->components[1].backup_metadata &&
                      !d->components[1].succeeded);
                CHECK(d->n_writer_documents == 2 && strcmp(d->writer_documents[0], writer_docs[0]) == 0 &&
                      strcmp(d->writer_documents[1], writer_docs[1]) == 0);
                bkp_document_free(d);
        }

        CHECK_OK(bkp_verify(full, NULL, NULL, err_));

        /* GNU tar and bsdtar read it; GNU tar extracts the sparse and the big file byte for byte */
        CHECK(run_shell(P("tar -tvf '%s/main.tar' > '%s/gnu.txt' 2>/dev/null", full, base)) == 0);
        CHECK(run_shell(P("bsdtar -tf '%s/main.tar' > '%s/bsd.txt'", full, base)) == 0);
        {
                char *g = read_all(P("%s/gnu.txt", base), NULL), *b = read_all(P("%s/bsd.txt", base), NULL);
                CHECK(strstr(g, "big.bin") && strstr(g, "sparse.img") && strstr(g, "with space") &&
                      strstr(g, "dir/hl-b") && strstr(g, "hl-a link to dir/hl-b"));
                CHECK(strstr(b, "big.bin") && strstr(b, "sparse.img") && strstr(b, "with space"));
                free(g);
                free(b);
                CHECK(mkdir(P("%s/gnu-x", base), 0700) == 0);
                CHECK(run_shell(P("tar -xf '%s/main.tar' -C '%s/gnu-x' sparse.img big.bin 2>/dev/null", full,
                                  base)) == 0);
                for (size_t i = 0; i < s1.n; i++)
                        if (strcmp(s1.v[i].path, "sparse.img") == 0 ||
                            strcmp(s1.v[i].path, "big.bin") == 0) {
                                size_t n;
                                char *c = read_all(P("%s/gnu-x/%s", base, s1.v[i].path), &n);
                                CHECK(n == s1.v[i].len && memcmp(c, s1.v[i].content, n) == 0);
                                free(c);
                        }
        }

        /* restore into a new directory */
        char r1[512];
        snprintf(r1, sizeof(r1), "%s/r1", base);
        restore_and_compare(full, r1, &s1, "full restored");
        {
                struct stat a;
                CHECK(stat(P("%s/sparse.img", r1), &a) == 0 && a.st_size == SPARSE_SIZE &&
                      a.st_blocks * 512 <= 64 * 1024);
                CHECK(stat(P("%s/hole.img", r1), &a) == 0 && a.st_size == 1 << 20 &&
                      a.st_blocks * 512 <= 8192);
                struct stat x, y;
                CHECK(lstat(P("%s/hl-a", r1), &x) == 0 && lstat(P("%s/dir/hl-b", r1), &y) == 0);
                CHECK(x.st_ino == y.st_ino && x.st_nlink == 2);
        }
        printf("full restored and equal, entry by entry\n");

        /* ---- state 2: changes, incremental ---- */
        write_str(P("%s/small.txt", src), "hello, changed\n");
        set_mtime(P("%s/small.txt", src), 1700000100, 5);
        write_str(P("%s/new.txt", src), "new file\n");
        CHECK(unlink(P("%s/dir/sub/deep.txt", src)) == 0);
        set_mtime(P("%s/dir/sub", src), 1500000000, 5); /* same mtime: only the listing changed */
        CHECK(chmod(P("%s/ro", src), 0444) == 0); /* the mode only */
        set_xattr(P("%s/empty", src), "user.added", "later", 5); /* an extended attribute only */
        CHECK(unlink(P("%s/dir/link", src)) == 0);
        CHECK(symlink("../new.txt", P("%s/dir/link", src)) == 0);
        set_mtime(P("%s/dir/link", src), 1650000000, 42); /* same mtime: only the target differs */
        set_mtime(P("%s/dir", src), 1500000001, 6);
        set_mtime(src, 1500000003, 8);
        struct snap s2 = snap_take(src);

        CHECK_OK(do_backup(inc1, BKP_INCREMENTAL, full, src, &st, err_));
        uint64_t inc1_tar = file_size(P("%s/main.tar", inc1));
        printf("incremental 1: %" PRIu64 " entries, %" PRIu64 " stored, %" PRIu64 " deleted, %" PRIu64
               " bytes read, tar %" PRIu64 " bytes (full: %" PRIu64 ")\n",
               st.entries, st.entries_stored, st.entries_deleted, st.bytes_read, inc1_tar, full_tar);
        CHECK(st.entries == s2.n && st.entries_deleted == 1);
        /* stored: ".", small.txt, new.txt, dir/sub (its listing is not compared, its mtime is equal,
         * but its ctime changed), ro, empty, dir/link, dir (same mtime, set again: a new ctime) */
        CHECK(st.entries_stored == 8);
        /* a changed mode stores the file again, content included; big.bin is not read */
        CHECK(st.bytes_read == strlen("hello, changed\n") + strlen("new file\n") + strlen("read only\n"));
        CHECK(inc1_tar * 50 < full_tar);
        {
                size_t n;
                char *l = read_all(P("%s/main.list", inc1), &n);
                struct bkp_document *df = NULL, *di = NULL;
                CHECK_OK(bkp_read_document(full, &df, err_));
                CHECK_OK(bkp_read_document(inc1, &di, err_));
                CHECK(strcmp(di->base_id, df->id) == 0 && di->type == BKP_INCREMENTAL);
                CHECK(di->base_path && di->base_path[0] == '/' && strstr(di->base_path, "/full"));
                /* big.bin was not read: its line names the full backup */
                struct bkp_list list = {};
                CHECK(bkp_list_parse(l, n, &list, NULL) == 0);
                const struct bkp_entry *e = bkp_list_find(&list, "big.bin");
                CHECK(e && strcmp(e->id, df->id) == 0);
                e = bkp_list_find(&list, "small.txt");
                CHECK(e && strcmp(e->id, di->id) == 0);
                CHECK(!bkp_list_find(&list, "dir/sub/deep.txt"));
                bkp_list_release(&list);
                bkp_document_free(df);
                bkp_document_free(di);
                free(l);
        }
        CHECK_OK(bkp_verify(inc1, NULL, NULL, err_));

        /* ---- state 3: more changes, a second incremental and a differential ---- */
        {
                static char big[BIG_SIZE];
                fill_random(big, sizeof(big), 1);
                memcpy(big + 1000, "CHANGED", 7);
                write_file(P("%s/big.bin", src), big, sizeof(big));
                set_mtime(P("%s/big.bin", src), 1600000000, 2);
        }
        CHECK(unlink(P("%s/new.txt", src)) == 0);
        CHECK(link(P("%s/hl-a", src), P("%s/hl-c", src)) == 0); /* a third link */
        CHECK(unlink(P("%s/with space", src)) == 0);
        CHECK(mkdir(P("%s/with space", src), 0711) == 0); /* a file became a directory */
        write_str(P("%s/with space/in", src), "inside\n");
        CHECK(unlink(P("%s/fifo", src)) == 0);
        write_str(P("%s/fifo", src), "a fifo became a file\n");
        set_mtime(src, 1500000004, 9);
        struct snap s3 = snap_take(src);

        CHECK_OK(do_backup(inc2, BKP_INCREMENTAL, inc1, src, &st, err_));
        printf("incremental 2: %" PRIu64 " stored, %" PRIu64 " deleted, tar %" PRIu64 " bytes\n",
               st.entries_stored, st.entries_deleted, file_size(P("%s/main.tar", inc2)));
        CHECK(st.entries_deleted == 1); /* new.txt */
        CHECK_OK(do_backup(diff, BKP_DIFFERENTIAL, full, src, &st, err_));
        printf("differential: %" PRIu64 " stored, %" PRIu64 " deleted, tar %" PRIu64 " bytes\n",
               st.entries_stored, st.entries_deleted, file_size(P("%s/main.tar", diff)));
        CHECK(st.entries_deleted == 1); /* dir/sub/deep.txt, since the full */
        CHECK_OK(bkp_verify(inc2, NULL, NULL, err_));
        CHECK_OK(bkp_verify(diff, NULL, NULL, err_));

        /* restores: new directories, and dirty ones (what the tree did not have is removed) */
        restore_and_compare(inc1, P("%s/r2", base), &s2, "incremental 1 restored");
        restore_and_compare(inc2, r1, &s3, "incremental 2 restored over the full's tree");
        restore_and_compare(diff, P("%s/r3", base), &s3, "differential restored");
        restore_and_compare(full, r1, &s1, "full restored over state 3");
        restore_and_compare(inc1, r1, &s2, "incremental 1 restored over state 1");
        printf("incrementals and differential restored and equal, into new and dirty directories\n");

        /* refused chains */
        {
                char err[BKP_ERR_MAX];
                CHECK(do_backup(P("%s/bad1", base), BKP_DIFFERENTIAL, inc1, src, NULL, err) == -EINVAL);
                CHECK(strstr(err, "full"));
                CHECK(!exists(P("%s/bad1", base)));
                CHECK(do_backup(P("%s/bad2", base), BKP_INCREMENTAL, NULL, src, NULL, err) == -EINVAL);
                CHECK(do_backup(P("%s/bad3", base), BKP_FULL, full, src, NULL, err) == -EINVAL);
                CHECK(do_backup(full, BKP_FULL, NULL, src, NULL, err) == -EEXIST); /* not empty */
                CHECK_OK(bkp_verify(full, NULL, NULL, err_)); /* and untouched */
        }

        /* ---- damage: one byte of each kind of file ---- */
        {
                size_t n;
                char *tar = read_all(P("%s/main.tar", full), &n);
                char big[64];
                fill_random(big, sizeof(big), 1);
                char *at = memmem(tar, n, big, sizeof(big));
                CHECK(at);
                off_t content = at - tar + 100;
                CHECK(!memmem(at + 1, n - (size_t) (at + 1 - tar), big, sizeof(big))); /* only once */
                free(tar);
                off_t list_mid = (off_t) file_size(P("%s/main.list", full)) / 2;
                off_t xml_mid = (off_t) file_size(P("%s/backup.xml", full)) / 2;
                struct {
                        const char *file, *needle;
                        off_t off;
                } flips[] = {
                        { "main.tar", "main.tar", content },     { "main.list", "main.list", list_mid },
                        { "backup.xml", "backup.xml", xml_mid }, { "manifest", "manifest", 10 },
                        { "writers/1.xml", "writers/1.xml", 3 },
                };
                for (size_t i = 0; i < ELEMENTSOF(flips); i++) {
                        flip_byte(P("%s/%s", full, flips[i].file), flips[i].off);
                        check_verify_fails(full, -EBADMSG, flips[i].needle);
                        check_verify_fails(inc2, -EBADMSG, flips[i].needle); /* through the chain */
                        flip_byte(P("%s/%s", full, flips[i].file), flips[i].off);
                        CHECK_OK(bkp_verify(full, NULL, NULL, err_));
                }
                /* a restore reading the damaged content fails, and leaves the marker */
                flip_byte(P("%s/main.tar", full), content);
                char err[BKP_ERR_MAX];
                CHECK(do_restore(full, P("%s/r-bad", base), err) == -EBADMSG);
                printf("  restore refused as expected: %s\n", err);
                CHECK(strstr(err, "big.bin") && strstr(err, "main.tar"));
                CHECK(exists(P("%s/r-bad/%s", base, BKP_MARKER)));
                flip_byte(P("%s/main.tar", full), content);
                /* a tar entry whose metadata does not match its line */
                CHECK(run_shell(P("cp -a '%s' '%s/full-copy'", full, base)) == 0);
                tar = read_all(P("%s/full-copy/main.tar", base), &n);
                at = memmem(tar, n, "user.test", 9);
                CHECK(at);
                off_t xattr_name = at - tar + 2;
                free(tar);
                flip_byte(P("%s/full-copy/main.tar", base), xattr_name);
                check_verify_fails(P("%s/full-copy", base), -EBADMSG, "main.tar");
                CHECK(rm_rf(P("%s/full-copy", base)) == 0);
        }

        /* ---- bases: missing, and found beside under another name ---- */
        CHECK(mkdir(P("%s/away", base), 0700) == 0);
        CHECK(rename(full, P("%s/away/full", base)) == 0);
        check_verify_fails(inc1, -ENOENT, "neither");
        {
                char err[BKP_ERR_MAX];
                CHECK(do_restore(inc2, P("%s/r-nobase", base), err) == -ENOENT);
                CHECK(!exists(P("%s/r-nobase/%s", base, BKP_MARKER)));
        }
        CHECK(rename(P("%s/away/full", base), P("%s/renamed-full", base)) == 0);
        CHECK_OK(bkp_verify(inc2, NULL, NULL, err_)); /* found beside, by id */
        restore_and_compare(inc2, P("%s/r4", base), &s3, "incremental 2 restored with a renamed base");
        CHECK(rename(P("%s/renamed-full", base), full) == 0);

        /* ---- progress: refusal mid-way ---- */
        {
                struct stopper s = {};
                struct bkp_write_opts o = {
                        .dir = P("%s/stopped", base),
                        .type = BKP_FULL,
                        .targets = targets_for(src),
                        .n_targets = 1,
                        .progress = stop_mid_way,
                        .userdata = &s,
                };
                char err[BKP_ERR_MAX];
                CHECK(bkp_write(&o, NULL, NULL, err) == -EINTR);
                CHECK(s.mid_calls == 1);
                CHECK(!exists(P("%s/stopped", base))); /* made by the call: removed */
                CHECK(mkdir(P("%s/stopped", base), 0700) == 0);
                s = (struct stopper){};
                CHECK(bkp_write(&o, NULL, NULL, err) == -EINTR);
                CHECK(exists(P("%s/stopped", base)));
                CHECK(rmdir(P("%s/stopped", base)) == 0); /* was there: emptied */

                s = (struct stopper){ .marker = P("%s/r5/%s", base, BKP_MARKER) };
                struct bkp_restore_opts ro = { .dir = inc2,
                                               .target = "main",
                                               .root = P("%s/r5", base),
                                               .progress = stop_mid_way,
                                               .userdata = &s };
                CHECK(bkp_restore(&ro, err) == -EINTR);
                CHECK(s.marker_seen && s.mid_calls == 1);
                CHECK(exists(P("%s/r5/%s", base, BKP_MARKER))); /* an interrupted restore stays marked */
                s = (struct stopper){ .marker = P("%s/r5/%s", base, BKP_MARKER) };
                ro.progress = count_calls;
                CHECK_OK(bkp_restore(&ro, err_));
                CHECK(s.marker_seen && s.calls >= 2);
                struct snap s5 = snap_take(P("%s/r5", base));
                snap_compare(&s3, &s5, "restore after an interrupted one");
                snap_free(&s5);
        }

        /* ---- a planted symlink does not let the restore out of its root ---- */
        {
                const char *out = P("%s/outside", base);
                char outside[512];
                snprintf(outside, sizeof(outside), "%s", out);
                CHECK(mkdir(outside, 0755) == 0);
                write_str(P("%s/victim", outside), "victim\n");
                write_str(P("%s/hard", outside), "hard\n");
                const char *rp = P("%s/r-planted", base);
                char planted[512];
                snprintf(planted, sizeof(planted), "%s", rp);
                CHECK(mkdir(planted, 0755) == 0);
                CHECK(symlink(outside, P("%s/dir", planted)) == 0); /* a directory of the tree */
                CHECK(symlink(P("%s/victim", outside), P("%s/small.txt", planted)) ==
                      0); /* a file of the tree */
                CHECK(link(P("%s/hard", outside), P("%s/hl-a", planted)) == 0); /* a hard link to outside */
                CHECK(symlink(outside, P("%s/gone", planted)) == 0); /* not in the tree */
                restore_and_compare(full, planted, &s1, "restore over planted symlinks");
                struct snap so = snap_take(outside);
                CHECK(so.n == 3); /* ".", hard, victim: nothing added */
                snap_free(&so);
                size_t n;
                char *v = read_all(P("%s/victim", outside), &n);
                CHECK(n == 7 && memcmp(v, "victim\n", 7) == 0);
                free(v);
                v = read_all(P("%s/hard", outside), &n);
                CHECK(n == 5 && memcmp(v, "hard\n", 5) == 0);
                free(v);
                struct stat a;
                CHECK(lstat(P("%s/dir", planted), &a) == 0 && S_ISDIR(a.st_mode));
        }
        printf("planted symlinks and hard links in a restore root: replaced, never followed\n");

        snap_free(&s1);
        snap_free(&s2);
        snap_free(&s3);
        CHECK(rm_rf(base) == 0);
        printf("all backup tests passed\n");
        return 0;
}
