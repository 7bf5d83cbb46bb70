/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvssd's model (manager.h): volumes, shadows, sets, and the FUSE export that serves them.
 *
 * Invariants: every volume in `volumes` is open in its provider and exported as
 * RUNTIME/dev/volumes/NAME; every shadow in `shadows` has a snapshot in its volume's provider
 * (until the provider reclaims it for room: manager_prune_vanished() catches up) and is exported
 * as RUNTIME/dev/shadows/ID; a persistent shadow is in the catalog before anyone hears of it.
 * Main thread only (see manager.h).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "host/expose.h"
#include "host/loopdev.h"
#include "host/mounts.h"
#include "service/bus-util.h"
#include "service/catalog.h"
#include "service/history.h"
#include "service/manager.h"

static const char *const context_names[_CTX_MAX] = {
        [CTX_BACKUP] = "backup",
        [CTX_FILE_SHARE_BACKUP] = "file-share-backup",
        [CTX_APP_ROLLBACK] = "app-rollback",
        [CTX_NAS_ROLLBACK] = "nas-rollback",
        [CTX_CLIENT_ACCESSIBLE] = "client-accessible",
};

const char *context_to_string(lvss_context c) {
        return c >= 0 && c < _CTX_MAX ? context_names[c] : NULL;
}

lvss_context context_from_string(const char *s) {
        if (!s || !*s)
                return CTX_BACKUP;
        for (int i = 0; i < _CTX_MAX; i++)
                if (strcmp(s, context_names[i]) == 0)
                        return (lvss_context) i;
        return _CTX_INVALID;
}

bool context_persistent(lvss_context c) {
        return c == CTX_APP_ROLLBACK || c == CTX_NAS_ROLLBACK || c == CTX_CLIENT_ACCESSIBLE;
}

bool context_writers(lvss_context c) {
        return c == CTX_BACKUP || c == CTX_APP_ROLLBACK;
}

bool volume_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return false;
        }
        return true;
}

