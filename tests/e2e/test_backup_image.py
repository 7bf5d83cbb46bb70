# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss backup --image end to end (issue 5), against a real lvssd and ext4 on an lvss volume written
# between backups: a chain of a full and three incremental image backups (and a differential) must
# each restore to a byte-identical image of its moment (the SHA-256 of the shadow it was read from,
# taken right after the backup), every incremental must read only the chunks the engine says changed
# (a small fraction of the volume), the sets kept for changed-block tracking must be the last full
# and the last incremental only, a restore onto the volume is refused while it is mounted and, once
# unmounted, gives back the tree of that moment; an incremental whose base's shadow is gone fails
# clearly and leaves nothing behind; a byte flipped in a stored chunk is named by verify.

import hashlib
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

import daemon as d

MiB = 1 << 20
SIZE = 128 * MiB


def tree_digest(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def sync(root):
    subprocess.run(["sync", "-f", str(root)], check=True)


@pytest.fixture
def vol(lvssd):
    lvssd.create_volume("data", "128M")
    dev, mnt = lvssd.host.new_fs(lvssd.volume_path("data"), "ext4", lvssd.root / "mnt")
    return dev, mnt


def kept_sets(lvssd):
    return {s["set"] for s in lvssd.shadows() if s["persistent"] and s["context"] == "backup"}


def shadow_sha(lvssd, set_id):
    [s] = [s for s in lvssd.shadows() if s["set"] == set_id]
    return d.file_sha256(s["path"])


def image_backup(lvssd, to, *args, target):
    return lvssd.json("backup", "--image", "--to", to, *args, target, timeout=300)


def test_image_chain_restores_byte_identical(lvssd, vol):
    dev, mnt = vol
    rng = random.Random(11)
    out = lvssd.root / "backups"
    out.mkdir()
    for i in range(40):
        (mnt / f"f{i:02d}").write_bytes(rng.randbytes(rng.choice([4096, 100000, 1 * MiB])))
    sync(mnt)

    moments, trees, results = {}, {}, {}
    full = image_backup(lvssd, out / "full", target=mnt)
    assert full["image"] and full["set_kept"] and full["type"] == "full"
    assert full["bytes_read"] == SIZE, full
    assert kept_sets(lvssd) == {full["set"]}
    moments["full"], trees["full"], results["full"] = shadow_sha(lvssd, full["set"]), tree_digest(mnt), full

    prev = "full"
    for k in (1, 2, 3):
        # About 1% of the volume: a few files rewritten, one added, one removed.
        for i in rng.sample(range(40), 3):
            p = mnt / f"f{i:02d}"
            if p.exists():
                with open(p, "r+b") as f:
                    f.seek(rng.randrange(0, max(1, p.stat().st_size - 4096)))
                    f.write(rng.randbytes(4096))
        (mnt / f"new{k}").write_bytes(rng.randbytes(300000))
        (mnt / f"f{k:02d}").unlink(missing_ok=True)
        sync(mnt)
        name = f"inc{k}"
        res = image_backup(lvssd, out / name, "--type", "incremental", target=mnt)
        assert res["base"] == results[prev]["id"], "the base comes from lvssd's history"
        assert 0 < res["bytes_read"] <= SIZE // 20, f"{name} read {res['bytes_read']} bytes of {SIZE}"
        # The last full and this incremental are kept; the previous incremental's set is gone.
        assert kept_sets(lvssd) == {full["set"], res["set"]}
        moments[name], trees[name], results[name] = shadow_sha(lvssd, res["set"]), tree_digest(mnt), res
        prev = name

    # A differential compares with the full's kept set, and is not kept itself.
    diff = image_backup(lvssd, out / "diff", "--type", "differential", target=mnt)
    assert diff["base"] == full["id"] and not diff["set_kept"]
    assert kept_sets(lvssd) == {full["set"], results["inc3"]["set"]}
    assert diff["bytes_read"] >= results["inc3"]["bytes_read"]
    sizes = {n: sum(f.stat().st_blocks * 512 for f in (out / n).iterdir()) for n in ("full", "inc1", "diff")}
    assert sizes["inc1"] < sizes["full"] / 10, sizes

    for name, want in moments.items():
        lvssd.ok("backup", "verify", out / name)
        dest = lvssd.root / f"restore-{name}"
        lvssd.ok("restore", out / name, "--to", dest)
        assert d.file_sha256(dest / "data.img") == want, f"{name} does not restore to its moment's bytes"
        (dest / "data.img").unlink()

    # Onto the volume: refused while mounted (nothing changed), then in place once unmounted.
    live = tree_digest(mnt)
    err = lvssd.fails(1, "restore", out / "inc2")
    assert "mounted" in err and str(mnt) in err, err
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
    assert tree_digest(mnt) == live, "a refused restore must change nothing"
    lvssd.host.drop_fs(dev, mnt)
    lvssd.ok("restore", out / "inc2")
    assert d.file_sha256(lvssd.volume_path("data")) == moments["inc2"]
    fsck = subprocess.run(["e2fsck", "-fn", str(lvssd.volume_path("data"))], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    dev = lvssd.host.attach(lvssd.volume_path("data"))
    mnt = lvssd.host.mount(dev, lvssd.root / "mnt2")
    assert tree_digest(mnt) == trees["inc2"]
    assert not (mnt / "new3").exists()


def test_image_incremental_needs_its_base_shadow(lvssd, vol):
    dev, mnt = vol
    (mnt / "a").write_bytes(os.urandom(MiB))
    sync(mnt)
    out = lvssd.root / "backups"
    out.mkdir()
    full = image_backup(lvssd, out / "full", target=mnt)
    lvssd.ok("delete", "--set", full["set"])
    (mnt / "b").write_bytes(os.urandom(MiB))
    sync(mnt)
    err = lvssd.fails(3, "backup", "--image", "--to", out / "inc", "--type", "incremental", mnt)
    assert "full image backup" in err and "gone" in err, err
    assert lvssd.shadows() == [] and lvssd.json("list", "sets") == []
    assert not (out / "inc").exists()

    # An image backup on a file backup's base is refused before any set is made.
    lvssd.ok("backup", "--to", out / "files", mnt)
    err = lvssd.fails(1, "backup", "--image", "--to", out / "inc2", "--type", "incremental", "--base",
                      out / "files", mnt)
    assert "file backup" in err, err
    assert lvssd.shadows() == []
    # And a log image backup is a usage error.
    lvssd.fails(2, "backup", "--image", "--to", out / "log", "--type", "log", mnt)


def test_image_verify_names_a_flipped_chunk(lvssd, vol):
    dev, mnt = vol
    (mnt / "a").write_bytes(os.urandom(4 * MiB))
    sync(mnt)
    out = lvssd.root / "backups"
    out.mkdir()
    image_backup(lvssd, out / "full", target=mnt)
    (mnt / "a").write_bytes(os.urandom(4 * MiB))
    sync(mnt)
    image_backup(lvssd, out / "inc", "--type", "incremental", target=mnt)
    lvssd.ok("backup", "verify", out / "inc")
    # A byte in the middle of a chunk the incremental stores.
    first = (out / "inc" / "data.map").read_text().splitlines()[2]
    chunk = int(first.split()[0])
    img = out / "inc" / "data.img"
    with open(img, "r+b") as f:
        f.seek(chunk * 16384 + 100)
        b = f.read(1)
        f.seek(chunk * 16384 + 100)
        f.write(bytes([b[0] ^ 1]))
    err = lvssd.fails(1, "backup", "verify", out / "inc")
    assert f"chunk {chunk} " in err and "data.img" in err, err
    err = lvssd.fails(1, "restore", out / "inc", "--to", lvssd.root / "r")
    assert f"chunk {chunk} " in err, err
    with open(lvssd.root / "r" / "data.img", "rb") as f:
        assert f.read(16384) == bytes(16384), "an unfinished image restore must leave its first chunk zeroed"


def test_two_volumes_restore_checks_every_target_first(lvssd):
    """A backup of two volumes: with the second mounted, the restore is refused before anything is
    written (the first volume's bytes unchanged); unmounted, both come back to their moment."""
    devs = {}
    for name in ("a", "b"):
        lvssd.create_volume(name, "64M")
        devs[name] = lvssd.host.new_fs(lvssd.volume_path(name), "ext4", lvssd.root / f"mnt-{name}")
        (devs[name][1] / "f").write_bytes(os.urandom(2 * MiB))
        sync(devs[name][1])
    out = lvssd.root / "backups"
    out.mkdir()
    full = lvssd.json("backup", "--image", "--to", out / "full", devs["a"][1], devs["b"][1], timeout=300)
    assert sorted(full["targets"]) == ["a", "b"]
    moment = {n: shadow_sha_of(lvssd, full["set"], n) for n in ("a", "b")}
    (devs["a"][1] / "g").write_bytes(os.urandom(MiB))
    sync(devs["a"][1])
    lvssd.host.drop_fs(*devs["a"])
    before_a = d.file_sha256(lvssd.volume_path("a"))
    err = lvssd.fails(1, "restore", out / "full")
    assert "volume b is mounted" in err and "nothing was changed" in err, err
    assert d.file_sha256(lvssd.volume_path("a")) == before_a, "volume a was written before b was checked"
    lvssd.host.drop_fs(*devs["b"])
    lvssd.ok("restore", out / "full")
    for n in ("a", "b"):
        assert d.file_sha256(lvssd.volume_path(n)) == moment[n]


def shadow_sha_of(lvssd, set_id, volume):
    [s] = [s for s in lvssd.shadows() if s["set"] == set_id and s["volume"] == volume]
    return d.file_sha256(s["path"])


def test_chains_survive_a_restart_and_each_other(lvssd):
    """Kept sets survive an lvssd restart (the incremental after it reads only changed chunks and
    restores exactly); a full image backup of volume a alone does not take away the set the chain
    of a+b compares with; a killed image backup leaves no set behind."""
    mnts = {}
    for name in ("a", "b"):
        lvssd.create_volume(name, "64M")
        mnts[name] = lvssd.host.new_fs(lvssd.volume_path(name), "ext4", lvssd.root / f"mnt-{name}")
        (mnts[name][1] / "f").write_bytes(os.urandom(4 * MiB))
        sync(mnts[name][1])
    out = lvssd.root / "backups"
    out.mkdir()
    ab = lvssd.json("backup", "--image", "--to", out / "ab-full", "a", "b", timeout=300)
    a_only = lvssd.json("backup", "--image", "--to", out / "a-full", "a", timeout=300)
    assert kept_sets(lvssd) == {ab["set"], a_only["set"]}, "a full of a alone must not drop the a+b chain's set"

    # Restart: the kept sets are persistent.
    for name in ("a", "b"):
        lvssd.host.drop_fs(*mnts[name])
    assert lvssd.stop() == 0
    lvssd.start()
    assert kept_sets(lvssd) == {ab["set"], a_only["set"]}
    d.pwrite_sync(lvssd.volume_path("b"), 8 * MiB, os.urandom(64 * 1024))
    inc = lvssd.json("backup", "--image", "--type", "incremental", "--to", out / "ab-inc", "a", "b", timeout=300)
    assert inc["base"] == ab["id"]
    assert 0 < inc["bytes_read"] <= 2 * MiB, inc
    want = {n: shadow_sha_of(lvssd, inc["set"], n) for n in ("a", "b")}
    lvssd.ok("restore", out / "ab-inc", "--to", lvssd.root / "r")
    for n in ("a", "b"):
        assert d.file_sha256(lvssd.root / "r" / f"{n}.img") == want[n]

    # Killed (SIGKILL) while it writes: its set goes with its connection.
    kept = kept_sets(lvssd)
    proc = subprocess.Popen([lvssd.cli, "--socket", str(lvssd.socket), "backup", "--image", "--to",
                             str(out / "killed"), "a", "b"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (out / "killed" / "a.img").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while kept_sets(lvssd) != kept and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kept_sets(lvssd) == kept, "a killed image backup must leave no set"
    assert {s["set"] for s in lvssd.shadows()} == kept
