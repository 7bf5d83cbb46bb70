/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Manager1's writer methods (docs/dbus-api.md, "Writers"): RegisterWriter, UnregisterWriter,
 * ListWriters, GetWriterMetadata, and the events a requester asks lvssd to deliver outside a set:
 * CompleteBackup (BackupComplete, then BackupShutdown, to the writers that took part in a set)
 * and PreRestore/PostRestore (to one writer, with the components and backup metadata of a
 * restore). Each answers later, once every writer called has answered or passed its deadline.
 */

#include <systemd/sd-bus.h>

int method_register_writer(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_unregister_writer(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_writers(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_get_writer_metadata(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_complete_backup(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_pre_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_post_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error);
