/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The writer registry and event delivery (writers.h). Everything here runs on the main thread.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "service/bus-util.h"
#include "service/manager.h"
#include "service/writers.h"

#define WRITER_PATH "/org/lvss/writer"
#define WRITER_IFACE "org.lvss.Writer1"
#define WRITER_ERROR_PREFIX "org.lvss.Writer.Error."

struct wcall {
        struct writer *writer; /* a reference */
        wevent event;
        uint32_t deadline_ms;
        uint64_t sent_usec;
        sd_bus_slot *slot;
        writer_reply_t cb;
        void *userdata;
        sd_event_source *defer; /* delivers a failure that happened at sending, later */
        int defer_r;
        struct wcall *next, *prev;
};

static const char *const event_names[_WEV_MAX] = {
        [WEV_IDENTIFY] = "identify",
        [WEV_PREPARE_FOR_BACKUP] = "prepare-for-backup",
        [WEV_PREPARE_FOR_SNAPSHOT] = "prepare-for-snapshot",
        [WEV_FREEZE] = "freeze",
        [WEV_THAW] = "thaw",
        [WEV_POST_SNAPSHOT] = "post-snapshot",
        [WEV_ABORT] = "abort",
        [WEV_BACKUP_COMPLETE] = "backup-complete",
        [WEV_BACKUP_SHUTDOWN] = "backup-shutdown",
        [WEV_PRE_RESTORE] = "pre-restore",
        [WEV_POST_RESTORE] = "post-restore",
};

static const char *const event_methods[_WEV_MAX] = {
        [WEV_IDENTIFY] = "Identify",
        [WEV_PREPARE_FOR_BACKUP] = "PrepareForBackup",
        [WEV_PREPARE_FOR_SNAPSHOT] = "PrepareForSnapshot",
        [WEV_FREEZE] = "Freeze",
        [WEV_THAW] = "Thaw",
        [WEV_POST_SNAPSHOT] = "PostSnapshot",
        [WEV_ABORT] = "Abort",
        [WEV_BACKUP_COMPLETE] = "BackupComplete",
        [WEV_BACKUP_SHUTDOWN] = "BackupShutdown",
        [WEV_PRE_RESTORE] = "PreRestore",
        [WEV_POST_RESTORE] = "PostRestore",
};

static const char *const level_names[_WLEVEL_MAX] = { "front-end", "back-end", "system" };

static const char *const failure_names[_WFAIL_MAX] = {
        [WFAIL_NONE] = "",
        [WFAIL_RETRYABLE] = "retryable",
        [WFAIL_NON_RETRYABLE] = "non-retryable",
        [WFAIL_TIMEOUT] = "timeout",
        [WFAIL_OUT_OF_RESOURCES] = "out-of-resources",
        [WFAIL_INCONSISTENT_SNAPSHOT] = "inconsistent-snapshot",
        [WFAIL_PARTIAL_FAILURE] = "partial-failure",
};

const char *wevent_to_string(wevent e) {
        return e >= 0 && e < _WEV_MAX ? event_names[e] : NULL;
}

const char *wevent_to_method(wevent e) {
        return e >= 0 && e < _WEV_MAX ? event_methods[e] : NULL;
}

const char *wlevel_to_string(wlevel l) {
        return l >= 0 && l < _WLEVEL_MAX ? level_names[l] : NULL;
}

const char *wfailure_to_string(wfailure f) {
        return f >= 0 && f < _WFAIL_MAX ? failure_names[f] : NULL;
}

