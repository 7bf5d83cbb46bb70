# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss against a real lvssd, verb by verb (shared/CLI.md): volumes (create,
# list, JSON shape, names, sizes, path, delete, --image), deleting shadows
# (by id, --set, --volume --oldest, --all), providers and storage (a diff
# area limit reclaims the oldest shadow), revert (refused under a mounted
# filesystem, then the filesystem goes back), help and usage errors, no
# daemon, and sets that cannot be made now: a filesystem frozen by someone
# else (exit 1, nothing made) and a second set while one is being created
# (exit 1 "being created"), made deterministic by a writer that holds the
# filesystem's write lock while the first set tries to freeze it.

import json
import os
import subprocess
import time

import pytest

import daemon
from daemon import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_UNREACHABLE, EXIT_USAGE, MiB

VOLUME_KEYS = {"name", "size", "chunk_size", "provider", "path", "shadows", "storage"}


def state_volumes(d):
    return sorted(os.listdir(d.state / "volumes"))


# ---- volumes --------------------------------------------------------------------------------------


def test_volume_create_and_list_json_shape(lvssd):
    d = lvssd
    v = d.create_volume("alpha", "64M", "--chunk-size", "64K")
    assert set(v) == VOLUME_KEYS, v
    assert v["name"] == "alpha" and v["provider"] == "cow"
    assert v["size"] == 64 * MiB and v["chunk_size"] == 64 * 1024
    assert v["path"] == str(d.volume_path("alpha"))
    assert v["shadows"] == 0
    assert v["storage"]["used"] == 0 and v["storage"]["max"] is None, v
    assert os.path.getsize(v["path"]) == 64 * MiB
    d.create_volume("b.2_x-y", "1M")

    listed = d.json("list", "volumes")
    assert sorted(x["name"] for x in listed) == ["alpha", "b.2_x-y"], listed
    for x in listed:
        assert set(x) == VOLUME_KEYS, x
    by = {x["name"]: x for x in listed}
    assert by["alpha"] == v
    assert by["b.2_x-y"]["size"] == MiB and by["b.2_x-y"]["chunk_size"] == 16384  # the default
    assert d.json("volume", "list") == listed
    human = d.ok("list", "volumes")
    assert "alpha" in human and "b.2_x-y" in human and str(d.volume_path("alpha")) in human
    assert state_volumes(d) == ["alpha", "b.2_x-y"]
    assert d.ok("volume", "path", "alpha").strip() == str(d.volume_path("alpha"))
    assert d.json("volume", "path", "alpha") == {"path": str(d.volume_path("alpha"))}
    d.fails(EXIT_NOT_FOUND, "volume", "path", "nosuch")


def test_volume_create_refuses_duplicates_bad_names_sizes_and_chunks(lvssd):
    d = lvssd
    d.create_volume("a", "16M")
    before = (d.json("list", "volumes"), state_volumes(d))
    err = d.fails(EXIT_FAILED, "volume", "create", "a", "--size", "32M")
    assert "exists" in err, err
    for name in ("../x", "-a", "x" * 65, "", "a/b", "../../etc", ".hidden"):
        err = d.fails(EXIT_USAGE, "volume", "create", "--size", "1M", "--", name)
        assert "name" in err, err
    d.fails(EXIT_USAGE, "volume", "create", "-a", "--size", "1M")
    for size in ("12Q", "0", "-1", "513", "", "1.5M"):
        d.fails(EXIT_USAGE, "volume", "create", "b", "--size", size)
    d.fails(EXIT_USAGE, "volume", "create", "b")  # no size, no image
    for chunk in ("3K", "2K", "2M", "0", "x"):
        d.fails(EXIT_USAGE, "volume", "create", "b", "--size", "1M", "--chunk-size", chunk)
    after = (d.json("list", "volumes"), state_volumes(d))
    assert after == before, "a refused create changed the volumes"
    # The boundaries are accepted: a 64-character name, a 4K and a 1M chunk.
    d.create_volume("x" * 64, "1M", "--chunk-size", "4K")
    d.create_volume("c", "2M", "--chunk-size", "1M")
    assert state_volumes(d) == sorted(["a", "c", "x" * 64])


