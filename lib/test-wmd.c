/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Writer Metadata Documents: a sample built, written, parsed and compared
 * field by field, and written again byte for byte; the enum lists both ways;
 * every rule refused when building and when parsing (hand-written bad XML);
 * and libxml2 silent on all of it (stderr captured and checked).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "common/macro.h"
#include "include/lvss/wmd.h"

/* Where failed checks are reported: stderr itself is captured while libxml2's silence is tested. */
static int check_fd = STDERR_FILENO;

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        dprintf(check_fd, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);             \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define CLASS_A "5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f"
#define CLASS_A_UPPER "5C6F0D2E-9B1A-4C3D-8E2F-1A2B3C4D5E6F"
#define INSTANCE_A "0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f0"
#define CLASS_B "9a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"

#define PROCEDURE "Stop app.service,\n\tput <files> back & say \"done\"."

static char dummy;
#define SENTINEL ((void *) &dummy)

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static lvss_wmd *build_sample(void) {
        lvss_wmd *w = NULL;
        lvss_wmd_component *db = NULL, *fg = NULL;
        CHECK(lvss_wmd_new("SqliteWriter", CLASS_A_UPPER, INSTANCE_A, "app", LVSS_WMD_USAGE_USER_DATA,
                           LVSS_WMD_SOURCE_TRANSACTED_DB, &w) == 0);
        CHECK(lvss_wmd_set_restore_method(w, LVSS_WMD_RESTORE_STOP_RESTORE_START, "app.service", PROCEDURE,
                                          LVSS_WMD_WRITER_RESTORE_IF_REPLACED, true) == 0);
        CHECK(lvss_wmd_set_backup_schema(w, LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_INCREMENTAL |
                                                    LVSS_WMD_BACKUP_LOG | LVSS_WMD_BACKUP_COPY) == 0);
        CHECK(lvss_wmd_add_exclude(w, "/var/lib/app", "*.tmp", true) == 0);
        CHECK(lvss_wmd_add_exclude(w, "/var/lib/app/cache", "*", false) == 0);

        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_DATABASE, "Databases", "main",
                                     "Base de donn\303\251es principale", true, true, &db) == 0);
        CHECK(lvss_wmd_component_add_files(db, LVSS_WMD_DATABASE_FILES, "/var/lib/app", "main.db", false,
                                           LVSS_WMD_BACKUP_ALL) == 0);
        CHECK(lvss_wmd_component_add_files(db, LVSS_WMD_LOG_FILES, "/var/lib/app", "main.db-wal", false,
                                           LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_LOG) == 0);
        CHECK(lvss_wmd_component_add_files(db, LVSS_WMD_LOG_FILES, "/var/lib/app/journal", "*.log", true,
                                           LVSS_WMD_BACKUP_LOG) == 0);
        CHECK(lvss_wmd_component_add_dependency(db, NULL, "Config/App", "settings") == 0);
        CHECK(lvss_wmd_component_add_dependency(db, CLASS_B, "Instances", "pg-main") == 0);

        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_FILE_GROUP, "Config/App", "settings", NULL, true,
                                     false, &fg) == 0);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "/etc/app", "*.conf", false,
                                           LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_DIFFERENTIAL) == 0);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "/etc/app/conf.d", "app-??.ini", true,
                                           LVSS_WMD_BACKUP_ALL) == 0);
        return w;
}

static void check_file_set(const lvss_wmd_file_set *f, const char *path, const char *filespec,
                           bool recursive, unsigned types) {
        CHECK(f);
        CHECK(streq_null(lvss_wmd_file_set_get_path(f), path));
        CHECK(streq_null(lvss_wmd_file_set_get_filespec(f), filespec));
        CHECK(lvss_wmd_file_set_get_recursive(f) == recursive);
        CHECK(lvss_wmd_file_set_get_backup_types(f) == types);
}

/* Every field of the sample, as built. */
static void check_sample(const lvss_wmd *w) {
        CHECK(streq_null(lvss_wmd_get_writer_name(w), "SqliteWriter"));
        CHECK(streq_null(lvss_wmd_get_class_id(w), CLASS_A)); /* normalised */
        CHECK(streq_null(lvss_wmd_get_instance_id(w), INSTANCE_A));
        CHECK(streq_null(lvss_wmd_get_instance_name(w), "app"));
        CHECK(lvss_wmd_get_usage(w) == LVSS_WMD_USAGE_USER_DATA);
        CHECK(lvss_wmd_get_source(w) == LVSS_WMD_SOURCE_TRANSACTED_DB);

        lvss_wmd_restore_method m;
        const char *service, *procedure;
        lvss_wmd_writer_restore wr;
        bool reboot;
        CHECK(lvss_wmd_get_restore_method(w, &m, &service, &procedure, &wr, &reboot) == 0);
        CHECK(m == LVSS_WMD_RESTORE_STOP_RESTORE_START && wr == LVSS_WMD_WRITER_RESTORE_IF_REPLACED &&
              reboot);
        CHECK(streq_null(service, "app.service") && streq_null(procedure, PROCEDURE));
        CHECK(lvss_wmd_get_backup_schema(w) == (LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_INCREMENTAL |
                                                LVSS_WMD_BACKUP_LOG | LVSS_WMD_BACKUP_COPY));

        CHECK(lvss_wmd_get_n_excludes(w) == 2);
        check_file_set(lvss_wmd_get_exclude(w, 0), "/var/lib/app", "*.tmp", true, 0);
        check_file_set(lvss_wmd_get_exclude(w, 1), "/var/lib/app/cache", "*", false, 0);
        CHECK(!lvss_wmd_get_exclude(w, 2));

        CHECK(lvss_wmd_get_n_components(w) == 2);
        CHECK(!lvss_wmd_get_component(w, 2));
        const lvss_wmd_component *db = lvss_wmd_get_component(w, 0);
        CHECK(lvss_wmd_component_get_type(db) == LVSS_WMD_COMPONENT_DATABASE);
        CHECK(streq_null(lvss_wmd_component_get_logical_path(db), "Databases"));
        CHECK(streq_null(lvss_wmd_component_get_name(db), "main"));
        CHECK(streq_null(lvss_wmd_component_get_caption(db), "Base de donn\303\251es principale"));
        CHECK(lvss_wmd_component_get_selectable_backup(db) && lvss_wmd_component_get_selectable_restore(db));
        CHECK(lvss_wmd_component_get_n_files(db, LVSS_WMD_FILES) == 0);
        CHECK(lvss_wmd_component_get_n_files(db, LVSS_WMD_DATABASE_FILES) == 1);
        CHECK(lvss_wmd_component_get_n_files(db, LVSS_WMD_LOG_FILES) == 2);
        CHECK(lvss_wmd_component_get_n_files(db, _LVSS_WMD_FILES_MAX) == 0);
        check_file_set(lvss_wmd_component_get_files(db, LVSS_WMD_DATABASE_FILES, 0), "/var/lib/app",
                       "main.db", false, LVSS_WMD_BACKUP_ALL);
        check_file_set(lvss_wmd_component_get_files(db, LVSS_WMD_LOG_FILES, 0), "/var/lib/app",
                       "main.db-wal", false, LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_LOG);
        check_file_set(lvss_wmd_component_get_files(db, LVSS_WMD_LOG_FILES, 1), "/var/lib/app/journal",
                       "*.log", true, LVSS_WMD_BACKUP_LOG);
        CHECK(!lvss_wmd_component_get_files(db, LVSS_WMD_LOG_FILES, 2));
        CHECK(!lvss_wmd_component_get_files(db, _LVSS_WMD_FILES_MAX, 0));
        CHECK(lvss_wmd_component_get_n_dependencies(db) == 2);
        const lvss_wmd_dependency *d = lvss_wmd_component_get_dependency(db, 0);
        CHECK(!lvss_wmd_dependency_get_writer_class_id(d));
        CHECK(streq_null(lvss_wmd_dependency_get_logical_path(d), "Config/App"));
        CHECK(streq_null(lvss_wmd_dependency_get_name(d), "settings"));
        d = lvss_wmd_component_get_dependency(db, 1);
        CHECK(streq_null(lvss_wmd_dependency_get_writer_class_id(d), CLASS_B));
        CHECK(streq_null(lvss_wmd_dependency_get_logical_path(d), "Instances"));
        CHECK(streq_null(lvss_wmd_dependency_get_name(d), "pg-main"));
        CHECK(!lvss_wmd_component_get_dependency(db, 2));

        const lvss_wmd_component *fg = lvss_wmd_get_component(w, 1);
        CHECK(lvss_wmd_component_get_type(fg) == LVSS_WMD_COMPONENT_FILE_GROUP);
        CHECK(streq_null(lvss_wmd_component_get_logical_path(fg), "Config/App"));
        CHECK(streq_null(lvss_wmd_component_get_name(fg), "settings"));
        CHECK(!lvss_wmd_component_get_caption(fg));
        CHECK(lvss_wmd_component_get_selectable_backup(fg) &&
              !lvss_wmd_component_get_selectable_restore(fg));
        CHECK(lvss_wmd_component_get_n_files(fg, LVSS_WMD_FILES) == 2);
        CHECK(lvss_wmd_component_get_n_files(fg, LVSS_WMD_DATABASE_FILES) == 0);
        CHECK(lvss_wmd_component_get_n_files(fg, LVSS_WMD_LOG_FILES) == 0);
        check_file_set(lvss_wmd_component_get_files(fg, LVSS_WMD_FILES, 0), "/etc/app", "*.conf", false,
                       LVSS_WMD_BACKUP_FULL | LVSS_WMD_BACKUP_DIFFERENTIAL);
        check_file_set(lvss_wmd_component_get_files(fg, LVSS_WMD_FILES, 1), "/etc/app/conf.d", "app-??.ini",
                       true, LVSS_WMD_BACKUP_ALL);
        CHECK(lvss_wmd_component_get_n_dependencies(fg) == 0);
}

