/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The shadow copy verbs: create, delete, expose, unexpose, revert, and
 * "shadow path|list" ("list shadows" is cli_shadow_list(), shared with
 * cli-list.c). Each is one call of org.lvss.Manager1; lvssd owns the sets
 * it creates, so nothing here outlives the command.
 *
 * Ids may be given as a unique prefix of at least 8 characters; lvssd
 * resolves them, except for "shadow path", which matches the list here.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cli/cli-verbs.h"
#include "tools/tool-util.h"

/* ListShadows: id, set, volume, provider, context, state, created, persistent, path, exposed. */
#define SHADOW_FIELDS "sssssstbsas"

/* One element of ListShadows; strings point into the reply, EXPOSED is owned. */
struct shadow_info {
        const char *id, *set, *volume, *provider, *context, *state, *path;
        uint64_t created;
        int persistent;
        char **exposed;
};

static void shadow_info_release(struct shadow_info *s) {
        cli_strvp(&s->exposed);
        s->exposed = NULL;
}

/* Reads the next shadow; 1 if read, 0 at the end of the array, negative errno. */
static int read_shadow(sd_bus_message *reply, struct shadow_info *s) {
        int r;

        r = sd_bus_message_enter_container(reply, 'r', SHADOW_FIELDS);
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "sssssstbs", &s->id, &s->set, &s->volume, &s->provider, &s->context,
                                &s->state, &s->created, &s->persistent, &s->path);
        if (r >= 0)
                r = sd_bus_message_read_strv(reply, &s->exposed);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                shadow_info_release(s);
                return r;
        }
        return 1;
}

static void json_shadow(cli_json *j, const struct shadow_info *s) {
        cli_json_begin_object(j);
        cli_json_key(j, "id");
        cli_json_string(j, s->id);
        cli_json_key(j, "set");
        cli_json_string(j, s->set);
        cli_json_key(j, "volume");
        cli_json_string(j, s->volume);
        cli_json_key(j, "provider");
        cli_json_string(j, s->provider);
        cli_json_key(j, "context");
        cli_json_string(j, s->context);
        cli_json_key(j, "created");
        cli_json_time(j, s->created);
        cli_json_key(j, "persistent");
        cli_json_bool(j, s->persistent);
        cli_json_key(j, "state");
        cli_json_string(j, s->state);
        cli_json_key(j, "path");
        cli_json_string(j, s->path);
        cli_json_key(j, "exposed");
        cli_json_begin_array(j);
        for (char **m = s->exposed; m && *m; m++)
                cli_json_string(j, *m);
        cli_json_end_array(j);
        cli_json_end_object(j);
}

static int table_add_shadow(cli_table *t, const struct shadow_info *s) {
        _cleanup_free_ char *exposed = NULL;
        size_t len = 0;
        char set[9];

        for (char **m = s->exposed; m && *m; m++)
                len += strlen(*m) + 1;
        if (len > 0) {
                exposed = calloc(1, len);
                if (!exposed)
                        return -ENOMEM;
                for (char **m = s->exposed; *m; m++) {
                        if (*exposed)
                                strcat(exposed, ",");
                        strcat(exposed, *m);
                }
        }
        snprintf(set, sizeof set, "%s", s->set); /* a unique prefix, as every verb accepts */
        return cli_table_add(t, s->id, set, s->volume, s->provider, s->context, CLI_FORMAT_TIME(s->created),
                             s->state, exposed);
}

