/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvssd's D-Bus glue (docs/dbus-api.md): the peer-to-peer connections accepted on
 * RUNTIME/lvssd.sock and, optionally, the system bus; authorization by peer credentials on
 * every message; the org.lvss.Manager1 methods. The per-object interfaces are in object-dbus.c.
 * Main thread only.
 */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/macro.h"
#include "service/bus-util.h"
#include "service/history.h"
#include "service/manager-dbus.h"
#include "service/sset.h"
#include "service/writers-dbus.h"
#include "service/writers.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

enum { LEVEL_NONE, LEVEL_READ, LEVEL_ADMIN };

struct conn {
        struct manager *manager;
        sd_bus *bus;
        uint64_t serial; /* never reused: sets it owns name it (AutoRelease) */
        uid_t uid;
        pid_t pid;
        int level;
        bool writer; /* uid 0 or group lvss-writers: may register a writer */
        struct conn *next, *prev;
};

static bool in_group(gid_t want, gid_t gid, const gid_t *gids, size_t n) {
        if (want == (gid_t) -1)
                return false;
        for (size_t i = 0; i <= n; i++)
                if ((i < n ? gids[i] : gid) == want)
                        return true;
        return false;
}

static int level_for(struct manager *m, uid_t uid, gid_t gid, const gid_t *gids, size_t n) {
        if (uid == 0)
                return LEVEL_ADMIN;
        bool read = false;
        for (size_t i = 0; i <= n; i++) {
                gid_t g = i < n ? gids[i] : gid;
                if (m->gid_admin != (gid_t) -1 && g == m->gid_admin)
                        return LEVEL_ADMIN;
                if (m->gid_read != (gid_t) -1 && g == m->gid_read)
                        read = true;
        }
        return read ? LEVEL_READ : LEVEL_NONE;
}

/* What a call needs: reading (listing, properties, introspection) or administering. */
static int level_needed(sd_bus_message *msg) {
        const char *iface = sd_bus_message_get_interface(msg), *member = sd_bus_message_get_member(msg);
        if (!member)
                return LEVEL_ADMIN;
        if (iface && (strcmp(iface, "org.freedesktop.DBus.Introspectable") == 0 ||
                      strcmp(iface, "org.freedesktop.DBus.Peer") == 0))
                return LEVEL_READ;
        if (iface && strcmp(iface, "org.freedesktop.DBus.Properties") == 0)
                return strcmp(member, "Set") == 0 ? LEVEL_ADMIN : LEVEL_READ;
        if (iface && strcmp(iface, "org.freedesktop.DBus.ObjectManager") == 0)
                return LEVEL_READ;
        if ((!iface || strcmp(iface, "org.lvss.Manager1") == 0) && strcmp(member, "GetChangedChunks") == 0)
                return LEVEL_ADMIN; /* what changed where, and a scan of every preserved chunk */
        if ((!iface || strcmp(iface, "org.lvss.Manager1") == 0) &&
            (strncmp(member, "List", 4) == 0 || strncmp(member, "Get", 3) == 0 ||
             strcmp(member, "ResolveTarget") == 0 || strcmp(member, "FindBackupBase") == 0))
                return LEVEL_READ;
        return LEVEL_ADMIN;
}

static int message_level(struct manager *m, sd_bus_message *msg, struct conn *c, uid_t *ret_uid) {
        if (c) {
                if (ret_uid)
                        *ret_uid = c->uid;
                return c->level;
        }
        /* The system bus: the uid the bus daemon vouches for (never completed from /proc, which
         * would be racy), and that user's groups in the group database. */
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        if (sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds) < 0 ||
            sd_bus_creds_get_euid(creds, &uid) < 0)
                return LEVEL_NONE;
        if (ret_uid)
                *ret_uid = uid;
        if (uid == 0)
                return LEVEL_ADMIN;
        struct passwd *pw = getpwuid(uid);
        if (!pw)
                return LEVEL_NONE;
        gid_t gid = pw->pw_gid, gids[256];
        int n = (int) ELEMENTSOF(gids);
        if (getgrouplist(pw->pw_name, gid, gids, &n) < 0)
                n = 0;
        return level_for(m, uid, gid, gids, n > 0 ? (size_t) n : 0);
}

static struct conn *conn_of(struct manager *m, sd_bus_message *msg) {
        sd_bus *bus = sd_bus_message_get_bus(msg);
        for (struct conn *c = m->conns; c; c = c->next)
                if (c->bus == bus)
                        return c;
        return NULL;
}

bool manager_is_peer(struct manager *m, sd_bus_message *msg) {
        return conn_of(m, msg) != NULL;
}

uid_t manager_caller_uid(struct manager *m, sd_bus_message *msg) {
        uid_t uid = (uid_t) -1;
        (void) message_level(m, msg, conn_of(m, msg), &uid);
        return uid;
}

