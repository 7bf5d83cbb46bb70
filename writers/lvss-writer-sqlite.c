/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-writer-sqlite: a back-end writer for SQLite databases. Each database given on the command
 * line is one component (type database; logical path "Databases", named after its path) whose
 * database file is the db and whose log files are its -wal and -journal; the -shm is excluded
 * (SQLite rebuilds it).
 *
 * The promise: the shadow holds each database whole in its main file, with no WAL content to
 * replay and no hot journal, so it opens read-only and passes PRAGMA integrity_check as it is.
 *
 * How, at Freeze, for each selected database:
 *   - WAL mode: checkpoint with TRUNCATE (every committed page goes into the db file and the WAL
 *     becomes 0 bytes), then BEGIN IMMEDIATE, which takes the WAL write lock and keeps it: no one
 *     can append to the WAL until we let go. A writer may have slipped in between the two, so
 *     while holding the lock we check that the -wal file is still 0 bytes (or absent); if it is
 *     not, ROLLBACK, checkpoint again and retry until the deadline. Readers go on meanwhile.
 *   - rollback-journal mode: BEGIN IMMEDIATE takes the RESERVED lock: no other connection can
 *     start writing, so the db file holds the last committed state and no journal is hot
 *     (taking the lock rolls back a journal left by a crash). Readers go on. (BEGIN EXCLUSIVE is
 *     not needed: it would only shut out readers, who change nothing.)
 * The lock is held, the transaction empty, until Thaw or Abort (ROLLBACK, close), or until the
 * freeze window passes (liblvss calls Abort by itself). A database whose lock cannot be had
 * before the deadline fails the Freeze with Retryable, and the ones already locked are let go.
 * Waiting for a lock polls every 0.1 ms (our own busy handler), so that a busy application
 * that commits back to back cannot starve us as SQLite's growing back-off would; each wait is at
 * most 10 s and never past the event's deadline.
 *
 * At PreRestore (the application is stopped: restore method stop-restore-start) the live
 * databases of the restored components are checkpointed and closed, so that no WAL or hot journal
 * of theirs can be replayed over the restored files. A database another connection still writes
 * to (its write lock taken) vetoes the restore.
 *
 * One thread: callbacks run one at a time on lvss_writer_run()'s thread (liblvss).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <lvss/writer.h>

#include "common/macro.h"
#include "writers/writer-util.h"

#define PROG "lvss-writer-sqlite"
#define CLASS_ID "4e0f9a6b-2c1d-4b8e-9f37-a5d6c2e8b410"
#define LOGICAL_PATH "Databases"
#define BUSY_WAIT_MAX_MS 10000u
#define BACKUP_TYPES (LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_COPY)

const char wu_program[] = PROG;

struct db {
        char *path; /* absolute, symbolic links resolved */
        char *wal_path; /* PATH-wal */
        char *component; /* "Databases/NAME" */
        sqlite3 *conn; /* open from Freeze to Thaw/Abort */
        bool locked; /* in BEGIN IMMEDIATE */
        uint64_t busy_until; /* the busy handler gives up then (monotonic ms) */
};

struct sqlite_writer {
        struct db *dbs;
        size_t n_dbs;
        char *set_id; /* the set of the last PrepareForBackup, and its selection */
        char **selected;
        size_t n_selected;
};

/* ---- one database ------------------------------------------------------------------------------- */

/* Polls every 0.1 ms until DB->busy_until: a writer committing back to back leaves the lock free
 * for tens of microseconds between its transactions, which SQLite's own back-off (sleeps growing
 * to 100 ms) nearly always misses (measured: seconds to quiesce, instead of milliseconds). */
static int busy_handler(void *userdata, int count) {
        struct db *d = userdata;
        struct timespec ts = { 0, 100 * 1000 };

        if (wu_now_ms() >= d->busy_until)
                return 0;
        nanosleep(&ts, NULL);
        return 1;
}

static void db_set_wait(struct db *d, uint64_t end) {
        d->busy_until = MIN(end, wu_now_ms() + BUSY_WAIT_MAX_MS);
}

static int db_exec(struct db *d, const char *sql) {
        return sqlite3_exec(d->conn, sql, NULL, NULL, NULL);
}

