/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The backup history file (history.h): a line-oriented text format, parsed strictly (every field
 * checked, the directory's escaping canonical), written atomically by rename. A record changes
 * the list in memory only once the file that holds it is in place. Main thread only.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "service/history.h"
#include "service/statefile.h"

#define HISTORY_MAX_BYTES (64u * 1024u * 1024u)
#define HISTORY_MAX_FIELDS 6
#define HISTORY_VOLUME_MAX 64

static const char *const history_types[] = { "full", "incremental", "differential", "log", NULL };

bool history_type_valid(const char *type) {
        for (size_t i = 0; type && history_types[i]; i++)
                if (strcmp(type, history_types[i]) == 0)
                        return true;
        return false;
}

/* [A-Za-z0-9][A-Za-z0-9._-]{0,63}, as volume_name_valid(), for LEN bytes of S. */
static bool volume_valid(const char *s, size_t len) {
        if (len == 0 || len > HISTORY_VOLUME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return false;
        }
        return true;
}

/* A key as history_key() makes it: volume names, strictly ascending, at most HISTORY_MAX_VOLUMES. */
static bool key_valid(const char *key) {
        const char *prev = NULL;
        size_t prev_len = 0, n = 0;
        for (const char *p = key;; n++) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t) (comma - p) : strlen(p);
                if (n >= HISTORY_MAX_VOLUMES || !volume_valid(p, len))
                        return false;
                if (prev) {
                        int c = memcmp(prev, p, MIN(prev_len, len));
                        if (c > 0 || (c == 0 && prev_len >= len))
                                return false;
                }
                prev = p;
                prev_len = len;
                if (!comma)
                        return true;
                p = comma + 1;
        }
}

static bool id_valid(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char ch = s[i];
                if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
                        return false;
        }
        return true;
}

static bool dir_valid(const char *s) {
        return s && s[0] == '/' && strlen(s) < PATH_MAX;
}

static int parse_u64(const char *s, uint64_t *ret) {
        if (!*s || strlen(s) > 20)
                return -EBADMSG;
        uint64_t v = 0;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                unsigned d = (unsigned) (*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

static bool byte_plain(unsigned char c) {
        return c >= '!' && c <= '~' && c != '%';
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes DIR's escaping into *RET: -EBADMSG unless S is exactly what dir_encode() writes. */
static int dir_decode(const char *s, char **ret) {
        size_t n = strlen(s);
        _cleanup_free_ char *out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '%') {
                        /* s[i + 1] is at worst the terminating NUL, s[i + 2] read only after it. */
                        int hi = hex_digit(s[i + 1]);
                        int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
                        if (hi < 0 || lo < 0)
                                return -EBADMSG;
                        c = (unsigned char) (hi * 16 + lo);
                        if (c == 0 || byte_plain(c))
                                return -EBADMSG;
                        i += 2;
                } else if (!byte_plain(c))
                        return -EBADMSG;
                out[k++] = (char) c;
        }
        out[k] = 0;
        if (!dir_valid(out))
                return -EBADMSG;
        *ret = TAKE_PTR(out);
        return 0;
}

static void dir_encode(FILE *f, const char *dir) {
        for (const unsigned char *p = (const unsigned char *) dir; *p; p++)
                if (byte_plain(*p))
                        fputc(*p, f);
                else
                        fprintf(f, "%%%02X", *p);
}

static void entry_release(struct history_entry *e) {
        free(e->key);
        free(e->id);
        free(e->type);
        free(e->dir);
        *e = (struct history_entry){};
}

void history_release(struct history *h) {
        for (size_t i = 0; i < h->n_entries; i++)
                entry_release(&h->entries[i]);
        free(h->entries);
        *h = (struct history){};
}

/* Fills E with copies (DIR taken over, whatever happens). */
static int entry_init(struct history_entry *e, const char *key, const char *id, const char *type, char *dir,
                      uint64_t created_usec) {
        *e = (struct history_entry){ strdup(key), strdup(id), strdup(type), dir, created_usec };
        if (!e->key || !e->id || !e->type || !e->dir) {
                entry_release(e);
                return -ENOMEM;
        }
        return 0;
}

static int append(struct history *h, struct history_entry *e) {
        struct history_entry *ne = realloc(h->entries, (h->n_entries + 1) * sizeof *ne);
        if (!ne)
                return -ENOMEM;
        h->entries = ne;
        h->entries[h->n_entries++] = *e;
        *e = (struct history_entry){};
        return 0;
}

static int parse_line(struct history *h, char *line) {
        char *f[HISTORY_MAX_FIELDS + 1];
        size_t n = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                if (n == HISTORY_MAX_FIELDS)
                        return -EBADMSG;
                f[n++] = t;
        }
        if (n == 0)
                return 0;
        uint64_t created;
        char *dir = NULL;
        if (n != 6 || strcmp(f[0], "backup") != 0 || !key_valid(f[1]) || !id_valid(f[2]) ||
            !history_type_valid(f[3]) || parse_u64(f[4], &created) < 0)
                return -EBADMSG;
        int r = dir_decode(f[5], &dir);
        if (r < 0)
                return r;
        struct history_entry e;
        r = entry_init(&e, f[1], f[2], f[3], dir, created);
        if (r >= 0)
                r = append(h, &e);
        entry_release(&e);
        return r;
}