static int authz_filter(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct manager *m = userdata;
        uint8_t type;
        if (sd_bus_message_get_type(msg, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL)
                return 0;
        /* A client that thinks it talks to a bus daemon (busctl --address=...) says Hello first:
         * answer as a bus would, with a unique name, so that it goes on to call us. */
        if (sd_bus_message_is_method_call(msg, "org.freedesktop.DBus", "Hello")) {
                struct conn *c = conn_of(m, msg);
                char name[32];
                snprintf(name, sizeof name, ":1.%u", c ? (unsigned) c->pid : 0u);
                (void) sd_bus_reply_method_return(msg, "s", name);
                return 1;
        }
        /* Registering a writer is its own right: uid 0 or group lvss-writers, on the socket. */
        if (sd_bus_message_is_method_call(msg, "org.lvss.Manager1", "RegisterWriter") ||
            sd_bus_message_is_method_call(msg, "org.lvss.Manager1", "UnregisterWriter")) {
                struct conn *c = conn_of(m, msg);
                if (c && c->writer)
                        return 0;
                (void) sd_bus_reply_method_errorf(msg, LVSS_ERROR_ACCESS_DENIED, "%s",
                                                  c ? "You may not register a writer: run it as root or ask to "
                                                      "be added to group lvss-writers."
                                                    : "Writers register on lvssd's socket, not on the system "
                                                      "bus.");
                return 1;
        }
        int need = level_needed(msg), have = message_level(m, msg, conn_of(m, msg), NULL);
        if (have >= need)
                return 0;
        (void) sd_bus_reply_method_errorf(
                msg, LVSS_ERROR_ACCESS_DENIED, "%s",
                need == LEVEL_READ
                        ? "You may not read lvssd's state: ask to be added to group lvss."
                        : "You may not change lvssd's state: run as root or ask to be added to group "
                          "lvss-admin.");
        return 1;
}

/* ---- Manager1 methods ---- */

static int method_create_volume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *name, *image;
        uint64_t size;
        uint32_t chunk;
        struct volume *v = NULL;
        _cleanup_free_ char *path = NULL;
        int r = sd_bus_message_read(msg, "stus", &name, &size, &chunk, &image);
        if (r < 0)
                return r;
        r = manager_create_volume(m, name, size, chunk, image, manager_caller_uid(m, msg), &v, error);
        if (r < 0)
                return r;
        r = volume_object_path(v, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int find_volume_or_fail(struct manager *m, const char *name, struct volume **ret,
                               sd_bus_error *error) {
        struct volume *v = manager_find_volume(m, name);
        if (!v)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no volume named %s: see `lvss list volumes`.", name);
        *ret = v;
        return 0;
}

static int method_delete_volume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *name;
        int force;
        struct volume *v = NULL;
        int r = sd_bus_message_read(msg, "sb", &name, &force);
        if (r < 0)
                return r;
        if (m->job)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "A shadow copy set is being created: retry in a few seconds.");
        r = find_volume_or_fail(m, name, &v, error);
        if (r < 0)
                return r;
        r = manager_delete_volume(m, v, force, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

int volume_append(sd_bus_message *reply, struct manager *m, struct volume *v) {
        struct lvss_pvol_info info = {};
        (void) v->provider->volume_info(v->pv, &info);
        return sd_bus_message_append(reply, "(sstusuttt)", v->name, v->provider->name, info.size,
                                     info.chunk_size, v->path, manager_volume_shadow_count(m, v),
                                     info.storage_used, info.storage_allocated, info.storage_max);
}

static int method_list_volumes(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        manager_prune_vanished(m);
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sstusuttt)");
        for (size_t i = 0; r >= 0 && i < m->n_volumes; i++)
                r = volume_append(reply, m, m->volumes[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Answers MSG with an optional string S (if not NULL) followed by the string list L, and frees L. */
static int reply_strv(sd_bus_message *msg, const char *s, char **l) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0 && s)
                r = sd_bus_message_append(reply, "s", s);
        if (r >= 0)
                r = sd_bus_message_append_strv(reply, l ? l : (char *[]){ NULL });
        strv_free(l);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Reads a volume name from MSG and finds that volume. */
static int read_volume(struct manager *m, sd_bus_message *msg, struct volume **ret, sd_bus_error *error) {
        const char *name;
        int r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        return find_volume_or_fail(m, name, ret, error);
}

static int method_attach_volume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct volume *v = NULL;
        _cleanup_free_ char *device = NULL;
        char **stale = NULL;
        int r = read_volume(m, msg, &v, error);
        if (r < 0)
                return r;
        r = manager_attach_volume(m, v, &device, &stale, error);
        if (r < 0)
                return r;
        return reply_strv(msg, device, stale);
}

static int method_detach_volume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct volume *v = NULL;
        char **done = NULL;
        int r = read_volume(m, msg, &v, error);
        if (r < 0)
                return r;
        r = manager_detach_volume(m, v, &done, error);
        if (r < 0)
                return r;
        return reply_strv(msg, NULL, done);
}

static int method_get_volume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct volume *v = NULL;
        _cleanup_free_ char *path = NULL;
        int r = read_volume(m, msg, &v, error);
        if (r < 0)
                return r;
        r = volume_object_path(v, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_resolve_target(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *target;
        struct volume *v = NULL;
        int r = sd_bus_message_read(msg, "s", &target);
        if (r < 0)
                return r;
        r = manager_resolve_target(m, target, &v, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "s", v->name);
}

/* An "as" argument of at most 4096 strings: InvalidArgument, named, past that. */
static int read_strv(sd_bus_message *msg, char ***ret, sd_bus_error *error) {
        int r = bus_read_strv_max(msg, false, 4096, ret);
        if (r == -E2BIG)
                return bus_error_setf(error, r, LVSS_ERROR_INVALID_ARGUMENT,
                                      "A list holds more than 4096 strings: give fewer.");
        return r;
}

static int method_create_shadow_set(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        char **targets = NULL;
        struct sset_options o = { .backup_type = "full" };
        const char *context;
        int r = read_strv(msg, &targets, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &context);
        if (r < 0)
                goto out;
        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                goto out;
        const char *key;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        goto out;
                const char *type = strcmp(key, "NoWriters") == 0 || strcmp(key, "Persistent") == 0 ||
                                                   strcmp(key, "AutoRelease") == 0
                                           ? "b"
                                   : strcmp(key, "Writers") == 0 || strcmp(key, "ExcludeWriters") == 0 ? "as"
                                   : strcmp(key, "BackupType") == 0                                    ? "s"
                                                                    : NULL;
                if (!type) {
                        r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                           "Unknown option %s: CreateShadowSet knows NoWriters, Writers, "
                                           "ExcludeWriters, BackupType, Persistent and AutoRelease.",
                                           key);
                        goto out;
                }
                r = sd_bus_message_enter_container(msg, 'v', type);
                if (r < 0) {
                        r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                           "Option %s has the wrong type: it is %s.", key, type);
                        goto out;
                }
                if (strcmp(type, "b") == 0) {
                        int b;
                        r = sd_bus_message_read(msg, "b", &b);
                        bool *opt = key[0] == 'N' ? &o.no_writers : key[0] == 'P' ? &o.persistent : &o.auto_release;
                        *opt = b;
                } else if (strcmp(key, "BackupType") == 0)
                        r = sd_bus_message_read(msg, "s", &o.backup_type);
                else {
                        char ***l = strcmp(key, "Writers") == 0 ? &o.writers : &o.exclude;
                        strv_free(*l);
                        *l = NULL;
                        r = read_strv(msg, l, error);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(msg);
                if (r >= 0)
                        r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        goto out;
        }
        if (r < 0)
                goto out;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto out;
        lvss_context ctx = context_from_string(context);
        if (ctx == _CTX_INVALID) {
                r = bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "Unknown context '%s': use backup, file-share-backup, app-rollback, nas-rollback "
                        "or client-accessible.",
                        context);
                goto out;
        }
        unsigned bt;
        if (lvss_wmd_backup_types_from_string(o.backup_type, &bt) < 0 || __builtin_popcount(bt) != 1) {
                r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                   "Unknown backup type '%.64s': use full, incremental, differential, log "
                                   "or copy.",
                                   o.backup_type);
                goto out;
        }
        r = sset_start(m, msg, targets, ctx, &o, error);
