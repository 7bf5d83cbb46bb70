# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Who may do what through lvssd's socket, and what it survives.
#
# - The socket is 0660 root:lvss. A user in no group cannot connect (exit 7);
#   in group lvss may read (list) but not change anything, through lvss or
#   by hand (busctl, a raw connection claiming to be root): AccessDenied and
#   nothing changed; in group lvss-admin may change, but not adopt images
#   and expose on directories that are theirs.
# - Garbage on the socket (random bytes, half handshakes, bad AUTH lines,
#   malformed or lying message headers, abortive closes), 50 connections of
#   it, and 300 connections held open at once: lvssd goes on serving, same
#   PID, and lvss never hangs.
# - Paths: names that climb out of the state directory, relative images,
#   images inside lvssd's own directories, exposing on a non-empty
#   directory (nothing mounted).
# - busctl sees the objects and the Manager1 interface.

import grp
import json
import os
import pwd
import random
import shutil
import socket
import stat
import struct
import subprocess
import time

import pytest

import daemon
from daemon import EXIT_ACCESS, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_USAGE, MiB


@pytest.fixture(scope="module")
def user(lvssd_bins):
    """A throw-away system user, removed at the end: (name, uid, gid)."""
    name = f"lvsstest-{random.randrange(16 ** 6):06x}"
    subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        yield name, pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        assert subprocess.run(["getent", "passwd", name], capture_output=True).returncode != 0


def as_user(user, *groups):
    name, _, gid = user
    return dict(user=name, group=gid, extra_groups=[grp.getgrnam(g).gr_gid for g in groups])


@pytest.fixture
def open_lvssd(lvssd_stopped, user):
    """A running lvssd whose socket other users can reach (the directories above it are 0755)."""
    d = lvssd_stopped
    os.chmod(d.root, 0o755)
    d.start()
    res = d.run("--help", user=as_user(user))
    if res.code != 0:
        pytest.skip(f"the installed lvss cannot be run by another user (chmod 755 its prefix): {res}")
    return d


def busctl(d, *args, user=None, timeout=20):
    return subprocess.run(["busctl", f"--address=unix:path={d.socket}", *args], capture_output=True,
                          text=True, timeout=timeout, **(user or {}))


def snapshot_state(d):
    """Everything a refused call must leave as it was."""
    return (d.json("list", "volumes"), sorted(d.shadow_ids()), d.json("list", "sets"),
            sorted(os.listdir(d.state / "volumes")), d.json("list", "storage"))


# ---- authorization --------------------------------------------------------------------------------


