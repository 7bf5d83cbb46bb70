/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-engine: the copy-on-write engine on the command line, without the
 * daemon. Each invocation opens one volume directory (the engine takes an
 * exclusive lock on it), does one thing, flushes and closes, so persistent
 * snapshots are the useful kind here.
 *
 * Verbs are dispatched from a table (in the manner of git.c and systemctl);
 * each verb parses its own options and reports its errors once, here at the
 * edge, as one sentence naming the cause and the remedy. Exit codes follow
 * shared/CLI.md: 0 ok, 1 failed, 2 usage, 3 not found, 6 no space,
 * 7 permission denied.
 *
 * Single-threaded; long loops (read, write, import) stop between blocks on
 * SIGINT or SIGTERM and close the volume cleanly.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "engine/engine.h"
#include "tools/tool-util.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,
        EXIT_USAGE = 2,
        EXIT_NOT_FOUND = 3,
        EXIT_NO_SPACE = 6,
        EXIT_PERMISSION = 7,
};

/* I/O block for read, write and import loops (whole chunks for import). */
#define IO_BLOCK (1024u * 1024u)

static const char *program = "lvss-engine";
static bool arg_json = false;
static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig) {
        interrupted = sig;
}

/* Prints "lvss-engine: MESSAGE" on stderr and returns CODE, for "return fail(...)". */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
        int saved_errno = errno; /* for %m */
        va_list ap;

        fflush(stdout);
        fprintf(stderr, "%s: ", program);
        errno = saved_errno;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

/* A --diff-max or --max value: a positive size, or "unbounded"; 0 would read as unbounded to the
 * engine, which surprises, so it is refused. */
static int parse_limit_option(const char *option, const char *value, uint64_t *ret) {
        if (tool_parse_limit(value, ret) < 0 || *ret == 0)
                return fail(EXIT_USAGE,
                            "invalid %s '%s': give a positive size (K, M, G, T suffixes) or 'unbounded'",
                            option, value);
        return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

static const char *policy_name(eng_policy p) {
        return p == ENG_POLICY_PROTECT_SNAPSHOTS ? "protect-snapshots" : "protect-volume";
}

static const char *state_name(eng_snap_state s) {
        return s == ENG_SNAP_INVALID ? "invalid" : "valid";
}

static void json_snapshot(FILE *f, const struct eng_snap_info *s) {
        fprintf(f, "{\"id\":%" PRIu32 ",\"created\":", s->id);
        tool_json_string(f, FORMAT_RFC3339(s->created_ns));
        fprintf(f,
                ",\"created_ns\":%" PRIu64 ",\"persistent\":%s,\"state\":\"%s\",\"label\":", s->created_ns,
                s->persistent ? "true" : "false", state_name(s->state));
        tool_json_string(f, s->label);
        fputc('}', f);
}

/* ---- errors, at the edge ------------------------------------------------------------------ */

static int exit_for_errno(int r) {
        switch (-r) {
        case ENOENT:
                return EXIT_NOT_FOUND;
        case ENOSPC:
        case EDQUOT:
                return EXIT_NO_SPACE;
        case EACCES:
        case EPERM:
        case EROFS:
                return EXIT_PERMISSION;
        default:
                return EXIT_FAILED;
        }
}

/* Parses a snapshot id argument; EXIT_OK, or the usage error already reported. */
static int parse_id_arg(const char *arg, uint32_t *ret) {
        if (tool_parse_id(arg, ret) < 0)
                return fail(EXIT_USAGE,
                            "invalid snapshot id '%s': give a positive number as shown by '%s list'", arg,
                            program);
        return EXIT_OK;
}

/* Reports a failed engine_volume_open() of DIR. */
static int report_open_error(const char *dir, int r) {
        switch (-r) {
        case ENOENT:
        case ENOTDIR:
                return fail(EXIT_NOT_FOUND,
                            "there is no lvss volume in %s: check the path, or create one with "
                            "'%s create %s --size SIZE'",
                            dir, program, dir);
        case EUCLEAN:
                return fail(EXIT_FAILED,
                            "%s/meta is damaged (journal records fail their checksums, and not as a crash "
                            "leaves them): nothing was changed; to keep the live data and mark the "
                            "snapshots invalid, run '%s repair %s'",
                            dir, program, dir);
        case EBADMSG:
        case ENODATA:
                return fail(EXIT_FAILED,
                            "%s/meta is not an lvss volume (bad magic or checksum, or truncated): restore "
                            "it from backup or recreate the volume",
                            dir);
        case EPROTONOSUPPORT:
                return fail(EXIT_FAILED,
                            "%s/meta has a metadata format version this lvss-engine (%s) does not support: "
                            "use the lvss version that created the volume",
                            dir, PROJECT_VERSION);
        case ERANGE:
        case EOVERFLOW:
                return fail(EXIT_FAILED,
                            "%s/meta holds out-of-range values and is damaged: restore it from backup or "
                            "recreate the volume",
                            dir);
        case EWOULDBLOCK:
        case EBUSY:
                return fail(EXIT_FAILED,
                            "the volume in %s is in use by another process: wait for it to finish and try "
                            "again",
                            dir);
        case ENOSPC:
        case EDQUOT:
                return fail(EXIT_NO_SPACE,
                            "cannot open the volume in %s: the file system holding it is full (opening "
                            "rewrites %s/meta): free some space and try again",
                            dir, dir);
        case EACCES:
        case EPERM:
        case EROFS:
                return fail(EXIT_PERMISSION,
                            "cannot open the volume in %s: %s: run as a user who may write it", dir,
                            strerror(-r));
        default:
                return fail(exit_for_errno(r), "cannot open the volume in %s: %s", dir, strerror(-r));
        }
}

static int report_no_snapshot(const char *dir, uint32_t id) {
        return fail(EXIT_NOT_FOUND,
                    "there is no snapshot %" PRIu32 " in %s: '%s list %s' shows the snapshots", id, dir,
                    program, dir);
}

static int report_invalid_snapshot(const char *dir, uint32_t id) {
        return fail(EXIT_FAILED,
                    "snapshot %" PRIu32
                    " in %s could not be proven intact after a crash and cannot be read: "
                    "delete it with '%s delete %s %" PRIu32 "'",
                    id, dir, program, dir, id);
}

static int report_no_space(eng_volume *v, const char *dir) {
        struct eng_volume_info info;

        /* -ENOSPC is the policy's refusal only when the diff area protects snapshots and has no room
         * for another chunk; otherwise the file system holding the volume is full. */
        if (engine_volume_info(v, &info) >= 0 &&
            (info.policy != ENG_POLICY_PROTECT_SNAPSHOTS || info.diff_max == ENG_DIFF_UNBOUNDED ||
             info.diff_used + info.chunk_size <= info.diff_max))
                return fail(EXIT_NO_SPACE,
                            "no space left on the file system holding %s (or its image): free some space "
                            "and try again",
                            dir);
        return fail(EXIT_NO_SPACE,
                    "the diff area of %s is full and its policy protects the snapshots, so the write was "
                    "refused: raise the limit with '%s limit %s --max SIZE', or delete snapshots",
                    dir, program, dir);
}

/* Reports a failed live write. */
static int report_write_error(eng_volume *v, const char *dir, int r) {
        if (r == -ENOSPC)
                return report_no_space(v, dir);
        return fail(exit_for_errno(r), "cannot write to the volume in %s: %s", dir, strerror(-r));
}

/* Reports a failed snapshot read of ID (or of the live volume if ID is 0). */
static int report_read_error(const char *dir, uint32_t id, int r) {
        if (id > 0 && r == -ENOENT)
                return report_no_snapshot(dir, id);
        if (id > 0 && r == -EIO)
                return report_invalid_snapshot(dir, id);
        return fail(exit_for_errno(r), "cannot read %s: %s", dir, strerror(-r));
}

/* ---- the volume --------------------------------------------------------------------------- */

static void engine_volume_closep(eng_volume **v) {
        engine_volume_close(*v);
}
#define _cleanup_volume_ _cleanup_(engine_volume_closep)

static int open_volume(const char *dir, eng_volume **ret) {
        int r = engine_volume_open(dir, ret);
        if (r < 0)
                return report_open_error(dir, r);
        return 0;
}

/* Returns 0 if snapshot ID exists and is readable, else reports why and returns an exit code. */
static int check_snapshot(eng_volume *v, const char *dir, uint32_t id) {
        struct eng_snap_info si;
        int r = engine_snapshot_get(v, id, &si);

        if (r == -ENOENT)
                return report_no_snapshot(dir, id);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot look up snapshot %" PRIu32 " in %s: %s", id, dir,
                            strerror(-r));
        if (si.state == ENG_SNAP_INVALID)
                return report_invalid_snapshot(dir, id);
        return 0;
}