out:
        strv_free(targets);
        strv_free(o.writers);
        strv_free(o.exclude);
        return r;
}

/* Reads the targets (volume names) of a history call and makes their key (history.h). */
static int read_history_key(sd_bus_message *msg, char **ret, sd_bus_error *error) {
        char **targets = NULL;
        int r = read_strv(msg, &targets, error);
        if (r < 0)
                return r;
        r = history_key(targets, ret);
        strv_free(targets);
        if (r == -EINVAL)
                return bus_error_setf(error, r, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Give from 1 to %u volume names (not mount points) as the targets "
                                      "of a backup history.",
                                      HISTORY_MAX_VOLUMES);
        return r;
}

static int method_record_backup(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *key = NULL;
        const char *id, *type, *dir;
        uint64_t created;
        int r = read_history_key(msg, &key, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "ssst", &id, &type, &dir, &created);
        if (r < 0)
                return r;
        if (strcmp(type, "copy") == 0)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "A copy backup does not enter the history: do not record it.");
        if (!history_type_valid(type))
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Unknown backup type '%.64s': record a full, incremental, "
                                      "differential or log backup.",
                                      type);
        if (dir[0] != '/')
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "The backup directory must be an absolute path.");
        r = history_record(m->history, m->history_path, key, id, type, dir, created);
        if (r == -EINVAL)
                return bus_error_setf(error, r, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Not a backup to record: give its id (8-4-4-4-12, lower-case hex) "
                                      "and a directory shorter than %d bytes.",
                                      PATH_MAX);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot save the backup history %s: %s.",
                                      m->history_path, strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_find_backup_base(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *key = NULL;
        const char *type;
        int r = read_history_key(msg, &key, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &type);
        if (r < 0)
                return r;
        bool differential = strcmp(type, "differential") == 0;
        if (!differential && strcmp(type, "incremental") != 0 && strcmp(type, "log") != 0)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "A %.64s backup has no base: only incremental, differential and log "
                                      "backups have one.",
                                      type);
        const struct history_entry *e = history_find_base(m->history, key, type);
        if (!e)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "no earlier full backup of %s is known to lvssd: make a full backup "
                                      "first, or give --base DIR",
                                      key);
        return sd_bus_reply_method_return(msg, "ss", e->dir, e->id);
}

