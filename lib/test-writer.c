/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * liblvss's writer API against a stand-in for lvssd: this test listens on a unix socket in a
 * temporary directory, serves org.lvss.Manager1.RegisterWriter on each connection it accepts (an
 * sd-bus server), and calls the writer's org.lvss.Writer1 methods as lvssd does
 * (docs/dbus-api.md, "Writers"). The writers under test run in a thread of this process; their
 * callbacks record what they were told under a mutex, and the main thread asserts on the records
 * and on the answers.
 *
 * With `--programs EXAMPLE TEST_WRITER`, it runs the two writer programs (docs/example-writer.c,
 * tests/writers/lvss-test-writer.c) against the same stand-in instead.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include <lvss/writer.h>

#include "common/macro.h"

/* ---- checks ---- */

#define CHECK(expr)                                                                                         \
        do {                                                                                                \
                if (!(expr)) {                                                                              \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);            \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define CHECK_INT(a, b)                                                                                     \
        do {                                                                                                \
                long long _a = (long long) (a), _b = (long long) (b);                                       \
                if (_a != _b) {                                                                             \
                        fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__,         \
                                __LINE__, #a, #b, _a, _b);                                                  \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define CHECK_STR(a, b)                                                                                     \
        do {                                                                                                \
                const char *_a = (a), *_b = (b);                                                            \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                                    \
                        fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__,     \
                                __LINE__, #a, #b, _a ?: "(null)", _b ?: "(null)");                          \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = usec / 1000000u, .tv_nsec = (usec % 1000000u) * 1000u };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

#define CLASS_ID "5f1c0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f"
#define SET1 "11111111-2222-4333-8444-555555555555"
#define SET2 "22222222-2222-4333-8444-555555555555"
#define SET3 "33333333-2222-4333-8444-555555555555"
#define SET4 "44444444-2222-4333-8444-555555555555"
#define SET5 "55555555-2222-4333-8444-555555555555"

/* ---- the stand-in for lvssd ---- */

struct registration {
        bool done;
        unsigned n_keys;
        bool unknown_key;
        char name[256], class_id[64], instance_id[64], instance_name[256], level[32], usage[64], source[64];
        uint32_t freeze_timeout_ms;
};

struct server {
        char dir[256];
        char path[320];
        int listen_fd;
        sd_bus *bus;
        const char *register_error; /* NULL: accept the writer */
        struct registration reg;
};

static void copy_string(char *dst, size_t size, const char *src) {
        CHECK(strlen(src) < size);
        strcpy(dst, src);
}

static int method_register_writer(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct server *s = userdata;
        struct registration *reg = &s->reg;
        *reg = (struct registration){ .done = true };

        CHECK(sd_bus_message_enter_container(m, 'a', "{sv}") > 0);
        int r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *contents, *v;
                CHECK(sd_bus_message_read(m, "s", &key) > 0);
                CHECK(sd_bus_message_peek_type(m, NULL, &contents) > 0);
                reg->n_keys++;
                struct {
                        const char *key;
                        char *field;
                        size_t size;
                } strings[] = {
                        { "Name", reg->name, sizeof(reg->name) },
                        { "ClassId", reg->class_id, sizeof(reg->class_id) },
                        { "InstanceId", reg->instance_id, sizeof(reg->instance_id) },
                        { "InstanceName", reg->instance_name, sizeof(reg->instance_name) },
                        { "Level", reg->level, sizeof(reg->level) },
                        { "Usage", reg->usage, sizeof(reg->usage) },
                        { "Source", reg->source, sizeof(reg->source) },
                };
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                        if (strcmp(key, strings[i].key) == 0) {
                                CHECK_STR(contents, "s");
                                CHECK(sd_bus_message_read(m, "v", "s", &v) > 0);
                                copy_string(strings[i].field, strings[i].size, v);
                                known = true;
                        }
                if (strcmp(key, "FreezeTimeoutMs") == 0) {
                        CHECK_STR(contents, "u");
                        CHECK(sd_bus_message_read(m, "v", "u", &reg->freeze_timeout_ms) > 0);
                        known = true;
                }
                if (!known) {
                        reg->unknown_key = true;
                        CHECK(sd_bus_message_skip(m, "v") >= 0);
                }
                CHECK(sd_bus_message_exit_container(m) >= 0);
        }
        CHECK(r == 0);
        CHECK(sd_bus_message_exit_container(m) >= 0);

        if (s->register_error)
                return sd_bus_error_setf(error, s->register_error, "Refused by the test.");
        return sd_bus_reply_method_return(m, "s", reg->instance_id);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("RegisterWriter", SD_BUS_ARGS("a{sv}", identity),
                                SD_BUS_RESULT("s", instance_id), method_register_writer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void server_init(struct server *s) {
        *s = (struct server){ .listen_fd = -1 };
        /* Characters that D-Bus addresses must escape, so that the library has to. */
        const char *tmp = getenv("TMPDIR");
        snprintf(s->dir, sizeof(s->dir), "%s/test writer,=%%;.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        CHECK(mkdtemp(s->dir));
        snprintf(s->path, sizeof(s->path), "%s/lvssd.sock", s->dir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        CHECK(strlen(s->path) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, s->path);
        s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(s->listen_fd >= 0);
        CHECK(bind(s->listen_fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CHECK(listen(s->listen_fd, 16) == 0);
}

/* Accepts the next writer's connection. */
static void server_accept(struct server *s) {
        struct pollfd p = { .fd = s->listen_fd, .events = POLLIN };
        CHECK(poll(&p, 1, 10000) == 1);
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        CHECK(fd >= 0);
        sd_id128_t id;
        CHECK(sd_id128_randomize(&id) >= 0);
        CHECK(!s->bus);
        CHECK(sd_bus_new(&s->bus) >= 0);
        CHECK(sd_bus_set_fd(s->bus, fd, fd) >= 0);
        CHECK(sd_bus_set_server(s->bus, 1, id) >= 0);
        CHECK(sd_bus_set_trusted(s->bus, 1) >= 0);
        CHECK(sd_bus_add_object_vtable(s->bus, NULL, "/org/lvss", "org.lvss.Manager1", manager_vtable, s) >=
              0);
        CHECK(sd_bus_start(s->bus) >= 0);
        s->reg = (struct registration){ .done = false };
}

/* Serves the connection until the writer has called RegisterWriter. */
static void server_wait_registered(struct server *s) {
        uint64_t deadline = now_usec() + 10 * 1000000u;
        while (!s->reg.done) {
                CHECK(now_usec() < deadline);
                int r = sd_bus_process(s->bus, NULL);
                CHECK(r >= 0);
                if (r == 0)
                        CHECK(sd_bus_wait(s->bus, 100000) >= 0);
        }
        /* Send the answer out. */
        CHECK(sd_bus_flush(s->bus) >= 0);
}

static void server_hangup(struct server *s) {
        s->bus = sd_bus_flush_close_unref(s->bus);
}

static void server_done(struct server *s) {
        server_hangup(s);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        unlink(s->path);
        rmdir(s->dir);
}

/* What one call of a Writer1 method answered. */
struct answer {
        int r;
        char *error_name, *error_message;
        char *xml; /* Identify */
        size_t n;
        char *keys[16], *values[16]; /* the backup metadata */
        uint64_t usec; /* how long it took */
};

static void answer_done(struct answer *a) {
        free(a->error_name);
        free(a->error_message);
        free(a->xml);
        for (size_t i = 0; i < a->n; i++) {
                free(a->keys[i]);
                free(a->values[i]);
        }
        *a = (struct answer){};
}

enum args_kind { ARGS_NONE, ARGS_FULL, ARGS_WRONG_TYPES };

static void append_args(sd_bus_message *m, enum args_kind kind) {
        CHECK(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        if (kind == ARGS_FULL) {
                CHECK(sd_bus_message_append(m, "{sv}", "Context", "s", "backup") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "Unknown", "u", 7u) >= 0); /* to be ignored */
                CHECK(sd_bus_message_append(m, "{sv}", "BackupType", "s", "incremental") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "Components", "as", 2, "Data/main",
                                            "Config/App/settings") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "Volumes", "as", 2, "vol1", "vol2") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "ShadowPaths", "as", 1,
                                            "vol1=/run/lvss/dev/shadows/x") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "BackupMetadata", "a{ss}", 2, "Data/main", "md-in ✓",
                                            "Config/App/settings", "") >= 0);
        } else if (kind == ARGS_WRONG_TYPES) {
                CHECK(sd_bus_message_append(m, "{sv}", "Context", "u", 1u) >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "BackupType", "as", 1, "full") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "Components", "s", "Data/main") >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "Volumes", "a{ss}", 0) >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "ShadowPaths", "b", 1) >= 0);
                CHECK(sd_bus_message_append(m, "{sv}", "BackupMetadata", "as", 1, "Data/main") >= 0);
        }
        CHECK(sd_bus_message_close_container(m) >= 0);
}

/* Calls MEMBER (Identify, or an event with SET, DEADLINE_MS and args of KIND), waiting at most
 * TIMEOUT_USEC (0: 25 s). */
static void call_writer(struct server *s, const char *member, const char *set, uint32_t deadline_ms,
                        enum args_kind kind, uint64_t timeout_usec, struct answer *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        *a = (struct answer){};
        CHECK(sd_bus_message_new_method_call(s->bus, &m, NULL, "/org/lvss/writer", "org.lvss.Writer1",
                                             member) >= 0);
        bool identify = strcmp(member, "Identify") == 0;
        if (!identify) {
                CHECK(sd_bus_message_append(m, "su", set, deadline_ms) >= 0);
                append_args(m, kind);
        }
        uint64_t t0 = now_usec();
        a->r = sd_bus_call(s->bus, m, timeout_usec, &error, &reply);
        a->usec = now_usec() - t0;
        if (a->r < 0) {
                a->error_name = strdup(error.name ?: "");
                a->error_message = strdup(error.message ?: "");
                return;
        }
        if (identify) {
                const char *xml;
                CHECK(sd_bus_message_read(reply, "s", &xml) > 0);
                a->xml = strdup(xml);
                return;
        }
        CHECK_STR(sd_bus_message_get_signature(reply, true), "a{ss}");
        CHECK(sd_bus_message_enter_container(reply, 'a', "{ss}") > 0);
        const char *k, *v;
        int r;
        while ((r = sd_bus_message_read(reply, "{ss}", &k, &v)) > 0) {
                CHECK(a->n < ELEMENTSOF(a->keys));
                a->keys[a->n] = strdup(k);
                a->values[a->n++] = strdup(v);
        }
        CHECK(r == 0);
}

static void check_ok(const struct answer *a) {
        if (a->r < 0)
                fprintf(stderr, "answer: %s: %s\n", a->error_name, a->error_message);
        CHECK_INT(a->r, 1);
}

static void check_error(const struct answer *a, const char *name) {
        CHECK(a->r < 0);
        CHECK_STR(a->error_name, name);
        CHECK(a->error_message && strlen(a->error_message) > 0);
}

/* ---- callbacks that record ---- */

struct action {
        lvss_result result;
        const char *md_component[2];
        const char *md_data[2];
        bool probe; /* try bad backup metadata first */
};

struct record {
        lvss_event event;
        char set[64], context[64], backup_type[64];
        char components[256], volumes[256], shadow_paths[256]; /* joined with '|' */
        uint32_t deadline_ms;
        uint64_t usec;
        int md_set_r[2];
        int get_r, get_missing_r, set_in_restore_r; /* restore events */
        char got[64];
        int probe_r[6];
};

struct recorder {
        pthread_mutex_t lock;
        struct record records[256];
        size_t n;
        struct action actions[_LVSS_EVENT_MAX];
};

static void join_list(char *buf, size_t size, const char *const *l) {
        CHECK(l);
        buf[0] = '\0';
        for (size_t i = 0; l[i]; i++) {
                CHECK(strlen(buf) + strlen(l[i]) + 2 < size);
                if (i > 0)
                        strcat(buf, "|");
                strcat(buf, l[i]);
        }
}

static lvss_result on_event(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct recorder *rec = userdata;
        CHECK(pthread_mutex_lock(&rec->lock) == 0);
        CHECK(rec->n < ELEMENTSOF(rec->records));
        struct record *r = &rec->records[rec->n++];
        *r = (struct record){ .event = info->event, .deadline_ms = info->deadline_ms, .usec = now_usec() };
        copy_string(r->set, sizeof(r->set), info->set_id);
        copy_string(r->context, sizeof(r->context), info->context);
        copy_string(r->backup_type, sizeof(r->backup_type), info->backup_type);
        join_list(r->components, sizeof(r->components), info->components);
        join_list(r->volumes, sizeof(r->volumes), info->volumes);
        join_list(r->shadow_paths, sizeof(r->shadow_paths), info->shadow_paths);

        const struct action *a = &rec->actions[info->event];
        if (info->event == LVSS_EVENT_PRE_RESTORE || info->event == LVSS_EVENT_POST_RESTORE) {
                const char *got = NULL;
                r->get_r = lvss_writer_get_backup_metadata(w, "Data/main", &got);
                if (got)
                        copy_string(r->got, sizeof(r->got), got);
                r->get_missing_r = lvss_writer_get_backup_metadata(w, "Data/other", &got);
                r->set_in_restore_r = lvss_writer_set_backup_metadata(w, "Data/main", "x");
        } else {
                const char *dummy;
                r->get_r = lvss_writer_get_backup_metadata(w, "Data/main", &dummy);
        }
        if (a->probe) {
                static char big[64 * 1024 + 2];
                memset(big, 'a', sizeof(big) - 1);
                r->probe_r[0] = lvss_writer_set_backup_metadata(w, "Data/nope", "a");
                r->probe_r[1] = lvss_writer_set_backup_metadata(w, "main", "a");
                r->probe_r[2] = lvss_writer_set_backup_metadata(w, "Data/main", "bad \xff utf-8");
                r->probe_r[3] = lvss_writer_set_backup_metadata(w, "Data/main", big); /* 64 KiB + 1 */
                big[64 * 1024] = '\0';
                r->probe_r[4] = lvss_writer_set_backup_metadata(w, "Data/main", big); /* 64 KiB */
                r->probe_r[5] = lvss_writer_set_backup_metadata(w, "Data/main", NULL);
        }
        for (size_t i = 0; i < 2; i++)
                if (a->md_component[i])
                        r->md_set_r[i] =
                                lvss_writer_set_backup_metadata(w, a->md_component[i], a->md_data[i]);
        lvss_result result = a->result;
        CHECK(pthread_mutex_unlock(&rec->lock) == 0);
        return result;
}

static void recorder_init(struct recorder *rec) {
        *rec = (struct recorder){};
        CHECK(pthread_mutex_init(&rec->lock, NULL) == 0);
}

static size_t recorder_count(struct recorder *rec) {
        CHECK(pthread_mutex_lock(&rec->lock) == 0);
        size_t n = rec->n;
        CHECK(pthread_mutex_unlock(&rec->lock) == 0);
        return n;
}

/* A copy of the last record; the count must be N. */
static struct record recorder_last(struct recorder *rec, size_t n) {
        CHECK(pthread_mutex_lock(&rec->lock) == 0);
        CHECK_INT(rec->n, n);
        struct record r = rec->records[rec->n - 1];
        CHECK(pthread_mutex_unlock(&rec->lock) == 0);
        return r;
}

static void recorder_set_action(struct recorder *rec, lvss_event e, struct action a) {
        CHECK(pthread_mutex_lock(&rec->lock) == 0);
        rec->actions[e] = a;
        CHECK(pthread_mutex_unlock(&rec->lock) == 0);
}

/* Waits until there are N records (at most 10 s). */
static void recorder_wait(struct recorder *rec, size_t n) {
        uint64_t deadline = now_usec() + 10 * 1000000u;
        while (recorder_count(rec) < n) {
                CHECK(now_usec() < deadline);
                sleep_usec(2000);
        }
}

static void set_all_callbacks(lvss_writer *w, struct recorder *rec) {
        for (lvss_event e = LVSS_EVENT_PREPARE_FOR_BACKUP; e < _LVSS_EVENT_MAX; e++)
                CHECK_INT(lvss_writer_set_callback(w, e, on_event, rec), 0);
}

/* ---- the writer's thread ---- */

struct writer_thread {
        lvss_writer *w;
        const char *socket; /* NULL: $LVSS_SOCKET */
        bool poll_mode; /* poll lvss_writer_get_fd() and call lvss_writer_process() instead of run() */
        atomic_bool stop; /* poll mode: leave at the next wake-up */
        int connect_r, run_r;
        pthread_t thread;
};

static void *writer_main(void *userdata) {
        struct writer_thread *t = userdata;
        t->connect_r = lvss_writer_connect(t->w, t->socket);
        if (t->connect_r < 0)
                return NULL;
        /* Connected: the configuration is frozen, and one connection is all. */
        CHECK_INT(lvss_writer_set_level(t->w, LVSS_LEVEL_SYSTEM), -EBUSY);
        CHECK_INT(lvss_writer_set_freeze_timeout(t->w, 1000), -EBUSY);
        CHECK_INT(lvss_writer_set_types(t->w, LVSS_WMD_USAGE_OTHER, LVSS_WMD_SOURCE_OTHER), -EBUSY);
        CHECK_INT(lvss_writer_connect(t->w, t->socket), -EISCONN);

        if (!t->poll_mode) {
                t->run_r = lvss_writer_run(t->w);
                return NULL;
        }
        int fd = lvss_writer_get_fd(t->w);
        CHECK(fd >= 0);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                CHECK(poll(&p, 1, -1) >= 0);
                int r = lvss_writer_process(t->w);
                if (r < 0) {
                        t->run_r = r;
                        return NULL;
                }
                if (atomic_load(&t->stop)) {
                        t->run_r = 0;
                        return NULL;
                }
        }
}

