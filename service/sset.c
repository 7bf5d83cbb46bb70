/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The creation of a shadow copy set (sset.h). The job struct is shared by three threads: the
 * main loop fills it before the worker starts and reads the results after joining it; the
 * worker owns it in between, except `frozen`/`watchdog_fired`, which the freezing threads and the watchdog
 * reads and writes under `lock`. A guardian process thaws the set's filesystems if lvssd dies
 * while they are frozen. The worker only touches provider handles (thread-safe) and
 * file descriptors, never the manager's lists.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "host/mounts.h"
#include "service/bus-util.h"
#include "service/sset.h"
#include "service/writers.h"

struct sset_target {
        struct volume *volume; /* main thread only */
        const struct lvss_provider *provider;
        lvss_pvol *pv;
        char name[65];
        char shadow_id[LVSS_ID_LEN + 1];
        uint32_t snap_id;
        bool held, snapped;
};

/* The steps of a set, in order; the writer steps are rounds of calls on the main loop. */
enum {
        PH_IDENTIFY,
        PH_PREPARE_BACKUP,
        PH_PREPARE_SNAPSHOT,
        PH_FREEZE_FRONT_END,
        PH_FREEZE_BACK_END,
        PH_FREEZE_SYSTEM,
        PH_WORKER, /* the thread: flush, freeze, hold, snapshot, release, thaw */
        PH_THAW_SYSTEM,
        PH_THAW_BACK_END,
        PH_THAW_FRONT_END,
        PH_POST_SNAPSHOT,
        PH_ABORT,
        PH_END,
};

struct sset_job {
        struct manager *manager;
        sd_bus_message *msg;
        lvss_context ctx;
        bool persistent;
        uint64_t requester; /* the serial of the requester's connection (0: the system bus) */
        bool auto_release, requester_gone;
        char set_id[LVSS_ID_LEN + 1];
        struct sset_target targets[LVSS_MAX_SET_VOLUMES];
        size_t n_targets;
        char **mounts; /* one mount point per filesystem to freeze */
        int mount_ids[LVSS_MAX_SET_VOLUMES * 4]; /* the mount ID of each of MOUNTS */
        int fds[LVSS_MAX_SET_VOLUMES * 4];
        size_t n_fds;

        pthread_t thread;
        int efd;
        sd_event_source *source;
        atomic_bool abort;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool frozen[LVSS_MAX_SET_VOLUMES * 4]; /* fds[i] is frozen; under lock */
        int freeze_errno[LVSS_MAX_SET_VOLUMES * 4]; /* what FIFREEZE of fds[i] said */
        bool watchdog_fired, worker_done; /* under lock */
        struct timespec deadline; /* CLOCK_MONOTONIC */
        uint32_t window_ms; /* the freeze-and-hold window (LVSS_HOLD_WINDOW_MS unless configured) */
        uint32_t test_delay_ms; /* extra time spent holding, for tests */

        /* Writers (main thread only). */
        struct writer **writers; /* references */
        size_t n_writers;
        char backup_type[16];
        char **required, **excluded;
        int phase;
        unsigned outstanding; /* calls of the current round not answered yet */
        bool worker_started, recorded;
        uint64_t generation; /* the manager's set count when this set started */
        pthread_t presync_thread; /* the first syncfs passes, while writers prepare */
        int presync_efd;
        sd_event_source *presync_source;
        bool presync_running, presynced;
        uint64_t snapped_usec; /* CLOCK_MONOTONIC, when the last snapshot was made (worker) */

        /* results */
        int r;
        const char *error_name;
        char error_msg[512];
        uint64_t created_usec, hold_usec, freeze_usec;
};

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void job_fail(struct sset_job *j, int r, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void job_fail(struct sset_job *j, int r, const char *name, const char *fmt, ...) {
        if (j->r < 0)
                return;
        j->r = r < 0 ? r : -EIO;
        j->error_name = name ? name : bus_error_name_from_errno(j->r);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->error_msg, sizeof j->error_msg, fmt, ap);
        va_end(ap);
        utf8_scrub(j->error_msg);
}

static void job_free(struct sset_job *j) {
        if (!j)
                return;
        for (size_t i = 0; i < j->n_fds; i++)
                close(j->fds[i]);
        strv_free(j->mounts);
        sd_event_source_unref(j->source);
        if (j->efd >= 0)
                close(j->efd);
        sd_event_source_unref(j->presync_source);
        if (j->presync_efd >= 0)
                close(j->presync_efd);
        sd_bus_message_unref(j->msg);
        for (size_t i = 0; i < j->n_writers; i++)
                writer_unref(j->writers[i]);
        free(j->writers);
        strv_free(j->required);
        strv_free(j->excluded);
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->cond);
        free(j);
}

/* Thaws every frozen filesystem of the set, newest first; J->lock held. */
static void thaw_all_locked(struct sset_job *j) {
        for (size_t i = j->n_fds; i > 0; i--)
                if (j->frozen[i - 1]) {
                        (void) ioctl(j->fds[i - 1], FITHAW, 0);
                        j->frozen[i - 1] = false;
                }
}

/* Freezes fds[I]; keeps it frozen only if the watchdog has not fired meanwhile. */
static void freeze_one(struct sset_job *j, size_t i) {
        if (atomic_load(&j->abort)) {
                j->freeze_errno[i] = ECANCELED;
                return;
        }
        if (ioctl(j->fds[i], FIFREEZE, 0) < 0) {
                j->freeze_errno[i] = errno;
                return;
        }
        pthread_mutex_lock(&j->lock);
        if (j->watchdog_fired)
                (void) ioctl(j->fds[i], FITHAW, 0);
        else
                j->frozen[i] = true;
        pthread_mutex_unlock(&j->lock);
}

struct freeze_arg {
        struct sset_job *job;
        size_t index;
};

static void *freeze_main(void *p) {
        struct freeze_arg *a = p;
        freeze_one(a->job, a->index);
        return NULL;
}

/* Freezes every filesystem of the set at once, one thread each: the window is then the slowest
 * freeze, not the sum of them, and none is dirtied further while another one freezes. */
