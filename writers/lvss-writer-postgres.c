/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-writer-postgres: a back-end writer for one PostgreSQL cluster (10 or later), through
 * libpq.
 *
 * Its one component (type database; logical path "PostgreSQL", named after the data directory)
 * lists the data directory and the tablespaces as database files, and the WAL directory (pg_wal,
 * symbolic link resolved: it may be on another volume, which the set must then include too) as
 * log files; what pg_basebackup leaves out is excluded (postmaster.pid, pg_internal.init, the
 * contents of pg_stat_tmp, pg_subtrans, ...).
 *
 * The sequence:
 *   PrepareForSnapshot  connects (a new session, kept open) and starts a non-exclusive backup,
 *                       pg_backup_start('lvss SET_ID', fast => true): the checkpoint it asks
 *                       for is done before the freeze window opens.
 *   Freeze, Thaw        nothing: a snapshot of a running cluster is crash-consistent, the more
 *                       so in backup mode (full-page writes forced).
 *   PostSnapshot        pg_backup_stop(wait_for_archive => false) on the same session; the
 *                       backup label it returns (and the tablespace map, if any) becomes the
 *                       component's backup metadata; the session is closed.
 *   Abort, BackupComplete, BackupShutdown, and SIGTERM
 *                       pg_backup_stop if a backup is still on, so that the server never stays in
 *                       backup mode because of lvss (liblvss also calls Abort when the freeze
 *                       window passes or lvssd goes away; and were this process killed, the
 *                       server ends the backup itself when the session drops).
 *   PreRestore          vetoes while a postmaster runs on the data directory.
 *   PostRestore         with --archive-recovery: writes backup_label (and tablespace_map) from
 *                       the backup metadata, and recovery.signal, into the data directory.
 *
 * Why PostRestore writes no backup_label by default: a label makes recovery start at the
 * backup's checkpoint and insist on replaying WAL up to the end-of-backup record, which
 * pg_backup_stop writes after the snapshot; the shadow's own pg_wal never holds it, so a restore
 * from the shadow alone with a label fails ("WAL ends before end of online backup"). Without a
 * label PostgreSQL runs crash recovery from the last checkpoint in pg_control, which the shadow's
 * pg_wal covers, since data and WAL are taken at one instant. The label is for archive recovery
 * (point in time, with restore_command and the WAL archive): --archive-recovery.
 *
 * Every query runs with the event's deadline: past it the query is cancelled and the event
 * answered Timeout. One thread: callbacks run one at a time on lvss_writer_run()'s thread.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <lvss/writer.h>

#include "common/macro.h"
#include "writers/writer-util.h"

#define PROG "lvss-writer-postgres"
#define CLASS_ID "9d3b6f21-7e4a-4c05-b8d2-0f6e1a9c5b73"
#define LOGICAL_PATH "PostgreSQL"
#define BACKUP_TYPES (LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_COPY)
#define TABLESPACE_MAP_MARK "-- lvss: tablespace_map --\n"

const char wu_program[] = PROG;

struct pg_writer {
        char *pgdata; /* absolute, symbolic links resolved */
        const char *conninfo;
        char *component; /* "PostgreSQL/NAME" */
        bool archive_recovery;
        PGconn *conn; /* the session of the backup in progress */
        bool in_backup;
        int server_version;
        char *set_id; /* of the backup in progress */
};

enum query_status { QUERY_OK, QUERY_ERROR, QUERY_TIMEOUT, QUERY_CONNECTION };

/* MSG (libpq's, which ends in a newline and may span lines) on one line (static buffer). */
static const char *one_line(const char *msg) {
        static char buf[512];
        size_t n = 0;

        for (; *msg && n + 1 < sizeof buf; msg++) {
                char ch = *msg == '\n' || *msg == '\t' ? ' ' : *msg;
                if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
                        continue; /* one blank at most, none leading */
                buf[n++] = ch;
        }
        while (n > 0 && buf[n - 1] == ' ')
                n--;
        buf[n] = '\0';
        return buf;
}