static int append_shadow(sd_bus_message *reply, struct shadow *s) {
        manager_refresh_exposed(s);
        int r = sd_bus_message_open_container(reply, 'r', "sssssstbsas");
        if (r < 0)
                return r;
        struct lvss_psnap ps;
        bool invalid = s->volume->provider->snapshot_get(s->volume->pv, s->snap_id, &ps) >= 0 && ps.invalid;
        r = sd_bus_message_append(reply, "sssssstbs", s->id, s->set_id, s->volume->name,
                                  s->volume->provider->name, context_to_string(s->context),
                                  s->pending    ? "pending"
                                  : s->vanished ? "vanished"
                                  : invalid     ? "invalid"
                                                : "created",
                                  s->created_usec, s->persistent, s->path);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(reply, s->exposed ? s->exposed : (char *[]){ NULL });
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int method_list_shadows(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *volume, *set;
        struct volume *v = NULL;
        struct sset *ss = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_read(msg, "ss", &volume, &set);
        if (r < 0)
                return r;
        manager_prune_vanished(m);
        if (*volume && (r = manager_resolve_target(m, volume, &v, error)) < 0)
                return r;
        if (*set && !(ss = manager_find_set(m, set)))
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no shadow copy set %s: see `lvss list sets`.", set);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssssstbsas)");
        for (size_t i = 0; r >= 0 && i < m->n_shadows; i++) {
                struct shadow *s = m->shadows[i];
                if ((v && s->volume != v) || (ss && strcmp(s->set_id, ss->id) != 0))
                        continue;
                r = append_shadow(reply, s);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_sets(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        manager_prune_vanished(m);
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssttas)");
        for (size_t i = 0; r >= 0 && i < m->n_sets; i++) {
                struct sset *s = m->sets[i];
                r = sd_bus_message_open_container(reply, 'r', "ssttas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "sstt", s->id, context_to_string(s->context),
                                                  s->created_usec, s->hold_usec);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t k = 0; r >= 0 && k < m->n_shadows; k++)
                        if (strcmp(m->shadows[k]->set_id, s->id) == 0)
                                r = sd_bus_message_append(reply, "s", m->shadows[k]->id);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Deletes the shadows in LIST (NULL-terminated array of pointers) and answers with their ids. */
static int delete_and_reply(struct manager *m, sd_bus_message *msg, struct shadow **list, size_t n,
                            sd_bus_error *error) {
        char **deleted = NULL;
        bool persistent = false;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                char id[LVSS_ID_LEN + 1];
                snprintf(id, sizeof id, "%s", list[i]->id);
                persistent |= list[i]->persistent;
                r = manager_delete_shadow(m, list[i], error);
                if (r < 0)
                        break;
                (void) strv_push(&deleted, id);
        }
        manager_gc_sets(m);
        if (persistent)
                (void) manager_save_catalog(m);
        if (r < 0) {
                strv_free(deleted);
                return r;
        }
        return reply_strv(msg, NULL, deleted);
}

static int method_delete_shadows(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        char **ids = NULL;
        int r = read_strv(msg, &ids, error);
        if (r < 0)
                return r;
        manager_prune_vanished(m);
        size_t n = strv_len(ids);
        _cleanup_free_ struct shadow **list = calloc(n + 1, sizeof *list);
        if (!list) {
                strv_free(ids);
                return -ENOMEM;
        }
        if (n == 0) {
                strv_free(ids);
                return bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "No shadow id given: give the ids to delete (see `lvss list shadows`).");
        }
        /* Resolve every id first: nothing is deleted if one is unknown. */
        for (size_t i = 0; i < n; i++) {
                list[i] = manager_find_shadow(m, ids[i]);
                if (!list[i]) {
                        r = bus_error_setf(
                                error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                "There is no shadow copy %s (or the prefix is ambiguous): see `lvss list "
                                "shadows`.",
                                ids[i]);
                        strv_free(ids);
                        return r;
                }
                for (size_t k = 0; k < i; k++)
                        if (list[k] == list[i])
                                list[i] = NULL;
        }
        size_t j = 0;
        for (size_t i = 0; i < n; i++)
                if (list[i])
                        list[j++] = list[i];
        strv_free(ids);
        return delete_and_reply(m, msg, list, j, error);
}

