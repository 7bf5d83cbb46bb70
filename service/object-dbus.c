/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The per-object interfaces of docs/dbus-api.md: org.lvss.Volume1 at /org/lvss/volume/NAME,
 * org.lvss.Shadow1 at /org/lvss/shadow/ID, org.lvss.ShadowSet1 at /org/lvss/set/ID. Objects are
 * found on demand from the manager's lists (fallback vtables with a find callback, in the
 * manner of logind), and enumerated for introspection and the object manager. Main thread only.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "service/bus-util.h"
#include "service/manager-dbus.h"

#define VOLUME_PREFIX "/org/lvss/volume"
#define SHADOW_PREFIX "/org/lvss/shadow"
#define SET_PREFIX "/org/lvss/set"

int volume_object_path(struct volume *v, char **ret) {
        return sd_bus_path_encode(VOLUME_PREFIX, v->name, ret);
}

int shadow_object_path(struct shadow *s, char **ret) {
        return sd_bus_path_encode(SHADOW_PREFIX, s->id, ret);
}

int set_object_path(struct sset *s, char **ret) {
        return sd_bus_path_encode(SET_PREFIX, s->id, ret);
}

/* ---- finding and enumerating ---- */

static int volume_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        if (sd_bus_path_decode(path, VOLUME_PREFIX, &name) <= 0 || !name)
                return 0;
        struct volume *v = manager_find_volume(m, name);
        if (!v)
                return 0;
        *found = v;
        return 1;
}

static int shadow_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *id = NULL;
        if (sd_bus_path_decode(path, SHADOW_PREFIX, &id) <= 0 || !id || strlen(id) != LVSS_ID_LEN)
                return 0;
        struct shadow *s = manager_find_shadow(m, id);
        if (!s)
                return 0;
        *found = s;
        return 1;
}

static int set_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                    sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *id = NULL;
        if (sd_bus_path_decode(path, SET_PREFIX, &id) <= 0 || !id || strlen(id) != LVSS_ID_LEN)
                return 0;
        struct sset *s = manager_find_set(m, id);
        if (!s)
                return 0;
        *found = s;
        return 1;
}

static int push_path(char ***l, size_t *n, char *path) {
        if (!path)
                return -ENOMEM;
        char **nl = realloc(*l, (*n + 2) * sizeof *nl);
        if (!nl) {
                free(path);
                return -ENOMEM;
        }
        nl[(*n)++] = path;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

/* The object paths of the N objects in OBJS, each made by PATH_OF, as a new strv. */
static int enumerate(void *const *objs, size_t n, int (*path_of)(void *obj, char **ret), char ***ret) {
        char **l = calloc(1, sizeof *l);
        size_t k = 0;
        int r = l ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char *p = NULL;
                r = path_of(objs[i], &p);
                if (r >= 0)
                        r = push_path(&l, &k, p);
        }
        if (r < 0) {
                strv_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

static int volume_path_of(void *obj, char **ret) {
        return volume_object_path(obj, ret);
}

static int shadow_path_of(void *obj, char **ret) {
        return shadow_object_path(obj, ret);
}

static int set_path_of(void *obj, char **ret) {
        return set_object_path(obj, ret);
}

static int volume_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret,
                            sd_bus_error *error) {
        struct manager *m = userdata;
        return enumerate((void *const *) m->volumes, m->n_volumes, volume_path_of, ret);
}

static int shadow_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret,
                            sd_bus_error *error) {
        struct manager *m = userdata;
        return enumerate((void *const *) m->shadows, m->n_shadows, shadow_path_of, ret);
}

static int set_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error) {
        struct manager *m = userdata;
        return enumerate((void *const *) m->sets, m->n_sets, set_path_of, ret);
}

/* ---- Volume1 ---- */

#define GETTER(fn)                                                                                          \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,           \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error)

