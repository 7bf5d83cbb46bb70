/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * liblvss's writer (include/lvss/writer.h): a peer-to-peer sd-bus connection to lvssd, driven by an
 * sd-event loop of the writer's own, that exports org.lvss.Writer1 at /org/lvss/writer and turns
 * each of lvssd's method calls into one callback and one answer (docs/dbus-api.md, "Writers").
 *
 * Invariants:
 *   - configuration (level, freeze timeout, types) is frozen once connected: w->bus is set only by
 *     a lvss_writer_connect() that succeeded, and never unset before lvss_writer_free();
 *   - nothing stays frozen because of us: while w->frozen_set is set (a Freeze of that set was
 *     answered OK and neither its Thaw nor its Abort came yet), w->freeze_timer is armed; when it
 *     fires, when the connection breaks, or when W is freed, the Abort callback runs (deadline_ms 0)
 *     and the set moves to w->aborted_set, whose Thaw is then answered Timeout and whose Abort is
 *     answered OK without a callback;
 *   - w->in_callback is true exactly while a callback runs; backup metadata can be set (and got)
 *     only then, and is sent with that callback's answer only.
 *
 * Threads: everything runs on the thread calling lvss_writer_run() or lvss_writer_process(), but
 * lvss_writer_quit(), which only sets an atomic flag and writes to an eventfd the loop watches
 * (both async-signal-safe). The same eventfd is written once at connect, so that a caller polling
 * lvss_writer_get_fd() wakes and lets sd-event prepare the connection's sources (sd-bus arms its
 * I/O only when the loop prepares).
 */

#include "include/lvss/writer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include "common/macro.h"

#define WRITER_NAME_MAX 255u
#define WRITER_PATH "/org/lvss/writer"
#define WRITER_INTERFACE "org.lvss.Writer1"
#define MANAGER_PATH "/org/lvss"
#define MANAGER_INTERFACE "org.lvss.Manager1"
#define DEFAULT_SOCKET "/run/lvss/lvssd.sock"
#define FREEZE_TIMEOUT_MIN_MS 100u
#define BACKUP_METADATA_MAX (64u * 1024u) /* bytes of one component's data */
#define BACKUP_METADATA_TOTAL_MAX (16u * 1024u * 1024u) /* bytes in one answer, all components */

/* A small map of component -> data. Owned strings for what the writer sets; pointers into the
 * method call for what lvssd sends (the call outlives the callback). */
struct md_entry {
        char *component;
        char *data;
};

struct md_map {
        struct md_entry *entries;
        size_t n;
        size_t total; /* bytes of all data */
        bool owned;
};

/* What lvssd said with one event. */
struct event_args {
        uint32_t deadline_ms;
        const char *context;
        const char *backup_type;
        char **components;
        char **volumes;
        char **shadow_paths;
        struct md_map backup_metadata; /* not owned */
};

struct callback {
        lvss_writer_callback cb;
        void *userdata;
};

struct lvss_writer {
        char *name;
        char instance_id[LVSS_WMD_UUID_LEN + 1];
        lvss_writer_level level;
        uint32_t freeze_timeout_ms;
        lvss_wmd *wmd;
        struct callback callbacks[_LVSS_EVENT_MAX];

        sd_event *event;
        int wake_fd; /* eventfd: lvss_writer_quit() and connect write, the loop reads */
        sd_event_source *wake_source;
        atomic_bool quit; /* lvss_writer_quit() was called: run() returns */

        sd_bus *bus; /* set once connected */
        sd_bus_slot *vtable_slot;
        sd_bus_slot *disconnect_slot;
        bool disconnected;

        char *frozen_set; /* Freeze answered OK, waiting for Thaw or Abort */
        sd_event_source *freeze_timer;
        char *aborted_set; /* thawed by ourselves: Thaw gets Timeout, Abort gets OK */

        bool in_callback;
        lvss_event current_event;
        const struct event_args *current_args;
        struct md_map out_metadata; /* set during the current callback */
};

/* ---- strings ---- */

