/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Manager1's writer methods (writers-dbus.h). Main thread only.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "service/bus-util.h"
#include "service/manager-dbus.h"
#include "service/writers-dbus.h"
#include "service/writers.h"

static uint32_t writer_timeout(struct manager *m) {
        return m->writer_timeout_ms ? m->writer_timeout_ms : LVSS_WRITER_TIMEOUT_MS;
}

static void on_registered_identify(struct writer *w, wevent ev, int r, sd_bus_message *reply,
                                   const char *error_name, const char *error_message, void *userdata) {
        if (r == 0 && writer_parse_identity(w, reply, NULL) < 0)
                fprintf(stderr, "lvssd: writer %s answered Identify with garbage\n", w->name);
}

int method_register_writer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct writer *w;
        if (!manager_is_peer(m, msg))
                return bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Writers register over lvssd's socket (RUNTIME/lvssd.sock), not the "
                                      "system bus.");
        if (m->stopping)
                return bus_error_setf(error, -ESHUTDOWN, LVSS_ERROR_FAILED, "lvssd is stopping.");
        int r = writers_register(m, msg, manager_caller_uid(m, msg), &w, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(msg, "s", w->instance_id);
        if (r < 0)
                return r;
        /* Its metadata at once, so that a set knows the writer's components even if the writer
         * then fails to answer the set's own Identify. */
        (void) writer_call(w, WEV_IDENTIFY, NULL,
                           m->writer_timeout_ms ? m->writer_timeout_ms : LVSS_WRITER_TIMEOUT_MS, NULL,
                           on_registered_identify, NULL);
        return 1;
}

int method_unregister_writer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        int r = writers_unregister_bus(userdata, sd_bus_message_get_bus(msg), error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

int method_list_writers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char buf[64];
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssssss)");
        for (struct writer *w = m->writers; r >= 0 && w; w = w->next)
                r = sd_bus_message_append(
                        reply, "(ssssssss)", w->name, w->class_id, w->instance_id,
                        w->instance_name ? w->instance_name : "", wlevel_to_string(w->level),
                        writer_state_string(w, buf, sizeof buf), wfailure_to_string(w->failure), w->message);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* GetWriterMetadata: asks the writer (Identify) and answers the caller when it has. The writer's
 * state is not touched: a set may be in progress, and this call is only a reader's. */
static void on_metadata(struct writer *w, wevent ev, int r, sd_bus_message *reply, const char *error_name,
                        const char *error_message, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = userdata;
        lvss_wmd *wmd = NULL;
        _cleanup_free_ char *canonical = NULL;
        struct manager *m = w->manager;
        uint32_t deadline = m->writer_timeout_ms ? m->writer_timeout_ms : LVSS_WRITER_TIMEOUT_MS;

        w->n_metadata_calls--;
        if (r == 0 &&
            (writer_parse_identity(w, reply, &wmd) < 0 || lvss_wmd_to_xml(wmd, &canonical, NULL) < 0))
                r = -EBADMSG;
        lvss_wmd_free(wmd);
        if (r < 0) {
                char why[256];
                (void) writer_describe_failure(w, ev, r, error_name, error_message, deadline, why,
                                               sizeof why);
                (void) sd_bus_reply_method_errorf(msg,
                                                  r == -ETIMEDOUT ? LVSS_ERROR_TIMEOUT : LVSS_ERROR_FAILED,
                                                  "Writer %s %s.", w->name, why);
                return;
        }
        (void) sd_bus_reply_method_return(msg, "s", canonical);
}

int method_get_writer_metadata(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *name;
        int r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        struct writer *w = writers_find(m, name);
        if (!w)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no writer %s: see `lvss list writers`.", name);
        if (w->n_metadata_calls >= LVSS_WRITER_METADATA_CALLS_MAX)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Writer %s is being asked for its metadata %u times already: retry "
                                      "when it has answered.",
                                      w->name, w->n_metadata_calls);
        r = writer_call(w, WEV_IDENTIFY, NULL,
                        m->writer_timeout_ms ? m->writer_timeout_ms : LVSS_WRITER_TIMEOUT_MS, NULL,
                        on_metadata, sd_bus_message_ref(msg));
        if (r < 0) {
                sd_bus_message_unref(msg);
                return r;
        }
        w->n_metadata_calls++;
        return 1;
}

/* ---- events outside a set: a batch of calls, answered when all are done ---- */

