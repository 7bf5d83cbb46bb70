/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The catalog file (catalog.h): a line-oriented text format, parsed strictly (every field
 * checked, nothing longer than it may be), written atomically by rename.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "service/catalog.h"
#include "service/statefile.h"

#define CATALOG_MAX_BYTES (16u * 1024u * 1024u)
#define CATALOG_MAX_FIELDS 8

static bool word_valid(const char *s, size_t max) {
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '.' || ch == '_' || ch == '-'))
                        return false;
        }
        return true;
}

static bool id_valid(const char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char ch = s[i];
                if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
                        return false;
        }
        return true;
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

static void *grow(void *p, size_t n, size_t size) {
        return realloc(p, (n + 1) * size);
}

int catalog_add_volume(struct catalog *c, const char *name, const char *provider) {
        struct catalog_volume *nv = grow(c->volumes, c->n_volumes, sizeof *nv);
        if (!nv)
                return -ENOMEM;
        c->volumes = nv;
        struct catalog_volume e = { strdup(name), strdup(provider) };
        if (!e.name || !e.provider) {
                free(e.name);
                free(e.provider);
                return -ENOMEM;
        }
        c->volumes[c->n_volumes++] = e;
        return 0;
}

int catalog_add_set(struct catalog *c, const char *id, const char *context, uint64_t created_usec,
                    uint64_t hold_usec) {
        struct catalog_set *ns = grow(c->sets, c->n_sets, sizeof *ns);
        if (!ns)
                return -ENOMEM;
        c->sets = ns;
        struct catalog_set e = { strdup(id), strdup(context), created_usec, hold_usec };
        if (!e.id || !e.context) {
                free(e.id);
                free(e.context);
                return -ENOMEM;
        }
        c->sets[c->n_sets++] = e;
        return 0;
}

int catalog_add_shadow(struct catalog *c, const char *id, const char *set_id, const char *volume,
                       uint32_t snap_id, const char *context, uint64_t created_usec) {
        struct catalog_shadow *ns = grow(c->shadows, c->n_shadows, sizeof *ns);
        if (!ns)
                return -ENOMEM;
        c->shadows = ns;
        struct catalog_shadow e = { strdup(id),      strdup(set_id), strdup(volume),
                                    strdup(context), snap_id,        created_usec };
        if (!e.id || !e.set_id || !e.volume || !e.context) {
                free(e.id);
                free(e.set_id);
                free(e.volume);
                free(e.context);
                return -ENOMEM;
        }
        c->shadows[c->n_shadows++] = e;
        return 0;
}

void catalog_release(struct catalog *c) {
        for (size_t i = 0; i < c->n_volumes; i++) {
                free(c->volumes[i].name);
                free(c->volumes[i].provider);
        }
        for (size_t i = 0; i < c->n_sets; i++) {
                free(c->sets[i].id);
                free(c->sets[i].context);
        }
        for (size_t i = 0; i < c->n_shadows; i++) {
                free(c->shadows[i].id);
                free(c->shadows[i].set_id);
                free(c->shadows[i].volume);
                free(c->shadows[i].context);
        }
        free(c->volumes);
        free(c->sets);
        free(c->shadows);
        *c = (struct catalog){};
}

static int parse_line(struct catalog *c, char *line) {
        char *f[CATALOG_MAX_FIELDS + 1];
        size_t n = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                if (n == CATALOG_MAX_FIELDS)
                        return -EBADMSG;
                f[n++] = t;
        }
        if (n == 0)
                return 0;
        uint64_t a, b;
        if (strcmp(f[0], "volume") == 0 && n == 3) {
                if (!word_valid(f[1], 64) || !word_valid(f[2], 32))
                        return -EBADMSG;
                return catalog_add_volume(c, f[1], f[2]);
        }
        if (strcmp(f[0], "set") == 0 && n == 5) {
                if (!id_valid(f[1]) || !word_valid(f[2], 32) || parse_u64(f[3], &a) < 0 ||
                    parse_u64(f[4], &b) < 0)
                        return -EBADMSG;
                return catalog_add_set(c, f[1], f[2], a, b);
        }
        if (strcmp(f[0], "shadow") == 0 && n == 7) {
                if (!id_valid(f[1]) || !id_valid(f[2]) || !word_valid(f[3], 64) || parse_u64(f[4], &a) < 0 ||
                    a == 0 || a > UINT32_MAX || !word_valid(f[5], 32) || parse_u64(f[6], &b) < 0)
                        return -EBADMSG;
                return catalog_add_shadow(c, f[1], f[2], f[3], (uint32_t) a, f[5], b);
        }
        return -EBADMSG;
}

static int parse_line_cb(char *line, void *userdata) {
        return parse_line(userdata, line);
}

int catalog_parse(struct catalog *c, const char *buf, size_t len) {
        struct catalog tmp = {};
        int r = statefile_foreach_line(buf, len, "lvss-catalog 1\n", parse_line_cb, &tmp);
        if (r < 0) {
                catalog_release(&tmp);
                return r;
        }
        *c = tmp;
        return 0;
}

int catalog_load(struct catalog *c, const char *path) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = statefile_read(path, CATALOG_MAX_BYTES, &buf, &len);
        if (r < 0 || !buf)
                return r;
        return catalog_parse(c, buf, len);
}

static int write_catalog(FILE *f, void *userdata) {
        const struct catalog *c = userdata;
        fprintf(f, "lvss-catalog 1\n");
        for (size_t i = 0; i < c->n_volumes; i++)
                fprintf(f, "volume %s %s\n", c->volumes[i].name, c->volumes[i].provider);
        for (size_t i = 0; i < c->n_sets; i++)
                fprintf(f, "set %s %s %" PRIu64 " %" PRIu64 "\n", c->sets[i].id, c->sets[i].context,
                        c->sets[i].created_usec, c->sets[i].hold_usec);
        for (size_t i = 0; i < c->n_shadows; i++)
                fprintf(f, "shadow %s %s %s %" PRIu32 " %s %" PRIu64 "\n", c->shadows[i].id,
                        c->shadows[i].set_id, c->shadows[i].volume, c->shadows[i].snap_id,
                        c->shadows[i].context, c->shadows[i].created_usec);
        return 0;
}

int catalog_save(const struct catalog *c, const char *path) {
        return statefile_write(path, write_catalog, (void *) c);
}

const char *catalog_volume_provider(const struct catalog *c, const char *name) {
        for (size_t i = 0; i < c->n_volumes; i++)
                if (strcmp(c->volumes[i].name, name) == 0)
                        return c->volumes[i].provider;
        return NULL;
}

const struct catalog_shadow *catalog_find_shadow(const struct catalog *c, const char *id) {
        for (size_t i = 0; i < c->n_shadows; i++)
                if (strcmp(c->shadows[i].id, id) == 0)
                        return &c->shadows[i];
        return NULL;
}
