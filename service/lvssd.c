/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvssd: the lvss service. Opens the volumes of its state directory, serves them (and their
 * shadow copies) as files under RUNTIME/dev through FUSE, and its D-Bus API on
 * RUNTIME/lvssd.sock (and, with --system-bus, on the system bus).
 *
 *     lvssd [--state-dir DIR] [--runtime-dir DIR] [--config FILE] [--foreground]
 *           [--system-bus] [--socket-group GROUP] [--fuse-workers N] [--freeze-timeout MS]
 *           [--dirty-limit SIZE] [--writer-timeout MS]
 *
 * Threads: the main loop (sd-event: signals, the socket, every bus connection, the model), the
 * FUSE export's workers, and while a set is being created its worker and watchdog (sset.c).
 * SIGTERM or SIGINT: any set in progress is abandoned and everything thawed, connections close,
 * the export is unmounted, the volumes are flushed and closed (non-persistent shadows end), exit 0.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/macro.h"
#include "service/manager-dbus.h"
#include "service/sset.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

#define DEFAULT_STATE_DIR "/var/lib/lvss"
#define DEFAULT_RUNTIME_DIR "/run/lvss"

static struct {
        char *state_dir, *runtime_dir, *config, *socket_group;
        bool foreground, system_bus;
        unsigned fuse_workers;
        uint32_t freeze_timeout_ms, writer_timeout_ms;
        uint64_t dirty_limit;
        bool have_dirty_limit;
} arg;

#define DEFAULT_DIRTY_LIMIT 0u /* off: see bench/RESULTS.md, "hold_ms with the dirty limit" */

static void usage(FILE *f) {
        fprintf(f,
                "Usage: lvssd [OPTIONS]\n"
                "\n"
                "The lvss service: volumes, shadow copy sets and their FUSE export, over D-Bus.\n"
                "\n"
                "  --state-dir DIR      volumes, diff areas, metadata, catalog (default " DEFAULT_STATE_DIR
                ")\n"
                "  --runtime-dir DIR    the socket lvssd.sock and the FUSE mount dev/ "
                "(default " DEFAULT_RUNTIME_DIR ")\n"
                "  --config FILE        read KEY=VALUE settings (state-dir, runtime-dir, system-bus,\n"
                "                       socket-group, fuse-workers, freeze-timeout, dirty-limit,\n"
                "                       writer-timeout); options given here win\n"
                "  --foreground         do not detach (always so under systemd)\n"
                "  --system-bus         also serve the API on the system bus as org.lvss\n"
                "  --socket-group NAME  group that may read through the socket (default lvss)\n"
                "  --fuse-workers N     threads serving the FUSE export (default %u)\n"
                "  --freeze-timeout MS  longest freeze-and-hold window of a set before it is aborted\n"
                "                       and everything thawed (default %u, at most 60000)\n"
                "  --dirty-limit SIZE   dirty page cache allowed on a loop device 'lvss volume attach'\n"
                "                       makes (K, M, G suffixes; default 0: no limit), which\n"
                "                       bounds what a set's freeze must flush\n"
                "  --writer-timeout MS  deadline of every writer event but Freeze (default: 30 s,\n"
                "                       120 s for PrepareForSnapshot and PostSnapshot)\n"
                "  -h, --help           show this help\n"
                "      --version        show the version\n"
                "\n"
                "See lvssd(8).\n",
                FUSE_EXPORT_WORKERS_DEFAULT, LVSS_HOLD_WINDOW_MS);
}

static int set_str(char **dst, const char *v) {
        free(*dst);
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static int parse_workers(const char *v) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || end == v || n == 0 || n > FUSE_EXPORT_WORKERS_MAX) {
                fprintf(stderr, "lvssd: --fuse-workers %s: give a number from 1 to %u\n", v,
                        FUSE_EXPORT_WORKERS_MAX);
                return -EINVAL;
        }
        arg.fuse_workers = (unsigned) n;
        return 0;
}

static int parse_freeze_timeout(const char *v) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || end == v || n < 10 || n > 60000) {
                fprintf(stderr, "lvssd: --freeze-timeout %s: give milliseconds from 10 to 60000\n", v);
                return -EINVAL;
        }
        arg.freeze_timeout_ms = (uint32_t) n;
        return 0;
}