static void db_close(struct db *d) {
        if (d->locked) {
                if (db_exec(d, "ROLLBACK") != SQLITE_OK)
                        wu_log("%s: ROLLBACK failed: %s", d->path, sqlite3_errmsg(d->conn));
                d->locked = false;
        }
        if (d->conn) {
                sqlite3_close_v2(d->conn);
                d->conn = NULL;
        }
}

static int db_open(struct db *d, uint64_t end) {
        int rc;

        rc = sqlite3_open_v2(d->path, &d->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                wu_log("cannot open the database %s: %s", d->path,
                       d->conn ? sqlite3_errmsg(d->conn) : sqlite3_errstr(rc));
                db_close(d);
                return rc;
        }
        sqlite3_busy_handler(d->conn, busy_handler, d);
        db_set_wait(d, end);
        return SQLITE_OK;
}

/* The database's journal mode ("wal", "delete", ...) into BUF; false on failure. */
static bool db_journal_mode(struct db *d, char *buf, size_t size) {
        sqlite3_stmt *st = NULL;
        bool ok = false;

        if (sqlite3_prepare_v2(d->conn, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
                snprintf(buf, size, "%s", (const char *) sqlite3_column_text(st, 0));
                ok = true;
        }
        sqlite3_finalize(st);
        return ok;
}

/* The size of the -wal file: 0 when absent; -1 if it cannot be known. */
static int64_t wal_size(const struct db *d) {
        struct stat st;

        if (stat(d->wal_path, &st) < 0)
                return errno == ENOENT ? 0 : -1;
        return (int64_t) st.st_size;
}

/* Opens D and holds its write lock with nothing to replay (see the top); by END. */
static lvss_result db_freeze(struct db *d, uint64_t end) {
        char mode[32];
        bool wal;
        unsigned attempts = 0;
        char why[256] = "the write lock stayed taken";

        if (db_open(d, end) != SQLITE_OK)
                return LVSS_RESULT_RETRYABLE;
        if (!db_journal_mode(d, mode, sizeof mode)) {
                wu_log("cannot read the journal mode of %s: %s", d->path, sqlite3_errmsg(d->conn));
                db_close(d);
                return LVSS_RESULT_RETRYABLE;
        }
        wal = strcmp(mode, "wal") == 0;

        while (wu_now_ms() < end) {
                int rc;
                int64_t size;

                attempts++;
                db_set_wait(d, end);
                if (wal) {
                        rc = sqlite3_wal_checkpoint_v2(d->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                                       NULL);
                        if (rc != SQLITE_OK) {
                                snprintf(why, sizeof why, "%s",
                                         rc == SQLITE_BUSY ? "the WAL checkpoint stayed blocked (by the "
                                                             "write lock, or a reader of an old snapshot)"
                                                           : sqlite3_errmsg(d->conn));
                                if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                                        break;
                                continue;
                        }
                }
                db_set_wait(d, end);
                rc = db_exec(d, "BEGIN IMMEDIATE");
                if (rc != SQLITE_OK) {
                        snprintf(why, sizeof why, "%s", sqlite3_errmsg(d->conn));
                        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                                break;
                        continue;
                }
                d->locked = true;
                if (!wal)
                        return LVSS_RESULT_OK;
                size = wal_size(d);
                if (size == 0) {
                        if (attempts > 1)
                                wu_log("%s: locked with an empty WAL after %u attempts", d->path, attempts);
                        return LVSS_RESULT_OK;
                }
                if (size < 0) {
                        snprintf(why, sizeof why, "its -wal file cannot be examined");
                        wu_log("cannot examine %s: %s", d->wal_path, strerror(errno));
                        break;
                }
                /* A writer committed between the checkpoint and our lock: start again. */
                snprintf(why, sizeof why, "writers kept filling the WAL between checkpoint and lock");
                if (db_exec(d, "ROLLBACK") != SQLITE_OK)
                        break;
                d->locked = false;
        }
        wu_log("cannot quiesce %s before the deadline (%u attempts): %s", d->path, attempts, why);
        db_close(d);
        return LVSS_RESULT_RETRYABLE;
}

/* Before a restore: makes the live database self-contained (WAL checkpointed and removed, hot
 * journal rolled back) so that nothing of it is replayed over the restored files. */
static lvss_result db_settle(struct db *d, uint64_t end) {
        char mode[32];
        int rc;

        if (access(d->path, F_OK) < 0)
                return LVSS_RESULT_OK; /* gone: nothing to settle */
        if (db_open(d, MIN(end, wu_now_ms() + 1000)) != SQLITE_OK)
                return LVSS_RESULT_NON_RETRYABLE;
        if (!db_journal_mode(d, mode, sizeof mode)) {
                rc = sqlite3_errcode(d->conn);
        } else if (strcmp(mode, "wal") == 0) {
                rc = sqlite3_wal_checkpoint_v2(d->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        } else {
                rc = db_exec(d, "BEGIN IMMEDIATE");
                if (rc == SQLITE_OK)
                        rc = db_exec(d, "ROLLBACK");
        }
        if (rc != SQLITE_OK) {
                lvss_result res = rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? LVSS_RESULT_VETO
                                                                           : LVSS_RESULT_NON_RETRYABLE;
                wu_log("cannot settle %s before the restore: %s%s", d->path, sqlite3_errmsg(d->conn),
                       res == LVSS_RESULT_VETO ? " (the application still uses it: stop it first)" : "");
                db_close(d);
                return res;
        }
        db_close(d); /* the last connection of a WAL database removes the -wal and -shm */
        return LVSS_RESULT_OK;
}

/* ---- events ------------------------------------------------------------------------------------- */

static bool strv_contains(const char *const *l, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i], s) == 0)
                        return true;
        return false;
}

