/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The shared machinery of lvss (see cli-util.h): verb dispatch and option
 * parsing, argument checks, the connection to lvssd and the mapping of its
 * errors to exit codes, aligned tables and a JSON writer.
 *
 * Invariant: every function that returns an exit code has already printed
 * the one sentence that explains it; helpers returning negative errno
 * (tables) print nothing. Single-threaded: the running verb is global state.
 */

#include "cli/cli-util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "tools/tool-util.h"

bool cli_arg_json = false;
const char *cli_arg_socket = NULL;

/* The leaf verb running, and its name as typed ("volume create"). */
static const cli_verb *current_verb;
static char current_name[128];
static char **current_argv; /* the argv getopt is parsing, for error messages */

int cli_fail(int code, const char *fmt, ...) {
        int saved_errno = errno; /* for %m */
        va_list ap;

        fflush(stdout);
        fputs("lvss: ", stderr);
        errno = saved_errno;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

static bool streq(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return s && strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* ---- verbs -------------------------------------------------------------------------------------- */

const char *cli_verb_name(void) {
        return current_name;
}

static void print_common_options(FILE *f) {
        fputs("      --json               print one JSON document on stdout\n"
              "      --socket PATH        lvssd's socket (default $LVSS_SOCKET, else " CLI_DEFAULT_SOCKET
              ")\n"
              "  -h, --help               show this help\n",
              f);
}

static void print_leaf_help(const cli_verb *v, const char *name) {
        printf("Usage: lvss [--socket PATH] [--json] %s%s%s\n\n%s\n\nOptions:\n", name, *v->args ? " " : "",
               v->args, v->summary);
        if (v->options)
                fputs(v->options, stdout);
        print_common_options(stdout);
}

void cli_print_verbs(FILE *f, const cli_verb *const *verbs, size_t n_verbs, const char *prefix) {
        for (size_t i = 0; i < n_verbs; i++) {
                const cli_verb *v = verbs[i];
                char name[128];

                snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? " " : "", v->name);
                if (v->sub) {
                        cli_print_verbs(f, v->sub, v->n_sub, name);
                        continue;
                }
                fprintf(f, "  %s%s%s\n      %s\n", name, *v->args ? " " : "", v->args, v->summary);
        }
}

static void print_group_help(const cli_verb *g, const char *name) {
        printf("Usage: lvss [--socket PATH] [--json] %s VERB [ARGS...]\n\n%s\n\nVerbs:\n", name, g->summary);
        cli_print_verbs(stdout, g->sub, g->n_sub, name);
        printf("\nOptions:\n");
        print_common_options(stdout);
        printf("\n'lvss %s VERB --help' shows the options of a verb.\n", name);
}

static const cli_verb *find_verb(const cli_verb *const *verbs, size_t n_verbs, const char *name) {
        for (size_t i = 0; i < n_verbs; i++)
                if (streq(verbs[i]->name, name))
                        return verbs[i];
        return NULL;
}

int cli_run_verb(const cli_verb *const *verbs, size_t n_verbs, const char *prefix, int argc, char **argv) {
        const cli_verb *v;
        char name[128];
        int i;

        if (argc < 1 || !argv[0])
                return cli_fail(CLI_EXIT_USAGE, "missing verb: 'lvss %s%s--help' lists the verbs", prefix,
                                *prefix ? " " : "");
        v = find_verb(verbs, n_verbs, argv[0]);
        if (!v)
                return cli_fail(CLI_EXIT_USAGE, "unknown verb '%s%s%s': 'lvss %s%s--help' lists the verbs",
                                prefix, *prefix ? " " : "", argv[0], prefix, *prefix ? " " : "");
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? " " : "", v->name);

        if (!v->sub) {
                current_verb = v;
                snprintf(current_name, sizeof current_name, "%s", name);
                current_argv = argv;
                optind = 0; /* full reinitialization of getopt for the verb's own options */
                opterr = 0;
                return v->run(argc, argv);
        }

        /* A group: common options may come before the sub-verb ("lvss list --json volumes"). */
        for (i = 1; i < argc && argv[i][0] == '-'; i++) {
                const char *value;

                if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        print_group_help(v, name);
                        return CLI_EXIT_OK;
                } else if (streq(argv[i], "--json"))
                        cli_arg_json = true;
                else if ((value = startswith(argv[i], "--socket=")))
                        cli_arg_socket = value;
                else if (streq(argv[i], "--socket")) {
                        if (i + 1 >= argc)
                                return cli_fail(
                                        CLI_EXIT_USAGE,
                                        "option '--socket' needs a value: 'lvss %s --help' shows the "
                                        "options",
                                        name);
                        cli_arg_socket = argv[++i];
                } else
                        return cli_fail(CLI_EXIT_USAGE,
                                        "unknown option '%s': 'lvss %s --help' shows the options", argv[i],
                                        name);
        }
        if (i >= argc)
                return cli_fail(CLI_EXIT_USAGE, "missing verb after '%s': 'lvss %s --help' lists the verbs",
                                name, name);
        if (streq(argv[i], "help")) {
                print_group_help(v, name);
                return CLI_EXIT_OK;
        }
        return cli_run_verb(v->sub, v->n_sub, name, argc - i, argv + i);
}