static const char *const event_table[_LVSS_EVENT_MAX] = {
        [LVSS_EVENT_IDENTIFY] = "identify",
        [LVSS_EVENT_PREPARE_FOR_BACKUP] = "prepare-for-backup",
        [LVSS_EVENT_PREPARE_FOR_SNAPSHOT] = "prepare-for-snapshot",
        [LVSS_EVENT_FREEZE] = "freeze",
        [LVSS_EVENT_THAW] = "thaw",
        [LVSS_EVENT_POST_SNAPSHOT] = "post-snapshot",
        [LVSS_EVENT_ABORT] = "abort",
        [LVSS_EVENT_BACKUP_COMPLETE] = "backup-complete",
        [LVSS_EVENT_BACKUP_SHUTDOWN] = "backup-shutdown",
        [LVSS_EVENT_PRE_RESTORE] = "pre-restore",
        [LVSS_EVENT_POST_RESTORE] = "post-restore",
};

/* The Writer1 method of each event. */
static const char *const event_member_table[_LVSS_EVENT_MAX] = {
        [LVSS_EVENT_IDENTIFY] = "Identify",
        [LVSS_EVENT_PREPARE_FOR_BACKUP] = "PrepareForBackup",
        [LVSS_EVENT_PREPARE_FOR_SNAPSHOT] = "PrepareForSnapshot",
        [LVSS_EVENT_FREEZE] = "Freeze",
        [LVSS_EVENT_THAW] = "Thaw",
        [LVSS_EVENT_POST_SNAPSHOT] = "PostSnapshot",
        [LVSS_EVENT_ABORT] = "Abort",
        [LVSS_EVENT_BACKUP_COMPLETE] = "BackupComplete",
        [LVSS_EVENT_BACKUP_SHUTDOWN] = "BackupShutdown",
        [LVSS_EVENT_PRE_RESTORE] = "PreRestore",
        [LVSS_EVENT_POST_RESTORE] = "PostRestore",
};

static const char *const result_table[_LVSS_RESULT_MAX] = {
        [LVSS_RESULT_OK] = "ok",
        [LVSS_RESULT_VETO] = "veto",
        [LVSS_RESULT_RETRYABLE] = "retryable",
        [LVSS_RESULT_NON_RETRYABLE] = "non-retryable",
        [LVSS_RESULT_OUT_OF_RESOURCES] = "out-of-resources",
        [LVSS_RESULT_TIMEOUT] = "timeout",
        [LVSS_RESULT_INCONSISTENT_SNAPSHOT] = "inconsistent-snapshot",
        [LVSS_RESULT_PARTIAL_FAILURE] = "partial-failure",
};

/* The D-Bus error of each failure (docs/dbus-api.md). */
static const char *const result_error_table[_LVSS_RESULT_MAX] = {
        [LVSS_RESULT_VETO] = "org.lvss.Writer.Error.Veto",
        [LVSS_RESULT_RETRYABLE] = "org.lvss.Writer.Error.Retryable",
        [LVSS_RESULT_NON_RETRYABLE] = "org.lvss.Writer.Error.NonRetryable",
        [LVSS_RESULT_OUT_OF_RESOURCES] = "org.lvss.Writer.Error.OutOfResources",
        [LVSS_RESULT_TIMEOUT] = "org.lvss.Writer.Error.Timeout",
        [LVSS_RESULT_INCONSISTENT_SNAPSHOT] = "org.lvss.Writer.Error.InconsistentSnapshot",
        [LVSS_RESULT_PARTIAL_FAILURE] = "org.lvss.Writer.Error.PartialFailure",
};

static const char *const level_table[_LVSS_LEVEL_MAX] = {
        [LVSS_LEVEL_FRONT_END] = "front-end",
        [LVSS_LEVEL_BACK_END] = "back-end",
        [LVSS_LEVEL_SYSTEM] = "system",
};

const char *lvss_event_to_string(lvss_event e) {
        return (int) e >= 0 && e < _LVSS_EVENT_MAX ? event_table[e] : NULL;
}

const char *lvss_result_to_string(lvss_result r) {
        return (int) r >= 0 && r < _LVSS_RESULT_MAX ? result_table[r] : NULL;
}

static int event_from_member(const char *member) {
        if (!member)
                return -EINVAL;
        for (size_t i = 0; i < _LVSS_EVENT_MAX; i++)
                if (strcmp(event_member_table[i], member) == 0)
                        return (int) i;
        return -EINVAL;
}