static const char *pg_error(const PGconn *c) {
        return one_line(c ? PQerrorMessage(c) : "out of memory");
}

/* ---- the session -------------------------------------------------------------------------------- */

/* A new session from CONNINFO (tagged with our application name unless CONNINFO names one), the
 * connection attempt bounded by END. NULL on failure (said on stderr). */
static PGconn *pg_connect(const char *conninfo, uint64_t end) {
        char timeout[16];
        uint64_t left = end > wu_now_ms() ? end - wu_now_ms() : 0;
        const char *keys[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
        const char *values[] = { timeout, PROG, conninfo, NULL };
        PGconn *c;

        /* libpq counts whole seconds, at least 2. */
        snprintf(timeout, sizeof timeout, "%" PRIu64, MAX((uint64_t) 2, MIN(left / 1000, (uint64_t) 60)));
        c = PQconnectdbParams(keys, values, 1);
        if (!c || PQstatus(c) != CONNECTION_OK) {
                /* Not the connection string itself: it may hold a password. */
                wu_log("cannot connect to PostgreSQL: %s; start it, or give the right --conninfo",
                       pg_error(c));
                PQfinish(c);
                return NULL;
        }
        return c;
}

/* Waits for the whole answer of what was sent on C until END: QUERY_TIMEOUT (after cancelling
 * it) or QUERY_CONNECTION if none came, else the first result in *RET. */
static enum query_status pg_wait(PGconn *c, uint64_t end, PGresult **ret) {
        PGresult *first = NULL, *r;

        for (;;) {
                while (PQisBusy(c)) {
                        struct pollfd p = { .fd = PQsocket(c), .events = POLLIN };
                        uint64_t now = wu_now_ms();

                        if (now >= end) {
                                char err[256];
                                PGcancel *cancel = PQgetCancel(c);

                                if (cancel) {
                                        (void) PQcancel(cancel, err, sizeof err);
                                        PQfreeCancel(cancel);
                                }
                                /* The server answers a cancel at once; drain, but not for ever. */
                                end = now + 5000;
                                while (PQisBusy(c) && wu_now_ms() < end) {
                                        p.revents = 0;
                                        if (poll(&p, 1, 100) < 0 && errno != EINTR)
                                                break;
                                        if (!PQconsumeInput(c))
                                                break;
                                }
                                if (!PQisBusy(c))
                                        while ((r = PQgetResult(c)))
                                                PQclear(r);
                                PQclear(first);
                                return QUERY_TIMEOUT;
                        }
                        if (poll(&p, 1, (int) MIN(end - now, (uint64_t) INT_MAX)) < 0 && errno != EINTR) {
                                PQclear(first);
                                return QUERY_CONNECTION;
                        }
                        if (!PQconsumeInput(c)) {
                                PQclear(first);
                                return QUERY_CONNECTION;
                        }
                }
                r = PQgetResult(c);
                if (!r)
                        break;
                if (!first)
                        first = r;
                else
                        PQclear(r);
        }
        if (!first)
                return QUERY_CONNECTION;
        *ret = first;
        return QUERY_OK;
}

/* Runs SQL with the text parameters PARAMS on C, by END; on QUERY_OK *RET holds its rows. */
static enum query_status pg_query(PGconn *c, const char *sql, int n_params, const char *const *params,
                                  uint64_t end, PGresult **ret) {
        PGresult *res = NULL;
        enum query_status st;

        if (!PQsendQueryParams(c, sql, n_params, NULL, params, NULL, NULL, 0))
                return QUERY_CONNECTION;
        st = pg_wait(c, end, &res);
        if (st != QUERY_OK)
                return st;
        if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
                wu_log("%s: %s", sql, one_line(PQresultErrorMessage(res)));
                PQclear(res);
                return PQstatus(c) == CONNECTION_OK ? QUERY_ERROR : QUERY_CONNECTION;
        }
        *ret = res;
        return QUERY_OK;
}