static size_t strv_length(const char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static void selection_clear(struct sqlite_writer *s) {
        for (size_t i = 0; i < s->n_selected; i++)
                free(s->selected[i]);
        free(s->selected);
        free(s->set_id);
        s->selected = NULL;
        s->n_selected = 0;
        s->set_id = NULL;
}

/* Is D part of the event? The components the event names; if it names none, those named at the
 * set's PrepareForBackup; if none were, every database (freezing one too many is harmless, one
 * too few is not). */
static bool db_selected(struct sqlite_writer *s, const struct lvss_event_info *info, const struct db *d) {
        size_t n = strv_length(info->components);

        if (n > 0)
                return strv_contains(info->components, n, d->component);
        if (s->n_selected > 0 && s->set_id && info->set_id && strcmp(s->set_id, info->set_id) == 0)
                return strv_contains((const char *const *) s->selected, s->n_selected, d->component);
        return true;
}

static lvss_result on_prepare_for_backup(lvss_writer *w, const struct lvss_event_info *info,
                                         void *userdata) {
        struct sqlite_writer *s = userdata;
        size_t n = strv_length(info->components);

        selection_clear(s);
        s->set_id = strdup(info->set_id ? info->set_id : "");
        s->selected = calloc(n + 1, sizeof *s->selected);
        if (!s->set_id || !s->selected) {
                selection_clear(s);
                return LVSS_RESULT_OUT_OF_RESOURCES;
        }
        for (size_t i = 0; i < n; i++) {
                s->selected[i] = strdup(info->components[i]);
                if (!s->selected[i]) {
                        selection_clear(s);
                        return LVSS_RESULT_OUT_OF_RESOURCES;
                }
                s->n_selected++;
        }
        return LVSS_RESULT_OK;
}

static void release_all(struct sqlite_writer *s) {
        for (size_t i = s->n_dbs; i > 0; i--)
                db_close(&s->dbs[i - 1]);
}

static lvss_result on_freeze(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct sqlite_writer *s = userdata;
        uint64_t start = wu_now_ms(), end = wu_event_end(info);
        size_t n = 0;

        release_all(s); /* a freeze never thawed (cannot happen with lvssd) */
        for (size_t i = 0; i < s->n_dbs; i++) {
                struct db *d = &s->dbs[i];
                lvss_result r;

                if (!db_selected(s, info, d))
                        continue;
                r = db_freeze(d, end);
                if (r != LVSS_RESULT_OK) {
                        release_all(s);
                        return r;
                }
                n++;
        }
        wu_log("set %s: %zu database(s) quiesced in %" PRIu64 " ms", info->set_id ? info->set_id : "?", n,
               wu_now_ms() - start);
        return LVSS_RESULT_OK;
}

static lvss_result on_thaw(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        release_all(userdata);
        return LVSS_RESULT_OK;
}

static lvss_result on_pre_restore(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct sqlite_writer *s = userdata;
        uint64_t end = wu_event_end(info);
        lvss_result res = LVSS_RESULT_OK;

        release_all(s);
        for (size_t i = 0; i < s->n_dbs && res == LVSS_RESULT_OK; i++)
                if (db_selected(s, info, &s->dbs[i]))
                        res = db_settle(&s->dbs[i], end);
        return res;
}

/* ---- setup -------------------------------------------------------------------------------------- */

/* Checks that ARG is an SQLite database we may write, and fills D; an exit code on failure. Only
 * the header is read: opening it through SQLite would need a lock, which a busy application may
 * keep from us for a long time. */
static int db_init(struct db *d, const char *arg) {
        static const char magic[16] = "SQLite format 3";
        char header[16];
        _cleanup_close_ int fd = -1;
        struct stat st;
        ssize_t n;

        d->path = realpath(arg, NULL);
        if (!d->path)
                return wu_usage_error("cannot use the database %s: %s; give the path of an existing SQLite "
                                      "database",
                                      arg, strerror(errno));
        if (stat(d->path, &st) < 0 || !S_ISREG(st.st_mode))
                return wu_usage_error(
                        "cannot use the database %s: it is not a regular file; give the path of "
                        "an SQLite database file",
                        arg);
        if (asprintf(&d->wal_path, "%s-wal", d->path) < 0)
                return wu_usage_error("out of memory");
        fd = open(d->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                wu_log("cannot open the database %s for writing: %s; run the writer as a user who may "
                       "write it",
                       arg, strerror(errno));
                return EXIT_FAILURE;
        }
        n = pread(fd, header, sizeof header, 0);
        if (n < 0) {
                wu_log("cannot read the database %s: %s", arg, strerror(errno));
                return EXIT_FAILURE;
        }
        /* An empty file is an empty database to SQLite. */
        if (n != 0 && (n != (ssize_t) sizeof header || memcmp(header, magic, sizeof header) != 0))
                return wu_usage_error("%s is not an SQLite database (no SQLite header): give the path of a "
                                      "database file",
                                      arg);
        return 0;
}

/* Adds D's component to the metadata, named after its path (made unique); an exit code on failure. */
static int db_describe(struct db *d, lvss_wmd *wmd) {
        _cleanup_free_ char *copy1 = NULL, *copy2 = NULL, *name = NULL, *spec = NULL;
        const char *dir, *file;
        lvss_wmd_component *c = NULL;
        int r;

        copy1 = strdup(d->path);
        copy2 = strdup(d->path);
        if (!copy1 || !copy2)
                return wu_usage_error("out of memory");
        dir = dirname(copy1);
        file = basename(copy2);
        r = wu_add_path_component(wmd, LVSS_WMD_COMPONENT_DATABASE, LOGICAL_PATH, d->path, &c, &name);
        if (r == -ENOMEM || (r >= 0 && asprintf(&d->component, LOGICAL_PATH "/%s", name) < 0))
                return wu_usage_error("out of memory");
        if (r >= 0)
                r = lvss_wmd_component_add_files(c, LVSS_WMD_DATABASE_FILES, dir, file, false, BACKUP_TYPES);
        if (r >= 0 && asprintf(&spec, "%s-wal", file) >= 0) {
                r = lvss_wmd_component_add_files(c, LVSS_WMD_LOG_FILES, dir, spec, false, BACKUP_TYPES);
                free(spec);
                spec = NULL;
        }
        if (r >= 0 && asprintf(&spec, "%s-journal", file) >= 0) {
                r = lvss_wmd_component_add_files(c, LVSS_WMD_LOG_FILES, dir, spec, false, BACKUP_TYPES);
                free(spec);
                spec = NULL;
        }
        if (r >= 0 && asprintf(&spec, "%s-shm", file) >= 0)
                r = lvss_wmd_add_exclude(wmd, dir, spec, false);
        if (r < 0)
                return wu_usage_error("cannot describe the database %s in the writer's metadata: %s; give a "
                                      "shorter path without control characters",
                                      d->path, strerror(-r));
        return 0;
}

static void help(void) {
        printf("Usage: " PROG
               " [--name NAME] [--service NAME] [--freeze-timeout SEC] [--socket PATH] DB...\n\n"
               "An lvss writer for SQLite databases: at Freeze it checkpoints each database's WAL and\n"
               "holds its write lock until Thaw, so that every shadow holds the databases whole,\n"
               "with nothing to replay.\n\n"
               "Options:\n"
               "      --name NAME           the writer's name (default sqlite)\n"
               "      --service NAME        the service to stop for a restore (default application)\n"
               "      --freeze-timeout SEC  longest Freeze to Thaw window, 0.1 to 60 (default 60)\n"
               "      --socket PATH         lvssd's socket (default $LVSS_SOCKET, else "
               "/run/lvss/lvssd.sock)\n"
               "  -h, --help                show this help\n"
               "      --version             show the version\n\n"
               "Exit codes: 0 stopped by a signal, 1 failure (lvssd not reachable or gone), 2 usage.\n");
}

int main(int argc, char **argv) {
        enum { OPT_NAME = 0x100, OPT_SERVICE, OPT_FREEZE_TIMEOUT, OPT_SOCKET, OPT_VERSION };
        static const struct wu_callback callbacks[] = {
                { LVSS_EVENT_PREPARE_FOR_BACKUP, on_prepare_for_backup },
                { LVSS_EVENT_FREEZE, on_freeze },
                { LVSS_EVENT_THAW, on_thaw },
                { LVSS_EVENT_ABORT, on_thaw },
                { LVSS_EVENT_PRE_RESTORE, on_pre_restore },
        };
        static const struct option options[] = {
                { "name", required_argument, NULL, OPT_NAME },
                { "service", required_argument, NULL, OPT_SERVICE },
                { "freeze-timeout", required_argument, NULL, OPT_FREEZE_TIMEOUT },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        const char *name = "sqlite", *service = "application", *socket_path = NULL;
        uint32_t freeze_ms = LVSS_WRITER_FREEZE_TIMEOUT_MAX_MS;
        struct sqlite_writer s = {};
        lvss_writer *w = NULL;
        lvss_wmd *wmd;
        int c, r, code = EXIT_FAILURE;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_SERVICE:
                        service = optarg;
                        break;
                case OPT_FREEZE_TIMEOUT:
                        if (!wu_parse_seconds(optarg, &freeze_ms))
                                return wu_usage_error(
                                        "invalid --freeze-timeout '%s': give seconds from 0.1 to 60",
                                        optarg);
                        break;
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
        if (optind >= argc)
                return wu_usage_error(
                        "no database given: name one or more SQLite database files after the options");

        s.dbs = calloc((size_t) (argc - optind), sizeof *s.dbs);
        if (!s.dbs)
                return wu_usage_error("out of memory");
        for (int i = optind; i < argc; i++) {
                r = db_init(&s.dbs[s.n_dbs++], argv[i]);
                if (r != 0) {
                        code = r;
                        goto out;
                }
                for (size_t k = 0; k + 1 < s.n_dbs; k++)
                        if (strcmp(s.dbs[k].path, s.dbs[s.n_dbs - 1].path) == 0) {
                                code = wu_usage_error(
                                        "the database %s is given twice: name each database once",
                                        s.dbs[k].path);
                                goto out;
                        }
        }

        r = wu_writer_new(&(struct wu_identity){ .name = name,
                                                 .class_id = CLASS_ID,
                                                 .level = LVSS_LEVEL_BACK_END,
                                                 .freeze_timeout_ms = freeze_ms,
                                                 .usage = LVSS_WMD_USAGE_USER_DATA,
                                                 .source = LVSS_WMD_SOURCE_TRANSACTED_DB,
                                                 .backup_types = BACKUP_TYPES },
                          &w);
        if (r != 0) {
                code = r;
                goto out;
        }
        wmd = lvss_writer_metadata(w);
        r = lvss_wmd_set_restore_method(wmd, LVSS_WMD_RESTORE_STOP_RESTORE_START, service, NULL,
                                        LVSS_WMD_WRITER_RESTORE_ALWAYS, false);
        if (r < 0) {
                code = wu_usage_error(
                        "invalid --service '%s': give a service name without control characters", service);
                goto out;
        }
        for (size_t i = 0; i < s.n_dbs; i++) {
                r = db_describe(&s.dbs[i], wmd);
                if (r != 0) {
                        code = r;
                        goto out;
                }
        }
        if (wu_set_callbacks(w, callbacks, ELEMENTSOF(callbacks), &s) < 0)
                goto out;

        code = wu_serve(w, socket_path, name, "%zu database(s)", s.n_dbs);

out:
        release_all(&s); /* never leave a database locked */
        lvss_writer_free(w);
        for (size_t i = 0; i < s.n_dbs; i++) {
                free(s.dbs[i].path);
                free(s.dbs[i].wal_path);
                free(s.dbs[i].component);
        }
        free(s.dbs);
        selection_clear(&s);
        return code;
}
