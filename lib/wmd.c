/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Writer Metadata Document: the model, its validation, and its XML form
 * (layout and rules in wmd.h).
 *
 * Invariant: a document in memory always satisfies every rule of wmd.h. The
 * builder functions check each value before storing it, and the parser
 * builds through those same functions, so the XML can never hold what the
 * API would refuse, and the reverse. Output is written in one fixed order
 * and spelling, so it is canonical.
 *
 * libxml2 is used with its messages silenced: its per-thread error handlers
 * are swapped for silent ones around each call into it, and restored after.
 * Untrusted input is checked to be UTF-8 without NUL bytes before libxml2
 * sees it; a DOCTYPE stops the parser at once (so no entity is ever
 * declared, let alone expanded); nothing is loaded from the network or the
 * file system. No global state of ours (libxml2 is initialised when the
 * program starts); no locking: one document is used by one thread at a time.
 */

#include "include/lvss/wmd.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlwriter.h>

#include "common/macro.h"

struct ptr_vec {
        void **items;
        size_t n, cap;
};

struct lvss_wmd_file_set {
        char *path;
        char *filespec;
        bool recursive;
        unsigned backup_types;
};

struct lvss_wmd_dependency {
        char *writer_class_id; /* NULL: this writer */
        char *logical_path;
        char *name;
};

struct lvss_wmd_component {
        lvss_wmd *wmd;
        lvss_wmd_component_type type;
        char *logical_path;
        char *name;
        char *caption;
        bool selectable_backup;
        bool selectable_restore;
        struct ptr_vec files[_LVSS_WMD_FILES_MAX]; /* lvss_wmd_file_set *, per kind */
        size_t n_file_sets; /* all kinds together */
        struct ptr_vec dependencies; /* lvss_wmd_dependency * */
};

struct lvss_wmd {
        char *writer_name;
        char class_id[LVSS_WMD_UUID_LEN + 1];
        char instance_id[LVSS_WMD_UUID_LEN + 1];
        char *instance_name;
        lvss_wmd_usage usage;
        lvss_wmd_source source;

        bool has_restore;
        lvss_wmd_restore_method restore_method;
        char *restore_service;
        char *restore_user_procedure;
        lvss_wmd_writer_restore writer_restore;
        bool reboot_required;

        unsigned backup_schema;
        struct ptr_vec excludes; /* lvss_wmd_file_set * */
        struct ptr_vec components; /* lvss_wmd_component * */
};

/* ---- enums ---- */

static const char *const usage_table[_LVSS_WMD_USAGE_MAX] = {
        [LVSS_WMD_USAGE_USER_DATA] = "user-data",
        [LVSS_WMD_USAGE_BOOTABLE_SYSTEM_STATE] = "bootable-system-state",
        [LVSS_WMD_USAGE_SYSTEM_SERVICE] = "system-service",
        [LVSS_WMD_USAGE_OTHER] = "other",
};

static const char *const source_table[_LVSS_WMD_SOURCE_MAX] = {
        [LVSS_WMD_SOURCE_TRANSACTED_DB] = "transacted-db",
        [LVSS_WMD_SOURCE_NONTRANSACTED_DB] = "nontransacted-db",
        [LVSS_WMD_SOURCE_OTHER] = "other",
};

static const char *const restore_method_table[_LVSS_WMD_RESTORE_MAX] = {
        [LVSS_WMD_RESTORE_IF_NOT_THERE] = "restore-if-not-there",
        [LVSS_WMD_RESTORE_IF_CAN_REPLACE] = "restore-if-can-replace",
        [LVSS_WMD_RESTORE_STOP_RESTORE_START] = "stop-restore-start",
        [LVSS_WMD_RESTORE_TO_ALTERNATE_LOCATION] = "restore-to-alternate-location",
        [LVSS_WMD_RESTORE_AT_REBOOT] = "restore-at-reboot",
        [LVSS_WMD_RESTORE_CUSTOM] = "custom",
};

static const char *const writer_restore_table[_LVSS_WMD_WRITER_RESTORE_MAX] = {
        [LVSS_WMD_WRITER_RESTORE_NEVER] = "never",
        [LVSS_WMD_WRITER_RESTORE_ALWAYS] = "always",
        [LVSS_WMD_WRITER_RESTORE_IF_REPLACED] = "if-replaced",
};

static const char *const component_type_table[_LVSS_WMD_COMPONENT_MAX] = {
        [LVSS_WMD_COMPONENT_DATABASE] = "database",
        [LVSS_WMD_COMPONENT_FILE_GROUP] = "file-group",
};

static const char *const files_kind_table[_LVSS_WMD_FILES_MAX] = {
        [LVSS_WMD_FILES] = "files",
        [LVSS_WMD_DATABASE_FILES] = "database-files",
        [LVSS_WMD_LOG_FILES] = "log-files",
};

static const char *const backup_type_names[] = { "full", "incremental", "differential", "log", "copy" };

static const char *table_to_string(const char *const *table, size_t n, int v) {
        return v >= 0 && (size_t) v < n ? table[v] : NULL;
}

