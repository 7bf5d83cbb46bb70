/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over the Writer Metadata Document parser (lib/wmd.c): any bytes must be parsed or refused,
 * never crash, and what is accepted must write out in a canonical form: parsing that output and writing
 * it again gives the same bytes. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "include/lvss/wmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        lvss_wmd *a = NULL, *b = NULL;
        if (lvss_wmd_from_xml((const char *) data, size, &a) < 0)
                return 0;

        char *x1 = NULL, *x2 = NULL;
        size_t n1, n2;
        int r = lvss_wmd_to_xml(a, &x1, &n1);
        if (r == -EFBIG) { /* escaping can make the output of a near-limit input too big */
                lvss_wmd_free(a);
                return 0;
        }
        if (r < 0 || n1 != strlen(x1))
                abort();
        if (lvss_wmd_from_xml(x1, n1, &b) < 0)
                abort();
        if (lvss_wmd_to_xml(b, &x2, &n2) < 0)
                abort();
        if (n1 != n2 || memcmp(x1, x2, n1) != 0)
                abort();
        if (lvss_wmd_get_n_components(a) != lvss_wmd_get_n_components(b) ||
            strcmp(lvss_wmd_get_class_id(a), lvss_wmd_get_class_id(b)) != 0)
                abort();

        free(x1);
        free(x2);
        lvss_wmd_free(a);
        lvss_wmd_free(b);
        return 0;
}
