/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Free slots are a stack kept in descending order after every bulk release, so
 * that allocations take the lowest free slots first and in ascending order:
 * neighbouring chunks then get neighbouring slots, and their copies coalesce
 * into one call (write.c). Pending slots are a FIFO in generation order.
 */

#include "engine/diffarea.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

void diffarea_init(struct diffarea *d, uint64_t high, uint64_t max_slots) {
        *d = (struct diffarea){ .high = high, .max_slots = max_slots };
}

void diffarea_release(struct diffarea *d) {
        free(d->free);
        free(d->pending);
        *d = (struct diffarea){};
}

static int push_free(struct diffarea *d, uint64_t slot) {
        if (d->n_free == d->cap_free) {
                size_t cap = MAX(d->cap_free * 2, (size_t) 64);
                uint64_t *f = realloc(d->free, cap * sizeof *f);
                if (!f)
                        return -ENOMEM;
                d->free = f;
                d->cap_free = cap;
        }
        d->free[d->n_free++] = slot;
        return 0;
}

int diffarea_alloc(struct diffarea *d, uint64_t *ret_slot) {
        if (diffarea_charged(d) >= d->max_slots)
                return -ENOSPC;
        if (d->n_free > 0)
                *ret_slot = d->free[--d->n_free];
        else
                *ret_slot = d->high++;
        d->used++;
        return 0;
}

int diffarea_mark_used(struct diffarea *d, uint64_t slot, uint8_t *seen) {
        if (slot >= d->high)
                return -ERANGE;
        if (seen[slot / 8] & (1u << (slot % 8)))
                return -EEXIST;
        seen[slot / 8] |= (uint8_t) (1u << (slot % 8));
        d->used++;
        return 0;
}

int diffarea_rebuild_free(struct diffarea *d, const uint8_t *seen) {
        d->n_free = 0;
        for (uint64_t s = d->high; s-- > 0;)
                if (!(seen[s / 8] & (1u << (s % 8)))) {
                        int r = push_free(d, s);
                        if (r < 0)
                                return r;
                }
        return 0;
}

int diffarea_unalloc(struct diffarea *d, uint64_t slot) {
        d->used--;
        return push_free(d, slot);
}

int diffarea_free(struct diffarea *d, uint64_t slot, uint64_t gen) {
        if (d->n_pending == d->cap_pending) {
                size_t cap = MAX(d->cap_pending * 2, (size_t) 64);
                struct da_pending *p = realloc(d->pending, cap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                d->pending = p;
                d->cap_pending = cap;
        }
        d->pending[d->n_pending++] = (struct da_pending){ .slot = slot, .gen = gen };
        d->used--;
        return 0;
}

static int cmp_desc(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x > y ? -1 : x < y;
}

int diffarea_commit(struct diffarea *d, uint64_t durable, uint64_t **ret, size_t *ret_n) {
        size_t k = 0;
        while (k < d->n_pending && d->pending[k].gen <= durable)
                k++;
        if (k == 0)
                return 0;
        /* Reserve room first so that nothing fails half-way. */
        if (d->n_free + k > d->cap_free) {
                size_t cap = MAX(d->cap_free * 2, d->n_free + k);
                uint64_t *f = realloc(d->free, cap * sizeof *f);
                if (!f)
                        return -ENOMEM;
                d->free = f;
                d->cap_free = cap;
        }
        uint64_t *out = NULL;
        if (ret) {
                out = realloc(*ret, (*ret_n + k) * sizeof *out);
                if (!out)
                        return -ENOMEM;
                *ret = out;
        }
        for (size_t i = 0; i < k; i++) {
                d->free[d->n_free++] = d->pending[i].slot;
                if (ret)
                        out[(*ret_n)++] = d->pending[i].slot;
        }
        memmove(d->pending, d->pending + k, (d->n_pending - k) * sizeof *d->pending);
        d->n_pending -= k;
        qsort(d->free, d->n_free, sizeof *d->free, cmp_desc);
        return 0;
}