static void check_same_file_set(const lvss_wmd_file_set *a, const lvss_wmd_file_set *b) {
        check_file_set(b, lvss_wmd_file_set_get_path(a), lvss_wmd_file_set_get_filespec(a),
                       lvss_wmd_file_set_get_recursive(a), lvss_wmd_file_set_get_backup_types(a));
}

/* Every field of A equals that of B, whatever they hold. */
static void check_same(const lvss_wmd *a, const lvss_wmd *b) {
        CHECK(streq_null(lvss_wmd_get_writer_name(a), lvss_wmd_get_writer_name(b)));
        CHECK(streq_null(lvss_wmd_get_class_id(a), lvss_wmd_get_class_id(b)));
        CHECK(streq_null(lvss_wmd_get_instance_id(a), lvss_wmd_get_instance_id(b)));
        CHECK(streq_null(lvss_wmd_get_instance_name(a), lvss_wmd_get_instance_name(b)));
        CHECK(lvss_wmd_get_usage(a) == lvss_wmd_get_usage(b));
        CHECK(lvss_wmd_get_source(a) == lvss_wmd_get_source(b));

        lvss_wmd_restore_method ma, mb;
        const char *sa, *sb, *pa, *pb;
        lvss_wmd_writer_restore wa, wb;
        bool ra, rb;
        int r = lvss_wmd_get_restore_method(a, &ma, &sa, &pa, &wa, &ra);
        CHECK(r == lvss_wmd_get_restore_method(b, &mb, &sb, &pb, &wb, &rb));
        if (r == 0)
                CHECK(ma == mb && streq_null(sa, sb) && streq_null(pa, pb) && wa == wb && ra == rb);
        else
                CHECK(r == -ENODATA);
        CHECK(lvss_wmd_get_backup_schema(a) == lvss_wmd_get_backup_schema(b));

        CHECK(lvss_wmd_get_n_excludes(a) == lvss_wmd_get_n_excludes(b));
        for (size_t i = 0; i < lvss_wmd_get_n_excludes(a); i++)
                check_same_file_set(lvss_wmd_get_exclude(a, i), lvss_wmd_get_exclude(b, i));

        CHECK(lvss_wmd_get_n_components(a) == lvss_wmd_get_n_components(b));
        for (size_t i = 0; i < lvss_wmd_get_n_components(a); i++) {
                const lvss_wmd_component *ca = lvss_wmd_get_component(a, i),
                                         *cb = lvss_wmd_get_component(b, i);
                CHECK(lvss_wmd_component_get_type(ca) == lvss_wmd_component_get_type(cb));
                CHECK(streq_null(lvss_wmd_component_get_logical_path(ca),
                                 lvss_wmd_component_get_logical_path(cb)));
                CHECK(streq_null(lvss_wmd_component_get_name(ca), lvss_wmd_component_get_name(cb)));
                CHECK(streq_null(lvss_wmd_component_get_caption(ca), lvss_wmd_component_get_caption(cb)));
                CHECK(lvss_wmd_component_get_selectable_backup(ca) ==
                      lvss_wmd_component_get_selectable_backup(cb));
                CHECK(lvss_wmd_component_get_selectable_restore(ca) ==
                      lvss_wmd_component_get_selectable_restore(cb));
                for (lvss_wmd_files_kind k = 0; k < _LVSS_WMD_FILES_MAX; k++) {
                        CHECK(lvss_wmd_component_get_n_files(ca, k) ==
                              lvss_wmd_component_get_n_files(cb, k));
                        for (size_t j = 0; j < lvss_wmd_component_get_n_files(ca, k); j++)
                                check_same_file_set(lvss_wmd_component_get_files(ca, k, j),
                                                    lvss_wmd_component_get_files(cb, k, j));
                }
                CHECK(lvss_wmd_component_get_n_dependencies(ca) ==
                      lvss_wmd_component_get_n_dependencies(cb));
                for (size_t j = 0; j < lvss_wmd_component_get_n_dependencies(ca); j++) {
                        const lvss_wmd_dependency *da = lvss_wmd_component_get_dependency(ca, j),
                                                  *db = lvss_wmd_component_get_dependency(cb, j);
                        CHECK(streq_null(lvss_wmd_dependency_get_writer_class_id(da),
                                         lvss_wmd_dependency_get_writer_class_id(db)));
                        CHECK(streq_null(lvss_wmd_dependency_get_logical_path(da),
                                         lvss_wmd_dependency_get_logical_path(db)));
                        CHECK(streq_null(lvss_wmd_dependency_get_name(da),
                                         lvss_wmd_dependency_get_name(db)));
                }
        }
}

/* Writes W, parses it back, checks the copy field by field and that it writes the same bytes. */
static lvss_wmd *round_trip(const lvss_wmd *w) {
        _cleanup_free_ char *x1 = NULL, *x2 = NULL;
        size_t n1, n2;
        lvss_wmd *copy = NULL;
        CHECK(lvss_wmd_to_xml(w, &x1, &n1) == 0);
        CHECK(n1 == strlen(x1) && n1 <= LVSS_WMD_XML_MAX);
        CHECK(lvss_wmd_from_xml(x1, n1, &copy) == 0);
        check_same(w, copy);
        CHECK(lvss_wmd_to_xml(copy, &x2, &n2) == 0);
        CHECK(n1 == n2 && memcmp(x1, x2, n1) == 0);
        return copy;
}