static int parse_writer_timeout(const char *v) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || end == v || n < 100 || n > 600000) {
                fprintf(stderr, "lvssd: --writer-timeout %s: give milliseconds from 100 to 600000\n", v);
                return -EINVAL;
        }
        arg.writer_timeout_ms = (uint32_t) n;
        return 0;
}

static int parse_dirty_limit(const char *v) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        unsigned shift = 0;
        if (*end == 'K')
                shift = 10;
        else if (*end == 'M')
                shift = 20;
        else if (*end == 'G')
                shift = 30;
        if (shift)
                end++;
        if (errno || end == v || *end || v[0] == '-' || n > (UINT64_MAX >> shift)) {
                fprintf(stderr, "lvssd: --dirty-limit %s: give a size such as 64M, or 0 for no limit\n", v);
                return -EINVAL;
        }
        arg.dirty_limit = (uint64_t) n << shift;
        arg.have_dirty_limit = true;
        return 0;
}

/* KEY=VALUE lines, '#' comments; only keys not given on the command line are taken. */
static int read_config(const char *path, bool have_state, bool have_runtime, bool have_group,
                       bool have_workers) {
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "lvssd: cannot read the configuration %s: %s\n", path, strerror(errno));
                return -errno;
        }
        char line[4096];
        unsigned lineno = 0;
        int r = 0;
        while (r >= 0 && fgets(line, sizeof line, f)) {
                lineno++;
                line[strcspn(line, "\r\n")] = 0;
                char *s = line + strspn(line, " \t");
                if (!*s || *s == '#')
                        continue;
                char *eq = strchr(s, '=');
                if (!eq) {
                        fprintf(stderr, "lvssd: %s:%u: expected KEY=VALUE\n", path, lineno);
                        r = -EINVAL;
                        break;
                }
                *eq = 0;
                char *k = s, *v = eq + 1;
                k[strcspn(k, " \t")] = 0;
                v += strspn(v, " \t");
                if (strcmp(k, "state-dir") == 0) {
                        if (!have_state)
                                r = set_str(&arg.state_dir, v);
                } else if (strcmp(k, "runtime-dir") == 0) {
                        if (!have_runtime)
                                r = set_str(&arg.runtime_dir, v);
                } else if (strcmp(k, "socket-group") == 0) {
                        if (!have_group)
                                r = set_str(&arg.socket_group, v);
                } else if (strcmp(k, "system-bus") == 0) {
                        if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
                                arg.system_bus = true;
                } else if (strcmp(k, "dirty-limit") == 0) {
                        if (!arg.have_dirty_limit)
                                r = parse_dirty_limit(v);
                } else if (strcmp(k, "freeze-timeout") == 0) {
                        if (!arg.freeze_timeout_ms)
                                r = parse_freeze_timeout(v);
                } else if (strcmp(k, "writer-timeout") == 0) {
                        if (!arg.writer_timeout_ms)
                                r = parse_writer_timeout(v);
                } else if (strcmp(k, "fuse-workers") == 0) {
                        if (!have_workers)
                                r = parse_workers(v);
                } else {
                        fprintf(stderr, "lvssd: %s:%u: unknown setting %s\n", path, lineno, k);
                        r = -EINVAL;
                }
        }
        fclose(f);
        return r;
}

