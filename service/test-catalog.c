/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The catalog's format: a round trip through the file, and the parser refusing what it must. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/catalog.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        exit(1);                                                                            \
                }                                                                                           \
        } while (0)

static const char *const ID1 = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";
static const char *const ID2 = "ffffffff-0000-4000-8000-000000000001";

static void check_bad(const char *text) {
        struct catalog c = {};
        int r = catalog_parse(&c, text, strlen(text));
        if (r != -EBADMSG) {
                fprintf(stderr, "accepted or wrong error (%d) for: %s\n", r, text);
                exit(1);
        }
        CHECK(c.n_volumes == 0 && c.n_shadows == 0 && c.n_sets == 0);
}

int main(void) {
        char dir[] = "/tmp/test-catalog.XXXXXX", path[64];
        CHECK(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/catalog", dir);

        /* A missing file is an empty catalog. */
        struct catalog c = {};
        CHECK(catalog_load(&c, path) == 0 && c.n_volumes == 0);

        CHECK(catalog_add_volume(&c, "db-1.data", "cow") == 0);
        CHECK(catalog_add_set(&c, ID1, "app-rollback", 1700000000000000u, 51234) == 0);
        CHECK(catalog_add_shadow(&c, ID2, ID1, "db-1.data", 4294967295u, "app-rollback",
                                 1700000000000001u) == 0);
        CHECK(catalog_save(&c, path) == 0);
        catalog_release(&c);

        struct catalog d = {};
        CHECK(catalog_load(&d, path) == 0);
        CHECK(d.n_volumes == 1 && strcmp(d.volumes[0].name, "db-1.data") == 0);
        CHECK(strcmp(catalog_volume_provider(&d, "db-1.data"), "cow") == 0);
        CHECK(d.n_sets == 1 && d.sets[0].hold_usec == 51234 && d.sets[0].created_usec == 1700000000000000u);
        const struct catalog_shadow *s = catalog_find_shadow(&d, ID2);
        CHECK(s && s->snap_id == 4294967295u && strcmp(s->set_id, ID1) == 0 &&
              strcmp(s->volume, "db-1.data") == 0);
        CHECK(!catalog_find_shadow(&d, ID1));
        catalog_release(&d);
        char tmp[80];
        snprintf(tmp, sizeof tmp, "%s.new", path);
        CHECK(access(tmp, F_OK) < 0); /* renamed into place */

        check_bad("");
        check_bad("lvss-catalog 2\n");
        check_bad("lvss-catalog 1\nvolume a\n");
        check_bad("lvss-catalog 1\nvolume ../etc cow\n");
        check_bad("lvss-catalog 1\nvolume a cow"); /* no final newline: torn */
        check_bad("lvss-catalog 1\nset 0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3D backup 1 2\n");
        check_bad("lvss-catalog 1\nset 0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d backup 1 -2\n");
        check_bad("lvss-catalog 1\nset 0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d backup 1 "
                  "99999999999999999999999\n");
        check_bad("lvss-catalog 1\nshadow ffffffff-0000-4000-8000-000000000001 "
                  "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d "
                  "a 0 backup 1\n"); /* snapshot id 0 */
        check_bad("lvss-catalog 1\nshadow ffffffff-0000-4000-8000-000000000001 "
                  "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d "
                  "a 4294967296 backup 1\n");
        check_bad("lvss-catalog 1\nfrobnicate\n");
        check_bad("lvss-catalog 1\nvolume a cow x y z w v u t\n");
        const char nul[] = "lvss-catalog 1\nvolume a\0b cow\n";
        struct catalog e = {};
        CHECK(catalog_parse(&e, nul, sizeof nul - 1) == -EBADMSG);

        /* Blank lines are fine. */
        const char ok[] = "lvss-catalog 1\n\nvolume a cow\n";
        CHECK(catalog_parse(&e, ok, sizeof ok - 1) == 0 && e.n_volumes == 1);
        catalog_release(&e);

        unlink(path);
        rmdir(dir);
        printf("catalog ok\n");
        return 0;
}