static void freeze_all(struct sset_job *j) {
        pthread_t threads[LVSS_MAX_SET_VOLUMES * 4];
        struct freeze_arg args[LVSS_MAX_SET_VOLUMES * 4];
        bool started[LVSS_MAX_SET_VOLUMES * 4] = {};

        for (size_t i = 1; i < j->n_fds; i++) {
                args[i] = (struct freeze_arg){ j, i };
                started[i] = pthread_create(&threads[i], NULL, freeze_main, &args[i]) == 0;
        }
        freeze_one(j, 0);
        for (size_t i = 1; i < j->n_fds; i++) {
                if (started[i])
                        pthread_join(threads[i], NULL);
                else
                        freeze_one(j, i); /* no thread: in turn, then */
        }
}

/* True once the watchdog has thawed everything: the set is lost. */
static bool watchdog_fired(struct sset_job *j) {
        pthread_mutex_lock(&j->lock);
        bool fired = j->watchdog_fired;
        pthread_mutex_unlock(&j->lock);
        return fired;
}

static void *watchdog_main(void *p) {
        struct sset_job *j = p;
        pthread_mutex_lock(&j->lock);
        while (!j->worker_done)
                if (pthread_cond_timedwait(&j->cond, &j->lock, &j->deadline) == ETIMEDOUT &&
                    !j->worker_done) {
                        j->watchdog_fired = true;
                        thaw_all_locked(j);
                        break;
                }
        pthread_mutex_unlock(&j->lock);
        return NULL;
}

/*
 * The guardian: a child process that outlives lvssd for one purpose. It holds the mount points'
 * descriptors (inherited) and the read end of a pipe; if the pipe reaches end of file before lvssd
 * says "done" (lvssd died, even by SIGKILL), or lvssd has not said it within the window and two
 * seconds, it thaws every filesystem of the set. Only async-signal-safe calls after fork().
 */
static pid_t guardian_start(const int *fds, size_t n, uint32_t window_ms, int *ret_pipe) {
        int p[2];
        if (n == 0 || pipe2(p, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return -1;
        }
        if (pid == 0) {
                /* Keep only the mount points and the pipe. Above all, /dev/fuse must go: while
                 * this process held it, a dead lvssd's FUSE connection would stay open with nobody
                 * serving it, and the thaw would wait forever for its superblock write. */
                int keep_max = p[0];
                for (size_t i = 0; i < n; i++)
                        keep_max = MAX(keep_max, fds[i]);
                for (int fd = 3; fd <= keep_max; fd++) {
                        bool keep = fd == p[0];
                        for (size_t i = 0; i < n && !keep; i++)
                                keep = fds[i] == fd;
                        if (!keep)
                                close(fd);
                }
                (void) close_range((unsigned) keep_max + 1, ~0u, 0);
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };
                char c = 0;
                int r = poll(&pfd, 1, (int) window_ms + 2000);
                if (r == 1 && read(p[0], &c, 1) == 1 && c == 'd')
                        _exit(0);
                for (size_t i = n; i > 0; i--)
                        (void) ioctl(fds[i - 1], FITHAW, 0);
                _exit(1);
        }
        close(p[0]);
        *ret_pipe = p[1];
        return pid;
}

static void guardian_stop(pid_t pid, int fd) {
        if (pid <= 0)
                return;
        (void) !write(fd, "d", 1);
        close(fd);
        (void) waitpid(pid, NULL, 0);
}

/* syncfs of every file system of the set, again while a pass takes long and each is at most half
 * as long as the one before, at most MAX_PASSES times. Writers go on dirtying pages while a long
 * sync runs: syncing again while that converges leaves the freeze as little to flush as can be;
 * under writers that keep pace with the disk it does not converge, and more passes would only make
 * the set slower to start (bench/RESULTS.md, hold_ms through lvssd). */
static void sync_passes(struct sset_job *j, int max_passes) {
        uint64_t last = UINT64_MAX;
        for (int pass = 0; pass < max_passes; pass++) {
                uint64_t t = now_usec(CLOCK_MONOTONIC);
                for (size_t i = 0; i < j->n_fds; i++)
                        (void) syncfs(j->fds[i]);
                uint64_t took = now_usec(CLOCK_MONOTONIC) - t;
                if (took < 20000 || took > last / 2)
                        break;
                last = took;
        }
}

