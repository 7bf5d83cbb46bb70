/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss backup, lvss backup verify, lvss restore: the requester side of VSS (issue 5), on lvssd's
 * sets and writers and on the backup library (backup/backup.h), which writes and reads the backup
 * directories.
 *
 * A backup, in VSS's order: gather every writer's metadata (GetWriterMetadata); create a set of
 * the targets in the backup context (lvssd drives the writers: PrepareForBackup ... PostSnapshot,
 * and gives back their backup metadata); expose each shadow read-only under a private temporary
 * directory; write the backup from the exposed trees; unexpose; CompleteBackup (BackupComplete if
 * it succeeded, BackupShutdown in any case); delete the set. Every way out (an error, Ctrl-C)
 * goes through the same clean-up: no exposure, no shadow, no partial backup directory stays.
 *
 * A restore: read the backup's document; tell each running writer with components in it
 * PreRestore (with their backup metadata); restore each target's tree (in place at the tree's
 * origin, or under --to ROOT/TARGET); PostRestore.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup.h"
#include "cli/cli-verbs.h"
#include "host/loopdev.h"
#include "host/mounts.h"
#include "include/lvss/wmd.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
        interrupted = sig;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* ---- progress ---------------------------------------------------------------------------------- */

struct progress {
        const char *what;
        uint64_t start;
        bool shown;
};

static int on_progress(const struct bkp_progress *p, void *userdata) {
        struct progress *pr = userdata;
        if (interrupted)
                return -EINTR;
        if (cli_arg_json || !isatty(STDERR_FILENO))
                return 0;
        uint64_t el = now_usec() - pr->start;
        if (el < 1000000u && !pr->shown)
                return 0;
        double secs = (double) el / 1e6, rate = secs > 0 ? (double) p->bytes_done / secs : 0;
        char eta[32] = "";
        if (p->bytes_total > p->bytes_done && rate > 0)
                snprintf(eta, sizeof eta, ", %.0f s left", (double) (p->bytes_total - p->bytes_done) / rate);
        int pct = p->bytes_total ? (int) (100.0 * (double) p->bytes_done / (double) p->bytes_total) : 0;
        fprintf(stderr, "\r%s: %3d%% %.1f/%.1f MiB, %llu files, %.1f MiB/s%s   ", pr->what, pct,
                (double) p->bytes_done / 1048576.0, (double) p->bytes_total / 1048576.0,
                (unsigned long long) p->files_done, rate / 1048576.0, eta);
        pr->shown = true;
        return 0;
}

static void progress_end(struct progress *pr) {
        if (pr->shown)
                fputs("\r\033[K", stderr);
}

/* ---- the writers ------------------------------------------------------------------------------- */

struct writer_info {
        char *name;
        char *xml; /* its metadata document (NULL if it did not give one) */
        lvss_wmd *wmd;
};

static void writer_infos_free(struct writer_info *w, size_t n) {
        for (size_t i = 0; w && i < n; i++) {
                free(w[i].name);
                free(w[i].xml);
                lvss_wmd_free(w[i].wmd);
        }
        free(w);
}

/* The names of the registered writers (NULL if none); 0 or an exit code. */
static int list_writer_names(sd_bus *bus, char ***ret) {
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_strv_ char **names = NULL;
        const char *name, *s;
        int r = cli_call(bus, "ListWriters", &reply, NULL);
        if (r != 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssssss)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(ssssssss)", &name, &s, &s, &s, &s, &s, &s, &s)) > 0)
                if (cli_strv_push(&names, name) < 0)
                        return cli_fail(CLI_EXIT_FAILED, "out of memory");
        if (r < 0)
                return cli_bus_parse_error(r);
        *ret = TAKE_PTR(names);
        return 0;
}

/* Every registered writer and its metadata; writers that do not answer are left with none. */
static int gather_writers(sd_bus *bus, struct writer_info **ret, size_t *ret_n) {
        _cleanup_strv_ char **names = NULL;
        struct writer_info *ws = NULL;
        size_t n = 0;
        int r = list_writer_names(bus, &names);
        if (r != 0)
                return r;
        for (char **x = names; x && *x; x++)
                n++;
        ws = calloc(n + 1, sizeof *ws);
        if (!ws)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        for (size_t i = 0; i < n; i++)
                ws[i].name = TAKE_PTR(names[i]);
        for (size_t i = 0; i < n; i++) {
                _cleanup_bus_message_ sd_bus_message *m = NULL, *rep = NULL;
                _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
                const char *xml;
                if (sd_bus_message_new_method_call(bus, &m, "org.lvss", "/org/lvss", "org.lvss.Manager1",
                                                   "GetWriterMetadata") < 0 ||
                    sd_bus_message_append(m, "s", ws[i].name) < 0)
                        continue;
                if (sd_bus_call(bus, m, 120 * CLI_USEC_PER_SEC, &e, &rep) < 0 ||
                    sd_bus_message_read(rep, "s", &xml) < 0) {
                        fprintf(stderr,
                                "lvss: warning: writer %s gave no metadata (%s); its components are "
                                "not recorded\n",
                                ws[i].name, e.message ? e.message : "no answer");
                        continue;
                }
                ws[i].xml = strdup(xml);
                if (ws[i].xml)
                        (void) lvss_wmd_from_xml(ws[i].xml, strlen(ws[i].xml), &ws[i].wmd);
        }
        *ret = ws;
        *ret_n = n;
        return 0;
}

/* ---- lvss backup ------------------------------------------------------------------------------- */

struct shadow_ref {
        char *id, *volume, *path, *mountpoint; /* mountpoint: where it is exposed (NULL: not) */
        uint64_t size; /* image backups: the volume's size and chunk size, */
        uint32_t chunk_size;
        uint8_t *changed; /* and the chunks changed since the base's shadow (chained backups) */
};

struct backup_run {
        sd_bus *bus;
        char *set; /* the set, once made */
        struct shadow_ref *shadows;
        size_t n_shadows;
        char *tmpdir; /* the exposures' parent */
        bool completed; /* CompleteBackup sent */
        bool keep_set; /* an image backup's set, kept for the next one's changed-block tracking */
};

/* Calls METHOD with TYPES..., quietly (clean-up): 0 or a negative errno. */
static int quiet_call(sd_bus *bus, const char *method, const char *types, ...) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        int r = sd_bus_message_new_method_call(bus, &m, "org.lvss", "/org/lvss", "org.lvss.Manager1",
                                               method);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call(bus, m, 300 * CLI_USEC_PER_SEC, &e, &reply);
        if (r < 0)
                fprintf(stderr, "lvss: warning: %s: %s\n", method, e.message ? e.message : strerror(-r));
        return r;
}

/* Undoes what the run made, newest first: exposures, the set (after BackupShutdown). */
static void backup_cleanup(struct backup_run *b, bool succeeded) {
        for (size_t i = b->n_shadows; i > 0; i--) {
                struct shadow_ref *s = &b->shadows[i - 1];
                if (s->mountpoint) {
                        (void) quiet_call(b->bus, "UnexposeShadow", "s", s->mountpoint);
                        (void) rmdir(s->mountpoint);
                }
                free(s->id);
                free(s->volume);
                free(s->path);
                free(s->mountpoint);
                free(s->changed);
        }
        free(b->shadows);
        b->shadows = NULL;
        b->n_shadows = 0;
        if (b->set) {
                if (!b->completed)
                        (void) quiet_call(b->bus, "CompleteBackup", "sb", b->set, (int) succeeded);
                if (!(succeeded && b->keep_set))
                        (void) quiet_call(b->bus, "DeleteShadowSet", "s", b->set);
                free(b->set);
                b->set = NULL;
        }
        if (b->tmpdir) {
                (void) rmdir(b->tmpdir);
                free(b->tmpdir);
                b->tmpdir = NULL;
        }
}