static const char sample_xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"1\">\n"
        "  <identity name=\"SqliteWriter\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
        "\" instance-name=\"app\" usage=\"user-data\" source=\"transacted-db\"/>\n"
        "  <restore-method method=\"stop-restore-start\" service=\"app.service\" user-procedure=\"Stop "
        "app.service,&#10;&#9;put &lt;files&gt; back &amp; say &quot;done&quot;.\" "
        "writer-restore=\"if-replaced\" "
        "reboot-required=\"true\"/>\n"
        "  <backup-schema types=\"full incremental log copy\"/>\n"
        "  <exclude path=\"/var/lib/app\" filespec=\"*.tmp\" recursive=\"true\"/>\n"
        "  <exclude path=\"/var/lib/app/cache\" filespec=\"*\" recursive=\"false\"/>\n"
        "  <component type=\"database\" logical-path=\"Databases\" name=\"main\" caption=\"Base de "
        "donn\303\251es principale\" selectable-backup=\"true\" selectable-restore=\"true\">\n"
        "    <database-files path=\"/var/lib/app\" filespec=\"main.db\" recursive=\"false\" "
        "backup-types=\"full incremental differential log copy\"/>\n"
        "    <log-files path=\"/var/lib/app\" filespec=\"main.db-wal\" recursive=\"false\" "
        "backup-types=\"full log\"/>\n"
        "    <log-files path=\"/var/lib/app/journal\" filespec=\"*.log\" recursive=\"true\" "
        "backup-types=\"log\"/>\n"
        "    <dependency logical-path=\"Config/App\" name=\"settings\"/>\n"
        "    <dependency writer-class-id=\"" CLASS_B "\" logical-path=\"Instances\" name=\"pg-main\"/>\n"
        "  </component>\n"
        "  <component type=\"file-group\" logical-path=\"Config/App\" name=\"settings\" "
        "selectable-backup=\"true\" selectable-restore=\"false\">\n"
        "    <files path=\"/etc/app\" filespec=\"*.conf\" recursive=\"false\" backup-types=\"full "
        "differential\"/>\n"
        "    <files path=\"/etc/app/conf.d\" filespec=\"app-??.ini\" recursive=\"true\" "
        "backup-types=\"full incremental differential log copy\"/>\n"
        "  </component>\n"
        "</writer-metadata>\n";

static void test_sample(void) {
        lvss_wmd *w = build_sample();
        check_sample(w);

        _cleanup_free_ char *xml = NULL;
        size_t len;
        CHECK(lvss_wmd_to_xml(w, &xml, &len) == 0);
        CHECK(len == strlen(sample_xml) && strcmp(xml, sample_xml) == 0);
        free(TAKE_PTR(xml));
        CHECK(lvss_wmd_to_xml(w, &xml, NULL) == 0 && strcmp(xml, sample_xml) == 0); /* ret_len may be NULL */
        free(TAKE_PTR(xml));

        lvss_wmd *copy = round_trip(w);
        check_sample(copy);
        lvss_wmd_free(copy);

        lvss_wmd_component *c = SENTINEL;
        CHECK(lvss_wmd_find_component(w, "Config/App", "settings", &c) == 0);
        CHECK(c == lvss_wmd_get_component(w, 1));
        c = SENTINEL;
        CHECK(lvss_wmd_find_component(w, "Config", "App/settings", &c) == -ENOENT && c == SENTINEL);
        lvss_wmd_free(w);
        lvss_wmd_free(NULL);

        /* The bare minimum: no restore method, default schema, nothing else. */
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, LVSS_WMD_USAGE_OTHER, LVSS_WMD_SOURCE_OTHER,
                           &w) == 0);
        CHECK(lvss_wmd_get_restore_method(w, NULL, NULL, NULL, NULL, NULL) == -ENODATA);
        CHECK(lvss_wmd_get_backup_schema(w) == LVSS_WMD_BACKUP_FULL);
        CHECK(!lvss_wmd_get_instance_name(w));
        copy = round_trip(w);
        CHECK(lvss_wmd_get_restore_method(copy, NULL, NULL, NULL, NULL, NULL) == -ENODATA);
        lvss_wmd_free(copy);
        lvss_wmd_free(w);
}

static const char *const usage_names[] = { "user-data", "bootable-system-state", "system-service", "other" };
static const char *const source_names[] = { "transacted-db", "nontransacted-db", "other" };
static const char *const method_names[] = { "restore-if-not-there", "restore-if-can-replace",
                                            "stop-restore-start",   "restore-to-alternate-location",
                                            "restore-at-reboot",    "custom" };
static const char *const writer_restore_names[] = { "never", "always", "if-replaced" };
static const char *const type_names[] = { "database", "file-group" };
static const char *const kind_names[] = { "files", "database-files", "log-files" };

