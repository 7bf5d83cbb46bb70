/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * lvssd's model: the volumes it serves, the shadow copies and the sets they belong to, the
 * catalog that keeps the persistent ones across restarts, and the FUSE export that makes them
 * files. Everything here runs on the main (sd-event) thread, except the freeze sequence of a set
 * being created (sset.c), which gets a copy of what it needs and touches none of these lists.
 *
 * Functions return a negative errno and, where a person will read why, fill an sd_bus_error
 * with an org.lvss.Error name and a sentence naming the problem and the fix (bus-util.h).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "export/fuse-export.h"
#include "host/mounts.h" /* strv_free() */
#include "providers/provider.h"

#define LVSS_ID_LEN 36 /* 8-4-4-4-12 */
#define LVSS_MAX_SET_VOLUMES 64u
#define LVSS_MAX_VOLUMES 1024u /* volumes one lvssd serves */
#define LVSS_HOLD_WINDOW_MS 10000u
#define LVSS_MAX_CONNECTIONS 256u /* peer connections at once, uid 0 aside */
#define LVSS_ROOT_RESERVE_CONNECTIONS 16u /* more that only uid 0 may open */
#define LVSS_MAX_CONNECTIONS_PER_USER 32u /* for any uid but 0 */

typedef enum lvss_context {
        CTX_BACKUP,
        CTX_FILE_SHARE_BACKUP,
        CTX_APP_ROLLBACK,
        CTX_NAS_ROLLBACK,
        CTX_CLIENT_ACCESSIBLE,
        _CTX_MAX,
        _CTX_INVALID = -1
} lvss_context;

const char *context_to_string(lvss_context c);
lvss_context context_from_string(const char *s); /* "" is CTX_BACKUP; _CTX_INVALID if unknown */
bool context_persistent(lvss_context c);
bool context_writers(lvss_context c);

struct manager;

struct volume {
        struct manager *manager;
        char *name;
        char *dir; /* STATE/volumes/NAME */
        char *path; /* RUNTIME/dev/volumes/NAME */
        const struct lvss_provider *provider;
        lvss_pvol *pv;
        bool exported;
};

struct shadow {
        char id[LVSS_ID_LEN + 1];
        char set_id[LVSS_ID_LEN + 1];
        struct volume *volume; /* a volume is never freed while it has shadows */
        uint32_t snap_id;
        lvss_context context;
        uint64_t created_usec;
        bool persistent;
        bool exported;
        bool vanished; /* its snapshot was reclaimed for room, but its file is still open */
        bool pending; /* its set is still being made (writers' Thaw, PostSnapshot): not usable yet */
        char *path; /* RUNTIME/dev/shadows/ID */
        char **exposed; /* mount points, NULL-terminated (may be NULL) */
};

struct sset {
        char id[LVSS_ID_LEN + 1];
        lvss_context context;
        uint64_t created_usec;
        uint64_t hold_usec;
        bool persistent; /* its shadows are (a persistent context, or the Persistent option) */
        uint64_t owner; /* AutoRelease: the serial of the connection whose closing deletes it; 0: none */
        bool release_pending; /* its requester went, but a shadow could not go yet: retried */
        char **writers; /* names of the writers that took part (not kept across restarts) */
};

struct catalog;
struct history;
struct writer; /* a registered writer (writers.h) */
struct conn; /* one peer-to-peer bus connection (manager-dbus.c) */
struct sset_job; /* a set being created (sset.c) */

struct manager {
        char *state_dir;
        char *runtime_dir;
        char *socket_path; /* RUNTIME/lvssd.sock */
        char *dev_dir; /* RUNTIME/dev, the FUSE mount */
        char *catalog_path; /* STATE/catalog */
        char *history_path; /* STATE/backup-history */
        char *socket_group; /* group owning the socket (default "lvss") */
        unsigned fuse_workers;
        uint32_t hold_window_ms; /* 0: LVSS_HOLD_WINDOW_MS */
        uint32_t test_hold_delay_ms; /* $LVSS_TEST_HOLD_DELAY_MS: tests make a hold last */
        uint64_t dirty_limit; /* bytes of dirty cache allowed per attached volume; 0: no cap */
        uint32_t writer_timeout_ms; /* replaces every writer deadline but Freeze's; 0: the defaults */
        bool system_bus_wanted;

        sd_event *event;
        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *post_source;
        sd_bus *system_bus;
        struct conn *conns;
        unsigned n_conns;
        uint64_t conn_serial; /* the last serial given to a connection (never 0) */
        pid_t fuse_guardian; /* manager.c: aborts the FUSE connection of a dying lvssd; 0: none */
        gid_t gid_read, gid_admin, gid_writers; /* (gid_t) -1 when the group does not exist */

        fuse_export *export;

        struct volume **volumes;
        size_t n_volumes;
        struct shadow **shadows;
        size_t n_shadows;
        struct sset **sets;
        size_t n_sets;

