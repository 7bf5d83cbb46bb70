/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Unit test of tool-util.c: size and id parsing (accepted forms, rejected
 * forms, overflow), byte and time formatting, JSON string escaping.
 */

#include "tools/tool-util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"

static int failures = 0;

#define CHECK(cond)                                                                                         \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);            \
                        failures++;                                                                         \
                }                                                                                           \
        } while (0)

static void test_sizes(void) {
        static const struct {
                const char *in;
                uint64_t out;
        } good[] = {
                { "0", 0 },
                { "512", 512 },
                { "4K", 4096 },
                { "4k", 4096 },
                { "4KiB", 4096 },
                { "64M", UINT64_C(64) << 20 },
                { "1G", UINT64_C(1) << 30 },
                { "2GiB", UINT64_C(2) << 30 },
                { "3T", UINT64_C(3) << 40 },
                { "100B", 100 },
                { "18446744073709551615", UINT64_MAX },
        };
        static const char *const bad[] = {
                "", "-1", "+1", " 1", "1 ", "1.5G", "0x10", "K", "12Q", "1KB", "1Kb", "1m", "1g", "abc",
        };
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                v = 1234;
                CHECK(tool_parse_size(good[i].in, &v) == 0);
                if (v != good[i].out)
                        fprintf(stderr, "  %s -> %" PRIu64 ", want %" PRIu64 "\n", good[i].in, v,
                                good[i].out);
                CHECK(v == good[i].out);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                v = 1234;
                if (tool_parse_size(bad[i], &v) != -EINVAL)
                        fprintf(stderr, "  accepted bad size '%s'\n", bad[i]);
                CHECK(v == 1234);
        }
        CHECK(tool_parse_size("16777216T", &v) == -ERANGE);
        CHECK(tool_parse_size("18446744073709551616", &v) == -ERANGE);
        CHECK(tool_parse_size(NULL, &v) == -EINVAL);

        CHECK(tool_parse_limit("unbounded", &v) == 0 && v == UINT64_MAX);
        CHECK(tool_parse_limit("1M", &v) == 0 && v == 1048576);
        CHECK(tool_parse_limit("none", &v) == -EINVAL);
}

static void test_ids(void) {
        uint32_t id = 77;

        CHECK(tool_parse_id("1", &id) == 0 && id == 1);
        CHECK(tool_parse_id("4294967295", &id) == 0 && id == UINT32_MAX);
        id = 77;
        CHECK(tool_parse_id("0", &id) == -EINVAL);
        CHECK(tool_parse_id("4294967296", &id) == -EINVAL);
        CHECK(tool_parse_id("1K", &id) == -EINVAL);
        CHECK(tool_parse_id("-1", &id) == -EINVAL);
        CHECK(tool_parse_id("", &id) == -EINVAL);
        CHECK(id == 77);
}

static void test_format(void) {
        char buf[64];

        CHECK(strcmp(FORMAT_BYTES(0), "0B") == 0);
        CHECK(strcmp(FORMAT_BYTES(1023), "1023B") == 0);
        CHECK(strcmp(FORMAT_BYTES(4096), "4K") == 0);
        CHECK(strcmp(FORMAT_BYTES(1536), "1.5K") == 0);
        CHECK(strcmp(FORMAT_BYTES(UINT64_C(64) << 30), "64G") == 0);

        setenv("TZ", "UTC", 1);
        tzset();
        tool_format_rfc3339(buf, sizeof buf, UINT64_C(1700000000) * 1000000000u + 5);
        CHECK(strcmp(buf, "2023-11-14T22:13:20+00:00") == 0);
        setenv("TZ", "CET-1", 1);
        tzset();
        tool_format_rfc3339(buf, sizeof buf, UINT64_C(1700000000) * 1000000000u);
        CHECK(strcmp(buf, "2023-11-14T23:13:20+01:00") == 0);
}

static void test_json(void) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        CHECK(f != NULL);
        if (!f)
                return;
        tool_json_string(f, "a\"b\\c\nd\x01 é");
        fclose(f);
        CHECK(strcmp(out, "\"a\\\"b\\\\c\\nd\\u0001 é\"") == 0);
        free(out);
}

static void test_zero(void) {
        char buf[100] = {};

        CHECK(tool_is_zero(buf, 0));
        CHECK(tool_is_zero(buf, sizeof buf));
        buf[99] = 1;
        CHECK(!tool_is_zero(buf, sizeof buf));
        CHECK(tool_is_zero(buf, 99));
}

int main(void) {
        test_sizes();
        test_ids();
        test_format();
        test_json();
        test_zero();
        if (failures > 0) {
                fprintf(stderr, "test-tool-util: %d checks failed\n", failures);
                return EXIT_FAILURE;
        }
        printf("test-tool-util: all checks passed\n");
        return EXIT_SUCCESS;
}