def test_volume_delete_refused_with_shadows_or_attached(lvssd):
    d = lvssd
    d.create_volume("snapped", "16M")
    d.create_volume("attached", "16M")
    s = d.create_set("snapped")
    err = d.fails(EXIT_FAILED, "volume", "delete", "snapped")
    assert "shadow" in err, err
    dev = d.host.attach(d.volume_path("attached"))
    err = d.fails(EXIT_FAILED, "volume", "delete", "attached")
    assert "attached" in err or "losetup" in err, err
    assert set(d.volumes()) == {"snapped", "attached"}
    assert d.shadow_ids() == {s["shadows"][0]["id"]}
    assert os.path.exists(d.volume_path("attached"))

    d.host.detach(dev)
    d.ok("volume", "delete", "attached")
    d.ok("volume", "delete", "snapped", "--force")
    assert d.volumes() == {}
    assert d.shadows() == [] and d.json("list", "sets") == []
    assert state_volumes(d) == []
    assert not os.path.exists(d.volume_path("snapped"))
    assert not os.path.exists(s["shadows"][0]["path"])
    d.fails(EXIT_NOT_FOUND, "volume", "delete", "snapped")


def test_volume_image_adopts_a_filesystem_byte_exact(lvssd, rng):
    d = lvssd
    image = d.root / "adopt.img"
    with open(image, "wb") as f:
        f.truncate(48 * MiB)
    subprocess.run(daemon.MKFS["ext4"] + [str(image)], check=True, capture_output=True)
    files = {"a.bin": rng.randbytes(300_000), "dir/b.txt": b"adopted\n" * 1000}
    dev = d.host.attach(image, direct_io=False)
    mnt = d.host.mount(dev, d.root / "prep")
    for name, data in files.items():
        (mnt / name).parent.mkdir(exist_ok=True)
        daemon.write_durable(mnt / name, data)
    d.host.drop_fs(dev, mnt)
    digest = daemon.file_sha256(image)

    v = d.json("volume", "create", "adopted", "--image", image)
    assert v["size"] == 48 * MiB, v
    assert daemon.file_sha256(v["path"]) == digest, "the volume's file differs from the adopted image"
    dev = d.host.attach(v["path"])
    mnt = d.host.mount(dev, d.root / "mnt")
    for name, data in files.items():
        assert (mnt / name).read_bytes() == data, name
    # The same image cannot back two volumes.
    d.fails(EXIT_FAILED, "volume", "create", "again", "--image", image)
    d.fails(EXIT_NOT_FOUND, "volume", "create", "nofile", "--image", d.root / "missing.img")
    assert set(d.volumes()) == {"adopted"}


# ---- deleting shadows -----------------------------------------------------------------------------


def test_delete_by_id_set_oldest_and_all(lvssd):
    d = lvssd
    d.create_volume("a", "16M")
    d.create_volume("b", "16M")
    s1 = d.create_set("a", "b")
    s2 = d.create_set("a", "b")
    s3 = d.create_set("a")
    s4 = d.create_set("a", "b")

    def ids(s, vol=None):
        return {x["id"] for x in s["shadows"] if vol is None or x["volume"] == vol}

    assert d.shadow_ids() == ids(s1) | ids(s2) | ids(s3) | ids(s4)
    (a1,) = ids(s1, "a")
    d.ok("delete", a1)
    assert d.shadow_ids() == ids(s1, "b") | ids(s2) | ids(s3) | ids(s4)
    assert not os.path.exists(d.dev / "shadows" / a1)

    d.ok("delete", "--set", s2["set"][:8])  # a unique prefix is enough
    assert d.shadow_ids() == ids(s1, "b") | ids(s3) | ids(s4)
    assert s2["set"] not in {x["id"] for x in d.json("list", "sets")}

    d.ok("delete", "--volume", "a", "--oldest")  # s1's is gone already: s3's
    assert d.shadow_ids() == ids(s1, "b") | ids(s4)

    unknown = "0badc0de-0000-4000-8000-000000000000"
    before = d.shadow_ids()
    d.fails(EXIT_NOT_FOUND, "delete", unknown)
    d.fails(EXIT_NOT_FOUND, "delete", "--set", unknown)
    d.fails(EXIT_NOT_FOUND, "delete", "--volume", "nosuch", "--all")
    d.fails(EXIT_USAGE, "delete", "--volume", "a")  # needs --oldest or --all
    d.fails(EXIT_USAGE, "delete")
    assert d.shadow_ids() == before

    out = d.json("delete", "--all")
    assert sorted(out["deleted"]) == sorted(before), out
    assert d.shadows() == [] and d.json("list", "sets") == []
    assert os.listdir(d.dev / "shadows") == []
    assert all(v["shadows"] == 0 for v in d.volumes().values())


