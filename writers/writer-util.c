/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The helpers the shipped writers share (writer-util.h). Each program keeps what is its own: its
 * options, its metadata, its events; this file keeps how they all speak (one line on stderr,
 * "PROGRAM: " first), time their events, and meet lvssd.
 *
 * State: only the writer that a signal stops (the_writer), set for the time of wu_serve().
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "writers/writer-util.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

#define DEFAULT_SOCKET "/run/lvss/lvssd.sock"
#define MAX_NAME_TRIES 1000u

static lvss_writer *the_writer; /* for the signal handler */

static void vlog(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void vlog(const char *fmt, va_list ap) {
        fputs(wu_program, stderr);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

void wu_log(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vlog(fmt, ap);
        va_end(ap);
}

int wu_usage_error(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vlog(fmt, ap);
        va_end(ap);
        return WU_EXIT_USAGE;
}

uint64_t wu_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

uint64_t wu_event_end(const struct lvss_event_info *info) {
        uint32_t margin = MIN(info->deadline_ms / 10, 250u);

        if (info->deadline_ms == 0)
                return wu_now_ms() + WU_NO_DEADLINE_MS;
        return wu_now_ms() + info->deadline_ms - margin;
}

bool wu_parse_seconds(const char *s, uint32_t *ret_ms) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0' || !(v >= 0.1 && v <= 60.0))
                return false;
        *ret_ms = (uint32_t) (v * 1000.0 + 0.5);
        return true;
}

char *wu_name_from_path(const char *path) {
        char *name;

        while (*path == '/')
                path++;
        name = strdup(*path ? path : "root");
        if (!name)
                return NULL;
        for (char *p = name; *p; p++)
                if (*p == '/')
                        *p = '-';
        return name;
}

int wu_add_path_component(lvss_wmd *wmd, lvss_wmd_component_type type, const char *logical_path,
                          const char *path, lvss_wmd_component **ret, char **ret_name) {
        _cleanup_free_ char *base = wu_name_from_path(path);
        lvss_wmd_component *c = NULL;
        int r = -EEXIST;

        if (!base)
                return -ENOMEM;
        for (unsigned i = 1; i < MAX_NAME_TRIES; i++) {
                _cleanup_free_ char *name = NULL;

                if (i == 1 ? !(name = strdup(base)) : asprintf(&name, "%s-%u", base, i) < 0)
                        return -ENOMEM;
                r = lvss_wmd_add_component(wmd, type, logical_path, name, path, true, true, &c);
                if (r == -EEXIST)
                        continue;
                if (r < 0)
                        return r;
                *ret = c;
                if (ret_name)
                        *ret_name = TAKE_PTR(name);
                return r;
        }
        return r;
}

int wu_option_error(int c, char **argv) {
        if (c == ':')
                return wu_usage_error("option '%s' needs a value: '%s --help' shows the options",
                                      argv[optind - 1], wu_program);
        return wu_usage_error("unknown option '%s': '%s --help' shows the options", argv[optind - 1],
                              wu_program);
}

void wu_print_version(void) {
        printf("%s %s\n", wu_program, PROJECT_VERSION);
}

int wu_writer_new(const struct wu_identity *id, lvss_writer **ret) {
        lvss_writer *w = NULL;
        int r;

        r = lvss_writer_new(id->name, id->class_id, id->instance_name, &w);
        if (r == -EINVAL && id->instance_option)
                return wu_usage_error("invalid --name '%s' (or unusable %s): use 1 to 255 of the characters "
                                      "A-Z a-z 0-9 . _ @ + -",
                                      id->name, id->instance_option);
        if (r == -EINVAL)
                return wu_usage_error(
                        "invalid --name '%s': use 1 to 255 of the characters A-Z a-z 0-9 . _ @ + -",
                        id->name);
        if (r < 0) {
                wu_log("cannot create the writer: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        r = lvss_writer_set_level(w, id->level);
        if (r >= 0 && id->freeze_timeout_ms > 0)
                r = lvss_writer_set_freeze_timeout(w, id->freeze_timeout_ms);
        if (r >= 0)
                r = lvss_writer_set_types(w, id->usage, id->source);
        if (r >= 0)
                r = lvss_wmd_set_backup_schema(lvss_writer_metadata(w), id->backup_types);
        if (r < 0) {
                wu_log("cannot set up the writer: %s", strerror(-r));
                lvss_writer_free(w);
                return EXIT_FAILURE;
        }
        *ret = w;
        return 0;
}

int wu_set_callbacks(lvss_writer *w, const struct wu_callback *callbacks, size_t n, void *userdata) {
        for (size_t i = 0; i < n; i++) {
                int r = lvss_writer_set_callback(w, callbacks[i].event, callbacks[i].callback, userdata);
                if (r < 0) {
                        wu_log("cannot set the writer's callbacks");
                        return r;
                }
        }
        return 0;
}

static void on_signal(int sig) {
        if (the_writer)
                lvss_writer_quit(the_writer);
}

static int connect_error(int r, const char *socket_path, const char *name) {
        const char *where = socket_path ? socket_path : getenv("LVSS_SOCKET");

        if (!where || !*where)
                where = DEFAULT_SOCKET;
        if (r == -ECONNREFUSED || r == -ENOENT)
                wu_log("cannot connect to lvssd at %s: it is not running; start lvssd, or give its socket "
                       "with --socket",
                       where);
        else if (r == -EACCES || r == -EPERM)
                wu_log("lvssd at %s refuses to register this writer: run it as root or as a member of the "
                       "groups lvss-writers and lvss",
                       where);
        else if (r == -EEXIST)
                wu_log("a writer named '%s' is registered with lvssd already: give another --name", name);
        else
                wu_log("cannot register with lvssd at %s: %s", where, strerror(-r));
        return EXIT_FAILURE;
}

int wu_serve(lvss_writer *w, const char *socket_path, const char *name, const char *details_fmt, ...) {
        struct sigaction sa = { .sa_handler = on_signal };
        _cleanup_free_ char *details = NULL;
        va_list ap;
        int r;

        signal(SIGPIPE, SIG_IGN);
        the_writer = w;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);

        r = lvss_writer_connect(w, socket_path);
        if (r < 0) {
                the_writer = NULL;
                return connect_error(r, socket_path, name);
        }
        va_start(ap, details_fmt);
        if (vasprintf(&details, details_fmt, ap) < 0)
                details = NULL;
        va_end(ap);
        wu_log("writer '%s' registered (%s)", name, details ? details : "?");
        r = lvss_writer_run(w);
        the_writer = NULL;
        if (r == -ECONNRESET)
                wu_log("lvssd went away: stopping");
        else if (r < 0)
                wu_log("the writer stopped: %s", strerror(-r));
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
