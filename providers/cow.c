/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The `cow` provider: lvss's own copy-on-write engine (engine/) behind the provider table. A
 * volume is one engine volume directory; a snapshot is an engine snapshot whose label carries
 * the shadow's id. Everything here is a thin translation: the engine does the locking, and every
 * function may run on any thread.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "providers/provider.h"

#ifndef PROJECT_VERSION
#define PROJECT_VERSION "unknown"
#endif

struct lvss_pvol {
        eng_volume *v;
        char *diff_path; /* DIR/diff, whose blocks on the host are the shadows' real cost */
};

static eng_volume *E(lvss_pvol *v) {
        return v->v;
}

static int wrap(const char *dir, eng_volume *ev, lvss_pvol **ret) {
        lvss_pvol *v = calloc(1, sizeof *v);
        if (!v || asprintf(&v->diff_path, "%s/diff", dir) < 0) {
                free(v);
                engine_volume_close(ev);
                return -ENOMEM;
        }
        v->v = ev;
        *ret = v;
        return 0;
}

static int cow_volume_create(const char *dir, const struct lvss_pvol_params *p, lvss_pvol **ret) {
        struct eng_create_params ep = {
                .size = p->size,
                .chunk_size = p->chunk_size,
                .image = p->image,
                .diff_max = ENG_DIFF_UNBOUNDED,
                .policy = ENG_POLICY_PROTECT_VOLUME,
        };
        eng_volume *v;
        int r = engine_volume_create(dir, &ep, &v);
        if (r < 0)
                return r;
        return wrap(dir, v, ret);
}

static int cow_volume_open(const char *dir, lvss_pvol **ret) {
        eng_volume *v;
        int r = engine_volume_open(dir, &v);
        if (r < 0)
                return r;
        return wrap(dir, v, ret);
}

static void cow_volume_close(lvss_pvol *v) {
        if (!v)
                return;
        engine_volume_close(v->v);
        free(v->diff_path);
        free(v);
}

static int cow_volume_remove(const char *dir) {
        static const char *const files[] = { "meta", "meta.new", "meta.damaged", "diff", "image", "lock" };
        char path[4096];
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(path, sizeof path, "%s/%s", dir, files[i]);
                if (unlink(path) < 0 && errno != ENOENT && r == 0)
                        r = negative_errno();
        }
        if (rmdir(dir) < 0 && errno != ENOENT && r == 0)
                r = negative_errno();
        return r;
}

static int cow_volume_info(lvss_pvol *v, struct lvss_pvol_info *ret) {
        struct eng_volume_info ei;
        int r = engine_volume_info(E(v), &ei);
        if (r < 0)
                return r;
        struct stat st;
        uint64_t allocated = stat(v->diff_path, &st) == 0 ? (uint64_t) st.st_blocks * 512u : 0;
        *ret = (struct lvss_pvol_info){
                .size = ei.size,
                .chunk_size = ei.chunk_size,
                .n_snapshots = ei.n_snapshots,
                .storage_used = ei.diff_used,
                .storage_allocated = allocated,
                .storage_max = ei.diff_max,
                .preserved_chunks = ei.exceptions,
        };
        snprintf(ret->image, sizeof ret->image, "%s", ei.image);
        return 0;
}

static eng_volume *cow_volume_engine(lvss_pvol *v) {
        return E(v);
}

static int cow_hold(lvss_pvol *v, uint32_t timeout_ms) {
        return engine_hold(E(v), timeout_ms);
}

static int cow_release(lvss_pvol *v) {
        return engine_release(E(v));
}

static int cow_snapshot_create(lvss_pvol *v, bool persistent, const char *label, uint32_t *ret_id) {
        struct eng_snap_params sp = { .persistent = persistent, .label = label };
        return engine_snapshot_create(E(v), &sp, ret_id);
}

static int cow_snapshot_delete(lvss_pvol *v, uint32_t id) {
        return engine_snapshot_delete(E(v), id);
}