static int check_interrupted(void) {
        if (!interrupted)
                return 0;
        return fail(EXIT_FAILED,
                    "interrupted by signal %d: the volume was closed cleanly; what was written "
                    "before stays written",
                    (int) interrupted);
}

/* ---- verbs -------------------------------------------------------------------------------- */

struct verb {
        const char *name;
        const char *args; /* synopsis after the verb */
        const char *summary; /* one line */
        const char *options; /* --help text for the options, or NULL */
        int min_args, max_args;
        int (*run)(int argc, char **argv);
};

static const struct verb *current_verb;
static char **argv_for_errors; /* the argv getopt is parsing */

static int verb_help(const struct verb *v) {
        printf("Usage: %s [--json] %s %s\n\n%s\n", program, v->name, v->args, v->summary);
        if (v->options)
                printf("\nOptions:\n%s", v->options);
        printf("      --json               print one JSON document on stdout\n"
               "  -h, --help               show this help\n");
        return EXIT_OK;
}

enum { OPT_JSON = 0x100, OPT_HELP = 'h' };

#define COMMON_OPTIONS                                                                                      \
        { "json", no_argument, NULL, OPT_JSON }, {                                                          \
                "help", no_argument, NULL, OPT_HELP                                                         \
        }

/* Reports getopt's '?' (unknown option) or ':' (missing value), for VERB or the main options. */
static int report_bad_option(int c, const char *verb) {
        const char *last = optind > 0 ? argv_for_errors[optind - 1] : "";
        char opt[64];

        if (strncmp(last, "--", 2) == 0)
                snprintf(opt, sizeof opt, "%.*s", (int) strcspn(last, "="), last);
        else
                snprintf(opt, sizeof opt, "-%c", optopt ? optopt : '?');

        if (c == ':')
                return fail(EXIT_USAGE, "option '%s' needs a value: '%s%s%s --help' shows the options", opt,
                            program, verb ? " " : "", verb ? verb : "");
        return fail(EXIT_USAGE, "unknown option '%s': '%s%s%s --help' shows the options", opt, program,
                    verb ? " " : "", verb ? verb : "");
}

/* Handles options every verb takes; returns 1 if handled, -1 to exit with *RET, 0 if not ours. */
static int common_option(int c, int *ret) {
        switch (c) {
        case OPT_JSON:
                arg_json = true;
                return 1;
        case OPT_HELP:
                *ret = verb_help(current_verb);
                return -1;
        case ':':
        case '?':
                *ret = report_bad_option(c, current_verb->name);
                return -1;
        default:
                return 0;
        }
}

/* Checks the positional argument count after option parsing. */
static int check_args(int argc, char **argv) {
        int n = argc - optind;

        if (n < current_verb->min_args)
                return fail(EXIT_USAGE, "%s %s: missing argument: usage is '%s %s %s'", program,
                            current_verb->name, program, current_verb->name, current_verb->args);
        if (current_verb->max_args >= 0 && n > current_verb->max_args)
                return fail(EXIT_USAGE, "%s %s: unexpected argument '%s': usage is '%s %s %s'", program,
                            current_verb->name, argv[optind + current_verb->max_args], program,
                            current_verb->name, current_verb->args);
        return 0;
}