const char *writer_state_string(const struct writer *w, char *buf, size_t size) {
        switch (w->state) {
        case WSTATE_STABLE:
                return "stable";
        case WSTATE_WAITING_FOR_FREEZE:
                return "waiting-for-freeze";
        case WSTATE_WAITING_FOR_THAW:
                return "waiting-for-thaw";
        case WSTATE_WAITING_FOR_POST_SNAPSHOT:
                return "waiting-for-post-snapshot";
        case WSTATE_WAITING_FOR_BACKUP_COMPLETE:
                return "waiting-for-backup-complete";
        case WSTATE_FAILED: {
                /* VSS's names: VSS_WS_FAILED_AT_PREPARE_BACKUP, ..._PREPARE_SNAPSHOT, ... */
                static const char *const at[_WEV_MAX] = {
                        [WEV_IDENTIFY] = "identify",
                        [WEV_PREPARE_FOR_BACKUP] = "prepare-backup",
                        [WEV_PREPARE_FOR_SNAPSHOT] = "prepare-snapshot",
                        [WEV_FREEZE] = "freeze",
                        [WEV_THAW] = "thaw",
                        [WEV_POST_SNAPSHOT] = "post-snapshot",
                        [WEV_ABORT] = "abort",
                        [WEV_BACKUP_COMPLETE] = "backup-complete",
                        [WEV_BACKUP_SHUTDOWN] = "backup-shutdown",
                        [WEV_PRE_RESTORE] = "pre-restore",
                        [WEV_POST_RESTORE] = "post-restore",
                };
                snprintf(buf, size, "failed-at-%s", at[w->failed_at]);
                return buf;
        }
        }
        return "unknown";
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* ---- lifetime ---- */

struct writer *writer_ref(struct writer *w) {
        if (w)
                w->n_ref++;
        return w;
}

static void writer_clear_set_state(struct writer *w) {
        lvss_wmd_free(w->wmd);
        w->wmd = NULL;
        strv_free(w->components);
        w->components = NULL;
        strv_free(w->backup_metadata);
        w->backup_metadata = NULL;
        w->backup_metadata_bytes = 0;
}

struct writer *writer_unref(struct writer *w) {
        if (!w || --w->n_ref > 0)
                return NULL;
        writer_clear_set_state(w);
        lvss_wmd_free(w->last_wmd);
        sd_bus_unref(w->bus);
        free(w->name);
        free(w->class_id);
        free(w->instance_id);
        free(w->instance_name);
        free(w->usage);
        free(w->source);
        free(w);
        return NULL;
}

/* ---- the registry ---- */

struct writer *writers_find(struct manager *m, const char *name) {
        for (struct writer *w = m->writers; w; w = w->next)
                if (strcmp(w->name, name) == 0)
                        return w;
        return NULL;
}

size_t writers_count(struct manager *m) {
        return m->n_writers;
}

static bool writer_name_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > LVSS_WRITER_NAME_MAX)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      strchr("._@+-", *p)))
                        return false;
        return true;
}

static bool uuid_valid(const char *s) {
        if (strlen(s) != LVSS_ID_LEN)
                return false;
        for (size_t i = 0; i < LVSS_ID_LEN; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char c = s[i];
                if (dash ? c != '-'
                         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return false;
        }
        return true;
}

static char *lowercase(char *s) {
        for (char *p = s; p && *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char) (*p - 'A' + 'a');
        return s;
}

static int read_identity(sd_bus_message *msg, struct writer *w, sd_bus_error *error) {
        int r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key, *s = NULL;
                uint32_t u = 0;
                char **target = NULL;
                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                bool str = true;
                if (strcmp(key, "Name") == 0)
                        target = &w->name;
                else if (strcmp(key, "ClassId") == 0)
                        target = &w->class_id;
                else if (strcmp(key, "InstanceId") == 0)
                        target = &w->instance_id;
                else if (strcmp(key, "InstanceName") == 0)
                        target = &w->instance_name;
                else if (strcmp(key, "Usage") == 0)
                        target = &w->usage;
                else if (strcmp(key, "Source") == 0)
                        target = &w->source;
                else if (strcmp(key, "Level") == 0)
                        ;
                else if (strcmp(key, "FreezeTimeoutMs") == 0)
                        str = false;
                else
                        return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                              "Unknown writer identity key '%.64s': this lvssd knows Name, "
                                              "ClassId, InstanceId, InstanceName, Level, Usage, Source "
                                              "and FreezeTimeoutMs.",
                                              key);
                r = sd_bus_message_read(msg, "v", str ? "s" : "u", str ? (void *) &s : (void *) &u);
                if (r < 0)
                        return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                              "Writer identity key %s has the wrong type: it is %s.", key,
                                              str ? "a string (s)" : "a number (u)");
                if (strcmp(key, "Level") == 0) {
                        int l = -1;
                        for (int i = 0; i < _WLEVEL_MAX; i++)
                                if (strcmp(s, level_names[i]) == 0)
                                        l = i;
                        if (l < 0)
                                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                                      "Unknown writer level '%.64s': use front-end, "
                                                      "back-end or system.",
                                                      s);
                        w->level = (wlevel) l;
                } else if (!str) {
                        if (u < LVSS_WRITER_FREEZE_MIN_MS || u > LVSS_WRITER_FREEZE_MAX_MS)
                                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                                      "A freeze timeout of %u ms is out of range: give "
                                                      "%u to %u ms.",
                                                      u, LVSS_WRITER_FREEZE_MIN_MS,
                                                      LVSS_WRITER_FREEZE_MAX_MS);
                        w->freeze_timeout_ms = u;
                } else {
                        free(*target);
                        *target = strdup(s);
                        if (!*target)
                                return -ENOMEM;
                }
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