void manager_new_id(char ret[static LVSS_ID_LEN + 1]) {
        uint8_t b[16];
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, b, sizeof b) != (ssize_t) sizeof b) {
                /* Never reached on Linux; an id from the clock is still unique enough for one host. */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                for (size_t i = 0; i < sizeof b; i++)
                        b[i] = (uint8_t) ((uint64_t) ts.tv_nsec >> (i % 8 * 8)) ^
                               (uint8_t) (i * 37u + (unsigned) getpid());
        }
        if (fd >= 0)
                close(fd);
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40); /* version 4 */
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80); /* variant 1 */
        snprintf(ret, LVSS_ID_LEN + 1,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---- string lists ---- */

size_t strv_len(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

int strv_push(char ***l, const char *s) {
        size_t n = strv_len(*l);
        char **nl = realloc(*l, (n + 2) * sizeof *nl);
        if (!nl)
                return -ENOMEM;
        *l = nl;
        nl[n] = strdup(s);
        nl[n + 1] = NULL;
        return nl[n] ? 0 : -ENOMEM;
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (strcmp(l[i], s) == 0)
                        return true;
        return false;
}

void strv_remove(char **l, const char *s) {
        size_t j = 0;
        for (size_t i = 0; l && l[i]; i++) {
                if (strcmp(l[i], s) == 0)
                        free(l[i]);
                else
                        l[j++] = l[i];
        }
        if (l)
                l[j] = NULL;
}

/* ---- lifecycle ---- */

int manager_new(struct manager **ret) {
        struct manager *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->listen_fd = -1;
        m->gid_read = m->gid_admin = m->gid_writers = (gid_t) -1;
        *ret = m;
        return 0;
}

static void volume_free(struct volume *v) {
        if (!v)
                return;
        free(v->name);
        free(v->dir);
        free(v->path);
        free(v);
}

static void shadow_free(struct shadow *s) {
        if (!s)
                return;
        free(s->path);
        strv_free(s->exposed);
        free(s);
}

static void sset_free(struct sset *s) {
        if (!s)
                return;
        strv_free(s->writers);
        free(s);
}

static void fuse_guardian_stop(struct manager *m);

void manager_free(struct manager *m) {
        if (!m)
                return;
        /* The export goes first: it must stop touching volumes before they close. Its guardian
         * before it: once unmounted, its connection number may go to another mount. */
        fuse_guardian_stop(m);
        fuse_export_free(m->export);
        for (size_t i = 0; i < m->n_shadows; i++)
                shadow_free(m->shadows[i]);
        free(m->shadows);
        for (size_t i = 0; i < m->n_volumes; i++) {
                struct volume *v = m->volumes[i];
                v->provider->volume_close(v->pv);
                volume_free(v);
        }
        free(m->volumes);
        for (size_t i = 0; i < m->n_sets; i++)
                sset_free(m->sets[i]);
        free(m->sets);
        if (m->loaded) {
                catalog_release(m->loaded);
                free(m->loaded);
        }
        if (m->history) {
                history_release(m->history);
                free(m->history);
        }
        strv_free(m->offline);
        free(m->state_dir);
        free(m->runtime_dir);
        free(m->socket_path);
        free(m->dev_dir);
        free(m->catalog_path);
        free(m->history_path);
        free(m->socket_group);
        free(m);
}

/* ---- lookups ---- */

struct volume *manager_find_volume(struct manager *m, const char *name) {
        for (size_t i = 0; i < m->n_volumes; i++)
                if (strcmp(m->volumes[i]->name, name) == 0)
                        return m->volumes[i];
        return NULL;
}

struct shadow *manager_find_shadow(struct manager *m, const char *id) {
        size_t n = strlen(id);
        struct shadow *found = NULL;
        if (n == 0 || n > LVSS_ID_LEN)
                return NULL;
        for (size_t i = 0; i < m->n_shadows; i++) {
                if (strcmp(m->shadows[i]->id, id) == 0)
                        return m->shadows[i];
                if (n >= 8 && strncmp(m->shadows[i]->id, id, n) == 0) {
                        if (found)
                                return NULL; /* ambiguous */
                        found = m->shadows[i];
                }
        }
        return found;
}

struct sset *manager_find_set(struct manager *m, const char *id) {
        size_t n = strlen(id);
        struct sset *found = NULL;
        if (n == 0 || n > LVSS_ID_LEN)
                return NULL;
        for (size_t i = 0; i < m->n_sets; i++) {
                if (strcmp(m->sets[i]->id, id) == 0)
                        return m->sets[i];
                if (n >= 8 && strncmp(m->sets[i]->id, id, n) == 0) {
                        if (found)
                                return NULL;
                        found = m->sets[i];
                }
        }
        return found;
}

unsigned manager_volume_shadow_count(struct manager *m, struct volume *v) {
        unsigned n = 0;
        for (size_t i = 0; i < m->n_shadows; i++)
                n += m->shadows[i]->volume == v;
        return n;
}

/* ---- shadows and sets ---- */

static int export_shadow(struct manager *m, struct shadow *s) {
        eng_volume *ev = s->volume->provider->volume_engine
                                 ? s->volume->provider->volume_engine(s->volume->pv)
                                 : NULL;
        if (!ev || !m->export)
                return 0;
        int r = fuse_export_add_shadow(m->export, s->id, ev, s->snap_id);
        if (r >= 0)
                s->exported = true;
        return r;
}

int manager_add_shadow(struct manager *m, struct volume *v, const char *id, const char *set_id,
                       uint32_t snap_id, lvss_context ctx, uint64_t created_usec, bool persistent,
                       struct shadow **ret) {
        struct shadow **ns = realloc(m->shadows, (m->n_shadows + 1) * sizeof *ns);
        if (!ns)
                return -ENOMEM;
        m->shadows = ns;
        struct shadow *s = calloc(1, sizeof *s);
        if (!s || asprintf(&s->path, "%s/shadows/%s", m->dev_dir, id) < 0) {
                free(s);
                return -ENOMEM;
        }
        snprintf(s->id, sizeof s->id, "%s", id);
        snprintf(s->set_id, sizeof s->set_id, "%s", set_id);
        s->volume = v;
        s->snap_id = snap_id;
        s->context = ctx;
        s->created_usec = created_usec;
        s->persistent = persistent;
        int r = export_shadow(m, s);
        if (r < 0) {
                shadow_free(s);
                return r;
        }
        m->shadows[m->n_shadows++] = s;
        if (ret)
                *ret = s;
        return 0;
}

int manager_add_set(struct manager *m, const char *id, lvss_context ctx, bool persistent, uint64_t created_usec,
                    uint64_t hold_usec) {
        struct sset **ns = realloc(m->sets, (m->n_sets + 1) * sizeof *ns);
        if (!ns)
                return -ENOMEM;
        m->sets = ns;
        struct sset *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        snprintf(s->id, sizeof s->id, "%s", id);
        s->context = ctx;
        s->persistent = persistent;
        s->created_usec = created_usec;
        s->hold_usec = hold_usec;
        m->sets[m->n_sets++] = s;
        return 0;
}

static void forget_shadow(struct manager *m, struct shadow *s) {
        for (size_t i = 0; i < m->n_shadows; i++)
                if (m->shadows[i] == s) {
                        memmove(&m->shadows[i], &m->shadows[i + 1],
                                (m->n_shadows - i - 1) * sizeof *m->shadows);
                        m->n_shadows--;
                        break;
                }
        shadow_free(s);
}

void manager_gc_sets(struct manager *m) {
        size_t j = 0;
        for (size_t i = 0; i < m->n_sets; i++) {
                bool used = false;
                for (size_t k = 0; k < m->n_shadows && !used; k++)
                        used = strcmp(m->shadows[k]->set_id, m->sets[i]->id) == 0;
                if (used)
                        m->sets[j++] = m->sets[i];
                else
                        sset_free(m->sets[i]);
        }
        m->n_sets = j;
}

int manager_delete_shadow(struct manager *m, struct shadow *s, sd_bus_error *error) {
        int r;

        if (s->pending)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Shadow %s belongs to a set still being made (its writers are told "
                                      "Thaw and PostSnapshot): retry in a moment.",
                                      s->id);
        manager_refresh_exposed(s);
        if (s->exposed && s->exposed[0])
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Shadow %s is exposed at %s: run `lvss unexpose %s` first.", s->id,
                                      s->exposed[0], s->exposed[0]);
        if (s->exported) {
                r = fuse_export_remove_shadow(m->export, s->id);
                if (r == -EBUSY)
                        return bus_error_setf(
                                error, r, LVSS_ERROR_BUSY,
                                "Shadow %s is open (a loop device is attached to %s): detach it "
                                "with `losetup -d` first.",
                                s->id, s->path);
                if (r < 0 && r != -ENOENT)
                        return bus_error_setf(error, r, LVSS_ERROR_FAILED,
                                              "Cannot remove the file of shadow %s: %s.", s->id,
                                              strerror(-r));
                s->exported = false;
        }
        r = s->volume->provider->snapshot_delete(s->volume->pv, s->snap_id);
        if (r < 0 && r != -ENOENT) {
                (void) export_shadow(m, s);
                return bus_error_setf(error, r, NULL, "Cannot delete shadow %s: %s.", s->id, strerror(-r));
        }
        forget_shadow(m, s);
        return 0;
}

/* Unexposes and deletes the shadows of SET (but those still being made, the set job's to discard);
 * true if none is left. */
static bool release_set(struct manager *m, struct sset *set, bool *persistent) {
        bool left = false;
        for (size_t k = 0; k < m->n_shadows;) {
                struct shadow *s = m->shadows[k];
                if (strcmp(s->set_id, set->id) != 0 || s->pending) {
                        left |= strcmp(s->set_id, set->id) == 0;
                        k++;
                        continue;
                }
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                manager_refresh_exposed(s);
                char **mps = NULL;
                for (size_t x = 0; s->exposed && s->exposed[x]; x++)
                        (void) strv_push(&mps, s->exposed[x]);
                for (size_t x = 0; mps && mps[x]; x++) {
                        _cleanup_(sd_bus_error_free) sd_bus_error ue = SD_BUS_ERROR_NULL;
                        if (manager_unexpose(m, mps[x], &ue) < 0)
                                fprintf(stderr, "lvssd: cannot unexpose shadow %s at %s: %s\n", s->id, mps[x],
                                        ue.message ? ue.message : "unknown error");
                }
                strv_free(mps);
                bool p = s->persistent;
                if (manager_delete_shadow(m, s, &e) < 0) {
                        fprintf(stderr, "lvssd: cannot release shadow %s yet: %s\n", s->id,
                                e.message ? e.message : "unknown error");
                        left = true;
                        k++;
                } else
                        *persistent |= p;
        }
        return !left;
}

void manager_release_sets_of(struct manager *m, uint64_t owner) {
        bool persistent = false;
        for (size_t i = 0; i < m->n_sets; i++) {
                struct sset *set = m->sets[i];
                if (!(owner ? set->owner == owner : set->release_pending))
                        continue;
                if (!set->release_pending)
                        fprintf(stderr, "lvssd: set %s: its requester's connection closed; releasing it\n",
                                set->id);
                /* What cannot go yet (an exposure in use) is tried again at the next calls. */
                set->release_pending = !release_set(m, set, &persistent);
        }
        manager_gc_sets(m);
        if (persistent)
                (void) manager_save_catalog(m);
}

void manager_prune_vanished(struct manager *m) {
        bool changed = false;
        for (size_t i = 0; i < m->n_sets; i++)
                if (m->sets[i]->release_pending) {
                        manager_release_sets_of(m, 0);
                        break;
                }
        for (size_t i = 0; i < m->n_shadows;) {
                struct shadow *s = m->shadows[i];
                struct lvss_psnap ps;
                if (s->volume->provider->snapshot_get(s->volume->pv, s->snap_id, &ps) == -ENOENT) {
                        if (!s->vanished)
                                fprintf(stderr,
                                        "lvssd: shadow %s of volume %s was deleted to make room for live "
                                        "writes (its diff area reached its maximum, or the state directory's "
                                        "file system is full)\n",
                                        s->id, s->volume->name);
                        changed |= s->persistent && !s->vanished;
                        /* While its file is open (exposed, attached) the export still points at the
                         * volume: keep the shadow, as vanished, so that the volume cannot be closed
                         * under it; it goes once its file can be removed. */
                        if (s->exported && fuse_export_remove_shadow(m->export, s->id) == -EBUSY) {
                                s->vanished = true;
                                i++;
                                continue;
                        }
                        s->exported = false;
                        forget_shadow(m, s);
                        continue;
                }
                i++;
        }
        manager_gc_sets(m);
        if (changed)
                (void) manager_save_catalog(m);
}

/* ---- the catalog ---- */

int manager_save_catalog(struct manager *m) {
        struct catalog c = {};
        int r;

        for (size_t i = 0; i < m->n_volumes; i++) {
                r = catalog_add_volume(&c, m->volumes[i]->name, m->volumes[i]->provider->name);
                if (r < 0)
                        goto out;
        }
        /* A persistent set still tied to its requester (AutoRelease, not yet kept) is left out: should
         * lvssd die before it is kept, the next start deletes its snapshots, which the catalog
         * never heard of, as it would have gone with its requester. */
        for (size_t i = 0; i < m->n_sets; i++) {
                struct sset *s = m->sets[i];
                if (!s->persistent || s->owner)
                        continue;
                r = catalog_add_set(&c, s->id, context_to_string(s->context), s->created_usec, s->hold_usec);
                if (r < 0)
                        goto out;
        }
        for (size_t i = 0; i < m->n_shadows; i++) {
                struct shadow *s = m->shadows[i];
                struct sset *set = s->persistent ? manager_find_set(m, s->set_id) : NULL;
                if (!s->persistent || (set && set->owner))
                        continue;
                r = catalog_add_shadow(&c, s->id, s->set_id, s->volume->name, s->snap_id,
                                       context_to_string(s->context), s->created_usec);
                if (r < 0)
                        goto out;
        }
        /* Volumes that could not be opened keep what the catalog said of them. */
        for (size_t i = 0; m->loaded && m->offline && m->offline[i]; i++) {
                const char *name = m->offline[i];
                if (manager_find_volume(m, name))
                        continue;
                const char *pname = catalog_volume_provider(m->loaded, name);
                r = catalog_add_volume(&c, name, pname ? pname : "cow");
                for (size_t k = 0; r >= 0 && k < m->loaded->n_shadows; k++) {
                        const struct catalog_shadow *cs = &m->loaded->shadows[k];
                        if (strcmp(cs->volume, name) != 0)
                                continue;
                        r = catalog_add_shadow(&c, cs->id, cs->set_id, cs->volume, cs->snap_id, cs->context,
                                               cs->created_usec);
                        bool have = false;
                        for (size_t q = 0; q < c.n_sets && !have; q++)
                                have = strcmp(c.sets[q].id, cs->set_id) == 0;
                        for (size_t q = 0; r >= 0 && !have && q < m->loaded->n_sets; q++)
                                if (strcmp(m->loaded->sets[q].id, cs->set_id) == 0) {
                                        r = catalog_add_set(&c, m->loaded->sets[q].id,
                                                            m->loaded->sets[q].context,
                                                            m->loaded->sets[q].created_usec,
                                                            m->loaded->sets[q].hold_usec);
                                        have = true;
                                }
                }
                if (r < 0)
                        goto out;
        }
        r = catalog_save(&c, m->catalog_path);
out:
        catalog_release(&c);
        return r;
}

/* ---- volumes ---- */

static int export_volume(struct manager *m, struct volume *v) {
        eng_volume *ev = v->provider->volume_engine ? v->provider->volume_engine(v->pv) : NULL;
        if (!ev || !m->export)
                return 0;
        int r = fuse_export_add_volume(m->export, v->name, ev);
        if (r >= 0)
                v->exported = true;
        return r;
}

static int add_volume(struct manager *m, const char *name, const struct lvss_provider *p, lvss_pvol *pv,
                      struct volume **ret) {
        struct volume **nv = realloc(m->volumes, (m->n_volumes + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        m->volumes = nv;
        struct volume *v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        v->manager = m;
        v->provider = p;
        v->pv = pv;
        if (!(v->name = strdup(name)) || asprintf(&v->dir, "%s/volumes/%s", m->state_dir, name) < 0 ||
            asprintf(&v->path, "%s/volumes/%s", m->dev_dir, name) < 0) {
                volume_free(v);
                return -ENOMEM;
        }
        int r = export_volume(m, v);
        if (r < 0) {
                volume_free(v);
                return r;
        }
        m->volumes[m->n_volumes++] = v;
        if (ret)
                *ret = v;
        return 0;
}

static bool path_under(const char *path, const char *dir) {
        size_t n = strlen(dir);
        return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}

int manager_create_volume(struct manager *m, const char *name, uint64_t size, uint32_t chunk_size,
                          const char *image, uid_t caller, struct volume **ret, sd_bus_error *error) {
        const struct lvss_provider *p = lvss_providers[0];
        _cleanup_free_ char *dir = NULL, *real_image = NULL;
        lvss_pvol *pv = NULL;
        int r;

        if (!volume_name_valid(name))
                return bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "'%s' is not a valid volume name: use 1 to 64 letters, digits, '.', '_' "
                        "or '-', starting with a letter or digit.",
                        name);
        if (manager_find_volume(m, name))
                return bus_error_setf(
                        error, -EEXIST, LVSS_ERROR_EXISTS,
                        "A volume named %s exists already: choose another name or delete it first.", name);
        if (m->n_volumes >= LVSS_MAX_VOLUMES)
                return bus_error_setf(error, -EMLINK, LVSS_ERROR_NO_SPACE,
                                      "lvssd serves %zu volumes, the most it may: delete one first.",
                                      m->n_volumes);
        if (chunk_size != 0 &&
            (chunk_size < ENG_CHUNK_MIN || chunk_size > ENG_CHUNK_MAX || !IS_POWER_OF_2(chunk_size)))
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Chunk size %" PRIu32
                                      " is not valid: give a power of two from 4K to 1M.",
                                      chunk_size);
        if (image && *image) {
                struct stat st;
                /* lvssd opens an adopted image again by its path at every start, as root: a file
                 * another user controls could meanwhile become a link to one they may not read. */
                if (caller != 0)
                        return bus_error_setf(
                                error, -EACCES, LVSS_ERROR_ACCESS_DENIED,
                                "Only root may adopt an image (lvssd reopens it by path, as root, at "
                                "every start): ask root to run `lvss volume create --image`.");
                if (image[0] != '/')
                        return bus_error_setf(
                                error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                "Image %s is not an absolute path: give the full path of the file or "
                                "device to adopt.",
                                image);
                real_image = realpath(image, NULL);
                if (!real_image || stat(real_image, &st) < 0)
                        return bus_error_setf(
                                error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                "Cannot adopt image %s: %s; give an existing file or block device.", image,
                                strerror(errno));
                if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                        return bus_error_setf(
                                error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                "Cannot adopt %s: it is neither a regular file nor a block device.", image);
                if (path_under(real_image, m->state_dir) || path_under(real_image, m->runtime_dir))
                        return bus_error_setf(
                                error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                "Cannot adopt %s: it is inside lvssd's own state or runtime directory.",
                                image);
                for (size_t i = 0; i < m->n_volumes; i++) {
                        struct lvss_pvol_info info;
                        if (m->volumes[i]->provider->volume_info(m->volumes[i]->pv, &info) >= 0 &&
                            strcmp(info.image, real_image) == 0)
                                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                                      "Cannot adopt %s: volume %s uses it already.", image,
                                                      m->volumes[i]->name);
                }
        } else if (size == 0)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "A new volume needs a size: give --size (e.g. --size 1G).");
        if (size % 512 != 0)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Size %" PRIu64 " is not a multiple of 512 bytes: round it.", size);
        if (size > (UINT64_C(1) << 50))
                return bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "Size %" PRIu64 " is larger than lvss supports (1 PiB): give a smaller size.", size);

        if (asprintf(&dir, "%s/volumes/%s", m->state_dir, name) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0)
                return bus_error_setf(error, negative_errno(),
                                      errno == EEXIST ? LVSS_ERROR_EXISTS : LVSS_ERROR_FAILED,
                                      "Cannot create %s: %s.", dir, strerror(errno));
        struct lvss_pvol_params pp = { .size = size, .chunk_size = chunk_size, .image = real_image };
        r = p->volume_create(dir, &pp, &pv);
        if (r < 0) {
                (void) p->volume_remove(dir);
                if (r == -ENOSPC)
                        return bus_error_setf(
                                error, r, LVSS_ERROR_NO_SPACE,
                                "No space left for volume %s in %s: free some space or choose a "
                                "smaller size.",
                                name, m->state_dir);
                if (r == -EINVAL)
                        return bus_error_setf(
                                error, r, LVSS_ERROR_INVALID_ARGUMENT,
                                "Cannot create volume %s: the size or the image is not valid (sizes are "
                                "multiples of 512 bytes, at least one chunk).",
                                name);
                return bus_error_setf(error, r, NULL, "Cannot create volume %s: %s.", name, strerror(-r));
        }
        r = add_volume(m, name, p, pv, ret);
        if (r < 0) {
                p->volume_close(pv);
                (void) p->volume_remove(dir);
                return bus_error_setf(error, r, NULL, "Cannot export volume %s: %s.", name, strerror(-r));
        }
        (void) manager_save_catalog(m);
        return 0;
}

