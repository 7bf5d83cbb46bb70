# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvssd SIGKILLed at random moments (issue 6, "Reliability and security"): two volumes, ext4 and
# xfs, mounted from loop devices over lvssd's FUSE files, written to by fio (--verify=crc32c, with
# a verify backlog) and by a writer that records, outside the volumes, every file it fsynced; sets
# taken again and again; and lvssd killed, round after round, in one of these phases:
#
#   cow      while the writes copy chunks on write for the persistent shadows (no set running)
#   freeze   as soon as the set's freeze window opens (the guardian process is forked just before
#            FIFREEZE: the kill lands in the freeze's flush, or just after)
#   hold     inside the flush-and-hold window, after the snapshots and before the thaw (lvssd
#            started with LVSS_TEST_HOLD_DELAY_MS, its test hook that makes the hold last)
#   commit   just after the thaw, while lvssd records the set (catalog) and answers
#   backup   while `lvss backup` writes its tars from the shadows it exposed
#   revert   while `lvss revert` copies a persistent shadow back onto an unmounted volume
#
# After each kill (lvssd restarted by hand, as an admin would):
#   - no filesystem is left frozen: a write to each mount (in a child, with a deadline) does not
#     block;
#   - every persistent shadow hashed before the kill (sha256 of RUNTIME/dev/shadows/ID, the file
#     `lvss shadow path` names) still exists with the same bytes; a set is whole (one shadow per
#     volume) or absent; shadows of the set the kill interrupted may be gone, and those that came
#     back hold a filesystem that fsck finds clean; non-persistent shadows are gone;
#   - a reverted volume, once the revert is run again (engine.h: a crash midway leaves a mix that
#     a second revert completes), is byte for byte the shadow;
#   - no loop device over any FUSE file of this test's lvssds is left but the ones the test
#     attached, and no filesystem is mounted from one (a `lvss backup` exposure, say);
#   - `lvss volume attach` gives new devices; after a mount (journal replay) and unmount,
#     e2fsck -fn / xfs_repair -n find nothing; every file the writer had fsynced before the kill
#     reads back exactly (on a reverted volume: every file fsynced before its shadow's set);
#   - fio reported no verify failure (only I/O errors from the dead device after the kill).
#
# Three tests: test_kill_lvssd (cow, hold, commit, revert), test_kill_lvssd_during_backup (a killed
# backup's exposures are taken away by the next lvssd: found here, fixed in manager_startup), and
# test_kill_lvssd_during_freeze (a kill inside FIFREEZE's flush left lvssd unable to die, its threads
# waiting for writeback only its dead FUSE workers would serve: found here, fixed by lvssd's FUSE
# guardian, which aborts the connection of an lvssd that is dying).
# Leaks are looked for only among loop devices over the FUSE export of this test's own lvssd
# (device number taken while it runs, the same devices and files after the kill): FUSE device
# numbers are reused, so nobody else's loop device or mount is ever touched.
#
# Counts (kills per phase, shadows and bytes compared) are printed as one "reliability:" line and
# appended as JSON to $LVSS_RELIABILITY_REPORT. Run time: --duration / $LVSS_RELIABILITY_SECONDS
# (conftest.py). The seed is printed; LVSS_TEST_SEED replays the choices (not the timing).

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import daemon
from daemon import MiB

SIZES = {"e": "256M", "x": "320M"}  # mkfs.xfs wants at least 300M
FSTYPE = {"e": "ext4", "x": "xfs"}
PHASES = ("cow", "freeze", "hold", "commit", "backup", "revert")
HOLD_DELAY_MS = 700  # LVSS_TEST_HOLD_DELAY_MS of the lvssd that a "hold" round kills
MAX_PERSISTENT_SETS = 2  # older persistent sets are deleted (each is hashed after every kill)
KEEP_ROUND_DIRS = 4  # the writer's files of older rounds are deleted (room on the volumes)
FIO_FILE_MB = 24