int writers_register(struct manager *m, sd_bus_message *msg, uid_t uid, struct writer **ret,
                     sd_bus_error *error) {
        sd_bus *bus = sd_bus_message_get_bus(msg);
        int r;

        for (struct writer *o = m->writers; o; o = o->next)
                if (o->bus == bus)
                        return bus_error_setf(error, -EEXIST, LVSS_ERROR_EXISTS,
                                              "This connection has registered writer %s already: one "
                                              "connection registers one writer.",
                                              o->name);
        if (m->n_writers >= LVSS_MAX_WRITERS)
                return bus_error_setf(error, -EUSERS, LVSS_ERROR_FAILED,
                                      "lvssd has %u writers registered, the most it keeps: stop some.",
                                      LVSS_MAX_WRITERS);
        unsigned mine = 0;
        for (struct writer *o = m->writers; o; o = o->next)
                mine += o->uid == uid;
        if (uid != 0 && mine >= LVSS_MAX_WRITERS_PER_USER)
                return bus_error_setf(error, -EUSERS, LVSS_ERROR_FAILED,
                                      "uid %u has %u writers registered, the most one user may: stop some.",
                                      (unsigned) uid, mine);

        struct writer *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->n_ref = 1;
        w->manager = m;
        w->uid = uid;
        w->freeze_timeout_ms = LVSS_WRITER_FREEZE_MAX_MS;
        r = read_identity(msg, w, error);
        if (r < 0)
                goto fail;
        if (!w->name || !writer_name_valid(w->name)) {
                r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                   "A writer needs a Name of 1 to %u characters from A-Z a-z 0-9 . _ @ + -.",
                                   LVSS_WRITER_NAME_MAX);
                goto fail;
        }
        if (!w->class_id || !uuid_valid(w->class_id) || (w->instance_id && !uuid_valid(w->instance_id))) {
                r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                   "Writer %s needs a ClassId (and may give an InstanceId) in the UUID form "
                                   "8-4-4-4-12.",
                                   w->name);
                goto fail;
        }
        if (!w->instance_id) {
                w->instance_id = malloc(LVSS_ID_LEN + 1);
                if (!w->instance_id) {
                        r = -ENOMEM;
                        goto fail;
                }
                manager_new_id(w->instance_id);
        }
        lowercase(w->class_id);
        lowercase(w->instance_id);
        if ((w->usage && lvss_wmd_usage_from_string(w->usage) < 0) ||
            (w->source && lvss_wmd_source_from_string(w->source) < 0) ||
            (w->instance_name && (strlen(w->instance_name) == 0 || strlen(w->instance_name) > 1024))) {
                r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                   "Writer %s gives a bad Usage, Source or InstanceName: see "
                                   "include/lvss/wmd.h for the spellings.",
                                   w->name);
                goto fail;
        }
        if (writers_find(m, w->name)) {
                r = bus_error_setf(error, -EEXIST, LVSS_ERROR_EXISTS,
                                   "A writer called %s is registered already: give this one another name "
                                   "(--name), or stop the other.",
                                   w->name);
                goto fail;
        }
        w->bus = sd_bus_ref(bus);
        w->registered = true;
        w->next = m->writers;
        if (m->writers)
                m->writers->prev = w;
        m->writers = w;
        m->n_writers++;
        fprintf(stderr, "lvssd: writer %s registered (%s, uid %u)\n", w->name, level_names[w->level],
                (unsigned) uid);
        *ret = w;
        return 0;
fail:
        writer_unref(w);
        return r;
}

static void writer_unlink(struct writer *w) {
        struct manager *m = w->manager;
        if (!w->registered)
                return;
        if (w->prev)
                w->prev->next = w->next;
        else
                m->writers = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->next = w->prev = NULL;
        w->registered = false;
        m->n_writers--;
}

static void wcall_finish(struct wcall *c, int r, sd_bus_message *reply, const char *name,
                         const char *message);