/* True if PATH is ROOT or below it (by text). */
static bool path_under(const char *path, const char *root) {
        size_t l = strlen(root);
        while (l > 1 && root[l - 1] == '/')
                l--;
        return strncmp(path, root, l) == 0 && (path[l] == 0 || path[l] == '/' || l == 1);
}

/* The components to record: of each writer that took part and is stable, those with a file set
 * under one of the targets' origins (all of them when an origin is not known), filtered by
 * --component WRITER/LOGICAL_PATH/NAME (or WRITER/LOGICAL_PATH for all components under it). */
static bool component_selected(char *const *filters, const char *writer, const char *lp, const char *name) {
        if (!filters || !filters[0])
                return true;
        for (char *const *f = filters; *f; f++) {
                size_t wl = strlen(writer);
                if (strncmp(*f, writer, wl) != 0 || (*f)[wl] != '/')
                        continue;
                const char *rest = *f + wl + 1;
                char full[2048];
                snprintf(full, sizeof full, "%s/%s", lp, name);
                if (strcmp(rest, full) == 0 || path_under(full, rest))
                        return true;
        }
        return false;
}

/* The directory of the backup lvssd's history gives as the base of a backup of TYPE of VOLUMES, in
 * *RET; or the exit code, reported (NotFound: none known). */
static int find_base(sd_bus *bus, char **volumes, int type, char **ret) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        const char *dir, *id;
        int r = cli_new_call(bus, "FindBackupBase", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append_strv(m, volumes);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", bkp_type_to_string(type));
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 0, NULL, &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "ss", &dir, &id);
        if (r < 0)
                return cli_bus_parse_error(r);
        if (!(*ret = strdup(dir)))
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        return 0;
}

/* Records the backup DOC, written in TO, in lvssd's history of VOLUMES. The backup is whole
 * whatever happens here: a failure is a warning. */
static void record_backup(sd_bus *bus, char **volumes, const struct bkp_document *doc, const char *to) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *dir = realpath(to, NULL);
        int r = dir ? 0 : negative_errno();
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, "org.lvss", "/org/lvss", "org.lvss.Manager1",
                                                   "RecordBackup");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, volumes);
        if (r >= 0)
                r = sd_bus_message_append(m, "ssst", doc->id, bkp_type_to_string(doc->type), dir,
                                          doc->created_usec);
        if (r >= 0)
                r = sd_bus_call(bus, m, 120 * CLI_USEC_PER_SEC, &e, &reply);
        if (r < 0)
                fprintf(stderr,
                        "lvss: warning: the backup is whole, but lvssd could not record it in its history "
                        "(%s): give --base %s to the next incremental or differential backup\n",
                        e.message ? e.message : strerror(-r), to);
}

/* The volume under MOUNTPOINT, if it is an lvss volume's file system (quietly: NULL otherwise). */
static char *volume_of_mount(sd_bus *bus, const char *mountpoint) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *v;
        if (sd_bus_message_new_method_call(bus, &m, "org.lvss", "/org/lvss", "org.lvss.Manager1",
                                           "ResolveTarget") < 0 ||
            sd_bus_message_append(m, "s", mountpoint) < 0 ||
            sd_bus_call(bus, m, 60 * CLI_USEC_PER_SEC, &e, &reply) < 0 ||
            sd_bus_message_read(reply, "s", &v) < 0)
                return NULL;
        return strdup(v);
}

/* The selected components (with --component, those; else every component of each writer that has
 * one on a target) may have files on volumes not named: add those volumes to the backup, as VSS's
 * requester adds the volumes of the components it selects. */
static int add_component_volumes(sd_bus *bus, struct writer_info *ws, size_t n_ws, char **filters,
                                 char ***volumes, char ***origins) {
        struct mount_entry **all = NULL;
        size_t n_all = 0;
        int r = mounts_read_all(&all, &n_all);
        if (r < 0)
                return cli_fail(CLI_EXIT_FAILED, "cannot read the mount table: %s", strerror(-r));
        for (size_t i = 0; r >= 0 && i < n_ws; i++) {
                lvss_wmd *wmd = ws[i].wmd;
                size_t n_c = wmd ? lvss_wmd_get_n_components(wmd) : 0;
                /* Is it one of the targets' writers? */
                bool ours = false;
                for (size_t c = 0; !filters && c < n_c && !ours; c++) {
                        const lvss_wmd_component *wc = lvss_wmd_get_component(wmd, c);
                        for (int kind = 0; kind < _LVSS_WMD_FILES_MAX && !ours; kind++)
                                for (size_t f = 0; f < lvss_wmd_component_get_n_files(wc, kind) && !ours;
                                     f++) {
                                        const char *fp = lvss_wmd_file_set_get_path(
                                                lvss_wmd_component_get_files(wc, kind, f));
                                        for (size_t v = 0; *origins && (*origins)[v] && !ours; v++)
                                                ours = (*origins)[v][0] && path_under(fp, (*origins)[v]);
                                }
                }
                for (size_t c = 0; c < n_c && r >= 0; c++) {
                        const lvss_wmd_component *wc = lvss_wmd_get_component(wmd, c);
                        const char *lp = lvss_wmd_component_get_logical_path(wc),
                                   *name = lvss_wmd_component_get_name(wc);
                        if (filters ? !component_selected(filters, ws[i].name, lp, name) : !ours)
                                continue;
                        for (int kind = 0; kind < _LVSS_WMD_FILES_MAX && r >= 0; kind++)
                                for (size_t f = 0; f < lvss_wmd_component_get_n_files(wc, kind) && r >= 0;
                                     f++) {
                                        const char *fp = lvss_wmd_file_set_get_path(
                                                lvss_wmd_component_get_files(wc, kind, f));
                                        const struct mount_entry *e = mounts_holding(all, n_all, fp);
                                        if (!e)
                                                continue;
                                        _cleanup_free_ char *vol = volume_of_mount(bus, e->mountpoint);
                                        bool known = !vol;
                                        for (size_t v = 0; vol && *volumes && (*volumes)[v]; v++)
                                                known |= strcmp((*volumes)[v], vol) == 0;
                                        if (known)
                                                continue;
                                        if (cli_strv_push(volumes, vol) < 0 ||
                                            cli_strv_push(origins, e->mountpoint) < 0)
                                                r = -ENOMEM;
                                        else if (!cli_arg_json)
                                                printf("Adding volume %s (%s): component %s/%s of writer %s "
                                                       "lives there.\n",
                                                       vol, e->mountpoint, lp, name, ws[i].name);
                                }
                }
        }
        mounts_free_all(all, n_all);
        return r < 0 ? cli_fail(CLI_EXIT_FAILED, "out of memory") : 0;
}