static void *worker_main(void *p) {
        struct sset_job *j = p;
        pthread_t wd;
        bool wd_running = false;
        int guardian_fd = -1;
        pid_t guardian = -1;
        uint64_t t0 = 0, t_frozen = 0, t_end;
        int r;

        /* Flush dirty data before the freeze, so that the freeze has little left to do. With
         * writers, the passes ran while they prepared (not inside their freeze windows): one more
         * pass now catches what came since. */
        sync_passes(j, j->presynced ? 1 : 3);

        t0 = now_usec(CLOCK_MONOTONIC);
        clock_gettime(CLOCK_MONOTONIC, &j->deadline);
        j->deadline.tv_sec += j->window_ms / 1000;
        j->deadline.tv_nsec += (long) (j->window_ms % 1000) * 1000000L;
        if (j->deadline.tv_nsec >= 1000000000L) {
                j->deadline.tv_sec++;
                j->deadline.tv_nsec -= 1000000000L;
        }
        if (pthread_create(&wd, NULL, watchdog_main, j) != 0) {
                job_fail(j, -EAGAIN, NULL, "Cannot start the freeze watchdog: retry.");
                goto done;
        }
        wd_running = true;
        guardian = guardian_start(j->fds, j->n_fds, j->window_ms, &guardian_fd);
        if (j->n_fds > 0 && guardian < 0)
                job_fail(j, -EAGAIN, NULL, "Cannot start the process that thaws if lvssd dies: retry.");

        /* 1. Freeze the filesystems: their flush goes through the FUSE workers. */
        if (j->r == 0 && j->n_fds > 0) {
                freeze_all(j);
                for (size_t i = 0; i < j->n_fds; i++) {
                        int e = j->freeze_errno[i];
                        if (e == ECANCELED)
                                job_fail(j, -e, LVSS_ERROR_FAILED,
                                         "lvssd is stopping: the set was abandoned.");
                        else if (e)
                                job_fail(j, -e, LVSS_ERROR_FAILED, "Cannot freeze %s: %s.", j->mounts[i],
                                         e == EBUSY ? "it is frozen already (by fsfreeze?): thaw it with "
                                                      "`fsfreeze -u` and retry"
                                                    : strerror(e));
                }
        }
        t_frozen = now_usec(CLOCK_MONOTONIC);

        /* 2. Hold every volume's writes for what is left of the window. */
        for (size_t i = 0; i < j->n_targets && j->r == 0 && !watchdog_fired(j); i++) {
                struct sset_target *t = &j->targets[i];
                uint64_t spent = (now_usec(CLOCK_MONOTONIC) - t0) / 1000u;
                uint32_t left = spent >= j->window_ms ? 1u : j->window_ms - (uint32_t) spent;
                r = t->provider->hold(t->pv, left);
                if (r < 0) {
                        job_fail(j, r, r == -ETIMEDOUT ? LVSS_ERROR_TIMEOUT : LVSS_ERROR_FAILED,
                                 "Cannot hold the writes of volume %s: %s.", t->name, strerror(-r));
                        break;
                }
                t->held = true;
        }

        /* 3. The point in time. */
        j->created_usec = now_usec(CLOCK_REALTIME);
        for (size_t i = 0; i < j->n_targets && j->r == 0 && !watchdog_fired(j); i++) {
                struct sset_target *t = &j->targets[i];
                r = t->provider->snapshot_create(t->pv, j->persistent, t->shadow_id, &t->snap_id);
                if (r < 0) {
                        job_fail(j, r, r == -EMLINK ? LVSS_ERROR_NO_SPACE : NULL, "Cannot snapshot volume %s: %s%s.",
                                 t->name, strerror(-r),
                                 r == -EMLINK ? " (it has the most shadows a volume may have: delete some)"
                                              : "");
                        break;
                }
                t->snapped = true;
        }
        j->snapped_usec = now_usec(CLOCK_MONOTONIC);

        /* For tests only (LVSS_TEST_HOLD_DELAY_MS): a hold that lasts, to exercise Busy and the
         * watchdog deterministically. */
        for (uint32_t waited = 0; waited < j->test_delay_ms && j->r == 0 && !atomic_load(&j->abort);
             waited += 10) {
                pthread_mutex_lock(&j->lock);
                bool fired = j->watchdog_fired;
                pthread_mutex_unlock(&j->lock);
                if (fired)
                        break;
                usleep(10000);
        }

        /* Stopping (SIGTERM) abandons the set even now: lvssd will not be there to record it. */
        if (atomic_load(&j->abort))
                job_fail(j, -ECANCELED, LVSS_ERROR_FAILED, "lvssd is stopping: the set was abandoned.");

        /* 4. Release the holds; one that lapsed by itself may have let a write through. */
        for (size_t i = 0; i < j->n_targets; i++) {
                struct sset_target *t = &j->targets[i];
                if (!t->held)
                        continue;
                r = t->provider->release(t->pv);
                if (r == -ETIMEDOUT)
                        job_fail(j, r, LVSS_ERROR_TIMEOUT,
                                 "The hold of volume %s lapsed after %u ms: the set would not be one point "
                                 "in time and was discarded; retry when the volumes are less busy.",
                                 t->name, j->window_ms);
                else if (r < 0)
                        job_fail(j, r, NULL, "Cannot release the writes of volume %s: %s.", t->name,
                                 strerror(-r));
        }

done:
        /* 5. Thaw, newest first; the watchdog may have done it already. */
        pthread_mutex_lock(&j->lock);
        j->worker_done = true;
        pthread_cond_signal(&j->cond);
        thaw_all_locked(j);
        bool fired = j->watchdog_fired;
        pthread_mutex_unlock(&j->lock);
        t_end = now_usec(CLOCK_MONOTONIC);
        if (wd_running) {
                pthread_join(wd, NULL);
                guardian_stop(guardian, guardian_fd);
        }
        if (fired)
                job_fail(
                        j, -ETIMEDOUT, LVSS_ERROR_TIMEOUT,
                        "The freeze passed %u ms and the watchdog thawed everything: the set was discarded; "
                        "retry when the filesystems are less busy.",
                        j->window_ms);
        if (j->r < 0)
                for (size_t i = 0; i < j->n_targets; i++)
                        if (j->targets[i].snapped) {
                                (void) j->targets[i].provider->snapshot_delete(j->targets[i].pv,
                                                                               j->targets[i].snap_id);
                                j->targets[i].snapped = false;
                        }
        j->hold_usec = t_end - t0;
        j->freeze_usec = t_frozen - t0;

        uint64_t one = 1;
        (void) !write(j->efd, &one, sizeof one);
        return NULL;
}

static int reply_set(struct sset_job *j) {
        struct manager *m = j->manager;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char buf[64];
        int r;

        r = sd_bus_message_new_method_return(j->msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "sstt", j->set_id, context_to_string(j->ctx), j->created_usec,
                                  j->hold_usec);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < j->n_targets; i++) {
                struct shadow *s = manager_find_shadow(m, j->targets[i].shadow_id);
                r = sd_bus_message_append(reply, "(ssss)", j->targets[i].shadow_id, j->targets[i].name,
                                          j->targets[i].provider->name, s ? s->path : "");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssssa{ss})");
        for (size_t i = 0; r >= 0 && i < j->n_writers; i++) {
                struct writer *w = j->writers[i];
                r = sd_bus_message_open_container(reply, 'r', "ssssa{ss}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "ssss", w->name,
                                                  writer_state_string(w, buf, sizeof buf),
                                                  wfailure_to_string(w->failure), w->message);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "{ss}");
                for (size_t k = 0; r >= 0 && w->backup_metadata && w->backup_metadata[k]; k += 2)
                        r = sd_bus_message_append(reply, "{ss}", w->backup_metadata[k],
                                                  w->backup_metadata[k + 1]);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- the main thread's part ---- */

static void job_enter(struct sset_job *j, int phase);
static void job_advance(struct sset_job *j);