static lvss_result result_of(enum query_status st) {
        switch (st) {
        case QUERY_OK:
                return LVSS_RESULT_OK;
        case QUERY_TIMEOUT:
                return LVSS_RESULT_TIMEOUT;
        case QUERY_CONNECTION:
                return LVSS_RESULT_RETRYABLE;
        case QUERY_ERROR:
        default:
                return LVSS_RESULT_NON_RETRYABLE;
        }
}

static void session_close(struct pg_writer *p) {
        PQfinish(p->conn);
        p->conn = NULL;
        p->in_backup = false;
        free(p->set_id);
        p->set_id = NULL;
}

/* Ends the backup in progress (if any) and closes its session. On success with RET_DATA, the
 * backup metadata to keep: the label file, then the tablespace map if there is one. */
static lvss_result backup_stop(struct pg_writer *p, uint64_t end, char **ret_data) {
        const char *sql =
                p->server_version >= 150000
                        ? "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(wait_for_archive => false)"
                        : "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, false)";
        PGresult *res = NULL;
        enum query_status st;
        lvss_result out = LVSS_RESULT_OK;

        if (!p->conn || !p->in_backup) {
                session_close(p);
                return LVSS_RESULT_OK;
        }
        st = pg_query(p->conn, sql, 0, NULL, end, &res);
        if (st != QUERY_OK) {
                wu_log("set %s: cannot stop the backup; closing its session, which ends it", p->set_id);
                session_close(p);
                return result_of(st);
        }
        if (PQntuples(res) != 1 || PQnfields(res) != 3) {
                wu_log("set %s: %s answered %d rows of %d columns, not one of 3", p->set_id, sql,
                       PQntuples(res), PQnfields(res));
                out = LVSS_RESULT_NON_RETRYABLE;
        } else {
                const char *label = PQgetvalue(res, 0, 1),
                           *map = PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2);

                wu_log("set %s: backup stopped at %s", p->set_id, PQgetvalue(res, 0, 0));
                if (ret_data &&
                    asprintf(ret_data, "%s%s%s", label, *map ? TABLESPACE_MAP_MARK : "", map) < 0) {
                        *ret_data = NULL;
                        out = LVSS_RESULT_OUT_OF_RESOURCES;
                }
        }
        PQclear(res);
        session_close(p);
        return out;
}

/* ---- events ------------------------------------------------------------------------------------- */

static lvss_result on_prepare_for_snapshot(lvss_writer *w, const struct lvss_event_info *info,
                                           void *userdata) {
        struct pg_writer *p = userdata;
        const char *sql = p->server_version >= 150000 ? "SELECT pg_backup_start($1, fast => true)"
                                                      : "SELECT pg_start_backup($1, true, false)";
        uint64_t start = wu_now_ms(), end = wu_event_end(info);
        _cleanup_free_ char *label = NULL;
        const char *params[1];
        PGresult *res = NULL;
        enum query_status st;

        if (p->in_backup) { /* a backup of an earlier set that nothing ended (cannot happen with lvssd) */
                wu_log("ending the backup of set %s, left over", p->set_id);
                (void) backup_stop(p, end, NULL);
        }
        session_close(p);
        if (asprintf(&label, "lvss %s", info->set_id ? info->set_id : "") < 0 ||
            !(p->set_id = strdup(info->set_id ? info->set_id : "")))
                return LVSS_RESULT_OUT_OF_RESOURCES;
        p->conn = pg_connect(p->conninfo, end);
        if (!p->conn) {
                session_close(p);
                return LVSS_RESULT_RETRYABLE;
        }
        params[0] = label;
        st = pg_query(p->conn, sql, 1, params, end, &res);
        if (st != QUERY_OK) {
                wu_log("set %s: cannot start the backup (%s)", p->set_id,
                       st == QUERY_TIMEOUT ? "its checkpoint took past the deadline" : "see above");
                session_close(p); /* ends a backup started meanwhile */
                return result_of(st);
        }
        wu_log("set %s: backup started at %s after %" PRIu64 " ms", p->set_id,
               PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "?", wu_now_ms() - start);
        PQclear(res);
        p->in_backup = true;
        return LVSS_RESULT_OK;
}

