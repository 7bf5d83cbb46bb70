/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss: the requester on the command line. It talks to lvssd over its
 * socket (docs/dbus-api.md) and implements shared/CLI.md: verbs dispatched
 * from the table below (in the manner of git.c and hostnamectl), one file
 * per verb group, human tables or --json, exit codes 0 to 8.
 *
 * The global options come before the verb; every verb also takes --json,
 * --socket and --help after its name.
 */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli-verbs.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

static int verb_help(int argc, char **argv);

static const cli_verb help_verb = {
        "help", "[VERB...]", "Show the help of lvss or of one verb.", NULL, 0, -1, verb_help,
};

static const cli_verb *const verbs[] = {
        &cli_verb_volume, &cli_verb_create,   &cli_verb_list,   &cli_verb_shadow,  &cli_verb_delete,
        &cli_verb_expose, &cli_verb_unexpose, &cli_verb_revert, &cli_verb_storage, &cli_verb_writer,
        &cli_verb_backup, &cli_verb_restore,  &help_verb,
};

static int main_help(void) {
        printf("Usage: lvss [--socket PATH] [--json] VERB [ARGS...]\n\n"
               "Create, list and use shadow copies of volumes, through lvssd.\n\nVerbs:\n");
        cli_print_verbs(stdout, verbs, ELEMENTSOF(verbs), "");
        printf("\nOptions:\n"
               "      --socket PATH  lvssd's socket (default $LVSS_SOCKET, else " CLI_DEFAULT_SOCKET ")\n"
               "      --json         print one JSON document on stdout\n"
               "  -h, --help         show this help ('lvss VERB --help' for a verb's)\n"
               "      --version      show the version\n\n"
               "Sizes take K, M, G and T suffixes (powers of 1024). Exit codes: 0 ok, 1 failed,\n"
               "2 usage, 3 not found, 4 writer failure, 5 timeout, 6 no space, 7 permission denied,\n"
               "8 lvssd not reachable.\n");
        return CLI_EXIT_OK;
}

/* "lvss help VERB..." is "lvss VERB... --help". */
static int verb_help(int argc, char **argv) {
        char *args[16];
        int n = 0, r;

        if (!cli_parse_plain_verb(argc, argv, &r))
                return r;
        if (optind >= argc)
                return main_help();
        if (argc - optind > (int) ELEMENTSOF(args) - 2)
                return cli_usage_error("help: too many words");
        for (int i = optind; i < argc; i++)
                args[n++] = argv[i];
        args[n++] = (char *) "--help";
        args[n] = NULL;
        return cli_run_verb(verbs, ELEMENTSOF(verbs), "", n, args);
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = CLI_OPT_FIRST_VERB_OPTION };
        static const struct option options[] = { CLI_COMMON_OPTIONS,
                                                 { "version", no_argument, NULL, OPT_VERSION },
                                                 {} };
        int c, r;

        opterr = 0; /* reported by cli_fail() */
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                switch (c) {
                case CLI_OPT_JSON:
                        cli_arg_json = true;
                        break;
                case CLI_OPT_SOCKET:
                        cli_arg_socket = optarg;
                        break;
                case CLI_OPT_HELP:
                        return main_help();
                case OPT_VERSION:
                        printf("lvss %s\n", PROJECT_VERSION);
                        return CLI_EXIT_OK;
                case ':':
                        return cli_fail(CLI_EXIT_USAGE,
                                        "option '%s' needs a value: 'lvss --help' shows the options",
                                        argv[optind - 1]);
                default:
                        return cli_fail(CLI_EXIT_USAGE,
                                        "unknown option '%s': 'lvss --help' shows the options",
                                        argv[optind - 1]);
                }
        }
        if (optind >= argc)
                return cli_fail(CLI_EXIT_USAGE, "no verb given: 'lvss --help' lists the verbs");

        r = cli_run_verb(verbs, ELEMENTSOF(verbs), "", argc - optind, argv + optind);
        if (fflush(stdout) != 0 || ferror(stdout))
                return r != 0 ? r : cli_fail(CLI_EXIT_FAILED, "cannot write to stdout: %m");
        return r;
}