static uint32_t deadline_for(struct sset_job *j, struct writer *w, wevent ev) {
        if (ev == WEV_FREEZE)
                return w->freeze_timeout_ms;
        if (j->manager->writer_timeout_ms)
                return j->manager->writer_timeout_ms;
        return ev == WEV_PREPARE_FOR_SNAPSHOT || ev == WEV_POST_SNAPSHOT ? LVSS_WRITER_LONG_TIMEOUT_MS
                                                                         : LVSS_WRITER_TIMEOUT_MS;
}

/* Adds to W->components the components of WMD with a file set on a filesystem the set freezes.
 * By the paths' text and the mount table only: a writer's paths are never looked up, so one on a
 * hung network filesystem cannot block lvssd. */
static int select_components(struct sset_job *j, struct writer *w, const lvss_wmd *wmd) {
        struct mount_entry **all = NULL;
        size_t n_all = 0;
        dev_t devs[ELEMENTSOF(j->mount_ids)];
        size_t n_devs = 0;
        int r = mounts_read_all(&all, &n_all);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_all; i++)
                for (size_t k = 0; k < j->n_fds; k++)
                        if (all[i]->mount_id == j->mount_ids[k] && n_devs < ELEMENTSOF(devs))
                                devs[n_devs++] = all[i]->dev;
        for (size_t i = 0; r >= 0 && wmd && i < lvss_wmd_get_n_components(wmd); i++) {
                const lvss_wmd_component *c = lvss_wmd_get_component(wmd, i);
                bool on_set = false;
                for (int kind = 0; kind < _LVSS_WMD_FILES_MAX && !on_set; kind++)
                        for (size_t k = 0; k < lvss_wmd_component_get_n_files(c, kind) && !on_set; k++) {
                                const lvss_wmd_file_set *f = lvss_wmd_component_get_files(c, kind, k);
                                const struct mount_entry *e =
                                        mounts_holding(all, n_all, lvss_wmd_file_set_get_path(f));
                                for (size_t d = 0; e && d < n_devs && !on_set; d++)
                                        on_set = e->dev == devs[d];
                        }
                if (!on_set)
                        continue;
                _cleanup_free_ char *full = NULL;
                if (asprintf(&full, "%s/%s", lvss_wmd_component_get_logical_path(c),
                             lvss_wmd_component_get_name(c)) < 0 ||
                    strv_push(&w->components, full) < 0)
                        r = -ENOMEM;
        }
        mounts_free_all(all, n_all);
        return r;
}

static size_t job_backup_metadata_bytes(struct sset_job *j) {
        size_t n = 0;
        for (size_t i = 0; i < j->n_writers; i++)
                n += j->writers[i]->backup_metadata_bytes;
        return n;
}

/* The first failure that counts, as the set's error (a deadline: Timeout; else WriterFailed). */
static void job_check_writers(struct sset_job *j) {
        for (size_t i = 0; i < j->n_writers && j->r == 0; i++) {
                struct writer *w = j->writers[i];
                if (w->state != WSTATE_FAILED || !w->counts)
                        continue;
                job_fail(j, w->failure == WFAIL_TIMEOUT ? -ETIMEDOUT : -EIO,
                         w->failure == WFAIL_TIMEOUT ? LVSS_ERROR_TIMEOUT : LVSS_ERROR_WRITER_FAILED,
                         "Writer %s %s (%s): the set was discarded; see `lvss list writers`%s.", w->name,
                         w->message, wfailure_to_string(w->failure),
                         w->failure == WFAIL_RETRYABLE || w->failure == WFAIL_TIMEOUT ? ", then retry" : "");
        }
}

static void on_writer_reply(struct writer *w, wevent ev, int r, sd_bus_message *reply,
                            const char *error_name, const char *error_message, void *userdata) {
        struct sset_job *j = userdata;
        uint32_t deadline = deadline_for(j, w, ev);

        if (r == 0 && ev == WEV_IDENTIFY) {
                lvss_wmd_free(w->wmd);
                w->wmd = NULL;
                r = writer_parse_identity(w, reply, &w->wmd);
        } else if (r == 0) {
                size_t used = job_backup_metadata_bytes(j);
                if (writer_read_backup_metadata(w, reply,
                                                used < LVSS_BACKUP_METADATA_SET_MAX
                                                        ? LVSS_BACKUP_METADATA_SET_MAX - used
                                                        : 0) < 0)
                        r = -EBADMSG;
        }

        if (r < 0) {
                if (w->state != WSTATE_FAILED || ev != WEV_ABORT)
                        (void) writer_fail_from_reply(w, ev, r, error_name, error_message, deadline);
        } else
                switch (ev) {
                case WEV_PREPARE_FOR_SNAPSHOT:
                        w->state = WSTATE_WAITING_FOR_FREEZE;
                        break;
                case WEV_FREEZE:
                        w->state = WSTATE_WAITING_FOR_THAW;
                        w->frozen = true;
                        break;
                case WEV_THAW:
                        w->frozen = false;
                        if (j->snapped_usec > w->freeze_sent_usec + (uint64_t) w->freeze_timeout_ms * 1000u)
                                writer_fail(w, WEV_THAW, WFAIL_TIMEOUT,
                                            "was frozen for less time than the set needed: its window of "
                                            "%u ms closed before the snapshots were made",
                                            w->freeze_timeout_ms);
                        else
                                w->state = WSTATE_WAITING_FOR_POST_SNAPSHOT;
                        break;
                case WEV_POST_SNAPSHOT:
                case WEV_ABORT:
                        if (w->state != WSTATE_FAILED)
                                w->state = WSTATE_STABLE;
                        break;
                default:
                        break;
                }
        if (ev == WEV_IDENTIFY) {
                /* A writer that fails Identify is judged by the last metadata it gave (at its
                 * registration, say): its failure still counts if its data is on the set. */
                int k = select_components(j, w, r == 0 ? w->wmd : w->last_wmd);
                if (k < 0)
                        job_fail(j, k, NULL, "Cannot select the components of writer %s: %s.", w->name,
                                 strerror(-k));
                w->counts = !strv_contains(j->excluded, w->name) &&
                            (j->required ? strv_contains(j->required, w->name) : w->components != NULL);
                if (r < 0) {
                        strv_free(w->components);
                        w->components = NULL;
                }
        }

        if (--j->outstanding == 0)
                job_advance(j);
}