static int report_bad_option(int c) {
        const char *last = optind > 0 && current_argv ? current_argv[optind - 1] : "";
        char opt[64];

        if (startswith(last, "--"))
                snprintf(opt, sizeof opt, "%.*s", (int) strcspn(last, "="), last);
        else
                snprintf(opt, sizeof opt, "-%c", optopt > 0 && optopt < 128 ? optopt : '?');
        if (c == ':')
                return cli_fail(CLI_EXIT_USAGE,
                                "option '%s' needs a value: 'lvss %s --help' shows the options", opt,
                                current_name);
        return cli_fail(CLI_EXIT_USAGE, "unknown option '%s': 'lvss %s --help' shows the options", opt,
                        current_name);
}

int cli_common_option(int c, int *ret) {
        switch (c) {
        case CLI_OPT_JSON:
                cli_arg_json = true;
                return 1;
        case CLI_OPT_SOCKET:
                cli_arg_socket = optarg;
                return 1;
        case CLI_OPT_HELP:
                print_leaf_help(current_verb, current_name);
                *ret = CLI_EXIT_OK;
                return -1;
        case ':':
        case '?':
                *ret = report_bad_option(c);
                return -1;
        default:
                return 0;
        }
}

int cli_usage_error(const char *fmt, ...) {
        va_list ap;

        fflush(stdout);
        fputs("lvss: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": usage is 'lvss %s%s%s'\n", current_name, *current_verb->args ? " " : "",
                current_verb->args);
        return CLI_EXIT_USAGE;
}

int cli_check_args(int argc, char **argv) {
        int n = argc - optind;

        if (n < current_verb->min_args)
                return cli_usage_error("%s: missing argument", current_name);
        if (current_verb->max_args >= 0 && n > current_verb->max_args)
                return cli_usage_error("%s: unexpected argument '%s'", current_name,
                                       argv[optind + current_verb->max_args]);
        return 0;
}

bool cli_parse_plain_verb(int argc, char **argv, int *ret) {
        static const struct option options[] = { CLI_COMMON_OPTIONS, {} };
        int c;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                if (cli_common_option(c, ret) < 0)
                        return false;
        *ret = cli_check_args(argc, argv);
        return *ret == 0;
}

/* ---- argument checks ---------------------------------------------------------------------------- */

