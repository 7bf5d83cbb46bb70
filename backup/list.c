/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The .list of a target (format at the top of backup.c): the model, its canonical text form, and its
 * strict parser. Lists are read back from backup directories, so they are untrusted input: the parser
 * accepts exactly what bkp_list_format writes (every byte of a field has one spelling, lines are in
 * strictly increasing order), so formatting what was parsed gives back the same bytes. Also the
 * escaping of paths shared with the BCD, and a small growable buffer. No global state.
 */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

/* ---- buffer ---- */

int bkp_buf_append(struct bkp_buf *b, const void *p, size_t n) {
        if (n >= SIZE_MAX - b->len - 1)
                return -ENOMEM;
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, (size_t) 256);
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        if (n > 0)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int bkp_buf_printf(struct bkp_buf *b, const char *fmt, ...) {
        char small[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n < sizeof(small))
                return bkp_buf_append(b, small, (size_t) n);
        _cleanup_free_ char *big = malloc((size_t) n + 1);
        if (!big)
                return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(big, (size_t) n + 1, fmt, ap);
        va_end(ap);
        return bkp_buf_append(b, big, (size_t) n);
}

void bkp_buf_release(struct bkp_buf *b) {
        free(b->data);
        *b = (struct bkp_buf){};
}

/* ---- escaping ---- */

bool bkp_byte_needs_escape(unsigned char c) {
        return c <= 0x20 || c == '\\' || c >= 0x7f;
}

int bkp_escape(struct bkp_buf *b, const char *s) {
        if (strcmp(s, "-") == 0)
                return bkp_buf_append(b, "\\055", 4);
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                size_t n = 0;
                while (p[n] && !bkp_byte_needs_escape(p[n]))
                        n++;
                int r = bkp_buf_append(b, p, n);
                if (r < 0)
                        return r;
                p += n;
                if (!*p)
                        break;
                char e[5] = { '\\', (char) ('0' + (*p >> 6)), (char) ('0' + ((*p >> 3) & 7)),
                              (char) ('0' + (*p & 7)), 0 };
                r = bkp_buf_append(b, e, 4);
                if (r < 0)
                        return r;
                p++;
        }
        return 0;
}

int bkp_unescape(const char *f, size_t n, char **ret) {
        if (n == 0 || (n == 1 && f[0] == '-'))
                return -EBADMSG; /* "-" alone means none: a value "-" is written \055 */
        _cleanup_free_ char *s = malloc(n + 1);
        if (!s)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) f[i];
                if (c != '\\') {
                        if (bkp_byte_needs_escape(c))
                                return -EBADMSG;
                        s[k++] = (char) c;
                        continue;
                }
                if (n - i < 4)
                        return -EBADMSG;
                unsigned v = 0;
                for (size_t j = 1; j <= 3; j++) {
                        if (f[i + j] < '0' || f[i + j] > '7')
                                return -EBADMSG;
                        v = v * 8 + (unsigned) (f[i + j] - '0');
                }
                if (v == 0 || v > 0xff)
                        return -EBADMSG;
                /* Only what bkp_escape writes: bytes that need it, and '-' as a whole field. */
                if (!bkp_byte_needs_escape((unsigned char) v) && !(v == '-' && n == 4))
                        return -EBADMSG;
                s[k++] = (char) v;
                i += 3;
        }
        s[k] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

const char *bkp_pretty(const char *s, char buf[BKP_PRETTY_MAX]) {
        struct bkp_buf b = {};
        if (!s || bkp_escape(&b, s) < 0) {
                bkp_buf_release(&b);
                return s ? "(?)" : "(null)";
        }
        if (b.len < BKP_PRETTY_MAX)
                memcpy(buf, b.data, b.len + 1);
        else {
                memcpy(buf, b.data, BKP_PRETTY_MAX - 4);
                memcpy(buf + BKP_PRETTY_MAX - 4, "...", 4);
        }
        bkp_buf_release(&b);
        return buf;
}

/* ---- names ---- */

