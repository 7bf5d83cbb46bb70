# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Damaged or foreign metadata, and a volume in use: a clear one-line error
# and exit 1, never a crash, never a wrong snapshot read, and the damaged
# file is left as it was for whoever will repair it.

import json
import os
import struct
import subprocess
import time

import pytest

import metafile

MiB = 1 << 20


@pytest.fixture
def volume(eng, rng):
    """A volume with two snapshots and some preserved chunks; returns the content of each."""
    eng.create("4M", "--chunk-size", "4K")
    a = rng.randbytes(4 * MiB)
    eng.write(0, a)
    s1 = eng.snapshot("--label", "one")
    eng.write(5000, rng.randbytes(50_000))
    b = eng.read()
    s2 = eng.snapshot("--label", "two")
    eng.write(200_000, rng.randbytes(70_000))
    return {"s1": s1, "s2": s2, "a": a, "b": b, "live": eng.read()}


def meta_path(eng):
    return os.path.join(eng.dir, "meta")


def damage(eng, change):
    path = meta_path(eng)
    with open(path, "rb") as f:
        meta = bytearray(f.read())
    meta = change(meta)
    with open(path, "wb") as f:
        f.write(meta)
    return bytes(meta)


def assert_refused(eng, meta, words):
    for args in (["info", eng.dir], ["list", eng.dir], ["read", eng.dir, "--length", "1"],
                 ["snapshot", eng.dir], ["write", eng.dir]):
        err = eng.fails(1, *args, input=b"x")
        assert len(err.strip().splitlines()) == 1, err
        assert os.path.join(eng.dir, "meta") in err, err
        for w in words:
            assert w in err, err
    with open(meta_path(eng), "rb") as f:
        assert f.read() == meta, "a refused volume's metadata must be left untouched"


def flip(off):
    def change(meta):
        meta[off] ^= 0x40
        return meta
    return change


@pytest.mark.parametrize("off", [0, 5, 9, 17, 25, 40, 4000, metafile.SUPER_CRC_OFF])
def test_flipped_superblock_byte(eng, volume, off):
    meta = damage(eng, flip(off))
    assert_refused(eng, meta, ["not an lvss volume", "restore"])


@pytest.mark.parametrize("size", [0, 1, 100, 8191])
def test_truncated_meta(eng, volume, size):
    meta = damage(eng, lambda m: m[:size])
    assert_refused(eng, meta, ["not an lvss volume"])


def test_garbage_meta(eng, volume, rng):
    meta = damage(eng, lambda m: bytearray(rng.randbytes(len(m))))
    assert_refused(eng, meta, ["not an lvss volume"])


def test_other_file_as_meta(eng, volume):
    meta = damage(eng, lambda m: bytearray(b"#!/bin/sh\necho hello\n" * 1000))
    assert_refused(eng, meta, ["not an lvss volume"])


def test_wrong_version(eng, volume):
    meta = damage(eng, lambda m: (metafile.set_u32(m, metafile.VERSION_OFF, 2), m)[1])
    assert_refused(eng, meta, ["version", "does not support"])


def test_out_of_range_superblock(eng, volume):
    meta = damage(eng, lambda m: (metafile.set_u32(m, metafile.CHUNK_SIZE_OFF, 3000), m)[1])
    assert_refused(eng, meta, ["out-of-range"])


def read_frames(eng):
    with open(meta_path(eng), "rb") as f:
        return metafile.frames(f.read())