static int parse_args(int argc, char **argv) {
        enum {
                ARG_STATE = 0x100,
                ARG_RUNTIME,
                ARG_CONFIG,
                ARG_FOREGROUND,
                ARG_SYSTEM_BUS,
                ARG_GROUP,
                ARG_WORKERS,
                ARG_FREEZE_TIMEOUT,
                ARG_DIRTY_LIMIT,
                ARG_WRITER_TIMEOUT,
                ARG_VERSION
        };
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "foreground", no_argument, NULL, ARG_FOREGROUND },
                { "system-bus", no_argument, NULL, ARG_SYSTEM_BUS },
                { "socket-group", required_argument, NULL, ARG_GROUP },
                { "fuse-workers", required_argument, NULL, ARG_WORKERS },
                { "freeze-timeout", required_argument, NULL, ARG_FREEZE_TIMEOUT },
                { "dirty-limit", required_argument, NULL, ARG_DIRTY_LIMIT },
                { "writer-timeout", required_argument, NULL, ARG_WRITER_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        bool have_state = false, have_runtime = false, have_group = false, have_workers = false;
        int c, r = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE:
                        r = set_str(&arg.state_dir, optarg);
                        have_state = true;
                        break;
                case ARG_RUNTIME:
                        r = set_str(&arg.runtime_dir, optarg);
                        have_runtime = true;
                        break;
                case ARG_CONFIG:
                        r = set_str(&arg.config, optarg);
                        break;
                case ARG_FOREGROUND:
                        arg.foreground = true;
                        break;
                case ARG_SYSTEM_BUS:
                        arg.system_bus = true;
                        break;
                case ARG_GROUP:
                        r = set_str(&arg.socket_group, optarg);
                        have_group = true;
                        break;
                case ARG_DIRTY_LIMIT:
                        r = parse_dirty_limit(optarg);
                        break;
                case ARG_FREEZE_TIMEOUT:
                        r = parse_freeze_timeout(optarg);
                        break;
                case ARG_WRITER_TIMEOUT:
                        r = parse_writer_timeout(optarg);
                        break;
                case ARG_WORKERS:
                        r = parse_workers(optarg);
                        have_workers = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case ARG_VERSION:
                        printf("lvssd %s\n", PROJECT_VERSION);
                        exit(0);
                default:
                        fprintf(stderr, "Try 'lvssd --help'.\n");
                        return -EINVAL;
                }
                if (r < 0)
                        return r;
        }
        if (optind < argc) {
                fprintf(stderr, "lvssd: unexpected argument '%s'; try 'lvssd --help'\n", argv[optind]);
                return -EINVAL;
        }
        if (arg.config &&
            (r = read_config(arg.config, have_state, have_runtime, have_group, have_workers)) < 0)
                return r;
        if (!arg.state_dir && (r = set_str(&arg.state_dir, DEFAULT_STATE_DIR)) < 0)
                return r;
        if (!arg.runtime_dir && (r = set_str(&arg.runtime_dir, DEFAULT_RUNTIME_DIR)) < 0)
                return r;
        if (!arg.socket_group && (r = set_str(&arg.socket_group, "lvss")) < 0)
                return r;
        if (getenv("NOTIFY_SOCKET"))
                arg.foreground = true; /* systemd's Type=notify waits for READY=1 from this process */
        return 0;
}

/* Refuses to start over another lvssd: its FUSE mount and socket must stay untouched. */
static int probe_running(const char *runtime_dir) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if ((size_t) snprintf(sa.sun_path, sizeof sa.sun_path, "%s/lvssd.sock", runtime_dir) >=
            sizeof sa.sun_path) {
                fprintf(stderr,
                        "lvssd: the socket path %s/lvssd.sock is too long for a Unix socket: choose a "
                        "shorter "
                        "--runtime-dir\n",
                        runtime_dir);
                return -ENAMETOOLONG;
        }
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
                fprintf(stderr,
                        "lvssd: another lvssd serves %s already: stop it first, or give another "
                        "--runtime-dir\n",
                        sa.sun_path);
                return -EADDRINUSE;
        }
        return 0;
}

/* Binds RUNTIME/lvssd.sock, 0660 root:GROUP; refuses if another lvssd answers there. */
static int listen_socket(struct manager *m) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(m->socket_path) >= sizeof sa.sun_path) {
                fprintf(stderr,
                        "lvssd: the socket path %s is too long for a Unix socket: choose a shorter "
                        "--runtime-dir\n",
                        m->socket_path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, m->socket_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        (void) unlink(m->socket_path);
        mode_t old = umask(0117);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0) {
                r = negative_errno();
                fprintf(stderr, "lvssd: cannot bind %s: %s\n", m->socket_path, strerror(-r));
                close(fd);
                return r;
        }
        gid_t gid = m->gid_read != (gid_t) -1 ? m->gid_read : 0;
        if (chown(m->socket_path, 0, gid) < 0 || chmod(m->socket_path, 0660) < 0)
                fprintf(stderr, "lvssd: cannot set the owner or mode of %s: %s\n", m->socket_path,
                        strerror(errno));
        if (m->gid_read == (gid_t) -1)
                fprintf(stderr,
                        "lvssd: group %s does not exist: only root can use %s (create it with `groupadd -r "
                        "%s`)\n",
                        m->socket_group, m->socket_path, m->socket_group);
        if (listen(fd, 128) < 0) {
                r = negative_errno();
                close(fd);
                return r;
        }
        m->listen_fd = fd;
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;
        fprintf(stderr, "lvssd: %s, stopping\n", strsignal((int) si->ssi_signo));
        m->stopping = true;
        sset_abort_and_wait(m);
        return sd_event_exit(m->event, 0);
}