/* The writers' exclude file sets that lie in the tree whose origin is ORIGIN, relative to it, into a
 * new array (*RET, *RET_N; the strings of DIRS, a vector the caller frees, own the relative paths). */
static int tree_excludes(struct writer_info *ws, size_t n_ws, const char *origin, struct bkp_exclude **ret,
                         size_t *ret_n, char ***dirs) {
        struct bkp_exclude *x = NULL;
        size_t n = 0;
        for (size_t i = 0; origin && origin[0] && i < n_ws; i++)
                for (size_t k = 0; ws[i].wmd && k < lvss_wmd_get_n_excludes(ws[i].wmd); k++) {
                        const lvss_wmd_file_set *f = lvss_wmd_get_exclude(ws[i].wmd, k);
                        const char *path = lvss_wmd_file_set_get_path(f);
                        if (!path_under(path, origin))
                                continue;
                        size_t l = strlen(origin);
                        while (l > 1 && origin[l - 1] == '/')
                                l--;
                        const char *rel = path[l] == '/' ? path + l + 1 : ".";
                        if (l == 1) /* the origin is "/" */
                                rel = path[1] ? path + 1 : ".";
                        struct bkp_exclude *nx = realloc(x, (n + 1) * sizeof *nx);
                        if (!nx || cli_strv_push(dirs, rel[0] ? rel : ".") < 0) {
                                free(nx ? nx : x);
                                return -ENOMEM;
                        }
                        x = nx;
                        size_t last = 0;
                        while ((*dirs)[last + 1])
                                last++;
                        x[n++] = (struct bkp_exclude){ .dir = (*dirs)[last],
                                                       .filespec = lvss_wmd_file_set_get_filespec(f),
                                                       .recursive = lvss_wmd_file_set_get_recursive(f) };
                }
        *ret = x;
        *ret_n = n;
        return 0;
}

/* ---- image backups ---- */

/* Each shadow's volume size and chunk size (ListVolumes); 0 or the exit code. */
/* Volume NAME's size, chunk size and file (ListVolumes): 0 with *RET_FOUND, or the exit code. */
static int volume_lookup(sd_bus *bus, const char *name, bool *ret_found, uint64_t *ret_size, uint32_t *ret_chunk,
                         char **ret_path) {
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        const char *vname, *provider, *path;
        uint64_t size, used, allocated, max;
        uint32_t chunk, n_shadows;
        int r = cli_call(bus, "ListVolumes", &reply, "");
        if (r != 0)
                return r;
        *ret_found = false;
        r = sd_bus_message_enter_container(reply, 'a', "(sstusuttt)");
        while (r >= 0 && !*ret_found &&
               (r = sd_bus_message_read(reply, "(sstusuttt)", &vname, &provider, &size, &chunk, &path, &n_shadows,
                                        &used, &allocated, &max)) > 0)
                if (strcmp(vname, name) == 0) {
                        *ret_found = true;
                        if (ret_size)
                                *ret_size = size;
                        if (ret_chunk)
                                *ret_chunk = chunk;
                        if (ret_path && !(*ret_path = strdup(path)))
                                return cli_fail(CLI_EXIT_FAILED, "out of memory");
                }
        return r < 0 ? cli_bus_parse_error(r) : 0;
}

/* Each shadow's volume size and chunk size; 0 or the exit code. */
static int image_geometry(struct backup_run *b) {
        for (size_t i = 0; i < b->n_shadows; i++) {
                struct shadow_ref *s = &b->shadows[i];
                bool found;
                int r = volume_lookup(b->bus, s->volume, &found, &s->size, &s->chunk_size, NULL);
                if (r != 0)
                        return r;
                if (!found)
                        return cli_fail(CLI_EXIT_FAILED,
                                        "volume %s was deleted during the backup: nothing was kept; back up "
                                        "the volumes that are left",
                                        s->volume);
        }
        return 0;
}

/* The chunks of S's volume changed since BASE's shadow of it (GetChangedChunks); 0 or the exit code. */
static int image_changed(struct backup_run *b, const struct bkp_document *base, const char *base_dir,
                         struct shadow_ref *s) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        const struct bkp_target *bt = NULL;
        uint64_t size, first, count;
        uint32_t chunk;
        for (size_t i = 0; i < base->n_targets; i++)
                if (strcmp(base->targets[i].name, s->volume) == 0)
                        bt = &base->targets[i];
        if (!bt || !bt->shadow_id)
                return cli_fail(CLI_EXIT_FAILED,
                                "base backup %s does not record a shadow of volume %s to compare with: make a "
                                "full image backup (--type full)",
                                base_dir, s->volume);
        int r = sd_bus_message_new_method_call(b->bus, &m, "org.lvss", "/org/lvss", "org.lvss.Manager1",
                                               "GetChangedChunks");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", bt->shadow_id, s->id);
        if (r >= 0)
                r = sd_bus_call(b->bus, m, 300 * CLI_USEC_PER_SEC, &e, &reply);
        if (r < 0 && sd_bus_error_has_name(&e, "org.lvss.Error.NotFound"))
                return cli_fail(CLI_EXIT_NOT_FOUND,
                                "shadow %s, which base backup %s was read from, is gone (deleted, or reclaimed "
                                "for room): changed-block tracking needs it; make a full image backup "
                                "(--type full)",
                                bt->shadow_id, base_dir);
        if (r < 0)
                return cli_fail(CLI_EXIT_FAILED, "cannot find the chunks of %s changed since backup %s: %s",
                                s->volume, base_dir, e.message ? e.message : strerror(-r));
        r = sd_bus_message_read(reply, "tu", &size, &chunk);
        if (r < 0)
                return cli_bus_parse_error(r);
        if (size != s->size || chunk != s->chunk_size || chunk == 0)
                return cli_fail(CLI_EXIT_FAILED,
                                "lvssd describes volume %s otherwise than it did a moment ago (%" PRIu64
                                " bytes in chunks of %" PRIu32 "): retry the backup",
                                s->volume, size, chunk);
        uint64_t n_chunks = size / chunk + (size % chunk != 0);
        s->changed = calloc((size_t) ((n_chunks + 7) / 8) + 1, 1);
        if (!s->changed)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        r = sd_bus_message_enter_container(reply, 'a', "(tt)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(tt)", &first, &count)) > 0) {
                if (first >= n_chunks || count > n_chunks - first)
                        return cli_fail(CLI_EXIT_FAILED, "lvssd named chunks past the end of volume %s: retry "
                                                         "the backup",
                                        s->volume);
                for (uint64_t c = first; c < first + count; c++)
                        s->changed[c / 8] |= (uint8_t) (1u << (c % 8));
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        return 0;
}

/* The sets the image backups of the chain ending at DIR were read from (DIR's, its base's, ...),
 * pushed onto *RET; quietly stops at a backup it cannot read. */
static void chain_sets(const char *dir, char ***ret) {
        char *cur = dir ? strdup(dir) : NULL;
        for (int depth = 0; cur && depth < 4096; depth++) {
                struct bkp_document *d = NULL;
                char err[BKP_ERR_MAX];
                char *next = NULL;
                if (bkp_read_document(cur, &d, err) >= 0) {
                        if (d->image && d->set_id[0])
                                (void) cli_strv_push(ret, d->set_id);
                        next = d->base_path ? strdup(d->base_path) : NULL;
                        bkp_document_free(d);
                }
                free(cur);
                cur = next;
        }
        free(cur);
}