static bool is_alnum(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool cli_volume_name_is_valid(const char *s) {
        size_t n;

        if (!s || !is_alnum(s[0]))
                return false;
        for (n = 1; s[n]; n++)
                if (!is_alnum(s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
                        return false;
        return n <= 64;
}

int cli_check_volume_name(const char *s) {
        if (cli_volume_name_is_valid(s))
                return 0;
        return cli_fail(
                CLI_EXIT_USAGE,
                "invalid volume name '%s': use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit",
                s);
}

bool cli_context_is_valid(const char *s) {
        static const char *const contexts[] = { "backup", "file-share-backup", "app-rollback",
                                                "nas-rollback", "client-accessible" };

        for (size_t i = 0; i < ELEMENTSOF(contexts); i++)
                if (streq(s, contexts[i]))
                        return true;
        return false;
}

bool cli_id_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        return n >= 8 && n <= 36 && strspn(s, "0123456789abcdefABCDEF-") == n;
}

int cli_check_id(const char *what, const char *s) {
        if (cli_id_is_valid(s))
                return 0;
        return cli_fail(
                CLI_EXIT_USAGE,
                "invalid %s id '%s': give the id, or a unique prefix of it of at least 8 characters, as "
                "shown by 'lvss list %ss'",
                what, s, streq(what, "set") ? "set" : "shadow");
}

int cli_parse_size_option(const char *option, const char *value, bool allow_unbounded, uint64_t *ret) {
        int r = allow_unbounded ? tool_parse_limit(value, ret) : tool_parse_size(value, ret);

        if (r == -ERANGE)
                return cli_fail(CLI_EXIT_USAGE, "%s '%s' is too large: give at most 16E", option, value);
        if (r < 0)
                return cli_fail(
                        CLI_EXIT_USAGE,
                        "invalid %s '%s': give a number of bytes, optionally with a K, M, G or T suffix "
                        "(powers of 1024)%s",
                        option, value, allow_unbounded ? ", or 'unbounded'" : "");
        return 0;
}

int cli_path_arg(const char *arg, char **ret) {
        char cwd[PATH_MAX];
        char *p;

        p = realpath(arg, NULL);
        if (!p && arg[0] == '/')
                p = strdup(arg);
        else if (!p) {
                if (!getcwd(cwd, sizeof cwd))
                        return cli_fail(CLI_EXIT_FAILED,
                                        "cannot make '%s' absolute: %m: give an absolute path", arg);
                if (asprintf(&p, "%s/%s", cwd, arg) < 0)
                        p = NULL;
        }
        if (!p)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        *ret = p;
        return 0;
}

int cli_target_arg(const char *arg, char **ret) {
        char *p;

        if (cli_volume_name_is_valid(arg)) {
                p = strdup(arg);
                if (!p)
                        return cli_fail(CLI_EXIT_FAILED, "out of memory");
                *ret = p;
                return 0;
        }
        if (strchr(arg, '/') || streq(arg, ".") || streq(arg, ".."))
                return cli_path_arg(arg, ret);
        return cli_fail(
                CLI_EXIT_USAGE,
                "invalid target '%s': give a volume name (letters, digits, '.', '_', '-'; at most 64) or "
                "the path of a mounted filesystem",
                arg);
}

/* ---- lvssd -------------------------------------------------------------------------------------- */

int cli_connect(sd_bus **ret_bus) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_free_ char *address = NULL;
        const char *socket = cli_arg_socket;
        int r;

        if (!socket || !*socket)
                socket = getenv("LVSS_SOCKET");
        if (!socket || !*socket)
                socket = CLI_DEFAULT_SOCKET;
        if (strlen(socket) >= 108)
                return cli_fail(CLI_EXIT_USAGE,
                                "socket path '%s' is too long for a unix socket: give a shorter one",
                                socket);
        if (asprintf(&address, "unix:path=%s", socket) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");

        r = sd_bus_new(&bus);
        if (r < 0)
                return cli_fail(CLI_EXIT_FAILED, "cannot create a bus connection: %s", strerror(-r));
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return cli_fail(CLI_EXIT_USAGE, "invalid socket path '%s': %s: give another", socket,
                                strerror(-r));
        (void) sd_bus_set_method_call_timeout(bus, 120 * CLI_USEC_PER_SEC);
        r = sd_bus_start(bus);
        switch (-r) {
        case 0:
                break;
        case ENOENT:
                return cli_fail(
                        CLI_EXIT_UNREACHABLE,
                        "lvssd is not running (no socket at %s): start it with `systemctl start lvssd` or "
                        "`lvssd`",
                        socket);
        case ECONNREFUSED:
                return cli_fail(
                        CLI_EXIT_UNREACHABLE,
                        "lvssd is not running (nothing listens on %s): start it with `systemctl start "
                        "lvssd` or `lvssd`",
                        socket);
        case EACCES:
        case EPERM:
                return cli_fail(CLI_EXIT_ACCESS,
                                "you may not use lvssd's socket %s: ask to be added to group lvss", socket);
        default:
                return cli_fail(CLI_EXIT_UNREACHABLE,
                                "cannot connect to lvssd at %s: %s: check --socket or $LVSS_SOCKET", socket,
                                strerror(-r));
        }
        *ret_bus = TAKE_PTR(bus);
        return 0;
}

int cli_exit_for_error_name(const char *name) {
        static const struct {
                const char *name;
                int code;
        } map[] = {
                { "org.lvss.Error.InvalidArgument", CLI_EXIT_USAGE },
                { "org.lvss.Error.NotFound", CLI_EXIT_NOT_FOUND },
                { "org.lvss.Error.Exists", CLI_EXIT_FAILED },
                { "org.lvss.Error.Busy", CLI_EXIT_FAILED },
                { "org.lvss.Error.Failed", CLI_EXIT_FAILED },
                { "org.lvss.Error.WriterFailed", CLI_EXIT_WRITER },
                { "org.lvss.Error.Timeout", CLI_EXIT_TIMEOUT },
                { "org.lvss.Error.NoSpace", CLI_EXIT_NO_SPACE },
                { "org.lvss.Error.AccessDenied", CLI_EXIT_ACCESS },
                /* What sd-bus itself answers for a denied or timed out call. */
                { "org.freedesktop.DBus.Error.AccessDenied", CLI_EXIT_ACCESS },
                { "org.freedesktop.DBus.Error.NoReply", CLI_EXIT_TIMEOUT },
                { "org.freedesktop.DBus.Error.Timeout", CLI_EXIT_TIMEOUT },
        };

        for (size_t i = 0; name && i < ELEMENTSOF(map); i++)
                if (streq(name, map[i].name))
                        return map[i].code;
        return CLI_EXIT_FAILED;
}

/* Reports the failure R (with error E, maybe unset) of METHOD; returns the exit code. */
static int report_call_error(sd_bus *bus, const char *method, int r, const sd_bus_error *e) {
        const char *name = sd_bus_error_is_set(e) ? e->name : NULL;
        const char *message = e && e->message && *e->message ? e->message : NULL;
        int code = cli_exit_for_error_name(name);

        if (startswith(name, "org.lvss.Error.")) {
                if (message)
                        return cli_fail(code, "%s", message);
                return cli_fail(code, "lvssd failed %s (%s): see its log (journalctl -u lvssd)", method,
                                name);
        }
        if (!sd_bus_is_open(bus) || r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE)
                return cli_fail(
                        CLI_EXIT_UNREACHABLE,
                        "lvssd closed the connection during %s: see its log (journalctl -u lvssd) and start "
                        "it again if it stopped",
                        method);
        if (code == CLI_EXIT_TIMEOUT || r == -ETIMEDOUT)
                return cli_fail(CLI_EXIT_TIMEOUT,
                                "lvssd did not answer %s in time: see its log (journalctl -u lvssd)",
                                method);
        if (code == CLI_EXIT_ACCESS)
                return cli_fail(CLI_EXIT_ACCESS, "you may not call %s: ask to be added to group lvss-admin",
                                method);
        if (streq(name, SD_BUS_ERROR_UNKNOWN_METHOD) || streq(name, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
            streq(name, SD_BUS_ERROR_UNKNOWN_INTERFACE) || streq(name, SD_BUS_ERROR_INVALID_ARGS))
                return cli_fail(CLI_EXIT_FAILED,
                                "lvssd does not support %s as this lvss calls it (%s): run lvss and "
                                "lvssd of the same version",
                                method, message ? message : name);
        if (name)
                return cli_fail(CLI_EXIT_FAILED, "%s failed: %s (%s)", method,
                                message ? message : "no reason given", name);
        return cli_fail(CLI_EXIT_FAILED, "%s failed: %s", method, strerror(-r));
}

int cli_bus_parse_error(int r) {
        return cli_fail(CLI_EXIT_FAILED,
                        "cannot understand lvssd's reply: %s: run lvss and lvssd of the same version",
                        strerror(-r));
}

int cli_new_call(sd_bus *bus, const char *method, sd_bus_message **ret) {
        int r = sd_bus_message_new_method_call(bus, ret, NULL, "/org/lvss", "org.lvss.Manager1", method);

        if (r < 0)
                return cli_fail(CLI_EXIT_FAILED, "cannot create the call %s: %s", method, strerror(-r));
        return 0;
}

struct async_call {
        sd_bus_message *reply;
        const char *progress;
};

static int on_async_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct async_call *c = userdata;

        c->reply = sd_bus_message_ref(m);
        return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
}

static int on_progress_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct async_call *c = userdata;

        fprintf(stderr, "%s\n", c->progress);
        return 0;
}

static void event_unrefp(sd_event **e) {
        sd_event_unref(*e);
}

static void event_source_unrefp(sd_event_source **s) {
        sd_event_source_unref(*s);
}

static void slot_unrefp(sd_bus_slot **s) {
        sd_bus_slot_unref(*s);
}

/* Sends M and runs an event loop until its reply, printing the progress line after 1 s. Returns 0
 * with the reply (which may be an error reply) in *RET_REPLY, or a negative errno. */
static int call_with_progress(sd_bus *bus, sd_bus_message *m, uint64_t timeout_usec, const char *progress,
                              sd_bus_message **ret_reply) {
        _cleanup_(event_unrefp) sd_event *event = NULL;
        _cleanup_(event_source_unrefp) sd_event_source *timer = NULL;
        _cleanup_(slot_unrefp) sd_bus_slot *slot = NULL;
        struct async_call c = { .progress = progress };
        int r;

        r = sd_event_new(&event);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_call_async(bus, &slot, m, on_async_reply, &c, timeout_usec);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &timer, CLOCK_MONOTONIC, CLI_USEC_PER_SEC, 0,
                                               on_progress_timer, &c);
        if (r >= 0)
                r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        if (r < 0) {
                sd_bus_message_unref(c.reply);
                return r;
        }
        if (!c.reply)
                return -ECONNRESET;
        *ret_reply = c.reply;
        return 0;
}

