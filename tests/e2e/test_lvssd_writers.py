# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The writer protocol (docs/dbus-api.md, "Writers"), end to end: real lvssd, real writers built
# on liblvss (tests/writers/lvss-test-writer.c, told how to misbehave with --on EVENT=ACTION), a
# raw D-Bus writer spoken by hand for garbage, and an ext4 volume frozen for real. Each test
# asserts on what lvss answers (exit codes, JSON), on the events each writer saw and in which
# order (the writers' shared log), and that nothing stays frozen or half made.

import json
import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import daemon as d

SIZE = "64M"


def writer_bin():
    path = os.environ.get("LVSS_TEST_WRITER")
    if not path and os.environ.get("LVSS_PREFIX"):
        path = os.path.join(os.environ["LVSS_PREFIX"], "libexec", "lvss", "lvss-test-writer")
    if not path or not os.path.exists(path):
        pytest.skip("lvss-test-writer not found: set LVSS_TEST_WRITER or LVSS_PREFIX")
    return path


def writable(mountpoint, name="probe"):
    proc = subprocess.run(["sh", "-c", f"echo x > '{mountpoint}/{name}' && sync -f '{mountpoint}'"],
                          capture_output=True, timeout=20)
    return proc.returncode == 0


class Writers:
    """lvss-test-writer processes of one test, all logging to one file; killed by PID at the end."""

    def __init__(self, lvssd):
        self.lvssd = lvssd
        self.bin = writer_bin()
        self.log = lvssd.root / "writers.log"
        self.procs = {}

    def start(self, name, *args, paths=(), level=None, freeze_timeout=None, on=(), expect_ok=True):
        ready = self.lvssd.root / f"ready-{name}"
        ready.unlink(missing_ok=True)
        argv = [self.bin, "--socket", str(self.lvssd.socket), "--name", name, "--log", str(self.log),
                "--ready-file", str(ready)]
        if level:
            argv += ["--level", level]
        if freeze_timeout:
            argv += ["--freeze-timeout", str(freeze_timeout)]
        for p in paths:
            argv += ["--path", str(p)]
        for o in on:
            argv += ["--on", o]
        argv += list(args)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs[name] = proc
        if not expect_ok:
            return proc
        deadline = time.monotonic() + 10
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(f"writer {name} exited {proc.returncode}: {proc.stderr.read()}")
            assert time.monotonic() < deadline, f"writer {name} did not register"
            time.sleep(0.02)
        return proc

    def events(self):
        """[(name, event)] in the order the writers saw them."""
        if not self.log.exists():
            return []
        rows = []
        for line in self.log.read_text().splitlines():
            ns, name, event = line.split()[:3]
            rows.append((int(ns), name, event))
        rows.sort()
        return [(n, e) for _, n, e in rows]

    def events_of(self, name):
        return [e for n, e in self.events() if n == name]

    def wait_last(self, name, event, timeout=10):
        """Waits until NAME's last event is EVENT (lvssd answers the requester before the
        writers have answered Abort); returns NAME's events."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.events_of(name)
            if (ev and ev[-1] == event) or time.monotonic() > deadline:
                return ev
            time.sleep(0.02)

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def writers(lvssd):
    w = Writers(lvssd)
    yield w
    w.stop_all()


def ext4_volume(lvssd, name="a"):
    lvssd.create_volume(name, SIZE)
    _, mnt = lvssd.host.new_fs(lvssd.volume_path(name), "ext4", lvssd.root / f"mnt-{name}")
    (mnt / "data").mkdir()
    (mnt / "data" / "before").write_bytes(b"before the set\n")
    return mnt


def listed(lvssd):
    return {w["name"]: w for w in lvssd.json("list", "writers")}


def assert_nothing_made(lvssd, mnt):
    assert lvssd.shadows() == []
    assert lvssd.json("list", "sets") == []
    assert writable(mnt)
    assert (mnt / "data" / "before").read_bytes() == b"before the set\n"


# ---- registration, listing, metadata ----------------------------------------------------------


def test_register_list_metadata_and_unregister(lvssd, writers):
    mnt = ext4_volume(lvssd)
    w = writers.start("db1", paths=[mnt / "data"], level="back-end")
    got = listed(lvssd)
    assert set(got) == {"db1"}
    assert got["db1"]["level"] == "back-end"
    assert got["db1"]["state"] == "stable"
    assert got["db1"]["failure"] is None
    assert len(got["db1"]["instance_id"]) == 36

    xml = lvssd.ok("writer", "metadata", "db1")
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>'), xml
    assert 'name="db1"' in xml and f'path="{mnt / "data"}"' in xml, xml
    assert lvssd.json("writer", "metadata", "db1")["metadata"] == xml
    assert "no writer nope" in lvssd.fails(d.EXIT_NOT_FOUND, "writer", "metadata", "nope").lower()

    # One name, one writer.
    dup = writers.start("db1", expect_ok=False)
    assert dup.wait(timeout=10) == 1
    assert "exists" in dup.stderr.read().lower()

    # A writer is gone when its connection is.
    w.send_signal(signal.SIGKILL)
    w.wait()
    deadline = time.monotonic() + 5
    while listed(lvssd) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listed(lvssd) == {}
    assert "No writers." in lvssd.ok("list", "writers")


# ---- the sequence ----------------------------------------------------------------------------


def test_events_in_vss_order_with_levels(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"], level="front-end")
    writers.start("db", paths=[mnt / "data"], level="back-end")
    writers.start("sys", level="system")
    res = lvssd.create_set(mnt)
    assert len(res["shadows"]) == 1
    by_name = {w["name"]: w for w in res["writers"]}
    assert set(by_name) == {"app", "db", "sys"}
    assert all(w["state"] == "stable" and w["failure"] is None for w in by_name.values()), by_name

    ev = writers.events()
    # (Identify is answered by liblvss itself, from the metadata: no callback, no log line.)
    seq = ["prepare-for-backup", "prepare-for-snapshot", "freeze", "thaw", "post-snapshot"]
    for name in ("app", "db", "sys"):
        assert writers.events_of(name) == seq, (name, writers.log.read_text())
    pos = {(n, e): i for i, (n, e) in enumerate(ev)}
    # Every writer is prepared before any freezes.
    assert max(pos[(n, "prepare-for-snapshot")] for n in by_name) < min(pos[(n, "freeze")] for n in by_name)
    # Freeze front-end, back-end, system; thaw the other way round; post-snapshot after all thaws.
    assert pos[("app", "freeze")] < pos[("db", "freeze")] < pos[("sys", "freeze")]
    assert pos[("sys", "thaw")] < pos[("db", "thaw")] < pos[("app", "thaw")]
    assert max(pos[(n, "thaw")] for n in by_name) < min(pos[(n, "post-snapshot")] for n in by_name)
    assert {w["state"] for w in listed(lvssd).values()} == {"stable"}


def test_no_writers_and_contexts_without_writers(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"], on=["freeze=veto"])
    # The writer would veto; left out, it is not asked at all.
    res = lvssd.create_set(mnt, "--no-writers")
    assert res["writers"] == []
    res = lvssd.create_set(mnt, context="nas-rollback")
    assert res["writers"] == []
    assert writers.events_of("app") == []
    assert "--no-writers" in lvssd.fails(d.EXIT_USAGE, "create", "--no-writers", "--writer", "app", mnt)


def test_backup_metadata_comes_back_with_the_set(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("db", paths=[mnt / "data"], on=["post-snapshot=metadata:Paths/0=label 42"])
    res = lvssd.create_set(mnt)
    (w,) = res["writers"]
    assert w["backup_metadata"] == {"Paths/0": "label 42"}, w


# ---- failures: veto, deadlines, crashes, disconnects --------------------------------------------


def test_veto_at_freeze_aborts_and_discards(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"], level="front-end")
    writers.start("db", paths=[mnt / "data"], level="back-end", on=["freeze=veto"])
    err = lvssd.fails(d.EXIT_WRITER, "create", mnt)
    assert "Writer db vetoed at Freeze" in err, err
    assert_nothing_made(lvssd, mnt)
    got = listed(lvssd)
    assert got["db"]["state"] == "failed-at-freeze"
    assert got["db"]["failure"] == "non-retryable"
    assert got["app"]["state"] == "stable"
    # app was frozen first, so it is thawed by Abort; no Thaw, no PostSnapshot for anyone.
    assert writers.wait_last("app", "abort") == ["prepare-for-backup", "prepare-for-snapshot", "freeze",
                                                 "abort"]
    assert writers.wait_last("db", "abort")[-2:] == ["freeze", "abort"]
    # The next set without the veto works.
    writers.procs["db"].send_signal(signal.SIGTERM)
    writers.procs["db"].wait(timeout=10)
    assert len(lvssd.create_set(mnt)["shadows"]) == 1


def test_failure_of_a_writer_that_does_not_count(lvssd, writers):
    mnt = ext4_volume(lvssd)
    other = lvssd.root / "elsewhere"
    other.mkdir()
    # No component on the set's volume: its veto is reported, the set is made.
    writers.start("stranger", paths=[other], on=["freeze=veto"])
    # Excluded: the same.
    writers.start("excluded", paths=[mnt / "data"], on=["prepare-for-snapshot=retryable"])
    res = lvssd.create_set(mnt, "--exclude-writer", "excluded")
    assert len(res["shadows"]) == 1
    by_name = {w["name"]: w for w in res["writers"]}
    assert by_name["stranger"]["state"] == "failed-at-freeze"
    assert by_name["excluded"]["state"] == "failed-at-prepare-snapshot"
    assert by_name["excluded"]["failure"] == "retryable"
    # Both failed without failing the set, and are told Abort (one that froze late must thaw).
    assert writers.wait_last("stranger", "abort")[-2:] == ["freeze", "abort"]
    assert writers.wait_last("excluded", "abort")[-2:] == ["prepare-for-snapshot", "abort"]
    # Required, the stranger's veto fails the set; an unknown required writer is refused first.
    err = lvssd.fails(d.EXIT_WRITER, "create", "--writer", "stranger", mnt)
    assert "stranger" in err
    err = lvssd.run("create", "--writer", "ghost", mnt)
    assert err.code == d.EXIT_USAGE and "No writer ghost is registered" in err.err, err
    assert len(lvssd.shadows()) == 1


def test_hang_at_freeze_fails_within_the_deadline(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"], level="front-end")
    writers.start("stuck", paths=[mnt / "data"], level="back-end", freeze_timeout=1500, on=["freeze=hang"])
    t0 = time.monotonic()
    res = lvssd.run("create", mnt)
    took = time.monotonic() - t0
    assert res.code in (d.EXIT_WRITER, d.EXIT_TIMEOUT), res
    assert res.code == d.EXIT_TIMEOUT
    assert "did not answer Freeze within 1500 ms" in res.err, res
    assert took < 1.5 + 3.0, took
    assert_nothing_made(lvssd, mnt)
    assert listed(lvssd)["stuck"]["state"] == "failed-at-freeze"
    assert listed(lvssd)["stuck"]["failure"] == "timeout"
    assert writers.wait_last("app", "abort")[-1] == "abort"


def test_hang_at_prepare_is_bounded_by_the_writer_timeout(lvssd_stopped):
    lvssd = lvssd_stopped.start(extra=["--writer-timeout", "1000"])
    w = Writers(lvssd)
    try:
        mnt = ext4_volume(lvssd)
        w.start("slow", paths=[mnt / "data"], on=["prepare-for-snapshot=hang"])
        t0 = time.monotonic()
        lvssd.fails(d.EXIT_TIMEOUT, "create", mnt)
        assert time.monotonic() - t0 < 1.0 + 3.0
        assert_nothing_made(lvssd, mnt)
        # lvssd answers the others meanwhile and after.
        assert listed(lvssd)["slow"]["state"] == "failed-at-prepare-snapshot"
    finally:
        w.stop_all()


def test_writer_crash_mid_freeze(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"])
    writers.start("crashy", paths=[mnt / "data"], level="back-end", on=["freeze=crash"])
    err = lvssd.fails(d.EXIT_WRITER, "create", mnt)
    assert "crashy disconnected during Freeze" in err, err
    assert_nothing_made(lvssd, mnt)
    assert writers.procs["crashy"].wait(timeout=10) != 0
    assert "crashy" not in listed(lvssd)
    assert writers.wait_last("app", "abort")[-1] == "abort"
    assert lvssd.alive()


@pytest.mark.parametrize("event,name", [("prepare-for-backup", "PrepareForBackup"),
                                        ("prepare-for-snapshot", "PrepareForSnapshot"), ("freeze", "Freeze"),
                                        ("thaw", "Thaw"), ("post-snapshot", "PostSnapshot")])
def test_writer_crash_at_each_event(lvssd, writers, event, name):
    """A writer that crashes (abort()) at any event of the set fails it (exit 4), nothing is made or
    left frozen, and the other writer is told Abort."""
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"])
    writers.start("crashy", paths=[mnt / "data"], on=[f"{event}=crash"])
    err = lvssd.fails(d.EXIT_WRITER, "create", mnt)
    assert f"crashy disconnected during {name}" in err, err
    assert_nothing_made(lvssd, mnt)
    assert writers.procs["crashy"].wait(timeout=10) != 0
    assert writers.wait_last("app", "abort")[-1] == "abort"
    (mnt / "data" / "after").write_bytes(b"writable\n")
    assert lvssd.alive()


def test_writer_disconnect_at_thaw_discards_the_shadows(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("quitter", paths=[mnt / "data"], on=["thaw=exit"])
    err = lvssd.fails(d.EXIT_WRITER, "create", mnt)
    assert "quitter disconnected during Thaw" in err, err
    # The snapshots were made, then discarded: no shadow, no set, nothing in the diff area's count.
    assert_nothing_made(lvssd, mnt)
    assert lvssd.volumes()["a"]["shadows"] == 0


def test_freeze_window_shorter_than_the_set(lvssd_stopped, monkeypatch):
    # The hold lasts 1.2 s; the writer may stay frozen only 300 ms: liblvss thaws it by itself
    # (an abort event in its log that lvssd did not send), and the set is not taken as consistent.
    monkeypatch.setenv("LVSS_TEST_HOLD_DELAY_MS", "1200")
    lvssd = lvssd_stopped.start()
    w = Writers(lvssd)
    try:
        mnt = ext4_volume(lvssd)
        w.start("brief", paths=[mnt / "data"], freeze_timeout=300)
        err = lvssd.fails(d.EXIT_TIMEOUT, "create", mnt)
        assert "window of 300 ms closed" in err or "ran out of time at Thaw" in err, err
        assert_nothing_made(lvssd, mnt)
        ev = w.events_of("brief")
        assert ev[:3] == ["prepare-for-backup", "prepare-for-snapshot", "freeze"], ev
        # The library's own abort, before any Thaw (the tool logs the callback, then "auto-abort").
        assert ev[3:5] == ["abort", "auto-abort"], ev
        assert "thaw" not in ev, ev
        assert listed(lvssd)["brief"]["failure"] == "timeout"
    finally:
        w.stop_all()


def test_twenty_writers(lvssd, writers):
    mnt = ext4_volume(lvssd)
    levels = ["front-end", "back-end", "system"]
    for i in range(20):
        writers.start(f"w{i:02d}", paths=[mnt / "data"], level=levels[i % 3])
    assert len(listed(lvssd)) == 20
    t0 = time.monotonic()
    res = lvssd.create_set(mnt)
    took = time.monotonic() - t0
    assert len(res["writers"]) == 20
    assert {w["state"] for w in res["writers"]} == {"stable"}
    ev = writers.events()
    freezes = [n for n, e in ev if e == "freeze"]
    assert len(freezes) == 20
    # All front-end freezes before any back-end one, all back-end before any system one.
    lv = [levels[int(n[1:]) % 3] for n in freezes]
    assert lv == sorted(lv, key=levels.index), lv
    assert took < 30, took
    # One of twenty vetoes: the set fails and all twenty are told Abort.
    writers.procs["w07"].send_signal(signal.SIGKILL)
    writers.procs["w07"].wait()
    writers.start("w07", paths=[mnt / "data"], level=levels[7 % 3], on=["freeze=veto"])
    lvssd.fails(d.EXIT_WRITER, "create", mnt)
    for i in range(20):
        assert writers.wait_last(f"w{i:02d}", "abort")[-1] == "abort"
    assert len(lvssd.shadows()) == 1


def test_sigterm_of_lvssd_while_a_writer_hangs(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("app", paths=[mnt / "data"])
    writers.start("stuck", paths=[mnt / "data"], level="back-end", on=["freeze=hang"])
    out = {}
    t = threading.Thread(target=lambda: out.update(res=lvssd.run("create", mnt)))
    t.start()
    deadline = time.monotonic() + 10
    while ("stuck", "freeze") not in writers.events() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ("stuck", "freeze") in writers.events()
    t0 = time.monotonic()
    lvssd.proc.send_signal(signal.SIGTERM)
    lvssd.proc.wait(timeout=20)
    assert time.monotonic() - t0 < 10
    assert lvssd.proc.returncode == 0, lvssd.log()
    t.join(timeout=30)
    assert out["res"].code != 0
    # app, frozen, was thawed: by lvssd's Abort or by liblvss when the connection closed.
    assert writers.wait_last("app", "abort")[-1] == "abort"


# ---- garbage from a writer ------------------------------------------------------------------------


def _sv(key, value):
    """One dict entry {sv} with a string value, at an 8-aligned offset."""
    b = bytearray()
    d.dbus_marshal("s", [key], b)
    b += b"\x01s\x00"
    d._pad(b, 4)
    b += struct.pack("<I", len(value)) + value.encode() + b"\0"
    return b


def raw_register(bus, name, class_id="0e1d2c3b-4a59-4877-8695-a4b3c2d1e0f0"):
    entries = bytearray()
    for k, v in (("Name", name), ("ClassId", class_id)):
        d._pad(entries, 8)
        entries += _sv(k, v)
    body = struct.pack("<I", len(entries)) + b"\0" * 4 + bytes(entries)
    bus.send(d.dbus_message(1, "RegisterWriter", "a{sv}", body))
    while True:
        mtype, serial, reply, error, payload = bus.recv()
        if reply == 1:
            assert error is None, error
            return


def raw_reply(bus, serial, sig, body, error=None):
    """A method return (or error) to SERIAL, by hand."""
    h = bytearray(b"l" + bytes([3 if error else 2, 0, 1]))
    h += struct.pack("<II", len(body), 1000 + serial)
    h += b"\0\0\0\0"
    fields = [(5, "u", serial)] + ([(4, "s", error)] if error else []) + ([(8, "g", sig)] if sig else [])
    for code, t, v in fields:
        d._pad(h, 8)
        h += bytes([code, 1]) + t.encode() + b"\0"
        d.dbus_marshal(t, [v], h)
    struct.pack_into("<I", h, 12, len(h) - 16)
    d._pad(h, 8)
    bus.send(bytes(h) + body)


def raw_writer(path, name, answer, stop):
    """A writer by hand: registers, then answers each call with ANSWER(serial, member) until STOP."""
    bus = d.RawBus(path, timeout=0.2)
    bus.auth()
    raw_register(bus, name)
    while not stop.is_set():
        try:
            mtype, serial, _, _, _ = bus.recv()
        except TimeoutError:
            continue
        except (EOFError, OSError):
            break
        if mtype == 1:
            try:
                answer(bus, serial)
            except OSError:
                break
    bus.close()


@pytest.mark.parametrize("kind", ["wrong-signature", "bad-xml", "unknown-error", "utf8-cut", "bytes"])
def test_garbage_from_a_writer(lvssd, writers, kind):
    mnt = ext4_volume(lvssd)
    writers.start("good", paths=[mnt / "data"])

    def answer(bus, serial):
        if kind == "wrong-signature":
            raw_reply(bus, serial, "u", struct.pack("<I", 7))
        elif kind == "bad-xml":
            raw_reply(bus, serial, "s", bytes(d.dbus_marshal("s", ["<writer-metadata><oops"])))
        elif kind == "unknown-error":
            raw_reply(bus, serial, "s", bytes(d.dbus_marshal("s", ["\x1b[31mred"])), error="x.y.Z")
        elif kind == "utf8-cut":
            # A long message in UTF-8: lvssd shortens it, never in the middle of a character
            # (sd-bus would refuse to send the answers that carry it).
            raw_reply(bus, serial, "s", bytes(d.dbus_marshal("s", ["x" * 157 + "é" * 40])),
                      error="org.lvss.Writer.Error.Veto")
        else:
            bus.send(os.urandom(4096))

    stop = threading.Event()
    t = threading.Thread(target=raw_writer, args=(lvssd.socket, "raw", answer, stop), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        if kind == "bytes":
            # lvssd asks for its metadata at registration; the answer is garbage on the wire: the
            # connection is dropped, and with it the writer.
            while t.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not t.is_alive()
            assert "raw" not in listed(lvssd)
        else:
            while "raw" not in listed(lvssd) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert "raw" in listed(lvssd)
        # Not required and without components: reported, the set is made.
        res = lvssd.create_set(mnt)
        by_name = {w["name"]: w for w in res["writers"]}
        assert by_name["good"]["state"] == "stable"
        if kind == "bytes":
            assert "raw" not in by_name or by_name["raw"]["state"] == "failed-at-identify"
        else:
            assert by_name["raw"]["state"] == "failed-at-identify", by_name
            assert "\x1b" not in by_name["raw"]["error"]
            # Required, it fails the set.
            err = lvssd.fails(d.EXIT_WRITER, "create", "--writer", "raw", mnt, timeout=30)
            assert "raw" in err
            if kind == "utf8-cut":
                assert "é" in err and "x" * 100 in err, err
                assert listed(lvssd)["raw"]["state"] == "failed-at-identify"
        assert lvssd.alive()
        assert len(lvssd.shadows()) == 1
        assert writable(mnt)
    finally:
        stop.set()
        t.join(timeout=5)


def test_example_writer_from_the_docs_runs(lvssd):
    path = os.environ.get("LVSS_EXAMPLE_WRITER")
    if not path and os.environ.get("LVSS_PREFIX"):
        path = os.path.join(os.environ["LVSS_PREFIX"], "libexec", "lvss", "lvss-example-writer")
    if not path or not os.path.exists(path):
        pytest.skip("lvss-example-writer not found")
    mnt = ext4_volume(lvssd)
    proc = subprocess.Popen([path, "--socket", str(lvssd.socket), str(mnt / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while "example" not in " ".join(listed(lvssd)) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        res = lvssd.create_set(mnt)
        assert len(res["writers"]) == 1 and res["writers"][0]["state"] == "stable", res
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = proc.stdout.read()
    assert "freeze" in out.lower() and "thaw" in out.lower(), out


def test_flooding_writer_cannot_stall_a_set(lvssd_stopped):
    # A writer that registers, never answers an event, and floods lvssd with calls as fast as it
    # can: a set with another writer still completes, the flooder failing at its deadline.
    lvssd = lvssd_stopped.start(extra=["--writer-timeout", "1500"])
    w = Writers(lvssd)
    stop = threading.Event()
    sent = {"n": 0}

    def flood():
        bus = d.RawBus(lvssd.socket, timeout=0.5)
        bus.auth()
        raw_register(bus, "flood")

        def drain():
            while not stop.is_set():
                try:
                    bus.recv()
                except TimeoutError:
                    continue
                except (EOFError, OSError):
                    return

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        serial = 2
        while not stop.is_set():
            msg = d.dbus_message(serial, "ListWriters")
            try:
                bus.send(msg * 50)  # the same serial 50 times: lvssd answers each anyway
            except OSError:
                break
            sent["n"] += 50
            serial += 1
        reader.join(timeout=5)
        bus.close()

    t = threading.Thread(target=flood, daemon=True)
    try:
        mnt = ext4_volume(lvssd)
        w.start("good", paths=[mnt / "data"])
        t.start()
        deadline = time.monotonic() + 5
        while sent["n"] < 5000 and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        res = lvssd.create_set(mnt)
        took = time.monotonic() - t0
        by_name = {x["name"]: x for x in res["writers"]}
        assert by_name["good"]["state"] == "stable"
        assert by_name["flood"]["state"] == "failed-at-identify"
        assert by_name["flood"]["failure"] == "timeout"
        assert took < 1.5 + 6, took
        assert sent["n"] > 5000
    finally:
        stop.set()
        t.join(timeout=10)
        w.stop_all()


WMD = """<?xml version="1.0" encoding="UTF-8"?>
<writer-metadata xmlns="urn:lvss:wmd:1" version="1">
  <identity name="{name}" class-id="0e1d2c3b-4a59-4877-8695-a4b3c2d1e0f0"
    instance-id="11111111-2222-4333-8444-555555555555" usage="user-data" source="other"/>
  <component type="file-group" logical-path="Paths" name="0" selectable-backup="true"
    selectable-restore="true">
    <files path="{path}" filespec="*" recursive="true" backup-types="full"/>
  </component>