static int usage_bad_size(const char *option, const char *value) {
        return fail(EXIT_USAGE,
                    "invalid %s '%s': give a number of bytes, optionally with a K, M, G or T suffix "
                    "(powers of 1024)",
                    option, value);
}

static void print_info_human(const char *dir, const struct eng_volume_info *i) {
        char used[32], max[32];

        tool_format_bytes(used, sizeof used, i->diff_used);
        if (i->diff_max == ENG_DIFF_UNBOUNDED)
                snprintf(max, sizeof max, "unbounded");
        else
                tool_format_bytes(max, sizeof max, i->diff_max);

        printf("Volume:      %s\n", dir);
        if (i->image[0])
                printf("Image:       %s\n", i->image);
        else
                printf("Image:       %s/image\n", dir);
        printf("Size:        %s (%" PRIu64 " bytes)\n", FORMAT_BYTES(i->size), i->size);
        printf("Chunk size:  %s (%" PRIu32 " bytes, %" PRIu64 " chunks)\n", FORMAT_BYTES(i->chunk_size),
               i->chunk_size, DIV_ROUND_UP(i->size, i->chunk_size));
        printf("Snapshots:   %" PRIu32 " (at most %u)\n", i->n_snapshots, ENG_MAX_SNAPSHOTS);
        printf("Diff area:   %s used of %s\n", used, max);
        printf("Policy:      %s\n", policy_name(i->policy));
        printf("Reflink:     %s\n", i->reflink ? "yes" : "no");
        printf("Exceptions:  %" PRIu64 "\n", i->exceptions);
        printf("Memory:      %s\n", FORMAT_BYTES(i->mem_bytes));
}

static void print_info_json(const char *dir, const struct eng_volume_info *i) {
        printf("{\"dir\":");
        tool_json_string(stdout, dir);
        printf(",\"image\":");
        if (i->image[0])
                tool_json_string(stdout, i->image);
        else {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/image", dir) < 0)
                        path = NULL;
                tool_json_string(stdout, path ? path : "image");
        }
        printf(",\"size\":%" PRIu64 ",\"chunk_size\":%" PRIu32 ",\"chunks\":%" PRIu64
               ",\"snapshots\":%" PRIu32 ",\"diff\":{\"used\":%" PRIu64 ",\"max\":",
               i->size, i->chunk_size, DIV_ROUND_UP(i->size, i->chunk_size), i->n_snapshots, i->diff_used);
        if (i->diff_max == ENG_DIFF_UNBOUNDED)
                printf("null");
        else
                printf("%" PRIu64, i->diff_max);
        printf("},\"policy\":\"%s\",\"reflink\":%s,\"exceptions\":%" PRIu64 ",\"mem_bytes\":%" PRIu64
               ",\"cow_copies\":%" PRIu64 ",\"snapshots_reclaimed\":%" PRIu64 "}\n",
               policy_name(i->policy), i->reflink ? "true" : "false", i->exceptions, i->mem_bytes,
               i->cow_copies, i->snapshots_reclaimed);
}

static int print_info(eng_volume *v, const char *dir) {
        struct eng_volume_info info;
        int r = engine_volume_info(v, &info);

        if (r < 0)
                return fail(exit_for_errno(r), "cannot get the figures of %s: %s", dir, strerror(-r));
        if (arg_json)
                print_info_json(dir, &info);
        else
                print_info_human(dir, &info);
        return EXIT_OK;
}

/* For verbs with only the common options: parses them and checks the number of arguments.
 * Returns false, with the exit code in *RET, when the verb must stop here (--help, bad usage). */
static bool parse_plain_verb(int argc, char **argv, int *ret) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        int c;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                if (common_option(c, ret) < 0)
                        return false;
        *ret = check_args(argc, argv);
        return *ret == 0;
}

static int verb_create(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS,
                                                 { "size", required_argument, NULL, 's' },
                                                 { "chunk-size", required_argument, NULL, 'c' },
                                                 { "image", required_argument, NULL, 'i' },
                                                 { "diff-max", required_argument, NULL, 'd' },
                                                 { "protect-snapshots", no_argument, NULL, 'P' },
                                                 { "protect-volume", no_argument, NULL, 'V' },
                                                 {} };
        struct eng_create_params p = { .diff_max = ENG_DIFF_UNBOUNDED, .policy = ENG_POLICY_PROTECT_VOLUME };
        _cleanup_volume_ eng_volume *v = NULL;
        bool have_size = false;
        uint64_t chunk = 0;
        int c, r, ret;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((r = common_option(c, &ret)) < 0)
                        return ret;
                if (r > 0)
                        continue;
                switch (c) {
                case 's':
                        if (tool_parse_size(optarg, &p.size) < 0)
                                return usage_bad_size("--size", optarg);
                        have_size = true;
                        break;
                case 'c':
                        if (tool_parse_size(optarg, &chunk) < 0)
                                return usage_bad_size("--chunk-size", optarg);
                        break;
                case 'i':
                        p.image = optarg;
                        break;
                case 'd':
                        if ((r = parse_limit_option("--diff-max", optarg, &p.diff_max)) != 0)
                                return r;
                        break;
                case 'P':
                        p.policy = ENG_POLICY_PROTECT_SNAPSHOTS;
                        break;
                case 'V':
                        p.policy = ENG_POLICY_PROTECT_VOLUME;
                        break;
                }
        }
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];

        if (!have_size && !p.image)
                return fail(EXIT_USAGE,
                            "create needs --size SIZE (or --image PATH to adopt an existing image)");
        if (have_size && (p.size == 0 || p.size % 512 != 0))
                return fail(EXIT_USAGE, "invalid --size %" PRIu64 ": give a non-zero multiple of 512 bytes",
                            p.size);
        if (chunk != 0 && (!IS_POWER_OF_2(chunk) || chunk < ENG_CHUNK_MIN || chunk > ENG_CHUNK_MAX))
                return fail(EXIT_USAGE,
                            "invalid --chunk-size %" PRIu64
                            ": give a power of two from 4K to 1M (default 16K)",
                            chunk);
        p.chunk_size = (uint32_t) chunk;

        r = engine_volume_create(dir, &p, &v);
        if (r == -EEXIST || r == -ENOTEMPTY)
                return fail(EXIT_FAILED,
                            "%s already holds a volume: delete it first, or pick another directory", dir);
        if (r == -EINVAL)
                return fail(EXIT_USAGE,
                            "the engine refused these parameters (size %" PRIu64 ", chunk size %" PRIu32
                            "%s%s): check that the size is a multiple of 512 and of a sensible size",
                            p.size, p.chunk_size, p.image ? ", image " : "", p.image ? p.image : "");
        if (r == -ENOENT && p.image)
                return fail(EXIT_NOT_FOUND, "cannot adopt %s: no such file or device", p.image);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot create a volume in %s: %s", dir, strerror(-r));
        return print_info(v, dir);
}

