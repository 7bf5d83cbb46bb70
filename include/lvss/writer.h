/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * liblvss: the writer API (DRAFT, not built yet: issue 4). A writer is an application that takes
 * part in lvss shadow copies as in Microsoft VSS: it describes its data (a Writer Metadata
 * Document, lib/wmd.h) and, at each event of the shadow copy sequence (DESIGN.md), prepares,
 * freezes, thaws or fixes up, within a deadline, and says whether it succeeded, vetoes or failed.
 *
 * The protocol underneath (docs/dbus-api.md, "Writers"): the writer connects to lvssd's socket,
 * exports an object with the interface org.lvss.Writer1 and registers it with
 * Manager1.RegisterWriter; lvssd then calls the object's methods, one per event, each with a
 * deadline, over the same connection. A writer that does not answer in time, or disconnects, is
 * failed at that event; nothing stays frozen because of it.
 *
 * Use:
 *
 *     lvss_writer *w;
 *     lvss_writer_new("my-db", "5f1c...-...", &w);
 *     lvss_wmd *md = lvss_writer_metadata(w);          // add components and files (wmd.h)
 *     lvss_writer_set_callback(w, LVSS_EVENT_FREEZE, on_freeze, db);
 *     lvss_writer_set_callback(w, LVSS_EVENT_THAW, on_thaw, db);
 *     lvss_writer_set_callback(w, LVSS_EVENT_ABORT, on_thaw, db);
 *     lvss_writer_connect(w, NULL);                     // $LVSS_SOCKET or /run/lvss/lvssd.sock
 *     lvss_writer_run(w);                               // or poll lvss_writer_get_fd() yourself
 *
 * Callbacks run on the thread that calls lvss_writer_run() or lvss_writer_process(), one at a
 * time. A writer object is not thread-safe otherwise. Every function returns a negative errno on
 * failure and >= 0 on success; ret_* parameters are untouched on failure. Symbols are versioned
 * (LVSS_0.1); the ABI only grows.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct lvss_writer lvss_writer;
typedef struct lvss_wmd lvss_wmd;

/* The events of the shadow copy sequence, in VSS order. */
typedef enum lvss_event {
        LVSS_EVENT_IDENTIFY, /* answered by the library from the metadata; no callback needed */
        LVSS_EVENT_PREPARE_FOR_BACKUP,
        LVSS_EVENT_PREPARE_FOR_SNAPSHOT,
        LVSS_EVENT_FREEZE, /* front-end writers first, then back-end, then system */
        LVSS_EVENT_THAW, /* in reverse order */
        LVSS_EVENT_POST_SNAPSHOT,
        LVSS_EVENT_ABORT, /* after any failure past PrepareForSnapshot, to every prepared writer */
        LVSS_EVENT_BACKUP_COMPLETE,
        LVSS_EVENT_BACKUP_SHUTDOWN,
        LVSS_EVENT_PRE_RESTORE,
        LVSS_EVENT_POST_RESTORE,
        _LVSS_EVENT_MAX
} lvss_event;

/* What a callback answers. Anything but LVSS_RESULT_OK fails the writer at that event; past
 * PrepareForSnapshot it aborts the set if the writer's components are selected. */
typedef enum lvss_result {
        LVSS_RESULT_OK = 0,
        LVSS_RESULT_VETO, /* refuses the set now (e.g. the database cannot be quiesced) */
        LVSS_RESULT_RETRYABLE, /* failed; a later set may succeed */
        LVSS_RESULT_NON_RETRYABLE,
        LVSS_RESULT_OUT_OF_RESOURCES,
        LVSS_RESULT_INCONSISTENT_SNAPSHOT, /* at PostSnapshot: the shadow cannot be used */
        LVSS_RESULT_PARTIAL_FAILURE
} lvss_result;

/* Where the writer stands in the sequence order (VSS: front-end, back-end, system). */
typedef enum lvss_writer_level {
        LVSS_LEVEL_FRONT_END = 0, /* applications: frozen first, thawed last */
        LVSS_LEVEL_BACK_END, /* databases and other stores they depend on */
        LVSS_LEVEL_SYSTEM
} lvss_writer_level;

/* What lvssd says with an event. Strings live until the callback returns. */
struct lvss_event_info {
        lvss_event event;
        const char *set_id; /* the shadow copy set, 8-4-4-4-12 */
        const char *context; /* "backup", "app-rollback", ... */
        const char *backup_type; /* "full", "incremental", "differential", "log", "copy" */
        const char *const *components; /* selected "logical-path/name", NULL-terminated */
        const char *const *shadow_paths; /* at PostSnapshot: "VOLUME=PATH" of each shadow */
        uint32_t deadline_ms; /* the time the writer has to answer */
};

typedef lvss_result (*lvss_writer_callback)(lvss_writer *w, const struct lvss_event_info *info,
                                            void *userdata);

/* Creates a writer called NAME (unique per class on a host) of class CLASS_ID (a UUID the
 * application keeps for ever); its instance id is new for each run. -EINVAL for a bad name or id. */
int lvss_writer_new(const char *name, const char *class_id, lvss_writer **ret);

/* Frees W (disconnecting it if connected); accepts NULL. */
void lvss_writer_free(lvss_writer *w);

/* Sets the writer's level (default front-end) and the Freeze→Thaw window it asks for (default and
 * at most 60000 ms). Before lvss_writer_connect() only: -EBUSY after. */
int lvss_writer_set_level(lvss_writer *w, lvss_writer_level level);
int lvss_writer_set_freeze_timeout(lvss_writer *w, uint32_t ms);

/* The writer's metadata document, owned by W, to fill before connecting (lib/wmd.h). */
lvss_wmd *lvss_writer_metadata(lvss_writer *w);

/* Sets the callback of EVENT (NULL: answer LVSS_RESULT_OK at once). */
int lvss_writer_set_callback(lvss_writer *w, lvss_event event, lvss_writer_callback cb, void *userdata);

/* During a backup (from PrepareForBackup to BackupComplete): private data for one component,
 * kept in the backup's Backup Components Document and given back at restore. */
int lvss_writer_set_backup_metadata(lvss_writer *w, const char *component, const char *data);
/* At PreRestore and PostRestore: the data set at backup for COMPONENT; -ENOENT if none. */
int lvss_writer_get_backup_metadata(lvss_writer *w, const char *component, const char **ret);

/* Connects to lvssd at SOCKET_PATH (NULL: $LVSS_SOCKET, else /run/lvss/lvssd.sock) and registers.
 * -ECONNREFUSED or -ENOENT if lvssd is not running, -EACCES if the caller may not register. */
int lvss_writer_connect(lvss_writer *w, const char *socket_path);

/* Runs the writer until lvss_writer_quit() or until lvssd goes away (then -ECONNRESET). */
int lvss_writer_run(lvss_writer *w);
void lvss_writer_quit(lvss_writer *w);

/* For callers with a loop of their own: poll FD for EVENTS (poll(2) flags) until the timeout (in
 * CLOCK_MONOTONIC microseconds, UINT64_MAX for none), then call lvss_writer_process(). */
int lvss_writer_get_fd(lvss_writer *w);
int lvss_writer_get_events(lvss_writer *w);
int lvss_writer_get_timeout(lvss_writer *w, uint64_t *ret_usec);
int lvss_writer_process(lvss_writer *w);