/* An Abort's answer, which nobody waits for: USERDATA is the generation of the set it was for, so
 * that an answer that comes after the next set started changes nothing of that set. */
static void on_abort_reply(struct writer *w, wevent ev, int r, sd_bus_message *reply, const char *error_name,
                           const char *error_message, void *userdata) {
        if (w->set_generation != (uint64_t) (uintptr_t) userdata || w->state == WSTATE_FAILED)
                return;
        if (r < 0)
                (void) writer_fail_from_reply(w, ev, r, error_name, error_message,
                                              w->manager->writer_timeout_ms ? w->manager->writer_timeout_ms
                                                                            : LVSS_WRITER_TIMEOUT_MS);
        else
                w->state = WSTATE_STABLE;
}

/* Tells every prepared writer that FAILED (or every prepared one) Abort, without waiting. */
static void job_send_aborts(struct sset_job *j, bool failed_only) {
        for (size_t i = 0; i < j->n_writers; i++) {
                struct writer *w = j->writers[i];
                if (w->prepared && w->registered && (!failed_only || w->state == WSTATE_FAILED))
                        (void) writer_call(w, WEV_ABORT, j->set_id, deadline_for(j, w, WEV_ABORT), NULL,
                                           on_abort_reply, (void *) (uintptr_t) j->generation);
        }
}

/* Sends EV to every writer W of the set for which PICK(j, w) holds; returns how many. */
static unsigned job_round(struct sset_job *j, wevent ev, int level) {
        unsigned n = 0;
        char **shadow_paths = NULL, **volumes = NULL;
        for (size_t i = 0; ev == WEV_PREPARE_FOR_SNAPSHOT && i < j->n_targets; i++)
                (void) strv_push(&volumes, j->targets[i].name);
        for (size_t i = 0; ev == WEV_POST_SNAPSHOT && i < j->n_targets; i++) {
                struct shadow *sh = manager_find_shadow(j->manager, j->targets[i].shadow_id);
                _cleanup_free_ char *p = NULL;
                if (sh && asprintf(&p, "%s=%s", j->targets[i].name, sh->path) >= 0)
                        (void) strv_push(&shadow_paths, p);
        }
        for (size_t i = 0; i < j->n_writers; i++) {
                struct writer *w = j->writers[i];
                bool send;
                switch (ev) {
                case WEV_IDENTIFY:
                        send = true;
                        break;
                case WEV_ABORT:
                        send = w->prepared;
                        break;
                case WEV_FREEZE:
                        send = w->state == WSTATE_WAITING_FOR_FREEZE && (int) w->level == level;
                        break;
                case WEV_THAW:
                        send = w->state == WSTATE_WAITING_FOR_THAW && (int) w->level == level;
                        break;
                default:
                        send = w->state != WSTATE_FAILED;
                }
                if (!send)
                        continue;
                struct writer_args a = {
                        .context = context_to_string(j->ctx),
                        .backup_type = j->backup_type,
                        .components = w->components ? w->components : (char *[]){ NULL },
                        .volumes = volumes ? volumes : (char *[]){ NULL },
                        .shadow_paths = shadow_paths ? shadow_paths : (char *[]){ NULL },
                };
                if (ev == WEV_PREPARE_FOR_BACKUP)
                        w->prepared = true;
                if (ev == WEV_FREEZE) {
                        struct timespec ts;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        w->freeze_sent_usec =
                                (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
                }
                if (!w->registered) {
                        if (ev != WEV_ABORT && w->state != WSTATE_FAILED)
                                writer_fail(w, ev, WFAIL_RETRYABLE, "disconnected before %s",
                                            wevent_to_method(ev));
                        continue;
                }
                int r = writer_call(w, ev, j->set_id, deadline_for(j, w, ev), &a, on_writer_reply, j);
                if (r < 0) {
                        (void) writer_fail_from_reply(w, ev, r, NULL, NULL, 0);
                        continue;
                }
                n++;
        }
        strv_free(volumes);
        strv_free(shadow_paths);
        j->outstanding = n;
        return n;
}

static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void sync_passes(struct sset_job *j, int max_passes);

static void *presync_main(void *p) {
        struct sset_job *j = p;
        sync_passes(j, 3);
        uint64_t one = 1;
        (void) !write(j->presync_efd, &one, sizeof one);
        return NULL;
}

static void presync_join(struct sset_job *j) {
        if (!j->presync_running)
                return;
        pthread_join(j->presync_thread, NULL);
        j->presync_running = false;
        j->presync_source = sd_event_source_disable_unref(j->presync_source);
}

static int on_presync_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sset_job *j = userdata;
        uint64_t v;
        (void) !read(j->presync_efd, &v, sizeof v);
        presync_join(j);
        j->presynced = true;
        if (--j->outstanding == 0)
                job_advance(j);
        return 0;
}

/* Starts the first syncfs passes on a thread; 0 if started. */
static int job_start_presync(struct sset_job *j) {
        if (j->n_fds == 0)
                return -ENOENT;
        j->presync_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->presync_efd < 0)
                return -errno;
        int r = sd_event_add_io(j->manager->event, &j->presync_source, j->presync_efd, EPOLLIN,
                                on_presync_done, j);
        if (r < 0)
                return r;
        if (pthread_create(&j->presync_thread, NULL, presync_main, j) != 0) {
                j->presync_source = sd_event_source_disable_unref(j->presync_source);
                return -EAGAIN;
        }
        j->presync_running = true;
        return 0;
}

static void job_start_worker(struct sset_job *j) {
        struct manager *m = j->manager;
        int r;
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0) {
                job_fail(j, negative_errno(), NULL, "Cannot start the set: %s.", strerror(errno));
                return;
        }
        r = sd_event_add_io(m->event, &j->source, j->efd, EPOLLIN, on_job_done, j);
        if (r < 0) {
                job_fail(j, r, NULL, "Cannot start the set: %s.", strerror(-r));
                return;
        }
        if (pthread_create(&j->thread, NULL, worker_main, j) != 0) {
                job_fail(j, -EAGAIN, NULL, "Cannot start the set's thread: retry.");
                return;
        }
        j->worker_started = true;
}