# Writes files of random content under ROOT/DIR until SIGTERM or CAP bytes, a little at a time.
# Each file is fsynced, then its directory, and only THEN its line "RELPATH SHA256" is appended to
# MANIFEST (outside the volumes) and the manifest fsynced: a line means a durable file.
WRITER = r'''
import hashlib, os, random, signal, sys, time
manifest, seed, root, sub, cap = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
rng = random.Random(seed)
stop = False
def on_term(*_):
    global stop
    stop = True
def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
signal.signal(signal.SIGTERM, on_term)
d = os.path.join(root, sub)
os.makedirs(d, exist_ok=True)
fsync_dir(d)
fsync_dir(root)
mfd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
print("writing", flush=True)
n = total = 0
while not stop and total < cap:
    size = rng.choice((rng.randrange(1, 4096), rng.randrange(4096, 65536), rng.randrange(65536, 200000)))
    data = rng.randbytes(size)
    name = "%s/f%05d" % (sub, n)
    fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(d)
    line = ("%s %s\n" % (name, hashlib.sha256(data).hexdigest())).encode()
    assert os.write(mfd, line) == len(line)
    os.fsync(mfd)
    n += 1
    total += size
    time.sleep(0.005)
print("done", n, total, flush=True)
while not stop:
    time.sleep(0.05)
'''


def fio_args(mnt, seed):
    """fio on one mount: random writes verified by crc32c as it goes (a backlog read back every
    64 blocks), one job buffered with an fsync every 16 writes, one with O_DIRECT."""
    common = ["--ioengine=psync", f"--directory={mnt}", f"--size={FIO_FILE_MB}M", "--bsrange=4k-64k",
              "--rw=randwrite", "--verify=crc32c", "--do_verify=1", "--verify_backlog=64",
              "--verify_fatal=1", "--time_based=1", "--runtime=3600", f"--randseed={seed}",
              "--rate=6m", "--group_reporting=0"]
    return ["fio", "--name=buffered", "--filename=fio-buffered", "--fsync=16", *common,
            "--name=direct", "--filename=fio-direct", "--direct=1", *common]


VERIFY_FAILURE_WORDS = ("verify failed", "bad magic", "bad header", "err=84", "verify: ")


class Counts:
    def __init__(self):
        self.kills = {p: 0 for p in PHASES}
        self.missed = {p: 0 for p in PHASES}  # the operation ended before the kill came
        self.rounds = 0
        self.shadows_compared = 0
        self.shadow_bytes = 0
        self.shadows_checked_new = 0
        self.files_compared = 0
        self.file_bytes = 0
        self.fsck = 0
        self.sets_made = 0
        self.reverts_completed = 0
        self.leaks = []
        self.frozen = []
        self.stuck = []

    def summary(self, seed_info, seconds):
        return {
            "test": "test_kill_lvssd", "seconds": round(seconds, 1), "rounds": self.rounds,
            "kills": dict(self.kills), "missed": dict(self.missed),
            "kills_total": sum(self.kills.values()), "sets_made": self.sets_made,
            "shadows_compared": self.shadows_compared, "shadow_bytes_compared": self.shadow_bytes,
            "new_shadows_fscked": self.shadows_checked_new, "files_compared": self.files_compared,
            "file_bytes_compared": self.file_bytes, "fsck_clean": self.fsck,
            "reverts_completed_after_restart": self.reverts_completed, "leaks": self.leaks,
            "left_frozen": self.frozen, "lvssd_stuck": self.stuck, **seed_info,
        }


# ---- host helpers ----

def loops_by_backdev(devnos):
    """{loop device: backing file} for the loop devices whose backing file lives on one of the
    filesystems DEVNOS (the FUSE exports of this test's lvssds: nobody else's)."""
    out = subprocess.run(["losetup", "--list", "--json", "--output", "NAME,BACK-MAJ:MIN,BACK-FILE"],
                         capture_output=True, text=True).stdout
    want = {f"{os.major(n)}:{os.minor(n)}" for n in devnos}
    found = {}
    for dev in (json.loads(out)["loopdevices"] if out.strip() else []):
        if (dev.get("back-maj:min") or "").strip() in want:
            found[dev["name"]] = dev.get("back-file") or ""
    return found


def mounts_of(devices):
    """Mount points whose source is one of DEVICES."""
    devices = set(devices)
    return [mp for mp, src in daemon.mountinfo() if src in devices]


def umount_hard(mp):
    if subprocess.run(["umount", str(mp)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mp)], capture_output=True)


STUCK_SECONDS = 10


