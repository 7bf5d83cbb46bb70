# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The FUSE export (lvss-fuse-export) end to end: engine volumes served as files, loop devices
# over them (--direct-io=on), real ext4 and xfs on top.
#
#  - a set of two volumes (ext4 and xfs) taken with freeze-snapshot while a writer fsyncs files
#    into each: every file fsynced before the request is in the shadow byte for byte, nothing
#    written after the reply is, each shadow passes e2fsck -fn / xfs_repair -n and mounts
#    read-only beside its mounted original; hold_ms is reported;
#  - fsync durability: a file fsynced through ext4 is in the engine when the exporter is then
#    SIGKILLed (read back with lvss-engine read and mounted, and through a fresh exporter);
#  - shadows are read-only (EROFS), sizes are exact, delete refuses while a loop device holds
#    the shadow, --shadow exports an existing snapshot, persistent snapshots survive a stop;
#  - errors: missing mount point, volume in use, no /dev/fuse, bad arguments; SIGTERM unmounts,
#    releases the volume and exits 0.
#
# The binary: $LVSS_FUSE_EXPORT, else lvss-fuse-export beside $LVSS_ENGINE (installed in the same
# sbindir, or in the build tree's export/), else on PATH. Cleanup (mounts, the exact loop devices,
# the exporter by PID) runs even when a test fails.

import errno
import hashlib
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Engine, Loops, require_root

MiB = 1 << 20

FILESYSTEMS = {
    # name: (volume size, mkfs, read-only check, read-only mount options for a copy)
    "ext4": ("128M", ["mkfs.ext4", "-q", "-F"], ["e2fsck", "-fn"], "ro,noload"),
    "xfs": ("512M", ["mkfs.xfs", "-q", "-f"], ["xfs_repair", "-n"], "ro,nouuid,norecovery"),
}
# A frozen xfs keeps a log to replay and lazy superblock counters (kernel 6.18, xfsprogs 6.1): a
# copy taken while frozen fails xfs_repair -n ("valuable metadata changes in a log", sb_fdblocks)
# even with no lvss involved (fsfreeze + dd of a plain loop device does the same). Its check runs
# on a writable copy of the shadow after one mount and unmount has replayed the log.
REPLAY_BEFORE_CHECK = {"xfs"}


