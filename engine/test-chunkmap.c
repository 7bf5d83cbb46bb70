/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The exception map and WRITTEN table: lookups by snapshot id, growth, removal, lazy pages. */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/chunkmap.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

static bool odd_slot(void *ud, const struct cm_exc *e) {
        return e->slot % 2 == 1;
}

static void count_freed(void *ud, const struct cm_exc *e) {
        (*(int *) ud)++;
}

static bool odd_slot_counted(void *ud, const struct cm_exc *e) {
        return odd_slot(ud, e);
}

int main(void) {
        struct chunkmap m;
        CHECK(chunkmap_init(&m, 1u << 24) == 0); /* 64 GiB of 4 KiB chunks */
        uint64_t base = chunkmap_mem(&m);
        CHECK(base < 64 * 1024); /* untouched: no WRITTEN pages */
        CHECK(chunkmap_written(&m, 12345) == 0);
        CHECK(chunkmap_set_written(&m, 12345, 9) == 0);
        CHECK(chunkmap_written(&m, 12345) == 9 && chunkmap_written(&m, 12346) == 0);
        CHECK(m.pages_used == 1);

        /* Chunk 7 with three generations of preserved data. */
        CHECK(chunkmap_add(&m, 7, 1, 3, 100, true) == 0);
        CHECK(chunkmap_add(&m, 7, 4, 4, 101, false) == 0);
        CHECK(chunkmap_add(&m, 7, 5, 9, 102, true) == 0);
        CHECK(chunkmap_find(&m, 7, 0) == NULL);
        CHECK(chunkmap_find(&m, 7, 2)->slot == 100);
        CHECK(chunkmap_find(&m, 7, 4)->slot == 101);
        CHECK(chunkmap_find(&m, 7, 9)->slot == 102);
        CHECK(chunkmap_find(&m, 7, 10) == NULL);
        CHECK(chunkmap_find(&m, 8, 2) == NULL);

        /* Enough to force several table doublings. */
        for (uint64_t c = 1000; c < 101000; c++)
                CHECK(chunkmap_add(&m, c, 1, 1, c, false) == 0);
        CHECK(m.n == 100003 && m.n_buckets >= m.n);
        for (uint64_t c = 1000; c < 101000; c += 997)
                CHECK(chunkmap_find(&m, c, 1)->slot == c);

        int freed = 0;
        chunkmap_remove_if(&m, odd_slot_counted, count_freed, &freed);
        CHECK(freed == 50000 + 1); /* slot 101 too */
        CHECK(m.n == 100003 - 50001);
        CHECK(chunkmap_find(&m, 1001, 1) == NULL && chunkmap_find(&m, 1002, 1)->slot == 1002);
        CHECK(chunkmap_find(&m, 7, 4) == NULL && chunkmap_find(&m, 7, 2)->slot == 100);
        chunkmap_release(&m);
        printf("chunkmap ok\n");
        return 0;
}