static lvss_result on_post_snapshot(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct pg_writer *p = userdata;
        _cleanup_free_ char *data = NULL;
        lvss_result res;
        int r;

        if (!p->in_backup) {
                wu_log("set %s: no backup in progress at PostSnapshot (it was aborted): no backup label",
                       info->set_id ? info->set_id : "?");
                return LVSS_RESULT_RETRYABLE;
        }
        res = backup_stop(p, wu_event_end(info), &data);
        if (res != LVSS_RESULT_OK)
                return res;
        r = lvss_writer_set_backup_metadata(w, p->component, data);
        if (r < 0) {
                wu_log("cannot keep the backup label as the backup metadata of %s: %s", p->component,
                       strerror(-r));
                return LVSS_RESULT_NON_RETRYABLE;
        }
        return LVSS_RESULT_OK;
}

static lvss_result on_abort(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct pg_writer *p = userdata;

        if (p->in_backup)
                wu_log("set %s: %s: ending the backup", p->set_id, lvss_event_to_string(info->event));
        return backup_stop(p, wu_event_end(info), NULL);
}

/* The PID in DATADIR/postmaster.pid if that process lives; 0 if none. */
static pid_t running_postmaster(const char *pgdata) {
        _cleanup_free_ char *path = NULL;
        long pid = 0;
        FILE *f;

        if (asprintf(&path, "%s/postmaster.pid", pgdata) < 0)
                return 0;
        f = fopen(path, "re");
        if (!f)
                return 0;
        if (fscanf(f, "%ld", &pid) != 1)
                pid = 0;
        fclose(f);
        if (pid <= 0 || pid > INT_MAX)
                return 0;
        return kill((pid_t) pid, 0) == 0 || errno == EPERM ? (pid_t) pid : 0;
}

static lvss_result on_pre_restore(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct pg_writer *p = userdata;
        pid_t pid = running_postmaster(p->pgdata);

        if (pid > 0) {
                wu_log("PostgreSQL still runs on %s (postmaster %ld): stop the service before restoring",
                       p->pgdata, (long) pid);
                return LVSS_RESULT_VETO;
        }
        return LVSS_RESULT_OK;
}

/* Writes DATA into DIR/NAME (mode 0600, owned as DIR), durably. */
static int write_file(const char *dir, const char *name, const char *data, size_t len) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        struct stat st;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        if (stat(dir, &st) < 0)
                return negative_errno();
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        /* A file left there keeps its owner and mode through O_CREAT: set both. */
        if (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, 0600) < 0)
                return negative_errno();
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
                data += n;
                len -= (size_t) n;
        }
        if (fsync(fd) < 0)
                return negative_errno();
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

static lvss_result on_post_restore(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        struct pg_writer *p = userdata;
        const char *data, *map;
        int r;

        if (!p->archive_recovery)
                return LVSS_RESULT_OK; /* crash recovery at the next start: nothing to write */
        r = lvss_writer_get_backup_metadata(w, p->component, &data);
        if (r < 0) {
                wu_log("no backup label was kept for %s: cannot prepare archive recovery (restore without "
                       "--archive-recovery to let PostgreSQL run crash recovery)",
                       p->component);
                return LVSS_RESULT_NON_RETRYABLE;
        }
        map = strstr(data, TABLESPACE_MAP_MARK);
        r = write_file(p->pgdata, "backup_label", data, map ? (size_t) (map - data) : strlen(data));
        if (r >= 0 && map) {
                map += strlen(TABLESPACE_MAP_MARK);
                r = write_file(p->pgdata, "tablespace_map", map, strlen(map));
        }
        if (r >= 0)
                r = write_file(p->pgdata, "recovery.signal", "", 0);
        if (r < 0) {
                wu_log("cannot write the recovery files into %s: %s", p->pgdata, strerror(-r));
                return LVSS_RESULT_NON_RETRYABLE;
        }
        wu_log("wrote backup_label%s and recovery.signal into %s: set restore_command before starting "
               "PostgreSQL",
               map ? ", tablespace_map" : "", p->pgdata);
        return LVSS_RESULT_OK;
}