/* The directory of the newest full or incremental backup of VOLUMES in lvssd's history, quietly:
 * NULL if none. */
static char *quiet_find_chain(sd_bus *bus, char **volumes) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *dir, *id;
        if (sd_bus_message_new_method_call(bus, &m, "org.lvss", "/org/lvss", "org.lvss.Manager1",
                                           "FindBackupBase") < 0 ||
            sd_bus_message_append_strv(m, volumes) < 0 || sd_bus_message_append(m, "s", "incremental") < 0 ||
            sd_bus_call(bus, m, 60 * CLI_USEC_PER_SEC, &e, &reply) < 0 ||
            sd_bus_message_read(reply, "ss", &dir, &id) < 0)
                return NULL;
        return strdup(dir);
}

/* The sets no later image backup of VOLUMES will compare with, once this one (of TYPE, on BASE)
 * keeps its own: a full one ends the chain before it (its kept sets: the previous full's and last
 * incremental's, found through lvssd's history of the same volumes, so that chains of other
 * volumes keep theirs); an incremental one replaces its base's, unless the base is a full backup
 * (which differentials compare with). Only sets of this chain's own backups are named. */
static char **image_sets_to_drop(sd_bus *bus, char **volumes, int type, const struct bkp_document *base) {
        char **doomed = NULL;
        if (type == BKP_INCREMENTAL && base && base->type != BKP_FULL && base->set_id[0])
                (void) cli_strv_push(&doomed, base->set_id);
        if (type == BKP_FULL) {
                _cleanup_free_ char *prev = quiet_find_chain(bus, volumes);
                chain_sets(prev, &doomed);
        }
        return doomed;
}

/* Deletes the sets DOOMED but SET; failures are warnings (the backup is whole). */
static void drop_image_sets(sd_bus *bus, char **doomed, const char *set) {
        for (char **d = doomed; d && *d; d++) {
                if (strcmp(*d, set) == 0)
                        continue;
                _cleanup_bus_message_ sd_bus_message *reply = NULL;
                _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
                int r = sd_bus_call_method(bus, "org.lvss", "/org/lvss", "org.lvss.Manager1", "DeleteShadowSet", &e,
                                           &reply, "s", *d);
                if (r < 0 && !sd_bus_error_has_name(&e, "org.lvss.Error.NotFound"))
                        fprintf(stderr, "lvss: warning: cannot delete set %s, kept for an older image backup: %s\n",
                                *d, e.message ? e.message : strerror(-r));
        }
}