static int table_from_string(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (strcmp(table[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

#define DEFINE_ENUM_STRINGS(name, type, table)                                                              \
        const char *lvss_wmd_##name##_to_string(type v) {                                                   \
                return table_to_string(table, ELEMENTSOF(table), (int) v);                                  \
        }                                                                                                   \
        int lvss_wmd_##name##_from_string(const char *s) {                                                  \
                return table_from_string(table, ELEMENTSOF(table), s);                                      \
        }

DEFINE_ENUM_STRINGS(usage, lvss_wmd_usage, usage_table)
DEFINE_ENUM_STRINGS(source, lvss_wmd_source, source_table)
DEFINE_ENUM_STRINGS(restore_method, lvss_wmd_restore_method, restore_method_table)
DEFINE_ENUM_STRINGS(writer_restore, lvss_wmd_writer_restore, writer_restore_table)
DEFINE_ENUM_STRINGS(component_type, lvss_wmd_component_type, component_type_table)
DEFINE_ENUM_STRINGS(files_kind, lvss_wmd_files_kind, files_kind_table)

static bool backup_types_valid(unsigned types) {
        return types != 0 && (types & ~(unsigned) LVSS_WMD_BACKUP_ALL) == 0;
}

/* Longest "full incremental differential log copy", with its NUL. */
#define BACKUP_TYPES_STRING_MAX 40

/* Spells a valid mask into BUF. */
static void backup_types_format(unsigned types, char buf[BACKUP_TYPES_STRING_MAX]) {
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(backup_type_names); i++)
                if (types & (1u << i)) {
                        if (buf[0])
                                strcat(buf, " ");
                        strcat(buf, backup_type_names[i]);
                }
}

int lvss_wmd_backup_types_to_string(unsigned types, char **ret) {
        if (!ret || !backup_types_valid(types))
                return -EINVAL;
        char buf[BACKUP_TYPES_STRING_MAX];
        backup_types_format(types, buf);
        char *s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static bool is_xml_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int lvss_wmd_backup_types_from_string(const char *s, unsigned *ret) {
        if (!s || !ret)
                return -EINVAL;
        unsigned types = 0;
        for (const char *p = s;;) {
                while (is_xml_space(*p))
                        p++;
                if (!*p)
                        break;
                size_t len = 0;
                while (p[len] && !is_xml_space(p[len]))
                        len++;
                size_t i;
                for (i = 0; i < ELEMENTSOF(backup_type_names); i++)
                        if (strlen(backup_type_names[i]) == len && memcmp(backup_type_names[i], p, len) == 0)
                                break;
                if (i == ELEMENTSOF(backup_type_names) || (types & (1u << i)))
                        return -EINVAL; /* unknown, or twice */
                types |= 1u << i;
                p += len;
        }
        if (types == 0)
                return -EINVAL;
        *ret = types;
        return 0;
}

/* ---- validation of values ---- */

/* Length of the UTF-8 sequence at S (of at most N bytes) and its code point; 0 if malformed. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *ret_cp) {
        uint32_t cp;
        size_t len;
        if (s[0] < 0x80) {
                *ret_cp = s[0];
                return 1;
        } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                cp = s[0] & 0x1f;
                len = 2;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                cp = s[0] & 0x0f;
                len = 3;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                cp = s[0] & 0x07;
                len = 4;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0; /* overlong, out of range, or a surrogate */
        *ret_cp = cp;
        return len;
}

/* Whether S is UTF-8 without NUL bytes: what libxml2 may be given. */
static bool utf8_valid(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_decode(p + i, n - i, &cp);
                if (len == 0 || cp == 0)
                        return false;
                i += len;
        }
        return true;
}

/* Non-empty UTF-8 of at most MAX bytes, no control characters (but '\t' and '\n' if MULTILINE), no
 * U+FFFE/U+FFFF (not allowed in XML). */
static bool text_valid(const char *s, size_t max, bool multiline) {
        if (!s)
                return false;
        size_t n = strnlen(s, max + 1);
        if (n == 0 || n > max)
                return false;
        const uint8_t *p = (const uint8_t *) s;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_decode(p + i, n - i, &cp);
                if (len == 0)
                        return false;
                if (cp < 0x20 && !(multiline && (cp == '\t' || cp == '\n')))
                        return false;
                if ((cp >= 0x7f && cp <= 0x9f) || cp == 0xfffe || cp == 0xffff)
                        return false;
                i += len;
        }
        return true;
}

static bool name_valid(const char *s) {
        return text_valid(s, LVSS_WMD_NAME_MAX, false);
}

static bool component_name_valid(const char *s) {
        return name_valid(s) && !strchr(s, '/');
}

static bool logical_path_valid(const char *s) {
        return name_valid(s) && s[0] != '/' && s[strlen(s) - 1] != '/' && !strstr(s, "//");
}

static bool path_valid(const char *s) {
        if (!text_valid(s, LVSS_WMD_PATH_MAX, false) || s[0] != '/')
                return false;
        if (s[1] == '\0')
                return true;
        for (const char *seg = s + 1;;) {
                size_t len = strcspn(seg, "/");
                if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                        return false; /* "//", trailing '/', "." or ".." */
                if (!seg[len])
                        return true;
                seg += len + 1;
        }
}

static bool filespec_valid(const char *s) {
        return text_valid(s, LVSS_WMD_FILESPEC_MAX, false) && !strchr(s, '/') && strcmp(s, ".") != 0 &&
               strcmp(s, "..") != 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Copies the UUID S in lower case into RET; -EINVAL unless it is 8-4-4-4-12 hex digits. */
static int uuid_normalize(const char *s, char ret[LVSS_WMD_UUID_LEN + 1]) {
        if (!s || strnlen(s, LVSS_WMD_UUID_LEN + 1) != LVSS_WMD_UUID_LEN)
                return -EINVAL;
        char buf[LVSS_WMD_UUID_LEN + 1];
        for (size_t i = 0; i < LVSS_WMD_UUID_LEN; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                        buf[i] = '-';
                } else {
                        int v = hex_value(s[i]);
                        if (v < 0)
                                return -EINVAL;
                        buf[i] = "0123456789abcdef"[v];
                }
        }
        buf[LVSS_WMD_UUID_LEN] = '\0';
        memcpy(ret, buf, sizeof(buf));
        return 0;
}

