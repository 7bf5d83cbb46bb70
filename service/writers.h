/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Writers in lvssd (docs/dbus-api.md, "Writers"): the registry of the writers connected to lvssd's
 * socket, their VSS states, and the delivery of events to them.
 *
 * A writer is registered by Manager1.RegisterWriter on its own peer connection and lives as long
 * as that connection (writers_connection_closed()). Events are D-Bus method calls lvssd makes on
 * the writer's object; each has a deadline, and its outcome reaches the caller's callback exactly
 * once, on the main thread: the answer, an error the writer sent, the deadline passed, or the
 * connection gone. A writer can therefore hold nothing up for longer than its deadline, whatever
 * it sends or does not send.
 *
 * Writers are reference counted: the registry holds one reference, every call in flight and every
 * set in progress one more, so a writer that disconnects mid-set stays readable until the set ends.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "include/lvss/wmd.h"

struct manager;

#define LVSS_MAX_WRITERS 256u
#define LVSS_MAX_WRITERS_PER_USER 64u
#define LVSS_WRITER_FREEZE_MAX_MS 60000u
#define LVSS_WRITER_FREEZE_MIN_MS 100u
#define LVSS_WRITER_TIMEOUT_MS 30000u /* Identify, PrepareForBackup, Thaw, Abort */
#define LVSS_WRITER_LONG_TIMEOUT_MS 120000u /* PrepareForSnapshot, PostSnapshot */
#define LVSS_WRITER_NAME_MAX 255u
#define LVSS_BACKUP_METADATA_MAX (64u * 1024u) /* bytes per component */
#define LVSS_BACKUP_METADATA_WRITER_MAX (1024u * 1024u) /* bytes per writer and set */
#define LVSS_BACKUP_METADATA_SET_MAX (32u * 1024u * 1024u) /* bytes per set, all writers */
#define LVSS_WRITER_METADATA_CALLS_MAX 4u /* GetWriterMetadata calls in flight per writer */

/* The events, in VSS order (the same numbers as lvss_event in include/lvss/writer.h). */
typedef enum wevent {
        WEV_IDENTIFY,
        WEV_PREPARE_FOR_BACKUP,
        WEV_PREPARE_FOR_SNAPSHOT,
        WEV_FREEZE,
        WEV_THAW,
        WEV_POST_SNAPSHOT,
        WEV_ABORT,
        WEV_BACKUP_COMPLETE,
        WEV_BACKUP_SHUTDOWN,
        WEV_PRE_RESTORE,
        WEV_POST_RESTORE,
        _WEV_MAX
} wevent;

typedef enum wlevel { WLEVEL_FRONT_END, WLEVEL_BACK_END, WLEVEL_SYSTEM, _WLEVEL_MAX } wlevel;

/* VSS's writer states; a failed writer also records the event it failed at. */
typedef enum wstate {
        WSTATE_STABLE,
        WSTATE_WAITING_FOR_FREEZE,
        WSTATE_WAITING_FOR_THAW,
        WSTATE_WAITING_FOR_POST_SNAPSHOT,
        WSTATE_WAITING_FOR_BACKUP_COMPLETE,
        WSTATE_FAILED,
} wstate;

typedef enum wfailure {
        WFAIL_NONE,
        WFAIL_RETRYABLE,
        WFAIL_NON_RETRYABLE,
        WFAIL_TIMEOUT,
        WFAIL_OUT_OF_RESOURCES,
        WFAIL_INCONSISTENT_SNAPSHOT,
        WFAIL_PARTIAL_FAILURE,
        _WFAIL_MAX
} wfailure;

struct writer {
        unsigned n_ref;
        struct manager *manager;
        sd_bus *bus; /* the writer's peer connection (a reference) */
        uid_t uid;
        bool registered; /* in the manager's list; false once its connection closed */
        char *name, *class_id, *instance_id, *instance_name, *usage, *source;
        wlevel level;
        uint32_t freeze_timeout_ms;

        wstate state;
        wevent failed_at;
        wfailure failure;
        char message[256];

        struct wcall *calls; /* in flight */
        unsigned n_metadata_calls; /* GetWriterMetadata's Identify calls in flight */
        lvss_wmd *last_wmd; /* from the last Identify that parsed, whenever it was */
        uint64_t set_generation; /* the set (manager's count) its per-set state below is for */

