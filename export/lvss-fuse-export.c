/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-fuse-export: serves engine volumes as files through FUSE, without the daemon.
 *
 *     lvss-fuse-export --mount DIR --volume NAME=VOLDIR [--volume ...]
 *                      [--shadow NAME=VOLDIR:SNAPID ...] [--workers N] [--control SOCKET]
 *                      [--foreground]
 *
 * opens each volume (the engine locks it against other processes), mounts DIR/volumes/NAME
 * (read-write) and DIR/shadows/NAME (read-only), serves until SIGTERM or SIGINT, then unmounts,
 * closes the volumes (non-persistent snapshots end there) and exits 0. Without --foreground it
 * detaches once it serves, and its exit status says whether it got that far.
 *
 * The control socket (--control) is a stepping stone to lvssd's D-Bus API: while the exporter
 * holds the volumes, it is the only way to snapshot them. One command per line, one reply line
 * "ok KEY=VALUE..." or "error SENTENCE":
 *
 *     snapshot [persistent] [VOLUME]     snapshot one live volume (the only one if not named)
 *                                        now, as it is; adds shadows/VOLUME@ID
 *                                        -> ok id=ID shadow=VOLUME@ID
 *     freeze-snapshot [persistent] [MOUNTPOINT...]
 *                                        one point in time over every live volume: syncfs and
 *                                        FIFREEZE each mount point, hold every volume's writes,
 *                                        snapshot each, release, FITHAW (DESIGN.md's order; a
 *                                        watchdog thaws after 10 s whatever happens)
 *                                        -> ok hold_ms=MS freeze_ms=MS shadows=A@1,B@4
 *     delete SHADOW                      remove the shadow's file and delete its snapshot
 *     list                               -> ok volumes=A,B shadows=A@1,B@4
 *     stats                              -> ok reads=N writes=N flushes=N ... (FUSE requests)
 *     ping                               -> ok
 *
 * Commands run one at a time on the control thread, which is neither a FUSE worker nor holds
 * any engine lock when it freezes: FIFREEZE waits for the frozen filesystem's flush to come back
 * through this process's FUSE workers.
 *
 * Threads: main (signals, start and stop), the control thread, the export's workers. The
 * shadow table belongs to the control thread once serving has begun.
 */

#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/engine.h"
#include "export/fuse-export.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

#define HOLD_WINDOW_MS 10000u
#define LINE_MAX_BYTES 4096u
#define MAX_VOLUMES 64u

static const char *program = "lvss-fuse-export";

struct volume {
        char *name; /* exported as volumes/NAME; NULL if only its shadows are */
        char *dir; /* as given */
        char *real; /* canonical, to open each directory once */
        eng_volume *v;
};

struct shadow {
        char *name;
        struct volume *vol;
        uint32_t id;
};

static struct {
        const char *mount;
        const char *control;
        unsigned workers;
        bool foreground;
        struct fuse_export_params params;
} arg;

static struct volume volumes[MAX_VOLUMES];
static size_t n_volumes;
static struct shadow *shadows;
static size_t n_shadows;
static fuse_export *export;
static int stop_pipe[2] = { -1, -1 };
static volatile sig_atomic_t export_ended;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