GETTER(volume_prop) {
        struct volume *v = userdata;
        struct lvss_pvol_info info = {};
        (void) v->provider->volume_info(v->pv, &info);
        if (strcmp(property, "Name") == 0)
                return sd_bus_message_append(reply, "s", v->name);
        if (strcmp(property, "Provider") == 0)
                return sd_bus_message_append(reply, "s", v->provider->name);
        if (strcmp(property, "Size") == 0)
                return sd_bus_message_append(reply, "t", info.size);
        if (strcmp(property, "ChunkSize") == 0)
                return sd_bus_message_append(reply, "u", info.chunk_size);
        if (strcmp(property, "Path") == 0)
                return sd_bus_message_append(reply, "s", v->path);
        if (strcmp(property, "Image") == 0)
                return sd_bus_message_append(reply, "s", info.image);
        if (strcmp(property, "Shadows") == 0)
                return sd_bus_message_append(reply, "u", manager_volume_shadow_count(v->manager, v));
        if (strcmp(property, "DiffUsed") == 0)
                return sd_bus_message_append(reply, "t", info.storage_used);
        if (strcmp(property, "DiffMax") == 0)
                return sd_bus_message_append(reply, "t", info.storage_max);
        return -ENOENT;
}

static int volume_method_delete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct volume *v = userdata;
        struct manager *m = v->manager;
        int force;
        int r = sd_bus_message_read(msg, "b", &force);
        if (r < 0)
                return r;
        if (m->job)
                return bus_error_setf(error, -EBUSY, LVSS_ERROR_BUSY,
                                      "A shadow copy set is being created: retry in a few seconds.");
        r = manager_delete_volume(m, v, force, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable volume_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", volume_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Provider", "s", volume_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", volume_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ChunkSize", "u", volume_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Path", "s", volume_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Image", "s", volume_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Shadows", "u", volume_prop, 0, 0),
        SD_BUS_PROPERTY("DiffUsed", "t", volume_prop, 0, 0),
        SD_BUS_PROPERTY("DiffMax", "t", volume_prop, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_ARGS("b", force), SD_BUS_NO_RESULT, volume_method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

/* ---- Shadow1 ---- */

GETTER(shadow_prop) {
        struct shadow *s = userdata;
        if (strcmp(property, "Id") == 0)
                return sd_bus_message_append(reply, "s", s->id);
        if (strcmp(property, "Set") == 0)
                return sd_bus_message_append(reply, "s", s->set_id);
        if (strcmp(property, "Volume") == 0)
                return sd_bus_message_append(reply, "s", s->volume->name);
        if (strcmp(property, "Provider") == 0)
                return sd_bus_message_append(reply, "s", s->volume->provider->name);
        if (strcmp(property, "Context") == 0)
                return sd_bus_message_append(reply, "s", context_to_string(s->context));
        if (strcmp(property, "Created") == 0)
                return sd_bus_message_append(reply, "t", s->created_usec);
        if (strcmp(property, "Persistent") == 0)
                return sd_bus_message_append(reply, "b", s->persistent);
        if (strcmp(property, "State") == 0) {
                struct lvss_psnap ps;
                bool invalid =
                        s->volume->provider->snapshot_get(s->volume->pv, s->snap_id, &ps) >= 0 && ps.invalid;
                return sd_bus_message_append(reply, "s",
                                             s->pending    ? "pending"
                                             : s->vanished ? "vanished"
                                             : invalid     ? "invalid"
                                                           : "created");
        }
        if (strcmp(property, "Path") == 0)
                return sd_bus_message_append(reply, "s", s->path);
        if (strcmp(property, "Exposed") == 0)
                return sd_bus_message_append_strv(reply, s->exposed ? s->exposed : (char *[]){ NULL });
        return -ENOENT;
}

static int shadow_method_delete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct shadow *s = userdata;
        struct manager *m = s->volume->manager;
        bool persistent = s->persistent;
        int r = manager_delete_shadow(m, s, error);
        if (r < 0)
                return r;
        manager_gc_sets(m);
        if (persistent)
                (void) manager_save_catalog(m);
        return sd_bus_reply_method_return(msg, NULL);
}

static int shadow_method_expose(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct shadow *s = userdata;
        const char *mp;
        int r = sd_bus_message_read(msg, "s", &mp);
        if (r < 0)
                return r;
        return manager_method_expose(s->volume->manager, msg, s, mp, error);
}

static int shadow_method_revert(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct shadow *s = userdata;
        int force;
        int r = sd_bus_message_read(msg, "b", &force);
        if (r < 0)
                return r;
        return manager_method_revert(s->volume->manager, msg, s, force, error);
}

static const sd_bus_vtable shadow_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Set", "s", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Volume", "s", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Provider", "s", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Context", "s", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Created", "t", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Persistent", "b", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", shadow_prop, 0, 0),
        SD_BUS_PROPERTY("Path", "s", shadow_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Exposed", "as", shadow_prop, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, shadow_method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Expose", SD_BUS_ARGS("s", mountpoint),
                                SD_BUS_RESULT("s", device, "s", fstype), shadow_method_expose,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Revert", SD_BUS_ARGS("b", force), SD_BUS_NO_RESULT, shadow_method_revert,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

/* ---- ShadowSet1 ---- */

struct set_ctx {
        struct manager *m;
};

GETTER(set_prop) {
        struct sset *s = userdata;
        if (strcmp(property, "Id") == 0)
                return sd_bus_message_append(reply, "s", s->id);
        if (strcmp(property, "Context") == 0)
                return sd_bus_message_append(reply, "s", context_to_string(s->context));
        if (strcmp(property, "Created") == 0)
                return sd_bus_message_append(reply, "t", s->created_usec);
        if (strcmp(property, "HoldUsec") == 0)
                return sd_bus_message_append(reply, "t", s->hold_usec);
        return -ENOENT;
}

/* The set's shadows need the manager, which the set does not point to: this getter gets it as
 * the vtable's userdata through a second registration (see object_dbus_attach). */
static struct manager *the_manager;

GETTER(set_prop_shadows) {
        struct sset *s = userdata;
        struct manager *m = the_manager;
        int r = sd_bus_message_open_container(reply, 'a', "o");
        for (size_t i = 0; r >= 0 && m && i < m->n_shadows; i++) {
                if (strcmp(m->shadows[i]->set_id, s->id) != 0)
                        continue;
                _cleanup_free_ char *p = NULL;
                r = shadow_object_path(m->shadows[i], &p);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "o", p);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int set_method_delete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct sset *set = userdata;
        struct manager *m = the_manager;
        bool persistent = false;
        int r = 0;
        char id[LVSS_ID_LEN + 1];
        snprintf(id, sizeof id, "%s", set->id);
        for (size_t i = m->n_shadows; i > 0 && r >= 0; i--) {
                struct shadow *s = m->shadows[i - 1];
                if (strcmp(s->set_id, id) != 0)
                        continue;
                persistent |= s->persistent;
                r = manager_delete_shadow(m, s, error);
        }
        manager_gc_sets(m);
        if (persistent)
                (void) manager_save_catalog(m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable set_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", set_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Context", "s", set_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Created", "t", set_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HoldUsec", "t", set_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Shadows", "ao", set_prop_shadows, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Delete", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, set_method_delete,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int object_dbus_attach(struct manager *m, sd_bus *bus) {
        int r;
        the_manager = m; /* one manager per process */
        r = sd_bus_add_fallback_vtable(bus, NULL, VOLUME_PREFIX, "org.lvss.Volume1", volume_vtable,
                                       volume_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, VOLUME_PREFIX, volume_enumerate, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, SHADOW_PREFIX, "org.lvss.Shadow1", shadow_vtable,
                                               shadow_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, SHADOW_PREFIX, shadow_enumerate, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, SET_PREFIX, "org.lvss.ShadowSet1", set_vtable,
                                               set_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, SET_PREFIX, set_enumerate, m);
        return r;
}