int cli_call_message(sd_bus *bus, sd_bus_message *m, uint64_t timeout_usec, const char *progress,
                     sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        char method[256];
        int r;

        /* A copy: the member lives in M's header, which a failed call may have released. */
        snprintf(method, sizeof method, "%s", sd_bus_message_get_member(m) ?: "the call");

        if (progress && isatty(STDERR_FILENO)) {
                r = call_with_progress(bus, m, timeout_usec, progress, &reply);
                if (r >= 0 && sd_bus_message_is_method_error(reply, NULL)) {
                        r = sd_bus_error_copy(&error, sd_bus_message_get_error(reply));
                        if (r >= 0)
                                r = -EIO;
                }
        } else
                r = sd_bus_call(bus, m, timeout_usec, &error, &reply);
        if (r < 0)
                return report_call_error(bus, method, r, &error);
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

int cli_call(sd_bus *bus, const char *method, sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_bus_message_ sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = cli_new_call(bus, method, &m);
        if (r != 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return cli_fail(CLI_EXIT_FAILED, "cannot create the call %s: %s", method,
                                        strerror(-r));
        }
        return cli_call_message(bus, m, 0, NULL, ret_reply);
}

int cli_get_property_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            char **ret) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        const char *value;
        char *p;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, NULL, path, "org.freedesktop.DBus.Properties", "Get");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", interface, property);
        if (r < 0)
                return cli_fail(CLI_EXIT_FAILED, "cannot create the call Get: %s", strerror(-r));
        r = cli_call_message(bus, m, 0, NULL, &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "v", "s", &value);
        if (r < 0)
                return cli_bus_parse_error(r);
        p = strdup(value);
        if (!p)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        *ret = p;
        return 0;
}

