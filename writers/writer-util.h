/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the writers lvss ships (lvss-writer-exec, -sqlite, -postgres) have in common: their
 * messages, the deadline of an event, option values, components named after paths, creating the
 * writer, and serving lvssd until a signal. Prefix wu_ (writer utilities). Not a library of its
 * own: a static archive linked into each program, which defines wu_program.
 *
 * One thread, as the writers: nothing here locks. Messages go to stderr, one line each, starting
 * with "PROGRAM: ".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lvss/writer.h>

/* Exit code of a usage error (an unknown option, a bad value); 0 and 1 are EXIT_SUCCESS and
 * EXIT_FAILURE. */
#define WU_EXIT_USAGE 2

/* How long an event with no deadline (liblvss's own Abort) may take: see wu_event_end(). */
#define WU_NO_DEADLINE_MS 30000u

/* The program's name ("lvss-writer-exec"), which starts every message: defined by each program. */
extern const char wu_program[];

/* Writes "PROGRAM: " and the message FMT on stderr, with a newline. */
void wu_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes the message as wu_log() does; returns WU_EXIT_USAGE, for `return wu_usage_error(...)`. */
int wu_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The monotonic clock in milliseconds. */
uint64_t wu_now_ms(void);

/* The moment (wu_now_ms() time) to have answered INFO's event by: its deadline less a margin for
 * the answer itself (a tenth, at most 250 ms). A deadline of 0 is liblvss's own Abort (freeze
 * window passed, lvssd gone), which nobody waits for: then WU_NO_DEADLINE_MS from now, so that what
 * must be undone still is. */
uint64_t wu_event_end(const struct lvss_event_info *info);

/* Parses S, seconds from 0.1 to 60 ("1", "2.5", "0.1"), into *RET_MS (rounded to the millisecond);
 * false, *RET_MS untouched, for anything else. */
bool wu_parse_seconds(const char *s, uint32_t *ret_ms);

/* A component name for the absolute PATH: its segments joined by '-' ("/srv/app" gives "srv-app",
 * "/" gives "root"). The caller frees it; NULL when out of memory. */
char *wu_name_from_path(const char *path);

/* Adds to WMD a component of TYPE under LOGICAL_PATH for PATH (its caption), selectable for backup
 * and restore, named wu_name_from_path(PATH), or with "-2", "-3", ... appended while that name is
 * taken. Its component in *RET (owned by WMD) and, if RET_NAME is not NULL, its name (the caller
 * frees it). A negative errno on failure: -ENOMEM, or that of lvss_wmd_add_component() (-EEXIST
 * once 999 names are taken); the outputs are untouched then. */
int wu_add_path_component(lvss_wmd *wmd, lvss_wmd_component_type type, const char *logical_path,
                          const char *path, lvss_wmd_component **ret, char **ret_name);

/* For getopt_long() (optstring starting with ':') answering C for no option of the program: the
 * usage error for ':' (ARGV[optind - 1] needs a value) or any other C (an unknown option), which
 * names the option and --help. Returns WU_EXIT_USAGE. */
int wu_option_error(int c, char **argv);

/* Writes "PROGRAM VERSION" on stdout, for --version. */
void wu_print_version(void);

/* Who a writer is, for wu_writer_new(). */
struct wu_identity {
        const char *name; /* --name */
        const char *class_id;
        const char *instance_name; /* may be NULL */
        const char *instance_option; /* the option giving INSTANCE_NAME ("--pgdata"), or NULL */
        lvss_writer_level level;
        uint32_t freeze_timeout_ms; /* 0: the default */
        lvss_wmd_usage usage;
        lvss_wmd_source source;
        unsigned backup_types; /* LVSS_WMD_BACKUP_* */
};

/* Creates the writer ID describes, with its level, freeze timeout, types and backup schema, into
 * *RET: 0; or, *RET untouched, the exit code after saying why: a usage error for a name (or
 * instance name) liblvss refuses, EXIT_FAILURE otherwise. */
int wu_writer_new(const struct wu_identity *id, lvss_writer **ret);

/* One callback of a writer, for wu_set_callbacks(). */
struct wu_callback {
        lvss_event event;
        lvss_writer_callback callback;
};

/* Sets the N CALLBACKS on W, all with USERDATA: 0, or a negative errno (said on stderr). */
int wu_set_callbacks(lvss_writer *w, const struct wu_callback *callbacks, size_t n, void *userdata);

/* Serves lvssd with W until a signal or lvssd's going away; returns the exit code. Connects to
 * SOCKET_PATH (NULL: $LVSS_SOCKET, else /run/lvss/lvssd.sock), says "writer 'NAME' registered
 * (DETAILS)", DETAILS formatted from DETAILS_FMT, then runs W's loop; SIGTERM, SIGINT and SIGHUP
 * end it (EXIT_SUCCESS) and SIGPIPE is ignored from the call on. EXIT_FAILURE, said for a person,
 * when lvssd is not there, refuses the writer or has a writer NAME already, when it goes away, or
 * when the loop fails. The signals do nothing more once it returns: free W after. */
int wu_serve(lvss_writer *w, const char *socket_path, const char *name, const char *details_fmt, ...)
        __attribute__((format(printf, 4, 5)));