static int collect(struct manager *m, struct volume *v, struct sset *set, bool oldest, struct shadow ***ret,
                   size_t *ret_n) {
        struct shadow **list = calloc(m->n_shadows + 1, sizeof *list);
        size_t n = 0;
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_shadows; i++) {
                struct shadow *s = m->shadows[i];
                if ((v && s->volume != v) || (set && strcmp(s->set_id, set->id) != 0))
                        continue;
                if (oldest && n == 1) {
                        if (s->created_usec < list[0]->created_usec ||
                            (s->created_usec == list[0]->created_usec && s->snap_id < list[0]->snap_id))
                                list[0] = s;
                        continue;
                }
                list[n++] = s;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

static int method_delete_shadow_set(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *id;
        int r = sd_bus_message_read(msg, "s", &id);
        if (r < 0)
                return r;
        manager_prune_vanished(m);
        struct sset *set = manager_find_set(m, id);
        if (!set)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no shadow copy set %s: see `lvss list sets`.", id);
        _cleanup_free_ struct shadow **list = NULL;
        size_t n;
        r = collect(m, NULL, set, false, &list, &n);
        if (r < 0)
                return r;
        return delete_and_reply(m, msg, list, n, error);
}

static int method_delete_volume_shadows(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *target;
        int oldest;
        struct volume *v = NULL;
        int r = sd_bus_message_read(msg, "sb", &target, &oldest);
        if (r < 0)
                return r;
        manager_prune_vanished(m);
        r = manager_resolve_target(m, target, &v, error);
        if (r < 0)
                return r;
        _cleanup_free_ struct shadow **list = NULL;
        size_t n;
        r = collect(m, v, NULL, oldest, &list, &n);
        if (r < 0)
                return r;
        return delete_and_reply(m, msg, list, n, error);
}

static int method_delete_all_shadows(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        manager_prune_vanished(m);
        _cleanup_free_ struct shadow **list = NULL;
        size_t n;
        int r = collect(m, NULL, NULL, false, &list, &n);
        if (r < 0)
                return r;
        return delete_and_reply(m, msg, list, n, error);
}

static int find_shadow_or_fail(struct manager *m, const char *id, struct shadow **ret, sd_bus_error *error) {
        manager_prune_vanished(m);
        struct shadow *s = manager_find_shadow(m, id);
        if (!s)
                return bus_error_setf(
                        error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                        "There is no shadow copy %s (or the prefix is ambiguous): see `lvss list "
                        "shadows`.",
                        id);
        *ret = s;
        return 0;
}

int manager_method_expose(struct manager *m, sd_bus_message *msg, struct shadow *s, const char *mountpoint,
                          sd_bus_error *error) {
        _cleanup_free_ char *device = NULL, *fstype = NULL;
        int r = manager_expose(m, s, mountpoint, manager_caller_uid(m, msg), &device, &fstype, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "ss", device, fstype);
}

static int method_expose_shadow(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *id, *mp;
        struct shadow *s = NULL;
        int r = sd_bus_message_read(msg, "ss", &id, &mp);
        if (r < 0)
                return r;
        r = find_shadow_or_fail(m, id, &s, error);
        if (r < 0)
                return r;
        return manager_method_expose(m, msg, s, mp, error);
}

/* Changed-block tracking between two shadows of one volume, FROM older than TO: the volume's size,
 * the chunk size, and the runs of chunks that may differ, as (first chunk, count), ascending. */
static int method_get_changed_chunks(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *from_id, *to_id;
        struct shadow *from = NULL, *to = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ uint64_t *bm = NULL;
        uint64_t n_chunks;
        uint32_t chunk_size;
        int r = sd_bus_message_read(msg, "ss", &from_id, &to_id);
        if (r < 0)
                return r;
        if ((r = find_shadow_or_fail(m, from_id, &from, error)) < 0 ||
            (r = find_shadow_or_fail(m, to_id, &to, error)) < 0)
                return r;
        if (from->volume != to->volume)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Shadows %s and %s are of different volumes (%s, %s): changed chunks "
                                      "are between two shadows of one volume.",
                                      from->id, to->id, from->volume->name, to->volume->name);
        if (from->snap_id >= to->snap_id)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Shadow %s is not older than shadow %s: give the older one first.",
                                      from->id, to->id);
        if (from->pending || to->pending)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Shadow %s belongs to a set still being made: retry in a moment.",
                                      from->pending ? from->id : to->id);
        const struct lvss_provider *p = from->volume->provider;
        int (*changed)(lvss_pvol *, uint32_t, uint32_t, uint64_t **, uint64_t *, uint32_t *) =
                (p->capabilities & LVSS_CAP_CBT) ? LVSS_PROVIDER_CHANGED_CHUNKS(p) : NULL;
        if (!changed)
                return bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_FAILED,
                                      "Provider %s of volume %s does not track changed chunks: make full "
                                      "image backups, or file backups.",
                                      p->name, from->volume->name);
        r = changed(from->volume->pv, from->snap_id, to->snap_id, &bm, &n_chunks, &chunk_size);
        if (r == -EIO)
                return bus_error_setf(error, r, LVSS_ERROR_FAILED,
                                      "Shadow %s or %s could not be proven intact after a crash: make a full "
                                      "image backup.",
                                      from->id, to->id);
        if (r < 0)
                return bus_error_setf(error, r, r == -ENOENT ? LVSS_ERROR_NOT_FOUND : LVSS_ERROR_FAILED,
                                      "Cannot compare shadows %s and %s: %s.", from->id, to->id,
                                      strerror(-r));
        struct lvss_pvol_info info;
        r = p->volume_info(from->volume->pv, &info);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot read volume %s's size: %s.", from->volume->name,
                                      strerror(-r));
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "tu", info.size, chunk_size);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(tt)");
        /* Runs of set bits; words of zeros skipped whole. */
        for (uint64_t c = 0; r >= 0 && c < n_chunks;) {
                if (c % 64 == 0 && bm[c / 64] == 0) {
                        c += 64;
                        continue;
                }
                if (!(bm[c / 64] & (UINT64_C(1) << (c % 64)))) {
                        c++;
                        continue;
                }
                uint64_t first = c;
                while (c < n_chunks && (bm[c / 64] & (UINT64_C(1) << (c % 64))))
                        c++;
                r = sd_bus_message_append(reply, "(tt)", first, c - first);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r == -ENOBUFS || r == -EMSGSIZE)
                return bus_error_setf(error, r, LVSS_ERROR_FAILED,
                                      "The chunks changed between shadows %s and %s are too scattered to send: "
                                      "make a full image backup.",
                                      from->id, to->id);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Makes an AutoRelease set stay when its requester's connection closes. */
static int method_keep_shadow_set(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *id;
        int r = sd_bus_message_read(msg, "s", &id);
        if (r < 0)
                return r;
        struct sset *set = manager_find_set(m, id);
        if (!set)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no shadow copy set %s: see `lvss list sets`.", id);
        bool was = set->owner != 0;
        set->owner = 0;
        if (was && set->persistent) {
                r = manager_save_catalog(m);
                if (r < 0)
                        return bus_error_setf(error, r, NULL,
                                              "Cannot record set %s in the catalog: %s; it would not survive a "
                                              "restart.",
                                              id, strerror(-r));
        }
        return sd_bus_reply_method_return(msg, "");
}

