/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over the parser of image backups' chunk maps (backup/imagemap.c), which reads T.map
 * files of backup directories: any bytes must be parsed or refused (with a line number within the
 * input), never crash; what is accepted has ascending chunk numbers inside the image, and, the
 * format being canonical, formats back to exactly the input. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct bkp_image_map m = {};
        size_t line = 0;
        int r = bkp_image_map_parse((const char *) data, size, &m, &line);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                if (r == -EBADMSG && (line == 0 || line > size + 2))
                        abort();
                return 0;
        }
        if (!bkp_image_geometry_valid(m.size, m.chunk_size))
                abort();
        for (size_t i = 0; i < m.n; i++)
                if ((i > 0 && m.index[i] <= m.index[i - 1]) || m.index[i] * m.chunk_size >= m.size)
                        abort();
        struct bkp_buf b = {};
        if (bkp_image_map_format(&m, &b) < 0)
                abort();
        if (b.len != size || memcmp(b.data, data, size) != 0)
                abort();
        bkp_buf_release(&b);
        bkp_image_map_release(&m);
        return 0;
}