# ---- providers, storage ---------------------------------------------------------------------------


def test_list_providers_and_storage(lvssd):
    d = lvssd
    providers = d.json("list", "providers")
    cow = [p for p in providers if p["name"] == "cow"]
    assert len(cow) == 1, providers
    assert isinstance(cow[0]["version"], str) and cow[0]["version"]
    caps = set(cow[0]["capabilities"])
    assert {"volumes", "persistent", "nonpersistent", "revert", "limit"} <= caps, caps
    assert "cow" in d.ok("list", "providers")

    assert d.json("list", "storage") == []
    d.create_volume("a", "16M")
    (st,) = d.json("list", "storage")
    assert st["volume"] == "a" and st["used"] == 0 and st["max"] is None, st
    d.create_set("a")
    daemon.pwrite_sync(d.volume_path("a"), 0, b"\x55" * 65536)  # four 16K chunks preserved
    (st,) = d.json("list", "storage")
    assert st["used"] >= 65536, st
    r = d.json("storage", "resize", "a", "--max", "8M")
    assert r["max"] == 8 * MiB, r
    assert d.volumes()["a"]["storage"]["max"] == 8 * MiB
    r = d.json("storage", "resize", "a", "--max", "unbounded")
    assert r["max"] is None, r
    d.fails(EXIT_USAGE, "storage", "resize", "a", "--max", "1K")
    d.fails(EXIT_USAGE, "storage", "resize", "a", "--max", "lots")
    d.fails(EXIT_NOT_FOUND, "storage", "resize", "nosuch", "--max", "1M")


def test_storage_limit_reclaims_the_oldest_shadow(lvssd, rng):
    d = lvssd
    d.create_volume("a", "64M")
    path = d.volume_path("a")
    old = rng.randbytes(4 * MiB)
    daemon.pwrite_sync(path, 0, old)
    daemon.pwrite_sync(path, 8 * MiB, old)
    d.json("storage", "resize", "a", "--max", "1M")
    first = d.create_set("a")["shadows"][0]
    # 640K changed under the first shadow alone...
    new1 = rng.randbytes(640 * 1024)
    daemon.pwrite_sync(path, 0, new1)
    second = d.create_set("a")["shadows"][0]
    assert d.shadow_ids() == {first["id"], second["id"]}
    # ...then 640K under both: 1280K preserved in all is more than the 1M allowed, and deleting
    # the oldest shadow (and what only it needed) is enough.
    new2 = rng.randbytes(640 * 1024)
    daemon.pwrite_sync(path, 8 * MiB, new2)

    assert d.shadow_ids() == {second["id"]}, f"want only the newer shadow left\n{d.log()}"
    assert not os.path.exists(first["path"])
    (st,) = d.json("list", "storage")
    assert st["used"] <= MiB and st["max"] == MiB, st
    assert daemon.pread(path, 0, len(new1)) == new1
    assert daemon.pread(path, 8 * MiB, len(new2)) == new2
    assert daemon.pread(path, 640 * 1024, 4 * MiB - 640 * 1024) == old[640 * 1024:]
    # The survivor still shows its point in time.
    assert daemon.pread(second["path"], 0, len(new1)) == new1
    assert daemon.pread(second["path"], 8 * MiB, 4 * MiB) == old


# ---- revert ---------------------------------------------------------------------------------------


