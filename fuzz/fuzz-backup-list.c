/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over the parser of backup lists (backup/list.c), which reads T.list files of backup
 * directories: any bytes must be parsed or refused (with a line number within the input), never
 * crash; and the format is canonical, so what is accepted must format back to exactly the input. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct bkp_list l = {};
        size_t line = 0;
        int r = bkp_list_parse((const char *) data, size, &l, &line);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                if (r == -EBADMSG && (line == 0 || line > size + 2))
                        abort();
                return 0;
        }
        if (l.n == 0 || strcmp(l.entries[0].path, ".") != 0)
                abort();
        for (size_t i = 0; i < l.n; i++)
                if (bkp_list_find(&l, l.entries[i].path) != &l.entries[i])
                        abort();

        struct bkp_buf b = {};
        if (bkp_list_format(&l, &b) < 0)
                abort();
        if (b.len != size || memcmp(b.data, data, size) != 0)
                abort();
        bkp_buf_release(&b);
        bkp_list_release(&l);
        return 0;
}