#define CHECK_ENUM(name, max, names)                                                                        \
        do {                                                                                                \
                CHECK(ELEMENTSOF(names) == (size_t) (max));                                                 \
                for (int i = 0; i < (int) (max); i++) {                                                     \
                        CHECK(streq_null(lvss_wmd_##name##_to_string(i), names[i]));                        \
                        CHECK(lvss_wmd_##name##_from_string(names[i]) == i);                                \
                }                                                                                           \
                CHECK(!lvss_wmd_##name##_to_string(max));                                                   \
                CHECK(!lvss_wmd_##name##_to_string(-1));                                                    \
                CHECK(lvss_wmd_##name##_from_string(NULL) == -EINVAL);                                      \
                CHECK(lvss_wmd_##name##_from_string("") == -EINVAL);                                        \
                CHECK(lvss_wmd_##name##_from_string("OTHER") == -EINVAL);                                   \
                CHECK(lvss_wmd_##name##_from_string("files ") == -EINVAL);                                  \
        } while (0)

static void test_enums(void) {
        CHECK_ENUM(usage, _LVSS_WMD_USAGE_MAX, usage_names);
        CHECK_ENUM(source, _LVSS_WMD_SOURCE_MAX, source_names);
        CHECK_ENUM(restore_method, _LVSS_WMD_RESTORE_MAX, method_names);
        CHECK_ENUM(writer_restore, _LVSS_WMD_WRITER_RESTORE_MAX, writer_restore_names);
        CHECK_ENUM(component_type, _LVSS_WMD_COMPONENT_MAX, type_names);
        CHECK_ENUM(files_kind, _LVSS_WMD_FILES_MAX, kind_names);

        /* Backup type masks, every one of them, as text and in documents. */
        char *s = SENTINEL;
        unsigned t = 77;
        CHECK(lvss_wmd_backup_types_to_string(0, &s) == -EINVAL && s == SENTINEL);
        CHECK(lvss_wmd_backup_types_to_string(LVSS_WMD_BACKUP_ALL + 1, &s) == -EINVAL && s == SENTINEL);
        CHECK(lvss_wmd_backup_types_to_string(LVSS_WMD_BACKUP_ALL, &s) == 0);
        CHECK(strcmp(s, "full incremental differential log copy") == 0);
        free(s);
        for (const char *const *bad = (const char *const[]){ "", " ", "full full", "full bogus", "Full",
                                                             "full,log", "logs", NULL };
             *bad; bad++)
                CHECK(lvss_wmd_backup_types_from_string(*bad, &t) == -EINVAL && t == 77);
        CHECK(lvss_wmd_backup_types_from_string(" copy\tfull\n ", &t) == 0 &&
              t == (LVSS_WMD_BACKUP_COPY | LVSS_WMD_BACKUP_FULL));

        lvss_wmd *w;
        lvss_wmd_component *db, *fg;
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, LVSS_WMD_USAGE_OTHER, LVSS_WMD_SOURCE_OTHER,
                           &w) == 0);
        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_DATABASE, "d", "db", NULL, false, true, &db) ==
              0);
        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_FILE_GROUP, "f", "fg", NULL, false, false, &fg) ==
              0);
        for (unsigned m = 1; m <= LVSS_WMD_BACKUP_ALL; m++) {
                CHECK(lvss_wmd_backup_types_to_string(m, &s) == 0);
                CHECK(lvss_wmd_backup_types_from_string(s, &t) == 0 && t == m);
                free(s);
                CHECK(lvss_wmd_component_add_files(db, LVSS_WMD_DATABASE_FILES, "/d", "x", false, m) == 0);
                CHECK(lvss_wmd_component_add_files(db, LVSS_WMD_LOG_FILES, "/l", "y", true, m) == 0);
                CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "/f", "z", m & 1, m) == 0);
        }
        lvss_wmd *copy = round_trip(w);
        for (unsigned m = 1; m <= LVSS_WMD_BACKUP_ALL; m++) {
                const lvss_wmd_component *c = lvss_wmd_get_component(copy, 0);
                CHECK(lvss_wmd_file_set_get_backup_types(
                              lvss_wmd_component_get_files(c, LVSS_WMD_LOG_FILES, m - 1)) == m);
                c = lvss_wmd_get_component(copy, 1);
                CHECK(lvss_wmd_file_set_get_backup_types(
                              lvss_wmd_component_get_files(c, LVSS_WMD_FILES, m - 1)) == m);
        }
        lvss_wmd_free(copy);
        for (unsigned m = 1; m <= LVSS_WMD_BACKUP_ALL; m++) {
                CHECK(lvss_wmd_set_backup_schema(w, m) == 0);
                copy = round_trip(w);
                CHECK(lvss_wmd_get_backup_schema(copy) == m);
                lvss_wmd_free(copy);
        }
        lvss_wmd_free(w);

        for (lvss_wmd_usage u = 0; u < _LVSS_WMD_USAGE_MAX; u++)
                for (lvss_wmd_source src = 0; src < _LVSS_WMD_SOURCE_MAX; src++) {
                        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, "i", u, src, &w) == 0);
                        copy = round_trip(w);
                        CHECK(lvss_wmd_get_usage(copy) == u && lvss_wmd_get_source(copy) == src);
                        lvss_wmd_free(copy);
                        lvss_wmd_free(w);
                }

        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, LVSS_WMD_USAGE_OTHER, LVSS_WMD_SOURCE_OTHER,
                           &w) == 0);
        for (lvss_wmd_restore_method m = 0; m < _LVSS_WMD_RESTORE_MAX; m++)
                for (lvss_wmd_writer_restore wr = 0; wr < _LVSS_WMD_WRITER_RESTORE_MAX; wr++)
                        for (int reboot = 0; reboot < 2; reboot++) {
                                lvss_wmd_restore_method m2;
                                lvss_wmd_writer_restore wr2;
                                bool reboot2;
                                const char *service = SENTINEL, *procedure = SENTINEL;
                                CHECK(lvss_wmd_set_restore_method(w, m, "s", reboot ? NULL : "p", wr,
                                                                  reboot) == 0);
                                copy = round_trip(w);
                                CHECK(lvss_wmd_get_restore_method(copy, &m2, &service, &procedure, &wr2,
                                                                  &reboot2) == 0);
                                CHECK(m2 == m && wr2 == wr && reboot2 == reboot && streq_null(service, "s"));
                                CHECK(streq_null(procedure, reboot ? NULL : "p"));
                                lvss_wmd_free(copy);
                        }
        lvss_wmd_free(w);
}