        /* For the set in progress (sset.c), reset when one starts. */
        lvss_wmd *wmd; /* from its last Identify */
        char **components; /* its selected components, "logical-path/name" */
        char **backup_metadata; /* component, data, component, data, ... */
        size_t backup_metadata_bytes;
        bool counts; /* its failure fails the set */
        bool prepared; /* told PrepareForBackup: gets Abort if the set fails */
        bool frozen; /* answered Freeze */
        uint64_t freeze_sent_usec; /* CLOCK_MONOTONIC */

        struct writer *next, *prev;
};

/* What a call's callback gets: R is 0 and REPLY the answer, or R < 0 (-ETIMEDOUT: the deadline
 * passed; -ECONNRESET: the writer went away; -EBADMSG: it answered garbage; -EPROTO: it answered
 * with an error, ERROR_NAME/ERROR_MESSAGE say which). */
typedef void (*writer_reply_t)(struct writer *w, wevent ev, int r, sd_bus_message *reply,
                               const char *error_name, const char *error_message, void *userdata);

struct writer_args {
        const char *context, *backup_type;
        char *const *components, *const *volumes, *const *shadow_paths;
        char *const *backup_metadata; /* component, data, ... */
};

struct writer *writer_ref(struct writer *w);
struct writer *writer_unref(struct writer *w);

const char *wevent_to_string(wevent e); /* "prepare-for-backup", ... */
const char *wevent_to_method(wevent e); /* "PrepareForBackup", ... */
const char *wlevel_to_string(wlevel l);
const char *wfailure_to_string(wfailure f); /* "" for none */
/* "stable", "waiting-for-thaw", "failed-at-freeze", ... in BUF. */
const char *writer_state_string(const struct writer *w, char *buf, size_t size);

/* Registers the writer of the connection BUS from Manager1.RegisterWriter's identity (MSG is at
 * the a{sv}); answers nothing, fills ERROR on a refusal. */
int writers_register(struct manager *m, sd_bus_message *msg, uid_t uid, struct writer **ret,
                     sd_bus_error *error);
int writers_unregister_bus(struct manager *m, sd_bus *bus, sd_bus_error *error);
/* The connection BUS is closing: its writer (if any) is unregistered, and its calls in flight end
 * with -ECONNRESET. */
void writers_connection_closed(struct manager *m, sd_bus *bus);
struct writer *writers_find(struct manager *m, const char *name);
size_t writers_count(struct manager *m);

/* Sends event EV to W with a deadline; CB runs once, later, on the main thread (never from within
 * this call). -ENOTCONN if W's connection has closed. */
int writer_call(struct writer *w, wevent ev, const char *set_id, uint32_t deadline_ms,
                const struct writer_args *args, writer_reply_t cb, void *userdata);
/* Ends W's calls in flight made with USERDATA without running their callbacks. */
void writer_cancel(struct writer *w, void *userdata);
/* Sends EV to W expecting no answer (lvssd stopping: Abort). */
void writer_send_noreply(struct writer *w, wevent ev, const char *set_id);

/* What the outcome of a call (as given to a writer_reply_t) means: the failure and a sentence (in
 * BUF, printable UTF-8), without changing W. */
wfailure writer_describe_failure(const struct writer *w, wevent ev, int r, const char *error_name,
                                 const char *error_message, uint32_t deadline_ms, char *buf, size_t size);
/* Parses an Identify answer into a document and keeps a copy as W->last_wmd; -EBADMSG if it is not
 * a valid document of this writer (name and class id). */
int writer_parse_identity(struct writer *w, sd_bus_message *reply, lvss_wmd **ret);
/* Marks W failed at EV with FAILURE and a message. */
void writer_fail(struct writer *w, wevent ev, wfailure failure, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Sets W's failure from the outcome of a call (as given to a writer_reply_t); returns R. */
int writer_fail_from_reply(struct writer *w, wevent ev, int r, const char *error_name,
                           const char *error_message, uint32_t deadline_ms);
/* Reads the a{ss} backup metadata answered by an event into W->backup_metadata; -EBADMSG if it is
 * not one, or names a component W does not have, or passes LVSS_BACKUP_METADATA_MAX per component,
 * LVSS_BACKUP_METADATA_WRITER_MAX for W, or BUDGET bytes. */
int writer_read_backup_metadata(struct writer *w, sd_bus_message *reply, size_t budget);