void writers_connection_closed(struct manager *m, sd_bus *bus) {
        for (struct writer *w = m->writers, *next; w; w = next) {
                next = w->next;
                if (w->bus != bus)
                        continue;
                writer_ref(w);
                fprintf(stderr, "lvssd: writer %s disconnected\n", w->name);
                writer_unlink(w);
                while (w->calls)
                        wcall_finish(w->calls, -ECONNRESET, NULL, NULL, NULL);
                writer_unref(w); /* the registry's reference */
                writer_unref(w);
        }
}

int writers_unregister_bus(struct manager *m, sd_bus *bus, sd_bus_error *error) {
        for (struct writer *w = m->writers; w; w = w->next)
                if (w->bus == bus) {
                        writers_connection_closed(m, bus);
                        return 0;
                }
        return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                              "This connection has no writer registered.");
}

/* ---- calls ---- */

static void wcall_free(struct wcall *c) {
        struct writer *w = c->writer;
        if (c->prev)
                c->prev->next = c->next;
        else
                w->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        sd_bus_slot_unref(c->slot);
        sd_event_source_unref(c->defer);
        writer_unref(w);
        free(c);
}

/* Ends the call C once: unlinks it and runs its callback. */
static void wcall_finish(struct wcall *c, int r, sd_bus_message *reply, const char *name,
                         const char *message) {
        struct writer *w = writer_ref(c->writer);
        writer_reply_t cb = c->cb;
        void *userdata = c->userdata;
        wevent ev = c->event;
        wcall_free(c);
        cb(w, ev, r, reply, name, message, userdata);
        writer_unref(w);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct wcall *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        if (!e) {
                wcall_finish(c, 0, reply, NULL, NULL);
                return 0;
        }
        int r = -EPROTO;
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) ||
            sd_bus_error_has_name(e, SD_BUS_ERROR_TIMEOUT)) {
                bool open = sd_bus_is_open(c->writer->bus) > 0;
                uint64_t took = now_usec() - c->sent_usec;
                r = !open && took < (uint64_t) c->deadline_ms * 1000u ? -ECONNRESET : -ETIMEDOUT;
        }
        wcall_finish(c, r, NULL, e->name, e->message);
        return 0;
}

static int on_deferred(sd_event_source *s, void *userdata) {
        struct wcall *c = userdata;
        wcall_finish(c, c->defer_r, NULL, NULL, NULL);
        return 0;
}

static int append_strv_arg(sd_bus_message *m, const char *key, char *const *l) {
        if (!l)
                return 0;
        int r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", key);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, (char **) l);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int append_args(sd_bus_message *m, const struct writer_args *a) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0 || !a)
                return r < 0 ? r : sd_bus_message_close_container(m);
        if (a->context && (r = sd_bus_message_append(m, "{sv}", "Context", "s", a->context)) < 0)
                return r;
        if (a->backup_type && (r = sd_bus_message_append(m, "{sv}", "BackupType", "s", a->backup_type)) < 0)
                return r;
        if ((r = append_strv_arg(m, "Components", a->components)) < 0 ||
            (r = append_strv_arg(m, "Volumes", a->volumes)) < 0 ||
            (r = append_strv_arg(m, "ShadowPaths", a->shadow_paths)) < 0)
                return r;
        if (a->backup_metadata) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "BackupMetadata");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "a{ss}");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "{ss}");
                for (size_t i = 0; r >= 0 && a->backup_metadata[i] && a->backup_metadata[i + 1]; i += 2)
                        r = sd_bus_message_append(m, "{ss}", a->backup_metadata[i],
                                                  a->backup_metadata[i + 1]);
                for (int k = 0; r >= 0 && k < 3; k++)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

