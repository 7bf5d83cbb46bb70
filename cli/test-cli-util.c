/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Unit tests of lvss's pure helpers: table alignment, the JSON writer and
 * its escaping, the D-Bus error name to exit code mapping, and the local
 * argument checks. Nothing here talks to lvssd.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli-util.h"

static int failures;

#define CHECK(cond)                                                                                         \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);            \
                        failures++;                                                                         \
                }                                                                                           \
        } while (0)

#define CHECK_STR(got, want)                                                                                \
        do {                                                                                                \
                const char *_g = (got), *_w = (want);                                                       \
                if (strcmp(_g, _w) != 0) {                                                                  \
                        fprintf(stderr, "%s:%d: got\n%s\nwanted\n%s\n", __FILE__, __LINE__, _g, _w);        \
                        failures++;                                                                         \
                }                                                                                           \
        } while (0)

/* Prints T into a string (caller frees). */
static char *table_text(const cli_table *t) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                abort();
        CHECK(cli_table_print(t, f) == 0);
        fclose(f);
        return buf;
}

static void test_table(void) {
        _cleanup_table_ cli_table *t = cli_table_new("NAME", "SIZE", "PATH", NULL);
        _cleanup_free_ char *text = NULL;

        CHECK(t);
        cli_table_align_right(t, 1);
        CHECK(cli_table_rows(t) == 0);
        CHECK(cli_table_add(t, "a", "64M", "/run/lvss/dev/volumes/a") == 0);
        CHECK(cli_table_add(t, "longer-name", "1.5G", NULL) == 0);
        CHECK(cli_table_rows(t) == 2);
        text = table_text(t);
        /* Left columns padded, the right-aligned one padded on the left, the last one never padded,
         * NULL shown as "-". */
        CHECK_STR(text, "NAME         SIZE  PATH\n"
                        "a             64M  /run/lvss/dev/volumes/a\n"
                        "longer-name  1.5G  -\n");
}

static void test_table_utf8_and_growth(void) {
        _cleanup_table_ cli_table *t = cli_table_new("MOUNT", "X", NULL);
        _cleanup_free_ char *text = NULL;
        char cell[8];

        CHECK(cli_text_width("h\xc3\xa9llo") == 5); /* "héllo" */
        CHECK(cli_text_width("") == 0);
        CHECK(cli_table_add(t, "/mnt/\xc3\xa9t\xc3\xa9", "1") == 0);
        CHECK(cli_table_add(t, "/mnt/abcd", "2") == 0);
        text = table_text(t);
        CHECK_STR(text, "MOUNT      X\n"
                        "/mnt/\xc3\xa9t\xc3\xa9   1\n"
                        "/mnt/abcd  2\n");

        /* Many rows: the cell array grows. */
        for (int i = 0; i < 100; i++) {
                snprintf(cell, sizeof cell, "%d", i);
                CHECK(cli_table_add(t, cell, cell) == 0);
        }
        CHECK(cli_table_rows(t) == 102);
}

/* Writes a document with the writer into a string (caller frees). */
static char *json_text(void (*fill)(cli_json *j)) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        cli_json j;

        if (!f)
                abort();
        cli_json_init(&j, f);
        fill(&j);
        cli_json_finish(&j);
        fclose(f);
        return buf;
}

static void fill_escapes(cli_json *j) {
        cli_json_begin_object(j);
        cli_json_key(j, "quote\"back\\slash");
        cli_json_string(j, "tab\tnl\nnul-ish\x01 del\x7f caf\xc3\xa9");
        cli_json_key(j, "empty");
        cli_json_string(j, "");
        cli_json_key(j, "null");
        cli_json_string(j, NULL);
        cli_json_end_object(j);
}

static void fill_nested(cli_json *j) {
        cli_json_begin_array(j);
        cli_json_begin_object(j);
        cli_json_key(j, "n");
        cli_json_uint(j, 18446744073709551615ull);
        cli_json_key(j, "max");
        cli_json_limit(j, CLI_UNBOUNDED);
        cli_json_key(j, "used");
        cli_json_limit(j, 65536);
        cli_json_key(j, "ok");
        cli_json_bool(j, true);
        cli_json_key(j, "list");
        cli_json_begin_array(j);
        cli_json_string(j, "a");
        cli_json_string(j, "b");
        cli_json_end_array(j);
        cli_json_key(j, "none");
        cli_json_begin_array(j);
        cli_json_end_array(j);
        cli_json_key(j, "hold_ms");
        cli_json_msec(j, 12345);
        cli_json_end_object(j);
        cli_json_begin_object(j);
        cli_json_key(j, "hold_ms");
        cli_json_msec(j, 7);
        cli_json_key(j, "created");
        cli_json_time(j, 0);
        cli_json_end_object(j);
        cli_json_end_array(j);
}

static void fill_empty_array(cli_json *j) {
        cli_json_begin_array(j);
        cli_json_end_array(j);
}