/* ---- setup -------------------------------------------------------------------------------------- */

/* The component: data directory, tablespaces, WAL directory, exclusions. An exit code on failure. */
static int describe_cluster(struct pg_writer *p, lvss_wmd *wmd) {
        static const char *const excluded_files[] = { "postmaster.pid", "postmaster.opts", "backup_label",
                                                      "tablespace_map", "backup_manifest" };
        static const char *const emptied_dirs[] = { "pg_stat_tmp", "pg_replslot", "pg_dynshmem",
                                                    "pg_notify",   "pg_serial",   "pg_snapshots",
                                                    "pg_subtrans" };
        _cleanup_free_ char *name = NULL, *wal_link = NULL, *wal = NULL, *tblspc = NULL;
        lvss_wmd_component *c;
        DIR *d;
        struct dirent *de;
        int r;

        name = wu_name_from_path(p->pgdata);
        if (!name || asprintf(&p->component, LOGICAL_PATH "/%s", name) < 0 ||
            asprintf(&wal_link, "%s/pg_wal", p->pgdata) < 0 ||
            asprintf(&tblspc, "%s/pg_tblspc", p->pgdata) < 0)
                return wu_usage_error("out of memory");
        wal = realpath(wal_link, NULL);
        if (!wal)
                return wu_usage_error(
                        "cannot resolve the WAL directory %s: %s; give the data directory of a "
                        "PostgreSQL 10 or later cluster",
                        wal_link, strerror(errno));
        r = lvss_wmd_add_component(wmd, LVSS_WMD_COMPONENT_DATABASE, LOGICAL_PATH, name, p->pgdata, true,
                                   true, &c);
        if (r >= 0)
                r = lvss_wmd_component_add_files(c, LVSS_WMD_DATABASE_FILES, p->pgdata, "*", true,
                                                 BACKUP_TYPES);
        d = r >= 0 ? opendir(tblspc) : NULL;
        while (d && r >= 0 && (de = readdir(d))) {
                _cleanup_free_ char *link = NULL, *target = NULL;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&link, "%s/%s", tblspc, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                target = realpath(link, NULL);
                if (!target) {
                        wu_log("note: the tablespace %s does not resolve (%s): left out", link,
                               strerror(errno));
                        continue;
                }
                r = lvss_wmd_component_add_files(c, LVSS_WMD_DATABASE_FILES, target, "*", true,
                                                 BACKUP_TYPES);
        }
        if (d)
                closedir(d);
        if (r >= 0)
                r = lvss_wmd_component_add_files(c, LVSS_WMD_LOG_FILES, wal, "*", true, BACKUP_TYPES);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(excluded_files); i++)
                r = lvss_wmd_add_exclude(wmd, p->pgdata, excluded_files[i], false);
        if (r >= 0)
                r = lvss_wmd_add_exclude(wmd, p->pgdata, "pg_internal.init", true);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(emptied_dirs); i++) {
                _cleanup_free_ char *dir = NULL;

                if (asprintf(&dir, "%s/%s", p->pgdata, emptied_dirs[i]) < 0)
                        r = -ENOMEM;
                else
                        r = lvss_wmd_add_exclude(wmd, dir, "*", true);
        }
        if (r < 0)
                return wu_usage_error(
                        "cannot describe the cluster %s in the writer's metadata: %s; give a shorter "
                        "path without control characters",
                        p->pgdata, strerror(-r));
        return 0;
}