/* ---- validation ---- */

/* 1 to 255 bytes of [A-Za-z0-9._@+-]. */
static bool writer_name_valid(const char *s) {
        if (!s)
                return false;
        size_t n = strnlen(s, WRITER_NAME_MAX + 1);
        if (n == 0 || n > WRITER_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '@' || c == '+' || c == '-'))
                        return false;
        }
        return true;
}

/* 8-4-4-4-12 hex digits. */
static bool uuid_valid(const char *s) {
        if (!s || strnlen(s, LVSS_WMD_UUID_LEN + 1) != LVSS_WMD_UUID_LEN)
                return false;
        for (size_t i = 0; i < LVSS_WMD_UUID_LEN; i++) {
                char c = s[i];
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return false;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return false;
        }
        return true;
}

/* Whether the N bytes at S are well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
static bool utf8_valid(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        for (size_t i = 0; i < n;) {
                uint8_t c = p[i];
                size_t len;
                uint32_t cp;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        len = 2;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        len = 3;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        len = 4;
                        cp = c & 0x07;
                } else
                        return false;
                if (n - i < len)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i + k] & 0x3f);
                }
                if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

/* ---- small containers ---- */

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

static void strv_free(char **l) {
        if (!l)
                return;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
}

static void md_map_clear(struct md_map *m) {
        if (m->owned)
                for (size_t i = 0; i < m->n; i++) {
                        free(m->entries[i].component);
                        free(m->entries[i].data);
                }
        free(m->entries);
        bool owned = m->owned;
        *m = (struct md_map){ .owned = owned };
}

static struct md_entry *md_map_find(const struct md_map *m, const char *component) {
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->entries[i].component, component) == 0)
                        return &m->entries[i];
        return NULL;
}

/* Adds or replaces COMPONENT's DATA. The map takes COMPONENT and DATA when it owns its strings
 * (on success only), else keeps the pointers. */
static int md_map_put(struct md_map *m, char *component, char *data) {
        struct md_entry *e = md_map_find(m, component);
        if (e) {
                m->total -= strlen(e->data);
                if (m->owned) {
                        free(component);
                        free(e->data);
                }
                e->data = data;
                m->total += strlen(data);
                return 0;
        }
        struct md_entry *entries = reallocarray(m->entries, m->n + 1, sizeof(struct md_entry));
        if (!entries)
                return -ENOMEM;
        m->entries = entries;
        m->entries[m->n++] = (struct md_entry){ component, data };
        m->total += strlen(data);
        return 0;
}

static void event_args_done(struct event_args *a) {
        strv_free(a->components);
        strv_free(a->volumes);
        strv_free(a->shadow_paths);
        md_map_clear(&a->backup_metadata);
}

/* ---- the writer object ---- */

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint64_t n;
        (void) !read(fd, &n, sizeof(n)); /* non-blocking; a failed read is harmless */
        return 0;
}

static void wake(lvss_writer *w) {
        uint64_t one = 1;
        (void) !write(w->wake_fd, &one, sizeof(one));
}

static int make_instance_id(char ret[LVSS_WMD_UUID_LEN + 1]) {
        sd_id128_t id;
        int r = sd_id128_randomize(&id); /* a v4 UUID */
        if (r < 0)
                return r;
        snprintf(ret, LVSS_WMD_UUID_LEN + 1, SD_ID128_UUID_FORMAT_STR, SD_ID128_FORMAT_VAL(id));
        return 0;
}

static inline void lvss_writer_freep(lvss_writer **p) {
        lvss_writer_free(*p);
}

