/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-test-writer: a writer whose answers the end-to-end tests choose on the command line, to
 * drive lvssd through every outcome of the writer protocol (docs/dbus-api.md, "Writers").
 *
 *   lvss-test-writer --socket PATH --name NAME [--class-id UUID] [--instance-name NAME]
 *                    [--level front-end|back-end|system] [--freeze-timeout MS] [--path DIR]...
 *                    [--on EVENT=ACTION]... [--log FILE] [--ready-file FILE]
 *
 * Each --path DIR adds a file-group component "Paths/N" (N = 0, 1, ... in order) with the file
 * set DIR "*" recursive. EVENT is an lvss_event_to_string() spelling but "identify"; the ACTIONs
 * given for one event run in order at each callback of that event:
 *   ok, veto, retryable, non-retryable, out-of-resources, timeout, inconsistent-snapshot,
 *   partial-failure       the answer (default ok; the last one given wins)
 *   sleep:MS              sleep MS milliseconds
 *   hang                  sleep 3600 s (SIGTERM/SIGINT cut it short: the answer is then timeout)
 *   crash                 abort()
 *   exit                  _exit(3): a disconnection in the middle of the event
 *   metadata:COMP=DATA    set the backup metadata of component COMP ("Paths/0")
 *
 * --log FILE gets one line per callback, written with one write(2) in O_APPEND mode when the
 * callback starts: "<CLOCK_MONOTONIC ns> <name> <event> <set>"; an Abort the library made by
 * itself (freeze window passed, lvssd gone, or the writer freed while frozen: deadline_ms 0) adds
 * "<ns> <name> auto-abort <set>" after its "abort" line. At PreRestore and PostRestore, each
 * selected component adds "<ns> <name> component <component> <its backup metadata or ->" (blanks
 * in the metadata written as '_'). --ready-file FILE is created (atomically,
 * holding "PID INSTANCE_ID") once registered.
 *
 * Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot connect or register (message on
 * stderr), 2 for a bad command line, 3 from the "exit" action, 4 when lvssd went away.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <lvss/writer.h>

#define DEFAULT_CLASS_ID "7e57c1a5-5e1f-4c0d-9a1b-2c3d4e5f6a7b"

enum action_kind { ACTION_RESULT, ACTION_SLEEP, ACTION_HANG, ACTION_CRASH, ACTION_EXIT, ACTION_METADATA };

struct action {
        enum action_kind kind;
        lvss_result result;
        unsigned long ms;
        char *component;
        const char *data;
};

struct event_actions {
        struct action *items;
        size_t n;
};

static struct event_actions actions[_LVSS_EVENT_MAX];
static const char *writer_name;
static int log_fd = -1;
static lvss_writer *writer;
static volatile sig_atomic_t quitting;

static void on_signal(int sig) {
        quitting = 1;
        lvss_writer_quit(writer);
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void log_line(const char *what, const char *set) {
        if (log_fd < 0)
                return;
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "%" PRIu64 " %s %s %s\n", now_ns(), writer_name, what, set);
        if (n > 0 && (size_t) n < sizeof(buf))
                (void) !write(log_fd, buf, n);
}

/* Sleeps MS milliseconds; with INTERRUPTIBLE, returns false as soon as a signal asks to quit. */
static bool sleep_ms(unsigned long ms, bool interruptible) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                if (interruptible && quitting)
                        return false;
        return true;
}

static lvss_result on_event(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        log_line(lvss_event_to_string(info->event), info->set_id);
        if (info->event == LVSS_EVENT_ABORT && info->deadline_ms == 0)
                log_line("auto-abort", info->set_id);
        if (info->event == LVSS_EVENT_PRE_RESTORE || info->event == LVSS_EVENT_POST_RESTORE)
                for (size_t i = 0; info->components[i]; i++) {
                        const char *data = NULL;
                        char line[400];
                        if (lvss_writer_get_backup_metadata(w, info->components[i], &data) < 0)
                                data = "-";
                        int n = snprintf(line, sizeof line, "component %s %s", info->components[i], data);
                        for (int k = 0; n > 0 && k < n && (size_t) k < sizeof line; k++)
                                if (k >= 10 && (line[k] == ' ' || line[k] == '\n') &&
                                    k > (int) (strlen("component ") + strlen(info->components[i])))
                                        line[k] = '_';
                        log_line(line, "");
                }

        lvss_result result = LVSS_RESULT_OK;
        const struct event_actions *l = &actions[info->event];
        for (size_t i = 0; i < l->n; i++) {
                const struct action *a = &l->items[i];
                switch (a->kind) {
                case ACTION_RESULT:
                        result = a->result;
                        break;
                case ACTION_SLEEP:
                        sleep_ms(a->ms, false);
                        break;
                case ACTION_HANG:
                        if (!quitting && !sleep_ms(3600 * 1000ul, true))
                                return LVSS_RESULT_TIMEOUT;
                        break;
                case ACTION_CRASH: {
                        struct rlimit none = { 0, 0 };
                        (void) setrlimit(RLIMIT_CORE, &none); /* no core file for a planned crash */
                        abort();
                }
                case ACTION_EXIT:
                        _exit(3);
                case ACTION_METADATA: {
                        int r = lvss_writer_set_backup_metadata(w, a->component, a->data);
                        if (r < 0) {
                                fprintf(stderr,
                                        "lvss-test-writer: cannot set the backup metadata of %s: %s\n",
                                        a->component, strerror(-r));
                                result = LVSS_RESULT_NON_RETRYABLE;
                        }
                        break;
                }
                }
        }
        return result;
}