static void worker_join(struct sset_job *j) {
        if (!j->worker_started)
                return;
        pthread_join(j->thread, NULL);
        j->worker_started = false;
        j->source = sd_event_source_disable_unref(j->source);
}

/* Into the model, all or nothing. */
static void job_record(struct sset_job *j) {
        struct manager *m = j->manager;
        size_t added = 0;
        int r = manager_add_set(m, j->set_id, j->ctx, j->persistent, j->created_usec, j->hold_usec);
        struct sset *ss = r >= 0 ? manager_find_set(m, j->set_id) : NULL;
        if (ss && j->auto_release)
                ss->owner = j->requester;
        for (; r >= 0 && added < j->n_targets; added++) {
                struct sset_target *t = &j->targets[added];
                struct shadow *sh = NULL;
                r = manager_add_shadow(m, t->volume, t->shadow_id, j->set_id, t->snap_id, j->ctx,
                                       j->created_usec, j->persistent, &sh);
                if (r >= 0) {
                        t->snapped = false; /* the model owns it now */
                        sh->pending = j->n_writers > 0;
                }
        }
        j->recorded = true;
        if (r >= 0 && j->persistent)
                r = manager_save_catalog(m);
        if (r < 0)
                job_fail(j, r, NULL, "Cannot record the new shadow copies: %s.", strerror(-r));
}

/* The set failed after its snapshots were made: none of it stays. */
static void job_discard(struct sset_job *j) {
        struct manager *m = j->manager;
        for (size_t i = 0; i < j->n_targets; i++) {
                struct sset_target *t = &j->targets[i];
                struct shadow *sh = j->recorded ? manager_find_shadow(m, t->shadow_id) : NULL;
                if (sh) {
                        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                        sh->pending = false;
                        if (manager_delete_shadow(m, sh, &e) < 0)
                                fprintf(stderr, "lvssd: set %s failed, but its shadow %s stays: %s\n",
                                        j->set_id, sh->id, e.message ? e.message : "cannot delete it");
                } else if (t->snapped)
                        (void) t->provider->snapshot_delete(t->pv, t->snap_id);
                t->snapped = false;
        }
        if (j->recorded) {
                manager_gc_sets(m);
                if (j->persistent)
                        (void) manager_save_catalog(m);
        }
}

static void job_end(struct sset_job *j) {
        struct manager *m = j->manager;
        if (j->r == 0) {
                for (size_t i = 0; i < j->n_targets; i++) {
                        struct shadow *sh = manager_find_shadow(m, j->targets[i].shadow_id);
                        if (sh)
                                sh->pending = false;
                }
                struct sset *ss = manager_find_set(m, j->set_id);
                for (size_t i = 0; i < j->n_writers; i++) {
                        if (j->writers[i]->state != WSTATE_FAILED)
                                j->writers[i]->state = WSTATE_STABLE;
                        /* For CompleteBackup: who is told BackupComplete and BackupShutdown. */
                        if (ss)
                                (void) strv_push(&ss->writers, j->writers[i]->name);
                }
                /* Writers that failed without failing the set (excluded, or without data on it)
                 * are told Abort, as VSS does: one that froze late must not stay so. */
                job_send_aborts(j, true);
                fprintf(stderr,
                        "lvssd: set %s (%s): %zu shadow(s), %zu writer(s), hold %.3f ms (freeze %.3f ms)\n",
                        j->set_id, context_to_string(j->ctx), j->n_targets, j->n_writers,
                        (double) j->hold_usec / 1000.0, (double) j->freeze_usec / 1000.0);
                int r = reply_set(j);
                if (r < 0) {
                        /* An answer that cannot be sent must not leave a set its requester never
                         * heard of (nor the requester waiting, if it is still there). */
                        fprintf(stderr, "lvssd: cannot answer the set's requester: %s; discarding the set\n",
                                strerror(-r));
                        job_fail(j, r, NULL, "The set could not be sent back (%s): it was discarded.",
                                 strerror(-r));
                        job_discard(j);
                        (void) sd_bus_reply_method_errorf(j->msg, j->error_name, "%s", j->error_msg);
                }
        } else {
                fprintf(stderr, "lvssd: set %s failed: %s\n", j->set_id, j->error_msg);
                (void) sd_bus_reply_method_errorf(j->msg, j->error_name, "%s", j->error_msg);
        }
        for (size_t i = 0; i < j->n_writers; i++) {
                struct writer *w = j->writers[i];
                w->prepared = w->frozen = false;
        }
        if (m->job == j)
                m->job = NULL;
        job_free(j);
}

static void job_enter(struct sset_job *j, int phase) {
        static const int freeze_levels[] = { WLEVEL_FRONT_END, WLEVEL_BACK_END, WLEVEL_SYSTEM };
        j->phase = phase;
        switch (phase) {
        case PH_IDENTIFY:
                if (job_round(j, WEV_IDENTIFY, 0) == 0)
                        job_advance(j);
                return;
        case PH_PREPARE_BACKUP:
                if (job_round(j, WEV_PREPARE_FOR_BACKUP, 0) == 0)
                        job_advance(j);
                return;
        case PH_PREPARE_SNAPSHOT: {
                /* The file systems' first syncs run meanwhile, not inside the writers' freeze
                 * windows; the step ends when both are done. */
                unsigned n = job_round(j, WEV_PREPARE_FOR_SNAPSHOT, 0);
                if (job_start_presync(j) == 0) {
                        j->outstanding++;
                        n++;
                }
                if (n == 0)
                        job_advance(j);
                return;
        }
        case PH_FREEZE_FRONT_END:
        case PH_FREEZE_BACK_END:
        case PH_FREEZE_SYSTEM:
                if (job_round(j, WEV_FREEZE, freeze_levels[phase - PH_FREEZE_FRONT_END]) == 0)
                        job_advance(j);
                return;
        case PH_WORKER:
                job_start_worker(j);
                if (!j->worker_started)
                        job_advance(j);
                return;
        case PH_THAW_SYSTEM:
        case PH_THAW_BACK_END:
        case PH_THAW_FRONT_END:
                if (job_round(j, WEV_THAW, freeze_levels[PH_THAW_FRONT_END - phase]) == 0)
                        job_advance(j);
                return;
        case PH_POST_SNAPSHOT:
                if (job_round(j, WEV_POST_SNAPSHOT, 0) == 0)
                        job_advance(j);
                return;
        case PH_ABORT:
                /* Every prepared writer is told, and the requester answered at once: a writer that
                 * hangs (perhaps the one that failed) must not hold the answer up. Their answers
                 * only update their states. */
                job_send_aborts(j, false);
                job_end(j);
                return;
        default:
                job_end(j);
        }
}