int lvss_writer_new(const char *name, const char *class_id, const char *instance_name, lvss_writer **ret) {
        if (!ret || !writer_name_valid(name) || !uuid_valid(class_id))
                return -EINVAL;

        _cleanup_(lvss_writer_freep) lvss_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->wake_fd = -1;
        w->out_metadata.owned = true;
        w->level = LVSS_LEVEL_FRONT_END;
        w->freeze_timeout_ms = LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS;
        w->name = strdup(name);
        if (!w->name)
                return -ENOMEM;
        int r = make_instance_id(w->instance_id);
        if (r < 0)
                return r;
        /* Checks the instance name (the metadata's rules) and normalizes the class id. */
        r = lvss_wmd_new(name, class_id, w->instance_id, instance_name, LVSS_WMD_USAGE_USER_DATA,
                         LVSS_WMD_SOURCE_OTHER, &w->wmd);
        if (r < 0)
                return r;

        r = sd_event_new(&w->event);
        if (r < 0)
                return r;
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->wake_fd < 0)
                return negative_errno();
        r = sd_event_add_io(w->event, &w->wake_source, w->wake_fd, EPOLLIN, on_wake, w);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(w);
        return 0;
}

static lvss_result invoke(lvss_writer *w, lvss_event event, const char *set, const struct event_args *a);

/* The Abort callback of SET, called by ourselves: deadline_ms 0, nobody waits for its answer. */
static void call_abort(lvss_writer *w, const char *set) {
        const struct event_args none = { .deadline_ms = 0 };
        (void) invoke(w, LVSS_EVENT_ABORT, set, &none);
        md_map_clear(&w->out_metadata);
}

/* Thaws the frozen set by itself: the freeze window closed, the connection broke or W is freed. */
static void abort_frozen(lvss_writer *w) {
        if (!w->frozen_set)
                return;
        w->freeze_timer = sd_event_source_disable_unref(w->freeze_timer);
        free(w->aborted_set);
        w->aborted_set = TAKE_PTR(w->frozen_set);
        call_abort(w, w->aborted_set);
}

void lvss_writer_free(lvss_writer *w) {
        if (!w)
                return;
        abort_frozen(w);
        w->freeze_timer = sd_event_source_disable_unref(w->freeze_timer);
        w->wake_source = sd_event_source_disable_unref(w->wake_source);
        w->vtable_slot = sd_bus_slot_unref(w->vtable_slot);
        w->disconnect_slot = sd_bus_slot_unref(w->disconnect_slot);
        if (w->bus) {
                (void) sd_bus_detach_event(w->bus);
                w->bus = sd_bus_close_unref(w->bus);
        }
        w->event = sd_event_unref(w->event);
        if (w->wake_fd >= 0)
                close(w->wake_fd);
        md_map_clear(&w->out_metadata);
        lvss_wmd_free(w->wmd);
        free(w->frozen_set);
        free(w->aborted_set);
        free(w->name);
        free(w);
}

int lvss_writer_set_level(lvss_writer *w, lvss_writer_level level) {
        if (!w || (int) level < 0 || level >= _LVSS_LEVEL_MAX)
                return -EINVAL;
        if (w->bus)
                return -EBUSY;
        w->level = level;
        return 0;
}

int lvss_writer_set_freeze_timeout(lvss_writer *w, uint32_t ms) {
        if (!w || ms < FREEZE_TIMEOUT_MIN_MS || ms > LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS)
                return -EINVAL;
        if (w->bus)
                return -EBUSY;
        w->freeze_timeout_ms = ms;
        return 0;
}

int lvss_writer_set_types(lvss_writer *w, lvss_wmd_usage usage, lvss_wmd_source source) {
        if (!w || !lvss_wmd_usage_to_string(usage) || !lvss_wmd_source_to_string(source))
                return -EINVAL;
        if (w->bus)
                return -EBUSY;
        return lvss_wmd_set_types(w->wmd, usage, source);
}

lvss_wmd *lvss_writer_metadata(lvss_writer *w) {
        return w ? w->wmd : NULL;
}

const char *lvss_writer_instance_id(lvss_writer *w) {
        return w ? w->instance_id : NULL;
}

int lvss_writer_set_callback(lvss_writer *w, lvss_event event, lvss_writer_callback cb, void *userdata) {
        if (!w || (int) event <= (int) LVSS_EVENT_IDENTIFY || event >= _LVSS_EVENT_MAX)
                return -EINVAL;
        w->callbacks[event] = (struct callback){ cb, userdata };
        return 0;
}