static int method_unexpose_shadow(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *mp;
        int r = sd_bus_message_read(msg, "s", &mp);
        if (r < 0)
                return r;
        r = manager_unexpose(m, mp, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

int manager_method_revert(struct manager *m, sd_bus_message *msg, struct shadow *s, bool force,
                          sd_bus_error *error) {
        if (m->job)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "A shadow copy set is being created: retry in a few seconds.");
        int r = manager_revert(m, s, force, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_revert_to_shadow(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *id;
        int force;
        struct shadow *s = NULL;
        int r = sd_bus_message_read(msg, "sb", &id, &force);
        if (r < 0)
                return r;
        r = find_shadow_or_fail(m, id, &s, error);
        if (r < 0)
                return r;
        return manager_method_revert(m, msg, s, force, error);
}

static int method_resize_storage(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *target;
        uint64_t max;
        struct volume *v = NULL;
        int r = sd_bus_message_read(msg, "st", &target, &max);
        if (r < 0)
                return r;
        r = manager_resolve_target(m, target, &v, error);
        if (r < 0)
                return r;
        if (!v->provider->set_limit)
                return bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_FAILED,
                                      "Provider %s has no storage limit to resize.", v->provider->name);
        if (max != UINT64_MAX && max < 4096)
                return bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "A maximum of %" PRIu64 " bytes is too small: give at least 4K, or unbounded.", max);
        r = v->provider->set_limit(v->pv, max);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot resize the shadow storage of volume %s: %s.",
                                      v->name, strerror(-r));
        manager_prune_vanished(m);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_set_storage_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *target, *policy;
        struct volume *v = NULL;
        int r = sd_bus_message_read(msg, "ss", &target, &policy);
        if (r < 0)
                return r;
        r = manager_resolve_target(m, target, &v, error);
        if (r < 0)
                return r;
        bool protect;
        if (strcmp(policy, "protect-volume") == 0)
                protect = false;
        else if (strcmp(policy, "protect-snapshots") == 0)
                protect = true;
        else
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Unknown policy '%.64s': give protect-volume or protect-snapshots.", policy);
        if (!LVSS_PROVIDER_HAS_POLICY(v->provider))
                return bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_FAILED,
                                      "Provider %s has no storage policy to set.", v->provider->name);
        r = v->provider->set_policy(v->pv, protect);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot set the storage policy of volume %s: %s.", v->name,
                                      strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