__attribute__((format(printf, 2, 0))) static void fuse_log_to_stderr(enum fuse_log_level level,
                                                                     const char *fmt, va_list ap) {
        if (level > FUSE_LOG_ERR)
                return;
        fprintf(stderr, "%s: fuse: ", program);
        vfprintf(stderr, fmt, ap);
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* ---- names and arguments ---- */

static bool name_valid(const char *s, size_t max, const char *extra) {
        size_t n = strlen(s);
        if (n == 0 || n > max ||
            !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          c == '.' || c == '_' || c == '-' || (extra && strchr(extra, c));
                if (!ok)
                        return false;
        }
        return true;
}

static bool volume_name_valid(const char *s) {
        return name_valid(s, 64, NULL);
}

static bool shadow_name_valid(const char *s) {
        return name_valid(s, 128, "@");
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret) {
        char *end;
        errno = 0;
        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* Bytes with an optional K or M suffix (powers of 1024). */
static int parse_bytes(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        if (*end == 'K' || *end == 'k')
                v <<= 10, end++;
        else if (*end == 'M' || *end == 'm')
                v <<= 20, end++;
        if (*end || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* The volume open from directory DIR, opening it on first use; NULL after reporting why not. */
static struct volume *volume_get(const char *dir) {
        char real[PATH_MAX];
        if (!realpath(dir, real)) {
                if (errno == ENOENT || errno == ENOTDIR)
                        fail("there is no lvss volume in %s: check the path, or create one with "
                             "'lvss-engine create %s --size SIZE'",
                             dir, dir);
                else
                        fail("cannot open the volume in %s: %m", dir);
                return NULL;
        }
        for (size_t i = 0; i < n_volumes; i++)
                if (strcmp(volumes[i].real, real) == 0)
                        return &volumes[i];
        if (n_volumes == MAX_VOLUMES) {
                fail("too many volumes: at most %u", MAX_VOLUMES);
                return NULL;
        }
        eng_volume *v;
        int r = engine_volume_open(real, &v);
        if (r < 0) {
                switch (-r) {
                case EWOULDBLOCK:
                        fail("the volume in %s is in use by another process (another lvss-fuse-export, or "
                             "lvss-engine): stop it first",
                             dir);
                        break;
                case ENOENT:
                case ENOTDIR:
                        fail("there is no lvss volume in %s: check the path, or create one with "
                             "'lvss-engine create %s --size SIZE'",
                             dir, dir);
                        break;
                case EACCES:
                case EPERM:
                case EROFS:
                        fail("cannot open the volume in %s: %s: run as a user who may write it", dir,
                             strerror(-r));
                        break;
                default:
                        fail("cannot open the volume in %s: %s", dir, strerror(-r));
                }
                return NULL;
        }
        struct volume *vol = &volumes[n_volumes++];
        *vol = (struct volume){ .dir = strdup(dir), .real = strdup(real), .v = v };
        if (!vol->dir || !vol->real) {
                fail("out of memory");
                return NULL;
        }
        return vol;
}

static struct volume *volume_by_name(const char *name) {
        for (size_t i = 0; i < n_volumes; i++)
                if (volumes[i].name && strcmp(volumes[i].name, name) == 0)
                        return &volumes[i];
        return NULL;
}

static struct shadow *shadow_by_name(const char *name) {
        for (size_t i = 0; i < n_shadows; i++)
                if (strcmp(shadows[i].name, name) == 0)
                        return &shadows[i];
        return NULL;
}

/* Records shadow NAME (snapshot ID of VOL) in the table, without exporting it. */
static int shadow_record(const char *name, struct volume *vol, uint32_t id) {
        if (shadow_by_name(name))
                return -EEXIST;
        struct shadow *s = realloc(shadows, (n_shadows + 1) * sizeof *s);
        if (!s)
                return -ENOMEM;
        shadows = s;
        char *copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        shadows[n_shadows++] = (struct shadow){ .name = copy, .vol = vol, .id = id };
        return 0;
}

/* Exports snapshot ID of VOL as shadows/NAME and records it; negative errno on failure. */
static int shadow_add(const char *name, struct volume *vol, uint32_t id) {
        if (shadow_by_name(name))
                return -EEXIST;
        int r = fuse_export_add_shadow(export, name, vol->v, id);
        if (r < 0)
                return r;
        r = shadow_record(name, vol, id);
        if (r < 0)
                fuse_export_remove_shadow(export, name);
        return r;
}

static void shadow_forget(struct shadow *s) {
        free(s->name);
        *s = shadows[--n_shadows];
}

/* Checks the syntax of --volume NAME=VOLDIR, or of --shadow NAME=VOLDIR:ID (SHADOW), and splits
 * it; prints why not and returns -EINVAL. */
static int split_spec(const char *spec, bool shadow, char **ret_name, char **ret_dir, uint32_t *ret_id) {
        const char *eq = strchr(spec, '=');
        const char *end = shadow ? strrchr(spec, ':') : spec + strlen(spec);
        uint32_t id = 0;
        if (!eq || eq == spec || !end || end < eq + 2 ||
            (shadow && parse_u32(end + 1, 1, UINT32_MAX, &id) < 0)) {
                fail("invalid %s '%s': give %s", shadow ? "--shadow" : "--volume", spec,
                     shadow ? "NAME=VOLDIR:SNAPID" : "NAME=VOLDIR");
                return -EINVAL;
        }
        _cleanup_free_ char *name = strndup(spec, (size_t) (eq - spec));
        _cleanup_free_ char *dir = strndup(eq + 1, (size_t) (end - eq - 1));
        if (!name || !dir)
                return -ENOMEM;
        if (!(shadow ? shadow_name_valid(name) : volume_name_valid(name))) {
                if (shadow)
                        fail("invalid shadow name '%s': use 1-128 letters, digits, '.', '_', '-' or '@', "
                             "starting with a letter or digit",
                             name);
                else
                        fail("invalid volume name '%s': use 1-64 letters, digits, '.', '_' or '-', starting "
                             "with a letter or digit",
                             name);
                return -EINVAL;
        }
        if (ret_name)
                *ret_name = TAKE_PTR(name);
        if (ret_dir)
                *ret_dir = TAKE_PTR(dir);
        if (ret_id)
                *ret_id = id;
        return 0;
}

/* --volume NAME=VOLDIR: opens the volume. */
static int add_volume_arg(const char *spec) {
        _cleanup_free_ char *name = NULL, *dir = NULL;
        if (split_spec(spec, false, &name, &dir, NULL) < 0)
                return -EINVAL;
        if (volume_by_name(name)) {
                fail("volume name '%s' is given twice", name);
                return -EEXIST;
        }
        struct volume *vol = volume_get(dir);
        if (!vol)
                return -EIO;
        if (vol->name) {
                fail("the volume in %s is already exported as '%s'", dir, vol->name);
                return -EEXIST;
        }
        vol->name = TAKE_PTR(name);
        return 0;
}

/* --shadow NAME=VOLDIR:SNAPID: opens the volume and checks the snapshot; exported later. */
static int add_shadow_arg(const char *spec) {
        _cleanup_free_ char *name = NULL, *dir = NULL;
        uint32_t id;
        if (split_spec(spec, true, &name, &dir, &id) < 0)
                return -EINVAL;
        struct volume *vol = volume_get(dir);
        if (!vol)
                return -EIO;
        struct eng_snap_info si;
        int r = engine_snapshot_get(vol->v, id, &si);
        if (r == -ENOENT) {
                fail("the volume in %s has no snapshot %" PRIu32 ": 'lvss-engine list %s' shows them", dir,
                     id, dir);
                return r;
        }
        if (r >= 0 && si.state != ENG_SNAP_VALID) {
                fail("snapshot %" PRIu32 " of %s is invalid (it could not be proven intact after a crash)",
                     id, dir);
                return -EIO;
        }
        r = r < 0 ? r : shadow_record(name, vol, id);
        if (r == -EEXIST)
                fail("shadow name '%s' is given twice", name);
        else if (r < 0)
                fail("cannot export snapshot %" PRIu32 " of %s: %s", id, dir, strerror(-r));
        return r;
}

/* ---- control commands ---- */

struct reply {
        char buf[LINE_MAX_BYTES];
        size_t len;
        bool error;
};

static void reply_add(struct reply *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_add(struct reply *rp, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(rp->buf + rp->len, sizeof rp->buf - rp->len, fmt, ap);
        va_end(ap);
        if (n > 0)
                rp->len = MIN(rp->len + (size_t) n, sizeof rp->buf - 1);
}

static void reply_error(struct reply *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_error(struct reply *rp, const char *fmt, ...) {
        va_list ap;
        rp->error = true;
        rp->len = (size_t) snprintf(rp->buf, sizeof rp->buf, "error ");
        va_start(ap, fmt);
        int n = vsnprintf(rp->buf + rp->len, sizeof rp->buf - rp->len, fmt, ap);
        va_end(ap);
        if (n > 0)
                rp->len = MIN(rp->len + (size_t) n, sizeof rp->buf - 1);
}

/* Takes a snapshot of VOL and exports it as shadows/NAME@ID; on failure nothing is left. */
static int snapshot_and_export(struct volume *vol, bool persistent, uint32_t *ret_id, struct reply *rp) {
        struct eng_snap_params sp = { .persistent = persistent, .label = "lvss-fuse-export" };
        uint32_t id;
        int r = engine_snapshot_create(vol->v, &sp, &id);
        if (r < 0) {
                reply_error(rp, "cannot snapshot volume %s: %s", vol->name, strerror(-r));
                return r;
        }
        char name[256];
        snprintf(name, sizeof name, "%s@%" PRIu32, vol->name, id);
        r = shadow_add(name, vol, id);
        if (r < 0) {
                engine_snapshot_delete(vol->v, id);
                reply_error(rp, "cannot export snapshot %" PRIu32 " of volume %s: %s", id, vol->name,
                            strerror(-r));
                return r;
        }
        *ret_id = id;
        return 0;
}

static void cmd_snapshot(int argc, char **argv, struct reply *rp) {
        bool persistent = false;
        struct volume *vol = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "persistent") == 0)
                        persistent = true;
                else if (!vol && (vol = volume_by_name(argv[i])))
                        ;
                else
                        return reply_error(rp, "no live volume '%s': 'list' shows them", argv[i]);
        }
        if (!vol) {
                size_t n_live = 0;
                for (size_t i = 0; i < n_volumes; i++)
                        if (volumes[i].name) {
                                vol = &volumes[i];
                                n_live++;
                        }
                if (n_live != 1)
                        return reply_error(rp, "there are %zu live volumes: name the one to snapshot",
                                           n_live);
        }
        uint32_t id;
        if (snapshot_and_export(vol, persistent, &id, rp) >= 0)
                reply_add(rp, "ok id=%" PRIu32 " shadow=%s@%" PRIu32, id, vol->name, id);
}

/* The watchdog of one freeze: past the deadline it thaws whatever is frozen, whatever the
 * control thread is stuck in. Under LOCK, each FIFREEZE that succeeded is counted in N_FROZEN,
 * so that a filesystem is thawed exactly once, by one side or the other. */
struct watchdog {
        pthread_mutex_t lock;
        pthread_cond_t cond; /* on CLOCK_MONOTONIC */
        bool done, fired;
        struct timespec deadline; /* CLOCK_MONOTONIC */
        const int *fds;
        size_t n_frozen;
};

static void *watchdog_main(void *p) {
        struct watchdog *w = p;
        pthread_mutex_lock(&w->lock);
        while (!w->done)
                if (pthread_cond_timedwait(&w->cond, &w->lock, &w->deadline) == ETIMEDOUT && !w->done) {
                        w->fired = true;
                        for (size_t i = w->n_frozen; i > 0; i--)
                                (void) ioctl(w->fds[i - 1], FITHAW, 0);
                        break;
                }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static void cmd_freeze_snapshot(int argc, char **argv, struct reply *rp) {
        bool persistent = false;
        int fds[64];
        size_t n_fds = 0, n_held = 0, n_snapped = 0;
        struct volume *live[MAX_VOLUMES];
        uint32_t ids[MAX_VOLUMES];
        size_t n_live = 0;
        struct watchdog w = { .lock = PTHREAD_MUTEX_INITIALIZER, .fds = fds };
        pthread_t wt;
        bool watchdog_running = false;
        double t0 = 0, t_frozen = 0, t_thawed = 0;
        int r;

        for (size_t i = 0; i < n_volumes; i++)
                if (volumes[i].name)
                        live[n_live++] = &volumes[i];
        if (n_live == 0)
                return reply_error(rp, "there is no live volume to snapshot");

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "persistent") == 0 && n_fds == 0) {
                        persistent = true;
                        continue;
                }
                if (n_fds == ELEMENTSOF(fds)) {
                        reply_error(rp, "too many mount points: at most %zu", ELEMENTSOF(fds));
                        goto out;
                }
                int fd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                struct stat st, vst;
                if (fd < 0 || fstat(fd, &st) < 0) {
                        reply_error(rp, "cannot open mount point %s: %s", argv[i], strerror(errno));
                        if (fd >= 0)
                                close(fd);
                        goto out;
                }
                fds[n_fds++] = fd;
                /* Never freeze yourself: the volumes' state must stay writable. */
                for (size_t j = 0; j < n_volumes; j++)
                        if (stat(volumes[j].real, &vst) == 0 && vst.st_dev == st.st_dev) {
                                reply_error(
                                        rp,
                                        "%s is the filesystem holding the volume in %s: freezing it would "
                                        "stop the engine itself",
                                        argv[i], volumes[j].dir);
                                goto out;
                        }
                if (stat(arg.mount, &vst) == 0 && vst.st_dev == st.st_dev) {
                        reply_error(rp,
                                    "%s is the export's own FUSE mount: give the mount points of the "
                                    "filesystems on the volumes",
                                    argv[i]);
                        goto out;
                }
        }

        /* Flush dirty data while nothing is frozen yet, so that the freeze has little left to do. */
        for (size_t i = 0; i < n_fds; i++)
                (void) syncfs(fds[i]);

        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w.cond, &ca);
        pthread_condattr_destroy(&ca);
        t0 = now_ms();
        clock_gettime(CLOCK_MONOTONIC, &w.deadline);
        w.deadline.tv_sec += HOLD_WINDOW_MS / 1000;
        if (pthread_create(&wt, NULL, watchdog_main, &w) != 0) {
                reply_error(rp, "cannot start the freeze watchdog");
                goto out;
        }
        watchdog_running = true;

        /* 1. Freeze the filesystems: their flush goes through our FUSE workers. */
        for (size_t i = 0; i < n_fds; i++) {
                if (ioctl(fds[i], FIFREEZE, 0) < 0) {
                        reply_error(rp, "cannot freeze %s: %s", argv[argc - (int) n_fds + (int) i],
                                    errno == EBUSY ? "it is frozen already" : strerror(errno));
                        goto thaw;
                }
                pthread_mutex_lock(&w.lock);
                bool late = w.fired;
                if (late)
                        (void) ioctl(fds[i], FITHAW, 0);
                else
                        w.n_frozen++;
                pthread_mutex_unlock(&w.lock);
                if (late)
                        goto thaw;
        }
        t_frozen = now_ms();

        /* 2. Hold every volume's writes, for what is left of the window. */
        uint32_t left = (uint32_t) MAX(1.0, (double) HOLD_WINDOW_MS - (now_ms() - t0));
        for (; n_held < n_live; n_held++) {
                r = engine_hold(live[n_held]->v, left);
                if (r < 0) {
                        reply_error(rp, "cannot hold the writes of volume %s: %s", live[n_held]->name,
                                    strerror(-r));
                        goto release;
                }
        }

        /* 3. The point in time. */
        for (; n_snapped < n_live; n_snapped++) {
                struct eng_snap_params sp = { .persistent = persistent, .label = "lvss-fuse-export" };
                r = engine_snapshot_create(live[n_snapped]->v, &sp, &ids[n_snapped]);
                if (r < 0) {
                        reply_error(rp, "cannot snapshot volume %s: %s", live[n_snapped]->name,
                                    strerror(-r));
                        goto release;
                }
        }

release:
        /* 4. Release the holds; one that lapsed by itself may have let a write through. */
        for (size_t i = 0; i < n_held; i++) {
                r = engine_release(live[i]->v);
                if (r < 0 && !rp->error)
                        reply_error(rp,
                                    "the hold of volume %s lapsed after %u ms: the set is not one point in "
                                    "time and was discarded",
                                    live[i]->name, HOLD_WINDOW_MS);
        }
thaw:
        /* 5. Thaw, newest first. */
        pthread_mutex_lock(&w.lock);
        w.done = true;
        pthread_cond_signal(&w.cond);
        bool fired = w.fired;
        if (!fired)
                for (size_t i = w.n_frozen; i > 0; i--)
                        (void) ioctl(fds[i - 1], FITHAW, 0);
        pthread_mutex_unlock(&w.lock);
        t_thawed = now_ms();
        if (fired && !rp->error)
                reply_error(rp,
                            "the freeze passed %u ms and the watchdog thawed everything: the set was "
                            "discarded",
                            HOLD_WINDOW_MS);

        if (rp->error) {
                for (size_t i = 0; i < n_snapped; i++)
                        engine_snapshot_delete(live[i]->v, ids[i]);
                goto out;
        }
        char list[LINE_MAX_BYTES / 2] = "";
        size_t len = 0;
        for (size_t i = 0; i < n_live; i++) {
                char name[256];
                snprintf(name, sizeof name, "%s@%" PRIu32, live[i]->name, ids[i]);
                r = shadow_add(name, live[i], ids[i]);
                if (r < 0) {
                        /* All or nothing: the shadows already added go too. */
                        reply_error(rp, "cannot export snapshot %s: %s", name, strerror(-r));
                        for (size_t j = 0; j < i; j++) {
                                snprintf(name, sizeof name, "%s@%" PRIu32, live[j]->name, ids[j]);
                                struct shadow *s = shadow_by_name(name);
                                if (s && fuse_export_remove_shadow(export, name) >= 0)
                                        shadow_forget(s);
                        }
                        for (size_t j = 0; j < n_live; j++)
                                engine_snapshot_delete(live[j]->v, ids[j]);
                        goto out;
                }
                len += (size_t) snprintf(list + len, sizeof list - MIN(len, sizeof list), "%s%s",
                                         i ? "," : "", name);
                len = MIN(len, sizeof list - 1);
        }
        reply_add(rp, "ok hold_ms=%.3f freeze_ms=%.3f shadows=%s", t_thawed - t0, t_frozen - t0, list);
out:
        if (watchdog_running) {
                pthread_join(wt, NULL);
                pthread_cond_destroy(&w.cond);
        }
        for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
}