/* Splits "logical-path/name" at its last '/' and checks that it names one of W's components. */
static int check_component(lvss_writer *w, const char *component) {
        const char *slash = strrchr(component, '/');
        if (!slash || slash == component || !slash[1])
                return -EINVAL;
        _cleanup_free_ char *logical_path = strndup(component, slash - component);
        if (!logical_path)
                return -ENOMEM;
        lvss_wmd_component *c;
        return lvss_wmd_find_component(w->wmd, logical_path, slash + 1, &c);
}

int lvss_writer_set_backup_metadata(lvss_writer *w, const char *component, const char *data) {
        if (!w || !component || !data || !w->in_callback ||
            w->current_event < LVSS_EVENT_PREPARE_FOR_BACKUP ||
            w->current_event > LVSS_EVENT_BACKUP_COMPLETE)
                return -EINVAL;
        size_t len = strnlen(data, BACKUP_METADATA_MAX + 1);
        if (len > BACKUP_METADATA_MAX)
                return -E2BIG;
        if (!utf8_valid(data, len))
                return -EINVAL;
        int r = check_component(w, component);
        if (r < 0)
                return r;
        struct md_entry *old = md_map_find(&w->out_metadata, component);
        if (w->out_metadata.total - (old ? strlen(old->data) : 0) + len > BACKUP_METADATA_TOTAL_MAX)
                return -E2BIG;

        _cleanup_free_ char *c = strdup(component), *d = strdup(data);
        if (!c || !d)
                return -ENOMEM;
        r = md_map_put(&w->out_metadata, c, d);
        if (r < 0)
                return r;
        TAKE_PTR(c);
        TAKE_PTR(d);
        return 0;
}

int lvss_writer_get_backup_metadata(lvss_writer *w, const char *component, const char **ret) {
        if (!w || !component || !ret || !w->in_callback ||
            (w->current_event != LVSS_EVENT_PRE_RESTORE && w->current_event != LVSS_EVENT_POST_RESTORE))
                return -EINVAL;
        const struct md_entry *e = md_map_find(&w->current_args->backup_metadata, component);
        if (!e)
                return -ENOENT;
        *ret = e->data;
        return 0;
}

/* ---- events ---- */

static const char *const empty_list[] = { NULL };

static lvss_result invoke(lvss_writer *w, lvss_event event, const char *set, const struct event_args *a) {
        const struct callback *c = &w->callbacks[event];
        md_map_clear(&w->out_metadata);
        if (!c->cb)
                return LVSS_RESULT_OK;

        const struct lvss_event_info info = {
                .event = event,
                .set_id = set,
                .context = a->context ?: "",
                .backup_type = a->backup_type ?: "",
                .components = a->components ? (const char *const *) a->components : empty_list,
                .volumes = a->volumes ? (const char *const *) a->volumes : empty_list,
                .shadow_paths = a->shadow_paths ? (const char *const *) a->shadow_paths : empty_list,
                .deadline_ms = a->deadline_ms,
        };
        w->in_callback = true;
        w->current_event = event;
        w->current_args = a;
        lvss_result result = c->cb(w, &info, c->userdata);
        w->in_callback = false;
        w->current_args = NULL;
        return result;
}

/* Reads a variant of signature SIGNATURE into *ret (the message's memory); skips any other. */
static int read_string_variant(sd_bus_message *m, const char **ret) {
        const char *contents;
        int r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, "s") != 0)
                return sd_bus_message_skip(m, "v");
        return sd_bus_message_read(m, "v", "s", ret);
}

static int read_strv_variant(sd_bus_message *m, char ***ret) {
        const char *contents;
        int r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, "as") != 0)
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_enter_container(m, 'v', "as");
        if (r < 0)
                return r;
        char **l = NULL;
        r = sd_bus_message_read_strv(m, &l);
        if (r < 0)
                return r;
        strv_free(*ret);
        *ret = l;
        return sd_bus_message_exit_container(m);
}

