/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The registry of built-in providers, and the checks the service makes on a provider's table. */

#include <string.h>

#include "providers/provider.h"

extern const struct lvss_provider lvss_provider_cow;

const struct lvss_provider *const lvss_providers[] = { &lvss_provider_cow, NULL };

const char *const lvss_cap_names[] = { "volumes", "persistent", "nonpersistent", "hold", "revert",
                                       "cbt",     "limit",      "engine",        NULL };

bool lvss_provider_usable(const struct lvss_provider *p) {
        return p && p->api_version >= 1 && p->api_version <= LVSS_PROVIDER_API_VERSION &&
               p->size >= LVSS_PROVIDER_SIZE_V1 && p->name && p->version;
}

const struct lvss_provider *lvss_provider_find(const char *name) {
        for (size_t i = 0; lvss_providers[i]; i++)
                if (strcmp(lvss_providers[i]->name, name) == 0 && lvss_provider_usable(lvss_providers[i]))
                        return lvss_providers[i];
        return NULL;
}