static int new_event_message(struct writer *w, wevent ev, const char *set_id, uint32_t deadline_ms,
                             const struct writer_args *args, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(w->bus, &m, NULL, WRITER_PATH, WRITER_IFACE,
                                               event_methods[ev]);
        if (r < 0)
                return r;
        if (ev != WEV_IDENTIFY) {
                r = sd_bus_message_append(m, "su", set_id ? set_id : "", deadline_ms);
                if (r >= 0)
                        r = append_args(m, args);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

int writer_call(struct writer *w, wevent ev, const char *set_id, uint32_t deadline_ms,
                const struct writer_args *args, writer_reply_t cb, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        if (ev < 0 || ev >= _WEV_MAX || !cb)
                return -EINVAL;
        if (!w->registered)
                return -ENOTCONN;
        struct wcall *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->writer = writer_ref(w);
        c->event = ev;
        c->deadline_ms = deadline_ms;
        c->sent_usec = now_usec();
        c->cb = cb;
        c->userdata = userdata;
        c->next = w->calls;
        if (w->calls)
                w->calls->prev = c;
        w->calls = c;

        int r = new_event_message(w, ev, set_id, deadline_ms, args, &m);
        if (r >= 0)
                r = sd_bus_call_async(w->bus, &c->slot, m, on_reply, c, (uint64_t) deadline_ms * 1000u);
        if (r < 0) {
                /* The connection is broken (or the message could not be made): the writer fails at
                 * this event, reported from the loop like any other outcome. */
                c->defer_r = r == -ENOMEM ? r : -ECONNRESET;
                r = sd_event_add_defer(w->manager->event, &c->defer, on_deferred, c);
                if (r < 0) {
                        wcall_free(c);
                        return r;
                }
        }
        return 0;
}

void writer_cancel(struct writer *w, void *userdata) {
        for (struct wcall *c = w->calls, *next; c; c = next) {
                next = c->next;
                if (c->userdata == userdata)
                        wcall_free(c);
        }
}

void writer_send_noreply(struct writer *w, wevent ev, const char *set_id) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        if (!w->registered || new_event_message(w, ev, set_id, 1000, NULL, &m) < 0)
                return;
        (void) sd_bus_message_set_expect_reply(m, false);
        /* Queued only: no flush, which would wait for ever on a writer that does not read. The
         * connection closes when lvssd exits, and liblvss thaws a frozen writer then anyway. */
        (void) sd_bus_send(w->bus, m, NULL);
}

/* ---- outcomes ---- */

void writer_fail(struct writer *w, wevent ev, wfailure failure, const char *fmt, ...) {
        w->state = WSTATE_FAILED;
        w->failed_at = ev;
        w->failure = failure;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->message, sizeof w->message, fmt, ap);
        va_end(ap);
        utf8_scrub(w->message);
        fprintf(stderr, "lvssd: writer %s failed at %s (%s): %s\n", w->name, wevent_to_string(ev),
                wfailure_to_string(failure), w->message);
}

