/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-writer-exec: a writer made of hook programs, in the convention of qemu-guest-agent's
 * fsfreeze-hook.d, so that existing hook scripts work unchanged. At Freeze it runs every
 * executable of the hooks directory, in name order (byte order), with the argument "freeze"; at
 * Thaw, and at Abort, it runs the same hooks in reverse order with "thaw". A hook that exits
 * non-zero at freeze vetoes the set, and every hook already run for that freeze (the failing one
 * included: it may have half frozen) is given "thaw" at once, in reverse order.
 *
 * Invariant: "thaw" is given exactly once to exactly the hooks that were given "freeze", whatever
 * comes (Thaw, Abort, both, the library's own Abort when the freeze window passes or lvssd goes
 * away, SIGTERM): the list of hooks run for a freeze lives in `frozen` until it is thawed.
 *
 * Each hook runs in its own process group with stdin on /dev/null and stdout/stderr ours, and
 * the environment LVSS_EVENT, LVSS_SET_ID and LVSS_DEADLINE_MS. Each event has the deadline lvssd
 * gave with it for all its hooks together: a hook still running at the deadline (less a margin to
 * answer in time) is killed with its whole group (SIGKILL) and the event fails with Timeout.
 *
 * The writer's metadata lists each --path as a file-group component (logical path "Paths", named
 * after the path), so that lvssd selects this writer for the sets of those paths' volumes.
 *
 * One thread: callbacks run one at a time on the thread of lvss_writer_run() (liblvss), and the
 * hooks run synchronously inside them. Signals only ask lvss_writer_run() to return.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lvss/writer.h>

#include "common/macro.h"
#include "writers/writer-util.h"

#define PROG "lvss-writer-exec"
#define CLASS_ID "b7c9e0a4-3f1d-4e62-9a85-6d2c4f0b1e37"
#define MAX_HOOKS 1024
#define BACKUP_TYPES                                                                                        \
        (LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_INCREMENTAL | LVSS_WMD_BACKUP_DIFFERENTIAL |                \
         LVSS_WMD_BACKUP_COPY)

const char wu_program[] = PROG;

struct hook_list {
        char **names; /* file names in DIR, in name order */
        size_t n;
};

struct exec_writer {
        const char *hooks_dir;
        struct hook_list frozen; /* hooks given "freeze" and not yet "thaw" (n == 0: none) */
        bool is_frozen;
};

static void hook_list_free(struct hook_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
        l->names = NULL;
        l->n = 0;
}

/* Names qemu-ga's fsfreeze-hook skips too: hidden files, editor backups, package leftovers. */
static bool hook_name_ignored(const char *name) {
        static const char *const suffixes[] = { "~",          ".dpkg-old", ".dpkg-new",
                                                ".dpkg-dist", ".dpkg-tmp", ".dpkg-bak",
                                                ".rpmsave",   ".rpmnew",   ".rpmorig" };
        size_t len = strlen(name);

        if (name[0] == '.')
                return true;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t k = strlen(suffixes[i]);
                if (len >= k && strcmp(name + len - k, suffixes[i]) == 0)
                        return true;
        }
        return false;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The executable regular files of DIR (symbolic links followed), sorted by name. */
static int hook_list_scan(const char *dir, struct hook_list *ret) {
        struct hook_list l = {};
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(dir);
        if (!d)
                return negative_errno();
        while ((errno = 0, de = readdir(d))) {
                struct stat st;
                char **names;

                if (hook_name_ignored(de->d_name))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue; /* a dangling link, a directory, a socket... */
                if (faccessat(dirfd(d), de->d_name, X_OK, AT_EACCESS) < 0)
                        continue;
                if (l.n >= MAX_HOOKS) {
                        r = -E2BIG;
                        break;
                }
                names = realloc(l.names, (l.n + 1) * sizeof *names);
                if (!names) {
                        r = -ENOMEM;
                        break;
                }
                l.names = names;
                l.names[l.n] = strdup(de->d_name);
                if (!l.names[l.n]) {
                        r = -ENOMEM;
                        break;
                }
                l.n++;
        }
        if (r == 0 && errno != 0)
                r = negative_errno();
        closedir(d);
        if (r < 0) {
                hook_list_free(&l);
                return r;
        }
        if (l.n > 1)
                qsort(l.names, l.n, sizeof *l.names, cmp_names);
        *ret = l;
        return 0;
}

