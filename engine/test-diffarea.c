/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Slot accounting: the maximum, pending slots not reused before their commit, free-list reuse. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/diffarea.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

int main(void) {
        struct diffarea d;
        uint64_t s0, s1, s2, s3;
        diffarea_init(&d, 0, 3);
        CHECK(diffarea_alloc(&d, &s0) == 0 && s0 == 0);
        CHECK(diffarea_alloc(&d, &s1) == 0 && s1 == 1);
        CHECK(diffarea_alloc(&d, &s2) == 0 && s2 == 2);
        CHECK(diffarea_alloc(&d, &s3) == -ENOSPC);

        /* Freed under generation 5: still charged and not reusable until 5 is durable. */
        CHECK(diffarea_free(&d, s1, 5) == 0);
        CHECK(diffarea_charged(&d) == 3);
        CHECK(diffarea_alloc(&d, &s3) == -ENOSPC);
        uint64_t *out = NULL;
        size_t n = 0;
        CHECK(diffarea_commit(&d, 4, &out, &n) == 0 && n == 0);
        CHECK(diffarea_commit(&d, 5, &out, &n) == 0 && n == 1 && out[0] == 1);
        free(out);
        CHECK(diffarea_charged(&d) == 2);
        CHECK(diffarea_alloc(&d, &s3) == 0 && s3 == 1); /* reused, not grown */
        CHECK(d.high == 3);

        /* Never published: back at once. */
        CHECK(diffarea_unalloc(&d, s3) == 0);
        CHECK(diffarea_alloc(&d, &s3) == 0 && s3 == 1);
        diffarea_release(&d);

        /* Recovery: slots 0 and 2 of 4 in use. */
        uint8_t seen[1] = { 0 };
        diffarea_init(&d, 4, UINT64_MAX);
        CHECK(diffarea_mark_used(&d, 0, seen) == 0);
        CHECK(diffarea_mark_used(&d, 2, seen) == 0);
        CHECK(diffarea_mark_used(&d, 2, seen) == -EEXIST);
        CHECK(diffarea_mark_used(&d, 9, seen) == -ERANGE);
        CHECK(diffarea_rebuild_free(&d, seen) == 0);
        CHECK(d.used == 2 && d.n_free == 2);
        CHECK(diffarea_alloc(&d, &s0) == 0 && (s0 == 1 || s0 == 3));
        diffarea_release(&d);
        /* Released in any order, slots come back lowest first, ascending. */
        diffarea_init(&d, 0, UINT64_MAX);
        uint64_t got[6];
        for (int i = 0; i < 6; i++)
                CHECK(diffarea_alloc(&d, &got[i]) == 0 && got[i] == (uint64_t) i);
        CHECK(diffarea_free(&d, 4, 1) == 0);
        CHECK(diffarea_free(&d, 1, 1) == 0);
        CHECK(diffarea_free(&d, 3, 1) == 0);
        CHECK(diffarea_free(&d, 2, 1) == 0);
        CHECK(diffarea_commit(&d, 1, NULL, NULL) == 0);
        for (uint64_t want = 1; want <= 4; want++)
                CHECK(diffarea_alloc(&d, &s0) == 0 && s0 == want);
        CHECK(diffarea_alloc(&d, &s0) == 0 && s0 == 6);
        diffarea_release(&d);
        printf("diffarea ok\n");
        return 0;
}