int manager_delete_volume(struct manager *m, struct volume *v, bool force, sd_bus_error *error) {
        unsigned n = manager_volume_shadow_count(m, v);
        int r;

        if (n > 0 && !force)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Volume %s has %u shadow copies: delete them first, or give --force.",
                                      v->name, n);
        if (v->exported) {
                r = fuse_export_remove_volume(m->export, v->name);
                if (r == -EBUSY)
                        return bus_error_setf(
                                error, r, LVSS_ERROR_BUSY,
                                "Volume %s is attached (its file %s is open, e.g. by a loop device): "
                                "unmount its filesystem and detach it (`losetup -d`) first.",
                                v->name, v->path);
                if (r < 0 && r != -ENOENT)
                        return bus_error_setf(error, r, NULL, "Cannot remove the file of volume %s: %s.",
                                              v->name, strerror(-r));
                v->exported = false;
        }
        for (size_t i = m->n_shadows; i > 0; i--) {
                struct shadow *s = m->shadows[i - 1];
                if (s->volume != v)
                        continue;
                r = manager_delete_shadow(m, s, error);
                if (r < 0) {
                        (void) export_volume(m, v);
                        manager_gc_sets(m);
                        (void) manager_save_catalog(m);
                        return r;
                }
        }
        manager_gc_sets(m);
        v->provider->volume_close(v->pv);
        r = v->provider->volume_remove(v->dir);
        for (size_t i = 0; i < m->n_volumes; i++)
                if (m->volumes[i] == v) {
                        memmove(&m->volumes[i], &m->volumes[i + 1],
                                (m->n_volumes - i - 1) * sizeof *m->volumes);
                        m->n_volumes--;
                        break;
                }
        volume_free(v);
        (void) manager_save_catalog(m);
        return r < 0 ? bus_error_setf(error, r, NULL,
                                      "The volume is gone, but some of its files remain: %s.", strerror(-r))
                     : 0;
}