static int read_map_variant(sd_bus_message *m, struct md_map *map) {
        const char *contents;
        int r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, "a{ss}") != 0)
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_enter_container(m, 'v', "a{ss}");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        md_map_clear(map);
        for (;;) {
                const char *k, *v;
                r = sd_bus_message_read(m, "{ss}", &k, &v);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = md_map_put(map, (char *) k, (char *) v);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* Reads "a{sv} args"; keys we do not know, and known keys of another type, are skipped. */
static int read_event_args(sd_bus_message *m, struct event_args *a) {
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "Context") == 0)
                        r = read_string_variant(m, &a->context);
                else if (strcmp(key, "BackupType") == 0)
                        r = read_string_variant(m, &a->backup_type);
                else if (strcmp(key, "Components") == 0)
                        r = read_strv_variant(m, &a->components);
                else if (strcmp(key, "Volumes") == 0)
                        r = read_strv_variant(m, &a->volumes);
                else if (strcmp(key, "ShadowPaths") == 0)
                        r = read_strv_variant(m, &a->shadow_paths);
                else if (strcmp(key, "BackupMetadata") == 0)
                        r = read_map_variant(m, &a->backup_metadata);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int reply_metadata(sd_bus_message *call, const struct md_map *md) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        for (size_t i = 0; md && i < md->n; i++) {
                r = sd_bus_message_append(reply, "{ss}", md->entries[i].component, md->entries[i].data);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int reply_failure(lvss_writer *w, sd_bus_message *call, lvss_event event, lvss_result result) {
        const char *what = event_table[event];
        if (result == LVSS_RESULT_VETO)
                return sd_bus_reply_method_errorf(
                        call, result_error_table[result], "Writer %s vetoed %s at %s.", w->name,
                        event == LVSS_EVENT_PRE_RESTORE || event == LVSS_EVENT_POST_RESTORE ? "the restore"
                                                                                            : "the set",
                        what);
        if ((int) result > 0 && result < _LVSS_RESULT_MAX)
                return sd_bus_reply_method_errorf(call, result_error_table[result],
                                                  "Writer %s failed at %s: %s.", w->name, what,
                                                  result_table[result]);
        return sd_bus_reply_method_errorf(call, result_error_table[LVSS_RESULT_NON_RETRYABLE],
                                          "Writer %s failed at %s with an unknown result %d.", w->name, what,
                                          (int) result);
}

static int on_freeze_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        abort_frozen(userdata);
        return 0;
}

/* Opens the freeze window of SET: the Abort callback runs if neither Thaw nor Abort comes in time. */
static int freeze_window_open(lvss_writer *w, const char *set) {
        char *copy = strdup(set);
        if (!copy)
                return -ENOMEM;
        sd_event_source *timer;
        int r = sd_event_add_time_relative(w->event, &timer, CLOCK_MONOTONIC,
                                           (uint64_t) w->freeze_timeout_ms * 1000u, 1, on_freeze_timeout, w);
        if (r < 0) {
                free(copy);
                return r;
        }
        /* Handle a Thaw that came in time before the timer, if both are pending at once. */
        (void) sd_event_source_set_priority(timer, SD_EVENT_PRIORITY_IDLE);
        w->freeze_timer = sd_event_source_disable_unref(w->freeze_timer);
        free(w->frozen_set);
        w->freeze_timer = timer;
        w->frozen_set = copy;
        w->aborted_set = mfree_str(w->aborted_set); /* frozen again: its Thaw is a Thaw */
        return 0;
}

static void freeze_window_close(lvss_writer *w) {
        w->freeze_timer = sd_event_source_disable_unref(w->freeze_timer);
        w->frozen_set = mfree_str(w->frozen_set);
}