/* Child side of run_hook(): never returns. */
static __attribute__((noreturn)) void exec_hook(const char *path, const char *arg,
                                                const struct lvss_event_info *info, uint64_t end) {
        char deadline[32];
        sigset_t none;
        int fd;

        (void) setpgid(0, 0);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                _exit(127);
        /* Nothing of ours but stdin/stdout/stderr: not lvssd's socket, not the pidfds. */
        (void) syscall(SYS_close_range, 3u, ~0u, 0u);
        snprintf(deadline, sizeof deadline, "%" PRIu64, end > wu_now_ms() ? end - wu_now_ms() : 0);
        setenv("LVSS_EVENT", lvss_event_to_string(info->event), 1);
        setenv("LVSS_SET_ID", info->set_id ? info->set_id : "", 1);
        setenv("LVSS_DEADLINE_MS", deadline, 1);
        execl(path, path, arg, (char *) NULL);
        fprintf(stderr, PROG ": cannot run the hook %s: %s\n", path, strerror(errno));
        _exit(127);
}

/* Runs DIR/NAME ARG until it exits or END passes (then kills its group): LVSS_RESULT_OK if it
 * exited 0, _TIMEOUT if killed, ERR_RESULT otherwise. */
static lvss_result run_hook(const char *dir, const char *name, const char *arg,
                            const struct lvss_event_info *info, uint64_t end, lvss_result err_result) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int pidfd = -1;
        int status;
        pid_t pid;

        if (asprintf(&path, "%s/%s", dir, name) < 0) {
                wu_log("out of memory");
                return LVSS_RESULT_OUT_OF_RESOURCES;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                wu_log("cannot start the hook %s: %s", path, strerror(errno));
                return LVSS_RESULT_OUT_OF_RESOURCES;
        }
        if (pid == 0)
                exec_hook(path, arg, info, end);
        (void) setpgid(pid, pid); /* also here: no window where a kill of the group misses it */

        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                uint64_t now;

                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        wu_log("cannot wait for the hook %s: %s", path, strerror(errno));
                        kill(-pid, SIGKILL);
                        return err_result;
                }
                now = wu_now_ms();
                if (now >= end) {
                        wu_log("the hook %s %s ran past the event's deadline: killed it", path, arg);
                        kill(-pid, SIGKILL);
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        return LVSS_RESULT_TIMEOUT;
                }
                if (pidfd >= 0) {
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        (void) poll(&p, 1, (int) MIN(end - now, (uint64_t) INT_MAX));
                } else {
                        struct timespec ts = { 0, 5 * 1000 * 1000 }; /* no pidfd (old kernel): poll */
                        nanosleep(&ts, NULL);
                }
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return LVSS_RESULT_OK;
        if (WIFEXITED(status))
                wu_log("the hook %s %s exited with status %d", path, arg, WEXITSTATUS(status));
        else
                wu_log("the hook %s %s was killed by signal %d (%s)", path, arg, WTERMSIG(status),
                       strsignal(WTERMSIG(status)));
        return err_result;
}

/* Gives "thaw" to the hooks of the last freeze, in reverse order, all of them even if some fail;
 * then nothing is frozen any more. */
static lvss_result thaw_all(struct exec_writer *x, const struct lvss_event_info *info, uint64_t end) {
        lvss_result res = LVSS_RESULT_OK;

        if (!x->is_frozen)
                return LVSS_RESULT_OK;
        for (size_t i = x->frozen.n; i > 0; i--) {
                /* Past the deadline, each remaining hook still gets a moment: a thaw must run. */
                uint64_t hook_end = MAX(end, wu_now_ms() + 1000);
                lvss_result r = run_hook(x->hooks_dir, x->frozen.names[i - 1], "thaw", info, hook_end,
                                         LVSS_RESULT_NON_RETRYABLE);
                if (r != LVSS_RESULT_OK && res == LVSS_RESULT_OK)
                        res = r;
        }
        hook_list_free(&x->frozen);
        x->is_frozen = false;
        return res;
}

