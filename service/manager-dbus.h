/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* lvssd's bus side (docs/dbus-api.md): connections, authorization, and the objects. */

#include <systemd/sd-bus.h>

#include "service/manager.h"

/* Serves peer-to-peer D-Bus on every connection accepted on the listening socket FD. */
int manager_dbus_listen(struct manager *m, int fd);
/* Also serves on the system bus as org.lvss. */
int manager_dbus_system_bus(struct manager *m);
/* Closes every connection. */
void manager_dbus_done(struct manager *m);
/* Looks up the gids of groups lvss (or --socket-group) and lvss-admin. */
void manager_lookup_groups(struct manager *m);

/* True if MSG came over a peer-to-peer connection of lvssd's socket (not the system bus). */
bool manager_is_peer(struct manager *m, sd_bus_message *msg);
/* The uid of the caller of MSG, (uid_t) -1 if unknown. */
uid_t manager_caller_uid(struct manager *m, sd_bus_message *msg);

/* Shared by Manager1 and Shadow1: expose and revert, answering MSG. */
int manager_method_expose(struct manager *m, sd_bus_message *msg, struct shadow *s, const char *mountpoint,
                          sd_bus_error *error);
int manager_method_revert(struct manager *m, sd_bus_message *msg, struct shadow *s, bool force,
                          sd_bus_error *error);

/* Appends V as the (sstusuttt) of ListVolumes. */
int volume_append(sd_bus_message *reply, struct manager *m, struct volume *v);

/* object-dbus.c: the per-object interfaces. */
int object_dbus_attach(struct manager *m, sd_bus *bus);
int volume_object_path(struct volume *v, char **ret);
int shadow_object_path(struct shadow *s, char **ret);
int set_object_path(struct sset *s, char **ret);
