# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss backup, lvss backup verify and lvss restore end to end (issue 5), against a real lvssd,
# an ext4 tree on an lvss volume changed between backups, and writers: every backup restores to
# exactly the tree of its moment (a digest of names, types, modes, owners, sizes, contents and
# link targets), verify catches a flipped byte anywhere, an incremental is much smaller than the
# full, Ctrl-C leaves neither a shadow nor a backup that verifies, a restore gives writers
# their backup metadata, and without --base the base comes from lvssd's backup history (kept
# across restarts; copies left out; deleted directories skipped).

import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import daemon as d

MiB = 1 << 20


def digest(root):
    """{relative path: (type, mode, uid, gid, size, sha256 or link target)} of the tree."""
    out = {}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = ("l", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                what = ("f", hashlib.sha256(p.read_bytes()).hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                what = ("d", "")
            else:
                what = ("o", "")
            out[rel] = (what[0], stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if what[0] == "f" else 0, what[1])
    return out


def make_tree(root, rng, n=60):
    root = Path(root)
    for i in range(n):
        sub = root / f"dir{i % 5}"
        sub.mkdir(exist_ok=True)
        size = rng.choice([0, 100, 4096, 70000, 300000])
        (sub / f"file{i:03d}").write_bytes(rng.randbytes(size))
    (root / "dir0" / "link").symlink_to("file000")
    os.link(root / "dir1" / "file001", root / "dir1" / "hardlink")
    os.chmod(root / "dir2" / "file002", 0o600)
    os.chown(root / "dir3" / "file003", 1234, 5678)
    (root / "name with spaces").write_bytes(b"spaces\n")


def change_tree(root, rng):
    root = Path(root)
    (root / "dir0" / "file005").write_bytes(rng.randbytes(5000))  # changed
    (root / "dir1" / "file006").unlink()  # deleted
    (root / "new").mkdir()
    (root / "new" / "added").write_bytes(rng.randbytes(20000))  # added
    os.chmod(root / "dir4" / "file004", 0o640)  # mode only


def sync(root):
    subprocess.run(["sync", "-f", str(root)], check=True)


@pytest.fixture
def tree(lvssd):
    lvssd.create_volume("data", "256M")
    _, mnt = lvssd.host.new_fs(lvssd.volume_path("data"), "ext4", lvssd.root / "mnt")
    return mnt


def backup(lvssd, to, *args, target=None):
    return lvssd.json("backup", "--to", to, *args, target, timeout=300)


def test_full_incremental_differential_restore_exactly(lvssd, tree):
    rng = random.Random(5)
    out = lvssd.root / "backups"
    out.mkdir()
    make_tree(tree, rng)
    sync(tree)
    states = {}

    states["full"] = digest(tree)
    full = backup(lvssd, out / "full", target=tree)
    assert full["type"] == "full" and full["base"] is None
    assert lvssd.shadows() == [], "the backup's shadows must be gone when it ends"

    change_tree(tree, rng)
    sync(tree)
    states["inc1"] = digest(tree)
    inc1 = backup(lvssd, out / "inc1", "--type", "incremental", "--base", out / "full", target=tree)
    assert inc1["base"] == full["id"]
    assert inc1["entries_deleted"] >= 1

    (tree / "dir2" / "file010").write_bytes(rng.randbytes(1000))
    sync(tree)
    states["inc2"] = digest(tree)
    inc2 = backup(lvssd, out / "inc2", "--type", "incremental", "--base", out / "inc1", target=tree)

    shutil.rmtree(tree / "dir3")
    sync(tree)
    states["diff"] = digest(tree)
    diff = backup(lvssd, out / "diff", "--type", "differential", "--base", out / "full", target=tree)
    assert diff["base"] == full["id"]
    assert lvssd.shadows() == [] and lvssd.json("list", "sets") == []

    size = {k: sum(f.stat().st_size for f in (out / k).rglob("*") if f.is_file()) for k in states}
    assert size["inc1"] < size["full"] / 5, size
    assert size["inc2"] < size["full"] / 5, size
    assert inc2["bytes_read"] < full["bytes_read"] / 10, (inc2, full)

    for name, want in states.items():
        lvssd.ok("backup", "verify", out / name)
        dest = lvssd.root / f"restore-{name}"
        lvssd.ok("restore", out / name, "--to", dest)
        got = digest(dest / "data")
        assert got == want, (name, set(got) ^ set(want),
                             [k for k in got if k in want and got[k] != want[k]])
        assert not (dest / "data" / ".lvss-restore-incomplete").exists()


def test_verify_catches_a_flipped_byte_anywhere(lvssd, tree):
    rng = random.Random(7)
    make_tree(tree, rng, n=20)
    sync(tree)
    out = lvssd.root / "backups"
    out.mkdir()
    backup(lvssd, out / "full", target=tree)
    change_tree(tree, rng)
    sync(tree)
    backup(lvssd, out / "inc", "--type", "incremental", "--base", out / "full", target=tree)
    lvssd.ok("backup", "verify", out / "inc")
    files = [f for f in sorted((out / "full").rglob("*")) + sorted((out / "inc").rglob("*")) if f.is_file()]
    assert len(files) >= 6, files
    for f in files:
        data = bytearray(f.read_bytes())
        if not data:
            continue
        pos = rng.randrange(len(data))
        data[pos] ^= 0x01
        orig = f.read_bytes()
        f.write_bytes(bytes(data))
        try:
            res = lvssd.run("backup", "verify", out / "inc")
            assert res.code == d.EXIT_FAILED, (f, pos, res)
            assert f.name in res.err or "manifest" in res.err, (f, res.err)
        finally:
            f.write_bytes(orig)
    lvssd.ok("backup", "verify", out / "inc")
    # A base gone: named.
    shutil.move(out / "full", lvssd.root / "elsewhere")
    res = lvssd.run("backup", "verify", out / "inc")
    assert res.code != 0 and "base" in res.err.lower(), res


def test_ctrl_c_leaves_no_shadow_and_no_backup(lvssd, tree):
    rng = random.Random(9)
    big = tree / "big"
    big.mkdir()
    for i in range(12):
        (big / f"f{i}").write_bytes(rng.randbytes(16 * MiB))
    sync(tree)
    to = lvssd.root / "interrupted"
    proc = subprocess.Popen([lvssd.cli, "--socket", str(lvssd.socket), "backup", "--to", str(to), str(tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not to.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    assert lvssd.shadows() == [] and lvssd.json("list", "sets") == []
    assert not to.exists() or lvssd.run("backup", "verify", to).code != 0
    assert d.loops_backed_under(lvssd.dev / "shadows") == [], "a shadow is still exposed"


@pytest.mark.parametrize("when", ["writers-prepare", "copying"])
def test_sigkill_of_the_requester_releases_its_set(lvssd, tree, when):
    """lvss backup killed (SIGKILL: no clean-up of its own) while a writer prepares, or while the
    backup copies from the exposed shadows: lvssd abandons or releases the set (AutoRelease), the
    writer is told Abort, nothing stays frozen, exposed or snapshotted."""
    import test_lvssd_writers as tw

    rng = random.Random(13)
    big = tree / "big"
    big.mkdir()
    for i in range(8 if when == "copying" else 1):
        (big / f"f{i}").write_bytes(rng.randbytes(16 * MiB))
    sync(tree)
    w = tw.Writers(lvssd)
    try:
        on = ["prepare-for-snapshot=sleep:1500"] if when == "writers-prepare" else []
        w.start("w", paths=[tree], on=on)
        to = lvssd.root / "killed"
        proc = subprocess.Popen([lvssd.cli, "--socket", str(lvssd.socket), "backup", "--to", str(to), str(tree)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if when == "writers-prepare":
                w.wait_last("w", "prepare-for-snapshot")
            else:
                deadline = time.monotonic() + 30
                while not (to / "data.tar").exists() and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.01)
                assert (to / "data.tar").exists(), "the backup never started copying"
            proc.kill()
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (lvssd.shadows() or lvssd.json("list", "sets")):
            time.sleep(0.1)
        assert lvssd.shadows() == [] and lvssd.json("list", "sets") == []
        assert d.loops_backed_under(lvssd.dev / "shadows") == [], "a shadow is still exposed"
        if when == "writers-prepare":
            assert "abort" in w.wait_last("w", "abort"), w.events_of("w")
            assert "freeze" not in w.events_of("w")
        assert "set" in lvssd.log(200) and "requester's connection closed" in lvssd.log(200)
        # Nothing frozen: a write to the tree completes.
        (tree / "after").write_bytes(b"x")
        sync(tree)
        # And the next backup works.
        backup(lvssd, lvssd.root / "next", target=tree)
    finally:
        w.stop_all()


def test_restore_gives_writers_their_backup_metadata(lvssd, tree):
    import test_lvssd_writers as tw

    (tree / "db").mkdir()
    (tree / "db" / "main.db").write_bytes(b"database\n")
    sync(tree)
    w = tw.Writers(lvssd)
    try:
        w.start("db", paths=[tree / "db"], on=["post-snapshot=metadata:Paths/0=label 42"])
        out = lvssd.root / "b"
        res = backup(lvssd, out, target=tree)
        assert res["components"] == ["db/Paths/0"], res
        assert w.events_of("db")[-2:] == ["backup-complete", "backup-shutdown"] or \
            w.wait_last("db", "backup-shutdown")[-2:] == ["backup-complete", "backup-shutdown"]
        lvssd.ok("restore", out, "--to", lvssd.root / "r")
        assert (lvssd.root / "r" / "data" / "db" / "main.db").read_bytes() == b"database\n"
        rows = [line.split() for line in w.log.read_text().splitlines()]
        tail = [r[2:5] for r in rows[-4:]]
        assert tail[0][0] == "pre-restore" and tail[1] == ["component", "Paths/0", "label_42"], tail
        assert tail[2][0] == "post-restore", tail
    finally:
        w.stop_all()


def test_backup_usage_errors(lvssd, tree):
    lvssd.fails(d.EXIT_USAGE, "backup", tree)
    lvssd.fails(d.EXIT_USAGE, "backup", "--to", lvssd.root / "x", "--type", "weekly", tree)
    # No --base, and no earlier backup of the target in lvssd's history.
    err = lvssd.fails(d.EXIT_NOT_FOUND, "backup", "--to", lvssd.root / "x", "--type", "incremental", tree)
    assert "no earlier full backup of data is known to lvssd" in err and "--base DIR" in err, err
    lvssd.fails(d.EXIT_USAGE, "backup", "--to", lvssd.root / "x", "--base", lvssd.root, tree)
    err = lvssd.fails(d.EXIT_USAGE, "backup", "--to", lvssd.root / "x", "--image", "--type", "log", tree)
    assert "log backup" in err and "--type incremental" in err, err
    (lvssd.root / "full").mkdir()
    (lvssd.root / "full" / "something").write_text("x")
    lvssd.fails(d.EXIT_FAILED, "backup", "--to", lvssd.root / "full", tree)
    assert (lvssd.root / "full" / "something").read_text() == "x"
    lvssd.fails(d.EXIT_NOT_FOUND, "backup", "verify", lvssd.root / "nonexistent")
    assert lvssd.shadows() == []


def test_errors_before_and_during_the_set_leave_nothing(lvssd, tree):
    res = lvssd.run("backup", "--to", lvssd.root / "x", "no-such-volume")
    assert res.code == d.EXIT_NOT_FOUND and res.err.startswith("lvss: "), res
    assert not (lvssd.root / "x").exists()

    # Ctrl-C while lvssd is still making the set (a writer takes its time to prepare): the set,
    # once made, is released, and the writer is told BackupShutdown.
    import test_lvssd_writers as tw

    w = tw.Writers(lvssd)
    try:
        w.start("slow", paths=[tree], on=["prepare-for-backup=sleep:1500"])
        proc = subprocess.Popen([lvssd.cli, "--socket", str(lvssd.socket), "backup", "--to",
                                 str(lvssd.root / "y"), str(tree)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while ("slow", "prepare-for-backup") not in w.events() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == d.EXIT_FAILED, (proc.returncode, err)
        assert "interrupted" in err, err
        assert lvssd.shadows() == [] and lvssd.json("list", "sets") == []
        assert not (lvssd.root / "y").exists()
        assert w.wait_last("slow", "backup-shutdown")[-1] == "backup-shutdown"
        assert "backup-complete" not in w.events_of("slow")
    finally:
        w.stop_all()


def restores_exactly(lvssd, out, states):
    """Each backup out/NAME restores to exactly states[NAME]."""
    for name, want in states.items():
        dest = lvssd.root / f"restore-{name}"
        lvssd.ok("restore", out / name, "--to", dest)
        got = digest(dest / "data")
        assert got == want, (name, set(got) ^ set(want),
                             [k for k in got if k in want and got[k] != want[k]])


def test_history_gives_the_base(lvssd, tree):
    rng = random.Random(11)
    out = lvssd.root / "backups"
    out.mkdir()
    make_tree(tree, rng, n=30)
    sync(tree)
    states, ids = {}, {}

    def step(name, *args, change=True):
        if change:
            (tree / f"{name}.bin").write_bytes(rng.randbytes(3000))
            sync(tree)
        states[name] = digest(tree)
        res = backup(lvssd, out / name, *args, target=tree)
        ids[name] = res["id"]
        return res

    assert step("full", change=False)["base"] is None
    assert step("inc1", "--type", "incremental")["base"] == ids["full"]
    assert step("inc2", "--type", "incremental")["base"] == ids["inc1"]
    assert step("diff", "--type", "differential")["base"] == ids["full"]
    copy = step("copy", "--type", "copy")
    assert copy["type"] == "copy" and copy["base"] is None
    # Neither the copy nor the differential is the base of the next incremental.
    assert step("inc3", "--type", "incremental")["base"] == ids["inc2"]
    assert step("diff2", "--type", "differential")["base"] == ids["full"]

    # The text output names the base it found; a log builds on the newest incremental.
    (tree / "log.bin").write_bytes(rng.randbytes(100))
    sync(tree)
    states["log"] = digest(tree)
    text = lvssd.ok("backup", "--to", out / "log", "--type", "log", tree, timeout=300)
    assert f"base: {os.path.realpath(out / 'inc3')}" in text, text
    assert "(log, base " + ids["inc3"] in text, text

    # An explicit --base still wins over the history.
    states["inc-explicit"] = states["log"]
    assert backup(lvssd, out / "inc-explicit", "--type", "incremental", "--base", out / "full",
                  target=tree)["base"] == ids["full"]
    restores_exactly(lvssd, out, states)
    assert lvssd.shadows() == []


def test_history_survives_restart_and_skips_deleted_bases(lvssd):
    rng = random.Random(13)
    lvssd.create_volume("data", "256M")
    dev, mnt = lvssd.host.new_fs(lvssd.volume_path("data"), "ext4", lvssd.root / "mnt")
    out = lvssd.root / "backups"
    out.mkdir()
    make_tree(mnt, rng, n=30)
    sync(mnt)
    states, ids = {}, {}
    states["full"] = digest(mnt)
    ids["full"] = backup(lvssd, out / "full", target=mnt)["id"]
    change_tree(mnt, rng)
    sync(mnt)
    states["inc1"] = digest(mnt)
    res = backup(lvssd, out / "inc1", "--type", "incremental", target=mnt)
    assert res["base"] == ids["full"]
    ids["inc1"] = res["id"]

    # A clean restart: the history is read back from the state directory.
    lvssd.host.drop_fs(dev, mnt)
    assert lvssd.stop() == 0, lvssd.log()
    lvssd.start()
    assert (lvssd.state / "backup-history").is_file()
    dev = lvssd.host.attach(lvssd.volume_path("data"))
    lvssd.host.mount(dev, mnt)
    states["inc2"] = states["inc1"]
    res = backup(lvssd, out / "inc2", "--type", "incremental", target=mnt)
    assert res["base"] == ids["inc1"], res
    ids["inc2"] = res["id"]
    restores_exactly(lvssd, out, states)

    # A base directory deleted by hand is skipped: the one before it is taken.
    shutil.rmtree(out / "inc2")
    res = backup(lvssd, out / "inc3", "--type", "incremental", target=mnt)
    assert res["base"] == ids["inc1"], res
    states["inc3"] = states["inc1"]
    restores_exactly(lvssd, out, {"inc3": states["inc3"]})
    shutil.rmtree(out / "full")
    err = lvssd.fails(d.EXIT_NOT_FOUND, "backup", "--to", out / "diff", "--type", "differential", mnt)
    assert "no earlier full backup of data is known to lvssd: make a full backup first, or give " \
           "--base DIR" in err, err
    assert not (out / "diff").exists() and lvssd.shadows() == []

    # A damaged history file is moved aside, and lvssd starts with an empty history.
    lvssd.host.drop_fs(dev, mnt)
    assert lvssd.stop() == 0, lvssd.log()
    (lvssd.state / "backup-history").write_bytes(b"lvss-backup-history 1\nbackup ../x\n")
    lvssd.start()
    dev = lvssd.host.attach(lvssd.volume_path("data"))
    lvssd.host.mount(dev, mnt)
    assert (lvssd.state / "backup-history.damaged").read_bytes().startswith(b"lvss-backup-history 1")
    assert "backup-history" in lvssd.log()
    lvssd.fails(d.EXIT_NOT_FOUND, "backup", "--to", out / "inc4", "--type", "incremental", mnt)
    # A copy does not enter the history; a full does.
    backup(lvssd, out / "copy", "--type", "copy", target=mnt)
    lvssd.fails(d.EXIT_NOT_FOUND, "backup", "--to", out / "inc4", "--type", "incremental", mnt)
    full2 = backup(lvssd, out / "full2", target=mnt)
    assert backup(lvssd, out / "inc4", "--type", "incremental", target=mnt)["base"] == full2["id"]


def test_backup_of_a_volume_named_not_mounted_by_path(lvssd, tree):
    # A target given by volume name: its mount point is not recorded, so a restore needs --to.
    (tree / "f").write_bytes(b"by name\n")
    sync(tree)
    out = lvssd.root / "byname"
    res = backup(lvssd, out, target="data")
    assert res["targets"] == ["data"]
    err = lvssd.fails(d.EXIT_USAGE, "restore", out)
    assert "--to" in err
    lvssd.ok("restore", out, "--to", lvssd.root / "r")
    assert (lvssd.root / "r" / "data" / "f").read_bytes() == b"by name\n"


def test_volumes_of_the_selected_components_are_added(lvssd, tree):
    # A writer's component has its files on two volumes (a database and its log, say): a backup
    # naming only the first covers the second too, at the same point in time.
    import test_lvssd_writers as tw

    lvssd.create_volume("wal", "64M")
    _, wal = lvssd.host.new_fs(lvssd.volume_path("wal"), "ext4", lvssd.root / "wal")
    (tree / "db").mkdir()
    (tree / "db" / "main").write_bytes(b"pages\n")
    (wal / "log").write_bytes(b"records\n")
    sync(tree)
    sync(wal)
    w = tw.Writers(lvssd)
    try:
        w.start("pg", paths=[tree / "db", wal])
        out = lvssd.root / "b"
        res = backup(lvssd, out, target=tree)
        assert sorted(res["targets"]) == ["data", "wal"], res
        assert sorted(res["components"]) == ["pg/Paths/0", "pg/Paths/1"], res
        lvssd.ok("restore", out, "--to", lvssd.root / "r")
        assert (lvssd.root / "r" / "data" / "db" / "main").read_bytes() == b"pages\n"
        assert (lvssd.root / "r" / "wal" / "log").read_bytes() == b"records\n"
        # With --component naming only the first path, only its volume is backed up.
        res = backup(lvssd, lvssd.root / "b2", "--component", "pg/Paths/0", target=tree)
        assert res["targets"] == ["data"] and res["components"] == ["pg/Paths/0"], res
        assert lvssd.shadows() == []
    finally:
        w.stop_all()


def test_restore_in_place(lvssd, tree):
    # Without --to, a tree goes back where it was backed up from (its mount point, recorded):
    # changes since are undone, files made since removed, files deleted since brought back.
    rng = random.Random(11)
    make_tree(tree, rng, n=15)
    sync(tree)
    want = digest(tree)
    out = lvssd.root / "b"
    backup(lvssd, out, target=tree)
    change_tree(tree, rng)
    (tree / "made-later").write_bytes(b"x")
    sync(tree)
    assert digest(tree) != want
    lvssd.ok("restore", out)
    assert digest(tree) == want
    assert not (tree / ".lvss-restore-incomplete").exists()


def test_backup_and_restore_paths_never_follow_a_planted_link(lvssd, tree):
    """--to given as a symlink (to an empty directory elsewhere) is refused, writing nothing there; a
    non-empty --to is refused, its files untouched; an image restore whose --to DIR/VOLUME.img is a
    planted symlink does not write through it."""
    (tree / "f").write_bytes(b"data\n")
    sync(tree)
    elsewhere = lvssd.root / "elsewhere"
    elsewhere.mkdir()
    link = lvssd.root / "link"
    link.symlink_to(elsewhere)
    lvssd.fails(d.EXIT_FAILED, "backup", "--to", link, tree)
    assert list(elsewhere.iterdir()) == [] and link.is_symlink()
    assert lvssd.shadows() == []

    out = lvssd.root / "img"
    lvssd.ok("backup", "--image", "--to", out, tree)
    victim = lvssd.root / "victim"
    victim.write_bytes(b"not yours\n")
    dest = lvssd.root / "dest"
    dest.mkdir()
    (dest / "data.img").symlink_to(victim)
    err = lvssd.fails(d.EXIT_FAILED, "restore", out, "--to", dest)
    assert "data.img" in err, err
    assert victim.read_bytes() == b"not yours\n"
