# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The diff area's maximum size and its two policies: protect-volume deletes
# the oldest snapshots and the write succeeds; protect-snapshots fails the
# write with exit 6, leaving the data and the snapshots unchanged.

KiB = 1024
MiB = 1 << 20
CHUNK = 4 * KiB


def test_protect_volume_reclaims_oldest(eng, rng):
    eng.create("1M", "--chunk-size", "4K", "--diff-max", "64K")  # room for 16 preserved chunks
    a = rng.randbytes(MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    eng.write(0, b"\x01" * 10 * CHUNK)  # 10 chunks preserved for s1
    b = eng.read()
    s2 = eng.snapshot()
    eng.write(100 * CHUNK, b"\x02" * 4 * CHUNK)  # 4 more, shared by s1 and s2: 14 fit
    assert [s["id"] for s in eng.snapshots()] == [s1, s2]
    assert eng.read(snapshot=s1) == a

    c = rng.randbytes(12 * CHUNK)
    eng.write(200 * CHUNK, c)  # 12 more do not fit: s1 goes, and the write succeeds
    assert eng.read(offset=200 * CHUNK, length=12 * CHUNK) == c
    remaining = [s["id"] for s in eng.snapshots()]
    assert s1 not in remaining
    if s2 in remaining:  # s2 may have had to go too, but if it stayed it is exact
        assert eng.read(snapshot=s2) == b
    info = eng.info()
    assert info["diff"]["max"] == 64 * KiB and info["diff"]["used"] <= 64 * KiB


def test_protect_volume_when_one_write_exceeds_everything(eng, rng):
    eng.create("1M", "--chunk-size", "4K", "--diff-max", "16K")
    eng.write(0, rng.randbytes(MiB))
    eng.snapshot()
    eng.snapshot()
    d = rng.randbytes(MiB)
    eng.write(0, d)  # needs 256 chunks of 4: every snapshot goes, the write succeeds
    assert eng.read() == d
    assert eng.snapshots() == []


def test_protect_snapshots_fails_write_exit_6(eng, rng):
    eng.create("1M", "--chunk-size", "4K", "--diff-max", "8K", "--protect-snapshots")
    a = rng.randbytes(MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    eng.write(0, b"\x01" * 2 * CHUNK)  # fills the diff area exactly
    after_ok = eng.read()

    err = eng.fails(6, "write", eng.dir, "--offset", 5 * CHUNK, input=b"\x02" * 100)
    assert "diff area" in err and "limit" in err, err
    assert eng.read() == after_ok  # chunk 5 is unchanged
    assert [s["id"] for s in eng.snapshots()] == [s1]
    assert eng.read(snapshot=s1) == a

    # Rewriting an already preserved chunk needs no room and succeeds.
    eng.write(100, b"\x03" * 100)

    # A shrink below use is refused under this policy ...
    err = eng.fails(6, "limit", eng.dir, "--max", "4K")
    assert "diff area" in err
    assert eng.info()["diff"]["max"] == 8 * KiB
    # ... and a raise lets the write through, s1 still exact.
    assert eng.json("limit", eng.dir, "--max", "unbounded")["diff"]["max"] is None
    eng.write(5 * CHUNK, b"\x02" * 100)
    assert eng.read(offset=5 * CHUNK, length=100) == b"\x02" * 100
    assert eng.read(snapshot=s1) == a


def test_limit_switch_policy_and_shrink_reclaims(eng, rng):
    eng.create("1M", "--chunk-size", "4K", "--protect-snapshots")
    a = rng.randbytes(MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    eng.write(0, rng.randbytes(8 * CHUNK))
    b = eng.read()
    s2 = eng.snapshot()
    eng.write(50 * CHUNK, rng.randbytes(2 * CHUNK))
    info = eng.json("limit", eng.dir, "--max", "16K", "--protect-volume")
    assert info["policy"] == "protect-volume" and info["diff"]["max"] == 16 * KiB
    remaining = [s["id"] for s in eng.snapshots()]
    assert s1 not in remaining  # its 8 chunks did not fit in 16K
    assert info["diff"]["used"] <= 16 * KiB
    if s2 in remaining:
        assert eng.read(snapshot=s2) == b
    # Only --max changes the policy when none is given.
    assert eng.json("limit", eng.dir, "--max", "1M")["policy"] == "protect-volume"


def test_protect_snapshots_refuses_a_multi_chunk_write_whole(eng, rng):
    eng.create("1M", "--chunk-size", "4K", "--diff-max", "8K", "--protect-snapshots")
    a = rng.randbytes(MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    # Three chunks to preserve, room for two: nothing of the write may land.
    eng.fails(6, "write", eng.dir, "--offset", 5 * CHUNK, input=b"Z" * 3 * CHUNK)
    assert eng.read() == a
    assert eng.read(snapshot=s1) == a
    assert eng.info()["diff"]["used"] == 0
    # Two fit.
    eng.write(5 * CHUNK, b"Z" * 2 * CHUNK)
    assert eng.read(offset=5 * CHUNK, length=2 * CHUNK) == b"Z" * 2 * CHUNK
    assert eng.read(snapshot=s1) == a
