/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss list volumes|shadows|storage|providers|writers|sets, and lvss
 * storage list|resize. Each list is one read-only call of
 * org.lvss.Manager1 printed as an aligned table or, with --json, as one
 * JSON array; volumes and shadows are printed by their own files.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cli/cli-verbs.h"
#include "tools/tool-util.h"

/* Parses a list verb's options, connects and calls METHOD without arguments; 0 or exit code. */
/* Parses a listing verb's options and calls METHOD: true with the reply, or false with the exit
 * code in *RET (0 after --help). */
static bool list_call(int argc, char **argv, const char *method, sd_bus **ret_bus,
                      sd_bus_message **ret_reply, int *ret) {
        _cleanup_bus_ sd_bus *bus = NULL;
        int r;

        if (!cli_parse_plain_verb(argc, argv, ret))
                return false;
        r = cli_connect(&bus);
        if (r == 0)
                r = cli_call(bus, method, ret_reply, NULL);
        if (r != 0) {
                *ret = r;
                return false;
        }
        *ret_bus = TAKE_PTR(bus);
        return true;
}

/* Prints the table T, or NONE when it is empty (human output). */
static void print_table(cli_table *t, const char *none) {
        if (cli_table_rows(t) == 0)
                printf("%s\n", none);
        else
                cli_table_print(t, stdout);
}

/* ---- storage ------------------------------------------------------------------------------------- */

/* Prints ListStorage's a(stttt), with each volume's policy (ListStoragePolicies): all volumes as
 * an array, or only ONLY as one object. */
static int print_storage(sd_bus *bus, sd_bus_message *reply, const char *only) {
        _cleanup_table_ cli_table *t = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        _cleanup_bus_message_ sd_bus_message *preply = NULL;
        _cleanup_strv_ char **policies = NULL; /* volume, policy, ... */
        const char *volume, *pv, *pp;
        uint64_t used, allocated, max, chunks;
        bool found = false;
        int r;

        if (sd_bus_call_method(bus, "org.lvss", "/org/lvss", "org.lvss.Manager1", "ListStoragePolicies", NULL,
                               &preply, "") >= 0 &&
            sd_bus_message_enter_container(preply, 'a', "(ss)") >= 0)
                while (sd_bus_message_read(preply, "(ss)", &pv, &pp) > 0)
                        if (cli_strv_push(&policies, pv) < 0 || cli_strv_push(&policies, pp) < 0)
                                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        t = cli_table_new("VOLUME", "USED", "ALLOCATED", "MAX", "CHUNKS", "POLICY", NULL);
        if (!t || cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        for (size_t col = 1; col <= 4; col++)
                cli_table_align_right(t, col);
        if (!only)
                cli_json_begin_array(&j);
        r = sd_bus_message_enter_container(reply, 'a', "(stttt)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(stttt)", &volume, &used, &allocated, &max, &chunks)) > 0) {
                char n[24];

                if (only && strcmp(volume, only) != 0)
                        continue;
                found = true;
                const char *policy = "";
                for (size_t x = 0; policies && policies[x]; x += 2)
                        if (strcmp(policies[x], volume) == 0)
                                policy = policies[x + 1];
                cli_json_begin_object(&j);
                cli_json_key(&j, "volume");
                cli_json_string(&j, volume);
                cli_json_key(&j, "used");
                cli_json_uint(&j, used);
                cli_json_key(&j, "allocated");
                cli_json_uint(&j, allocated);
                cli_json_key(&j, "max");
                cli_json_limit(&j, max);
                cli_json_key(&j, "chunks");
                cli_json_uint(&j, chunks);
                cli_json_key(&j, "policy");
                if (policy[0])
                        cli_json_string(&j, policy);
                else
                        cli_json_null(&j);
                cli_json_end_object(&j);
                snprintf(n, sizeof n, "%" PRIu64, chunks);
                if (cli_table_add(t, volume, FORMAT_BYTES(used), FORMAT_BYTES(allocated),
                                  CLI_FORMAT_LIMIT(max), n, policy[0] ? policy : "-") < 0)
                        r = -ENOMEM;
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        if (only && !found)
                return cli_fail(CLI_EXIT_NOT_FOUND,
                                "lvssd lists no storage for volume %s: see 'lvss list storage'", only);
        if (!only)
                cli_json_end_array(&j);
        if (cli_arg_json)
                cli_json_emit(&j);
        else
                print_table(t, "No volumes, so no diff areas.");
        return CLI_EXIT_OK;
}