int cli_resolve_target(sd_bus *bus, const char *target, char **ret_volume) {
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        const char *volume;
        char *p;
        int r;

        r = cli_call(bus, "ResolveTarget", &reply, "s", target);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "s", &volume);
        if (r < 0)
                return cli_bus_parse_error(r);
        p = strdup(volume);
        if (!p)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        *ret_volume = p;
        return 0;
}

/* ---- tables -------------------------------------------------------------------------------------- */

struct cli_table {
        size_t n_cols;
        size_t n_cells, n_allocated;
        char **cells; /* row-major, the header row first */
        bool *right; /* per column */
};

cli_table *cli_table_new(const char *header, ...) {
        cli_table *t;
        const char *h;
        va_list ap;
        size_t n = 0;

        va_start(ap, header);
        for (h = header; h; h = va_arg(ap, const char *))
                n++;
        va_end(ap);
        if (n == 0)
                return NULL;

        t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        t->n_cols = n;
        t->right = calloc(n, sizeof *t->right);
        t->n_allocated = n * 8;
        t->cells = calloc(t->n_allocated, sizeof *t->cells);
        if (!t->right || !t->cells)
                return cli_table_free(t);
        va_start(ap, header);
        for (h = header; h; h = va_arg(ap, const char *)) {
                t->cells[t->n_cells] = strdup(h);
                if (!t->cells[t->n_cells++]) {
                        va_end(ap);
                        return cli_table_free(t);
                }
        }
        va_end(ap);
        return t;
}

