# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvssd when space runs out (issue 6). The state directory is a small ext4 of its own, filled up
# with a file: live writes to a volume with persistent shadows all succeed (the default policy
# protects the volume: the shadows are deleted to make room, and the log says so), the catalog
# stays true (a restart finds the same volumes, no ghost shadow, the live bytes as written); a set
# either succeeds or fails with NoSpace; a backup onto a full file system fails with exit 6, leaving
# no partial backup and no shadow. And a diff area capped with `storage resize --max` under writes:
# the oldest shadows go, the newest stays readable as its moment, no live write fails. Under the
# protect-snapshots policy (a capped diff area, or a full state directory) the live write fails
# instead (EIO/ENOSPC) and every shadow stays, as its moment, across a restart.

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

import daemon as d
from daemon import EXIT_NO_SPACE, MiB


def sha(data):
    return hashlib.sha256(data).hexdigest()


def read_all(path, size):
    return d.pread(path, 0, size)


@pytest.fixture
def small_state(lvssd_stopped):
    """lvssd with its state directory on a 48 MiB ext4 of its own (no blocks reserved for root)."""
    img = lvssd_stopped.root / "state.img"
    with open(img, "wb") as f:
        f.truncate(48 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(img)], check=True)
    dev = lvssd_stopped.host.attach(img, direct_io=False)
    lvssd_stopped.state.mkdir(parents=True, exist_ok=True)
    lvssd_stopped.host.mount(dev, lvssd_stopped.state)
    return lvssd_stopped.start()


def fill(path):
    """Fills the file system of PATH with one file; returns it."""
    filler = Path(path) / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    subprocess.run(["sync"], check=True)
    return filler