/* ---- the model ---- */

static int ptr_vec_push(struct ptr_vec *v, void *p) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 4;
                void **items = reallocarray(v->items, cap, sizeof(void *));
                if (!items)
                        return -ENOMEM;
                v->items = items;
                v->cap = cap;
        }
        v->items[v->n++] = p;
        return 0;
}

static void *ptr_vec_get(const struct ptr_vec *v, size_t i) {
        return i < v->n ? v->items[i] : NULL;
}

/* Duplicates S, or NULL when S is NULL; false only when out of memory. */
static bool strdup_opt(const char *s, char **ret) {
        *ret = s ? strdup(s) : NULL;
        return !s || *ret;
}

static void file_set_free(lvss_wmd_file_set *f) {
        if (!f)
                return;
        free(f->path);
        free(f->filespec);
        free(f);
}

static void dependency_free(lvss_wmd_dependency *d) {
        if (!d)
                return;
        free(d->writer_class_id);
        free(d->logical_path);
        free(d->name);
        free(d);
}

static void component_free(lvss_wmd_component *c) {
        if (!c)
                return;
        for (size_t k = 0; k < _LVSS_WMD_FILES_MAX; k++) {
                for (size_t i = 0; i < c->files[k].n; i++)
                        file_set_free(c->files[k].items[i]);
                free(c->files[k].items);
        }
        for (size_t i = 0; i < c->dependencies.n; i++)
                dependency_free(c->dependencies.items[i]);
        free(c->dependencies.items);
        free(c->logical_path);
        free(c->name);
        free(c->caption);
        free(c);
}

void lvss_wmd_free(lvss_wmd *wmd) {
        if (!wmd)
                return;
        for (size_t i = 0; i < wmd->excludes.n; i++)
                file_set_free(wmd->excludes.items[i]);
        free(wmd->excludes.items);
        for (size_t i = 0; i < wmd->components.n; i++)
                component_free(wmd->components.items[i]);
        free(wmd->components.items);
        free(wmd->writer_name);
        free(wmd->instance_name);
        free(wmd->restore_service);
        free(wmd->restore_user_procedure);
        free(wmd);
}

static inline void lvss_wmd_freep(lvss_wmd **p) {
        lvss_wmd_free(*p);
}
static inline void file_set_freep(lvss_wmd_file_set **p) {
        file_set_free(*p);
}
static inline void dependency_freep(lvss_wmd_dependency **p) {
        dependency_free(*p);
}
static inline void component_freep(lvss_wmd_component **p) {
        component_free(*p);
}

int lvss_wmd_new(const char *writer_name, const char *class_id, const char *instance_id,
                 const char *instance_name, lvss_wmd_usage usage, lvss_wmd_source source, lvss_wmd **ret) {
        if (!ret || !name_valid(writer_name) || (instance_name && !name_valid(instance_name)) ||
            !lvss_wmd_usage_to_string(usage) || !lvss_wmd_source_to_string(source))
                return -EINVAL;

        _cleanup_(lvss_wmd_freep) lvss_wmd *wmd = calloc(1, sizeof(*wmd));
        if (!wmd)
                return -ENOMEM;
        if (uuid_normalize(class_id, wmd->class_id) < 0 || uuid_normalize(instance_id, wmd->instance_id) < 0)
                return -EINVAL;
        wmd->writer_name = strdup(writer_name);
        if (!wmd->writer_name || !strdup_opt(instance_name, &wmd->instance_name))
                return -ENOMEM;
        wmd->usage = usage;
        wmd->source = source;
        wmd->backup_schema = LVSS_WMD_BACKUP_FULL;
        *ret = TAKE_PTR(wmd);
        return 0;
}

int lvss_wmd_set_types(lvss_wmd *wmd, lvss_wmd_usage usage, lvss_wmd_source source) {
        if (!wmd || !lvss_wmd_usage_to_string(usage) || !lvss_wmd_source_to_string(source))
                return -EINVAL;
        wmd->usage = usage;
        wmd->source = source;
        return 0;
}

int lvss_wmd_set_restore_method(lvss_wmd *wmd, lvss_wmd_restore_method method, const char *service,
                                const char *user_procedure, lvss_wmd_writer_restore writer_restore,
                                bool reboot_required) {
        if (!wmd || !lvss_wmd_restore_method_to_string(method) ||
            !lvss_wmd_writer_restore_to_string(writer_restore) || (service && !name_valid(service)) ||
            (user_procedure && !text_valid(user_procedure, LVSS_WMD_TEXT_MAX, true)) ||
            (method == LVSS_WMD_RESTORE_STOP_RESTORE_START && !service))
                return -EINVAL;

        _cleanup_free_ char *s = NULL, *u = NULL;
        if (!strdup_opt(service, &s) || !strdup_opt(user_procedure, &u))
                return -ENOMEM;
        free(wmd->restore_service);
        free(wmd->restore_user_procedure);
        wmd->restore_service = TAKE_PTR(s);
        wmd->restore_user_procedure = TAKE_PTR(u);
        wmd->restore_method = method;
        wmd->writer_restore = writer_restore;
        wmd->reboot_required = reboot_required;
        wmd->has_restore = true;
        return 0;
}

int lvss_wmd_set_backup_schema(lvss_wmd *wmd, unsigned types) {
        if (!wmd || !backup_types_valid(types))
                return -EINVAL;
        wmd->backup_schema = types;
        return 0;
}