int manager_resolve_target(struct manager *m, const char *target, struct volume **ret, sd_bus_error *error) {
        if (volume_name_valid(target)) {
                struct volume *v = manager_find_volume(m, target);
                if (v) {
                        *ret = v;
                        return 0;
                }
        }
        if (target[0] != '/')
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "There is no volume named %s: see `lvss list volumes`.", target);

        _cleanup_free_ char *backing = NULL, *device = NULL, *fstype = NULL;
        int r = mounts_resolve_loop_backing(target, &backing, &device, &fstype);
        if (r == -ENOENT)
                return bus_error_setf(error, r, LVSS_ERROR_NOT_FOUND,
                                      "%s is not a mount point: give a volume name or the mount point of a "
                                      "filesystem on an lvss volume.",
                                      target);
        if (r == -ENOTBLK)
                return bus_error_setf(
                        error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                        "%s is not mounted from a loop device over an lvss volume: give a volume "
                        "name, or mount the volume's file (`lvss volume path NAME`) through a loop "
                        "device.",
                        target);
        if (r < 0)
                return bus_error_setf(error, r, LVSS_ERROR_NOT_FOUND, "Cannot resolve %s: %s.", target,
                                      strerror(-r));
        for (size_t i = 0; i < m->n_volumes; i++)
                if (strcmp(m->volumes[i]->path, backing) == 0) {
                        *ret = m->volumes[i];
                        return 0;
                }
        return bus_error_setf(
                error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                "%s is mounted from %s over %s, which is not a volume of this lvssd (a file left "
                "by an earlier run is dead: re-attach the volume's current file).",
                target, device, backing);
}

/* True if the loop device (sysfs name NAME) has partitions or is held by device-mapper (LUKS,
 * LVM): filesystems there are out of reach of lvssd's freeze. */
static bool loop_has_children(const char *name) {
        char path[PATH_MAX];
        bool found = false;
        snprintf(path, sizeof path, "/sys/block/%s/holders", name);
        DIR *d = opendir(path);
        for (struct dirent *de; d && (de = readdir(d));)
                found |= de->d_name[0] != '.';
        if (d)
                closedir(d);
        snprintf(path, sizeof path, "/sys/block/%s", name);
        d = opendir(path);
        size_t n = strlen(name);
        for (struct dirent *de; d && (de = readdir(d));)
                found |= strncmp(de->d_name, name, n) == 0 && de->d_name[n] == 'p';
        if (d)
                closedir(d);
        return found;
}

int manager_volume_mounts(struct manager *m, struct volume *v, char ***ret, int **ret_mount_ids) {
        char **devices = NULL, **out = NULL;
        int *devs = NULL;
        size_t n_dev = 0, n_out = 0;
        int r = loopdev_list_for_backing(v->path, &devices, &n_dev);
        if (r < 0)
                return r;
        devs = calloc(n_dev + 1, sizeof *devs);
        if (!devs)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n_dev; i++) {
                struct stat st;
                char **mps = NULL;
                size_t n_mp = 0;
                if (stat(devices[i], &st) < 0) {
                        if (errno == ENOENT)
                                continue; /* detached meanwhile */
                        r = negative_errno();
                        break;
                }
                if (loop_has_children(devices[i] + strlen("/dev/"))) {
                        r = -EXDEV;
                        break;
                }
                r = mounts_list_for_device(st.st_rdev, &mps, &n_mp);
                if (r < 0)
                        break;
                /* One mount point per filesystem is enough to freeze it; its mount ID is what
                 * a descriptor opened on it later must be on (device numbers will not do: btrfs
                 * reports other ones than the loop device's). */
                if (n_mp > 0) {
                        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
                        r = mounts_find(mps[0], &e);
                        if (r >= 0 && strv_push(&out, mps[0]) < 0)
                                r = -ENOMEM;
                        if (r >= 0)
                                devs[n_out++] = e->mount_id;
                }
                strv_free(mps);
        }
        strv_free(devices);
        if (r < 0) {
                strv_free(out);
                free(devs);
                return r;
        }
        *ret = out;
        if (ret_mount_ids)
                *ret_mount_ids = devs;
        else
                free(devs);
        return 0;
}

/* ---- expose, unexpose, revert ---- */