static void psnap_from(struct lvss_psnap *d, const struct eng_snap_info *s) {
        *d = (struct lvss_psnap){
                .id = s->id,
                .created_usec = s->created_ns / 1000,
                .persistent = s->persistent,
                .invalid = s->state == ENG_SNAP_INVALID,
        };
        snprintf(d->label, sizeof d->label, "%s", s->label);
}

static int cow_snapshot_list(lvss_pvol *v, struct lvss_psnap **ret, size_t *ret_n) {
        _cleanup_free_ struct eng_snap_info *list = NULL;
        size_t n;
        int r = engine_snapshot_list(E(v), &list, &n);
        if (r < 0)
                return r;
        struct lvss_psnap *out = calloc(MAX(n, 1u), sizeof *out);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                psnap_from(&out[i], &list[i]);
        *ret = out;
        *ret_n = n;
        return 0;
}

static int cow_snapshot_get(lvss_pvol *v, uint32_t id, struct lvss_psnap *ret) {
        struct eng_snap_info s;
        int r = engine_snapshot_get(E(v), id, &s);
        if (r < 0)
                return r;
        psnap_from(ret, &s);
        return 0;
}

static int cow_revert(lvss_pvol *v, uint32_t id) {
        return engine_revert(E(v), id);
}

static int cow_set_limit(lvss_pvol *v, uint64_t max) {
        struct eng_volume_info ei;
        int r = engine_volume_info(E(v), &ei);
        if (r < 0)
                return r;
        return engine_set_limit(E(v), max, ei.policy);
}

static int cow_changed_chunks(lvss_pvol *v, uint32_t from, uint32_t to, uint64_t **ret_bitmap,
                              uint64_t *ret_n_chunks, uint32_t *ret_chunk_size) {
        struct eng_volume_info ei;
        int r = engine_volume_info(E(v), &ei);
        if (r < 0)
                return r;
        r = engine_changed_chunks(E(v), from, to, ret_bitmap, ret_n_chunks);
        if (r >= 0)
                *ret_chunk_size = ei.chunk_size;
        return r;
}

static int cow_set_policy(lvss_pvol *v, bool protect_snapshots) {
        struct eng_volume_info ei;
        int r = engine_volume_info(E(v), &ei);
        if (r < 0)
                return r;
        return engine_set_limit(E(v), ei.diff_max,
                                protect_snapshots ? ENG_POLICY_PROTECT_SNAPSHOTS : ENG_POLICY_PROTECT_VOLUME);
}

static int cow_get_policy(lvss_pvol *v, bool *ret_protect_snapshots) {
        struct eng_volume_info ei;
        int r = engine_volume_info(E(v), &ei);
        if (r >= 0)
                *ret_protect_snapshots = ei.policy == ENG_POLICY_PROTECT_SNAPSHOTS;
        return r;
}

extern const struct lvss_provider lvss_provider_cow;
const struct lvss_provider lvss_provider_cow = {
        .api_version = LVSS_PROVIDER_API_VERSION,
        .size = sizeof(struct lvss_provider),
        .name = "cow",
        .version = PROJECT_VERSION,
        .capabilities = LVSS_CAP_VOLUMES | LVSS_CAP_PERSISTENT | LVSS_CAP_NONPERSISTENT | LVSS_CAP_HOLD |
                        LVSS_CAP_REVERT | LVSS_CAP_CBT | LVSS_CAP_LIMIT | LVSS_CAP_ENGINE,
        .volume_create = cow_volume_create,
        .volume_open = cow_volume_open,
        .volume_close = cow_volume_close,
        .volume_remove = cow_volume_remove,
        .volume_info = cow_volume_info,
        .volume_engine = cow_volume_engine,
        .hold = cow_hold,
        .release = cow_release,
        .snapshot_create = cow_snapshot_create,
        .snapshot_delete = cow_snapshot_delete,
        .snapshot_list = cow_snapshot_list,
        .snapshot_get = cow_snapshot_get,
        .revert = cow_revert,
        .set_limit = cow_set_limit,
        .changed_chunks = cow_changed_chunks,
        .set_policy = cow_set_policy,
        .get_policy = cow_get_policy,
};