static int file_set_new(const char *path, const char *filespec, bool recursive, unsigned backup_types,
                        lvss_wmd_file_set **ret) {
        if (!path_valid(path) || !filespec_valid(filespec))
                return -EINVAL;
        _cleanup_(file_set_freep) lvss_wmd_file_set *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->path = strdup(path);
        f->filespec = strdup(filespec);
        if (!f->path || !f->filespec)
                return -ENOMEM;
        f->recursive = recursive;
        f->backup_types = backup_types;
        *ret = TAKE_PTR(f);
        return 0;
}

int lvss_wmd_add_exclude(lvss_wmd *wmd, const char *path, const char *filespec, bool recursive) {
        if (!wmd)
                return -EINVAL;
        _cleanup_(file_set_freep) lvss_wmd_file_set *f = NULL;
        int r = file_set_new(path, filespec, recursive, 0, &f);
        if (r < 0)
                return r;
        if (wmd->excludes.n >= LVSS_WMD_MAX_FILE_SETS)
                return -E2BIG;
        r = ptr_vec_push(&wmd->excludes, f);
        if (r < 0)
                return r;
        TAKE_PTR(f);
        return 0;
}

static lvss_wmd_component *find_component(const lvss_wmd *wmd, const char *logical_path, const char *name) {
        for (size_t i = 0; i < wmd->components.n; i++) {
                lvss_wmd_component *c = wmd->components.items[i];
                if (strcmp(c->name, name) == 0 && strcmp(c->logical_path, logical_path) == 0)
                        return c;
        }
        return NULL;
}

int lvss_wmd_add_component(lvss_wmd *wmd, lvss_wmd_component_type type, const char *logical_path,
                           const char *name, const char *caption, bool selectable_backup,
                           bool selectable_restore, lvss_wmd_component **ret_component) {
        if (!wmd || !lvss_wmd_component_type_to_string(type) || !logical_path_valid(logical_path) ||
            !component_name_valid(name) || (caption && !name_valid(caption)))
                return -EINVAL;
        if (find_component(wmd, logical_path, name))
                return -EEXIST;
        if (wmd->components.n >= LVSS_WMD_MAX_COMPONENTS)
                return -E2BIG;

        _cleanup_(component_freep) lvss_wmd_component *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->wmd = wmd;
        c->type = type;
        c->logical_path = strdup(logical_path);
        c->name = strdup(name);
        if (!c->logical_path || !c->name || !strdup_opt(caption, &c->caption))
                return -ENOMEM;
        c->selectable_backup = selectable_backup;
        c->selectable_restore = selectable_restore;
        int r = ptr_vec_push(&wmd->components, c);
        if (r < 0)
                return r;
        if (ret_component)
                *ret_component = c;
        TAKE_PTR(c);
        return 0;
}

int lvss_wmd_component_add_files(lvss_wmd_component *c, lvss_wmd_files_kind kind, const char *path,
                                 const char *filespec, bool recursive, unsigned backup_types) {
        if (!c || !lvss_wmd_files_kind_to_string(kind) || !backup_types_valid(backup_types))
                return -EINVAL;
        if ((c->type == LVSS_WMD_COMPONENT_FILE_GROUP) != (kind == LVSS_WMD_FILES))
                return -EINVAL; /* files in file groups, database and log files in databases */
        _cleanup_(file_set_freep) lvss_wmd_file_set *f = NULL;
        int r = file_set_new(path, filespec, recursive, backup_types, &f);
        if (r < 0)
                return r;
        if (c->n_file_sets >= LVSS_WMD_MAX_FILE_SETS)
                return -E2BIG;
        r = ptr_vec_push(&c->files[kind], f);
        if (r < 0)
                return r;
        TAKE_PTR(f);
        c->n_file_sets++;
        return 0;
}

int lvss_wmd_component_add_dependency(lvss_wmd_component *c, const char *writer_class_id,
                                      const char *logical_path, const char *name) {
        char class_id[LVSS_WMD_UUID_LEN + 1];
        if (!c || !logical_path_valid(logical_path) || !component_name_valid(name) ||
            (writer_class_id && uuid_normalize(writer_class_id, class_id) < 0))
                return -EINVAL;
        if ((!writer_class_id || strcmp(class_id, c->wmd->class_id) == 0) &&
            strcmp(logical_path, c->logical_path) == 0 && strcmp(name, c->name) == 0)
                return -EINVAL; /* on itself */
        if (c->dependencies.n >= LVSS_WMD_MAX_DEPENDENCIES)
                return -E2BIG;

        _cleanup_(dependency_freep) lvss_wmd_dependency *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        if (!strdup_opt(writer_class_id ? class_id : NULL, &d->writer_class_id))
                return -ENOMEM;
        d->logical_path = strdup(logical_path);
        d->name = strdup(name);
        if (!d->logical_path || !d->name)
                return -ENOMEM;
        int r = ptr_vec_push(&c->dependencies, d);
        if (r < 0)
                return r;
        TAKE_PTR(d);
        return 0;
}

/* ---- getters ---- */

const char *lvss_wmd_get_writer_name(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->writer_name;
}

const char *lvss_wmd_get_class_id(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->class_id;
}

const char *lvss_wmd_get_instance_id(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->instance_id;
}

const char *lvss_wmd_get_instance_name(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->instance_name;
}

lvss_wmd_usage lvss_wmd_get_usage(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->usage;
}

lvss_wmd_source lvss_wmd_get_source(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->source;
}

