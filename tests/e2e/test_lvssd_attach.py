# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss volume attach/detach, and re-attaching after an lvssd restart: the
# loop devices over the old FUSE files are dead, lvss says so and makes
# re-attaching one command.

import json
import os
import subprocess

import pytest

import daemon as d


def loops_over(path):
    out = subprocess.run(["losetup", "--noheadings", "--output", "NAME,BACK-FILE", "--list"], capture_output=True,
                         text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == [str(path)]]


def bdi(dev, name):
    majmin = open(f"/sys/block/{os.path.basename(dev)}/dev").read().strip()
    return open(f"/sys/class/bdi/{majmin}/{name}").read().strip()


def test_attach_limits_dirty_cache_and_detach_gives_it_back(lvssd_stopped):
    lvssd = lvssd_stopped.start(extra=["--dirty-limit", "64M"])
    lvssd.create_volume("a", "64M")
    dev = lvssd.ok("volume", "attach", "a").strip()
    lvssd.host.undo.append(("loop", dev))
    if not os.path.exists(f"/sys/class/bdi/{open(f'/sys/block/{os.path.basename(dev)}/dev').read().strip()}/"
                          "max_bytes"):
        pytest.skip("this kernel has no per-device dirty limit (Linux 6.2+)")
    assert bdi(dev, "strict_limit") == "1"
    assert abs(int(bdi(dev, "max_bytes")) - (64 << 20)) < (1 << 20), bdi(dev, "max_bytes")
    assert lvssd.json("volume", "detach", "a")["detached"] == [dev]
    lvssd.host.undo.remove(("loop", dev))
    assert bdi(dev, "strict_limit") == "0"
    assert bdi(dev, "max_ratio") == "100"


def test_no_dirty_limit_by_default(lvssd):
    lvssd.create_volume("a", "64M")
    dev = lvssd.ok("volume", "attach", "a").strip()
    lvssd.host.undo.append(("loop", dev))
    majmin = open(f"/sys/block/{os.path.basename(dev)}/dev").read().strip()
    if os.path.exists(f"/sys/class/bdi/{majmin}/strict_limit"):
        assert bdi(dev, "strict_limit") == "0"


def test_attach_detach_and_reattach_after_restart(lvssd):
    lvssd.create_volume("a", "64M")
    path = lvssd.volume_path("a")
    dev = lvssd.ok("volume", "attach", "a").strip()
    lvssd.host.undo.append(("loop", dev))
    assert dev.startswith("/dev/loop") and loops_over(path) == [dev]
    lvssd.host.mkfs(dev, "ext4")
    mnt = lvssd.host.mount(dev, lvssd.root / "mnt")
    d.write_durable(mnt / "kept", b"written before the restart\n")

    # Refused while mounted, nothing detached.
    err = lvssd.fails(d.EXIT_FAILED, "volume", "detach", "a")
    assert "mounted" in err and str(mnt) in err, err
    assert loops_over(path) == [dev]

    # A restart: the mount now sits on a dead device; attach says so and still attaches.
    lvssd.kill()
    lvssd.release_dead_mount()
    lvssd.start()
    res = lvssd.run("--json", "volume", "attach", "a")
    assert res.code == 0, res
    out = json.loads(res.out)
    assert out["stale_mounts"] == [str(mnt)], out
    assert str(mnt) in res.err and "umount -l" in res.err, res
    lvssd.host.undo.append(("loop", out["device"]))

    # The user unmounts the dead filesystem; one detach and one attach bring it back.
    subprocess.run(["umount", "-l", str(mnt)], check=True)
    lvssd.host.untrack_mount(mnt)
    detached = lvssd.json("volume", "detach", "a")["detached"]
    assert detached == [out["device"]], detached
    dev2 = lvssd.ok("volume", "attach", "a").strip()
    lvssd.host.undo.append(("loop", dev2))
    assert loops_over(path) == [dev2]
    # The dead device left by the first lvssd was detached too (it was no longer mounted).
    assert not any(line for line in loops_over("/volumes/a") if line == dev)
    lvssd.host.mount(dev2, mnt)
    assert (mnt / "kept").read_bytes() == b"written before the restart\n"
    lvssd.host.umount(mnt)
    assert lvssd.json("volume", "detach", "a")["detached"] == [dev2]
    assert loops_over(path) == []

    # Errors: unknown volume, bad name.
    lvssd.fails(d.EXIT_NOT_FOUND, "volume", "attach", "nope")
    lvssd.fails(d.EXIT_USAGE, "volume", "attach", "../x")