struct wbatch {
        struct manager *manager;
        sd_bus_message *msg; /* the call to answer */
        char id[LVSS_ID_LEN + 1]; /* the set, or a new id for a restore */
        wevent events[2];
        size_t n_events, cur;
        struct writer **writers; /* references */
        size_t n_writers;
        char **components, **metadata; /* for restores */
        unsigned outstanding;
        /* per writer: the outcome */
        wfailure *failure;
        wevent *failed_at;
        char (*message)[256];
        char ***answered; /* backup metadata answered: component, data, ... */
};

static void wbatch_free(struct wbatch *b) {
        for (size_t i = 0; i < b->n_writers; i++) {
                writer_unref(b->writers[i]);
                strv_free(b->answered[i]);
        }
        free(b->writers);
        free(b->failure);
        free(b->failed_at);
        free(b->message);
        free(b->answered);
        strv_free(b->components);
        strv_free(b->metadata);
        sd_bus_message_unref(b->msg);
        free(b);
}

static int wbatch_reply(struct wbatch *b) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char at[64];
        int r = sd_bus_message_new_method_return(b->msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssa{ss})");
        for (size_t i = 0; r >= 0 && i < b->n_writers; i++) {
                struct writer *w = b->writers[i];
                const char *state = "stable";
                if (b->failure[i] != WFAIL_NONE) {
                        struct writer tmp = { .state = WSTATE_FAILED, .failed_at = b->failed_at[i] };
                        state = writer_state_string(&tmp, at, sizeof at);
                }
                r = sd_bus_message_open_container(reply, 'r', "ssssa{ss}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "ssss", w->name, state,
                                                  wfailure_to_string(b->failure[i]), b->message[i]);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "{ss}");
                for (size_t k = 0; r >= 0 && b->answered[i] && b->answered[i][k]; k += 2)
                        r = sd_bus_message_append(reply, "{ss}", b->answered[i][k], b->answered[i][k + 1]);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                (void) sd_bus_reply_method_errorf(b->msg, LVSS_ERROR_FAILED, "Cannot answer: %s.",
                                                  strerror(-r));
        return r;
}

static void wbatch_step(struct wbatch *b);

static size_t wbatch_index(struct wbatch *b, struct writer *w) {
        size_t i = 0;
        while (i < b->n_writers && b->writers[i] != w)
                i++;
        return i;
}

static void on_wbatch_reply(struct writer *w, wevent ev, int r, sd_bus_message *reply,
                            const char *error_name, const char *error_message, void *userdata) {
        struct wbatch *b = userdata;
        size_t i = wbatch_index(b, w);
        const char *component, *data;

        if (r == 0 && i < b->n_writers) {
                /* What it answers is only reported back: components are the writer's own business
                 * here, but the sizes are checked as in a set. */
                size_t total = 0;
                r = sd_bus_message_enter_container(reply, 'a', "{ss}");
                while (r >= 0) {
                        r = sd_bus_message_read(reply, "{ss}", &component, &data);
                        if (r <= 0)
                                break;
                        total += strlen(data);
                        if (strlen(data) > LVSS_BACKUP_METADATA_MAX ||
                            total > LVSS_BACKUP_METADATA_WRITER_MAX ||
                            strv_push(&b->answered[i], component) < 0 ||
                            strv_push(&b->answered[i], data) < 0) {
                                r = -EBADMSG;
                                break;
                        }
                }
                r = r < 0 ? -EBADMSG : 0;
        }
        if (r < 0 && i < b->n_writers) {
                b->failure[i] = writer_describe_failure(w, ev, r, error_name, error_message,
                                                        writer_timeout(b->manager), b->message[i],
                                                        sizeof b->message[i]);
                b->failed_at[i] = ev;
                /* The writer's own state too, unless a set is using it. */
                if (!b->manager->job)
                        writer_fail(w, ev, b->failure[i], "%s", b->message[i]);
        } else if (r == 0 && i < b->n_writers && b->failure[i] == WFAIL_NONE && !b->manager->job &&
                   w->state == WSTATE_FAILED)
                w->state = WSTATE_STABLE;
        if (--b->outstanding == 0) {
                b->cur++;
                wbatch_step(b);
        }
}