static void cmd_delete(int argc, char **argv, struct reply *rp) {
        if (argc != 2)
                return reply_error(rp, "usage: delete SHADOW");
        struct shadow *s = shadow_by_name(argv[1]);
        if (!s)
                return reply_error(rp, "no shadow '%s': 'list' shows them", argv[1]);
        int r = fuse_export_remove_shadow(export, s->name);
        if (r == -EBUSY)
                return reply_error(rp,
                                   "shadow %s is open (a loop device? 'losetup -j %s/shadows/%s' shows it): "
                                   "detach it first",
                                   s->name, arg.mount, s->name);
        if (r < 0)
                return reply_error(rp, "cannot remove shadow %s: %s", s->name, strerror(-r));
        r = engine_snapshot_delete(s->vol->v, s->id);
        if (r < 0 && r != -ENOENT) {
                reply_error(rp, "removed shadow %s but cannot delete its snapshot: %s", s->name,
                            strerror(-r));
                shadow_forget(s);
                return;
        }
        shadow_forget(s);
        reply_add(rp, "ok");
}

static void cmd_list(int argc, char **argv, struct reply *rp) {
        reply_add(rp, "ok volumes=");
        bool first = true;
        for (size_t i = 0; i < n_volumes; i++)
                if (volumes[i].name) {
                        reply_add(rp, "%s%s", first ? "" : ",", volumes[i].name);
                        first = false;
                }
        reply_add(rp, " shadows=");
        for (size_t i = 0; i < n_shadows; i++)
                reply_add(rp, "%s%s", i ? "," : "", shadows[i].name);
}

