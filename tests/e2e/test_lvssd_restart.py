# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvssd restarts: persistent shadows (app-rollback) come back with the same
# ids, set and bytes; non-persistent ones (backup) are gone; the live
# volumes keep every byte that was fsynced. Once after a clean stop
# (SIGTERM: exit 0, RUNTIME/dev unmounted), once after SIGKILL with a
# filesystem still mounted on a volume (its loop device and mount are dead
# then; the new lvssd must start on the same runtime directory, taking the
# dead FUSE mount away itself).

import os
import signal

import pytest

import daemon
from daemon import MiB


def shadow_hashes(d, shadows):
    return {s["id"]: daemon.file_sha256(s["path"]) for s in shadows}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_keeps_persistent_shadows_and_live_bytes(lvssd, rng, how):
    d = lvssd
    d.create_volume("raw", "64M")
    d.create_volume("fs", "64M")
    raw = d.volume_path("raw")
    # Data before the sets, in three places.
    for off, n in ((0, MiB), (10 * MiB, 512 * 1024), (40 * MiB, 2 * MiB)):
        daemon.pwrite_sync(raw, off, rng.randbytes(n))
    dev, mnt = d.host.new_fs(d.volume_path("fs"), "ext4", d.root / "mnt")
    kept = rng.randbytes(700_000)
    daemon.write_durable(mnt / "kept.bin", kept)

    pers = d.create_set("raw", mnt, context="app-rollback")
    nonp = d.create_set("raw", "fs", context="backup")
    assert pers["context"] == "app-rollback" and nonp["context"] == "backup"
    listed = {s["id"]: s for s in d.shadows()}
    for s in pers["shadows"]:
        assert listed[s["id"]]["persistent"] is True, listed[s["id"]]
    for s in nonp["shadows"]:
        assert listed[s["id"]]["persistent"] is False, listed[s["id"]]

    # The live volumes move on: the shadows must keep the old bytes.
    for off, n in ((0, 256 * 1024), (40 * MiB + 4096, MiB), (60 * MiB, MiB)):
        daemon.pwrite_sync(raw, off, rng.randbytes(n))
    later = rng.randbytes(300_000)
    daemon.write_durable(mnt / "later.bin", later)
    daemon.write_durable(mnt / "kept.bin", b"changed after the sets", offset=0)
    kept_now = b"changed after the sets" + kept[len(b"changed after the sets"):]

    before = shadow_hashes(d, pers["shadows"] + nonp["shadows"])
    live_raw = daemon.file_sha256(raw)
    for s in pers["shadows"] + nonp["shadows"]:
        if s["volume"] == "raw":
            assert before[s["id"]] != live_raw, "the shadows of raw should hold the bytes before the changes"

    old_pid = d.pid
    if how == "sigterm":
        # A clean restart: the user unmounts and detaches first, then stops lvssd.
        d.host.drop_fs(dev, mnt)
        code = d.stop()
        assert code == 0, f"lvssd exited {code} on SIGTERM\n{d.log()}"
        assert not daemon.is_mounted(d.dev), f"SIGTERM left {d.dev} mounted\n{d.log()}"
    else:
        # A crash with the filesystem mounted: what was fsynced must survive.
        assert d.kill() == -signal.SIGKILL
        assert daemon.is_mounted(d.dev), "the dead FUSE mount should be left behind by SIGKILL"
        # The loop device and the mount sit on files of the dead lvssd: take them away.
        d.host.cleanup(keep=[d.dev])
        assert not daemon.loops_backed_under(d.root), "loop devices over the dead files remain"
    assert not os.path.exists(d.socket) or not d.accepts()

    d.start()
    assert d.pid != old_pid
    assert daemon.is_mounted(d.dev), f"the new lvssd serves no {d.dev}\n{d.log()}"

    after = d.shadows()
    pers_ids = {s["id"] for s in pers["shadows"]}
    assert {s["id"] for s in after} == pers_ids, (
        f"after the restart ({how}) want exactly the persistent shadows {sorted(pers_ids)}, got "
        f"{[(s['id'], s['context']) for s in after]}\n{d.log()}")
    for s in after:
        assert s["persistent"] is True and s["context"] == "app-rollback", s
        assert s["set"] == pers["set"], s
        assert s["state"] == "created", s
        assert s["path"] == str(d.dev / "shadows" / s["id"]), s
        assert daemon.file_sha256(s["path"]) == before[s["id"]], f"shadow {s['id']} ({s['volume']}) changed"
    for s in nonp["shadows"]:
        assert not os.path.exists(d.dev / "shadows" / s["id"]), f"non-persistent {s['id']} still has a file"
    sets = d.json("list", "sets")
    assert [x["id"] for x in sets] == [pers["set"]], sets
    vols = d.volumes()
    assert vols["raw"]["shadows"] == 1 and vols["fs"]["shadows"] == 1, vols

    assert daemon.file_sha256(raw) == live_raw, "the live bytes of volume raw changed across the restart"

    # The filesystem, re-attached to the new file, has every fsynced byte; its persistent
    # shadow still shows the files as they were when the set was taken.
    dev = d.host.attach(d.volume_path("fs"))
    mnt = d.host.mount(dev, d.root / "mnt")
    assert (mnt / "kept.bin").read_bytes() == kept_now
    assert (mnt / "later.bin").read_bytes() == later
    fs_shadow = next(s for s in after if s["volume"] == "fs")
    snap = d.expose(fs_shadow["id"], d.root / "snap")
    assert (snap / "kept.bin").read_bytes() == kept
    assert not (snap / "later.bin").exists()
    d.unexpose(snap)
    # The persistent set is still a working set: it can be deleted, and is gone for good.
    d.ok("delete", "--set", pers["set"])
    assert d.shadows() == []