static int list_storage(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        int r;

        if (!list_call(argc, argv, "ListStorage", &bus, &reply, &r))
                return r;
        return print_storage(bus, reply, NULL);
}

static int storage_resize(int argc, char **argv) {
        enum { OPT_MAX = CLI_OPT_FIRST_VERB_OPTION, OPT_POLICY };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "max", required_argument, NULL, OPT_MAX },
                                                 { "policy", required_argument, NULL, OPT_POLICY },
                                                 {} };
        const char *policy = NULL;
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_free_ char *target = NULL, *volume = NULL;
        uint64_t max = 0;
        bool have_max = false;
        int c, k, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                if (c == OPT_MAX) {
                        if ((r = cli_parse_size_option("--max", optarg, true, &max)) != 0)
                                return r;
                        if (max == 0)
                                return cli_fail(CLI_EXIT_USAGE, "invalid --max 0: give a positive size, or "
                                                                "'unbounded' for no limit");
                        have_max = true;
                } else if (c == OPT_POLICY) {
                        if (strcmp(optarg, "protect-volume") != 0 && strcmp(optarg, "protect-snapshots") != 0)
                                return cli_usage_error("unknown --policy %s: give protect-volume (the oldest "
                                                       "shadows go when the diff area is full) or "
                                                       "protect-snapshots (live writes fail instead)",
                                                       optarg);
                        policy = optarg;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        if (!have_max && !policy)
                return cli_usage_error("%s: give --max, --policy or both", cli_verb_name());
        if ((r = cli_target_arg(argv[optind], &target)) != 0)
                return r;

        r = cli_connect(&bus);
        if (r == 0 && policy)
                r = cli_call(bus, "SetStoragePolicy", NULL, "ss", target, policy);
        if (r == 0 && have_max)
                r = cli_call(bus, "ResizeStorage", NULL, "st", target, max);
        if (r != 0)
                return r;
        /* Show the result: the volume's line of ListStorage. */
        if (cli_volume_name_is_valid(target))
                volume = TAKE_PTR(target);
        else if ((r = cli_resolve_target(bus, target, &volume)) != 0)
                return r;
        r = cli_call(bus, "ListStorage", &reply, NULL);
        if (r != 0)
                return r;
        return print_storage(bus, reply, volume);
}

/* ---- providers, writers, sets -------------------------------------------------------------------- */

