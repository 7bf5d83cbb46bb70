/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every verb of lvss shares: the exit codes of shared/CLI.md, error
 * reporting at the edge, the verb tables and their option parsing, the
 * connection to lvssd and its errors, aligned tables and a small JSON
 * writer. Verbs return an exit code (CLI_EXIT_*), already reported.
 */

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#include "common/macro.h"

enum {
        CLI_EXIT_OK = 0,
        CLI_EXIT_FAILED = 1,
        CLI_EXIT_USAGE = 2,
        CLI_EXIT_NOT_FOUND = 3,
        CLI_EXIT_WRITER = 4,
        CLI_EXIT_TIMEOUT = 5,
        CLI_EXIT_NO_SPACE = 6,
        CLI_EXIT_ACCESS = 7,
        CLI_EXIT_UNREACHABLE = 8,
};

#define CLI_DEFAULT_SOCKET "/run/lvss/lvssd.sock"
#define CLI_UNBOUNDED UINT64_MAX
#define CLI_USEC_PER_SEC 1000000ull

/* Global options, set by main() and by any verb's options. */
extern bool cli_arg_json;
extern const char *cli_arg_socket;

/* Prints "lvss: MESSAGE" on stderr and returns CODE, for "return cli_fail(...)". */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- verbs -------------------------------------------------------------------------------------- */

typedef struct cli_verb cli_verb;
struct cli_verb {
        const char *name;
        const char *args; /* synopsis after the verb's name */
        const char *summary; /* one line */
        const char *options; /* --help lines for the verb's own options, or NULL */
        int min_args, max_args; /* positional arguments after the name; max -1: any number */
        int (*run)(int argc, char **argv); /* argv[0] is the verb's name */
        const cli_verb *const *sub; /* a verb group: one of these follows the name */
        size_t n_sub;
};

/* Runs the verb named ARGV[0] from VERBS (descending into groups), PREFIX being the words before it
 * ("" at the top). Returns the verb's exit code. */
int cli_run_verb(const cli_verb *const *verbs, size_t n_verbs, const char *prefix, int argc, char **argv);

/* Prints the help of the top-level verb table (for "lvss --help"). */
void cli_print_verbs(FILE *f, const cli_verb *const *verbs, size_t n_verbs, const char *prefix);

/* Options every verb takes, to end its option table with. */
enum { CLI_OPT_HELP = 'h', CLI_OPT_JSON = 0x100, CLI_OPT_SOCKET, CLI_OPT_FIRST_VERB_OPTION };
#define CLI_COMMON_OPTIONS                                                                                  \
        { "json", no_argument, NULL, CLI_OPT_JSON }, { "socket", required_argument, NULL, CLI_OPT_SOCKET }, \
        {                                                                                                   \
                "help", no_argument, NULL, CLI_OPT_HELP                                                     \
        }

/* Handles C if it is a common option or a getopt error: returns 1 if handled, -1 if the verb must
 * stop with *RET (after --help or a usage error), 0 if C is the verb's own. */
int cli_common_option(int c, int *ret);

/* Parses the options of a verb that has only the common ones and checks its argument count; false
 * with the exit code in *RET when the verb must stop here. */
bool cli_parse_plain_verb(int argc, char **argv, int *ret);

/* After the verb's getopt loop: checks the number of positional arguments; 0 or the usage error. */
int cli_check_args(int argc, char **argv);

/* The name of the running verb, as typed ("volume create"). */
const char *cli_verb_name(void);

/* Reports a usage error of the running verb: "MESSAGE: usage is 'lvss VERB ARGS'". */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- argument checks (0, or the usage error reported) ------------------------------------------- */

/* [A-Za-z0-9][A-Za-z0-9._-]{0,63} */
bool cli_volume_name_is_valid(const char *s);
int cli_check_volume_name(const char *s);

/* backup, file-share-backup, app-rollback, nas-rollback or client-accessible. */
bool cli_context_is_valid(const char *s);

/* A set or shadow id: a UUID, or a prefix of one of at least 8 characters. */
bool cli_id_is_valid(const char *s);
int cli_check_id(const char *what, const char *s);

/* A byte count with an optional K, M, G or T suffix; with ALLOW_UNBOUNDED also "unbounded"
 * (CLI_UNBOUNDED). */
int cli_parse_size_option(const char *option, const char *value, bool allow_unbounded, uint64_t *ret);

/* A TARGET as lvssd wants it: a volume name as is, a path made absolute (lvssd does not share our
 * working directory). Returns 0 with *RET allocated, or the usage error reported. */
int cli_target_arg(const char *arg, char **ret);

/* A path argument made absolute (resolved when it exists); 0, or the error reported. */
int cli_path_arg(const char *arg, char **ret);

/* ---- lvssd -------------------------------------------------------------------------------------- */

/* Connects to lvssd at cli_arg_socket; 0, or the exit code with the problem reported. */
int cli_connect(sd_bus **ret_bus);

/* The exit code for a D-Bus error name (NULL: CLI_EXIT_FAILED). */
int cli_exit_for_error_name(const char *name);

/* Calls METHOD of org.lvss.Manager1 with arguments TYPES...; 0 with *RET_REPLY (may be NULL), or the
 * exit code with lvssd's error reported. */
int cli_call(sd_bus *bus, const char *method, sd_bus_message **ret_reply, const char *types, ...);

