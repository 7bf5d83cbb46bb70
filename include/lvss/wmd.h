/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Writer Metadata Document (WMD): what a writer tells requesters about its
 * data, as in Microsoft VSS. An in-memory model built through the functions
 * below, and its XML form (made and parsed with libxml2).
 *
 * The model: the writer's identity (name, class id, instance id, optional
 * instance name, usage type, source type), an optional restore method, the
 * backup schema (which backup types the writer supports), an exclude list of
 * file sets, and components. A component has a type (database or file
 * group), a logical path and a name (unique together within a document), a
 * caption, two selectability flags, file sets and dependencies on other
 * components (of this writer, or of another writer named by class id). A
 * file-group component holds "files"; a database holds "database-files" and
 * "log-files". Per-component private backup metadata belongs to the Backup
 * Components Document, not here.
 *
 * Rules, checked when building and when parsing:
 *   - names, captions, logical paths, service names: non-empty UTF-8 without
 *     control characters (C0, DEL, C1) or U+FFFE/U+FFFF, at most
 *     LVSS_WMD_NAME_MAX bytes; a component name has no '/'; a logical path
 *     is '/'-separated non-empty segments ("Databases/Main"), so a component
 *     is named unambiguously by "logical-path/name";
 *   - the user procedure: the same, but may hold '\t' and '\n', at most
 *     LVSS_WMD_TEXT_MAX bytes;
 *   - file set paths: absolute, no empty, "." or ".." segment, no trailing
 *     '/' (except "/" itself), at most LVSS_WMD_PATH_MAX bytes; filespecs: a
 *     file name pattern with '*' and '?' wildcards, no '/', at most
 *     LVSS_WMD_FILESPEC_MAX bytes;
 *   - UUIDs: 8-4-4-4-12 hex digits; upper case is accepted and stored lower;
 *   - enum values from the fixed lists; backup type masks non-zero and within
 *     LVSS_WMD_BACKUP_ALL;
 *   - at most LVSS_WMD_MAX_COMPONENTS components, LVSS_WMD_MAX_FILE_SETS file
 *     sets per component (all kinds together) and in the exclude list,
 *     LVSS_WMD_MAX_DEPENDENCIES dependencies per component;
 *   - a stop-restore-start restore method names its service;
 *   - no dependency of a component on itself (no class id, or this writer's).
 *
 * XML, in the namespace urn:lvss:wmd:1. Data is only in attributes, all
 * required but those in [brackets]; booleans are "true" or "false"; backup
 * type masks are space-separated lists of full, incremental, differential,
 * log, copy. Elements, with their attributes:
 *
 *   writer-metadata    version="1"
 *     identity         name class-id instance-id [instance-name] usage source     exactly one
 *     restore-method   method [service] [user-procedure] writer-restore           at most one
 *                      reboot-required
 *     backup-schema    types                                                      at most one
 *     exclude          path filespec recursive                                    any number
 *     component        type logical-path name [caption] selectable-backup         any number
 *                      selectable-restore
 *       files          path filespec recursive backup-types                       (file-group)
 *       database-files path filespec recursive backup-types                       (database)
 *       log-files      path filespec recursive backup-types                       (database)
 *       dependency     [writer-class-id] logical-path name                        any number
 *
 * Children may come in any order when parsed; lvss_wmd_to_xml writes them in
 * the order above (file sets by kind, each kind and the dependencies in
 * insertion order), always writes <backup-schema>, escapes '\t' and '\n' as
 * character references, and indents by two spaces: its output is canonical,
 * parsing it and writing it again gives the same bytes. For example (the
 * long lines are folded here):
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <writer-metadata xmlns="urn:lvss:wmd:1" version="1">
 *     <identity name="SqliteWriter" class-id="5c6f0d2e-9b1a-4c3d-8e2f-1a2b3c4d5e6f"
 *       instance-id="0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f0" instance-name="app" usage="user-data"
 *       source="transacted-db"/>
 *     <restore-method method="stop-restore-start" service="app.service"
 *       user-procedure="Stop app.service,&#10;&#9;put the files back." writer-restore="if-replaced"
 *       reboot-required="false"/>
 *     <backup-schema types="full incremental log"/>
 *     <exclude path="/var/lib/app" filespec="*.tmp" recursive="true"/>
 *     <component type="database" logical-path="Databases" name="main" caption="Main database"
 *       selectable-backup="true" selectable-restore="true">
 *       <database-files path="/var/lib/app" filespec="main.db" recursive="false"
 *         backup-types="full incremental differential log copy"/>
 *       <log-files path="/var/lib/app" filespec="main.db-wal" recursive="false" backup-types="full log"/>
 *       <dependency logical-path="Config/App" name="settings"/>
 *       <dependency writer-class-id="9a1b2c3d-4e5f-4061-8273-8495a6b7c8d9" logical-path="Instances"
 *         name="pg-main"/>
 *     </component>
 *     <component type="file-group" logical-path="Config/App" name="settings" selectable-backup="true"
 *       selectable-restore="false">
 *       <files path="/etc/app/conf.d" filespec="app-??.ini" recursive="true" backup-types="full"/>
 *     </component>
 *   </writer-metadata>
 *
 * When parsing, <backup-schema> may be left out (then: full), the namespace
 * may have a prefix, and comments are ignored; a DOCTYPE, processing
 * instructions, text content, unknown elements or attributes, and elements
 * of another namespace are refused. Parsing never loads anything from the
 * network or the file system, never expands entities, and never prints:
 * libxml2's messages are silenced.
 *
 * Every int function returns a negative errno on failure and >= 0 on
 * success; ret_* parameters are untouched on failure. Getters return
 * pointers owned by the document, valid until lvss_wmd_free. A document is
 * not thread-safe; distinct documents may be used from distinct threads.
 */

#include <stdbool.h>
#include <stddef.h>

#define LVSS_WMD_NAMESPACE "urn:lvss:wmd:1"
#define LVSS_WMD_VERSION 1
#define LVSS_WMD_NAME_MAX 1024u
#define LVSS_WMD_TEXT_MAX 4096u
#define LVSS_WMD_PATH_MAX 4096u
#define LVSS_WMD_FILESPEC_MAX 255u
#define LVSS_WMD_UUID_LEN 36u /* 8-4-4-4-12 */
#define LVSS_WMD_MAX_COMPONENTS 4096u
#define LVSS_WMD_MAX_FILE_SETS 4096u
#define LVSS_WMD_MAX_DEPENDENCIES 4096u
#define LVSS_WMD_XML_MAX (1024u * 1024u) /* bytes of XML, both ways */

typedef struct lvss_wmd lvss_wmd;
typedef struct lvss_wmd_component lvss_wmd_component;
typedef struct lvss_wmd_file_set lvss_wmd_file_set;
typedef struct lvss_wmd_dependency lvss_wmd_dependency;

typedef enum lvss_wmd_usage {
        LVSS_WMD_USAGE_USER_DATA,
        LVSS_WMD_USAGE_BOOTABLE_SYSTEM_STATE,
        LVSS_WMD_USAGE_SYSTEM_SERVICE,
        LVSS_WMD_USAGE_OTHER,
        _LVSS_WMD_USAGE_MAX
} lvss_wmd_usage;

typedef enum lvss_wmd_source {
        LVSS_WMD_SOURCE_TRANSACTED_DB,
        LVSS_WMD_SOURCE_NONTRANSACTED_DB,
        LVSS_WMD_SOURCE_OTHER,
        _LVSS_WMD_SOURCE_MAX
} lvss_wmd_source;

typedef enum lvss_wmd_restore_method {
        LVSS_WMD_RESTORE_IF_NOT_THERE,
        LVSS_WMD_RESTORE_IF_CAN_REPLACE,
        LVSS_WMD_RESTORE_STOP_RESTORE_START,
        LVSS_WMD_RESTORE_TO_ALTERNATE_LOCATION,
        LVSS_WMD_RESTORE_AT_REBOOT,
        LVSS_WMD_RESTORE_CUSTOM,
        _LVSS_WMD_RESTORE_MAX
} lvss_wmd_restore_method;

typedef enum lvss_wmd_writer_restore {
        LVSS_WMD_WRITER_RESTORE_NEVER,
        LVSS_WMD_WRITER_RESTORE_ALWAYS,
        LVSS_WMD_WRITER_RESTORE_IF_REPLACED,
        _LVSS_WMD_WRITER_RESTORE_MAX
} lvss_wmd_writer_restore;

typedef enum lvss_wmd_component_type {
        LVSS_WMD_COMPONENT_DATABASE,
        LVSS_WMD_COMPONENT_FILE_GROUP,
        _LVSS_WMD_COMPONENT_MAX
} lvss_wmd_component_type;

typedef enum lvss_wmd_files_kind {
        LVSS_WMD_FILES, /* of a file group */
        LVSS_WMD_DATABASE_FILES, /* of a database */
        LVSS_WMD_LOG_FILES, /* of a database */
        _LVSS_WMD_FILES_MAX
} lvss_wmd_files_kind;

/* Backup types, as a mask: of the backup schema and of each file set. */
enum {
        LVSS_WMD_BACKUP_FULL = 1u << 0,
        LVSS_WMD_BACKUP_INCREMENTAL = 1u << 1,
        LVSS_WMD_BACKUP_DIFFERENTIAL = 1u << 2,
        LVSS_WMD_BACKUP_LOG = 1u << 3,
        LVSS_WMD_BACKUP_COPY = 1u << 4,
        LVSS_WMD_BACKUP_ALL = (1u << 5) - 1
};

/* The XML spelling of each enum value ("user-data", ...); NULL when out of range. */
const char *lvss_wmd_usage_to_string(lvss_wmd_usage u);
const char *lvss_wmd_source_to_string(lvss_wmd_source s);
const char *lvss_wmd_restore_method_to_string(lvss_wmd_restore_method m);
const char *lvss_wmd_writer_restore_to_string(lvss_wmd_writer_restore r);
const char *lvss_wmd_component_type_to_string(lvss_wmd_component_type t);
const char *lvss_wmd_files_kind_to_string(lvss_wmd_files_kind k);

/* The enum value spelled S (exactly, as in the XML); -EINVAL if none. */
int lvss_wmd_usage_from_string(const char *s);
int lvss_wmd_source_from_string(const char *s);
int lvss_wmd_restore_method_from_string(const char *s);
int lvss_wmd_writer_restore_from_string(const char *s);
int lvss_wmd_component_type_from_string(const char *s);
int lvss_wmd_files_kind_from_string(const char *s);

/* A backup type mask as "full incremental ..." (fixed order, malloc'd); -EINVAL if 0 or unknown bits. */
int lvss_wmd_backup_types_to_string(unsigned types, char **ret);
/* Parses a space-separated list of backup type names, each at most once, into a mask; -EINVAL if bad. */
int lvss_wmd_backup_types_from_string(const char *s, unsigned *ret);

/* A new document with this identity (INSTANCE_NAME may be NULL), schema full, nothing else; caller frees. */
int lvss_wmd_new(const char *writer_name, const char *class_id, const char *instance_id,
                 const char *instance_name, lvss_wmd_usage usage, lvss_wmd_source source, lvss_wmd **ret);
/* Frees the document and everything in it; accepts NULL. */
void lvss_wmd_free(lvss_wmd *wmd);

/* Sets the usage and source types of the identity; -EINVAL for a value out of range. */
int lvss_wmd_set_types(lvss_wmd *wmd, lvss_wmd_usage usage, lvss_wmd_source source);
/* Sets (or replaces) the restore method; SERVICE and USER_PROCEDURE may be NULL. */
int lvss_wmd_set_restore_method(lvss_wmd *wmd, lvss_wmd_restore_method method, const char *service,
                                const char *user_procedure, lvss_wmd_writer_restore writer_restore,
                                bool reboot_required);
/* Sets the backup types the writer supports (a non-zero LVSS_WMD_BACKUP_* mask). */
int lvss_wmd_set_backup_schema(lvss_wmd *wmd, unsigned types);
/* Appends a file set to the exclude list; -E2BIG past LVSS_WMD_MAX_FILE_SETS. */
int lvss_wmd_add_exclude(lvss_wmd *wmd, const char *path, const char *filespec, bool recursive);
/* Appends a component (CAPTION may be NULL); -EEXIST if LOGICAL_PATH+NAME is taken, -E2BIG past the limit.
 * *ret_component (may be NULL) is owned by the document. */
int lvss_wmd_add_component(lvss_wmd *wmd, lvss_wmd_component_type type, const char *logical_path,
                           const char *name, const char *caption, bool selectable_backup,
                           bool selectable_restore, lvss_wmd_component **ret_component);
/* Appends a file set of KIND (which must suit the component's type); -E2BIG past the limit. */
int lvss_wmd_component_add_files(lvss_wmd_component *c, lvss_wmd_files_kind kind, const char *path,
                                 const char *filespec, bool recursive, unsigned backup_types);
/* Appends a dependency on LOGICAL_PATH/NAME of the writer WRITER_CLASS_ID (NULL: this writer);
 * -EINVAL if it names the component itself, -E2BIG past the limit. */
int lvss_wmd_component_add_dependency(lvss_wmd_component *c, const char *writer_class_id,
                                      const char *logical_path, const char *name);

/* Identity; instance name NULL when none. UUIDs are lower case. */
const char *lvss_wmd_get_writer_name(const lvss_wmd *wmd);
const char *lvss_wmd_get_class_id(const lvss_wmd *wmd);
const char *lvss_wmd_get_instance_id(const lvss_wmd *wmd);
const char *lvss_wmd_get_instance_name(const lvss_wmd *wmd);
lvss_wmd_usage lvss_wmd_get_usage(const lvss_wmd *wmd);
lvss_wmd_source lvss_wmd_get_source(const lvss_wmd *wmd);
/* The restore method's fields (strings NULL when none, owned by the document); -ENODATA if never set.
 * Every ret_* may be NULL. */
int lvss_wmd_get_restore_method(const lvss_wmd *wmd, lvss_wmd_restore_method *ret_method,
                                const char **ret_service, const char **ret_user_procedure,
                                lvss_wmd_writer_restore *ret_writer_restore, bool *ret_reboot_required);
/* The backup schema mask (LVSS_WMD_BACKUP_FULL unless set). */
unsigned lvss_wmd_get_backup_schema(const lvss_wmd *wmd);
size_t lvss_wmd_get_n_excludes(const lvss_wmd *wmd);
/* The I-th exclude file set (its backup types are 0); NULL if out of range. */
const lvss_wmd_file_set *lvss_wmd_get_exclude(const lvss_wmd *wmd, size_t i);
size_t lvss_wmd_get_n_components(const lvss_wmd *wmd);
/* The I-th component, in insertion order; NULL if out of range. */
const lvss_wmd_component *lvss_wmd_get_component(const lvss_wmd *wmd, size_t i);
/* The component LOGICAL_PATH/NAME, owned by the document; -ENOENT if none. */
int lvss_wmd_find_component(lvss_wmd *wmd, const char *logical_path, const char *name,
                            lvss_wmd_component **ret);

lvss_wmd_component_type lvss_wmd_component_get_type(const lvss_wmd_component *c);
const char *lvss_wmd_component_get_logical_path(const lvss_wmd_component *c);
const char *lvss_wmd_component_get_name(const lvss_wmd_component *c);
/* NULL when none. */
const char *lvss_wmd_component_get_caption(const lvss_wmd_component *c);
bool lvss_wmd_component_get_selectable_backup(const lvss_wmd_component *c);
bool lvss_wmd_component_get_selectable_restore(const lvss_wmd_component *c);
/* Number of file sets of KIND (0 for an out-of-range kind). */
size_t lvss_wmd_component_get_n_files(const lvss_wmd_component *c, lvss_wmd_files_kind kind);
/* The I-th file set of KIND, in insertion order; NULL if out of range. */
const lvss_wmd_file_set *lvss_wmd_component_get_files(const lvss_wmd_component *c, lvss_wmd_files_kind kind,
                                                      size_t i);
size_t lvss_wmd_component_get_n_dependencies(const lvss_wmd_component *c);
/* The I-th dependency, in insertion order; NULL if out of range. */
const lvss_wmd_dependency *lvss_wmd_component_get_dependency(const lvss_wmd_component *c, size_t i);

const char *lvss_wmd_file_set_get_path(const lvss_wmd_file_set *f);
const char *lvss_wmd_file_set_get_filespec(const lvss_wmd_file_set *f);
bool lvss_wmd_file_set_get_recursive(const lvss_wmd_file_set *f);
/* LVSS_WMD_BACKUP_* mask; 0 for an exclude. */
unsigned lvss_wmd_file_set_get_backup_types(const lvss_wmd_file_set *f);

/* The other writer's class id, NULL when the dependency is on this writer. */
const char *lvss_wmd_dependency_get_writer_class_id(const lvss_wmd_dependency *d);
const char *lvss_wmd_dependency_get_logical_path(const lvss_wmd_dependency *d);
const char *lvss_wmd_dependency_get_name(const lvss_wmd_dependency *d);

/* The canonical XML of the document, NUL-terminated, malloc'd (*ret_len excludes the NUL; ret_len may be
 * NULL); -EFBIG if it would exceed LVSS_WMD_XML_MAX. */
int lvss_wmd_to_xml(const lvss_wmd *wmd, char **ret_xml, size_t *ret_len);
/* Parses LEN bytes of untrusted XML (no NUL needed) into a new document; -EFBIG past LVSS_WMD_XML_MAX,
 * -EBADMSG if it is not well-formed UTF-8 XML or breaks any rule above. Silent. */
int lvss_wmd_from_xml(const char *xml, size_t len, lvss_wmd **ret);
