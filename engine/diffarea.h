/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Slot accounting of a diff area. A slot is in one of four states: in use
 * (holds an exception's data), pending (freed by a deletion whose journal
 * record is not durable yet: reusing it before then could overwrite data a
 * recovered snapshot still reads), free (reusable, may be punched), or beyond
 * the high-water mark. The maximum size counts slots in use and pending.
 *
 * Not thread-safe: the volume's lock protects it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct da_pending {
        uint64_t slot;
        uint64_t gen; /* reusable once commit generation GEN is durable */
};

struct diffarea {
        uint64_t high; /* slots ever handed out: the file holds [0, high) */
        uint64_t used;
        uint64_t max_slots; /* UINT64_MAX: unbounded */
        uint64_t reserved; /* promised to writes in progress, not yet taken */
        uint64_t *free;
        size_t n_free, cap_free;
        struct da_pending *pending;
        size_t n_pending, cap_pending;
};

void diffarea_init(struct diffarea *d, uint64_t high, uint64_t max_slots);
void diffarea_release(struct diffarea *d);

/* Takes a slot: a free one, else a new one past the high-water mark. -ENOSPC if the maximum is
 * reached (free pending slots by committing first), -ENOMEM. */
int diffarea_alloc(struct diffarea *d, uint64_t *ret_slot);

/* Marks a slot in use at load time (recovery); -EEXIST if it already was. */
int diffarea_mark_used(struct diffarea *d, uint64_t slot, uint8_t *seen);

/* Rebuilds the free list from a SEEN bitmap (bit per slot in [0, high)) after recovery. */
int diffarea_rebuild_free(struct diffarea *d, const uint8_t *seen);

/* Gives back a slot that was never published: free at once. */
int diffarea_unalloc(struct diffarea *d, uint64_t slot);

/* Frees a published slot: pending until commit generation GEN is durable. */
int diffarea_free(struct diffarea *d, uint64_t slot, uint64_t gen);

/* Moves pending slots with gen <= DURABLE to the free list; appends them to *RET (may be NULL),
 * a growable array the caller frees, so that the caller can punch them. */
int diffarea_commit(struct diffarea *d, uint64_t durable, uint64_t **ret, size_t *ret_n);

/* Slots that count against the maximum: in use, pending, and reserved. */
static inline uint64_t diffarea_charged(const struct diffarea *d) {
        return d->used + d->n_pending + d->reserved;
}