static lvss_wmd *new_doc(void) {
        lvss_wmd *w;
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, LVSS_WMD_USAGE_OTHER, LVSS_WMD_SOURCE_OTHER,
                           &w) == 0);
        return w;
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        CHECK(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

/* Strings that no name, caption, logical path or service may be. */
static const char *const bad_names[] = {
        "",
        "a\001b",
        "tab\there",
        "new\nline",
        "cr\rhere",
        "del\x7f",
        "c1\xc2\x85",
        "latin1 caf\xe9",
        "overlong \xc0\xaf",
        "overlong \xe0\x80\xaf",
        "surrogate \xed\xa0\x80",
        "nonchar \xef\xbf\xbe",
        "nonchar \xef\xbf\xbf",
        "too big \xf4\x90\x80\x80",
        "truncated \xe2\x82",
        "lone \x80",
};

static void test_build_refused(void) {
        _cleanup_free_ char *n1024 = repeat('n', LVSS_WMD_NAME_MAX),
                            *n1025 = repeat('n', LVSS_WMD_NAME_MAX + 1);
        lvss_wmd *w = SENTINEL;
        lvss_wmd_component *c = SENTINEL;

        /* Names, everywhere a name goes. */
        for (size_t i = 0; i <= ELEMENTSOF(bad_names); i++) {
                const char *bad = i < ELEMENTSOF(bad_names) ? bad_names[i] : n1025;
                CHECK(lvss_wmd_new(bad, CLASS_A, INSTANCE_A, NULL, 0, 0, &w) == -EINVAL && w == SENTINEL);
                CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, bad, 0, 0, &w) == -EINVAL && w == SENTINEL);
                lvss_wmd *d = new_doc();
                CHECK(lvss_wmd_add_component(d, 0, bad, "n", NULL, true, true, &c) == -EINVAL &&
                      c == SENTINEL);
                CHECK(lvss_wmd_add_component(d, 0, "p", bad, NULL, true, true, &c) == -EINVAL &&
                      c == SENTINEL);
                CHECK(lvss_wmd_add_component(d, 0, "p", "n", bad, true, true, &c) == -EINVAL &&
                      c == SENTINEL);
                CHECK(lvss_wmd_set_restore_method(d, 0, bad, NULL, 0, false) == -EINVAL);
                CHECK(lvss_wmd_get_restore_method(d, NULL, NULL, NULL, NULL, NULL) == -ENODATA);
                lvss_wmd_component *ok;
                CHECK(lvss_wmd_add_component(d, 0, "p", "n", NULL, true, true, &ok) == 0);
                CHECK(lvss_wmd_component_add_dependency(ok, NULL, bad, "x") == -EINVAL);
                CHECK(lvss_wmd_component_add_dependency(ok, NULL, "x", bad) == -EINVAL);
                CHECK(lvss_wmd_component_get_n_dependencies(ok) == 0);
                lvss_wmd_free(d);
        }
        CHECK(lvss_wmd_new(n1024, CLASS_A, INSTANCE_A, n1024, 0, 0, &w) == 0);
        CHECK(lvss_wmd_add_component(w, 0, n1024, n1024, n1024, true, true, &c) == 0);
        CHECK(lvss_wmd_set_restore_method(w, 0, n1024, NULL, 0, false) == 0);
        lvss_wmd_free(w);
        w = SENTINEL;
        CHECK(lvss_wmd_new("caf\xc3\xa9 \xf0\x9f\x92\xbe", CLASS_A, INSTANCE_A, "a b", 0, 0, &w) == 0);
        lvss_wmd_free(w);

        /* UUIDs: upper case accepted and stored lower, anything else refused. */
        w = SENTINEL;
        for (const char *const *bad =
                     (const char *const[]){
                             "", "5c6f0d2e9b1a4c3d8e2f1a2b3c4d5e6f",
                             "{5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f}", "5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6",
                             "5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f0", "5c6f0d2g-9b1a-4c3d-8e2f-1a2b3c4d5e6f",
                             "5c6f0d2e_9b1a-4c3d-8e2f-1a2b3c4d5e6f", " 5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6",
                             "5c6f0d2e-9b1a4-c3d-8e2f-1a2b3c4d5e6f", NULL };
             *bad; bad++) {
                CHECK(lvss_wmd_new("w", *bad, INSTANCE_A, NULL, 0, 0, &w) == -EINVAL && w == SENTINEL);
                CHECK(lvss_wmd_new("w", CLASS_A, *bad, NULL, 0, 0, &w) == -EINVAL && w == SENTINEL);
        }
        CHECK(lvss_wmd_new("w", NULL, INSTANCE_A, NULL, 0, 0, &w) == -EINVAL && w == SENTINEL);
        CHECK(lvss_wmd_new("w", CLASS_A_UPPER, "0E1D2C3B-4A59-6877-8695-A4B3C2D1E0F0", NULL, 0, 0, &w) == 0);
        CHECK(strcmp(lvss_wmd_get_class_id(w), CLASS_A) == 0 &&
              strcmp(lvss_wmd_get_instance_id(w), INSTANCE_A) == 0);
        lvss_wmd_free(w);

        /* Enums out of range, and missing arguments. */
        w = SENTINEL;
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, _LVSS_WMD_USAGE_MAX, 0, &w) == -EINVAL);
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, (lvss_wmd_usage) -1, 0, &w) == -EINVAL);
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, 0, _LVSS_WMD_SOURCE_MAX, &w) == -EINVAL);
        CHECK(lvss_wmd_new(NULL, CLASS_A, INSTANCE_A, NULL, 0, 0, &w) == -EINVAL && w == SENTINEL);
        CHECK(lvss_wmd_new("w", CLASS_A, INSTANCE_A, NULL, 0, 0, NULL) == -EINVAL);

        w = new_doc();
        CHECK(lvss_wmd_set_restore_method(w, _LVSS_WMD_RESTORE_MAX, NULL, NULL, 0, false) == -EINVAL);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, NULL, _LVSS_WMD_WRITER_RESTORE_MAX, false) == -EINVAL);
        CHECK(lvss_wmd_set_restore_method(w, LVSS_WMD_RESTORE_STOP_RESTORE_START, NULL, NULL, 0, false) ==
              -EINVAL);
        CHECK(lvss_wmd_set_restore_method(NULL, 0, NULL, NULL, 0, false) == -EINVAL);
        CHECK(lvss_wmd_get_restore_method(w, NULL, NULL, NULL, NULL, NULL) == -ENODATA);
        _cleanup_free_ char *t4096 = repeat('t', LVSS_WMD_TEXT_MAX),
                            *t4097 = repeat('t', LVSS_WMD_TEXT_MAX + 1);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, t4097, 0, false) == -EINVAL);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, "", 0, false) == -EINVAL);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, "a\r\nb", 0, false) == -EINVAL);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, "a\x01", 0, false) == -EINVAL);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, t4096, 0, false) == 0);
        CHECK(lvss_wmd_set_restore_method(w, 0, NULL, "a\tb\nc", 0, false) == 0);

        CHECK(lvss_wmd_set_backup_schema(w, 0) == -EINVAL);
        CHECK(lvss_wmd_set_backup_schema(w, LVSS_WMD_BACKUP_ALL + 1) == -EINVAL);
        CHECK(lvss_wmd_set_backup_schema(w, LVSS_WMD_BACKUP_FULL | 1u << 7) == -EINVAL);
        CHECK(lvss_wmd_get_backup_schema(w) == LVSS_WMD_BACKUP_FULL);

        /* File set paths and filespecs. */
        _cleanup_free_ char *p4097 = repeat('p', LVSS_WMD_PATH_MAX + 1),
                            *f255 = repeat('f', LVSS_WMD_FILESPEC_MAX),
                            *f256 = repeat('f', LVSS_WMD_FILESPEC_MAX + 1);
        p4097[0] = '/';
        for (const char *const *bad =
                     (const char *const[]){ "", "relative", "a/b", "/a//b", "/a/", "//", "/a/./b", "/.",
                                            "/a/..", "/../b", "/a\nb", "/a\x7f", p4097, NULL };
             *bad; bad++)
                CHECK(lvss_wmd_add_exclude(w, *bad, "*", false) == -EINVAL);
        for (const char *const *bad =
                     (const char *const[]){ "", "a/b", "/", ".", "..", "a\tb", "\xff", f256, NULL };
             *bad; bad++)
                CHECK(lvss_wmd_add_exclude(w, "/a", *bad, false) == -EINVAL);
        CHECK(lvss_wmd_add_exclude(w, NULL, "*", false) == -EINVAL);
        CHECK(lvss_wmd_add_exclude(w, "/a", NULL, false) == -EINVAL);
        CHECK(lvss_wmd_add_exclude(NULL, "/a", "*", false) == -EINVAL);
        CHECK(lvss_wmd_get_n_excludes(w) == 0);
        for (const char *const *good =
                     (const char *const[]){ "/", "/a", "/a/.hidden", "/a/..b", "/a b/c", NULL };
             *good; good++)
                CHECK(lvss_wmd_add_exclude(w, *good, "*", false) == 0);
        for (const char *const *good =
                     (const char *const[]){ "*", "*.*", "file?.log", ".hidden", "...", f255, NULL };
             *good; good++)
                CHECK(lvss_wmd_add_exclude(w, "/a", *good, true) == 0);
        lvss_wmd_free(w);

        /* Components: logical paths, names, types, duplicates. */
        w = new_doc();
        c = SENTINEL;
        for (const char *const *bad = (const char *const[]){ "/a", "a/", "a//b", "/", NULL }; *bad; bad++)
                CHECK(lvss_wmd_add_component(w, 0, *bad, "n", NULL, true, true, &c) == -EINVAL &&
                      c == SENTINEL);
        CHECK(lvss_wmd_add_component(w, 0, "a", "n/m", NULL, true, true, &c) == -EINVAL && c == SENTINEL);
        CHECK(lvss_wmd_add_component(w, _LVSS_WMD_COMPONENT_MAX, "a", "n", NULL, true, true, &c) == -EINVAL);
        CHECK(lvss_wmd_add_component(NULL, 0, "a", "n", NULL, true, true, &c) == -EINVAL && c == SENTINEL);
        lvss_wmd_component *db, *fg;
        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_DATABASE, "a/b c/d", "n", NULL, true, true,
                                     &db) == 0);
        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_FILE_GROUP, "a/b c/d", "n", NULL, true, true,
                                     &c) == -EEXIST &&
              c == SENTINEL);
        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_FILE_GROUP, "a/b c/d", "m", NULL, true, true,
                                     &fg) == 0);
        CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_FILE_GROUP, "a/b c", "n", NULL, true, true,
                                     NULL) == 0);
        CHECK(lvss_wmd_get_n_components(w) == 3);

        /* Files of the wrong kind for the component, bad masks. */
        CHECK(lvss_wmd_component_add_files(db, LVSS_WMD_FILES, "/a", "*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_DATABASE_FILES, "/a", "*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_LOG_FILES, "/a", "*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, _LVSS_WMD_FILES_MAX, "/a", "*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "/a", "*", false, 0) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "/a", "*", false, LVSS_WMD_BACKUP_ALL + 1) ==
              -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "a", "*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(fg, LVSS_WMD_FILES, "/a", "a/*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_add_files(NULL, LVSS_WMD_FILES, "/a", "*", false, 1) == -EINVAL);
        CHECK(lvss_wmd_component_get_n_files(fg, LVSS_WMD_FILES) == 0);
        CHECK(lvss_wmd_component_get_n_files(db, LVSS_WMD_FILES) == 0);

        /* Dependencies: never on the component itself, class ids checked. */
        CHECK(lvss_wmd_component_add_dependency(db, NULL, "a/b c/d", "n") == -EINVAL);
        CHECK(lvss_wmd_component_add_dependency(db, CLASS_A, "a/b c/d", "n") == -EINVAL);
        CHECK(lvss_wmd_component_add_dependency(db, CLASS_A_UPPER, "a/b c/d", "n") == -EINVAL);
        CHECK(lvss_wmd_component_add_dependency(db, "not-a-uuid", "a", "n") == -EINVAL);
        CHECK(lvss_wmd_component_add_dependency(db, NULL, "/a", "n") == -EINVAL);
        CHECK(lvss_wmd_component_add_dependency(db, NULL, "a", "n/m") == -EINVAL);
        CHECK(lvss_wmd_component_add_dependency(NULL, NULL, "a", "n") == -EINVAL);
        CHECK(lvss_wmd_component_get_n_dependencies(db) == 0);
        CHECK(lvss_wmd_component_add_dependency(db, CLASS_B, "a/b c/d", "n") == 0); /* the same, elsewhere */
        CHECK(lvss_wmd_component_add_dependency(db, CLASS_A_UPPER, "a/b c/d", "m") == 0);
        CHECK(strcmp(lvss_wmd_dependency_get_writer_class_id(lvss_wmd_component_get_dependency(db, 1)),
                     CLASS_A) == 0);
        lvss_wmd_free(w);

        /* Limits. */
        w = new_doc();
        char name[32];
        for (unsigned i = 0; i < LVSS_WMD_MAX_COMPONENTS; i++) {
                snprintf(name, sizeof(name), "c%u", i);
                CHECK(lvss_wmd_add_component(w, LVSS_WMD_COMPONENT_DATABASE, "p", name, NULL, true, true,
                                             &c) == 0);
        }
        lvss_wmd_component *last = c;
        c = SENTINEL;
        CHECK(lvss_wmd_add_component(w, 0, "p", "one-more", NULL, true, true, &c) == -E2BIG &&
              c == SENTINEL);
        CHECK(lvss_wmd_get_n_components(w) == LVSS_WMD_MAX_COMPONENTS);
        for (unsigned i = 0; i < LVSS_WMD_MAX_FILE_SETS; i++) {
                CHECK(lvss_wmd_component_add_files(last,
                                                   i % 2 ? LVSS_WMD_LOG_FILES : LVSS_WMD_DATABASE_FILES,
                                                   "/a", "*", false, 1) == 0);
                CHECK(lvss_wmd_add_exclude(w, "/a", "*", false) == 0);
                CHECK(lvss_wmd_component_add_dependency(last, NULL, "p", "c0") == 0);
        }
        CHECK(lvss_wmd_component_add_files(last, LVSS_WMD_DATABASE_FILES, "/a", "*", false, 1) == -E2BIG);
        CHECK(lvss_wmd_component_add_files(last, LVSS_WMD_LOG_FILES, "/a", "*", false, 1) == -E2BIG);
        CHECK(lvss_wmd_add_exclude(w, "/a", "*", false) == -E2BIG);
        CHECK(lvss_wmd_component_add_dependency(last, NULL, "p", "c0") == -E2BIG);
        CHECK(lvss_wmd_component_get_n_files(last, LVSS_WMD_DATABASE_FILES) == LVSS_WMD_MAX_FILE_SETS / 2);
        lvss_wmd_free(w);

        /* Output past LVSS_WMD_XML_MAX is refused, so that all output can be read back. */
        w = new_doc();
        for (unsigned i = 0; i < LVSS_WMD_MAX_COMPONENTS; i++) {
                snprintf(name, sizeof(name), "c%u", i);
                CHECK(lvss_wmd_add_component(w, 0, "p", name, n1024, true, true, NULL) == 0);
        }
        char *xml = SENTINEL;
        size_t len = 77;
        CHECK(lvss_wmd_to_xml(w, &xml, &len) == -EFBIG && xml == SENTINEL && len == 77);
        CHECK(lvss_wmd_to_xml(NULL, &xml, &len) == -EINVAL && xml == SENTINEL);
        CHECK(lvss_wmd_to_xml(w, NULL, &len) == -EINVAL);
        lvss_wmd_free(w);
}