/* Without --foreground: fork, and let the parent exit with the child's verdict once it serves. */
static int daemonize_begin(int *ret_fd) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid > 0) {
                close(p[1]);
                char status = 1;
                ssize_t n = read(p[0], &status, 1);
                _exit(n == 1 && status == 0 ? 0 : 1);
        }
        close(p[0]);
        (void) setsid();
        *ret_fd = p[1];
        return 0;
}

static void daemonize_end(int fd, bool ok) {
        if (fd < 0)
                return;
        char status = ok ? 0 : 1;
        (void) !write(fd, &status, 1);
        close(fd);
        if (ok) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                        close(null);
                }
        }
}

int main(int argc, char **argv) {
        struct manager *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int ready_fd = -1, r;

        if (parse_args(argc, argv) < 0)
                return 2;
        if (geteuid() != 0)
                fprintf(stderr,
                        "lvssd: not running as root: FUSE mounts, loop devices and freezing will fail\n");
        if (!arg.foreground && daemonize_begin(&ready_fd) < 0) {
                fprintf(stderr, "lvssd: cannot detach: %m\n");
                return 1;
        }

        signal(SIGPIPE, SIG_IGN);
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);

        r = manager_new(&m);
        if (r < 0)
                goto fail;
        m->state_dir = TAKE_PTR(arg.state_dir);
        m->runtime_dir = TAKE_PTR(arg.runtime_dir);
        m->socket_group = TAKE_PTR(arg.socket_group);
        m->fuse_workers = arg.fuse_workers;
        m->hold_window_ms = arg.freeze_timeout_ms;
        m->writer_timeout_ms = arg.writer_timeout_ms;
        m->dirty_limit = arg.have_dirty_limit ? arg.dirty_limit : DEFAULT_DIRTY_LIMIT;
        const char *delay = getenv("LVSS_TEST_HOLD_DELAY_MS");
        if (delay)
                m->test_hold_delay_ms = (uint32_t) MIN(strtoul(delay, NULL, 10), 120000ul);
        manager_lookup_groups(m);

        r = probe_running(m->runtime_dir);
        if (r < 0)
                goto fail;
        r = sd_event_default(&m->event);
        if (r < 0)
                goto fail;
        r = manager_startup(m, &error);
        if (r < 0) {
                fprintf(stderr, "lvssd: %s\n", error.message ? error.message : strerror(-r));
                goto fail;
        }
        r = listen_socket(m);
        if (r < 0)
                goto fail;
        r = manager_dbus_listen(m, m->listen_fd);
        if (r < 0)
                goto fail;
        if (arg.system_bus) {
                r = manager_dbus_system_bus(m);
                if (r < 0)
                        fprintf(stderr, "lvssd: cannot serve on the system bus (%s): serving on %s only\n",
                                strerror(-r), m->socket_path);
        }
        (void) sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        (void) sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);

        fprintf(stderr, "lvssd %s: %zu volume(s), %zu persistent shadow(s); serving %s, files under %s\n",
                PROJECT_VERSION, m->n_volumes, m->n_shadows, m->socket_path, m->dev_dir);
        (void) sd_notify(0, "READY=1\nSTATUS=Serving");
        daemonize_end(ready_fd, true);
        ready_fd = -1;

        r = sd_event_loop(m->event);
        (void) sd_notify(0, "STOPPING=1");
        manager_dbus_done(m);
        if (m->listen_fd >= 0) {
                close(m->listen_fd);
                (void) unlink(m->socket_path);
        }
        sd_event_unref(m->event);
        m->event = NULL;
        manager_free(m);
        sd_bus_error_free(&error);
        return r < 0 ? 1 : 0;

fail:
        daemonize_end(ready_fd, false);
        if (r < 0 && !sd_bus_error_is_set(&error) && r != -EADDRINUSE && r != -ENAMETOOLONG)
                fprintf(stderr, "lvssd: cannot start: %s\n", strerror(-r));
        if (m) {
                manager_dbus_done(m);
                if (m->listen_fd >= 0)
                        close(m->listen_fd);
                sd_event_unref(m->event);
                m->event = NULL;
                manager_free(m);
        }
        sd_bus_error_free(&error);
        return 1;
}
