/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The chunk map of an image backup (T.map; its format at the top of image.c): parsing (canonical
 * spelling only, fuzzed by fuzz/fuzz-image-map.c) and formatting. No I/O. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

#define MAP_HEADER "lvss-image-map 1\n"

bool bkp_image_geometry_valid(uint64_t size, uint32_t chunk_size) {
        return size > 0 && size <= BKP_IMAGE_SIZE_MAX && chunk_size >= 4096 && chunk_size <= (1u << 20) &&
               (chunk_size & (chunk_size - 1)) == 0;
}

static uint64_t n_chunks_of(uint64_t size, uint32_t chunk_size) {
        return size / chunk_size + (size % chunk_size != 0);
}

void bkp_image_map_release(struct bkp_image_map *m) {
        free(m->index);
        free(m->sha);
        *m = (struct bkp_image_map){};
}

int bkp_image_map_push(struct bkp_image_map *m, uint64_t index, const uint8_t sha[BKP_SHA256_LEN]) {
        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 1024;
                uint64_t *ni = realloc(m->index, cap * sizeof(*ni));
                if (!ni)
                        return -ENOMEM;
                m->index = ni;
                uint8_t(*ns)[BKP_SHA256_LEN] = realloc(m->sha, cap * sizeof(*ns));
                if (!ns)
                        return -ENOMEM;
                m->sha = ns;
                m->cap = cap;
        }
        m->index[m->n] = index;
        memcpy(m->sha[m->n], sha, BKP_SHA256_LEN);
        m->n++;
        return 0;
}

int bkp_image_map_format(const struct bkp_image_map *m, struct bkp_buf *b) {
        int r = bkp_buf_printf(b, MAP_HEADER "%" PRIu64 " %" PRIu32 "\n", m->size, m->chunk_size);
        for (size_t i = 0; r >= 0 && i < m->n; i++) {
                char hex[BKP_HEX_LEN + 1];
                bkp_hex(m->sha[i], hex);
                r = bkp_buf_printf(b, "%" PRIu64 " %s\n", m->index[i], hex);
        }
        return r;
}

/* A decimal number of [P, END) up to the byte STOP, canonical; advances *P past STOP. */
static int parse_number(const char **p, const char *end, char stop, uint64_t *ret) {
        const char *s = *p, *e = memchr(s, stop, (size_t) (end - s));
        if (!e || e == s || e - s > 20 || (e - s > 1 && s[0] == '0'))
                return -EBADMSG;
        uint64_t v = 0;
        for (const char *c = s; c < e; c++) {
                if (*c < '0' || *c > '9')
                        return -EBADMSG;
                unsigned d = (unsigned) (*c - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *ret = v;
        *p = e + 1;
        return 0;
}

int bkp_image_map_parse(const char *data, size_t len, struct bkp_image_map *ret, size_t *ret_line) {
        struct bkp_image_map m = {};
        const char *p = data, *end = data + len;
        size_t line = 1;
        uint64_t chunk;
        int r = -EBADMSG;
        if (len < strlen(MAP_HEADER) || memcmp(data, MAP_HEADER, strlen(MAP_HEADER)) != 0)
                goto bad;
        p += strlen(MAP_HEADER);
        line++;
        if (parse_number(&p, end, ' ', &m.size) < 0 || parse_number(&p, end, '\n', &chunk) < 0 ||
            chunk > UINT32_MAX || !bkp_image_geometry_valid(m.size, (uint32_t) chunk))
                goto bad;
        m.chunk_size = (uint32_t) chunk;
        uint64_t n_chunks = n_chunks_of(m.size, m.chunk_size);
        while (p < end) {
                line++;
                uint64_t index;
                uint8_t sha[BKP_SHA256_LEN];
                if (parse_number(&p, end, ' ', &index) < 0 || index >= n_chunks ||
                    (m.n > 0 && index <= m.index[m.n - 1]) || end - p < BKP_HEX_LEN + 1 ||
                    p[BKP_HEX_LEN] != '\n' || bkp_unhex(p, BKP_HEX_LEN, sha) < 0)
                        goto bad;
                p += BKP_HEX_LEN + 1;
                r = bkp_image_map_push(&m, index, sha);
                if (r < 0)
                        goto fail;
        }
        *ret = m;
        return 0;
bad:
        r = -EBADMSG;
        if (ret_line)
                *ret_line = line;
fail:
        bkp_image_map_release(&m);
        return r;
}