static int parse_event(const char *s, size_t len) {
        for (int e = 0; e < _LVSS_EVENT_MAX; e++) {
                const char *name = lvss_event_to_string((lvss_event) e);
                if (strlen(name) == len && strncmp(name, s, len) == 0)
                        return e;
        }
        return -EINVAL;
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] == '-' || v > max)
                return false;
        *ret = v;
        return true;
}

/* "EVENT=ACTION" */
static bool parse_on(const char *s) {
        const char *eq = strchr(s, '=');
        if (!eq)
                return false;
        int e = parse_event(s, eq - s);
        if (e <= LVSS_EVENT_IDENTIFY)
                return false;
        const char *act = eq + 1;
        struct action a = { .kind = ACTION_RESULT };
        bool found = false;
        for (int r = 0; r < _LVSS_RESULT_MAX && !found; r++)
                if (strcmp(act, lvss_result_to_string((lvss_result) r)) == 0) {
                        a.result = (lvss_result) r;
                        found = true;
                }
        if (found)
                ;
        else if (strncmp(act, "sleep:", 6) == 0) {
                a.kind = ACTION_SLEEP;
                if (!parse_ulong(act + 6, 24ul * 3600 * 1000, &a.ms))
                        return false;
        } else if (strcmp(act, "hang") == 0)
                a.kind = ACTION_HANG;
        else if (strcmp(act, "crash") == 0)
                a.kind = ACTION_CRASH;
        else if (strcmp(act, "exit") == 0)
                a.kind = ACTION_EXIT;
        else if (strncmp(act, "metadata:", 9) == 0) {
                const char *c = act + 9, *ceq = strchr(c, '=');
                if (!ceq || ceq == c)
                        return false;
                a.kind = ACTION_METADATA;
                a.component = strndup(c, ceq - c);
                a.data = ceq + 1;
                if (!a.component)
                        return false;
        } else
                return false;

        struct event_actions *l = &actions[e];
        struct action *items = reallocarray(l->items, l->n + 1, sizeof(struct action));
        if (!items) {
                free(a.component);
                return false;
        }
        l->items = items;
        l->items[l->n++] = a;
        return true;
}

static int write_ready_file(const char *path) {
        char tmp[4096];
        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f, "%d %s\n", (int) getpid(), lvss_writer_instance_id(writer));
        if (fclose(f) != 0 || rename(tmp, path) < 0) {
                int r = -errno;
                unlink(tmp);
                return r;
        }
        return 0;
}

static void usage(FILE *f) {
        fprintf(f, "usage: lvss-test-writer --socket PATH --name NAME [--class-id UUID] [--instance-name "
                   "NAME]\n"
                   "       [--level front-end|back-end|system] [--freeze-timeout MS] [--path DIR]...\n"
                   "       [--on EVENT=ACTION]... [--log FILE] [--ready-file FILE]\n"
                   "ACTION: ok, veto, retryable, non-retryable, out-of-resources, timeout,\n"
                   "        inconsistent-snapshot, partial-failure, sleep:MS, hang, crash, exit,\n"
                   "        metadata:COMPONENT=DATA\n");
}