def abort_fuse(devno):
    """Aborts the FUSE connection DEVNO (a dead lvssd's export) through fusectl, mounting fusectl on
    /sys/fs/fuse/connections for the time of it if nobody has."""
    conn = Path("/sys/fs/fuse/connections")
    mounted_here = False
    if not daemon.is_mounted(conn):
        mounted_here = subprocess.run(["mount", "-t", "fusectl", "fusectl", str(conn)],
                                      capture_output=True).returncode == 0
    try:
        abort = conn / str(os.minor(devno)) / "abort"
        if abort.exists():
            abort.write_text("1")
    finally:
        if mounted_here:
            subprocess.run(["umount", str(conn)], capture_output=True)


def never_blocks(mnt, timeout=8.0):
    """True if creating and writing a file on MNT returns (with success or an error: the device may
    be dead) within TIMEOUT; False if it blocks, as on a frozen filesystem."""
    probe = f"{mnt}/.probe-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(["/usr/bin/python3", "-c",
                             "import sys\ntry:\n open(sys.argv[1],'w').write('x')\nexcept OSError:\n pass",
                             probe], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False
    finally:
        if proc.poll() is None:
            # It sleeps in the kernel until the thaw: thaw, then reap it.
            try:
                subprocess.run(["fsfreeze", "--unfreeze", str(mnt)], capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass


def fsck(dev, fs):
    if fs == "ext4":
        args = ["e2fsck", "-fn", str(dev)]
    else:
        args = ["xfs_repair", "-n"] + ([] if str(dev).startswith("/dev/") else ["-f"]) + [str(dev)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def guardian_running(pid):
    """True while lvssd PID has a child (the guardian it forks for each freeze window)."""
    try:
        for t in Path(f"/proc/{pid}/task").iterdir():
            try:
                if (t / "children").read_text().strip():
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def in_freeze(pid):
    """True while a thread of lvssd PID is inside FIFREEZE (freeze_super in its kernel stack)."""
    for t in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if "freeze_super" in (t / "stack").read_text():
                return True
        except OSError:
            pass
    return False


def wait_frozen(pid, proc):
    """After the guardian appeared: waits until FIFREEZE has returned in lvssd PID (seen inside it,
    then out; or never seen within 0.2 s: it was quick), so that a kill lands after it."""
    seen = wait_for(lambda: in_freeze(pid) or proc.poll() is not None, 0.2, 0.002)
    if seen:
        wait_for(lambda: not in_freeze(pid) or proc.poll() is not None, 30, 0.002)


def sha_file(path, counts=None):
    h = daemon.file_sha256(path)
    if counts is not None:
        counts.shadow_bytes += os.path.getsize(path)
        counts.shadows_compared += 1
    return h


# ---- the test ----

class Run:
    """The state of one test: the daemon, the volumes' devices and mounts, the load, what is known
    to be durable, the hashes of the persistent shadows."""

    def __init__(self, d, rng, counts):
        self.d, self.rng, self.c = d, rng, counts
        self.devno = None  # the FUSE export of the running lvssd
        self.before_kill = {}  # loop device -> backing file, over the export of the lvssd just killed
        self.dev = {}  # volume -> loop device (attached by the test)
        self.mnt = {v: d.root / f"mnt-{v}" for v in FSTYPE}
        self.mounted = set()
        self.fio = {}
        self.writers = {}  # volume -> (proc, manifest, round dir)
        self.durable = {v: {} for v in FSTYPE}  # volume -> {relpath: sha256} known durable
        self.hashes = {}  # persistent shadow id -> sha256, taken before any kill
        self.shadow_volume = {}
        self.shadow_set = {}
        self.set_records = {}  # set id -> {volume: {relpath: sha}} durable before the set began
        self.round = 0
        self.backups = d.root / "backups"
        self.backups.mkdir()
        self.estimates = {"backup": 0.5, "revert": 0.3}
        self.failures = []

    # -- lvssd --

    def start(self, hold_delay_ms=None):
        env = os.environ.copy()
        if hold_delay_ms:
            os.environ["LVSS_TEST_HOLD_DELAY_MS"] = str(hold_delay_ms)
        else:
            os.environ.pop("LVSS_TEST_HOLD_DELAY_MS", None)
        try:
            self.d.start()
        finally:
            os.environ.clear()
            os.environ.update(env)
        self.devno = os.stat(self.d.dev).st_dev

    def kill(self, phase):
        """SIGKILL; if lvssd cannot die (a thread stuck in the kernel on its own FUSE export),
        abort its FUSE connection to let it go, and record that."""
        proc = self.d.proc
        devno = os.stat(self.d.dev).st_dev if daemon.is_mounted(self.d.dev) else None
        # While this lvssd lives, its FUSE export's device number is its own: the loop devices over
        # it are this test's (after its death the number may go to someone else's lvssd).
        self.before_kill = loops_by_backdev({devno}) if devno is not None else {}
        self.killed_devno = devno
        proc.send_signal(signal.SIGKILL)
        try:
            proc.wait(timeout=STUCK_SECONDS)
        except subprocess.TimeoutExpired:
            stacks = []
            for t in Path(f"/proc/{proc.pid}/task").glob("*"):
                try:
                    st = (t / "stack").read_text().split("\n")[0]
                except OSError:
                    st = "?"
                stacks.append(f"{t.name}:{st.strip()}")
            self.c.stuck.append(f"round {self.round} ({phase}): lvssd did not die within {STUCK_SECONDS} s of "
                                f"SIGKILL; its threads in the kernel: {[x for x in stacks if x.split(':', 1)[1]]}")
            print(self.c.stuck[-1], flush=True)
            if devno is not None:
                abort_fuse(devno)
            proc.wait(timeout=60)

    # -- volumes --

    def attach_and_mount(self, mkfs=False):
        for v in FSTYPE:
            res = self.d.run("--json", "volume", "attach", v)
            assert res.code == 0, f"{res}\n{self.d.log()}"
            out = json.loads(res.out)
            dev = out["device"]
            self.d.host.undo.append(("loop", dev))
            self.dev[v] = dev
            assert not [m for m in out.get("stale_mounts", [])], f"stale mounts after cleanup: {out}"
            if mkfs:
                self.d.host.mkfs(dev, FSTYPE[v])
            else:
                # The journal is replayed by a mount; after an unmount, the check must be clean.
                self.d.host.mount(dev, self.mnt[v])
                self.d.host.umount(self.mnt[v])
                code, out = fsck(dev, FSTYPE[v])
                assert code == 0, f"round {self.round}: fsck of volume {v} ({FSTYPE[v]}) after the kill:\n{out}"
                self.c.fsck += 1
            self.d.host.mount(dev, self.mnt[v])
            self.mounted.add(v)

    def drop_dead(self):
        """After a kill: the mounts and loop devices over the dead FUSE files go (the user's part)."""
        for v in FSTYPE:
            if v in self.mounted:
                umount_hard(self.mnt[v])
                self.d.host.untrack_mount(self.mnt[v])
                self.mounted.discard(v)
            dev = self.dev.pop(v, None)
            if dev:
                subprocess.run(["losetup", "--detach", dev], capture_output=True)
                if ("loop", dev) in self.d.host.undo:
                    self.d.host.undo.remove(("loop", dev))

    # -- load --

    def start_load(self, volumes=None):
        for v in volumes or FSTYPE:
            mnt = self.mnt[v]
            (mnt / "fio").mkdir(exist_ok=True)
            log = open(self.d.root / f"fio-{v}.log", "w")
            self.fio[v] = (subprocess.Popen(fio_args(mnt / "fio", self.rng.randrange(1 << 30)), stdout=log,
                                            stderr=subprocess.STDOUT, cwd=mnt / "fio"), log)
            sub = f"r{self.round:04d}"
            manifest = self.d.root / f"manifest-{v}-{self.round}"
            proc = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, str(manifest), str(self.rng.randrange(1 << 30)),
                                     str(mnt), sub, str(6 * MiB)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            line = proc.stdout.readline().strip()
            assert line == "writing", f"writer on {v}: {line!r} {proc.stderr.read()}"
            self.writers[v] = (proc, manifest, sub)

    def durable_now(self, v):
        """What is durable on V now: the known files and the lines of the running writer's manifest."""
        out = dict(self.durable[v])
        if v in self.writers:
            out.update(self.manifest_lines(self.writers[v][1]))
        return out

    @staticmethod
    def manifest_lines(path):
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return {}
        out = {}
        for line in data.split(b"\n")[:-1]:
            rel, digest = line.decode().split()
            out[rel] = digest
        return out

    def stop_load(self, volumes=None, killed=False):
        """Stops fio and the writer of VOLUMES; the writer's manifest joins what is durable. fio must
        not have seen a verify failure (I/O errors are expected after a kill)."""
        for v in list(volumes or FSTYPE):
            if v in self.writers:
                proc, manifest, _ = self.writers.pop(v)
                proc.send_signal(signal.SIGKILL if killed else signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                err = proc.stderr.read()
                if not killed:
                    assert proc.returncode == 0, f"writer on {v} failed with lvssd alive: {err}"
                self.durable[v].update(self.manifest_lines(manifest))
            if v in self.fio:
                proc, log = self.fio.pop(v)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)  # fio stops and reports
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                log.close()
                text = (self.d.root / f"fio-{v}.log").read_text(errors="replace")
                bad = [ln for ln in text.splitlines() if any(w in ln for w in VERIFY_FAILURE_WORDS)]
                assert not bad, f"round {self.round}: fio on volume {v} saw a verify failure:\n" + "\n".join(bad[:20])
                if not killed:
                    # Interrupted, fio exits 128 (SIGINT) with each job's err= 0.
                    errs = re.findall(r"err=\s*(\d+)", text)
                    assert errs and not any(int(e) for e in errs), \
                        f"round {self.round}: fio on {v} failed with lvssd alive:\n{text[-3000:]}"

    # -- checks --

    def check_files(self):
        for v in FSTYPE:
            for rel, digest in sorted(self.durable[v].items()):
                path = self.mnt[v] / rel
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    raise AssertionError(f"round {self.round}: {v}:{rel}, fsynced before the kill, is gone")
                assert hashlib.sha256(data).hexdigest() == digest, \
                    f"round {self.round}: {v}:{rel}, fsynced before the kill, reads differently"
                self.c.files_compared += 1
                self.c.file_bytes += len(data)

    def prune(self):
        """Deletes the writer's older round directories (and the fio files stay: they are rewritten)."""
        for v in FSTYPE:
            dirs = sorted(p.name for p in self.mnt[v].iterdir() if p.name.startswith("r") and p.is_dir())
            for name in dirs[:-KEEP_ROUND_DIRS]:
                shutil.rmtree(self.mnt[v] / name)
                self.durable[v] = {k: s for k, s in self.durable[v].items() if not k.startswith(name + "/")}
            subprocess.run(["sync", "-f", str(self.mnt[v])], check=True)

    def make_set(self, context="app-rollback"):
        before = {v: self.durable_now(v) for v in FSTYPE}
        s = self.d.create_set(*[self.mnt[v] for v in FSTYPE], context=context, timeout=120)
        self.c.sets_made += 1
        if context == "app-rollback":
            self.set_records[s["set"]] = before
            for sh in s["shadows"]:
                self.hashes[sh["id"]] = daemon.file_sha256(sh["path"])
                self.shadow_volume[sh["id"]] = sh["volume"]
                self.shadow_set[sh["id"]] = s["set"]
        return s

    def trim_sets(self):
        sets = [x for x in self.d.json("list", "sets") if x["context"] == "app-rollback"]
        sets.sort(key=lambda x: x["created"])
        for x in sets[:-MAX_PERSISTENT_SETS] if len(sets) > MAX_PERSISTENT_SETS else []:
            self.d.ok("delete", "--set", x["id"])
            for sid in x["shadows"]:
                self.hashes.pop(sid, None)
            self.set_records.pop(x["id"], None)

    def check_shadows(self):
        """After a restart: every hashed persistent shadow is there, byte-exact; new ones (from the
        interrupted set) are whole sets of clean filesystems; no non-persistent shadow is left."""
        shadows = {s["id"]: s for s in self.d.shadows()}
        for sid, digest in sorted(self.hashes.items()):
            assert sid in shadows, (f"round {self.round}: persistent shadow {sid} ({self.shadow_volume[sid]}), "
                                    f"hashed before the kill, is gone\n{self.d.log()}")
            s = shadows[sid]
            assert s["state"] == "created", s
            assert sha_file(s["path"], self.c) == digest, \
                f"round {self.round}: persistent shadow {sid} ({s['volume']}) reads differently after the kill"
        for sid, s in shadows.items():
            assert s["persistent"], f"round {self.round}: non-persistent shadow {sid} survived the restart: {s}"
        sets = self.d.json("list", "sets")
        for x in sets:
            assert len(x["shadows"]) == len(FSTYPE), f"round {self.round}: a set is not whole after the kill: {x}"
        for sid, s in sorted(shadows.items()):
            if sid in self.hashes:
                continue
            # From the set the kill interrupted (recorded, its answer lost): a frozen, clean filesystem.
            code, out = self.fsck_shadow(s["path"], FSTYPE[s["volume"]])
            assert code == 0, f"round {self.round}: the new shadow {sid} ({s['volume']}) is not clean:\n{out}"
            self.c.shadows_checked_new += 1
            self.hashes[sid] = daemon.file_sha256(s["path"])
            self.shadow_volume[sid] = s["volume"]
            self.shadow_set[sid] = s["set"]
            # What was durable before it began is unknown here (the kill came first): no revert to it.

    def fsck_shadow(self, path, fs):
        """fsck of a shadow's filesystem as a recovering mount sees it. ext4: e2fsck -fn on the file
        (a frozen ext4 has an empty journal). xfs: a frozen xfs may hold a log tail that a mount
        replays and xfs_repair -n refuses (tests/e2e/test_lvssd_consistency.py): replay it on a
        private copy, then xfs_repair -n the copy."""
        if fs == "ext4":
            return fsck(path, fs)
        copy = self.d.root / "xfs-copy.img"
        subprocess.run(["cp", "--sparse=always", str(path), str(copy)], check=True, capture_output=True)
        try:
            dev = self.d.host.attach(copy, direct_io=False)
            mnt = self.d.host.mount(dev, self.d.root / "xfs-replay", options="nouuid")
            self.d.host.umount(mnt)
            self.d.host.detach(dev)
            return fsck(copy, fs)
        finally:
            copy.unlink()

    def check_leaks(self, phase):
        """No loop device over our lvssds' files but the test's own, and nothing mounted from one."""
        ours = set(self.dev.values())
        # Loops over the current export (ours alone), and those over the killed lvssd's export that
        # are still the same devices over the same files (the test detached its own already).
        now = loops_by_backdev({self.devno})
        old = {}
        if self.before_kill:
            for dev, bf in loops_by_backdev({self.killed_devno}).items():
                rel = bf.split("/run/dev", 1)[-1]  # the path of a detached export loses its prefix
                if self.before_kill.get(dev) in (bf, str(self.d.dev) + rel):
                    old[dev] = bf
        stray = {dev: bf for dev, bf in {**old, **now}.items() if dev not in ours}
        stray_mounts = mounts_of(stray)
        if stray or stray_mounts:
            self.c.leaks.append({"round": self.round, "phase": phase, "loops": stray, "mounts": stray_mounts})
            for mp in stray_mounts:
                umount_hard(mp)
                if os.path.basename(os.path.dirname(mp)).startswith("lvss-backup-"):
                    try:
                        os.rmdir(mp)
                        os.rmdir(os.path.dirname(mp))
                    except OSError:
                        pass
            for dev in stray:
                subprocess.run(["losetup", "--detach", dev], capture_output=True)

    def check_not_frozen(self, phase):
        for v in FSTYPE:
            if v in self.mounted and not never_blocks(self.mnt[v]):
                self.c.frozen.append(f"round {self.round} ({phase}): {FSTYPE[v]} on {self.mnt[v]} stayed frozen")


def wait_for(cond, timeout, step=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def run_kills(d, rng, duration, phases, name):
    """Kills lvssd in PHASES (each at least once, then at random) until DURATION seconds have
    passed; returns the counts, after printing and reporting them."""
    seed = rng.lvss_seed
    c = Counts()
    r = Run(d, rng, c)
    t_start = time.monotonic()

    side = None
    try:
        r.start()
        for v, size in SIZES.items():
            d.create_volume(v, size)
        r.attach_and_mount(mkfs=True)

        # Phases: each at least once, then at random, until the duration has passed.
        order = list(phases)
        rng.shuffle(order)
        phase_next = order.pop(0)
        # The first round's lvssd was started without the hold hook; a "hold" first needs a restart.
        if phase_next == "hold":
            order.append(phase_next)
            phase_next = order.pop(0)

        while True:
            r.round += 1
            c.rounds += 1
            phase = phase_next
            r.start_load()
            time.sleep(rng.uniform(0.2, 0.8))
            # A persistent set or two before the kill: their chunks are copied on write meanwhile.
            if not any(r.shadow_volume[s] for s in r.hashes) or rng.random() < 0.6:
                r.make_set()
            if rng.random() < 0.3:
                r.make_set(context="backup")  # non-persistent: must be gone after the restart
            r.trim_sets()
            side = None  # a process running the operation the kill interrupts
            done_before_kill = False

            if phase == "cow":
                time.sleep(rng.uniform(0.1, 1.5))
                r.kill(phase)
            elif phase in ("freeze", "hold", "commit"):
                side = subprocess.Popen([d.cli, "--socket", str(d.socket), "--json", "create", "--context", "app-rollback",
                                         *[str(r.mnt[v]) for v in FSTYPE]], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                opened = wait_for(lambda: guardian_running(d.pid) or side.poll() is not None, 60)
                assert opened, "the set never reached its freeze window"
                if phase == "freeze":
                    time.sleep(rng.uniform(0, 0.003))
                elif phase == "hold":
                    time.sleep(rng.uniform(0.02, HOLD_DELAY_MS / 1000 * 0.8))
                else:
                    wait_for(lambda: not guardian_running(d.pid) or side.poll() is not None, 30)
                    time.sleep(rng.uniform(0, 0.004))
                done_before_kill = side.poll() is not None
                r.kill(phase)
            elif phase == "backup":
                before = {mp for mp, _ in daemon.mountinfo()}
                to = r.backups / f"b{r.round:04d}"
                side = subprocess.Popen([d.cli, "--socket", str(d.socket), "--json", "backup", "--to", str(to),
                                         *[str(r.mnt[v]) for v in FSTYPE]], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                wait_for(lambda: side.poll() is not None or any(
                    mp.startswith("/tmp/lvss-backup-") and mp not in before for mp, _ in daemon.mountinfo()), 60, 0.005)
                time.sleep(rng.uniform(0, r.estimates["backup"]))
                done_before_kill = side.poll() is not None
                r.kill(phase)
            elif phase == "revert":
                cands = [s for s in r.hashes if r.shadow_set.get(s) in r.set_records]
                if not cands:
                    r.make_set()
                    cands = [s for s in r.hashes if r.shadow_set.get(s) in r.set_records]
                sid = rng.choice(sorted(cands))
                v = r.shadow_volume[sid]
                r.stop_load([v])
                d.host.umount(r.mnt[v])
                r.mounted.discard(v)
                t0 = time.monotonic()
                side = subprocess.Popen([d.cli, "--socket", str(d.socket), "revert", sid], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                time.sleep(rng.uniform(0, r.estimates["revert"]))
                done_before_kill = side.poll() is not None
                if done_before_kill:
                    r.estimates["revert"] = max(0.02, min(r.estimates["revert"], (time.monotonic() - t0) * 0.8))
                r.kill(phase)
            if done_before_kill:
                c.missed[phase] += 1
                if phase == "backup":
                    r.estimates["backup"] = max(0.05, r.estimates["backup"] * 0.7)
            else:
                c.kills[phase] += 1

            # ---- after the kill ----
            r.check_not_frozen(phase)
            r.stop_load(killed=True)
            if side is not None:
                try:
                    side.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    side.kill()
                    side.wait()
                out, err = side.communicate()
                if phase in ("freeze", "hold", "commit") and side.returncode == 0:
                    # The set was made and answered before the kill: it is an ordinary persistent set.
                    s = json.loads(out)
                    for sh in s["shadows"]:
                        r.shadow_volume[sh["id"]] = sh["volume"]
                        r.shadow_set[sh["id"]] = s["set"]
            r.drop_dead()

            # The next round's phase decides how lvssd starts.
            if not order and time.monotonic() - t_start >= duration:
                phase_next = None
            else:
                phase_next = order.pop(0) if order else rng.choice(phases)
            r.start(hold_delay_ms=HOLD_DELAY_MS if phase_next == "hold" else None)

            r.check_leaks(phase)
            r.check_shadows()
            if phase == "revert":
                # The revert again completes whatever the kill left; then the volume is the shadow.
                res = d.run("revert", sid, timeout=300)
                assert res.code == 0, f"{res}\n{d.log()}"
                assert daemon.file_sha256(d.volume_path(v)) == r.hashes[sid], \
                    f"round {r.round}: volume {v} reverted to {sid} twice is not the shadow's bytes"
                c.reverts_completed += 1
                r.durable[v] = dict(r.set_records[r.shadow_set[sid]][v])
            r.attach_and_mount()
            r.check_files()
            r.prune()
            line = (f"round {r.round}: killed in {phase}{' (operation had ended)' if done_before_kill else ''}, "
                    f"{len(r.hashes)} persistent shadows, {sum(len(x) for x in r.durable.values())} durable files")
            print(line, flush=True)
            if phase_next is None:
                break

        # The volumes still take sets and work as usual after all that.
        r.round += 1
        r.start_load()
        time.sleep(0.5)
        r.make_set()
        r.stop_load()
        r.check_files()
    finally:
        # Whatever happened: no process of ours is left writing (they hold the mounts).
        for proc, _ in list(r.fio.values()):
            if proc.poll() is None:
                proc.kill()
        for proc, _, _ in list(r.writers.values()):
            if proc.poll() is None:
                proc.kill()
        if side is not None and side.poll() is None:
            side.kill()
        for proc in [p for p, _ in r.fio.values()] + [p for p, _, _ in r.writers.values()] + (
                [side] if side is not None else []):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for _, log in r.fio.values():
            log.close()

    elapsed = time.monotonic() - t_start
    summary = c.summary({"seed": seed, "test": name}, elapsed)
    text = ("reliability: {test}: {kills_total} kills survived ({kills}), {rounds} rounds, "
            "{shadows_compared} shadow comparisons ({gb:.2f} GiB), {new_shadows_fscked} interrupted-set shadows "
            "fsck'd clean, {files_compared} fsynced files ({mb:.1f} MiB) read back, {fsck_clean} fsck clean, "
            "{reverts_completed_after_restart} interrupted reverts completed, leaks {nl}, left frozen {nf}, "
            "lvssd stuck {ns}, {seconds} s").format(
        gb=summary["shadow_bytes_compared"] / (1 << 30), mb=summary["file_bytes_compared"] / MiB,
        nl=len(c.leaks), nf=len(c.frozen), ns=len(c.stuck),
        **{k: (", ".join(f"{p} {n}" for p, n in v.items() if p in phases) if k == "kills" else v)
           for k, v in summary.items()})
    print(text, flush=True)
    if os.environ.get("LVSS_RELIABILITY_REPORT"):
        with open(os.environ["LVSS_RELIABILITY_REPORT"], "a") as f:
            f.write(json.dumps(summary) + "\n")
    for v in FSTYPE:
        r.d.host.umount(r.mnt[v])
    return c


def check_counts(c):
    assert not c.frozen, f"filesystems left frozen after a kill: {c.frozen}"
    assert not c.stuck, f"lvssd could not die: {c.stuck}"
    assert not c.leaks, f"loop devices or mounts of lvss left after a kill: {c.leaks}"


MAIN_PHASES = ("cow", "hold", "commit", "revert")


def test_kill_lvssd(lvssd_stopped, rng, duration):
    """SIGKILL while chunks are copied on write, inside the hold window, at the set's commit and
    during a revert, for DURATION seconds."""
    c = run_kills(lvssd_stopped, rng, duration, MAIN_PHASES, "test_kill_lvssd")
    check_counts(c)
    assert all(c.kills[p] + c.missed[p] > 0 for p in MAIN_PHASES), c.kills


def test_kill_lvssd_during_backup(lvssd_stopped, rng, duration):
    """SIGKILL while `lvss backup` writes its tars from the exposed shadows (and in the other phases
    but the freeze, between backups), for a third of DURATION."""
    c = run_kills(lvssd_stopped, rng, max(duration / 3, 1), ["backup", "cow", "commit"],
                  "test_kill_lvssd_during_backup")
    check_counts(c)


def test_kill_lvssd_during_freeze(lvssd_stopped, rng, duration):
    """SIGKILL as soon as a set's freeze window opens (the guardian forked, FIFREEZE running), for a
    third of DURATION."""
    c = run_kills(lvssd_stopped, rng, max(duration / 3, 1), ["freeze"], "test_kill_lvssd_during_freeze")
    check_counts(c)