        struct writer *writers; /* registered writers (writers.h) */
        size_t n_writers;
        uint64_t set_generation; /* counts the sets started: tells a writer's answers to an
                                  * earlier set from those to the current one */

        struct sset_job *job; /* the set being created, if any */
        struct catalog *loaded; /* the catalog as read at start */
        struct history *history; /* the backup history (history.h) */
        char **offline; /* volumes that could not be opened: their catalog entries are kept */
        bool stopping;
};

int manager_new(struct manager **ret);
void manager_free(struct manager *m);

/* Creates the directories, mounts RUNTIME/dev, opens every volume of the state directory and
 * reconciles the catalog with the providers' snapshots. */
int manager_startup(struct manager *m, sd_bus_error *error);

/* Saves the catalog (persistent sets and shadows), atomically. */
int manager_save_catalog(struct manager *m);

struct volume *manager_find_volume(struct manager *m, const char *name);
/* Finds a shadow by id or by a unique prefix of at least 8 characters. */
struct shadow *manager_find_shadow(struct manager *m, const char *id);
struct sset *manager_find_set(struct manager *m, const char *id);
unsigned manager_volume_shadow_count(struct manager *m, struct volume *v);

/* Forgets shadows whose snapshot the provider no longer has (reclaimed for room). */
void manager_prune_vanished(struct manager *m);

/* TARGET is a volume name or the mount point of a filesystem on a volume. */
int manager_resolve_target(struct manager *m, const char *target, struct volume **ret, sd_bus_error *error);

int manager_create_volume(struct manager *m, const char *name, uint64_t size, uint32_t chunk_size,
                          const char *image, uid_t caller, struct volume **ret, sd_bus_error *error);
int manager_delete_volume(struct manager *m, struct volume *v, bool force, sd_bus_error *error);

/* Adds a new shadow (after its snapshot was made) and exports it. */
int manager_add_shadow(struct manager *m, struct volume *v, const char *id, const char *set_id,
                       uint32_t snap_id, lvss_context ctx, uint64_t created_usec, bool persistent,
                       struct shadow **ret);
/* The serial of the peer connection BUS (lvssd's socket), 0 for any other (the system bus). */
uint64_t manager_conn_serial(struct manager *m, sd_bus *bus);
/* The connection of serial OWNER closed: unexposes and deletes the sets it owned (AutoRelease);
 * OWNER 0: tries again the releases that could not finish (manager_prune_vanished does). */
void manager_release_sets_of(struct manager *m, uint64_t owner);

int manager_add_set(struct manager *m, const char *id, lvss_context ctx, bool persistent, uint64_t created_usec,
                    uint64_t hold_usec);
/* Deletes a shadow: -EBUSY if it is exposed or its file is open. Does not save the catalog. */
int manager_delete_shadow(struct manager *m, struct shadow *s, sd_bus_error *error);
/* Drops sets that have no shadow left. */
void manager_gc_sets(struct manager *m);

int manager_expose(struct manager *m, struct shadow *s, const char *mountpoint, uid_t caller,
                   char **ret_device, char **ret_fstype, sd_bus_error *error);
/* Drops the exposures of S that are no longer mounts of its file (unmounted by hand). */
void manager_refresh_exposed(struct shadow *s);
int manager_unexpose(struct manager *m, const char *mountpoint, sd_bus_error *error);
/* Attaches a loop device (direct I/O, kept until detached) over V's current file; first detaches
 * unmounted loop devices left over V's file by an earlier lvssd (dead: their backing file reads
 * "/volumes/NAME"), and lists in RET_STALE the mount points still on such dead devices. */
int manager_attach_volume(struct manager *m, struct volume *v, char **ret_device, char ***ret_stale,
                          sd_bus_error *error);
/* Detaches the loop devices over V's file; -EBUSY (changing nothing) if a filesystem on one is
 * mounted. */
int manager_detach_volume(struct manager *m, struct volume *v, char ***ret_detached, sd_bus_error *error);
int manager_revert(struct manager *m, struct shadow *s, bool force, sd_bus_error *error);

/* Mount points of filesystems on loop devices over volume V's file (the filesystems to freeze),
 * one per filesystem, and in RET_MOUNT_IDS (may be NULL) the mount ID of each. -EXDEV if a loop
 * device over the volume has partitions or a device-mapper holder (out of reach). */
int manager_volume_mounts(struct manager *m, struct volume *v, char ***ret, int **ret_mount_ids);

/* A new random id in the 8-4-4-4-12 form. */
void manager_new_id(char ret[static LVSS_ID_LEN + 1]);

/* True if NAME is a valid volume name: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
bool volume_name_valid(const char *name);

size_t strv_len(char *const *l);
int strv_push(char ***l, const char *s);
bool strv_contains(char *const *l, const char *s);
void strv_remove(char **l, const char *s);