/* The current step has ended: go on, or abort. */
static void job_advance(struct sset_job *j) {
        if (j->r == 0)
                job_check_writers(j);
        if (j->r == 0 && j->manager->stopping)
                job_fail(j, -ECANCELED, LVSS_ERROR_FAILED, "lvssd is stopping: the set was abandoned.");
        if (j->r == 0 && j->requester_gone)
                job_fail(j, -ECONNRESET, LVSS_ERROR_FAILED,
                         "The requester's connection closed: the set was abandoned.");
        if (j->r < 0) {
                job_discard(j);
                job_enter(j, PH_ABORT);
                return;
        }
        /* Recorded (and the catalog saved) at once, so that a crash during the writers' Thaw and
         * PostSnapshot leaves no snapshot the catalog does not know; pending until the end. */
        if (j->phase == PH_WORKER) {
                job_record(j);
                if (j->r < 0) {
                        job_discard(j);
                        job_enter(j, PH_ABORT);
                        return;
                }
        }
        job_enter(j, j->phase == PH_POST_SNAPSHOT ? PH_END : j->phase + 1);
}

/* Main thread: the worker has finished. */
static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct sset_job *j = userdata;
        uint64_t v;
        (void) !read(j->efd, &v, sizeof v);
        worker_join(j);
        job_advance(j);
        return 0;
}