static void writer_start(struct writer_thread *t) {
        CHECK(pthread_create(&t->thread, NULL, writer_main, t) == 0);
}

static void writer_join(struct writer_thread *t) {
        CHECK(pthread_join(t->thread, NULL) == 0);
}

/* A writer with two components and a callback for each event. */
static lvss_writer *make_writer(const char *name, struct recorder *rec) {
        lvss_writer *w = NULL;
        /* Upper case class id: accepted, and sent in lower case. */
        CHECK_INT(lvss_writer_new(name, "5F1C0D2E-9B1A-4C3D-8E2F-1A2B3C4D5E6F", "inst A", &w), 0);
        lvss_wmd *wmd = lvss_writer_metadata(w);
        CHECK(wmd);
        lvss_wmd_component *c;
        CHECK_INT(lvss_wmd_add_component(wmd, LVSS_WMD_COMPONENT_DATABASE, "Data", "main", "Main database",
                                         true, true, &c),
                  0);
        CHECK_INT(lvss_wmd_component_add_files(c, LVSS_WMD_DATABASE_FILES, "/srv/db", "main.db", false,
                                               LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_INCREMENTAL),
                  0);
        CHECK_INT(lvss_wmd_component_add_files(c, LVSS_WMD_LOG_FILES, "/srv/db", "main.db-wal", false,
                                               LVSS_WMD_BACKUP_FULL),
                  0);
        CHECK_INT(lvss_wmd_add_component(wmd, LVSS_WMD_COMPONENT_FILE_GROUP, "Config/App", "settings", NULL,
                                         true, false, &c),
                  0);
        CHECK_INT(lvss_wmd_component_add_files(c, LVSS_WMD_FILES, "/etc/app", "*.ini", true,
                                               LVSS_WMD_BACKUP_FULL),
                  0);
        set_all_callbacks(w, rec);
        return w;
}

