/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The verbs of lvss, one group per file (cli-volume.c, cli-shadow.c,
 * cli-list.c), listed by lvss.c's table.
 */

#include "cli/cli-util.h"

/* cli-volume.c: "volume create|list|delete|path". */
extern const cli_verb cli_verb_volume;
/* Runs "list volumes" and "volume list". */
int cli_volume_list(int argc, char **argv);

/* cli-shadow.c: the shadow copy verbs, and "shadow path|list". */
extern const cli_verb cli_verb_create;
extern const cli_verb cli_verb_delete;
extern const cli_verb cli_verb_expose;
extern const cli_verb cli_verb_unexpose;
extern const cli_verb cli_verb_revert;
extern const cli_verb cli_verb_shadow;
/* Runs "list shadows" and "shadow list". */
int cli_shadow_list(int argc, char **argv);

/* cli-list.c: "list volumes|shadows|storage|providers|writers|sets", "storage list|resize". */
extern const cli_verb cli_verb_list;
extern const cli_verb cli_verb_storage;
/* cli-list.c: "writer list|metadata". */
extern const cli_verb cli_verb_writer;
/* cli-backup.c: "backup [verify]", "restore". */
extern const cli_verb cli_verb_backup;
extern const cli_verb cli_verb_restore;