int lvss_wmd_get_restore_method(const lvss_wmd *wmd, lvss_wmd_restore_method *ret_method,
                                const char **ret_service, const char **ret_user_procedure,
                                lvss_wmd_writer_restore *ret_writer_restore, bool *ret_reboot_required) {
        if (!wmd)
                return -EINVAL;
        if (!wmd->has_restore)
                return -ENODATA;
        if (ret_method)
                *ret_method = wmd->restore_method;
        if (ret_service)
                *ret_service = wmd->restore_service;
        if (ret_user_procedure)
                *ret_user_procedure = wmd->restore_user_procedure;
        if (ret_writer_restore)
                *ret_writer_restore = wmd->writer_restore;
        if (ret_reboot_required)
                *ret_reboot_required = wmd->reboot_required;
        return 0;
}

unsigned lvss_wmd_get_backup_schema(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->backup_schema;
}

size_t lvss_wmd_get_n_excludes(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->excludes.n;
}

const lvss_wmd_file_set *lvss_wmd_get_exclude(const lvss_wmd *wmd, size_t i) {
        assert(wmd);
        return ptr_vec_get(&wmd->excludes, i);
}

size_t lvss_wmd_get_n_components(const lvss_wmd *wmd) {
        assert(wmd);
        return wmd->components.n;
}

const lvss_wmd_component *lvss_wmd_get_component(const lvss_wmd *wmd, size_t i) {
        assert(wmd);
        return ptr_vec_get(&wmd->components, i);
}

int lvss_wmd_find_component(lvss_wmd *wmd, const char *logical_path, const char *name,
                            lvss_wmd_component **ret) {
        if (!wmd || !logical_path || !name || !ret)
                return -EINVAL;
        lvss_wmd_component *c = find_component(wmd, logical_path, name);
        if (!c)
                return -ENOENT;
        *ret = c;
        return 0;
}

lvss_wmd_component_type lvss_wmd_component_get_type(const lvss_wmd_component *c) {
        assert(c);
        return c->type;
}

const char *lvss_wmd_component_get_logical_path(const lvss_wmd_component *c) {
        assert(c);
        return c->logical_path;
}

const char *lvss_wmd_component_get_name(const lvss_wmd_component *c) {
        assert(c);
        return c->name;
}

const char *lvss_wmd_component_get_caption(const lvss_wmd_component *c) {
        assert(c);
        return c->caption;
}

bool lvss_wmd_component_get_selectable_backup(const lvss_wmd_component *c) {
        assert(c);
        return c->selectable_backup;
}

bool lvss_wmd_component_get_selectable_restore(const lvss_wmd_component *c) {
        assert(c);
        return c->selectable_restore;
}

size_t lvss_wmd_component_get_n_files(const lvss_wmd_component *c, lvss_wmd_files_kind kind) {
        assert(c);
        return lvss_wmd_files_kind_to_string(kind) ? c->files[kind].n : 0;
}

const lvss_wmd_file_set *lvss_wmd_component_get_files(const lvss_wmd_component *c, lvss_wmd_files_kind kind,
                                                      size_t i) {
        assert(c);
        return lvss_wmd_files_kind_to_string(kind) ? ptr_vec_get(&c->files[kind], i) : NULL;
}

size_t lvss_wmd_component_get_n_dependencies(const lvss_wmd_component *c) {
        assert(c);
        return c->dependencies.n;
}

const lvss_wmd_dependency *lvss_wmd_component_get_dependency(const lvss_wmd_component *c, size_t i) {
        assert(c);
        return ptr_vec_get(&c->dependencies, i);
}

const char *lvss_wmd_file_set_get_path(const lvss_wmd_file_set *f) {
        assert(f);
        return f->path;
}

const char *lvss_wmd_file_set_get_filespec(const lvss_wmd_file_set *f) {
        assert(f);
        return f->filespec;
}

bool lvss_wmd_file_set_get_recursive(const lvss_wmd_file_set *f) {
        assert(f);
        return f->recursive;
}

unsigned lvss_wmd_file_set_get_backup_types(const lvss_wmd_file_set *f) {
        assert(f);
        return f->backup_types;
}

const char *lvss_wmd_dependency_get_writer_class_id(const lvss_wmd_dependency *d) {
        assert(d);
        return d->writer_class_id;
}

const char *lvss_wmd_dependency_get_logical_path(const lvss_wmd_dependency *d) {
        assert(d);
        return d->logical_path;
}

const char *lvss_wmd_dependency_get_name(const lvss_wmd_dependency *d) {
        assert(d);
        return d->name;
}

/* ---- keeping libxml2 quiet ---- */

#if LIBXML_VERSION >= 21200
typedef const xmlError *xml_error_arg;
#else
typedef xmlErrorPtr xml_error_arg;
#endif

static void silent_generic_error(void *ctx, const char *msg, ...) {
}

static void silent_structured_error(void *ctx, xml_error_arg error) {
}

/* The calling thread's libxml2 error handlers, saved while silent ones are installed. */
struct xml_silence {
        xmlGenericErrorFunc generic;
        void *generic_ctx;
        xmlStructuredErrorFunc structured;
        void *structured_ctx;
};

/* libxml2's own set-up is not thread-safe: done once, when the program starts. */
static void __attribute__((constructor)) wmd_init_libxml2(void) {
        xmlInitParser();
}

static void xml_silence_begin(struct xml_silence *s) {
        xmlInitParser();
        *s = (struct xml_silence){
                .generic = xmlGenericError,
                .generic_ctx = xmlGenericErrorContext,
                .structured = xmlStructuredError,
                .structured_ctx = xmlStructuredErrorContext,
        };
        xmlSetGenericErrorFunc(NULL, silent_generic_error);
        xmlSetStructuredErrorFunc(NULL, silent_structured_error);
}