static bool uuid_v4(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!strchr("0123456789abcdef", s[i]))
                        return false;
        }
        return s[14] == '4' && strchr("89ab", s[19]);
}

/* ---- the tests ---- */

static void test_strings(void) {
        static const char *const events[] = { "identify",
                                              "prepare-for-backup",
                                              "prepare-for-snapshot",
                                              "freeze",
                                              "thaw",
                                              "post-snapshot",
                                              "abort",
                                              "backup-complete",
                                              "backup-shutdown",
                                              "pre-restore",
                                              "post-restore" };
        CHECK_INT(ELEMENTSOF(events), _LVSS_EVENT_MAX);
        for (size_t i = 0; i < ELEMENTSOF(events); i++)
                CHECK_STR(lvss_event_to_string((lvss_event) i), events[i]);
        CHECK(!lvss_event_to_string(_LVSS_EVENT_MAX));
        CHECK(!lvss_event_to_string((lvss_event) -1));

        static const char *const results[] = { "ok",
                                               "veto",
                                               "retryable",
                                               "non-retryable",
                                               "out-of-resources",
                                               "timeout",
                                               "inconsistent-snapshot",
                                               "partial-failure" };
        CHECK_INT(ELEMENTSOF(results), _LVSS_RESULT_MAX);
        for (size_t i = 0; i < ELEMENTSOF(results); i++)
                CHECK_STR(lvss_result_to_string((lvss_result) i), results[i]);
        CHECK(!lvss_result_to_string(_LVSS_RESULT_MAX));
        CHECK(!lvss_result_to_string((lvss_result) -1));
}