static void cmd_stats(int argc, char **argv, struct reply *rp) {
        struct fuse_export_stats st;
        uint64_t cow = 0;
        fuse_export_get_stats(export, &st);
        for (size_t i = 0; i < n_volumes; i++) {
                struct eng_volume_info info;
                if (engine_volume_info(volumes[i].v, &info) >= 0)
                        cow += info.cow_copies;
        }
        reply_add(rp,
                  "ok reads=%" PRIu64 " writes=%" PRIu64 " flushes=%" PRIu64 " discards=%" PRIu64
                  " zeroes=%" PRIu64 " read_bytes=%" PRIu64 " write_bytes=%" PRIu64 " errors=%" PRIu64
                  " open_files=%u cow_copies=%" PRIu64,
                  st.reads, st.writes, st.flushes, st.discards, st.zeroes, st.read_bytes, st.write_bytes,
                  st.errors, fuse_export_open_files(export), cow);
}

static void cmd_ping(int argc, char **argv, struct reply *rp) {
        reply_add(rp, "ok");
}

static const struct {
        const char *name;
        void (*run)(int argc, char **argv, struct reply *rp);
} commands[] = {
        { "snapshot", cmd_snapshot }, { "freeze-snapshot", cmd_freeze_snapshot },
        { "delete", cmd_delete },     { "list", cmd_list },
        { "stats", cmd_stats },       { "ping", cmd_ping },
};