static int method_event(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        lvss_writer *w = userdata;
        int event = event_from_member(sd_bus_message_get_member(m));
        if (event <= LVSS_EVENT_IDENTIFY)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_METHOD, "No such method.");

        const char *set;
        _cleanup_(event_args_done) struct event_args a = { .backup_metadata.owned = false };
        int r = sd_bus_message_read(m, "su", &set, &a.deadline_ms);
        if (r < 0)
                return r;
        if (!uuid_valid(set))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The set id is not a UUID.");
        r = read_event_args(m, &a);
        if (r < 0)
                return r;

        if (w->aborted_set && strcasecmp(w->aborted_set, set) != 0)
                w->aborted_set = mfree_str(w->aborted_set); /* a new set */
        if (w->aborted_set) {
                if (event == LVSS_EVENT_THAW)
                        return sd_bus_reply_method_errorf(
                                m, result_error_table[LVSS_RESULT_TIMEOUT],
                                "Writer %s thawed itself: its freeze timeout of %" PRIu32
                                " ms passed before Thaw.",
                                w->name, w->freeze_timeout_ms);
                if (event == LVSS_EVENT_ABORT) {
                        w->aborted_set = mfree_str(w->aborted_set);
                        return reply_metadata(m, NULL);
                }
        }
        if ((event == LVSS_EVENT_THAW || event == LVSS_EVENT_ABORT) && w->frozen_set &&
            strcasecmp(w->frozen_set, set) == 0)
                freeze_window_close(w);

        lvss_result result = invoke(w, event, set, &a);
        if (result != LVSS_RESULT_OK) {
                md_map_clear(&w->out_metadata);
                return reply_failure(w, m, event, result);
        }
        if (event == LVSS_EVENT_FREEZE) {
                r = freeze_window_open(w, set);
                if (r < 0) {
                        /* Without its timer nothing would thaw it: thaw now and fail the Freeze. */
                        call_abort(w, set);
                        return sd_bus_reply_method_errorf(
                                m, result_error_table[LVSS_RESULT_OUT_OF_RESOURCES],
                                "Writer %s cannot time its freeze window: %s.", w->name, strerror(-r));
                }
        }
        r = reply_metadata(m, &w->out_metadata);
        md_map_clear(&w->out_metadata);
        return r;
}

static int method_identify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        lvss_writer *w = userdata;
        _cleanup_free_ char *xml = NULL;
        int r = lvss_wmd_to_xml(w->wmd, &xml, NULL);
        if (r < 0)
                return sd_bus_error_setf(error, result_error_table[LVSS_RESULT_NON_RETRYABLE],
                                         "Writer %s cannot write its metadata: %s.", w->name, strerror(-r));
        return sd_bus_reply_method_return(m, "s", xml);
}

#define EVENT_METHOD(member)                                                                                \
        SD_BUS_METHOD_WITH_ARGS(member, SD_BUS_ARGS("s", set, "u", deadline_ms, "a{sv}", args),             \
                                SD_BUS_RESULT("a{ss}", backup_metadata), method_event,                      \
                                SD_BUS_VTABLE_UNPRIVILEGED)

static const sd_bus_vtable writer_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Identify", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", xml), method_identify,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        EVENT_METHOD("PrepareForBackup"),
        EVENT_METHOD("PrepareForSnapshot"),
        EVENT_METHOD("Freeze"),
        EVENT_METHOD("Thaw"),
        EVENT_METHOD("PostSnapshot"),
        EVENT_METHOD("Abort"),
        EVENT_METHOD("BackupComplete"),
        EVENT_METHOD("BackupShutdown"),
        EVENT_METHOD("PreRestore"),
        EVENT_METHOD("PostRestore"),
        SD_BUS_VTABLE_END,
};

/* ---- the connection ---- */

/* lvssd is gone: thaw if frozen, and let run() and process() say so. */
static void connection_lost(lvss_writer *w) {
        if (w->disconnected)
                return;
        w->disconnected = true;
        abort_frozen(w);
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        /* Only the one sd-bus makes itself when the connection closed, not one the peer sent. */
        if (sd_bus_is_open(sd_bus_message_get_bus(m)) > 0)
                return 0;
        connection_lost(userdata);
        return 0;
}

/* -ECONNRESET once the connection is gone (or going). */
static int check_connection(lvss_writer *w) {
        if (!w->disconnected && sd_bus_is_open(w->bus) <= 0)
                connection_lost(w);
        return w->disconnected ? -ECONNRESET : 0;
}

