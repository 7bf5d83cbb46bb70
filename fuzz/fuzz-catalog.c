/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over lvssd's catalog parser (service/catalog.c): any bytes in STATE/catalog must be
 * parsed or refused, never crash, and what is accepted must survive a save and a reload. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct catalog c = {};
        if (catalog_parse(&c, (const char *) data, size) < 0)
                return 0;

        /* Accepted: a round trip through the file gives the same catalog. */
        char path[] = "/tmp/fuzz-catalog.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
                abort();
        close(fd);
        if (catalog_save(&c, path) < 0)
                abort();
        struct catalog d = {};
        if (catalog_load(&d, path) < 0)
                abort();
        if (c.n_volumes != d.n_volumes || c.n_sets != d.n_sets || c.n_shadows != d.n_shadows)
                abort();
        for (size_t i = 0; i < c.n_shadows; i++)
                if (strcmp(c.shadows[i].id, d.shadows[i].id) != 0 || c.shadows[i].snap_id != d.shadows[i].snap_id ||
                    c.shadows[i].created_usec != d.shadows[i].created_usec)
                        abort();
        unlink(path);
        catalog_release(&c);
        catalog_release(&d);
        return 0;
}