static void run_command(char *line, struct reply *rp) {
        char *argv[80];
        int argc = 0;
        for (char *save = NULL, *tok = strtok_r(line, " \t\r", &save); tok;
             tok = strtok_r(NULL, " \t\r", &save)) {
                if (argc == (int) ELEMENTSOF(argv))
                        return reply_error(rp, "too many arguments");
                argv[argc++] = tok;
        }
        if (argc == 0)
                return reply_error(
                        rp, "empty command: try snapshot, freeze-snapshot, delete, list, stats, ping");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[0], commands[i].name) == 0)
                        return commands[i].run(argc, argv, rp);
        reply_error(rp, "unknown command '%.64s': try snapshot, freeze-snapshot, delete, list, stats, ping",
                    argv[0]);
}

/* Serves one client until it hangs up or we stop; returns false when stopping. */
static bool serve_client(int fd) {
        char buf[LINE_MAX_BYTES];
        size_t have = 0;
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
                                       { .fd = stop_pipe[0], .events = POLLIN } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return true;
                }
                if (p[1].revents)
                        return false;
                ssize_t n = read(fd, buf + have, sizeof buf - have);
                if (n <= 0)
                        return true;
                have += (size_t) n;
                char *nl;
                while ((nl = memchr(buf, '\n', have))) {
                        *nl = '\0';
                        struct reply rp = {};
                        run_command(buf, &rp);
                        rp.buf[rp.len++] = '\n';
                        if (write(fd, rp.buf, rp.len) != (ssize_t) rp.len)
                                return true;
                        size_t used = (size_t) (nl - buf) + 1;
                        memmove(buf, nl + 1, have - used);
                        have -= used;
                }
                if (have == sizeof buf) {
                        static const char msg[] = "error line too long\n";
                        (void) write(fd, msg, sizeof msg - 1);
                        return true;
                }
        }
}