/* "unix:path=PATH", PATH escaped as D-Bus addresses want. */
static int socket_address(const char *path, char **ret) {
        static const char hex[] = "0123456789abcdef";
        size_t n = strlen(path);
        char *a = malloc(strlen("unix:path=") + 3 * n + 1);
        if (!a)
                return -ENOMEM;
        char *p = stpcpy(a, "unix:path=");
        for (const char *s = path; *s; s++) {
                unsigned char c = *s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    strchr("-_/.\\", c))
                        *p++ = c;
                else {
                        *p++ = '%';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = '\0';
        *ret = a;
        return 0;
}

static int append_identity(lvss_writer *w, sd_bus_message *m) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "{sv}{sv}{sv}", "Name", "s", w->name, "ClassId", "s",
                                  lvss_wmd_get_class_id(w->wmd), "InstanceId", "s", w->instance_id);
        if (r < 0)
                return r;
        const char *instance_name = lvss_wmd_get_instance_name(w->wmd);
        if (instance_name) {
                r = sd_bus_message_append(m, "{sv}", "InstanceName", "s", instance_name);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_append(m, "{sv}{sv}{sv}{sv}", "Level", "s", level_table[w->level], "Usage", "s",
                                  lvss_wmd_usage_to_string(lvss_wmd_get_usage(w->wmd)), "Source", "s",
                                  lvss_wmd_source_to_string(lvss_wmd_get_source(w->wmd)), "FreezeTimeoutMs",
                                  "u", w->freeze_timeout_ms);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* The errno of RegisterWriter's error. */
static int register_errno(const sd_bus_error *error, int r) {
        if (sd_bus_error_has_name(error, "org.lvss.Error.AccessDenied"))
                return -EACCES;
        if (sd_bus_error_has_name(error, "org.lvss.Error.Exists"))
                return -EEXIST;
        if (sd_bus_error_has_name(error, "org.lvss.Error.InvalidArgument"))
                return -EINVAL;
        return r < 0 ? r : -EIO;
}

int lvss_writer_connect(lvss_writer *w, const char *socket_path) {
        if (!w)
                return -EINVAL;
        if (w->bus)
                return -EISCONN;
        if (!socket_path)
                socket_path = secure_getenv("LVSS_SOCKET");
        if (!socket_path || !*socket_path)
                socket_path = DEFAULT_SOCKET;

        _cleanup_free_ char *address = NULL;
        int r = socket_address(socket_path, &address);
        if (r < 0)
                return r;

        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        (void) sd_bus_set_description(bus, "lvss-writer");
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, false); /* peer to peer: no Hello */
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;

        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *vtable_slot = NULL, *disconnect_slot = NULL;
        r = sd_bus_add_object_vtable(bus, &vtable_slot, WRITER_PATH, WRITER_INTERFACE, writer_vtable, w);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(bus, &disconnect_slot, NULL, "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, w);
        if (r < 0)
                return r;

        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        r = sd_bus_message_new_method_call(bus, &call, NULL, MANAGER_PATH, MANAGER_INTERFACE,
                                           "RegisterWriter");
        if (r < 0)
                return r;
        r = append_identity(w, call);
        if (r < 0)
                return r;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0)
                return register_errno(&error, r);

        r = sd_bus_attach_event(bus, w->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;

        w->vtable_slot = TAKE_PTR(vtable_slot);
        w->disconnect_slot = TAKE_PTR(disconnect_slot);
        w->bus = TAKE_PTR(bus);
        wake(w); /* for callers that poll lvss_writer_get_fd() before their first process() */
        return 0;
}

/* ---- the loop ---- */

int lvss_writer_run(lvss_writer *w) {
        if (!w)
                return -EINVAL;
        if (!w->bus)
                return -ENOTCONN;
        if (w->in_callback)
                return -EBUSY;
        for (;;) {
                if (atomic_exchange(&w->quit, false))
                        return 0;
                int r = check_connection(w);
                if (r < 0)
                        return r;
                r = sd_event_run(w->event, UINT64_MAX);
                if (r < 0)
                        return r;
        }
}

void lvss_writer_quit(lvss_writer *w) {
        if (!w)
                return;
        int saved = errno;
        atomic_store(&w->quit, true);
        wake(w);
        errno = saved;
}

int lvss_writer_get_fd(lvss_writer *w) {
        if (!w)
                return -EINVAL;
        return sd_event_get_fd(w->event);
}

int lvss_writer_process(lvss_writer *w) {
        if (!w)
                return -EINVAL;
        if (!w->bus)
                return -ENOTCONN;
        if (w->in_callback)
                return -EBUSY;
        for (;;) {
                int r = check_connection(w);
                if (r < 0)
                        return r;
                r = sd_event_run(w->event, 0);
                if (r < 0)
                        return r;
                if (r == 0)
                        return check_connection(w);
        }
}