/* ---- parsing ---- */

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define ROOT "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"1\">"
#define IDENT_ATTRS                                                                                         \
        "name=\"w\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A "\" usage=\"other\" "               \
        "source=\"other\""
#define IDENT "<identity " IDENT_ATTRS "/>"
#define END "</writer-metadata>"
#define DOC(body) HEAD ROOT IDENT body END
#define FG(attrs, body)                                                                                     \
        "<component type=\"file-group\" logical-path=\"p\" name=\"n\" selectable-backup=\"true\" "          \
        "selectable-restore=\"true\"" attrs ">" body "</component>"
#define DB(body)                                                                                            \
        "<component type=\"database\" logical-path=\"p\" name=\"d\" selectable-backup=\"true\" "            \
        "selectable-restore=\"true\">" body "</component>"
#define FILES(kind) "<" kind " path=\"/a\" filespec=\"*\" recursive=\"false\" backup-types=\"full\"/>"

static int parse(const char *xml, size_t len) {
        lvss_wmd *w = SENTINEL;
        int r = lvss_wmd_from_xml(xml, len, &w);
        if (r < 0)
                CHECK(w == SENTINEL);
        else {
                CHECK(w && w != SENTINEL);
                lvss_wmd_free(w);
        }
        return r;
}

#define CHECK_BAD(xml) CHECK(parse(xml, sizeof(xml) - 1) == -EBADMSG)
#define CHECK_GOOD(xml) CHECK(parse(xml, sizeof(xml) - 1) == 0)