static int verb_info(int argc, char **argv) {
        _cleanup_volume_ eng_volume *v = NULL;
        int r, ret;

        if (!parse_plain_verb(argc, argv, &ret))
                return ret;
        if ((r = open_volume(argv[optind], &v)) != 0)
                return r;
        return print_info(v, argv[optind]);
}

static int verb_list(int argc, char **argv) {
        _cleanup_volume_ eng_volume *v = NULL;
        _cleanup_free_ struct eng_snap_info *snaps = NULL;
        size_t n = 0;
        int r, ret;

        if (!parse_plain_verb(argc, argv, &ret))
                return ret;
        const char *dir = argv[optind];
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        r = engine_snapshot_list(v, &snaps, &n);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot list the snapshots of %s: %s", dir, strerror(-r));

        if (arg_json) {
                fputc('[', stdout);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                fputc(',', stdout);
                        json_snapshot(stdout, &snaps[i]);
                }
                fputs("]\n", stdout);
                return EXIT_OK;
        }
        if (n == 0) {
                printf("No snapshots.\n");
                return EXIT_OK;
        }
        printf("%5s  %-25s  %-10s  %-7s  %s\n", "ID", "CREATED", "PERSISTENT", "STATE", "LABEL");
        for (size_t i = 0; i < n; i++)
                printf("%5" PRIu32 "  %-25s  %-10s  %-7s  %s\n", snaps[i].id,
                       FORMAT_RFC3339(snaps[i].created_ns), snaps[i].persistent ? "yes" : "no",
                       state_name(snaps[i].state), snaps[i].label);
        return EXIT_OK;
}

static int verb_snapshot(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS,
                                                 { "label", required_argument, NULL, 'l' },
                                                 { "non-persistent", no_argument, NULL, 'n' },
                                                 {} };
        struct eng_snap_params p = { .persistent = true };
        _cleanup_volume_ eng_volume *v = NULL;
        struct eng_snap_info si;
        uint32_t id;
        int c, r, ret;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((r = common_option(c, &ret)) < 0)
                        return ret;
                if (r > 0)
                        continue;
                if (c == 'l')
                        p.label = optarg;
                else if (c == 'n')
                        p.persistent = false;
        }
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];
        if (p.label && strlen(p.label) > ENG_LABEL_MAX)
                return fail(EXIT_USAGE, "the label is %zu bytes long: give at most %u", strlen(p.label),
                            ENG_LABEL_MAX);
        if ((r = open_volume(dir, &v)) != 0)
                return r;

        r = engine_snapshot_create(v, &p, &id);
        if (r == -EMLINK)
                return fail(EXIT_FAILED,
                            "%s already has %u snapshots, the most a volume can have: delete some first",
                            dir, ENG_MAX_SNAPSHOTS);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot take a snapshot of %s: %s", dir, strerror(-r));
        if (!p.persistent)
                fprintf(stderr,
                        "%s: note: snapshot %" PRIu32 " is non-persistent and is dropped when this command "
                        "exits\n",
                        program, id);
        if (arg_json) {
                r = engine_snapshot_get(v, id, &si);
                if (r < 0)
                        si = (struct eng_snap_info){ .id = id, .persistent = p.persistent };
                json_snapshot(stdout, &si);
                fputc('\n', stdout);
        } else
                printf("%" PRIu32 "\n", id);
        return EXIT_OK;
}

static int verb_delete(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        _cleanup_volume_ eng_volume *v = NULL;
        _cleanup_free_ uint32_t *ids = NULL;
        int c, r, ret, n, rc = EXIT_OK;
        bool first = true;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                if (common_option(c, &ret) < 0)
                        return ret;
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];
        n = argc - optind - 1;
        ids = calloc((size_t) n, sizeof *ids);
        if (!ids)
                return fail(EXIT_FAILED, "out of memory");
        for (int i = 0; i < n; i++)
                if ((r = parse_id_arg(argv[optind + 1 + i], &ids[i])) != EXIT_OK)
                        return r;
        if ((r = open_volume(dir, &v)) != 0)
                return r;

        if (arg_json)
                fputs("{\"deleted\":[", stdout);
        for (int i = 0; i < n; i++) {
                r = engine_snapshot_delete(v, ids[i]);
                if (r == -ENOENT) {
                        ret = report_no_snapshot(dir, ids[i]);
                        if (rc == EXIT_OK)
                                rc = ret;
                        continue;
                }
                if (r < 0) {
                        ret = fail(exit_for_errno(r), "cannot delete snapshot %" PRIu32 " of %s: %s", ids[i],
                                   dir, strerror(-r));
                        if (rc == EXIT_OK)
                                rc = ret;
                        continue;
                }
                if (arg_json) {
                        printf("%s%" PRIu32, first ? "" : ",", ids[i]);
                        first = false;
                } else
                        printf("Deleted snapshot %" PRIu32 ".\n", ids[i]);
        }
        if (arg_json)
                fputs("]}\n", stdout);
        return rc;
}

/* Opens FILE for output: stdout for NULL or "-". Sets *RET_SPARSE for regular files, where zero
 * blocks are skipped and the size set at the end. */
