/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The catalog: what lvssd must remember across restarts that the providers do not keep, i.e.
 * which provider serves each volume and the persistent sets and shadows (a shadow's set, context
 * and id; the provider keeps the snapshot and its label, which is the shadow's id).
 *
 * STATE/catalog is a text file, written whole to catalog.new, synced and renamed into place:
 *
 *     lvss-catalog 1
 *     volume NAME PROVIDER
 *     set ID CONTEXT CREATED_USEC HOLD_USEC
 *     shadow ID SET_ID VOLUME SNAP_ID CONTEXT CREATED_USEC
 *
 * The parser takes untrusted bytes (fuzz/fuzz-catalog.c): a line it does not understand makes
 * catalog_load fail with -EBADMSG, changing nothing.
 */

#include <stddef.h>
#include <stdint.h>

struct catalog_volume {
        char *name, *provider;
};

struct catalog_set {
        char *id, *context;
        uint64_t created_usec, hold_usec;
};

struct catalog_shadow {
        char *id, *set_id, *volume, *context;
        uint32_t snap_id;
        uint64_t created_usec;
};

struct catalog {
        struct catalog_volume *volumes;
        size_t n_volumes;
        struct catalog_set *sets;
        size_t n_sets;
        struct catalog_shadow *shadows;
        size_t n_shadows;
};

/* Fills C (zero-initialised) from PATH; a missing file is an empty catalog. */
int catalog_load(struct catalog *c, const char *path);
/* Parses LEN bytes of BUF into C (zero-initialised); -EBADMSG for anything malformed. */
int catalog_parse(struct catalog *c, const char *buf, size_t len);
/* Writes C to PATH atomically (PATH.new, fsync, rename, fsync of the directory). */
int catalog_save(const struct catalog *c, const char *path);
void catalog_release(struct catalog *c);

int catalog_add_volume(struct catalog *c, const char *name, const char *provider);
int catalog_add_set(struct catalog *c, const char *id, const char *context, uint64_t created_usec,
                    uint64_t hold_usec);
int catalog_add_shadow(struct catalog *c, const char *id, const char *set_id, const char *volume,
                       uint32_t snap_id, const char *context, uint64_t created_usec);

const char *catalog_volume_provider(const struct catalog *c, const char *name);
const struct catalog_shadow *catalog_find_shadow(const struct catalog *c, const char *id);
