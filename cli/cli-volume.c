/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss volume create|list|delete|path: the volumes of the built-in cow
 * provider, through lvssd's CreateVolume, ListVolumes, DeleteVolume and
 * GetVolume. "list volumes" is cli_volume_list(), shared with cli-list.c.
 *
 * What can be checked here is checked before calling (name, sizes, chunk
 * size), so a typo costs no round trip; lvssd checks everything again.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cli/cli-verbs.h"
#include "tools/tool-util.h"

/* The cow provider's limits (engine/engine.h): sizes in sectors, chunks a power of two. */
#define VOLUME_SECTOR 512u
#define VOLUME_CHUNK_MIN 4096u
#define VOLUME_CHUNK_MAX (1024u * 1024u)

/* One element of ListVolumes' a(sstusuttt); strings point into the reply. */
struct volume_info {
        const char *name, *provider, *path;
        uint64_t size;
        uint32_t chunk_size, shadows;
        uint64_t used, allocated, max;
};

/* Reads the next volume; 1 if read, 0 at the end of the array, negative errno. */
static int read_volume(sd_bus_message *reply, struct volume_info *v) {
        return sd_bus_message_read(reply, "(sstusuttt)", &v->name, &v->provider, &v->size, &v->chunk_size,
                                   &v->path, &v->shadows, &v->used, &v->allocated, &v->max);
}

static void json_volume(cli_json *j, const struct volume_info *v) {
        cli_json_begin_object(j);
        cli_json_key(j, "name");
        cli_json_string(j, v->name);
        cli_json_key(j, "size");
        cli_json_uint(j, v->size);
        cli_json_key(j, "chunk_size");
        cli_json_uint(j, v->chunk_size);
        cli_json_key(j, "provider");
        cli_json_string(j, v->provider);
        cli_json_key(j, "path");
        cli_json_string(j, v->path);
        cli_json_key(j, "shadows");
        cli_json_uint(j, v->shadows);
        cli_json_key(j, "storage");
        cli_json_begin_object(j);
        cli_json_key(j, "used");
        cli_json_uint(j, v->used);
        cli_json_key(j, "allocated");
        cli_json_uint(j, v->allocated);
        cli_json_key(j, "max");
        cli_json_limit(j, v->max);
        cli_json_end_object(j);
        cli_json_end_object(j);
}

static int table_add_volume(cli_table *t, const struct volume_info *v) {
        char shadows[16];

        snprintf(shadows, sizeof shadows, "%" PRIu32, v->shadows);
        return cli_table_add(t, v->name, v->provider, FORMAT_BYTES(v->size),
                             v->chunk_size ? FORMAT_BYTES(v->chunk_size) : "-", shadows,
                             FORMAT_BYTES(v->used), CLI_FORMAT_LIMIT(v->max), v->path);
}

/* Prints the volumes of a ListVolumes reply: all of them, or only ONLY as one object. */
static int print_volumes(sd_bus_message *reply, const char *only) {
        _cleanup_table_ cli_table *t = NULL;
        _cleanup_(cli_json_release) cli_json j = {};
        struct volume_info v;
        bool found = false;
        int r;

        t = cli_table_new("NAME", "PROVIDER", "SIZE", "CHUNK", "SHADOWS", "USED", "MAX", "PATH", NULL);
        if (!t)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");
        for (size_t col = 2; col <= 6; col++)
                cli_table_align_right(t, col);
        if (cli_json_open(&j) < 0)
                return cli_fail(CLI_EXIT_FAILED, "out of memory");

        r = sd_bus_message_enter_container(reply, 'a', "(sstusuttt)");
        if (r < 0)
                return cli_bus_parse_error(r);
        if (cli_arg_json && !only)
                cli_json_begin_array(&j);
        while ((r = read_volume(reply, &v)) > 0) {
                if (only && strcmp(v.name, only) != 0)
                        continue;
                found = true;
                if (cli_arg_json)
                        json_volume(&j, &v);
                else if (table_add_volume(t, &v) < 0)
                        return cli_fail(CLI_EXIT_FAILED, "out of memory");
        }
        if (r < 0)
                return cli_bus_parse_error(r);
        if (only && !found)
                return cli_fail(CLI_EXIT_NOT_FOUND,
                                "volume %s was created but lvssd does not list it: see 'lvss list volumes'",
                                only);

        if (cli_arg_json) {
                if (!only)
                        cli_json_end_array(&j);
                cli_json_emit(&j);
        } else if (cli_table_rows(t) == 0)
                printf("No volumes: create one with 'lvss volume create NAME --size SIZE'.\n");
        else
                cli_table_print(t, stdout);
        return CLI_EXIT_OK;
}