/* Each volume's storage policy: protect-volume, protect-snapshots, or "" if its provider has none. */
static int method_list_storage_policies(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < m->n_volumes; i++) {
                struct volume *v = m->volumes[i];
                bool protect = false;
                bool known = LVSS_PROVIDER_HAS_POLICY(v->provider) && v->provider->get_policy(v->pv, &protect) >= 0;
                r = sd_bus_message_append(reply, "(ss)", v->name,
                                          !known ? "" : protect ? "protect-snapshots" : "protect-volume");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_storage(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(stttt)");
        for (size_t i = 0; r >= 0 && i < m->n_volumes; i++) {
                struct lvss_pvol_info info = {};
                (void) m->volumes[i]->provider->volume_info(m->volumes[i]->pv, &info);
                r = sd_bus_message_append(reply, "(stttt)", m->volumes[i]->name, info.storage_used,
                                          info.storage_allocated, info.storage_max, info.preserved_chunks);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_providers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssas)");
        for (size_t i = 0; r >= 0 && lvss_providers[i]; i++) {
                const struct lvss_provider *p = lvss_providers[i];
                if (!lvss_provider_usable(p))
                        continue;
                r = sd_bus_message_open_container(reply, 'r', "ssas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "ss", p->name, p->version);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t b = 0; r >= 0 && lvss_cap_names[b]; b++)
                        if (p->capabilities & (1u << b))
                                r = sd_bus_message_append(reply, "s", lvss_cap_names[b]);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int property_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PROJECT_VERSION);
}

static int property_set_in_progress(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error) {
        struct manager *m = userdata;
        return sd_bus_message_append(reply, "b", m->job != NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StateDirectory", "s", NULL, offsetof(struct manager, state_dir),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("RuntimeDirectory", "s", NULL, offsetof(struct manager, runtime_dir),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SetInProgress", "b", property_set_in_progress, 0, 0),
        SD_BUS_METHOD_WITH_ARGS(
                "CreateVolume", SD_BUS_ARGS("s", name, "t", size, "u", chunk_size, "s", image),
                SD_BUS_RESULT("o", volume), method_create_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteVolume", SD_BUS_ARGS("s", name, "b", force), SD_BUS_NO_RESULT,
                                method_delete_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListVolumes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sstusuttt)", volumes),
                                method_list_volumes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVolume", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", volume),
                                method_get_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AttachVolume", SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("s", device, "as", stale_mounts), method_attach_volume,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachVolume", SD_BUS_ARGS("s", name), SD_BUS_RESULT("as", detached),
                                method_detach_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResolveTarget", SD_BUS_ARGS("s", target), SD_BUS_RESULT("s", volume),
                                method_resolve_target, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateShadowSet",
                                SD_BUS_ARGS("as", targets, "s", context, "a{sv}", options),
                                SD_BUS_RESULT("s", set, "s", context, "t", created, "t", hold_usec,
                                              "a(ssss)", shadows, "a(ssssa{ss})", writers),
                                method_create_shadow_set, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RecordBackup",
                                SD_BUS_ARGS("as", targets, "s", id, "s", type, "s", dir, "t", created),
                                SD_BUS_NO_RESULT, method_record_backup, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FindBackupBase", SD_BUS_ARGS("as", targets, "s", type),
                                SD_BUS_RESULT("s", dir, "s", id), method_find_backup_base,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListShadows", SD_BUS_ARGS("s", volume, "s", set),
                                SD_BUS_RESULT("a(sssssstbsas)", shadows), method_list_shadows,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSets", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssttas)", sets),
                                method_list_sets, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteShadows", SD_BUS_ARGS("as", ids), SD_BUS_RESULT("as", deleted),
                                method_delete_shadows, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteShadowSet", SD_BUS_ARGS("s", set), SD_BUS_RESULT("as", deleted),
                                method_delete_shadow_set, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteVolumeShadows", SD_BUS_ARGS("s", target, "b", oldest_only),
                                SD_BUS_RESULT("as", deleted), method_delete_volume_shadows,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteAllShadows", SD_BUS_NO_ARGS, SD_BUS_RESULT("as", deleted),
                                method_delete_all_shadows, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExposeShadow", SD_BUS_ARGS("s", id, "s", mountpoint),
                                SD_BUS_RESULT("s", device, "s", fstype), method_expose_shadow,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetChangedChunks", SD_BUS_ARGS("s", from, "s", to),
                                SD_BUS_RESULT("t", size, "u", chunk_size, "a(tt)", changed),
                                method_get_changed_chunks, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("KeepShadowSet", SD_BUS_ARGS("s", set), SD_BUS_NO_RESULT, method_keep_shadow_set,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnexposeShadow", SD_BUS_ARGS("s", mountpoint), SD_BUS_NO_RESULT,
                                method_unexpose_shadow, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevertToShadow", SD_BUS_ARGS("s", id, "b", force), SD_BUS_NO_RESULT,
                                method_revert_to_shadow, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResizeStorage", SD_BUS_ARGS("s", target, "t", max), SD_BUS_NO_RESULT,
                                method_resize_storage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListStorage", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(stttt)", storage),
                                method_list_storage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetStoragePolicy", SD_BUS_ARGS("s", target, "s", policy), SD_BUS_NO_RESULT,
                                method_set_storage_policy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListStoragePolicies", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ss)", policies),
                                method_list_storage_policies, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListProviders", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssas)", providers),
                                method_list_providers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListWriters", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssssssss)", writers),
                                method_list_writers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterWriter", SD_BUS_ARGS("a{sv}", identity),
                                SD_BUS_RESULT("s", instance_id), method_register_writer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnregisterWriter", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_unregister_writer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetWriterMetadata", SD_BUS_ARGS("s", name), SD_BUS_RESULT("s", xml),
                                method_get_writer_metadata, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CompleteBackup", SD_BUS_ARGS("s", set, "b", succeeded),
                                SD_BUS_RESULT("a(ssssa{ss})", writers), method_complete_backup,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                "PreRestore", SD_BUS_ARGS("s", writer, "as", components, "a{ss}", backup_metadata),
                SD_BUS_RESULT("a(ssssa{ss})", writers), method_pre_restore, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                "PostRestore", SD_BUS_ARGS("s", writer, "as", components, "a{ss}", backup_metadata),
                SD_BUS_RESULT("a(ssssa{ss})", writers), method_post_restore, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

/* ---- connections ---- */

static int attach_objects(struct manager *m, sd_bus *bus) {
        int r = sd_bus_add_filter(bus, NULL, authz_filter, m);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, "/org/lvss", "org.lvss.Manager1", manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(bus, NULL, "/org/lvss");
        if (r >= 0)
                r = object_dbus_attach(m, bus);
        return r;
}

static void conn_free(struct conn *c) {
        if (!c)
                return;
        struct manager *m = c->manager;
        if (c->prev)
                c->prev->next = c->next;
        else
                m->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        m->n_conns--;
        writers_connection_closed(m, c->bus);
        if (!m->stopping) {
                sset_requester_gone(m, c->serial);
                manager_release_sets_of(m, c->serial);
        }
        /* No flush: a peer that stopped reading (or never finished its handshake) must not be able
         * to hold lvssd up, at shutdown least of all. */
        sd_bus_close_unref(c->bus);
        free(c);
}

uint64_t manager_conn_serial(struct manager *m, sd_bus *bus) {
        for (struct conn *c = m->conns; c; c = c->next)
                if (c->bus == bus)
                        return c->serial;
        return 0;
}

static int on_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        conn_free(userdata);
        return 0;
}