/* Sends the method call M and waits up to TIMEOUT_USEC (0: the default) for the reply. If PROGRESS
 * is not NULL and stderr is a terminal, prints it on stderr when the reply takes more than 1 s. */
int cli_call_message(sd_bus *bus, sd_bus_message *m, uint64_t timeout_usec, const char *progress,
                     sd_bus_message **ret_reply);

/* Creates a method call of org.lvss.Manager1 to fill in; 0, or the exit code reported. */
int cli_new_call(sd_bus *bus, const char *method, sd_bus_message **ret);

/* Reports a failure to build a call or parse lvssd's reply (r < 0); returns CLI_EXIT_FAILED. */
int cli_bus_parse_error(int r);

/* Reads the string property PROPERTY of INTERFACE on the object PATH; 0 with *RET allocated, or the
 * exit code reported. */
int cli_get_property_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            char **ret);

/* Resolves TARGET (volume name or path) to a volume name with ResolveTarget; 0 or exit code. */
int cli_resolve_target(sd_bus *bus, const char *target, char **ret_volume);

/* ---- output -------------------------------------------------------------------------------------- */

/* A table of strings printed with aligned columns under a header row. */
typedef struct cli_table cli_table;

/* A table with the given column headers (NULL-terminated); NULL on OOM. */
cli_table *cli_table_new(const char *header, ...) __attribute__((sentinel));
cli_table *cli_table_free(cli_table *t);
/* Right-aligns column COL (numbers, sizes). */
void cli_table_align_right(cli_table *t, size_t col);
/* Adds a row of exactly as many cells as columns (NULL prints "-"); 0 or -ENOMEM. */
int cli_table_add(cli_table *t, ...);
size_t cli_table_rows(const cli_table *t);
/* Prints the header and the rows, columns separated by two spaces, no trailing blanks. */
int cli_table_print(const cli_table *t, FILE *f);
/* Display width of S: UTF-8 code points. */
size_t cli_text_width(const char *s);

static inline void cli_table_freep(cli_table **t) {
        cli_table_free(*t);
}

/* A JSON writer that places commas and colons. Errors show in the stream (ferror). */
typedef struct cli_json {
        FILE *f;
        char *buf; /* with cli_json_open(): the document so far */
        size_t size;
        bool in_memory;
        unsigned depth;
        bool first[32]; /* per depth: no value written yet */
        bool after_key;
} cli_json;

/* Starts a document written to F. */
void cli_json_init(cli_json *j, FILE *f);
/* Starts a document held in memory until cli_json_emit(), so that a verb failing half-way prints
 * none of it; 0 or -ENOMEM. */
int cli_json_open(cli_json *j);
/* Writes the document of cli_json_open() and a newline to stdout, and releases it; 0 or -EIO. */
int cli_json_emit(cli_json *j);
/* Releases a document of cli_json_open() not emitted; for _cleanup_(cli_json_release). */
void cli_json_release(cli_json *j);
void cli_json_begin_object(cli_json *j);
void cli_json_end_object(cli_json *j);
void cli_json_begin_array(cli_json *j);
void cli_json_end_array(cli_json *j);
void cli_json_key(cli_json *j, const char *key);
void cli_json_string(cli_json *j, const char *s);
void cli_json_uint(cli_json *j, uint64_t v);
void cli_json_bool(cli_json *j, bool b);
void cli_json_null(cli_json *j);
/* A size, or null when unbounded. */
void cli_json_limit(cli_json *j, uint64_t v);
/* Microseconds as milliseconds with 3 decimals. */
void cli_json_msec(cli_json *j, uint64_t usec);
/* A CLOCK_REALTIME time in microseconds as an RFC 3339 string. */
void cli_json_time(cli_json *j, uint64_t usec);
/* Ends the document with a newline. */
void cli_json_finish(cli_json *j);

/* Human forms. */
const char *cli_format_limit(char *buf, size_t len, uint64_t v); /* a size or "unbounded" */
#define CLI_FORMAT_LIMIT(v) cli_format_limit((char[32]){}, 32, (v))
const char *cli_format_time(char *buf, size_t len, uint64_t usec); /* RFC 3339, "-" for 0 */
#define CLI_FORMAT_TIME(usec) cli_format_time((char[48]){}, 48, (usec))
const char *cli_format_msec(char *buf, size_t len, uint64_t usec); /* "12.345 ms" */
#define CLI_FORMAT_MSEC(usec) cli_format_msec((char[32]){}, 32, (usec))

/* sd-bus cleanup helpers (macro.h has none). */
static inline void cli_bus_unrefp(sd_bus **b) {
        sd_bus_flush_close_unref(*b);
}
static inline void cli_bus_message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}
static inline void cli_strvp(char ***p) {
        if (*p)
                for (char **s = *p; *s; s++)
                        free(*s);
        free(*p);
}
/* Appends to M, inside an open a{sv}, the entry {KEY: as L}; a negative errno from sd-bus. */
int cli_append_strv_option(sd_bus_message *m, const char *key, char **l);
/* Appends a copy of S to the NULL-terminated list *L; -ENOMEM. */
int cli_strv_push(char ***l, const char *s);
#define _cleanup_bus_ _cleanup_(cli_bus_unrefp)
#define _cleanup_bus_message_ _cleanup_(cli_bus_message_unrefp)
#define _cleanup_bus_error_ _cleanup_(sd_bus_error_free)
#define _cleanup_table_ _cleanup_(cli_table_freep)
#define _cleanup_strv_ _cleanup_(cli_strvp)