/* Lists the shadows of VOLUME and SET (NULL: any). */
static int list_shadows(const char *target, const char *set) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_free_ char *volume = NULL;
        _cleanup_table_ cli_table *t = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        struct shadow_info s = {};
        int r;

        r = cli_connect(&bus);
        if (r == 0 && target && cli_volume_name_is_valid(target))
                volume = strdup(target);
        else if (r == 0 && target)
                r = cli_resolve_target(bus, target, &volume);
        if (r == 0 && target && !volume)
                r = cli_fail(CLI_EXIT_FAILED, "out of memory");
        if (r == 0)
                r = cli_call(bus, "ListShadows", &reply, "ss", volume ? volume : "", set ? set : "");
        if (r != 0)
                return r;

        t = cli_table_new("ID", "SET", "VOLUME", "PROVIDER", "CONTEXT", "CREATED", "STATE", "EXPOSED", NULL);
        if (!t)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        if (cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        if (cli_arg_json)
                cli_json_begin_array(&j);
        r = sd_bus_message_enter_container(reply, 'a', "(" SHADOW_FIELDS ")");
        while (r >= 0 && (r = read_shadow(reply, &s)) > 0) {
                if (cli_arg_json)
                        json_shadow(&j, &s);
                else if (table_add_shadow(t, &s) < 0)
                        r = -ENOMEM;
                shadow_info_release(&s);
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        if (cli_arg_json) {
                cli_json_end_array(&j);
                cli_json_emit(&j);
        } else if (cli_table_rows(t) == 0)
                printf("No shadow copies: create some with 'lvss create TARGET...'.\n");
        else
                cli_table_print(t, stdout);
        return CLI_EXIT_OK;
}

int cli_shadow_list(int argc, char **argv) {
        enum { OPT_VOLUME = CLI_OPT_FIRST_VERB_OPTION, OPT_SET };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "volume", required_argument, NULL, OPT_VOLUME },
                                                 { "set", required_argument, NULL, OPT_SET },
                                                 {} };
        _cleanup_free_ char *target = NULL;
        const char *set = NULL;
        int c, k, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                switch (c) {
                case OPT_VOLUME:
                        free(target);
                        target = NULL;
                        if ((r = cli_target_arg(optarg, &target)) != 0)
                                return r;
                        break;
                case OPT_SET:
                        if ((r = cli_check_id("set", optarg)) != 0)
                                return r;
                        set = optarg;
                        break;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        return list_shadows(target, set);
}

/* Finds the shadow ID (or unique prefix) in a ListShadows reply: 0 with its full id and path,
 * -ENOENT, -ENOTUNIQ if the prefix matches more than one, or another negative errno. */
static int lookup_shadow(sd_bus_message *reply, const char *id, char **ret_id, char **ret_path) {
        _cleanup_free_ char *found_id = NULL, *found_path = NULL;
        struct shadow_info s = {};
        size_t n = strlen(id), matches = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(" SHADOW_FIELDS ")");
        while (r >= 0 && (r = read_shadow(reply, &s)) > 0) {
                bool exact = strcmp(s.id, id) == 0;

                if (exact || strncasecmp(s.id, id, n) == 0) {
                        free(found_id);
                        free(found_path);
                        found_id = strdup(s.id);
                        found_path = strdup(s.path);
                        matches = exact ? 1 : matches + 1;
                }
                shadow_info_release(&s);
                if (exact)
                        break;
        }
        if (r < 0)
                return r;
        if (matches == 0)
                return -ENOENT;
        if (matches > 1)
                return -ENOTUNIQ;
        if (!found_id || !found_path)
                return -ENOMEM;
        *ret_id = TAKE_PTR(found_id);
        *ret_path = TAKE_PTR(found_path);
        return 0;
}

/* lookup_shadow() on lvssd's list, with the errors reported: 0 or the exit code. */
static int find_shadow(sd_bus *bus, const char *id, char **ret_id, char **ret_path) {
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        int r;

        r = cli_call(bus, "ListShadows", &reply, "ss", "", "");
        if (r != 0)
                return r;
        r = lookup_shadow(reply, id, ret_id, ret_path);
        if (r == -ENOENT)
                return cli_fail(CLI_EXIT_NOT_FOUND, "no shadow copy %s: 'lvss list shadows' shows them", id);
        if (r == -ENOTUNIQ)
                return cli_fail(CLI_EXIT_USAGE,
                                "shadow id prefix %s matches several shadow copies: give more of "
                                "the id",
                                id);
        if (r == -ENOMEM)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        if (r < 0)
                return cli_bus_parse_error(r);
        return 0;
}

static void json_path(const char *key, const char *value) {
        cli_json j;

        cli_json_init(&j, stdout);
        cli_json_begin_object(&j);
        cli_json_key(&j, key);
        cli_json_string(&j, value);
        cli_json_end_object(&j);
        cli_json_finish(&j);
}