int cli_volume_list(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        int r;

        if (!cli_parse_plain_verb(argc, argv, &r))
                return r;
        r = cli_connect(&bus);
        if (r == 0)
                r = cli_call(bus, "ListVolumes", &reply, NULL);
        if (r != 0)
                return r;
        return print_volumes(reply, NULL);
}

static int volume_create(int argc, char **argv) {
        enum { OPT_SIZE = CLI_OPT_FIRST_VERB_OPTION, OPT_CHUNK_SIZE, OPT_IMAGE };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "size", required_argument, NULL, OPT_SIZE },
                                                 { "chunk-size", required_argument, NULL, OPT_CHUNK_SIZE },
                                                 { "image", required_argument, NULL, OPT_IMAGE },
                                                 {} };
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_free_ char *image = NULL;
        const char *image_arg = NULL, *name;
        uint64_t size = 0, chunk_size = 0;
        bool have_size = false;
        int c, k, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((k = cli_common_option(c, &r)) < 0)
                        return r;
                if (k > 0)
                        continue;
                switch (c) {
                case OPT_SIZE:
                        if ((r = cli_parse_size_option("--size", optarg, false, &size)) != 0)
                                return r;
                        have_size = true;
                        break;
                case OPT_CHUNK_SIZE:
                        if ((r = cli_parse_size_option("--chunk-size", optarg, false, &chunk_size)) != 0)
                                return r;
                        if (!IS_POWER_OF_2(chunk_size) || chunk_size < VOLUME_CHUNK_MIN ||
                            chunk_size > VOLUME_CHUNK_MAX)
                                return cli_fail(
                                        CLI_EXIT_USAGE,
                                        "invalid --chunk-size '%s': give a power of two from 4K to 1M",
                                        optarg);
                        break;
                case OPT_IMAGE:
                        image_arg = optarg;
                        break;
                }
        }
        if ((r = cli_check_args(argc, argv)) != 0)
                return r;
        name = argv[optind];
        if ((r = cli_check_volume_name(name)) != 0)
                return r;
        if (!have_size && !image_arg)
                return cli_usage_error("%s: --size is missing", cli_verb_name());
        if (have_size && ((size == 0 && !image_arg) || size % VOLUME_SECTOR != 0))
                return cli_fail(CLI_EXIT_USAGE, "invalid --size: give a positive multiple of 512 bytes");
        if (image_arg && (r = cli_path_arg(image_arg, &image)) != 0)
                return r;

        r = cli_connect(&bus);
        if (r == 0)
                r = cli_call(bus, "CreateVolume", NULL, "stus", name, size, (uint32_t) chunk_size,
                             image ? image : "");
        if (r == 0)
                r = cli_call(bus, "ListVolumes", &reply, NULL);
        if (r != 0)
                return r;
        return print_volumes(reply, name);
}

static int volume_delete(int argc, char **argv) {
        enum { OPT_FORCE = CLI_OPT_FIRST_VERB_OPTION };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "force", no_argument, NULL, OPT_FORCE },
                                                 {} };
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *m = NULL;
        bool force = false;
        const char *name;
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
        name = argv[optind];
        if ((r = cli_check_volume_name(name)) != 0)
                return r;

        r = cli_connect(&bus);
        if (r == 0)
                r = cli_new_call(bus, "DeleteVolume", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "sb", name, (int) force);
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_call_message(bus, m, 600 * CLI_USEC_PER_SEC, "deleting volume...", NULL);
        if (r != 0)
                return r;
        if (cli_arg_json) {
                cli_json j;

                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "deleted");
                cli_json_string(&j, name);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        }
        return CLI_EXIT_OK;
}

/* Parses a verb whose only argument is a volume name and calls METHOD with it: true with the
 * reply, or false with the exit code in *RET (0 after --help). */
static bool volume_name_call(int argc, char **argv, const char *method, sd_bus **ret_bus,
                             sd_bus_message **ret_reply, int *ret) {
        _cleanup_bus_ sd_bus *bus = NULL;
        int r;

        if (!cli_parse_plain_verb(argc, argv, ret))
                return false;
        if ((r = cli_check_volume_name(argv[optind])) == 0 && (r = cli_connect(&bus)) == 0)
                r = cli_call(bus, method, ret_reply, "s", argv[optind]);
        if (r != 0) {
                *ret = r;
                return false;
        }
        *ret_bus = TAKE_PTR(bus);
        return true;
}

/* Writes "KEY": [L...] into the object being written. */
static void json_strv(cli_json *j, const char *key, char **l) {
        cli_json_key(j, key);
        cli_json_begin_array(j);
        for (size_t i = 0; l && l[i]; i++)
                cli_json_string(j, l[i]);
        cli_json_end_array(j);
}