/* Printable text from a peer: at most 160 bytes, control characters replaced. */
static void sanitize(const char *s, char *buf, size_t size) {
        size_t n = 0;
        for (; s && *s && n + 1 < size && n < 160; s++)
                buf[n++] = (unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s;
        buf[n] = 0;
        utf8_scrub(buf);
}

wfailure writer_describe_failure(const struct writer *w, wevent ev, int r, const char *error_name,
                                 const char *error_message, uint32_t deadline_ms, char *buf, size_t size) {
        static const struct {
                const char *name;
                wfailure failure;
                const char *what;
        } map[] = {
                { "Veto", WFAIL_NON_RETRYABLE, "vetoed" },
                { "Retryable", WFAIL_RETRYABLE, "failed" },
                { "NonRetryable", WFAIL_NON_RETRYABLE, "failed" },
                { "OutOfResources", WFAIL_OUT_OF_RESOURCES, "ran out of resources" },
                { "Timeout", WFAIL_TIMEOUT, "ran out of time" },
                { "InconsistentSnapshot", WFAIL_INCONSISTENT_SNAPSHOT, "found the shadow inconsistent" },
                { "PartialFailure", WFAIL_PARTIAL_FAILURE, "partly failed" },
        };
        char text[192];
        wfailure f = WFAIL_NON_RETRYABLE;
        sanitize(error_message, text, sizeof text);
        if (r == -ETIMEDOUT) {
                f = WFAIL_TIMEOUT;
                snprintf(buf, size, "did not answer %s within %u ms", event_methods[ev], deadline_ms);
        } else if (r == -ECONNRESET || r == -ENOTCONN) {
                f = WFAIL_RETRYABLE;
                snprintf(buf, size, "disconnected during %s", event_methods[ev]);
        } else if (r == -EBADMSG)
                snprintf(buf, size, "answered %s with garbage%s%s", event_methods[ev], *text ? ": " : "",
                         text);
        else if (r == -EPROTO && error_name &&
                 strncmp(error_name, WRITER_ERROR_PREFIX, strlen(WRITER_ERROR_PREFIX)) == 0) {
                const char *n = error_name + strlen(WRITER_ERROR_PREFIX);
                size_t i = 0;
                while (i < ELEMENTSOF(map) && strcmp(n, map[i].name) != 0)
                        i++;
                if (i < ELEMENTSOF(map)) {
                        f = map[i].failure;
                        snprintf(buf, size, "%s at %s%s%s", map[i].what, event_methods[ev],
                                 *text ? ": " : "", text);
                } else
                        snprintf(buf, size, "failed at %s with an unknown error%s%s", event_methods[ev],
                                 *text ? ": " : "", text);
        } else if (r == -EPROTO) {
                char name[96];
                sanitize(error_name, name, sizeof name);
                snprintf(buf, size, "answered %s with the error %s%s%s", event_methods[ev], name,
                         *text ? ": " : "", text);
        } else {
                f = WFAIL_RETRYABLE;
                snprintf(buf, size, "cannot be called for %s: %s", event_methods[ev],
                         strerror(r < 0 ? -r : EIO));
        }
        utf8_scrub(buf);
        return f;
}

int writer_fail_from_reply(struct writer *w, wevent ev, int r, const char *error_name,
                           const char *error_message, uint32_t deadline_ms) {
        char buf[sizeof w->message];
        wfailure f =
                writer_describe_failure(w, ev, r, error_name, error_message, deadline_ms, buf, sizeof buf);
        writer_fail(w, ev, f, "%s", buf);
        return r;
}

int writer_parse_identity(struct writer *w, sd_bus_message *reply, lvss_wmd **ret) {
        const char *xml;
        lvss_wmd *wmd = NULL, *copy = NULL;
        _cleanup_free_ char *canonical = NULL;
        if (sd_bus_message_read(reply, "s", &xml) < 0 || lvss_wmd_from_xml(xml, strlen(xml), &wmd) < 0)
                return -EBADMSG;
        if (strcmp(lvss_wmd_get_writer_name(wmd), w->name) != 0 ||
            strcmp(lvss_wmd_get_class_id(wmd), w->class_id) != 0) {
                lvss_wmd_free(wmd);
                return -EBADMSG;
        }
        /* A second document for last_wmd: from the canonical form, which parses by construction. */
        if (lvss_wmd_to_xml(wmd, &canonical, NULL) >= 0 &&
            lvss_wmd_from_xml(canonical, strlen(canonical), &copy) >= 0) {
                lvss_wmd_free(w->last_wmd);
                w->last_wmd = copy;
        }
        if (ret)
                *ret = wmd;
        else
                lvss_wmd_free(wmd);
        return 0;
}

static bool writer_has_component(struct writer *w, const char *full) {
        for (size_t i = 0; w->wmd && i < lvss_wmd_get_n_components(w->wmd); i++) {
                const lvss_wmd_component *c = lvss_wmd_get_component(w->wmd, i);
                const char *lp = lvss_wmd_component_get_logical_path(c), *n = lvss_wmd_component_get_name(c);
                size_t l = strlen(lp);
                if (strncmp(full, lp, l) == 0 && full[l] == '/' && strcmp(full + l + 1, n) == 0)
                        return true;
        }
        return false;
}

int writer_read_backup_metadata(struct writer *w, sd_bus_message *reply, size_t budget) {
        const char *component, *data;
        int r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        if (r < 0)
                return -EBADMSG;
        while ((r = sd_bus_message_read(reply, "{ss}", &component, &data)) > 0) {
                size_t len = strlen(data);
                if (!writer_has_component(w, component) || len > LVSS_BACKUP_METADATA_MAX ||
                    w->backup_metadata_bytes + len > LVSS_BACKUP_METADATA_WRITER_MAX || len > budget ||
                    strv_len(w->backup_metadata) >= 2 * LVSS_WMD_MAX_COMPONENTS)
                        return -EBADMSG;
                budget -= len;
                /* A later value for the same component replaces the earlier one. */
                bool done = false;
                for (size_t i = 0; w->backup_metadata && w->backup_metadata[i]; i += 2)
                        if (strcmp(w->backup_metadata[i], component) == 0) {
                                char *d = strdup(data);
                                if (!d)
                                        return -ENOMEM;
                                w->backup_metadata_bytes -= strlen(w->backup_metadata[i + 1]);
                                free(w->backup_metadata[i + 1]);
                                w->backup_metadata[i + 1] = d;
                                done = true;
                        }
                if (!done && (strv_push(&w->backup_metadata, component) < 0 ||
                              strv_push(&w->backup_metadata, data) < 0))
                        return -ENOMEM;
                w->backup_metadata_bytes += len;
        }
        if (r < 0)
                return -EBADMSG;
        r = sd_bus_message_exit_container(reply);
        return r < 0 ? -EBADMSG : 0;
}