static void test_json(void) {
        _cleanup_free_ char *escapes = json_text(fill_escapes);
        _cleanup_free_ char *nested = json_text(fill_nested);
        _cleanup_free_ char *empty = json_text(fill_empty_array);

        CHECK_STR(escapes,
                  "{\"quote\\\"back\\\\slash\":\"tab\\tnl\\nnul-ish\\u0001 del\\u007f caf\xc3\xa9\","
                  "\"empty\":\"\",\"null\":\"\"}\n");
        CHECK_STR(nested, "[{\"n\":18446744073709551615,\"max\":null,\"used\":65536,\"ok\":true,"
                          "\"list\":[\"a\",\"b\"],\"none\":[],\"hold_ms\":12.345},"
                          "{\"hold_ms\":0.007,\"created\":null}]\n");
        CHECK_STR(empty, "[]\n");
}

static void test_json_time(void) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        cli_json j;

        setenv("TZ", "UTC", 1);
        cli_json_init(&j, f);
        cli_json_time(&j, 1700000000123456ull); /* microseconds, as lvssd sends them */
        fclose(f);
        CHECK_STR(buf, "\"2023-11-14T22:13:20+00:00\"");
        free(buf);
        CHECK_STR(CLI_FORMAT_MSEC(1500), "1.500 ms");
        CHECK_STR(CLI_FORMAT_LIMIT(CLI_UNBOUNDED), "unbounded");
        CHECK_STR(CLI_FORMAT_LIMIT(64u << 20), "64M");
}

static void test_json_in_memory(void) {
        cli_json j;

        /* A document released without being emitted prints nothing and leaks nothing. */
        CHECK(cli_json_open(&j) == 0);
        cli_json_begin_array(&j);
        cli_json_string(&j, "half");
        cli_json_release(&j);
        CHECK(j.f == NULL && j.buf == NULL);
}

static void test_exit_codes(void) {
        static const struct {
                const char *name;
                int code;
        } cases[] = {
                { "org.lvss.Error.InvalidArgument", CLI_EXIT_USAGE },
                { "org.lvss.Error.NotFound", CLI_EXIT_NOT_FOUND },
                { "org.lvss.Error.Exists", CLI_EXIT_FAILED },
                { "org.lvss.Error.Busy", CLI_EXIT_FAILED },
                { "org.lvss.Error.Failed", CLI_EXIT_FAILED },
                { "org.lvss.Error.WriterFailed", CLI_EXIT_WRITER },
                { "org.lvss.Error.Timeout", CLI_EXIT_TIMEOUT },
                { "org.lvss.Error.NoSpace", CLI_EXIT_NO_SPACE },
                { "org.lvss.Error.AccessDenied", CLI_EXIT_ACCESS },
                { "org.freedesktop.DBus.Error.AccessDenied", CLI_EXIT_ACCESS },
                { "org.freedesktop.DBus.Error.NoReply", CLI_EXIT_TIMEOUT },
                { "org.lvss.Error.SomethingNew", CLI_EXIT_FAILED },
                { "org.freedesktop.DBus.Error.UnknownMethod", CLI_EXIT_FAILED },
                { "org.lvss.Error.notfound", CLI_EXIT_FAILED }, /* names are case-sensitive */
                { "", CLI_EXIT_FAILED },
                { NULL, CLI_EXIT_FAILED },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int code = cli_exit_for_error_name(cases[i].name);
                if (code != cases[i].code) {
                        fprintf(stderr, "exit code of %s: got %d, wanted %d\n",
                                cases[i].name ? cases[i].name : "(null)", code, cases[i].code);
                        failures++;
                }
        }
}

static void test_checks(void) {
        char name64[65], name65[66];

        memset(name64, 'a', 64);
        name64[64] = 0;
        memset(name65, 'a', 65);
        name65[65] = 0;

        CHECK(cli_volume_name_is_valid("a"));
        CHECK(cli_volume_name_is_valid("Data-01.img_2"));
        CHECK(cli_volume_name_is_valid("0"));
        CHECK(cli_volume_name_is_valid(name64));
        CHECK(!cli_volume_name_is_valid(name65));
        CHECK(!cli_volume_name_is_valid(""));
        CHECK(!cli_volume_name_is_valid(NULL));
        CHECK(!cli_volume_name_is_valid(".hidden"));
        CHECK(!cli_volume_name_is_valid("-a"));
        CHECK(!cli_volume_name_is_valid("a/b"));
        CHECK(!cli_volume_name_is_valid("a b"));
        CHECK(!cli_volume_name_is_valid("caf\xc3\xa9"));

        CHECK(cli_context_is_valid("backup"));
        CHECK(cli_context_is_valid("client-accessible"));
        CHECK(cli_context_is_valid("nas-rollback"));
        CHECK(!cli_context_is_valid("Backup"));
        CHECK(!cli_context_is_valid(""));
        CHECK(!cli_context_is_valid(NULL));

        CHECK(cli_id_is_valid("3f2a9c1e"));
        CHECK(cli_id_is_valid("3f2a9c1e-0b7d-4c2e-9a51-0f1e2d3c4b5a"));
        CHECK(!cli_id_is_valid("3f2a9c1"));
        CHECK(!cli_id_is_valid("3f2a9c1e-0b7d-4c2e-9a51-0f1e2d3c4b5a0"));
        CHECK(!cli_id_is_valid("xyzxyzxyz"));
        CHECK(!cli_id_is_valid(NULL));
}

int main(void) {
        test_table();
        test_table_utf8_and_growth();
        test_json();
        test_json_time();
        test_json_in_memory();
        test_exit_codes();
        test_checks();
        if (failures > 0) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("all checks passed\n");
        return 0;
}