static int shadow_path(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        int r;

        if (!cli_parse_plain_verb(argc, argv, &r))
                return r;
        if ((r = cli_check_id("shadow", argv[optind])) != 0)
                return r;
        r = cli_connect(&bus);
        if (r == 0)
                r = find_shadow(bus, argv[optind], &id, &path);
        if (r != 0)
                return r;
        if (cli_arg_json)
                json_path("path", path);
        else
                printf("%s\n", path);
        return CLI_EXIT_OK;
}

/* ---- create -------------------------------------------------------------------------------------- */

static int print_created_set(sd_bus_message *reply) {
        _cleanup_table_ cli_table *shadows = NULL, *writers = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        const char *set, *context;
        uint64_t created, hold_usec;
        int r;

        r = sd_bus_message_read(reply, "sstt", &set, &context, &created, &hold_usec);
        if (r < 0)
                return cli_bus_parse_error(r);
        shadows = cli_table_new("ID", "VOLUME", "PROVIDER", "PATH", NULL);
        writers = cli_table_new("WRITER", "STATE", "ERROR", NULL);
        if (!shadows || !writers || cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");

        cli_json_begin_object(&j);
        cli_json_key(&j, "set");
        cli_json_string(&j, set);
        cli_json_key(&j, "context");
        cli_json_string(&j, context);
        cli_json_key(&j, "created");
        cli_json_time(&j, created);
        cli_json_key(&j, "shadows");
        cli_json_begin_array(&j);
        r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        while (r >= 0) {
                const char *id, *volume, *provider, *path;

                r = sd_bus_message_read(reply, "(ssss)", &id, &volume, &provider, &path);
                if (r <= 0)
                        break;
                cli_json_begin_object(&j);
                cli_json_key(&j, "id");
                cli_json_string(&j, id);
                cli_json_key(&j, "volume");
                cli_json_string(&j, volume);
                cli_json_key(&j, "provider");
                cli_json_string(&j, provider);
                cli_json_key(&j, "path");
                cli_json_string(&j, path);
                cli_json_end_object(&j);
                r = cli_table_add(shadows, id, volume, provider, path);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        cli_json_end_array(&j);
        cli_json_key(&j, "writers");
        cli_json_begin_array(&j);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssa{ss})");
        while (r >= 0) {
                const char *name, *state, *failure, *message, *component, *data;

                r = sd_bus_message_enter_container(reply, 'r', "ssssa{ss}");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "ssss", &name, &state, &failure, &message);
                if (r < 0)
                        break;
                cli_json_begin_object(&j);
                cli_json_key(&j, "name");
                cli_json_string(&j, name);
                cli_json_key(&j, "state");
                cli_json_string(&j, state);
                cli_json_key(&j, "failure");
                if (*failure)
                        cli_json_string(&j, failure);
                else
                        cli_json_null(&j);
                cli_json_key(&j, "error");
                if (*message)
                        cli_json_string(&j, message);
                else
                        cli_json_null(&j);
                cli_json_key(&j, "backup_metadata");
                cli_json_begin_object(&j);
                r = sd_bus_message_enter_container(reply, 'a', "{ss}");
                while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &component, &data)) > 0) {
                        cli_json_key(&j, component);
                        cli_json_string(&j, data);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                cli_json_end_object(&j);
                cli_json_end_object(&j);
                if (r >= 0)
                        r = cli_table_add(writers, name, state, *message ? message : NULL);
        }
        cli_json_end_array(&j);
        cli_json_key(&j, "hold_ms");
        cli_json_msec(&j, hold_usec);
        cli_json_end_object(&j);
        if (r < 0)
                return cli_bus_parse_error(r);

        if (cli_arg_json)
                cli_json_emit(&j);
        else {
                printf("Set:      %s\nContext:  %s\nCreated:  %s\nHold:     %s\n\n", set, context,
                       CLI_FORMAT_TIME(created), CLI_FORMAT_MSEC(hold_usec));
                cli_table_print(shadows, stdout);
                if (cli_table_rows(writers) > 0) {
                        putchar('\n');
                        cli_table_print(writers, stdout);
                }
        }
        return CLI_EXIT_OK;
}