int manager_expose(struct manager *m, struct shadow *s, const char *mountpoint, uid_t caller,
                   char **ret_device, char **ret_fstype, sd_bus_error *error) {
        _cleanup_free_ char *real = NULL;
        _cleanup_close_ int dfd = -1;
        char fdpath[64];
        struct stat st;
        int r;

        if (s->pending)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Shadow %s belongs to a set still being made (its writers are told "
                                      "Thaw and PostSnapshot): retry in a moment.",
                                      s->id);
        if (mountpoint[0] != '/')
                return bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "Mount point %s is not an absolute path: give the full path of an empty "
                        "directory.",
                        mountpoint);
        real = realpath(mountpoint, NULL);
        if (!real)
                return bus_error_setf(
                        error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                        "Mount point %s does not exist: create an empty directory there first.", mountpoint);
        /* From here on the directory is held open and everything is checked on, and done through,
         * that descriptor: swapping a component of the path for a symbolic link meanwhile can no
         * longer send the mount elsewhere. */
        r = mounts_open_dir_nofollow(real, &dfd);
        if (r == -ENOTDIR)
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Mount point %s is not a directory: give an empty directory.",
                                      mountpoint);
        if (r < 0 || fstat(dfd, &st) < 0)
                return bus_error_setf(error, r < 0 ? r : -EIO, LVSS_ERROR_FAILED,
                                      "Cannot open mount point %s: %s; give a directory whose path has no "
                                      "symbolic link that changes meanwhile.",
                                      mountpoint, strerror(r < 0 ? -r : errno));
        if (!S_ISDIR(st.st_mode))
                return bus_error_setf(error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                                      "Mount point %s is not a directory: give an empty directory.",
                                      mountpoint);
        if (path_under(real, m->state_dir) || path_under(real, m->runtime_dir))
                return bus_error_setf(
                        error, -EINVAL, LVSS_ERROR_INVALID_ARGUMENT,
                        "Mount point %s is inside lvssd's own state or runtime directory: choose "
                        "another directory.",
                        mountpoint);
        if (caller != 0 && st.st_uid != caller)
                return bus_error_setf(error, -EACCES, LVSS_ERROR_ACCESS_DENIED,
                                      "Mount point %s is not yours: expose on a directory you own.",
                                      mountpoint);
        if (!s->exported)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "Shadow %s has no file to expose.", s->id);

        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", dfd);
        r = expose_mount(s->path, fdpath, ret_device, ret_fstype);
        switch (r) {
        case 0:
                break;
        case -EBUSY:
                return bus_error_setf(error, r, LVSS_ERROR_BUSY,
                                      "%s is a mount point already: unmount it or choose another directory.",
                                      mountpoint);
        case -ENOTEMPTY:
                return bus_error_setf(error, r, LVSS_ERROR_BUSY,
                                      "%s is not empty: expose on an empty directory.", mountpoint);
        case -EMEDIUMTYPE:
                return bus_error_setf(
                        error, r, LVSS_ERROR_FAILED,
                        "Shadow %s holds no filesystem lvss can recognise: read its bytes at %s "
                        "instead.",
                        s->id, s->path);
        case -EXDEV:
                return bus_error_setf(
                        error, r, LVSS_ERROR_FAILED,
                        "Shadow %s holds a btrfs filesystem, which cannot be mounted while its "
                        "original (same fsid) is mounted: unmount the original first, or read the "
                        "shadow's bytes at %s.",
                        s->id, s->path);
        default:
                return bus_error_setf(error, r, NULL, "Cannot expose shadow %s at %s: %s.", s->id,
                                      mountpoint, strerror(-r));
        }
        r = strv_push(&s->exposed, real);
        return r;
}

/* Drops from every shadow the record of MOUNTPOINT (unexposed, or unmounted by hand). */
static void forget_exposure(struct manager *m, const char *mountpoint) {
        for (size_t i = 0; i < m->n_shadows; i++)
                strv_remove(m->shadows[i]->exposed, mountpoint);
}

int manager_unexpose(struct manager *m, const char *mountpoint, sd_bus_error *error) {
        _cleanup_free_ char *real = realpath(mountpoint, NULL), *parent = NULL, *backing = NULL,
                            *device = NULL;
        _cleanup_free_ char *shadows_dir = NULL;
        _cleanup_(mount_entry_freep) struct mount_entry *e = NULL;
        _cleanup_close_ int pfd = -1;
        int r, id;

        if (!real || strcmp(real, "/") == 0)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND, "%s does not exist.",
                                      mountpoint);
        /* The parent is held open (no symbolic links on the way) and the mount found and unmounted
         * through it, so that the mount checked is the mount unmounted. */
        parent = strdup(real);
        if (!parent)
                return -ENOMEM;
        char *slash = strrchr(parent, '/');
        const char *base = real + (slash - parent) + 1;
        *(slash == parent ? slash + 1 : slash) = 0;
        r = mounts_open_dir_nofollow(parent, &pfd);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot open %s: %s.", parent, strerror(-r));
        int cfd = openat(pfd, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND, "%s is not a directory.",
                                      mountpoint);
        r = mounts_fd_mount_id(cfd, &id);
        close(cfd); /* it pins the mount */
        if (r >= 0)
                r = mounts_find_by_id(id, &e);
        if (r >= 0 && strcmp(e->mountpoint, real) != 0)
                r = -ENOENT; /* the directory is not the root of a mount */
        if (r >= 0)
                r = loopdev_backing_file_by_devnum(e->dev, &backing);
        if (r >= 0)
                r = loopdev_node_by_devnum(e->dev, &device);
        if (r < 0) {
                forget_exposure(m, real); /* unmounted by hand, perhaps */
                return bus_error_setf(
                        error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                        "%s is not an exposed shadow copy: see `lvss list shadows` for where shadows "
                        "are exposed.",
                        mountpoint);
        }
        /* Only ever unmount what lvss exposed: a loop device over one of our shadow files. */
        if (asprintf(&shadows_dir, "%s/shadows", m->dev_dir) < 0)
                return -ENOMEM;
        if (!path_under(backing, shadows_dir))
                return bus_error_setf(
                        error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                        "%s is mounted from %s, not from an lvss shadow copy: unmount it yourself.",
                        mountpoint, backing);
        char target[PATH_MAX + 64];
        snprintf(target, sizeof target, "/proc/self/fd/%d/%s", pfd, base);
        if (umount2(target, UMOUNT_NOFOLLOW) < 0) {
                r = negative_errno();
                if (r == -EBUSY)
                        return bus_error_setf(
                                error, r, LVSS_ERROR_BUSY,
                                "%s is in use (open files or a working directory): close them and retry.",
                                mountpoint);
                return bus_error_setf(error, r, NULL, "Cannot unmount %s: %s.", mountpoint, strerror(-r));
        }
        (void) expose_ensure_detached(device, backing);
        forget_exposure(m, real);
        return 0;
}

/* Drops the exposures of S that are no longer mounts of its file (unmounted by hand). */
void manager_refresh_exposed(struct shadow *s) {
        for (size_t i = 0; s->exposed && s->exposed[i];) {
                _cleanup_free_ char *backing = NULL;
                if (mounts_resolve_loop_backing(s->exposed[i], &backing, NULL, NULL) < 0 ||
                    strcmp(backing, s->path) != 0) {
                        char *gone = s->exposed[i];
                        memmove(&s->exposed[i], &s->exposed[i + 1],
                                (strv_len(s->exposed) - i) * sizeof(char *));
                        free(gone);
                        continue;
                }
                i++;
        }
}

/* Loop devices over BACKING, each with the mount points of the filesystem on it. */
static int loops_with_mounts(const char *backing, char ***ret_devices, char ****ret_mounts) {
        char **devs = NULL;
        size_t n = 0;
        int r = loopdev_list_for_backing(backing, &devs, &n);
        if (r < 0)
                return r;
        char ***mps = calloc(n + 1, sizeof *mps);
        if (!mps) {
                strv_free(devs);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (stat(devs[i], &st) == 0 && S_ISBLK(st.st_mode))
                        (void) mounts_list_for_device(st.st_rdev, &mps[i], NULL);
        }
        *ret_devices = devs;
        *ret_mounts = mps;
        return (int) n;
}