</writer-metadata>
"""


def test_identify_failure_of_a_writer_with_data_on_the_set_counts(lvssd_stopped):
    # The writer gives its metadata at registration (a component on the volume), then fails the
    # set's own Identify: its data is on the set, so the set fails rather than go on without it.
    lvssd = lvssd_stopped.start(extra=["--writer-timeout", "1000"])
    mnt = ext4_volume(lvssd)
    calls = {"n": 0}

    def answer(bus, serial):
        calls["n"] += 1
        if calls["n"] == 1:
            raw_reply(bus, serial, "s", bytes(d.dbus_marshal("s", [WMD.format(name="raw", path=mnt / "data")])))
        # later: no answer at all

    stop = threading.Event()
    t = threading.Thread(target=raw_writer, args=(lvssd.socket, "raw", answer, stop), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while calls["n"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        xml = lvssd.run("writer", "metadata", "raw")
        assert xml.code == d.EXIT_TIMEOUT, xml  # it answers nothing now
        err = lvssd.fails(d.EXIT_TIMEOUT, "create", mnt)
        assert "raw did not answer Identify" in err, err
        assert lvssd.shadows() == []
        # Without data on the set (another volume), the same failure is only reported.
        lvssd.create_volume("b", SIZE)
        res = lvssd.create_set("b")
        assert {w["name"]: w["state"] for w in res["writers"]} == {"raw": "failed-at-identify"}
    finally:
        stop.set()
        t.join(timeout=5)


def test_a_late_abort_answer_does_not_touch_the_next_set(lvssd_stopped):
    lvssd = lvssd_stopped.start(extra=["--writer-timeout", "1000"])
    w = Writers(lvssd)
    try:
        mnt = ext4_volume(lvssd)
        w.start("slowabort", paths=[mnt / "data"], on=["abort=sleep:1300"])
        w.start("veto", paths=[mnt / "data"], level="back-end", on=["freeze=veto"])
        lvssd.fails(d.EXIT_WRITER, "create", mnt)
        w.procs["veto"].send_signal(signal.SIGTERM)
        w.procs["veto"].wait(timeout=10)
        # slowabort is still in the first set's Abort (1.3 s, past lvssd's 1 s deadline) when the
        # next set starts: the next set fails on its own Identify, which slowabort cannot answer
        # in time (its data is on the set), not on the first set's Abort.
        err = lvssd.fails(d.EXIT_TIMEOUT, "create", mnt)
        assert "did not answer Identify" in err and "Abort" not in err, err
        # Once it is free, a set goes through.
        time.sleep(1.5)
        res = lvssd.create_set(mnt)
        assert {x["name"]: x["state"] for x in res["writers"]} == {"slowabort": "stable"}
        assert w.events_of("slowabort")[-1] == "post-snapshot"
        assert len(lvssd.shadows()) == 1
    finally:
        w.stop_all()


def test_shadows_are_pending_until_the_writers_are_done(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("slowpost", paths=[mnt / "data"], on=["post-snapshot=sleep:2500"])
    out = {}
    t = threading.Thread(target=lambda: out.update(res=lvssd.run("--json", "create", mnt)))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while ("slowpost", "post-snapshot") not in writers.events() and time.monotonic() < deadline:
            time.sleep(0.02)
        (sh,) = lvssd.shadows()
        assert sh["state"] == "pending"
        (lvssd.root / "exp").mkdir()
        err = lvssd.fails(d.EXIT_FAILED, "expose", sh["id"], lvssd.root / "exp")
        assert "still being made" in err, err
        lvssd.fails(d.EXIT_FAILED, "delete", sh["id"])
    finally:
        t.join(timeout=30)
    assert out["res"].code == 0, out["res"]
    (sh,) = lvssd.shadows()
    assert sh["state"] == "created"


# ---- events outside a set: CompleteBackup, PreRestore, PostRestore (lvss backup/restore's) -------


def busctl(lvssd, method, sig, *args):
    """Calls Manager1.METHOD over lvssd's socket with busctl; (exit code, parsed JSON or stderr)."""
    proc = subprocess.run(["busctl", f"--address=unix:path={lvssd.socket}", "--json=short", "call", "org.lvss",
                           "/org/lvss", "org.lvss.Manager1", method, sig, *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return proc.returncode, proc.stderr
    return 0, json.loads(proc.stdout)["data"]


def test_complete_backup_and_restore_events(lvssd, writers):
    mnt = ext4_volume(lvssd)
    writers.start("db", paths=[mnt / "data"], on=["backup-complete=metadata:Paths/0=done"])
    writers.start("picky", paths=[mnt / "data"], level="back-end", on=["backup-complete=retryable"])
    s = lvssd.create_set(mnt)["set"]

    code, data = busctl(lvssd, "CompleteBackup", "sb", s, "true")
    assert code == 0, data
    got = {row[0]: row for row in data[0]}
    assert got["db"][1:4] == ["stable", "", ""] and got["db"][4] == {"Paths/0": "done"}, got
    assert got["picky"][1:3] == ["failed-at-backup-complete", "retryable"], got
    assert writers.wait_last("db", "backup-shutdown")[-2:] == ["backup-complete", "backup-shutdown"]
    # BackupShutdown goes to every writer, the one that failed BackupComplete too.
    assert writers.wait_last("picky", "backup-shutdown")[-2:] == ["backup-complete", "backup-shutdown"]
    assert listed(lvssd)["picky"]["state"] == "failed-at-backup-complete"

    # A backup that failed: BackupShutdown only.
    code, data = busctl(lvssd, "CompleteBackup", "sb", s, "false")
    assert code == 0, data
    assert writers.events_of("db")[-3:] == ["backup-complete", "backup-shutdown", "backup-shutdown"]
    code, err = busctl(lvssd, "CompleteBackup", "sb", "0badc0de-0000-4000-8000-000000000000", "true")
    assert code != 0 and "no shadow copy set" in err, err

    # A restore gives the writer its components and the backup metadata kept for them.
    code, data = busctl(lvssd, "PreRestore", "sasa{ss}", "db", 1, "Paths/0", 1, "Paths/0", "label 42")
    assert code == 0, data
    assert data[0][0][:2] == ["db", "stable"], data
    code, data = busctl(lvssd, "PostRestore", "sasa{ss}", "db", 1, "Paths/0", 0)
    assert code == 0, data
    rows = [line.split() for line in writers.log.read_text().splitlines() if line.split()[1] == "db"]
    assert [r[2:5] for r in rows[-4:]] == [["pre-restore", rows[-4][3]], ["component", "Paths/0", "label_42"],
                                           ["post-restore", rows[-2][3]], ["component", "Paths/0", "-"]], rows[-4:]
    # A restore is not a set: each of its events carries a new id of its own.
    assert len(rows[-4][3]) == 36 and rows[-4][3] != s, rows[-4]
    code, err = busctl(lvssd, "PreRestore", "sasa{ss}", "ghost", 0, 0)
    assert code != 0 and "no writer ghost" in err.lower(), err


def test_auto_release_sets(lvssd_stopped):
    """AutoRelease: a set goes when its requester's connection closes; a persistent one that was not
    kept does not survive an lvssd crash (it never entered the catalog), one kept does; a release
    held up by an exposure in use is done once the exposure can go."""
    import dbus

    lvssd = lvssd_stopped.start()
    lvssd.create_volume("v", "16M")

    def connect():
        return dbus.connection.Connection(f"unix:path={lvssd.socket}")

    def create(conn, **opts):
        mgr = dbus.Interface(conn.get_object("org.lvss", "/org/lvss", introspect=False), "org.lvss.Manager1")
        options = dbus.Dictionary({k: dbus.Boolean(v) for k, v in opts.items()}, signature="sv")
        return str(mgr.CreateShadowSet(["v"], "backup", options, timeout=60)[0])

    def sets():
        return {s["id"] for s in lvssd.json("list", "sets")}

    def wait_gone(set_id, timeout=10):
        deadline = time.monotonic() + timeout
        while set_id in sets() and time.monotonic() < deadline:
            time.sleep(0.1)
        return set_id not in sets()

    # Non-persistent: gone with the connection.
    c = connect()
    s1 = create(c, AutoRelease=True)
    assert s1 in sets()
    c.close()
    assert wait_gone(s1)

    # Persistent, not kept, lvssd killed: the next start deletes it.
    c = connect()
    s2 = create(c, AutoRelease=True, Persistent=True)
    kept = connect()
    s3 = create(kept, AutoRelease=True, Persistent=True)
    dbus.Interface(kept.get_object("org.lvss", "/org/lvss", introspect=False),
                   "org.lvss.Manager1").KeepShadowSet(s3)
    lvssd.kill()
    c.close()
    kept.close()
    lvssd.start()
    assert s2 not in sets(), "an unkept AutoRelease set must not survive a crash"
    assert s3 in sets(), "a kept one must"

    # An exposure in use holds the release up; it finishes once the exposure can go.
    dev, mnt = lvssd.host.new_fs(lvssd.volume_path("v"), "ext4", lvssd.root / "mnt")
    c = connect()
    s4 = create(c, AutoRelease=True)
    [sh] = [s for s in lvssd.shadows() if s["set"] == s4]
    exp = lvssd.expose(sh["id"], lvssd.root / "exp")
    busy = os.open(str(exp), os.O_RDONLY)
    os.chdir(exp)
    try:
        c.close()
        time.sleep(1)
        assert s4 in sets(), "the release waits while the exposure is in use"
    finally:
        os.chdir("/")
        os.close(busy)
    assert wait_gone(s4), "the release must finish once the exposure is free"
    lvssd.host.untrack_mount(exp)