def test_revert_refused_while_mounted_then_brings_the_filesystem_back(lvssd, rng):
    d = lvssd
    d.create_volume("r", "64M")
    dev, mnt = d.host.new_fs(d.volume_path("r"), "ext4", d.root / "mnt")
    a = rng.randbytes(200_000)
    daemon.write_durable(mnt / "file.bin", a)
    shadow = d.create_set(mnt, context="app-rollback")["shadows"][0]
    b = rng.randbytes(250_000)
    daemon.write_durable(mnt / "file.bin", b)
    daemon.write_durable(mnt / "new.txt", b"only after the shadow\n")
    assert (mnt / "file.bin").read_bytes() == b
    subprocess.run(["sync", "-f", str(mnt)], check=True)
    live = daemon.file_sha256(d.volume_path("r"))

    err = d.fails(EXIT_FAILED, "revert", shadow["id"])
    assert "mounted" in err, err
    assert daemon.file_sha256(d.volume_path("r")) == live, "a refused revert changed the volume"
    assert (mnt / "file.bin").read_bytes() == b

    d.host.umount(mnt)
    d.ok("revert", shadow["id"])
    proc = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, text=True)
    # The shadow was taken frozen: its journal needs no replay, the filesystem is clean.
    assert proc.returncode == 0, f"e2fsck -fn after revert: {proc.stdout}{proc.stderr}"
    mnt = d.host.mount(dev, d.root / "mnt")
    assert (mnt / "file.bin").read_bytes() == a
    assert not (mnt / "new.txt").exists()
    d.fails(EXIT_NOT_FOUND, "revert", "0badc0de-0000-4000-8000-000000000000")


# ---- usage, help, no daemon -----------------------------------------------------------------------

VERBS = ["volume", "create", "list", "shadow", "delete", "expose", "unexpose", "revert", "storage", "help"]
SUBVERBS = [("volume", "create"), ("volume", "list"), ("volume", "delete"), ("volume", "path"),
            ("list", "volumes"), ("list", "shadows"), ("list", "storage"), ("list", "providers"),
            ("list", "sets"), ("list", "writers"), ("shadow", "path"), ("shadow", "list"),
            ("storage", "list"), ("storage", "resize")]


@pytest.mark.parametrize("words", [(v,) for v in VERBS] + SUBVERBS, ids=" ".join)
def test_help_of_every_verb(lvssd_stopped, words):
    # --help must not need lvssd: none runs, the socket given leads nowhere.
    d = lvssd_stopped
    res = d.run(*words, "--help", socket_path=d.root / "no-such.sock")
    assert res.code == 0 and res.err == "", res
    assert "Usage" in res.out and words[-1] in res.out, res


def test_usage_errors_and_no_daemon(lvssd):
    d = lvssd
    nowhere = d.root / "no-such.sock"
    res = d.run("--help", socket_path=nowhere)
    assert res.code == 0 and all(v in res.out for v in VERBS), res
    d.fails(EXIT_USAGE, "frobnicate")
    d.fails(EXIT_USAGE, "list", "bananas")
    d.fails(EXIT_USAGE, "list", "volumes", "--bogus-option")
    d.fails(EXIT_USAGE, "create", "--context", "nonsense", "a")
    d.fails(EXIT_USAGE, "expose", "only-one-argument")
    err = d.fails(EXIT_UNREACHABLE, "list", "volumes", socket_path=nowhere)
    assert "not running" in err or "reach" in err, err
    d.fails(EXIT_UNREACHABLE, "create", "a", socket_path="/nonexistent-dir/lvssd.sock")
    # A socket file nobody listens on (a daemon that died) is "not reachable" too.
    import socket as so
    dead = d.root / "dead.sock"
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.bind(str(dead))
    s.close()
    d.fails(EXIT_UNREACHABLE, "list", "volumes", socket_path=dead)


# ---- sets that cannot be made now -----------------------------------------------------------------


def test_create_on_a_filesystem_frozen_by_someone_else(lvssd):
    d = lvssd
    d.create_volume("f", "64M")
    d.create_volume("g", "64M")
    _, mnt = d.host.new_fs(d.volume_path("f"), "ext4", d.root / "mnt")
    _, mnt_g = d.host.new_fs(d.volume_path("g"), "ext4", d.root / "mnt-g")
    d.host.freeze(mnt)
    res = d.run("create", "g", "f", timeout=60)
    assert res.code == EXIT_FAILED, f"{res}\n{d.log()}"
    assert "frozen" in res.err, res
    assert d.shadows() == [] and d.json("list", "sets") == []
    # lvssd thawed what it froze (g) and left f frozen as it found it: its owner thaws it.
    daemon.write_durable(mnt_g / "g-is-writable", b"yes")
    proc = d.host.thaw(mnt)
    assert proc.returncode == 0, f"fsfreeze -u after the failed set: {proc.stderr}"
    daemon.write_durable(mnt / "f-is-writable", b"yes")
    s = d.create_set("g", "f")
    assert len(s["shadows"]) == 2


