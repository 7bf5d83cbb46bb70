/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The backup history: for each set of targets, the backups made of it (full, incremental,
 * differential, log; never copy), oldest first, so that `lvss backup` can find the base of the
 * next one. A convenience only: every backup directory names its own base, and a restore needs
 * the directories alone.
 *
 * The key of a history is the sorted, de-duplicated list of the targets' volume names joined by
 * commas. STATE/backup-history is a text file, written whole to backup-history.new, synced and
 * renamed into place:
 *
 *     lvss-backup-history 1
 *     backup KEY ID TYPE CREATED_USEC DIR
 *
 * in the order recorded (newest last), at most HISTORY_MAX_PER_KEY lines per key. DIR is absolute,
 * every byte outside '!'..'~' and every '%' written as %XX (two upper-case hex digits).
 *
 * The parser takes untrusted bytes (fuzz/fuzz-history.c): a line it does not understand makes
 * history_load fail with -EBADMSG, changing nothing.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTORY_MAX_PER_KEY 1000u
#define HISTORY_MAX_VOLUMES 64u

struct history_entry {
        char *key; /* "a,b,c" */
        char *id; /* the backup's id, 8-4-4-4-12 */
        char *type; /* full, incremental, differential or log */
        char *dir; /* absolute */
        uint64_t created_usec;
};

struct history {
        struct history_entry *entries; /* oldest first */
        size_t n_entries;
};

/* Fills H (zero-initialised) from PATH; a missing file is an empty history. */
int history_load(struct history *h, const char *path);
/* Parses LEN bytes of BUF into H (zero-initialised); -EBADMSG for anything malformed. */
int history_parse(struct history *h, const char *buf, size_t len);
/* Writes H to PATH atomically (PATH.new, fsync, rename, fsync of the directory). */
int history_save(const struct history *h, const char *path);
void history_release(struct history *h);

/* The key of VOLUMES (NULL-terminated), in *RET (the caller frees it); -EINVAL if a name is not a
 * volume name, or there are none or more than HISTORY_MAX_VOLUMES. */
int history_key(char *const *volumes, char **ret);

/* True if TYPE may be recorded: full, incremental, differential or log. */
bool history_type_valid(const char *type);

/* Appends an entry to KEY's history and saves H to PATH, dropping KEY's oldest entry beyond
 * HISTORY_MAX_PER_KEY; on failure H is as it was. -EINVAL for an invalid id, type or dir. */
int history_record(struct history *h, const char *path, const char *key, const char *id, const char *type,
                   const char *dir, uint64_t created_usec);

/* The newest entry of KEY that a backup of TYPE may build on (full, incremental or log for an
 * incremental or log; full for a differential) whose DIR still holds a backup.xml; NULL if none. */
const struct history_entry *history_find_base(const struct history *h, const char *key, const char *type);