static int shadow_create(int argc, char **argv) {
        enum { OPT_CONTEXT = CLI_OPT_FIRST_VERB_OPTION, OPT_NO_WRITERS, OPT_WRITER, OPT_EXCLUDE_WRITER };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "context", required_argument, NULL, OPT_CONTEXT },
                                                 { "no-writers", no_argument, NULL, OPT_NO_WRITERS },
                                                 { "writer", required_argument, NULL, OPT_WRITER },
                                                 { "exclude-writer", required_argument, NULL,
                                                   OPT_EXCLUDE_WRITER },
                                                 {} };
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_strv_ char **targets = NULL;
        const char *context = "backup";
        _cleanup_strv_ char **required = NULL, **excluded = NULL;
        bool no_writers = false;
        int c, k, r, n;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                switch (c) {
                case OPT_CONTEXT:
                        if (!cli_context_is_valid(optarg))
                                return cli_fail(CLI_EXIT_USAGE,
                                                "invalid context '%s': give backup, file-share-backup, "
                                                "app-rollback, nas-rollback or client-accessible",
                                                optarg);
                        context = optarg;
                        break;
                case OPT_NO_WRITERS:
                        no_writers = true;
                        break;
                case OPT_WRITER:
                case OPT_EXCLUDE_WRITER:
                        if (cli_strv_push(c == OPT_WRITER ? &required : &excluded, optarg) < 0)
                                return cli_fail(CLI_EXIT_FAILED, "out of memory");
                        break;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;

        n = argc - optind;
        targets = calloc((size_t) n + 1, sizeof *targets);
        if (!targets)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        for (int i = 0; i < n; i++)
                if ((r = cli_target_arg(argv[optind + i], &targets[i])) != 0)
                        return r;

        r = cli_connect(&bus);
        if (r == 0)
                r = cli_new_call(bus, "CreateShadowSet", &m);
        if (r != 0)
                return r;
        if (no_writers && (required || excluded))
                return cli_fail(CLI_EXIT_USAGE, "--no-writers leaves every writer out: drop --writer and "
                                                "--exclude-writer, or --no-writers");
        r = sd_bus_message_append_strv(m, targets);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", context);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && no_writers)
                r = sd_bus_message_append(m, "{sv}", "NoWriters", "b", 1);
        if (r >= 0 && required)
                r = cli_append_strv_option(m, "Writers", required);
        if (r >= 0 && excluded)
                r = cli_append_strv_option(m, "ExcludeWriters", excluded);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 900 * CLI_USEC_PER_SEC, "creating shadow copy set...", &reply);
        if (r != 0)
                return r;
        return print_created_set(reply);
}

/* ---- delete -------------------------------------------------------------------------------------- */

static int print_deleted(sd_bus_message *reply) {
        _cleanup_strv_ char **deleted = NULL;
        cli_json j;
        int r;

        r = sd_bus_message_read_strv(reply, &deleted);
        if (r < 0)
                return cli_bus_parse_error(r);
        if (cli_arg_json) {
                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "deleted");
                cli_json_begin_array(&j);
                for (char **id = deleted; id && *id; id++)
                        cli_json_string(&j, *id);
                cli_json_end_array(&j);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        } else if (!deleted || !*deleted)
                printf("No shadow copies deleted.\n");
        else
                for (char **id = deleted; *id; id++)
                        printf("Deleted %s\n", *id);
        return CLI_EXIT_OK;
}

