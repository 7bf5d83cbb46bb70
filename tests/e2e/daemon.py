# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Helpers of the lvssd end-to-end tests (test_lvssd_*.py): a Daemon runs the
# INSTALLED lvssd (path in $LVSS_LVSSD, else $LVSS_PREFIX/sbin/lvssd, else the
# one on PATH) on its own state and runtime directories under a short
# /tmp/lvss-XXXX directory, and the lvss command ($LVSS_CLI, ...) against its
# socket. A Host records the loop devices, mounts and frozen filesystems a
# test makes and undoes them in reverse order at teardown, then catches
# anything left under the test's directory (exposed shadows, mounts over
# dead FUSE files), touching only devices and mounts backed by that
# directory: other people's loop devices are never looked at twice.

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MiB = 1 << 20

# Exit codes of lvss (shared/CLI.md).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
EXIT_WRITER, EXIT_TIMEOUT, EXIT_NO_SPACE, EXIT_ACCESS, EXIT_UNREACHABLE = 4, 5, 6, 7, 8

# mkfs without lazy initialisation: a mounted ext4 must not change its image on its own
# (ext4lazyinit zeroes inode tables after the mount), or "nothing changed" cannot be checked.
MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
}


def _installed(env, prefix_rel, name):
    path = os.environ.get(env)
    if not path and os.environ.get("LVSS_PREFIX"):
        cand = os.path.join(os.environ["LVSS_PREFIX"], prefix_rel, name)
        path = cand if os.path.exists(cand) else None
    return path or shutil.which(name)


def lvssd_path():
    return _installed("LVSS_LVSSD", "sbin", "lvssd")


def cli_path():
    return _installed("LVSS_CLI", "bin", "lvss")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path, length=None):
    """The sha256 of the file's bytes (its first LENGTH bytes if given)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left is None or left > 0:
            b = f.read(4 * MiB if left is None else min(4 * MiB, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def pwrite_sync(path, offset, data):
    """Writes DATA at OFFSET of the file and fsyncs it."""
    fd = os.open(path, os.O_WRONLY)
    try:
        assert os.pwrite(fd, data, offset) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path, data, offset=None):
    """Writes DATA to the file at PATH (a new file, or at OFFSET of an existing one), fsyncs it,
    and for a new file its directory too."""
    new = offset is None
    fd = os.open(path, os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if new else 0), 0o644)
    try:
        view, pos = memoryview(data), offset or 0
        while view:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def pread(path, offset, length):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def mountinfo():
    """(mount point, source) of every mount, octal escapes undone."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mp = left.split()[4]
            src = right.split()[1]
            dec = lambda s: s.encode().decode("unicode_escape")  # noqa: E731  \040 and friends
            out.append((dec(mp), dec(src)))
    return out


def is_mounted(path):
    path = os.path.realpath(path)
    return any(mp == path for mp, _ in mountinfo())


def loops_backed_under(root):
    """The loop devices whose backing file lies under ROOT (only ours: ROOT is unique)."""
    root = os.path.realpath(root)
    devs = []
    for bf in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            backing = bf.read_text().strip()
        except OSError:
            continue
        backing = backing.removesuffix(" (deleted)")
        if backing == root or backing.startswith(root + "/"):
            devs.append("/dev/" + bf.parent.parent.name)
    return devs


class Result:
    def __init__(self, args, proc):
        self.args = args
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self):
        return f"lvss {' '.join(self.args)}: exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"