cli_table *cli_table_free(cli_table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t->right);
        free(t);
        return NULL;
}

void cli_table_align_right(cli_table *t, size_t col) {
        if (t && col < t->n_cols)
                t->right[col] = true;
}

int cli_table_add(cli_table *t, ...) {
        size_t first = t->n_cells;
        va_list ap;

        if (t->n_cells + t->n_cols > t->n_allocated) {
                size_t n = t->n_allocated * 2;
                char **cells = realloc(t->cells, n * sizeof *cells);

                if (!cells)
                        return -ENOMEM;
                t->cells = cells;
                t->n_allocated = n;
        }
        va_start(ap, t);
        for (size_t i = 0; i < t->n_cols; i++) {
                const char *s = va_arg(ap, const char *);
                char *copy = strdup(s ? s : "-");

                if (!copy) {
                        va_end(ap);
                        while (t->n_cells > first)
                                free(t->cells[--t->n_cells]);
                        return -ENOMEM;
                }
                t->cells[t->n_cells++] = copy;
        }
        va_end(ap);
        return 0;
}

size_t cli_table_rows(const cli_table *t) {
        return t->n_cells / t->n_cols - 1;
}

size_t cli_text_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80) /* not a UTF-8 continuation byte */
                        n++;
        return n;
}

int cli_table_print(const cli_table *t, FILE *f) {
        _cleanup_free_ size_t *width = calloc(t->n_cols, sizeof *width);

        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_cols] = MAX(width[i % t->n_cols], cli_text_width(t->cells[i]));

        for (size_t row = 0; row < t->n_cells / t->n_cols; row++) {
                for (size_t col = 0; col < t->n_cols; col++) {
                        const char *s = t->cells[row * t->n_cols + col];
                        size_t pad = width[col] - cli_text_width(s);
                        bool last = col + 1 == t->n_cols;

                        if (col > 0)
                                fputs("  ", f);
                        if (t->right[col])
                                fprintf(f, "%*s", (int) pad, "");
                        fputs(s, f);
                        if (!t->right[col] && !last)
                                fprintf(f, "%*s", (int) pad, "");
                }
                fputc('\n', f);
        }
        return ferror(f) ? -EIO : 0;
}

/* ---- JSON ---------------------------------------------------------------------------------------- */

void cli_json_init(cli_json *j, FILE *f) {
        *j = (cli_json){ .f = f };
        j->first[0] = true;
}

int cli_json_open(cli_json *j) {
        cli_json_init(j, NULL);
        j->f = open_memstream(&j->buf, &j->size);
        j->in_memory = true;
        return j->f ? 0 : -ENOMEM;
}

