/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over the parser of backup manifests (backup/backup.c), which reads the `manifest` file of
 * backup directories: any bytes must be parsed or refused (with a line number within the input),
 * never crash; what is accepted names valid files in strictly ascending order, and formats back to
 * exactly the input (its last line is the SHA-256 of the lines before it). */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct bkp_manifest m = {};
        size_t line = 0;
        int r = bkp_manifest_parse((const char *) data, size, &m, &line);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                if (r == -EBADMSG && (line == 0 || line > size + 2))
                        abort();
                return 0;
        }
        for (size_t i = 0; i < m.n; i++)
                if (!bkp_manifest_name_valid(m.items[i].name) ||
                    (i > 0 && strcmp(m.items[i - 1].name, m.items[i].name) >= 0) ||
                    bkp_manifest_find(&m, m.items[i].name) != &m.items[i])
                        abort();
        struct bkp_buf b = {};
        if (bkp_manifest_format(&m, &b) < 0)
                abort();
        if (b.len != size || memcmp(b.data, data, size) != 0)
                abort();
        bkp_buf_release(&b);
        bkp_manifest_release(&m);
        return 0;
}
