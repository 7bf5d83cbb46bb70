#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run by `meson install`: creates the system groups of lvssd's authorization (see lvssd(8)):
#   lvss        may read (list, look up) through lvssd's socket;
#   lvss-admin  may also change (create, delete, expose, revert, ...);
#   lvss-writers may register writers (applications told to freeze; with group lvss to connect).
# Does nothing for a staging install (DESTDIR set: the groups belong to the machine that will
# run lvss, not to this one), for a dry run, or when not root; says what it skipped.

set -u

groups="lvss lvss-admin lvss-writers"

if [ -n "${DESTDIR:-}" ]; then
        echo "install-groups: staging install (DESTDIR=$DESTDIR): not creating the groups $groups;" \
                "create them on the target with 'groupadd -r'"
        exit 0
fi
if [ -n "${MESON_INSTALL_DRY_RUN:-}" ]; then
        echo "install-groups: dry run: would create the groups $groups if missing"
        exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
        echo "install-groups: not root: not creating the groups $groups;" \
                "create them with 'groupadd -r' as root"
        exit 0
fi
if ! command -v groupadd >/dev/null 2>&1; then
        echo "install-groups: groupadd not found: create the groups $groups by hand" >&2
        exit 0
fi

status=0
for g in $groups; do
        if getent group "$g" >/dev/null 2>&1; then
                echo "install-groups: group $g exists"
        elif groupadd -r "$g"; then
                echo "install-groups: created the system group $g"
        else
                echo "install-groups: cannot create the group $g (groupadd -r $g failed)" >&2
                status=1
        fi
done
exit $status
