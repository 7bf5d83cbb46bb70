# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What a review of lvssd found, each kept from coming back: a shadow
# reclaimed for room while exposed stays (vanished) until its file closes, so
# its volume cannot be closed under it; a volume that cannot be opened at a
# start keeps its persistent shadows for the next; an exposure undone by hand
# does not block the shadow's deletion.

import subprocess

import daemon as d


def test_reclaimed_while_exposed_stays_until_unexposed(lvssd):
    lvssd.create_volume("v", "64M")
    _, mnt = lvssd.host.new_fs(lvssd.volume_path("v"), "ext4", lvssd.root / "mnt")
    d.write_durable(mnt / "old", b"before\n")
    sid = lvssd.create_set(mnt)["shadows"][0]["id"]
    exp = lvssd.expose(sid, lvssd.root / "exp")
    # Room for almost nothing: the next writes reclaim the shadow (protect-volume).
    lvssd.ok("storage", "resize", "v", "--max", "64K")
    d.write_durable(mnt / "new", b"x" * (8 << 20))
    shadows = lvssd.shadows()
    assert [(s["id"], s["state"]) for s in shadows] == [(sid, "vanished")], shadows
    # Its file is still open (exposed): neither it nor its volume can go yet.
    lvssd.fails(d.EXIT_FAILED, "volume", "delete", "v", "--force")
    assert "v" in lvssd.volumes()
    lvssd.unexpose(exp)
    assert lvssd.shadows() == []  # gone at the next look, its file closed
    lvssd.host.umount(mnt)
    for kind, dev in list(lvssd.host.undo):
        if kind == "loop":
            lvssd.host.detach(dev)
    lvssd.ok("volume", "delete", "v", "--force")
    assert lvssd.volumes() == {}
    assert lvssd.accepts()


def test_unopenable_volume_keeps_its_persistent_shadows(lvssd):
    lvssd.create_volume("a", "16M")
    lvssd.create_volume("b", "16M")
    d.pwrite_sync(lvssd.volume_path("a"), 0, b"A" * 4096)
    kept = {s["id"] for s in lvssd.create_set("a", "b", context="app-rollback")["shadows"]}
    lvssd.stop()
    meta = lvssd.state / "volumes" / "a" / "meta"
    meta.rename(meta.with_name("meta.away"))
    lvssd.start()
    assert set(lvssd.volumes()) == {"b"}
    assert "cannot open volume a" in lvssd.log()
    lvssd.stop()
    meta.with_name("meta.away").rename(meta)
    lvssd.start()
    assert set(lvssd.volumes()) == {"a", "b"}
    assert {s["id"] for s in lvssd.shadows()} == kept, lvssd.log()
    assert "incomplete set" not in lvssd.log()


def test_exposure_undone_by_hand_does_not_block_delete(lvssd):
    lvssd.create_volume("v", "64M")
    _, mnt = lvssd.host.new_fs(lvssd.volume_path("v"), "ext4", lvssd.root / "mnt")
    sid = lvssd.create_set(mnt)["shadows"][0]["id"]
    exp = lvssd.expose(sid, lvssd.root / "exp")
    subprocess.run(["umount", str(exp)], check=True)
    lvssd.host.untrack_mount(exp)
    assert lvssd.shadows()[0]["exposed"] == []
    lvssd.fails(d.EXIT_NOT_FOUND, "unexpose", exp)
    assert lvssd.json("delete", sid)["deleted"] == [sid]
