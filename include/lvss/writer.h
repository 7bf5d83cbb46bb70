/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * liblvss: the writer API. A writer is an application that takes part in lvss shadow copies as in
 * Microsoft VSS: it describes its data (a Writer Metadata Document, <lvss/wmd.h>) and, at each event
 * of the shadow copy sequence, prepares, freezes, thaws or fixes up within a deadline, and answers
 * whether it succeeded, vetoes or failed.
 *
 * The protocol underneath (docs/dbus-api.md, "Writers"): the writer connects to lvssd's socket,
 * exports an object with the interface org.lvss.Writer1 at /org/lvss/writer and registers it with
 * Manager1.RegisterWriter; lvssd then calls the object's methods, one per event, each with a
 * deadline, over the same connection. A writer that does not answer in time, or disconnects, is
 * failed at that event by lvssd.
 *
 * Nothing stays frozen because of lvss: once the Freeze callback has returned LVSS_RESULT_OK, the
 * library calls the Abort callback by itself if neither Thaw nor Abort arrives within the writer's
 * freeze timeout, or if the connection to lvssd breaks (lvssd stopped or killed). A Thaw that comes
 * after that is answered with the Timeout failure, so the shadow is not taken as consistent.
 *
 * Use (docs/example-writer.c is a whole writer that the tests build and run):
 *
 *     lvss_writer *w;
 *     lvss_writer_new("my-db", "5f1c0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f", NULL, &w);
 *     lvss_wmd_component *c;
 *     lvss_wmd_add_component(lvss_writer_metadata(w), LVSS_WMD_COMPONENT_FILE_GROUP, "Data", "main",
 *                            NULL, true, true, &c);
 *     lvss_wmd_component_add_files(c, LVSS_WMD_FILES, "/srv/db", "*", true, LVSS_WMD_BACKUP_FULL);
 *     lvss_writer_set_callback(w, LVSS_EVENT_FREEZE, on_freeze, db);
 *     lvss_writer_set_callback(w, LVSS_EVENT_THAW, on_thaw, db);
 *     lvss_writer_set_callback(w, LVSS_EVENT_ABORT, on_thaw, db);
 *     lvss_writer_connect(w, NULL);                     // $LVSS_SOCKET or /run/lvss/lvssd.sock
 *     lvss_writer_run(w);                               // or poll lvss_writer_get_fd() yourself
 *
 * Callbacks run on the thread that calls lvss_writer_run() or lvss_writer_process(), one at a
 * time; while one runs, no other event is read. A writer object is not thread-safe otherwise,
 * except lvss_writer_quit(). Every int function returns a negative errno on failure and >= 0 on
 * success; ret_* parameters are untouched on failure. Symbols are versioned (LVSS_0.1); the ABI
 * only grows. Link with `pkg-config --libs liblvss`.
 */

#include <stdbool.h>
#include <stdint.h>

#include <lvss/wmd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lvss_writer lvss_writer;

/* The events of the shadow copy sequence, in VSS order. */
typedef enum lvss_event {
        LVSS_EVENT_IDENTIFY, /* answered by the library from the metadata; no callback */
        LVSS_EVENT_PREPARE_FOR_BACKUP,
        LVSS_EVENT_PREPARE_FOR_SNAPSHOT,
        LVSS_EVENT_FREEZE, /* front-end writers first, then back-end, then system */
        LVSS_EVENT_THAW, /* in reverse order */
        LVSS_EVENT_POST_SNAPSHOT,
        LVSS_EVENT_ABORT, /* after a failure past Identify, to every writer that was prepared */
        LVSS_EVENT_BACKUP_COMPLETE,
        LVSS_EVENT_BACKUP_SHUTDOWN,
        LVSS_EVENT_PRE_RESTORE,
        LVSS_EVENT_POST_RESTORE,
        _LVSS_EVENT_MAX
} lvss_event;

/* What a callback answers. Anything but LVSS_RESULT_OK fails the writer at that event (lvssd
 * shows the state "failed-at-EVENT" and the failure); whether the set fails depends on the
 * writer's part in it (docs/dbus-api.md). */
typedef enum lvss_result {
        LVSS_RESULT_OK = 0,
        LVSS_RESULT_VETO, /* refuses the set (e.g. the database cannot be quiesced now) */
        LVSS_RESULT_RETRYABLE, /* failed; a later set may succeed */
        LVSS_RESULT_NON_RETRYABLE,
        LVSS_RESULT_OUT_OF_RESOURCES,
        LVSS_RESULT_TIMEOUT, /* the writer ran out of time on its own side */
        LVSS_RESULT_INCONSISTENT_SNAPSHOT, /* at PostSnapshot: the shadow cannot be used */
        LVSS_RESULT_PARTIAL_FAILURE,
        _LVSS_RESULT_MAX
} lvss_result;

/* Where the writer stands in the freeze order (VSS: front-end, back-end, system). */
typedef enum lvss_writer_level {
        LVSS_LEVEL_FRONT_END = 0, /* applications: frozen first, thawed last */
        LVSS_LEVEL_BACK_END, /* databases and other stores applications depend on */
        LVSS_LEVEL_SYSTEM,
        _LVSS_LEVEL_MAX
} lvss_writer_level;

#define LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS 60000u /* the default and the most a writer may ask */