static void free_mounts(char ***mps, size_t n) {
        for (size_t i = 0; mps && i < n; i++)
                strv_free(mps[i]);
        free(mps);
}

/* Writes VALUE to /sys/class/bdi/MAJ:MIN/FILE for block device DEVICE; best effort. */
static void bdi_write(const char *device, const char *file, const char *value) {
        struct stat st;
        char path[128];
        if (stat(device, &st) < 0 || !S_ISBLK(st.st_mode))
                return;
        snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/%s", major(st.st_rdev), minor(st.st_rdev), file);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        (void) !write(fd, value, strlen(value));
        close(fd);
}

/* Caps the dirty page cache of the filesystem on loop device DEVICE at MAX bytes (strict: even
 * while the machine as a whole has little dirty), so that a set's freeze has at most that much
 * to flush: writers are throttled instead. Best effort (Linux 6.2 and later). */
static void limit_dirty(const char *device, uint64_t max) {
        char val[32];
        if (max == 0)
                return;
        snprintf(val, sizeof val, "%" PRIu64, max);
        bdi_write(device, "max_bytes", val);
        bdi_write(device, "strict_limit", "1");
}

/* Gives a loop device lvss is about to detach its default dirty limits back: they outlive the
 * binding, and the next user of the device is not ours. */
static void unlimit_dirty(struct manager *m, const char *device) {
        if (m->dirty_limit == 0)
                return; /* never set by lvssd: leave the device's settings as they are */
        bdi_write(device, "strict_limit", "0");
        bdi_write(device, "max_ratio", "100");
}

int manager_attach_volume(struct manager *m, struct volume *v, char **ret_device, char ***ret_stale,
                          sd_bus_error *error) {
        _cleanup_free_ char *dead = NULL;
        char **devs = NULL, ***mps = NULL, **stale = NULL;
        int r, n;

        if (!v->exported)
                return bus_error_setf(error, -ENOENT, LVSS_ERROR_NOT_FOUND,
                                      "Volume %s has no file to attach.", v->name);
        /* What an earlier lvssd's file looks like once its FUSE mount is gone. */
        if (asprintf(&dead, "/volumes/%s", v->name) < 0)
                return -ENOMEM;
        n = loops_with_mounts(dead, &devs, &mps);
        for (int i = 0; i < n; i++) {
                if (mps[i] && mps[i][0]) {
                        for (size_t k = 0; mps[i][k]; k++)
                                (void) strv_push(&stale, mps[i][k]);
                } else {
                        unlimit_dirty(m, devs[i]);
                        (void) loopdev_detach(devs[i]);
                }
        }
        if (n >= 0) {
                free_mounts(mps, (size_t) n);
                strv_free(devs);
        }

        int fd = -1;
        r = loopdev_attach(v->path, false, true, ret_device, &fd);
        if (r < 0) {
                strv_free(stale);
                return bus_error_setf(error, r, NULL, "Cannot attach a loop device to %s: %s.", v->path,
                                      strerror(-r));
        }
        r = loopdev_keep(fd);
        close(fd);
        if (r >= 0)
                limit_dirty(*ret_device, m->dirty_limit);
        if (r < 0) {
                strv_free(stale);
                free(*ret_device);
                *ret_device = NULL;
                return bus_error_setf(error, r, NULL, "Cannot keep the loop device over %s: %s.", v->path,
                                      strerror(-r));
        }
        *ret_stale = stale;
        return 0;
}

int manager_detach_volume(struct manager *m, struct volume *v, char ***ret_detached, sd_bus_error *error) {
        char **devs = NULL, ***mps = NULL, **done = NULL;
        int n = loops_with_mounts(v->path, &devs, &mps), r = 0;
        if (n < 0)
                return bus_error_setf(error, n, NULL, "Cannot list the loop devices over %s: %s.", v->path,
                                      strerror(-n));
        for (int i = 0; i < n; i++)
                if (mps[i] && mps[i][0]) {
                        r = bus_error_setf(
                                error, -EBUSY, LVSS_ERROR_BUSY,
                                "%s (over volume %s) carries the filesystem mounted at %s: unmount it "
                                "first.",
                                devs[i], v->name, mps[i][0]);
                        break;
                }
        for (int i = 0; r == 0 && i < n; i++) {
                unlimit_dirty(m, devs[i]);
                int k = loopdev_detach(devs[i]);
                if (k < 0 && k != -ENXIO) {
                        r = bus_error_setf(error, k, NULL, "Cannot detach %s: %s.", devs[i], strerror(-k));
                        break;
                }
                (void) strv_push(&done, devs[i]);
        }
        free_mounts(mps, (size_t) n);
        strv_free(devs);
        if (r < 0) {
                strv_free(done);
                return r;
        }
        *ret_detached = done;
        return 0;
}

int manager_revert(struct manager *m, struct shadow *s, bool force, sd_bus_error *error) {
        struct volume *v = s->volume;
        char **mps = NULL;
        int r;

        if (s->pending)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "Shadow %s belongs to a set still being made (its writers are told "
                                      "Thaw and PostSnapshot): retry in a moment.",
                                      s->id);
        if (!v->provider->revert)
                return bus_error_setf(error, -EOPNOTSUPP, LVSS_ERROR_FAILED,
                                      "Provider %s cannot revert a volume to a shadow copy.",
                                      v->provider->name);
        r = manager_volume_mounts(m, v, &mps, NULL);
        if (r >= 0 && mps && mps[0] && !force) {
                bus_error_setf(
                        error, -EBUSY, LVSS_ERROR_BUSY,
                        "Volume %s has a filesystem mounted at %s: unmount it first (reverting under a "
                        "mounted filesystem corrupts it), or give --force.",
                        v->name, mps[0]);
                strv_free(mps);
                return -EBUSY;
        }
        strv_free(mps);
        r = v->provider->revert(v->pv, s->snap_id);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot revert volume %s to shadow %s: %s.", v->name,
                                      s->id, strerror(-r));
        return 0;
}

/* ---- startup ---- */

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