def crash_with_frames(eng, rng, volume, min_frames=3):
    """Kills a writer of the volume once its copy-on-write commits have appended MIN_FRAMES - 1
    frames to DIR/meta (a closed volume's journal is one checkpoint frame). lvss-engine write
    hands the engine one write per MiB of input, and each write that preserves chunks commits at
    least one frame. Returns the frames and the new data; each block of the live volume then
    holds the old or the new data."""
    new = rng.randbytes(len(volume["live"]))
    proc = subprocess.Popen([eng.path, "write", eng.dir], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        for block in range(0, len(new), MiB):
            if len(read_frames(eng)) >= min_frames:
                break
            proc.stdin.write(new[block:block + MiB])
            proc.stdin.flush()
            deadline = time.monotonic() + 30
            last, stable_since = None, time.monotonic()
            while time.monotonic() < deadline:
                frames = read_frames(eng)
                if frames != last:
                    last, stable_since = frames, time.monotonic()
                elif len(frames) > 1 and time.monotonic() - stable_since > 0.3:
                    break  # this write's commits are in; the process waits for more input
                time.sleep(0.02)
        proc.kill()  # SIGKILL: no flush, no close, no checkpoint
    finally:
        proc.wait()
    frames = read_frames(eng)
    if len(frames) < min_frames:
        pytest.skip(f"the engine appended too few frames ({frames}) for a multi-frame journal")
    return frames, new


def check_blocks_old_or_new(live, old, new, block=4096):
    mixed = [i for i in range(0, len(live), block)
             if live[i:i + block] not in (old[i:i + block], new[i:i + block])]
    assert not mixed, f"blocks holding neither the old nor the new data: {mixed[:10]}"


def test_killed_writer_leaves_snapshots_exact(eng, volume, rng):
    frames, new = crash_with_frames(eng, rng, volume)
    check_blocks_old_or_new(eng.read(), volume["live"], new)
    assert eng.read(snapshot=volume["s1"]) == volume["a"]
    assert eng.read(snapshot=volume["s2"]) == volume["b"]


def assert_refused_repairable(eng, meta):
    """Damaged journal records: every verb refuses, naming the repair, and changes nothing."""
    assert_refused(eng, meta, ["is damaged", "nothing was changed", "repair"])


def test_damaged_middle_frame_invalidates_snapshots(eng, volume, rng):
    frames, new = crash_with_frames(eng, rng, volume)
    off, length, _ = frames[1]
    meta = damage(eng, flip(off + metafile.FRAME_HEADER + 4))  # a record of a frame that later frames follow
    assert_refused_repairable(eng, meta)
    out = eng.ok("repair", eng.dir)
    assert "meta.damaged" in out, out
    with open(os.path.join(eng.dir, "meta.damaged"), "rb") as f:
        assert f.read() == meta, "repair must keep the damaged metadata as it was"
    snaps = eng.snapshots()  # the volume opens ...
    assert [s["id"] for s in snaps] == [volume["s1"], volume["s2"]], snaps
    assert all(s["state"] == "invalid" for s in snaps), snaps
    for s in snaps:  # ... but no snapshot that cannot be proven intact is ever read
        err = eng.fails(1, "read", eng.dir, "--snapshot", s["id"])
        assert "could not be proven intact" in err and "delete" in err, err
        eng.fails(1, "revert", eng.dir, s["id"])
        eng.fails(1, "changed", eng.dir, s["id"])
    live = eng.read()
    check_blocks_old_or_new(live, volume["live"], new)  # the live volume is not damaged
    # Deleting the invalid snapshots brings the volume back to a clean state.
    eng.ok("delete", eng.dir, *[s["id"] for s in snaps])
    s = eng.snapshot()
    eng.write(0, b"new")
    assert eng.read(snapshot=s) == live
    assert all(x["state"] == "valid" for x in eng.snapshots())


def test_torn_last_commit_is_harmless(eng, volume, rng):
    """A crash while a commit's frame was being written: its live writes were never issued, so
    dropping the frame loses nothing. Simulated by appending half of a next frame."""
    frames, new = crash_with_frames(eng, rng, volume)
    live = eng.read()  # reopened (and compacted): the state the torn commit would have followed
    assert eng.read(snapshot=volume["s2"]) == volume["b"]
    with open(meta_path(eng), "rb") as f:
        meta = f.read()
    frames = metafile.frames(meta)
    off, length, seq = frames[-1]
    torn = bytearray(meta[off:off + length])
    struct.pack_into("<Q", torn, 8, seq + 1)
    damage(eng, lambda m: m + torn[:length // 2])

    snaps = {s["id"]: s for s in eng.snapshots()}
    assert set(snaps) == {volume["s1"], volume["s2"]}, snaps
    assert all(s["state"] == "valid" for s in snaps.values()), snaps
    assert eng.read(snapshot=volume["s1"]) == volume["a"]
    assert eng.read(snapshot=volume["s2"]) == volume["b"]
    assert eng.read() == live
    eng.write(0, b"after")  # and the volume takes writes again
    assert eng.read(length=5) == b"after"
    assert eng.read(snapshot=volume["s1"]) == volume["a"]


def holder_has_opened(pid, path):
    fd_dir = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(os.path.join(fd_dir, fd)).startswith(path + "/") for fd in os.listdir(fd_dir))
    except FileNotFoundError:
        return False


def test_volume_in_use_by_another_process(eng, volume):
    # A writer that holds the volume open while it waits for its input.
    holder = subprocess.Popen([eng.path, "write", eng.dir, "--offset", "0"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        holder.stdin.write(b"held")
        holder.stdin.flush()
        deadline = time.monotonic() + 10
        while not holder_has_opened(holder.pid, eng.dir):  # it opens the volume, then waits for input
            assert time.monotonic() < deadline and holder.poll() is None, holder.stderr.read()
            time.sleep(0.02)
        time.sleep(0.1)
        proc = eng.run("info", eng.dir)
        err = proc.stderr.decode()
        assert proc.returncode == 1, err
        assert "in use by another process" in err, err
        eng.fails(1, "snapshot", eng.dir)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
    assert eng.read(length=4) == b"held"
    assert eng.info()["snapshots"] == 2


def test_damaged_checkpoint_frame_is_not_silently_dropped(eng, volume):
    """A closed volume's journal is one checkpoint frame, renamed into place whole: damage to it
    cannot be a torn commit. The snapshots must not vanish without a word."""
    frames = read_frames(eng)
    off, length, _ = frames[0]
    diff_size = os.path.getsize(os.path.join(eng.dir, "diff"))
    meta = damage(eng, flip(off + metafile.FRAME_HEADER + 40))
    assert_refused_repairable(eng, meta)
    assert os.path.getsize(os.path.join(eng.dir, "diff")) == diff_size, "preserved data was dropped"
    eng.ok("repair", eng.dir)
    # What the damaged checkpoint said cannot be read back: no snapshot is served, the live data is.
    assert all(s["state"] == "invalid" for s in eng.snapshots())
    assert eng.read() == volume["live"]