static int bad_usage(const char *what, const char *arg) {
        fprintf(stderr, "lvss-test-writer: %s: %s\n", what, arg);
        usage(stderr);
        return 2;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "name", required_argument, NULL, 'n' },
                { "class-id", required_argument, NULL, 'c' },
                { "instance-name", required_argument, NULL, 'I' },
                { "level", required_argument, NULL, 'L' },
                { "freeze-timeout", required_argument, NULL, 'f' },
                { "path", required_argument, NULL, 'p' },
                { "on", required_argument, NULL, 'o' },
                { "log", required_argument, NULL, 'l' },
                { "ready-file", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const levels[_LVSS_LEVEL_MAX] = { "front-end", "back-end", "system" };
        const char *socket_path = NULL, *class_id = DEFAULT_CLASS_ID, *instance_name = NULL,
                   *log_path = NULL, *ready_path = NULL;
        const char *paths[256];
        size_t n_paths = 0;
        int level = LVSS_LEVEL_FRONT_END;
        unsigned long freeze_timeout = 0;

        int opt;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 's':
                        socket_path = optarg;
                        break;
                case 'n':
                        writer_name = optarg;
                        break;
                case 'c':
                        class_id = optarg;
                        break;
                case 'I':
                        instance_name = optarg;
                        break;
                case 'L':
                        level = -1;
                        for (int i = 0; i < _LVSS_LEVEL_MAX; i++)
                                if (strcmp(optarg, levels[i]) == 0)
                                        level = i;
                        if (level < 0)
                                return bad_usage("bad --level", optarg);
                        break;
                case 'f':
                        if (!parse_ulong(optarg, UINT32_MAX, &freeze_timeout))
                                return bad_usage("bad --freeze-timeout", optarg);
                        break;
                case 'p':
                        if (n_paths == sizeof(paths) / sizeof(paths[0]))
                                return bad_usage("too many --path", optarg);
                        paths[n_paths++] = optarg;
                        break;
                case 'o':
                        if (!parse_on(optarg))
                                return bad_usage("bad --on", optarg);
                        break;
                case 'l':
                        log_path = optarg;
                        break;
                case 'r':
                        ready_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind < argc)
                return bad_usage("unexpected argument", argv[optind]);
        if (!writer_name)
                return bad_usage("missing", "--name");

        int r = lvss_writer_new(writer_name, class_id, instance_name, &writer);
        if (r < 0)
                return bad_usage("bad --name, --class-id or --instance-name", strerror(-r));
        r = lvss_writer_set_level(writer, (lvss_writer_level) level);
        if (r >= 0 && freeze_timeout > 0)
                r = lvss_writer_set_freeze_timeout(writer, (uint32_t) freeze_timeout);
        if (r < 0)
                return bad_usage("bad --freeze-timeout", strerror(-r));
        for (size_t i = 0; i < n_paths; i++) {
                char name[32];
                snprintf(name, sizeof(name), "%zu", i);
                lvss_wmd_component *c;
                r = lvss_wmd_add_component(lvss_writer_metadata(writer), LVSS_WMD_COMPONENT_FILE_GROUP,
                                           "Paths", name, NULL, true, true, &c);
                if (r >= 0)
                        r = lvss_wmd_component_add_files(c, LVSS_WMD_FILES, paths[i], "*", true,
                                                         LVSS_WMD_BACKUP_FULL);
                if (r < 0)
                        return bad_usage("bad --path", paths[i]);
        }
        for (int e = LVSS_EVENT_PREPARE_FOR_BACKUP; e < _LVSS_EVENT_MAX; e++)
                (void) lvss_writer_set_callback(writer, (lvss_event) e, on_event, NULL);

        if (log_path) {
                log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (log_fd < 0) {
                        fprintf(stderr, "lvss-test-writer: cannot open %s: %s\n", log_path, strerror(errno));
                        return 1;
                }
        }

        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);

        r = lvss_writer_connect(writer, socket_path);
        if (r < 0) {
                fprintf(stderr, "lvss-test-writer: cannot register %s with lvssd at %s: %s%s\n", writer_name,
                        socket_path ?: "$LVSS_SOCKET", strerror(-r),
                        r == -EACCES ? " (root and group lvss-writers may)" : "");
                return 1;
        }
        if (ready_path) {
                r = write_ready_file(ready_path);
                if (r < 0) {
                        fprintf(stderr, "lvss-test-writer: cannot write %s: %s\n", ready_path, strerror(-r));
                        return 1;
                }
        }

        r = lvss_writer_run(writer);
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_BLOCK, &block, NULL); /* no lvss_writer_quit() into freed memory */
        lvss_writer_free(writer); /* thaws, if frozen */
        writer = NULL;
        for (size_t e = 0; e < _LVSS_EVENT_MAX; e++) {
                for (size_t i = 0; i < actions[e].n; i++)
                        free(actions[e].items[i].component);
                free(actions[e].items);
        }
        if (log_fd >= 0)
                close(log_fd);
        if (r == -ECONNRESET) {
                fprintf(stderr, "lvss-test-writer: %s: lvssd went away\n", writer_name);
                return 4;
        }
        if (r < 0) {
                fprintf(stderr, "lvss-test-writer: %s: %s\n", writer_name, strerror(-r));
                return 1;
        }
        return 0;
}
