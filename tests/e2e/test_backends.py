# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The volume's surroundings: a state directory on xfs with reflink (a
# preserved chunk is a shared extent, not a copy) and an adopted block
# device as the live data. Content must be byte-exact either way.

import os
import shutil
import subprocess

import pytest

MiB = 1 << 20


@pytest.fixture
def xfs_state(loops, tmp_path):
    """A directory on a fresh xfs (reflink=1) mounted from a loop device."""
    if not shutil.which("mkfs.xfs"):
        pytest.skip("mkfs.xfs is not installed")
    image = tmp_path / "xfs.img"
    with open(image, "wb") as f:
        f.truncate(512 * MiB)
    subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image)], check=True, capture_output=True)
    _, mnt = loops.mount_image(image, tmp_path / "xfs")
    return mnt


def test_reflink_on_xfs_keeps_snapshots_exact(lvss_engine, xfs_state, rng):
    from conftest import Engine

    eng = Engine(lvss_engine, xfs_state / "vol")
    info = eng.create("64M", "--chunk-size", "64K")
    assert info["reflink"] is True, "xfs with reflink=1 shares extents: preserving a chunk should clone"
    a = rng.randbytes(16 * MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    b = rng.randbytes(8 * MiB)
    eng.write(4 * MiB + 12345, b)  # unaligned: partial first and last chunks
    s2 = eng.snapshot()
    c = rng.randbytes(16 * MiB)
    eng.write(0, c)
    live_b = bytearray(a + bytes(48 * MiB))
    live_b[4 * MiB + 12345:4 * MiB + 12345 + len(b)] = b
    assert eng.read(snapshot=s1) == a + bytes(48 * MiB)
    assert eng.read(snapshot=s2) == bytes(live_b)
    assert eng.read(length=16 * MiB) == c
    info = eng.info()
    assert info["reflink"] is True and info["exceptions"] > 0
    # Revert through clones as well.
    eng.ok("revert", eng.dir, s1)
    assert eng.read() == a + bytes(48 * MiB)
    assert eng.read(snapshot=s2) == bytes(live_b)


def test_adopted_block_device(eng, loops, tmp_path, rng):
    backing = tmp_path / "disk.img"
    a = rng.randbytes(8 * MiB)
    backing.write_bytes(a)
    dev = loops.attach(backing)
    info = eng.json("create", eng.dir, "--image", dev, "--chunk-size", "4K")
    assert info["size"] == 8 * MiB and info["image"] == dev
    s = eng.snapshot()
    b = rng.randbytes(MiB)
    eng.write(3 * MiB + 7, b)
    assert eng.read(snapshot=s) == a
    with open(dev, "rb") as f:  # the live data is written in place on the device
        f.seek(3 * MiB + 7)
        assert f.read(len(b)) == b
    assert eng.changed(s)["changed"] == len(range((3 * MiB + 7) // 4096, (3 * MiB + 7 + len(b) - 1) // 4096 + 1))
    assert not os.path.exists(os.path.join(eng.dir, "image"))


@pytest.mark.parametrize("policy", ["--protect-volume", "--protect-snapshots"])
def test_host_file_system_full_exit_6(lvss_engine, loops, tmp_path, rng, policy):
    from conftest import Engine

    image = tmp_path / "small.img"
    with open(image, "wb") as f:
        f.truncate(24 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    _, mnt = loops.mount_image(image, tmp_path / "small")
    eng = Engine(lvss_engine, mnt / "vol")
    reserve = mnt / "reserve"
    reserve.write_bytes(b"\1" * 2 * MiB)
    eng.create("64M", "--chunk-size", "64K", policy)  # sparse: more than the file system can hold
    a = rng.randbytes(4 * MiB)
    eng.write(0, a)
    s = eng.snapshot()
    new = rng.randbytes(40 * MiB)
    err = eng.fails(6, "write", eng.dir, input=new)
    assert "no space left on the file system" in err, err
    # While the file system is full the volume may not open (opening rewrites DIR/meta) ...
    proc = eng.run("list", eng.dir)
    if proc.returncode != 0:
        assert proc.returncode == 6 and "file system holding it is full" in proc.stderr.decode(), proc.stderr
    # ... but once there is room again, it does.
    reserve.unlink()
    snaps = [x["id"] for x in eng.snapshots()]
    if policy == "--protect-snapshots":
        # The snapshot is kept and reads its point in time; the refused chunks kept their old data.
        assert snaps == [s]
        assert eng.read(snapshot=s, length=4 * MiB) == a
        live = eng.read(length=4 * MiB)
        bad = [i for i in range(0, 4 * MiB, 65536) if live[i:i + 65536] not in (a[i:i + 65536], new[i:i + 65536])]
        assert not bad, bad
    else:
        # The volume comes first: the engine may give up every snapshot (VSS does the same when the
        # diff area cannot grow); whatever is left is exact.
        assert snaps in ([], [s])
        if snaps:
            assert eng.read(snapshot=s, length=4 * MiB) == a


def test_sigkill_during_import_with_reflinks(lvss_engine, xfs_state, rng, tmp_path):
    from conftest import Engine, kill_after

    eng = Engine(lvss_engine, xfs_state / "vol")
    assert eng.create("64M", "--chunk-size", "64K")["reflink"] is True
    a = rng.randbytes(48 * MiB)
    fa = tmp_path / "a.img"
    fa.write_bytes(a)
    eng.ok("import", eng.dir, fa)
    s1 = eng.snapshot()
    b = rng.randbytes(48 * MiB)
    fb = tmp_path / "b.img"
    fb.write_bytes(b)
    proc = subprocess.Popen([eng.path, "import", eng.dir, str(fb)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if not kill_after(proc, 0.3):
        pytest.skip("the import finished within 0.3 s: nothing was interrupted")
    assert [(s["id"], s["state"]) for s in eng.snapshots()] == [(s1, "valid")]
    assert eng.read(snapshot=s1, length=48 * MiB) == a
    live = eng.read(length=48 * MiB)
    bad = [i for i in range(0, len(live), 4096) if live[i:i + 4096] not in (a[i:i + 4096], b[i:i + 4096])]
    assert not bad, f"blocks holding neither the old nor the new data: {bad[:10]}"
    eng.ok("import", eng.dir, fb, "--changed-only")
    assert eng.read(length=48 * MiB) == b
    assert eng.read(snapshot=s1, length=48 * MiB) == a