def test_socket_is_0660_root_lvss(lvssd):
    st = os.stat(lvssd.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_uid == 0
    assert st.st_gid == grp.getgrnam("lvss").gr_gid, f"socket group {st.st_gid}"


def test_user_in_no_group_cannot_connect(open_lvssd, user):
    d = open_lvssd
    d.create_volume("a", "1M")
    before = snapshot_state(d)
    for args in (("list", "volumes"), ("--json", "list", "shadows"), ("volume", "create", "b", "--size", "1M"),
                 ("delete", "--all")):
        err = d.fails(EXIT_ACCESS, *args, user=as_user(user))
        assert "may not" in err or "ermission" in err, err
        assert "group lvss" in err, err
    assert snapshot_state(d) == before


def test_group_lvss_reads_but_cannot_change(open_lvssd, user):
    d = open_lvssd
    d.create_volume("a", "16M")
    s = d.create_set("a", context="app-rollback")
    shadow = s["shadows"][0]["id"]
    reader = as_user(user, "lvss")
    before = snapshot_state(d)

    assert d.json("list", "volumes", user=reader) == before[0]
    assert {x["id"] for x in d.json("list", "shadows", user=reader)} == {shadow}
    assert d.json("list", "sets", user=reader) == before[2]
    assert d.json("list", "storage", user=reader) == before[4]
    assert [p["name"] for p in d.json("list", "providers", user=reader)] == ["cow"]
    assert d.ok("volume", "path", "a", user=reader).strip() == str(d.volume_path("a"))
    assert "a" in d.ok("list", "volumes", user=reader)

    mp = d.root / "expose-here"
    mp.mkdir()
    os.chown(mp, user[1], user[2])
    for args in (("volume", "create", "b", "--size", "1M"), ("create", "a"),
                 ("create", "--context", "app-rollback", "a"), ("delete", shadow), ("delete", "--all"),
                 ("delete", "--set", s["set"]), ("volume", "delete", "a", "--force"),
                 ("storage", "resize", "a", "--max", "1M"), ("revert", shadow, "--force"),
                 ("expose", shadow, mp)):
        err = d.fails(EXIT_ACCESS, *args, user=reader)
        assert "lvss-admin" in err, err
    assert snapshot_state(d) == before, "a reader changed lvssd's state"
    assert not daemon.is_mounted(mp)

    # The check is lvssd's, not the command's: by hand, the same answer.
    proc = busctl(d, "call", "org.lvss", "/org/lvss", "org.lvss.Manager1", "CreateVolume", "stus", "byhand",
                  str(MiB), "0", "", user=reader)
    assert proc.returncode != 0 and "may not change" in proc.stderr, proc
    proc = busctl(d, "call", "org.lvss", "/org/lvss", "org.lvss.Manager1", "DeleteAllShadows", user=reader)
    assert proc.returncode != 0, proc
    proc = busctl(d, "call", "org.lvss", "/org/lvss/volume/a", "org.lvss.Volume1", "Delete", "b", "true",
                  user=reader)
    assert proc.returncode != 0, proc
    proc = busctl(d, "call", "org.lvss", "/org/lvss", "org.lvss.Manager1", "ListVolumes", user=reader)
    assert proc.returncode == 0 and proc.stdout.startswith("a(sstusuttt) 1"), proc
    assert snapshot_state(d) == before


def test_claiming_to_be_root_does_not_help(open_lvssd, user):
    """AUTH EXTERNAL names a uid; lvssd must go by the socket's peer credentials instead."""
    d = open_lvssd
    script = d.root / "daemon.py"
    shutil.copy(daemon.__file__, script)
    os.chmod(script, 0o644)
    before = snapshot_state(d)

    def raw(uid, *call, groups=("lvss",)):
        proc = subprocess.run(
            ["/usr/bin/python3", "-c", f"import sys; sys.path.insert(0, {str(d.root)!r}); import daemon; "
             "daemon.raw_call_main(sys.argv[1:])", str(d.socket), uid, *call],
            capture_output=True, text=True, timeout=30, cwd="/", **as_user(user, *groups))
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    create = ("CreateVolume", "stus", "impostor", str(MiB), "0", "")
    # Control: as itself, the reader is heard and refused.
    out = raw("-", *create)
    assert out.get("type") == 3 and out.get("error") == "org.lvss.Error.AccessDenied", out
    out = raw("0", *create)
    print("claiming uid 0:", out)
    assert out.get("type") != 2, f"a reader claiming uid 0 created a volume: {out}"
    assert out.get("type") == 3 or not out.get("auth", "").startswith("OK"), out
    assert snapshot_state(d) == before
    # And the raw client works at all: an admin creates the volume by hand.
    out = raw("-", *create, groups=("lvss", "lvss-admin"))
    assert out.get("type") == 2, out
    assert "impostor" in d.volumes()


def test_group_lvss_admin_may_change_but_not_adopt_images(open_lvssd, user):
    d = open_lvssd
    admin = as_user(user, "lvss", "lvss-admin")
    name, uid, gid = user
    v = d.json("volume", "create", "adm", "--size", "16M", user=admin)
    assert v["name"] == "adm"
    s = d.json("create", "adm", user=admin)
    shadow = s["shadows"][0]["id"]
    assert d.shadow_ids() == {shadow}

    # Only root adopts images: lvssd reopens an adopted image by path, as root, at every start.
    image = d.root / "roots.img"
    with open(image, "wb") as f:
        f.truncate(MiB)
    os.chmod(image, 0o666)  # even one anybody may write: lvssd goes by the owner
    before = snapshot_state(d)
    d.fails(EXIT_ACCESS, "volume", "create", "stolen", "--image", image, user=admin)
    d.fails(EXIT_ACCESS, "volume", "create", "passwd", "--image", "/etc/passwd", user=admin)
    # Nor a directory root owns to mount on.
    theirs = d.root / "roots-dir"
    theirs.mkdir()
    os.chmod(theirs, 0o777)
    d.fails(EXIT_ACCESS, "expose", shadow, theirs, user=admin)
    assert not daemon.is_mounted(theirs)
    assert snapshot_state(d) == before

    # Not even one of their own (it could later be swapped for a link to a file they may not read).
    own_image = d.root / "own.img"
    with open(own_image, "wb") as f:
        f.truncate(2 * MiB)
    os.chown(own_image, uid, gid)
    err = d.fails(EXIT_ACCESS, "volume", "create", "own", "--image", own_image, user=admin)
    assert "root" in err, err
    assert snapshot_state(d) == before
    d.ok("delete", shadow, user=admin)
    d.ok("volume", "delete", "adm", user=admin)
    assert d.volumes() == {} and d.shadows() == []


# ---- garbage and floods ---------------------------------------------------------------------------


def garbage_round(path, rng, i):
    """One connection of nonsense, variant I % 10; returns a short description."""
    kind = i % 10
    bus = daemon.RawBus(path, timeout=2)
    try:
        if kind == 0:
            bus.send(rng.randbytes(rng.randrange(1, 4096)))
        elif kind == 1:
            bus.send(b"\0AUTH EXTERNAL")  # half a line, then gone
        elif kind == 2:
            bus.send(b"\0AUTH " + rng.randbytes(rng.randrange(1, 300)).replace(b"\r\n", b"") + b"\r\n")
            try:
                bus.line()  # REJECTED or ERROR, or closed
            except (OSError, EOFError):
                pass
            bus.send(b"AUTH EXTERNAL zz\r\nDATA " + b"A" * 3000 + b"\r\n")
        elif kind == 3:
            bus.auth()  # then a header that lies about everything
            hdr = bytearray(daemon.dbus_message(1, "ListVolumes"))
            field = rng.randrange(4)
            if field == 0:
                hdr[0] = ord("X")  # no such endianness
            elif field == 1:
                hdr[3] = 2  # protocol version 2
            elif field == 2:
                struct.pack_into("<I", hdr, 4, 0xFFFFFFF0)  # a body of 4 GiB
            else:
                struct.pack_into("<I", hdr, 12, 0x7FFFFFF0)  # header fields of 2 GiB
            bus.send(bytes(hdr))
        elif kind == 4:
            bus.auth()  # the right signature, a body that contradicts it
            body = struct.pack("<I", 0xFFFF) + rng.randbytes(40)
            bus.send(daemon.dbus_message(2, "CreateVolume", "stus", body))
        elif kind == 5:
            bus.auth()  # too few arguments: an error reply, nothing created
            try:
                m = bus.call(3, "CreateVolume", "s", ["x"])
            except TimeoutError:
                raise AssertionError("lvssd did not answer a call with too few arguments")
            assert m[0] == 3, m
        elif kind == 6:
            bus.auth()  # promises file descriptors it never sends
            bus.send(daemon.dbus_message(4, "ListVolumes", extra_fields=[(9, "u", 7)]))
        elif kind == 7:
            bus.auth()  # a member that is no name, a path that is no path
            bus.send(daemon.dbus_message(5, "Create\xffVolume\0x", path="no/path"))
        elif kind == 8:
            bus.auth()  # half a message
            bus.send(daemon.dbus_message(6, "CreateVolume", "stus", bytes(daemon.dbus_marshal(
                "stus", ["half", MiB, 0, ""])))[:37])
        else:
            bus.send(b"\0" + b"NEGOTIATE_UNIX_FD\r\nBEGIN\r\n" + rng.randbytes(200))  # BEGIN unauthenticated
    except (OSError, EOFError):
        pass  # lvssd may hang up on us: that is its right
    finally:
        bus.close(reset=rng.random() < 0.5)
    return kind


def test_garbage_on_the_socket(lvssd, rng):
    d = lvssd
    d.create_volume("keep", "1M")
    before = snapshot_state(d)
    pid = d.pid
    for i in range(50):
        garbage_round(d.socket, rng, rng.randrange(10) if i >= 10 else i)
        assert d.alive(), f"lvssd died on garbage round {i}\n{d.log()}"
    res = d.run("list", "volumes", timeout=30)
    assert res.code == 0 and "keep" in res.out, f"{res}\n{d.log()}"
    assert d.pid == pid and d.alive()
    assert snapshot_state(d) == before, "garbage changed lvssd's state"


def test_a_message_sent_with_begin_is_answered(lvssd):
    """The D-Bus spec lets a client send its first message right behind BEGIN (in one write)."""
    d = lvssd
    bus = daemon.RawBus(d.socket, timeout=5)
    try:
        bus.send(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        assert bus.line().startswith("OK ")
        bus.send(b"BEGIN\r\n" + daemon.dbus_message(1, "ListVolumes"))
        try:
            m = bus.recv()
        except TimeoutError:
            pytest.fail("lvssd did not answer a call that came in the same write as BEGIN (5 s); "
                        "it answers only once more bytes arrive")
        assert m[0] == 2 and m[2] == 1, m
    finally:
        bus.close()


def test_300_connections_at_once(lvssd):
    d = lvssd
    d.create_volume("keep", "1M")
    pid = d.pid
    held, refused = [], 0
    try:
        deadline = time.monotonic() + 20
        while len(held) < 300:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(str(d.socket))
                held.append(s)
            except (BlockingIOError, TimeoutError):  # the backlog is full: lvssd is accepting
                s.close()
                refused += 1
                assert time.monotonic() < deadline, f"only {len(held)} connections in 20 s"
                time.sleep(0.01)
        t0 = time.monotonic()
        res = d.run("list", "volumes", timeout=60)  # a hang fails here (TimeoutExpired)
        print(f"{len(held)} connections held ({refused} times the backlog was full); lvss: {res}")
        assert res.code in (0, EXIT_FAILED, EXIT_UNREACHABLE), res
        assert res.code == 0 or res.err.startswith("lvss: "), res
        assert time.monotonic() - t0 < 30, "lvss took too long with lvssd flooded"
        assert d.alive(), d.log()
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 15
    while True:
        res = d.run("list", "volumes", timeout=30)
        if res.code == 0:
            break
        assert time.monotonic() < deadline, f"lvssd still refuses after the flood ended: {res}\n{d.log()}"
        time.sleep(0.2)
    assert "keep" in res.out and d.pid == pid and d.alive()


# ---- paths ----------------------------------------------------------------------------------------


def test_path_safety(lvssd):
    d = lvssd
    d.create_volume("a", "64M")
    before = snapshot_state(d)
    d.fails(EXIT_USAGE, "volume", "create", "../../etc", "--size", "1M")
    d.fails(EXIT_USAGE, "volume", "create", "--size", "1M", "--", "../state")
    assert sorted(os.listdir(d.state / "volumes")) == ["a"]
    # By hand: lvssd itself refuses names that climb and images that are relative (it would
    # resolve them against its own working directory, not the caller's).
    for name, image in (("../../etc", ""), ("a/../../x", ""), ("rel", "relative.img"), ("rel", "../x.img")):
        proc = busctl(d, "call", "org.lvss", "/org/lvss", "org.lvss.Manager1", "CreateVolume", "stus", name,
                      str(MiB), "0", image)
        assert proc.returncode != 0 and "not" in proc.stderr, proc
    # Images inside lvssd's own directories, and things that are not images.
    d.fails(EXIT_USAGE, "volume", "create", "b", "--image", d.state / "volumes" / "a" / "image")
    d.fails(EXIT_USAGE, "volume", "create", "b", "--image", d.volume_path("a"))
    d.fails(EXIT_USAGE, "volume", "create", "b", "--image", "/dev/null")
    d.fails(EXIT_USAGE, "volume", "create", "b", "--image", d.root)
    assert snapshot_state(d) == before

    # lvss makes a relative --image absolute against ITS working directory.
    (d.root / "rel.img").write_bytes(b"\0" * MiB)
    proc = subprocess.run([d.cli, "--socket", str(d.socket), "--json", "volume", "create", "rel", "--image",
                           "rel.img"], cwd=d.root, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["size"] == MiB
    d.ok("volume", "delete", "rel")

    # Exposing: never on a non-empty directory, a file, or inside lvssd's directories.
    dev, mnt = d.host.new_fs(d.volume_path("a"), "ext4", d.root / "mnt")
    daemon.write_durable(mnt / "f", b"data")
    shadow = d.create_set("a")["shadows"][0]["id"]
    full = d.root / "full"
    full.mkdir()
    (full / "precious").write_bytes(b"mine")
    err = d.fails(EXIT_FAILED, "expose", shadow, full)
    assert "empty" in err, err
    assert not daemon.is_mounted(full) and os.listdir(full) == ["precious"]
    (d.root / "afile").write_bytes(b"x")
    d.fails(EXIT_USAGE, "expose", shadow, d.root / "afile")
    d.fails(EXIT_USAGE, "expose", shadow, d.runtime)
    d.fails(EXIT_NOT_FOUND, "expose", shadow, d.root / "missing")
    d.fails(EXIT_FAILED, "expose", shadow, mnt)  # a mount point with files
    (listed,) = d.shadows()
    assert listed["exposed"] == [], listed
    assert not [mp for mp, _ in daemon.mountinfo() if mp.startswith(str(d.root) + "/") and
                mp not in (str(mnt), str(d.dev))]
    # unexpose only ever unmounts shadows: not the live filesystem.
    d.fails(EXIT_NOT_FOUND, "unexpose", mnt)
    assert daemon.is_mounted(mnt)


# ---- busctl ---------------------------------------------------------------------------------------


def test_busctl_tree_and_introspect(lvssd):
    d = lvssd
    d.create_volume("vol1", "16M")
    d.create_volume("vol-2", "16M")
    s = d.create_set("vol1")
    proc = busctl(d, "tree", "org.lvss")
    assert proc.returncode == 0, proc
    assert "/org/lvss/volume/vol1" in proc.stdout, proc.stdout
    assert "/org/lvss/volume/vol_2d2" in proc.stdout, proc.stdout  # sd_bus_path_encode("vol-2")
    assert "/org/lvss/shadow/" in proc.stdout and "/org/lvss/set/" in proc.stdout, proc.stdout
    proc = busctl(d, "introspect", "org.lvss", "/org/lvss")
    assert proc.returncode == 0, proc
    assert "org.lvss.Manager1" in proc.stdout and ".CreateShadowSet" in proc.stdout, proc.stdout
    assert "org.freedesktop.DBus.ObjectManager" in proc.stdout, proc.stdout
    proc = busctl(d, "get-property", "org.lvss", "/org/lvss/volume/vol1", "org.lvss.Volume1", "Shadows")
    assert proc.returncode == 0 and proc.stdout.strip() == "u 1", proc
    proc = busctl(d, "get-property", "org.lvss", "/org/lvss", "org.lvss.Manager1", "RuntimeDirectory")
    assert proc.returncode == 0 and proc.stdout.strip() == f's "{os.path.realpath(d.runtime)}"', proc
    assert s["set"]


def test_only_root_and_lvss_writers_register_writers(open_lvssd, user):
    """RegisterWriter: a real unprivileged user in lvss (reader) or lvss-admin (administrator) is
    refused; in lvss-writers it registers and takes part in a set; a second writer cannot take the
    name of a live one."""
    import test_lvssd_writers as tw

    d = open_lvssd
    writer = tw.writer_bin()
    os.chmod(d.root, 0o777)  # the writer's log and ready file
    for groups in (("lvss",), ("lvss", "lvss-admin")):
        proc = subprocess.run([writer, "--socket", str(d.socket), "--name", "intruder"], capture_output=True,
                              text=True, timeout=30, **as_user(user, *groups))
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (groups, proc)
    assert d.json("writer", "list") == []

    log = d.root / "writer.log"
    ready = d.root / "writer.ready"
    proc = subprocess.Popen([writer, "--socket", str(d.socket), "--name", "app", "--log", str(log),
                             "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **as_user(user, "lvss", "lvss-writers"))
    try:
        deadline = time.monotonic() + 15
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=5) if proc.poll() is not None else "not ready"
        assert [w["name"] for w in d.json("writer", "list")] == ["app"]
        # The name is taken while it lives, whoever asks (root included).
        dup = subprocess.run([writer, "--socket", str(d.socket), "--name", "app"], capture_output=True,
                             text=True, timeout=30)
        assert dup.returncode != 0 and "File exists" in dup.stderr, dup
        d.create_volume("v", "16M")
        s = d.json("create", "--writer", "app", "v")
        assert [w["name"] for w in s["writers"]] == ["app"] and s["writers"][0]["state"] == "stable", s
    finally:
        proc.terminate()
        proc.wait(timeout=15)