/* Connects once to check that CONNINFO reaches the cluster of --pgdata. An exit code on failure. */
static int check_server(struct pg_writer *p) {
        PGconn *c = pg_connect(p->conninfo, wu_now_ms() + 10000);
        PGresult *res = NULL;
        _cleanup_free_ char *served = NULL;
        int code = 0;

        if (!c)
                return EXIT_FAILURE;
        p->server_version = PQserverVersion(c);
        if (p->server_version < 100000) {
                wu_log("the server is PostgreSQL %d.%d: this writer needs PostgreSQL 10 or later",
                       p->server_version / 10000, p->server_version / 100 % 100);
                PQfinish(c);
                return EXIT_FAILURE;
        }
        if (pg_query(c, "SELECT current_setting('data_directory')", 0, NULL, wu_now_ms() + 10000, &res) !=
                    QUERY_OK ||
            PQntuples(res) != 1) {
                wu_log("cannot ask the server for its data directory (%s): connect as a superuser or a "
                       "member of "
                       "pg_read_all_settings",
                       pg_error(c));
                PQclear(res);
                PQfinish(c);
                return EXIT_FAILURE;
        }
        served = realpath(PQgetvalue(res, 0, 0), NULL);
        if (!served || strcmp(served, p->pgdata) != 0) {
                wu_log("the server that --conninfo reaches serves the data directory %s, not %s: give the "
                       "--conninfo of the cluster of --pgdata",
                       PQgetvalue(res, 0, 0), p->pgdata);
                code = EXIT_FAILURE;
        }
        PQclear(res);
        PQfinish(c);
        return code;
}

static void help(void) {
        printf("Usage: " PROG " --pgdata DIR [--conninfo STR] [--name NAME] [--service NAME]\n"
               "                            [--archive-recovery] [--socket PATH]\n\n"
               "An lvss writer for a PostgreSQL cluster: it puts the cluster in backup mode\n"
               "(pg_backup_start, with its checkpoint) before each shadow copy set and ends it\n"
               "(pg_backup_stop) after, keeping the backup label as backup metadata.\n\n"
               "Options:\n"
               "      --pgdata DIR          the cluster's data directory (required)\n"
               "      --conninfo STR        libpq connection string of a superuser session\n"
               "                            (default: libpq's defaults and PG* variables)\n"
               "      --name NAME           the writer's name (default postgres)\n"
               "      --service NAME        the service to stop for a restore (default postgresql)\n"
               "      --archive-recovery    at PostRestore write backup_label and recovery.signal\n"
               "                            (for archive recovery; default: crash recovery)\n"
               "      --socket PATH         lvssd's socket (default $LVSS_SOCKET, else "
               "/run/lvss/lvssd.sock)\n"
               "  -h, --help                show this help\n"
               "      --version             show the version\n\n"
               "Exit codes: 0 stopped by a signal, 1 failure (PostgreSQL or lvssd not reachable), 2 "
               "usage.\n");
}

