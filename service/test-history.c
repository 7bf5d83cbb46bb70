/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The backup history's format: keys, a round trip through the file (an awkward directory
 * included), the cap per key, the choice of a base, and the parser refusing what it must. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/history.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        exit(1);                                                                            \
                }                                                                                           \
        } while (0)

#define ID1_TXT "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
static const char *const ID1 = ID1_TXT;
static const char *const ID2 = "ffffffff-0000-4000-8000-000000000001";
static const char *const ID3 = "ffffffff-0000-4000-8000-000000000002";

static void check_bad(const char *text) {
        struct history h = {};
        int r = history_parse(&h, text, strlen(text));
        if (r != -EBADMSG) {
                fprintf(stderr, "accepted or wrong error (%d) for: %s\n", r, text);
                exit(1);
        }
        CHECK(h.n_entries == 0);
}

static void make_backup(const char *dir) {
        char p[256];
        CHECK(mkdir(dir, 0700) == 0);
        snprintf(p, sizeof p, "%s/backup.xml", dir);
        FILE *f = fopen(p, "we");
        CHECK(f && fclose(f) == 0);
}

int main(void) {
        char dir[] = "/tmp/test-history.XXXXXX", path[64], full[128], inc[128], odd[160];
        CHECK(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/backup-history", dir);
        snprintf(full, sizeof full, "%s/full", dir);
        snprintf(inc, sizeof inc, "%s/inc", dir);
        snprintf(odd, sizeof odd, "%s/a dir%%with\nodd\tbytes \xc3\xa9", dir);

        /* Keys: sorted, without duplicates; only volume names. */
        char *key = NULL;
        CHECK(history_key((char *[]){ "logs", "data", "logs", NULL }, &key) == 0);
        CHECK(strcmp(key, "data,logs") == 0);
        free(key);
        CHECK(history_key((char *[]){ NULL }, &key) == -EINVAL);
        CHECK(history_key((char *[]){ "data", "/srv/db", NULL }, &key) == -EINVAL);
        CHECK(history_key((char *[]){ "a,b", NULL }, &key) == -EINVAL);

        /* A missing file is an empty history. */
        struct history h = {};
        CHECK(history_load(&h, path) == 0 && h.n_entries == 0);
        CHECK(!history_find_base(&h, "data,logs", "incremental"));

        make_backup(full);
        make_backup(inc);
        make_backup(odd);
        CHECK(history_record(&h, path, "data,logs", ID1, "full", full, 1700000000000000u) == 0);
        CHECK(history_record(&h, path, "data,logs", ID2, "incremental", inc, 1700000000000001u) == 0);
        CHECK(history_record(&h, path, "data", ID3, "full", odd, 1700000000000002u) == 0);
        CHECK(history_record(&h, path, "data", ID3, "copy", odd, 1) == -EINVAL);
        CHECK(history_record(&h, path, "logs,data", ID3, "full", odd, 1) == -EINVAL);
        CHECK(history_record(&h, path, "data", "not-an-id", "full", odd, 1) == -EINVAL);
        CHECK(history_record(&h, path, "data", ID3, "full", "relative", 1) == -EINVAL);
        CHECK(h.n_entries == 3);
        history_release(&h);

        struct history d = {};
        CHECK(history_load(&d, path) == 0 && d.n_entries == 3);
        CHECK(strcmp(d.entries[2].dir, odd) == 0 && d.entries[2].created_usec == 1700000000000002u);
        CHECK(strcmp(history_find_base(&d, "data,logs", "incremental")->id, ID2) == 0);
        CHECK(strcmp(history_find_base(&d, "data,logs", "log")->id, ID2) == 0);
        CHECK(strcmp(history_find_base(&d, "data,logs", "differential")->id, ID1) == 0);
        CHECK(strcmp(history_find_base(&d, "data", "incremental")->dir, odd) == 0);
        CHECK(!history_find_base(&d, "logs", "incremental"));
        CHECK(!history_find_base(&d, "data,logs", "full"));

        /* A directory without its backup.xml is skipped. */
        char xml[200];
        snprintf(xml, sizeof xml, "%s/backup.xml", inc);
        CHECK(unlink(xml) == 0);
        CHECK(strcmp(history_find_base(&d, "data,logs", "incremental")->id, ID1) == 0);
        snprintf(xml, sizeof xml, "%s/backup.xml", full);
        CHECK(unlink(xml) == 0);
        CHECK(!history_find_base(&d, "data,logs", "incremental"));

        /* At most HISTORY_MAX_PER_KEY entries a key, the oldest dropped; other keys untouched. */
        for (unsigned i = 0; i < HISTORY_MAX_PER_KEY + 5; i++)
                CHECK(history_record(&d, path, "data,logs", ID2, "incremental", inc, 2000 + i) == 0);
        CHECK(d.n_entries == HISTORY_MAX_PER_KEY + 1);
        CHECK(strcmp(d.entries[0].key, "data") == 0 && d.entries[1].created_usec == 2005);
        history_release(&d);
        CHECK(history_load(&d, path) == 0 && d.n_entries == HISTORY_MAX_PER_KEY + 1);
        CHECK(d.entries[d.n_entries - 1].created_usec == 2000 + HISTORY_MAX_PER_KEY + 4);
        history_release(&d);
        char tmp[80];
        snprintf(tmp, sizeof tmp, "%s.new", path);
        CHECK(access(tmp, F_OK) < 0); /* renamed into place */

        const char *b = "lvss-backup-history 1\nbackup ";
        char line[512];
        check_bad("");
        check_bad("lvss-backup-history 2\n");
        snprintf(line, sizeof line, "%sdata %s full 1 /x", b, ID1); /* no final newline: torn */
        check_bad(line);
        const char *bad[] = {
                "data " ID1_TXT " full 1 /x extra", "data " ID1_TXT " copy 1 /x",
                "data " ID1_TXT " full -1 /x",      "data " ID1_TXT " full 99999999999999999999999 /x",
                "data " ID1_TXT " full 1 x",        "logs,data " ID1_TXT " full 1 /x",
                "data,data " ID1_TXT " full 1 /x",  "data, " ID1_TXT " full 1 /x",
                ".data " ID1_TXT " full 1 /x",      "data " ID1_TXT " full 1 /a%41",
                "data " ID1_TXT " full 1 /a%2",     "data " ID1_TXT " full 1 /a%0a",
                "data " ID1_TXT " full 1 /a%00",    "data " ID1_TXT "X full 1 /x",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                snprintf(line, sizeof line, "%s%s\n", b, bad[i]);
                check_bad(line);
        }
        check_bad("lvss-backup-history 1\nfrobnicate\n");
        const char nul[] =
                "lvss-backup-history 1\nbackup data 0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d full 1 /\0\n";
        struct history e = {};
        CHECK(history_parse(&e, nul, sizeof nul - 1) == -EBADMSG);

        /* Blank lines are fine; %XX decodes. */
        const char ok[] = "lvss-backup-history 1\n\nbackup data 0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d log 1 "
                          "/a%20b%25\n";
        CHECK(history_parse(&e, ok, sizeof ok - 1) == 0 && e.n_entries == 1);
        CHECK(strcmp(e.entries[0].dir, "/a b%") == 0 && strcmp(e.entries[0].type, "log") == 0);
        history_release(&e);

        CHECK(unlink(path) == 0);
        CHECK(rmdir(inc) == 0 && rmdir(full) == 0);
        snprintf(xml, sizeof xml, "%s/backup.xml", odd);
        CHECK(unlink(xml) == 0 && rmdir(odd) == 0);
        CHECK(rmdir(dir) == 0);
        printf("history ok\n");
        return 0;
}