static lvss_result on_freeze(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct exec_writer *x = userdata;
        uint64_t end = wu_event_end(info);
        struct hook_list hooks = {};
        lvss_result res = LVSS_RESULT_OK;
        int r;

        if (x->is_frozen) /* a freeze never thawed (cannot happen with lvssd): thaw it first */
                (void) thaw_all(x, info, end);
        r = hook_list_scan(x->hooks_dir, &hooks);
        if (r < 0) {
                wu_log("cannot read the hooks directory %s: %s", x->hooks_dir, strerror(-r));
                return LVSS_RESULT_NON_RETRYABLE;
        }
        /* From here on every hook in x->frozen up to n gets "thaw" whatever happens. */
        x->frozen.names = hooks.names;
        x->frozen.n = 0;
        x->is_frozen = true;
        for (size_t i = 0; i < hooks.n; i++) {
                x->frozen.n = i + 1;
                res = run_hook(x->hooks_dir, hooks.names[i], "freeze", info, end, LVSS_RESULT_VETO);
                if (res != LVSS_RESULT_OK)
                        break;
        }
        /* The hooks not run (after a failure) are not kept: they will not be thawed. */
        for (size_t i = x->frozen.n; i < hooks.n; i++)
                free(hooks.names[i]);
        if (res != LVSS_RESULT_OK) {
                wu_log("set %s: freeze failed (%s): thawing the %zu hook(s) already run",
                       info->set_id ? info->set_id : "?", lvss_result_to_string(res), x->frozen.n);
                (void) thaw_all(x, info, wu_now_ms() + info->deadline_ms);
        }
        return res;
}

static lvss_result on_thaw(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        return thaw_all(userdata, info, wu_event_end(info));
}

/* ---- setup ---------------------------------------------------------------------------------------- */

static int add_path_component(lvss_wmd *wmd, const char *arg) {
        _cleanup_free_ char *path = NULL;
        lvss_wmd_component *c;
        int r;

        path = realpath(arg, NULL);
        if (!path)
                return wu_usage_error("cannot use --path %s: %s; give an existing file or directory", arg,
                                      strerror(errno));
        r = wu_add_path_component(wmd, LVSS_WMD_COMPONENT_FILE_GROUP, "Paths", path, &c, NULL);
        if (r == -ENOMEM)
                return wu_usage_error("out of memory");
        if (r >= 0)
                r = lvss_wmd_component_add_files(c, LVSS_WMD_FILES, path, "*", true, BACKUP_TYPES);
        if (r < 0)
                return wu_usage_error(
                        "cannot describe --path %s in the writer's metadata: %s; give a shorter "
                        "path without control characters",
                        path, strerror(-r));
        return 0;
}

static void help(void) {
        printf("Usage: " PROG " --hooks-dir DIR [--name NAME] [--freeze-timeout SEC] [--path P]...\n"
               "                        [--socket PATH]\n\n"
               "An lvss writer that runs hook programs: at Freeze every executable in DIR in name\n"
               "order with the argument 'freeze', at Thaw and Abort the same in reverse order with\n"
               "'thaw' (qemu-guest-agent's fsfreeze-hook.d convention). A hook exiting non-zero at\n"
               "freeze vetoes the shadow copy set.\n\n"
               "Options:\n"
               "      --hooks-dir DIR       the hooks (required)\n"
               "      --name NAME           the writer's name (default exec)\n"
               "      --freeze-timeout SEC  longest Freeze to Thaw window, 0.1 to 60 (default 60)\n"
               "      --path P              a file or directory the hooks make consistent (repeatable);\n"
               "                            sets of the volumes holding them involve this writer\n"
               "      --socket PATH         lvssd's socket (default $LVSS_SOCKET, else "
               "/run/lvss/lvssd.sock)\n"
               "  -h, --help                show this help\n"
               "      --version             show the version\n\n"
               "Exit codes: 0 stopped by a signal, 1 failure (lvssd not reachable or gone), 2 usage.\n");
}