static int shadow_delete(int argc, char **argv) {
        enum { OPT_SET = CLI_OPT_FIRST_VERB_OPTION, OPT_VOLUME, OPT_OLDEST, OPT_ALL };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "set", required_argument, NULL, OPT_SET },
                                                 { "volume", required_argument, NULL, OPT_VOLUME },
                                                 { "oldest", no_argument, NULL, OPT_OLDEST },
                                                 { "all", no_argument, NULL, OPT_ALL },
                                                 {} };
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *target = NULL;
        const char *set = NULL;
        bool oldest = false, all = false;
        int c, k, r, n;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                switch (c) {
                case OPT_SET:
                        if ((r = cli_check_id("set", optarg)) != 0)
                                return r;
                        set = optarg;
                        break;
                case OPT_VOLUME:
                        free(target);
                        target = NULL;
                        if ((r = cli_target_arg(optarg, &target)) != 0)
                                return r;
                        break;
                case OPT_OLDEST:
                        oldest = true;
                        break;
                case OPT_ALL:
                        all = true;
                        break;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        n = argc - optind;

        if (n > 0 && (set || target || oldest || all))
                return cli_usage_error("give shadow ids or one of --set, --volume, --all, not both");
        if (set && (target || oldest || all))
                return cli_usage_error("--set does not combine with --volume, --oldest or --all");
        if (target && oldest == all)
                return cli_usage_error("--volume needs exactly one of --oldest and --all");
        if (!target && oldest)
                return cli_usage_error("--oldest needs --volume");
        if (n == 0 && !set && !target && !all)
                return cli_usage_error("say what to delete");
        for (int i = 0; i < n; i++)
                if ((r = cli_check_id("shadow", argv[optind + i])) != 0)
                        return r;

        r = cli_connect(&bus);
        if (r != 0)
                return r;
        if (n > 0) {
                r = cli_new_call(bus, "DeleteShadows", &m);
                if (r != 0)
                        return r;
                r = sd_bus_message_append_strv(m, argv + optind);
        } else if (set) {
                r = cli_new_call(bus, "DeleteShadowSet", &m);
                if (r != 0)
                        return r;
                r = sd_bus_message_append(m, "s", set);
        } else if (target) {
                r = cli_new_call(bus, "DeleteVolumeShadows", &m);
                if (r != 0)
                        return r;
                r = sd_bus_message_append(m, "sb", target, (int) oldest);
        } else {
                r = cli_new_call(bus, "DeleteAllShadows", &m);
                if (r != 0)
                        return r;
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 600 * CLI_USEC_PER_SEC, "deleting shadow copies...", &reply);
        if (r != 0)
                return r;
        return print_deleted(reply);
}

/* ---- expose, unexpose, revert -------------------------------------------------------------------- */

static int shadow_expose(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *mountpoint = NULL, *id = NULL, *path = NULL;
        const char *device, *fstype;
        int r;

        if (!cli_parse_plain_verb(argc, argv, &r))
                return r;
        if ((r = cli_check_id("shadow", argv[optind])) != 0)
                return r;
        if ((r = cli_path_arg(argv[optind + 1], &mountpoint)) != 0)
                return r;

        r = cli_connect(&bus);
        if (r == 0)
                r = cli_new_call(bus, "ExposeShadow", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "ss", argv[optind], mountpoint);
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 600 * CLI_USEC_PER_SEC, "exposing shadow copy...", &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "ss", &device, &fstype);
        if (r < 0)
                return cli_bus_parse_error(r);

        if (!cli_arg_json) {
                printf("Shadow copy %s is exposed read-only on %s (%s, %s).\n", argv[optind], mountpoint,
                       device, fstype);
                return CLI_EXIT_OK;
        }
        /* The full id for scripts, where a prefix was enough for lvssd; best effort, as the mount is
         * done. */
        _cleanup_bus_message_ sd_bus_message *list = NULL;
        if (sd_bus_call_method(bus, NULL, "/org/lvss", "org.lvss.Manager1", "ListShadows", NULL, &list, "ss",
                               "", "") < 0 ||
            lookup_shadow(list, argv[optind], &id, &path) < 0)
                id = NULL;

        cli_json j;
        cli_json_init(&j, stdout);
        cli_json_begin_object(&j);
        cli_json_key(&j, "id");
        cli_json_string(&j, id ? id : argv[optind]);
        cli_json_key(&j, "mountpoint");
        cli_json_string(&j, mountpoint);
        cli_json_key(&j, "device");
        cli_json_string(&j, device);
        cli_json_key(&j, "fstype");
        cli_json_string(&j, fstype);
        cli_json_end_object(&j);
        cli_json_finish(&j);
        return CLI_EXIT_OK;
}

static int shadow_unexpose(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_free_ char *mountpoint = NULL;
        int r;

        if (!cli_parse_plain_verb(argc, argv, &r))
                return r;
        if ((r = cli_path_arg(argv[optind], &mountpoint)) != 0)
                return r;
        r = cli_connect(&bus);
        if (r == 0)
                r = cli_call(bus, "UnexposeShadow", NULL, "s", mountpoint);
        if (r != 0)
                return r;
        if (cli_arg_json)
                json_path("unexposed", mountpoint);
        return CLI_EXIT_OK;
}