class Host:
    """Loop devices, mounts and freezes of one test, undone in reverse order (see the top)."""

    def __init__(self, root):
        self.root = Path(root)
        self.undo = []  # ("mount", mp) | ("loop", dev) | ("frozen", mp)

    def attach(self, path, read_only=False, direct_io=True):
        args = ["losetup", "--find", "--show"] + (["--direct-io=on"] if direct_io else [])
        args += (["--read-only"] if read_only else []) + [str(path)]
        proc = subprocess.run(args, capture_output=True, text=True)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        dev = proc.stdout.strip()
        assert dev.startswith("/dev/loop"), dev
        self.undo.append(("loop", dev))
        return dev

    def detach(self, dev):
        proc = subprocess.run(["losetup", "--detach", dev], capture_output=True, text=True)
        assert proc.returncode == 0, f"losetup -d {dev}: {proc.stderr}"
        self.undo.remove(("loop", dev))

    def mkfs(self, dev, fs):
        proc = subprocess.run(MKFS[fs] + [dev], capture_output=True, text=True)
        assert proc.returncode == 0, f"mkfs {fs} {dev}: {proc.stderr}"

    def mount(self, dev, mountpoint, options=None, fstype=None):
        mountpoint = Path(mountpoint)
        mountpoint.mkdir(parents=True, exist_ok=True)
        args = ["mount"] + (["-t", fstype] if fstype else []) + (["-o", options] if options else [])
        proc = subprocess.run(args + [str(dev), str(mountpoint)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{args} {dev} {mountpoint}: {proc.stderr}"
        self.undo.append(("mount", str(mountpoint)))
        return mountpoint

    def umount(self, mountpoint):
        proc = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True)
        assert proc.returncode == 0, f"umount {mountpoint}: {proc.stderr}"
        self.untrack_mount(mountpoint)

    def track_mount(self, mountpoint):
        """Records a mount made by someone else (lvss expose) so that teardown undoes it."""
        self.undo.append(("mount", str(mountpoint)))

    def untrack_mount(self, mountpoint):
        if ("mount", str(mountpoint)) in self.undo:
            self.undo.remove(("mount", str(mountpoint)))

    def freeze(self, mountpoint):
        subprocess.run(["fsfreeze", "-f", str(mountpoint)], check=True)
        self.undo.append(("frozen", str(mountpoint)))

    def thaw(self, mountpoint):
        proc = subprocess.run(["fsfreeze", "-u", str(mountpoint)], capture_output=True, text=True)
        if ("frozen", str(mountpoint)) in self.undo:
            self.undo.remove(("frozen", str(mountpoint)))
        return proc

    def new_fs(self, volume_path, fs, mountpoint):
        """Attaches VOLUME_PATH (direct I/O), makes FS on it and mounts it: (device, mount point)."""
        dev = self.attach(volume_path)
        self.mkfs(dev, fs)
        return dev, self.mount(dev, mountpoint)

    def drop_fs(self, dev, mountpoint):
        self.umount(mountpoint)
        self.detach(dev)

    @staticmethod
    def _umount_hard(mp):
        subprocess.run(["fsfreeze", "-u", mp], capture_output=True)
        for _ in range(10):
            if subprocess.run(["umount", mp], capture_output=True).returncode == 0:
                return
            if not is_mounted(mp):
                return
            time.sleep(0.2)
        subprocess.run(["umount", "--lazy", mp], capture_output=True)

    def cleanup(self, keep=()):
        """Undoes everything recorded, newest first, then whatever is left under the root
        (except the mount points in KEEP: the daemon's own FUSE mount)."""
        for kind, what in reversed(self.undo):
            if kind == "frozen":
                subprocess.run(["fsfreeze", "-u", what], capture_output=True)
            elif kind == "mount":
                if is_mounted(what):
                    self._umount_hard(what)
            elif kind == "loop":
                subprocess.run(["losetup", "--detach", what], capture_output=True)
        self.undo.clear()
        root = os.path.realpath(self.root)
        keep = {os.path.realpath(k) for k in keep}
        left = [mp for mp, _ in mountinfo() if mp.startswith(root + "/") and mp not in keep]
        for mp in sorted(left, key=len, reverse=True):
            self._umount_hard(mp)
        for dev in loops_backed_under(root):
            subprocess.run(["losetup", "--detach", dev], capture_output=True)


class Daemon:
    """One lvssd on ROOT/state and ROOT/run, its log in ROOT/lvssd.log, and its lvss."""

    def __init__(self, lvssd, cli, root):
        self.lvssd = lvssd
        self.cli = cli
        self.root = Path(root)
        self.state = self.root / "state"
        self.runtime = self.root / "run"
        self.socket = self.runtime / "lvssd.sock"
        self.dev = self.runtime / "dev"
        self.log_path = self.root / "lvssd.log"
        self.proc = None
        self.host = Host(self.root)
        assert len(str(self.socket)) < 100, f"socket path too long: {self.socket}"

    # ---- the process ----

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=20, extra=()):
        assert not self.alive(), "lvssd runs already"
        with open(self.log_path, "ab") as log:
            log.write(f"==== lvssd start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [self.lvssd, "--state-dir", str(self.state), "--runtime-dir", str(self.runtime),
                 "--foreground", *extra], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"lvssd exited {self.proc.returncode} while starting:\n{self.log()}")
            if self.accepts():
                return self
            time.sleep(0.05)
        raise AssertionError(f"lvssd did not accept connections within {timeout} s:\n{self.log()}")

    def accepts(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1)
            s.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self, timeout=30):
        """SIGTERM, wait, SIGKILL if it must; returns the exit status (negative: a signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.release_dead_mount()
        return self.proc.returncode

    def kill(self):
        """SIGKILL: the FUSE mount RUNTIME/dev stays behind, dead."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return self.proc.returncode

    def release_dead_mount(self):
        if is_mounted(self.dev):
            subprocess.run(["umount", "--lazy", str(self.dev)], capture_output=True)

    def teardown(self):
        """Everything the test made, then the daemon, then its directories."""
        try:
            self.host.cleanup(keep=[self.dev])
        finally:
            code = self.stop()
            self.host.cleanup()  # loop devices over files of a daemon killed above
        # Under the sanitizers (tests/run's ASan pass), lvssd reports what it found in its log,
        # leaks at exit included: that fails the test.
        log = self.log(lines=200)
        root = os.path.realpath(self.root)
        if not any(mp == root or mp.startswith(root + "/") for mp, _ in mountinfo()):
            shutil.rmtree(self.root, ignore_errors=True)
        assert "Sanitizer" not in log and "runtime error:" not in log, log
        return code

    def log(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no lvssd log)"
        return "---- lvssd log (tail) ----\n" + "\n".join(text[-lines:])

    # ---- lvss ----

    def run(self, *args, json_out=False, timeout=120, user=None, socket_path=None, input=None):
        """Runs lvss --socket SOCKET [--json] ARGS; USER: dict(user=, group=, extra_groups=)."""
        sock = str(socket_path if socket_path is not None else self.socket)
        argv = [self.cli, "--socket", sock] + (["--json"] if json_out else []) + [str(a) for a in args]
        kw = dict(user or {})
        if user is not None:
            kw.setdefault("extra_groups", [])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, **kw)
        res = Result([str(a) for a in args], proc)
        assert proc.returncode >= 0, f"{res} (killed by a signal)\n{self.log()}"
        assert "AddressSanitizer" not in proc.stderr and "Traceback" not in proc.stderr, res
        return res

    def ok(self, *args, **kw):
        res = self.run(*args, **kw)
        assert res.code == 0, f"{res}\n{self.log()}"
        return res.out

    def json(self, *args, **kw):
        out = self.ok(*args, json_out=True, **kw)
        try:
            return json.loads(out)
        except ValueError as e:
            raise AssertionError(f"lvss --json {args} printed no JSON ({e}): {out!r}")

    def fails(self, code, *args, **kw):
        """Runs lvss, which must exit CODE with one message 'lvss: ...' on stderr; returns stderr."""
        res = self.run(*args, **kw)
        assert res.code == code, f"want exit {code}, got {res}\n{self.log()}"
        assert res.err.startswith("lvss: "), res
        return res.err

    # ---- shorthands ----

    def volume_path(self, name):
        return self.dev / "volumes" / name

    def create_volume(self, name, size, *opts):
        return self.json("volume", "create", name, "--size", size, *opts)

    def create_set(self, *targets, context=None, **kw):
        args = ["create"] + (["--context", context] if context else []) + [str(t) for t in targets]
        return self.json(*args, **kw)

    def shadows(self, *opts):
        return self.json("list", "shadows", *opts)

    def shadow_ids(self, *opts):
        return {s["id"] for s in self.shadows(*opts)}

    def volumes(self):
        return {v["name"]: v for v in self.json("list", "volumes")}

    def expose(self, shadow_id, mountpoint):
        Path(mountpoint).mkdir(parents=True, exist_ok=True)
        self.host.track_mount(mountpoint)
        self.ok("expose", shadow_id, mountpoint)
        assert is_mounted(mountpoint), f"lvss expose said yes but nothing is mounted on {mountpoint}"
        return Path(mountpoint)

    def unexpose(self, mountpoint):
        self.ok("unexpose", mountpoint)
        assert not is_mounted(mountpoint), f"{mountpoint} is still mounted after lvss unexpose"
        self.host.untrack_mount(mountpoint)