static void *control_main(void *p) {
        int lfd = (int) (intptr_t) p;
        for (;;) {
                struct pollfd fds[2] = { { .fd = lfd, .events = POLLIN },
                                         { .fd = stop_pipe[0], .events = POLLIN } };
                if (poll(fds, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (fds[1].revents)
                        break;
                int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (cfd < 0)
                        continue;
                bool go_on = serve_client(cfd);
                close(cfd);
                if (!go_on)
                        break;
        }
        return NULL;
}

static int control_listen(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) {
                fail("control socket path %s is too long (at most %zu bytes)", path, sizeof sa.sun_path - 1);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                fail("cannot create the control socket: %m");
                return -errno;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0) {
                fail("control socket %s is in use by another process: stop it or choose another path", path);
                close(fd);
                return -EADDRINUSE;
        }
        (void) unlink(path); /* a stale socket nobody listens on */
        mode_t old = umask(0077);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0 || listen(fd, 8) < 0) {
                fail("cannot listen on control socket %s: %m", path);
                close(fd);
                return -EIO;
        }
        return fd;
}

/* ---- main ---- */

static void on_export_exit(void *userdata, int error) {
        export_ended = error < 0 ? error : 1;
        kill(getpid(), SIGTERM);
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: %s --mount DIR --volume NAME=VOLDIR [--volume ...] [OPTIONS]\n"
                "\n"
                "Serve lvss engine volumes as files: DIR/volumes/NAME (read-write) and\n"
                "DIR/shadows/NAME (read-only), for loop devices (losetup --direct-io=on).\n"
                "Runs until SIGTERM or SIGINT, then unmounts and closes the volumes.\n"
                "\n"
                "Options:\n"
                "  -m, --mount DIR               mount point (an existing directory)\n"
                "  -v, --volume NAME=VOLDIR      export the volume in VOLDIR as volumes/NAME\n"
                "  -s, --shadow NAME=VOLDIR:ID   export snapshot ID of VOLDIR as shadows/NAME\n"
                "  -w, --workers N               FUSE worker threads (default %u)\n"
                "  -c, --control SOCKET          accept commands on this Unix socket:\n"
                "                                snapshot, freeze-snapshot, delete, list, stats, ping\n"
                "  -f, --foreground              stay in the foreground (default: detach once serving)\n"
                "  -h, --help                    show this help\n"
                "      --version                 show the version\n"
                "\n"
                "Tuning (for measurement; the defaults are the measured best):\n"
                "      --cache=direct|page       FOPEN_DIRECT_IO (default) or the FUSE page cache\n"
                "      --writeback-cache         with --cache=page: the kernel's writeback cache\n"
                "      --splice                  move request data through pipes\n"
                "      --max-io=BYTES            largest FUSE read/write (4K..1M, default 1M)\n"
                "      --max-background=N        asynchronous requests in flight (default 128)\n",
                program, FUSE_EXPORT_WORKERS_DEFAULT);
}

