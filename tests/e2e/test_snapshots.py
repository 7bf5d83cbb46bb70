# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Snapshot content through the installed tool: every snapshot reads its
# point in time byte for byte, across processes; changed-block tracking;
# revert; import --changed-only.

import os
import subprocess
import time

KiB = 1024
MiB = 1 << 20


def pattern(rng, n):
    return rng.randbytes(n)


def test_snapshot_keeps_old_bytes(eng, rng):
    eng.create("4M", "--chunk-size", "4K")
    a = pattern(rng, 3 * MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    b = pattern(rng, 100_000)
    eng.write(12345, b)  # unaligned, across many chunks
    live = bytearray(a + bytes(MiB))
    live[12345:12345 + len(b)] = b
    assert eng.read(snapshot=s1) == a + bytes(MiB)
    assert eng.read() == bytes(live)
    assert eng.read(offset=12000, length=1000, snapshot=s1) == a[12000:13000]
    assert eng.read(offset=12000, length=1000) == bytes(live[12000:13000])


def test_many_snapshots_each_its_point_in_time(eng, rng):
    eng.create("1M", "--chunk-size", "4K")
    model = bytearray(MiB)
    snaps = {}
    for i in range(12):
        off = rng.randrange(MiB - 20000)
        data = pattern(rng, rng.randrange(1, 20000))
        eng.write(off, data)
        model[off:off + len(data)] = data
        snaps[eng.snapshot("--label", f"step {i}")] = bytes(model)
    # Delete some in the middle, the oldest and the newest.
    ids = sorted(snaps)
    for victim in (ids[5], ids[0], ids[-1], ids[6]):
        eng.ok("delete", eng.dir, victim)
        del snaps[victim]
    eng.write(0, b"\x5a" * MiB)
    for sid, content in snaps.items():
        assert eng.read(snapshot=sid) == content, f"snapshot {sid}"
    assert eng.read() == b"\x5a" * MiB
    assert [s["id"] for s in eng.snapshots()] == sorted(snaps)


def test_persistence_across_processes(eng, rng, tmp_path):
    eng.create("2M", "--chunk-size", "8K")
    a = pattern(rng, 2 * MiB)
    f = tmp_path / "a"
    f.write_bytes(a)
    eng.ok("write", eng.dir, "--input", f)
    s1 = eng.snapshot("--label", "one")
    eng.write(4 * KiB, b"\x01" * 64 * KiB)
    s2 = eng.snapshot("--label", "two")
    eng.write(0, b"\x02" * MiB)
    # Every command above was its own process; the volume is reopened each time.
    out = tmp_path / "s1.img"
    eng.ok("read", eng.dir, "--snapshot", s1, "--output", out)
    assert out.read_bytes() == a
    b = bytearray(a)
    b[4 * KiB:68 * KiB] = b"\x01" * 64 * KiB
    assert eng.read(snapshot=s2) == bytes(b)
    assert eng.read() == b"\x02" * MiB + a[MiB:]
    labels = {s["id"]: s["label"] for s in eng.snapshots()}
    assert labels == {s1: "one", s2: "two"}
    info = eng.info()
    assert info["snapshots"] == 2 and info["exceptions"] > 0 and info["diff"]["used"] > 0


def test_read_output_file_is_sparse_and_exact(eng, tmp_path):
    eng.create("64M")
    eng.write(10 * MiB, b"end of the world")
    s = eng.snapshot()
    eng.write(10 * MiB, b"END")
    out = tmp_path / "out.img"
    out.write_bytes(b"old junk" * 1000)  # truncated first
    eng.ok("read", eng.dir, "--snapshot", s, "--output", out)
    assert os.path.getsize(out) == 64 * MiB
    assert os.stat(out).st_blocks * 512 < 8 * MiB
    with open(out, "rb") as f:
        f.seek(10 * MiB)
        assert f.read(16) == b"end of the world"
        f.seek(0)
        assert f.read(MiB) == bytes(MiB)


def test_changed_block_tracking_exact_chunks(eng):
    chunk = 4 * KiB
    eng.create("1M", "--chunk-size", "4K")
    eng.write(0, b"\x11" * MiB)  # before any snapshot: not tracked
    s1 = eng.snapshot()
    eng.write(0, b"a")                        # chunk 0
    eng.write(5 * chunk + 100, b"b" * 10)     # chunk 5
    eng.write(9 * chunk - 1, b"cc")           # chunks 8 and 9
    eng.write(20 * chunk, b"d" * 3 * chunk)   # chunks 20-22
    c = eng.changed(s1)
    assert c["from"] == s1 and c["to"] is None and c["chunk_size"] == chunk and c["chunks"] == 256
    assert c["ranges"] == [[0, 0], [5, 5], [8, 9], [20, 22]]
    assert c["changed"] == 7 and c["changed_bytes"] == 7 * chunk

    s2 = eng.snapshot()
    eng.write(100 * chunk + 7, b"e")          # chunk 100
    assert eng.changed(s1, s2)["ranges"] == [[0, 0], [5, 5], [8, 9], [20, 22]]
    assert eng.changed(s2)["ranges"] == [[100, 100]]
    assert eng.changed(s1)["ranges"] == [[0, 0], [5, 5], [8, 9], [20, 22], [100, 100]]

    human = eng.ok("changed", eng.dir, s1).splitlines()
    assert human[:-1] == ["0", "5", "8-9", "20-22", "100"]
    assert human[-1].startswith("8 of 256 chunks changed since snapshot")

    s3 = eng.snapshot()
    assert eng.changed(s3)["ranges"] == [] and eng.changed(s3)["changed"] == 0


def test_revert_restores_bytes(eng, rng):
    eng.create("2M", "--chunk-size", "4K")
    a = pattern(rng, 2 * MiB)
    eng.write(0, a)
    s1 = eng.snapshot()
    eng.write(3333, pattern(rng, 500_000))
    s2 = eng.snapshot()
    b = eng.read()
    eng.write(MiB - 10, pattern(rng, 300_000))
    assert eng.json("revert", eng.dir, s1) == {"reverted_to": s1}
    assert eng.read() == a
    assert eng.read(snapshot=s1) == a
    assert eng.read(snapshot=s2) == b  # the other snapshots keep their content
    eng.ok("revert", eng.dir, s2)
    assert eng.read() == b
    assert eng.read(snapshot=s1) == a


def test_import_changed_only(eng, rng, tmp_path):
    eng.create("4M", "--chunk-size", "64K")
    img = tmp_path / "img"
    a = bytearray(pattern(rng, 3 * MiB) + bytes(MiB))
    img.write_bytes(a)
    r = eng.json("import", eng.dir, img)
    assert r == {"chunks": 64, "chunks_written": 64, "bytes_written": 4 * MiB, "chunk_size": 64 * KiB}
    s = eng.snapshot()
    b = bytearray(a)
    b[70000:70010] = b"x" * 10              # chunk 1
    b[3 * MiB + 5:3 * MiB + 9] = b"yyyy"    # chunk 48
    img.write_bytes(b)
    r = eng.json("import", eng.dir, img, "--changed-only")
    assert r["chunks"] == 64 and r["chunks_written"] == 2 and r["bytes_written"] == 2 * 64 * KiB
    assert eng.read() == bytes(b)
    assert eng.read(snapshot=s) == bytes(a)
    assert eng.changed(s)["ranges"] == [[1, 1], [48, 48]]
    out = eng.ok("import", eng.dir, img, "--changed-only")
    assert out.startswith(f"Imported {img}: 0 of 64 chunks written")


def test_import_of_zero_chunks_reads_zeros(eng, rng, tmp_path):
    eng.create("1M", "--chunk-size", "4K")
    old = pattern(rng, MiB)
    eng.write(0, old)
    s = eng.snapshot()
    img = tmp_path / "zeros"
    img.write_bytes(bytes(MiB))
    assert eng.json("import", eng.dir, img)["chunks_written"] == 256
    assert eng.read() == bytes(MiB)
    assert eng.read(snapshot=s) == old


def test_512_snapshots_then_refused(eng):
    eng.create("1M", "--chunk-size", "4K")
    script = f'for i in $(seq 1 512); do printf "%04d" $i | {eng.path} write {eng.dir} --offset $((i * 4)) >/dev/null && ' \
             f'{eng.path} snapshot {eng.dir} >/dev/null || exit 1; done'
    subprocess.run(["bash", "-c", script], check=True, timeout=600)
    snaps = eng.snapshots()
    assert len(snaps) == 512 and eng.info()["snapshots"] == 512
    err = eng.fails(1, "snapshot", eng.dir)
    assert "512 snapshots" in err and "delete" in err, err
    # Snapshot N saw the writes 1..N: check a few, including the oldest and the newest.
    for n in (1, 2, 255, 511, 512):
        sid = snaps[n - 1]["id"]
        data = eng.read(snapshot=sid, length=4 * 514)
        expected = bytearray(4 * 514)
        for i in range(1, n + 1):
            expected[i * 4:i * 4 + 4] = b"%04d" % i
        assert data == bytes(expected), f"snapshot {sid}"
    eng.ok("delete", eng.dir, snaps[100]["id"])
    assert eng.snapshot() > snaps[-1]["id"]


def test_snapshot_of_a_64g_volume_is_quick_and_sparse(eng):
    info = eng.create("64G")
    assert os.stat(info["image"]).st_blocks * 512 < MiB
    eng.write(64 * (1 << 30) - 5, b"last!")
    t0 = time.monotonic()
    s = eng.snapshot()
    took = time.monotonic() - t0
    assert took < 5, f"a snapshot of a 64 GiB volume took {took:.1f} s"
    eng.write(64 * (1 << 30) - 5, b"LAST!")
    assert eng.read(offset=64 * (1 << 30) - 5, snapshot=s) == b"last!"
    assert eng.read(offset=64 * (1 << 30) - 5) == b"LAST!"
    assert eng.changed(s)["ranges"] == [[info["chunks"] - 1, info["chunks"] - 1]]