static int backup_create(int argc, char **argv) {
        enum { OPT_TO = CLI_OPT_FIRST_VERB_OPTION, OPT_TYPE, OPT_BASE, OPT_COMPONENT, OPT_IMAGE };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "to", required_argument, NULL, OPT_TO },
                                                 { "type", required_argument, NULL, OPT_TYPE },
                                                 { "base", required_argument, NULL, OPT_BASE },
                                                 { "component", required_argument, NULL, OPT_COMPONENT },
                                                 { "image", no_argument, NULL, OPT_IMAGE },
                                                 {} };
        const char *to = NULL, *base = NULL;
        int type = BKP_FULL;
        _cleanup_strv_ char **filters = NULL, **required = NULL, **volumes = NULL, **origins = NULL;
        struct backup_run b = {};
        struct writer_info *ws = NULL;
        size_t n_ws = 0;
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_strv_ char **metadata_keep = NULL; /* owns the strings the components point to */
        _cleanup_free_ char *found_base = NULL;
        _cleanup_(bkp_document_freep) struct bkp_document *base_doc = NULL;
        _cleanup_strv_ char **doomed = NULL; /* image sets to delete once this backup's is kept */
        _cleanup_strv_ char **exclude_dirs = NULL; /* owns the excludes' relative directories */
        bool image = false;
        size_t n_keep = 0, n_comps = 0;
        struct bkp_component *comps = NULL;
        sigset_t block, saved;
        int c, k, r, n;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                switch (c) {
                case OPT_TO:
                        to = optarg;
                        break;
                case OPT_TYPE:
                        type = bkp_type_from_string(optarg);
                        if (type < 0)
                                return cli_usage_error("unknown backup type '%s': give full, incremental, "
                                                       "differential, copy or log",
                                                       optarg);
                        break;
                case OPT_BASE:
                        base = optarg;
                        break;
                case OPT_COMPONENT: {
                        const char *slash = strchr(optarg, '/');
                        if (!slash || slash == optarg || !slash[1])
                                return cli_usage_error("--component %s: give WRITER/LOGICAL_PATH", optarg);
                        _cleanup_free_ char *w = strndup(optarg, (size_t) (slash - optarg));
                        if (!w || cli_strv_push(&filters, optarg) < 0 || cli_strv_push(&required, w) < 0)
                                return cli_fail(CLI_EXIT_FAILED, "out of memory");
                        break;
                }
                case OPT_IMAGE:
                        image = true;
                        break;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        if (!to)
                return cli_usage_error("no --to DIR: give the directory to write the backup into");
        bool needs_base = type == BKP_INCREMENTAL || type == BKP_DIFFERENTIAL || type == BKP_LOG;
        if (!needs_base && base)
                return cli_usage_error("a %s backup has no base: leave out --base",
                                       bkp_type_to_string(type));
        if (image && type == BKP_LOG)
                return cli_usage_error("a log backup is of a writer's log files, not of block images: give "
                                       "--type incremental with --image");
        struct stat st;
        if (stat(to, &st) == 0 && (!S_ISDIR(st.st_mode) || rmdir(to) < 0))
                return cli_fail(CLI_EXIT_FAILED, "%s exists and is not an empty directory: give a new one",
                                to);

        /* Ctrl-C and SIGTERM set a flag, looked at between steps and by the progress callback: the
         * run always ends through the same clean-up. */
        struct sigaction sa = { .sa_handler = on_interrupt };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);

        r = cli_connect(&b.bus);
        if (r != 0)
                goto out;

        /* The targets: volumes, and where their trees live (their mount point when given as one). */
        n = argc - optind;
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *t = NULL, *v = NULL, *real = NULL;
                if ((r = cli_target_arg(argv[optind + i], &t)) != 0 ||
                    (r = cli_resolve_target(b.bus, t, &v)) != 0)
                        goto out;
                if (t[0] == '/')
                        real = realpath(t, NULL);
                bool dup = false;
                for (char **x = volumes; x && *x; x++)
                        dup |= strcmp(*x, v) == 0;
                if (dup)
                        continue;
                if (cli_strv_push(&volumes, v) < 0 || cli_strv_push(&origins, real ? real : "") < 0) {
                        r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                        goto out;
                }
        }

        /* The base, unless given: the previous backup of the same targets in lvssd's history. */
        if (needs_base && !base) {
                r = find_base(b.bus, volumes, type, &found_base);
                if (r != 0)
                        goto out;
                base = found_base;
                if (!cli_arg_json)
                        printf("base: %s\n", base);
        }
        /* An image backup's base says which shadows to compare the new ones with. */
        if (needs_base && image) {
                char err[BKP_ERR_MAX] = "";
                r = bkp_read_document(base, &base_doc, err);
                if (r < 0) {
                        r = cli_fail(r == -ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_FAILED, "%s",
                                     err[0] ? err : strerror(-r));
                        goto out;
                }
                if (!base_doc->image) {
                        r = cli_fail(CLI_EXIT_FAILED,
                                     "base %s is a file backup: an image backup's base is an image backup "
                                     "(give --base, or make a full image backup)",
                                     base);
                        goto out;
                }
                if (base_doc->type != BKP_FULL && (type == BKP_DIFFERENTIAL || base_doc->type != BKP_INCREMENTAL)) {
                        r = cli_fail(CLI_EXIT_FAILED,
                                     "base %s is a %s backup: a%s image backup builds on a %s one (give --base "
                                     "another)",
                                     base, bkp_type_to_string(base_doc->type),
                                     type == BKP_DIFFERENTIAL ? " differential" : "n incremental",
                                     type == BKP_DIFFERENTIAL ? "full" : "full or incremental");
                        goto out;
                }
        }

        /* 1. The writers' metadata, and the volumes their selected components live on. */
        r = gather_writers(b.bus, &ws, &n_ws);
        if (r != 0)
                goto out;
        r = add_component_volumes(b.bus, ws, n_ws, filters, &volumes, &origins);
        if (r != 0)
                goto out;

        /* 2. The set: lvssd drives the writers up to PostSnapshot. */
        r = cli_new_call(b.bus, "CreateShadowSet", &m);
        if (r != 0)
                goto out;
        r = sd_bus_message_append_strv(m, volumes);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "backup");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "BackupType", "s",
                                          bkp_type_to_string(type == BKP_LOG ? BKP_INCREMENTAL : type));
        if (r >= 0 && required)
                r = cli_append_strv_option(m, "Writers", required);
        /* The set of a full or incremental image backup stays, for the next one to compare with;
         * any other goes with this process's connection, should it die (SIGKILL) before its end. */
        if (r >= 0 && image && (type == BKP_FULL || type == BKP_INCREMENTAL))
                r = sd_bus_message_append(m, "{sv}", "Persistent", "b", 1);
        if (r >= 0) /* kept sets are told KeepShadowSet once the backup is whole */
                r = sd_bus_message_append(m, "{sv}", "AutoRelease", "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0) {
                r = cli_bus_parse_error(r);
                goto out;
        }
        /* Not interrupted in the middle: the set must be known, to be released. */
        sigprocmask(SIG_BLOCK, &block, &saved);
        r = cli_call_message(b.bus, m, 900 * CLI_USEC_PER_SEC, "creating the shadow copy set...", &reply);
        sigprocmask(SIG_SETMASK, &saved, NULL);
        if (r != 0)
                goto out;

        const char *set, *context, *id, *volume, *provider, *path;
        uint64_t created, hold;
        r = sd_bus_message_read(reply, "sstt", &set, &context, &created, &hold);
        if (r >= 0 && !(b.set = strdup(set)))
                r = -ENOMEM;
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssss)", &id, &volume, &provider, &path)) > 0) {
                struct shadow_ref *ns = realloc(b.shadows, (b.n_shadows + 1) * sizeof *ns);
                if (!ns) {
                        r = -ENOMEM;
                        break;
                }
                b.shadows = ns;
                b.shadows[b.n_shadows++] =
                        (struct shadow_ref){ .id = strdup(id), .volume = strdup(volume), .path = strdup(path) };
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);

        /* The components: the writers' answers to the set (state and backup metadata) with their
         * metadata documents. */
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssa{ss})");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "ssssa{ss}")) > 0) {
                const char *wname, *state, *failure, *message, *cn, *data;
                _cleanup_strv_ char **md = NULL;
                r = sd_bus_message_read(reply, "ssss", &wname, &state, &failure, &message);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
                while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &cn, &data)) > 0)
                        if (cli_strv_push(&md, cn) < 0 || cli_strv_push(&md, data) < 0)
                                r = -ENOMEM;
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                if (strcmp(state, "stable") != 0) {
                        fprintf(stderr,
                                "lvss: warning: writer %s %s (%s): its components are not in the backup\n",
                                wname, message, state);
                        continue;
                }
                struct writer_info *wi = NULL;
                for (size_t i = 0; i < n_ws; i++)
                        if (strcmp(ws[i].name, wname) == 0)
                                wi = &ws[i];
                for (size_t i = 0; wi && wi->wmd && i < lvss_wmd_get_n_components(wi->wmd); i++) {
                        const lvss_wmd_component *wc = lvss_wmd_get_component(wi->wmd, i);
                        const char *lp = lvss_wmd_component_get_logical_path(wc),
                                   *cname = lvss_wmd_component_get_name(wc);
                        bool on = false, unknown_origin = false;
                        for (size_t v = 0; origins && origins[v]; v++)
                                unknown_origin |= origins[v][0] == 0;
                        for (int kind = 0; kind < _LVSS_WMD_FILES_MAX && !on; kind++)
                                for (size_t f = 0; f < lvss_wmd_component_get_n_files(wc, kind) && !on;
                                     f++) {
                                        const char *fp = lvss_wmd_file_set_get_path(
                                                lvss_wmd_component_get_files(wc, kind, f));
                                        for (size_t v = 0; origins && origins[v] && !on; v++)
                                                on = origins[v][0] && path_under(fp, origins[v]);
                                }
                        if ((!on && !unknown_origin) || !component_selected(filters, wname, lp, cname))
                                continue;
                        char full[2048];
                        snprintf(full, sizeof full, "%s/%s", lp, cname);
                        const char *bmd = NULL;
                        for (size_t x = 0; md && md[x]; x += 2)
                                if (strcmp(md[x], full) == 0)
                                        bmd = md[x + 1];
                        struct bkp_component *nc = realloc(comps, (n_comps + 1) * sizeof *nc);
                        if (!nc) {
                                r = -ENOMEM;
                                break;
                        }
                        comps = nc;
                        if (bmd && cli_strv_push(&metadata_keep, bmd) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                        n_keep += bmd != NULL;
                        comps[n_comps++] = (struct bkp_component){
                                .writer = wi->name,
                                .writer_class_id = lvss_wmd_get_class_id(wi->wmd),
                                .logical_path = lp,
                                .name = cname,
                                .backup_metadata = bmd ? metadata_keep[n_keep - 1] : NULL,
                                .succeeded = true,
                        };
                }
        }
        if (r < 0) {
                r = cli_bus_parse_error(r);
                goto out;
        }

        if (interrupted) {
                r = cli_fail(CLI_EXIT_FAILED, "interrupted: the set was released, nothing was kept");
                goto out;
        }

        /* 3. Images: read each shadow's file, with the chunks changed since the base's shadow.
         * Trees: expose the shadows read-only in a private directory. */
        char tmpl[] = "/tmp/lvss-backup-XXXXXX";
        if (!image && !mkdtemp(tmpl)) {
                r = cli_fail(CLI_EXIT_FAILED, "cannot make a temporary directory: %m");
                goto out;
        }
        b.tmpdir = image ? NULL : strdup(tmpl);
        struct bkp_target *targets = calloc(b.n_shadows + 1, sizeof *targets);
        if (!targets || (!image && !b.tmpdir)) {
                free(targets);
                r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                goto out;
        }
        if (image)
                r = image_geometry(&b);
        for (size_t i = 0; image && i < b.n_shadows && r == 0; i++) {
                struct shadow_ref *s = &b.shadows[i];
                if (base_doc)
                        r = image_changed(&b, base_doc, base, s);
                const char *origin = "";
                for (size_t v = 0; volumes && volumes[v]; v++)
                        if (strcmp(volumes[v], s->volume) == 0)
                                origin = origins[v];
                targets[i] = (struct bkp_target){ .name = s->volume,
                                                  .root = s->path,
                                                  .origin = origin[0] ? origin : NULL,
                                                  .size = s->size,
                                                  .chunk_size = s->chunk_size,
                                                  .shadow_id = s->id,
                                                  .changed = s->changed };
        }
        for (size_t i = 0; !image && i < b.n_shadows && r == 0; i++) {
                struct shadow_ref *s = &b.shadows[i];
                _cleanup_free_ char *mp = NULL;
                if (asprintf(&mp, "%s/%s", tmpl, s->volume) < 0 || mkdir(mp, 0700) < 0) {
                        r = cli_fail(CLI_EXIT_FAILED, "cannot make a mount point for the shadow of %s: %m",
                                     s->volume);
                        break;
                }
                _cleanup_bus_message_ sd_bus_message *er = NULL;
                r = cli_call(b.bus, "ExposeShadow", &er, "ss", s->id, mp);
                if (r != 0) {
                        (void) rmdir(mp);
                        break;
                }
                s->mountpoint = TAKE_PTR(mp);
                const char *origin = "";
                for (size_t v = 0; volumes && volumes[v]; v++)
                        if (strcmp(volumes[v], s->volume) == 0)
                                origin = origins[v];
                /* The writers' exclude lists (files like a database's lock file) are left out. */
                struct bkp_exclude *ex = NULL;
                size_t n_ex = 0;
                if (tree_excludes(ws, n_ws, origin, &ex, &n_ex, &exclude_dirs) < 0) {
                        r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                        break;
                }
                targets[i] = (struct bkp_target){ .name = s->volume,
                                                  .root = s->mountpoint,
                                                  .origin = origin[0] ? origin : NULL,
                                                  .excludes = ex,
                                                  .n_excludes = n_ex };
        }
        if (r != 0 || interrupted) {
                for (size_t i = 0; i < b.n_shadows; i++)
                        free((void *) targets[i].excludes);
                free(targets);
                if (r == 0)
                        r = cli_fail(CLI_EXIT_FAILED, "interrupted: nothing was kept");
                goto out;
        }

        /* 4. The backup itself. */
        char **docs = calloc(n_ws + 1, sizeof *docs);
        size_t n_docs = 0;
        for (size_t i = 0; docs && i < n_ws; i++)
                if (ws[i].xml)
                        docs[n_docs++] = ws[i].xml;
        struct progress pr = { .what = "backing up", .start = now_usec() };
        struct bkp_write_opts o = {
                .dir = to,
                .type = (bkp_type) type,
                .image = image,
                .base_dir = base,
                .targets = targets,
                .n_targets = b.n_shadows,
                .set_id = b.set,
                .created_usec = created,
                .components = comps,
                .n_components = n_comps,
                .writer_documents = (const char *const *) docs,
                .progress = on_progress,
                .userdata = &pr,
        };
        struct bkp_stats stats = {};
        struct bkp_document *doc = NULL;
        char err[BKP_ERR_MAX] = "";
        uint64_t t0 = now_usec();
        int br = docs ? bkp_write(&o, &stats, &doc, err) : -ENOMEM;
        progress_end(&pr);
        uint64_t took = now_usec() - t0;
        free(docs);
        for (size_t i = 0; i < b.n_shadows; i++)
                free((void *) targets[i].excludes);
        free(targets);

        /* 5. The end of the backup, for the writers and the set. A Ctrl-C that comes once the
         * backup is whole is too late to matter: it is kept. */
        b.keep_set = image && (type == BKP_FULL || type == BKP_INCREMENTAL);
        backup_cleanup(&b, br >= 0);
        if (br == -EINTR || (br < 0 && interrupted)) {
                bkp_document_free(doc);
                r = cli_fail(CLI_EXIT_FAILED, "interrupted: the set was released and %s removed", to);
                goto out;
        }
        if (br < 0) {
                r = cli_fail(br == -ENOSPC ? CLI_EXIT_NO_SPACE : CLI_EXIT_FAILED, "%s",
                             err[0] ? err : strerror(-br));
                goto out;
        }
        if (b.keep_set) {
                if (quiet_call(b.bus, "KeepShadowSet", "s", doc->set_id) < 0)
                        fprintf(stderr, "lvss: warning: set %s goes when lvss exits: the next incremental image "
                                        "backup will need a full one\n",
                                doc->set_id);
                doomed = image_sets_to_drop(b.bus, volumes, type, base_doc);
        }
        if (type != BKP_COPY)
                record_backup(b.bus, volumes, doc, to);
        drop_image_sets(b.bus, doomed, doc->set_id);

        if (cli_arg_json) {
                cli_json j;
                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "backup");
                cli_json_string(&j, to);
                cli_json_key(&j, "id");
                cli_json_string(&j, doc->id);
                cli_json_key(&j, "type");
                cli_json_string(&j, bkp_type_to_string(doc->type));
                cli_json_key(&j, "base");
                if (doc->base_id[0])
                        cli_json_string(&j, doc->base_id);
                else
                        cli_json_null(&j);
                cli_json_key(&j, "set");
                cli_json_string(&j, doc->set_id);
                cli_json_key(&j, "image");
                cli_json_bool(&j, doc->image);
                cli_json_key(&j, "set_kept");
                cli_json_bool(&j, b.keep_set);
                cli_json_key(&j, "created");
                cli_json_time(&j, doc->created_usec);
                cli_json_key(&j, "targets");
                cli_json_begin_array(&j);
                for (size_t i = 0; i < doc->n_targets; i++)
                        cli_json_string(&j, doc->targets[i].name);
                cli_json_end_array(&j);
                cli_json_key(&j, "components");
                cli_json_begin_array(&j);
                for (size_t i = 0; i < doc->n_components; i++) {
                        char full[2048];
                        snprintf(full, sizeof full, "%s/%s/%s", doc->components[i].writer,
                                 doc->components[i].logical_path, doc->components[i].name);
                        cli_json_string(&j, full);
                }
                cli_json_end_array(&j);
                cli_json_key(&j, "entries");
                cli_json_uint(&j, stats.entries);
                cli_json_key(&j, "entries_stored");
                cli_json_uint(&j, stats.entries_stored);
                cli_json_key(&j, "entries_deleted");
                cli_json_uint(&j, stats.entries_deleted);
                cli_json_key(&j, "entries_excluded");
                cli_json_uint(&j, stats.entries_excluded);
                cli_json_key(&j, "bytes_read");
                cli_json_uint(&j, stats.bytes_read);
                cli_json_key(&j, "bytes_written");
                cli_json_uint(&j, stats.bytes_written);
                cli_json_key(&j, "ms");
                cli_json_msec(&j, took);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        } else
                printf("Backup %s (%s%s%s) of %zu target(s) in %s: %llu entries, %llu stored, %llu deleted, "
                       "%.1f MiB read, %.1f MiB written, %.1f s.\n",
                       doc->id, bkp_type_to_string(doc->type), doc->base_id[0] ? ", base " : "",
                       doc->base_id, doc->n_targets, to, (unsigned long long) stats.entries,
                       (unsigned long long) stats.entries_stored, (unsigned long long) stats.entries_deleted,
                       (double) stats.bytes_read / 1048576.0, (double) stats.bytes_written / 1048576.0,
                       (double) took / 1e6);
        bkp_document_free(doc);
        r = CLI_EXIT_OK;