static void xml_silence_end(struct xml_silence *s) {
        xmlSetGenericErrorFunc(s->generic_ctx, s->generic);
        xmlSetStructuredErrorFunc(s->structured_ctx, s->structured);
}

/* ---- writing ---- */

/* Fails the enclosing function with -ENOMEM when an xmlTextWriter call fails. */
#define W(call)                                                                                             \
        do {                                                                                                \
                if ((call) < 0)                                                                             \
                        return -ENOMEM;                                                                     \
        } while (0)

#define BOOL_STR(b) ((b) ? "true" : "false")

/* Opens <ELEMENT> with ATTRS, pairs of name and value ending with a NULL name; NULL values are left out. */
static int write_start(xmlTextWriterPtr w, const char *element, const char *const *attrs) {
        W(xmlTextWriterStartElement(w, BAD_CAST element));
        for (; attrs[0]; attrs += 2)
                if (attrs[1])
                        W(xmlTextWriterWriteAttribute(w, BAD_CAST attrs[0], BAD_CAST attrs[1]));
        return 0;
}

/* Closes the open element; -EFBIG once the output so far exceeds the limit, so a huge model stops early. */
static int write_end(xmlTextWriterPtr w, xmlBufferPtr buf) {
        W(xmlTextWriterEndElement(w));
        W(xmlTextWriterFlush(w));
        return xmlBufferLength(buf) > (int) LVSS_WMD_XML_MAX ? -EFBIG : 0;
}

static int write_file_set(xmlTextWriterPtr w, xmlBufferPtr buf, const char *element,
                          const lvss_wmd_file_set *f) {
        char types[BACKUP_TYPES_STRING_MAX];
        backup_types_format(f->backup_types, types);
        int r = write_start(w, element,
                            (const char *const[]){ "path", f->path, "filespec", f->filespec, "recursive",
                                                   BOOL_STR(f->recursive), "backup-types",
                                                   f->backup_types ? types : NULL, NULL });
        return r < 0 ? r : write_end(w, buf);
}

static int write_component(xmlTextWriterPtr w, xmlBufferPtr buf, const lvss_wmd_component *c) {
        int r = write_start(w, "component",
                            (const char *const[]){ "type", component_type_table[c->type], "logical-path",
                                                   c->logical_path, "name", c->name, "caption", c->caption,
                                                   "selectable-backup", BOOL_STR(c->selectable_backup),
                                                   "selectable-restore", BOOL_STR(c->selectable_restore),
                                                   NULL });
        if (r < 0)
                return r;
        for (size_t k = 0; k < _LVSS_WMD_FILES_MAX; k++)
                for (size_t i = 0; i < c->files[k].n; i++)
                        if ((r = write_file_set(w, buf, files_kind_table[k], c->files[k].items[i])) < 0)
                                return r;
        for (size_t i = 0; i < c->dependencies.n; i++) {
                const lvss_wmd_dependency *d = c->dependencies.items[i];
                r = write_start(w, "dependency",
                                (const char *const[]){ "writer-class-id", d->writer_class_id, "logical-path",
                                                       d->logical_path, "name", d->name, NULL });
                if (r < 0 || (r = write_end(w, buf)) < 0)
                        return r;
        }
        return write_end(w, buf);
}

static int write_document(xmlTextWriterPtr w, xmlBufferPtr buf, const lvss_wmd *wmd) {
        int r;
        W(xmlTextWriterSetIndent(w, 1));
        W(xmlTextWriterSetIndentString(w, BAD_CAST "  "));
        W(xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL));
        r = write_start(w, "writer-metadata",
                        (const char *const[]){ "xmlns", LVSS_WMD_NAMESPACE, "version", "1", NULL });
        if (r < 0)
                return r;

        r = write_start(w, "identity",
                        (const char *const[]){ "name", wmd->writer_name, "class-id", wmd->class_id,
                                               "instance-id", wmd->instance_id, "instance-name",
                                               wmd->instance_name, "usage", usage_table[wmd->usage],
                                               "source", source_table[wmd->source], NULL });
        if (r < 0 || (r = write_end(w, buf)) < 0)
                return r;

        if (wmd->has_restore) {
                r = write_start(w, "restore-method",
                                (const char *const[]){
                                        "method", restore_method_table[wmd->restore_method], "service",
                                        wmd->restore_service, "user-procedure", wmd->restore_user_procedure,
                                        "writer-restore", writer_restore_table[wmd->writer_restore],
                                        "reboot-required", BOOL_STR(wmd->reboot_required), NULL });
                if (r < 0 || (r = write_end(w, buf)) < 0)
                        return r;
        }

        char types[BACKUP_TYPES_STRING_MAX];
        backup_types_format(wmd->backup_schema, types);
        r = write_start(w, "backup-schema", (const char *const[]){ "types", types, NULL });
        if (r < 0 || (r = write_end(w, buf)) < 0)
                return r;

        for (size_t i = 0; i < wmd->excludes.n; i++)
                if ((r = write_file_set(w, buf, "exclude", wmd->excludes.items[i])) < 0)
                        return r;
        for (size_t i = 0; i < wmd->components.n; i++)
                if ((r = write_component(w, buf, wmd->components.items[i])) < 0)
                        return r;

        if ((r = write_end(w, buf)) < 0)
                return r;
        W(xmlTextWriterEndDocument(w));
        W(xmlTextWriterFlush(w));
        return 0;
}