int main(int argc, char **argv) {
        enum { OPT_HOOKS_DIR = 0x100, OPT_NAME, OPT_FREEZE_TIMEOUT, OPT_PATH, OPT_SOCKET, OPT_VERSION };
        static const struct wu_callback callbacks[] = {
                { LVSS_EVENT_FREEZE, on_freeze },
                { LVSS_EVENT_THAW, on_thaw },
                { LVSS_EVENT_ABORT, on_thaw },
        };
        static const struct option options[] = {
                { "hooks-dir", required_argument, NULL, OPT_HOOKS_DIR },
                { "name", required_argument, NULL, OPT_NAME },
                { "freeze-timeout", required_argument, NULL, OPT_FREEZE_TIMEOUT },
                { "path", required_argument, NULL, OPT_PATH },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        _cleanup_free_ char *hooks_dir = NULL;
        const char *name = "exec", *socket_path = NULL;
        _cleanup_free_ const char **paths = NULL;
        size_t n_paths = 0, n_hooks;
        uint32_t freeze_ms = LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS;
        struct exec_writer x = {};
        lvss_writer *w = NULL;
        struct hook_list probe = {};
        struct stat st;
        int c, r, code = EXIT_FAILURE;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case OPT_HOOKS_DIR:
                        free(hooks_dir);
                        hooks_dir = realpath(optarg, NULL);
                        if (!hooks_dir)
                                return wu_usage_error(
                                        "cannot use --hooks-dir %s: %s; give an existing directory", optarg,
                                        strerror(errno));
                        break;
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_FREEZE_TIMEOUT:
                        if (!wu_parse_seconds(optarg, &freeze_ms))
                                return wu_usage_error(
                                        "invalid --freeze-timeout '%s': give seconds from 0.1 to 60",
                                        optarg);
                        break;
                case OPT_PATH: {
                        const char **p = realloc(paths, (n_paths + 1) * sizeof *paths);
                        if (!p)
                                return wu_usage_error("out of memory");
                        paths = p;
                        paths[n_paths++] = optarg;
                        break;
                }
                case OPT_SOCKET:
                        socket_path = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case OPT_VERSION:
                        wu_print_version();
                        return EXIT_SUCCESS;
                default:
                        return wu_option_error(c, argv);
                }
        }
        if (optind < argc)
                return wu_usage_error("unexpected argument '%s': give files with --path", argv[optind]);
        if (!hooks_dir)
                return wu_usage_error("missing --hooks-dir DIR: give the directory of the hook programs");
        if (stat(hooks_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return wu_usage_error(
                        "cannot use --hooks-dir %s: it is not a directory; give the directory of "
                        "the hook programs",
                        hooks_dir);
        r = hook_list_scan(hooks_dir, &probe);
        if (r < 0)
                return wu_usage_error("cannot read --hooks-dir %s: %s; give a directory this user may read",
                                      hooks_dir, strerror(-r));
        n_hooks = probe.n;
        hook_list_free(&probe);

        r = wu_writer_new(&(struct wu_identity){ .name = name,
                                                 .class_id = CLASS_ID,
                                                 .instance_name = hooks_dir,
                                                 .instance_option = "--hooks-dir",
                                                 .level = LVSS_LEVEL_FRONT_END,
                                                 .freeze_timeout_ms = freeze_ms,
                                                 .usage = LVSS_WMD_USAGE_USER_DATA,
                                                 .source = LVSS_WMD_SOURCE_OTHER,
                                                 .backup_types = BACKUP_TYPES },
                          &w);
        if (r != 0)
                return r;
        x.hooks_dir = hooks_dir;
        for (size_t i = 0; i < n_paths; i++) {
                r = add_path_component(lvss_writer_metadata(w), paths[i]);
                if (r != 0) {
                        code = r;
                        goto out;
                }
        }
        if (wu_set_callbacks(w, callbacks, ELEMENTSOF(callbacks), &x) < 0)
                goto out;

        code = wu_serve(w, socket_path, name, "%zu hook(s) in %s, read again at each freeze; %zu path(s)",
                        n_hooks, hooks_dir, n_paths);

out:
        /* Never leave the hooks frozen: a SIGTERM in the freeze window thaws here. */
        if (x.is_frozen) {
                struct lvss_event_info info = { .event = LVSS_EVENT_ABORT,
                                                .set_id = "",
                                                .deadline_ms = 30000 };
                (void) thaw_all(&x, &info, wu_now_ms() + info.deadline_ms);
        }
        lvss_writer_free(w);
        return code;
}