/* What lvssd says with an event. Pointers live until the callback returns; lists are
 * NULL-terminated and never NULL (empty when lvssd said nothing). */
struct lvss_event_info {
        lvss_event event;
        const char *set_id; /* the shadow copy set, 8-4-4-4-12 */
        const char *context; /* "backup", "app-rollback", ... ("" if not said) */
        const char *backup_type; /* "full", "incremental", "differential", "log", "copy" or "" */
        const char *const *components; /* selected components of this writer, "logical-path/name" */
        const char *const *volumes; /* at PrepareForSnapshot: the set's volumes */
        const char *const *shadow_paths; /* at PostSnapshot: "VOLUME=PATH" of each shadow */
        uint32_t deadline_ms; /* the time the writer has to answer; 0 in an Abort the library makes by
                               * itself (freeze timeout passed, lvssd gone, W freed while frozen) */
};

typedef lvss_result (*lvss_writer_callback)(lvss_writer *w, const struct lvss_event_info *info,
                                            void *userdata);

/* Creates a writer called NAME (at most 255 bytes of [A-Za-z0-9._@+-]; unique among the writers
 * registered with one lvssd) of class CLASS_ID (a UUID the application keeps for ever);
 * INSTANCE_NAME (may be NULL) tells instances of one class apart. Its instance id is new for each
 * run. Usage "user-data", source "other" until lvss_writer_set_types(). -EINVAL for a bad name or
 * id. */
int lvss_writer_new(const char *name, const char *class_id, const char *instance_name, lvss_writer **ret);

/* Frees W (disconnecting it, which counts as a failure at any event in flight); accepts NULL. If W
 * is frozen (its Freeze answered OK, no Thaw or Abort yet), the Abort callback runs first. */
void lvss_writer_free(lvss_writer *w);

/* Sets the writer's level (default front-end), its Freeze→Thaw window (default and at most
 * LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS, at least 100 ms) and the usage and source types of its
 * metadata. Before lvss_writer_connect() only: -EBUSY after. */
int lvss_writer_set_level(lvss_writer *w, lvss_writer_level level);
int lvss_writer_set_freeze_timeout(lvss_writer *w, uint32_t ms);
int lvss_writer_set_types(lvss_writer *w, lvss_wmd_usage usage, lvss_wmd_source source);

/* The writer's metadata document, owned by W: add components, files, restore method and schema
 * (<lvss/wmd.h>). Identify answers with it as it is at that moment. */
lvss_wmd *lvss_writer_metadata(lvss_writer *w);

/* The instance id, new for each writer object (8-4-4-4-12). */
const char *lvss_writer_instance_id(lvss_writer *w);

/* Sets the callback of EVENT (NULL: answer LVSS_RESULT_OK at once); -EINVAL for
 * LVSS_EVENT_IDENTIFY or an unknown event. */
int lvss_writer_set_callback(lvss_writer *w, lvss_event event, lvss_writer_callback cb, void *userdata);

/* Inside a callback, from PrepareForBackup to BackupComplete: private data (at most 64 KiB of
 * UTF-8) for one of the writer's components ("logical-path/name"), sent to lvssd with the answer
 * to the event, kept in the backup and given back at restore. -EINVAL outside a callback (or for
 * data that is not UTF-8), -ENOENT if COMPONENT is none of the writer's, -E2BIG past 64 KiB (or
 * past 16 MiB for all components of one answer). Setting a component again replaces its data. */
int lvss_writer_set_backup_metadata(lvss_writer *w, const char *component, const char *data);
/* Inside the PreRestore and PostRestore callbacks: the data set at backup for COMPONENT (owned by
 * W, valid until the callback returns); -ENOENT if none. */
int lvss_writer_get_backup_metadata(lvss_writer *w, const char *component, const char **ret);

/* Connects to lvssd at SOCKET_PATH (NULL: $LVSS_SOCKET, else /run/lvss/lvssd.sock) and registers.
 * -ECONNREFUSED or -ENOENT if lvssd is not running, -EACCES if the caller may not register (root
 * and group lvss-writers may; connecting needs group lvss too), -EEXIST if a writer of this name is registered already, -EISCONN if W
 * is connected already. After a failure W is unchanged and may connect again. */
int lvss_writer_connect(lvss_writer *w, const char *socket_path);

/* Runs the writer until lvss_writer_quit() (then 0) or until lvssd goes away (then -ECONNRESET).
 * Both loop functions return -ENOTCONN before lvss_writer_connect(), -EBUSY inside a callback. */
int lvss_writer_run(lvss_writer *w);
/* Makes lvss_writer_run() return; safe from a signal handler and from another thread. */
void lvss_writer_quit(lvss_writer *w);

/* For callers with a loop of their own: poll FD for POLLIN (it also wakes at the writer's own
 * timeouts), then call lvss_writer_process(), which handles what is pending without blocking and
 * returns -ECONNRESET once lvssd has gone away. */
int lvss_writer_get_fd(lvss_writer *w);
int lvss_writer_process(lvss_writer *w);

/* The spelling of an event ("freeze", "post-snapshot", ...) and of a result ("ok", "veto",
 * "retryable", ...); NULL when out of range. */
const char *lvss_event_to_string(lvss_event e);
const char *lvss_result_to_string(lvss_result r);

#ifdef __cplusplus
}
#endif