int main(int argc, char **argv) {
        enum {
                OPT_PGDATA = 0x100,
                OPT_CONNINFO,
                OPT_NAME,
                OPT_SERVICE,
                OPT_ARCHIVE,
                OPT_SOCKET,
                OPT_VERSION
        };
        static const struct wu_callback callbacks[] = {
                { LVSS_EVENT_PREPARE_FOR_SNAPSHOT, on_prepare_for_snapshot },
                { LVSS_EVENT_POST_SNAPSHOT, on_post_snapshot },
                { LVSS_EVENT_ABORT, on_abort },
                { LVSS_EVENT_BACKUP_COMPLETE, on_abort },
                { LVSS_EVENT_BACKUP_SHUTDOWN, on_abort },
                { LVSS_EVENT_PRE_RESTORE, on_pre_restore },
                { LVSS_EVENT_POST_RESTORE, on_post_restore },
        };
        static const struct option options[] = {
                { "pgdata", required_argument, NULL, OPT_PGDATA },
                { "conninfo", required_argument, NULL, OPT_CONNINFO },
                { "name", required_argument, NULL, OPT_NAME },
                { "service", required_argument, NULL, OPT_SERVICE },
                { "archive-recovery", no_argument, NULL, OPT_ARCHIVE },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        const char *name = "postgres", *service = "postgresql", *socket_path = NULL, *pgdata_arg = NULL;
        struct pg_writer p = { .conninfo = "" };
        _cleanup_free_ char *version_file = NULL, *procedure = NULL;
        lvss_writer *w = NULL;
        lvss_wmd *wmd;
        struct stat st;
        int c, r, code = EXIT_FAILURE;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case OPT_PGDATA:
                        pgdata_arg = optarg;
                        break;
                case OPT_CONNINFO:
                        p.conninfo = optarg;
                        break;
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_SERVICE:
                        service = optarg;
                        break;
                case OPT_ARCHIVE:
                        p.archive_recovery = true;
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
        if (optind < argc)
                return wu_usage_error("unexpected argument '%s': give the data directory with --pgdata",
                                      argv[optind]);
        if (!pgdata_arg)
                return wu_usage_error("missing --pgdata DIR: give the cluster's data directory");
        p.pgdata = realpath(pgdata_arg, NULL);
        if (!p.pgdata)
                return wu_usage_error("cannot use --pgdata %s: %s; give the cluster's data directory",
                                      pgdata_arg, strerror(errno));
        if (asprintf(&version_file, "%s/PG_VERSION", p.pgdata) < 0)
                return wu_usage_error("out of memory");
        if (stat(version_file, &st) < 0) {
                code = wu_usage_error(
                        "%s is not a PostgreSQL data directory (no PG_VERSION): give the cluster's data "
                        "directory with --pgdata",
                        pgdata_arg);
                goto out;
        }

        r = wu_writer_new(&(struct wu_identity){ .name = name,
                                                 .class_id = CLASS_ID,
                                                 .instance_name = p.pgdata,
                                                 .instance_option = "--pgdata",
                                                 .level = LVSS_LEVEL_BACK_END,
                                                 .usage = LVSS_WMD_USAGE_USER_DATA,
                                                 .source = LVSS_WMD_SOURCE_TRANSACTED_DB,
                                                 .backup_types = BACKUP_TYPES },
                          &w);
        if (r != 0) {
                code = r;
                goto out;
        }
        wmd = lvss_writer_metadata(w);
        if (asprintf(&procedure,
                     p.archive_recovery
                             ? "Stop %s, put the files back, set restore_command, start %s: PostgreSQL runs "
                               "archive recovery from the backup label."
                             : "Stop %s, put the files back, start %s: PostgreSQL runs crash recovery.",
                     service, service) < 0) {
                wu_log("out of memory");
                goto out;
        }
        r = lvss_wmd_set_restore_method(wmd, LVSS_WMD_RESTORE_STOP_RESTORE_START, service, procedure,
                                        LVSS_WMD_WRITER_RESTORE_ALWAYS, false);
        if (r < 0) {
                code = wu_usage_error(
                        "invalid --service '%s': give a service name without control characters", service);
                goto out;
        }
        r = describe_cluster(&p, wmd);
        if (r != 0) {
                code = r;
                goto out;
        }
        r = check_server(&p);
        if (r != 0) {
                code = r;
                goto out;
        }
        if (wu_set_callbacks(w, callbacks, ELEMENTSOF(callbacks), &p) < 0)
                goto out;

        code = wu_serve(w, socket_path, name, "cluster %s, PostgreSQL %d", p.pgdata,
                        p.server_version / 10000);

out:
        if (p.in_backup) { /* never leave the server in backup mode */
                wu_log("set %s: stopping: ending the backup", p.set_id);
                (void) backup_stop(&p, wu_now_ms() + 30000, NULL);
        }
        session_close(&p);
        lvss_writer_free(w);
        free(p.pgdata);
        free(p.component);
        return code;
}
