/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The provider table: how lvssd reaches a snapshot back end, in the manner of nbdkit's plugin
 * table. A provider fills one `struct lvss_provider` (a versioned table of function pointers)
 * and the service knows it through that table only. The table only grows: a new member is added
 * at the end with a new LVSS_PROVIDER_API_VERSION, and the service checks `api_version` and
 * `size` before calling anything past what the provider declared.
 *
 * A provider manages volumes (opaque `lvss_pvol` handles) living in one directory each under the
 * service's state directory, and snapshots of them, numbered by the provider (uint32, never 0).
 * Capabilities say what a provider can do; a member whose capability is absent may be NULL.
 *
 * Every function returns a negative errno on failure and >= 0 on success; ret_* parameters are
 * untouched on failure. Functions on one handle may be called from several threads at once
 * (the freeze sequence runs on its own thread), except close.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define LVSS_PROVIDER_API_VERSION 2u /* 2: changed_chunks */

typedef struct lvss_pvol lvss_pvol;

enum {
        LVSS_CAP_VOLUMES = 1u << 0, /* creates and deletes its own volumes */
        LVSS_CAP_PERSISTENT = 1u << 1, /* snapshots that survive restarts and crashes */
        LVSS_CAP_NONPERSISTENT = 1u << 2, /* snapshots that end when the service stops */
        LVSS_CAP_HOLD = 1u << 3, /* holds writes for a multi-volume point in time */
        LVSS_CAP_REVERT = 1u << 4, /* the live volume back to a snapshot */
        LVSS_CAP_CBT = 1u << 5, /* changed chunks between two snapshots */
        LVSS_CAP_LIMIT = 1u << 6, /* a maximum size for the snapshots' storage */
        LVSS_CAP_ENGINE = 1u << 7 /* serves an eng_volume the FUSE export can serve */
};

/* Names of the capability bits, for `lvss list providers`; NULL-terminated. */
extern const char *const lvss_cap_names[];

struct lvss_pvol_params {
        uint64_t size; /* bytes; 0 with an image: the image's size */
        uint32_t chunk_size; /* 0: the provider's default */
        const char *image; /* adopt this file or block device; NULL: a new image in the directory */
};

struct lvss_pvol_info {
        uint64_t size;
        uint32_t chunk_size;
        uint32_t n_snapshots;
        uint64_t storage_used; /* bytes of snapshot storage holding data */
        uint64_t storage_allocated; /* bytes of snapshot storage taken on the host */
        uint64_t storage_max; /* UINT64_MAX: unbounded */
        uint64_t preserved_chunks;
        char image[4096];
};

struct lvss_psnap {
        uint32_t id;
        char label[ENG_LABEL_MAX + 1];
        uint64_t created_usec; /* CLOCK_REALTIME */
        bool persistent;
        bool invalid; /* could not be proven intact after a crash */
};

struct lvss_provider {
        uint32_t api_version; /* LVSS_PROVIDER_API_VERSION the provider was written against */
        uint32_t size; /* sizeof(struct lvss_provider) the provider was built with */
        const char *name;
        const char *version;
        uint32_t capabilities;

        /* Creates a volume in the existing empty directory DIR and opens it. */
        int (*volume_create)(const char *dir, const struct lvss_pvol_params *p, lvss_pvol **ret);
        /* Opens the volume in DIR (recovering after a crash). */
        int (*volume_open)(const char *dir, lvss_pvol **ret);
        /* Flushes and closes; non-persistent snapshots end. Accepts NULL. */
        void (*volume_close)(lvss_pvol *v);
        /* Removes what volume_create put in DIR (the volume is closed); an adopted image stays. */
        int (*volume_remove)(const char *dir);
        int (*volume_info)(lvss_pvol *v, struct lvss_pvol_info *ret);
        /* The engine volume behind V, for the FUSE export (LVSS_CAP_ENGINE). */
        eng_volume *(*volume_engine)(lvss_pvol *v);

        /* Holds writes until release or TIMEOUT_MS (LVSS_CAP_HOLD); see engine_hold(). */
        int (*hold)(lvss_pvol *v, uint32_t timeout_ms);
        int (*release)(lvss_pvol *v);

        /* Snapshots the volume now; LABEL (at most ENG_LABEL_MAX bytes) is kept with it. */
        int (*snapshot_create)(lvss_pvol *v, bool persistent, const char *label, uint32_t *ret_id);
        int (*snapshot_delete)(lvss_pvol *v, uint32_t id);
        /* The snapshots, oldest first, in a new array the caller frees. */
        int (*snapshot_list)(lvss_pvol *v, struct lvss_psnap **ret, size_t *ret_n);
        /* -ENOENT if snapshot ID is gone (deleted, or reclaimed for room). */
        int (*snapshot_get)(lvss_pvol *v, uint32_t id, struct lvss_psnap *ret);
        int (*revert)(lvss_pvol *v, uint32_t id); /* LVSS_CAP_REVERT */
        int (*set_limit)(lvss_pvol *v, uint64_t max); /* LVSS_CAP_LIMIT; UINT64_MAX: unbounded */

        /* Since version 2. LVSS_CAP_CBT: a new bitmap (bit N of word N/64 for chunk N of CHUNK_SIZE
         * bytes; the caller frees) of the chunks that may differ between snapshot FROM and the newer
         * snapshot TO; its cost must not grow with the volume's size. */
        int (*changed_chunks)(lvss_pvol *v, uint32_t from, uint32_t to, uint64_t **ret_bitmap,
                              uint64_t *ret_n_chunks, uint32_t *ret_chunk_size);
        /* Since version 2. LVSS_CAP_LIMIT: what happens when the storage is at its maximum (or the
         * host has no room): PROTECT_SNAPSHOTS fails the live write, else the oldest snapshots go. */
        int (*set_policy)(lvss_pvol *v, bool protect_snapshots);
        int (*get_policy)(lvss_pvol *v, bool *ret_protect_snapshots);
};

/* The size of a version 1 table, the smallest this service accepts. */
#define LVSS_PROVIDER_SIZE_V1 offsetof(struct lvss_provider, changed_chunks)

/* P's set_policy and get_policy, or NULL if its table is older or it has none. */
#define LVSS_PROVIDER_HAS_POLICY(p)                                                                        \
        ((p)->api_version >= 2 && (p)->size >= sizeof(struct lvss_provider) && (p)->set_policy &&          \
         (p)->get_policy)

/* P's changed_chunks, or NULL if its table is older or it has none. */
#define LVSS_PROVIDER_CHANGED_CHUNKS(p)                                                                    \
        ((p)->api_version >= 2 && (p)->size >= LVSS_PROVIDER_SIZE_V1 + sizeof(void (*)(void))                     \
                 ? (p)->changed_chunks                                                                      \
                 : NULL)

/* The providers built in, NULL-terminated; the first is the default. */
extern const struct lvss_provider *const lvss_providers[];

/* The provider called NAME, or NULL. */
const struct lvss_provider *lvss_provider_find(const char *name);

/* True if P's table is one this service can use (api_version and size checked). */
bool lvss_provider_usable(const struct lvss_provider *p);