void cli_json_release(cli_json *j) {
        if (!j->in_memory)
                return;
        if (j->f)
                fclose(j->f);
        free(j->buf);
        *j = (cli_json){};
}

int cli_json_emit(cli_json *j) {
        int r = 0;

        fputc('\n', j->f);
        if (fclose(j->f) != 0)
                r = -ENOMEM;
        j->f = NULL;
        if (r == 0 && fwrite(j->buf, 1, j->size, stdout) != j->size)
                r = -EIO;
        cli_json_release(j);
        return r;
}

/* Writes what goes before a value: nothing after a key, else a comma unless it is the first. */
static void json_prefix(cli_json *j) {
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (!j->first[j->depth])
                fputc(',', j->f);
        j->first[j->depth] = false;
}

static void json_open(cli_json *j, char c) {
        json_prefix(j);
        fputc(c, j->f);
        assert(j->depth + 1 < ELEMENTSOF(j->first));
        j->first[++j->depth] = true;
}

static void json_close(cli_json *j, char c) {
        assert(j->depth > 0);
        j->depth--;
        fputc(c, j->f);
}

void cli_json_begin_object(cli_json *j) {
        json_open(j, '{');
}

void cli_json_end_object(cli_json *j) {
        json_close(j, '}');
}

void cli_json_begin_array(cli_json *j) {
        json_open(j, '[');
}

void cli_json_end_array(cli_json *j) {
        json_close(j, ']');
}

void cli_json_key(cli_json *j, const char *key) {
        json_prefix(j);
        tool_json_string(j->f, key);
        fputc(':', j->f);
        j->after_key = true;
}

void cli_json_string(cli_json *j, const char *s) {
        json_prefix(j);
        tool_json_string(j->f, s);
}

void cli_json_uint(cli_json *j, uint64_t v) {
        json_prefix(j);
        fprintf(j->f, "%" PRIu64, v);
}

void cli_json_bool(cli_json *j, bool b) {
        json_prefix(j);
        fputs(b ? "true" : "false", j->f);
}

void cli_json_null(cli_json *j) {
        json_prefix(j);
        fputs("null", j->f);
}

void cli_json_limit(cli_json *j, uint64_t v) {
        if (v == CLI_UNBOUNDED)
                cli_json_null(j);
        else
                cli_json_uint(j, v);
}

void cli_json_msec(cli_json *j, uint64_t usec) {
        json_prefix(j);
        fprintf(j->f, "%" PRIu64 ".%03" PRIu64, usec / 1000, usec % 1000);
}

void cli_json_time(cli_json *j, uint64_t usec) {
        if (usec == 0)
                cli_json_null(j);
        else
                cli_json_string(j, FORMAT_RFC3339(usec * 1000));
}

void cli_json_finish(cli_json *j) {
        fputc('\n', j->f);
}

/* ---- human forms --------------------------------------------------------------------------------- */

const char *cli_format_limit(char *buf, size_t len, uint64_t v) {
        if (v == CLI_UNBOUNDED) {
                snprintf(buf, len, "unbounded");
                return buf;
        }
        return tool_format_bytes(buf, len, v);
}

const char *cli_format_time(char *buf, size_t len, uint64_t usec) {
        if (usec == 0) {
                snprintf(buf, len, "-");
                return buf;
        }
        return tool_format_rfc3339(buf, len, usec * 1000);
}

const char *cli_format_msec(char *buf, size_t len, uint64_t usec) {
        snprintf(buf, len, "%" PRIu64 ".%03" PRIu64 " ms", usec / 1000, usec % 1000);
        return buf;
}

int cli_strv_push(char ***l, const char *s) {
        size_t n = 0;
        while (*l && (*l)[n])
                n++;
        char *d = strdup(s);
        char **nl = d ? realloc(*l, (n + 2) * sizeof *nl) : NULL;
        if (!nl) {
                free(d);
                return -ENOMEM;
        }
        nl[n] = d;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

int cli_append_strv_option(sd_bus_message *m, const char *key, char **l) {
        int r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", key);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, l);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}