static int volume_path(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const char *object;
        int r;

        if (!volume_name_call(argc, argv, "GetVolume", &bus, &reply, &r))
                return r;
        r = sd_bus_message_read(reply, "o", &object);
        if (r < 0)
                return cli_bus_parse_error(r);
        r = cli_get_property_string(bus, object, "org.lvss.Volume1", "Path", &path);
        if (r != 0)
                return r;
        if (cli_arg_json) {
                cli_json j;

                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "path");
                cli_json_string(&j, path);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        } else
                printf("%s\n", path);
        return CLI_EXIT_OK;
}

/* Reads an "as" into a NULL-terminated list the caller frees with strv-style free. */
static int read_strings(sd_bus_message *reply, char ***ret) {
        char **l = NULL;
        int r = sd_bus_message_read_strv(reply, &l);
        if (r < 0)
                return r;
        *ret = l;
        return 0;
}

static void free_strings(char **l) {
        for (size_t i = 0; l && l[i]; i++)
                free(l[i]);
        free(l);
}

static int volume_attach(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        const char *device;
        char **stale = NULL;
        int r;

        if (!volume_name_call(argc, argv, "AttachVolume", &bus, &reply, &r))
                return r;
        if ((r = sd_bus_message_read(reply, "s", &device)) < 0 || (r = read_strings(reply, &stale)) < 0)
                return cli_bus_parse_error(r);
        for (size_t i = 0; stale && stale[i]; i++)
                fprintf(stderr,
                        "lvss: %s is mounted from a loop device an earlier lvssd left (dead): unmount it "
                        "(umount -l %s) and mount %s there.\n",
                        stale[i], stale[i], device);
        if (cli_arg_json) {
                cli_json j;

                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                cli_json_key(&j, "device");
                cli_json_string(&j, device);
                json_strv(&j, "stale_mounts", stale);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        } else
                printf("%s\n", device);
        free_strings(stale);
        return CLI_EXIT_OK;
}

static int volume_detach(int argc, char **argv) {
        _cleanup_bus_ sd_bus *bus = NULL;
        _cleanup_bus_message_ sd_bus_message *reply = NULL;
        char **done = NULL;
        int r;

        if (!volume_name_call(argc, argv, "DetachVolume", &bus, &reply, &r))
                return r;
        if ((r = read_strings(reply, &done)) < 0)
                return cli_bus_parse_error(r);
        if (cli_arg_json) {
                cli_json j;

                cli_json_init(&j, stdout);
                cli_json_begin_object(&j);
                json_strv(&j, "detached", done);
                cli_json_end_object(&j);
                cli_json_finish(&j);
        } else
                for (size_t i = 0; done && done[i]; i++)
                        printf("%s\n", done[i]);
        free_strings(done);
        return CLI_EXIT_OK;
}

static const cli_verb verb_volume_create = {
        "create",
        "NAME --size SIZE [--chunk-size SIZE] [--image PATH]",
        "Create a volume of the cow provider and print it.",
        "      --size SIZE          size of the volume (a multiple of 512; K, M, G, T suffixes); with\n"
        "                           --image, 0 or absent means the image's size\n"
        "      --chunk-size SIZE    copy-on-write granularity, a power of two from 4K to 1M (default 16K)\n"
        "      --image PATH         adopt this file or block device as the volume's data\n",
        1,
        1,
        volume_create,
};

static const cli_verb verb_volume_list = {
        "list", "", "List the volumes any provider can snapshot.", NULL, 0, 0, cli_volume_list,
};

static const cli_verb verb_volume_delete = {
        "delete",
        "NAME [--force]",
        "Delete a volume and its image.",
        "  -f, --force              delete its shadow copies too (an attached volume is always refused:\n"
        "                           unmount and detach it first)\n",
        1,
        1,
        volume_delete,
};

static const cli_verb verb_volume_path = {
        "path", "NAME",      "Print the path of the volume's file (RUNTIME/dev/volumes/NAME).", NULL, 1,
        1,      volume_path,
};

static const cli_verb verb_volume_attach = {
        "attach",
        "NAME",
        "Attach a loop device (direct I/O) over the volume's file and print it; after an lvssd restart, "
        "this also detaches the dead loop devices left over the volume's old file.",
        NULL,
        1,
        1,
        volume_attach,
};

static const cli_verb verb_volume_detach = {
        "detach",
        "NAME",
        "Detach every loop device over the volume's file (refused while a filesystem on one is mounted).",
        NULL,
        1,
        1,
        volume_detach,
};

static const cli_verb *const volume_verbs[] = {
        &verb_volume_create, &verb_volume_list,   &verb_volume_delete,
        &verb_volume_path,   &verb_volume_attach, &verb_volume_detach,
};

const cli_verb cli_verb_volume = {
        .name = "volume",
        .summary = "Manage the volumes of the built-in cow provider.",
        .sub = volume_verbs,
        .n_sub = ELEMENTSOF(volume_verbs),
};