bool bkp_path_valid(const char *p) {
        size_t n = strnlen(p, BKP_PATH_MAX + 1);
        if (n == 0 || n > BKP_PATH_MAX)
                return false;
        if (strcmp(p, ".") == 0)
                return true;
        for (const char *seg = p;;) {
                size_t len = strcspn(seg, "/");
                if (len == 0 || len > BKP_NAME_MAX || (len == 1 && seg[0] == '.') ||
                    (len == 2 && seg[0] == '.' && seg[1] == '.'))
                        return false;
                if (!seg[len])
                        return true;
                seg += len + 1;
        }
}

bool bkp_target_name_valid(const char *s) {
        size_t n = strnlen(s, BKP_TARGET_NAME_MAX + 1);
        if (n == 0 || n > BKP_TARGET_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

bool bkp_uuid_valid(const char *s) {
        if (strnlen(s, BKP_ID_LEN + 1) != BKP_ID_LEN)
                return false;
        for (size_t i = 0; i < BKP_ID_LEN; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int bkp_path_compare(const char *a, const char *b) {
        bool ra = strcmp(a, ".") == 0, rb = strcmp(b, ".") == 0;
        if (ra || rb)
                return (int) rb - (int) ra;
        return strcmp(a, b); /* compares as unsigned char */
}

void bkp_hex(const uint8_t sha[BKP_SHA256_LEN], char out[BKP_HEX_LEN + 1]) {
        for (size_t i = 0; i < BKP_SHA256_LEN; i++) {
                out[2 * i] = "0123456789abcdef"[sha[i] >> 4];
                out[2 * i + 1] = "0123456789abcdef"[sha[i] & 15];
        }
        out[BKP_HEX_LEN] = '\0';
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int bkp_unhex(const char *s, size_t n, uint8_t sha[BKP_SHA256_LEN]) {
        if (n != BKP_HEX_LEN)
                return -EBADMSG;
        for (size_t i = 0; i < BKP_SHA256_LEN; i++) {
                int h = hex_digit(s[2 * i]), l = hex_digit(s[2 * i + 1]);
                if (h < 0 || l < 0)
                        return -EBADMSG;
                sha[i] = (uint8_t) (h << 4 | l);
        }
        return 0;
}

/* ---- the model ---- */

void bkp_entry_release(struct bkp_entry *e) {
        free(e->path);
        free(e->target);
        *e = (struct bkp_entry){};
}

void bkp_list_release(struct bkp_list *l) {
        for (size_t i = 0; i < l->n; i++)
                bkp_entry_release(&l->entries[i]);
        free(l->entries);
        *l = (struct bkp_list){};
}

int bkp_list_push(struct bkp_list *l, struct bkp_entry *e) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                struct bkp_entry *n = reallocarray(l->entries, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                l->entries = n;
                l->cap = cap;
        }
        l->entries[l->n++] = *e;
        *e = (struct bkp_entry){};
        return 0;
}

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool bkp_entry_same_metadata(const struct bkp_entry *a, const struct bkp_entry *b) {
        return a->type == b->type && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
               a->size == b->size && a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
               a->rdev_major == b->rdev_major && a->rdev_minor == b->rdev_minor &&
               a->has_xattrs == b->has_xattrs &&
               (!a->has_xattrs || memcmp(a->xattrs, b->xattrs, BKP_SHA256_LEN) == 0) &&
               streq_null(a->target, b->target);
}

bool bkp_entry_unchanged(const struct bkp_entry *a, const struct bkp_entry *b) {
        return bkp_entry_same_metadata(a, b) && a->ctime_sec == b->ctime_sec &&
               a->ctime_nsec == b->ctime_nsec;
}

bool bkp_entry_equal(const struct bkp_entry *a, const struct bkp_entry *b) {
        return strcmp(a->path, b->path) == 0 && bkp_entry_same_metadata(a, b) && a->has_sha == b->has_sha &&
               (!a->has_sha || memcmp(a->sha256, b->sha256, BKP_SHA256_LEN) == 0) &&
               strcmp(a->id, b->id) == 0;
}

static int entry_cmp(const void *key, const void *elem) {
        return bkp_path_compare(key, ((const struct bkp_entry *) elem)->path);
}

const struct bkp_entry *bkp_list_find(const struct bkp_list *l, const char *path) {
        if (l->n == 0)
                return NULL;
        return bsearch(path, l->entries, l->n, sizeof(struct bkp_entry), entry_cmp);
}

/* ---- formatting ---- */

static bool type_has_sha(char t) {
        return t == BKP_ENTRY_FILE || t == BKP_ENTRY_HARDLINK;
}

static bool type_has_target(char t) {
        return t == BKP_ENTRY_SYMLINK || t == BKP_ENTRY_HARDLINK;
}

static bool type_has_rdev(char t) {
        return t == BKP_ENTRY_CHAR || t == BKP_ENTRY_BLOCK;
}

static bool type_valid(char t) {
        return t && strchr("fdlhcbp", t);
}

int bkp_list_format_entry(struct bkp_buf *b, const struct bkp_entry *e) {
        char hex[BKP_HEX_LEN + 1];
        int r = bkp_escape(b, e->path);
        if (r < 0)
                return r;
        r = bkp_buf_printf(b,
                           " %c %04" PRIo32 " %" PRIu32 " %" PRIu32 " %" PRIu64 " %" PRId64 ".%09" PRIu32
                           " %" PRId64 ".%09" PRIu32,
                           e->type, e->mode, e->uid, e->gid, e->size, e->mtime_sec, e->mtime_nsec,
                           e->ctime_sec, e->ctime_nsec);
        if (r < 0)
                return r;
        if (type_has_rdev(e->type))
                r = bkp_buf_printf(b, " %" PRIu32 ":%" PRIu32, e->rdev_major, e->rdev_minor);
        else
                r = bkp_buf_append(b, " -", 2);
        if (r < 0)
                return r;
        if (e->has_xattrs) {
                bkp_hex(e->xattrs, hex);
                r = bkp_buf_printf(b, " %s", hex);
        } else
                r = bkp_buf_append(b, " -", 2);
        if (r < 0)
                return r;
        if (e->has_sha) {
                bkp_hex(e->sha256, hex);
                r = bkp_buf_printf(b, " %s ", hex);
        } else
                r = bkp_buf_append(b, " - ", 3);
        if (r < 0)
                return r;
        r = e->target ? bkp_escape(b, e->target) : bkp_buf_append(b, "-", 1);
        if (r < 0)
                return r;
        return bkp_buf_printf(b, " %s\n", e->id);
}

int bkp_list_format(const struct bkp_list *l, struct bkp_buf *b) {
        int r = bkp_buf_append(b, BKP_LIST_HEADER, strlen(BKP_LIST_HEADER));
        for (size_t i = 0; r >= 0 && i < l->n; i++)
                r = bkp_list_format_entry(b, &l->entries[i]);
        return r;
}

/* ---- parsing ---- */

struct field {
        const char *p;
        size_t n;
};

static bool field_is(const struct field *f, const char *s) {
        return f->n == strlen(s) && memcmp(f->p, s, f->n) == 0;
}

/* A canonical unsigned decimal (no sign, no leading zero) of at most MAX. */
static int parse_u64(const char *p, size_t n, uint64_t max, uint64_t *ret) {
        if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
                return -EBADMSG;
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -EBADMSG;
                unsigned d = (unsigned) (p[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        if (v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int parse_u32(const struct field *f, uint32_t *ret) {
        uint64_t v;
        int r = parse_u64(f->p, f->n, UINT32_MAX, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_mode(const struct field *f, uint32_t *ret) {
        if (f->n != 4)
                return -EBADMSG;
        uint32_t v = 0;
        for (size_t i = 0; i < 4; i++) {
                if (f->p[i] < '0' || f->p[i] > '7')
                        return -EBADMSG;
                v = v * 8 + (uint32_t) (f->p[i] - '0');
        }
        *ret = v;
        return 0;
}

/* SEC.NNNNNNNNN, SEC a canonical signed decimal. */
static int parse_mtime(const struct field *f, int64_t *ret_sec, uint32_t *ret_nsec) {
        const char *dot = memchr(f->p, '.', f->n);
        if (!dot || (size_t) (f->p + f->n - dot - 1) != 9)
                return -EBADMSG;
        bool neg = f->p[0] == '-';
        const char *s = f->p + neg;
        uint64_t sec, nsec;
        if (parse_u64(s, (size_t) (dot - s), neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX, &sec) <
                    0 ||
            (neg && sec == 0))
                return -EBADMSG;
        nsec = 0;
        for (size_t i = 1; i <= 9; i++) {
                if (dot[i] < '0' || dot[i] > '9')
                        return -EBADMSG;
                nsec = nsec * 10 + (uint64_t) (dot[i] - '0');
        }
        *ret_sec = neg ? (int64_t) (0 - sec) : (int64_t) sec;
        *ret_nsec = (uint32_t) nsec;
        return 0;
}

static int parse_rdev(const struct field *f, uint32_t *ret_major, uint32_t *ret_minor) {
        const char *colon = memchr(f->p, ':', f->n);
        if (!colon)
                return -EBADMSG;
        struct field a = { f->p, (size_t) (colon - f->p) },
                     b = { colon + 1, (size_t) (f->p + f->n - colon - 1) };
        if (parse_u32(&a, ret_major) < 0 || parse_u32(&b, ret_minor) < 0)
                return -EBADMSG;
        return 0;
}

#define N_FIELDS 13

/* One line (without its '\n') into E. */
static int parse_line(const char *line, size_t len, struct bkp_entry *e) {
        struct field f[N_FIELDS];
        size_t k = 0;
        for (size_t i = 0, start = 0; i <= len; i++)
                if (i == len || line[i] == ' ') {
                        if (k == N_FIELDS || i == start)
                                return -EBADMSG;
                        f[k++] = (struct field){ line + start, i - start };
                        start = i + 1;
                }
        if (k != N_FIELDS)
                return -EBADMSG;

        int r = bkp_unescape(f[0].p, f[0].n, &e->path);
        if (r < 0)
                return r;
        if (!bkp_path_valid(e->path))
                return -EBADMSG;

        if (f[1].n != 1 || !type_valid(f[1].p[0]))
                return -EBADMSG;
        e->type = f[1].p[0];

        if (parse_mode(&f[2], &e->mode) < 0 || parse_u32(&f[3], &e->uid) < 0 ||
            parse_u32(&f[4], &e->gid) < 0 || parse_u64(f[5].p, f[5].n, INT64_MAX, &e->size) < 0 ||
            parse_mtime(&f[6], &e->mtime_sec, &e->mtime_nsec) < 0 ||
            parse_mtime(&f[7], &e->ctime_sec, &e->ctime_nsec) < 0)
                return -EBADMSG;
        if (!type_has_sha(e->type) && e->size != 0)
                return -EBADMSG;

        if (type_has_rdev(e->type)) {
                if (parse_rdev(&f[8], &e->rdev_major, &e->rdev_minor) < 0)
                        return -EBADMSG;
        } else if (!field_is(&f[8], "-"))
                return -EBADMSG;

        if (!field_is(&f[9], "-")) {
                if (bkp_unhex(f[9].p, f[9].n, e->xattrs) < 0)
                        return -EBADMSG;
                e->has_xattrs = true;
        }

        if (type_has_sha(e->type)) {
                if (bkp_unhex(f[10].p, f[10].n, e->sha256) < 0)
                        return -EBADMSG;
                e->has_sha = true;
        } else if (!field_is(&f[10], "-"))
                return -EBADMSG;

        if (type_has_target(e->type)) {
                r = bkp_unescape(f[11].p, f[11].n, &e->target);
                if (r < 0)
                        return r;
                if (strlen(e->target) > BKP_PATH_MAX)
                        return -EBADMSG;
                if (e->type == BKP_ENTRY_HARDLINK &&
                    (!bkp_path_valid(e->target) || bkp_path_compare(e->target, e->path) >= 0 ||
                     strcmp(e->target, ".") == 0))
                        return -EBADMSG; /* a hard link names an earlier file */
        } else if (!field_is(&f[11], "-"))
                return -EBADMSG;

        if (f[12].n != BKP_ID_LEN)
                return -EBADMSG;
        memcpy(e->id, f[12].p, BKP_ID_LEN);
        e->id[BKP_ID_LEN] = '\0';
        if (!bkp_uuid_valid(e->id))
                return -EBADMSG;

        if (strcmp(e->path, ".") == 0 && e->type != BKP_ENTRY_DIR)
                return -EBADMSG;
        return 0;
}

/* The parent of PATH ("." for a top-level entry) into BUF. */
static void parent_of(const char *path, char buf[BKP_PATH_MAX + 1]) {
        const char *slash = strrchr(path, '/');
        if (!slash) {
                strcpy(buf, ".");
                return;
        }
        size_t n = (size_t) (slash - path);
        memcpy(buf, path, n);
        buf[n] = '\0';
}

/* What lines cannot tell alone: every entry's parent is a directory listed before it; a hard link
 * names a file, with the file's metadata, checksum and backup id. Returns the index of a bad entry. */
static int check_links(const struct bkp_list *l, size_t *ret_bad) {
        char parent[BKP_PATH_MAX + 1];
        for (size_t i = 1; i < l->n; i++) {
                const struct bkp_entry *e = &l->entries[i];
                parent_of(e->path, parent);
                const struct bkp_entry *p = bkp_list_find(l, parent);
                if (!p || p->type != BKP_ENTRY_DIR) {
                        *ret_bad = i;
                        return -EBADMSG;
                }
                if (e->type != BKP_ENTRY_HARDLINK)
                        continue;
                const struct bkp_entry *t = bkp_list_find(l, e->target);
                if (!t || t->type != BKP_ENTRY_FILE || t->mode != e->mode || t->uid != e->uid ||
                    t->gid != e->gid || t->size != e->size || t->mtime_sec != e->mtime_sec ||
                    t->mtime_nsec != e->mtime_nsec || t->ctime_sec != e->ctime_sec ||
                    t->ctime_nsec != e->ctime_nsec || t->has_xattrs != e->has_xattrs ||
                    (t->has_xattrs && memcmp(t->xattrs, e->xattrs, BKP_SHA256_LEN) != 0) ||
                    memcmp(t->sha256, e->sha256, BKP_SHA256_LEN) != 0 || strcmp(t->id, e->id) != 0) {
                        *ret_bad = i;
                        return -EBADMSG;
                }
        }
        return 0;
}

int bkp_list_parse(const char *data, size_t len, struct bkp_list *ret, size_t *ret_line) {
        size_t hl = strlen(BKP_LIST_HEADER);
        size_t line_no = 1;
        if (len < hl || memcmp(data, BKP_LIST_HEADER, hl) != 0) {
                if (ret_line)
                        *ret_line = 1;
                return -EBADMSG;
        }

        struct bkp_list l = {};
        int r = 0;
        for (size_t pos = hl; pos < len;) {
                line_no++;
                const char *nl = memchr(data + pos, '\n', len - pos);
                if (!nl) {
                        r = -EBADMSG; /* no '\n' at the end */
                        break;
                }
                size_t n = (size_t) (nl - (data + pos));
                struct bkp_entry e = {};
                r = parse_line(data + pos, n, &e);
                if (r >= 0 && l.n == 0 && strcmp(e.path, ".") != 0)
                        r = -EBADMSG; /* the root first */
                if (r >= 0 && l.n > 0 && bkp_path_compare(l.entries[l.n - 1].path, e.path) >= 0)
                        r = -EBADMSG; /* sorted, no duplicates */
                if (r >= 0)
                        r = bkp_list_push(&l, &e);
                bkp_entry_release(&e);
                if (r < 0)
                        break;
                pos += n + 1;
        }
        if (r >= 0 && l.n == 0) {
                line_no++;
                r = -EBADMSG; /* not even the root */
        }
        if (r >= 0) {
                size_t bad;
                r = check_links(&l, &bad);
                if (r < 0)
                        line_no = bad + 2;
        }
        if (r < 0) {
                bkp_list_release(&l);
                if (ret_line)
                        *ret_line = line_no;
                return r;
        }
        *ret = l;
        return 0;
}
