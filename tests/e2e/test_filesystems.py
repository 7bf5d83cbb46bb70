# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Real file systems on real loop devices: an ext4 or xfs image is imported
# into a volume, snapshotted, changed (mounted, files changed, deleted,
# added) and imported again with --changed-only; the exported snapshot
# passes the file system's own checker and mounts read-only with the old
# files byte for byte, while the live volume has the new ones.

import os
import shutil
import subprocess

import pytest

MiB = 1 << 20

FILESYSTEMS = {
    # name: (image size, mkfs, read-only check, read-only mount options)
    "ext4": (64 * MiB, ["mkfs.ext4", "-q", "-F", "-b", "4096"], ["e2fsck", "-fn"], "ro,noload"),
    "xfs": (320 * MiB, ["mkfs.xfs", "-q", "-f"], ["xfs_repair", "-n"], "ro,nouuid,norecovery"),
}


def write_files(root, files):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel.startswith("lost+found"):
                continue
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out


@pytest.mark.parametrize("fs", sorted(FILESYSTEMS))
def test_filesystem_snapshot_roundtrip(fs, eng, loops, rng, tmp_path):
    size, mkfs, check, ro_options = FILESYSTEMS[fs]
    if not shutil.which(mkfs[0]) or not shutil.which(check[0]):
        pytest.skip(f"{mkfs[0]} or {check[0]} is not installed")

    image = tmp_path / f"{fs}.img"
    with open(image, "wb") as f:
        f.truncate(size)
    subprocess.run(mkfs + [str(image)], check=True, capture_output=True)

    old = {
        "hello.txt": b"hello from the snapshot\n",
        "big.bin": rng.randbytes(3 * MiB + 123),
        "dir/nested.bin": rng.randbytes(200_000),
        "dir/kept.txt": b"unchanged\n" * 100,
    }
    mnt = tmp_path / "mnt"
    dev, _ = loops.mount_image(image, mnt)
    write_files(mnt, old)
    loops.unmount_image(dev, mnt)

    eng.create(size, "--chunk-size", "64K")
    first = eng.json("import", eng.dir, image)
    assert first["chunks"] == size // (64 * 1024)
    snap = eng.snapshot("--label", f"{fs} before")

    dev, _ = loops.mount_image(image, mnt)
    new = dict(old)
    (mnt / "hello.txt").write_bytes(b"hello from the live volume\n")
    new["hello.txt"] = b"hello from the live volume\n"
    with open(mnt / "big.bin", "r+b") as f:
        f.seek(MiB)
        patch = rng.randbytes(5000)
        f.write(patch)
    big = bytearray(old["big.bin"])
    big[MiB:MiB + 5000] = patch
    new["big.bin"] = bytes(big)
    os.unlink(mnt / "dir" / "nested.bin")
    del new["dir/nested.bin"]
    new["added.bin"] = rng.randbytes(300_000)
    write_files(mnt, {"added.bin": new["added.bin"]})
    loops.unmount_image(dev, mnt)

    second = eng.json("import", eng.dir, image, "--changed-only")
    assert 0 < second["chunks_written"] < second["chunks"] // 4, second
    changed = eng.changed(snap)
    assert changed["changed"] == second["chunks_written"], (changed, second)

    exported = tmp_path / "snapshot.img"
    eng.ok("read", eng.dir, "--snapshot", snap, "--output", exported)
    proc = subprocess.run(check + [str(exported)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{check[0]} on the exported snapshot: {proc.stdout}{proc.stderr}"
    snap_mnt = tmp_path / "snap"
    dev, _ = loops.mount_image(exported, snap_mnt, options=ro_options)
    assert read_files(snap_mnt) == old
    loops.unmount_image(dev, snap_mnt)

    live = tmp_path / "live.img"
    eng.ok("read", eng.dir, "--output", live)
    with open(live, "rb") as a, open(image, "rb") as b:
        assert a.read() == b.read(), "the live volume must equal the imported image"
    proc = subprocess.run(check + [str(live)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{check[0]} on the live volume: {proc.stdout}{proc.stderr}"
    dev, _ = loops.mount_image(live, snap_mnt, options=ro_options)
    assert read_files(snap_mnt) == new
