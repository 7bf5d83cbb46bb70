# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What a review of lvssd found, each kept from coming back: a shadow
# reclaimed for room while exposed stays (vanished) until its file closes, so
# its volume cannot be closed under it; a volume that cannot be opened at a
# start keeps its persistent shadows for the next; an exposure undone by hand
# does not block the shadow's deletion.

import shutil
import subprocess

import pytest

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


def test_volume_of_an_unknown_provider_keeps_its_catalog_entries(lvssd):
    lvssd.create_volume("a", "16M")
    lvssd.create_volume("b", "16M")
    kept = {s["id"] for s in lvssd.create_set("a", "b", context="client-accessible")["shadows"]}
    lvssd.stop()
    catalog = lvssd.state / "catalog"
    text = catalog.read_text()
    assert "volume a cow\n" in text, text
    catalog.write_text(text.replace("volume a cow\n", "volume a nosuch\n"))
    lvssd.start()
    assert set(lvssd.volumes()) == {"b"}
    assert "needs provider nosuch" in lvssd.log()
    lvssd.stop()
    after = catalog.read_text()
    assert "volume a nosuch\n" in after and after.count("shadow ") == 2, after
    catalog.write_text(after.replace("volume a nosuch\n", "volume a cow\n"))
    lvssd.start()
    assert {s["id"] for s in lvssd.shadows()} == kept, lvssd.log()


def test_set_of_a_btrfs_volume(lvssd):
    if not shutil.which("mkfs.btrfs"):
        pytest.skip("mkfs.btrfs is not installed (btrfs-progs)")
    lvssd.create_volume("v", "256M")
    dev = lvssd.host.attach(lvssd.volume_path("v"))
    subprocess.run(["mkfs.btrfs", "-q", "-f", dev], check=True, capture_output=True)
    mnt = lvssd.host.mount(dev, lvssd.root / "mnt")
    d.write_durable(mnt / "f", b"btrfs data\n")
    out = lvssd.create_set(mnt)  # btrfs reports an anonymous device number: still the volume's
    sid = out["shadows"][0]["id"]
    assert out["shadows"][0]["volume"] == "v" and 0 < out["hold_ms"] < 10000
    # Its copy cannot be mounted beside the original (same fsid): a clear refusal, nothing left.
    exp = lvssd.root / "exp"
    exp.mkdir()
    err = lvssd.fails(d.EXIT_FAILED, "expose", sid, exp)
    assert "btrfs" in err, err
    assert not d.is_mounted(exp)