static int open_output(const char *path, int *ret_fd, bool *ret_sparse) {
        struct stat st;
        int fd;

        if (!path || strcmp(path, "-") == 0) {
                *ret_fd = STDOUT_FILENO;
                *ret_sparse = false;
                return 0;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        *ret_sparse = S_ISREG(st.st_mode);
        if (*ret_sparse && ftruncate(fd, 0) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

static int verb_read(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS,
                                                 { "snapshot", required_argument, NULL, 's' },
                                                 { "offset", required_argument, NULL, 'o' },
                                                 { "length", required_argument, NULL, 'l' },
                                                 { "output", required_argument, NULL, 'O' },
                                                 {} };
        _cleanup_volume_ eng_volume *v = NULL;
        _cleanup_free_ void *buf = NULL;
        _cleanup_close_ int out_fd = -1;
        struct eng_volume_info info;
        const char *output = NULL;
        uint64_t off = 0, len = UINT64_MAX, done = 0;
        uint32_t id = 0;
        bool sparse = false;
        int c, r, ret, fd;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((r = common_option(c, &ret)) < 0)
                        return ret;
                if (r > 0)
                        continue;
                switch (c) {
                case 's':
                        if ((r = parse_id_arg(optarg, &id)) != EXIT_OK)
                                return r;
                        break;
                case 'o':
                        if (tool_parse_size(optarg, &off) < 0)
                                return usage_bad_size("--offset", optarg);
                        break;
                case 'l':
                        if (tool_parse_size(optarg, &len) < 0)
                                return usage_bad_size("--length", optarg);
                        break;
                case 'O':
                        output = optarg;
                        break;
                }
        }
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];
        if (arg_json && (!output || strcmp(output, "-") == 0))
                return fail(EXIT_USAGE, "read --json needs --output FILE: stdout carries the JSON document");
        if ((!output || strcmp(output, "-") == 0) && isatty(STDOUT_FILENO))
                return fail(EXIT_USAGE, "refusing to write volume data to a terminal: give --output FILE or "
                                        "redirect stdout");
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        if ((r = engine_volume_info(v, &info)) < 0)
                return fail(exit_for_errno(r), "cannot get the figures of %s: %s", dir, strerror(-r));
        if (off > info.size)
                return fail(EXIT_USAGE,
                            "--offset %" PRIu64 " is past the end of the volume (%" PRIu64 " bytes)", off,
                            info.size);
        if (len == UINT64_MAX)
                len = info.size - off;
        else if (len > info.size - off)
                return fail(EXIT_USAGE,
                            "--offset %" PRIu64 " --length %" PRIu64
                            " runs past the end of the volume (%" PRIu64 " bytes)",
                            off, len, info.size);
        if (id > 0 && (r = check_snapshot(v, dir, id)) != 0)
                return r;

        r = open_output(output, &fd, &sparse);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot open %s for writing: %s", output, strerror(-r));
        if (fd != STDOUT_FILENO)
                out_fd = fd;
        buf = malloc(IO_BLOCK);
        if (!buf)
                return fail(EXIT_FAILED, "out of memory");

        while (done < len) {
                size_t n = (size_t) MIN((uint64_t) IO_BLOCK, len - done);

                if ((r = check_interrupted()) != 0)
                        return r;
                if (id > 0)
                        r = engine_snapshot_read(v, id, buf, n, off + done);
                else
                        r = engine_read(v, buf, n, off + done);
                if (r < 0)
                        return report_read_error(dir, id, r);
                if (!(sparse && tool_is_zero(buf, n))) {
                        if (sparse)
                                r = tool_pwrite_full(fd, buf, n, done);
                        else
                                r = tool_write_full(fd, buf, n);
                        if (r < 0)
                                return fail(exit_for_errno(r), "cannot write to %s: %s",
                                            output ? output : "stdout", strerror(-r));
                }
                done += n;
        }
        if (sparse) {
                if (ftruncate(fd, (off_t) len) < 0 || fsync(fd) < 0)
                        return fail(exit_for_errno(negative_errno()), "cannot finish %s: %m", output);
        }
        if (arg_json) {
                printf("{\"snapshot\":");
                if (id > 0)
                        printf("%" PRIu32, id);
                else
                        printf("null");
                printf(",\"offset\":%" PRIu64 ",\"length\":%" PRIu64 ",\"output\":", off, len);
                tool_json_string(stdout, output);
                printf("}\n");
        }
        return EXIT_OK;
}

static int verb_write(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS,
                                                 { "offset", required_argument, NULL, 'o' },
                                                 { "input", required_argument, NULL, 'I' },
                                                 {} };
        _cleanup_volume_ eng_volume *v = NULL;
        _cleanup_free_ void *buf = NULL;
        _cleanup_close_ int in_fd = -1;
        struct eng_volume_info info;
        const char *input = NULL;
        uint64_t off = 0, done = 0;
        uint64_t in_size;
        int c, r, ret, fd = STDIN_FILENO;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((r = common_option(c, &ret)) < 0)
                        return ret;
                if (r > 0)
                        continue;
                if (c == 'o' && tool_parse_size(optarg, &off) < 0)
                        return usage_bad_size("--offset", optarg);
                if (c == 'I')
                        input = optarg;
        }
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];
        const char *what = input && strcmp(input, "-") != 0 ? input : "stdin";

        if (input && strcmp(input, "-") != 0) {
                in_fd = open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (in_fd < 0)
                        return fail(errno == ENOENT ? EXIT_NOT_FOUND : exit_for_errno(negative_errno()),
                                    "cannot open %s: %m", input);
                fd = in_fd;
        }
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        if ((r = engine_volume_info(v, &info)) < 0)
                return fail(exit_for_errno(r), "cannot get the figures of %s: %s", dir, strerror(-r));
        if (off > info.size)
                return fail(EXIT_USAGE,
                            "--offset %" PRIu64 " is past the end of the volume (%" PRIu64 " bytes)", off,
                            info.size);
        if (tool_input_size(fd, &in_size) == 0 && in_size > info.size - off)
                return fail(EXIT_USAGE,
                            "%s (%" PRIu64 " bytes) does not fit at offset %" PRIu64
                            " of the volume (%" PRIu64 " bytes): nothing was written",
                            what, in_size, off, info.size);
        buf = malloc(IO_BLOCK);
        if (!buf)
                return fail(EXIT_FAILED, "out of memory");

        for (;;) {
                ssize_t n;

                if ((r = check_interrupted()) != 0)
                        break;
                n = tool_read_full(fd, buf, IO_BLOCK);
                if (n < 0) {
                        r = interrupted ? check_interrupted()
                                        : fail(EXIT_FAILED, "cannot read %s: %s", what, strerror((int) -n));
                        break;
                }
                if (n == 0)
                        break;
                bool past_end = (uint64_t) n > info.size - off - done;
                if (past_end)
                        n = (ssize_t) (info.size - off - done); /* write what fits, then stop */
                r = n > 0 ? engine_write(v, buf, (size_t) n, off + done) : 0;
                if (r < 0) {
                        r = report_write_error(v, dir, r);
                        break;
                }
                done += (uint64_t) n;
                if (past_end) {
                        r = fail(EXIT_FAILED,
                                 "%s runs past the end of the volume (%" PRIu64 " bytes): the %" PRIu64
                                 " bytes that fit were written",
                                 what, info.size, done);
                        break;
                }
        }
        /* What was written stays written: make it durable even when stopping early. */
        int k = engine_flush(v);
        if (r != 0)
                return r;
        if (k < 0)
                return fail(exit_for_errno(k), "cannot flush %s: %s", dir, strerror(-k));
        if (arg_json)
                printf("{\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n", off, done);
        else
                printf("Wrote %" PRIu64 " bytes at offset %" PRIu64 ".\n", done, off);
        return EXIT_OK;
}