static void test_parse_refused(void) {
        /* The shape is right, so that every refusal below is for its own reason. */
        CHECK_GOOD(DOC(""));
        CHECK_GOOD(DOC(FG("", FILES("files")) DB(FILES("database-files") FILES("log-files"))));

        /* Namespace, version, root. */
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:2\" version=\"1\">" IDENT END);
        CHECK_BAD(HEAD "<writer-metadata version=\"1\"><identity " IDENT_ATTRS "/>" END);
        CHECK_BAD(HEAD ROOT "<identity xmlns=\"\" " IDENT_ATTRS "/>" END);
        CHECK_BAD(HEAD ROOT IDENT
                  "<x:exclude xmlns:x=\"urn:other\" path=\"/a\" filespec=\"*\" recursive=\"false\"/>" END);
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"2\">" IDENT END);
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"1.0\">" IDENT END);
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\" 1\">" IDENT END);
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:1\">" IDENT END);
        CHECK_BAD(HEAD "<writer-metadata-2 xmlns=\"urn:lvss:wmd:1\" version=\"1\">" IDENT
                       "</writer-metadata-2>");
        CHECK_BAD(HEAD "<identity xmlns=\"urn:lvss:wmd:1\" " IDENT_ATTRS "/>");

        /* Elements: unknown, misplaced, repeated, missing. */
        CHECK_BAD(DOC("<bogus/>"));
        CHECK_BAD(DOC(FG("", "<bogus/>")));
        CHECK_BAD(DOC(FG("", "<component/>")));
        CHECK_BAD(HEAD ROOT "<identity " IDENT_ATTRS
                            "><exclude path=\"/a\" filespec=\"*\" recursive=\"false\"/>"
                            "</identity>" END);
        CHECK_BAD(DOC(FG("", "<dependency logical-path=\"q\" name=\"m\"><bogus/></dependency>")));
        CHECK_BAD(DOC(IDENT));
        CHECK_BAD(HEAD ROOT END);
        CHECK_BAD(HEAD ROOT "<backup-schema types=\"full\"/>" END);
        CHECK_BAD(DOC("<backup-schema types=\"full\"/><backup-schema types=\"log\"/>"));
        CHECK_BAD(DOC(
                "<restore-method method=\"custom\" writer-restore=\"never\" reboot-required=\"false\"/>"
                "<restore-method method=\"custom\" writer-restore=\"never\" reboot-required=\"false\"/>"));

        /* Attributes: unknown, namespaced, missing, empty optional ones. */
        CHECK_BAD(HEAD ROOT "<identity " IDENT_ATTRS " color=\"blue\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity " IDENT_ATTRS " xml:lang=\"en\"/>" END);
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:1\" xmlns:w=\"urn:lvss:wmd:1\" version=\"1\">"
                       "<identity " IDENT_ATTRS " w:name=\"x\"/>" END);
        CHECK_BAD(HEAD "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"1\" extra=\"\">" IDENT END);
        CHECK_BAD(HEAD ROOT "<identity name=\"w\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity " IDENT_ATTRS " instance-name=\"\"/>" END);
        CHECK_BAD(DOC("<component type=\"file-group\" logical-path=\"p\" name=\"n\" "
                      "selectable-backup=\"true\"/>"));
        CHECK_BAD(DOC(FG(" caption=\"\"", "")));
        CHECK_BAD(DOC(FG("", "<files path=\"/a\" filespec=\"*\" recursive=\"false\"/>")));
        CHECK_BAD(DOC("<exclude path=\"/a\" filespec=\"*\"/>"));
        CHECK_BAD(DOC("<exclude path=\"/a\" filespec=\"*\" recursive=\"false\" backup-types=\"full\"/>"));
        CHECK_BAD(DOC("<restore-method method=\"custom\" reboot-required=\"false\"/>"));
        CHECK_BAD(DOC(FG("", "<dependency name=\"m\"/>")));

        /* UUIDs. */
        CHECK_BAD(HEAD ROOT "<identity name=\"w\" class-id=\"not-a-uuid\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"w\" class-id=\"" CLASS_A
                            "\" instance-id=\"0e1d2c3b-4a59-6877-8695-"
                            "a4b3c2d1e0f\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(
                DOC(FG("", "<dependency writer-class-id=\"" CLASS_A "x\" logical-path=\"q\" name=\"m\"/>")));

        /* Enum values, booleans, backup type lists. */
        CHECK_BAD(HEAD ROOT "<identity name=\"w\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"User-Data\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"w\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"db\"/>" END);
        CHECK_BAD(DOC(
                "<restore-method method=\"restore\" writer-restore=\"never\" reboot-required=\"false\"/>"));
        CHECK_BAD(DOC("<restore-method method=\"custom\" writer-restore=\"sometimes\" "
                      "reboot-required=\"false\"/>"));
        CHECK_BAD(
                DOC("<restore-method method=\"custom\" writer-restore=\"never\" reboot-required=\"yes\"/>"));
        CHECK_BAD(DOC(
                "<component type=\"file-groups\" logical-path=\"p\" name=\"n\" selectable-backup=\"true\" "
                "selectable-restore=\"true\"/>"));
        CHECK_BAD(DOC(
                "<component type=\"file-group\" logical-path=\"p\" name=\"n\" selectable-backup=\"True\" "
                "selectable-restore=\"true\"/>"));
        CHECK_BAD(DOC(
                "<component type=\"file-group\" logical-path=\"p\" name=\"n\" selectable-backup=\"true\" "
                "selectable-restore=\"1\"/>"));
        CHECK_BAD(DOC("<exclude path=\"/a\" filespec=\"*\" recursive=\"\"/>"));
        CHECK_BAD(DOC("<backup-schema types=\"full bogus\"/>"));
        CHECK_BAD(DOC("<backup-schema types=\"full full\"/>"));
        CHECK_BAD(DOC("<backup-schema types=\"\"/>"));
        CHECK_BAD(DOC(FG(
                "", "<files path=\"/a\" filespec=\"*\" recursive=\"false\" backup-types=\"everything\"/>")));

        /* Rules of the model. */
        CHECK_BAD(DOC(FG("", "") FG("", "")));
        CHECK_BAD(DOC(FG("", FILES("database-files"))));
        CHECK_BAD(DOC(FG("", FILES("log-files"))));
        CHECK_BAD(DOC(DB(FILES("files"))));
        CHECK_BAD(DOC(FG("", "<dependency logical-path=\"p\" name=\"n\"/>")));
        CHECK_BAD(DOC(FG("", "<dependency writer-class-id=\"" CLASS_A_UPPER
                             "\" logical-path=\"p\" name=\"n\"/>")));
        CHECK_GOOD(
                DOC(FG("", "<dependency writer-class-id=\"" CLASS_B "\" logical-path=\"p\" name=\"n\"/>")));
        CHECK_BAD(DOC("<restore-method method=\"stop-restore-start\" writer-restore=\"never\" "
                      "reboot-required=\"false\"/>"));
        CHECK_BAD(HEAD ROOT "<identity name=\"a&#x7f;\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"a&#x85;\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"a&#9;b\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"a&#1;\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"a&#xFFFE;\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(DOC(
                "<component type=\"file-group\" logical-path=\"/p\" name=\"n\" selectable-backup=\"true\" "
                "selectable-restore=\"true\"/>"));
        CHECK_BAD(DOC(
                "<component type=\"file-group\" logical-path=\"p\" name=\"a/n\" selectable-backup=\"true\" "
                "selectable-restore=\"true\"/>"));
        CHECK_BAD(DOC("<exclude path=\"relative\" filespec=\"*\" recursive=\"false\"/>"));
        CHECK_BAD(DOC("<exclude path=\"/a/../etc\" filespec=\"*\" recursive=\"false\"/>"));
        CHECK_BAD(DOC("<exclude path=\"/a\" filespec=\"b/*\" recursive=\"false\"/>"));
        CHECK_BAD(
                DOC("<restore-method method=\"custom\" user-procedure=\"a&#13;b\" writer-restore=\"never\" "
                    "reboot-required=\"false\"/>"));
        CHECK_GOOD(
                DOC("<restore-method method=\"custom\" user-procedure=\"a&#10;b\" writer-restore=\"never\" "
                    "reboot-required=\"false\"/>"));

        /* Content that is not ours: text, CDATA, processing instructions, entities. */
        CHECK_BAD(HEAD ROOT "<identity " IDENT_ATTRS ">text</identity>" END);
        CHECK_BAD(DOC("hello"));
        CHECK_BAD(DOC("<![CDATA[x]]>"));
        CHECK_BAD(DOC("<?foo bar?>"));
        CHECK_BAD("<?xml version=\"1.0\"?><?xml-stylesheet href=\"x.xsl\"?>" ROOT IDENT END);
        CHECK_BAD(HEAD ROOT "<identity name=\"&undefined;\" class-id=\"" CLASS_A
                            "\" instance-id=\"" INSTANCE_A "\" usage=\"other\" source=\"other\"/>" END);

        /* DOCTYPEs, whatever they hold: entity bombs, external entities and DTDs. */
        CHECK_BAD(HEAD "<!DOCTYPE writer-metadata>" ROOT IDENT END);
        CHECK_BAD(HEAD
                  "<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                  "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
                  "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
                  "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
                  "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
                  "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
                  "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
                  "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
                  "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
                  "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>" ROOT
                  "<identity name=\"&lol9;\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                  "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD "<!DOCTYPE writer-metadata [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>" ROOT
                       "<identity name=\"&e;\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                       "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD "<!DOCTYPE writer-metadata SYSTEM \"http://127.0.0.1:1/wmd.dtd\">" ROOT IDENT END);
        CHECK_BAD(HEAD
                  "<!DOCTYPE writer-metadata [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>" ROOT IDENT
                          END);

        /* Not XML, not whole, not UTF-8. */
        CHECK(parse("", 0) == -EBADMSG);
        CHECK(parse(NULL, 0) == -EBADMSG);
        CHECK_BAD(" \n");
        CHECK_BAD("writer-metadata");
        CHECK_BAD(DOC("") "<writer-metadata/>");
        CHECK_BAD(HEAD ROOT "<identity name=\"caf\xe9\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n" ROOT
                  "<identity name=\"caf\xe9\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                  "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(HEAD ROOT "<identity name=\"\xc0\xaf\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                            "\" usage=\"other\" source=\"other\"/>" END);
        CHECK_BAD(DOC("") "\0");
        CHECK_BAD("\xff\xfe<\0w\0/\0>\0"); /* UTF-16 */
        CHECK_GOOD("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n" ROOT
                   "<identity name=\"caf\xc3\xa9\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                   "\" usage=\"other\" source=\"other\"/>" END); /* read as UTF-8 */

        /* Truncated anywhere before the root closes. */
        const char *end = strrchr(sample_xml, '>');
        for (size_t n = 0; sample_xml + n < end; n++)
                CHECK(parse(sample_xml, n) == -EBADMSG);
        CHECK(parse(sample_xml, (size_t) (end - sample_xml) + 1) == 0);
        CHECK(parse(sample_xml, strlen(sample_xml)) == 0);
        /* And broken in the middle, byte by byte. */
        _cleanup_free_ char *copy = strdup(sample_xml);
        CHECK(copy);
        for (size_t i = 0; copy[i]; i++)
                if (copy[i] == '<' || copy[i] == '>' || copy[i] == '"' || copy[i] == '=') {
                        char saved = copy[i];
                        copy[i] = saved == '"' ? '\'' : 'x';
                        CHECK(parse(copy, strlen(copy)) == -EBADMSG);
                        copy[i] = saved;
                }
}