def rewrite_until_error(path, mib):
    """Rewrites the first MIB MiB of PATH with random bytes, a MiB at a time, each synced; the first
    OSError, or None if every write succeeded."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in range(mib):
            try:
                os.pwrite(fd, os.urandom(MiB), i * MiB)
                os.fsync(fd)
            except OSError as e:
                return e
    finally:
        os.close(fd)
    return None


def test_full_state_directory_protects_the_volume(small_state):
    lvssd = small_state
    lvssd.create_volume("v", "24M")
    path = lvssd.volume_path("v")
    d.pwrite_sync(path, 0, os.urandom(24 * MiB))
    for _ in range(2):
        lvssd.ok("create", "--no-writers", "--context", "app-rollback", "v")
    filler = fill(lvssd.state)
    # Every live write succeeds; the shadows are deleted to make room.
    data = os.urandom(24 * MiB)
    d.pwrite_sync(path, 0, data)
    assert read_all(path, 24 * MiB) == data
    assert lvssd.shadows() == []
    assert "deleted to make room" in lvssd.log(40)
    # A set now: made, or refused with NoSpace; nothing else.
    res = lvssd.run("create", "--no-writers", "--context", "app-rollback", "v")
    assert res.code in (0, EXIT_NO_SPACE), res
    made = {s["id"] for s in lvssd.shadows()}
    # The catalog is true: a restart finds the same.
    assert lvssd.stop() == 0
    lvssd.start()
    assert {s["id"] for s in lvssd.shadows()} == made
    assert sha(read_all(path, 24 * MiB)) == sha(data)
    filler.unlink()
    lvssd.ok("delete", "--all")
    lvssd.ok("create", "--no-writers", "--context", "app-rollback", "v")


def test_backup_onto_a_full_file_system(lvssd):
    lvssd.create_volume("data", "64M")
    _, mnt = lvssd.host.new_fs(lvssd.volume_path("data"), "ext4", lvssd.root / "mnt")
    (mnt / "big").write_bytes(os.urandom(16 * MiB))
    subprocess.run(["sync", "-f", str(mnt)], check=True)
    img = lvssd.root / "dest.img"
    with open(img, "wb") as f:
        f.truncate(24 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(img)], check=True)
    dev = lvssd.host.attach(img, direct_io=False)
    dest = lvssd.host.mount(dev, lvssd.root / "dest")
    fill(dest)
    for args in ([], ["--image"]):
        err = lvssd.fails(EXIT_NO_SPACE, "backup", *args, "--to", dest / "b", mnt)
        assert "No space left" in err or "no space" in err.lower(), err
        assert not (dest / "b").exists(), "a failed backup must leave nothing"
        assert lvssd.shadows() == [] and lvssd.json("list", "sets") == []


def test_diff_area_maximum_under_writes(lvssd):
    lvssd.create_volume("v", "32M")
    path = lvssd.volume_path("v")
    d.pwrite_sync(path, 0, os.urandom(32 * MiB))
    lvssd.ok("storage", "resize", "v", "--max", "8M")
    moments = []
    for i in range(6):
        s = lvssd.json("create", "--no-writers", "v")["shadows"][0]
        moments.append((s["id"], sha(read_all(path, 32 * MiB))))
        d.pwrite_sync(path, (i * 5 % 32) * MiB, os.urandom(5 * MiB))  # never fails
    left = {s["id"]: s for s in lvssd.shadows()}
    assert moments[-1][0] in left, "the newest shadow must stay"
    assert len(left) < len(moments), "the oldest must have been deleted to stay under 8M"
    for sid, want in moments:
        if sid in left:
            assert sha(read_all(left[sid]["path"], 32 * MiB)) == want, f"shadow {sid} reads another moment"
    storage = {x["volume"]: x for x in lvssd.json("list", "storage")}
    assert storage["v"]["used"] <= 8 * MiB


def test_protect_snapshots_policy_fails_the_write_and_keeps_every_shadow(lvssd):
    lvssd.create_volume("v", "32M")
    path = lvssd.volume_path("v")
    d.pwrite_sync(path, 0, os.urandom(32 * MiB))
    st = lvssd.json("storage", "resize", "v", "--max", "4M", "--policy", "protect-snapshots")
    assert st["policy"] == "protect-snapshots" and st["max"] == 4 * MiB
    shadows = []
    for _ in range(2):
        s = lvssd.json("create", "--no-writers", "--context", "app-rollback", "v")["shadows"][0]
        shadows.append((s["id"], sha(read_all(path, 32 * MiB))))
    # Rewriting the whole volume needs 32M of diff area: the writes past 4M fail.
    failed = rewrite_until_error(path, 32)
    assert failed is not None and failed.errno in (5, 28), failed  # EIO or ENOSPC
    left = {s["id"]: s for s in lvssd.shadows()}
    assert set(left) == {sid for sid, _ in shadows}, "protect-snapshots must keep every shadow"
    for sid, want in shadows:
        assert sha(read_all(left[sid]["path"], 32 * MiB)) == want
    # The policy is kept across a restart, and protect-volume lets the writes through again.
    assert lvssd.stop() == 0
    lvssd.start()
    [st] = [x for x in lvssd.json("list", "storage") if x["volume"] == "v"]
    assert st["policy"] == "protect-snapshots", st
    lvssd.ok("storage", "resize", "v", "--policy", "protect-volume")
    data = os.urandom(32 * MiB)
    d.pwrite_sync(path, 0, data)
    assert read_all(path, 32 * MiB) == data
    lvssd.fails(2, "storage", "resize", "v", "--policy", "keep-everything")


def test_full_state_directory_under_protect_snapshots(small_state):
    lvssd = small_state
    lvssd.create_volume("v", "24M")
    path = lvssd.volume_path("v")
    d.pwrite_sync(path, 0, os.urandom(24 * MiB))
    lvssd.ok("storage", "resize", "v", "--policy", "protect-snapshots")
    s = lvssd.json("create", "--no-writers", "--context", "app-rollback", "v")["shadows"][0]
    want = sha(read_all(path, 24 * MiB))
    fill(lvssd.state)
    failed = rewrite_until_error(path, 24)
    assert failed is not None and failed.errno in (5, 28), failed
    assert [x["id"] for x in lvssd.shadows()] == [s["id"]]
    assert sha(read_all(s["path"], 24 * MiB)) == want, "the shadow must still read its moment"
    assert lvssd.stop() == 0
    lvssd.start()
    [again] = lvssd.shadows()
    assert again["id"] == s["id"] and sha(read_all(again["path"], 24 * MiB)) == want