int sset_start(struct manager *m, sd_bus_message *msg, char **targets, lvss_context ctx,
               const struct sset_options *o, sd_bus_error *error) {
        struct sset_job *j;
        int r;

        if (m->job)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Another shadow copy set is being created: retry in a few seconds.");
        if (m->stopping)
                return bus_error_setf(error, -ESHUTDOWN, LVSS_ERROR_FAILED,
                                      "lvssd is stopping: retry once it runs.");
        size_t n = strv_len(targets);
        if (n == 0)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "No target: give at least one volume name or mount point.");
        if (n > LVSS_MAX_SET_VOLUMES)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "%zu targets: a set holds at most %u volumes.", n,
                                      LVSS_MAX_SET_VOLUMES);

        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->efd = -1;
        j->presync_efd = -1;
        pthread_mutex_init(&j->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cond, &ca);
        pthread_condattr_destroy(&ca);
        j->manager = m;
        j->ctx = ctx;
        j->persistent = context_persistent(ctx) || o->persistent;
        j->requester = manager_conn_serial(m, sd_bus_message_get_bus(msg));
        j->auto_release = o->auto_release;
        if (j->auto_release && j->requester == 0) {
                r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                   "AutoRelease needs a connection to lvssd's socket, not the system bus.");
                goto fail;
        }
        j->window_ms = m->hold_window_ms ? m->hold_window_ms : LVSS_HOLD_WINDOW_MS;
        j->test_delay_ms = m->test_hold_delay_ms;
        manager_new_id(j->set_id);

        for (size_t i = 0; i < n; i++) {
                struct volume *v;
                r = manager_resolve_target(m, targets[i], &v, error);
                if (r < 0)
                        goto fail;
                bool dup = false;
                for (size_t k = 0; k < j->n_targets; k++)
                        dup |= j->targets[k].volume == v;
                if (dup)
                        continue;
                if (!v->provider->hold || !v->provider->snapshot_create) {
                        r = bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_FAILED,
                                           "Provider %s of volume %s cannot take part in a set.",
                                           v->provider->name, v->name);
                        goto fail;
                }
                struct lvss_pvol_info vi = {};
                if (v->provider->volume_info(v->pv, &vi) >= 0 && vi.n_snapshots >= ENG_MAX_SNAPSHOTS) {
                        r = bus_error_setf(error, -EMLINK, LVSS_ERROR_NO_SPACE,
                                           "Volume %s has %" PRIu32 " shadow copies, the most a volume may "
                                           "have: delete some first (lvss delete --volume %s --oldest).",
                                           v->name, vi.n_snapshots, v->name);
                        goto fail;
                }
                if (j->persistent && !(v->provider->capabilities & LVSS_CAP_PERSISTENT)) {
                        r = bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_INVALID_ARGUMENT,
                                           "Provider %s of volume %s makes no persistent shadow copies: use "
                                           "a non-persistent context, without the Persistent option.",
                                           v->provider->name, v->name);
                        goto fail;
                }
                struct sset_target *t = &j->targets[j->n_targets++];
                t->volume = v;
                t->provider = v->provider;
                t->pv = v->pv;
                snprintf(t->name, sizeof t->name, "%s", v->name);
                manager_new_id(t->shadow_id);

                /* Every filesystem on the volume is frozen, whichever way the volume was named. */
                char **mps = NULL;
                _cleanup_free_ int *devs = NULL;
                r = manager_volume_mounts(m, v, &mps, &devs);
                if (r == -EXDEV) {
                        bus_error_setf(
                                error, r, LVSS_ERROR_INVALID_ARGUMENT,
                                "Volume %s carries partitions or a device-mapper device (LUKS, LVM) over "
                                "its "
                                "loop device: lvss cannot freeze filesystems there; put the filesystem on "
                                "the loop device itself.",
                                v->name);
                        goto fail;
                }
                if (r < 0) {
                        bus_error_setf(error, r, NULL, "Cannot list the filesystems on volume %s: %s.",
                                       v->name, strerror(-r));
                        goto fail;
                }
                for (size_t k = 0; mps && mps[k]; k++) {
                        if (strv_contains(j->mounts, mps[k]))
                                continue;
                        if (strv_len(j->mounts) == ELEMENTSOF(j->mount_ids)) {
                                strv_free(mps);
                                r = bus_error_setf(error, -E2BIG, LVSS_ERROR_INVALID_ARGUMENT,
                                                   "The set has more than %zu filesystems to freeze.",
                                                   ELEMENTSOF(j->mount_ids));
                                goto fail;
                        }
                        if (strv_push(&j->mounts, mps[k]) < 0) {
                                strv_free(mps);
                                r = -ENOMEM;
                                goto fail;
                        }
                        j->mount_ids[strv_len(j->mounts) - 1] = devs[k];
                }
                strv_free(mps);
        }

        for (size_t i = 0; j->mounts && j->mounts[i]; i++) {
                if (j->n_fds == ELEMENTSOF(j->fds)) {
                        r = bus_error_setf(error, -E2BIG, LVSS_ERROR_INVALID_ARGUMENT,
                                           "The set has more than %zu filesystems to freeze.",
                                           ELEMENTSOF(j->fds));
                        goto fail;
                }
                int fd = open(j->mounts[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0) {
                        r = bus_error_setf(error, negative_errno(), LVSS_ERROR_FAILED, "Cannot open %s: %s.",
                                           j->mounts[i], strerror(errno));
                        goto fail;
                }
                j->fds[j->n_fds++] = fd;
                /* What is frozen must be the volume's filesystem, not something mounted over it or
                 * swapped in since it was listed. */
                struct stat a, b;
                int mnt_id = -1;
                if (fstat(fd, &a) < 0 || mounts_fd_mount_id(fd, &mnt_id) < 0 || mnt_id != j->mount_ids[i]) {
                        r = bus_error_setf(
                                error, -ESTALE, LVSS_ERROR_FAILED,
                                "%s is no longer the root of the filesystem on its volume (something "
                                "is mounted over it, or it changed): unmount what covers it and retry.",
                                j->mounts[i]);
                        goto fail;
                }
                /* Never freeze yourself: lvssd's directories and the volumes' images must stay
                 * writable while the set is frozen. */
                const char *own = NULL;
                if (stat(m->state_dir, &b) == 0 && a.st_dev == b.st_dev)
                        own = m->state_dir;
                else if (stat(m->runtime_dir, &b) == 0 && a.st_dev == b.st_dev)
                        own = m->runtime_dir;
                for (size_t k = 0; !own && k < j->n_targets; k++) {
                        struct lvss_pvol_info info;
                        if (j->targets[k].provider->volume_info(j->targets[k].pv, &info) >= 0 &&
                            stat(info.image, &b) == 0 && a.st_dev == b.st_dev)
                                own = j->targets[k].name;
                }
                if (own) {
                        r = bus_error_setf(
                                error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                "%s holds %s, which lvssd itself writes to: freezing it would stop "
                                "lvssd; keep lvssd's state directory and the volumes' images on "
                                "another filesystem.",
                                j->mounts[i], own);
                        goto fail;
                }
        }

        /* The writers of the set: every registered one, unless the context has none or the
         * requester said so. A required writer must be there. */
        snprintf(j->backup_type, sizeof j->backup_type, "%s", o && o->backup_type ? o->backup_type : "full");
        j->generation = ++m->set_generation;
        bool with_writers = context_writers(ctx) && !(o && o->no_writers);
        for (size_t i = 0; with_writers && o && o->writers && o->writers[i]; i++) {
                if (!writers_find(m, o->writers[i])) {
                        r = bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                           "No writer %s is registered: see `lvss list writers`, or leave "
                                           "out --writer %s.",
                                           o->writers[i], o->writers[i]);
                        goto fail;
                }
                if (strv_push(&j->required, o->writers[i]) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        for (size_t i = 0; o && o->exclude && o->exclude[i]; i++)
                if (strv_push(&j->excluded, o->exclude[i]) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        if (with_writers && m->n_writers > 0) {
                j->writers = calloc(m->n_writers, sizeof *j->writers);
                if (!j->writers) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (struct writer *w = m->writers; w; w = w->next) {
                        w->set_generation = j->generation;
                        w->state = WSTATE_STABLE;
                        w->failure = WFAIL_NONE;
                        w->message[0] = 0;
                        w->counts = w->prepared = w->frozen = false;
                        lvss_wmd_free(w->wmd);
                        w->wmd = NULL;
                        strv_free(w->components);
                        w->components = NULL;
                        strv_free(w->backup_metadata);
                        w->backup_metadata = NULL;
                        w->backup_metadata_bytes = 0;
                        j->writers[j->n_writers++] = writer_ref(w);
                }
        }

        j->msg = sd_bus_message_ref(msg);
        m->job = j;
        job_enter(j, j->n_writers > 0 ? PH_IDENTIFY : PH_WORKER);
        return 1;
fail:
        job_free(j);
        if (error && !sd_bus_error_is_set(error))
                bus_error_setf(error, r, NULL, "Cannot start the set: %s.", strerror(-r));
        return r;
}

void sset_requester_gone(struct manager *m, uint64_t owner) {
        if (m->job && owner != 0 && m->job->requester == owner) {
                fprintf(stderr, "lvssd: set %s: its requester's connection closed; abandoning it\n",
                        m->job->set_id);
                m->job->requester_gone = true;
        }
}

void sset_abort_and_wait(struct manager *m) {
        struct sset_job *j = m->job;
        if (!j)
                return;
        atomic_store(&j->abort, true);
        presync_join(j);
        /* The worker ends within the hold window; wait for its signal, then finish on this thread. */
        if (j->worker_started) {
                for (;;) {
                        struct pollfd pfd = { .fd = j->efd, .events = POLLIN };
                        if (poll(&pfd, 1, -1) > 0)
                                break;
                }
                worker_join(j);
        }
        job_fail(j, -ECANCELED, LVSS_ERROR_FAILED, "lvssd is stopping: the set was abandoned.");
        job_discard(j);
        /* No waiting for answers now: every prepared writer is told Abort, and liblvss thaws a frozen
         * writer by itself when lvssd's connection closes anyway. */
        for (size_t i = 0; i < j->n_writers; i++) {
                writer_cancel(j->writers[i], j);
                if (j->writers[i]->prepared)
                        writer_send_noreply(j->writers[i], WEV_ABORT, j->set_id);
        }
        job_end(j);
}