int lvss_wmd_to_xml(const lvss_wmd *wmd, char **ret_xml, size_t *ret_len) {
        if (!wmd || !ret_xml)
                return -EINVAL;

        struct xml_silence silence;
        xml_silence_begin(&silence);
        int r = -ENOMEM;
        xmlTextWriterPtr w = NULL;
        xmlBufferPtr buf = xmlBufferCreate();
        if (buf)
                w = xmlNewTextWriterMemory(buf, 0);
        if (w)
                r = write_document(w, buf, wmd);
        xmlFreeTextWriter(w);
        if (r >= 0) {
                size_t len = (size_t) xmlBufferLength(buf);
                char *s = malloc(len + 1);
                if (s) {
                        memcpy(s, xmlBufferContent(buf), len);
                        s[len] = '\0';
                        *ret_xml = s;
                        if (ret_len)
                                *ret_len = len;
                } else
                        r = -ENOMEM;
        }
        xmlBufferFree(buf);
        xml_silence_end(&silence);
        return r;
}

/* ---- parsing ---- */

#define NS_HREF BAD_CAST LVSS_WMD_NAMESPACE

static inline void xml_freep(xmlChar **p) {
        if (*p)
                xmlFree(*p);
}

static bool is_element(const xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && n->ns && xmlStrEqual(n->ns->href, NS_HREF) &&
               xmlStrEqual(n->name, BAD_CAST name);
}

/* Children of N: elements of our namespace (if ELEMENTS), comments and blank text only. */
static int check_children(const xmlNode *n, bool elements) {
        for (const xmlNode *c = n->children; c; c = c->next)
                switch (c->type) {
                case XML_ELEMENT_NODE:
                        if (!elements || !c->ns || !xmlStrEqual(c->ns->href, NS_HREF))
                                return -EBADMSG;
                        break;
                case XML_COMMENT_NODE:
                        break;
                case XML_TEXT_NODE:
                        if (!xmlIsBlankNode(c))
                                return -EBADMSG;
                        break;
                default: /* CDATA, processing instructions, entity references */
                        return -EBADMSG;
                }
        return 0;
}

#define MAX_ATTRS 8

/* Fetches N's attributes named in NAMES (a NULL-terminated list; a leading '?' marks one optional) into
 * VALUES (NULL when absent, freed by the caller); -EBADMSG for any other attribute or a missing one. Also
 * checks N's children (see check_children). */
static int get_attrs(const xmlNode *n, const char *const *names, bool elements, xmlChar *values[MAX_ATTRS]) {
        for (const xmlAttr *a = n->properties; a; a = a->next) {
                if (a->ns)
                        return -EBADMSG;
                size_t i;
                for (i = 0; names[i]; i++)
                        if (xmlStrEqual(a->name, BAD_CAST(names[i] + (names[i][0] == '?'))))
                                break;
                if (!names[i])
                        return -EBADMSG;
                values[i] = xmlNodeGetContent((const xmlNode *) a);
                if (!values[i])
                        return -ENOMEM;
        }
        for (size_t i = 0; names[i]; i++)
                if (!values[i] && names[i][0] != '?')
                        return -EBADMSG;
        return check_children(n, elements);
}

static void free_attrs(xmlChar *(*values)[MAX_ATTRS]) {
        for (size_t i = 0; i < MAX_ATTRS; i++)
                xml_freep(&(*values)[i]);
}

#define _cleanup_attrs_ _cleanup_(free_attrs)
#define S(x) ((const char *) (x))

static int parse_bool(const xmlChar *s, bool *ret) {
        if (xmlStrEqual(s, BAD_CAST "true"))
                *ret = true;
        else if (xmlStrEqual(s, BAD_CAST "false"))
                *ret = false;
        else
                return -EBADMSG;
        return 0;
}

/* Any refusal by a builder function means the document breaks a rule. */
static int bad_document(int r) {
        return r >= 0 || r == -ENOMEM ? r : -EBADMSG;
}