def new_root():
    """A fresh, short directory for one daemon (Unix socket paths are at most 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="lvss-", dir="/tmp"))


def ensure_groups():
    """The groups lvssd's socket and authorization use, as tests/run creates them."""
    for g in ("lvss", "lvss-admin", "lvss-writers"):
        if subprocess.run(["getent", "group", g], capture_output=True).returncode != 0:
            subprocess.run(["groupadd", "-r", g], check=True, capture_output=True)


# ---- a writer that proves what it wrote --------------------------------------------------------

# Creates files of random content under each ROOT until SIGTERM. Each file is fsynced, then its
# directory (and a new directory's parent), and only THEN its line "ROOT_INDEX NAME SHA256" is
# appended to MANIFEST (outside the volumes) and the manifest fsynced: a line in the manifest
# means that file was durable on its filesystem before the line was.
WRITER_SOURCE = r'''
import hashlib, os, random, signal, sys

manifest, seed, roots = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rng = random.Random(seed)
stop = False


def on_term(*_):
    global stop
    stop = True


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


signal.signal(signal.SIGTERM, on_term)
mfd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
made = set()
n = 0
print("writing", flush=True)
while not stop:
    r = rng.randrange(len(roots))
    sub = "d%03d" % (n // 40)
    d = os.path.join(roots[r], sub)
    if (r, sub) not in made:
        os.makedirs(d, exist_ok=True)
        fsync_path(roots[r])
        made.add((r, sub))
    size = rng.choice((rng.randrange(1, 4096), rng.randrange(4096, 65536), rng.randrange(65536, 400000)))
    data = rng.randbytes(size)
    name = "%s/f%06d" % (sub, n)
    fd = os.open(os.path.join(roots[r], name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_path(d)
    line = ("%d %s %s\n" % (r, name, hashlib.sha256(data).hexdigest())).encode()
    assert os.write(mfd, line) == len(line)
    os.fsync(mfd)
    n += 1
'''