static int shadow_revert(int argc, char **argv) {
        enum { OPT_FORCE = CLI_OPT_FIRST_VERB_OPTION };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "force", no_argument, NULL, OPT_FORCE },
                                                 {} };
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *m = NULL;
        bool force = false;
        int c, k, r;

        while ((c = getopt_long(argc, argv, ":hf", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                if (c == OPT_FORCE || c == 'f')
                        force = true;
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        if ((r = cli_check_id("shadow", argv[optind])) != 0)
                return r;

        r = cli_connect(&bus);
        if (r == 0)
                r = cli_new_call(bus, "RevertToShadow", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "sb", argv[optind], (int) force);
        if (r < 0)
                return cli_bus_parse_error(r);
        /* Reverting copies back every changed chunk: no deadline but the user's patience. */
        r = cli_call_message(bus, m, 24 * 3600 * CLI_USEC_PER_SEC,
                             "reverting the volume to the shadow copy...", NULL);
        if (r != 0)
                return r;
        if (cli_arg_json)
                json_path("reverted", argv[optind]);
        return CLI_EXIT_OK;
}

/* ---- the table ----------------------------------------------------------------------------------- */

const cli_verb cli_verb_create = {
        "create",
        "[--context CTX] [--no-writers] [--writer NAME]... [--exclude-writer NAME]... TARGET...",
        "Create a shadow copy set of the TARGETs (volume names or mount points) and print it.",
        "      --context CTX        backup (default), file-share-backup, app-rollback,\n"
        "                           nas-rollback or client-accessible (the last three persist)\n"
        "      --no-writers         leave the writers out: a crash-consistent set\n"
        "      --writer NAME        require this writer: only the failure of a required\n"
        "                           writer fails the set (repeatable)\n"
        "      --exclude-writer NAME  a failure of this writer never fails the set (repeatable)\n",
        1,
        -1,
        shadow_create,
};

const cli_verb cli_verb_delete = {
        "delete",
        "ID... | --set SET_ID | --volume TARGET (--oldest | --all) | --all",
        "Delete shadow copies: these, a set's, a volume's oldest or all, or every one.",
        "      --set SET_ID         delete every shadow copy of this set\n"
        "      --volume TARGET      delete the shadow copies of this volume (with --oldest or --all)\n"
        "      --oldest             with --volume: only the oldest one\n"
        "      --all                with --volume: all of the volume's; alone: every shadow copy\n",
        0,
        -1,
        shadow_delete,
};

const cli_verb cli_verb_expose = {
        "expose", "ID MOUNTPOINT", "Mount the shadow copy's filesystem read-only on MOUNTPOINT.", NULL, 2,
        2,        shadow_expose,
};

const cli_verb cli_verb_unexpose = {
        "unexpose", "MOUNTPOINT",    "Unmount a shadow copy exposed on MOUNTPOINT.", NULL, 1,
        1,          shadow_unexpose,
};

const cli_verb cli_verb_revert = {
        "revert",
        "ID [--force]",
        "Bring the live volume back to the shadow copy's content.",
        "  -f, --force              revert even while a filesystem on the volume is mounted (it will be\n"
        "                           corrupted: unmount it first)\n",
        1,
        1,
        shadow_revert,
};

static const cli_verb verb_shadow_path = {
        "path", "ID",        "Print the path of the shadow copy's file (RUNTIME/dev/shadows/ID).", NULL, 1,
        1,      shadow_path,
};

static const cli_verb verb_shadow_list = {
        "list",
        "[--volume TARGET] [--set SET_ID]",
        "List the shadow copies, of one volume or set if given.",
        "      --volume TARGET      only this volume's (a volume name or mount point)\n"
        "      --set SET_ID         only this set's\n",
        0,
        0,
        cli_shadow_list,
};

static const cli_verb *const shadow_verbs[] = {
        &verb_shadow_path,
        &verb_shadow_list,
};

const cli_verb cli_verb_shadow = {
        .name = "shadow",
        .summary = "Look up shadow copies.",
        .sub = shadow_verbs,
        .n_sub = ELEMENTSOF(shadow_verbs),
};
