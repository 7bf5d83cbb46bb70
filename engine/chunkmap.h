/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The in-memory map of a volume's preserved chunks ("exceptions"). An
 * exception says: the content chunk CHUNK had for snapshots LO..HI (ids) is
 * in diff slot SLOT. Ranges of one chunk never overlap. Beside it, per chunk,
 * WRITTEN: the newest snapshot id that existed when the chunk was last
 * overwritten (0: never since the oldest snapshot); a write needs a CoW only
 * if a live snapshot is newer than that. The table is paged and allocated on
 * first use, so an untouched 64 GiB volume costs a few KiB.
 *
 * Not thread-safe: the volume's lock protects it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_exc {
        uint64_t chunk;
        uint64_t slot;
        uint32_t lo, hi;
        bool persistent;
        struct cm_exc *next;
};

struct chunkmap {
        struct cm_exc **buckets;
        size_t n_buckets;
        size_t n; /* exceptions */
        uint32_t **pages; /* WRITTEN, CM_PAGE entries a page */
        size_t n_pages, pages_used;
        uint64_t n_chunks;
};

#define CM_PAGE 4096u

int chunkmap_init(struct chunkmap *m, uint64_t n_chunks);
void chunkmap_release(struct chunkmap *m);

uint32_t chunkmap_written(const struct chunkmap *m, uint64_t chunk);
/* Allocates CHUNK's page of the WRITTEN table, so that setting it cannot fail; -ENOMEM. */
int chunkmap_prepare(struct chunkmap *m, uint64_t chunk);
int chunkmap_set_written(struct chunkmap *m, uint64_t chunk, uint32_t id);

/* Adds an exception; -ENOMEM. The caller guarantees its range overlaps no other of that chunk. */
int chunkmap_add(struct chunkmap *m, uint64_t chunk, uint32_t lo, uint32_t hi, uint64_t slot,
                 bool persistent);

/* The exception of CHUNK whose range holds snapshot ID, or NULL (the snapshot reads the live chunk). */
const struct cm_exc *chunkmap_find(const struct chunkmap *m, uint64_t chunk, uint32_t id);

/* Whether an exception of CHUNK has a range meeting [LO, HI]. */
bool chunkmap_overlaps(const struct chunkmap *m, uint64_t chunk, uint32_t lo, uint32_t hi);

/* Removes every exception for which DEAD returns true, calling FREED on each before it goes. */
void chunkmap_remove_if(struct chunkmap *m, bool (*dead)(void *ud, const struct cm_exc *e),
                        void (*freed)(void *ud, const struct cm_exc *e), void *ud);

/* Calls FN on every exception (in no particular order); stops at and returns FN's first r < 0. */
int chunkmap_foreach(const struct chunkmap *m, int (*fn)(void *ud, const struct cm_exc *e), void *ud);

/* Heap bytes held by the map. */
uint64_t chunkmap_mem(const struct chunkmap *m);