/* Frees connections that died without their Disconnected signal reaching us (a failed handshake). */
static void conn_gc(struct manager *m) {
        for (struct conn *c = m->conns, *next; c; c = next) {
                next = c->next;
                if (sd_bus_is_open(c->bus) <= 0)
                        conn_free(c);
        }
}

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct manager *m = userdata;
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        conn_gc(m);

        struct ucred uc;
        socklen_t len = sizeof uc;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
                close(cfd);
                return 0;
        }
        /* Root keeps a reserve above the common limit, so that it can always get in. */
        if (m->n_conns >= LVSS_MAX_CONNECTIONS + (uc.uid == 0 ? LVSS_ROOT_RESERVE_CONNECTIONS : 0)) {
                fprintf(stderr, "lvssd: too many connections (%u): refusing one\n", m->n_conns);
                close(cfd);
                return 0;
        }
        gid_t gids[256];
        socklen_t glen = sizeof gids;
        size_t n_gids = 0;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERGROUPS, gids, &glen) == 0)
                n_gids = glen / sizeof(gid_t);

        /* One user may not take every connection: idle ones would lock everybody else out. */
        unsigned mine = 0;
        for (struct conn *o = m->conns; o; o = o->next)
                mine += o->uid == uc.uid;
        if (uc.uid != 0 && mine >= LVSS_MAX_CONNECTIONS_PER_USER) {
                fprintf(stderr, "lvssd: uid %u has %u connections open: refusing another\n",
                        (unsigned) uc.uid, mine);
                close(cfd);
                return 0;
        }

        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
                close(cfd);
                return 0;
        }
        c->manager = m;
        c->serial = ++m->conn_serial;
        c->uid = uc.uid;
        c->pid = uc.pid;
        c->level = level_for(m, uc.uid, uc.gid, gids, n_gids);
        c->writer = uc.uid == 0 || in_group(m->gid_writers, uc.gid, gids, n_gids);

        sd_id128_t id;
        int r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&c->bus);
        if (r >= 0)
                r = sd_bus_set_fd(c->bus, cfd, cfd);
        if (r >= 0)
                cfd = -1;
        if (r >= 0)
                r = sd_bus_set_server(c->bus, 1, id);
        if (r >= 0)
                r = sd_bus_set_description(c->bus, "lvssd-peer");
        /* sd-bus's own check (CAP_SYS_ADMIN for every method) is replaced by authz_filter, which
         * knows lvss and lvss-admin. */
        if (r >= 0)
                r = sd_bus_set_trusted(c->bus, true);
        if (r >= 0)
                r = sd_bus_negotiate_creds(c->bus, 1,
                                           SD_BUS_CREDS_UID | SD_BUS_CREDS_GID | SD_BUS_CREDS_PID);
        if (r >= 0)
                r = attach_objects(m, c->bus);
        if (r >= 0)
                r = sd_bus_add_match(c->bus, NULL,
                                     "type='signal',path='/org/freedesktop/DBus/Local',"
                                     "interface='org.freedesktop.DBus.Local',member='Disconnected'",
                                     on_disconnected, c);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_start(c->bus);
        if (r < 0) {
                if (cfd >= 0)
                        close(cfd);
                sd_bus_flush_close_unref(c->bus);
                free(c);
                return 0;
        }
        c->next = m->conns;
        if (m->conns)
                m->conns->prev = c;
        m->conns = c;
        m->n_conns++;
        return 0;
}

/* After every dispatch: lets each connection process what it already holds in its buffer. A
 * client may send its first call in the same write as the handshake's BEGIN; sd-bus (252) then
 * keeps those bytes buffered after the handshake and, as the socket has nothing more to read,
 * would not look at them until the client sends again. */
static int on_post(sd_event_source *s, void *userdata) {
        struct manager *m = userdata;
        sd_bus *buses[LVSS_MAX_CONNECTIONS + LVSS_ROOT_RESERVE_CONNECTIONS];
        size_t n = 0;
        for (struct conn *c = m->conns; c && n < ELEMENTSOF(buses); c = c->next)
                buses[n++] = sd_bus_ref(c->bus);
        for (size_t i = 0; i < n; i++) {
                for (int k = 0; k < 64 && sd_bus_process(buses[i], NULL) > 0; k++)
                        ;
                sd_bus_unref(buses[i]);
        }
        return 0;
}

int manager_dbus_listen(struct manager *m, int fd) {
        int r = sd_event_add_io(m->event, &m->listen_source, fd, EPOLLIN, on_connection, m);
        if (r >= 0)
                r = sd_event_add_post(m->event, &m->post_source, on_post, m);
        return r;
}

int manager_dbus_system_bus(struct manager *m) {
        int r = sd_bus_open_system(&m->system_bus);
        if (r < 0)
                return r;
        r = attach_objects(m, m->system_bus);
        if (r >= 0)
                r = sd_bus_request_name(m->system_bus, "org.lvss", 0);
        if (r >= 0)
                r = sd_bus_attach_event(m->system_bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                m->system_bus = sd_bus_flush_close_unref(m->system_bus);
        return r;
}

void manager_dbus_done(struct manager *m) {
        while (m->conns)
                conn_free(m->conns);
        m->listen_source = sd_event_source_unref(m->listen_source);
        m->post_source = sd_event_source_unref(m->post_source);
        m->system_bus = sd_bus_flush_close_unref(m->system_bus);
}

void manager_lookup_groups(struct manager *m) {
        struct group *g = getgrnam(m->socket_group ? m->socket_group : "lvss");
        m->gid_read = g ? g->gr_gid : (gid_t) -1;
        g = getgrnam("lvss-admin");
        m->gid_admin = g ? g->gr_gid : (gid_t) -1;
        g = getgrnam("lvss-writers");
        m->gid_writers = g ? g->gr_gid : (gid_t) -1;
}