static void test_arguments(void) {
        lvss_writer *w = NULL;
        static const char *const bad_names[] = { "",    "a b",       "x/y", "tab\t", "caf\xc3\xa9",
                                                 "a:b", "semi;colon" };
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++)
                CHECK_INT(lvss_writer_new(bad_names[i], CLASS_ID, NULL, &w), -EINVAL);
        CHECK_INT(lvss_writer_new(NULL, CLASS_ID, NULL, &w), -EINVAL);
        char name[257];
        memset(name, 'n', 256);
        name[256] = '\0';
        CHECK_INT(lvss_writer_new(name, CLASS_ID, NULL, &w), -EINVAL);
        static const char *const bad_ids[] = { "",
                                               "not-a-uuid",
                                               "5f1c0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6",
                                               "5f1c0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f0",
                                               "5f1c0d2e9b1a-4c3d-8e2f-1a2b3c4d5e6f-",
                                               "5f1c0d2g-9b1a-4c3d-8e2f-1a2b3c4d5e6f" };
        for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++)
                CHECK_INT(lvss_writer_new("ok", bad_ids[i], NULL, &w), -EINVAL);
        CHECK_INT(lvss_writer_new("ok", NULL, NULL, &w), -EINVAL);
        CHECK_INT(lvss_writer_new("ok", CLASS_ID, "bad\nname", &w), -EINVAL);
        CHECK_INT(lvss_writer_new("ok", CLASS_ID, "", &w), -EINVAL);
        CHECK_INT(lvss_writer_new("ok", CLASS_ID, NULL, NULL), -EINVAL);
        CHECK(!w); /* untouched on failure */

        name[255] = '\0';
        CHECK_INT(lvss_writer_new(name, CLASS_ID, NULL, &w), 0);
        lvss_writer_free(w);
        CHECK_INT(lvss_writer_new("A-z_0.9@x+y", CLASS_ID, "any name, with spaces", &w), 0);

        /* The instance id: a v4 UUID, new for each writer. */
        CHECK(uuid_v4(lvss_writer_instance_id(w)));
        lvss_writer *w2 = NULL;
        CHECK_INT(lvss_writer_new("A-z_0.9@x+y", CLASS_ID, NULL, &w2), 0);
        CHECK(uuid_v4(lvss_writer_instance_id(w2)));
        CHECK(strcmp(lvss_writer_instance_id(w), lvss_writer_instance_id(w2)) != 0);
        CHECK_STR(lvss_wmd_get_instance_id(lvss_writer_metadata(w)), lvss_writer_instance_id(w));
        CHECK(!lvss_wmd_get_instance_name(lvss_writer_metadata(w2)));
        lvss_writer_free(w2);

        /* Defaults, and the setters' ranges. */
        lvss_wmd *wmd = lvss_writer_metadata(w);
        CHECK_INT(lvss_wmd_get_usage(wmd), LVSS_WMD_USAGE_USER_DATA);
        CHECK_INT(lvss_wmd_get_source(wmd), LVSS_WMD_SOURCE_OTHER);
        CHECK_STR(lvss_wmd_get_instance_name(wmd), "any name, with spaces");
        CHECK_INT(lvss_writer_set_level(w, _LVSS_LEVEL_MAX), -EINVAL);
        CHECK_INT(lvss_writer_set_level(w, (lvss_writer_level) -1), -EINVAL);
        CHECK_INT(lvss_writer_set_level(w, LVSS_LEVEL_SYSTEM), 0);
        CHECK_INT(lvss_writer_set_freeze_timeout(w, 99), -EINVAL);
        CHECK_INT(lvss_writer_set_freeze_timeout(w, LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS + 1), -EINVAL);
        CHECK_INT(lvss_writer_set_freeze_timeout(w, 100), 0);
        CHECK_INT(lvss_writer_set_freeze_timeout(w, LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS), 0);
        CHECK_INT(lvss_writer_set_types(w, _LVSS_WMD_USAGE_MAX, LVSS_WMD_SOURCE_OTHER), -EINVAL);
        CHECK_INT(lvss_writer_set_types(w, LVSS_WMD_USAGE_OTHER, _LVSS_WMD_SOURCE_MAX), -EINVAL);
        CHECK_INT(lvss_writer_set_types(w, LVSS_WMD_USAGE_BOOTABLE_SYSTEM_STATE,
                                        LVSS_WMD_SOURCE_NONTRANSACTED_DB),
                  0);
        CHECK_INT(lvss_wmd_get_usage(wmd), LVSS_WMD_USAGE_BOOTABLE_SYSTEM_STATE);
        CHECK_INT(lvss_wmd_get_source(wmd), LVSS_WMD_SOURCE_NONTRANSACTED_DB);
        CHECK_INT(lvss_wmd_set_types(wmd, (lvss_wmd_usage) -1, LVSS_WMD_SOURCE_OTHER), -EINVAL);
        CHECK_INT(lvss_wmd_set_types(NULL, LVSS_WMD_USAGE_OTHER, LVSS_WMD_SOURCE_OTHER), -EINVAL);
        CHECK_INT(lvss_wmd_get_usage(wmd), LVSS_WMD_USAGE_BOOTABLE_SYSTEM_STATE);

        CHECK_INT(lvss_writer_set_callback(w, LVSS_EVENT_IDENTIFY, on_event, NULL), -EINVAL);
        CHECK_INT(lvss_writer_set_callback(w, _LVSS_EVENT_MAX, on_event, NULL), -EINVAL);
        CHECK_INT(lvss_writer_set_callback(w, (lvss_event) -1, on_event, NULL), -EINVAL);
        CHECK_INT(lvss_writer_set_callback(w, LVSS_EVENT_FREEZE, on_event, NULL), 0);
        CHECK_INT(lvss_writer_set_callback(w, LVSS_EVENT_FREEZE, NULL, NULL), 0);

        /* Outside a callback. */
        const char *got = NULL;
        CHECK_INT(lvss_writer_set_backup_metadata(w, "Data/main", "x"), -EINVAL);
        CHECK_INT(lvss_writer_get_backup_metadata(w, "Data/main", &got), -EINVAL);
        CHECK(!got);

        /* Not connected. */
        CHECK_INT(lvss_writer_run(w), -ENOTCONN);
        CHECK_INT(lvss_writer_process(w), -ENOTCONN);
        CHECK(lvss_writer_get_fd(w) >= 0);
        lvss_writer_quit(w); /* harmless */

        /* No lvssd: no socket, a socket nobody listens on, $LVSS_SOCKET. */
        struct server s;
        server_init(&s);
        char path[512];
        snprintf(path, sizeof(path), "%s/none.sock", s.dir);
        CHECK_INT(lvss_writer_connect(w, path), -ENOENT);
        char path2[512];
        snprintf(path2, sizeof(path2), "%s/deaf.sock", s.dir);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, path2);
        CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CHECK_INT(lvss_writer_connect(w, path2), -ECONNREFUSED);
        close(fd);
        unlink(path2);
        CHECK(setenv("LVSS_SOCKET", path, 1) == 0);
        CHECK_INT(lvss_writer_connect(w, NULL), -ENOENT);
        CHECK(unsetenv("LVSS_SOCKET") == 0);
        /* Still not connected: configurable. */
        CHECK_INT(lvss_writer_set_level(w, LVSS_LEVEL_BACK_END), 0);
        CHECK_INT(lvss_writer_run(w), -ENOTCONN);
        server_done(&s);

        lvss_writer_free(w);
        lvss_writer_free(NULL);
        CHECK(!lvss_writer_metadata(NULL));
        CHECK(!lvss_writer_instance_id(NULL));
        CHECK_INT(lvss_writer_get_fd(NULL), -EINVAL);
        lvss_writer_quit(NULL);
}

/* lvssd refuses the registration: each error maps to its errno. */
static void test_register_errors(void) {
        static const struct {
                const char *error;
                int r;
        } cases[] = {
                { "org.lvss.Error.AccessDenied", -EACCES },
                { "org.lvss.Error.Exists", -EEXIST },
                { "org.lvss.Error.InvalidArgument", -EINVAL },
        };
        struct server s;
        server_init(&s);
        struct recorder rec;
        recorder_init(&rec);
        lvss_writer *w = make_writer("refused", &rec);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct writer_thread t = { .w = w, .socket = s.path };
                s.register_error = cases[i].error;
                writer_start(&t);
                server_accept(&s);
                server_wait_registered(&s);
                writer_join(&t);
                CHECK_INT(t.connect_r, cases[i].r);
                server_hangup(&s);
                /* Not connected after a failure: still configurable. */
                CHECK_INT(lvss_writer_set_freeze_timeout(w, 500), 0);
        }
        lvss_writer_free(w);
        CHECK_INT(recorder_count(&rec), 0);
        server_done(&s);
}