static int parse_identity(const xmlNode *n, lvss_wmd **ret) {
        static const char *const names[] = { "name",  "class-id", "instance-id", "?instance-name",
                                             "usage", "source",   NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        int usage = lvss_wmd_usage_from_string(S(v[4])), source = lvss_wmd_source_from_string(S(v[5]));
        if (usage < 0 || source < 0)
                return -EBADMSG;
        return bad_document(lvss_wmd_new(S(v[0]), S(v[1]), S(v[2]), S(v[3]), usage, source, ret));
}

static int parse_restore_method(const xmlNode *n, lvss_wmd *wmd) {
        static const char *const names[] = { "method",         "?service",        "?user-procedure",
                                             "writer-restore", "reboot-required", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        int method = lvss_wmd_restore_method_from_string(S(v[0]));
        int writer_restore = lvss_wmd_writer_restore_from_string(S(v[3]));
        bool reboot;
        if (method < 0 || writer_restore < 0 || parse_bool(v[4], &reboot) < 0)
                return -EBADMSG;
        return bad_document(
                lvss_wmd_set_restore_method(wmd, method, S(v[1]), S(v[2]), writer_restore, reboot));
}

static int parse_backup_schema(const xmlNode *n, lvss_wmd *wmd) {
        static const char *const names[] = { "types", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        unsigned types;
        if (lvss_wmd_backup_types_from_string(S(v[0]), &types) < 0)
                return -EBADMSG;
        return bad_document(lvss_wmd_set_backup_schema(wmd, types));
}

static int parse_exclude(const xmlNode *n, lvss_wmd *wmd) {
        static const char *const names[] = { "path", "filespec", "recursive", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        bool recursive;
        if (parse_bool(v[2], &recursive) < 0)
                return -EBADMSG;
        return bad_document(lvss_wmd_add_exclude(wmd, S(v[0]), S(v[1]), recursive));
}

static int parse_files(const xmlNode *n, lvss_wmd_component *c, lvss_wmd_files_kind kind) {
        static const char *const names[] = { "path", "filespec", "recursive", "backup-types", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        bool recursive;
        unsigned types;
        if (parse_bool(v[2], &recursive) < 0 || lvss_wmd_backup_types_from_string(S(v[3]), &types) < 0)
                return -EBADMSG;
        return bad_document(lvss_wmd_component_add_files(c, kind, S(v[0]), S(v[1]), recursive, types));
}

static int parse_dependency(const xmlNode *n, lvss_wmd_component *c) {
        static const char *const names[] = { "?writer-class-id", "logical-path", "name", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        return bad_document(lvss_wmd_component_add_dependency(c, S(v[0]), S(v[1]), S(v[2])));
}

static int parse_component(const xmlNode *n, lvss_wmd *wmd) {
        static const char *const names[] = { "type",     "logical-path",      "name",
                                             "?caption", "selectable-backup", "selectable-restore",
                                             NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, true, v);
        if (r < 0)
                return r;
        int type = lvss_wmd_component_type_from_string(S(v[0]));
        bool backup, restore;
        if (type < 0 || parse_bool(v[4], &backup) < 0 || parse_bool(v[5], &restore) < 0)
                return -EBADMSG;
        lvss_wmd_component *c;
        r = lvss_wmd_add_component(wmd, type, S(v[1]), S(v[2]), S(v[3]), backup, restore, &c);
        if (r < 0)
                return bad_document(r);

        for (const xmlNode *e = n->children; e; e = e->next) {
                if (e->type != XML_ELEMENT_NODE)
                        continue;
                if (is_element(e, "dependency"))
                        r = parse_dependency(e, c);
                else {
                        r = lvss_wmd_files_kind_from_string(S(e->name));
                        if (r >= 0)
                                r = parse_files(e, c, r);
                        else
                                r = -EBADMSG;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_root(const xmlNode *root, lvss_wmd **ret) {
        if (!is_element(root, "writer-metadata"))
                return -EBADMSG;
        static const char *const names[] = { "version", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(root, names, true, v);
        if (r < 0)
                return r;
        if (!xmlStrEqual(v[0], BAD_CAST "1"))
                return -EBADMSG;

        /* The identity first, wherever it is: everything else hangs off the document it makes. */
        _cleanup_(lvss_wmd_freep) lvss_wmd *wmd = NULL;
        for (const xmlNode *e = root->children; e; e = e->next)
                if (is_element(e, "identity")) {
                        if (wmd)
                                return -EBADMSG;
                        r = parse_identity(e, &wmd);
                        if (r < 0)
                                return r;
                }
        if (!wmd)
                return -EBADMSG;

        bool seen_restore = false, seen_schema = false;
        for (const xmlNode *e = root->children; e; e = e->next) {
                if (e->type != XML_ELEMENT_NODE || is_element(e, "identity"))
                        continue;
                if (is_element(e, "restore-method")) {
                        if (seen_restore)
                                return -EBADMSG;
                        seen_restore = true;
                        r = parse_restore_method(e, wmd);
                } else if (is_element(e, "backup-schema")) {
                        if (seen_schema)
                                return -EBADMSG;
                        seen_schema = true;
                        r = parse_backup_schema(e, wmd);
                } else if (is_element(e, "exclude"))
                        r = parse_exclude(e, wmd);
                else if (is_element(e, "component"))
                        r = parse_component(e, wmd);
                else
                        r = -EBADMSG;
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(wmd);
        return 0;
}

static int parse_document(const xmlDoc *doc, lvss_wmd **ret) {
        if (doc->intSubset || doc->extSubset)
                return -EBADMSG;
        const xmlNode *root = NULL;
        for (const xmlNode *n = doc->children; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE)
                        root = n;
                else if (n->type != XML_COMMENT_NODE)
                        return -EBADMSG; /* processing instructions, DTD */
        if (!root)
                return -EBADMSG;
        return parse_root(root, ret);
}

/* SAX: a DOCTYPE was met. Stop before its internal subset is read, so no entity gets declared. */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
                       const xmlChar *system_id) {
        xmlParserCtxtPtr ctxt = ctx;
        *(bool *) ctxt->_private = true;
        ctxt->wellFormed = 0;
        xmlStopParser(ctxt);
}

int lvss_wmd_from_xml(const char *xml, size_t len, lvss_wmd **ret) {
        if ((!xml && len > 0) || !ret)
                return -EINVAL;
        if (len > LVSS_WMD_XML_MAX)
                return -EFBIG;
        if (len == 0 || !utf8_valid(xml, len))
                return -EBADMSG;

        struct xml_silence silence;
        xml_silence_begin(&silence);
        int r = -ENOMEM;
        bool doctype = false;
        xmlDocPtr doc = NULL;
        xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
        if (ctxt) {
                ctxt->_private = &doctype;
                ctxt->sax->internalSubset = on_doctype;
                ctxt->sax->serror = silent_structured_error;
                doc = xmlCtxtReadMemory(ctxt, xml, (int) len, NULL, "UTF-8",
                                        XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
                                                XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC);
                if (doctype)
                        r = -EBADMSG;
                else if (!doc)
                        r = ctxt->errNo == XML_ERR_NO_MEMORY ? -ENOMEM : -EBADMSG;
                else
                        r = parse_document(doc, ret);
        }
        xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        xml_silence_end(&silence);
        return r;
}