static int verb_import(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS,
                                                 { "changed-only", no_argument, NULL, 'c' },
                                                 {} };
        _cleanup_volume_ eng_volume *v = NULL;
        _cleanup_free_ uint8_t *buf = NULL, *cur = NULL;
        _cleanup_close_ int fd = -1;
        struct eng_volume_info info;
        uint64_t done = 0, total = 0, written = 0, bytes = 0;
        bool changed_only = false;
        uint64_t in_size;
        int c, r, ret;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((r = common_option(c, &ret)) < 0)
                        return ret;
                if (r > 0)
                        continue;
                if (c == 'c')
                        changed_only = true;
        }
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind], *file = argv[optind + 1];

        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail(errno == ENOENT ? EXIT_NOT_FOUND : exit_for_errno(negative_errno()),
                            "cannot open %s: %m", file);
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        if ((r = engine_volume_info(v, &info)) < 0)
                return fail(exit_for_errno(r), "cannot get the figures of %s: %s", dir, strerror(-r));
        if (tool_input_size(fd, &in_size) == 0 && in_size > info.size)
                return fail(EXIT_USAGE,
                            "%s (%" PRIu64 " bytes) is larger than the volume (%" PRIu64
                            " bytes): nothing was imported",
                            file, in_size, info.size);

        buf = malloc(info.chunk_size);
        cur = malloc(info.chunk_size);
        if (!buf || !cur)
                return fail(EXIT_FAILED, "out of memory");

        /* Chunk by chunk, so that --changed-only compares whole chunks and a chunk that did not change
         * costs no copy-on-write. */
        for (;;) {
                ssize_t n;

                if ((r = check_interrupted()) != 0)
                        break;
                n = tool_read_full(fd, buf, info.chunk_size);
                if (n < 0) {
                        r = interrupted ? check_interrupted()
                                        : fail(EXIT_FAILED, "cannot read %s: %s", file, strerror((int) -n));
                        break;
                }
                if (n == 0)
                        break;
                if ((uint64_t) n > info.size - done) {
                        r = fail(EXIT_FAILED,
                                 "%s runs past the end of the volume (%" PRIu64
                                 " bytes): what fits was imported",
                                 file, info.size);
                        break;
                }
                total++;
                if (changed_only) {
                        r = engine_read(v, cur, (size_t) n, done);
                        if (r < 0) {
                                r = report_read_error(dir, 0, r);
                                break;
                        }
                        if (memcmp(cur, buf, (size_t) n) == 0) {
                                done += (uint64_t) n;
                                continue;
                        }
                }
                if (tool_is_zero(buf, (size_t) n))
                        r = engine_write_zeroes(v, (size_t) n, done);
                else
                        r = engine_write(v, buf, (size_t) n, done);
                if (r < 0) {
                        r = report_write_error(v, dir, r);
                        break;
                }
                written++;
                bytes += (uint64_t) n;
                done += (uint64_t) n;
        }
        int k = engine_flush(v);
        if (r != 0)
                return r;
        if (k < 0)
                return fail(exit_for_errno(k), "cannot flush %s: %s", dir, strerror(-k));
        if (arg_json)
                printf("{\"chunks\":%" PRIu64 ",\"chunks_written\":%" PRIu64 ",\"bytes_written\":%" PRIu64
                       ",\"chunk_size\":%" PRIu32 "}\n",
                       total, written, bytes, info.chunk_size);
        else
                printf("Imported %s: %" PRIu64 " of %" PRIu64 " chunks written (%s).\n", file, written,
                       total, FORMAT_BYTES(bytes));
        return EXIT_OK;
}