enum { OPT_VERSION = 0x100, OPT_CACHE, OPT_WRITEBACK, OPT_SPLICE, OPT_MAX_IO, OPT_MAX_BACKGROUND };

static int parse_args(int argc, char **argv) {
        static const struct option options[] = {
                { "mount", required_argument, NULL, 'm' },
                { "volume", required_argument, NULL, 'v' },
                { "shadow", required_argument, NULL, 's' },
                { "workers", required_argument, NULL, 'w' },
                { "control", required_argument, NULL, 'c' },
                { "foreground", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { "cache", required_argument, NULL, OPT_CACHE },
                { "writeback-cache", no_argument, NULL, OPT_WRITEBACK },
                { "splice", no_argument, NULL, OPT_SPLICE },
                { "max-io", required_argument, NULL, OPT_MAX_IO },
                { "max-background", required_argument, NULL, OPT_MAX_BACKGROUND },
                {},
        };
        uint32_t u;
        int c;

        /* Volumes are opened after the options are all known to be well-formed. */
        while ((c = getopt_long(argc, argv, "m:v:s:w:c:fh", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                        arg.mount = optarg;
                        break;
                case 'v':
                case 's':
                        if (split_spec(optarg, c == 's', NULL, NULL, NULL) < 0)
                                return 2;
                        break;
                case 'w':
                        if (parse_u32(optarg, 1, FUSE_EXPORT_WORKERS_MAX, &u) < 0) {
                                fail("invalid --workers '%s': give a number from 1 to %u", optarg,
                                     FUSE_EXPORT_WORKERS_MAX);
                                return 2;
                        }
                        arg.params.n_workers = u;
                        break;
                case 'c':
                        arg.control = optarg;
                        break;
                case 'f':
                        arg.foreground = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case OPT_VERSION:
                        printf("%s %s\n", program, PROJECT_VERSION);
                        exit(0);
                case OPT_CACHE:
                        if (strcmp(optarg, "direct") != 0 && strcmp(optarg, "page") != 0) {
                                fail("invalid --cache '%s': give 'direct' or 'page'", optarg);
                                return 2;
                        }
                        arg.params.page_cache = strcmp(optarg, "page") == 0;
                        break;
                case OPT_WRITEBACK:
                        arg.params.writeback_cache = true;
                        break;
                case OPT_SPLICE:
                        arg.params.splice = true;
                        break;
                case OPT_MAX_IO:
                        if (parse_bytes(optarg, &u) < 0 || u < 4096 || u > FUSE_EXPORT_MAX_IO_DEFAULT) {
                                fail("invalid --max-io '%s': give a size from 4K to 1M", optarg);
                                return 2;
                        }
                        arg.params.max_io = u;
                        break;
                case OPT_MAX_BACKGROUND:
                        if (parse_u32(optarg, 1, 65535, &u) < 0) {
                                fail("invalid --max-background '%s': give a number from 1 to 65535", optarg);
                                return 2;
                        }
                        arg.params.max_background = u;
                        break;
                default:
                        fprintf(stderr, "Try '%s --help'.\n", program);
                        return 2;
                }
        if (optind < argc) {
                fail("unexpected argument '%s': see '%s --help'", argv[optind], program);
                return 2;
        }
        if (!arg.mount) {
                fail("no mount point: give --mount DIR");
                return 2;
        }
        return 0;
}

/* Opens the volumes and shadows named by --volume and --shadow, in order. */
static int open_volumes(int argc, char **argv) {
        static const struct option options[] = {
                { "volume", required_argument, NULL, 'v' },
                { "shadow", required_argument, NULL, 's' },
                {},
        };
        int c, live = 0;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "-v:s:", options, NULL)) >= 0) {
                if (c == 'v') {
                        if (add_volume_arg(optarg) < 0)
                                return -1;
                        live++;
                } else if (c == 's' && add_shadow_arg(optarg) < 0)
                        return -1;
        }
        if (live == 0 && n_shadows == 0) {
                fail("nothing to export: give --volume NAME=VOLDIR or --shadow NAME=VOLDIR:SNAPID");
                return -1;
        }
        return 0;
}

static void close_volumes(void) {
        for (size_t i = 0; i < n_volumes; i++) {
                engine_volume_close(volumes[i].v);
                free(volumes[i].name);
                free(volumes[i].dir);
                free(volumes[i].real);
        }
        n_volumes = 0;
        for (size_t i = 0; i < n_shadows; i++)
                free(shadows[i].name);
        free(shadows);
        shadows = NULL;
        n_shadows = 0;
}

/* Without --foreground: the parent waits until the child serves (a byte on the pipe) and exits
 * with the child's failure otherwise. Returns the write end in the child, -1 in foreground. */