static int open_volumes(struct manager *m, struct catalog *c, sd_bus_error *error) {
        _cleanup_free_ char *vdir = NULL;
        if (asprintf(&vdir, "%s/volumes", m->state_dir) < 0)
                return -ENOMEM;
        DIR *d = opendir(vdir);
        if (!d)
                return bus_error_setf(error, negative_errno(), NULL, "Cannot read %s: %s.", vdir,
                                      strerror(errno));
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (!volume_name_valid(de->d_name)) {
                        fprintf(stderr, "lvssd: ignoring %s/%s: not a valid volume name\n", vdir,
                                de->d_name);
                        continue;
                }
                const char *pname = catalog_volume_provider(c, de->d_name);
                const struct lvss_provider *p = lvss_provider_find(pname ? pname : "cow");
                if (!p) {
                        fprintf(stderr,
                                "lvssd: volume %s needs provider %s, which this lvssd lacks: it stays "
                                "offline, "
                                "its catalog entries kept\n",
                                de->d_name, pname);
                        r = strv_push(&m->offline, de->d_name);
                        if (r < 0)
                                break;
                        continue;
                }
                _cleanup_free_ char *dir = NULL;
                if (asprintf(&dir, "%s/%s", vdir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                lvss_pvol *pv;
                r = p->volume_open(dir, &pv);
                if (r < 0) {
                        /* One bad volume must not keep the others offline: say so and go on. */
                        fprintf(stderr,
                                "lvssd: cannot open volume %s: %s%s; it stays offline, its catalog "
                                "entries kept\n",
                                de->d_name, strerror(-r),
                                r == -EUCLEAN ? " (its metadata is damaged: run `lvss-engine repair` on it)"
                                              : "");
                        r = strv_push(&m->offline, de->d_name);
                        if (r < 0)
                                break;
                        continue;
                }
                r = add_volume(m, de->d_name, p, pv, NULL);
                if (r < 0) {
                        p->volume_close(pv);
                        bus_error_setf(error, r, NULL, "Cannot export volume %s: %s.", de->d_name,
                                       strerror(-r));
                        break;
                }
        }
        closedir(d);
        return r;
}

/* Brings the catalog and the providers' snapshots into agreement: a catalog entry without its
 * snapshot is forgotten (reclaimed, or lost with a damaged journal), and a persistent snapshot the
 * catalog never heard of is deleted (a set that crashed before it was complete). */
static int reconcile(struct manager *m, struct catalog *c) {
        for (size_t i = 0; i < c->n_sets; i++) {
                lvss_context ctx = context_from_string(c->sets[i].context);
                if (ctx == _CTX_INVALID)
                        continue;
                int r = manager_add_set(m, c->sets[i].id, ctx, true, c->sets[i].created_usec,
                                        c->sets[i].hold_usec);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_volumes; i++) {
                struct volume *v = m->volumes[i];
                struct lvss_psnap *snaps = NULL;
                size_t n = 0;
                int r = v->provider->snapshot_list(v->pv, &snaps, &n);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < n; j++) {
                        const struct catalog_shadow *cs = catalog_find_shadow(c, snaps[j].label);
                        if (!cs || strcmp(cs->volume, v->name) != 0 || cs->snap_id != snaps[j].id) {
                                fprintf(stderr,
                                        "lvssd: volume %s: deleting snapshot %" PRIu32
                                        " of an incomplete set\n",
                                        v->name, snaps[j].id);
                                (void) v->provider->snapshot_delete(v->pv, snaps[j].id);
                                continue;
                        }
                        lvss_context ctx = context_from_string(cs->context);
                        r = manager_add_shadow(m, v, cs->id, cs->set_id, snaps[j].id,
                                               ctx == _CTX_INVALID ? CTX_APP_ROLLBACK : ctx,
                                               cs->created_usec, true, NULL);
                        if (r < 0) {
                                free(snaps);
                                return r;
                        }
                }
                free(snaps);
        }
        manager_gc_sets(m);
        return manager_save_catalog(m);
}

/* A FUSE mount whose server died answers ENOTCONN (stat may still answer from the cache). */
static bool dead_fuse_mount(const char *path) {
        struct statfs sfs;
        if (statfs(path, &sfs) < 0 && errno == ENOTCONN)
                return true;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOTCONN;
        close(fd);
        return false;
}

/*
 * The FUSE guardian: a child process, forked once the export serves, that watches lvssd and aborts
 * its FUSE connection (fusectl) if lvssd is dying but cannot finish. lvssd's own threads do I/O
 * through its own export (syncfs, FIFREEZE and FITHAW of the volumes' file systems, the mount of an
 * exposure): SIGKILLed meanwhile, such a thread waits in the kernel for writeback that only lvssd's
 * FUSE workers, dead already, would serve, and /dev/fuse is not closed (the connection not aborted)
 * while it waits: a deadlock. Dying is told apart from busy by the kernel's own signs: a pending
 * SIGKILL, or a zombie group leader with threads still running; while lvssd's process exists its
 * /dev/fuse keeps the connection, so the connection number cannot have gone to another mount.
 * After fork() only system calls: the paths are made before it.
 */
struct fuse_guardian_paths {
        pid_t lvssd;
        char status[64]; /* /proc/PID/status */
        char abort[96]; /* /sys/fs/fuse/connections/N/abort */
};

/* Parses the hexadecimal or decimal number after KEY in BUF (a /proc status), 0 if absent. */
static unsigned long long status_field(const char *buf, const char *key, int base) {
        for (const char *p = buf; *p; p++) {
                if (p != buf && p[-1] != '\n')
                        continue;
                size_t k = 0;
                while (key[k] && p[k] == key[k])
                        k++;
                if (key[k])
                        continue;
                p += k;
                while (*p == ' ' || *p == '\t')
                        p++;
                unsigned long long v = 0;
                for (;; p++) {
                        int d = *p >= '0' && *p <= '9'   ? *p - '0'
                                : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                                                         : -1;
                        if (d < 0 || d >= base)
                                break;
                        v = v * (unsigned) base + (unsigned) d;
                }
                return v;
        }
        return 0;
}

static bool status_state_is(const char *buf, char state) {
        for (const char *p = buf; *p; p++)
                if ((p == buf || p[-1] == '\n') && strncmp(p, "State:", 6) == 0) {
                        p += 6;
                        while (*p == ' ' || *p == '\t')
                                p++;
                        return *p == state;
                }
        return false;
}

static _Noreturn void fuse_guardian_main(const struct fuse_guardian_paths *p) {
        if (close_range(0, ~0u, 0) < 0) /* /dev/fuse above all */
                for (int fd = 0; fd < 65536; fd++)
                        (void) close(fd);
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL); /* lvssd blocks SIGTERM for its event loop */
        const struct timespec tick = { .tv_nsec = 100 * 1000 * 1000 };
        char buf[4096];
        for (;;) {
                (void) nanosleep(&tick, NULL);
                /* Reparented: lvssd's process has ended whole, and its connection with it (and its
                 * PID may be another's now). */
                if (getppid() != p->lvssd)
                        _exit(0);
                int fd = open(p->status, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        _exit(0); /* gone: its connection went with it */
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n <= 0)
                        _exit(0);
                buf[n] = 0;
                bool killed = ((status_field(buf, "ShdPnd:", 16) | status_field(buf, "SigPnd:", 16)) >> 8) & 1;
                bool zombie = status_state_is(buf, 'Z');
                unsigned long long threads = status_field(buf, "Threads:", 10);
                if (zombie && threads <= 1)
                        _exit(0); /* all its threads ended: so did the connection */
                if (!killed && !zombie)
                        continue;
                /* Dying, with a thread still in the kernel: abort the connection. */
                int a = open(p->abort, O_WRONLY | O_CLOEXEC);
                bool mounted = false;
                if (a < 0 && errno == ENOENT &&
                    mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) == 0) {
                        mounted = true;
                        a = open(p->abort, O_WRONLY | O_CLOEXEC);
                }
                if (a >= 0) {
                        (void) !write(a, "1", 1);
                        close(a);
                }
                if (mounted)
                        (void) umount2("/sys/fs/fuse/connections", MNT_DETACH);
                _exit(a >= 0 ? 2 : 3);
        }
}

static void fuse_guardian_start(struct manager *m) {
        struct fuse_guardian_paths p;
        struct stat st;
        if (stat(m->dev_dir, &st) < 0 || major(st.st_dev) != 0)
                return;
        p.lvssd = getpid();
        snprintf(p.status, sizeof p.status, "/proc/%d/status", (int) getpid());
        snprintf(p.abort, sizeof p.abort, "/sys/fs/fuse/connections/%u/abort", minor(st.st_dev));
        pid_t pid = fork();
        if (pid == 0)
                fuse_guardian_main(&p);
        if (pid < 0)
                fprintf(stderr, "lvssd: cannot start the FUSE guardian: %m; a SIGKILL during a freeze may "
                                "then leave lvssd stuck\n");
        m->fuse_guardian = pid;
}