out:
        backup_cleanup(&b, false);
        free(comps);
        writer_infos_free(ws, n_ws);
        if (b.bus)
                sd_bus_flush_close_unref(b.bus);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        return r;
}

static int backup_verify(int argc, char **argv) {
        static const struct option options[] = { CLI_COMMON_OPTIONS, {} };
        char err[BKP_ERR_MAX] = "";
        int c, r;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                if (cli_common_option(c, &r) < 0)
                        return r;
        if (argc - optind != 1)
                return cli_usage_error("backup verify: give one backup directory");
        struct progress pr = { .what = "verifying", .start = now_usec() };
        r = bkp_verify(argv[optind], on_progress, &pr, err);
        progress_end(&pr);
        if (r < 0)
                return cli_fail(r == -ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_FAILED, "%s",
                                err[0] ? err : strerror(-r));
        if (cli_arg_json) {
                cli_json j;
                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "backup");
                cli_json_string(&j, argv[optind]);
                cli_json_key(&j, "verified");
                cli_json_bool(&j, true);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        } else
                printf("Backup %s and its chain of bases are intact.\n", argv[optind]);
        return CLI_EXIT_OK;
}

/* ---- lvss restore ------------------------------------------------------------------------------ */

/* Tells WRITER its components' restore (PRE or POST); 0, or the exit code when it refused. */
static int restore_event(sd_bus *bus, const char *method, const char *writer, char **components,
                         char **metadata) {
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        const char *name, *state, *failure, *message;
        int r = cli_new_call(bus, method, &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "s", writer);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, components);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        for (size_t i = 0; r >= 0 && metadata && metadata[i]; i += 2)
                r = sd_bus_message_append(m, "{ss}", metadata[i], metadata[i + 1]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 900 * CLI_USEC_PER_SEC, NULL, &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssa{ss})");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'r', "ssssa{ss}");
        if (r > 0)
                r = sd_bus_message_read(reply, "ssss", &name, &state, &failure, &message);
        if (r < 0)
                return cli_bus_parse_error(r);
        if (r > 0 && strcmp(state, "stable") != 0)
                return cli_fail(CLI_EXIT_WRITER, "writer %s %s (%s): the restore %s", writer, message, state,
                                strcmp(method, "PreRestore") == 0 ? "did not start; nothing was changed"
                                                                  : "put the files back, but the writer "
                                                                    "could not finish it");
        return 0;
}