static void wbatch_step(struct wbatch *b) {
        while (b->cur < b->n_events) {
                wevent ev = b->events[b->cur];
                for (size_t i = 0; i < b->n_writers; i++) {
                        struct writer *w = b->writers[i];
                        /* BackupShutdown goes to every writer; another event not to one that
                         * failed the one before. */
                        if (ev != WEV_BACKUP_SHUTDOWN && b->failure[i] != WFAIL_NONE)
                                continue;
                        struct writer_args a = {
                                .components = b->components ? b->components : (char *[]){ NULL },
                                .backup_metadata = b->metadata,
                        };
                        int r = w->registered ? writer_call(w, ev, b->id, writer_timeout(b->manager), &a,
                                                            on_wbatch_reply, b)
                                              : -ENOTCONN;
                        if (r < 0) {
                                if (b->failure[i] == WFAIL_NONE) {
                                        b->failure[i] =
                                                writer_describe_failure(w, ev, r, NULL, NULL, 0,
                                                                        b->message[i], sizeof b->message[i]);
                                        b->failed_at[i] = ev;
                                }
                                continue;
                        }
                        b->outstanding++;
                }
                if (b->outstanding > 0)
                        return;
                b->cur++;
        }
        (void) wbatch_reply(b);
        wbatch_free(b);
}

static int wbatch_new(struct manager *m, sd_bus_message *msg, size_t n_writers, struct wbatch **ret) {
        struct wbatch *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->manager = m;
        b->writers = calloc(n_writers + 1, sizeof *b->writers);
        b->failure = calloc(n_writers + 1, sizeof *b->failure);
        b->failed_at = calloc(n_writers + 1, sizeof *b->failed_at);
        b->message = calloc(n_writers + 1, sizeof *b->message);
        b->answered = calloc(n_writers + 1, sizeof *b->answered);
        if (!b->writers || !b->failure || !b->failed_at || !b->message || !b->answered) {
                wbatch_free(b);
                return -ENOMEM;
        }
        b->msg = sd_bus_message_ref(msg);
        *ret = b;
        return 0;
}

int method_complete_backup(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *set;
        int succeeded;
        struct wbatch *b;
        int r = sd_bus_message_read(msg, "sb", &set, &succeeded);
        if (r < 0)
                return r;
        struct sset *ss = manager_find_set(m, set);
        if (!ss)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no shadow copy set %s: see `lvss list sets`.", set);
        r = wbatch_new(m, msg, strv_len(ss->writers), &b);
        if (r < 0)
                return r;
        snprintf(b->id, sizeof b->id, "%s", ss->id);
        if (succeeded)
                b->events[b->n_events++] = WEV_BACKUP_COMPLETE;
        b->events[b->n_events++] = WEV_BACKUP_SHUTDOWN;
        for (size_t i = 0; ss->writers && ss->writers[i]; i++) {
                struct writer *w = writers_find(m, ss->writers[i]);
                if (w)
                        b->writers[b->n_writers++] = writer_ref(w);
        }
        wbatch_step(b);
        return 1;
}

static int restore_event(sd_bus_message *msg, struct manager *m, wevent ev, sd_bus_error *error) {
        const char *name;
        struct wbatch *b;
        char **components = NULL, **metadata = NULL;
        int r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        /* Bounded as they are read: a huge list must not hold the main loop. */
        r = bus_read_strv_max(msg, false, LVSS_WMD_MAX_COMPONENTS + 1, &components);
        if (r >= 0)
                r = bus_read_strv_max(msg, true, 2 * (LVSS_WMD_MAX_COMPONENTS + 1), &metadata);
        if (r == -E2BIG)
                r = bus_error_setf(error, -E2BIG, LVSS_ERROR_INVALID_ARGUMENT,
                                   "Too many components or metadata entries: at most %u.", LVSS_WMD_MAX_COMPONENTS);
        struct writer *w = r >= 0 ? writers_find(m, name) : NULL;
        if (r >= 0 && !w)
                r = bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                   "There is no writer %s: start it, then retry the restore.", name);
        if (r >= 0 && strv_len(components) > LVSS_WMD_MAX_COMPONENTS)
                r = bus_error_setf(error, -E2BIG, LVSS_ERROR_INVALID_ARGUMENT,
                                   "Too many components: at most %u.", LVSS_WMD_MAX_COMPONENTS);
        if (r >= 0)
                r = wbatch_new(m, msg, 1, &b);
        if (r < 0) {
                strv_free(components);
                strv_free(metadata);
                return r;
        }
        manager_new_id(b->id);
        b->events[b->n_events++] = ev;
        b->components = components;
        b->metadata = metadata;
        b->writers[b->n_writers++] = writer_ref(w);
        wbatch_step(b);
        return 1;
}

int method_pre_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return restore_event(msg, userdata, WEV_PRE_RESTORE, error);
}

int method_post_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return restore_event(msg, userdata, WEV_POST_RESTORE, error);
}