/* Before the export is unmounted (its connection number then free for another mount). */
static void fuse_guardian_stop(struct manager *m) {
        if (m->fuse_guardian <= 0)
                return;
        (void) kill(m->fuse_guardian, SIGKILL);
        (void) waitpid(m->fuse_guardian, NULL, 0);
        m->fuse_guardian = 0;
}

/* Whether the backing file BACKING (as the kernel prints it) is a shadow's file under PREFIX. */
static bool backed_by_shadow(const char *backing, const char *prefix) {
        return backing && strncmp(backing, prefix, strlen(prefix)) == 0;
}

/* Exposures an lvssd that was killed left behind (`lvss expose`, and `lvss backup`'s private ones):
 * read-only mounts from loop devices over the shadows' files of the dead FUSE export, which answer
 * only errors now. lvssd made them: it takes them away (lazily), and detaches every loop device over
 * a shadow's file; the volumes' loop devices are their users' and stay. */
static void release_dead_exposures(struct manager *m) {
        _cleanup_free_ char *prefix = NULL;
        struct mount_entry **all = NULL;
        size_t n_all = 0;
        if (asprintf(&prefix, "%s/shadows/", m->dev_dir) < 0 || mounts_read_all(&all, &n_all) < 0)
                return;
        for (size_t i = n_all; i > 0; i--) { /* the last mounted first */
                struct mount_entry *e = all[i - 1];
                _cleanup_free_ char *backing = NULL;
                if (!e->source || strncmp(e->source, "/dev/loop", 9) != 0 ||
                    loopdev_backing_file(e->source, &backing) < 0 || !backed_by_shadow(backing, prefix))
                        continue;
                if (umount2(e->mountpoint, MNT_DETACH) < 0)
                        fprintf(stderr, "lvssd: cannot unmount %s, an exposure an earlier lvssd left: %m\n",
                                e->mountpoint);
                else
                        fprintf(stderr, "lvssd: unmounted %s, an exposure of a shadow an earlier lvssd left\n",
                                e->mountpoint);
        }
        mounts_free_all(all, n_all);
        DIR *d = opendir("/sys/block");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                _cleanup_free_ char *backing = NULL, *node = NULL;
                if (strncmp(de->d_name, "loop", 4) != 0 || loopdev_backing_file(de->d_name, &backing) < 0 ||
                    !backed_by_shadow(backing, prefix) || asprintf(&node, "/dev/%s", de->d_name) < 0)
                        continue;
                if (loopdev_detach(node) >= 0)
                        fprintf(stderr, "lvssd: detached %s, over a shadow of an earlier lvssd\n", node);
        }
        if (d)
                closedir(d);
}

/* The backup history is a convenience (every backup names its base): a file that cannot be read is
 * moved aside, with a line in the log, and lvssd starts with an empty history. */
static int load_history(struct manager *m) {
        m->history = calloc(1, sizeof *m->history);
        if (!m->history)
                return -ENOMEM;
        int r = history_load(m->history, m->history_path);
        if (r >= 0)
                return 0;
        if (r == -ENOMEM)
                return r;
        _cleanup_free_ char *aside = NULL;
        if (asprintf(&aside, "%s.damaged", m->history_path) < 0)
                return -ENOMEM;
        if (rename(m->history_path, aside) < 0)
                fprintf(stderr,
                        "lvssd: cannot read the backup history %s (%s), nor move it to %s (%m): starting "
                        "with an empty history\n",
                        m->history_path, strerror(-r), aside);
        else
                fprintf(stderr,
                        "lvssd: cannot read the backup history %s (%s): moved it to %s; starting with an "
                        "empty history (give --base to the next incremental or differential backup)\n",
                        m->history_path, strerror(-r), aside);
        return 0;
}

int manager_startup(struct manager *m, sd_bus_error *error) {
        struct catalog c = {};
        _cleanup_free_ char *vdir = NULL;
        int r;

        r = mkdir_p(m->state_dir, 0700);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot create the state directory %s: %s.",
                                      m->state_dir, strerror(-r));
        r = mkdir_p(m->runtime_dir, 0755);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot create the runtime directory %s: %s.",
                                      m->runtime_dir, strerror(-r));
        char *s = realpath(m->state_dir, NULL), *rt = realpath(m->runtime_dir, NULL);
        if (!s || !rt) {
                free(s);
                free(rt);
                return -ENOMEM;
        }
        free(m->state_dir);
        free(m->runtime_dir);
        m->state_dir = s;
        m->runtime_dir = rt;
        if (path_under(m->state_dir, m->runtime_dir) || path_under(m->runtime_dir, m->state_dir))
                return bus_error_setf(
                        error, -EINVAL, NULL,
                        "The state directory %s and the runtime directory %s must not contain each "
                        "other: give two separate directories.",
                        m->state_dir, m->runtime_dir);
        if (asprintf(&m->socket_path, "%s/lvssd.sock", m->runtime_dir) < 0 ||
            asprintf(&m->dev_dir, "%s/dev", m->runtime_dir) < 0 ||
            asprintf(&m->catalog_path, "%s/catalog", m->state_dir) < 0 ||
            asprintf(&m->history_path, "%s/backup-history", m->state_dir) < 0 ||
            asprintf(&vdir, "%s/volumes", m->state_dir) < 0)
                return -ENOMEM;
        if (mkdir(vdir, 0700) < 0 && errno != EEXIST)
                return bus_error_setf(error, negative_errno(), NULL, "Cannot create %s: %s.", vdir,
                                      strerror(errno));

        /* FUSE mounts left by lvssds that were killed answer ENOTCONN: take them all away, and the
         * exposures of their shadows first. */
        release_dead_exposures(m); /* no lvssd serves them now (lvssd.c's probe_running) */
        for (int i = 0; i < 64 && dead_fuse_mount(m->dev_dir); i++)
                if (umount2(m->dev_dir, MNT_DETACH) < 0)
                        break;
        if (mkdir(m->dev_dir, 0755) < 0 && errno != EEXIST)
                return bus_error_setf(error, negative_errno(), NULL, "Cannot create %s: %s.", m->dev_dir,
                                      strerror(errno));

        struct fuse_export_params fp = { .n_workers = m->fuse_workers };
        r = fuse_export_new(m->dev_dir, &fp, &m->export);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot mount the FUSE export at %s: %s%s.",
                                      m->dev_dir, strerror(-r),
                                      r == -ENODEV ? " (load the fuse module: modprobe fuse)" : "");
        r = fuse_export_start(m->export);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot start the FUSE export: %s.", strerror(-r));
        fuse_guardian_start(m);

        r = catalog_load(&c, m->catalog_path);
        if (r < 0) {
                catalog_release(&c);
                return bus_error_setf(error, r, NULL,
                                      "Cannot read the catalog %s: %s; move it away to start without the "
                                      "persistent shadows it lists.",
                                      m->catalog_path, strerror(-r));
        }
        /* Kept for the volumes that stay offline: their entries are written back unchanged. */
        m->loaded = malloc(sizeof *m->loaded);
        if (!m->loaded) {
                catalog_release(&c);
                return -ENOMEM;
        }
        *m->loaded = c;
        r = load_history(m);
        if (r < 0)
                return r;
        r = open_volumes(m, m->loaded, error);
        if (r >= 0)
                r = reconcile(m, m->loaded);
        if (r < 0)
                return bus_error_setf(error, r, NULL, "Cannot start: %s.", strerror(-r));
        return 0;
}