static int parse_line_cb(char *line, void *userdata) {
        return parse_line(userdata, line);
}

int history_parse(struct history *h, const char *buf, size_t len) {
        struct history tmp = {};
        int r = statefile_foreach_line(buf, len, "lvss-backup-history 1\n", parse_line_cb, &tmp);
        if (r < 0) {
                history_release(&tmp);
                return r;
        }
        *h = tmp;
        return 0;
}

int history_load(struct history *h, const char *path) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = statefile_read(path, HISTORY_MAX_BYTES, &buf, &len);
        if (r < 0 || !buf)
                return r;
        return history_parse(h, buf, len);
}

static void write_entry(FILE *f, const struct history_entry *e) {
        fprintf(f, "backup %s %s %s %" PRIu64 " ", e->key, e->id, e->type, e->created_usec);
        dir_encode(f, e->dir);
        fputc('\n', f);
}

struct save_args {
        const struct history *h;
        const char *drop_key;
        size_t n_drop;
        const struct history_entry *extra;
};

static int write_history(FILE *f, void *userdata) {
        struct save_args *a = userdata;
        size_t n_drop = a->n_drop;
        fprintf(f, "lvss-backup-history 1\n");
        for (size_t i = 0; i < a->h->n_entries; i++) {
                if (n_drop > 0 && strcmp(a->h->entries[i].key, a->drop_key) == 0) {
                        n_drop--;
                        continue;
                }
                write_entry(f, &a->h->entries[i]);
        }
        if (a->extra)
                write_entry(f, a->extra);
        return 0;
}

/* Writes H to PATH, leaving out the first N_DROP entries of key DROP_KEY, and EXTRA (if not NULL)
 * at the end. */
static int save_with(const struct history *h, const char *path, const char *drop_key, size_t n_drop,
                     const struct history_entry *extra) {
        struct save_args a = { h, drop_key, n_drop, extra };
        return statefile_write(path, write_history, &a);
}

int history_save(const struct history *h, const char *path) {
        return save_with(h, path, NULL, 0, NULL);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int history_key(char *const *volumes, char **ret) {
        size_t n = 0, len = 0;
        for (; volumes && volumes[n]; n++) {
                if (n >= HISTORY_MAX_VOLUMES || !volume_valid(volumes[n], strlen(volumes[n])))
                        return -EINVAL;
                len += strlen(volumes[n]) + 1;
        }
        if (n == 0)
                return -EINVAL;
        _cleanup_free_ char **sorted = malloc(n * sizeof *sorted);
        _cleanup_free_ char *key = malloc(len);
        if (!sorted || !key)
                return -ENOMEM;
        memcpy(sorted, volumes, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_str);
        char *p = key;
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
                        continue;
                if (p != key)
                        *p++ = ',';
                p = stpcpy(p, sorted[i]);
        }
        *ret = TAKE_PTR(key);
        return 0;
}

int history_record(struct history *h, const char *path, const char *key, const char *id, const char *type,
                   const char *dir, uint64_t created_usec) {
        if (!key_valid(key) || !id_valid(id) || !history_type_valid(type) || !dir_valid(dir))
                return -EINVAL;
        struct history_entry e;
        char *d = strdup(dir);
        int r = entry_init(&e, key, id, type, d, created_usec);
        if (r < 0)
                return r;
        size_t count = 0;
        for (size_t i = 0; i < h->n_entries; i++)
                count += strcmp(h->entries[i].key, key) == 0;
        size_t n_drop = count >= HISTORY_MAX_PER_KEY ? count - HISTORY_MAX_PER_KEY + 1 : 0;

        /* Room first, so that nothing can fail once the file is in place. */
        struct history_entry *ne = realloc(h->entries, (h->n_entries + 1) * sizeof *ne);
        if (!ne) {
                entry_release(&e);
                return -ENOMEM;
        }
        h->entries = ne;
        r = save_with(h, path, key, n_drop, &e);
        if (r < 0) {
                entry_release(&e);
                return r;
        }
        size_t k = 0;
        for (size_t i = 0; i < h->n_entries; i++) {
                if (n_drop > 0 && strcmp(h->entries[i].key, key) == 0) {
                        n_drop--;
                        entry_release(&h->entries[i]);
                        continue;
                }
                h->entries[k++] = h->entries[i];
        }
        h->entries[k++] = e;
        h->n_entries = k;
        return 0;
}

/* True if TYPE (of an entry) may be the base of a backup of type FOR. */
static bool base_fits(const char *type, const char *for_type) {
        if (strcmp(for_type, "differential") == 0)
                return strcmp(type, "full") == 0;
        if (strcmp(for_type, "incremental") == 0 || strcmp(for_type, "log") == 0)
                return strcmp(type, "full") == 0 || strcmp(type, "incremental") == 0 ||
                       strcmp(type, "log") == 0;
        return false;
}

static bool holds_backup(const char *dir) {
        _cleanup_free_ char *p = NULL;
        struct stat st;
        if (asprintf(&p, "%s/backup.xml", dir) < 0)
                return false;
        return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

const struct history_entry *history_find_base(const struct history *h, const char *key, const char *type) {
        for (size_t i = h->n_entries; i > 0; i--) {
                const struct history_entry *e = &h->entries[i - 1];
                if (strcmp(e->key, key) == 0 && base_fits(e->type, type) && holds_backup(e->dir))
                        return e;
        }
        return NULL;
}