/* Where the image of volume NAME goes: TO/NAME.img, or the volume's own file, which must exist and
 * be in use by nobody: each loop device over it is opened exclusively (refused while it is mounted,
 * or held by a partition, device-mapper or swap) and held so, its descriptor pushed onto HOLDS,
 * until the restore ends (no new mount meanwhile). 0 with *RET, or the exit code. */
static int image_output(sd_bus *bus, const char *name, const char *to, int **holds, size_t *n_holds,
                        char **ret) {
        if (to)
                return asprintf(ret, "%s/%s.img", to, name) < 0 ? cli_fail(CLI_EXIT_FAILED, "out of memory") : 0;
        _cleanup_free_ char *found = NULL;
        bool exists;
        int r = volume_lookup(bus, name, &exists, NULL, NULL, &found);
        if (r != 0)
                return r;
        if (!exists)
                return cli_fail(CLI_EXIT_NOT_FOUND,
                                "there is no volume %s to restore the image onto: create it (lvss volume create "
                                "%s --size SIZE, the backed-up size) or give --to DIR for image files",
                                name, name);
        _cleanup_strv_ char **loops = NULL;
        r = loopdev_list_for_backing(found, &loops, NULL);
        if (r < 0)
                return cli_fail(CLI_EXIT_FAILED, "cannot list the loop devices over volume %s: %s", name,
                                strerror(-r));
        for (char **l = loops; l && *l; l++) {
                int fd = open(*l, O_RDONLY | O_EXCL | O_CLOEXEC);
                if (fd >= 0) {
                        int *nh = realloc(*holds, (*n_holds + 1) * sizeof *nh);
                        if (!nh) {
                                close(fd);
                                return cli_fail(CLI_EXIT_FAILED, "out of memory");
                        }
                        *holds = nh;
                        (*holds)[(*n_holds)++] = fd;
                        continue;
                }
                if (errno != EBUSY)
                        return cli_fail(CLI_EXIT_FAILED, "cannot open %s, a loop device over volume %s: %m", *l,
                                        name);
                /* Name the mount point when it is mounted. */
                const char *mp = NULL;
                struct mount_entry **all = NULL;
                size_t n_all = 0;
                if (mounts_read_all(&all, &n_all) >= 0)
                        for (size_t i = 0; i < n_all && !mp; i++)
                                if (all[i]->source && strcmp(all[i]->source, *l) == 0)
                                        mp = all[i]->mountpoint;
                r = mp ? cli_fail(CLI_EXIT_FAILED,
                                  "volume %s is mounted on %s: unmount it (and stop what uses it) before restoring "
                                  "its image; nothing was changed",
                                  name, mp)
                       : cli_fail(CLI_EXIT_FAILED,
                                  "volume %s is in use through %s (a partition, device-mapper or swap on it): stop "
                                  "that use, or lvss volume detach %s, before restoring its image; nothing was "
                                  "changed",
                                  name, *l, name);
                mounts_free_all(all, n_all);
                return r;
        }
        *ret = TAKE_PTR(found);
        return 0;
}