static int verb_changed(int argc, char **argv) {
        _cleanup_volume_ eng_volume *v = NULL;
        _cleanup_free_ uint64_t *bitmap = NULL;
        struct eng_volume_info info;
        uint64_t n_chunks = 0, count = 0;
        uint32_t from, to = 0;
        bool first = true;
        int r, ret;

        if (!parse_plain_verb(argc, argv, &ret))
                return ret;
        const char *dir = argv[optind];
        if ((r = parse_id_arg(argv[optind + 1], &from)) != EXIT_OK)
                return r;
        if (optind + 2 < argc && (r = parse_id_arg(argv[optind + 2], &to)) != EXIT_OK)
                return r;
        if (to != 0 && to <= from)
                return fail(EXIT_USAGE, "FROM (%" PRIu32 ") must be older than TO (%" PRIu32 "): swap them",
                            from, to);
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        if ((r = engine_volume_info(v, &info)) < 0)
                return fail(exit_for_errno(r), "cannot get the figures of %s: %s", dir, strerror(-r));
        if ((r = check_snapshot(v, dir, from)) != 0 || (to != 0 && (r = check_snapshot(v, dir, to)) != 0))
                return r;

        r = engine_changed_chunks(v, from, to, &bitmap, &n_chunks);
        if (r == -ENOENT)
                return fail(EXIT_NOT_FOUND, "snapshot %" PRIu32 " or %" PRIu32 " is gone from %s", from, to,
                            dir);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot compute the changed chunks of %s: %s", dir,
                            strerror(-r));

        if (arg_json) {
                printf("{\"from\":%" PRIu32 ",\"to\":", from);
                if (to)
                        printf("%" PRIu32, to);
                else
                        printf("null");
                printf(",\"chunk_size\":%" PRIu32 ",\"chunks\":%" PRIu64 ",\"ranges\":[", info.chunk_size,
                       n_chunks);
        }
        for (uint64_t i = 0; i < n_chunks;) {
                if (!(bitmap[i / 64] & (UINT64_C(1) << (i % 64)))) {
                        i++;
                        continue;
                }
                uint64_t j = i;
                while (j + 1 < n_chunks && (bitmap[(j + 1) / 64] & (UINT64_C(1) << ((j + 1) % 64))))
                        j++;
                count += j - i + 1;
                if (arg_json)
                        printf("%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", i, j);
                else if (i == j)
                        printf("%" PRIu64 "\n", i);
                else
                        printf("%" PRIu64 "-%" PRIu64 "\n", i, j);
                first = false;
                i = j + 1;
        }
        if (arg_json)
                printf("],\"changed\":%" PRIu64 ",\"changed_bytes\":%" PRIu64 "}\n", count,
                       count * info.chunk_size);
        else
                printf("%" PRIu64 " of %" PRIu64 " chunks changed since snapshot %" PRIu32 "%s (%s).\n",
                       count, n_chunks, from, to ? "" : ", up to the live volume",
                       FORMAT_BYTES(count * info.chunk_size));
        return EXIT_OK;
}

static int verb_revert(int argc, char **argv) {
        _cleanup_volume_ eng_volume *v = NULL;
        uint32_t id;
        int r, ret;

        if (!parse_plain_verb(argc, argv, &ret))
                return ret;
        const char *dir = argv[optind];
        if ((r = parse_id_arg(argv[optind + 1], &id)) != EXIT_OK)
                return r;
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        if ((r = check_snapshot(v, dir, id)) != 0)
                return r;
        r = engine_revert(v, id);
        if (r == -ENOSPC)
                return report_no_space(v, dir);
        if (r < 0 && r != -ENOENT && r != -EIO)
                return fail(exit_for_errno(r),
                            "cannot revert %s to snapshot %" PRIu32
                            ": %s: the volume may hold a mix, run the "
                            "same revert again",
                            dir, id, strerror(-r));
        if (r < 0)
                return report_read_error(dir, id, r);
        r = engine_flush(v);
        if (r < 0)
                return fail(exit_for_errno(r), "cannot flush %s: %s", dir, strerror(-r));
        if (arg_json)
                printf("{\"reverted_to\":%" PRIu32 "}\n", id);
        else
                printf("Reverted %s to snapshot %" PRIu32 ".\n", dir, id);
        return EXIT_OK;
}

static int verb_repair(int argc, char **argv) {
        int r, ret;

        if (!parse_plain_verb(argc, argv, &ret))
                return ret;
        const char *dir = argv[optind];
        r = engine_volume_repair(dir);
        if (r < 0)
                return report_open_error(dir, r);
        if (arg_json)
                printf("{\"repaired\":true,\"kept\":\"%s/meta.damaged\"}\n", dir);
        else
                printf("Repaired %s: the damaged metadata is kept as %s/meta.damaged; snapshots that "
                       "could not be proven intact are listed as invalid.\n",
                       dir, dir);
        return EXIT_OK;
}

static int verb_limit(int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS,
                                                 { "max", required_argument, NULL, 'm' },
                                                 { "protect-snapshots", no_argument, NULL, 'P' },
                                                 { "protect-volume", no_argument, NULL, 'V' },
                                                 {} };
        _cleanup_volume_ eng_volume *v = NULL;
        struct eng_volume_info info;
        uint64_t max = 0;
        bool have_max = false;
        int policy = -1, c, r, ret;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if ((r = common_option(c, &ret)) < 0)
                        return ret;
                if (r > 0)
                        continue;
                switch (c) {
                case 'm':
                        if ((r = parse_limit_option("--max", optarg, &max)) != 0)
                                return r;
                        have_max = true;
                        break;
                case 'P':
                        policy = ENG_POLICY_PROTECT_SNAPSHOTS;
                        break;
                case 'V':
                        policy = ENG_POLICY_PROTECT_VOLUME;
                        break;
                }
        }
        if ((r = check_args(argc, argv)) != 0)
                return r;
        const char *dir = argv[optind];
        if (!have_max)
                return fail(EXIT_USAGE, "limit needs --max SIZE or --max unbounded");
        if ((r = open_volume(dir, &v)) != 0)
                return r;
        if ((r = engine_volume_info(v, &info)) < 0)
                return fail(exit_for_errno(r), "cannot get the figures of %s: %s", dir, strerror(-r));
        if (policy < 0)
                policy = (int) info.policy;

        r = engine_set_limit(v, max, (eng_policy) policy);
        if (r == -ENOSPC)
                return fail(
                        EXIT_NO_SPACE,
                        "the diff area of %s uses %s, more than %s, and its policy protects the snapshots: "
                        "delete snapshots first, or give --protect-volume to let the oldest go",
                        dir, FORMAT_BYTES(info.diff_used), FORMAT_BYTES(max));
        if (r < 0)
                return fail(exit_for_errno(r), "cannot set the diff area limit of %s: %s", dir,
                            strerror(-r));
        return print_info(v, dir);
}

static int verb_main_help(int argc, char **argv);