# The writer-lock trick: a splice from an empty pipe into a file holds the filesystem's write
# lock (sb_start_write) until the pipe gets data, so FIFREEZE on that filesystem waits for it.
SPLICER = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
print("splicing", flush=True)
n = os.splice(0, fd, 1 << 16)
os.fsync(fd)
print("spliced", n, flush=True)
'''


class HeldFilesystem:
    """Holds the write lock of the filesystem at MOUNTPOINT until release()."""

    def __init__(self, path):
        self.r, self.w = os.pipe()
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", SPLICER, str(path)], stdin=self.r,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(self.r)
        assert self.proc.stdout.readline().strip() == "splicing", self.proc.stderr.read()
        time.sleep(0.3)  # into the splice

    def release(self):
        if self.w >= 0:
            os.write(self.w, b"released\n")
            os.close(self.w)
            self.w = -1
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def set_in_progress(d):
    proc = subprocess.run(["busctl", f"--address=unix:path={d.socket}", "get-property", "org.lvss",
                           "/org/lvss", "org.lvss.Manager1", "SetInProgress"], capture_output=True,
                          text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "b true"


def test_second_create_while_one_is_being_created_is_busy(lvssd):
    d = lvssd
    d.create_volume("slow", "64M")
    d.create_volume("other", "16M")
    _, mnt = d.host.new_fs(d.volume_path("slow"), "ext4", d.root / "mnt")
    assert not set_in_progress(d)
    held = HeldFilesystem(mnt / "held")
    first = None
    try:
        first = subprocess.Popen([d.cli, "--socket", str(d.socket), "--json", "create", "slow"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not set_in_progress(d):
            assert first.poll() is None, f"the first create ended while the filesystem was held: " \
                                         f"{first.communicate()}\n{d.log()}"
            assert time.monotonic() < deadline, "SetInProgress never became true"
            time.sleep(0.05)
        # lvssd still answers while a set is being made...
        assert "slow" in d.volumes()
        # ...but a second set is refused at once, and so are deleting and reverting.
        t0 = time.monotonic()
        err = d.fails(EXIT_FAILED, "create", "other", timeout=10)
        assert "being created" in err, err
        assert time.monotonic() - t0 < 5
        d.fails(EXIT_FAILED, "volume", "delete", "other")
        assert first.poll() is None, "the first create did not wait for the held filesystem"
    finally:
        held.release()
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, f"the first create: exit {first.returncode}: {err}\n{d.log()}"
    s = json.loads(out)
    assert [x["volume"] for x in s["shadows"]] == ["slow"]
    assert 0 < s["hold_ms"] < 10000, s
    assert not set_in_progress(d)
    assert d.shadow_ids() == {s["shadows"][0]["id"]}
    assert (mnt / "held").read_bytes() == b"released\n"
    d.create_set("other")  # and the next one goes through


def test_freeze_window_passed_discards_the_set_and_thaws(lvssd):
    """A freeze that cannot finish within the 10 s window: the set fails with a timeout (exit 5),
    nothing stays frozen, no shadow is left."""
    d = lvssd
    d.create_volume("slow", "64M")
    d.create_volume("quick", "64M")
    _, mnt = d.host.new_fs(d.volume_path("slow"), "ext4", d.root / "mnt")
    _, mnt_q = d.host.new_fs(d.volume_path("quick"), "ext4", d.root / "mnt-q")
    held = HeldFilesystem(mnt / "held")
    try:
        # quick is frozen first (in the order given), then slow's freeze waits on the held lock.
        first = subprocess.Popen([d.cli, "--socket", str(d.socket), "--json", "create", mnt_q, mnt],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(11)
        # The watchdog has thawed quick by now, although the set is not over.
        t0 = time.monotonic()
        daemon.write_durable(mnt_q / "writable-during-the-stuck-freeze", b"yes")
        assert time.monotonic() - t0 < 5, "quick stayed frozen past the window"
    finally:
        held.release()
    out, err = first.communicate(timeout=30)
    assert first.returncode == EXIT_TIMEOUT, f"exit {first.returncode}: {out}{err}\n{d.log()}"
    assert d.shadows() == []
    daemon.write_durable(mnt / "writable-after", b"yes")
    daemon.write_durable(mnt_q / "writable-after", b"yes")
    assert not set_in_progress(d)