/* The XML of a document with N components (each with F file sets) and padding to LEN bytes if LEN. */
static char *big_doc(unsigned n, unsigned f, size_t len) {
        char *buf = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&buf, &size);
        CHECK(out);
        fputs(HEAD ROOT IDENT, out);
        for (unsigned i = 0; i < n; i++) {
                fprintf(out,
                        "<component type=\"file-group\" logical-path=\"p\" name=\"c%u\" "
                        "selectable-backup=\"true\" "
                        "selectable-restore=\"true\">",
                        i);
                for (unsigned j = 0; j < f; j++)
                        fputs(FILES("files"), out);
                fputs("</component>", out);
        }
        if (len > 0) {
                long pad = (long) len - ftell(out) - (long) strlen(END) - 8;
                CHECK(pad >= 0);
                fputs("<!--", out);
                for (long i = 0; i < pad; i++)
                        fputc('x', out);
                fputs(" -->", out);
        }
        fputs(END, out);
        CHECK(fclose(out) == 0);
        CHECK(len == 0 || size == len);
        return buf;
}

static void test_parse_limits(void) {
        _cleanup_free_ char *ok = big_doc(LVSS_WMD_MAX_COMPONENTS, 0, 0),
                            *over = big_doc(LVSS_WMD_MAX_COMPONENTS + 1, 0, 0),
                            *files_ok = big_doc(1, 4096, 0), *files_over = big_doc(1, 4097, 0),
                            *max = big_doc(1, 1, LVSS_WMD_XML_MAX),
                            *max1 = big_doc(1, 1, LVSS_WMD_XML_MAX + 1);
        lvss_wmd *w;
        CHECK(lvss_wmd_from_xml(ok, strlen(ok), &w) == 0);
        CHECK(lvss_wmd_get_n_components(w) == LVSS_WMD_MAX_COMPONENTS);
        lvss_wmd_free(w);
        CHECK(parse(over, strlen(over)) == -EBADMSG);
        CHECK(lvss_wmd_from_xml(files_ok, strlen(files_ok), &w) == 0);
        CHECK(lvss_wmd_component_get_n_files(lvss_wmd_get_component(w, 0), LVSS_WMD_FILES) == 4096);
        lvss_wmd_free(w);
        CHECK(parse(files_over, strlen(files_over)) == -EBADMSG);
        CHECK(parse(max, strlen(max)) == 0);
        CHECK(parse(max1, strlen(max1)) == -EFBIG);
        CHECK(parse(max1, SIZE_MAX) == -EFBIG);

        lvss_wmd *sentinel = SENTINEL;
        CHECK(lvss_wmd_from_xml(NULL, 5, &sentinel) == -EINVAL && sentinel == SENTINEL);
        CHECK(lvss_wmd_from_xml(ok, strlen(ok), NULL) == -EINVAL);
}

/* Accepted, though not as we write it: the output is the canonical form. */
static void test_parse_lenient(void) {
        static const char odd[] = "<?xml version='1.0'?>\n"
                                  "<!-- a comment -->\n"
                                  "<w:writer-metadata xmlns:w='urn:lvss:wmd:1' version='1'>"
                                  "<w:component type='file-group' logical-path='Config/App' name='settings' "
                                  "selectable-restore='false' selectable-backup='true'>"
                                  "<!-- inside -->"
                                  "<w:files path='/etc/app/conf.d' filespec='app-??.ini' recursive='true' "
                                  "backup-types='copy log differential incremental full'/>"
                                  "</w:component>"
                                  "<w:exclude path='/var/lib/app' filespec='*.tmp' recursive='true'/>"
                                  "<w:identity name='w' class-id='" CLASS_A_UPPER
                                  "' instance-id='" INSTANCE_A "' source='other' "
                                  "usage='other'/>"
                                  "</w:writer-metadata>\n";
        static const char canonical[] =
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<writer-metadata xmlns=\"urn:lvss:wmd:1\" version=\"1\">\n"
                "  <identity name=\"w\" class-id=\"" CLASS_A "\" instance-id=\"" INSTANCE_A
                "\" usage=\"other\" source=\"other\"/>\n"
                "  <backup-schema types=\"full\"/>\n"
                "  <exclude path=\"/var/lib/app\" filespec=\"*.tmp\" recursive=\"true\"/>\n"
                "  <component type=\"file-group\" logical-path=\"Config/App\" "
                "name=\"settings\" selectable-backup=\"true\" selectable-restore=\"false\">\n"
                "    <files path=\"/etc/app/conf.d\" filespec=\"app-??.ini\" "
                "recursive=\"true\" backup-types=\"full incremental differential log "
                "copy\"/>\n"
                "  </component>\n"
                "</writer-metadata>\n";
        lvss_wmd *w;
        _cleanup_free_ char *xml = NULL;
        CHECK(lvss_wmd_from_xml(odd, sizeof(odd) - 1, &w) == 0);
        CHECK(lvss_wmd_to_xml(w, &xml, NULL) == 0);
        CHECK(strcmp(xml, canonical) == 0);
        lvss_wmd_free(round_trip(w));
        lvss_wmd_free(w);
}

/* Runs FN with stderr (fd 2) sent to a file; returns how many bytes were written there. */
static off_t stderr_bytes(void (*fn)(void)) {
        char path[] = "/tmp/test-wmd-stderr.XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(unlink(path) == 0);
        int saved = dup(STDERR_FILENO);
        CHECK(saved >= 0);
        check_fd = saved;
        fflush(stderr);
        CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
        fn();
        fflush(stderr);
        CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        check_fd = STDERR_FILENO;
        close(saved);
        struct stat st;
        CHECK(fstat(fd, &st) == 0);
        close(fd);
        return st.st_size;
}

static void raw_libxml2_errors(void) {
        /* libxml2 on its own, default handlers: it does print, so the capture works. */
        xmlDocPtr doc = xmlReadMemory("<a><b></a>", 10, NULL, NULL, 0);
        CHECK(!doc);
}

static void all_refusals(void) {
        test_parse_refused();
        test_parse_limits();
        test_build_refused();
}

int main(void) {
        test_sample();
        test_enums();
        test_parse_lenient();
        CHECK(stderr_bytes(all_refusals) == 0);
        CHECK(stderr_bytes(raw_libxml2_errors) > 0); /* our handlers were put back, too */
        xmlCleanupParser();
        printf("test-wmd: ok\n");
        return 0;
}