static void test_protocol(void) {
        struct server s;
        server_init(&s);
        struct recorder rec;
        recorder_init(&rec);
        lvss_writer *w = make_writer("test-writer.1", &rec);
        CHECK_INT(lvss_writer_set_level(w, LVSS_LEVEL_BACK_END), 0);
        CHECK_INT(lvss_writer_set_freeze_timeout(w, 5000), 0);
        CHECK_INT(lvss_writer_set_types(w, LVSS_WMD_USAGE_SYSTEM_SERVICE, LVSS_WMD_SOURCE_TRANSACTED_DB), 0);
        char *expected_xml = NULL;
        CHECK_INT(lvss_wmd_to_xml(lvss_writer_metadata(w), &expected_xml, NULL), 0);
        char instance_id[64];
        copy_string(instance_id, sizeof(instance_id), lvss_writer_instance_id(w));

        struct writer_thread t = { .w = w, .socket = s.path };
        writer_start(&t);
        server_accept(&s);
        server_wait_registered(&s);

        /* The identity it registered with. */
        CHECK_INT(s.reg.n_keys, 8);
        CHECK(!s.reg.unknown_key);
        CHECK_STR(s.reg.name, "test-writer.1");
        CHECK_STR(s.reg.class_id, CLASS_ID);
        CHECK_STR(s.reg.instance_id, instance_id);
        CHECK_STR(s.reg.instance_name, "inst A");
        CHECK_STR(s.reg.level, "back-end");
        CHECK_STR(s.reg.usage, "system-service");
        CHECK_STR(s.reg.source, "transacted-db");
        CHECK_INT(s.reg.freeze_timeout_ms, 5000);

        /* Identify: the document, as it is. */
        struct answer a;
        call_writer(&s, "Identify", NULL, 0, ARGS_NONE, 0, &a);
        check_ok(&a);
        CHECK_STR(a.xml, expected_xml);
        lvss_wmd *wmd = NULL;
        CHECK_INT(lvss_wmd_from_xml(a.xml, strlen(a.xml), &wmd), 0);
        CHECK_STR(lvss_wmd_get_writer_name(wmd), "test-writer.1");
        CHECK_STR(lvss_wmd_get_class_id(wmd), CLASS_ID);
        CHECK_STR(lvss_wmd_get_instance_id(wmd), instance_id);
        CHECK_STR(lvss_wmd_get_instance_name(wmd), "inst A");
        CHECK_INT(lvss_wmd_get_usage(wmd), LVSS_WMD_USAGE_SYSTEM_SERVICE);
        CHECK_INT(lvss_wmd_get_source(wmd), LVSS_WMD_SOURCE_TRANSACTED_DB);
        CHECK_INT(lvss_wmd_get_n_components(wmd), 2);
        const lvss_wmd_component *c = lvss_wmd_get_component(wmd, 0);
        CHECK_INT(lvss_wmd_component_get_type(c), LVSS_WMD_COMPONENT_DATABASE);
        CHECK_STR(lvss_wmd_component_get_logical_path(c), "Data");
        CHECK_STR(lvss_wmd_component_get_name(c), "main");
        CHECK_STR(lvss_wmd_component_get_caption(c), "Main database");
        CHECK_INT(lvss_wmd_component_get_n_files(c, LVSS_WMD_DATABASE_FILES), 1);
        CHECK_STR(
                lvss_wmd_file_set_get_filespec(lvss_wmd_component_get_files(c, LVSS_WMD_DATABASE_FILES, 0)),
                "main.db");
        CHECK_INT(lvss_wmd_component_get_n_files(c, LVSS_WMD_LOG_FILES), 1);
        c = lvss_wmd_get_component(wmd, 1);
        CHECK_INT(lvss_wmd_component_get_type(c), LVSS_WMD_COMPONENT_FILE_GROUP);
        CHECK_STR(lvss_wmd_component_get_logical_path(c), "Config/App");
        CHECK_STR(lvss_wmd_component_get_name(c), "settings");
        const lvss_wmd_file_set *f = lvss_wmd_component_get_files(c, LVSS_WMD_FILES, 0);
        CHECK_STR(lvss_wmd_file_set_get_path(f), "/etc/app");
        CHECK_STR(lvss_wmd_file_set_get_filespec(f), "*.ini");
        CHECK(lvss_wmd_file_set_get_recursive(f));
        lvss_wmd_free(wmd);
        answer_done(&a);
        free(expected_xml);
        CHECK_INT(recorder_count(&rec), 0); /* no callback for Identify */

        /* Each event reaches its callback with what lvssd said. */
        static const char *const members[_LVSS_EVENT_MAX] = { NULL,
                                                              "PrepareForBackup",
                                                              "PrepareForSnapshot",
                                                              "Freeze",
                                                              "Thaw",
                                                              "PostSnapshot",
                                                              "Abort",
                                                              "BackupComplete",
                                                              "BackupShutdown",
                                                              "PreRestore",
                                                              "PostRestore" };
        size_t n = 0;
        for (lvss_event e = LVSS_EVENT_PREPARE_FOR_BACKUP; e < _LVSS_EVENT_MAX; e++) {
                call_writer(&s, members[e], SET1, 1000 + e, ARGS_FULL, 0, &a);
                check_ok(&a);
                CHECK_INT(a.n, 0);
                answer_done(&a);
                struct record r = recorder_last(&rec, ++n);
                CHECK_INT(r.event, e);
                CHECK_STR(r.set, SET1);
                CHECK_INT(r.deadline_ms, 1000 + e);
                CHECK_STR(r.context, "backup");
                CHECK_STR(r.backup_type, "incremental");
                CHECK_STR(r.components, "Data/main|Config/App/settings");
                CHECK_STR(r.volumes, "vol1|vol2");
                CHECK_STR(r.shadow_paths, "vol1=/run/lvss/dev/shadows/x");
                if (e == LVSS_EVENT_PRE_RESTORE || e == LVSS_EVENT_POST_RESTORE) {
                        CHECK_INT(r.get_r, 0);
                        CHECK_STR(r.got, "md-in ✓");
                        CHECK_INT(r.get_missing_r, -ENOENT);
                        CHECK_INT(r.set_in_restore_r, -EINVAL);
                } else
                        CHECK_INT(r.get_r, -EINVAL); /* only at restore */
        }

        /* Nothing said, and known keys of the wrong type: empty values, never NULL. */
        static const enum args_kind kinds[] = { ARGS_NONE, ARGS_WRONG_TYPES };
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                call_writer(&s, "PreRestore", SET1, 7, kinds[i], 0, &a);
                check_ok(&a);
                answer_done(&a);
                struct record r = recorder_last(&rec, ++n);
                CHECK_INT(r.event, LVSS_EVENT_PRE_RESTORE);
                CHECK_STR(r.context, "");
                CHECK_STR(r.backup_type, "");
                CHECK_STR(r.components, "");
                CHECK_STR(r.volumes, "");
                CHECK_STR(r.shadow_paths, "");
                CHECK_INT(r.get_r, -ENOENT);
        }

        /* A set id that is not a UUID: refused before any callback; unknown methods too. */
        call_writer(&s, "PrepareForBackup", "not-a-set", 10, ARGS_FULL, 0, &a);
        check_error(&a, SD_BUS_ERROR_INVALID_ARGS);
        answer_done(&a);
        call_writer(&s, "Snapshot", SET1, 10, ARGS_FULL, 0, &a);
        check_error(&a, SD_BUS_ERROR_UNKNOWN_METHOD);
        answer_done(&a);
        CHECK_INT(recorder_count(&rec), n);

        /* Each failure its error. */
        static const char *const errors[_LVSS_RESULT_MAX] = {
                NULL,
                "org.lvss.Writer.Error.Veto",
                "org.lvss.Writer.Error.Retryable",
                "org.lvss.Writer.Error.NonRetryable",
                "org.lvss.Writer.Error.OutOfResources",
                "org.lvss.Writer.Error.Timeout",
                "org.lvss.Writer.Error.InconsistentSnapshot",
                "org.lvss.Writer.Error.PartialFailure",
        };
        for (lvss_result res = LVSS_RESULT_VETO; res < _LVSS_RESULT_MAX; res++) {
                recorder_set_action(&rec, LVSS_EVENT_PREPARE_FOR_SNAPSHOT,
                                    (struct action){ .result = res,
                                                     .md_component[0] = "Data/main",
                                                     .md_data[0] = "not sent with a failure" });
                call_writer(&s, "PrepareForSnapshot", SET1, 10, ARGS_FULL, 0, &a);
                check_error(&a, errors[res]);
                if (res == LVSS_RESULT_VETO)
                        CHECK(strstr(a.error_message, "test-writer.1") && strstr(a.error_message, "veto"));
                answer_done(&a);
                struct record r = recorder_last(&rec, ++n);
                CHECK_INT(r.event, LVSS_EVENT_PREPARE_FOR_SNAPSHOT);
                CHECK_INT(r.md_set_r[0], 0);
        }
        recorder_set_action(&rec, LVSS_EVENT_PREPARE_FOR_SNAPSHOT,
                            (struct action){ .result = (lvss_result) 99 });
        call_writer(&s, "PrepareForSnapshot", SET1, 10, ARGS_FULL, 0, &a);
        check_error(&a, "org.lvss.Writer.Error.NonRetryable");
        answer_done(&a);
        recorder_last(&rec, ++n);
        recorder_set_action(&rec, LVSS_EVENT_PREPARE_FOR_SNAPSHOT, (struct action){});

        /* Backup metadata: sent with the answer of the event that set it, and only that one. */
        recorder_set_action(&rec, LVSS_EVENT_PREPARE_FOR_BACKUP,
                            (struct action){ .probe = true,
                                             .md_component = { "Data/main", "Config/App/settings" },
                                             .md_data = { "state=42 ✓\nline two", "" } });
        call_writer(&s, "PrepareForBackup", SET2, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        CHECK_INT(a.n, 2);
        CHECK_STR(a.keys[0], "Data/main");
        CHECK_STR(a.values[0], "state=42 ✓\nline two");
        CHECK_STR(a.keys[1], "Config/App/settings");
        CHECK_STR(a.values[1], "");
        answer_done(&a);
        struct record r = recorder_last(&rec, ++n);
        CHECK_INT(r.probe_r[0], -ENOENT); /* not a component of the writer */
        CHECK_INT(r.probe_r[1], -EINVAL); /* not logical-path/name */
        CHECK_INT(r.probe_r[2], -EINVAL); /* not UTF-8 */
        CHECK_INT(r.probe_r[3], -E2BIG); /* 64 KiB + 1 */
        CHECK_INT(r.probe_r[4], 0); /* 64 KiB, then replaced */
        CHECK_INT(r.probe_r[5], -EINVAL);
        CHECK_INT(r.md_set_r[0], 0);
        CHECK_INT(r.md_set_r[1], 0);
        recorder_set_action(&rec, LVSS_EVENT_PREPARE_FOR_BACKUP, (struct action){});
        call_writer(&s, "PrepareForSnapshot", SET2, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        CHECK_INT(a.n, 0);
        answer_done(&a);
        recorder_last(&rec, ++n);

        /* Freeze then Thaw in time: no abort of its own. */
        call_writer(&s, "Freeze", SET2, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        call_writer(&s, "Thaw", SET2, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        CHECK_INT(recorder_last(&rec, n += 2).event, LVSS_EVENT_THAW);

        /* A vetoed Freeze opens no window; disconnect now: no abort. */
        recorder_set_action(&rec, LVSS_EVENT_FREEZE, (struct action){ .result = LVSS_RESULT_VETO });
        call_writer(&s, "Freeze", SET2, 10, ARGS_FULL, 0, &a);
        check_error(&a, "org.lvss.Writer.Error.Veto");
        answer_done(&a);
        recorder_last(&rec, ++n);
        recorder_set_action(&rec, LVSS_EVENT_FREEZE, (struct action){});

        /* Frozen when lvssd goes away: the Abort callback runs, run() says -ECONNRESET. */
        call_writer(&s, "Freeze", SET3, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        CHECK_INT(recorder_last(&rec, ++n).event, LVSS_EVENT_FREEZE);
        server_hangup(&s);
        writer_join(&t);
        CHECK_INT(t.connect_r, 0);
        CHECK_INT(t.run_r, -ECONNRESET);
        r = recorder_last(&rec, ++n);
        CHECK_INT(r.event, LVSS_EVENT_ABORT);
        CHECK_STR(r.set, SET3);
        CHECK_INT(r.deadline_ms, 0);
        CHECK_STR(r.context, "");
        CHECK_INT(lvss_writer_run(w), -ECONNRESET);
        CHECK_INT(lvss_writer_process(w), -ECONNRESET);
        lvss_writer_free(w); /* thawed already: no second abort */
        CHECK_INT(recorder_count(&rec), n);
        server_done(&s);
}

/* The freeze window: no Thaw within the freeze timeout, the writer thaws by itself. Driven through
 * lvss_writer_get_fd() and lvss_writer_process(). */
static void test_freeze_window(void) {
        struct server s;
        server_init(&s);
        struct recorder rec;
        recorder_init(&rec);
        lvss_writer *w = make_writer("test-writer.2", &rec);
        CHECK_INT(lvss_writer_set_freeze_timeout(w, 200), 0);
        CHECK(setenv("LVSS_SOCKET", s.path, 1) == 0);
        struct writer_thread t = { .w = w, .socket = NULL, .poll_mode = true };
        writer_start(&t);
        server_accept(&s);
        server_wait_registered(&s);
        CHECK(unsetenv("LVSS_SOCKET") == 0);
        CHECK_STR(s.reg.name, "test-writer.2");
        CHECK_STR(s.reg.level, "front-end");
        CHECK_STR(s.reg.usage, "user-data");
        CHECK_STR(s.reg.source, "other");
        CHECK_INT(s.reg.freeze_timeout_ms, 200);

        struct answer a;
        uint64_t t0 = now_usec();
        call_writer(&s, "Freeze", SET3, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        CHECK_INT(recorder_last(&rec, 1).event, LVSS_EVENT_FREEZE);
        recorder_wait(&rec, 2);
        struct record r = recorder_last(&rec, 2);
        CHECK_INT(r.event, LVSS_EVENT_ABORT);
        CHECK_STR(r.set, SET3);
        CHECK_INT(r.deadline_ms, 0);
        CHECK(r.usec - t0 >= 200000);
        CHECK(r.usec - t0 < 5000000);

        /* The late Thaw: Timeout, no callback; the Abort after it: OK, no second callback. */
        call_writer(&s, "Thaw", SET3, 10, ARGS_FULL, 0, &a);
        check_error(&a, "org.lvss.Writer.Error.Timeout");
        answer_done(&a);
        call_writer(&s, "Abort", SET3, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        CHECK_INT(a.n, 0);
        answer_done(&a);
        CHECK_INT(recorder_count(&rec), 2);

        /* The next set: Thaw in time is a Thaw; nothing of its own after it. */
        call_writer(&s, "Freeze", SET4, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        call_writer(&s, "Thaw", SET4, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        CHECK_INT(recorder_last(&rec, 4).event, LVSS_EVENT_THAW);
        sleep_usec(400000);
        CHECK_INT(recorder_count(&rec), 4);

        /* Abort in time ends the window as well (and calls the callback, once). */
        call_writer(&s, "Freeze", SET5, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        call_writer(&s, "Abort", SET5, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        r = recorder_last(&rec, 6);
        CHECK_INT(r.event, LVSS_EVENT_ABORT);
        CHECK_INT(r.deadline_ms, 10);
        sleep_usec(400000);
        CHECK_INT(recorder_count(&rec), 6);
        call_writer(&s, "Thaw", SET5, 10, ARGS_FULL, 0, &a); /* not frozen: an ordinary Thaw */
        check_ok(&a);
        answer_done(&a);
        CHECK_INT(recorder_last(&rec, 7).event, LVSS_EVENT_THAW);

        /* Thawed by itself, then frozen again in the same set: its Thaw is a Thaw again. */
        call_writer(&s, "Freeze", SET1, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        recorder_wait(&rec, 9);
        r = recorder_last(&rec, 9);
        CHECK_INT(r.event, LVSS_EVENT_ABORT);
        CHECK_INT(r.deadline_ms, 0);
        call_writer(&s, "Freeze", SET1, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        call_writer(&s, "Thaw", SET1, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        CHECK_INT(recorder_last(&rec, 11).event, LVSS_EVENT_THAW);

        /* lvss_writer_quit() from another thread wakes the poll. */
        atomic_store(&t.stop, true);
        lvss_writer_quit(w);
        writer_join(&t);
        CHECK_INT(t.run_r, 0);
        lvss_writer_free(w);
        CHECK_INT(recorder_count(&rec), 11);
        server_done(&s);
}

/* lvss_writer_quit() ends run() with 0; freeing a frozen writer thaws it. */
static void test_quit(void) {
        struct server s;
        server_init(&s);
        struct recorder rec;
        recorder_init(&rec);
        lvss_writer *w = make_writer("test-writer.3", &rec);
        struct writer_thread t = { .w = w, .socket = s.path };
        writer_start(&t);
        server_accept(&s);
        server_wait_registered(&s);

        struct answer a;
        call_writer(&s, "Freeze", SET1, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        lvss_writer_quit(w);
        writer_join(&t);
        CHECK_INT(t.run_r, 0);
        CHECK_INT(recorder_count(&rec), 1);

        /* A quit before run() is not lost. */
        lvss_writer_quit(w);
        uint64_t t0 = now_usec();
        CHECK_INT(lvss_writer_run(w), 0);
        CHECK(now_usec() - t0 < 5000000);
        CHECK_INT(lvss_writer_process(w), 0);

        lvss_writer_free(w);
        struct record r = recorder_last(&rec, 2);
        CHECK_INT(r.event, LVSS_EVENT_ABORT);
        CHECK_STR(r.set, SET1);
        CHECK_INT(r.deadline_ms, 0);
        server_done(&s);
}

/* A writer without callbacks answers every event OK at once. */
static void test_no_callbacks(void) {
        struct server s;
        server_init(&s);
        lvss_writer *w = NULL;
        CHECK_INT(lvss_writer_new("bare", CLASS_ID, NULL, &w), 0);
        struct writer_thread t = { .w = w, .socket = s.path };
        writer_start(&t);
        server_accept(&s);
        server_wait_registered(&s);
        CHECK_INT(s.reg.n_keys, 7); /* no InstanceName */
        CHECK_STR(s.reg.instance_name, "");
        CHECK_INT(s.reg.freeze_timeout_ms, LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS);
        static const char *const members[] = { "PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw",
                                               "PostSnapshot",     "BackupComplete" };
        for (size_t i = 0; i < ELEMENTSOF(members); i++) {
                struct answer a;
                call_writer(&s, members[i], SET1, 10, ARGS_FULL, 0, &a);
                check_ok(&a);
                CHECK_INT(a.n, 0);
                answer_done(&a);
        }
        server_hangup(&s);
        writer_join(&t);
        CHECK_INT(t.run_r, -ECONNRESET);
        lvss_writer_free(w);
        server_done(&s);
}

/* ---- the writer programs ---- */

static pid_t spawn(char *const argv[], const char *output) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                if (output) {
                        int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
                                _exit(127);
                }
                execv(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static int wait_exit(pid_t pid) {
        int status;
        uint64_t deadline = now_usec() + 20 * 1000000u;
        for (;;) {
                pid_t p = waitpid(pid, &status, WNOHANG);
                CHECK(p >= 0);
                if (p == pid)
                        return status;
                CHECK(now_usec() < deadline);
                sleep_usec(5000);
        }
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        CHECK(f);
        char *buf = calloc(1, 1 << 16);
        CHECK(buf);
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void wait_file(const char *path) {
        uint64_t deadline = now_usec() + 10 * 1000000u;
        while (access(path, F_OK) < 0) {
                CHECK(now_usec() < deadline);
                sleep_usec(5000);
        }
}

/* Checks that Identify answers one file-group component LOGICAL_PATH/NAME per DIRS[i]. */
static void check_path_components(struct server *s, const char *logical_path, const char *const *names,
                                  const char *const *dirs, size_t n) {
        struct answer a;
        call_writer(s, "Identify", NULL, 0, ARGS_NONE, 0, &a);
        check_ok(&a);
        lvss_wmd *wmd = NULL;
        CHECK_INT(lvss_wmd_from_xml(a.xml, strlen(a.xml), &wmd), 0);
        CHECK_INT(lvss_wmd_get_n_components(wmd), n);
        for (size_t i = 0; i < n; i++) {
                const lvss_wmd_component *c = lvss_wmd_get_component(wmd, i);
                CHECK_INT(lvss_wmd_component_get_type(c), LVSS_WMD_COMPONENT_FILE_GROUP);
                CHECK_STR(lvss_wmd_component_get_logical_path(c), logical_path);
                CHECK_STR(lvss_wmd_component_get_name(c), names[i]);
                CHECK_INT(lvss_wmd_component_get_n_files(c, LVSS_WMD_FILES), 1);
                const lvss_wmd_file_set *f = lvss_wmd_component_get_files(c, LVSS_WMD_FILES, 0);
                CHECK_STR(lvss_wmd_file_set_get_path(f), dirs[i]);
                CHECK_STR(lvss_wmd_file_set_get_filespec(f), "*");
                CHECK(lvss_wmd_file_set_get_recursive(f));
        }
        lvss_wmd_free(wmd);
        answer_done(&a);
}

static void test_example_writer(const char *program) {
        struct server s;
        server_init(&s);
        char out[512], data[512];
        snprintf(out, sizeof(out), "%s/example.out", s.dir);
        snprintf(data, sizeof(data), "%s/data", s.dir);
        CHECK(mkdir(data, 0755) == 0);
        char *argv[] = { (char *) program, "--socket", s.path, "--name", "example.1", data, NULL };
        pid_t pid = spawn(argv, out);
        server_accept(&s);
        server_wait_registered(&s);
        CHECK_STR(s.reg.name, "example.1");
        CHECK_STR(s.reg.level, "front-end");
        check_path_components(&s, "Files", (const char *const[]){ "data" }, (const char *const[]){ data },
                              1);

        static const char *const members[] = { "PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw",
                                               "PostSnapshot",     "BackupComplete" };
        for (size_t i = 0; i < ELEMENTSOF(members); i++) {
                struct answer a;
                call_writer(&s, members[i], SET1, 10, ARGS_FULL, 0, &a);
                check_ok(&a);
                answer_done(&a);
        }
        CHECK(kill(pid, SIGTERM) == 0);
        int status = wait_exit(pid);
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 0);
        char *text = read_file(out);
        CHECK(strstr(text, "freeze " SET1));
        CHECK(strstr(text, "thaw " SET1));
        CHECK(strstr(text, "post-snapshot " SET1));
        free(text);
        unlink(out);
        rmdir(data);
        server_done(&s);
}

/* Lines of LOG that are "<ns> NAME WHAT SET": how many, and whether their times never go back. */
static size_t count_log(const char *log, const char *name, const char *what, const char *set) {
        size_t n = 0;
        uint64_t last = 0;
        for (const char *line = log; *line;) {
                const char *end = strchr(line, '\n');
                CHECK(end);
                char want[256];
                snprintf(want, sizeof(want), " %s %s %s", name, what, set);
                char *rest;
                errno = 0;
                unsigned long long ns = strtoull(line, &rest, 10);
                CHECK(errno == 0 && rest > line && ns >= last);
                last = ns;
                if ((size_t) (end - rest) == strlen(want) && strncmp(rest, want, end - rest) == 0)
                        n++;
                line = end + 1;
        }
        return n;
}

static void test_test_writer(const char *program) {
        struct server s;
        server_init(&s);
        char log[512], ready[512], d0[512], d1[512];
        snprintf(log, sizeof(log), "%s/writer.log", s.dir);
        snprintf(ready, sizeof(ready), "%s/ready", s.dir);
        snprintf(d0, sizeof(d0), "%s/d0", s.dir);
        snprintf(d1, sizeof(d1), "%s/d1", s.dir);
        CHECK(mkdir(d0, 0755) == 0);
        CHECK(mkdir(d1, 0755) == 0);

        char *argv[] = { (char *) program,
                         "--socket",
                         s.path,
                         "--name",
                         "tw.1",
                         "--class-id",
                         CLASS_ID,
                         "--level",
                         "system",
                         "--freeze-timeout",
                         "300",
                         "--path",
                         d0,
                         "--path",
                         d1,
                         "--on",
                         "prepare-for-backup=metadata:Paths/0=hello",
                         "--on",
                         "prepare-for-backup=metadata:Paths/1=world",
                         "--on",
                         "prepare-for-snapshot=veto",
                         "--on",
                         "post-snapshot=sleep:150",
                         "--on",
                         "backup-complete=partial-failure",
                         "--on",
                         "thaw=hang",
                         "--log",
                         log,
                         "--ready-file",
                         ready,
                         NULL };
        pid_t pid = spawn(argv, NULL);
        server_accept(&s);
        server_wait_registered(&s);
        wait_file(ready);
        CHECK_STR(s.reg.name, "tw.1");
        CHECK_STR(s.reg.class_id, CLASS_ID);
        CHECK_STR(s.reg.level, "system");
        CHECK_INT(s.reg.freeze_timeout_ms, 300);
        check_path_components(&s, "Paths", (const char *const[]){ "0", "1" },
                              (const char *const[]){ d0, d1 }, 2);

        struct answer a;
        call_writer(&s, "PrepareForBackup", SET1, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        CHECK_INT(a.n, 2);
        CHECK_STR(a.keys[0], "Paths/0");
        CHECK_STR(a.values[0], "hello");
        CHECK_STR(a.keys[1], "Paths/1");
        CHECK_STR(a.values[1], "world");
        answer_done(&a);
        call_writer(&s, "PrepareForSnapshot", SET1, 10, ARGS_FULL, 0, &a);
        check_error(&a, "org.lvss.Writer.Error.Veto");
        answer_done(&a);
        call_writer(&s, "PostSnapshot", SET1, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        CHECK(a.usec >= 150000);
        answer_done(&a);
        call_writer(&s, "BackupComplete", SET1, 10, ARGS_FULL, 0, &a);
        check_error(&a, "org.lvss.Writer.Error.PartialFailure");
        answer_done(&a);

        /* No Thaw within 300 ms: the library thaws it, and it logs that. */
        call_writer(&s, "Freeze", SET2, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        sleep_usec(1000000);
        call_writer(&s, "Thaw", SET2, 10, ARGS_FULL, 0, &a);
        check_error(&a, "org.lvss.Writer.Error.Timeout");
        answer_done(&a);

        /* Thaw in time now hangs: lvssd's deadline passes; SIGTERM still ends it with 0. */
        call_writer(&s, "Freeze", SET3, 10, ARGS_FULL, 0, &a);
        check_ok(&a);
        answer_done(&a);
        call_writer(&s, "Thaw", SET3, 10, ARGS_FULL, 100000, &a);
        CHECK_INT(a.r, -ETIMEDOUT);
        answer_done(&a);
        CHECK(kill(pid, SIGTERM) == 0);
        int status = wait_exit(pid);
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 0);

        char *text = read_file(log);
        CHECK_INT(count_log(text, "tw.1", "prepare-for-backup", SET1), 1);
        CHECK_INT(count_log(text, "tw.1", "prepare-for-snapshot", SET1), 1);
        CHECK_INT(count_log(text, "tw.1", "post-snapshot", SET1), 1);
        CHECK_INT(count_log(text, "tw.1", "freeze", SET2), 1);
        CHECK_INT(count_log(text, "tw.1", "abort", SET2), 1);
        CHECK_INT(count_log(text, "tw.1", "auto-abort", SET2), 1);
        CHECK_INT(count_log(text, "tw.1", "thaw", SET2), 0);
        CHECK_INT(count_log(text, "tw.1", "thaw", SET3), 1);
        CHECK_INT(count_log(text, "tw.1", "auto-abort", SET3), 0);
        free(text);
        server_hangup(&s);

        /* exit inside a callback: a disconnection, exit status 3. */
        char *argv_exit[] = { (char *) program, "--socket", s.path,        "--name",
                              "tw.2",           "--on",     "freeze=exit", NULL };
        pid = spawn(argv_exit, NULL);
        server_accept(&s);
        server_wait_registered(&s);
        call_writer(&s, "Freeze", SET1, 10, ARGS_FULL, 0, &a);
        CHECK(a.r < 0);
        answer_done(&a);
        status = wait_exit(pid);
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 3);
        server_hangup(&s);

        /* crash inside a callback: SIGABRT. */
        char *argv_crash[] = { (char *) program,           "--socket", s.path, "--name", "tw.3", "--on",
                               "prepare-for-backup=crash", NULL };
        pid = spawn(argv_crash, NULL);
        server_accept(&s);
        server_wait_registered(&s);
        call_writer(&s, "PrepareForBackup", SET1, 10, ARGS_FULL, 0, &a);
        CHECK(a.r < 0);
        answer_done(&a);
        status = wait_exit(pid);
        CHECK(WIFSIGNALED(status));
        CHECK_INT(WTERMSIG(status), SIGABRT);
        server_hangup(&s);

        /* lvssd goes away: the writer says so and exits 4; no lvssd: exit 1; bad usage: exit 2. */
        char *argv_plain[] = { (char *) program, "--socket", s.path, "--name", "tw.4", NULL };
        pid = spawn(argv_plain, NULL);
        server_accept(&s);
        server_wait_registered(&s);
        server_hangup(&s);
        status = wait_exit(pid);
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 4);
        char none[512];
        snprintf(none, sizeof(none), "%s/none.sock", s.dir);
        char *argv_none[] = { (char *) program, "--socket", none, "--name", "tw.5", NULL };
        status = wait_exit(spawn(argv_none, NULL));
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 1);
        char *argv_bad[] = { (char *) program, "--socket", none,          "--name",
                             "tw.6",           "--on",     "freeze=melt", NULL };
        status = wait_exit(spawn(argv_bad, NULL));
        CHECK(WIFEXITED(status));
        CHECK_INT(WEXITSTATUS(status), 2);

        unlink(log);
        unlink(ready);
        rmdir(d0);
        rmdir(d1);
        server_done(&s);
}

int main(int argc, char *argv[]) {
        if (argc == 4 && strcmp(argv[1], "--programs") == 0) {
                test_example_writer(argv[2]);
                test_test_writer(argv[3]);
                printf("test-writer --programs: all checks passed\n");
                return 0;
        }
        if (argc != 1) {
                fprintf(stderr, "usage: %s [--programs EXAMPLE_WRITER TEST_WRITER]\n", argv[0]);
                return 2;
        }
        test_strings();
        test_arguments();
        test_register_errors();
        test_protocol();
        test_freeze_window();
        test_quit();
        test_no_callbacks();
        printf("test-writer: all checks passed\n");
        return 0;
}