def exporter_path(engine):
    path = os.environ.get("LVSS_FUSE_EXPORT")
    if not path:
        here = Path(engine).resolve().parent
        for cand in (here / "lvss-fuse-export", here.parent / "export" / "lvss-fuse-export"):
            if cand.exists():
                path = str(cand)
                break
    path = path or shutil.which("lvss-fuse-export")
    if not path:
        pytest.skip("lvss-fuse-export not found (it is built only with libfuse3): set LVSS_FUSE_EXPORT")
    return path


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def pids_with_arg(arg):
    """PIDs of the processes with ARG among their arguments."""
    pids = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = p.read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in args:
            pids.append(int(p.parent.name))
    return pids


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Exporter:
    """One lvss-fuse-export process in the foreground, with a control socket."""

    def __init__(self, path, workdir, mount, volumes=(), shadows=(), extra=()):
        self.path = path
        self.mount = Path(mount)
        self.mount.mkdir(parents=True, exist_ok=True)
        self.control = Path(workdir) / f"ctl-{self.mount.name}"
        self.errfile = Path(workdir) / f"exporter-{self.mount.name}.err"
        self.args = [path, "--mount", self.mount, "--control", self.control, "--foreground", *extra]
        for name, voldir in volumes:
            self.args += ["--volume", f"{name}={voldir}"]
        for name, voldir, snap in shadows:
            self.args += ["--shadow", f"{name}={voldir}:{snap}"]
        self.proc = None

    def start(self):
        err = open(self.errfile, "w")
        self.proc = subprocess.Popen([str(a) for a in self.args], stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        assert "serving" in line, f"exporter did not start: {line!r} {self.stderr()}"
        assert mounted(self.mount), "exporter says it serves but nothing is mounted"
        return self

    def stderr(self):
        return self.errfile.read_text() if self.errfile.exists() else ""

    def ctl_raw(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60)
            s.connect(str(self.control))
            f = s.makefile("rw")
            f.write(command + "\n")
            f.flush()
            return f.readline().strip()

    def ctl(self, command):
        """Runs a control command that must succeed; returns its KEY=VALUE pairs."""
        reply = self.ctl_raw(command)
        assert reply.startswith("ok"), f"{command!r}: {reply}"
        return dict(kv.split("=", 1) for kv in reply.split()[1:])

    def ctl_fails(self, command):
        reply = self.ctl_raw(command)
        assert reply.startswith("error "), f"{command!r} should fail: {reply}"
        return reply[len("error "):]

    def stop(self):
        """SIGTERM: must exit 0 and leave nothing mounted."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        assert rc == 0, f"exporter exited {rc}: {self.stderr()}"
        assert not mounted(self.mount), "still mounted after SIGTERM"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        # The mount stays behind, disconnected ("Transport endpoint is not connected").
        subprocess.run(["umount", "--lazy", str(self.mount)], capture_output=True)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if mounted(self.mount):
            subprocess.run(["umount", "--lazy", str(self.mount)], capture_output=True)


class Harness:
    """Exporters and the loop devices and mounts over them; torn down loops first."""

    def __init__(self, path, tmp):
        self.path = path
        self.tmp = tmp
        self.loops = Loops()
        self.exporters = []
        self.daemons = []       # (pid, mount point) of detached exporters

    def exporter(self, name="dev", **kw):
        ex = Exporter(self.path, self.tmp, self.tmp / name, **kw)
        self.exporters.append(ex)
        return ex.start()

    def attach(self, path, read_only=False):
        """losetup --direct-io=on over PATH; the device is detached at teardown."""
        args = ["losetup", "--direct-io=on", "--find", "--show"] + (["--read-only"] if read_only else [])
        dev = run(*args, path).stdout.strip()
        assert dev.startswith("/dev/loop"), dev
        self.loops.devices.append(dev)
        assert run("losetup", "--noheadings", "--output", "DIO", dev).stdout.strip() == "1", \
            f"{dev}: no direct I/O"
        return dev

    def daemon(self, mount, *args):
        """Starts a detached exporter (no --foreground); returns its PID, found by its control socket."""
        ctl = str(self.tmp / f"ctl-{Path(mount).name}-bg")
        proc = subprocess.run([self.path, "--mount", str(mount), "--control", ctl, *[str(a) for a in args]],
                              capture_output=True, text=True, timeout=60)
        pids = pids_with_arg(ctl)
        self.daemons += [(pid, Path(mount)) for pid in pids]
        assert proc.returncode == 0, f"detached start exited {proc.returncode}: {proc.stderr}"
        assert len(pids) == 1, f"{len(pids)} detached exporters found"
        return pids[0], Path(ctl)

    def cleanup(self):
        self.loops.cleanup()
        for ex in reversed(self.exporters):
            ex.cleanup()
        for pid, mount in self.daemons:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                for _ in range(100):
                    if not os.path.exists(f"/proc/{pid}"):
                        break
                    time.sleep(0.1)
            if mounted(mount):
                subprocess.run(["umount", "--lazy", str(mount)], capture_output=True)


@pytest.fixture
def fx(lvss_engine, tmp_path):
    require_root()
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    h = Harness(exporter_path(lvss_engine), tmp_path)
    yield h
    h.cleanup()


def write_files(root, files):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def read_tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if not rel.startswith("lost+found"):
                out[rel] = Path(dirpath, n).read_bytes()
    return out


def random_files(rng, prefix, n):
    return {f"{prefix}/{i:03d}.bin": rng.randbytes(rng.choice([1, 4096, 5000, 65536, 300000, 2 * MiB]))
            for i in range(n)}


class Writer(threading.Thread):
    """Writes and fsyncs files under ROOT until stopped; records when each fsync returned."""

    def __init__(self, root, rng):
        super().__init__(daemon=True)
        self.root = Path(root) / "load"
        self.root.mkdir()
        self.rng = rng
        self.done = []          # (name, data, fsync_returned)
        self.stopped = threading.Event()
        self.error = None

    def run(self):
        i = 0
        try:
            while not self.stopped.is_set():
                name = f"load/{i:05d}"
                data = self.rng.randbytes(self.rng.choice([4096, 12345, 262144]))
                fd = os.open(self.root.parent / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self.done.append((name, data, time.monotonic()))
                i += 1
        except Exception as e:  # reported by the test
            self.error = e

    def stop(self):
        self.stopped.set()
        self.join(60)
        assert not self.is_alive(), "writer stuck"
        assert self.error is None, f"writer failed: {self.error!r}"


def test_set_of_ext4_and_xfs_under_load(fx, lvss_engine, state, tmp_path, rng):
    """One freeze-snapshot over two volumes while both are written: each shadow is the point in time."""
    vols = {}
    for fs, (size, *_rest) in FILESYSTEMS.items():
        e = Engine(lvss_engine, state / fs)
        e.create(size)
        vols[fs] = e
    ex = fx.exporter(volumes=[(fs, e.dir) for fs, e in vols.items()])
    assert sorted(os.listdir(ex.mount / "volumes")) == sorted(vols)

    mnts, before, writers = {}, {}, {}
    for fs, (size, mkfs, _, _) in FILESYSTEMS.items():
        path = ex.mount / "volumes" / fs
        assert path.stat().st_size == int(size[:-1]) * MiB
        dev = fx.attach(path)
        run(*mkfs, dev)
        mnt = fx.loops.mount(dev, tmp_path / f"fs-{fs}")
        files = random_files(rng, "before", 12)
        files["changed.bin"] = rng.randbytes(70000)
        files["deleted.bin"] = rng.randbytes(9000)
        write_files(mnt, files)
        mnts[fs], before[fs] = mnt, files
    run("sync")
    for fs in FILESYSTEMS:
        writers[fs] = Writer(mnts[fs], random.Random(rng.getrandbits(64)))
        writers[fs].start()
    time.sleep(1.0)

    t_request = time.monotonic()
    reply = ex.ctl("freeze-snapshot " + " ".join(str(mnts[fs]) for fs in FILESYSTEMS))
    t_reply = time.monotonic()
    time.sleep(0.3)
    for w in writers.values():
        w.stop()
    hold_ms = float(reply["hold_ms"])
    assert 0 <= float(reply["freeze_ms"]) <= hold_ms < 10000, reply
    print(f"hold_ms={hold_ms:.1f} freeze_ms={reply['freeze_ms']}")
    shadows = dict(s.split("@") for s in reply["shadows"].split(","))
    assert sorted(shadows) == sorted(FILESYSTEMS), reply

    # After the set: new files, a changed one, a deleted one.
    after = {}
    for fs in FILESYSTEMS:
        after[fs] = random_files(rng, "after", 4)
        write_files(mnts[fs], after[fs])
        (mnts[fs] / "changed.bin").write_bytes(b"new content" * 1000)
        (mnts[fs] / "deleted.bin").unlink()
    run("sync")

    for fs, (size, _, check, ro_opts) in FILESYSTEMS.items():
        shadow = ex.mount / "shadows" / f"{fs}@{shadows[fs]}"
        assert shadow.stat().st_size == int(size[:-1]) * MiB
        sdev = fx.attach(shadow, read_only=True)
        assert run("blockdev", "--getro", sdev).stdout.strip() == "1"
        if fs in REPLAY_BEFORE_CHECK:
            copy = tmp_path / f"{fs}-copy.img"
            shutil.copyfile(shadow, copy)
            cdev, cmnt = fx.loops.mount_image(copy, tmp_path / f"copy-{fs}", "nouuid")
            fx.loops.unmount_image(cdev, cmnt)
            target = copy
        else:
            target = sdev
        proc = subprocess.run([*check, target], capture_output=True, text=True)
        assert proc.returncode == 0, f"{fs} shadow fails {check[0]}: {proc.stdout}{proc.stderr}"
        smnt = fx.loops.mount(sdev, tmp_path / f"shadow-{fs}", ro_opts)
        tree = read_tree(smnt)
        for name, data in before[fs].items():
            assert tree.get(name) == data, f"{fs} shadow: {name} differs from before the set"
        synced = [(n, d) for n, d, t in writers[fs].done if t < t_request]
        assert synced, f"{fs}: the writer fsynced nothing before the set"
        for name, data in synced:
            assert tree.get(name) == data, f"{fs} shadow: {name}, fsynced before the set, differs"
        for name in after[fs]:
            assert name not in tree, f"{fs} shadow has {name}, written after the set"
        late = [n for n, d, t in writers[fs].done if t > t_reply + 0.25]
        assert not any(n in tree for n in late[1:]), f"{fs} shadow has files the writer made after the set"
        # The live filesystem went on.
        live = read_tree(mnts[fs])
        assert "deleted.bin" not in live and live["changed.bin"] == b"new content" * 1000
        assert all(live[n] == d for n, d in after[fs].items())
        fx.loops.umount(smnt)
        fx.loops.detach(sdev)
        assert ex.ctl_raw(f"delete {fs}@{shadows[fs]}") == "ok"
        assert not shadow.exists()


def test_fsync_is_durable_when_the_exporter_dies(fx, eng, tmp_path, rng):
    """A file fsynced through ext4 on the export is in the engine after SIGKILL of the exporter."""
    eng.create("128M")
    ex = fx.exporter(volumes=[("v", eng.dir)])
    dev = fx.attach(ex.mount / "volumes" / "v")
    run("mkfs.ext4", "-q", "-F", dev)
    mnt = fx.loops.mount(dev, tmp_path / "fs")
    data = rng.randbytes(3 * MiB + 123)
    flushes = int(ex.ctl("stats")["flushes"])
    fd = os.open(mnt / "precious", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    assert int(ex.ctl("stats")["flushes"]) > flushes, "fsync did not reach engine_flush"
    ex.kill()

    # Take the dead stack down (the filesystem sees I/O errors; that is expected).
    subprocess.run(["umount", str(mnt)], capture_output=True)
    if mounted(mnt):
        subprocess.run(["umount", "--lazy", str(mnt)], capture_output=True)
    fx.loops.mounts.remove(str(mnt))
    fx.loops.detach(dev)

    # The engine reopens (recovery, the lock freed by the death), the image holds the file.
    image = tmp_path / "image"
    eng.ok("read", eng.dir, "--output", image)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    ex2 = fx.exporter(name="dev2", volumes=[("v", eng.dir)])
    with open(ex2.mount / "volumes" / "v", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest, "a fresh exporter serves other bytes"
    ex2.stop()
    # Mounting the copy replays the journal, as after a crash.
    _, cmnt = fx.loops.mount_image(image, tmp_path / "copy")
    assert (cmnt / "precious").read_bytes() == data, "the fsynced file is not in the engine"
    fx.loops.cleanup()
    proc = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shadows_are_read_only_and_exact(fx, eng, lvss_engine, tmp_path, rng):
    """EROFS on a shadow, exact sizes, busy delete, --shadow, persistent snapshots across a stop."""
    eng.create("64M")
    ex = fx.exporter(volumes=[("v", eng.dir)])
    vol = ex.mount / "volumes" / "v"
    assert vol.stat().st_size == 64 * MiB and (vol.stat().st_mode & 0o777) == 0o600
    old = rng.randbytes(4 * MiB)
    with open(vol, "r+b") as f:
        f.seek(8 * MiB)
        f.write(old)
        os.fsync(f.fileno())
    kept = ex.ctl("snapshot persistent")
    gone = ex.ctl("snapshot persistent")
    shadow = ex.mount / "shadows" / kept["shadow"]
    assert sorted(os.listdir(ex.mount / "shadows")) == sorted([kept["shadow"], gone["shadow"]])
    assert shadow.stat().st_size == 64 * MiB and (shadow.stat().st_mode & 0o222) == 0

    for flags in (os.O_RDWR, os.O_WRONLY, os.O_RDONLY | os.O_TRUNC):
        with pytest.raises(OSError) as exc:
            os.open(shadow, flags)
        assert exc.value.errno == errno.EROFS, f"open flags {flags}: {exc.value}"
    with pytest.raises(OSError) as exc:
        os.truncate(vol, 32 * MiB)
    assert exc.value.errno == errno.EPERM

    new = rng.randbytes(4 * MiB)
    with open(vol, "r+b") as f:
        f.seek(8 * MiB)
        f.write(new)
    with open(shadow, "rb") as f:
        f.seek(8 * MiB)
        assert f.read(4 * MiB) == old, "the shadow changed with the live volume"
    with open(vol, "rb") as f:
        f.seek(8 * MiB)
        assert f.read(4 * MiB) == new

    # losetup without -r falls back to read-only on a shadow; delete waits for it to go.
    dev = fx.attach(ex.mount / "shadows" / gone["shadow"])
    assert run("blockdev", "--getro", dev).stdout.strip() == "1"
    assert "open" in ex.ctl_fails(f"delete {gone['shadow']}")
    fx.loops.detach(dev)
    assert ex.ctl_raw(f"delete {gone['shadow']}") == "ok"
    assert sorted(os.listdir(ex.mount / "shadows")) == [kept["shadow"]]
    assert "no shadow" in ex.ctl_fails(f"delete {gone['shadow']}")
    assert "unknown command" in ex.ctl_fails("frobnicate")
    ex.stop()

    # After the stop: the volume is free again, the kept snapshot has the old bytes, the deleted
    # one is gone from the engine.
    ids = [s["id"] for s in eng.snapshots()]
    assert ids == [int(kept["id"])], ids
    assert eng.read(8 * MiB, 4 * MiB, snapshot=kept["id"]) == old
    assert eng.read(8 * MiB, 4 * MiB) == new

    # --shadow exports an existing snapshot (and a volume may be exported by shadows only).
    ex2 = fx.exporter(name="dev2", shadows=[("old", eng.dir, kept["id"])])
    assert os.listdir(ex2.mount / "volumes") == []
    with open(ex2.mount / "shadows" / "old", "rb") as f:
        f.seek(8 * MiB)
        assert f.read(4 * MiB) == old
    ex2.stop()


def test_errors_and_clean_stop(fx, eng, lvss_engine, tmp_path):
    """One-sentence errors with exit 1 (2 for usage), and a SIGTERM that leaves nothing behind."""
    eng.create("16M")

    def fails(args, code=1):
        proc = subprocess.run([fx.path, *[str(a) for a in args]], capture_output=True, text=True, timeout=60)
        assert proc.returncode == code, f"{args}: exit {proc.returncode}: {proc.stderr}"
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lvss-fuse-export: "), proc.stderr
        return lines[0]

    mnt = tmp_path / "m"
    mnt.mkdir()
    assert "does not exist" in fails(["--mount", tmp_path / "nope", "--volume", f"v={eng.dir}", "--foreground"])
    assert "no lvss volume" in fails(["--mount", mnt, "--volume", f"v={tmp_path / 'novol'}", "--foreground"])
    assert "NAME=VOLDIR" in fails(["--mount", mnt, "--volume", "novalue", "--foreground"], code=2)
    assert "invalid volume name" in fails(["--mount", mnt, "--volume", f"a/b={eng.dir}"], code=2)
    assert "--mount" in fails(["--volume", f"v={eng.dir}"], code=2)
    assert not mounted(mnt), "a failed start left a mount behind"

    # No /dev/fuse (a private mount namespace with an empty /dev).
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /dev && exec "$0" "$@"',
                           fx.path, "--mount", str(mnt), "--volume", f"v={eng.dir}", "--foreground"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "/dev/fuse" in proc.stderr, proc.stderr

    ex = fx.exporter(volumes=[("v", eng.dir)])
    # The volume is in use: a second exporter and lvss-engine both refuse it.
    assert "in use by another process" in fails(["--mount", mnt, "--volume", f"v={eng.dir}", "--foreground"])
    assert eng.run("info", eng.dir).returncode != 0
    ex.stop()
    assert eng.info()["size"] == 16 * MiB  # the lock is released

    # Without --foreground it detaches once serving, and SIGTERM still stops it cleanly.
    pid, ctl = fx.daemon(mnt, "--volume", f"v={eng.dir}")
    assert mounted(mnt) and (mnt / "volumes" / "v").stat().st_size == 16 * MiB
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}"), "the detached exporter did not stop"
    assert not mounted(mnt) and not ctl.exists()