static int list_providers(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_table_ cli_table *t = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        int r;

        if (!list_call(argc, argv, "ListProviders", &bus, &reply, &r))
                return r;
        t = cli_table_new("NAME", "VERSION", "CAPABILITIES", NULL);
        if (!t || cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");

        cli_json_begin_array(&j);
        r = sd_bus_message_enter_container(reply, 'a', "(ssas)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "ssas")) > 0) {
                _cleanup_strv_ char **caps = NULL;
                _cleanup_free_ char *joined = NULL;
                const char *name, *version;
                size_t len = 1;

                r = sd_bus_message_read(reply, "ss", &name, &version);
                if (r >= 0)
                        r = sd_bus_message_read_strv(reply, &caps);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;

                cli_json_begin_object(&j);
                cli_json_key(&j, "name");
                cli_json_string(&j, name);
                cli_json_key(&j, "version");
                cli_json_string(&j, version);
                cli_json_key(&j, "capabilities");
                cli_json_begin_array(&j);
                for (char **c = caps; c && *c; c++) {
                        cli_json_string(&j, *c);
                        len += strlen(*c) + 1;
                }
                cli_json_end_array(&j);
                cli_json_end_object(&j);

                joined = calloc(1, len);
                if (!joined) {
                        r = -ENOMEM;
                        break;
                }
                for (char **c = caps; c && *c; c++) {
                        if (*joined)
                                strcat(joined, ",");
                        strcat(joined, *c);
                }
                if (cli_table_add(t, name, version, *joined ? joined : NULL) < 0)
                        r = -ENOMEM;
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        cli_json_end_array(&j);
        if (cli_arg_json)
                cli_json_emit(&j);
        else
                print_table(t, "No providers.");
        return CLI_EXIT_OK;
}

static int list_writers(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_table_ cli_table *t = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        const char *name, *class_id, *instance_id, *instance_name, *level, *state, *failure, *message;
        int r;

        if (!list_call(argc, argv, "ListWriters", &bus, &reply, &r))
                return r;
        t = cli_table_new("NAME", "CLASS-ID", "INSTANCE-ID", "LEVEL", "STATE", "FAILURE", "ERROR", NULL);
        if (!t || cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");

        cli_json_begin_array(&j);
        r = sd_bus_message_enter_container(reply, 'a', "(ssssssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssssssss)", &name, &class_id, &instance_id,
                                                  &instance_name, &level, &state, &failure, &message)) > 0) {
                cli_json_begin_object(&j);
                cli_json_key(&j, "name");
                cli_json_string(&j, name);
                cli_json_key(&j, "class_id");
                cli_json_string(&j, class_id);
                cli_json_key(&j, "instance_id");
                cli_json_string(&j, instance_id);
                cli_json_key(&j, "instance_name");
                if (*instance_name)
                        cli_json_string(&j, instance_name);
                else
                        cli_json_null(&j);
                cli_json_key(&j, "level");
                cli_json_string(&j, level);
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
                cli_json_end_object(&j);
                if (cli_table_add(t, name, class_id, instance_id, level, state, *failure ? failure : NULL,
                                  *message ? message : NULL) < 0)
                        r = -ENOMEM;
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        cli_json_end_array(&j);
        if (cli_arg_json)
                cli_json_emit(&j);
        else
                print_table(t, "No writers.");
        return CLI_EXIT_OK;
}

/* lvss writer metadata NAME: the writer's metadata document, as it answers Identify now. */
static int writer_metadata(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *m = NULL, *reply = NULL;
        const char *xml;
        int r;

        if (!cli_parse_plain_verb(argc, argv, &r))
                return r;
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        r = cli_connect(&bus);
        if (r == 0)
                r = cli_new_call(bus, "GetWriterMetadata", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "s", argv[optind]);
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 900 * CLI_USEC_PER_SEC, NULL, &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "s", &xml);
        if (r < 0)
                return cli_bus_parse_error(r);
        if (cli_arg_json) {
                cli_json jj;
                cli_json_init(&jj, stdout);
                cli_json_begin_object(&jj);
                cli_json_key(&jj, "writer");
                cli_json_string(&jj, argv[optind]);
                cli_json_key(&jj, "metadata");
                cli_json_string(&jj, xml);
                cli_json_end_object(&jj);
                cli_json_finish(&jj);
        } else
                fputs(xml, stdout);
        return CLI_EXIT_OK;
}

static int list_sets(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_table_ cli_table *t = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        int r;

        if (!list_call(argc, argv, "ListSets", &bus, &reply, &r))
                return r;
        t = cli_table_new("ID", "CONTEXT", "CREATED", "HOLD", "SHADOWS", NULL);
        if (!t || cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        cli_table_align_right(t, 3);
        cli_table_align_right(t, 4);

        cli_json_begin_array(&j);
        r = sd_bus_message_enter_container(reply, 'a', "(ssttas)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "ssttas")) > 0) {
                _cleanup_strv_ char **shadows = NULL;
                const char *id, *context;
                uint64_t created, hold_usec;
                size_t n = 0;
                char count[24];

                r = sd_bus_message_read(reply, "sstt", &id, &context, &created, &hold_usec);
                if (r >= 0)
                        r = sd_bus_message_read_strv(reply, &shadows);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;

                cli_json_begin_object(&j);
                cli_json_key(&j, "id");
                cli_json_string(&j, id);
                cli_json_key(&j, "context");
                cli_json_string(&j, context);
                cli_json_key(&j, "created");
                cli_json_time(&j, created);
                cli_json_key(&j, "hold_ms");
                cli_json_msec(&j, hold_usec);
                cli_json_key(&j, "shadows");
                cli_json_begin_array(&j);
                for (char **s = shadows; s && *s; s++, n++)
                        cli_json_string(&j, *s);
                cli_json_end_array(&j);
                cli_json_end_object(&j);
                snprintf(count, sizeof count, "%zu", n);
                if (cli_table_add(t, id, context, CLI_FORMAT_TIME(created), CLI_FORMAT_MSEC(hold_usec),
                                  count) < 0)
                        r = -ENOMEM;
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        cli_json_end_array(&j);
        if (cli_arg_json)
                cli_json_emit(&j);
        else
                print_table(t, "No shadow copy sets: create one with 'lvss create TARGET...'.");
        return CLI_EXIT_OK;
}

/* ---- the tables ---------------------------------------------------------------------------------- */

static const cli_verb verb_list_volumes = {
        "volumes", "", "List the volumes any provider can snapshot.", NULL, 0, 0, cli_volume_list,
};

static const cli_verb verb_list_shadows = {
        "shadows",
        "[--volume TARGET] [--set SET_ID]",
        "List the shadow copies, of one volume or set if given.",
        "      --volume TARGET      only this volume's (a volume name or mount point)\n"
        "      --set SET_ID         only this set's\n",
        0,
        0,
        cli_shadow_list,
};

static const cli_verb verb_list_storage = {
        "storage",    "", "Show each volume's diff area: used, allocated, maximum, preserved chunks.",
        NULL,         0,  0,
        list_storage,
};

static const cli_verb verb_list_providers = {
        "providers", "", "List the providers: name, version, capabilities.", NULL, 0, 0, list_providers,
};

static const cli_verb verb_list_writers = {
        "writers",
        "",
        "List the writers: name, class id, instance id, level, state, failure, last error.",
        NULL,
        0,
        0,
        list_writers,
};

static const cli_verb verb_writer_list = {
        "list", "", "List the writers (as 'lvss list writers').", NULL, 0, 0, list_writers,
};

static const cli_verb verb_writer_metadata = {
        "metadata",
        "NAME",
        "Print the writer's metadata document (XML), as it answers now.",
        NULL,
        1,
        1,
        writer_metadata,
};

static const cli_verb *const writer_verbs[] = {
        &verb_writer_list,
        &verb_writer_metadata,
};

const cli_verb cli_verb_writer = {
        .name = "writer",
        .summary = "List writers and show their metadata.",
        .sub = writer_verbs,
        .n_sub = ELEMENTSOF(writer_verbs),
};

static const cli_verb verb_list_sets = {
        "sets",    "", "List the shadow copy sets: id, context, creation time, hold window, shadows.",
        NULL,      0,  0,
        list_sets,
};

static const cli_verb *const list_verbs[] = {
        &verb_list_volumes,   &verb_list_shadows, &verb_list_storage,
        &verb_list_providers, &verb_list_writers, &verb_list_sets,
};

const cli_verb cli_verb_list = {
        .name = "list",
        .summary = "List volumes, shadow copies, diff areas, providers, writers or sets.",
        .sub = list_verbs,
        .n_sub = ELEMENTSOF(list_verbs),
};

static const cli_verb verb_storage_list = {
        "list", "", "Show each volume's diff area (as 'lvss list storage').", NULL, 0, 0, list_storage,
};

static const cli_verb verb_storage_resize = {
        "resize",
        "TARGET [--max SIZE|unbounded] [--policy protect-volume|protect-snapshots]",
        "Set the maximum size of a volume's diff area, or what happens when it is full, and print the "
        "volume's storage.",
        "      --max SIZE           the new maximum (K, M, G, T suffixes), or 'unbounded'\n"
        "      --policy POLICY      when the diff area (or the state directory) is full:\n"
        "                           protect-volume (default) deletes the oldest shadows,\n"
        "                           protect-snapshots fails the live write (ENOSPC)\n",
        1,
        1,
        storage_resize,
};

static const cli_verb *const storage_verbs[] = {
        &verb_storage_list,
        &verb_storage_resize,
};

const cli_verb cli_verb_storage = {
        .name = "storage",
        .summary = "Show and size the diff areas.",
        .sub = storage_verbs,
        .n_sub = ELEMENTSOF(storage_verbs),
};