static const struct verb verbs[] = {
        { "create", "DIR --size SIZE [OPTIONS]", "Create a volume in DIR (created if missing).",
          "      --size SIZE          size of the volume (multiple of 512; K, M, G, T suffixes)\n"
          "      --chunk-size SIZE    copy-on-write granularity, a power of two from 4K to 1M (default "
          "16K)\n"
          "      --image PATH         adopt this file or block device as the live data (default DIR/image)\n"
          "      --diff-max SIZE      maximum size of the diff area, or 'unbounded' (default)\n"
          "      --protect-snapshots  when the diff area is full, fail writes instead of deleting the\n"
          "                           oldest snapshots\n"
          "      --protect-volume     when the diff area is full, delete the oldest snapshots (default)\n",
          1, 1, verb_create },
        { "info", "DIR", "Show the volume's size, chunk size, snapshots, diff area and memory use.", NULL, 1,
          1, verb_info },
        { "list", "DIR", "List the snapshots, oldest first.", NULL, 1, 1, verb_list },
        { "snapshot", "DIR [--label TEXT] [--non-persistent]", "Take a snapshot and print its id.",
          "      --label TEXT         free text kept with the snapshot (at most 63 bytes)\n"
          "      --non-persistent     do not journal it (it is dropped when this command exits)\n",
          1, 1, verb_snapshot },
        { "delete", "DIR ID...", "Delete snapshots (any of them, in any order).", NULL, 2, -1, verb_delete },
        { "read", "DIR [--snapshot ID] [--offset N] [--length N] [--output FILE]",
          "Copy the live volume, or a snapshot, to a file or to stdout.",
          "      --snapshot ID        read this snapshot instead of the live volume\n"
          "      --offset N           start at byte N (default 0)\n"
          "      --length N           read N bytes (default: to the end of the volume)\n"
          "      --output FILE        write to FILE (regular files are written sparse) instead of stdout\n",
          1, 1, verb_read },
        { "write", "DIR [--offset N] [--input FILE]", "Write stdin, or a file, into the live volume.",
          "      --offset N           write at byte N (default 0)\n"
          "      --input FILE         read the data from FILE instead of stdin\n",
          1, 1, verb_write },
        { "import", "DIR FILE [--changed-only]", "Write FILE's content at offset 0, chunk by chunk.",
          "      --changed-only       write only the chunks that differ from the live volume\n", 2, 2,
          verb_import },
        { "changed", "DIR FROM [TO]",
          "List the chunks changed between snapshots FROM and TO (or the live volume), as ranges.", NULL, 2,
          3, verb_changed },
        { "revert", "DIR ID", "Make the live volume's content equal to snapshot ID's.", NULL, 2, 2,
          verb_revert },
        { "limit", "DIR --max SIZE|unbounded [--protect-snapshots|--protect-volume]",
          "Set the diff area's maximum size and what happens when it is full.",
          "      --max SIZE           maximum size of the diff area, or 'unbounded'\n"
          "      --protect-snapshots  when full, fail writes and keep the snapshots\n"
          "      --protect-volume     when full, delete the oldest snapshots; writes succeed\n",
          1, 1, verb_limit },
        { "repair", "DIR",
          "Make a volume with damaged metadata openable: keep the live data, mark snapshots invalid.", NULL,
          1, 1, verb_repair },
        { "help", "[VERB]", "Show the help of lvss-engine or of one verb.", NULL, 0, 1, verb_main_help },
};

static const struct verb *find_verb(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static int main_help(void) {
        printf("Usage: %s [--json] VERB [ARGS...]\n\n"
               "The lvss copy-on-write snapshot engine on the command line: each command opens one\n"
               "volume directory, acts on it and closes it.\n\nVerbs:\n",
               program);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-9s %s\n", verbs[i].name, verbs[i].summary);
        printf("\nOptions:\n"
               "      --json     print one JSON document on stdout\n"
               "  -h, --help     show this help ('%s VERB --help' for a verb's)\n"
               "      --version  show the version\n\n"
               "Sizes take K, M, G and T suffixes (powers of 1024). See lvss-engine(8).\n",
               program);
        return EXIT_OK;
}

static int verb_main_help(int argc, char **argv) {
        const struct verb *v;
        int c, r, ret;
        static const struct option options[] = { COMMON_OPTIONS, {} };

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                if (common_option(c, &ret) < 0)
                        return ret;
        if ((r = check_args(argc, argv)) != 0)
                return r;
        if (optind >= argc)
                return main_help();
        v = find_verb(argv[optind]);
        if (!v)
                return fail(EXIT_USAGE, "unknown verb '%s': '%s --help' lists the verbs", argv[optind],
                            program);
        return verb_help(v);
}

int main(int argc, char **argv) {
        static const struct option options[] = { { "json", no_argument, NULL, OPT_JSON },
                                                 { "help", no_argument, NULL, 'h' },
                                                 { "version", no_argument, NULL, 'V' },
                                                 {} };
        struct sigaction sa = { .sa_handler = on_signal };
        int c;

        opterr = 0; /* errors are reported by report_bad_option() */
        argv_for_errors = argv;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                switch (c) {
                case OPT_JSON:
                        arg_json = true;
                        break;
                case 'h':
                        return main_help();
                case 'V':
                        printf("lvss-engine %s\n", PROJECT_VERSION);
                        return EXIT_OK;
                default:
                        return report_bad_option(c, NULL);
                }
        }
        if (optind >= argc)
                return fail(EXIT_USAGE, "no verb given: '%s --help' lists the verbs", program);

        current_verb = find_verb(argv[optind]);
        if (!current_verb)
                return fail(EXIT_USAGE, "unknown verb '%s': '%s --help' lists the verbs", argv[optind],
                            program);

        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        /* The verb parses its own options: argv[0] is the verb, as getopt expects. */
        argc -= optind;
        argv += optind;
        optind = 0;
        argv_for_errors = argv;
        int r = current_verb->run(argc, argv);
        if (fflush(stdout) != 0 || ferror(stdout))
                return r != 0 ? r : fail(EXIT_FAILED, "cannot write to stdout: %m");
        return r;
}