static int daemonize_begin(void) {
        int p[2];
        if (arg.foreground)
                return -1;
        if (pipe2(p, O_CLOEXEC) < 0) {
                fail("cannot create a pipe: %m");
                exit(1);
        }
        pid_t pid = fork();
        if (pid < 0) {
                fail("cannot fork: %m");
                exit(1);
        }
        if (pid > 0) {
                char c;
                close(p[1]);
                ssize_t n = read(p[0], &c, 1);
                if (n == 1)
                        _exit(0);
                int status;
                waitpid(pid, &status, 0);
                _exit(WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
        }
        close(p[0]);
        return p[1];
}

static void daemonize_end(int fd) {
        if (fd < 0)
                return;
        setsid();
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                close(null);
        }
        (void) write(fd, "", 1);
        close(fd);
}

int main(int argc, char **argv) {
        int r = parse_args(argc, argv);
        if (r != 0)
                return r;

        fuse_set_log_func(fuse_log_to_stderr);
        int ready_fd = daemonize_begin();

        /* Every thread inherits this mask: only main takes the stop signals, in sigwait. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        struct stat st;
        if (stat(arg.mount, &st) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        fail("mount point %s does not exist: create the directory first", arg.mount);
                else
                        fail("cannot use mount point %s: %m", arg.mount);
                return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
                fail("mount point %s is not a directory", arg.mount);
                return 1;
        }

        /* The volumes first: a volume in use or a missing snapshot is reported before mounting. */
        if (open_volumes(argc, argv) < 0) {
                close_volumes();
                return 1;
        }

        arg.params.on_exit = on_export_exit;
        r = fuse_export_new(arg.mount, &arg.params, &export);
        if (r < 0) {
                switch (-r) {
                case ENODEV:
                        fail("/dev/fuse is unavailable: load the fuse module (modprobe fuse), or give the "
                             "container the device");
                        break;
                case EACCES:
                        fail("cannot open /dev/fuse: permission denied: run as root");
                        break;
                case ENOENT:
                case ENOTDIR:
                        fail("mount point %s does not exist: create the directory first", arg.mount);
                        break;
                case EINVAL:
                        fail("invalid FUSE settings (see --help)");
                        break;
                default:
                        fail("cannot mount FUSE on %s (see the message above): is it already mounted, or "
                             "not permitted here?",
                             arg.mount);
                }
                close_volumes();
                return 1;
        }
        for (size_t i = 0; i < n_volumes; i++)
                if (volumes[i].name &&
                    (r = fuse_export_add_volume(export, volumes[i].name, volumes[i].v)) < 0) {
                        fail("cannot export volume %s: %s", volumes[i].name, strerror(-r));
                        fuse_export_free(export);
                        close_volumes();
                        return 1;
                }
        for (size_t i = 0; i < n_shadows; i++)
                if ((r = fuse_export_add_shadow(export, shadows[i].name, shadows[i].vol->v, shadows[i].id)) <
                    0) {
                        fail("cannot export shadow %s: %s", shadows[i].name, strerror(-r));
                        fuse_export_free(export);
                        close_volumes();
                        return 1;
                }

        int lfd = -1;
        pthread_t control_thread;
        bool control_running = false;
        if (arg.control) {
                lfd = control_listen(arg.control);
                if (lfd < 0 || pipe2(stop_pipe, O_CLOEXEC) < 0) {
                        fuse_export_free(export);
                        close_volumes();
                        return 1;
                }
        }
        r = fuse_export_start(export);
        if (r < 0) {
                fail("cannot start the FUSE workers: %s", strerror(-r));
                fuse_export_free(export);
                close_volumes();
                return 1;
        }
        if (lfd >= 0) {
                if (pthread_create(&control_thread, NULL, control_main, (void *) (intptr_t) lfd) != 0) {
                        fail("cannot start the control thread");
                        fuse_export_free(export);
                        close_volumes();
                        return 1;
                }
                control_running = true;
        }

        size_t n_live = 0;
        for (size_t i = 0; i < n_volumes; i++)
                n_live += volumes[i].name != NULL;
        printf("%s: serving %zu volume(s) and %zu shadow(s) on %s\n", program, n_live, n_shadows, arg.mount);
        fflush(stdout);
        daemonize_end(ready_fd);

        int sig = 0;
        sigwait(&mask, &sig);

        if (control_running) {
                (void) write(stop_pipe[1], "", 1);
                pthread_join(control_thread, NULL);
        }
        if (lfd >= 0) {
                close(lfd);
                unlink(arg.control);
        }
        unsigned still_open = fuse_export_open_files(export);
        if (still_open > 0)
                fail("warning: %u exported file(s) still open (loop devices?) fail their I/O from now on; "
                     "detach them before stopping",
                     still_open);
        fuse_export_free(export);
        close_volumes();
        if (export_ended) {
                fail("the FUSE mount on %s went away (unmounted from outside?): stopped", arg.mount);
                return 1;
        }
        return 0;
}