def start_writer(manifest, seed, roots):
    """Starts the writer above (see WRITER_SOURCE) and waits until it runs."""
    proc = subprocess.Popen(["/usr/bin/python3", "-c", WRITER_SOURCE, str(manifest), str(seed),
                             *[str(r) for r in roots]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
    return proc


def stop_writer(proc, timeout=30):
    """SIGTERM, then SIGKILL; returns the writer's stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stderr.read()


def read_manifest(path, length):
    """The complete lines among the first LENGTH bytes of the manifest: [(root index, name, sha)]."""
    with open(path, "rb") as f:
        data = f.read(length)
    out = []
    for line in data.split(b"\n")[:-1]:  # the last piece is empty or a line being written
        r, name, digest = line.decode().split()
        out.append((int(r), name, digest))
    return out


# ---- a hand-made D-Bus peer: what no library would send -----------------------------------------

import struct  # noqa: E402


def _pad(buf, n):
    buf.extend(b"\0" * (-len(buf) % n))


def dbus_marshal(sig, values, buf=None):
    """Appends VALUES of the basic types in SIG (s o g t u b) to BUF (a bytearray that starts at
    an 8-aligned offset of the message); returns BUF."""
    buf = bytearray() if buf is None else buf
    for t, v in zip(sig, values):
        if t in "so":
            _pad(buf, 4)
            b = v.encode() if isinstance(v, str) else v
            buf += struct.pack("<I", len(b)) + b + b"\0"
        elif t == "g":
            b = v.encode()
            buf += bytes([len(b)]) + b + b"\0"
        elif t == "t":
            _pad(buf, 8)
            buf += struct.pack("<Q", v)
        elif t in "ub":
            _pad(buf, 4)
            buf += struct.pack("<I", int(v))
        else:
            raise ValueError(t)
    return buf


def dbus_message(serial, member, sig="", body=b"", path="/org/lvss", interface="org.lvss.Manager1",
                 mtype=1, body_len=None, extra_fields=(), version=1, endian=b"l"):
    """A method call (by default) with header fields path, interface, member, destination and
    signature, then BODY; BODY_LEN may lie about the body's length."""
    h = bytearray(endian + bytes([mtype, 0, version]))
    h += struct.pack("<II", len(body) if body_len is None else body_len, serial)
    h += b"\0\0\0\0"  # the length of the header fields, filled in below
    fields = [(1, "o", path), (2, "s", interface), (3, "s", member), (6, "s", "org.lvss")]
    fields += [(8, "g", sig)] if sig else []
    for code, t, v in list(fields) + list(extra_fields):
        _pad(h, 8)
        h += bytes([code, 1]) + t.encode() + b"\0"
        dbus_marshal(t, [v], h)
    struct.pack_into("<I", h, 12, len(h) - 16)
    _pad(h, 8)
    return bytes(h) + body


class RawBus:
    """One connection to a D-Bus socket, spoken by hand."""

    def __init__(self, path, timeout=5.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(str(path))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("lvssd closed the connection")
            self.buf += b

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def auth(self, uid=None, begin=True):
        """AUTH EXTERNAL as UID (default: who we are); returns the server's answer line."""
        who = str(os.getuid() if uid is None else uid).encode().hex().encode()
        self.send(b"\0AUTH EXTERNAL " + who + b"\r\n")
        answer = self.line()
        if begin and answer.startswith("OK "):
            self.send(b"BEGIN\r\n")
            # Let lvssd take BEGIN alone: a message in the same read waits (see test_lvssd_security).
            time.sleep(0.05)
        return answer

    def recv(self):
        """The next message: (type, serial, reply serial, error name or None, body bytes)."""
        self._fill(16)
        body_len, serial, fields_len = struct.unpack_from("<III", self.buf, 4)
        total = 16 + fields_len + (-(16 + fields_len) % 8) + body_len
        self._fill(total)
        msg, self.buf = self.buf[:total], self.buf[total:]
        mtype, reply_serial, error = msg[1], None, None
        pos, end = 16, 16 + fields_len
        while pos < end:
            pos += -pos % 8
            code, slen = msg[pos], msg[pos + 1]
            t = msg[pos + 2:pos + 2 + slen].decode()
            pos += 3 + slen
            if t in "so":
                pos += -pos % 4
                (n,) = struct.unpack_from("<I", msg, pos)
                v = msg[pos + 4:pos + 4 + n].decode()
                pos += 5 + n
            elif t == "g":
                n = msg[pos]
                v = msg[pos + 1:pos + 1 + n].decode()
                pos += 2 + n
            else:  # u
                pos += -pos % 4
                (v,) = struct.unpack_from("<I", msg, pos)
                pos += 4
            if code == 4:
                error = v
            elif code == 5:
                reply_serial = v
        return mtype, serial, reply_serial, error, msg[total - body_len:]

    def call(self, serial, member, sig="", values=(), **kw):
        """Sends a method call and returns its answer (see recv), skipping other messages."""
        self.send(dbus_message(serial, member, sig, bytes(dbus_marshal(sig, values)), **kw))
        while True:
            m = self.recv()
            if m[2] == serial:
                return m

    def close(self, reset=False):
        if reset:  # an abortive close: RST instead of FIN
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


def raw_call_main(argv):
    """python3 -c 'import daemon; daemon.raw_call_main(sys.argv[1:])' SOCKET CLAIMED_UID MEMBER SIG
    [VALUE...]: authenticates claiming CLAIMED_UID ('-' for our own), calls MEMBER, prints JSON
    {"auth": line, "type": n, "error": name} (what another user can get out of lvssd by hand)."""
    path, uid, member, sig, *values = argv
    out = {}
    try:
        bus = RawBus(path)
        out["auth"] = bus.auth(None if uid == "-" else int(uid))
        if out["auth"].startswith("OK "):
            vals = [int(v) if t in "tub" else v for t, v in zip(sig, values)]
            mtype, _, _, error, _ = bus.call(1, member, sig, vals)
            out.update(type=mtype, error=error)
    except (OSError, EOFError) as e:
        out["exception"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
