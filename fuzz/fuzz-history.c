/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over lvssd's backup history parser (service/history.c): any bytes in
 * STATE/backup-history must be parsed or refused, never crash, and what is accepted must survive a
 * save and a reload unchanged. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct history h = {};
        if (history_parse(&h, (const char *) data, size) < 0)
                return 0;

        char path[] = "/tmp/fuzz-history.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
                abort();
        close(fd);
        if (history_save(&h, path) < 0)
                abort();
        struct history d = {};
        if (history_load(&d, path) < 0 || d.n_entries != h.n_entries)
                abort();
        for (size_t i = 0; i < h.n_entries; i++)
                if (strcmp(h.entries[i].key, d.entries[i].key) != 0 ||
                    strcmp(h.entries[i].id, d.entries[i].id) != 0 ||
                    strcmp(h.entries[i].type, d.entries[i].type) != 0 ||
                    strcmp(h.entries[i].dir, d.entries[i].dir) != 0 ||
                    h.entries[i].created_usec != d.entries[i].created_usec)
                        abort();
        unlink(path);
        history_release(&h);
        history_release(&d);
        return 0;
}
