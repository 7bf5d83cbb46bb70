# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The promise of a shadow copy set: taken while applications write, every
# shadow of the set is a consistent filesystem, and holds every file that
# was durable (fsynced) before the set was asked for, byte for byte.
#
# Two volumes, ext4 and xfs, mounted through direct-I/O loop devices over
# lvssd's FUSE files. A writer process keeps creating files of random
# content on both, and appends "fs name sha256" to a manifest OUTSIDE the
# volumes only after the file and its directory were fsynced. Three sets of
# both volumes are taken at random moments (one volume named by its mount
# point, the other by its name); each shadow must pass the filesystem's own
# checker, and once exposed must hold every file the manifest listed before
# the create call started, with its exact sha256.

import os
import shutil
import subprocess
import time

import pytest

import daemon

FS = ("ext4", "xfs")  # index = the writer's root index


def check_ext4_shadow(path):
    proc = subprocess.run(["e2fsck", "-fn", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, f"e2fsck -fn on the ext4 shadow {path}: {proc.stdout}{proc.stderr}"


def check_xfs_shadow(d, path, work):
    # `lvss expose` mounts an xfs shadow with norecovery: a frozen xfs has written its data and
    # metadata in place, but it may still hold a log whose tail a mount would replay (xfs marks
    # the log clean only at unmount), and xfs_repair -n refuses a filesystem whose log is dirty.
    # Reading the shadow with norecovery shows what the frozen filesystem had; to check the
    # filesystem as a recovering mount would see it, replay the log on a private copy (a real
    # mount, nouuid as the original is mounted), unmount, and only then run xfs_repair -n.
    copy = work / "xfs-copy.img"
    proc = subprocess.run(["cp", "--sparse=always", str(path), str(copy)], capture_output=True, text=True)
    assert proc.returncode == 0, f"cp of the xfs shadow {path}: {proc.stderr}"
    dev = d.host.attach(copy, direct_io=False)
    mnt = d.host.mount(dev, work / "xfs-replay", options="nouuid")
    d.host.umount(mnt)
    d.host.detach(dev)
    proc = subprocess.run(["xfs_repair", "-n", str(copy)], capture_output=True, text=True)
    assert proc.returncode == 0, f"xfs_repair -n on the replayed copy of {path}: {proc.stdout}{proc.stderr}"
    copy.unlink()


def check_files(root, entries, what):
    """Every (name, sha) of ENTRIES is under ROOT with that content."""
    missing, wrong = [], []
    for name, digest in entries:
        try:
            data = (root / name).read_bytes()
        except FileNotFoundError:
            missing.append(name)
            continue
        if daemon.sha256(data) != digest:
            wrong.append(name)
    assert not missing and not wrong, (
        f"{what}: {len(missing)} of {len(entries)} fsynced files missing (first {missing[:5]}), "
        f"{len(wrong)} with other content (first {wrong[:5]})")


def test_sets_of_live_ext4_and_xfs_hold_every_fsynced_file(lvssd, rng):
    d = lvssd
    for tool in ("mkfs.xfs", "xfs_repair", "e2fsck"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    d.create_volume("e4", "256M")
    d.create_volume("xf", "320M")  # mkfs.xfs wants at least 300M
    _, mnt_e = d.host.new_fs(d.volume_path("e4"), "ext4", d.root / "mnt-ext4")
    _, mnt_x = d.host.new_fs(d.volume_path("xf"), "xfs", d.root / "mnt-xfs")
    manifest = d.root / "manifest"  # on /tmp's filesystem, not on a volume
    work = d.root / "work"
    work.mkdir()

    writer = daemon.start_writer(manifest, rng.randrange(1 << 30), [mnt_e, mnt_x])
    sets = []
    try:
        for i in range(3):
            time.sleep(rng.uniform(0.3, 1.5))
            assert writer.poll() is None, f"the writer died: {writer.stderr.read()}"
            # By mount point for one, by name for the other (swapped every other set).
            targets = [mnt_e, "xf"] if i % 2 == 0 else ["e4", mnt_x]
            before = manifest.stat().st_size
            s = d.create_set(*targets)
            hold = s["hold_ms"]
            assert isinstance(hold, (int, float)) and not isinstance(hold, bool), s
            assert 0 < hold < 10000, f"hold_ms {hold} out of (0, 10000): {s}"
            assert s["context"] == "backup", s
            assert len(s["shadows"]) == 2, s
            by_volume = {sh["volume"]: sh for sh in s["shadows"]}
            assert set(by_volume) == {"e4", "xf"}, s
            for sh in s["shadows"]:
                assert sh["provider"] == "cow", sh
                assert sh["path"] == str(d.dev / "shadows" / sh["id"]), sh
                assert os.path.getsize(sh["path"]) == os.path.getsize(d.volume_path(sh["volume"])), sh
            listed = d.shadows("--set", s["set"])
            assert {x["id"] for x in listed} == {sh["id"] for sh in s["shadows"]}, listed
            assert all(x["set"] == s["set"] and x["state"] == "created" for x in listed), listed

            # Check each set while the writer goes on: the shadows must not move under it.
            entries = daemon.read_manifest(manifest, before)
            check_ext4_shadow(by_volume["e4"]["path"])
            check_xfs_shadow(d, by_volume["xf"]["path"], work)
            for fs_index, fs, vol in ((0, "ext4", "e4"), (1, "xfs", "xf")):
                mine = [(n, h) for r, n, h in entries if r == fs_index]
                mp = d.expose(by_volume[vol]["id"], d.root / f"snap-{i}-{fs}")
                try:
                    check_files(mp, mine, f"set {i + 1} ({s['set']}), {fs} shadow")
                finally:
                    d.unexpose(mp)
            sets.append((s, entries))
            print(f"set {i + 1}: hold {hold} ms, {len(entries)} files fsynced before it")
    finally:
        err = daemon.stop_writer(writer)
    assert writer.returncode == 0, f"the writer failed: {err}"

    # The test proves something only if files were written on both before the last set.
    last_entries = sets[-1][1]
    assert {r for r, _, _ in last_entries} == {0, 1}, f"the writer wrote too little: {len(last_entries)} files"
    assert len(sets[0][1]) < len(last_entries), "the writer made no progress between the sets"
    listed_sets = d.json("list", "sets")
    assert {x["id"] for x in listed_sets} == {s["set"] for s, _ in sets}, listed_sets
    assert len(d.shadows()) == 6