static int restore(int argc, char **argv) {
        enum { OPT_TO = CLI_OPT_FIRST_VERB_OPTION, OPT_COMPONENT };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "to", required_argument, NULL, OPT_TO },
                                                 { "component", required_argument, NULL, OPT_COMPONENT },
                                                 {} };
        const char *to = NULL;
        _cleanup_strv_ char **filters = NULL, **running = NULL, **writers = NULL, **roots = NULL;
        _cleanup_bus_ sd_bus *bus = NULL;
        struct bkp_document *doc = NULL;
        int *holds = NULL; /* image restores: loop devices over the volumes, held exclusively */
        size_t n_holds = 0;
        char err[BKP_ERR_MAX] = "";
        int c, k, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                switch (c) {
                case OPT_TO:
                        to = optarg;
                        break;
                case OPT_COMPONENT:
                        if (!strchr(optarg, '/'))
                                return cli_usage_error("--component %s: give WRITER/LOGICAL_PATH", optarg);
                        if (cli_strv_push(&filters, optarg) < 0)
                                return cli_fail(CLI_EXIT_FAILED, "out of memory");
                        break;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];
        r = bkp_read_document(dir, &doc, err);
        if (r < 0)
                return cli_fail(r == -ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_FAILED, "%s",
                                err[0] ? err : strerror(-r));
        for (size_t i = 0; i < doc->n_targets; i++)
                if (!to && !doc->image && (!doc->targets[i].origin || !doc->targets[i].origin[0])) {
                        r = cli_usage_error("the backup does not say where target %s lives: give --to ROOT",
                                            doc->targets[i].name);
                        goto out;
                }

        /* The writers of the backup's components that run now. */
        bool any = false;
        for (size_t i = 0; i < doc->n_components; i++)
                any |= component_selected(filters, doc->components[i].writer,
                                          doc->components[i].logical_path, doc->components[i].name);
        if (any || (doc->image && !to)) {
                r = cli_connect(&bus);
                if (r != 0)
                        goto out;
                r = list_writer_names(bus, &running);
                if (r != 0)
                        goto out;
        }
        for (size_t i = 0; i < doc->n_components; i++) {
                const struct bkp_component *cp = &doc->components[i];
                bool known = false;
                for (char **w = writers; w && *w; w++)
                        known |= strcmp(*w, cp->writer) == 0;
                if (!known && component_selected(filters, cp->writer, cp->logical_path, cp->name) &&
                    cli_strv_push(&writers, cp->writer) < 0) {
                        r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                        goto out;
                }
        }

        if (to && mkdir(to, 0755) < 0 && errno != EEXIST) {
                r = cli_fail(CLI_EXIT_FAILED, "cannot create %s: %m; give a directory whose parent exists",
                             to);
                goto out;
        }

        /* Where each target goes, every one checked before anything is told or written. */
        for (size_t i = 0; i < doc->n_targets; i++) {
                _cleanup_free_ char *root = NULL;
                if (doc->image) {
                        r = image_output(bus, doc->targets[i].name, to, &holds, &n_holds, &root);
                        if (r != 0)
                                goto out;
                } else if (to ? asprintf(&root, "%s/%s", to, doc->targets[i].name) < 0
                              : !(root = strdup(doc->targets[i].origin))) {
                        r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                        goto out;
                }
                if (cli_strv_push(&roots, root) < 0) {
                        r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                        goto out;
                }
        }

        /* PreRestore, the trees, PostRestore. */
        for (int phase = 0; phase < 3; phase++) {
                if (phase == 1) {
                        for (size_t i = 0; i < doc->n_targets; i++) {
                                const char *root = roots[i];
                                struct progress pr = { .what = "restoring", .start = now_usec() };
                                struct bkp_restore_opts o = { .dir = dir,
                                                              .target = doc->targets[i].name,
                                                              .root = root,
                                                              .progress = on_progress,
                                                              .userdata = &pr };
                                r = doc->image ? bkp_restore_image(&o, err) : bkp_restore(&o, err);
                                progress_end(&pr);
                                if (r < 0) {
                                        r = cli_fail(r == -ENOSPC ? CLI_EXIT_NO_SPACE : CLI_EXIT_FAILED,
                                                     doc->image ? "%s (%s: its first chunk is zeroed until a "
                                                                  "restore completes)"
                                                                : "%s (%s is marked incomplete)",
                                                     err[0] ? err : strerror(-r), root);
                                        goto out;
                                }
                                if (!cli_arg_json)
                                        printf("Restored %s into %s.\n", doc->targets[i].name, root);
                        }
                        continue;
                }
                for (char **w = writers; w && *w; w++) {
                        bool runs = false;
                        for (char **x = running; x && *x; x++)
                                runs |= strcmp(*x, *w) == 0;
                        if (!runs) {
                                if (phase == 0)
                                        fprintf(stderr,
                                                "lvss: warning: writer %s is not running: its components "
                                                "are restored as files only\n",
                                                *w);
                                continue;
                        }
                        _cleanup_strv_ char **comps = NULL, **md = NULL;
                        for (size_t i = 0; i < doc->n_components; i++) {
                                const struct bkp_component *cp = &doc->components[i];
                                char full[2048];
                                if (strcmp(cp->writer, *w) != 0 ||
                                    !component_selected(filters, cp->writer, cp->logical_path, cp->name))
                                        continue;
                                snprintf(full, sizeof full, "%s/%s", cp->logical_path, cp->name);
                                if (cli_strv_push(&comps, full) < 0 ||
                                    (cp->backup_metadata && (cli_strv_push(&md, full) < 0 ||
                                                             cli_strv_push(&md, cp->backup_metadata) < 0))) {
                                        r = cli_fail(CLI_EXIT_FAILED, "out of memory");
                                        goto out;
                                }
                        }
                        r = restore_event(bus, phase == 0 ? "PreRestore" : "PostRestore", *w, comps, md);
                        if (r != 0)
                                goto out;
                }
        }
        if (cli_arg_json) {
                cli_json j;
                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "backup");
                cli_json_string(&j, doc->id);
                cli_json_key(&j, "targets");
                cli_json_begin_array(&j);
                for (size_t i = 0; i < doc->n_targets; i++)
                        cli_json_string(&j, doc->targets[i].name);
                cli_json_end_array(&j);
                cli_json_key(&j, "writers");
                cli_json_begin_array(&j);
                for (char **w = writers; w && *w; w++)
                        cli_json_string(&j, *w);
                cli_json_end_array(&j);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        }
        r = CLI_EXIT_OK;
out:
        for (size_t i = 0; i < n_holds; i++)
                close(holds[i]);
        free(holds);
        bkp_document_free(doc);
        return r;
}

/* ---- the verbs --------------------------------------------------------------------------------- */

/* "backup verify DIR" or "backup --to DIR ... TARGET...". */
static int backup_main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "verify") == 0)
                return backup_verify(argc - 1, argv + 1);
        return backup_create(argc, argv);
}

const cli_verb cli_verb_backup = {
        "backup",
        "--to DIR [--type full|incremental|differential|copy|log] [--base DIR] [--component WRITER/PATH]... "
        "[--image] TARGET... | backup verify DIR",
        "Back up the TARGETs' trees, consistent across them, with their writers' help; or verify a backup.",
        "      --to DIR             the new backup's directory (must not exist, or be empty)\n"
        "      --type TYPE          full (default), incremental, differential, copy or log\n"
        "      --base DIR           the backup an incremental, differential or log one builds on\n"
        "                           (default: the previous one of the same targets that lvssd\n"
        "                           recorded)\n"
        "      --component WRITER/PATH  back up only these components (repeatable); their\n"
        "                           writers must take part\n"
        "      --image              the volumes' block images instead of their trees; an\n"
        "                           incremental or differential one reads only the chunks\n"
        "                           changed since its base (the set of the last full and\n"
        "                           incremental image backups is kept for that)\n"
        "  backup verify DIR        check every checksum of a backup and of its chain of bases\n",
        1,
        -1,
        backup_main,
};

const cli_verb cli_verb_restore = {
        "restore",
        "DIR [--component WRITER/PATH]... [--to ROOT]",
        "Restore a backup's trees at their places (or under ROOT), with the writers' help.",
        "      --to ROOT            restore each target under ROOT/TARGET instead (image\n"
        "                           backups: into ROOT/TARGET.img; by default onto the\n"
        "                           volume of the same name, which must not be mounted)\n"
        "      --component WRITER/PATH  tell only these components' writers (repeatable)\n",
        1,
        1,
        restore,
};
