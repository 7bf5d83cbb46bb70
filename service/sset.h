/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Creating a shadow copy set: one point in time over up to 64 volumes.
 *
 * sset_start() checks the request on the main thread (targets, context, the filesystems to
 * freeze, never lvssd's own), then runs the flush-and-hold sequence on a thread of its own, which
 * is neither a FUSE worker nor the main loop (FIFREEZE waits for the frozen filesystem's flush to
 * come back through lvssd's FUSE workers):
 *
 *     syncfs each filesystem (again while the passes converge) → FIFREEZE all at once, a thread
 *     each → hold each volume's writes → snapshot each → release each → FITHAW each
 *
 * A watchdog thread thaws every filesystem frozen so far if the window passes
 * LVSS_HOLD_WINDOW_MS (or lvssd's --freeze-timeout); the engine's holds lift by themselves at the same
 * deadline. Any failure deletes the snapshots already made: a set is whole or absent. The main loop hears of
 * the end through an eventfd, adds the shadows to the model (and to the catalog, for a persistent context)
 * and only then answers the D-Bus call.
 *
 * With writers (a context that has them, and no NoWriters option), the main loop first drives
 * them through Identify, PrepareForBackup, PrepareForSnapshot and Freeze (front-end, back-end,
 * system), each step a round of calls in parallel with deadlines (writers.h); the thread's
 * sequence above then runs, and the writers get Thaw (in reverse order), the shadows are recorded,
 * and the writers get PostSnapshot. A failure that counts (docs/dbus-api.md, "Writers") at any
 * step sends Abort to every prepared writer and discards the set.
 *
 * One set at a time: sset_start() fails with -EBUSY (org.lvss.Error.Busy) while one runs.
 */

#include <systemd/sd-bus.h>

#include "service/manager.h"

/* CreateShadowSet's options (docs/dbus-api.md). */
struct sset_options {
        bool no_writers;
        bool persistent; /* persistent shadows whatever the context (image backups keep theirs) */
        bool auto_release; /* the set goes when its requester's connection closes */
        const char *backup_type; /* validated by the caller */
        char **writers; /* required writers (NULL: none named) */
        char **exclude; /* writers whose failure never fails the set */
};

/* Starts creating a set for the method call MSG (CreateShadowSet), which it answers later. */
int sset_start(struct manager *m, sd_bus_message *msg, char **targets, lvss_context ctx,
               const struct sset_options *o, sd_bus_error *error);

/* The connection of serial OWNER closed: a set it asked for and that is still being made is
 * abandoned at its next step (writers told Abort, snapshots discarded). */
void sset_requester_gone(struct manager *m, uint64_t owner);

/* Asks a set being created to stop at its next step, and waits until everything is thawed and
 * the call answered (used at SIGTERM). */
void sset_abort_and_wait(struct manager *m);
