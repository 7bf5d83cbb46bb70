/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Exceptions in a chained hash table keyed by chunk (load factor <= 1, doubled
 * as it fills), and the paged WRITTEN table. Lookups and inserts are O(1) on
 * average whatever the number of snapshots; only removal scans the table, and
 * it runs when a snapshot is deleted, never on the write path.
 */

#include "engine/chunkmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

static size_t bucket_of(const struct chunkmap *m, uint64_t chunk) {
        return (size_t) ((chunk * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (m->n_buckets - 1);
}

int chunkmap_init(struct chunkmap *m, uint64_t n_chunks) {
        *m = (struct chunkmap){ .n_chunks = n_chunks };
        m->n_buckets = 1024;
        m->buckets = calloc(m->n_buckets, sizeof *m->buckets);
        m->n_pages = (size_t) DIV_ROUND_UP(n_chunks, CM_PAGE);
        m->pages = calloc(MAX(m->n_pages, (size_t) 1), sizeof *m->pages);
        if (!m->buckets || !m->pages) {
                chunkmap_release(m);
                return -ENOMEM;
        }
        return 0;
}

void chunkmap_release(struct chunkmap *m) {
        if (m->buckets)
                for (size_t i = 0; i < m->n_buckets; i++)
                        for (struct cm_exc *e = m->buckets[i], *next; e; e = next) {
                                next = e->next;
                                free(e);
                        }
        free(m->buckets);
        if (m->pages)
                for (size_t i = 0; i < m->n_pages; i++)
                        free(m->pages[i]);
        free(m->pages);
        *m = (struct chunkmap){};
}

uint32_t chunkmap_written(const struct chunkmap *m, uint64_t chunk) {
        const uint32_t *page = m->pages[chunk / CM_PAGE];
        return page ? page[chunk % CM_PAGE] : 0;
}

int chunkmap_prepare(struct chunkmap *m, uint64_t chunk) {
        uint32_t **page = &m->pages[chunk / CM_PAGE];
        if (*page)
                return 0;
        *page = calloc(CM_PAGE, sizeof **page);
        if (!*page)
                return -ENOMEM;
        m->pages_used++;
        return 0;
}

int chunkmap_set_written(struct chunkmap *m, uint64_t chunk, uint32_t id) {
        uint32_t **page = &m->pages[chunk / CM_PAGE];
        if (!*page) {
                if (id == 0)
                        return 0;
                *page = calloc(CM_PAGE, sizeof **page);
                if (!*page)
                        return -ENOMEM;
                m->pages_used++;
        }
        (*page)[chunk % CM_PAGE] = id;
        return 0;
}

static int grow(struct chunkmap *m) {
        size_t n = m->n_buckets * 2;
        struct cm_exc **b = calloc(n, sizeof *b);
        if (!b)
                return -ENOMEM;
        struct cm_exc **old = m->buckets;
        size_t old_n = m->n_buckets;
        m->buckets = b;
        m->n_buckets = n;
        for (size_t i = 0; i < old_n; i++)
                for (struct cm_exc *e = old[i], *next; e; e = next) {
                        next = e->next;
                        size_t k = bucket_of(m, e->chunk);
                        e->next = b[k];
                        b[k] = e;
                }
        free(old);
        return 0;
}

int chunkmap_add(struct chunkmap *m, uint64_t chunk, uint32_t lo, uint32_t hi, uint64_t slot,
                 bool persistent) {
        if (m->n >= m->n_buckets && grow(m) < 0)
                return -ENOMEM;
        struct cm_exc *e = malloc(sizeof *e);
        if (!e)
                return -ENOMEM;
        *e = (struct cm_exc){ .chunk = chunk, .slot = slot, .lo = lo, .hi = hi, .persistent = persistent };
        size_t k = bucket_of(m, chunk);
        e->next = m->buckets[k];
        m->buckets[k] = e;
        m->n++;
        return 0;
}

const struct cm_exc *chunkmap_find(const struct chunkmap *m, uint64_t chunk, uint32_t id) {
        for (const struct cm_exc *e = m->buckets[bucket_of(m, chunk)]; e; e = e->next)
                if (e->chunk == chunk && e->lo <= id && id <= e->hi)
                        return e;
        return NULL;
}

bool chunkmap_overlaps(const struct chunkmap *m, uint64_t chunk, uint32_t lo, uint32_t hi) {
        for (const struct cm_exc *e = m->buckets[bucket_of(m, chunk)]; e; e = e->next)
                if (e->chunk == chunk && e->lo <= hi && lo <= e->hi)
                        return true;
        return false;
}

void chunkmap_remove_if(struct chunkmap *m, bool (*dead)(void *ud, const struct cm_exc *e),
                        void (*freed)(void *ud, const struct cm_exc *e), void *ud) {
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct cm_exc **pe = &m->buckets[i]; *pe;) {
                        struct cm_exc *e = *pe;
                        if (dead(ud, e)) {
                                *pe = e->next;
                                if (freed)
                                        freed(ud, e);
                                free(e);
                                m->n--;
                        } else
                                pe = &e->next;
                }
}

int chunkmap_foreach(const struct chunkmap *m, int (*fn)(void *ud, const struct cm_exc *e), void *ud) {
        for (size_t i = 0; i < m->n_buckets; i++)
                for (const struct cm_exc *e = m->buckets[i]; e; e = e->next) {
                        int r = fn(ud, e);
                        if (r < 0)
                                return r;
                }
        return 0;
}

uint64_t chunkmap_mem(const struct chunkmap *m) {
        /* malloc rounds a 40-byte node up to a 48-byte chunk. */
        return (uint64_t) m->n * 48 + (uint64_t) m->n_buckets * sizeof(void *) +
               (uint64_t) m->n_pages * sizeof(void *) +
               (uint64_t) m->pages_used * CM_PAGE * sizeof(uint32_t);
}
